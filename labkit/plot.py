"""Plotly figures of simulation results (the only module besides widgets that
imports plotly or networkx).

Every function returns a `go.Figure` built only from its arguments: no random
ids, numbers rounded, so a notebook that stores the figure stores the same JSON
on every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Histogram, Result, TimeSeries, TraceRecord

UP, DOWN, CUT, LINK, FAINT = "#2ca02c", "#7f7f7f", "#d62728", "#c7c7c7", "#e5e5e5"
PALETTE = qualitative.Plotly
UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def _layout(fig: go.Figure, title: str, x: str, y: str, **more) -> go.Figure:
    """The house style: white template, small margins, titled axes."""
    style = {"template": "plotly_white", "height": 380, "hovermode": "closest",
             "margin": {"l": 60, "r": 20, "t": 60, "b": 50}}
    fig.update_layout(title=title, **{**style, **more})
    if x:
        fig.update_xaxes(title=x)
    if y:
        fig.update_yaxes(title=y)
    return fig


def _round(values: Iterable, digits: int = 6) -> list:
    """Plain numbers rounded for stable, small stored JSON (ints and None pass
    through)."""
    return [v if v is None or type(v) is int else round(float(v), digits)
            for v in values]


def _scale(unit: str) -> float:
    if unit not in UNITS:
        raise ConfigError(f"unit must be one of {list(UNITS)}, got {unit!r}")
    return UNITS[unit]


def _histograms(hists, metric: str = "latency") -> dict[str, Histogram]:
    """{name: Histogram} from a Histogram, or a mapping of Histograms or Results
    (a Result contributes its histogram called `metric`)."""
    if isinstance(hists, Histogram):
        return {hists.name: hists}
    if not isinstance(hists, Mapping):
        raise TypeError(f"expected a Histogram or a dict of them, got {hists!r}")
    out = {}
    for name, item in hists.items():
        if isinstance(item, Result):
            item = item.metrics[metric]
        if not isinstance(item, Histogram):
            raise TypeError(f"{name!r}: expected a Histogram or a Result, got {item!r}")
        out[str(name)] = item
    return out


def latency_hist(hists: Histogram | Mapping[str, Histogram], *, bins: int = 40,
                 unit: str = "ms", upto: float = 99.5,
                 title: str = "Latency distribution") -> go.Figure:
    """One histogram per row (share of values per bin), on a common x axis from 0
    to the `upto` percentile of all values, so the shapes can be compared."""
    hists, scale = _histograms(hists), _scale(unit)
    bins = require_int("bins", bins, minimum=1)
    filled = [h for h in hists.values() if h.count]
    top = max((h.percentile(upto) for h in filled), default=0.0) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    centres = _round((edges[:-1] + edges[1:]) / 2 * scale, 4)
    fig = make_subplots(rows=len(hists), cols=1, shared_xaxes=True,
                        subplot_titles=list(hists), vertical_spacing=0.06)
    for row, (name, h) in enumerate(hists.items(), start=1):
        counts, _ = np.histogram(h.values, bins=edges)
        fig.add_bar(x=centres, y=_round(counts / max(h.count, 1), 5), name=name,
                    marker_color=PALETTE[(row - 1) % len(PALETTE)], row=row, col=1,
                    hovertemplate=f"{name}: %{{y:.3f}} near %{{x:.3g}} {unit}"
                                  "<extra></extra>")
    fig.update_xaxes(title=f"latency ({unit})", row=len(hists), col=1)
    return _layout(fig, f"{title}<br><sup>x axis ends at p{upto:g} of all values"
                        "</sup>", "", "", showlegend=False, bargap=0.05,
                   height=120 + 130 * len(hists))


def latency_cdf(runs: Mapping[str, Histogram | Result], *, metric: str = "latency",
                unit: str = "ms", log_x: bool = False, points: int = 200,
                title: str = "Latency CDF") -> go.Figure:
    """Empirical CDF per run: share of values at or below x. At most `points`
    points per curve, always including the maximum (where the curve reaches 1)."""
    hists, scale = _histograms(runs, metric), _scale(unit)
    points = require_int("points", points, minimum=2)
    fig = go.Figure()
    for name, h in hists.items():
        values = h.sorted()
        n = len(values)
        ranks = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
        fig.add_scatter(x=_round(values[ranks] * scale, 4), y=_round((ranks + 1) / n),
                        name=name, mode="lines", line_shape="hv",
                        hovertemplate=f"{name}: %{{y:.3f}} at or below %{{x:.3g}} "
                                      f"{unit}<extra></extra>")
    fig.update_xaxes(type="log" if log_x else "linear")
    return _layout(fig, title, f"{metric} ({unit})", "share of values ≤ x",
                   yaxis_range=[0, 1.02])


def timeseries(series: Mapping[str, TimeSeries], *, title: str = "",
               y: str = "value") -> go.Figure:
    """One line per series against simulated time."""
    fig = go.Figure()
    for name, s in series.items():
        if not isinstance(s, TimeSeries):
            raise TypeError(f"{name!r}: expected a TimeSeries, got {s!r}")
        fig.add_scatter(x=_round(s.times), y=_round(s.values), name=name,
                        mode="lines")
    return _layout(fig, title, "time (s)", y)


def bars(groups: Mapping[str, Mapping[str, float]], *, title: str = "",
         x: str = "", y: str = "count") -> go.Figure:
    """Grouped bars: one colour per outer key, one bar group per inner key,
    e.g. {"delivered": {"n1": 40, ...}, "dropped": {...}}."""
    fig = go.Figure()
    for i, (name, values) in enumerate(groups.items()):
        fig.add_bar(x=list(values), y=_round(values.values(), 4), name=name,
                    marker_color=PALETTE[i % len(PALETTE)],
                    texttemplate="%{y}", textposition="outside")
    return _layout(fig, title, x, y, barmode="group")


def topology(names: Sequence[str], up: Iterable[str],
             cuts: Iterable[tuple[str, str]] = (), *,
             title: str = "Cluster") -> go.Figure:
    """Nodes on a circle (networkx circular layout, fixed by the order of `names`),
    green when up and grey when down; a link is red and dashed when either
    direction is cut."""
    graph = nx.complete_graph(list(names))
    pos = {n: _round(xy, 4) for n, xy in nx.circular_layout(graph).items()}
    cut = {frozenset(pair) for pair in cuts}
    fig = go.Figure()
    for is_cut, colour, dash in ((False, LINK, "solid"), (True, CUT, "dash")):
        xs, ys = [], []
        for a, b in graph.edges():
            if (frozenset((a, b)) in cut) == is_cut:
                xs += [pos[a][0], pos[b][0], None]
                ys += [pos[a][1], pos[b][1], None]
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip",
                        name="cut link" if is_cut else "link",
                        line={"color": colour, "dash": dash, "width": 2})
    live = set(up)
    state = ["up" if n in live else "down" for n in names]
    fig.add_scatter(x=[pos[n][0] for n in names], y=[pos[n][1] for n in names],
                    mode="markers+text", text=list(names), name="nodes",
                    hovertext=[f"{n}: {s}" for n, s in zip(names, state, strict=True)],
                    hoverinfo="text", textfont={"color": "white"},
                    marker={"size": 38, "color": [UP if s == "up" else DOWN
                                                  for s in state]})
    fig.update_xaxes(visible=False, range=[-1.3, 1.3])
    fig.update_yaxes(visible=False, range=[-1.3, 1.3], scaleanchor="x")
    return _layout(fig, title, "", "", showlegend=False, width=380)


def _node_rows(result: Result) -> dict[str, int]:
    """Row of each node: the result's `names` if it lists them, else the order in
    which nodes first appear in the trace."""
    names = list(result.data.get("names", ()))
    for r in result.trace:
        names += [n for n in (r.src, r.dst) if n != "*" and n not in names]
    return {n: i for i, n in enumerate(names)}


def sequence_diagram(result: Result, *, until: float | None = None,
                     kinds: Iterable[str] | None = None,
                     max_messages: int = 300, title: str | None = None) -> go.Figure:
    """Space-time diagram of a run: one horizontal line per node, one arrow per
    delivered message from (send time, sender) to (delivery time, receiver), an x
    where each dropped message died, circles for timers, diamonds for crashes and
    restarts, dotted verticals for partitions and heals. Only the first
    `max_messages` messages sent (of `kinds`, up to `until`) are drawn."""
    end = result.end_time if until is None else require_number("until", until)
    max_messages = require_int("max_messages", max_messages, minimum=1)
    wanted = None if kinds is None else set(kinds)
    rows = _node_rows(result)
    records = [r for r in result.trace if r.time <= end]
    sends = {r.msg: r for r in records if r.event == "send"
             and (wanted is None or r.kind in wanted)}
    kept = dict(list(sends.items())[:max_messages])
    fig = go.Figure()
    fig.add_scatter(x=[v for _ in rows for v in (0.0, round(end, 6), None)],
                    y=[v for row in rows.values() for v in (row, row, None)],
                    mode="lines", line={"color": FAINT, "width": 1},
                    hoverinfo="skip", showlegend=False)
    _add_messages(fig, records, kept, rows)
    _add_drops(fig, records, kept, rows)
    _add_events(fig, records, rows)
    note = f" (first {len(kept)} of {len(sends)} messages)" if len(kept) < len(
        sends) else ""
    return _layout(fig, title or f"Space-time diagram: {result.scenario}, seed "
                   f"{result.seed}{note}", "time (s)", "",
                   yaxis={"tickvals": list(rows.values()), "ticktext": list(rows),
                          "autorange": "reversed", "zeroline": False},
                   height=160 + 50 * len(rows))


def _add_messages(fig: go.Figure, records: list[TraceRecord],
                  kept: Mapping[int, TraceRecord], rows: Mapping[str, int]) -> None:
    """One trace per message kind: a segment with an arrowhead per delivery."""
    by_kind: dict[str, tuple[list, list, list]] = {}
    for r in records:
        if r.event != "deliver" or r.msg not in kept:
            continue
        sent = kept[r.msg]
        xs, ys, texts = by_kind.setdefault(r.kind, ([], [], []))
        xs += [sent.time, r.time, None]
        ys += [rows[r.src], rows[r.dst], None]
        label = (f"{r.kind} {r.src}→{r.dst}<br>sent {sent.time:.4f} s, "
                 f"delivered {r.time:.4f} s")
        texts += [label, label, None]
    for i, (kind, (xs, ys, texts)) in enumerate(by_kind.items()):
        fig.add_scatter(x=_round(xs), y=ys, hovertext=texts, hoverinfo="text",
                        mode="lines+markers", name=kind,
                        line={"color": PALETTE[i % len(PALETTE)], "width": 1.5},
                        marker={"symbol": "arrow", "angleref": "previous",
                                "size": [0, 10, 0] * (len(xs) // 3)})


def _add_drops(fig: go.Figure, records: list[TraceRecord],
               kept: Mapping[int, TraceRecord], rows: Mapping[str, int]) -> None:
    """An x where each dropped message died: on the receiver's line if it died
    on arrival, 40% of the way from the sender's line to the receiver's if it
    never left (lost, or sent across a partition)."""
    xs, ys, texts, path_x, path_y = [], [], [], [], []
    for r in records:
        if r.event != "drop" or r.msg not in kept:
            continue
        sent = kept[r.msg]
        src, dst = rows[r.src], rows[r.dst]
        y = dst if r.time > sent.time else src + 0.4 * (dst - src)
        xs.append(r.time)
        ys.append(y)
        texts.append(f"{r.kind} {r.src}→{r.dst} dropped: {r.note} "
                     f"at {r.time:.4f} s")
        path_x += [sent.time, r.time, None]
        path_y += [src, y, None]
    if not xs:
        return
    fig.add_scatter(x=_round(path_x), y=path_y, mode="lines", hoverinfo="skip",
                    line={"color": CUT, "dash": "dot", "width": 1},
                    showlegend=False)
    fig.add_scatter(x=_round(xs), y=ys, hovertext=texts, hoverinfo="text",
                    mode="markers", name="dropped",
                    marker={"symbol": "x", "size": 10, "color": CUT})


def _add_events(fig: go.Figure, records: list[TraceRecord],
                rows: Mapping[str, int]) -> None:
    """Timers and node faults as markers on their node's line; cluster-wide faults
    (partition, heal) as dotted vertical lines."""
    styles = {"timer": ("circle-open", 6, DOWN), "fault": ("diamond", 11, "black")}
    for event, (symbol, size, colour) in styles.items():
        mine = [r for r in records if r.event == event and r.src in rows]
        if mine:
            fig.add_scatter(x=_round(r.time for r in mine),
                            y=[rows[r.src] for r in mine], mode="markers",
                            hovertext=[f"{r.src} {event} {r.kind} at {r.time:.4f} s"
                                       for r in mine], hoverinfo="text",
                            name=event, marker={"symbol": symbol, "size": size,
                                                "color": colour})
    for r in records:
        if r.event == "fault" and r.src == "*":
            fig.add_vline(x=round(r.time, 6), line={"dash": "dot", "color": CUT},
                          annotation_text=r.kind, annotation_position="top")


# -- 01 performance monitoring ----------------------------------------------------

_STAT_COLOURS = {"mean": PALETTE[0], "p50": PALETTE[2], "p99": PALETTE[1]}


def percentiles_vs_load(result: Result, *, unit: str = "ms", log_y: bool = False,
                        title: str | None = None) -> go.Figure:
    """Latency against utilisation: theory curves (lines, where closed forms
    exist) and simulated points (markers, at the utilisation each run measured)
    for the mean, median and p99, from `scenarios.mmc_queue` or `load_sweep`."""
    scale, curve = _scale(unit), result.data.get("curve", {})
    points = result.data["points"]
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
    return _layout(fig, f"{title or result.data['model'] + ': latency vs load'}"
                        f"<br><sup>{what}</sup>",
                   "utilisation ρ (measured)", f"latency ({unit})",
                   xaxis_range=[0, 1])


def fan_out_tail(result: Result) -> go.Figure:
    """Share of fanned-out requests slower than the leaves' p99, against the
    fan-out: 1 - 0.99**n (line) and `scenarios.fan_out`'s measurements (markers)."""
    rows, p99 = result.data["rows"], result.params["p99"]
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
    p99 = {name: result.data[name]["p99"] * scale for name in ("open", "closed")}
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
    nodes = list(data["node_p99"])
    fig = go.Figure()
    fig.add_bar(x=nodes, y=_round([data["node_p99"][n] * scale for n in nodes], 3),
                name="node p99", marker_color=PALETTE[0],
                texttemplate="%{y:.0f}", textposition="outside")
    for key, label, colour, dash in (
            ("mean_p99", "mean of the p99s (wrong)", PALETTE[4], "dash"),
            ("merged_p99", "p99 of all requests (right)", UP, "solid"),
            ("theory_p99", "theory", DOWN, "dot")):
        value = round(data[key] * scale, 3)
        fig.add_scatter(x=nodes, y=[value] * len(nodes), mode="lines",
                        name=f"{label}: {value:.0f} {unit}",
                        line={"color": colour, "dash": dash, "width": 3})
    return _layout(fig, "Combining percentiles from several nodes", "node",
                   f"p99 latency ({unit})")


