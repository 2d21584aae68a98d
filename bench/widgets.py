"""Benchmark of the notebooks as a student meets them: how much CPU each cell
of Run All takes, and how long each control of every playground takes to
answer. Targets (issue "Speed"): every widget action at most 0.2 s median and
0.5 s maximum of CPU, every playground built in under 1 s, Run All at most
20 s of CPU per notebook, and any cell over 2 s showing progress.

How: each notebook runs in a fresh kernel (nbclient), with a one-line probe
cell before every code cell that records the kernel's CPU clock
(`time.process_time`, so a busy machine does not inflate it), the CPU of the
processes the kernel started and has reaped (`RUSAGE_CHILDREN`: the worker
processes of a sweep, the tuner or a real Dask cluster, once the cell that
started them has stopped them) and how many widgets exist. After the last
cell, a driver cell finds every control the notebook built (sliders,
dropdowns, toggles, check boxes, buttons: every live ipywidget a student can
change) and changes each one twice, there and back, timing the CPU its
observers spend. The probe also counts progress bars (ipywidgets
IntProgress), so a cell over 2 s that drew none is reported.
Observers run synchronously in the kernel, so that is the whole work of the
action (drawing in the browser aside). A cell's CPU, and Run All's, is the
kernel's plus its worker processes': what a student's machine spends.

Run: `.venv/bin/python bench/widgets.py [NOTEBOOK ...]` (default: every
notebook in notebooks/, labs excluded), or `make bench`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
ACTION_MEDIAN, ACTION_MAX, BUILD, RUN_ALL, SILENT = 0.2, 0.5, 1.0, 20.0, 2.0
PLAYGROUNDS = ("playground(", "panel(", "explore(")   # calls that build one

PROBE = ("import time as _bench_time, resource as _bench_r, ipywidgets as _bench_W\n"
         "from ipywidgets.widgets.widget import _instances as _bench_all\n"
         "_bench_cpu = globals().setdefault('_bench_cpu', [])\n"
         "_bench_kids = _bench_r.getrusage(_bench_r.RUSAGE_CHILDREN)\n"
         "_bench_cpu.append((_bench_time.process_time(),\n"
         "    _bench_kids.ru_utime + _bench_kids.ru_stime, len(_bench_all), sum(\n"
         "    isinstance(w, _bench_W.IntProgress)\n"
         "    for w in list(_bench_all.values()))))")

DRIVER = r'''
import json as _json, resource as _resource, time as _time
import ipywidgets as _W
from ipywidgets.widgets.widget import _instances as _all
_kids = _resource.getrusage(_resource.RUSAGE_CHILDREN)
_bench_cpu.append((_time.process_time(), _kids.ru_utime + _kids.ru_stime,  # the end
                   len(_all),                                          # of Run All
                   sum(isinstance(w, _W.IntProgress) for w in list(_all.values()))))

def _next_value(w):
    """A value one step away from w's (or None: not a control to drive)."""
    # no `disabled` at all: a style, layout or box, not a control
    if isinstance(w, (_W.IntProgress, _W.FloatProgress)) or getattr(w, "disabled", 1):
        return None
    if isinstance(w, (_W.Checkbox, _W.ToggleButton)):
        return not w.value
    if hasattr(w, "options") and isinstance(w, _W.ValueWidget):
        values = list(getattr(w, "_options_values", w.options))
        if len(values) < 2 or isinstance(w.value, tuple):
            return None
        i = values.index(w.value) if w.value in values else 0
        return values[(i + 1) % len(values)]
    if isinstance(w, (_W.IntRangeSlider, _W.FloatRangeSlider)):
        lo, hi = w.value
        step = w.step if hi + w.step <= w.max else -w.step
        return (lo, hi + step) if lo <= hi + step else None
    if isinstance(w, (_W.IntSlider, _W.FloatSlider, _W.FloatLogSlider)):
        step = w.step if w.value + w.step <= w.max else -w.step
        return w.value + step
    return None

def _cpu(action):
    start = _time.process_time()
    try:
        action()
        error = None
    except Exception as e:  # a control must never raise: report it
        error = f"{type(e).__name__}: {e}"
    return _time.process_time() - start, error

_rows = []
for _w in [w for w in list(_all.values()) if w.comm is not None]:
    _name = getattr(_w, "description", "") or type(_w).__name__
    if isinstance(_w, _W.Button):
        if getattr(_w, "disabled", False):
            continue
        for _ in range(2):
            _rows.append([f"button {_name}", *_cpu(_w.click), True])
        continue
    _value = _next_value(_w)
    if _value is None:
        continue
    for _k, _v in enumerate((_value, _w.value)):  # there and back
        _rows.append([f"{type(_w).__name__} {_name}",
                      *_cpu(lambda: setattr(_w, "value", _v)), _k == 0])
