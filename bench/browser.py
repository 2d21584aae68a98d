"""Benchmark of what a student's browser pays for the playgrounds: JupyterLab
in headless Chromium (the browser test's set-up, tests/test_browser.py) runs
the playground cells of each notebook and plays with them, one notebook after
another on one page, as a student working through the course would. Printed:
the page's JavaScript heap after a garbage collection, once the playgrounds
are drawn and again once the notebook is closed (what it keeps), and the CPU
of Chromium's renderer.

The reference runs in the same process, after labkit's own (so that what a
browser pays once, such as compiling JupyterLab's code, falls on labkit): the
same notebooks on a fresh page, with the playgrounds drawing in plotly's own
`go.FigureWidget`, which sends its 5 MB front end (plotly.js included) with
every figure; labkit's `LiveFigure` sends it once per kernel, and the page
evaluates it once.

Needs Chromium and Playwright (`.ci/run` installs Chromium); without them it
says so and stops. Run:
`.venv/bin/python bench/browser.py [NOTEBOOK ...]` (default: 05 and 00, three
live figures each), or `make bench`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_browser as tb  # noqa: E402
from playground_cells import playground_copy  # noqa: E402

DEFAULT = ("05_raft.ipynb", "00_simulator_tour.ipynb")
#: The reference: a first cell that makes the playgrounds draw in plotly's own
#: FigureWidget (a benchmark's swap, in the kernel of the copy only).
PLOTLYS_OWN = ("import plotly.graph_objects as go\n"
               "import labkit.widgets.cluster, labkit.widgets.explorer\n"
               "labkit.widgets.cluster.LiveFigure = go.FigureWidget\n"
               "labkit.widgets.explorer.LiveFigure = go.FigureWidget")


def renderer_cpu() -> float:
    """CPU seconds of this process's Chromium renderers, live ones."""
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            if "--type=renderer" in " ".join(p.cmdline()):
                total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def with_first_cell(path: Path, source: str) -> None:
    nb = json.loads(path.read_text())
    nb["cells"].insert(0, {"cell_type": "code", "execution_count": None,
                           "metadata": {}, "outputs": [], "source": source})
    path.write_text(json.dumps(nb))


def course(window, lab, notebooks: list[str], swap: str | None) -> list[tuple]:
    """Play the notebooks' playgrounds on a fresh page; one row per notebook:
    (name, heap MB drawn, heap MB closed, renderer CPU s)."""
    window.discard()
    page = window.page()
    cdp = page.context.new_cdp_session(page)

    def heap() -> float:
        cdp.send("HeapProfiler.collectGarbage")
        return cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6

    rows, cpu = [("(JupyterLab booted)", heap(), heap(), 0.0)], renderer_cpu()
    for name in notebooks:
        copy, _, _ = playground_copy(lab.root / name)
        if swap:
            with_first_cell(copy, swap)
        panel = tb.open_notebook(page, copy.name)
        tb.run_all_cells(page, panel, lab)
        playgrounds = panel.locator(".jp-OutputArea-output:has(.labkit-status)")
        for i in range(playgrounds.count()):
            tb.play(playgrounds.nth(i), lab)
        drawn = heap()
        tb.close_all_tabs(page)
        lab.xsrf = window.xsrf()
        tb.no_kernel_left(lab, "the notebook's kernel")
        rows.append((name, drawn, heap(), renderer_cpu() - cpu))
        cpu = renderer_cpu()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", default=DEFAULT)
    args = parser.parse_args(argv)
    if not (Path(tb.CHROMIUM).exists() and importlib.util.find_spec("playwright")):
        print("labkit browser benchmark: skipped, it needs Chromium "
              "(apt-get install -y chromium) and Playwright (requirements-dev.txt)")
        return 0
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    shutil.copytree(REPO / "notebooks", root / "copy" / "notebooks")
    shutil.copytree(REPO / "data", root / "copy" / "data")
    lab = tb.Lab(root / "copy" / "notebooks", root / "home")
    lab.xsrf = None
    try:
        lab.launch()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=tb.CHROMIUM,
                                        args=tb.CHROMIUM_ARGS)
            window = tb.Window(browser, lab)
            results = {label: course(window, lab, args.notebooks, swap)
                       for label, swap in (("LiveFigure", None),
                                           ("plotly's FigureWidget", PLOTLYS_OWN))}
            window.discard()
            browser.close()
    finally:
        lab.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("labkit browser benchmark: JupyterLab's JS heap (MB, after a garbage "
          "collection) and Chromium's renderer CPU, the notebooks played in turn")
    for label, rows in results.items():
        print(f"\n{label}\n  {'notebook':32s} {'heap drawn':>10s} {'closed':>8s} "
              f"{'renderer CPU':>13s}")
        for name, drawn, closed, cpu in rows:
            print(f"  {name:32s} {drawn:10.1f} {closed:8.1f} {cpu:12.1f}s")
    (heap, cpu), (heap_ref, cpu_ref) = (
        (rows[-1][2], sum(row[3] for row in rows))
        for rows in (results["LiveFigure"], results["plotly's FigureWidget"]))
    print(f"\nLiveFigure / plotly's FigureWidget: heap kept after the last notebook "
          f"{heap:.1f} / {heap_ref:.1f} MB ({heap / heap_ref:.2f}x), renderer CPU "
          f"{cpu:.1f} / {cpu_ref:.1f} s ({cpu / cpu_ref:.2f}x)")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    status = main()
    print(f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(status)
