"""The house style and the drawings every topic shares.

Colours, the layout helper and the number rounding that keeps stored figures
small and stable; the generic charts (latency histograms and CDFs, time series,
grouped bars, curves, small multiples); the cluster topology; and the
space-time diagram (`sequence_diagram`) that the Paxos and transaction views
draw on. Topic views in the sibling modules import from here, and only here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Histogram, Record, Result, TimeSeries, TraceRecord

UP, DOWN, CUT, LINK, FAINT = "#2ca02c", "#7f7f7f", "#d62728", "#c7c7c7", "#e5e5e5"
PALETTE = qualitative.Plotly
UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}

#: How `roles` (Raft) and `capstone_dashboard` colour a node's role (down,
#: follower, candidate, leader), bottom to top of the capstone's colour scale.
ROLE_COLOURS = (("down", CUT), ("follower", FAINT), ("candidate", "#fdae6b"),
                ("leader", UP))


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
    def cdf(values: np.ndarray, points: int) -> tuple[np.ndarray, list]:
        n = len(values)
        ranks = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
        return values[ranks], _round((ranks + 1) / n)

    fig = _step_curves(runs, metric, unit, points, cdf, "%{y:.3f} at or below")
    fig.update_xaxes(type="log" if log_x else "linear")
    return _layout(fig, title, f"{metric} ({unit})", "share of values ≤ x",
                   yaxis_range=[0, 1.02])


def latency_ccdf(runs: Mapping[str, Histogram | Result], *, metric: str = "latency",
                 unit: str = "ms", points: int = 200,
                 title: str = "Latency tail") -> go.Figure:
    """The tail per run, where a CDF hides it: the share of values above x, on
    log scales, so 1 %, 0.1 % and 0.01 % of requests sit a decade apart. Points
    are spaced evenly in log share, down to the slowest value but one (the
    share above the slowest is 0, which a log axis cannot show)."""
    def ccdf(values: np.ndarray, points: int) -> tuple[np.ndarray, list]:
        n = len(values)
        if n < 2:
            return values[:0], []
        shares = np.logspace(0, np.log10(1 / n), points)     # 1 down to 1/n above
        ranks = np.unique(np.clip(n - np.ceil(shares * n).astype(int), 0, n - 2))
        x = values[ranks]
        above = (n - np.searchsorted(values, x, side="right")) / n
        return x[above > 0], _round(above[above > 0], 8)

    fig = _step_curves(runs, metric, unit, points, ccdf, "%{y:.2%} above")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return _layout(fig, title, f"{metric} ({unit})", "share of values > x")


def _step_curves(runs: Mapping[str, Histogram | Result], metric: str, unit: str,
                 points: int, curve: Callable, says: str) -> go.Figure:
    """One step line per run: `curve(sorted values, points)` gives its x (in
    seconds) and y; the hover reads "<run>: <says> <x> <unit>"."""
    hists, scale = _histograms(runs, metric), _scale(unit)
    points = require_int("points", points, minimum=2)
    fig = go.Figure()
    for name, h in hists.items():
        x, y = curve(h.sorted(), points)
        hover = f"{name}: {says} %{{x:.3g}} {unit}<extra></extra>"
        fig.add_scatter(x=_round(x * scale, 4), y=y, name=name, mode="lines",
                        line_shape="hv", hovertemplate=hover)
    return fig


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


def data_field(result: Result, name: str, *default: Any) -> Any:
    """Field `name` of the result's data, for the views that take both kinds of
    Result: an attribute of a scenario's `Record`, or a key of the plain dict
    that a topic package's own `result()` returns (`RaftCluster.result()`).
    Without a default, a missing name raises (AttributeError or KeyError)."""
    data = result.data
    if isinstance(data, Record):
        return getattr(data, name, *default)
    if default and name not in data:
        return default[0]
    return data[name]


def _node_rows(result: Result) -> dict[str, int]:
    """Row of each node: the result's `names` if it lists them, else the order in
    which nodes first appear in the trace."""
    names = list(data_field(result, "names", ()))
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
    `max_messages` messages sent (of `kinds`, up to `until`) are drawn. The time
    axis spans what is drawn, with a 5 % margin, so 60 ms of messages in a
    1.5 s run fill the width instead of a sliver of it."""
    end = result.end_time if until is None else require_number("until", until)
    max_messages = require_int("max_messages", max_messages, minimum=1)
    wanted = None if kinds is None else set(kinds)
    rows = _node_rows(result)
    records = [r for r in result.trace if r.time <= end]
    sends = {r.msg: r for r in records if r.event == "send"
             and (wanted is None or r.kind in wanted)}
    kept = dict(list(sends.items())[:max_messages])
    lo, hi = _drawn_span(records, kept, rows, end)
    fig = go.Figure()
    fig.add_scatter(x=[v for _ in rows for v in (lo, hi, None)],
                    y=[v for row in rows.values() for v in (row, row, None)],
                    mode="lines", line={"color": FAINT, "width": 1},
                    hoverinfo="skip", showlegend=False)
    fig.update_xaxes(range=[lo, hi])
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


def _drawn_span(records: list[TraceRecord], kept: Mapping[int, TraceRecord],
                rows: Mapping[str, int], end: float) -> tuple[float, float]:
    """The time axis of a space-time diagram: from the first to the last
    message drawn or fault (a crash, restart, partition or heal), widened by 5 %
    of that span on each side (at least 1 ms) within 0 and `end`; (0, end) when
    there is neither. Timers outside it stay in the figure (autoscale shows
    them): a heartbeat ticking on after the last message must not shrink the
    messages to a sliver again."""
    times = [r.time for r in records if r.msg in kept
             or (r.event == "fault" and (r.src in rows or r.src == "*"))]
    if not times:
        return 0.0, round(end, 6)
    first, last = min(times), max(times)
    margin = max(0.05 * (last - first), 0.001)
    return round(max(first - margin, 0.0), 6), round(min(last + margin, end), 6)


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
