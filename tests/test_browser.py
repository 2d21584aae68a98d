"""A real-browser test of every notebook NN_*.ipynb of notebooks/ (not the
labs): JupyterLab in headless Chromium opens it twice. First as stored: every
stored plotly figure must render and no output may show an error (strict
nbval checks that the stored outputs, figures included, are what the code
produces now). Then a copy holding only what its playgrounds need: each cell
that builds one (it calls `explore` or a function named *_playground or
*_panel, as bench/widgets.py counts them) and, transitively, every earlier
cell binding a name those read; nbval runs all the other cells. The test runs
all of the copy's cells, then plays with every playground (every widget
output with a `.labkit-status` line): it clicks a kill switch if there is one,
else picks another option of a dropdown, then moves a slider with the
keyboard, and waits after each for the answer (the status line or the figure
changes, then settles). It asserts that every such cell drew its playground,
that every playground's figure drew traces and changed (a digest of its
plotly data and layout), that no output shows a traceback or an error (cell
outputs, and the log console, where JupyterLab puts what a widget callback
raises), and that nothing is left running: the kernels are gone when a
notebook's test ends, the server when the worker's run does. Each notebook
is a unit of work of its own (conftest.py), so the two workers of `make test`
share them, each with its own JupyterLab and Chromium and one page in it,
which open one notebook after another (a page is replaced after a failure);
all three last the worker's run (session fixtures), as a worker runs
notebooks under nbval in between.

What each notebook's step did and saw is printed and written to
build/browser/<notebook>.txt; a failing notebook's screenshot goes to
build/browser/<notebook>.png (CI artefacts; build/ is gitignored), a passing
one's too with LABKIT_KEEP_SCREENSHOT=1.

Skips when Chromium or Playwright is missing (`.ci/run` installs Chromium).
JupyterLab serves a temporary copy of notebooks/ (and data/), so the test never
writes into the repository; the server with its kernels is stopped also when
the run is interrupted (tests/test_no_orphans.py checks that).
LABKIT_BROWSER_NOTEBOOK=path/to/x.ipynb runs the checks on that notebook only.
Every wait is bounded: a hung cell or a playground that never answers fails
with a message saying what it waited for.
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
from playground_cells import playground_copy

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ([Path(os.environ["LABKIT_BROWSER_NOTEBOOK"]).resolve()]
             if os.environ.get("LABKIT_BROWSER_NOTEBOOK") else
             sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
ARTEFACTS = REPO / "build" / "browser"
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
# An output shows an error if it holds a traceback or a widget that failed to
# render, or if it is an error or stderr output (JupyterLab shows both with the
# stderr MIME type) with an error line in it. A notebook may print an error's
# name on stdout on purpose (07 shows a FileNotFoundError it caught).
TRACEBACK = re.compile(r"Traceback|Error displaying widget")
ERROR_TEXT = re.compile(r"Traceback|^\w+(Error|Exception)\b|Error displaying widget",
                        re.MULTILINE)
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
# Bounds on every wait, generous for a loaded 2-core machine: under a load of
# 10 the slowest notebook ran all its cells in 70 s (under 20 s of kernel CPU),
# and a playground answered each action in a few seconds.
KERNEL_START_S, RUN_ALL_S, ANSWER_S, DRAW_S = 90, 360, 90, 30


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
    """A JupyterLab server on 127.0.0.1 serving `root`: `launch()` (or `start()`
    and `wait_ready()`), then `stop()`."""

    def __init__(self, root: Path, home: Path):
        self.token = secrets.token_hex(16)
        self.port, self.url = 0, ""             # chosen by `start`
        settings = home / "settings"
        for plugin, values in SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.env = dict(os.environ, PYTHONHASHSEED="0", **{  # no ~/.jupyter
            f"JUPYTER_{kind.upper()}_DIR": str(home / kind)
            for kind in ("config", "data", "runtime")})
        self.root, self.log = root, home / "lab.log"
        self.options = [
            "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
            f"--LabApp.user_settings_dir={settings}",
            # Opening a notebook starts no kernel: the stored one is only
            # looked at, and the test starts the copy's (`start_kernel_for`).
            "--LabApp.notebook_starts_kernel=False"]
        self.process: subprocess.Popen | None = None
        self.kernels: list[psutil.Process] = []

    def start(self) -> None:
        """Start the server on a free port, in a session of its own, so that
        `stop` can signal its whole process group; atexit stops it should no
        teardown run, or finish."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        atexit.register(self.stop)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
                 "--ip=127.0.0.1", f"--port={self.port}", *self.options],
                cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def launch(self, attempts: int = 3) -> None:
        """`start`, then `wait_ready`; if the server exits while starting, stop
        it and start again on another port. `free_port` only finds a port that
        is free now: another process may bind it before the server does (once,
        in a full run, a server found its port taken while etcd and Dask
        clusters were starting beside it)."""
        for attempt in range(1, attempts + 1):
            self.start()
            try:
                self.wait_ready()
                return
            except RuntimeError:                # the server exited
                if attempt == attempts:
                    raise
                print(f"jupyter lab exited while starting (attempt {attempt}):\n"
                      f"{self.log_tail(5)}")
                self.stop()

    def api(self, method: str, path: str, xsrf: str | None = None,
            body: dict | None = None):
        headers = {"Authorization": f"token {self.token}"}
        if xsrf:
            headers |= {"X-XSRFToken": xsrf, "Cookie": f"_xsrf={xsrf}"}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, method=method,
                                         headers=headers, data=data)
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

    def start_kernel_for(self, notebook: str) -> None:
        """Start a session, with a Python kernel, for `notebook` (a path in the
        root): JupyterLab opens the notebook on it, as on the kernel it would
        start itself without notebook_starts_kernel=False."""
        self.api("POST", "/api/sessions", self.xsrf, body={
            "path": notebook, "name": notebook, "type": "notebook",
            "kernel": {"name": "python3"}})

    def kernels_idle(self) -> bool:
        """A kernel runs and every kernel is idle. False while the server cannot
        tell (it answers 500 while a kernel is still being set up)."""
        try:
            kernels = self.api("GET", "/api/kernels")
        except OSError:  # urllib's HTTPError and URLError are OSErrors
            return False
        return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)

    def kernel_processes(self) -> list[psutil.Process]:
        """The live processes the server started (its kernels)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return [p for p in psutil.Process(self.process.pid).children(recursive=True)
                    if alive(p)]
        return []

    def kernel_ids(self) -> list[str]:
        """The ids of the kernels the server runs (["?"] while it cannot tell)."""
        try:
            return [k["id"] for k in self.api("GET", "/api/kernels")]
        except OSError:
            return ["?"]

    def kernel_cpu(self) -> float:
        """User and system CPU seconds its live kernels have used."""
        total = 0.0
        for kernel in self.kernel_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += sum(kernel.cpu_times()[:2])
        return total

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


def alive(process: psutil.Process) -> bool:
    """Running, not a zombie, and not a later process that reuses its pid."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll `condition` until it returns something true (returned) or `timeout`
    seconds pass (TimeoutError naming `what`, and the last value seen)."""
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} "
                       f"(last seen: {value!r})")


def error_outputs(panel) -> list[str]:
    """Outputs of the notebook's cells, and entries of the log console (where
    JupyterLab puts what a widget callback prints or raises), that show an
    error."""
    texts = panel.locator(".jp-OutputArea-output").all_inner_texts()
    stderr = panel.locator(STDERR).all_inner_texts()
    return ([t for t in texts if TRACEBACK.search(t)]
            + [t for t in stderr if ERROR_TEXT.search(t) and not TRACEBACK.search(t)]
            + log_errors(panel.page))


def log_errors(page) -> list[str]:
    """Entries of the log console that show an error."""
    log = page.locator(".jp-LogConsolePanel .jp-OutputArea-output").all_inner_texts()
    return [t for t in log if ERROR_TEXT.search(t)]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab on a throwaway copy of the notebooks (and data/ beside
    them), stopped with everything it started when the worker's run ends, or
    the run is interrupted (Ctrl-C, or SIGTERM: see conftest.py); the teardown
    fails if a process of it is still alive then."""
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
        server.launch()
        yield server
    except Exception:
        print(f"--- jupyter lab log ---\n{server.log_tail()}")
        raise
    finally:
        server.stop()
    wait_until(lambda: not any(map(alive, server.kernels)), 10,
               f"the server's kernels to exit: {server.kernels}")


