"""Scenarios of notebook 01, performance monitoring: a FIFO queue (M/M/c,
M/D/1, M/G/1) simulated beside its closed form (`mmc_queue`, `load_sweep`),
coordinated omission (open- against closed-loop load generators), the tail at
scale of fan-out requests, and why node percentiles must not be averaged
(`merged_percentiles`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit import dist, queueing
from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_items,
    require_number,
)
from labkit.metrics import Histogram, Metrics, Record, Result
from labkit.service import ClosedLoop, OpenLoop, Station
from labkit.sim import Simulator

from .common import THEORY_LOADS, Report, service_time, with_data

#: Kendall's letter for each shape: M (memoryless), D (deterministic), G (general).
_KENDALL = {"exponential": "M", "deterministic": "D", "lognormal": "G",
            "bimodal": "G"}


@dataclass(frozen=True, kw_only=True)
class LoadSweep(Record):
    """`load_sweep`'s data: the model in Kendall notation, one latency summary
    per load ("points"), the theory curve across loads and a headline."""

    model: str
    points: list[dict[str, float]]
    curve: dict[str, list]
    headline: str


@dataclass(frozen=True, kw_only=True)
class QueueRun(LoadSweep):
    """`mmc_queue`'s data: a `LoadSweep` of one load, with the closed form
    (None where there is none) and the measured arrival rate, throughput, W,
    L, Lq and utilisation ("stats")."""

    theory: queueing.QueueStats | None
    stats: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class Omission(Record):
    """`coordinated_omission`'s data: the latency summaries the open- and the
    closed-loop client measured, what the fluid model of the stalls
    (`omission_p99`) predicts for the open loop's p99, and a headline."""

    open: dict[str, float]
    closed: dict[str, float]
    open_p99_estimate: float
    headline: str


@dataclass(frozen=True, kw_only=True)
class MergedPercentiles(Record):
    """`merged_percentiles`' data: each node's p99, their mean (wrong), the p99
    of all requests together (right), its closed form, and a headline."""

    node_p99: dict[str, float]
    mean_p99: float
    merged_p99: float
    theory_p99: float
    headline: str


@checked
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


@checked
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


