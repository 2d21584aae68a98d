"""Widget callbacks driven in plain Python, as a student's clicks would drive
them: set a control, then read the figure and the status line."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import ipywidgets as W
import plotly
import plotly.graph_objects as go
import pytest

from labkit import plot, widgets
from labkit.errors import ConfigError, Unavailable
from labkit.metrics import Metrics, Result
from labkit.scenarios import journal_by_node
from labkit.widgets.figure import LiveFigure, plotly_code

REPO = Path(__file__).resolve().parents[1]


class Recorder:
    """A scenario that records its calls and returns its params as data; it raises
    ConfigError for n < 0 and Unavailable for n == 13."""

    def __init__(self):
        self.calls = []

    def __call__(self, n=0, label="a", flag=False, scale=1.0) -> Result:
        self.calls.append((n, label, flag, scale))
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        if n == 13:
            raise Unavailable("no quorum for n = 13")
        return Result("recorder", {"n": n}, seed=0, metrics=Metrics(),
                      data={"n": n, "scale": scale, "headline": f"n is {n}"})


def view(result: Result) -> go.Figure:
    return go.Figure(go.Bar(x=["n"], y=[result.data["n"] * result.data["scale"]]),
                     layout={"title": f"n = {result.data['n']}"})


@pytest.fixture
def recorder():
    return Recorder()


def test_each_kind_of_keyword_becomes_its_control(recorder):
    ex = widgets.explore(recorder, view, n=(0, 10, 2), label=["a", "b"], flag=True,
                         scale=(0.0, 1.0, 0.25, 0.75))
    c = ex.controls
    assert isinstance(c["n"], W.IntSlider) and c["n"].value == 4   # grid midpoint
    assert isinstance(c["scale"], W.FloatSlider) and c["scale"].value == 0.75
    assert not c["n"].continuous_update and not c["scale"].continuous_update
    assert isinstance(c["label"], W.Dropdown) and c["label"].value == "a"
    assert isinstance(c["flag"], W.Checkbox) and c["flag"].value is True
    assert recorder.calls == [(4, "a", True, 0.75)]


def test_other_values_are_passed_through_unchanged(recorder):
    ex = widgets.explore(recorder, view, n=(0, 9, 1), label="fixed", scale=2.0)
    assert list(ex.controls) == ["n"]
    assert ex.params == {"label": "fixed", "scale": 2.0, "n": 4}


def test_moving_a_control_redraws_the_figure_in_place(recorder):
    ex = widgets.explore(recorder, view, n=(0, 10, 1), title="demo")
    figure = ex.figure
    ex.controls["n"].value = 7
    assert ex.figure is figure and list(figure.data[0].y) == [7]
    assert figure.layout.title.text == "n = 7"
    assert ex.result.data["n"] == 7
    assert "n is 7" in ex.status.value and "labkit-status" in ex.status._dom_classes


def test_runs_are_cached_by_parameter_values(recorder):
    ex = widgets.explore(recorder, view, n=(0, 10, 1))
    for value in (2, 3, 2, 5, 3, 5):
        ex.controls["n"].value = value
    assert [call[0] for call in recorder.calls] == [5, 2, 3]
    assert list(ex.figure.data[0].y) == [5]


def test_cache_forgets_the_least_recently_used_run(recorder, monkeypatch):
    monkeypatch.setattr(widgets.explorer, "CACHE_SIZE", 2)
    ex = widgets.explore(recorder, view, n=(0, 10, 1))   # runs n = 5
    for value in (1, 2, 1, 5):                           # 5 was pushed out by 2
        ex.controls["n"].value = value
    assert [call[0] for call in recorder.calls] == [5, 1, 2, 5]


@pytest.mark.parametrize("bad,message", [(-1, "n must be >= 0"), (13, "no quorum")])
def test_scenario_errors_show_in_status_and_keep_the_figure(recorder, bad, message):
    ex = widgets.explore(recorder, view, n=(-5, 15, 1, 3))
    ex.controls["n"].value = bad
    assert message in html.unescape(ex.status.value)
    assert "labkit-warning" in ex.status._dom_classes
    assert list(ex.figure.data[0].y) == [3] and ex.result.data["n"] == 3
    ex.controls["n"].value = 4
    assert "labkit-warning" not in ex.status._dom_classes
    assert list(ex.figure.data[0].y) == [4]


def test_bad_control_specs_are_config_errors(recorder):
    with pytest.raises(ConfigError, match="lo < hi"):
        widgets.explore(recorder, view, n=(5, 1, 1))
    with pytest.raises(ConfigError, match="outside"):
        widgets.explore(recorder, view, n=(0, 5, 1, 9))
    with pytest.raises(ConfigError, match="at least one option"):
        widgets.explore(recorder, view, label=[])
    with pytest.raises(TypeError, match="two functions"):
        widgets.explore(recorder, "not a view")


def test_explorer_displays_as_a_box_with_a_stable_text_form(recorder):
    ex = widgets.explore(recorder, view, n=(0, 3, 1))
    bundle = ex._repr_mimebundle_()
    assert bundle["text/plain"] == "Explorer(Recorder, controls=['n'])"
    assert ex.figure in ex.box.children and ex.status in ex.box.children


def synced_traces(figure: go.FigureWidget) -> list[dict]:
    """The traces the browser's model starts from (the state sent on display)."""
    return figure._widget_data