@pytest.fixture(scope="session")
def window(lab):
    """One headless Chromium with one JupyterLab page, reused by every notebook
    of the worker (booting JupyterLab in a page costs seconds of CPU), closed
    when the worker's run ends or is interrupted."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        window = Window(browser, lab)
        try:
            yield window
        finally:
            window.discard()
            browser.close()


class Window:
    """A JupyterLab page in its own browser context: `page()` opens it the
    first time; `discard()` closes it, so that after a failure the next
    notebook starts on a fresh page, not on whatever the failure left."""

    def __init__(self, browser, lab: Lab):
        self.browser, self.lab = browser, lab
        self.context = self._page = None

    def page(self):
        if self._page is None:
            self.context = self.browser.new_context(
                viewport={"width": 1400, "height": 1200})
            self._page = self.context.new_page()
            self._page.set_default_timeout(30_000)
            self._page.goto(f"{self.lab.url}/lab?reset&token={self.lab.token}")
            self._page.locator(".lm-MenuBar-itemLabel").first.wait_for(timeout=60_000)
        return self._page

    def xsrf(self) -> str | None:
        """The page's XSRF cookie, which the server's REST calls need."""
        cookies = self.context.cookies() if self.context else []
        return next((c["value"] for c in cookies if c["name"] == "_xsrf"),
                    self.lab.xsrf)

    def discard(self) -> None:
        if self.context is not None:
            self.context.close()
        self.context = self._page = None


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_renders_and_its_playgrounds_answer(notebook, lab, window):
    if not notebook.exists():
        pytest.skip(f"{notebook.name} not present")
    (ARTEFACTS / f"{notebook.stem}.png").unlink(missing_ok=True)  # an older run's
    report, started, cpu_before = [f"{notebook.name}"], time.monotonic(), cpu_by_pid()
    try:
        page = window.page()
        try:
            play_the_notebook(page, notebook, lab, report, started)
            if os.environ.get("LABKIT_KEEP_SCREENSHOT") == "1":  # the playgrounds
                report.append(f"screenshot: {screenshot(page, notebook)}")
            close_all_tabs(page)
            cpu = sum(used - cpu_before.get(pid, 0.0)
                      for pid, used in cpu_by_pid().items())
        except Exception:  # not on an interrupt, which must end at once
            shot = screenshot(page, notebook)
            report.append(f"screenshot of the failure: {shot}")
            raise
        finally:
            lab.xsrf = window.xsrf()
    except Exception:
        print("\n".join(report))
        print(f"--- jupyter lab log ---\n{lab.log_tail()}")
        window.discard()
        lab.shut_down_kernels(lab.xsrf)
        raise
    finally:
        write_report(notebook, report)
    # The next notebook gets the CPU, and no kernel of this one stays. Not on an
    # interrupt: the lab fixture's teardown then stops the server with its
    # kernels at once.
    kernel_cpu = lab.kernel_cpu()
    no_kernel_left(lab, "the notebook's kernel")
    report.append(f"kernel shut down; {time.monotonic() - started:.1f} s in all; "
                  f"CPU {cpu:.1f} s ({kernel_cpu:.1f} s in the kernel, the rest in "
                  "Chromium, JupyterLab and Playwright)")
    write_report(notebook, report)
    print("\n".join(report))


def no_kernel_left(lab: Lab, what: str) -> None:
    """Shut down every kernel of the server and wait until they are gone."""
    lab.shut_down_kernels(lab.xsrf)
    wait_until(lambda: not (lab.kernel_ids() or lab.kernel_processes()),
               30, f"{what} to shut down")


def cpu_by_pid() -> dict[int, float]:
    """User + system CPU seconds of each live process this one started, at any
    depth: the server and its kernels, Playwright's driver and Chromium."""
    used = {}
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            used[process.pid] = sum(process.cpu_times()[:2])
    return used