@checked
def mmc_queue(seed: int = 0, *, servers: int = 1, load: float = 0.8,
              service: str = "exponential", mean_service: float = 0.010,
              customers: int = 50_000, warmup: int = 5_000,
              sample_every: float | None = None) -> Result:
    """A FIFO service with `servers` servers at utilisation `load` fed by Poisson
    arrivals: `warmup` requests unmeasured, then `customers` measured ones.

    Metrics are the station's ("service.latency", "service.in_system", ...).
    data, a `QueueRun`: model (Kendall notation), theory (QueueStats or None),
    stats (measured arrival rate, throughput, W, L, Lq, utilisation), points
    (one latency summary), curve (theory across loads) and a headline.
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
    data = QueueRun(model=model, theory=theory, stats=station.stats(),
                    points=[point], curve=theory_curve(servers, service, mean_service),
                    headline=said)
    return with_data(sim.result("mmc_queue", params), data)


@checked
def load_sweep(seed: int = 0, *, servers: int = 1,
               loads: Sequence[float] = (0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9),
               service: str = "exponential", mean_service: float = 0.010,
               customers: int = 20_000, warmup: int = 2_000) -> Result:
    """`mmc_queue` at each load (same seed, so the runs share their random
    streams and the curve is smooth): histograms "latency@<load>", data a
    `LoadSweep`: points (one latency summary per load), curve (theory), model."""
    loads = require_items("loads", loads, "utilisation")
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
    data = LoadSweep(model=model, points=points,
                     curve=theory_curve(servers, service, mean_service),
                     headline=f"{model}: {len(points)} loads × {customers} requests")
    return Result("load_sweep", params, seed, metrics, end_time=end, data=data)


def omission_p99(stall: float, every: float, load: float,
                 mean_service: float) -> float:
    """The open loop's p99 in `coordinated_omission`, from a fluid model.

    A stall of S seconds starting at time 0 freezes the service; a request
    arriving at t < S waits out the rest of the stall (S - t) and then the
    work that arrived before it (load * t): S - (1 - load) * t in all. The
    backlog then drains at rate 1 - load, and a request arriving after the
    stall is delayed by the same S - (1 - load) * t, until t = S / (1 - load).
    So a share q = S / ((1 - load) * every) of requests is delayed by D,
    uniform on [0, S], and 1 % wait longer than S - 0.01 * every * (1 - load).
    On top of D each request takes what the healthy M/M/1 service takes, R,
    exponential with mean W = mean_service / (1 - load). The p99 is the x
    with q P(D + R > x) + (1 - q) P(R > x) = 1 %, found by bisection: about
    S + W - 0.01 * every * (1 - load) when the stalls delay well over 1 % of
    requests, the healthy ln(100) * W when they delay far fewer.
    """
    mean = mean_service / (1 - load)
    share = stall / ((1 - load) * every)

    def slower(x: float) -> float:          # P(latency > x)
        if x < stall:
            delayed = (mean * (1 - math.exp(-x / mean)) + stall - x) / stall
        else:
            delayed = mean / stall * (math.exp(-(x - stall) / mean)
                                      - math.exp(-x / mean))
        return share * delayed + (1 - share) * math.exp(-x / mean)

    lo, hi = 0.0, stall + math.log(100) * mean
    while slower(hi) > 0.01:
        lo, hi = hi, 2 * hi
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if slower(mid) > 0.01 else (lo, mid)
    return (lo + hi) / 2


@checked
def coordinated_omission(seed: int = 0, *, duration: float = 60.0,
                         stall: float = 1.0, every: float = 10.0,
                         rate: float = 100.0, mean_service: float = 0.001,
                         users: int = 1) -> Result:
    """One service measured two ways while it freezes for `stall` seconds at the
    end of every `every` seconds (stalls start at every - stall, 2 * every -
    stall, ... before `duration`).

    Station "open" gets an open-loop client sending Poisson arrivals at `rate`
    requests/s for `duration` seconds whatever happens; station "closed" gets
    `users` closed-loop users, each thinking users/rate - mean_service seconds
    between a reply and its next request, so both clients send `rate`
    requests/s while the service is healthy. The run goes on past `duration`
    until the open client's last request has finished, so every request it
    sent, the ones stuck in a stall included, is measured (the closed-loop
    users keep going until then). Each station keeps (send time, latency) per
    request in series "<name>.requests". data, an `Omission`: open/closed
    latency summaries, open_p99_estimate (`omission_p99`: what the stalls
    predict) and a headline.
    """
    duration = require_number("duration", duration, positive=True)
    stall = require_number("stall", stall, positive=True)
    every = require_number("every", every, positive=True)
    rate = require_number("rate", rate, positive=True)
    mean_service = require_number("mean_service", mean_service, positive=True)
    if stall >= every:
        raise ConfigError(f"stall ({stall} s) must be shorter than every ({every} s)")
    service = dist.exponential(mean_service)
    think = require_int("users", users, minimum=1) / rate - service.mean
    if think < 0:
        raise ConfigError(f"{users} users cannot send {rate}/s when each request "
                          f"takes {service.mean} s: raise users or lower rate")
    load = rate * mean_service
    if load >= 1 - stall / every:
        raise ConfigError(
            f"rate x mean_service ({load:g}) must be below 1 - stall/every "
            f"({1 - stall / every:g}): the service works only that share of the "
            "time, so the open loop's queue would grow without end")
    sim = Simulator(seed)
    stations = {name: Station(sim, 1, service, name=name, keep_requests=True)
                for name in ("open", "closed")}
    # The open loop: Poisson sends until `duration` (the stream OpenLoop would
    # use), then the run ends when the last of them has been answered.
    gap = dist.exponential(1.0 / rate).sampler(sim.rng("open.client.arrivals"))
    waiting = [0]                   # open-loop requests not yet answered

    def reply(_token: object) -> None:
        waiting[0] -= 1
        if waiting[0] == 0 and sim.now >= duration:
            sim.stop()

    def send() -> None:
        waiting[0] += 1
        stations["open"].arrive(reply)
        then = sim.now + gap()
        if then < duration:
            sim.at(then, send)

    if (first := gap()) < duration:
        sim.at(first, send)
    ClosedLoop(sim, stations["closed"], users, dist.constant(think),
               name="closed.client")
    start = every - stall
    while start < duration:
        for station in stations.values():
            sim.at(start, station.stall, stall)
        start += every
    sim.run(until=duration)
    if waiting[0]:
        sim.run()                   # drain: reply() stops it at the last answer
    summary = {name: s.latency.summary() for name, s in stations.items()}
    estimate = omission_p99(stall, every, load, mean_service)
    said = (f"p99: open loop {summary['open']['p99'] * 1e3:.0f} ms (fluid model "
            f"{estimate * 1e3:.0f}), closed loop "
            f"{summary['closed']['p99'] * 1e3:.1f} ms")
    params = dict(duration=duration, stall=stall, every=every, rate=rate,
                  mean_service=mean_service, users=users)
    return with_data(sim.result("coordinated_omission", params),
                     Omission(**summary, open_p99_estimate=estimate, headline=said))


#: The most leaf latencies `fan_out` draws (an array of requests x fan-out).
MAX_LEAF_DRAWS = 20_000_000


@checked
def fan_out(seed: int = 0, *, fanouts: Sequence[int] = (1, 2, 5, 10, 20, 50, 100),
            requests: int = 10_000, median: float = 0.010, p99: float = 1.0) -> Result:
    """Requests that each wait for `fanout` leaf servers, and so take as long as
    the slowest leaf. Leaf latencies are lognormal (`median`, `p99`), so one leaf
    in 100 is slower than `p99`; a request is slower than that with probability
    1 - 0.99**fanout (Dean & Barroso, "The Tail at Scale").

    Every fan-out uses the first leaves of the same draws. Histograms
    "fanout=<n>"; data.rows: fanout, measured and theory share slower than
    `p99`, and the request p50/p99.
    """
    requests = require_int("requests", requests, minimum=1)
    leaf = dist.lognormal(median, p99)
    fanouts = [require_int("fanout", n, minimum=1)
               for n in require_items("fanouts", fanouts, "fan-out")]
    if requests * max(fanouts) > MAX_LEAF_DRAWS:
        raise ConfigError(f"requests x the largest fan-out must be at most "
                          f"{MAX_LEAF_DRAWS:,} leaf latencies (8 bytes each, drawn "
                          f"at once), got {requests:,} x {max(fanouts)}")
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
    return with_data(sim.result("fan_out", params), Report(rows=rows, headline=said))


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


@checked
def merged_percentiles(seed: int = 0, *, loads: Sequence[float] = (0.3, 0.3, 0.3,
                                                                   0.9),
                       mean_service: float = 0.010, duration: float = 2400.0
                       ) -> Result:
    """Several single-server nodes n1, n2, ... at different loads, each fed by
    its own Poisson clients for `duration` seconds: how to combine their p99s.

    Histograms "<node>.latency" per node; data (`MergedPercentiles`): node_p99
    per node, mean_p99 (averaging the nodes' p99s: wrong), merged_p99 (the p99
    of all requests together, via Histogram.merged: right), theory_p99 (the
    same from the M/M/1 closed forms, each node weighted by its arrival rate),
    headline.
    """
    loads = require_items("loads", loads, "node's utilisation")
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
    return with_data(sim.result("merged_percentiles", params), MergedPercentiles(
        node_p99=node_p99, mean_p99=mean_p99, merged_p99=merged.percentile(99),
        theory_p99=theory, headline=said))
