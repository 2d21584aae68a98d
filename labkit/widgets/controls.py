"""The building blocks every playground shares: sliders and menus made from
a scenario's parameters, the status line, the progress bar, and rows of
switches that kill and restart servers or nodes.
"""

from __future__ import annotations

import gc
import html
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display

from labkit import scenarios
from labkit.errors import ConfigError
from labkit.metrics import Result
from labkit.plot.common import data_field

WARNING_COLOUR = "#b45309"
WIDE = {"description_width": "initial"}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one widget action (a run, its
    figure and the redraw), then restore it as it was. A run and plotly's
    validation allocate enough to set off about a dozen young collections
    per action, each of which counts towards the next full one; paused, the
    action leaves one young collection for afterwards (measured in notebook
    09's kernel). Reference counting frees most of what an action drops at
    once; the collector finds the cycles after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _show(widget: go.FigureWidget, fig: go.Figure) -> None:
    """Draw `fig` in `widget` in place: its traces and layout replace the old ones."""
    with widget.batch_update():
        widget.data = ()
        widget.add_traces(fig.data)
        widget.layout = fig.layout


def _status_line() -> W.HTML:
    """An empty one-line status widget with the CSS class "labkit-status"."""
    status = W.HTML()
    status.add_class("labkit-status")
    return status


def _say(status: W.HTML, text: str, *, warning: bool = False) -> None:
    """Show one line in a status widget; a warning is amber, marked ⚠ and gets the
    extra CSS class "labkit-warning"."""
    body = html.escape(text)
    if warning:
        status.value = f'<span style="color:{WARNING_COLOUR}">⚠ {body}</span>'
        status.add_class("labkit-warning")
    else:
        status.value = body
        status.remove_class("labkit-warning")


def _sync_figures(widget: W.Widget) -> None:
    """Copy each FigureWidget's figure into its synced state, as plotly does when
    a FigureWidget is displayed on its own. Inside a box it is not, and its
    traces reached the browser only as update messages sent before the view
    existed: a browser slower than the kernel dropped them and drew an empty
    figure."""
    if isinstance(widget, go.FigureWidget):
        widget._repr_mimebundle_()
    for child in getattr(widget, "children", ()):
        _sync_figures(child)


def _with_plain_text(box: W.Widget, text: str, kwargs: dict) -> dict:
    """The box's display bundle, its figures synced, with a stable one-line
    text/plain in it."""
    _sync_figures(box)
    bundle = box._repr_mimebundle_(**kwargs)
    bundle["text/plain"] = text
    return bundle


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimals(step: float) -> int:
    """Digits after the point needed to write `step` (0.05 -> 2, 1 -> 0)."""
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1])


def slider(name: str, lo: float, hi: float, step: float,
           default: float | None = None) -> W.IntSlider | W.FloatSlider:
    """An IntSlider if lo, hi and step are all ints, else a FloatSlider, acting on
    release; it starts at `default`, or at the grid point nearest the middle."""
    if not lo < hi or not step > 0:
        raise ConfigError(f"{name}: a slider needs lo < hi and step > 0, "
                          f"got ({lo}, {hi}, {step})")
    whole = all(isinstance(v, int) for v in (lo, hi, step))
    if default is None:
        default = lo + round((hi - lo) / step) // 2 * step
    if not lo <= default <= hi:
        raise ConfigError(f"{name}: default {default} is outside [{lo}, {hi}]")
    common = {"min": lo, "max": hi, "step": step, "description": name,
              "continuous_update": False, "style": WIDE}
    if whole:
        return W.IntSlider(value=default, **common)
    digits = _decimals(step)
    return W.FloatSlider(value=round(default, digits), readout_format=f".{digits}f",
                         **common)


def control(name: str, spec: Any) -> W.ValueWidget | None:
    """The widget for one `explore` keyword, or None for a fixed value.

    (lo, hi, step) or (lo, hi, step, default) -> slider; a list -> Dropdown
    (items, or (label, value) pairs; starts at the first); a bool -> Checkbox.
    """
    if isinstance(spec, bool):
        return W.Checkbox(value=spec, description=name, style=WIDE)
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{name}: a dropdown needs at least one option")
        return W.Dropdown(options=spec, description=name, style=WIDE)
    if isinstance(spec, tuple) and len(spec) in (3, 4) and all(map(_is_number, spec)):
        return slider(name, *spec)
    return None


