"""Scenarios: pure functions (seed, **params) -> Result that notebooks explore.

Each builds a fresh simulation from its arguments alone, runs it and returns a
frozen Result, so a widget can cache runs by parameters and CI can replay them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from labkit import balancing, dist, queueing, resilience
from labkit.dist import Distribution
from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Histogram, Metrics, Result, TraceRecord
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
