"""Views of notebook 09, the capstone: one run of the whole service as an
operator's dashboard (traffic, errors, latency, load, metadata roles, data
safety), with the scheduled faults shaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.errors import require_number
from labkit.metrics import Result

from .common import CUT, PALETTE, ROLE_COLOURS, _layout, _round

#: The axis suffix of each of the dashboard's six panels, row by row.
_PANELS = ("", "2", "3", "4", "5", "6")


def _none_for_nan(values: Iterable, digits: int = 3) -> list:
    return [None if v != v else round(float(v), digits) for v in values]


def capstone_dashboard(result: Result, *, p99_ms: float | None = None) -> go.Figure:
    """A `scenarios.capstone` run as an operator's dashboard, one point per
    window: traffic (user requests and the attempts they cost), errors,
    latency (p50, p99 and the objective `p99_ms`), each storage server's busy
    share, each metadata node's role, and data safety (under-replicated keys,
    acknowledged writes lost). Shaded: the faults."""
    data, w = result.data, result.params["window"]
    windows = data.windows
    x = _round([win.t + w / 2 for win in windows], 3)
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

    lost = [win.lost_writes for win in windows]
    lines({"requests/s": [win.request_rate for win in windows],
           "attempts/s": [win.attempt_rate for win in windows]}, 1, 1, PALETTE[:2])
    lines({"errors %": [win.errors * 100 for win in windows]}, 1, 2, [CUT],
          fill="tozeroy")
    lines({"p50": [win.p50_ms for win in windows],
           "p99": [win.p99_ms for win in windows]}, 2, 1, PALETTE[2:4])
    load = data.load
    lines({name: values[:len(windows)] for name, values in load.items()}, 2, 2,
          PALETTE[4:4 + len(load)])
    lines({"under-replicated keys": [win.under_replicated for win in windows]}, 3, 2,
          ["#8c564b"], line_shape="hv")
    lines({"lost acked writes": lost}, 3, 2, [CUT], line_shape="hv",
          secondary_y=True)
    roles = data.roles
    codes = {role: i for i, (role, _) in enumerate(ROLE_COLOURS)}
    scale = [[edge, colour] for i, (_, colour) in enumerate(ROLE_COLOURS)
             for edge in (i / len(ROLE_COLOURS), (i + 1) / len(ROLE_COLOURS))]
    fig.add_heatmap(x=x, y=list(roles), z=[[codes[r] for r in rs]
                                           for rs in roles.values()],
                    zmin=-0.5, zmax=len(ROLE_COLOURS) - 0.5, colorscale=scale,
                    showscale=False, text=list(roles.values()), xgap=1, ygap=2,
                    hovertemplate="%{y} at %{x} s: %{text}<extra></extra>",
                    row=3, col=1)
    # The shapes in one list: add_hline and add_vrect(row="all") would each
    # revalidate every shape so far, most of the dashboard's cost.
    shapes = [] if p99_ms is None else [{
        "type": "line", "xref": "x3 domain", "x0": 0, "x1": 1, "yref": "y3",
        "y0": float(require_number("p99_ms", p99_ms, positive=True)),
        "y1": float(p99_ms), "line": {"color": CUT, "dash": "dash", "width": 1}}]
    for fault in data.faults:
        end = min(fault.end, result.params["duration"])
        shapes += [{"type": "rect", "xref": f"x{axis}", "yref": f"y{axis} domain",
                    "x0": round(fault.start, 6), "x1": round(end, 6), "y0": 0,
                    "y1": 1, "fillcolor": CUT, "opacity": 0.07, "line": {"width": 0}}
                   for axis in _PANELS]
    fig.update_layout(shapes=shapes)
    fig.update_yaxes(type="log", dtick=1, row=2, col=1)    # 1, 10, 100 ms; no 2s, 5s
    fig.update_yaxes(range=[0, 1.05], row=2, col=2)
    fig.update_yaxes(title="keys", row=3, col=2)
    top = max(10, math.ceil(1.1 * max(lost, default=0)))
    fig.update_yaxes(title="lost writes", range=[0, top], tickmode="linear", tick0=0,
                     dtick=math.ceil(top / 5), row=3, col=2, secondary_y=True,
                     color=CUT, showgrid=False)
    for col in (1, 2):
        fig.update_xaxes(title="time (s)", row=3, col=col)
    faults = " · ".join(f"{f.fault} {f.target} at {f.start:g} s"
                        for f in data.faults) or "no faults"
    return _layout(fig, f"{data.headline}<br><sup>shaded: {faults}"
                        "</sup>", "", "", height=820, hovermode="x unified",
                   legend={"orientation": "h", "y": -0.08},
                   margin={"l": 60, "r": 20, "t": 90, "b": 60})
