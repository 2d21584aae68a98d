"""ipywidgets controls that drive scenarios and redraw plotly figures in place.

Everything here works without a browser: set a control's value (or click a
button) in plain Python, then read the figure's data; that is how the tests
drive it. Sliders act on release, not while dragging, and scenario runs are
cached by their parameters, so a classroom demo answers at once.
"""

from __future__ import annotations

import gc
import html
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display

from labkit import plot, raft, scenarios
from labkit.errors import ConfigError, Unavailable, require_number
from labkit.metrics import Result
from labkit.node import Cluster
from labkit.plot.common import data_field

CACHE_SIZE = 64             # scenario runs an Explorer keeps, least recently used out
WARNING_COLOUR = "#b45309"
WIDE = {"description_width": "initial"}


# -- shared helpers ---------------------------------------------------------------

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


def _with_plain_text(box: W.Widget, text: str, kwargs: dict) -> dict:
    """The box's display bundle with a stable one-line text/plain in it."""
    bundle = box._repr_mimebundle_(**kwargs)
    bundle["text/plain"] = text
    return bundle


# -- explore: a scenario function behind controls --------------------------------

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
        self.figure = go.FigureWidget()
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
        result = self._simulate(params)
        if key is not None:
            self._cache[key] = result
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def _simulate(self, params: dict[str, Any]) -> Result:
        """One run with the cyclic garbage collector paused: in a kernel full of
        results, the collections a run's allocations trigger cost more than it."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self.scenario(**params)
        finally:
            if paused:
                gc.enable()

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


# -- the cluster playground of notebook 00 --------------------------------------

class ClusterPlayground:
    """An echo cluster to break by hand: kill and restart nodes, partition the
    network, add loss, and watch what still gets delivered.

    Every action advances simulated time by `step` seconds
    (`scenarios.cluster_step`) and redraws `figure` (the topology), `counts`
    (messages delivered to / dropped on the way to each node during that step)
    and `status` ("t = … · " and the step's headline).
    """

    def __init__(self, cluster: Cluster, *, step: float = 1.0, max_loss: float = 0.5):
        self.cluster = cluster
        self.step = require_number("step", step, positive=True)
        names = cluster.names
        minority, majority = scenarios.halves(names)
        self.partitions: dict[str, list[list[str]]] = {
            "none": [],
            f"{{{','.join(minority)}}} | {{{','.join(majority)}}}": [minority,
                                                                    majority],
            f"isolate {names[0]}": [[names[0]]],
        }
        self.kill_buttons = {n: W.ToggleButton(description=f"kill {n}") for n in names}
        for name, button in self.kill_buttons.items():
            button.observe(partial(self._act, partial(self._toggle, name)),
                           names="value")
        self.partition = W.Dropdown(options=list(self.partitions), value="none",
                                    description="partition", style=WIDE)
        self.partition.observe(partial(self._act, self._split), names="value")
        self.loss = W.FloatSlider(value=cluster.network.config.loss, min=0.0,
                                  max=max_loss, step=0.05, readout_format=".2f",
                                  continuous_update=False, description="loss")
        self.loss.observe(partial(self._act, self._set_loss), names="value")
        self.run_button = W.Button(description=f"run {step:g} s")
        self.run_button.on_click(lambda _button: self._act(None))
        self.figure, self.counts = go.FigureWidget(), go.FigureWidget()
        self.status = _status_line()
        self.box = W.VBox([W.HBox(list(self.kill_buttons.values())),
                           W.HBox([self.partition, self.loss, self.run_button]),
                           W.HBox([self.figure, self.counts]), self.status])
        self.advance()

    def _act(self, action: Callable[[Any], None] | None,
             change: Mapping[str, Any] | None = None) -> None:
        """Apply one user action to the control's new value, then advance and
        redraw; bad input is reported in the status line, never raised inside a
        widget callback."""
        try:
            if action is not None:
                action(change["new"])
            self.advance()
        except (ConfigError, Unavailable) as exc:
            _say(self.status, str(exc), warning=True)

    def _toggle(self, name: str, killed: bool) -> None:
        (self.cluster.kill if killed else self.cluster.restart)(name)
        button = self.kill_buttons[name]
        button.description = f"{'restart' if killed else 'kill'} {name}"
        button.button_style = "danger" if killed else ""

    def _split(self, label: str) -> None:
        self.cluster.heal()
        if self.partitions[label]:
            self.cluster.partition(*self.partitions[label])

    def _set_loss(self, loss: float) -> None:
        self.cluster.network.update(loss=loss)

    def advance(self) -> None:
        """Run the cluster for `step` simulated seconds and redraw everything."""
        self.redraw(scenarios.cluster_step(self.cluster, self.step,
                                           "cluster_playground"))

    def redraw(self, run: Result) -> None:
        """Draw a `scenarios.cluster_step` run: the topology, the per-node counts
        of the step and the status."""
        c, net, step = self.cluster, self.cluster.network, run.data
        names = step.names
        cuts = [(a, b) for a in names for b in names if a != b and net.is_blocked(a, b)]
        _show(self.figure, plot.topology(names, step.up, cuts, title=f"t = {c.now:g} "
                                         f"s · loss {net.config.loss:.2f}"))
        _show(self.counts, plot.bars(step.window, title=f"last {self.step:g} s, by "
                                     "receiving node", y="messages"))
        totals = f"t = {c.now:g} s · {step.headline}"
        if step.up:
            _say(self.status, totals)
        else:
            _say(self.status, f"all nodes are down: nothing can be delivered · "
                              f"{totals}", warning=True)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return _with_plain_text(self.box, repr(self), kwargs)

    def __repr__(self) -> str:
        return f"ClusterPlayground({self.cluster!r})"


def cluster_playground(nodes: int = 5, *, seed: int = 0, latency: float = 0.010,
                       loss: float = 0.0, interval: float = 0.1,
                       step: float = 1.0) -> ClusterPlayground:
    """A playground on `scenarios.echo_cluster`: `nodes` nodes, each pinging every
    other every `interval` seconds; buttons kill/restart nodes, a dropdown
    partitions, a slider sets loss, and every action runs `step` seconds."""
    cluster = scenarios.echo_cluster(seed, nodes=nodes, latency=latency, loss=loss,
                                     interval=interval)
    return ClusterPlayground(cluster, step=step)


# -- kill switches beside an explorer (notebooks 02 and 04) -----------------------

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
        down = [s for s in self.value if s < servers]
        self.buttons = [W.ToggleButton(value=i in down, layout=W.Layout(width="auto"))
                        for i in range(servers)]
        for i, button in enumerate(self.buttons):
            self._label(i)
            button.observe(partial(self._toggle, i), names="value")
        self.children = self.buttons
        self.value = tuple(down)

    def _label(self, i: int) -> None:
        button = self.buttons[i]
        verb = "restart" if button.value else "kill"
        button.description = f"{verb} {self.prefix}{i + self.first}"
        button.button_style = "danger" if button.value else ""

    def _toggle(self, i: int, _change: Mapping[str, Any]) -> None:
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


def balancer_playground(*, seed: int = 1, servers: int = 8, max_servers: int = 12,
                        requests: int = 20_000) -> SwitchedExplorer:
    """The load-balancing playground of notebook 02: policy, load, fleet size, d
    and the slowdown of server s1, with a kill/restart switch per server s1..sN
    (a switched-off server dies a third of the way into the run). Every change
    reruns the scenario (cached by parameters) and redraws `plot.fleet`: the
    latency CDF and each server's busy share while requests arrive."""
    explorer = explore(
        scenarios.load_balancer, plot.fleet, seed=seed, requests=requests,
        policy=list(scenarios.BALANCING_POLICIES), load=(0.1, 1.2, 0.05, 0.9),
        servers=(2, max_servers, 1, servers), d=(1, 4, 1, 2),
        slow=(1.0, 5.0, 0.5, 3.0))
    return SwitchedExplorer("BalancerPlayground", explorer, ServerSwitches(servers),
                            "servers")


def paxos_playground(*, seed: int = 0, acceptors: int = 5,
                     max_acceptors: int = 7) -> SwitchedExplorer:
    """The single-decree playground of notebook 04: acceptors, proposers, loss,
    backoff range, a distinguished proposer, the seed, and a kill/restart switch
    per acceptor a1..aN (a killed acceptor crashes at 15 ms, after promising).
    Every change reruns the scenario and redraws `plot.paxos_timeline`; the
    status line says whether and when a value was chosen."""
    explorer = explore(
        scenarios.paxos_playground, plot.paxos_timeline,
        seed=(0, 20, 1, seed), acceptors=(1, max_acceptors, 1, acceptors),
        proposers=(1, 3, 1, 2), loss=(0.0, 0.3, 0.05, 0.0),
        backoff=(0.0, 0.2, 0.01, 0.05), leader=False)
    return SwitchedExplorer("PaxosPlayground", explorer,
                            ServerSwitches(acceptors, prefix="a", first=1),
                            "acceptors")


# -- 05 raft ----------------------------------------------------------------------

#: Network cuts the Raft playground offers; the leader is the one of that moment.
RAFT_CUTS = ("none", "isolate the leader", "leader in the minority",
             "minority | majority")


class RaftPlayground(ClusterPlayground):
    """A Raft cluster to break by hand: kill and restart servers, cut the network
    (`RAFT_CUTS`), add loss, change the election timeout range. A client submits
    a command every `every` s to whoever leads. Every action runs `step` s and
    redraws the role timeline of the last `window` s (`roles_figure`), the log
    grid (`log_figure`) and the status line (leader, elections, leaderless time
    in the last step, commands accepted and committed)."""

    def __init__(self, cluster: raft.RaftCluster, *, step: float = 1.0,
                 window: float = 5.0, every: float = 0.1, max_loss: float = 0.5):
        self.window = require_number("window", window, positive=True)
        self.every = require_number("every", every, positive=True)
        self.sent = self.accepted = 0
        lo, hi = cluster.config.election_timeout
        self.timeout = W.FloatRangeSlider(
            value=(lo, hi), min=0.06, max=1.0, step=0.01, readout_format=".2f",
            continuous_update=False, description="election timeout (s)", style=WIDE)
        self.timeout.observe(partial(self._act, self._set_timeout), names="value")
        super().__init__(cluster, step=step, max_loss=max_loss)
        self.partition.options = list(RAFT_CUTS)
        self.roles_figure, self.log_figure = self.figure, self.counts
        self.box = W.VBox([W.HBox(list(self.kill_buttons.values())),
                           W.HBox([self.partition, self.loss]),
                           W.HBox([self.timeout, self.run_button]),
                           self.roles_figure, self.log_figure, self.status])

    def _split(self, label: str) -> None:
        c = self.cluster
        c.heal()
        leader, names = c.leader(), c.names
        if label == "minority | majority":
            c.partition(*scenarios.halves(names))
        elif label != "none" and leader is not None:
            buddy = names[(names.index(leader) + 1) % len(names)]
            side = [leader] if label == "isolate the leader" else [leader, buddy]
            c.partition(side, [n for n in names if n not in side])

    def _set_timeout(self, value: tuple[float, float]) -> None:
        self.cluster.configure(election_timeout=tuple(value))

    def _submit(self) -> None:
        self.sent += 1
        self.accepted += self.cluster.submit(f"cmd{self.sent}") is not None

    def committed(self) -> int:
        """Client commands applied by the most advanced state machine."""
        return max(len(self.cluster.applied(n)) for n in self.cluster.names)

    def advance(self) -> None:
        """Submit a command every `every` s while running `step` s; redraw."""
        c = self.cluster
        start, before = c.now, (self.sent, self.accepted, self.committed())
        for k in range(round(self.step / self.every)):
            c.sim.at(start + k * self.every, self._submit)
        c.run(self.step)
        self.redraw({"since": start, "sent": before[0], "accepted": before[1],
                     "committed": before[2]})

    def redraw(self, before: Mapping[str, float]) -> None:
        """Draw the roles, the logs and the status (`scenarios.raft_result`'s
        headline, then the last step); `before`: the time the step began and
        the command counts then."""
        c = self.cluster
        result = scenarios.raft_result(c, "raft_playground")
        _show(self.figure, plot.roles(result, since=max(0.0, c.now - self.window)))
        _show(self.counts, plot.log_grid(result, last=40))
        gap = raft.leaderless(result.data.roles, c.now, before["since"])
        committed = self.committed() - before["committed"]
        text = (f"{result.data.headline} · "
                f"last {self.step:g} s: {self.sent - before['sent']} commands sent, "
                f"{self.accepted - before['accepted']} accepted by a leader, "
                f"{committed} committed, leaderless {gap:.2f} s")
        _say(self.status, text, warning=committed == 0)

    def __repr__(self) -> str:
        return f"RaftPlayground({self.cluster!r})"


def raft_playground(*, seed: int = 1, nodes: int = 5, latency: float = 0.010,
                    election_timeout: tuple[float, float] = (0.150, 0.300),
                    pre_vote: bool = False, step: float = 1.0) -> RaftPlayground:
    """The Raft playground of notebook 05 (see RaftPlayground)."""
    cluster = scenarios.raft_cluster(seed, nodes=nodes, latency=latency,
                                     election_timeout=election_timeout,
                                     pre_vote=pre_vote, trace=False)
    return RaftPlayground(cluster, step=step)


# -- 07 storage -------------------------------------------------------------------

def storage_playground(*, seed: int = 1, nodes: int = 5, max_nodes: int = 8,
                       down: Iterable[str] = ()) -> SwitchedExplorer:
    """The storage playground of notebook 07: chunk servers, replication factor,
    write quorum, chunk size, R and W of the quorum store, the read share of the
    workload, a partition preset, killing the metadata leader, and a kill/restart
    switch per chunk server s1..sN (killed at t = 1 s); `down` names the servers
    switched off at the start (e.g. ["s1"]). Every change reruns
    `scenarios.storage_playground` and redraws `plot.storage_dashboard`."""
    explorer = explore(
        scenarios.storage_playground, plot.storage_dashboard, seed=seed,
        nodes=(3, max_nodes, 1, nodes), replication=(1, 5, 1, 3),
        write_quorum=(1, 5, 1, 2), chunk_size=[1024, 256, 4096],
        r=(1, 5, 1, 1), w=(1, 5, 1, 1), reads=(0.0, 1.0, 0.1, 0.5),
        partition=list(scenarios.STORAGE_PARTITIONS), kill_leader=False)
    panel = SwitchedExplorer("StoragePlayground", explorer,
                             ServerSwitches(nodes, prefix="s", first=1), "nodes")
    panel.switches.switch_off(down)
    return panel


# -- 08 mapreduce -----------------------------------------------------------------

def mapreduce_playground(*, seed: int = 1, workers: int = 8,
                         max_workers: int = 12) -> SwitchedExplorer:
    """The MapReduce playground of notebook 08: job, workers, M, R, the
    combiner, the last worker's slowdown, the backup policy, when killed
    workers crash, and a kill switch per worker w1..wN (a killed worker stays
    down). Every change reruns `scenarios.mapreduce_playground` and redraws
    `plot.gantt`; the status line gives the job time, re-executions and
    backups."""
    explorer = explore(
        scenarios.mapreduce_playground, plot.gantt, seed=(0, 9, 1, seed),
        job=list(scenarios.MAPREDUCE_JOBS), workers=(2, max_workers, 1, workers),
        splits=(4, 64, 4, 32), partitions=(1, 32, 1, 8), combiner=False,
        straggler=(1.0, 20.0, 1.0, 1.0), backups=list(scenarios.MAPREDUCE_BACKUPS),
        kill_at=(0.0, 600.0, 20.0, 100.0))
    return SwitchedExplorer("MapReducePlayground", explorer,
                            ServerSwitches(workers, prefix="w", first=1), "workers")


# -- 09 capstone ------------------------------------------------------------------

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


class CapstonePanel(ExplorerPanel):
    """The capstone's control panel: every knob of the course in one place, a
    kill/restart switch per node (a killed node crashes at t = 20 s and stays
    down), the dashboard, the scorecard against `slo`, and a tuning `journal`
    that records every run. The last line (CSS class "labkit-status") says
    which run this is and whether it meets the SLO."""

    def __init__(self, *, seed: int = 1, slo: scenarios.SLO | None = None,
                 faults: Iterable = scenarios.CAPSTONE_FAULTS):
        self.slo = scenarios.SLO() if slo is None else slo
        self.journal = scenarios.TuningJournal(self.slo)
        self.scores, self.status = W.HTML(), _status_line()
        start = scenarios.CAPSTONE_START
        first = {"policy": ["round_robin", "least_outstanding", "p2c", "random",
                            "consistent_hash"],
                 "jitter": ["none", "full", "equal", "exponential", "decorrelated"],
                 "breaker": ["none", "hystrix", "resilience4j"]}
        self.explorer = Explorer(scenarios.capstone, self._view, {
            "timeout": (0.05, 2.0, 0.05, start["timeout"]),
            "attempts": (1, 5, 1, start["attempts"]),
            "election_timeout": (0.05, 3.0, 0.05, start["election_timeout"]),
            "replication": (1, 5, 1, start["replication"]),
            "r": (1, 5, 1, start["r"]), "w": (1, 5, 1, start["w"]),
            **first, "budget": start["budget"], "hedging": start["hedging"],
            "seed": seed, "faults": tuple(faults)})
        self.switches = NodeSwitches()
        self.explorer.controls["kill"] = self.switches
        self.switches.observe(lambda _change: self.explorer.refresh(), names="value")
        knobs = [w for name, w in self.explorer.controls.items() if name != "kill"]
        grid = W.GridBox(knobs, layout=W.Layout(
            grid_template_columns="repeat(3, minmax(0, 1fr))"))
        self.box = W.VBox([self.switches, grid, self.explorer.figure,
                           self.explorer.status, self.scores, self.status])

    def _view(self, result: Result) -> go.Figure:
        """Record the run, score it, and draw its dashboard."""
        entry = self.journal.record(result)
        self.scores.value = scenarios.scorecard(result, self.slo).to_html()
        _say(self.status, f"run {entry.run}: {scenarios.verdict(result, self.slo)}",
             warning=not entry.meets_slo)
        return plot.capstone_dashboard(result, p99_ms=self.slo.p99_ms)

    @property
    def controls(self) -> dict[str, W.ValueWidget]:
        return self.explorer.controls

    def __repr__(self) -> str:
        return f"CapstonePanel({len(self.journal)} runs, {self.slo})"


def capstone_panel(*, seed: int = 1, slo: scenarios.SLO | None = None,
                   faults: Iterable = scenarios.CAPSTONE_FAULTS) -> CapstonePanel:
    """The notebook 09 control panel over `scenarios.capstone` (see
    CapstonePanel); starts at the walk-through's starting configuration."""
    return CapstonePanel(seed=seed, slo=slo, faults=faults)
