"""`LiveFigure`: a plotly FigureWidget whose JavaScript reaches the page once.

plotly's FigureWidget is an anywidget that carries its front end, 5 MB of
JavaScript (plotly.js and the widget code), in every widget's state: each
FigureWidget sends it from the kernel through the server, and the page
evaluates it anew, as a module of its own, and keeps it until the page
closes (about 22 MB of heap a figure, again each time a cell is re-run).
A LiveFigure carries a loader of a few lines instead. The code
travels once per kernel, in one `PlotlyCode` model every LiveFigure points
to, and the page evaluates it once and shares the module between the
LiveFigures of every kernel running the same plotly. Each LiveFigure still
gets a widget of its own from the module's factory: it is a FigureWidget in
all but the transport, and Python code uses it as one. bench/browser.py
measures the difference.
"""

from __future__ import annotations

import ipywidgets as W
import plotly
import plotly.graph_objects as go
from traitlets import Instance, Unicode, default

#: The loader each LiveFigure sends: it fetches the `PlotlyCode` model its
#: `_plotly` trait names, imports that code once per page and plotly version
#: (the promise is kept on globalThis), and lets the module's factory make
#: this figure's widget, once, as anywidget would have: initialize and render
#: wait for the same one, in the order anywidget calls them.
_LOADER = """
const shared = async (model) => {
  const key = Symbol.for(`labkit.plotly-widget@${model.get("_plotly_version")}`);
  globalThis[key] ??= model.widget_manager
    .get_model(model.get("_plotly").slice("IPY_MODEL_".length))
    .then((code) => import(URL.createObjectURL(
      new Blob([code.get("source")], { type: "text/javascript" }))))
    .catch((error) => { delete globalThis[key]; throw error; });
  return (await globalThis[key]).default;
};

export default () => {
  let made;                       // this figure's widget, made once the code is in
  const widget = (model) => (made ??= shared(model).then((factory) => factory()));
  return {
    async initialize(context) {
      return (await widget(context.model)).initialize?.(context);
    },
    async render(context) {
      return (await widget(context.model)).render(context);
    },
  };
};
"""


class PlotlyCode(W.Widget):
    """plotly's widget front end as a widget model without a view: sent to
    the page once per kernel (see `plotly_code`)."""

    source = Unicode().tag(sync=True)


_code: PlotlyCode | None = None


def plotly_code() -> PlotlyCode:
    """The kernel's one PlotlyCode model, made again if it was closed
    (`Widget.close_all()`)."""
    global _code
    if _code is None or _code.comm is None:
        _code = PlotlyCode(source=str(go.FigureWidget._esm))
    return _code


class LiveFigure(go.FigureWidget):
    """A `go.FigureWidget` that shares plotly's JavaScript with every other
    LiveFigure of the page instead of carrying its own copy."""

    _esm = _LOADER
    _plotly = Instance(PlotlyCode).tag(sync=True, **W.widget_serialization)
    _plotly_version = Unicode(plotly.__version__).tag(sync=True)

    @default("_plotly")
    def _default_plotly(self) -> PlotlyCode:
        return plotly_code()
