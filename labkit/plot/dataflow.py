"""Views of notebook 10, Spark-style dataflow: the lineage graph cut into
stages with each partition coloured by what happened to it (`stage_graph`),
the seconds of each PageRank iteration (`iteration_times`) and recovery time
against lineage length (`recovery`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import plotly.graph_objects as go

from labkit.errors import ConfigError
from labkit.metrics import Result

from .common import CUT, FAINT, LINK, UP, _layout, _round, curves, data_field

#: Colour of a partition in `stage_graph`, by what the run did to it.
PARTITION_COLOURS = {"computed": "#9ecae1", "cached": UP, "stored": "#e6a700",
                     "rebuilt": CUT}


def _statuses(graph: list[dict], journal: list) -> dict[tuple[int, int], str]:
    """(dataset id, partition) -> its status; a shuffle output counts for the
    partition of the dataset that wrote it (the shuffle's map side)."""
    writer = {shuffle: parent for node in graph for parent, shuffle in node["parents"]
              if shuffle is not None}
    status: dict[tuple[int, int], str] = {}
    for run in journal:
        for kind, a, p in (product[:3] for product in run.products):
            key = (writer[a], p) if kind == "shuffle" else (a, p)
            if key[0] is None:
                continue
            new = {"cache": "cached", "stable": "stored"}.get(kind, "computed")
            if status.get(key) != "rebuilt":
                status[key] = new
        for kind, a, p in (product[:3] for product in run.rebuilt):
            status[(writer[a], p) if kind == "shuffle" else (a, p)] = "rebuilt"
    return status


def stage_graph(run: Result, *, title: str = "Lineage: datasets and partitions"
                ) -> go.Figure:
    """The run's lineage, parents left of children (networkx topological
    generations): each dataset a column of partition squares (blue computed,
    green cached in memory, gold in stable storage, red rebuilt after a
    loss); solid arrows are narrow dependencies, dashed red ones shuffles
    (stage boundaries)."""
    graph = data_field(run, "graph")
    if not graph:
        raise ConfigError("this run has no lineage graph to draw")
    g = nx.DiGraph()
    g.add_nodes_from(node["id"] for node in graph)
    g.add_edges_from((parent, node["id"]) for node in graph
                     for parent, _ in node["parents"])
    pos = {}
    for x, layer in enumerate(nx.topological_generations(g)):
        for y, ds in enumerate(sorted(layer)):
            pos[ds] = (x, -y)
    fig = go.Figure()
    for shuffled, colour, dash in ((False, LINK, "solid"), (True, CUT, "dot")):
        xs, ys = [], []
        for node in graph:
            for parent, shuffle in node["parents"]:
                if (shuffle is not None) == shuffled:
                    xs += [pos[parent][0] + 0.1, pos[node["id"]][0] - 0.1, None]
                    ys += [pos[parent][1], pos[node["id"]][1], None]
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip",
                        name="shuffle (new stage)" if shuffled else "narrow",
                        line={"color": colour, "dash": dash, "width": 1.5})
    status = _statuses(graph, data_field(run, "journal"))
    for state, colour in PARTITION_COLOURS.items():
        xs, ys, text = [], [], []
        for node in graph:
            parts = node["partitions"]
            for p in range(parts):
                default = "stored" if node["op"] == "source" else "computed"
                if status.get((node["id"], p), default) == state:
                    x, y = pos[node["id"]]
                    xs.append(x)
                    ys.append(y + 0.35 * (p - (parts - 1) / 2) / max(parts, 1))
                    text.append(f"{node['name']} [{p}]: {state}")
        fig.add_scatter(x=_round(xs, 4), y=_round(ys, 4), mode="markers", name=state,
                        hovertext=text, hoverinfo="text",
                        marker={"symbol": "square", "size": 7, "color": colour,
                                "line": {"width": 0.5, "color": "white"}})
    fig.add_scatter(x=[pos[n["id"]][0] for n in graph],
                    y=[pos[n["id"]][1] + 0.3 for n in graph], mode="text",
                    text=[n["name"] for n in graph], textfont={"size": 9},
                    hoverinfo="skip", showlegend=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "", height=300 + 40 * max(
        len(layer) for layer in nx.topological_generations(g)),
        plot_bgcolor=FAINT)


def iteration_times(runs: Mapping[str, Result], *,
                    title: str = "Seconds per PageRank iteration") -> go.Figure:
    """One line per run: simulated seconds of each iteration (0: loading)."""
    return curves({name: dict(enumerate(data_field(run, "iteration_times")))
                   for name, run in runs.items()}, title=title,
                  x="iteration (0: load the graph)", y="simulated seconds",
                  line_mode="lines+markers")


def recovery(table: Result | Sequence[Mapping[str, Any]], *,
             title: str = "Recovery time against lineage length") -> go.Figure:
    """Extra seconds of the iteration in which a worker died, against the
    iterations of lineage behind it, one line per checkpoint setting: the
    rows of `scenarios.dataflow.lineage_recovery` (or its Result)."""
    rows = list(data_field(table, "rows") if isinstance(table, Result) else table)
    if not rows:
        raise ConfigError("recovery needs at least one row")
    lines = {key.removeprefix("recovery (s), "): {r["lineage length"]: r[key]
                                                  for r in rows}
             for key in rows[0] if key.startswith("recovery")}
    return curves(lines, title=title, x="iterations of lineage before the crash",
                  y="extra seconds (recovery)", line_mode="lines+markers")
