"""`explore`: controls for a scenario's parameters that rerun it and redraw
a figure in place, with runs cached by their parameters (`Explorer`), and the
panels that put an explorer beside other controls.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from labkit.errors import ConfigError, Unavailable
from labkit.metrics import Result

from .controls import (
    ServerSwitches,
    _collector_paused,
    _say,
    _show,
    _status_line,
    _with_plain_text,
    control,
    headline,
)
from .figure import LiveFigure

CACHE_SIZE = 64             # scenario runs an Explorer keeps, least recently used out


def _key(params: Mapping[str, Any]) -> Hashable | None:
    """A cache key for these parameters, or None if a value is unhashable."""
    key = tuple(sorted(params.items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Explorer:
    """Controls that rerun a scenario and redraw its figure in place.

    `controls` maps names to widgets, `figure` is the live plot, `status` a line
    saying what was run (or why it could not be), `result` the last good run.
    """

    def __init__(self, scenario: Callable[..., Result],
                 view: Callable[[Result], go.Figure], controls: Mapping[str, Any],
                 title: str | None = None):
        self.scenario, self.view = scenario, view
        self.controls: dict[str, W.ValueWidget] = {}
        self._fixed: dict[str, Any] = {}
        for name, spec in controls.items():
            widget = control(name, spec)
            if widget is None:
                self._fixed[name] = spec
            else:
                self.controls[name] = widget
                widget.observe(lambda _change: self.refresh(), names="value")
        self.figure = LiveFigure()
        self.status = _status_line()
        self.result: Result | None = None
        self._cache: OrderedDict[Hashable, Result] = OrderedDict()
        header = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.box = W.VBox([*header, W.VBox(list(self.controls.values())),
                           self.figure, self.status])
        self.refresh()

    @property
    def params(self) -> dict[str, Any]:
        """The keyword arguments the scenario gets now: fixed values and controls."""
        return {**self._fixed, **{n: w.value for n, w in self.controls.items()}}

    def refresh(self) -> Result | None:
        """Run the scenario at the current values (or reuse a cached run) and
        redraw. A ConfigError or Unavailable is shown in the status line and the
        previous figure stays."""
        with _collector_paused():
            try:
                result = self._run(self.params)
                fig = self.view(result)
            except (ConfigError, Unavailable) as exc:
                _say(self.status, str(exc), warning=True)
                return None
            _show(self.figure, fig)
            self.result = result
            _say(self.status, headline(result))
            return result

    def _run(self, params: dict[str, Any]) -> Result:
        key = _key(params)
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = self.scenario(**params)
        if key is not None:
            self._cache[key] = result
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return _with_plain_text(self.box, repr(self), kwargs)

    def __repr__(self) -> str:
        name = getattr(self.scenario, "__name__", type(self.scenario).__name__)
        return f"Explorer({name}, controls={list(self.controls)})"


def explore(scenario: Callable[..., Result], view: Callable[[Result], go.Figure],
            *, title: str | None = None, **controls: Any) -> Explorer:
    """Controls for a pure scenario function and a live figure of its result.

    Each keyword becomes an argument of `scenario`: (lo, hi, step[, default]) is
    a slider, a list a dropdown, a bool a checkbox, anything else is passed as
    it is. `view(result)` draws the figure. Shows itself when it ends a cell.
    """
    if not callable(scenario) or not callable(view):
        raise TypeError("explore(scenario, view, ...) needs two functions: "
                        "scenario(**params) -> Result and view(result) -> Figure")
    return Explorer(scenario, view, controls, title)


class ExplorerPanel:
    """A widget assembly around one Explorer (`self.explorer`, laid out in
    `self.box`): shows the box, and exposes the explorer's figure and result."""

    explorer: Explorer
    box: W.Box

    @property
    def figure(self) -> go.FigureWidget:
        return self.explorer.figure

    @property
    def result(self) -> Result | None:
        return self.explorer.result

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return _with_plain_text(self.box, repr(self), kwargs)


class SwitchedExplorer(ExplorerPanel):
    """An Explorer with a row of kill/restart switches: the switched-off indexes
    reach the scenario as its `down` parameter, and the number of switches
    follows the `count` slider."""

    def __init__(self, title: str, explorer: Explorer, switches: ServerSwitches,
                 count: str):
        self.title, self.explorer, self.switches = title, explorer, switches
        self.count = count
        explorer.controls["down"] = switches
        switches.observe(lambda _change: explorer.refresh(), names="value")
        explorer.controls[count].observe(
            lambda change: switches.resize(change["new"]), names="value")
        self.box = W.VBox([switches, explorer.box])

    def __repr__(self) -> str:
        return f"{self.title}({self.count}={len(self.switches.buttons)})"
