"""Scenarios: pure functions (seed, **params) -> Result that notebooks explore.

Each builds a fresh simulation from its arguments alone, runs it and returns a
frozen Result, so a widget can cache runs by parameters and CI can replay them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from labkit import (
    balancing,
    check,
    dist,
    mapreduce,
    paxos,
    queueing,
    raft,
    resilience,
    storage,
    txn,
)
from labkit.dist import Distribution
from labkit.errors import (
    ConfigError,
    RequestTimeout,
    require_int,
    require_number,
    require_probability,
)
from labkit.metrics import Histogram, Metrics, Result, TimeSeries, TraceRecord
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node
from labkit.service import ClosedLoop, OpenLoop, Station
from labkit.sim import Simulator

# -- 00 simulator tour ----------------------------------------------------------

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


def echo_cluster(seed: int = 0, *, nodes: int = 5,
                 latency: float | Distribution = 0.010, loss: float = 0.0,
                 interval: float = 0.1) -> Cluster:
    """A cluster of `PingNode`s n1..nN: every node pings every other periodically."""
    nodes = require_int("nodes", nodes, minimum=2)
    interval = require_number("interval", interval, positive=True)
    return Cluster(nodes, seed=seed, net=NetConfig(latency=latency, loss=loss),
                   node_factory=lambda name, net: PingNode(name, net, interval))


def halves(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The minority (first floor(n/2) names) and the majority (the rest)."""
    cut = len(names) // 2
    return list(names[:cut]), list(names[cut:])


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