# -- 02 load balancing ------------------------------------------------------------

def curves(lines: Mapping[str, Mapping[float, float]],
           points: Mapping[str, Mapping[float, float]] | None = None, *,
           title: str = "", x: str = "", y: str = "", log_x: bool = False,
           log_y: bool = False, line_mode: str = "lines") -> go.Figure:
    """Lines (e.g. theory) and markers (e.g. simulation), each {name: {x: y}};
    a name found in both gets one colour, so a curve and its points match.
    line_mode "lines+markers" also marks the points the lines join."""
    points = points or {}
    colours = {name: PALETTE[i % len(PALETTE)]
               for i, name in enumerate(dict.fromkeys([*lines, *points]))}
    fig = go.Figure()
    for name, xy in lines.items():
        fig.add_scatter(x=_round(xy), y=_round(xy.values(), 4), mode=line_mode,
                        name=name, line={"color": colours[name]},
                        legendgroup=name)
    for name, xy in points.items():
        fig.add_scatter(x=_round(xy), y=_round(xy.values(), 4), mode="markers",
                        name=f"{name} (simulated)" if name in lines else name,
                        legendgroup=name,
                        marker={"color": colours[name], "size": 9,
                                "symbol": "circle-open", "line": {"width": 2}})
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(type="log" if log_y else "linear")
    return _layout(fig, title, x, y)


