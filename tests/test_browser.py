"""A real-browser smoke test: JupyterLab in headless Chromium runs notebook 00,
then a student kills a node and moves a slider, and the playground answers.

Skips when Chromium or Playwright is missing (`.ci/run` installs Chromium).
Everything happens in a temporary copy of notebooks/ (and data/), so the test
never writes into the repository. LABKIT_BROWSER_NOTEBOOK=path/to/x.ipynb runs
the same checks on another notebook; LABKIT_KEEP_SCREENSHOT=1 copies the final
screenshot to tests/artifacts/browser_00.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(os.environ.get("LABKIT_BROWSER_NOTEBOOK",
                               REPO / "notebooks" / "00_simulator_tour.ipynb"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SETTINGS = {  # JupyterLab user settings: no news toast, never write the notebook
    "@jupyterlab/apputils-extension/notification":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
ERROR_TEXT = re.compile(r"Traceback|^\w+(Error|Exception)\b|Error displaying widget",
                        re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on 127.0.0.1 serving `root`, stopped by `stop()`."""

    def __init__(self, root: Path, home: Path):
        self.token, self.port = secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "settings"
        for plugin, values in SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ, PYTHONHASHSEED="0", **{  # nothing from or to ~/.jupyter
            f"JUPYTER_{kind.upper()}_DIR": str(home / kind)
            for kind in ("config", "data", "runtime")})
        self.log = home / "lab.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
             f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={root}",
             f"--LabApp.workspaces_dir={home / 'workspaces'}",
             f"--LabApp.user_settings_dir={settings}"],
            cwd=root, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, stopped as a whole

    def api(self, method: str, path: str, xsrf: str | None = None):
        headers = {"Authorization": f"token {self.token}"}
        if xsrf:
            headers |= {"X-XSRFToken": xsrf, "Cookie": f"_xsrf={xsrf}"}
        request = urllib.request.Request(self.url + path, method=method,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.api("GET", "/api/status")
                return
            time.sleep(0.25)
        raise TimeoutError(f"jupyter lab did not start:\n{self.log_tail()}")

    def kernels_idle(self) -> bool:
        kernels = self.api("GET", "/api/kernels")
        return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)

    def stop(self, xsrf: str | None = None) -> None:
        """Shut down sessions and kernels, then the server's whole process group."""
        with contextlib.suppress(Exception):
            for session in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{session['id']}", xsrf)
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", xsrf)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_until(condition, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def error_outputs(panel) -> list[str]:
    texts = panel.locator(".jp-OutputArea-output").all_inner_texts()
    return [t for t in texts if ERROR_TEXT.search(t)]


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A throwaway copy of the notebooks (and data/ beside them) to serve."""
    if not NOTEBOOK.exists():
        pytest.skip(f"notebook 00 not present ({NOTEBOOK.name})")
    if not (shutil.which("chromium") or Path(CHROMIUM).exists()):
        pytest.skip("Chromium not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    shutil.copytree(NOTEBOOK.parent, tmp_path / "copy" / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if (NOTEBOOK.parent.parent / "data").is_dir():
        shutil.copytree(NOTEBOOK.parent.parent / "data", tmp_path / "copy" / "data")
    return tmp_path / "copy" / "notebooks"


def test_notebook_00_runs_and_its_playground_answers(workdir, tmp_path):
    from playwright.sync_api import sync_playwright

    lab = Lab(workdir, tmp_path / "lab")
    xsrf = None
    try:
        lab.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?reset&token={lab.token}")
                panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
                panel.locator(".jp-Cell").first.wait_for()
                run_all_cells(page, panel, lab)
                assert not error_outputs(panel), error_outputs(panel)
                play_with_the_playground(page, panel, lab)
                assert not error_outputs(panel), error_outputs(panel)
                screenshot(page, tmp_path)
                xsrf = next((c["value"] for c in page.context.cookies()
                             if c["name"] == "_xsrf"), None)
            finally:
                browser.close()
    except Exception:
        print(f"--- jupyter lab log ---\n{lab.log_tail()}")
        raise
    finally:
        lab.stop(xsrf)


def run_all_cells(page, panel, lab: Lab) -> None:
    """Clear the stored outputs, then Run -> Run All Cells and wait for the end."""
    wait_until(lab.kernels_idle, 30, "the kernel to start")
    click_menu(page, "Edit", "Clear Outputs of All Cells")
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
    wait_until(lambda: not any(re.search(r"\d", t) for t in prompts.all_inner_texts()),
               10, "stored execution counts to clear")
    click_menu(page, "Run", "Run All Cells")

    def finished() -> bool:
        texts = prompts.all_inner_texts()
        return (not any("*" in t for t in texts) and any(re.search(r"\d", t)
                for t in texts) and lab.kernels_idle())

    wait_until(finished, 60, "all cells to run")


def click_menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel",
                 has_text=re.compile(f"^{re.escape(item)}$")).click()


def play_with_the_playground(page, panel, lab: Lab) -> None:
    """Kill a node, nudge a slider, and wait for the status line to answer."""
    status = panel.locator(".labkit-status").last
    status.wait_for()
    before = status.inner_text()
    kill = panel.locator("button.jupyter-button", has_text=re.compile(r"^\s*kill "))
    kill.first.click()
    handle = panel.locator(".noUi-handle").first
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    wait_until(lambda: status.inner_text() != before, 30,
               f"the status to change from {before!r}")
    settled = {"text": None}

    def settles() -> bool:  # the same text twice in a row, with the kernel idle
        text, settled["text"] = settled["text"], status.inner_text()
        return text == settled["text"] and lab.kernels_idle()

    wait_until(settles, 30, "the status to settle", interval=0.5)
    print(f"status before: {before!r}\nstatus after:  {settled['text']!r}")


def screenshot(page, tmp_path: Path) -> None:
    path = tmp_path / "browser_00.png"
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    if os.environ.get("LABKIT_KEEP_SCREENSHOT") == "1":
        keep = REPO / "tests" / "artifacts" / "browser_00.png"
        keep.parent.mkdir(exist_ok=True)
        shutil.copy(path, keep)
        print(f"screenshot kept: {keep}")
