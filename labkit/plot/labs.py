"""Views of the lab notebooks (notebooks/labs/): the first failure of a
grading report as a space-time diagram of the moments before it."""

from __future__ import annotations

import dataclasses
import textwrap

import plotly.graph_objects as go

from .common import _layout, sequence_diagram


def lab_failure(report, *, max_messages: int = 200) -> go.Figure:
    """The first failure of a `labkit.labs` Report: the space-time diagram of
    the report's window (the last moments of the failing run, up to the event
    that failed), titled with the scenario, seed and why. A report without a
    trace to draw (it passed, or the lab has no messages) gives a figure that
    says so."""
    result, failures = report.result, report.failures
    if result is None or not failures or report.window is None:
        fig = go.Figure()
        text = ("no failure to draw: every run passed" if not failures
                else "this failure left no trace of messages to draw")
        fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _layout(fig, f"{report.lab} lab: {report.impl}", "", "", height=200)
    first = failures[0]
    start, end = report.window
    window = dataclasses.replace(result, trace=tuple(
        r for r in result.trace if start <= r.time <= end))
    why = "<br>".join(textwrap.wrap(first.why, 110)[:3])
    title = (f"{first.scenario}, seed {first.seed}: the last {end - start:.2f} s "
             f"before the failure at t = {end:.3f} s<br><sup>{why}</sup>")
    fig = sequence_diagram(window, until=end, max_messages=max_messages, title=title)
    fig.update_xaxes(range=[round(start, 6), round(end, 6)])
    fig.update_layout(margin={"t": 110})
    return fig