def headline(result: Result) -> str:
    """One line about a result: its data's headline (a scenario's record, or
    the dict of any other function handed to `explore`) and its fingerprint."""
    said = data_field(result, "headline", None)
    if said is not None:
        return f"{said} · fingerprint {result.fingerprint}"
    return repr(result)


def progress(iterable: Iterable, total: int | None = None,
             description: str = "") -> Iterator:
    """Yield the items of `iterable` while a progress bar and an "i/n" label count
    them. It shows no timings, so the stored output is the same on every run."""
    items = iterable
    if total is None:
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        total = len(items)
    bar = W.IntProgress(min=0, max=max(total, 1), value=0, description=description,
                        style=WIDE)
    label = W.HTML(f"0/{total}")
    text = f"{description or 'progress'}: {total} steps"    # stored in the notebook
    display(_with_plain_text(W.HBox([bar, label]), text, {}), raw=True)
    for done, item in enumerate(items, start=1):
        yield item
        bar.value, label.value = min(done, bar.max), f"{done}/{total}"


class ServerSwitches(W.HBox, W.ValueWidget):
    """One kill/restart toggle per server, labelled `<prefix><i + first>` (s1..sN
    by default, the naming of every notebook). `value` is the tuple of (0-based)
    servers switched off (observe it like any widget's value); `resize` keeps the
    switches of the servers that still exist; `switch_off` clicks by name."""

    def __init__(self, servers: int, *, prefix: str = "s", first: int = 1):
        super().__init__()
        self.prefix, self.first = prefix, first
        self.value: tuple[int, ...] = ()
        self.resize(servers)

    def resize(self, servers: int) -> None:
        """Keep the switches of servers 0..servers-1 as they are, add switched-on
        ones for new servers, and close those of servers that are gone (a
        closed widget leaves the page and the kernel's live widgets)."""
        old = getattr(self, "buttons", [])
        for button in old[servers:]:
            button.close()
        self.buttons = old[:servers]
        for i in range(len(self.buttons), servers):
            self.buttons.append(W.ToggleButton(value=False,
                                               layout=W.Layout(width="auto")))
            self._label(i)
            self.buttons[i].observe(partial(self._toggle, i), names="value")
        self.children = self.buttons
        self.value = tuple(s for s in self.value if s < servers)

    def _label(self, i: int) -> None:
        button = self.buttons[i]
        verb = "restart" if button.value else "kill"
        button.description = f"{verb} {self.prefix}{i + self.first}"
        button.button_style = "danger" if button.value else ""

    def _toggle(self, i: int, change: Mapping[str, Any]) -> None:
        if i >= len(self.buttons) or self.buttons[i] is not change["owner"]:
            return                   # a closed switch, set from Python: not ours
        self._label(i)
        self.value = tuple(j for j, b in enumerate(self.buttons) if b.value)

    def switch_off(self, names: Iterable[str]) -> None:
        """Switch off the servers named (e.g. "s1"), as a click on each would."""
        labels = [f"{self.prefix}{i + self.first}" for i in range(len(self.buttons))]
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            if name not in labels:
                raise ConfigError(f"no server named {name!r} to switch off; the "
                                  f"servers are {', '.join(labels)}")
        for name in names:
            self.buttons[labels.index(name)].value = True


class NodeSwitches(W.VBox, W.ValueWidget):
    """Kill/restart toggles for the capstone's storage servers (top row) and
    metadata nodes (bottom row); `value` is the tuple of node names switched off."""

    def __init__(self):
        super().__init__()
        self.rows = {"s": ServerSwitches(len(scenarios.CAPSTONE_SERVERS), prefix="s",
                                         first=1),
                     "n": ServerSwitches(len(scenarios.CAPSTONE_METADATA), prefix="n",
                                         first=1)}
        self.value: tuple[str, ...] = ()
        for row in self.rows.values():
            row.observe(self._changed, names="value")
        self.children = list(self.rows.values())

    def _changed(self, _change: Mapping[str, Any]) -> None:
        self.value = tuple(f"{prefix}{i + 1}" for prefix, row in self.rows.items()
                           for i in row.value)
