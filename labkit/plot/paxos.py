"""Views of notebook 04, Paxos: two quorums drawn on the ring of acceptors (so
their overlap shows), and a run's space-time diagram marked where a value was
chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import networkx as nx
import plotly.graph_objects as go

from labkit.metrics import Result

from .common import DOWN, PALETTE, UP, _layout, _round, data_field, sequence_diagram


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
                           title=title or data_field(result, "headline"))
    at = data_field(result, "chosen_at")
    if at is not None and (until is None or at <= until):
        fig.add_vline(x=round(at, 6), line={"color": UP, "width": 2},
                      annotation_text=f"{data_field(result, 'chosen')!r} chosen",
                      annotation_position="bottom right")
    return fig
