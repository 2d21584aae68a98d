"""Notebook 09's control panel: every knob of the capstone service, the
dashboard, and the scorecard against the SLO.

The panel answers a change in about a third of a second because it runs a
quick day by default: `duration` 30 s instead of the walk-through's 60 s, with
the fault schedule and the kill switches' crash time scaled to it (so every
fault still strikes at the same point of the day, for half as long), at the
same request rates: half the requests, half the CPU. Its scorecard shows each
figure with a 95 % interval, and `duration=60` gives the walk-through's day
exactly. Runs are cached by their knobs, and so are their dashboards, so a
knob moved back answers at once.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Iterable

import ipywidgets as W
import plotly.graph_objects as go

from labkit import plot, scenarios
from labkit.errors import checked, require_number
from labkit.metrics import Result

from .controls import NodeSwitches, _say, _status_line
from .explorer import CACHE_SIZE, Explorer, ExplorerPanel

#: The walk-through's day (`scenarios.capstone`'s default duration), the
#: panel's quick day, and when on the full day a switched-off node crashes.
FULL_DAY, QUICK_DAY, KILL_AT = 60.0, 30.0, 20.0


class CapstonePanel(ExplorerPanel):
    """The capstone's control panel: every knob of the course in one place, a
    kill/restart switch per node (a killed node crashes a third of the way
    through the day, t = 20 s of the full day, and stays down), the
    dashboard, the scorecard against `slo` with 95 % intervals, and a tuning
    `journal` that records every run. The last line (CSS class
    "labkit-status") says which run this is and whether it meets the SLO.
    `duration`: the day's length in seconds (QUICK_DAY by default; FULL_DAY
    is the walk-through's); `faults` are given on the full day's clock."""

    @checked
    def __init__(self, *, seed: int = 1, slo: scenarios.SLO | None = None,
                 faults: Iterable = scenarios.CAPSTONE_FAULTS,
                 duration: float = QUICK_DAY):
        self.slo = scenarios.SLO() if slo is None else slo
        self.journal = scenarios.TuningJournal(self.slo)
        self.scores, self.status = W.HTML(), _status_line()
        # id(run) -> (run, its dashboard): the run is kept, so its id stays its own
        self._dashboards: OrderedDict[int, tuple[Result, go.Figure]] = OrderedDict()
        self.duration = require_number("duration", duration, positive=True)
        scale = self.duration / FULL_DAY
        schedule = tuple(f._replace(at=f.at * scale, duration=f.duration * scale)
                         for f in map(scenarios.as_capstone_fault, faults))
        self.kill_at = KILL_AT * scale
        start = scenarios.CAPSTONE_START
        first = {"policy": ["round_robin", "least_outstanding", "p2c", "random",
                            "consistent_hash"],
                 "jitter": ["none", "full", "equal", "exponential", "decorrelated"],
                 "breaker": ["none", "hystrix", "resilience4j"]}
        self.explorer = Explorer(scenarios.capstone, self._view, {
            "timeout": (0.05, 2.0, 0.05, start["timeout"]),
            "attempts": (1, 5, 1, start["attempts"]),
            "election_timeout": (0.05, 3.0, 0.05, start["election_timeout"]),
            "replication": (1, 5, 1, start["replication"]),
            "r": (1, 5, 1, start["r"]), "w": (1, 5, 1, start["w"]),
            **first, "budget": start["budget"], "hedging": start["hedging"],
            "seed": seed, "faults": schedule, "duration": self.duration,
            "kill_at": self.kill_at, "kill": ()})   # "kill": so the first run's
                                                    # key is that of no switch on
        self.switches = NodeSwitches()
        self.explorer.controls["kill"] = self.switches
        self.switches.observe(lambda _change: self.explorer.refresh(), names="value")
        knobs = [w for name, w in self.explorer.controls.items() if name != "kill"]
        grid = W.GridBox(knobs, layout=W.Layout(
            grid_template_columns="repeat(3, minmax(0, 1fr))"))
        self.box = W.VBox([self.switches, grid, self.explorer.figure,
                           self.explorer.status, self.scores, self.status])

    def _view(self, result: Result) -> go.Figure:
        """Record the run, score it, and draw its dashboard."""
        entry = self.journal.record(result)
        day = (f"a quick day of {self.duration:g} s (the walk-through's is "
               f"{FULL_DAY:g} s): the faults at the same points of the day, for "
               f"{self.duration / FULL_DAY:.0%} as long" if self.duration != FULL_DAY
               else "the walk-through's day")
        table = scenarios.scorecard(result, self.slo, interval=True).to_html()
        self.scores.value = (f"<p>Scorecard of one seed on {html.escape(day)}; "
                             f"intervals: the sampling error of its requests."
                             f"</p>{table}")
        _say(self.status, f"run {entry.run}: {scenarios.verdict(result, self.slo)}",
             warning=not entry.meets_slo)
        return self._dashboard(result)

    def _dashboard(self, result: Result) -> go.Figure:
        """The run's dashboard, drawn once per run the explorer keeps: a knob
        moved back brings back the same run, and drawing it is most of what
        an answer from the cache costs (50 of 80 ms)."""
        kept = self._dashboards.get(id(result))
        if kept is not None:
            self._dashboards.move_to_end(id(result))
            return kept[1]
        figure = plot.capstone_dashboard(result, p99_ms=self.slo.p99_ms)
        self._dashboards[id(result)] = (result, figure)
        if len(self._dashboards) > CACHE_SIZE:
            self._dashboards.popitem(last=False)
        return figure

    @property
    def controls(self) -> dict[str, W.ValueWidget]:
        return self.explorer.controls

    def __repr__(self) -> str:
        return (f"CapstonePanel({len(self.journal)} runs, {self.duration:g} s day, "
                f"{self.slo})")


@checked
def capstone_panel(*, seed: int = 1, slo: scenarios.SLO | None = None,
                   faults: Iterable = scenarios.CAPSTONE_FAULTS,
                   duration: float = QUICK_DAY) -> CapstonePanel:
    """The notebook 09 control panel over `scenarios.capstone` (see
    CapstonePanel); starts at the walk-through's starting configuration, on a
    quick day of `duration` seconds (FULL_DAY: the walk-through's day)."""
    return CapstonePanel(seed=seed, slo=slo, faults=faults, duration=duration)