def fleet(result: Result) -> go.Figure:
    """One load-balancing run (a `labkit.balancing.BalancingResult`): the latency
    CDF and each server's utilisation; killed servers red, slower ones hatched."""
    utilisation, speeds = result.data["utilisation"], result.params["speeds"]
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
    lengths, times = result.data["queue_lengths"], result.data["sample_times"]
    chosen = range(lengths.shape[1]) if servers is None else servers
    series = {}
    for i in chosen:
        series[f"s{i}"] = line = TimeSeries(f"s{i}")
        for t, held in zip(times, lengths[:, i], strict=True):
            line.add(float(t), int(held))
    return timeseries(series, title=title, y="requests held")


# -- 03 fault tolerance -----------------------------------------------------------

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


def panels(table: Mapping[str, Mapping[str, Mapping[float, float]]], *,
           x: str = "", title: str = "", log_x: bool = False) -> go.Figure:
    """Small multiples side by side: {panel title: {line name: {x: y}}}, one
    colour per line name across panels (e.g. one panel per metric)."""
    names = list(dict.fromkeys(n for lines in table.values() for n in lines))
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    fig = make_subplots(rows=1, cols=len(table), subplot_titles=list(table),
                        horizontal_spacing=0.08)
    for col, lines in enumerate(table.values(), start=1):
        for name, xy in lines.items():
            fig.add_scatter(x=_round(xy), y=_round(xy.values(), 4), name=name,
                            mode="lines+markers", legendgroup=name,
                            showlegend=col == 1, line={"color": colours[name]},
                            row=1, col=col)
        fig.update_xaxes(title=x, type="log" if log_x else "linear", row=1, col=col)
    return _layout(fig, title, "", "", height=400)


