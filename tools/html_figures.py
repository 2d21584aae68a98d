"""An nbconvert preprocessor for `make html`: the course as static pages whose
plotly figures stay interactive.

It lives beside the build, not in labkit, because only the HTML build needs it.
tools/ is not a package, so the Makefile puts tools/ on PYTHONPATH and names
the preprocessor `html_figures.html_figures`.
"""

from __future__ import annotations

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"


def html_figures(nb, resources: dict) -> tuple:
    """An nbconvert preprocessor that keeps stored plotly figures interactive
    in static HTML: each figure output gets an HTML rendering (a div and the
    script that draws it), and plotly.js is written once beside the pages as
    plotly.min.js, so they work offline. `make html` runs
    `PYTHONPATH=tools jupyter nbconvert --to html
    --HTMLExporter.preprocessors='["html_figures.html_figures"]' ...`."""
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
