"""Views of notebook 02, load balancing: one run of a fleet behind a balancer
(latency CDF and each server's busy share while requests arrive) and the queue
each server holds over time. Servers are named s1..sN (the simulator numbers
them from 0), as in notebooks 07 and 09.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.metrics import Result, TimeSeries
from labkit.scenarios.load_balancing import busy_share, duration_text

from .common import CUT, PALETTE, _layout, _round, latency_cdf, timeseries


def fleet(result: Result) -> go.Figure:
    """One load-balancing run (a `labkit.balancing.BalancingResult`): the latency
    CDF on a log axis (a slow server's backlog can make the tail thousands of
    times the median) and each server's busy share while requests arrive
    (`scenarios.load_balancing.busy_share`; the hover adds its share of the
    whole run, drain included); killed servers red, slower ones hatched."""
    busy, whole = busy_share(result), result.utilisation
    speeds = result.params["speeds"]
    killed = {s for _, verb, s in result.params["faults"] if verb == "kill"}
    names = [f"s{i + 1}" for i in range(len(whole))]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        horizontal_spacing=0.12,
                        subplot_titles=["latency CDF",
                                        "busy share while requests arrive"])
    for trace in latency_cdf({"latency": result}, unit="s").data:
        fig.add_trace(trace, row=1, col=1)
    run = f"0–{result.end_time:,.0f} s"
    fig.add_bar(x=names, y=_round(busy.shares, 4), row=1, col=2, showlegend=False,
                marker={"color": [CUT if i in killed else PALETTE[0]
                                  for i in range(len(names))],
                        "pattern": {"shape": ["/" if s < max(speeds) else ""
                                              for s in speeds]}},
                hovertext=[f"{n}: speed {s:.3g}{', killed' if i in killed else ''}; "
                           f"busy {u:.0%} of the whole run ({run})"
                           for i, (n, s, u) in enumerate(zip(names, speeds, whole,
                                                             strict=True))],
                hovertemplate="%{hovertext}; %{y:.0%} while requests arrive"
                              "<extra></extra>")
    fig.update_xaxes(title="latency (s, log scale)", type="log", row=1, col=1)
    fig.update_yaxes(title="share of requests ≤ x", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title=busy.window, tickformat=".0%", range=[0, 1.05],
                     row=1, col=2)
    p, latency = result.params, result.latency
    stats = (f"mean {duration_text(latency.mean)} · "
             f"p99 {duration_text(latency.percentile(99))} · "
             if latency.count else "")
    return _layout(fig, f"{p['policy']}, {p['servers']} servers, load {p['load']:g}"
                        f"{' (overloaded)' if result.overloaded else ''}<br><sup>"
                        f"{stats}{result.failed} failed<br>bars: share of "
                        f"{busy.samples:,} samples in {busy.start:,.0f}–"
                        f"{busy.end:,.0f} s at which a server held a request · "
                        "red: killed · hatched: slower</sup>", "", "",
                   showlegend=False, height=445,
                   margin={"l": 60, "r": 20, "t": 125, "b": 50})


def server_queues(result: Result, *, servers: Sequence[int] | None = None,
                  title: str = "Requests held by each server") -> go.Figure:
    """Each server's queue length (requests held) at the run's sample times,
    one line per server (all of them, or those listed by index from 0: index i
    is server s(i + 1))."""
    lengths, times = result.queue_lengths, result.sample_times
    chosen = range(lengths.shape[1]) if servers is None else servers
    series = {}
    for i in chosen:
        series[f"s{i + 1}"] = line = TimeSeries(f"s{i + 1}")
        for t, held in zip(times, lengths[:, i], strict=True):
            line.add(float(t), int(held))
    return timeseries(series, title=title, y="requests held")
