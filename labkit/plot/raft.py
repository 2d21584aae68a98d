"""Views of notebook 05, Raft: each node's role over time (with the elections
won), and the nodes' logs side by side by index and term, with snapshots and
commit indexes.
"""

from __future__ import annotations

import plotly.graph_objects as go

from labkit.errors import require_int, require_number
from labkit.metrics import Result

from .common import FAINT, ROLE_COLOURS, _layout, _round, data_field


def _role_segments(result: Result, since: float, until: float):
    """(node, role, term, start, end) for each stretch of one role, clipped to
    [since, until), from the result's role timeline."""
    current: dict[str, tuple[str, int, float]] = {}
    segments = []
    for time, name, role, term in [*data_field(result, "roles"), (until, None, "", 0)]:
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
    names = list(data_field(result, "names"))
    fig = go.Figure()
    segments = _role_segments(result, since, until)
    for role, colour in ROLE_COLOURS:          # the capstone's colours too
        mine = [s for s in segments if s[1] == role]
        fig.add_bar(y=[s[0] for s in mine], x=_round(s[4] - s[3] for s in mine),
                    base=_round(s[3] for s in mine), orientation="h", name=role,
                    marker={"color": colour, "line": {"width": 0}},
                    text=[f"T{s[2]}" if role in ("leader", "candidate") else ""
                          for s in mine],
                    textposition="inside", insidetextanchor="middle",
                    hovertext=[f"{s[0]} {role}, term {s[2]}: {s[3]:.3f}-{s[4]:.3f} s"
                               for s in mine], hoverinfo="text")
    elections = data_field(result, "elections")
    won = [e for e in elections if since <= e[0] <= until]
    fig.add_scatter(x=_round(e[0] for e in won), y=[e[1] for e in won],
                    mode="markers", name="election won",
                    marker={"symbol": "star", "size": 13, "color": "black"},
                    hovertext=[f"{e[1]} elected in term {e[2]} at {e[0]:.3f} s"
                               for e in won], hoverinfo="text")
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    fig.update_xaxes(range=[round(since, 6), round(until, 6)])
    leaderless = data_field(result, "leaderless", None)
    note = f" · leaderless {leaderless:.3f} s in all" if leaderless is not None \
        else ""
    count = len(elections)
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
    names, logs = list(data_field(result, "names")), data_field(result, "logs")
    bases, commits = data_field(result, "log_base"), data_field(result, "commit")
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
