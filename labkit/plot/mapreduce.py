"""Views of notebook 08, MapReduce: a job's task attempts per worker over time
(a Gantt chart), and the data rates of its phases (the shape of Figure 3 of
Dean & Ghemawat's paper).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.errors import require_int
from labkit.metrics import Result

from .common import CUT, DOWN, FAINT, PALETTE, _layout, _round

#: Colours of task-attempt bars in `gantt`, by what the bar shows (legend name).
ATTEMPT_COLOURS = {"map": PALETTE[0], "shuffle": "#fdae6b", "reduce": "#e6550d",
                   "failed": CUT, "output lost": "#f4a6a6", "cancelled": DOWN,
                   "unused": FAINT, "preempted": "#c7c1e0", "unneeded": FAINT}
_OUTCOME_BAR = {"failed": "failed", "lost": "output lost", "cancelled": "cancelled",
                "unused": "unused", "preempted": "preempted", "unneeded": "unneeded"}


def _segments(attempt) -> list[tuple[str, float, float]]:
    """The bars of one task attempt: (colour key, start, end)."""
    if attempt.outcome in _OUTCOME_BAR:
        return [(_OUTCOME_BAR[attempt.outcome], attempt.start, attempt.end)]
    if attempt.phase == "map":
        return [("map", attempt.start, attempt.end)]
    return [("shuffle", attempt.start, attempt.shuffle_end),
            ("reduce", attempt.shuffle_end, attempt.end)]


def gantt(result: Result, *, title: str | None = None) -> go.Figure:
    """A MapReduce job's task attempts per worker over time (a Gantt chart):
    maps blue, a reduce's shuffle light orange and its sort/reduce/write dark
    orange, failed, lost and losing copies in red, pink and grey; backup
    copies hatched; red crosses where a worker crashed; a line at the end."""
    workers = result.data["workers"]
    bars: dict[str, list] = {key: [] for key in ATTEMPT_COLOURS}
    for attempt in result.timeline:
        for key, start, end in _segments(attempt):
            bars[key].append((attempt, start, end))
    fig = go.Figure()
    for key, items in bars.items():
        if not items:
            continue
        fig.add_bar(
            y=[a.worker for a, _, _ in items], base=_round(s for _, s, _ in items),
            x=_round(e - s for _, s, e in items), orientation="h", name=key,
            marker={"color": ATTEMPT_COLOURS[key], "line": {"width": 0.5,
                                                            "color": "white"},
                    "pattern": {"shape": ["/" if a.backup else "" for a, _, _ in
                                          items]}},
            hovertext=[f"{a.label}{' (backup)' if a.backup else ''} on {a.worker}: "
                       f"{s:.1f}–{e:.1f} s, {a.outcome}" for a, s, e in items],
            hovertemplate="%{hovertext}<extra></extra>")
    crash = result.params.get("crash") or {}
    if crash:
        fig.add_scatter(x=_round(crash.values()), y=list(crash), mode="markers",
                        name="crash", marker={"symbol": "x", "size": 12,
                                              "color": CUT})
    fig.add_vline(x=round(result.duration, 6), line={"color": "black", "width": 1,
                                                      "dash": "dot"})
    fig.update_yaxes(categoryorder="array", categoryarray=workers,
                     autorange="reversed")
    heading = title or (f"{result.params['mapper']} on {len(workers)} workers, "
                        f"M = {result.params['splits']}, "
                        f"R = {result.params['partitions']}")
    return _layout(fig, f"{heading}<br><sup>{result.data['headline']} · hatched: "
                        "backup copies</sup>", "time (s)", "",
                   barmode="overlay", height=170 + 24 * len(workers),
                   margin={"l": 60, "r": 20, "t": 80, "b": 50})


def _rate(segments: Iterable[tuple[float, float, float]],
          edges: np.ndarray) -> np.ndarray:
    """Rate per bin of amounts spread evenly over their (start, end) spans."""
    lo, hi = edges[:-1], edges[1:]
    rate = np.zeros(len(lo))
    for amount, start, end in segments:
        if end > start:
            overlap = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)
            rate += amount * overlap / (end - start)
    return rate / (hi - lo)


def _data_rates(result: Result, edges: np.ndarray) -> dict[str, np.ndarray]:
    """MB/s read by maps, fetched by reduces and written by reduces, at the
    cost model's scale (so a job reads as the size it stands for)."""
    mb = result.params["cost"].scale / 1e6
    maps = [a for a in result.timeline if a.phase == "map"]
    reduces = [a for a in result.timeline if a.phase == "reduce"]
    return {
        "input": _rate(((a.bytes_in * mb, a.start, a.end) for a in maps), edges),
        "shuffle": _rate(((a.bytes_in * mb, a.start, a.shuffle_end or a.end)
                          for a in reduces), edges),
        "output": _rate(((a.bytes_out * mb, a.shuffle_end, a.end) for a in reduces
                         if a.outcome in ("completed", "unused")), edges)}


def data_rates(runs: Mapping[str, Result], *, bins: int = 100,
               title: str = "Data rates over time") -> go.Figure:
    """The shape of Dean & Ghemawat's Figure 3: one column per run and rows for
    the rate at which maps read input, reduces fetch (shuffle) and reduces
    write output, in MB/s at the cost model's scale; a dotted line where each
    job ended."""
    bins = require_int("bins", bins, minimum=1)
    end = max(run.duration for run in runs.values())
    edges = np.linspace(0.0, end, bins + 1)
    centres = _round((edges[:-1] + edges[1:]) / 2, 3)
    rows = ("input", "shuffle", "output")
    fig = make_subplots(rows=3, cols=len(runs), shared_xaxes=True, shared_yaxes=True,
                        vertical_spacing=0.06, horizontal_spacing=0.03,
                        subplot_titles=[f"{name}: {run.duration:.0f} s"
                                        for name, run in runs.items()])
    for col, run in enumerate(runs.values(), start=1):
        rates = _data_rates(run, edges)
        for row, name in enumerate(rows, start=1):
            fig.add_scatter(x=centres, y=_round(rates[name], 3), mode="lines",
                            fill="tozeroy", line={"color": PALETTE[row - 1]},
                            name=name, legendgroup=name, showlegend=col == 1,
                            row=row, col=col)
            fig.add_vline(x=round(run.duration, 6), row=row, col=col,
                          line={"color": "black", "width": 1, "dash": "dot"})
        fig.update_xaxes(title="time (s)", row=3, col=col)
    for row, name in enumerate(rows, start=1):
        fig.update_yaxes(title=f"{name} (MB/s)", row=row, col=1)
    return _layout(fig, title, "", "", height=560,
                   margin={"l": 70, "r": 20, "t": 80, "b": 50})