print(_json.dumps({"cells": _bench_cpu, "actions": _rows}))
'''


def measure(path: Path, timeout: int) -> dict:
    """Run `path` in a fresh kernel with the probes and the driver; return the
    probes' CPU clock readings and the driver's actions."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = []
    for cell in code:
        cells += [nbformat.v4.new_code_cell(PROBE), cell]
    cells.append(nbformat.v4.new_code_cell(DRIVER))
    nb.cells = cells
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                  if o.output_type == "stream")
    data = json.loads(out.strip().splitlines()[-1])
    data["sources"] = [c.source for c in code]
    return data


def _beside(what: str, value: float, goal: float, *, below: bool = False) -> str:
    """One figure beside its goal: "what  value s  (goal <= g s) ok/MISSED"."""
    met = value < goal if below else value <= goal
    return (f"  {what:<28} {value:7.3f} s   goal {'<' if below else '<='} "
            f"{goal:g} s   {'ok' if met else 'MISSED'}")


def report(path: Path, data: dict) -> list[str]:
    """Print one notebook's figures, each beside its goal; return the goals it
    misses."""
    marks, missed = data["cells"], []
    kernel, workers = (marks[-1][k] - marks[0][k] for k in (0, 1))
    total = kernel + workers
    print(f"\n{path.name}")
    print(_beside("Run All (CPU)", total, RUN_ALL)
          + f"   (kernel {kernel:.1f} s, worker processes {workers:.1f} s)")
    if total > RUN_ALL:
        missed.append(f"{path.stem}: Run All {total:.1f} s")
    pairs = zip(marks, marks[1:], strict=False)
    for i, ((start, kids, widgets, bars), (end, kids_after, after, bars_after)) \
            in enumerate(pairs):
        cpu, source = end - start + kids_after - kids, data["sources"][i]
        builds = after > widgets and any(call in source for call in PLAYGROUNDS)
        first = source.strip().splitlines()[0][:50] if source.strip() else ""
        if builds:
            print(_beside(f"build, cell {i + 1}", cpu, BUILD, below=True)
                  + f"   ({first})")
            if cpu >= BUILD:
                missed.append(f"{path.stem} cell {i + 1}: playground built in "
                              f"{cpu:.2f} s")
        if cpu > SILENT:
            shows = bars_after > bars             # it drew a progress bar
            print(f"  cell {i + 1:>3} {cpu:6.2f} s over {SILENT:g} s: "
                  f"{'shows progress' if shows else 'SILENT'}   ({first})")
            if not shows:
                missed.append(f"{path.stem} cell {i + 1}: {cpu:.2f} s without "
                              f"progress")
    actions = data["actions"]
    if not actions:
        return missed
    by_control: dict[str, list[float]] = {}
    for name, cpu, error, _ in actions:
        by_control.setdefault(name, []).append(cpu)
        if error:
            missed.append(f"{path.stem}: {name} raised {error}")
    times = [cpu for _, cpu, _, _ in actions]
    median, worst = statistics.median(times), max(times)
    print(f"  {len(actions)} actions on {len(by_control)} controls:")
    print(_beside("action, median (CPU)", median, ACTION_MEDIAN))
    print(_beside("action, max (CPU)", worst, ACTION_MAX))
    # A playground that caches runs answers a control moved back at once,
    # which halves the actions above that simulate: their median on its own.
    there = [cpu for _, cpu, _, first in actions if first]
    print(f"  {'first moves only, median':<28} {statistics.median(there):7.3f} s   "
          f"(each control's move away from its value, not the move back)")
    for name, cpus in sorted(by_control.items(), key=lambda kv: -max(kv[1]))[:5]:
        print(f"    {max(cpus):6.3f} s  {name}")
    if median > ACTION_MEDIAN or worst > ACTION_MAX:
        missed.append(f"{path.stem}: actions median {median:.3f} s, max {worst:.3f} s")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        default=sorted((REPO / "notebooks").glob("*.ipynb")))
    parser.add_argument("--timeout", type=int, default=600,
                        help="seconds one cell may run")
    args = parser.parse_args(argv)
    print(f"labkit widgets benchmark  (Python {platform.python_version()}); "
          f"targets: actions median <= {ACTION_MEDIAN} s and max <= {ACTION_MAX} s, "
          f"playground built < {BUILD:g} s, Run All <= {RUN_ALL:g} s CPU; "
          f"cells over {SILENT:g} s listed")
    missed = []
    for path in args.notebooks:
        missed += report(path, measure(path.resolve(), args.timeout))
    verdict = "all met" if not missed else "NOT met:\n  " + "\n  ".join(missed)
    print(f"\ntargets: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