def play_the_notebook(page, notebook: Path, lab: Lab, report: list[str],
                      started: float) -> None:
    """Open the notebook as stored and check its figures render; then open
    the copy of it that holds its playgrounds' cells, run all of them, and
    play with each playground; check the outputs for errors after each step.
    Appends what it did to `report`."""
    figures_drawn = check_stored_figures(page, notebook, lab)
    report.append(f"as stored: {figures_drawn} plotly figures rendered, no error "
                  f"shown; {time.monotonic() - started:.1f} s after opening")
    copy, builders, kept = playground_copy(lab.root / notebook.name)
    close_all_tabs(page)
    lab.xsrf = next((c["value"] for c in page.context.cookies()
                     if c["name"] == "_xsrf"), lab.xsrf)
    assert not lab.kernel_ids(), "opening the stored notebook started a kernel"
    lab.start_kernel_for(copy.name)
    panel = open_notebook(page, copy.name)
    click_menu(page, "View", "Show Log Console")
    page.locator(".jp-LogConsolePanel").wait_for()
    cells = run_all_cells(page, panel, lab)
    assert cells == len(kept), f"{cells} code cells in {copy.name}, not {len(kept)}"
    report.append(f"{copy.name}: code cells {kept} of the notebook's (0-based), "
                  f"{len(builders)} of them building a playground; ran them, "
                  f"{time.monotonic() - started:.1f} s after opening")
    assert not error_outputs(panel), error_outputs(panel)
    playgrounds = panel.locator(".jp-OutputArea-output:has(.labkit-status)")
    count = playgrounds.count()
    assert count and count == len(builders), (f"{len(builders)} cells build a "
        f"playground ({builders}), {count} drew one (a .labkit-status line)")
    for i in range(count):
        report.append(f"playground {i + 1}/{count}:")
        report.extend("  " + line for line in play(playgrounds.nth(i), lab))
        assert not error_outputs(panel), error_outputs(panel)
    report.append(f"played; {time.monotonic() - started:.1f} s after opening")


