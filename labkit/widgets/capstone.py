"""Notebook 09's control panel: every knob of the capstone service, the
dashboard, and the scorecard against the SLO.
"""

from __future__ import annotations

from collections.abc import Iterable

import ipywidgets as W
import plotly.graph_objects as go

from labkit import plot, scenarios
from labkit.metrics import Result

from .controls import NodeSwitches, _say, _status_line
from .explorer import Explorer, ExplorerPanel


class CapstonePanel(ExplorerPanel):
    """The capstone's control panel: every knob of the course in one place, a
    kill/restart switch per node (a killed node crashes at t = 20 s and stays
    down), the dashboard, the scorecard against `slo`, and a tuning `journal`
    that records every run. The last line (CSS class "labkit-status") says
    which run this is and whether it meets the SLO."""

    def __init__(self, *, seed: int = 1, slo: scenarios.SLO | None = None,
                 faults: Iterable = scenarios.CAPSTONE_FAULTS):
        self.slo = scenarios.SLO() if slo is None else slo
        self.journal = scenarios.TuningJournal(self.slo)
        self.scores, self.status = W.HTML(), _status_line()
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
            "seed": seed, "faults": tuple(faults)})
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
        self.scores.value = scenarios.scorecard(result, self.slo).to_html()
        _say(self.status, f"run {entry.run}: {scenarios.verdict(result, self.slo)}",
             warning=not entry.meets_slo)
        return plot.capstone_dashboard(result, p99_ms=self.slo.p99_ms)

    @property
    def controls(self) -> dict[str, W.ValueWidget]:
        return self.explorer.controls

    def __repr__(self) -> str:
        return f"CapstonePanel({len(self.journal)} runs, {self.slo})"


def capstone_panel(*, seed: int = 1, slo: scenarios.SLO | None = None,
                   faults: Iterable = scenarios.CAPSTONE_FAULTS) -> CapstonePanel:
    """The notebook 09 control panel over `scenarios.capstone` (see
    CapstonePanel); starts at the walk-through's starting configuration."""
    return CapstonePanel(seed=seed, slo=slo, faults=faults)
