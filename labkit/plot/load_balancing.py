"""Views of notebook 02, load balancing: one run of a fleet behind a balancer
(latency CDF and each server's utilisation) and the queue each server holds
over time.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.metrics import Result, TimeSeries

from .common import CUT, PALETTE, _layout, _round, latency_cdf, timeseries


def fleet(result: Result) -> go.Figure:
    """One load-balancing run (a `labkit.balancing.BalancingResult`): the latency
    CDF and each server's utilisation; killed servers red, slower ones hatched."""
    utilisation, speeds = result.utilisation, result.params["speeds"]
    killed = {r.dst for r in result.trace if r.event == "fault" and r.kind == "kill"}
    names = [f"s{i}" for i in range(len(utilisation))]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        horizontal_spacing=0.12,
                        subplot_titles=["latency CDF", "utilisation per server"])
    for trace in latency_cdf({"latency": result}, unit="s").data:
        fig.add_trace(trace, row=1, col=1)
    fig.add_bar(x=names, y=_round(utilisation, 4), row=1, col=2, showlegend=False,
                marker={"color": [CUT if n in killed else PALETTE[0] for n in names],
                        "pattern": {"shape": ["/" if s < max(speeds) else ""
                                              for s in speeds]}},
                hovertext=[f"{n}: speed {s:.3g}{', killed' if n in killed else ''}"
                           for n, s in zip(names, speeds, strict=True)],
                hovertemplate="%{hovertext}: utilisation %{y:.2f}<extra></extra>")
    fig.update_xaxes(title="latency (s)", row=1, col=1)
    fig.update_yaxes(title="share of requests ≤ x", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title="utilisation", range=[0, 1.05], row=1, col=2)
    p, latency = result.params, result.latency
    stats = (f"mean {latency.mean:.3g} s · p99 {latency.percentile(99):.3g} s · "
             if latency.count else "")
    return _layout(fig, f"{p['policy']}, {p['servers']} servers, load {p['load']:g}"
                        f"{' (overloaded)' if result.overloaded else ''}<br><sup>"
                        f"{stats}{result.failed} failed · red: killed during the run"
                        " · hatched: slower server</sup>", "", "",
                   showlegend=False, height=400,
                   margin={"l": 60, "r": 20, "t": 90, "b": 50})


def server_queues(result: Result, *, servers: Sequence[int] | None = None,
                  title: str = "Requests held by each server") -> go.Figure:
    """Each server's queue length (requests held) at the run's sample times,
    one line per server (all of them, or those listed)."""
    lengths, times = result.queue_lengths, result.sample_times
    chosen = range(lengths.shape[1]) if servers is None else servers
    series = {}
    for i in chosen:
        series[f"s{i}"] = line = TimeSeries(f"s{i}")
        for t, held in zip(times, lengths[:, i], strict=True):
            line.add(float(t), int(held))
    return timeseries(series, title=title, y="requests held")