#: Stored outputs JupyterLab draws with plotly.js (not widget views: no state).
PLOTLY = "application/vnd.plotly.v1+json"


def check_stored_figures(page, notebook: Path, lab: Lab) -> int:
    """Open `notebook` as stored (outputs and all, in the server's copy): each
    stored plotly figure must render and no output may show an error. Returns
    how many figures rendered."""
    outputs = [out for cell in json.loads((lab.root / notebook.name).read_text())
               ["cells"] for out in cell.get("outputs", [])]
    expected = sum(PLOTLY in out.get("data", {}) for out in outputs)
    panel = open_notebook(page, notebook.name)
    drawn = panel.locator(".jp-OutputArea .js-plotly-plot")
    wait_until(lambda: drawn.count() >= expected, DRAW_S,
               f"{expected} stored plotly figures to render")
    assert drawn.count() == expected, f"{drawn.count()} figures, {expected} stored"
    assert not error_outputs(panel), error_outputs(panel)
    return expected


def run_all_cells(page, panel, lab: Lab) -> int:
    """Run -> Run All Cells (the notebook has no outputs yet) and wait for the
    end; every code cell with code in it must have run. Returns how many did."""
    wait_until(lab.kernels_idle, KERNEL_START_S, "the kernel to start")
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")

    def counts() -> list[str]:  # textContent: no layout forced, unlike innerText
        return [t for t in prompts.all_text_contents() if re.search(r"[\d*]", t)]

    assert not counts(), f"cells ran before Run All: {counts()}"
    click_menu(page, "Run", "Run All Cells")

    def finished() -> bool:
        texts = counts()
        return bool(texts) and not any("*" in t for t in texts) and lab.kernels_idle()

    try:
        wait_until(finished, RUN_ALL_S, "all cells to run", interval=0.25)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; still running: {running_cell(panel)!r}") from None
    assert not error_outputs(panel), error_outputs(panel)
    cells = panel.locator(".jp-CodeCell").all()
    skipped = [i for i, cell in enumerate(cells)
               if not re.search(r"\d", cell.locator(".jp-InputPrompt").inner_text())
               and cell.locator(".cm-content").inner_text().strip()]
    assert not skipped, f"code cells {skipped} (0-based among code cells) did not run"
    return len(cells)