# -- 04 paxos ---------------------------------------------------------------------

def quorums(names: Sequence[str], first: Iterable[str], second: Iterable[str], *,
            title: str | None = None) -> go.Figure:
    """Acceptors on a circle (the layout of `topology`) with two quorums drawn as
    shaded polygons; each acceptor is coloured by the quorums it is in, so the
    ones they share stand out."""
    names = list(names)
    groups = {"first": [n for n in names if n in set(first)],
              "second": [n for n in names if n in set(second)]}
    pos = {n: _round(xy, 4)
           for n, xy in nx.circular_layout(nx.complete_graph(names)).items()}
    fig = go.Figure()
    for (label, members), colour in zip(groups.items(), PALETTE, strict=False):
        ring = members + members[:1]
        fig.add_scatter(x=[pos[n][0] for n in ring], y=[pos[n][1] for n in ring],
                        mode="lines", fill="toself", opacity=0.25, hoverinfo="skip",
                        name=f"{label} quorum: {', '.join(members)}",
                        line={"color": colour, "width": 3})
    shared = [n for n in groups["first"] if n in groups["second"]]
    colour = {n: PALETTE[3] if n in shared else PALETTE[0] if n in groups["first"]
              else PALETTE[1] if n in groups["second"] else DOWN for n in names}
    fig.add_scatter(x=[pos[n][0] for n in names], y=[pos[n][1] for n in names],
                    mode="markers+text", text=names, textfont={"color": "white"},
                    hoverinfo="text", name="acceptors", showlegend=False,
                    marker={"size": 38, "color": [colour[n] for n in names]})
    fig.update_xaxes(visible=False, range=[-1.3, 1.3])
    fig.update_yaxes(visible=False, range=[-1.3, 1.3], scaleanchor="x")
    both = ", ".join(shared) or "nobody"
    return _layout(fig, title or f"Two quorums of {len(names)} acceptors share: "
                   f"{both}", "", "", width=560, legend={"x": 0.0, "y": -0.05,
                                                        "orientation": "h"})