def _window(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ConfigError(f"{name} must be a (start, end) pair of times, got {value!r}")
    start = require_number(f"{name} start", value[0], minimum=0.0)
    end = require_number(f"{name} end", value[1], minimum=start)
    return start, end


def cluster_result(cluster: Cluster, scenario: str, **params: Any) -> Result:
    """The cluster's Result, with node names, drop reasons and a one-line headline
    ("delivered N · dropped M") added to its data."""
    result = cluster.result(scenario, **params)
    net = cluster.network
    data = {**result.data, "names": cluster.names,
            "drop_reasons": dict(sorted(net.drop_reasons.items())),
            "headline": f"delivered {net.messages_delivered} · "
                        f"dropped {net.messages_dropped}"}
    return dataclasses.replace(result, data=data)


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


def latency_samples(seed: int = 0, *, samples: int = 10_000,
                    distributions: Mapping[str, Distribution] = TOUR_LATENCIES
                    ) -> Result:
    """`samples` draws from each named distribution, one histogram per name, each
    drawn from its own seeded stream."""
    samples = require_int("samples", samples, minimum=1)
    sim = Simulator(seed)
    for name, shape in distributions.items():
        draw = dist.as_distribution(shape, name).sampler(sim.rng(f"latency.{name}"))
        sim.metrics.histogram(name).extend(draw() for _ in range(samples))
    return sim.result("latency_samples", {"samples": samples,
                                          "distributions": dict(distributions)},
                      {"names": list(distributions)})


# -- 01 performance monitoring ----------------------------------------------------

#: Service-time shapes `service_time` builds, each scaled to a requested mean.
SERVICE_SHAPES = ("exponential", "deterministic", "lognormal", "bimodal")
#: Utilisations at which theory curves are evaluated: 0.02, 0.04, ..., 0.96.
THEORY_LOADS = tuple(round(0.02 * k, 2) for k in range(1, 49))
#: Kendall's letter for each shape: M (memoryless), D (deterministic), G (general).
_KENDALL = {"exponential": "M", "deterministic": "D", "lognormal": "G",
            "bimodal": "G"}


def service_time(shape: str, mean: float) -> Distribution:
    """A service-time distribution of the named shape with the given mean.

    lognormal: the p99 is 10x the median (so the mean is 1.64x the median);
    bimodal: 95 % of requests take `fast`, 5 % take 10x as long (think cache
    misses), so the mean is 1.45x `fast`.
    """
    mean = require_number("mean_service", mean, positive=True)
    if shape == "exponential":
        return dist.exponential(mean)
    if shape == "deterministic":
        return dist.constant(mean)
    if shape == "lognormal":
        median = mean / math.exp(dist.lognormal(1.0, 10.0).sigma ** 2 / 2)
        return dist.lognormal(median, 10 * median)
    if shape == "bimodal":
        fast = mean / (0.95 + 0.05 * 10)
        return dist.bimodal(fast, 10 * fast, 0.05)
    raise ConfigError(f"service must be one of {list(SERVICE_SHAPES)}, got {shape!r}")


def queue_theory(servers: int, load: float, shape: str,
                 mean_service: float) -> queueing.QueueStats | None:
    """The closed-form steady state where one exists: Erlang C for exponential
    service (any number of servers), M/D/1 and Pollaczek-Khinchine (M/G/1) for
    one server; None for other cases and for load >= 1 (no steady state)."""
    service = service_time(shape, mean_service)
    if load >= 1.0 or (servers > 1 and shape != "exponential"):
        return None
    rate, mu = load * servers / service.mean, 1.0 / service.mean
    if shape == "exponential":
        return queueing.mmc(rate, mu, servers)
    if shape == "deterministic":
        return queueing.md1(rate, mu)
    return queueing.mg1(rate, service.mean, service.second_moment)


def theory_curve(servers: int, shape: str, mean_service: float) -> dict[str, list]:
    """Theory latency at each of THEORY_LOADS: "mean" always (where a closed form
    exists, else {}), "p50" and "p99" too for exponential service."""
    stats = [queue_theory(servers, rho, shape, mean_service) for rho in THEORY_LOADS]
    if stats[0] is None:
        return {}
    curve = {"load": list(THEORY_LOADS), "mean": [s.mean_response for s in stats]}
    if shape == "exponential":
        for p in (50, 99):
            curve[f"p{p}"] = [s.response_percentile(p) for s in stats]
    return curve


def _queue_run(seed: int, servers: int, load: float, shape: str,
               mean_service: float, customers: int, warmup: int,
               sample_every: float | None = None) -> tuple[Simulator, Station]:
    """One Poisson-fed FIFO station run until its last measured request leaves."""
    servers = require_int("servers", servers, minimum=1)
    load = require_number("load", load, positive=True)
    if load > 1.5:
        raise ConfigError(f"load must be in (0, 1.5], got {load}: beyond that the "
                          "queue only grows (and the run gets slow)")
    service = service_time(shape, mean_service)
    warmup = require_int("warmup", warmup, minimum=0)
    sim = Simulator(seed)
    station = Station(sim, servers, service, measure=warmup == 0,
                      sample_every=sample_every)
    OpenLoop(sim, station, rate=load * servers / service.mean, requests=customers,
             warmup=warmup, name="arrivals")
    sim.run()
    return sim, station


def _point(load: float, station: Station) -> dict[str, float]:
    """The measured latency summary of one run, with its load and utilisation."""
    summary = station.latency.summary()
    return {"load": load, "utilisation": station.stats()["utilisation"],
            **{k: summary[k] for k in ("mean", "p50", "p99", "p99.9", "max")}}


def _model(servers: int, shape: str) -> str:
    return f"M/{_KENDALL[shape]}/{servers}"


def mmc_queue(seed: int = 0, *, servers: int = 1, load: float = 0.8,
              service: str = "exponential", mean_service: float = 0.010,
              customers: int = 50_000, warmup: int = 5_000,
              sample_every: float | None = None) -> Result:
    """A FIFO service with `servers` servers at utilisation `load` fed by Poisson
    arrivals: `warmup` requests unmeasured, then `customers` measured ones.

    Metrics are the station's ("service.latency", "service.in_system", ...).
    data: "model" (Kendall notation), "theory" (QueueStats or None), "stats"
    (measured arrival rate, throughput, W, L, Lq, utilisation), "points" (one
    latency summary), "curve" (theory across loads) and a "headline".
    """
    params = dict(servers=servers, load=load, service=service,
                  mean_service=mean_service, customers=customers, warmup=warmup,
                  sample_every=sample_every)
    sim, station = _queue_run(seed, servers, load, service, mean_service, customers,
                              warmup, sample_every)
    theory = queue_theory(servers, load, service, mean_service)
    point = _point(load, station)
    model = _model(servers, service)
    said = f"{model} at load {load:.2f}: mean {point['mean'] * 1e3:.1f} ms"
    if theory is not None:
        said += f" (theory {theory.mean_response * 1e3:.1f})"
    said += f" · p99 {point['p99'] * 1e3:.1f} ms"
    if theory is not None and service == "exponential":
        said += f" (theory {theory.response_percentile(99) * 1e3:.1f})"
    data = {"model": model, "theory": theory, "stats": station.stats(),
            "points": [point], "curve": theory_curve(servers, service, mean_service),
            "headline": said}
    return sim.result("mmc_queue", params, data)


def load_sweep(seed: int = 0, *, servers: int = 1,
               loads: Sequence[float] = (0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9),
               service: str = "exponential", mean_service: float = 0.010,
               customers: int = 20_000, warmup: int = 2_000) -> Result:
    """`mmc_queue` at each load (same seed, so the runs share their random
    streams and the curve is smooth): histograms "latency@<load>", data "points"
    (one latency summary per load), "curve" (theory) and "model"."""
    if not loads:
        raise ConfigError("loads must list at least one utilisation")
    metrics, points, end = Metrics(), [], 0.0
    for rho in loads:
        sim, station = _queue_run(seed, servers, rho, service, mean_service,
                                  customers, warmup)
        metrics.histogram(f"latency@{rho:g}").extend(station.latency.values)
        points.append(_point(rho, station))
        end = max(end, sim.now)
    params = dict(servers=servers, loads=tuple(loads), service=service,
                  mean_service=mean_service, customers=customers, warmup=warmup)
    model = _model(servers, service)
    data = {"model": model, "points": points,
            "curve": theory_curve(servers, service, mean_service),
            "headline": f"{model}: {len(points)} loads × {customers} requests"}
    return Result("load_sweep", params, seed, metrics, end_time=end, data=data)


def coordinated_omission(seed: int = 0, *, duration: float = 60.0,
                         stall: float = 1.0, every: float = 10.0,
                         rate: float = 100.0, mean_service: float = 0.001,
                         users: int = 1) -> Result:
    """One service measured two ways while it freezes for `stall` seconds at the
    end of every `every` seconds.

    Station "open" gets an open-loop client sending `rate` requests/s whatever
    happens; station "closed" gets `users` closed-loop users, each thinking
    users/rate - mean_service seconds between a reply and its next request, so
    both clients send `rate` requests/s while the service is healthy. Each
    station keeps (send time, latency) per request in series "<name>.requests".
    data: "open"/"closed" latency summaries, "open_p99_estimate" (what the
    stall alone predicts) and a "headline".
    """
    duration = require_number("duration", duration, positive=True)
    stall = require_number("stall", stall, positive=True)
    every = require_number("every", every, positive=True)
    rate = require_number("rate", rate, positive=True)
    if stall >= every:
        raise ConfigError(f"stall ({stall} s) must be shorter than every ({every} s)")
    service = dist.exponential(mean_service)
    think = require_int("users", users, minimum=1) / rate - service.mean
    if think < 0:
        raise ConfigError(f"{users} users cannot send {rate}/s when each request "
                          f"takes {service.mean} s: raise users or lower rate")
    sim = Simulator(seed)
    stations = {name: Station(sim, 1, service, name=name, keep_requests=True)
                for name in ("open", "closed")}
    OpenLoop(sim, stations["open"], rate=rate, name="open.client")
    ClosedLoop(sim, stations["closed"], users, dist.constant(think),
               name="closed.client")
    start = every - stall
    while start < duration:
        for station in stations.values():
            sim.at(start, station.stall, stall)
        start += every
    sim.run(duration)
    summary = {name: s.latency.summary() for name, s in stations.items()}
    # Requests arriving during a stall (a share stall/every of them) wait a
    # uniform part of it, so P(latency > x) ~ (stall/every) * (1 - x/stall).
    estimate = stall * (1 - 0.01 * every / stall)
    said = (f"p99: open loop {summary['open']['p99'] * 1e3:.0f} ms, closed loop "
            f"{summary['closed']['p99'] * 1e3:.1f} ms")
    params = dict(duration=duration, stall=stall, every=every, rate=rate,
                  mean_service=mean_service, users=users)
    return sim.result("coordinated_omission", params,
                      {**summary, "open_p99_estimate": estimate, "headline": said})


def fan_out(seed: int = 0, *, fanouts: Sequence[int] = (1, 2, 5, 10, 20, 50, 100),
            requests: int = 10_000, median: float = 0.010, p99: float = 1.0) -> Result:
    """Requests that each wait for `fanout` leaf servers, and so take as long as
    the slowest leaf. Leaf latencies are lognormal (`median`, `p99`), so one leaf
    in 100 is slower than `p99`; a request is slower than that with probability
    1 - 0.99**fanout (Dean & Barroso, "The Tail at Scale").

    Every fan-out uses the first leaves of the same draws. Histograms
    "fanout=<n>"; data "rows": fanout, measured and theory share slower than
    `p99`, and the request p50/p99.
    """
    requests = require_int("requests", requests, minimum=1)
    leaf = dist.lognormal(median, p99)
    fanouts = [require_int("fanout", n, minimum=1) for n in fanouts]
    if not fanouts:
        raise ConfigError("fanouts must list at least one fan-out")
    sim = Simulator(seed)
    # numpy draws the leaves in bulk; its seed comes from the run's own stream.
    gen = np.random.default_rng(sim.rng("leaves").getrandbits(64))
    leaves = gen.lognormal(leaf.mu, leaf.sigma, size=(requests, max(fanouts)))
    slowest = np.maximum.accumulate(leaves, axis=1)
    rows = []
    for n in fanouts:
        hist = sim.metrics.histogram(f"fanout={n}")
        hist.extend(slowest[:, n - 1].tolist())
        rows.append({"fanout": n, "slow_share": hist.fraction_above(p99),
                     "theory": 1 - 0.99**n, "p50": hist.percentile(50),
                     "p99": hist.percentile(99)})
    last = rows[-1]
    said = (f"fan-out {last['fanout']}: {last['slow_share']:.1%} of requests slower "
            f"than {p99:g} s (theory {last['theory']:.1%})")
    params = dict(fanouts=tuple(fanouts), requests=requests, median=median, p99=p99)
    return sim.result("fan_out", params, {"rows": rows, "headline": said})


def _mixture_percentile(parts: Sequence[queueing.QueueStats],
                        weights: Sequence[float], p: float) -> float:
    """The p-th percentile of a mix of M/M/c response times (part i with weight
    w_i): the t with sum_i w_i P(T_i > t) = 1 - p/100, found by bisection."""
    def survival(t: float) -> float:
        return sum(w * q.response_survival(t) for w, q in zip(weights, parts,
                                                               strict=True))
    target, lo, hi = 1 - p / 100, 0.0, max(q.mean_response for q in parts)
    while survival(hi) > target:
        lo, hi = hi, 2 * hi
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if survival(mid) > target else (lo, mid)
    return (lo + hi) / 2


def merged_percentiles(seed: int = 0, *, loads: Sequence[float] = (0.3, 0.3, 0.3,
                                                                   0.9),
                       mean_service: float = 0.010, duration: float = 2400.0
                       ) -> Result:
    """Several single-server nodes n1, n2, ... at different loads, each fed by
    its own Poisson clients for `duration` seconds: how to combine their p99s.

    Histograms "<node>.latency" per node; data: "node_p99" per node, "mean_p99"
    (averaging the nodes' p99s: wrong), "merged_p99" (the p99 of all requests
    together, via Histogram.merged: right), "theory_p99" (the same from the
    M/M/1 closed forms, each node weighted by its arrival rate), "headline".
    """
    if not loads:
        raise ConfigError("loads must list at least one node's utilisation")
    duration = require_number("duration", duration, positive=True)
    service = dist.exponential(mean_service)
    sim = Simulator(seed)
    nodes = {}
    for i, rho in enumerate(loads, start=1):
        rho = require_number("load", rho, positive=True)
        if rho >= 1:
            raise ConfigError(f"every load must be < 1 (a stable node), got {rho}")
        nodes[f"n{i}"] = Station(sim, 1, service, name=f"n{i}")
        OpenLoop(sim, nodes[f"n{i}"], rate=rho / service.mean, name=f"n{i}.client")
    sim.run(duration)
    node_p99 = {name: s.latency.percentile(99) for name, s in nodes.items()}
    merged = Histogram.merged("all", [s.latency for s in nodes.values()])
    rates = [rho / service.mean for rho in loads]
    theory = _mixture_percentile([queueing.mm1(r, 1 / service.mean) for r in rates],
                                 [r / sum(rates) for r in rates], 99)
    mean_p99 = sum(node_p99.values()) / len(node_p99)
    said = (f"mean of node p99s {mean_p99 * 1e3:.0f} ms · p99 of all requests "
            f"{merged.percentile(99) * 1e3:.0f} ms (theory {theory * 1e3:.0f})")
    params = dict(loads=tuple(loads), mean_service=mean_service, duration=duration)
    return sim.result("merged_percentiles", params, {
        "node_p99": node_p99, "mean_p99": mean_p99,
        "merged_p99": merged.percentile(99), "theory_p99": theory, "headline": said})


# -- 02 load balancing ------------------------------------------------------------

#: The policies the load-balancing playground offers, default first.
BALANCING_POLICIES = ("p2c", "round_robin", "random", "weighted_round_robin",
                      "weighted_random", "least_outstanding", "consistent_hash")


def load_balancer(seed: int = 1, *, policy: str = "p2c", load: float = 0.9,
                  servers: int = 8, d: int = 2, slow: float = 3.0,
                  service: str = "exponential", down: Iterable[int] = (),
                  requests: int = 20_000) -> balancing.BalancingResult:
    """One balancer in front of `servers` servers, server 0 `slow` times slower
    than the rest (weights = speeds), service times of the `service` shape with
    mean 1 s on a speed-1 server. The servers listed in `down` are killed a
    third of the way through the arrivals (what they hold fails). d is used by
    "p2c" only, capped at the number of servers."""
    servers = require_int("servers", servers, minimum=1)
    speeds = [1 / require_number("slow", slow, minimum=1.0)] + [1.0] * (servers - 1)
    arrivals_end = require_int("requests", requests, minimum=1) / (
        require_number("load", load, positive=True) * sum(speeds))
    faults = [(arrivals_end / 3, "kill", s) for s in sorted(set(down)) if s < servers]
    return balancing.simulate(
        policy, servers=servers, load=load, requests=requests, seed=seed,
        speeds=speeds, service=service_time(service, 1.0), faults=faults,
        d=min(require_int("d", d, minimum=1), servers) if policy == "p2c" else None)


def balancing_vs_theory(seed: int = 1, *, servers: int = 100,
                        loads: Sequence[float] = (0.5, 0.7, 0.8, 0.9),
                        requests: int = 40_000) -> Result:
    """Mean time in system against load on `servers` Exp(1) servers, simulated
    for random assignment, power of 2 and 3 choices and least outstanding,
    beside theory: M/M/1 per server, the supermarket fixed point for d = 2, 3,
    and one pooled M/M/`servers` queue (a single shared line: the ideal).

    Random assignment's queues settle on a time scale of 1/(1 - sqrt(load))^2
    service times (380 at 90 %), so its runs are 6x longer; every run leaves
    its first quarter out as warm-up. data: "simulated" and "theory", each
    {label: {load: mean time}}, "headline".
    """
    servers = require_int("servers", servers, minimum=3)
    runs = {"random (d = 1)": ("random", None, 6), "p2c, d = 2": ("p2c", 2, 1),
            "p2c, d = 3": ("p2c", 3, 1), "least outstanding": (
                "least_outstanding", None, 1)}
    simulated = {label: {} for label in runs}
    for label, (policy, d, longer) in runs.items():
        for rho in loads:
            res = balancing.simulate(policy, servers=servers, load=rho, d=d,
                                     requests=requests * longer, seed=seed,
                                     warmup=requests * longer // 4)
            simulated[label][rho] = res.latency.mean
    grid = [rho for rho in THEORY_LOADS if rho <= max(loads)]
    theory = {"random (d = 1)": {r: queueing.mm1(r, 1.0).mean_response for r in grid},
              "p2c, d = 2": {r: queueing.power_of_d(r, 2) for r in grid},
              "p2c, d = 3": {r: queueing.power_of_d(r, 3) for r in grid},
              f"pooled M/M/{servers}": {
                  r: queueing.mmc(r * servers, 1.0, servers).mean_response
                  for r in grid}}
    params = dict(servers=servers, loads=tuple(loads), requests=requests)
    said = f"{servers} servers, {len(loads)} loads × {len(runs)} policies"
    return Result("balancing_vs_theory", params, seed, Metrics(),
                  data={"simulated": simulated, "theory": theory, "headline": said})


def stale_reports(seed: int = 1, *, intervals: Sequence[float] = (0, 1, 2, 5, 10),
                  policies: Sequence[str] = ("least_loaded_stale", "random", "p2c",
                                             "least_outstanding"),
                  servers: int = 20, load: float = 0.9,
                  requests: int = 20_000) -> Result:
    """Mean time in system against the load-report interval (in mean service
    times) for each policy: least_loaded_stale and p2c read the reports,
    random reads nothing, least_outstanding counts its own requests. data:
    "simulated" {policy: {interval: mean}}, "headline"."""
    simulated = {p: {} for p in policies}
    for policy in policies:
        for interval in intervals:
            res = balancing.simulate(policy, servers=servers, load=load,
                                     requests=requests, seed=seed,
                                     report_interval=interval, warmup=requests // 10)
            simulated[policy][interval] = res.latency.mean
    params = dict(intervals=tuple(intervals), policies=tuple(policies),
                  servers=servers, load=load, requests=requests)
    said = f"{servers} servers at load {load:g}, reports every {intervals} s"
    return Result("stale_reports", params, seed, Metrics(),
                  data={"simulated": simulated, "headline": said})


# -- 03 fault tolerance -----------------------------------------------------------

#: The retry-storm setup: 6 replicas (600 req/s) at half load; for 2 s the
#: backend slows down tenfold (a GC storm, a bad deploy), then is healthy again.
STORM: Mapping[str, Any] = MappingProxyType({
    "rate": 300.0, "servers": 6, "duration": 20.0,
    "faults": (resilience.Fault("slow", 5.0, 7.0, 10.0),)})

_JITTERED = resilience.Backoff("full", base=0.010, cap=1.0)

#: The same client made more careful one technique at a time.
STORM_POLICIES: Mapping[str, resilience.Policy] = MappingProxyType({
    "3 attempts": resilience.Policy(timeout=0.25, attempts=3),
    "+ jittered backoff": resilience.Policy(timeout=0.25, attempts=3,
                                            backoff=_JITTERED),
    "+ retry budget 10 %": resilience.Policy(timeout=0.25, attempts=3,
                                             backoff=_JITTERED, budget=0.1),
    "+ breaker (no budget)": resilience.Policy(
        timeout=0.25, attempts=3, backoff=_JITTERED,
        breaker=resilience.resilience4j(open_duration=2.0)),
})

PLAYGROUND_MODES = ("slow", "crash", "errors", "brownout")


def fault_severity(mode: str, severity: float) -> float:
    """A 0..1 slider position as a fault's severity: the share of replicas
    (crash, brownout) or of requests (errors); slow: service × (1 + 19·s)."""
    severity = require_number("severity", severity, minimum=0.0)
    if severity > 1.0:
        raise ConfigError(f"severity must be in [0, 1], got {severity}")
    return 1.0 + 19.0 * severity if mode == "slow" else severity


def fault_playground(seed: int = 1, *, mode: str = "slow", severity: float = 0.5,
                     timeout: float = 0.25, attempts: int = 3, jitter: str = "full",
                     budget: bool = False, breaker: str = "none",
                     hedging: bool = False, rate: float = 300.0, servers: int = 6,
                     duration: float = 20.0,
                     window: tuple[float, float] = (5.0, 8.0)) -> Result:
    """One client against a backend that fails in `mode` during `window`: the
    notebook 03 playground. jitter: a backoff strategy (base 10 ms, cap 1 s);
    budget: a 10 % retry budget; breaker: "none", "resilience4j" or "hystrix"
    (their default settings); hedging: a second copy after the observed p95."""
    if mode not in PLAYGROUND_MODES:
        raise ConfigError(f"mode must be one of {PLAYGROUND_MODES}, got {mode!r}")
    if breaker not in ("none", *resilience.BREAKER_PRESETS):
        raise ConfigError(f"breaker must be 'none' or one of "
                          f"{list(resilience.BREAKER_PRESETS)}, got {breaker!r}")
    start, end = _window("window", window)
    policy = resilience.Policy(
        timeout=timeout, attempts=attempts,
        backoff=resilience.Backoff(jitter, base=0.010, cap=1.0),
        budget=0.1 if budget else None,
        breaker=None if breaker == "none" else resilience.BREAKER_PRESETS[breaker](),
        hedge=resilience.Percentile(95, initial=timeout / 2) if hedging else None)
    fault = resilience.Fault(mode, start, end, fault_severity(mode, severity))
    return resilience.simulate(seed, policy=policy, rate=rate, servers=servers,
                               duration=duration, faults=[fault])


def timeout_sweep(seed: int = 1, *, factors: Sequence[float] = (0.25, 0.5, 1, 2, 4,
                                                                 8, 16),
                  dead: float = 0.1, rate: float = 1000.0,
                  duration: float = 5.0) -> Result:
    """Timeouts set to multiples of the healthy p99, three attempts each, while a
    `dead` share of replicas silently swallows requests. A fault-free run with no
    timeout pressure measures the p99 first. data["rows"]: one dict per factor."""
    common = {"rate": rate, "duration": duration, "servers": 10, "workers": 4,
              "service": dist.lognormal(0.010, 0.050)}
    healthy = resilience.simulate(seed, policy=resilience.Policy(timeout=10.0),
                                  **common)
    p99 = healthy.metrics["latency"].percentile(99)
    rows = []
    for factor in factors:
        policy = resilience.Policy(timeout=factor * p99, attempts=3,
                                   backoff=_JITTERED)
        run = resilience.simulate(seed, policy=policy, **common,
                                  faults=[("crash", 0.0, math.inf, dead)])
        s, m = run.data["summary"], run.metrics
        rows.append({"timeout / p99": factor, "timeout (ms)": 1e3 * factor * p99,
                     "success rate": s["success_rate"],
                     "copies per request": s["amplification"],
                     "wasted work per request": m["timeouts.executed"].value
                     / s["requests"],
                     "requests in flight": m["client.outstanding"].time_average(),
                     "p99 (ms)": 1e3 * s["p99"]})
    return Result("timeout_sweep", {"factors": tuple(factors), "dead": dead,
                                    "rate": rate, "duration": duration}, seed,
                  Metrics(), data={"p99": p99, "rows": rows,
                                   "headline": f"healthy p99 {1e3 * p99:.1f} ms"})


def backoff_race(seed: int = 1, *, clients: Sequence[int] = (10, 25, 50, 100),
                 trials: int = 5) -> Result:
    """Brooker's optimistic-concurrency race for every backoff strategy and
    number of clients, averaged over `trials`. data: "calls" and "completion"
    (seconds), each {strategy: {clients: mean}}."""
    calls = {s: {} for s in resilience.BACKOFF_STRATEGIES}
    completion = {s: {} for s in resilience.BACKOFF_STRATEGIES}
    for strategy in resilience.BACKOFF_STRATEGIES:
        for n in clients:
            run = resilience.contention(seed, clients=n, strategy=strategy,
                                        trials=trials)
            calls[strategy][n] = run.metrics["calls"].mean
            completion[strategy][n] = run.metrics["completion"].mean
    return Result("backoff_race", {"clients": tuple(clients), "trials": trials},
                  seed, Metrics(), data={"calls": calls, "completion": completion,
                                         "headline": f"{trials} trials per point"})


def breaker_tradeoffs(seed: int = 1, *,
                      configs: Mapping[str, resilience.BreakerConfig],
                      failure: tuple[float, float] = (5.0, 17.0), rate: float = 200.0,
                      duration: float = 30.0) -> Result:
    """Each breaker config while every request fails during `failure`: how fast
    it opens, how long it stays shut after the backend is back, how much load it
    kept off the failing backend. data["rows"] one per config, data["runs"]."""
    start, end = _window("failure", failure)
    rows, runs = [], {}
    for name, config in configs.items():
        run = runs[name] = resilience.simulate(
            seed, policy=resilience.Policy(timeout=0.5, breaker=config), rate=rate,
            duration=duration, faults=[("errors", start, end, 1.0)])
        history = run.data["breaker_history"]
        load = run.metrics["backend.load"]
        during = [v for t, v in zip(load.times, load.values, strict=True)
                  if start <= t < end]
        rows.append({"breaker": name,
                     "opens after (s)": resilience.first_entry(history, "open", start)
                     - start,
                     "closes after recovery (s)": resilience.first_entry(
                         history, "closed", end) - end,
                     "backend load while failing": sum(during) / len(during) / rate,
                     "success rate": run.data["summary"]["success_rate"]})
    return Result("breaker_tradeoffs", {"configs": dict(configs), "failure": failure,
                                        "rate": rate, "duration": duration}, seed,
                  Metrics(), data={"rows": rows, "runs": runs,
                                   "headline": f"errors during {failure} s"})


#: Two ways a tail forms: rare slow services (hiccups) and queues (load).
TAIL_SETTINGS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "hiccups": {"rate": 800.0, "servers": 10, "workers": 4, "duration": 8.0,
                "service": dist.bimodal(dist.lognormal(0.004, 0.012),
                                        dist.uniform(0.5, 1.0), 0.002)},
    "queueing": {"rate": 700.0, "servers": 10, "workers": 1, "duration": 8.0,
                 "service": dist.exponential(0.010)},
})


def tail_tolerance(seed: int = 1, *, setting: str = "hiccups") -> Result:
    """No defence, a hedge after the measured p95, and tied requests (second
    copy after 1 ms) in one of `TAIL_SETTINGS`. data["rows"] one per technique:
    percentiles (ms), extra copies sent and extra work started per request;
    data["runs"] the runs by technique."""
    if setting not in TAIL_SETTINGS:
        raise ConfigError(f"setting must be one of {list(TAIL_SETTINGS)}, got "
                          f"{setting!r}")
    common = TAIL_SETTINGS[setting]
    plain = resilience.simulate(seed, policy=resilience.Policy(timeout=5.0), **common)
    p95 = plain.metrics["latency"].percentile(95)
    runs = {"none": plain}
    for name, policy in (("hedge after p95", resilience.Policy(timeout=5.0, hedge=p95)),
                         ("tied, 1 ms apart", resilience.Policy(timeout=5.0,
                                                                tied=0.001))):
        runs[name] = resilience.simulate(seed, policy=policy, **common)
    rows = []
    for name, run in runs.items():
        s, m = run.data["summary"], run.metrics
        rows.append({"technique": name, "p50 (ms)": 1e3 * s["p50"],
                     "p99 (ms)": 1e3 * s["p99"], "p99.9 (ms)": 1e3 * s["p99.9"],
                     "extra copies": s["amplification"] - 1,
                     "extra work": m["backend.started"].value / s["requests"] - 1})
    return Result("tail_tolerance", {"setting": setting}, seed, Metrics(),
                  data={"rows": rows, "p95": p95, "runs": runs,
                        "headline": f"{setting}: p95 {1e3 * p95:.1f} ms"})


def throttling(seed: int = 1, *, ks: Sequence[float] = (1.5, 2.0, 3.0),
               overload: float = 5.0, duration: float = 10.0) -> Result:
    """Clients offering `overload` times what a 2-replica backend (200 req/s,
    short queues that shed the rest) can serve, throttling themselves with each
    k. data["rows"]: the backend's arrivals per accepted request against k."""
    rows = []
    for k in ks:
        run = resilience.simulate(seed, policy=resilience.Policy(timeout=1.0,
                                                                 throttle=k),
                                  rate=200.0 * overload, duration=duration,
                                  servers=2, queue_limit=10)
        m = run.metrics
        accepted = m["attempts.ok"].value + m["attempts.error"].value
        rows.append({"k": k, "predicted (k)": k,
                     "backend sees / accepts": m["backend.arrivals"].value / accepted,
                     "refused by the client": m["attempts.throttled"].value
                     / m["requests"].value})
    return Result("throttling", {"ks": tuple(ks), "overload": overload,
                                 "duration": duration}, seed, Metrics(),
                  data={"rows": rows, "headline": f"offered {overload:g}× capacity"})


# -- 04 paxos ---------------------------------------------------------------------

#: One-way latency of the Paxos stories: a round trip is 20 ms.
PAXOS_LATENCY = 0.010
#: The single-decree stories `paxos_story` tells, with what each shows.
PAXOS_STORIES = MappingProxyType({
    "normal": "one proposer, no faults: two round trips",
    "acceptor crash": "a1-a3 crash after promising; a1 restarts at 100 ms",
    "proposer crash": "p1's accepts reach only a1, a2; p1 crashes; p2 takes over",
})


def _paxos(seed: int, acceptors: int = 5, proposers: int = 1, *, loss: float = 0.0,
           **settings: Any) -> paxos.PaxosCluster:
    return paxos.PaxosCluster(acceptors, proposers, seed=seed,
                              net=NetConfig(latency=PAXOS_LATENCY, loss=loss),
                              **settings)


def paxos_result(cluster: paxos.PaxosCluster, scenario: str,
                 **params: Any) -> Result:
    """The cluster's Result with the ballots started and the messages sent in the
    headline."""
    result = cluster.result(scenario, **params)
    ballots = cluster.sim.metrics.counter("paxos.ballots").value
    headline = (f"{result.data['headline']} · {ballots} ballot"
                f"{'s' if ballots != 1 else ''} · {cluster.messages_sent} messages")
    return dataclasses.replace(result, data={**result.data, "headline": headline,
                                             "ballots": ballots})


def paxos_story(seed: int = 0, *, story: str = "normal") -> Result:
    """One of `PAXOS_STORIES` on five acceptors and a 10 ms network, run for
    0.35 s (p1 proposes "x" at 0; in the proposer story p2 proposes "y" at 50 ms)."""
    if story not in PAXOS_STORIES:
        raise ConfigError(f"story must be one of {list(PAXOS_STORIES)}, got "
                          f"{story!r}")
    c = _paxos(seed, proposers=2 if story == "proposer crash" else 1)
    c.propose("x", proposer="p1")
    if story == "acceptor crash":
        c.sim.at(0.015, lambda: [c.kill(a) for a in ("a1", "a2", "a3")])
        c.sim.at(0.100, c.restart, "a1")
    elif story == "proposer crash":
        c.sim.at(0.015, lambda: [c.network.block("p1", a) for a in ("a3", "a4",
                                                                    "a5")])
        c.sim.at(0.025, c.kill, "p1")
        c.sim.at(0.050, c.propose, "y", "p2")
    c.run(0.35)
    return paxos_result(c, "paxos_story", story=story)


def paxos_duel(seed: int = 1, *, backoff: float = 0.0, leader: bool = False,
               duration: float = 1.0, slow_accepts: float = 0.040) -> Result:
    """Two proposers under the adversarial schedule of Paxos Made Simple §2.4:
    accept messages spend `slow_accepts` s more in flight, p1 proposes "x" at 0
    and p2 "y" at 40 ms, so each new prepare lands just before the other's
    accepts. `backoff` is the high end of the random wait before a retry;
    `leader` lets only a distinguished proposer start ballots."""
    c = _paxos(seed, proposers=2, backoff=(0.0, require_number(
        "backoff", backoff, minimum=0.0)), timeout=1.0, leader=leader)
    c.delay("accept", slow_accepts)
    c.propose("x", proposer="p1")
    c.sim.at(0.040, c.propose, "y", "p2")
    c.run(require_number("duration", duration, positive=True))
    return paxos_result(c, "paxos_duel", backoff=backoff, leader=leader,
                        duration=duration, slow_accepts=slow_accepts)


def backoff_sweep(seed: int = 1, *, highs: Sequence[float] = (0.0, 0.01, 0.02, 0.05,
                                                              0.1, 0.2, 0.5, 1.0),
                  trials: int = 20, horizon: float = 5.0) -> Result:
    """Mean time until a value is chosen against the backoff range (0, high), in
    two settings: the duel of `paxos_duel`, and one proposer alone on a network
    that loses 20 % of messages (each lost round waits a 0.2 s timeout plus the
    backoff). A run that chooses nothing within `horizon` s counts as `horizon`.
    data["duel"], data["loss"]: {high: mean seconds}; data["stuck"]: {high:
    share of duels with nothing chosen}."""
    trials = require_int("trials", trials, minimum=1)
    horizon = require_number("horizon", horizon, positive=True)
    duel, lossy, stuck = {}, {}, {}
    for high in highs:
        times = {"duel": [], "loss": []}
        for trial in range(trials):
            run = paxos_duel(seed + trial, backoff=high, duration=horizon)
            times["duel"].append(run.data["chosen_at"])
            alone = _paxos(seed + trial, loss=0.2, backoff=(0.0, high), timeout=0.2)
            alone.propose("x")
            alone.run(horizon)
            times["loss"].append(alone.chosen_at())
        duel[high] = float(np.mean([horizon if t is None else t
                                    for t in times["duel"]]))
        lossy[high] = float(np.mean([horizon if t is None else t
                                     for t in times["loss"]]))
        stuck[high] = sum(t is None for t in times["duel"]) / trials
    return Result("backoff_sweep", {"highs": tuple(highs), "trials": trials,
                                    "horizon": horizon}, seed, Metrics(),
                  data={"duel": duel, "loss": lossy, "stuck": stuck})


def paxos_playground(seed: int = 0, *, acceptors: int = 5, proposers: int = 2,
                     loss: float = 0.0, backoff: float = 0.05,
                     down: Iterable[int] = (), leader: bool = False,
                     duration: float = 0.5) -> Result:
    """Proposer p_i proposes "v_i" at (i - 1) · 5 ms; the acceptors listed in
    `down` (0-based: 0 is a1) crash at 15 ms, after promising; run `duration` s."""
    c = _paxos(seed, acceptors, proposers, loss=loss, leader=leader,
               backoff=(0.0, require_number("backoff", backoff, minimum=0.0)),
               timeout=0.1)
    down = sorted(set(down))
    if any(i not in range(acceptors) for i in down):
        raise ConfigError(f"down lists acceptors 0..{acceptors - 1}, got {down}")
    for i, name in enumerate(c.proposers):
        c.sim.at(0.005 * i, c.propose, f"v{i + 1}", name)
    for i in down:
        c.sim.at(0.015, c.kill, c.acceptors[i])
    c.run(require_number("duration", duration, positive=True))
    return paxos_result(c, "paxos_playground", acceptors=acceptors,
                        proposers=proposers, loss=loss, backoff=backoff,
                        down=tuple(down), leader=leader, duration=duration)


def paxos_costs(seed: int = 1, *, acceptors: int = 5, commands: int = 20) -> Result:
    """Messages and delay per decision on a fault-free 10 ms network: one basic
    Paxos instance (one proposer, n acceptors), and `commands` commands through a
    stable Multi-Paxos leader of n servers, plus the election that made it.
    data["rows"]: one per protocol, counted from the network journal."""
    n = require_int("acceptors", acceptors, minimum=1)
    commands = require_int("commands", commands, minimum=1)
    basic = _paxos(seed, n)
    basic.propose("x")
    basic.run(1.0)
    phases = ("prepare", "promise", "accept", "accepted")
    rtt = 2 * PAXOS_LATENCY
    log = paxos.MultiPaxosCluster(n, seed=seed, net=NetConfig(latency=PAXOS_LATENCY))
    log.run(1.0)
    start = log.now
    for i in range(commands):
        log.submit(f"cmd{i}")
    log.run(1.0)
    journal = log.result()
    rows = [
        {"protocol": "basic Paxos, one value", "messages": paxos.count_messages(
            basic.result(), phases), "round trips": float(
            basic.sim.metrics["paxos.decide"].mean / rtt)},
        {"protocol": "Multi-Paxos, per command", "messages": paxos.count_messages(
            journal, ("accept", "accepted"), since=start) / commands,
         "round trips": float(log.sim.metrics["multipaxos.commit"].mean / rtt)},
        {"protocol": "Multi-Paxos, electing a leader", "messages":
            paxos.count_messages(journal, ("prepare", "promise")),
         "round trips": float(log.sim.metrics["multipaxos.phase1"].mean / rtt)},
    ]
    return Result("paxos_costs", {"acceptors": n, "commands": commands}, seed,
                  Metrics(), data={"rows": rows})


#: The replicated logs `leader_failover` and `log_comparison` can run.
LOG_PROTOCOLS = ("multipaxos", "raft")


def _log_cluster(protocol: str, seed: int, size: int,
                 election_timeout: tuple[float, float]) -> Cluster:
    """A Multi-Paxos or Raft cluster (same interface: leader, submit, applied) on
    the 10 ms network of the Paxos stories, 50 ms heartbeats."""
    if protocol not in LOG_PROTOCOLS:
        raise ConfigError(f"protocol must be one of {LOG_PROTOCOLS}, got "
                          f"{protocol!r}")
    net = NetConfig(latency=PAXOS_LATENCY)
    if protocol == "raft":
        # Imported on use: only this comparison needs Raft.
        from labkit import raft

        return raft.RaftCluster(size, seed=seed, election_timeout=election_timeout,
                                net=net)
    return paxos.MultiPaxosCluster(size, seed=seed, election_timeout=election_timeout,
                                   net=net)


def _until(cluster: Cluster, done: Any, limit: float = 10.0) -> float:
    """Run in 0.1 ms steps until done() holds (at most `limit` s): the time taken."""
    start = cluster.now
    while not done() and cluster.now - start < limit:
        cluster.run(0.0001)
    return cluster.now - start


def leader_failover(seed: int = 1, *, protocol: str = "multipaxos",
                    election_timeout: tuple[float, float] = (0.150, 0.300),
                    trials: int = 20, size: int = 5) -> Result:
    """Kill a stable leader `trials` times (at a random moment of its heartbeat
    interval) and measure how long the log has no leader (polled every 0.1 ms).
    data["gaps"]: a Histogram of seconds."""
    trials = require_int("trials", trials, minimum=1)
    gaps = Histogram("leaderless")
    for trial in range(trials):
        c = _log_cluster(protocol, seed + trial, size, election_timeout)
        c.run(1.0 + c.sim.rng("failover").uniform(0.0, 0.050))
        c.kill(c.leader())
        gaps.add(_until(c, lambda c=c: c.leader() is not None))
    return Result("leader_failover", {"protocol": protocol, "election_timeout":
                                      tuple(election_timeout), "trials": trials,
                                      "size": size}, seed, Metrics(),
                  data={"gaps": gaps})


def log_comparison(seed: int = 1, *, size: int = 5, commands: int = 20,
                   every: float = 0.050, trials: int = 20) -> Result:
    """Multi-Paxos and Raft on the same network: messages and latency per command
    (one command every `every` s through a stable leader; messages beyond what
    the idle cluster sends in as long) and the time without a leader after the
    leader crashes (`leader_failover`). data["rows"]: one per protocol."""
    commands = require_int("commands", commands, minimum=1)
    rows = []
    for protocol in LOG_PROTOCOLS:
        c = _log_cluster(protocol, seed, size, (0.150, 0.300))
        c.run(1.0)
        idle = c.messages_sent
        c.run(commands * every)
        idle, start, waits = c.messages_sent - idle, c.messages_sent, []
        begin = c.now
        for i in range(commands):
            leader = c.leader()
            c.submit(f"cmd{i}")
            waits.append(_until(c, lambda c=c, i=i, leader=leader:
                                f"cmd{i}" in c.applied(leader)))
            c.run(begin + (i + 1) * every - c.now)
        gaps = leader_failover(seed, protocol=protocol, trials=trials,
                               size=size).data["gaps"]
        rows.append({"protocol": protocol,
                     "messages per command": (c.messages_sent - start - idle)
                     / commands,
                     "latency per command (ms)": 1e3 * float(np.mean(waits)),
                     "leaderless after a crash, mean (ms)": 1e3 * gaps.mean,
                     "leaderless, worst (ms)": 1e3 * gaps.max})
    return Result("log_comparison", {"size": size, "commands": commands,
                                     "every": every, "trials": trials}, seed,
                  Metrics(), data={"rows": rows})


# -- 05 raft ----------------------------------------------------------------------

#: Figure 16's network: 2-3 ms one way, plus a 10 ms disk write before every
#: answer (Raft persists term, vote and entries first), so a broadcast round trip
#: takes about 15 ms as in the paper. The one-way part is the window in which a
#: second node can time out before the first candidate's request reaches it.
FIG16_LATENCY = dist.uniform(0.002, 0.003)
FIG16_DISK = 0.010
#: The same median one-way delay with a tail (p99 15 ms), for the timing rule.
JITTERY_LATENCY = dist.lognormal(median=0.0025, p99=0.015)
#: Figure 16 of the Raft paper (FACTS.md): timeout range in ms -> (statistic,
#: milliseconds) as the paper reports them.
FIG16_PAPER: Mapping[tuple[int, int], tuple[tuple[str, float], ...]] = \
    MappingProxyType({
        (150, 150): (("min", 10_000.0),),          # "consistently over 10 s"
        (150, 155): (("median", 287.0),),
        (150, 200): (("max", 513.0),),             # worst of 1000 trials
        (12, 24): (("mean", 35.0), ("max", 152.0)),
    })


def raft_cluster(seed: int = 0, *, nodes: int = 5,
                 election_timeout: tuple[float, float] = (0.150, 0.300),
                 heartbeat: float = 0.050, latency: float | Distribution = 0.010,
                 loss: float = 0.0, **options: Any) -> raft.RaftCluster:
    """A RaftCluster n1..nN on a network of the given latency and loss (other
    keywords go to RaftCluster: pre_vote, disk_delay, snapshot_every, ...)."""
    return raft.RaftCluster(nodes, seed=seed, election_timeout=election_timeout,
                            heartbeat=heartbeat,
                            net=NetConfig(latency=latency, loss=loss), **options)


def raft_result(cluster: raft.RaftCluster, scenario: str, **params: Any) -> Result:
    """`cluster_result` plus a headline: leader and term, elections, leaderless
    time, messages."""
    result = cluster_result(cluster, scenario, **params)
    leader = cluster.leader()
    who = f"leader {leader} (term {cluster.term(leader)})" if leader else "no leader"
    headline = (f"t = {cluster.now:.2f} s · {who} · {len(cluster.elections())} "
                f"election{'s' if len(cluster.elections()) != 1 else ''} · "
                f"leaderless {result.data['leaderless']:.3f} s · "
                f"{cluster.messages_sent} messages")
    return dataclasses.replace(result, data={**result.data, "headline": headline})


def raft_election(seed: int = 1, *, nodes: int = 5,
                  election_timeout: tuple[float, float] = (0.150, 0.300),
                  heartbeat: float = 0.050, latency: float | Distribution = 0.010,
                  loss: float = 0.0, duration: float = 1.0,
                  crash_leader_at: float | None = None) -> Result:
    """A cluster starting from scratch for `duration` s: the first election, then
    heartbeats; with crash_leader_at the leader of that moment crashes then."""
    c = raft_cluster(seed, nodes=nodes, election_timeout=election_timeout,
                     heartbeat=heartbeat, latency=latency, loss=loss)
    duration = require_number("duration", duration, positive=True)
    if crash_leader_at is not None:
        at = require_number("crash_leader_at", crash_leader_at, minimum=0.0)
        c.sim.at(at, lambda: c.leader() and c.kill(c.leader()))
    c.run(duration)
    return raft_result(c, "raft_election", nodes=nodes, heartbeat=heartbeat,
                       election_timeout=election_timeout, latency=latency,
                       loss=loss, duration=duration, crash_leader_at=crash_leader_at)


def _await_leader(c: raft.RaftCluster, timeout: tuple[float, float]) -> str:
    """Elect a leader with timeouts (lo, 2 lo) (identical timeouts may never
    elect one), let it settle, then switch to `timeout`; its name."""
    c.configure(election_timeout=(timeout[0], 2 * timeout[0]))
    while c.leader() is None:
        c.run(0.05)
    c.run(0.5)
    c.configure(election_timeout=timeout)
    return c.leader()


def raft_failover(seed: int = 1, *,
                  election_timeout: tuple[float, float] = (0.150, 0.300),
                  trials: int = 100, latency: float | Distribution = FIG16_LATENCY,
                  disk_delay: float = FIG16_DISK, cap: float = 10.0,
                  unequal_logs: bool = True, nodes: int = 5,
                  heartbeat: float | None = None) -> Result:
    """Figure 16's experiment: five servers, heartbeat = half the minimum election
    timeout (unless given); `trials` times, the leader crashes at a uniformly
    random point of its heartbeat interval, just after a heartbeat round reset
    every follower's timer. With unequal_logs, two random followers miss the last
    entry, so they cannot win. Metric "downtime": crash to new leader (at most
    `cap` s)."""
    trials = require_int("trials", trials, minimum=1)
    cap = require_number("cap", cap, positive=True)
    lo, hi = election_timeout
    beat = lo / 2 if heartbeat is None else heartbeat
    c = raft_cluster(seed, nodes=nodes, election_timeout=election_timeout,
                     heartbeat=beat, latency=latency, disk_delay=disk_delay,
                     trace=False)
    rng, downtime = c.sim.rng("failover"), c.sim.metrics.histogram("downtime")
    for _ in range(trials):
        leader = c.leader() or _await_leader(c, (lo, hi))
        c.run(c.node(leader).last_broadcast + beat - c.now + 1e-9)
        if unequal_logs:            # the next entry reaches two followers only
            for name in rng.sample([n for n in c.names if n != leader], 2):
                c.network.block(leader, name)
            c.submit("x")
            c.network.heal()
        c.run(rng.uniform(0.0, beat))
        c.kill(leader)
        crashed, before = c.now, len(c.audit.elections)
        while len(c.audit.elections) == before and c.now - crashed < cap:
            c.run(min(0.01, lo))
        elected = c.audit.elections[before:]
        downtime.add(elected[0][0] - crashed if elected else cap)
        c.restart(leader)
        c.run(max(0.1, 2 * hi))        # it catches up; the new leader settles
    h = downtime
    return Result("raft_failover", {"election_timeout": tuple(election_timeout),
                                    "trials": trials, "latency": latency,
                                    "disk_delay": disk_delay, "cap": cap,
                                    "unequal_logs": unequal_logs, "nodes": nodes,
                                    "heartbeat": beat}, seed, c.sim.metrics,
                  data={"headline": f"{1e3 * lo:g}-{1e3 * hi:g} ms: median "
                                    f"{1e3 * h.percentile(50):.0f} ms, max "
                                    f"{1e3 * h.max:.0f} ms over {trials} crashes"})


def figure_16(seed: int = 1, *, trials: int = 100,
              ranges: Sequence[tuple[int, int]] = ((150, 150), (150, 155),
                                                   (150, 175), (150, 200),
                                                   (150, 300), (12, 24), (25, 50),
                                                   (50, 100), (100, 200)),
              capped_trials: int = 3) -> Result:
    """`raft_failover` for each timeout range (ms), as in the paper's Figure 16;
    ranges without randomness run only `capped_trials` trials (each lasts the
    10 s cap). data["runs"]: {"150-155 ms": Result}; data["rows"]: the paper's
    numbers beside the simulated ones."""
    runs, rows = {}, []
    for lo, hi in ranges:
        n = capped_trials if lo == hi else trials
        run = runs[f"{lo}-{hi} ms"] = raft_failover(
            seed, election_timeout=(lo / 1e3, hi / 1e3), trials=n)
        h = run.metrics["downtime"]
        stats = {"min": h.percentile(0.001), "median": h.percentile(50),
                 "mean": h.mean, "max": h.max}
        for stat, paper in FIG16_PAPER.get((lo, hi), ()):
            rows.append({"timeout (ms)": f"{lo}-{hi}", "statistic": stat,
                         "paper (ms)": paper, "simulated (ms)": 1e3 * stats[stat],
                         "trials": n})
    return Result("figure_16", {"trials": trials, "ranges": tuple(ranges),
                                "capped_trials": capped_trials}, seed, Metrics(),
                  data={"runs": runs, "rows": rows})


#: etcd settings compared with the simulation: name -> (election timeout T,
#: heartbeat) in seconds, and the file `labkit.real` measurements are kept in.
ETCD_SETTINGS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "default": (1.0, 0.1), "300ms": (0.3, 0.03)})
ETCD_DATA = Path(__file__).resolve().parents[1] / "data"


