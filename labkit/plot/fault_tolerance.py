"""Views of notebook 03, fault tolerance: runs of `labkit.resilience.simulate`
against time (success rate, copies per request, p99, goodput, backend load,
circuit-breaker state), with the injected faults shaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.errors import ConfigError
from labkit.metrics import Result

from .common import CUT, PALETTE, _layout, _round

_TIMELINE_ROWS = {"success_rate": ("success rate", [0, 1.05]),
                  "amplification": ("copies per request", None),
                  "p99": ("p99 latency (ms)", None),
                  "goodput": ("goodput (req/s)", None),
                  "backend.load": ("backend load (req/s)", None),
                  "breaker": ("breaker", [-0.2, 2.2])}
_BREAKER_TICKS = {"tickvals": [0, 1, 2], "ticktext": ["closed", "half-open", "open"]}


def resilience_timeline(runs: Result | Mapping[str, Result], *,
                        rows: Sequence[str] = ("success_rate", "amplification",
                                               "p99", "breaker"),
                        title: str | None = None) -> go.Figure:
    """Runs of `labkit.resilience.simulate` against time, one colour per run and
    one panel per metric in `rows` (success_rate, amplification, p99, goodput,
    backend.load, breaker); the first run's fault windows are shaded."""
    if isinstance(runs, Result):
        runs = {runs.data.get("label", "run"): runs}
    unknown = [r for r in rows if r not in _TIMELINE_ROWS]
    if unknown or not rows:
        raise ConfigError(f"rows must be some of {list(_TIMELINE_ROWS)}, got {rows}")
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True,
                        vertical_spacing=0.05)
    for i, (name, result) in enumerate(runs.items()):
        colour = PALETTE[i % len(PALETTE)]
        for row, metric in enumerate(rows, start=1):
            series = result.metrics[metric]
            values = np.array(series.values, dtype=float)
            times = list(series.times)
            if metric == "p99":
                values = values * 1e3
            if metric == "breaker":
                if not times:
                    continue                # this run has no breaker
                times.append(result.params["duration"])
                values = np.append(values, values[-1])
            fig.add_scatter(x=_round(times, 4),
                            y=[None if v != v else round(float(v), 4) for v in values],
                            mode="lines", name=name, legendgroup=name,
                            showlegend=row == 1, row=row, col=1,
                            line={"color": colour,
                                  "shape": "hv" if metric == "breaker" else "linear"})
    for row, metric in enumerate(rows, start=1):
        label, span = _TIMELINE_ROWS[metric]
        fig.update_yaxes(title=label, range=span, row=row, col=1,
                         **(_BREAKER_TICKS if metric == "breaker" else {}))
    first = next(iter(runs.values()))
    end = first.params["duration"]
    for fault in first.params["faults"]:
        fig.add_vrect(x0=round(fault.start, 6), x1=round(min(fault.end, end), 6),
                      fillcolor=CUT, opacity=0.08, line_width=0)
    fig.update_xaxes(title="time (s)", row=len(rows), col=1)
    faults = ", ".join(f"{f.mode} {f.severity:g} from {f.start:g} s" for f in
                       first.params["faults"]) or "no faults"
    return _layout(fig, f"{title or 'Over time'}<br><sup>shaded: {faults}</sup>",
                   "", "", height=150 + 170 * len(rows),
                   margin={"l": 70, "r": 20, "t": 80, "b": 50})