def paxos_timeline(result: Result, *, until: float | None = None,
                   kinds: Iterable[str] | None = None,
                   title: str | None = None) -> go.Figure:
    """The run's space-time diagram (`sequence_diagram`) with a green line where
    a value became chosen (a majority of acceptors had accepted it)."""
    fig = sequence_diagram(result, until=until, kinds=kinds,
                           title=title or result.data.get("headline"))
    at = result.data.get("chosen_at")
    if at is not None and (until is None or at <= until):
        fig.add_vline(x=round(at, 6), line={"color": UP, "width": 2},
                      annotation_text=f"{result.data['chosen']!r} chosen",
                      annotation_position="bottom right")
    return fig


# -- 05 raft ----------------------------------------------------------------------

def _role_segments(result: Result, since: float, until: float):
    """(node, role, term, start, end) for each stretch of one role, clipped to
    [since, until), from the result's role timeline."""
    current: dict[str, tuple[str, int, float]] = {}
    segments = []
    for time, name, role, term in [*result.data["roles"], (until, None, "", 0)]:
        if time > until:
            time = until
        if name is None:
            names = list(current)
        else:
            names = [name] if name in current else []
        for n in names:
            old_role, old_term, start = current[n]
            lo, hi = max(start, since), min(time, until)
            if hi > lo:
                segments.append((n, old_role, old_term, lo, hi))
        if name is not None:
            current[name] = (role, term, time)
    return segments