def etcd_measured(setting: str = "default") -> Histogram:
    """Seconds from SIGKILL of the etcd leader to a new leader, as `labkit.real`
    measured them on a 3-member cluster (data/etcd_failover_<setting>.csv)."""
    if setting not in ETCD_SETTINGS:
        raise ConfigError(f"setting must be one of {list(ETCD_SETTINGS)}, got "
                          f"{setting!r}")
    lines = (ETCD_DATA / f"etcd_failover_{setting}.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines if not line.startswith("#")]
    column = rows[0].index("to leader (s)")
    return Histogram(f"etcd {setting}", (float(r[column]) for r in rows[1:]))


def etcd_comparison(seed: int = 1, *, setting: str = "default",
                    trials: int = 300) -> Result:
    """etcd's measured failovers (`etcd_measured`) beside `raft_failover` with
    etcd's setup: 3 servers, election timeout drawn from [T, 2T), etcd's
    heartbeat, a loopback network (0.1-0.3 ms) and a 1 ms disk write, the leader
    killed at a random moment with equal logs. data["runs"]: two Histograms."""
    measured = etcd_measured(setting)
    timeout, heartbeat = ETCD_SETTINGS[setting]
    simulated = raft_failover(seed, election_timeout=(timeout, 2 * timeout),
                              trials=trials, nodes=3, heartbeat=heartbeat,
                              latency=dist.uniform(0.0001, 0.0003), disk_delay=0.001,
                              unequal_logs=False).metrics["downtime"]
    runs = {f"etcd {setting} (measured, n={measured.count})": measured,
            f"simulated (n={simulated.count})": simulated}
    return Result("etcd_comparison", {"setting": setting, "trials": trials}, seed,
                  Metrics(), data={"runs": runs})


def timing_rule(seed: int = 1, *,
                minimums: Sequence[float] = (0.300, 0.150, 0.075, 0.040, 0.020,
                                             0.015, 0.010),
                duration: float = 20.0,
                latency: float | Distribution = JITTERY_LATENCY,
                disk_delay: float = FIG16_DISK) -> Result:
    """broadcastTime << electionTimeout: a healthy cluster (no faults) for
    `duration` s with election timeout (T, 2T) and heartbeat T/2 for each T in
    `minimums`. data["rows"]: elections beyond the first and leaderless share."""
    duration = require_number("duration", duration, positive=True)
    rows = []
    for low in minimums:
        c = raft_cluster(seed, election_timeout=(low, 2 * low), heartbeat=low / 2,
                         latency=latency, disk_delay=disk_delay, trace=False)
        c.run(duration)
        rows.append({"election timeout (ms)": f"{1e3 * low:g}-{2e3 * low:g}",
                     "minimum (ms)": 1e3 * low,
                     "spurious elections": max(0, len(c.elections()) - 1),
                     "leaderless share": raft.leaderless(c.audit.roles, c.now)
                     / duration})
    return Result("timing_rule", {"minimums": tuple(minimums), "duration": duration,
                                  "latency": latency, "disk_delay": disk_delay},
                  seed, Metrics(), data={"rows": rows})


def raft_kv(seed: int = 1, *, read: str = "log", clients: int = 4,
            reads: float = 0.9, think: float = 0.05, loss: float = 0.0,
            isolate_leader: tuple[float, float] | None = (1.0, 3.0),
            duration: float = 4.0, client_timeout: float = 0.2) -> Result:
    """Clients on a 5-node KVCluster (5 ms network) for `duration` s; during
    `isolate_leader` (start, end) the leader of that moment is cut off from the
    other servers (clients still reach it). data: "history", "verdict" (the
    linearizability CheckResult), "reads" and "writes" completed."""
    kv = raft.KVCluster(5, seed=seed, read=read, client_timeout=client_timeout,
                        net=NetConfig(latency=0.005, loss=loss))
    kv.workload(clients, think=think, reads=reads)
    duration = require_number("duration", duration, positive=True)
    if isolate_leader is not None:
        start, end = _window("isolate_leader", isolate_leader)
        kv.sim.at(start, lambda: kv.partition([kv.leader()], [
            n for n in kv.names if n != kv.leader()]))
        kv.sim.at(end, kv.heal)
    kv.run(duration)
    kv.check()
    verdict = kv.linearizable()
    done = [op for op in kv.history if op.ret is not None]
    result = raft_result(kv, "raft_kv", read=read, clients=clients, reads=reads,
                         think=think, loss=loss, isolate_leader=isolate_leader,
                         duration=duration, client_timeout=client_timeout)
    word = "linearizable" if verdict.ok else \
        f"NOT linearizable (window of {len(verdict.window)} ops)"
    return dataclasses.replace(result, data={
        **result.data, "history": tuple(kv.history), "verdict": verdict,
        "reads": sum(op.kind == "get" for op in done),
        "writes": sum(op.kind != "get" for op in done),
        "headline": f"read={read}: {len(done)} operations, {word}"})


# -- 06 transactions --------------------------------------------------------------

#: The crash points a notebook 06 story or playground can choose ("none": no crash).
TXN_CRASHES = ("none", *txn.CRASH_POINTS)


def _txn_cluster(seed: int, protocol: str, participants: int, crash: str,
                 down: float | None, **knobs: Any) -> txn.TxnCluster:
    """A TxnCluster with the story's crash armed for its first transaction:
    coordinator points on the coordinator (n1, or "tm"), participant points on
    n2; the crashed node restarts `down` seconds later (never if None)."""
    if crash not in TXN_CRASHES:
        raise ConfigError(f"crash must be one of {TXN_CRASHES}, got {crash!r}")
    c = txn.TxnCluster(protocol, participants, seed=seed, **knobs)
    if crash != "none":
        separate = c.config.coordinator == "separate"
        node = (txn.TM if separate else "n1") if crash.startswith("coordinator") \
            else "n2"
        c.crash_at(crash, node=node, txn="t1", restart_after=down)
    return c


def _fan_out(c: txn.TxnCluster, amount: int = 10) -> str:
    """n1 pays `amount` to the first account of every other participant."""
    others = c.participants[1:]
    return c.submit([("n1.0", -amount * len(others))] +
                    [(f"{p}.0", amount) for p in others])


def txn_story(seed: int = 1, *, protocol: str = "2pc", participants: int = 3,
              coordinator: str = "colocated", crash: str = "none",
              down: float | None = 1.0, fail_step: int | None = None,
              fsync: float = 0.002, latency: float = 0.010, loss: float = 0.0,
              timeout: float = 0.1, ttl: float = 1.0,
              duration: float = 2.0) -> Result:
    """One transfer from n1 to every other participant, with an optional crash
    (see `_txn_cluster`). data["during"]: what each participant knew halfway
    through the outage (or at 0.5 s with no crash), data["doubt"] who was in
    doubt then, data["views"] what they know at the end, data["outcome"]."""
    c = _txn_cluster(seed, protocol, participants, crash, down,
                     coordinator=coordinator, fail_step=fail_step, fsync=fsync,
                     timeout=timeout, ttl=ttl,
                     net=NetConfig(latency=latency, loss=loss))
    t = _fan_out(c)
    look = min(duration, 0.5 if crash == "none" or down is None else 0.05 + down / 2)
    c.run(look)
    during, doubt = c.views(t), [node for _, node in c.in_doubt()]
    c.run(duration - look)
    outcome = c.outcome(t)
    return c.result("txn_story", data={
        "txn": t, "during": during, "doubt": doubt, "look": look,
        "views": c.views(t), "outcome": outcome,
        "headline": f"{protocol}, crash: {crash} → {outcome}"},
        seed=seed, protocol=protocol, participants=participants,
        coordinator=coordinator, crash=crash, down=down, fail_step=fail_step,
        fsync=fsync, latency=latency, loss=loss, timeout=timeout, ttl=ttl,
        duration=duration)


def blocking_window(seed: int = 1, *, protocol: str = "2pc", down: float = 2.0,
                    rate: float = 60.0, contention: float = 0.5,
                    duration: float = 5.0, width: float = 0.25) -> Result:
    """Three participants of 10 accounts each take random transfers, half of
    them crediting the hot account n1.0. At t = 1 s a transfer n2.1 → n1.0
    (coordinated by n2) gets every yes vote and n2 crashes before deciding; it
    is back `down` s later.
    data: commits per second over time for transfers touching the hot row and
    for the rest, the hot row's longest lock hold, the victim's outcome."""
    c = txn.TxnCluster(protocol, 3, seed=seed, accounts=10, balance=10_000,
                       net=NetConfig(latency=0.005), trace=False)
    c.workload(rate=rate, duration=duration, contention=contention)
    c.run(1.0)
    victim = c.transfer("n2.1", "n1.0", 5)
    c.crash_at("coordinator.after_votes", txn=victim, restart_after=down)
    c.run(duration - 1.0)
    records = [dataclasses.astuple(r) for r in c.client.records.values()]
    hot = txn.commit_rate(records, end=duration, width=width, touching="n1.0")
    rest = txn.commit_rate(records, end=duration, width=width, avoiding="n1.0")
    hold = c.sim.metrics.histogram("lock.hold:n1.0")
    longest = float(max(hold.values)) if hold.count else 0.0
    return c.result("blocking_window", data={
        "hot": hot, "rest": rest, "victim": c.outcome(victim),
        "hot hold (s)": longest, "window": (1.0, 1.0 + down),
        "headline": f"{protocol}: hot row held {longest:.2f} s at most"},
        seed=seed, protocol=protocol, down=down, rate=rate,
        contention=contention, duration=duration, width=width)


def audit_run(seed: int = 3, *, protocol: str = "saga", rate: float = 40.0,
              contention: float = 0.2, duration: float = 4.0,
              every: float = 0.1) -> Result:
    """Random transfers while an auditor reads every balance each `every`
    seconds under short shared leases: data["totals"] is the series of the
    totals it saw, data["anomalies"] how many differed from the true total."""
    c = txn.TxnCluster(protocol, 3, seed=seed, balance=1000, audit_every=every,
                       read_lease=0.02, net=NetConfig(latency=0.005), trace=False)
    c.workload(rate=rate, duration=duration, contention=contention)
    c.run(duration)
    left = c.settle(1.0)
    m = c.sim.metrics
    totals = m.series("audit.total")
    return c.result("audit_run", data={
        "totals": totals, "reads": m.counter("audit.reads").value,
        "anomalies": m.counter("audit.anomalies").value,
        "lowest": min(totals.values, default=c.initial_total),
        "expected": c.initial_total, "settled": not left,
        "final total": c.total()},
        seed=seed, protocol=protocol, rate=rate, contention=contention,
        duration=duration, every=every)


def contention_sweep(seed: int = 2, *,
                     protocols: Sequence[str] = ("2pc", "paxos_commit", "saga",
                                                 "tcc"),
                     contentions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                     rate: float = 80.0, duration: float = 3.0) -> Result:
    """Every protocol at every contention level (share of transfers crediting
    one hot account; 30 accounts in all), same seed: committed transfers per
    second, abort rate and latency. data["rows"]: one dict per (protocol,
    contention)."""
    rows = []
    for protocol in protocols:
        for level in contentions:
            c = txn.TxnCluster(protocol, 3, seed=seed, accounts=10,
                               balance=10_000, net=NetConfig(latency=0.005),
                               trace=False)
            c.workload(rate=rate, duration=duration, contention=level)
            c.run(duration)
            c.settle(1.0)
            s = c.stats()
            rows.append({"protocol": protocol, "contention": level,
                         "commits/s": s["committed"] / duration,
                         "abort rate": s["abort rate"],
                         "mean latency (ms)": s["mean latency (ms)"],
                         "p99 latency (ms)": s["p99 latency (ms)"],
                         "messages per txn": s["messages per txn"]})
    return Result("contention_sweep", {"protocols": tuple(protocols),
                                       "contentions": tuple(contentions),
                                       "rate": rate, "duration": duration},
                  seed, Metrics(), data={"rows": rows})


def _txn_faults(c: txn.TxnCluster, duration: float, mean_gap: float) -> None:
    """For the next `duration` seconds, after each exponential gap of mean
    `mean_gap`, one random fault: kill or restart a node, cut the nodes in two,
    heal the cuts, or set the message loss to 0, 5 % or 20 %."""
    rng, end = c.sim.rng("txn.faults"), c.now + duration

    def fault() -> None:
        if c.now >= end:
            return
        up, down = c.up(), [n for n in c.names if not c.is_up(n)]
        verb = rng.choice(["partition", "heal", "loss"] + ["kill"] * bool(up)
                          + ["restart"] * bool(down))
        if verb in ("kill", "restart"):
            getattr(c, verb)(rng.choice(up if verb == "kill" else down))
        elif verb == "partition":
            names = rng.sample(c.names, len(c.names))
            cut = rng.randint(1, len(names) - 1)
            c.partition(names[:cut], names[cut:])
        elif verb == "heal":
            c.heal()
        else:
            c.network.update(loss=rng.choice((0.0, 0.05, 0.2)))
        c.sim.schedule(rng.expovariate(1 / mean_gap), fault)
    c.sim.schedule(rng.expovariate(1 / mean_gap), fault)


def _sample_known(c: txn.TxnCluster, series: TimeSeries, until: float,
                  width: float) -> None:
    """Run `c` until time `until`, adding the share of outcomes its client knows
    to `series` every `width` seconds."""
    while c.now < until - 1e-9:
        c.run(min(width, until - c.now))
        series.add(round(c.now, 9), c.outcome_known())


def client_outcomes(seed: int = 1, *,
                    protocols: Sequence[str] = ("2pc", "paxos_commit", "saga", "tcc"),
                    faults: float = 3.0, heal: float = 2.0, rate: float = 40.0,
                    width: float = 0.25) -> Result:
    """Does the client learn how each transaction ended? Random transfers on
    four participants at `rate` per second under random crashes, partitions
    and loss (`_txn_faults`) for `faults` seconds; then every fault heals and
    the cluster runs `heal` seconds more while clients ask about what they
    missed. data["known"]: per protocol, the share of transactions whose
    outcome the client knows every `width` seconds; data["rows"]: that share
    when the faults stop and after the heal, and whether every outcome the
    client knows then is the one the system reached."""
    faults = require_number("faults", faults, positive=True)
    heal = require_number("heal", heal, positive=True)
    width = require_number("width", width, positive=True)
    known, rows = {}, []
    for protocol in protocols:
        c = txn.TxnCluster(protocol, 4, seed=seed, fsync=0.002, trace=False,
                           net=NetConfig(latency=dist.uniform(0.002, 0.02),
                                         duplicate=0.05))
        c.workload(rate=rate, duration=faults)
        _txn_faults(c, faults, mean_gap=0.3)
        series = known[protocol] = TimeSeries(protocol)
        _sample_known(c, series, faults, width)
        stopped = c.outcome_known()
        c.settle(0.0)                               # heal, restart all, no loss
        _sample_known(c, series, faults + heal, width)
        told = {t: r.outcome for t, r in c.client.records.items()}
        rows.append({"protocol": protocol, "transactions": len(told),
                     "when the faults stop": stopped,
                     "after the heal": c.outcome_known(),
                     "told what happened": told == c.outcomes()})
    return Result("client_outcomes", {"protocols": tuple(protocols),
                                      "faults": faults, "heal": heal, "rate": rate,
                                      "width": width},
                  seed, Metrics(), data={"known": known, "rows": rows})


def txn_playground(seed: int = 1, *, protocol: str = "2pc", crash: str = "none",
                   participants: int = 3, loss: float = 0.0,
                   contention: float = 0.5, rate: float = 30.0,
                   duration: float = 2.0) -> Result:
    """The notebook 06 playground: transfer t1 from n1 to every other
    participant, with `crash` placed in it (the node is back after 1 s); from
    t = 1.5 s, random transfers at `rate` per second with `contention`, for
    `duration` s; the network loses `loss` of messages throughout. data: t1's
    views and outcome, the commit rate."""
    c = _txn_cluster(seed, protocol, participants, crash, 1.0, accounts=10,
                     balance=1000, fsync=0.002,
                     net=NetConfig(latency=0.010, loss=loss))
    t = _fan_out(c)
    c.run(1.5)
    c.workload(rate=rate, duration=duration, contention=contention)
    c.run(duration)
    records = [dataclasses.astuple(r) for r in c.client.records.values()]
    s = c.stats()
    return c.result("txn_playground", data={
        "txn": t, "views": c.views(t), "outcome": c.outcome(t),
        "rate": txn.commit_rate(records, end=1.5 + duration, width=0.25),
        "headline": f"t1 {c.outcome(t)} · {s['committed']} of {s['submitted']} "
                    f"committed, abort rate {s['abort rate']:.0%}, mean "
                    f"latency {s['mean latency (ms)']:.0f} ms"},
        seed=seed, protocol=protocol, crash=crash, participants=participants,
        loss=loss, contention=contention, rate=rate, duration=duration)


# -- 07 storage -------------------------------------------------------------------

def raft_log(size: int, seed: int, net: NetConfig | None,
             trace: bool) -> raft.RaftCluster:
    """The file system's metadata log: a Raft cluster of `size` nodes."""
    return raft.RaftCluster(size, seed=seed, net=net, trace=trace)


class FileSystem(storage.FileSystem):
    """`labkit.storage.FileSystem` with its metadata on a Raft log (see there)."""

    def __init__(self, nodes: int = 5, replication: int = 3, *, seed: int = 0,
                 log: storage.LogFactory = raft_log, **options: Any):
        super().__init__(nodes, replication, seed=seed, log=log, **options)


def _downloadable(fs: storage.FileSystem, names: Iterable[str],
                  contents: Mapping[str, bytes]) -> int:
    """How many of `names` download with exactly their expected bytes."""
    good = 0
    for name in names:
        try:
            good += fs.download(name) == contents[name]
        except (storage.Unavailable, FileNotFoundError):
            pass
    return good


def _contents(seed: int, files: int, size: int) -> dict[str, bytes]:
    rng = Simulator(seed).rng("storage.contents")
    return {f"file{i:02d}.bin": rng.randbytes(size) for i in range(files)}


def single_points(seed: int = 7, *, files: int = 20, size: int = 2000) -> Result:
    """What one crash costs with and without redundancy: `files` files on five
    chunk servers; then one chunk server, or the metadata leader, is killed and
    every file is downloaded again. Rows: setup, crash, files still readable."""
    files = require_int("files", files, minimum=1)
    contents = _contents(seed, files, require_int("size", size, minimum=1))
    rows = []
    for setup, options, victim in [
            ("1 copy of each chunk", {"replication": 1}, "chunk server s1"),
            ("3 copies of each chunk", {"replication": 3}, "chunk server s1"),
            ("metadata on 1 node", {"metadata": 1}, "the metadata node"),
            ("metadata on 3 nodes (Raft)", {"metadata": 3}, "the metadata leader")]:
        fs = FileSystem(5, options.get("replication", 3), seed=seed, timeout=1.0,
                        trace=False, metadata=options.get("metadata", 3))
        for name, data in contents.items():
            fs.upload(name, data)
        fs.run(0.5)
        fs.kill("s1" if victim.startswith("chunk") else fs.log.leader())
        start = fs.now
        good = _downloadable(fs, contents, contents)
        rows.append({"setup": setup, "crash": victim, "files readable": good,
                     "of": files, "time to read all (s)": round(fs.now - start, 3)})
    return Result("single_points", {"files": files, "size": size}, seed, Metrics(),
                  data={"rows": rows})


def storage_tour(seed: int = 7) -> Result:
    """One call per line under one fault each, on a 5-server file system with
    Raft metadata: what the call returned and how long it took."""
    fs = FileSystem(5, 3, seed=seed, timeout=1.0, chunk_size=512, trace=False)
    data = Simulator(seed).rng("tour").randbytes(4000)
    fs.run(1.0)
    rows = []

    def step(event: str, call: Any, *fault: Any) -> None:
        if fault:
            fs.sim.schedule(*fault)
        start = fs.now
        try:
            value = call()
            outcome = f"{len(value)} bytes" if isinstance(value, bytes) else "ok"
        except (storage.Unavailable, FileNotFoundError) as exc:
            outcome = type(exc).__name__
        rows.append({"event": event, "outcome": outcome,
                     "latency (ms)": round(1e3 * (fs.now - start), 1)})

    first = fs.ring.owners(storage.chunk_id(data[:512]), 1)[0]
    step("upload, no fault", lambda: fs.upload("a.bin", data))
    step("download, no fault", lambda: fs.download("a.bin"))
    step(f"upload, {first} killed mid-upload",
         lambda: fs.upload("b.bin", data), 0.0015, fs.kill, first)
    step("download, its first replica down", lambda: fs.download("b.bin"))
    fs.restart(first)
    second = fs.ring.owners(storage.chunk_id(data[:512]), 2)[1]
    step(f"download, {second} killed mid-download",
         lambda: fs.download("a.bin"), 0.0025, fs.kill, second)
    fs.restart(second)
    fs.run(1.0)
    step("download, metadata leader killed", lambda: fs.download("a.bin"), 0.0,
         fs.kill, fs.log.leader())
    fs.run(1.0)
    for name in fs.metadata_nodes:
        fs.restart(name)
    fs.run(1.0)
    leader = fs.log.leader()
    others = [n for n in fs.metadata_nodes if n != leader]
    fs.partition([leader], others)
    step("download, metadata leader cut off", lambda: fs.download("a.bin"))
    fs.heal()
    fs.kill(others[0])
    fs.kill(others[1])
    step("delete, 2 of 3 metadata nodes down", lambda: fs.delete("a.bin"))
    fs.restart(others[0])
    fs.restart(others[1])
    fs.run(1.0)
    step("delete, after they restart", lambda: fs.delete("a.bin"))
    step("download the deleted file", lambda: fs.download("a.bin"))
    return Result("storage_tour", {}, seed, fs.sim.metrics, data={"rows": rows})


def ring_balance(seed: int = 0, *, servers: int = 10,
                 vnodes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
                 ) -> Result:
    """How evenly a consistent-hash ring splits the key space, by number of
    virtual nodes: the largest share times N (1 is perfect) and the relative
    spread (std / mean) of the shares, beside 1/sqrt(vnodes), the spread of a sum
    of vnodes independent gaps. Server names carry the seed."""
    servers = require_int("servers", servers, minimum=2)
    largest, spread = {}, {}
    for v in vnodes:
        shares = np.array(list(storage.HashRing(
            [f"seed{seed}-s{i}" for i in range(servers)], vnodes=v).shares().values()))
        largest[v] = float(shares.max() * servers)
        spread[v] = float(shares.std() / shares.mean())
    return Result("ring_balance", {"servers": servers, "vnodes": list(vnodes)}, seed,
                  Metrics(), data={"largest": largest, "spread": spread,
                                   "theory": {v: 1 / math.sqrt(v) for v in vnodes}})


def join_moves(seed: int = 0, *, sizes: Sequence[int] = (3, 4, 5, 6, 8, 10, 12, 16,
                                                          20),
               keys: int = 3000, replicas: int = 3, vnodes: int = 128) -> Result:
    """Share of replica placements that move when one server joins N servers:
    consistent hashing against 1/(N+1) (the newcomer's fair share), modulo
    hashing against its exact average over residues."""
    names = [f"seed{seed}-k{i}" for i in range(require_int("keys", keys, minimum=1))]
    ring, modulo, fair, exact = {}, {}, {}, {}
    for n in sizes:
        servers = [f"s{i}" for i in range(1, n + 1)]
        bigger = [*servers, f"s{n + 1}"]
        before = storage.HashRing(servers, vnodes=vnodes)
        after = storage.HashRing(bigger, vnodes=vnodes)
        ring[n] = storage.moved_share(names, lambda k, b=before: b.owners(k, replicas),
                                      lambda k, a=after: a.owners(k, replicas))
        modulo[n] = storage.moved_share(
            names, lambda k, s=servers: storage.modulo_owners(k, s, replicas),
            lambda k, s=bigger: storage.modulo_owners(k, s, replicas))
        fair[n] = 1 / (n + 1)
        exact[n] = _modulo_theory(n, replicas)
    return Result("join_moves", {"sizes": list(sizes), "keys": keys,
                                 "replicas": replicas, "vnodes": vnodes}, seed,
                  Metrics(), data={"ring": ring, "modulo": modulo, "fair": fair,
                                   "modulo theory": exact})


def _modulo_theory(n: int, replicas: int) -> float:
    """Expected share of placements that move under modulo hashing from n to n+1
    servers: h mod n(n+1) fixes both residues, so average over all of them."""
    moved = 0
    for h in range(n * (n + 1)):
        old = {(h % n + k) % n for k in range(min(replicas, n))}
        new = [(h % (n + 1) + k) % (n + 1) for k in range(min(replicas, n + 1))]
        moved += sum(s not in old for s in new)
    return moved / (n * (n + 1) * min(replicas, n + 1))


def rebalance(seed: int = 7, *, nodes: int = 5, files: int = 40,
              size: int = 1000) -> Result:
    """Measured on the file system: `files` files on `nodes` servers, then one
    more server joins and the janitor moves what now belongs to it. Data: total
    bytes stored, bytes moved, what the ring predicts and the 1/(N+1) share."""
    fs = FileSystem(nodes, 3, seed=seed, chunk_size=128, repair_interval=0.2,
                    trace=False)
    for name, data in _contents(seed, files, size).items():
        fs.upload(name, data)
    fs.run(1.0)
    chunks = fs.metadata.chunk_sizes(fs.chunk_size)
    before = {c: fs.ring.owners(c, 3) for c in chunks}
    total = sum(fs.stored_bytes().values())
    fs.add_server()
    fs.run(2.0)
    predicted = sum(size * sum(s not in before[c] for s in fs.ring.owners(c, 3))
                    for c, size in chunks.items())
    moved = fs.sim.metrics["bytes.rebalance"].value
    return Result("rebalance", {"nodes": nodes, "files": files, "size": size}, seed,
                  fs.sim.metrics, data={"stored": total, "moved": moved,
                                        "predicted": predicted,
                                        "fair": total / (nodes + 1),
                                        "after": fs.stored_bytes()})


#: (N, R, W) combinations the staleness table measures.
QUORUMS = ((3, 1, 1), (3, 1, 2), (3, 2, 1), (3, 2, 2), (5, 1, 1), (5, 2, 2),
           (5, 1, 3), (5, 3, 3))


def staleness(seed: int = 1, *, quorums: Sequence[tuple[int, int, int]] = QUORUMS,
              trials: int = 2000) -> Result:
    """Random partial quorums measured against Bailis et al.'s closed form: each
    trial writes a fresh key to W random replicas of N and reads R random
    replicas at once. Rows: N, R, W, measured and predicted stale share, and
    four standard errors of the measurement."""
    trials = require_int("trials", trials, minimum=1)
    rows = []
    for n, r, w in quorums:
        measured = _stale_share(seed, n, r, w, trials)
        p = storage.stale_probability(n, r, w)
        rows.append({"N": n, "R": r, "W": w, "R + W > N": r + w > n,
                     "stale (measured)": measured, "C(N−W,R)/C(N,R)": p,
                     "± 4 s.e.": 4 * math.sqrt(max(p * (1 - p), 1e-12) / trials)})
    return Result("staleness", {"quorums": list(quorums), "trials": trials}, seed,
                  Metrics(), data={"rows": rows})


#: Bailis et al.'s synthetic example: write mean, {t: share consistent} from the
#: paper, and the times at which the simulation is run.
PBS_PAPER = {
    "fast writes, Exp(0.25 ms)": (0.00025, {0.0: 0.94, 0.001: 0.999},
                                  (0.0, 0.0005, 0.001, 0.002)),
    "slow writes, Exp(10 ms)": (0.010, {0.0: 0.41, 0.065: 0.999},
                                (0.0, 0.01, 0.02, 0.04, 0.065)),
}


def t_visibility(seed: int = 1, *, trials: int = 1000, points: int = 25) -> Result:
    """t-visibility for N = 3, R = W = 1 in the WARS model (acks, reads and
    responses ~ Exp(1 ms)), for both write delays of the paper's synthetic
    example: the share of reads started t seconds after a write returned that
    see it. Simulated on QuorumKV at a few times; computed by
    `storage.wars_consistency` at `points` times (the curve)."""
    trials = require_int("trials", trials, minimum=1)
    points = require_int("points", points, minimum=2)
    simulated, model = {}, {}
    for label, (mean, paper, times) in PBS_PAPER.items():
        delays = storage.WARS(dist.exponential(mean), *[dist.exponential(0.001)] * 3)
        simulated[label] = _visibility(seed, delays, times, trials)
        grid = np.linspace(0.0, 1.25 * max(times), points)
        model[label] = {round(float(t), 6): storage.wars_consistency(
            3, 1, 1, delays, float(t), trials, seed) for t in sorted({*grid, *paper})}
    rows = [{"write delay": label, "t (ms)": 1e3 * t, "paper": share,
             "WARS model": model[label][t], "simulated": simulated[label][t]}
            for label, (_, paper, _) in PBS_PAPER.items()
            for t, share in paper.items()]
    return Result("t_visibility", {"trials": trials, "points": points}, seed,
                  Metrics(), data={"simulated": simulated, "model": model,
                                   "rows": rows})


def _visibility(seed: int, delays: storage.WARS, times: Sequence[float],
                trials: int) -> dict[float, float]:
    """Run every (t, trial) at once on one store, each on its own key."""
    kv = storage.QuorumKV(3, n=3, r=1, w=1, seed=seed, delays=delays,
                          net=NetConfig(latency=0.0), trace=False, timeout=10.0)
    client = kv.coordinator
    fresh = dict.fromkeys(times, 0)

    def trial(t: float, key: str):
        yield from client.put(key, 1)
        yield t
        seen = yield from client.get(key)     # before `fresh[t] +=`: others run
        fresh[t] += seen == 1

    for t in times:
        for i in range(trials):
            client.spawn(trial(t, f"{t}:{i}"))
    kv.run(10.0)
    return {t: fresh[t] / trials for t in times}


#: The network of `quorum_costs`: median 1 ms, a long tail (p99 10 ms).
QUORUM_LATENCY = dist.lognormal(median=0.001, p99=0.010)


def quorum_costs(seed: int = 1, *, n: int = 3, ops: int = 600,
                 combos: Sequence[tuple[int, int]] = ((1, 1), (1, 2), (2, 1),
                                                     (2, 2), (1, 3), (3, 1), (3, 3)),
                 latency: Distribution = QUORUM_LATENCY) -> Result:
    """Latency against freshness in the Dynamo mode (writes to all N, reads from
    all N, answer after W / R): a key is written and read right back, `ops`
    times, over a lognormal network whose messages may overtake each other (as
    if writer and reader used different connections). Rows: R, W, p50/p99 of
    puts and gets (ms), and the share of reads that missed the write just
    acknowledged."""
    rows = []
    for r, w in combos:
        kv = storage.QuorumKV(n, n=n, r=r, w=w, seed=seed, read_repair=False,
                              net=NetConfig(latency=latency, reorder=1.0),
                              trace=False)
        for i in range(require_int("ops", ops, minimum=1)):
            kv.put(f"k{i}", i)
            kv.get(f"k{i}")
        m = kv.sim.metrics
        puts, gets = m["put.latency"], m["get.latency"]
        rows.append({"R": r, "W": w, "R + W > N": r + w > n,
                     "put p50 (ms)": 1e3 * puts.percentile(50),
                     "put p99 (ms)": 1e3 * puts.percentile(99),
                     "get p50 (ms)": 1e3 * gets.percentile(50),
                     "get p99 (ms)": 1e3 * gets.percentile(99),
                     "stale reads": m["reads.stale"].value / ops})
    return Result("quorum_costs", {"n": n, "ops": ops, "combos": list(combos)}, seed,
                  Metrics(), data={"rows": rows})


def convergence(seed: int = 1, *, keys: int = 300, duration: float = 4.0) -> Result:
    """How a replica that missed writes catches up. N = 3, W = 1: r3 is down
    while `keys` keys are written, then restarts. Three stores: no repair at all;
    read repair (a client reads each key once, 10 per second); anti-entropy
    (Merkle-tree exchange with a random peer every 0.5 s). Series: keys on r3
    older than the newest version, over time; data: Merkle hashes compared and
    entries shipped. Time counts from r3's restart."""
    keys = require_int("keys", keys, minimum=1)
    series, shipped = {}, {}
    for label, options in [("no repair", {"read_repair": False}),
                           ("read repair", {"read_repair": True}),
                           ("anti-entropy", {"read_repair": False,
                                             "anti_entropy": 0.5})]:
        kv = storage.QuorumKV(3, n=3, r=1, w=1, seed=seed, trace=False, **options)
        kv.kill("r3")
        for i in range(keys):
            kv.put(f"k{i}", i)
        kv.restart("r3")
        line = series[label] = TimeSeries(label)
        step, start = 0.1, kv.now
        for tick in range(round(duration / step) + 1):
            if tick:
                if label == "read repair":
                    kv.get(f"k{(tick - 1) % keys}")
                kv.run(start + tick * step - kv.now)   # a read took a few ms
            line.add(round(tick * step, 6), sum(
                kv.versions(f"k{i}")["r3"] < kv.coordinator.acked[f"k{i}"]
                for i in range(keys)))
        m = kv.sim.metrics
        shipped[label] = {"hashes compared": _value(m, "entropy.hashes"),
                          "entries shipped": _value(m, "entropy.entries"),
                          "read repairs": _value(m, "read_repairs")}
    return Result("convergence", {"keys": keys, "duration": duration}, seed,
                  Metrics(), data={"series": series, "shipped": shipped})


def _value(metrics: Metrics, name: str) -> int:
    return metrics[name].value if name in metrics else 0


def durability(seed: int = 0, *, schedules: int = 20, steps: int = 20) -> Result:
    """Random crash/restart schedules against the file system's promise. Each
    schedule crashes and restarts random chunk servers and metadata nodes
    between random uploads, downloads and deletes of three names; then every
    node restarts and each name is read once more. Counts: acknowledged writes,
    refused calls, reads that returned bytes never acknowledged or overwritten,
    acknowledged writes lost, and histories that labkit.check finds
    linearizable."""
    schedules = require_int("schedules", schedules, minimum=1)
    counts = dict.fromkeys(["schedules", "crashes", "uploads acknowledged",
                            "deletes acknowledged", "calls refused (Unavailable)",
                            "reads checked", "wrong reads", "acknowledged writes lost",
                            "linearizable histories"], 0)
    for s in range(schedules):
        fs = FileSystem(5, 3, seed=seed * 1000 + s, chunk_size=300, timeout=1.0,
                        repair_interval=0.3, gc_interval=0.7, trace=False)
        _crash_schedule(fs, Simulator(seed * 1000 + s).rng("durability"), steps,
                        counts)
        verdict = check.linearizable(fs.history)
        counts["schedules"] += 1
        counts["linearizable histories"] += verdict.ok
    return Result("durability", {"schedules": schedules, "steps": steps}, seed,
                  Metrics(), data={"counts": counts})


def _crash_schedule(fs: storage.FileSystem, rng: Any, steps: int,
                    counts: dict[str, int]) -> None:
    names = ("a", "b", "c")
    acked: dict[str, str | None] = dict.fromkeys(names)
    maybe: dict[str, set] = {n: set() for n in names}

    def read(name: str) -> str | None:
        try:
            return storage.chunk_id(fs.download(name))
        except FileNotFoundError:
            return None

    for _ in range(require_int("steps", steps, minimum=1)):
        victim = rng.choice(fs.names)
        if fs.is_up(victim) and rng.random() < 0.6:
            fs.kill(victim)
            counts["crashes"] += 1
        else:
            fs.restart(victim)
        fs.run(rng.uniform(0.0, 0.3))
        name, roll = rng.choice(names), rng.random()
        try:
            if roll < 0.45:
                data = rng.randbytes(rng.randrange(1500))
                maybe[name].add(storage.chunk_id(data))
                fs.upload(name, data)
                acked[name], maybe[name] = storage.chunk_id(data), set()
                counts["uploads acknowledged"] += 1
            elif roll < 0.85:
                counts["wrong reads"] += read(name) not in {acked[name], *maybe[name]}
                counts["reads checked"] += 1
            else:
                maybe[name].add(None)
                fs.delete(name)
                acked[name], maybe[name] = None, set()
                counts["deletes acknowledged"] += 1
        except storage.Unavailable:
            counts["calls refused (Unavailable)"] += 1
        except FileNotFoundError:
            pass                            # a delete of a missing file
    for node in fs.names:
        fs.restart(node)
    fs.run(3.0)
    for name in names:
        counts["acknowledged writes lost"] += read(name) not in {acked[name],
                                                                 *maybe[name]}


#: Partitions the playground offers: label -> (groups of names) for a file system.
STORAGE_PARTITIONS = ("none", "metadata leader cut off", "chunk servers split")


def _storage_partition(fs: storage.FileSystem, preset: str) -> None:
    if preset == "metadata leader cut off" and fs.log.leader() is not None:
        leader = fs.log.leader()
        fs.partition([leader], [n for n in fs.names if n != leader])
    elif preset == "chunk servers split":
        half = len(fs.servers) // 2
        fs.partition(fs.servers[:half], [*fs.servers[half:], *fs.metadata_nodes])


def storage_playground(seed: int = 1, *, nodes: int = 5, replication: int = 3,
                       write_quorum: int = 2, chunk_size: int = 1024, r: int = 1,
                       w: int = 1, reads: float = 0.5, partition: str = "none",
                       down: Sequence[int] = (), kill_leader: bool = False,
                       duration: float = 3.0) -> Result:
    """The notebook's playground. A file system with these knobs serves a random
    mix of uploads (1-4 chunks) and downloads (share `reads`) for `duration`
    simulated seconds; at t = 1 s the chunk servers numbered in `down` crash (0
    is s1; numbers past the last server are ignored), so does the metadata
    leader if `kill_leader`, and the partition preset starts. Beside it, a
    quorum store with N = replication, R = r, W = w measures the stale-read
    share of random partial quorums (400 trials)."""
    if partition not in STORAGE_PARTITIONS:
        raise ConfigError(f"partition must be one of {STORAGE_PARTITIONS}, got "
                          f"{partition!r}")
    reads = require_number("reads", reads)
    if not 0.0 <= reads <= 1.0:
        raise ConfigError(f"reads must be a share in [0, 1], got {reads}")
    fs = FileSystem(nodes, replication, seed=seed, write_quorum=write_quorum,
                    chunk_size=chunk_size, timeout=0.5, repair_interval=0.25,
                    trace=False)
    victims = [fs.servers[require_int("down", i, minimum=0)] for i in down
               if i < len(fs.servers)]
    n, r, w = replication, r, w
    kv_stale = _stale_share(seed, n, r, w, trials=400)
    rng = fs.sim.rng("playground")
    written: list[str] = []
    struck = False
    while fs.now < duration:
        if not struck and fs.now >= 1.0:
            if kill_leader and fs.log.leader() is not None:
                victims.append(fs.log.leader())
            for name in victims:
                fs.kill(name)
            _storage_partition(fs, partition)
            struck = True
        try:
            if written and rng.random() < reads:
                fs.download(rng.choice(written))
            else:
                name = f"f{len(written) % 20}"
                fs.upload(name, rng.randbytes(rng.randint(1, 4 * chunk_size)))
                written.append(name)
        except (storage.Unavailable, FileNotFoundError):
            pass
        fs.run(0.02)
    m = fs.sim.metrics
    calls = {what: {outcome: _value(m, f"{what}.{outcome}") for outcome in
                    ("ok", "Unavailable")} for what in ("upload", "download")}
    loads = {"KB stored": {s: b / 1e3 for s, b in fs.stored_bytes().items()},
             "requests": {s: _value(m, f"requests.{s}") for s in fs.servers}}
    refused = sum(c["Unavailable"] for c in calls.values())
    total = refused + sum(c["ok"] for c in calls.values())
    headline = (f"{total} calls, {refused} refused · stale reads at R={r}, W={w} of "
                f"N={n}: {kv_stale:.2f} (theory "
                f"{storage.stale_probability(n, r, w):.2f})")
    return Result("storage_playground", {
        "nodes": nodes, "replication": replication, "write_quorum": write_quorum,
        "chunk_size": chunk_size, "r": r, "w": w, "reads": reads,
        "partition": partition, "down": tuple(down), "kill_leader": kill_leader,
        "duration": duration}, seed, m,
        data={"calls": calls, "loads": loads, "stale": kv_stale,
              "stale theory": storage.stale_probability(n, r, w),
              "headline": headline})


def _stale_share(seed: int, n: int, r: int, w: int, trials: int) -> float:
    """Measured stale-read share of random partial quorums (fresh key per trial)."""
    kv = storage.QuorumKV(n, n=n, r=r, w=w, fanout="quorum", seed=seed, trace=False)
    for i in range(trials):
        kv.put(f"k{i}", i)
        kv.get(f"k{i}")
    return kv.sim.metrics["reads.stale"].value / trials


# -- 08 mapreduce -----------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus.txt"


def corpus(documents: int | None = None) -> tuple[tuple[str, str], ...]:
    """The documents of data/corpus.txt (the first `documents`, or all) as
    (doc id, text) records: made-up words with Zipf frequencies (data/README.md)."""
    records = tuple(tuple(line.split("\t", 1))
                    for line in CORPUS.read_text().splitlines())
    if documents is None:
        return records
    documents = require_int("documents", documents, minimum=1)
    return records[:documents]


def words(record: tuple[str, str]) -> Iterable[tuple[str, int]]:
    """Word count's map: (word, 1) for every word of a document."""
    for word in record[1].split():
        yield word, 1


def total(key: str, counts: list[int]) -> int:
    """Word count's reduce, and its combiner: the sum of the counts."""
    return sum(counts)


def postings(record: tuple[str, str]) -> Iterable[tuple[str, str]]:
    """Inverted index's map: (word, doc id) once per distinct word of a document."""
    doc, text = record
    for word in dict.fromkeys(text.split()):
        yield word, doc


def doc_list(key: str, docs: list[str]) -> tuple[str, ...]:
    """Inverted index's reduce: the ids of the documents holding the word, sorted."""
    return tuple(sorted(docs))


def positions(record: tuple[str, str]) -> Iterable[tuple[tuple[str, str, int], str]]:
    """Sort's map, standing in for the paper's 1 TB sort: every word occurrence
    keyed by (word, doc id, position), so the map output is as big as the
    input, every key is distinct and partitions come out even."""
    doc, text = record
    for i, word in enumerate(text.split()):
        yield (word, doc, i), ""


def first(key: Any, values: list) -> Any:
    """Sort's reduce: the identity (every key occurs once)."""
    return values[0]


#: Example jobs by name: (mapper, reducer, combiner or None).
MAPREDUCE_JOBS: Mapping[str, tuple] = MappingProxyType({
    "word count": (words, total, total),
    "inverted index": (postings, doc_list, None),
    "sort": (positions, first, None),
})

#: Figure 3's setup scaled down: 20 workers, M = 100 map and R = 80 reduce
#: tasks (the paper: 1746 workers, M = 15000, R = 4000), one straggler with
#: disk and CPU ten times slower. "Killed": 2 of the 20 workers (the paper's
#: 200 of 1746) crash 60 s in and restart at once, as new processes.
FIGURE3: Mapping[str, Any] = MappingProxyType({
    "workers": 20, "splits": 100, "partitions": 80, "stragglers": {"w20": 10.0}})
FIGURE3_KILLED: Mapping[str, float] = MappingProxyType({"w1": 60.0, "w2": 60.0})
#: Dean & Ghemawat, Figure 3: seconds to sort 1 TB (anchors/FACTS.md).
FIGURE3_PAPER: Mapping[str, float] = MappingProxyType({
    "normal": 891.0, "no backup tasks": 1283.0, "200 of 1746 workers killed": 933.0})


def figure3(seed: int = 1) -> Result:
    """The sort three ways, as in the paper's Figure 3: normal (backup tasks
    on), without backup tasks, and with a tenth of the workers killed early.
    data: "runs" (name -> MapReduceResult) and "rows" (seconds and the change
    against normal, simulated beside the paper)."""
    mapper, reducer, _ = MAPREDUCE_JOBS["sort"]
    records = corpus()
    runs = {
        "normal": mapreduce.run(mapper, reducer, records, seed=seed, **FIGURE3),
        "no backup tasks": mapreduce.run(mapper, reducer, records, seed=seed,
                                         backup_tasks=False, **FIGURE3),
        "2 of 20 workers killed": mapreduce.run(
            mapper, reducer, records, seed=seed, crash=dict(FIGURE3_KILLED),
            restart=0.0, **FIGURE3)}
    normal, paper_normal = runs["normal"].duration, FIGURE3_PAPER["normal"]
    rows = [{"execution": name, "paper (s)": paper,
             "paper vs normal": paper / paper_normal - 1,
             "simulated (s)": run.duration,
             "simulated vs normal": run.duration / normal - 1,
             "re-executed tasks": run.reexecutions, "backup tasks": run.backups,
             "extra work": run.extra_work}
            for (name, run), paper in zip(runs.items(), FIGURE3_PAPER.values(),
                                          strict=True)]
    return Result("figure3", {**FIGURE3, "killed": dict(FIGURE3_KILLED)}, seed,
                  Metrics(), data={"runs": runs, "rows": rows})


def sampled_partitioner(records: Sequence, mapper: Callable, partitions: int, *,
                        share: float = 0.1) -> Callable[[Any, int], int]:
    """A partitioner built from a sample (TeraSort's trick against skew): run
    the mapper over the first `share` of the records, then hand out the keys
    seen, heaviest first (in bytes of map output), each to the partition with
    the least sampled load so far; keys missing from the sample are hashed."""
    partitions = require_int("partitions", partitions, minimum=1)
    counts: dict[Any, int] = {}
    for record in records[:max(1, round(share * len(records)))]:
        for pair in mapper(record):
            counts[pair[0]] = counts.get(pair[0], 0) + mapreduce.pairs_size([pair])
    load, table = [0] * partitions, {}
    for key in sorted(counts, key=lambda k: (-counts[k], repr(k))):
        lightest = load.index(min(load))
        table[key] = lightest
        load[lightest] += counts[key]

    def partition(key: Any, r: int) -> int:
        return table.get(key, mapreduce.hash_partition(key, r))

    return partition


def skew(seed: int = 1, *, workers: int = 8, splits: int = 32,
         partitions: int = 16) -> Result:
    """Word count four ways on the Zipf corpus: hash or sampled partitioning,
    with or without the combiner. data: "runs", and "rows" with the job time,
    bytes shuffled, and the largest reduce input over the mean one."""
    records = corpus()
    sampled = sampled_partitioner(records, words, partitions)
    ways = {"hash": (mapreduce.hash_partition, None),
            "hash + combiner": (mapreduce.hash_partition, total),
            "sampled": (sampled, None),
            "sampled + combiner": (sampled, total)}
    runs, rows = {}, []
    for name, (partitioner, combiner) in ways.items():
        run = runs[name] = mapreduce.run(
            words, total, records, workers=workers, splits=splits,
            partitions=partitions, seed=seed, partitioner=partitioner,
            combiner=combiner)
        inputs = list(run.reduce_inputs().values())
        rows.append({"partitioning": name, "job time (s)": run.duration,
                     "KB shuffled": run.bytes_shuffled / 1e3,
                     "largest / mean reduce input": max(inputs) * len(inputs)
                     / sum(inputs)})
    return Result("skew", {"workers": workers, "splits": splits,
                           "partitions": partitions}, seed, Metrics(),
                  data={"runs": runs, "rows": rows})


#: The playground's backup policies, by name (None: backup tasks off).
MAPREDUCE_BACKUPS: Mapping[str, mapreduce.Backups | None] = MappingProxyType({
    "oldest": mapreduce.Backups(), "time_left": mapreduce.Backups(pick="time_left"),
    "off": None})


def mapreduce_playground(seed: int = 1, *, job: str = "word count",
                         workers: int = 8, splits: int = 32, partitions: int = 8,
                         combiner: bool = False, straggler: float = 1.0,
                         backups: str = "oldest", down: Sequence[int] = (),
                         kill_at: float = 60.0) -> mapreduce.MapReduceResult:
    """One job of MAPREDUCE_JOBS on the corpus: the last worker is `straggler`
    times slower, the workers numbered in `down` (0-based) crash at `kill_at`
    seconds and stay down, `backups` names a MAPREDUCE_BACKUPS policy."""
    if job not in MAPREDUCE_JOBS:
        raise ConfigError(f"job must be one of {list(MAPREDUCE_JOBS)}, got {job!r}")
    if backups not in MAPREDUCE_BACKUPS:
        raise ConfigError(f"backups must be one of {list(MAPREDUCE_BACKUPS)}, "
                          f"got {backups!r}")
    mapper, reducer, combine = MAPREDUCE_JOBS[job]
    if combiner and combine is None:
        raise ConfigError(f"{job} has no combiner: its reduce does not take its "
                          f"own output as input")
    workers = require_int("workers", workers, minimum=1)
    slow = {f"w{workers}": straggler} if straggler > 1 else None
    policy = MAPREDUCE_BACKUPS[backups]
    return mapreduce.run(
        mapper, reducer, corpus(), workers=workers, seed=seed, splits=splits,
        partitions=partitions, combiner=combine if combiner else None,
        stragglers=slow, crash={f"w{i + 1}": kill_at for i in down},
        backup_tasks=policy or False)


# -- 09 capstone ------------------------------------------------------------------

#: The capstone's storage servers and metadata (Raft) nodes.
CAPSTONE_SERVERS = tuple(f"s{i}" for i in range(1, 6))
CAPSTONE_METADATA = tuple(f"n{i}" for i in range(1, 4))
CAPSTONE_FAULT_KINDS = ("crash", "replace", "slow", "partition", "brownout")
#: Mean service time (seconds, exponential) of each piece of work a storage
#: server does: coordinate one client operation, or read or write one replica.
CAPSTONE_COSTS: Mapping[str, float] = MappingProxyType(
    {"coordinate": 0.002, "get": 0.004, "put": 0.006})
_CAPSTONE_HOP = dist.uniform(0.0003, 0.0007)         # one-way network delay


class CapstoneFault(NamedTuple):
    """One entry of the capstone's fault schedule: from `at` for `duration`
    seconds (math.inf: to the end), counted from the start of the workload.

    "crash": `target` stops, and restarts `duration` s later with its disk.
    "replace": storage server `target` dies with its disk; an empty machine
    takes its place `duration` s later and pulls its keys from its peers.
    "slow": storage server `target` works `severity` times slower.
    "partition": the nodes in `target` ("s1,n1") are cut off from the other
    servers (the load balancer still reaches all); a later one replaces it.
    "brownout": every storage server runs at (1 - severity) of its speed.
    The target "leader" is the metadata leader at that moment.
    """

    kind: str
    at: float
    duration: float
    target: str = ""
    severity: float = 1.0


#: The schedule the tuning lab is graded against: each kind of fault once.
CAPSTONE_FAULTS = (
    CapstoneFault("slow", 6.0, 10.0, "s2", 4.0),
    CapstoneFault("crash", 20.0, 6.0, "leader"),
    CapstoneFault("brownout", 26.0, 4.0, "", 0.3),
    CapstoneFault("partition", 34.0, 6.0, "s4"),
    CapstoneFault("replace", 38.0, 6.0, "s4"),
)


def as_capstone_fault(value: CapstoneFault | Sequence) -> CapstoneFault:
    """A checked CapstoneFault from one, or from a (kind, at, duration[, target[,
    severity]]) tuple."""
    if not isinstance(value, tuple | list) or not 3 <= len(value) <= 5:
        raise ConfigError(f"a capstone fault is (kind, at, duration[, target[, "
                          f"severity]]), got {value!r}")
    fault = CapstoneFault(*value)
    if fault.kind not in CAPSTONE_FAULT_KINDS:
        raise ConfigError(f"fault kind must be one of {CAPSTONE_FAULT_KINDS}, got "
                          f"{fault.kind!r}")
    require_number("fault at", fault.at, minimum=0.0)
    if isinstance(fault.duration, bool) or not isinstance(
            fault.duration, int | float) or not fault.duration > 0:
        raise ConfigError(f"fault duration must be > 0 seconds (math.inf: to the "
                          f"end of the run), got {fault.duration!r}")
    if fault.kind == "brownout":
        if require_probability("brownout severity", fault.severity) == 1.0:
            raise ConfigError("brownout severity must be below 1 (1 stops every "
                              "server: use crash faults for that)")
        return fault
    names = _capstone_targets(fault)
    if fault.kind in ("replace", "slow") and names[0] not in CAPSTONE_SERVERS:
        raise ConfigError(f"a {fault.kind} fault targets a storage server "
                          f"{CAPSTONE_SERVERS}, got {fault.target!r}")
    if fault.kind == "slow":
        require_number("slow severity (a factor)", fault.severity, minimum=1.0)
    return fault


def _capstone_targets(fault: CapstoneFault) -> list[str]:
    """The node names a fault's target lists (checked)."""
    known = (*CAPSTONE_SERVERS, *CAPSTONE_METADATA, "leader")
    names = [n.strip() for n in str(fault.target).split(",") if n.strip()]
    if not names or any(n not in known for n in names):
        raise ConfigError(f"a {fault.kind} fault needs a target from {known}, got "
                          f"{fault.target!r}")
    if fault.kind != "partition" and len(names) > 1:
        raise ConfigError(f"a {fault.kind} fault targets one node, got "
                          f"{fault.target!r}")
    return names


class _Quorum:
    """What a coordinator knows about one replicated read or write in flight."""

    __slots__ = ("request", "needed", "waiting", "version", "latest", "answers",
                 "answered")

    def __init__(self, request: Message, needed: int, waiting: int, version: int,
                 latest: int):
        self.request, self.needed, self.waiting = request, needed, waiting
        self.version, self.latest = version, latest
        self.answers: list[tuple[str, int, Any]] = []
        self.answered = False


class _StorageServer(Node):
    """One storage server: a replica of the keys it owns on the hash ring, and
    the coordinator of the client operations the balancer sends it.

    One worker does its work first come first served (Lindley's recursion on
    `free_at`); work that would wait behind more than `backlog` seconds is
    shed. A write's version is (time in microseconds, server): last writer
    wins, as with synchronised clocks. A read returns the newest of the first R
    answers and repairs replicas that answer an older one (read repair). A
    restarted server pulls the keys it owns from its peers.
    """

    def __init__(self, name: str, net: Network, service: _Service):
        self.service, self.incarnation = service, 0
        self.index = service.servers.index(name)
        self.draw = net.sim.rng(f"capstone.{name}.service").expovariate
        super().__init__(name, net)

    def reset(self) -> None:
        self.disk.setdefault("data", {})
        self.incarnation += 1
        self.free_at, self.slow = self.sim.now, 1.0
        self.quorums: dict[int, _Quorum] = {}
        self.last_quorum = self.last_version = 0
        self.leader_hint = self.service.metadata[0]
        if self.incarnation > 1:
            for peer in self.service.servers:
                if peer != self.name:
                    self.send(peer, "pull")

    def version(self, key: str) -> int:
        """The version of `key` on this server's disk (0: none, or no disk)."""
        return self.disk.get("data", {}).get(key, (0, None))[0]

    # -- one worker, first come first served -------------------------------------
    def work(self, kind: str, then: Callable, *args: Any) -> bool:
        """Queue one piece of `kind` work, then call then(*args); False (and
        nothing queued) if the backlog is already too long."""
        now, service = self.sim.now, self.service
        start = max(now, self.free_at)
        if start - now > service.backlog:
            service.shed += 1
            return False
        cost = self.draw(1.0 / CAPSTONE_COSTS[kind]) * self.slow * service.slowdown
        self.free_at = start + cost
        self.sim.schedule(self.free_at - now, self._done, self.incarnation, start,
                          then, args)
        return True

    def _done(self, incarnation: int, start: float, then: Callable,
              args: tuple) -> None:
        if self.alive and incarnation == self.incarnation:   # not lost in a crash
            self.service.credit(self.index, start, self.sim.now)
            then(*args)

    # -- coordinator ----------------------------------------------------------------
    def on_op(self, msg: Message) -> None:
        if not self.work("coordinate", self.coordinate, msg):
            self.answer(msg, resilience.OVERLOADED)

    def answer(self, request: Message, outcome: str, version: int = 0) -> None:
        self.send(request.src, "answer", job=request.job, outcome=outcome,
                  version=version)

    def coordinate(self, msg: Message) -> None:
        service = self.service
        if msg.op == "meta":
            self.spawn(self.metadata_call(msg))
            return
        owners = service.owners[msg.key]
        self.last_quorum += 1
        version, needed = 0, service.r
        if msg.op == "put":
            version = self.last_version = max(
                self.last_version + 1, int(self.sim.now * 1e6) * 8 + self.index)
            needed = service.w
        self.quorums[self.last_quorum] = _Quorum(msg, needed, len(owners), version,
                                                 service.acked.get(msg.key, 0))
        for owner in owners:
            self.send(owner, msg.op, quorum=self.last_quorum, key=msg.key,
                      version=version, value=msg.value)
        self.sim.schedule(service.rpc_timeout, self.give_up, self.incarnation,
                          self.last_quorum)

    def give_up(self, incarnation: int, number: int) -> None:
        if incarnation != self.incarnation:
            return
        quorum = self.quorums.pop(number, None)
        if quorum is not None and not quorum.answered:
            self.answer(quorum.request, resilience.ERROR)   # no quorum in time

    def on_got(self, msg: Message) -> None:
        self._collect(msg, (msg.src, msg.version, msg.value))

    def on_stored(self, msg: Message) -> None:
        self._collect(msg, (msg.src, msg.version, None))

    def _collect(self, msg: Message, answer: tuple[str, int, Any]) -> None:
        quorum = self.quorums.get(msg.quorum)
        if quorum is None:
            return                                   # given up, or long done
        quorum.answers.append(answer)
        quorum.waiting -= 1
        request = quorum.request
        if not quorum.answered and len(quorum.answers) == quorum.needed:
            quorum.answered = True
            version = quorum.version
            if request.op == "get":
                version = max(v for _, v, _ in quorum.answers)
                self.service.read_done(stale=version < quorum.latest)
            self.answer(request, resilience.OK, version)
        if request.op == "get" and quorum.answered:
            self.repair(request.key, quorum)
        if quorum.waiting == 0:
            del self.quorums[msg.quorum]

    def repair(self, key: str, quorum: _Quorum) -> None:
        """Read repair: send the newest version seen to the replicas that
        answered an older one."""
        _, version, value = max(quorum.answers, key=lambda a: a[1])
        for i, (owner, seen, _) in enumerate(quorum.answers):
            if seen < version:
                self.send(owner, "put", quorum=-1, key=key, version=version,
                          value=value)
                quorum.answers[i] = (owner, version, value)

    def metadata_call(self, msg: Message):
        """A metadata operation is a command the Raft leader commits: ask the
        member believed to lead, then the one it names (or the next one)."""
        members = self.service.metadata
        for _ in members:
            try:
                reply = yield self.call(self.leader_hint, "request",
                                        self.service.rpc_timeout,
                                        command=("meta", msg.value))
            except RequestTimeout:
                reply = None
            if reply is not None and reply.ok:
                self.answer(msg, resilience.OK, msg.value)
                return
            hint = None if reply is None else reply.leader
            if hint is None or hint == self.leader_hint:
                hint = members[(members.index(self.leader_hint) + 1) % len(members)]
            self.leader_hint = hint
        self.answer(msg, resilience.ERROR)

    # -- replica --------------------------------------------------------------------
    def on_get(self, msg: Message) -> None:
        self.work("get", self.read_local, msg)

    def read_local(self, msg: Message) -> None:
        version, value = self.disk["data"].get(msg.key, (0, None))
        self.send(msg.src, "got", quorum=msg.quorum, version=version, value=value)

    def on_put(self, msg: Message) -> None:
        self.work("put", self.write_local, msg)

    def write_local(self, msg: Message) -> None:
        self.store(msg.key, msg.version, msg.value)
        if msg.quorum >= 0:                  # not a read repair
            self.send(msg.src, "stored", quorum=msg.quorum, version=msg.version)

    def store(self, key: str, version: int, value: Any) -> None:
        data = self.disk["data"]
        if version > data.get(key, (0, None))[0]:
            data[key] = (version, value)

    def on_pull(self, msg: Message) -> None:
        """A restarted peer asks for the keys we both own."""
        owners = self.service.owners
        entries = tuple((k, v, x) for k, (v, x) in self.disk["data"].items()
                        if msg.src in owners[k])
        self.send(msg.src, "entries", entries=entries)

    def on_entries(self, msg: Message) -> None:
        for key, version, value in msg.entries:
            self.store(key, version, value)

    def on_ping(self, msg: Message) -> None:
        self.reply(msg)


class _BalancerNode(Node):
    """Where the load balancer sits on the network: outside every partition,
    never crashed."""

    def __init__(self, name: str, net: Network, balancer: _Balancer):
        self.balancer = balancer
        super().__init__(name, net)
        net.keep_outside_partitions(name)

    def on_answer(self, msg: Message) -> None:
        self.balancer.answered(msg)


class _Balancer:
    """A client-side load balancer: each attempt goes to the storage server a
    labkit.balancing policy picks among those its health checks find up. To
    the users' resilience.Client it is the backend (`servers`, `send`)."""

    def __init__(self, net: Network, service: _Service, policy: balancing.Policy,
                 health_interval: float):
        self.service, self.policy, self.sim = service, policy, net.sim
        self.servers = len(service.servers)
        self.view = balancing.View(self.servers, rng=net.sim.rng("capstone.policy"))
        policy.start(self.view)
        self.jobs: dict[int, tuple[Any, int]] = {}
        self.last_job = 0
        self.health_interval = health_interval
        self.node = _BalancerNode("lb", net, self)
        self.node.set_timer("health", health_interval, self.check_health)

    def send(self, job: Any, avoid: int = -1) -> None:
        """Route one copy of an attempt; a hedge (`avoid`: the server of the
        first copy) goes to another server."""
        view = self.view
        op, key, value = self.service.requests[job.attempt.rid]
        view.now, view.key = self.sim.now, key
        choice = self.policy.choose(view) if view.live else None
        if choice is None:                           # nobody is up: fail fast
            self.sim.schedule(0.0, job.reply, job, resilience.ERROR)
            return
        if choice == avoid and len(view.live) > 1:
            live = view.live
            choice = live[(live.index(choice) + 1) % len(live)]
        job.replica = choice
        view.outstanding[choice] += 1
        self.last_job += 1
        self.jobs[self.last_job] = (job, choice)
        self.node.send(self.service.servers[choice], "op", job=self.last_job, op=op,
                       key=key, value=value)

    def answered(self, msg: Message) -> None:
        entry = self.jobs.pop(msg.job, None)
        if entry is None:
            return
        job, server = entry
        self.view.outstanding[server] -= 1
        # The user's request is acknowledged if this answer settles its attempt
        # (the client ignores a late answer, or a hedge's twin).
        settled_before = job.attempt.done.done
        job.reply(job, msg.outcome)
        if not settled_before and msg.outcome == resilience.OK:
            self.service.acknowledge(job.attempt.rid, msg.version)

    def check_health(self) -> None:
        for i, name in enumerate(self.service.servers):
            self.node.call(name, "ping", self.health_interval).add_done_callback(
                lambda reply, i=i: self._health(i, reply))
        self.node.set_timer("health", self.health_interval, self.check_health)

    def _health(self, server: int, reply: Any) -> None:
        view, up = self.view, not reply.failed
        if up == view.alive[server]:
            return
        view.set_alive(server, up)
        if up:              # back from a crash: what it held is gone
            view.outstanding[server] = 0
            self.jobs = {n: e for n, e in self.jobs.items() if e[1] != server}


class _Users(resilience.Client):
    """Users whose request rate follows one day over the run; each request is a
    read, a write or a metadata operation on a key drawn with Zipf skew."""

    def start_day(self, service: _Service) -> None:
        sim, peak, until = self.sim, service.peak, service.duration
        arrivals, workload = sim.rng("capstone.arrivals"), sim.rng("capstone.workload")
        t0 = sim.now

        def arrive() -> None:                    # thinning: keep rate(t) / peak
            now = sim.now - t0
            if arrivals.random() * peak < service.rate(now):
                service.requests.append(service.draw_request(len(self.starts),
                                                             workload))
                sim.spawn(self._request(len(self.starts)))
            gap = arrivals.expovariate(peak)
            if now + gap < until:
                sim.schedule(gap, arrive)

        sim.schedule(arrivals.expovariate(peak), arrive)


class _Service:
    """The settings every node of one capstone run reads, and what it counts."""

    def __init__(self, t0: float, knobs: Mapping[str, Any]):
        self.t0, self.window = t0, knobs["window"]
        self.duration, self.peak = knobs["duration"], knobs["peak_rate"]
        self.servers, self.metadata = CAPSTONE_SERVERS, CAPSTONE_METADATA
        self.r, self.w = knobs["r"], knobs["w"]
        self.reads, self.meta = knobs["reads"], knobs["meta"]
        # Internal calls (quorums, Raft) give up no later than the client does.
        self.rpc_timeout = min(knobs["timeout"], 0.5)
        self.backlog = knobs["backlog"]
        self.keys = tuple(f"k{i:04d}" for i in range(knobs["keys"]))
        self.cumulative = np.cumsum(
            1.0 / np.arange(1, len(self.keys) + 1) ** knobs["skew"]).tolist()
        ring = storage.HashRing(self.servers)
        self.owners = {k: tuple(ring.owners(k, knobs["replication"]))
                       for k in self.keys}
        self.slowdown = 1.0                          # a brown-out's factor
        self.requests: list[tuple[str, str, Any]] = []
        self.acked: dict[str, int] = {}      # key -> newest acknowledged version
        self.acked_meta: list[int] = []
        self.lost: set[tuple[str, int]] = set()  # (key, version) no disk held
        self.busy = [[0.0] * math.ceil(self.duration / self.window)
                     for _ in self.servers]
        self.shed = self.reads_done = self.stale = 0

    def rate(self, t: float) -> float:
        """Requests per second t seconds in: one day over the run, from a fifth
        of the peak at night (start and end) to the peak at midday."""
        day = 0.5 - 0.5 * math.cos(2 * math.pi * t / self.duration)
        return self.peak * (0.2 + 0.8 * day)

    def draw_request(self, rid: int, rng: Any) -> tuple[str, str, Any]:
        """(operation, key, value) of request `rid`; the value is the id."""
        roll = rng.random()
        key = rng.choices(self.keys, cum_weights=self.cumulative)[0]
        if roll < self.meta:
            return "meta", key, rid
        return ("get" if roll < self.meta + self.reads else "put"), key, rid

    def acknowledge(self, rid: int, version: int) -> None:
        op, key, _ = self.requests[rid]
        if op == "put":
            self.acked[key] = max(self.acked.get(key, 0), version)
        elif op == "meta":
            self.acked_meta.append(rid)

    def read_done(self, stale: bool) -> None:
        self.reads_done += 1
        self.stale += stale

    def credit(self, server: int, start: float, end: float) -> None:
        """Count [start, end) as busy time of `server`, window by window."""
        windows, w = self.busy[server], self.window
        k = int((start - self.t0) // w)
        while start < end and k < len(windows):
            edge = self.t0 + (k + 1) * w
            if k >= 0:
                windows[k] += min(end, edge) - start
            start, k = edge, k + 1


class _Operator:
    """The operator's side of a run: applies the fault schedule and samples
    the dashboard at the end of every window."""

    def __init__(self, metadata: raft.RaftCluster,
                 servers: Mapping[str, _StorageServer], service: _Service):
        self.sim, self.t0 = metadata.sim, service.t0
        self.metadata, self.servers, self.service = metadata, servers, service
        self.events: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []

    def schedule(self, fault: CapstoneFault) -> None:
        self.sim.at(self.t0 + fault.at, self.begin, fault)

    def begin(self, fault: CapstoneFault) -> None:
        kind, names = fault.kind, []
        if kind == "brownout":
            self.service.slowdown = 1.0 / (1.0 - fault.severity)
        else:
            names = [self.metadata.leader() if n == "leader" else n
                     for n in _capstone_targets(fault)]
            names = [n for n in names if n is not None]
        for name in names:
            if kind in ("crash", "replace"):
                self._node(name, "kill")
            if kind == "replace":
                self.servers[name].disk.clear()          # a new, empty machine
                self.check_losses()
            elif kind == "slow":
                self.servers[name].slow = fault.severity
        if kind == "partition" and names:
            self.metadata.partition(names)
        hit = ",".join(names) or ("all" if kind == "brownout" else "nobody")
        self.events.append({"fault": kind, "target": hit,
                            "from (s)": fault.at,
                            "to (s)": fault.at + fault.duration})
        if fault.duration != math.inf:
            self.sim.schedule(fault.duration, self.end, kind, names)

    def end(self, kind: str, names: list[str]) -> None:
        if kind == "brownout":
            self.service.slowdown = 1.0
        elif kind == "partition":
            self.metadata.heal()
        for name in names:
            if kind in ("crash", "replace"):
                self._node(name, "restart")
            elif kind == "slow":
                self.servers[name].slow = 1.0

    def _node(self, name: str, verb: str) -> None:
        if name in self.servers:
            getattr(self.servers[name], verb)()
        else:
            getattr(self.metadata, verb)(name)

    def check_losses(self) -> None:
        """Note each key whose newest acknowledged version no disk holds."""
        service, servers = self.service, self.servers
        for key, version in service.acked.items():
            if max(servers[o].version(key) for o in service.owners[key]) < version:
                service.lost.add((key, version))

    def sample_every_window(self) -> None:
        w = self.service.window
        for k in range(1, math.ceil(self.service.duration / w)):
            self.sim.at(self.t0 + k * w, self.sample)

    def sample(self) -> None:
        """What the operator's dashboard shows at the end of a window."""
        servers, under = self.servers, 0
        for key, owners in self.service.owners.items():
            versions = [servers[o].version(key) for o in owners]
            newest = max(versions)
            under += bool(newest) and sum(
                v == newest and servers[o].alive
                for o, v in zip(owners, versions, strict=True)) < len(owners)
        self.check_losses()
        metadata = self.metadata
        self.samples.append({
            "under-replicated keys": under,
            "lost acked writes": len(self.service.lost),
            "leader": metadata.leader() or "none",
            "roles": {n: metadata.role(n) for n in metadata.names}})


#: The walk-through's starting point (the defaults of `capstone`), and the
#: configuration it ends with.
CAPSTONE_START: Mapping[str, Any] = MappingProxyType({
    "policy": "round_robin", "timeout": 1.0, "attempts": 3, "jitter": "none",
    "budget": False, "breaker": "none", "hedging": False, "replication": 3, "r": 1,
    "w": 1, "election_timeout": 2.0})
CAPSTONE_TUNED: Mapping[str, Any] = MappingProxyType({
    **CAPSTONE_START, "policy": "least_outstanding", "timeout": 0.25,
    "jitter": "full", "budget": True, "r": 2, "w": 2, "election_timeout": 0.15})
#: The knobs of the control panel and the tuning journal, in that order.
CAPSTONE_KNOBS = tuple(CAPSTONE_START)
#: Every keyword of `capstone` but seed and faults.
_CAPSTONE_PARAMS = (*CAPSTONE_KNOBS, "kill", "kill_at", "peak_rate", "duration",
                    "window", "keys", "skew", "reads", "meta", "health_interval",
                    "backlog")


def capstone(seed: int = 1, *, policy: str = "round_robin", timeout: float = 1.0,
             attempts: int = 3, jitter: str = "none", budget: bool = False,
             breaker: str = "none", hedging: bool = False, replication: int = 3,
             r: int = 1, w: int = 1, election_timeout: float = 2.0,
             faults: Iterable[CapstoneFault | Sequence] = CAPSTONE_FAULTS,
             kill: Iterable[str] = (), kill_at: float = 20.0,
             peak_rate: float = 200.0, duration: float = 60.0, window: float = 2.0,
             keys: int = 1000, skew: float = 1.0, reads: float = 0.75,
             meta: float = 0.1, health_interval: float = 0.5,
             backlog: float = 1.0) -> Result:
    """The capstone: one simulated day of a replicated key-value service under a
    fault schedule. The defaults are the tuning walk-through's starting point.

    Users (from a fifth of `peak_rate` requests per second to all of it and
    back; a share `reads` of reads and `meta` of metadata operations, the rest
    writes; keys Zipf(`skew`) over `keys` keys) -> a client (`timeout` per
    attempt, `attempts`, backoff `jitter`, a 10 % retry `budget`, a `breaker`
    preset, `hedging` after the p95, as in notebook 03) -> a load balancer
    (`policy` of notebook 02; health checks every `health_interval` s) -> five
    storage servers s1..s5 (each key on `replication` of them; a read waits for
    `r` answers, a write for `w`; work queued over `backlog` s is shed) and a
    three-node Raft cluster n1..n3 (election timeouts drawn from
    [election_timeout, 2 * election_timeout)) that commits metadata operations.
    `faults`: CapstoneFault entries; `kill`: node names that crash at `kill_at`
    and stay down (the control panel's buttons).

    data: "windows" (one row per `window` s: request and attempt rates, error
    share, p50/p99, leader, leaderless time, elections, under-replicated keys,
    acknowledged writes lost so far), "load" (each storage server's busy share
    per window), "roles" (each metadata node's role at each window's end),
    "summary" (the run's totals), "faults" (what each fault hit), "operations"
    (requests by kind), "headline". Raises InvariantViolation if the Raft
    cluster ever broke a safety property.
    """
    knobs = _capstone_knobs(locals())
    if isinstance(faults, CapstoneFault | str):
        raise ConfigError("faults must be a list of CapstoneFault entries")
    schedule = [as_capstone_fault(f) for f in faults]
    schedule += [as_capstone_fault(("crash", knobs["kill_at"], math.inf, name))
                 for name in knobs["kill"]]
    e = knobs["election_timeout"]
    metadata = raft.RaftCluster(len(CAPSTONE_METADATA), seed=seed,
                                election_timeout=(e, 2 * e), heartbeat=e / 3,
                                net=NetConfig(latency=_CAPSTONE_HOP), trace=False)
    sim, net = metadata.sim, metadata.network
    while metadata.leader() is None and sim.now < 50 * e:
        sim.run(e / 2)              # the service was up before the day began
    service = _Service(sim.now, knobs)
    servers = {name: _StorageServer(name, net, service) for name in service.servers}
    balancer = _Balancer(net, service, balancing.make_policy(knobs["policy"]),
                         knobs["health_interval"])
    users = _Users(sim, balancer, _capstone_policy(knobs), name="users")
    operator = _Operator(metadata, servers, service)
    operator.sample_every_window()   # first, so a sample sees the state before a
    for fault in schedule:           # fault that starts at the same moment
        operator.schedule(fault)
    users.start_day(service)
    sim.run(knobs["duration"])
    operator.sample()
    for _ in range(600):             # let the requests under way finish
        if not users.unfinished:
            break
        sim.run(0.1)
    return _capstone_result(seed, knobs, schedule, users, operator)


def _capstone_knobs(given: Mapping[str, Any]) -> dict[str, Any]:
    """The checked knobs of one capstone call, as they go into params."""
    knobs = {name: given[name] for name in _CAPSTONE_PARAMS}
    balancing.make_policy(knobs["policy"])           # raises for unknown names
    if knobs["jitter"] not in resilience.BACKOFF_STRATEGIES:
        raise ConfigError(f"jitter must be one of {resilience.BACKOFF_STRATEGIES}, "
                          f"got {knobs['jitter']!r}")
    if knobs["breaker"] not in ("none", *resilience.BREAKER_PRESETS):
        raise ConfigError(f"breaker must be 'none' or one of "
                          f"{list(resilience.BREAKER_PRESETS)}, got "
                          f"{knobs['breaker']!r}")
    for name in ("budget", "hedging"):
        if not isinstance(knobs[name], bool):
            raise ConfigError(f"{name} must be True or False, got {knobs[name]!r}")
    for name in ("timeout", "election_timeout", "peak_rate", "duration", "window",
                 "health_interval", "backlog"):
        knobs[name] = require_number(name, knobs[name], positive=True)
    knobs["kill_at"] = require_number("kill_at", knobs["kill_at"], minimum=0.0)
    knobs["skew"] = require_number("skew", knobs["skew"], minimum=0.0)
    require_int("attempts", knobs["attempts"], minimum=1)
    require_int("keys", knobs["keys"], minimum=1)
    n = require_int("replication", knobs["replication"], minimum=1)
    if n > len(CAPSTONE_SERVERS):
        raise ConfigError(f"replication must be at most {len(CAPSTONE_SERVERS)} "
                          f"(the storage servers), got {n}")
    for name in ("r", "w"):
        if require_int(name, knobs[name], minimum=1) > n:
            raise ConfigError(f"{name} must be between 1 and replication = {n}, "
                              f"got {knobs[name]}")
    reads, meta = (require_probability(k, knobs[k]) for k in ("reads", "meta"))
    if reads + meta > 1:
        raise ConfigError(f"reads + meta must be at most 1 (the rest are writes), "
                          f"got {reads} + {meta}")
    if isinstance(knobs["kill"], str) or not all(
            n in (*CAPSTONE_SERVERS, *CAPSTONE_METADATA) for n in knobs["kill"]):
        raise ConfigError(f"kill must be a list of node names from "
                          f"{CAPSTONE_SERVERS + CAPSTONE_METADATA}, got "
                          f"{knobs['kill']!r}")
    knobs["kill"] = tuple(knobs["kill"])
    return knobs


def _capstone_policy(knobs: Mapping[str, Any]) -> resilience.Policy:
    """The users' client policy (the knobs of notebook 03's playground)."""
    timeout, breaker = knobs["timeout"], knobs["breaker"]
    return resilience.Policy(
        timeout=timeout, attempts=knobs["attempts"],
        backoff=resilience.Backoff(knobs["jitter"], base=0.010, cap=1.0),
        budget=0.1 if knobs["budget"] else None,
        breaker=None if breaker == "none" else resilience.BREAKER_PRESETS[breaker](),
        hedge=resilience.Percentile(95, initial=timeout / 2) if knobs["hedging"]
        else None)


def _capstone_result(seed: int, knobs: dict[str, Any],
                     schedule: list[CapstoneFault], users: _Users,
                     operator: _Operator) -> Result:
    """Fold one run's logs into per-window rows, per-server load and totals."""
    service, metadata, sim = operator.service, operator.metadata, users.sim
    t0, w, duration = service.t0, service.window, service.duration
    edges = t0 + np.append(np.arange(0.0, duration, w), duration)
    ends = np.asarray(users.ends)
    ok = np.asarray([o == resilience.OK for o in users.outcomes], bool)
    latency = sim.metrics["latency"].values          # in the order they ended

    def per_window(times: Any) -> np.ndarray:
        return np.histogram(np.asarray(times, float), bins=edges)[0]

    started, sent = per_window(users.starts), per_window(users.send_times)
    finished, good = per_window(ends), per_window(ends[ok])
    which = np.searchsorted(edges, ends, side="right") - 1
    elections = [t for t, _, _ in metadata.elections() if t >= t0]
    roles = metadata.audit.roles
    rows = []
    for k, sample in enumerate(operator.samples):
        lo, hi = edges[k], edges[k + 1]
        tail = Histogram("window", latency[which == k])
        rows.append({
            "t (s)": round(lo - t0, 6), "requests/s": started[k] / (hi - lo),
            "attempts/s": sent[k] / (hi - lo),
            "errors": 1 - good[k] / finished[k] if finished[k] else 0.0,
            "p50 (ms)": 1e3 * tail.percentile(50) if tail.count else math.nan,
            "p99 (ms)": 1e3 * tail.percentile(99) if tail.count else math.nan,
            "leader": sample["leader"],
            "leaderless (s)": raft.leaderless(roles, hi, lo),
            "elections": sum(lo <= t < hi for t in elections),
            "under-replicated keys": sample["under-replicated keys"],
            "lost acked writes": sample["lost acked writes"]})
    operator.check_losses()
    metadata.check()                 # Raft's safety properties held throughout
    applied = max((metadata.applied(n) for n in metadata.names), key=len)
    committed = {command[1] for command in applied}
    lost = len(service.lost) + sum(rid not in committed
                                   for rid in service.acked_meta)
    requests, hist = len(users.starts), sim.metrics["latency"]
    summary = {
        "requests": requests,
        "availability": float(ok.sum() / requests) if requests else math.nan,
        "p50 (ms)": 1e3 * hist.percentile(50), "p99 (ms)": 1e3 * hist.percentile(99),
        "p99.9 (ms)": 1e3 * hist.percentile(99.9),
        "attempts per request": len(users.send_times) / requests,
        "lost acked writes": lost, "stale reads": service.stale,
        "reads": service.reads_done, "elections": len(elections),
        "leaderless (s)": raft.leaderless(roles, t0 + duration, t0),
        "most under-replicated keys": max(r["under-replicated keys"] for r in rows),
        "shed": service.shed}
    for name in ("lost acked writes", "stale reads", "shed", "elections"):
        sim.metrics.counter(f"capstone.{name}").inc(summary[name])
    load = {name: [b / (edges[k + 1] - edges[k]) for k, b in enumerate(busy)]
            for name, busy in zip(service.servers, service.busy, strict=True)}
    headline = (f"availability {summary['availability']:.2%} · p99 "
                f"{summary['p99 (ms)']:.0f} ms · {lost} acknowledged writes lost · "
                f"{summary['elections']} election(s)")
    return Result("capstone", {**knobs, "faults": tuple(schedule)}, seed,
                  sim.metrics, end_time=sim.now, data={
                      "windows": rows, "load": load,
                      "roles": {n: [s["roles"][n] for s in operator.samples]
                                for n in metadata.names},
                      "summary": summary, "faults": operator.events,
                      "operations": {op: sum(r[0] == op for r in service.requests)
                                     for op in ("get", "put", "meta")},
                      "headline": headline})


# -- 09 capstone: objectives, scorecard, journal ---------------------------------

@dataclasses.dataclass(frozen=True)
class SLO:
    """A service-level objective (服务等级目标) over one whole run: the p99 of
    every user request's latency, end to end, at most `p99_ms`; the share of
    requests that succeed at least `availability`; at most `lost_writes`
    acknowledged writes lost."""

    p99_ms: float = 400.0
    availability: float = 0.999
    lost_writes: int = 0

    def __post_init__(self):
        require_number("p99_ms", self.p99_ms, positive=True)
        require_probability("availability", self.availability)
        require_int("lost_writes", self.lost_writes, minimum=0)


def slo_rows(result: Result, slo: SLO = SLO()) -> list[dict[str, Any]]:
    """One row per objective: metric, objective, measured (in the metric's
    unit: ms, %, writes) and whether it is met."""
    if not isinstance(result, Result) or result.scenario != "capstone":
        raise ConfigError(f"scorecard needs a scenarios.capstone result, got "
                          f"{result!r}")
    if not isinstance(slo, SLO):
        raise ConfigError(f"slo must be a scenarios.SLO, got {slo!r}")
    s = result.data["summary"]
    p99, available = round(s["p99 (ms)"], 1), round(100 * s["availability"], 3)
    return [
        {"metric": "p99 latency (ms)", "objective": f"≤ {slo.p99_ms:g}",
         "measured": p99, "met": bool(p99 <= slo.p99_ms)},
        {"metric": "availability (%)", "objective": f"≥ {100 * slo.availability:g}",
         "measured": available, "met": bool(available >= 100 * slo.availability)},
        {"metric": "lost acknowledged writes", "objective": f"≤ {slo.lost_writes}",
         "measured": s["lost acked writes"],
         "met": bool(s["lost acked writes"] <= slo.lost_writes)}]


def scorecard(result: Result, slo: SLO = SLO()):
    """The run against the SLO as a pandas table: objective, measured value and
    whether it is met, one row per metric."""
    import pandas as pd  # here: only the notebook's tables need it

    return pd.DataFrame(slo_rows(result, slo)).set_index("metric")


def verdict(result: Result, slo: SLO = SLO()) -> str:
    """One line: "meets the SLO", or which objectives it misses and by what."""
    missed = [f"{row['metric']} {row['measured']:g} (wants {row['objective']})"
              for row in slo_rows(result, slo) if not row["met"]]
    return "meets the SLO" if not missed else "misses " + "; ".join(missed)


class TuningJournal:
    """A lab notebook of capstone runs: each run's knobs, what changed since the
    run before, and its score against one SLO, so runs with the same seed and
    one knob changed can be compared. `table()` shows it."""

    def __init__(self, slo: SLO = SLO()):
        if not isinstance(slo, SLO):
            raise ConfigError(f"slo must be a scenarios.SLO, got {slo!r}")
        self.slo = slo
        self.rows: list[dict[str, Any]] = []
        self._last: Mapping[str, Any] | None = None

    def record(self, result: Result, note: str = "") -> dict[str, Any]:
        """Append one run; returns its row."""
        scores = slo_rows(result, self.slo)
        knobs = {k: result.params[k] for k in CAPSTONE_KNOBS}
        knobs["kill"] = ",".join(result.params["kill"]) or "none"
        if self._last is None:
            changed = "first run"
        else:
            changed = ", ".join(f"{k} {self._last[k]}→{v}" for k, v in knobs.items()
                                if self._last[k] != v) or "nothing"
        row = {"run": len(self.rows) + 1, "note": note, "changed": changed,
               "seed": result.seed, **knobs,
               **{s["metric"]: s["measured"] for s in scores},
               "meets SLO": all(s["met"] for s in scores),
               "misses": ", ".join(s["metric"] for s in scores if not s["met"])}
        self.rows.append(row)
        self._last = knobs
        return row

    def table(self):
        """The journal as a pandas table, one row per run."""
        import pandas as pd  # here: only the notebook's tables need it

        return pd.DataFrame(self.rows).set_index("run")

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        met = sum(row["meets SLO"] for row in self.rows)
        return f"TuningJournal({len(self.rows)} runs, {met} meet the SLO)"