def running_cell(panel) -> str:
    """The first lines of the code cell that is running (its prompt shows *)."""
    for cell in panel.locator(".jp-CodeCell").all():
        if "*" in cell.locator(".jp-InputPrompt").inner_text():
            return cell.locator(".cm-content").inner_text()[:200]
    return "no cell shows [*]"


def open_notebook(page, name: str):
    """File -> Open from Path… `name` (in the server's root); the notebook's
    panel, once it shows its first cell."""
    click_menu(page, "File", "Open from Path…")
    page.locator(".jp-Dialog input").fill(name)
    page.locator(".jp-Dialog input").press("Enter")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
    return panel


def close_all_tabs(page) -> None:
    """File -> Close All Tabs, discarding changes if JupyterLab asks (it asks
    before it closes a notebook it marked changed)."""
    click_menu(page, "File", "Close All Tabs")
    open_panels, dialog = page.locator(".jp-NotebookPanel"), page.locator(".jp-Dialog")
    wait_until(lambda: dialog.count() or not open_panels.count(), DRAW_S,
               "the tabs to close or JupyterLab to ask")
    if dialog.count():
        dialog.locator("button", has_text="Discard").click()
        wait_until(lambda: not open_panels.count(), DRAW_S, "the tabs to close")


def click_menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel",
                 has_text=re.compile(f"^{re.escape(item)}$")).click()


#: Each plotly figure in an element: its title, traces and points, and a digest
#: of its data and layout (what it draws), so that "the figure changed" can be
#: told without comparing megabytes.
FIGURES_JS = """(root) => Array.from(root.querySelectorAll('.js-plotly-plot'))
.map(gd => {
  const layout = gd.layout || {}, traces = gd.data || [];
  const title = layout.title ? (layout.title.text ?? String(layout.title)) : '';
  let points = 0;
  for (const t of traces) {
    const column = ['x', 'y', 'values', 'z'].find(k => t[k] && t[k].length);
    points += column ? t[column].length : 0;
  }
  const skip = (key, value) =>  // not plotly's own fields, nor trace ids
    key.startsWith('_') || key === 'uid' ? undefined : value;
  let text;
  const {width, height, autosize, ...drawn} = layout;  // sized by the page
  try { text = JSON.stringify([traces, drawn], skip); }
  catch (e) { text = (gd.querySelector('svg.main-svg') || gd).outerHTML; }
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  }
  return {title, traces: traces.length, points, digest: (h >>> 0).toString(16)};
})"""


def figures(playground) -> list[dict]:
    return playground.evaluate(FIGURES_JS)


def describe(figs: list[dict]) -> str:
    return "; ".join(f"{f['title'] or '(untitled)'} [{f['traces']} traces, "
                     f"{f['points']} points, #{f['digest']}]" for f in figs)


def status_of(playground) -> str:
    """The playground's last status line (the capstone has two; its last one
    counts the runs, so it answers every action)."""
    return playground.locator(".labkit-status").last.text_content().strip()


def play(playground, lab: Lab) -> list[str]:
    """Act on one playground: click a kill switch if it has one, else choose
    another option of its first dropdown; then move its first slider one step.
    After each action wait for the answer; at the end the figure must differ
    from the one first drawn. Returns what was done and seen, one line each."""
    playground.scroll_into_view_if_needed()
    first = wait_until(lambda: figures(playground), DRAW_S, "the playground's figure")
    with contextlib.suppress(TimeoutError):  # the assert below says what was seen
        first = wait_until(lambda: all(f["traces"] for f in figures(playground))
                           and figures(playground), DRAW_S,
                           "the playground's figures to draw their traces")
    assert all(f["traces"] for f in first), (
        f"a figure of the playground stayed empty in JupyterLab: {describe(first)}")
    lines = [f"status: {status_of(playground)[:120]!r}", f"figure: {describe(first)}"]
    actions = [kill_first] if kill_buttons(playground).count() else []
    if not actions and playground.locator(".widget-dropdown select").count():
        actions.append(choose_another_option)
    if playground.locator(".widget-slider .noUi-handle").count():
        actions.append(move_slider)
    assert actions, "the playground has no kill button, dropdown or slider"
    for action in actions:
        before = (status_of(playground), figures(playground))
        did = action(playground)
        after = answer(playground, lab, before, did)
        lines += [did, f"  -> status: {after[0][:120]!r}",
                  f"  -> figure: {describe(after[1])}"]
    assert digests(figures(playground)) != digests(first), (
        f"the figure did not change: {describe(first)}")
    return lines