def roles(result: Result, *, since: float = 0.0, until: float | None = None,
          title: str | None = None) -> go.Figure:
    """Raft role timeline: one row per node, coloured by role (follower,
    candidate, leader, down) over [since, until]; a star where an election was
    won. Hover for the term."""
    until = result.end_time if until is None else require_number("until", until)
    names = list(result.data["names"])
    fig = go.Figure()
    segments = _role_segments(result, since, until)
    for role, colour in ROLE_COLOURS:          # the capstone's colours, below
        mine = [s for s in segments if s[1] == role]
        fig.add_bar(y=[s[0] for s in mine], x=_round(s[4] - s[3] for s in mine),
                    base=_round(s[3] for s in mine), orientation="h", name=role,
                    marker={"color": colour, "line": {"width": 0}},
                    text=[f"T{s[2]}" if role in ("leader", "candidate") else ""
                          for s in mine],
                    textposition="inside", insidetextanchor="middle",
                    hovertext=[f"{s[0]} {role}, term {s[2]}: {s[3]:.3f}-{s[4]:.3f} s"
                               for s in mine], hoverinfo="text")
    won = [e for e in result.data["elections"] if since <= e[0] <= until]
    fig.add_scatter(x=_round(e[0] for e in won), y=[e[1] for e in won],
                    mode="markers", name="election won",
                    marker={"symbol": "star", "size": 13, "color": "black"},
                    hovertext=[f"{e[1]} elected in term {e[2]} at {e[0]:.3f} s"
                               for e in won], hoverinfo="text")
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    fig.update_xaxes(range=[round(since, 6), round(until, 6)])
    leaderless = result.data.get("leaderless")
    note = f" · leaderless {leaderless:.3f} s in all" if leaderless is not None \
        else ""
    count = len(result.data["elections"])
    return _layout(fig, title or f"Roles over time: {count} election"
                   f"{'' if count == 1 else 's'}{note}", "time (s)", "",
                   barmode="overlay",
                   bargap=0.25, height=120 + 45 * len(names))