#: Builders of one playground of each kind, and the live figures of one.
PLAYGROUNDS = {"explorer": lambda: widgets.explore(Recorder(), view, n=(0, 3, 1)),
               "paxos": widgets.paxos_playground,
               "cluster": widgets.cluster_playground}


def live_figures(pg) -> list[go.FigureWidget]:
    figures = [w for w in (getattr(pg, "figure", None), getattr(pg, "counts", None))
               if isinstance(w, go.FigureWidget)]
    assert figures
    return figures


@pytest.mark.parametrize("build", PLAYGROUNDS.values(), ids=PLAYGROUNDS)
def test_a_displayed_playground_sends_its_figures_with_their_traces(build):
    # A view created after the kernel drew the figure must not start empty:
    # the browser may have missed the update messages sent before it existed.
    pg = build()
    pg._repr_mimebundle_()
    for figure in live_figures(pg):
        assert len(figure.data) > 0
        synced = [t["type"] for t in synced_traces(figure)]
        assert synced == [t.type for t in figure.data]


@pytest.mark.parametrize("build", PLAYGROUNDS.values(), ids=PLAYGROUNDS)
def test_every_figure_shares_one_copy_of_plotlys_javascript(build):
    # A go.FigureWidget sends plotly's front end (5 MB) in its own state, and
    # the page evaluates each copy anew; a LiveFigure sends a short loader and
    # a reference to the kernel's one PlotlyCode model, which holds that code.
    code = plotly_code()
    bundle = Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"
    assert code.source == bundle.read_text(encoding="utf-8")
    for figure in live_figures(build()):
        state = figure.get_state()
        assert len(state["_esm"]) < 2_000
        assert state["_plotly"] == f"IPY_MODEL_{code.model_id}"
        assert state["_plotly_version"] == plotly.__version__


def test_a_closed_plotly_code_model_is_made_anew():
    # Widget.close_all() (or closing it) leaves a model the page no longer
    # has: a figure made afterwards must point to a live one.
    closed = plotly_code()
    closed.close()
    fresh = plotly_code()
    assert fresh is not closed and fresh.comm is not None
    assert LiveFigure().get_state()["_plotly"] == f"IPY_MODEL_{fresh.model_id}"


def test_switches_of_removed_servers_are_closed_and_the_rest_kept():
    # Every live widget must be safe to drive (a fuzzer drives them all): the
    # switches of servers a smaller cluster no longer has were left live, and
    # clicking one raised IndexError.
    from ipywidgets.widgets.widget import _instances

    switches = widgets.ServerSwitches(5)
    switches.switch_off(["s2", "s5"])
    gone = switches.buttons[3:]
    switches.resize(3)
    assert switches.value == (1,)
    assert [b.description for b in switches.buttons] == ["kill s1", "restart s2",
                                                         "kill s3"]
    assert all(b.comm is None for b in gone)
    assert not any(b in _instances.values() for b in gone)
    for button in gone:                      # set from Python, they change nothing
        button.value = not button.value
    assert switches.value == (1,)
    switches.resize(4)
    assert [b.description for b in switches.buttons] == ["kill s1", "restart s2",
                                                         "kill s3", "kill s4"]
    switches.buttons[3].value = True
    assert switches.value == (1, 3)


def test_progress_yields_everything_and_ends_full(capsys):
    assert list(widgets.progress(range(4), description="sweep")) == [0, 1, 2, 3]
    items = widgets.progress(i * i for i in range(3))     # no len(): counted first
    assert list(items) == [0, 1, 4]
    shown = capsys.readouterr().out
    assert "sweep: 4 steps" in shown and "progress: 3 steps" in shown


# -- the cluster playground -------------------------------------------------------

@pytest.fixture
def pg():
    return widgets.cluster_playground(nodes=5, seed=1)


def node_colours(pg):
    nodes = next(t for t in pg.figure.data if t.name == "nodes")
    return dict(zip(nodes.text, nodes.marker.color, strict=True))


def delivered_to(pg, name):
    trace = pg.cluster.sim.trace
    return journal_by_node(trace, pg.cluster.names)["delivered"][name]


def window(pg, event):
    bar = next(t for t in pg.counts.data if t.name == event)
    return dict(zip(bar.x, bar.y, strict=True))


