"""Every playground of every topic notebook, driven at random: a control
moved to any value it offers, in any order, must never raise, and no HTML
output of the playground (its status lines, the capstone's scorecard) may
show a traceback. Impossible states (every node killed, R > N) are a message,
not an error.

The cells a notebook's playgrounds need (tests/playground_cells.py, as the
browser test picks them) run here, in this process, with no kernel: widgets
work without a frontend. Then ACTIONS random actions, each on a live control
the notebook built: a slider or range slider to any value of its grid, a
dropdown to any option, a toggle or check box flipped, a button clicked. The
choices come from a random stream seeded by the notebook's name, so a failure
repeats; the message lists every action up to it. Every live plotly figure
the playgrounds built, before and after, must be a LiveFigure (a plain
FigureWidget would send plotly's 5 MB of JavaScript to the page again).
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path

import ipywidgets as W
import plotly.graph_objects as go
import pytest
from ipywidgets.widgets.widget import _instances
from playground_cells import builds_playground, needed_cells, syntax

from labkit.widgets import LiveFigure

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ACTIONS = 12
TRACEBACK = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception):")


def playground_cells(notebook: Path) -> list[str]:
    """The code of the cells that build the notebook's playgrounds and of the
    earlier cells they need, in order."""
    code = [cell for cell in json.loads(notebook.read_text())["cells"]
            if cell["cell_type"] == "code"]
    sources = ["".join(cell["source"]) for cell in code]
    builders = [i for i, source in enumerate(sources) if builds_playground(source)]
    return [sources[i] for i in needed_cells(sources, builders)]


def grid_value(w: W.Widget, rng: random.Random):
    """A value of a slider's grid, drawn from rng: an end of the range half of
    the time (where the impossible settings are), else any step."""
    steps = round((w.max - w.min) / w.step)
    value = w.min + w.step * (rng.choice((0, steps)) if rng.random() < 0.5
                              else rng.randint(0, steps))
    return int(value) if isinstance(w.value, int) else value


CHOICES = (W.Button, W.Checkbox, W.ToggleButton, W.IntRangeSlider, W.FloatRangeSlider,
           W.FloatLogSlider, W.IntSlider, W.FloatSlider, W.Dropdown, W.ToggleButtons,
           W.RadioButtons, W.SelectionSlider, W.Select)


def is_control(w: W.Widget) -> bool:
    """A live widget a student can click or change."""
    return isinstance(w, CHOICES) and not w.disabled and w.comm is not None


def random_value(w: W.Widget, rng: random.Random):
    """A value the control `w` offers, drawn from rng."""
    if isinstance(w, W.Checkbox | W.ToggleButton):
        return not w.value
    if isinstance(w, W.IntRangeSlider | W.FloatRangeSlider):
        return tuple(sorted(grid_value(w, rng) for _ in range(2)))
    if isinstance(w, W.FloatLogSlider):
        return w.base ** grid_value(w, rng)
    if isinstance(w, W.IntSlider | W.FloatSlider):
        return grid_value(w, rng)
    return rng.choice(list(w._options_values))   # a selection widget


def act(w: W.Widget, rng: random.Random) -> str:
    """Click `w` or set it to a random value; says what was done."""
    name = f"{type(w).__name__} {getattr(w, 'description', '')!r}"
    if isinstance(w, W.Button):
        w.click()
        return f"clicked {name}"
    value = random_value(w, rng)
    w.value = value
    return f"{name} = {value!r}"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_random_actions_on_every_control_never_raise(notebook, monkeypatch):
    monkeypatch.chdir(notebook.parent)              # where the notebook runs
    before, namespace = set(_instances), {}
    for source in playground_cells(notebook):
        exec(compile(syntax(source), notebook.name, "exec"), namespace)

    def built() -> list[W.Widget]:   # a playground may add and close widgets
        return [w for key, w in list(_instances.items()) if key not in before]

    def heavy_figures() -> list[str]:
        return [type(w).__name__ for w in built() if isinstance(w, go.FigureWidget)
                and not isinstance(w, LiveFigure)]

    rng, done = random.Random(zlib.crc32(notebook.stem.encode())), []
    try:
        assert not heavy_figures(), f"{notebook.name} built {heavy_figures()}"
        for _ in range(ACTIONS):
            controls = [w for w in built() if is_control(w)]
            assert controls, f"{notebook.name}: no control to drive"
            try:
                done.append(act(rng.choice(controls), rng))
            except Exception as error:
                pytest.fail(f"{type(error).__name__}: {error} after "
                            f"{done + ['(this one)']}")
            shown = [w.value for w in built() if isinstance(w, W.HTML)
                     and TRACEBACK.search(w.value or "")]
            assert not shown, f"after {done}: {shown[0][:500]}"
        assert not heavy_figures(), f"after {done}: {heavy_figures()}"
    finally:
        for w in built():
            w.close()