def log_grid(result: Result, *, last: int = 30, title: str | None = None
             ) -> go.Figure:
    """Each node's log (rows) by index (columns), the cell's colour and label
    its term; grey cells are compacted into a snapshot, a black bar follows each
    node's commit index. Shows the `last` indexes up to the longest log."""
    last = require_int("last", last, minimum=1)
    names, logs = list(result.data["names"]), result.data["logs"]
    bases, commits = result.data["log_base"], result.data["commit"]
    top = max([bases[n] for n in names] + [i for n in names for i, _ in logs[n]])
    first = max(1, top - last + 1)
    indexes = list(range(first, top + 1))
    terms = {n: dict(logs[n]) for n in names}
    z = [[terms[n].get(i) for i in indexes] for n in names]
    text = [["" if terms[n].get(i) is None else str(terms[n][i]) for i in indexes]
            for n in names]
    fig = go.Figure()
    fig.add_heatmap(x=indexes, y=names, z=z, text=text, texttemplate="%{text}",
                    colorscale="Viridis", showscale=False, xgap=2, ygap=2,
                    hovertemplate="%{y} index %{x}: term %{z}<extra></extra>")
    if any(bases[n] >= first for n in names):     # grey cells: in a snapshot
        fig.add_heatmap(x=indexes, y=names, xgap=2, ygap=2, showscale=False,
                        z=[[1 if i <= bases[n] else None for i in indexes]
                           for n in names],
                        text=[["S" if i <= bases[n] else "" for i in indexes]
                              for n in names], texttemplate="%{text}",
                        colorscale=[[0, FAINT], [1, FAINT]],
                        hovertemplate="%{y} index %{x}: in the snapshot"
                                      "<extra></extra>")
    fig.add_scatter(x=[commits[n] + 0.5 for n in names], y=names, mode="markers",
                    name="commit index", marker={"symbol": "line-ns-open", "size": 26,
                                                 "color": "black",
                                                 "line": {"width": 3,
                                                          "color": "black"}},
                    hovertext=[f"{n}: committed up to {commits[n]}" for n in names],
                    hoverinfo="text")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[first - 0.5, top + 1], dtick=max(1, len(indexes) // 15))
    return _layout(fig, title or "Logs: term of each entry, bar after the commit "
                   "index", "log index", "", showlegend=False,
                   height=140 + 45 * len(names))


# -- 06 transactions --------------------------------------------------------------

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
    views = result.data.get("views", {})
    heading = title or result.data.get("headline", result.scenario)
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
            series = result.data[key]
            fig.add_scatter(x=_round(series.times), y=_round(series.values, 3),
                            mode="lines", line={"color": colour, "dash": dash,
                                                "shape": "hv"},
                            name=f"{name}: {label}", legendgroup=name)
    start, end = next(iter(runs.values())).data["window"]
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
    fig = timeseries({name: r.data["totals"] for name, r in runs.items()},
                     title=title, y="sum of all balances seen")
    for trace in fig.data:
        trace.update(mode="lines+markers", marker={"size": 4})
    expected = next(iter(runs.values())).data["expected"]
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
    rate = result.data["rate"]
    fig.add_scatter(x=_round(rate.times), y=_round(rate.values, 3), mode="lines",
                    line={"shape": "hv", "color": UP}, name="commits per second",
                    row=2, col=1)
    fig.update_xaxes(title="time (s)", row=2, col=1)
    p = result.params
    return _layout(fig, f"{p['protocol']}, crash: {p['crash']}, "
                        f"{p['participants']} participants, loss {p['loss']:g}"
                        f"<br><sup>{_views_line(result.data['views'])}</sup>",
                   "", "", height=620,
                   margin={"l": 60, "r": 20, "t": 90, "b": 50})


# -- 07 storage -------------------------------------------------------------------

def storage_dashboard(result: Result) -> go.Figure:
    """A `scenarios.storage_playground` run in four panels: latency CDFs of
    uploads and downloads, each chunk server's bytes and requests, the
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
    for i, (label, values) in enumerate(result.data["loads"].items()):
        fig.add_bar(x=list(values), y=_round(values.values(), 3), name=label,
                    marker_color=PALETTE[2 + i], row=1, col=2)
    series = result.metrics["under_replicated"]
    fig.add_scatter(x=_round(series.times), y=list(series.values), mode="lines",
                    line_shape="hv", name="under-replicated", row=2, col=1,
                    line={"color": CUT})
    fig.add_vline(x=1.0, line={"dash": "dot", "color": DOWN}, row=2, col=1)
    p = result.params
    fig.add_bar(x=["measured", "C(N−W,R)/C(N,R)"],
                y=_round([result.data["stale"], result.data["stale theory"]], 4),
                marker_color=[PALETTE[0], FAINT], marker_line_color=PALETTE[0],
                marker_line_width=1.5, showlegend=False, row=2, col=2,
                texttemplate="%{y:.2f}", textposition="outside")
    fig.update_xaxes(title="latency (ms)", row=1, col=1)
    fig.update_yaxes(title="share ≤ x", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title="time (s)", row=2, col=1)
    fig.update_yaxes(title="chunks", row=2, col=1)
    fig.update_yaxes(title=f"N={p['replication']}, R={p['r']}, W={p['w']}",
                     range=[0, 1.1], row=2, col=2)
    calls = result.data["calls"]
    done = ", ".join(f"{what}s {c['ok']} ok / {c['Unavailable']} refused"
                     for what, c in calls.items())
    return _layout(fig, f"{p['nodes']} chunk servers, {p['replication']} copies, "
                        f"W = {p['write_quorum']}<br><sup>{done}</sup>", "", "",
                   height=640, barmode="group",
                   margin={"l": 60, "r": 20, "t": 90, "b": 50})


# -- 08 mapreduce -----------------------------------------------------------------

#: Colours of task-attempt bars in `gantt`, by what the bar shows (legend name).
ATTEMPT_COLOURS = {"map": PALETTE[0], "shuffle": "#fdae6b", "reduce": "#e6550d",
                   "failed": CUT, "output lost": "#f4a6a6", "cancelled": DOWN,
                   "unused": FAINT}
_OUTCOME_BAR = {"failed": "failed", "lost": "output lost", "cancelled": "cancelled",
                "unused": "unused"}


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


# -- 09 capstone ------------------------------------------------------------------

#: How `capstone_dashboard` colours a metadata node's role (down, follower,
#: candidate, leader), bottom to top of its colour scale.
ROLE_COLOURS = (("down", CUT), ("follower", FAINT), ("candidate", "#fdae6b"),
                ("leader", UP))


def _none_for_nan(values: Iterable, digits: int = 3) -> list:
    return [None if v != v else round(float(v), digits) for v in values]


def capstone_dashboard(result: Result, *, p99_ms: float | None = None) -> go.Figure:
    """A `scenarios.capstone` run as an operator's dashboard, one point per
    window: traffic (user requests and the attempts they cost), errors,
    latency (p50, p99 and the objective `p99_ms`), each storage server's busy
    share, each metadata node's role, and data safety (under-replicated keys,
    acknowledged writes lost). Shaded: the faults."""
    rows, w = result.data["windows"], result.params["window"]
    x = _round([row["t (s)"] + w / 2 for row in rows], 3)
    fig = make_subplots(
        rows=3, cols=2, shared_xaxes=True, vertical_spacing=0.09,
        horizontal_spacing=0.1, specs=[[{}, {}], [{}, {}], [{}, {"secondary_y": True}]],
        subplot_titles=["traffic (per second)", "errors (% of requests)",
                        "latency (ms), dashed: objective",
                        "storage servers: busy share",
                        "metadata nodes: role", "data safety"])

    def lines(series: Mapping[str, Sequence], row: int, col: int,
              colours: Sequence[str], **style) -> None:
        for (name, values), colour in zip(series.items(), colours, strict=True):
            fig.add_scatter(x=x, y=_none_for_nan(values), name=name, mode="lines",
                            line={"color": colour}, legendgroup=name, row=row,
                            col=col, **style)

    def column(name: str, scale: float = 1.0) -> list[float]:
        return [row[name] * scale for row in rows]

    lines({"requests/s": column("requests/s"), "attempts/s": column("attempts/s")},
          1, 1, PALETTE[:2])
    lines({"errors %": column("errors", 100)}, 1, 2, [CUT], fill="tozeroy")
    lines({"p50": column("p50 (ms)"), "p99": column("p99 (ms)")}, 2, 1,
          PALETTE[2:4])
    load = result.data["load"]
    lines({name: values[:len(rows)] for name, values in load.items()}, 2, 2,
          PALETTE[4:4 + len(load)])
    lines({"under-replicated keys": column("under-replicated keys")}, 3, 2,
          ["#8c564b"], line_shape="hv")
    lines({"lost acked writes": column("lost acked writes")}, 3, 2, [CUT],
          line_shape="hv", secondary_y=True)
    roles = result.data["roles"]
    codes = {role: i for i, (role, _) in enumerate(ROLE_COLOURS)}
    scale = [[edge, colour] for i, (_, colour) in enumerate(ROLE_COLOURS)
             for edge in (i / len(ROLE_COLOURS), (i + 1) / len(ROLE_COLOURS))]
    fig.add_heatmap(x=x, y=list(roles), z=[[codes[r] for r in rs]
                                           for rs in roles.values()],
                    zmin=-0.5, zmax=len(ROLE_COLOURS) - 0.5, colorscale=scale,
                    showscale=False, text=list(roles.values()), xgap=1, ygap=2,
                    hovertemplate="%{y} at %{x} s: %{text}<extra></extra>",
                    row=3, col=1)
    if p99_ms is not None:
        fig.add_hline(y=require_number("p99_ms", p99_ms, positive=True), row=2,
                      col=1, line={"color": CUT, "dash": "dash", "width": 1})
    for fault in result.data["faults"]:
        end = min(fault["to (s)"], result.params["duration"])
        fig.add_vrect(x0=round(fault["from (s)"], 6), x1=round(end, 6), row="all",
                      col="all", fillcolor=CUT, opacity=0.07, line_width=0)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(range=[0, 1.05], row=2, col=2)
    fig.update_yaxes(title="keys", row=3, col=2)
    top = max(10, math.ceil(1.1 * max(column("lost acked writes"), default=0)))
    fig.update_yaxes(title="lost writes", range=[0, top], tickmode="linear", tick0=0,
                     dtick=math.ceil(top / 5), row=3, col=2, secondary_y=True,
                     color=CUT, showgrid=False)
    for col in (1, 2):
        fig.update_xaxes(title="time (s)", row=3, col=col)
    faults = " · ".join(f"{f['fault']} {f['target']} at {f['from (s)']:g} s"
                        for f in result.data["faults"]) or "no faults"
    return _layout(fig, f"{result.data['headline']}<br><sup>shaded: {faults}"
                        "</sup>", "", "", height=820, hovermode="x unified",
                   legend={"orientation": "h", "y": -0.08},
                   margin={"l": 60, "r": 20, "t": 90, "b": 60})


# -- 09 capstone: the course as static pages -------------------------------------

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"


def html_figures(nb, resources: dict) -> tuple:
    """An nbconvert preprocessor that keeps stored plotly figures interactive
    in static HTML: each figure output gets an HTML rendering (a div and the
    script that draws it), and plotly.js is written once beside the pages as
    plotly.min.js, so they work offline. `make html` runs
    `jupyter nbconvert --to html
    --HTMLExporter.preprocessors='["labkit.plot.html_figures"]' ...`."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    stem = "".join(c if c.isalnum() else "-" for c in
                   resources.get("metadata", {}).get("name", "notebook"))
    figures = 0
    for cell in nb.cells:
        for output in cell.get("outputs", ()):
            data = output.get("data", {})
            if PLOTLY_MIME in data and "text/html" not in data:
                data["text/html"] = pio.to_html(
                    data[PLOTLY_MIME], full_html=False, validate=False,
                    include_plotlyjs=PLOTLY_JS if figures == 0 else False,
                    div_id=f"{stem}-figure-{figures}")
                figures += 1
    if figures:
        resources.setdefault("outputs", {})[PLOTLY_JS] = get_plotlyjs().encode()
    return nb, resources
