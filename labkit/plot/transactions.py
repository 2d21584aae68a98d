"""Views of notebook 06, transactions: a commit protocol's space-time diagram
with forced log writes and crash points, commit rates while a coordinator is
down, the totals an auditor reads, and the notebook's playground figure.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.metrics import Result

from .common import (
    CUT,
    DOWN,
    PALETTE,
    UP,
    _layout,
    _node_rows,
    _round,
    sequence_diagram,
    timeseries,
)

_LOG_MARK = {"symbol": "square", "size": 8, "color": "#9467bd"}


def _views_line(views: Mapping[str, str]) -> str:
    return " · ".join(f"{node}: {view}" for node, view in views.items())


def txn_timeline(result: Result, *, until: float | None = None,
                 title: str | None = None) -> go.Figure:
    """A transaction run's space-time diagram (`sequence_diagram`) with every
    forced log write as a purple square on its node's line and every named
    crash point as a red x; the subtitle says what each participant knows at
    the end. `until` defaults to just after the last thing that happened."""
    marks = [r for r in result.trace if r.event in ("send", "deliver", "log",
                                                    "crash_point", "fault")]
    if until is None:
        until = 1.05 * max((r.time for r in marks), default=result.end_time)
    views, heading = result.data.views, title or result.data.headline
    fig = sequence_diagram(result, until=until,
                           title=f"{heading}<br><sup>{_views_line(views)}</sup>")
    rows = _node_rows(result)
    for event, name, marker in (("log", "forced log write", _LOG_MARK),
                                ("crash_point", "crash point",
                                 {"symbol": "x-thin-open", "size": 16,
                                  "color": CUT, "line": {"width": 3}})):
        shown = [r for r in result.trace if r.event == event and r.time <= until]
        if shown:
            fig.add_scatter(x=_round(r.time for r in shown),
                            y=[rows[r.src] for r in shown], mode="markers",
                            name=name, marker=marker, hoverinfo="text",
                            hovertext=[f"{r.src}: {r.kind} {r.note} at "
                                       f"{r.time:.4f} s" for r in shown])
    fig.update_layout(margin={"l": 60, "r": 20, "t": 90, "b": 50})
    return fig


def commit_rates(runs: Mapping[str, Result], *, title: str = "") -> go.Figure:
    """`scenarios.blocking_window` runs side by side: commits per second of the
    transfers touching the hot row (solid) and of the rest (dotted), one colour
    per run; the first run's outage is shaded."""
    fig = go.Figure()
    for i, (name, result) in enumerate(runs.items()):
        colour = PALETTE[i % len(PALETTE)]
        for key, dash, label in (("hot", "solid", "hot row"),
                                 ("rest", "dot", "other rows")):
            series = getattr(result.data, key)
            fig.add_scatter(x=_round(series.times), y=_round(series.values, 3),
                            mode="lines", line={"color": colour, "dash": dash,
                                                "shape": "hv"},
                            name=f"{name}: {label}", legendgroup=name)
    start, end = next(iter(runs.values())).data.window
    fig.add_vrect(x0=round(start, 6), x1=round(end, 6), fillcolor=CUT,
                  opacity=0.08, line_width=0, annotation_text="coordinator down",
                  annotation_position="top left")
    return _layout(fig, title or "Commits per second while a coordinator is down",
                   "time (s)", "commits per second")


def audit_totals(runs: Mapping[str, Result], *,
                 title: str = "What a reader sees: the total of all balances"
                 ) -> go.Figure:
    """The totals an auditor read during `scenarios.audit_run`s, one line per
    run, with the true total dashed."""
    fig = timeseries({name: r.data.totals for name, r in runs.items()},
                     title=title, y="sum of all balances seen")
    for trace in fig.data:
        trace.update(mode="lines+markers", marker={"size": 4})
    expected = next(iter(runs.values())).data.expected
    fig.add_hline(y=expected, line={"dash": "dash", "color": DOWN},
                  annotation_text=f"money in the system: {expected}")
    return fig


def txn_playground(result: Result) -> go.Figure:
    """The notebook 06 playground: transaction t1's space-time diagram (first
    1.5 s: the crash and the recovery) above the commit rate of the random
    transfers that follow."""
    timeline = txn_timeline(result, until=1.5)
    fig = make_subplots(rows=2, cols=1, row_heights=[0.68, 0.32],
                        vertical_spacing=0.1,
                        subplot_titles=["t1, first 1.5 s", "commits per second"])
    for trace in timeline.data:
        fig.add_trace(trace, row=1, col=1)
    fig.update_yaxes(timeline.layout.yaxis, row=1, col=1)
    rate = result.data.rate
    fig.add_scatter(x=_round(rate.times), y=_round(rate.values, 3), mode="lines",
                    line={"shape": "hv", "color": UP}, name="commits per second",
                    row=2, col=1)
    fig.update_xaxes(title="time (s)", row=2, col=1)
    p = result.params
    return _layout(fig, f"{p['protocol']}, crash: {p['crash']}, "
                        f"{p['participants']} participants, loss {p['loss']:g}"
                        f"<br><sup>{_views_line(result.data.views)}</sup>",
                   "", "", height=620,
                   margin={"l": 60, "r": 20, "t": 90, "b": 50})