def test_playground_starts_with_everyone_up_and_talking(pg):
    assert set(node_colours(pg).values()) == {plot.UP}
    net = pg.cluster.network
    assert net.messages_delivered > 0
    assert (f"delivered {net.messages_delivered} · dropped {net.messages_dropped}"
            in pg.status.value)
    assert min(window(pg, "delivered").values()) > 0


def test_killing_a_node_greys_it_and_stops_its_deliveries(pg):
    pg.kill_buttons["n1"].value = True
    assert pg.kill_buttons["n1"].description == "restart n1"
    assert node_colours(pg)["n1"] == plot.DOWN
    assert node_colours(pg)["n2"] == plot.UP
    assert window(pg, "delivered")["n1"] == 0 and window(pg, "dropped")["n1"] > 0
    frozen = delivered_to(pg, "n1")
    pg.run_button.click()
    assert delivered_to(pg, "n1") == frozen
    pg.kill_buttons["n1"].value = False
    assert pg.kill_buttons["n1"].description == "kill n1"
    assert node_colours(pg)["n1"] == plot.UP and delivered_to(pg, "n1") > frozen


def test_every_action_advances_time_by_one_step(pg):
    start = pg.cluster.now
    pg.run_button.click()
    pg.loss.value = 0.1
    pg.kill_buttons["n3"].value = True
    assert pg.cluster.now == pytest.approx(start + 3 * pg.step)
    assert f"t = {pg.cluster.now:g} s" in pg.status.value


def test_loss_slider_sets_the_network_loss_and_drops_follow(pg):
    pg.loss.value = 0.2
    assert pg.cluster.network.config.loss == 0.2
    assert sum(window(pg, "dropped").values()) > 0
    assert pg.cluster.network.drop_reasons["loss"] > 0


def test_partition_cuts_the_links_between_the_halves(pg):
    label = "{n1,n2} | {n3,n4,n5}"
    pg.partition.value = label
    cut = next(t for t in pg.figure.data if t.name == "cut link")
    ends = {frozenset(p for p in zip(cut.x[i:i + 2], cut.y[i:i + 2], strict=True))
            for i in range(0, len(cut.x), 3)}
    assert len(ends) == 2 * 3
    start = len(pg.cluster.sim.trace)
    pg.run_button.click()
    minority = {"n1", "n2"}
    crossing = [r for r in pg.cluster.sim.trace[start:] if r.event == "deliver"
                and (r.src in minority) != (r.dst in minority)]
    assert crossing == []
    pg.partition.value = "none"
    assert not any(t.x for t in pg.figure.data if t.name == "cut link")


def test_isolating_a_node_cuts_all_its_links(pg):
    pg.partition.value = "isolate n1"
    cut = next(t for t in pg.figure.data if t.name == "cut link")
    assert len(cut.x) == 3 * 4


def test_all_nodes_down_is_a_message_not_a_traceback(pg):
    for button in pg.kill_buttons.values():
        button.value = True
    assert "all nodes are down: nothing can be delivered" in pg.status.value
    assert "labkit-warning" in pg.status._dom_classes
    assert set(node_colours(pg).values()) == {plot.DOWN}
    pg.run_button.click()
    assert sum(window(pg, "delivered").values()) == 0
    pg.kill_buttons["n2"].value = False
    assert "labkit-warning" not in pg.status._dom_classes


def test_playground_text_form_is_stable(pg):
    text = pg._repr_mimebundle_()["text/plain"]
    assert text.startswith("ClusterPlayground(Cluster(5 nodes") and "0x" not in text


def test_actions_run_with_the_cyclic_collector_paused_then_restored():
    import gc

    seen = []

    def scenario(n=0):
        seen.append(("run", gc.isenabled()))
        if n < 0:
            raise ConfigError("n must be >= 0")
        return Result("probe", {"n": n}, seed=0, metrics=Metrics(),
                      data={"n": n, "scale": 1.0, "headline": f"n is {n}"})

    def drawn(result):
        seen.append(("view", gc.isenabled()))
        return view(result)

    assert gc.isenabled()
    ex = widgets.explore(scenario, drawn, n=(-1, 3, 1, 0))
    ex.controls["n"].value = -1                     # a failed run restores it too
    assert seen == [("run", False), ("view", False), ("run", False)]
    assert gc.isenabled()
    gc.disable()
    try:                                            # a collector the user paused
        ex.controls["n"].value = 2                  # stays paused afterwards
        assert seen[-1] == ("view", False) and not gc.isenabled()
    finally:
        gc.enable()


def test_importing_the_widgets_freezes_what_the_kernel_holds_by_then():
    # In a fresh process: this one's collector is frozen by conftest.py.
    code = ("import gc; before = gc.get_freeze_count(); import labkit.widgets; "
            "print(before, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    before, after = map(int, out)
    assert before == 0 and after > 50_000