def digests(figs: list[dict]) -> list[str]:
    return [f["digest"] for f in figs]


def kill_buttons(playground):
    return playground.locator("button.jupyter-button",
                              has_text=re.compile(r"^\s*kill "))


def kill_first(playground) -> str:
    button = kill_buttons(playground).first
    label = button.inner_text().strip()
    button.click()
    return f"clicked {label!r}"


def choose_another_option(playground) -> str:
    dropdown = playground.locator(".widget-dropdown").first
    select = dropdown.locator("select")
    options = [" ".join(o.split()) for o in select.locator("option").all_inner_texts()]
    assert len(options) > 1, f"a dropdown with one option: {options}"
    now = select.evaluate("s => s.selectedIndex")
    pick = 1 if now == 0 else 0
    select.select_option(index=pick)
    return (f"chose {dropdown.locator('.widget-label').inner_text().strip()!r}: "
            f"{options[now]!r} -> {options[pick]!r}")


def move_slider(playground) -> str:
    """One arrow key on the first slider's handle: right, or left at the top."""
    slider = playground.locator(".widget-slider").first
    handle = slider.locator(".noUi-handle").first
    now, top = (float(handle.get_attribute(a)) for a in ("aria-valuenow",
                                                          "aria-valuemax"))
    readout = slider.locator(".widget-readout").first.inner_text().strip()
    handle.focus()
    handle.press("ArrowLeft" if now >= top else "ArrowRight")
    moved = wait_until(lambda: slider.locator(".widget-readout").first.inner_text()
                       .strip() != readout and slider.locator(".widget-readout")
                       .first.inner_text().strip(), 10, "the slider's readout to move")
    return (f"moved {slider.locator('.widget-label').first.inner_text().strip()!r}: "
            f"{readout} -> {moved}")


def answer(playground, lab: Lab, before: tuple[str, list[dict]], did: str):
    """Wait until the playground answers `did` (its status or figure differs
    from `before`) and settles (the same status and figure twice in a row
    with the kernel idle); returns (status, figures)."""
    def seen():
        return status_of(playground), digests(figures(playground))

    old = (before[0], digests(before[1]))

    def answered() -> bool:
        errors = log_errors(playground.page) + [
            t for t in playground.all_text_contents() if TRACEBACK.search(t)]
        assert not errors, f"after {did}: {errors}"
        return seen() != old

    wait_until(answered, ANSWER_S,
               f"the playground to answer: {did} (status {before[0][:80]!r})",
               interval=0.1)
    last = {"seen": None}

    def settled() -> bool:
        previous, last["seen"] = last["seen"], seen()
        return previous == last["seen"] and lab.kernels_idle()

    wait_until(settled, ANSWER_S, f"the playground to settle after: {did}",
               interval=0.25)
    return status_of(playground), figures(playground)


def screenshot(page, notebook: Path) -> Path | str:
    """The page as it is, in build/browser/<notebook>.png (never raises: it
    is taken while a failure is being reported)."""
    path = ARTEFACTS / f"{notebook.stem}.png"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True, timeout=15_000)
    except Exception as exc:  # the failure itself matters more than its picture
        return f"none ({type(exc).__name__}: {exc})"
    return path


def write_report(notebook: Path, report: list[str]) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / f"{notebook.stem}.txt").write_text("\n".join(report) + "\n")


def test_the_server_starts_again_on_another_port_if_its_port_is_taken(
        tmp_path, monkeypatch):
    # The port free_port() found is bound by someone else before the server
    # binds it: launch() must see the server exit and start it on another.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports, fresh = iter([taken.getsockname()[1]]), free_port
        monkeypatch.setattr(sys.modules[__name__], "free_port",
                            lambda: next(ports, None) or fresh())
        (tmp_path / "notebooks").mkdir()
        server = Lab(tmp_path / "notebooks", tmp_path / "home")
        try:
            server.launch()
            assert server.port != taken.getsockname()[1]
            assert server.api("GET", "/api/status")["kernels"] == 0
        finally:
            server.stop()
