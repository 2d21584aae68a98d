"""Scenarios of notebook 00, the simulator tour: nodes that ping each other
over a network with latency, loss and a partition (`ping`, `echo_cluster`,
`halves`), what each node received and lost according to the trace
(`journal_by_node`; `cluster_step` runs a cluster a while and counts them:
what the playground draws), and four latency shapes with the same mean
drawn side by side (`latency_samples`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from labkit import dist
from labkit.dist import Distribution
from labkit.errors import ConfigError, checked, require_int, require_number
from labkit.metrics import Record, Result, TraceRecord
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node
from labkit.sim import Simulator

from .common import ClusterRun, _window, cluster_data, cluster_result, with_data

#: Four latency shapes with (nearly) the same 10 ms mean and very different tails.
TOUR_LATENCIES: Mapping[str, Distribution] = MappingProxyType({
    "constant": dist.constant(0.010),
    "uniform": dist.uniform(0.002, 0.018),
    "exponential": dist.exponential(0.010),
    "lognormal": dist.lognormal(median=0.008, p99=0.040),
})


class PingNode(Node):
    """A node that pings every peer every `interval` seconds and answers each ping
    with a pong; each pong's round-trip time goes into the histogram "rtt"."""

    def __init__(self, name: str, net: Network, interval: float = 0.1):
        self.interval = interval        # set first: Node.__init__ calls reset()
        super().__init__(name, net)

    def reset(self) -> None:
        # A random first tick per node, so the nodes do not all ping in lockstep.
        first = self.sim.rng(f"ping.{self.name}").uniform(0.0, self.interval)
        self.set_timer("tick", first, self.ping_all)

    def ping_all(self) -> None:
        for peer in self.peers:
            self.send(peer, "ping", sent=self.sim.now)
        self.set_timer("tick", self.interval, self.ping_all)

    def on_ping(self, msg: Message) -> None:
        self.send(msg.src, "pong", sent=msg.sent)

    def on_pong(self, msg: Message) -> None:
        self.sim.metrics.histogram("rtt").add(self.sim.now - msg.sent)


@checked
def echo_cluster(seed: int = 0, *, nodes: int = 5,
                 latency: float | Distribution = 0.010, loss: float = 0.0,
                 interval: float = 0.1) -> Cluster:
    """A cluster of `PingNode`s n1..nN: every node pings every other periodically."""
    nodes = require_int("nodes", nodes, minimum=2)
    interval = require_number("interval", interval, positive=True)
    return Cluster(nodes, seed=seed, net=NetConfig(latency=latency, loss=loss),
                   node_factory=lambda name, net: PingNode(name, net, interval))


@checked
def halves(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The minority (first floor(n/2) names) and the majority (the rest)."""
    cut = len(names) // 2
    return list(names[:cut]), list(names[cut:])


@checked
def ping(seed: int = 0, *, nodes: int = 3, latency: float | Distribution = 0.010,
         loss: float = 0.0, interval: float = 0.1, duration: float = 1.0,
         partition: tuple[float, float] | None = None) -> Result:
    """Nodes pinging each other for `duration` seconds. With partition=(start, end)
    the minority half is cut off from the majority during [start, end)."""
    cluster = echo_cluster(seed, nodes=nodes, latency=latency, loss=loss,
                           interval=interval)
    duration = require_number("duration", duration, minimum=0.0)
    if partition is not None:
        start, end = _window("partition", partition)
        cluster.sim.at(start, cluster.partition, *halves(cluster.names))
        cluster.sim.at(end, cluster.heal)
    cluster.run(duration)
    return cluster_result(cluster, "ping", nodes=nodes, latency=latency, loss=loss,
                          interval=interval, duration=duration, partition=partition)


@checked
def journal_by_node(trace: Iterable[TraceRecord], names: Sequence[str],
                    since: float = 0.0) -> dict[str, dict[str, int]]:
    """Messages delivered to and dropped on the way to each node, counted from the
    trace records at or after time `since`: {"delivered": {n: k}, "dropped": ...}."""
    column = {"deliver": "delivered", "drop": "dropped"}
    counts = {name: dict.fromkeys(names, 0) for name in column.values()}
    for record in trace:
        if record.event in column and record.time >= since:
            counts[column[record.event]][record.dst] += 1
    return counts


@dataclass(frozen=True, kw_only=True)
class ClusterStep(ClusterRun):
    """`cluster_step`'s data: a `ClusterRun` of the whole run so far, with the
    messages delivered to and dropped on the way to each node during the step
    alone ("window", as `journal_by_node` counts them)."""

    window: dict[str, dict[str, int]]


@checked
def cluster_step(cluster: Cluster, seconds: float,
                 scenario: str = "cluster_step") -> Result:
    """Run `cluster` for `seconds` more; the Result of the run so far, with a
    `ClusterStep` (headline "delivered N · dropped M", the step's window) as
    its data."""
    seconds = require_number("seconds", seconds, minimum=0.0)
    start = len(cluster.sim.trace)
    cluster.run(seconds)
    result = cluster.result(scenario)
    window = journal_by_node(cluster.sim.trace[start:], cluster.names)
    return with_data(result, ClusterStep(**cluster_data(cluster, result),
                                         window=window))


@dataclass(frozen=True, kw_only=True)
class Samples(Record):
    """`latency_samples`' data: the distributions' names, one histogram each."""

    names: list[str]


@checked
def latency_samples(seed: int = 0, *, samples: int = 10_000,
                    distributions: Mapping[str, Distribution] = TOUR_LATENCIES
                    ) -> Result:
    """`samples` draws from each named distribution, one histogram per name, each
    drawn from its own seeded stream."""
    samples = require_int("samples", samples, minimum=1)
    if not isinstance(distributions, Mapping):
        raise ConfigError(f"distributions must be a mapping {{name: distribution}}, "
                          f"got {distributions!r}")
    sim = Simulator(seed)
    for name, shape in distributions.items():
        draw = dist.as_distribution(shape, name).sampler(sim.rng(f"latency.{name}"))
        sim.metrics.histogram(name).extend(draw() for _ in range(samples))
    result = sim.result("latency_samples", {"samples": samples,
                                            "distributions": dict(distributions)})
    return with_data(result, Samples(names=list(distributions)))
