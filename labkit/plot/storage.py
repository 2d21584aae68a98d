"""Views of notebook 07, distributed storage: the playground's dashboard of
latency, load per chunk server, re-replication and stale quorum reads.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.metrics import Result

from .common import CUT, DOWN, FAINT, PALETTE, _layout, _round, latency_cdf


def storage_dashboard(result: Result) -> go.Figure:
    """A `scenarios.storage_playground` run in four panels: latency CDFs of
    uploads and downloads on a log axis (a call costs 6 ms when all is well,
    50 ms more per timeout on a dead server, hundreds during an election: a log
    axis spaces those steps evenly), each chunk server's bytes and requests, the
    under-replicated chunks the janitor counted over time (the dotted line marks
    the faults at t = 1 s), and the stale-read share of the quorum store beside
    its closed form."""
    fig = make_subplots(rows=2, cols=2, vertical_spacing=0.2, horizontal_spacing=0.12,
                        subplot_titles=["latency CDF", "load per chunk server",
                                        "under-replicated chunks",
                                        "stale reads, random partial quorums"])
    hists = {what: result.metrics[f"{what}.latency"] for what in ("upload", "download")
             if f"{what}.latency" in result.metrics}
    for trace in latency_cdf(hists).data:
        fig.add_trace(trace, row=1, col=1)
    for i, (label, values) in enumerate(result.data.loads.items()):
        fig.add_bar(x=list(values), y=_round(values.values(), 3), name=label,
                    marker_color=PALETTE[2 + i], row=1, col=2)
    series = result.metrics["under_replicated"]
    fig.add_scatter(x=_round(series.times), y=list(series.values), mode="lines",
                    line_shape="hv", name="under-replicated", row=2, col=1,
                    line={"color": CUT})
    fig.add_vline(x=1.0, line={"dash": "dot", "color": DOWN}, row=2, col=1)
    p = result.params
    fig.add_bar(x=["measured", "C(N−W,R)/C(N,R)"],
                y=_round([result.data.stale, result.data.stale_theory], 4),
                marker_color=[PALETTE[0], FAINT], marker_line_color=PALETTE[0],
                marker_line_width=1.5, showlegend=False, row=2, col=2,
                texttemplate="%{y:.2f}", textposition="outside")
    fig.update_xaxes(title="latency (ms, log scale)", type="log", row=1, col=1)
    fig.update_yaxes(title="share ≤ x", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title="time (s)", row=2, col=1)
    fig.update_yaxes(title="chunks", row=2, col=1)
    fig.update_yaxes(title=f"N={p['replication']}, R={p['r']}, W={p['w']}",
                     range=[0, 1.1], row=2, col=2)
    calls = result.data.calls
    done = ", ".join(f"{what}s {c['ok']} ok / {c['Unavailable']} refused"
                     for what, c in calls.items())
    return _layout(fig, f"{p['nodes']} chunk servers, {p['replication']} copies, "
                        f"W = {p['write_quorum']}<br><sup>{done}</sup>", "", "",
                   height=640, barmode="group",
                   margin={"l": 60, "r": 20, "t": 90, "b": 50})
