"""A real-browser smoke test: JupyterLab in headless Chromium runs notebook 00
(the simulator tour) and notebook 09 (the capstone), and in each a student kills
a node and moves a slider, and the playground answers: its status line and its
figure change, and no cell shows an error.

Skips when Chromium or Playwright is missing (`.ci/run` installs Chromium).
One JupyterLab serves a temporary copy of notebooks/ (and data/) for both, so
the test never writes into the repository; each notebook's kernel is shut down
when its test ends, and the server with its kernels when the module does or the
run is interrupted (tests/test_no_orphans.py checks that nothing is left).
LABKIT_BROWSER_NOTEBOOK=path/to/x.ipynb runs the same checks on that notebook
only; LABKIT_KEEP_SCREENSHOT=1 copies each final screenshot to
tests/artifacts/browser_<notebook>.png.
"""

from __future__ import annotations

import atexit
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

import psutil
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ([Path(os.environ["LABKIT_BROWSER_NOTEBOOK"]).resolve()]
             if os.environ.get("LABKIT_BROWSER_NOTEBOOK") else
             [REPO / "notebooks" / name for name in ("00_simulator_tour.ipynb",
                                                     "09_capstone_tuning.ipynb")])
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


def require_browser() -> None:
    """Skip unless Chromium and Playwright are installed."""
    if not (shutil.which("chromium") or Path(CHROMIUM).exists()):
        pytest.skip("Chromium not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on 127.0.0.1 serving `root`: `start()`, then `stop()`."""

    def __init__(self, root: Path, home: Path):
        self.token, self.port = secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "settings"
        for plugin, values in SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.env = dict(os.environ, PYTHONHASHSEED="0", **{  # no ~/.jupyter
            f"JUPYTER_{kind.upper()}_DIR": str(home / kind)
            for kind in ("config", "data", "runtime")})
        self.root, self.log = root, home / "lab.log"
        self.command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={root}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
            f"--LabApp.user_settings_dir={settings}"]
        self.process: subprocess.Popen | None = None
        self.kernels: list[psutil.Process] = []

    def start(self) -> None:
        """Start the server in a session of its own, so that `stop` can signal
        its whole process group; atexit stops it should no teardown run, or
        finish."""
        atexit.register(self.stop)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

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

    def shut_down_kernels(self, xsrf: str | None = None) -> None:
        """Delete every session and kernel the server runs."""
        with contextlib.suppress(Exception):
            for session in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{session['id']}", xsrf)
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", xsrf)

    def stop(self) -> None:
        """Stop the server and every kernel it started. SIGTERM goes to the
        server's process group at once (no slower REST calls first: an
        interrupted run may be killed soon); the server then shuts its kernels
        down and exits. Kernels run in sessions of their own (jupyter_client
        starts them so), so they and the group get SIGKILL if anything is left
        after 10 s or a second interrupt cuts the wait short."""
        if self.process is None:
            return
        if self.process.poll() is None:  # not reaped: the pid is still the server's
            with contextlib.suppress(psutil.NoSuchProcess):
                self.kernels = psutil.Process(self.process.pid).children(recursive=True)
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            for kernel in self.kernels:  # psutil checks the pid was not reused
                with contextlib.suppress(psutil.NoSuchProcess):
                    kernel.kill()
            self.process.wait()
            atexit.unregister(self.stop)

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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab on a throwaway copy of the notebooks (and data/ beside
    them), stopped with everything it started when the module's tests end, or
    the run is interrupted (Ctrl-C, or SIGTERM: see conftest.py)."""
    require_browser()
    source = NOTEBOOKS[0].parent
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(source, root / "copy" / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if (source.parent / "data").is_dir():
        shutil.copytree(source.parent / "data", root / "copy" / "data")
    server = Lab(root / "copy" / "notebooks", root / "home")
    server.xsrf = None
    try:
        server.start()
        server.wait_ready()
        yield server
    except Exception:
        print(f"--- jupyter lab log ---\n{server.log_tail()}")
        raise
    finally:
        server.stop()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_and_its_playground_answers(notebook, lab, tmp_path):
    from playwright.sync_api import sync_playwright

    if not notebook.exists():
        pytest.skip(f"{notebook.name} not present")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(f"{lab.url}/lab/tree/{notebook.name}?reset&token={lab.token}")
                panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
                panel.locator(".jp-Cell").first.wait_for()
                run_all_cells(page, panel, lab)
                assert not error_outputs(panel), error_outputs(panel)
                play_with_the_playground(page, panel, lab)
                assert not error_outputs(panel), error_outputs(panel)
                screenshot(page, tmp_path, notebook.stem)
                lab.xsrf = next((c["value"] for c in page.context.cookies()
                                 if c["name"] == "_xsrf"), lab.xsrf)
            finally:
                browser.close()
    except Exception:
        print(f"--- jupyter lab log ---\n{lab.log_tail()}")
        lab.shut_down_kernels(lab.xsrf)
        raise
    # The next notebook gets the CPU. Not on an interrupt: the lab fixture's
    # teardown then stops the server with its kernels at once.
    lab.shut_down_kernels(lab.xsrf)


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


def figure_titles(area) -> list[str]:
    """The titles of the plotly figures drawn by widgets in `area`."""
    return area.locator(".jupyter-widgets .js-plotly-plot .gtitle").all_text_contents()


def play_with_the_playground(page, panel, lab: Lab) -> None:
    """In the output of the last playground (the one with the last status line):
    kill a node and wait for the status to answer, move the first slider and
    wait for it to answer again, then for the figure to have changed."""
    status = panel.locator(".labkit-status").last
    status.wait_for()
    playground = status.locator(
        "xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][1]")
    wait_until(lambda: figure_titles(playground), 30, "the playground's figure")
    titles, before = figure_titles(playground), status.inner_text()
    kill = playground.locator("button.jupyter-button",
                              has_text=re.compile(r"^\s*kill "))
    kill.first.click()
    killed = wait_until(lambda: status.inner_text() != before and status.inner_text(),
                        30, f"the status to answer the kill button ({before!r})")
    handle = playground.locator(".noUi-handle").first
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    wait_until(lambda: status.inner_text() != killed, 30,
               f"the status to answer the slider ({killed!r})")
    settled = {"text": None}

    def settles() -> bool:  # the same text twice in a row, with the kernel idle
        text, settled["text"] = settled["text"], status.inner_text()
        return text == settled["text"] and lab.kernels_idle()

    wait_until(settles, 30, "the status to settle", interval=0.5)
    wait_until(lambda: figure_titles(playground) != titles, 10, "the figure to change")
    print(f"status before: {before!r}\nafter the kill: {killed!r}\n"
          f"after the slider: {settled['text']!r}\n"
          f"figures before: {titles}\nfigures after:  {figure_titles(playground)}")


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"browser_{name}.png"
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    if os.environ.get("LABKIT_KEEP_SCREENSHOT") == "1":
        keep = REPO / "tests" / "artifacts" / path.name
        keep.parent.mkdir(exist_ok=True)
        shutil.copy(path, keep)
        print(f"screenshot kept: {keep}")
