"""Views of notebook 01, performance monitoring: latency against load with the
queueing theory beside it, the tail of a fanned-out request, coordinated
omission seen by open- and closed-loop clients, and why percentiles from
several nodes cannot be averaged.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.metrics import Result

from .common import CUT, DOWN, FAINT, PALETTE, UP, _layout, _round, _scale

_STAT_COLOURS = {"mean": PALETTE[0], "p50": PALETTE[2], "p99": PALETTE[1]}


def percentiles_vs_load(result: Result, *, unit: str = "ms", log_y: bool = False,
                        title: str | None = None) -> go.Figure:
    """Latency against utilisation: theory curves (lines, where closed forms
    exist) and simulated points (markers, at the utilisation each run measured)
    for the mean, median and p99, from `scenarios.mmc_queue` or `load_sweep`."""
    scale, curve = _scale(unit), result.data.curve
    points = result.data.points
    fig = go.Figure()
    for stat, colour in _STAT_COLOURS.items():
        if stat in curve:
            fig.add_scatter(x=curve["load"], y=_round(np.array(curve[stat]) * scale, 4),
                            mode="lines", name=f"{stat} (theory)",
                            line={"color": colour, "dash": "dot" if stat == "p50"
                                  else "solid"},
                            hovertemplate=f"theory {stat} %{{y:.3g}} {unit} at ρ = "
                                          "%{x:.2f}<extra></extra>")
        fig.add_scatter(x=_round([p["utilisation"] for p in points], 4),
                        y=_round([p[stat] * scale for p in points], 4),
                        mode="markers", name=f"{stat} (simulated)",
                        marker={"color": colour, "size": 9, "symbol": "circle-open",
                                "line": {"width": 2}},
                        hovertemplate=f"simulated {stat} %{{y:.3g}} {unit} at ρ = "
                                      "%{x:.3f}<extra></extra>")
    fig.update_yaxes(type="log" if log_y else "linear")
    what = "lines: theory · markers: simulation" if curve else \
        "no closed form for this model: simulation only"
    return _layout(fig, f"{title or result.data.model + ': latency vs load'}"
                        f"<br><sup>{what}</sup>",
                   "utilisation ρ (measured)", f"latency ({unit})",
                   xaxis_range=[0, 1])


def fan_out_tail(result: Result) -> go.Figure:
    """Share of fanned-out requests slower than the leaves' p99, against the
    fan-out: 1 - 0.99**n (line) and `scenarios.fan_out`'s measurements (markers)."""
    rows, p99 = result.data.rows, result.params["p99"]
    dense = np.unique(np.geomspace(1, max(r["fanout"] for r in rows), 60).round())
    fig = go.Figure()
    fig.add_scatter(x=_round(dense, 0), y=_round(1 - 0.99**dense, 4), mode="lines",
                    name="1 − 0.99ⁿ", line={"color": PALETTE[0]})
    fig.add_scatter(x=[r["fanout"] for r in rows],
                    y=_round([r["slow_share"] for r in rows], 4), mode="markers",
                    name="simulated", marker={"color": PALETTE[1], "size": 9})
    fig.update_xaxes(type="log")
    return _layout(fig, f"A request waits for n leaves: share slower than "
                        f"{p99:g} s", "fan-out n (leaves per request)",
                   "share of requests", yaxis_range=[0, 1])


def omission(result: Result, *, until: float = 30.0, unit: str = "ms") -> go.Figure:
    """Per-request latency against send time for the open- and closed-loop
    clients of `scenarios.coordinated_omission` (first `until` seconds), with
    each client's p99 dashed and the stalls shaded."""
    scale, p = _scale(unit), result.params
    p99 = {"open": result.data.open["p99"] * scale,
           "closed": result.data.closed["p99"] * scale}
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[
                            f"open loop, sends on schedule: p99 {p99['open']:.3g} "
                            f"{unit}", f"closed loop, waits for each reply: p99 "
                            f"{p99['closed']:.3g} {unit}"])
    for row, name in enumerate(("open", "closed"), start=1):
        series = result.metrics[f"{name}.requests"]
        times = np.array(series.times)
        shown = times < until
        fig.add_scatter(x=_round(times[shown], 4),
                        y=_round(np.array(series.values)[shown] * scale, 4),
                        mode="markers", name=name, row=row, col=1,
                        marker={"size": 4, "color": PALETTE[row - 1]},
                        hovertemplate="sent %{x:.3f} s · %{y:.3g} " + unit +
                                      "<extra></extra>")
        fig.add_hline(y=round(p99[name], 4), row=row, col=1,
                      line={"dash": "dash", "color": CUT})
        start = p["every"] - p["stall"]
        while start < until:
            fig.add_vrect(x0=round(start, 6), x1=round(start + p["stall"], 6),
                          fillcolor=FAINT, opacity=0.6, line_width=0, row=row, col=1)
            start += p["every"]
    # From a tenth of the mean service time up to past the longest stall.
    lo, hi = p["mean_service"] * scale / 10, 1.5 * p["stall"] * scale
    fig.update_yaxes(type="log", title=f"latency ({unit})",
                     range=[round(np.log10(lo), 3), round(np.log10(hi), 3)])
    fig.update_xaxes(title="send time (s)", row=2, col=1)
    return _layout(fig, "The same stalls, measured two ways<br><sup>grey: service "
                        "frozen · dashed: each client's p99</sup>",
                   "", "", showlegend=False, height=580,
                   margin={"l": 60, "r": 20, "t": 100, "b": 50})


def percentile_merge(result: Result, *, unit: str = "ms") -> go.Figure:
    """Each node's p99 (bars) beside two ways to combine them: the mean of the
    p99s (wrong) and the p99 of all requests merged (right), plus theory."""
    scale, data = _scale(unit), result.data
    nodes = list(data.node_p99)
    fig = go.Figure()
    fig.add_bar(x=nodes, y=_round([data.node_p99[n] * scale for n in nodes], 3),
                name="node p99", marker_color=PALETTE[0],
                texttemplate="%{y:.0f}", textposition="outside")
    for p99, label, colour, dash in (
            (data.mean_p99, "mean of the p99s (wrong)", PALETTE[4], "dash"),
            (data.merged_p99, "p99 of all requests (right)", UP, "solid"),
            (data.theory_p99, "theory", DOWN, "dot")):
        value = round(p99 * scale, 3)
        fig.add_scatter(x=nodes, y=[value] * len(nodes), mode="lines",
                        name=f"{label}: {value:.0f} {unit}",
                        line={"color": colour, "dash": dash, "width": 3})
    return _layout(fig, "Combining percentiles from several nodes", "node",
                   f"p99 latency ({unit})")
