"""Playgrounds that step a live cluster: notebook 00's (kill, partition,
loss) and notebook 05's Raft playground (plus election timeouts and client
writes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import ipywidgets as W

from labkit import plot, raft, scenarios
from labkit.errors import ConfigError, Unavailable, require_number
from labkit.metrics import Result
from labkit.node import Cluster

from .controls import (
    WIDE,
    _collector_paused,
    _say,
    _show,
    _status_line,
    _with_plain_text,
)
from .figure import LiveFigure


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
        self.figure, self.counts = LiveFigure(), LiveFigure()
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
        with _collector_paused():
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
