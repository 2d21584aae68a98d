"""Load balancing (负载均衡): a balancer spreading requests over FIFO servers.

Requests arrive as a Poisson stream; a policy picks one live server for each;
every server serves its queue first come first served at its own speed. A
policy is a small class with one decision method, `choose(view)`, so an
exercise can plug in its own. `simulate` runs one experiment and returns a
`BalancingResult` (latency histogram, per-server utilisation and queue-length
samples, failed requests).

Two engines give the same answer on the same seed. The general one puts every
arrival, departure, fault and load report on a `Simulator` agenda. The fast
one, for pure queueing runs (no faults, fresh load information), skips the
agenda: with FIFO servers a request's finish time is known when it arrives
(Lindley's recursion), so only departures need a small heap.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit import dist
from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Histogram, Result
from labkit.sim import Simulator


class View:
    """What a policy sees when it picks the server for one request.

    `outstanding[i]`: requests server i holds now (queued or in service), as the
    balancer counts them. `reported[i]`: server i's load as last reported; the
    very same list as `outstanding` when reports are instant. `live`: indices
    of the alive servers, in order; `version` changes whenever that set does.
    `key`: the request's key (a user or object id). `rng`: the policy's own
    random stream. Policies read a view and never change it.
    """

    __slots__ = ("servers", "outstanding", "reported", "weights", "speeds", "alive",
                 "live", "version", "key", "now", "rng")

    def __init__(self, servers: int, weights: Sequence[float] | None = None,
                 speeds: Sequence[float] | None = None,
                 rng: random.Random | None = None):
        self.servers = require_int("servers", servers, minimum=1)
        self.outstanding = [0] * servers
        self.reported = self.outstanding
        self.weights = list(weights) if weights is not None else [1.0] * servers
        self.speeds = list(speeds) if speeds is not None else [1.0] * servers
        self.alive = [True] * servers
        self.live = tuple(range(servers))
        self.version = 0
        self.key = 0
        self.now = 0.0
        self.rng = rng if rng is not None else random.Random(0)

    def set_alive(self, server: int, alive: bool) -> None:
        """Mark a server up or down (the balancer's health check result)."""
        self.alive[server] = alive
        self.live = tuple(i for i, up in enumerate(self.alive) if up)
        self.version += 1

    def __repr__(self) -> str:
        return f"View({self.servers} servers, {len(self.live)} live)"


class Policy:
    """A rule that picks the server for each request.

    Subclasses define `choose`; `start` resets per-run state (a rotation, a
    hash ring) and runs once before the first request of every run, so one
    policy object can be reused and still give reproducible runs.
    """

    name = "custom"

    def start(self, view: View) -> None:
        """Forget anything left from an earlier run."""

    def choose(self, view: View) -> int | None:
        """The index of a live server for this request, or None to refuse it.

        Called only while at least one server is alive."""
        raise NotImplementedError(f"{type(self).__name__} must define choose(view)")

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                          if not k.startswith("_"))
        return f"{type(self).__name__}({knobs})"


class RoundRobin(Policy):
    """Each live server in turn (轮询)."""

    name = "round_robin"

    def start(self, view: View) -> None:
        self._next = 0

    def choose(self, view: View) -> int:
        alive, i = view.alive, self._next
        while not alive[i]:
            i = (i + 1) % view.servers
        self._next = (i + 1) % view.servers
        return i


class Random(Policy):
    """A live server uniformly at random (随机)."""

    name = "random"

    def choose(self, view: View) -> int:
        live = view.live
        return live[int(view.rng.random() * len(live))]


class WeightedRoundRobin(Policy):
    """Smooth weighted round robin, as nginx does it (加权轮询).

    Each turn every live server's current weight grows by its weight; the
    largest (first on ties) is chosen and loses the total weight. Server i gets
    weights[i] of every sum(weights) turns, interleaved: 5, 1, 1 gives
    a a b a c a a, not a a a a a b c.
    """

    name = "weighted_round_robin"

    def start(self, view: View) -> None:
        self._current = [0.0] * view.servers

    def choose(self, view: View) -> int | None:
        current, weights = self._current, view.weights
        best, total = -1, 0.0
        for i in view.live:
            current[i] += weights[i]
            total += weights[i]
            if best < 0 or current[i] > current[best]:
                best = i
        if total <= 0:
            return None             # every live server has weight 0
        current[best] -= total
        return best


class WeightedRandom(Policy):
    """A live server at random with probability proportional to its weight."""

    name = "weighted_random"

    def start(self, view: View) -> None:
        self._version = -1

    def choose(self, view: View) -> int | None:
        if self._version != view.version:   # the live set changed: re-sum weights
            self._live, self._version = view.live, view.version
            self._cumulative = list(itertools.accumulate(
                view.weights[i] for i in self._live))
        total = self._cumulative[-1]
        if total <= 0:
            return None
        return self._live[bisect.bisect_right(self._cumulative,
                                              view.rng.random() * total)]


class LeastOutstanding(Policy):
    """The live server with the fewest requests in flight (ties at random)."""

    name = "least_outstanding"
    signal = "outstanding"      # which per-server load list of the View to read

    def choose(self, view: View) -> int:
        loads, live = getattr(view, self.signal), view.live
        if len(live) < view.servers:        # only live servers compete
            loads = [loads[i] for i in live]
        least = min(loads)
        ties = loads.count(least)
        at = -1
        for _ in range(1 if ties == 1 else 1 + int(view.rng.random() * ties)):
            at = loads.index(least, at + 1)   # the chosen tie, in index order
        return live[at]


class LeastLoadedStale(LeastOutstanding):
    """The live server with the lowest *reported* load (ties at random).

    Reports reach the balancer every `report_interval` seconds, so between
    reports every request goes to the same server: a herd.
    """

    name = "least_loaded_stale"
    signal = "reported"


class PowerOfD(Policy):
    """Sample d live servers at random (with replacement); take the least loaded.

    Mitzenmacher's supermarket model; loads are the reported ones, which are
    exact when reports are instant. d = 1 is random, d = servers is close to
    least loaded.
    """

    name = "p2c"

    def __init__(self, d: int = 2):
        self.d = require_int("d", d, minimum=1)

    def choose(self, view: View) -> int:
        live, loads, draw = view.live, view.reported, view.rng.random
        m = len(live)
        best = live[int(draw() * m)]
        for _ in range(self.d - 1):
            other = live[int(draw() * m)]
            if loads[other] < loads[best]:
                best = other
        return best


class ConsistentHash(Policy):
    """The owner of the request's key on a hash ring (一致性哈希), skipping
    dead servers, so a key keeps its server while that server lives."""

    name = "consistent_hash"

    def __init__(self, vnodes: int = 100):
        self.vnodes = require_int("vnodes", vnodes, minimum=1)

    def start(self, view: View) -> None:
        self._ring = HashRing(range(view.servers), self.vnodes)

    def choose(self, view: View) -> int | None:
        return self._ring.owner(view.key, view.alive)


_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer that is
    the same in every process (unlike the built-in hash of a str)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _point(key: int | str) -> int:
    """Where a key sits on the ring: a position in [0, 2**64)."""
    if isinstance(key, str):
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest())
    return _mix(key & _MASK)


class HashRing:
    """A circle of 2**64 positions on which each server owns `vnodes` points.

    A key belongs to the server of the first point clockwise from the key's
    own position, so adding a server moves only the keys that now land on its
    points (about K/(N+1) of K keys), and removing one moves only its own keys.
    """

    def __init__(self, servers: Iterable[int] = (), vnodes: int = 100):
        self.vnodes = require_int("vnodes", vnodes, minimum=1)
        self._members: dict[int, list[int]] = {}    # server -> its points
        for server in servers:
            self._place(server)
        self._rebuild()

    @property
    def servers(self) -> list[int]:
        return sorted(self._members)

    def add(self, server: int) -> None:
        """Put a server's points on the ring."""
        self._place(server)
        self._rebuild()

    def remove(self, server: int) -> None:
        """Take a server's points off the ring."""
        if server not in self._members:
            raise ConfigError(f"server {server} is not on the ring; "
                              f"it holds {self.servers}")
        del self._members[server]
        self._rebuild()

    def _place(self, server: int) -> None:
        require_int("server", server, minimum=0)
        if server in self._members:
            raise ConfigError(f"server {server} is already on the ring")
        self._members[server] = [_point(f"server-{server}#{v}")
                                 for v in range(self.vnodes)]

    def _rebuild(self) -> None:
        ring = sorted((p, s) for s, points in self._members.items() for p in points)
        self._points = [p for p, _ in ring]
        self._owners = [s for _, s in ring]

    def owner(self, key: int | str, alive: Sequence[bool] | None = None) -> int | None:
        """The server a key maps to: the first point clockwise from the key whose
        server is alive (all are, if `alive` is None); None if none is."""
        owners = self._owners
        start = bisect.bisect_left(self._points, _point(key))
        for j in range(start, start + len(owners)):
            server = owners[j % len(owners)]
            if alive is None or alive[server]:
                return server
        return None

    def shares(self) -> dict[int, float]:
        """The fraction of the circle (so of uniformly hashed keys) each server owns."""
        share = dict.fromkeys(self.servers, 0.0)
        if self._points:
            previous = self._points[-1] - (1 << 64)   # the arc wrapping past 0
            for point, server in zip(self._points, self._owners, strict=True):
                share[server] += (point - previous) / (1 << 64)
                previous = point
        return share

    def __repr__(self) -> str:
        return f"HashRing({len(self._members)} servers, vnodes={self.vnodes})"


def key_movement(servers: int = 10, keys: int = 100_000,
                 vnodes: int = 100) -> dict[str, float]:
    """The fraction of keys 0..keys-1 that change server when one server joins
    a fleet of `servers`, and when one leaves it: on a hash ring, and with
    plain modulo hashing (hash(key) mod number of servers)."""
    servers = require_int("servers", servers, minimum=2)
    ring = HashRing(range(servers), vnodes)
    keys = range(require_int("keys", keys, minimum=1))
    before = [ring.owner(k) for k in keys]
    ring.add(servers)
    joined = [ring.owner(k) for k in keys]
    ring.remove(servers)
    ring.remove(servers - 1)
    left = [ring.owner(k) for k in keys]

    def modulo(n: int) -> list[int]:
        return [_mix(k) % n for k in keys]

    def moved(a: list[int], b: list[int]) -> float:
        return sum(x != y for x, y in zip(a, b, strict=True)) / len(keys)

    return {"ring, one joins": moved(before, joined),
            "ring, one leaves": moved(before, left),
            "modulo, one joins": moved(modulo(servers), modulo(servers + 1)),
            "modulo, one leaves": moved(modulo(servers), modulo(servers - 1))}


def imbalance(servers: int, vnodes: int, rings: int = 20) -> float:
    """Peak-to-mean load of a hash ring: the largest server's share of the
    circle times the number of servers (1 is perfectly even), averaged over
    `rings` rings whose servers have different names."""
    servers = require_int("servers", servers, minimum=1)
    rings = require_int("rings", rings, minimum=1)
    peaks = [max(HashRing(range(r * servers, (r + 1) * servers), vnodes)
                 .shares().values()) for r in range(rings)]
    return sum(peaks) / rings * servers


POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (
    RoundRobin, Random, WeightedRoundRobin, WeightedRandom, LeastOutstanding,
    PowerOfD, ConsistentHash, LeastLoadedStale)}


def make_policy(policy: str | Policy, d: int | None = None) -> Policy:
    """A fresh Policy from its name (d only for "p2c"), or the Policy given."""
    if isinstance(policy, Policy):
        if d is not None:
            raise ConfigError("d applies to policy='p2c' only; give a PowerOfD(d) "
                              "instance its d directly")
        return policy
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; choose one of "
                          f"{', '.join(sorted(POLICIES))}, or pass a Policy instance")
    if policy == "p2c":
        return PowerOfD(2 if d is None else d)
    if d is not None:
        raise ConfigError(f"d applies to policy='p2c' only, not {policy!r}")
    return POLICIES[policy]()


class BalancingResult(Result):
    """One load-balancing run: its inputs, latency histogram and per-server data.

    Latencies (seconds from arrival to finish) count completed requests only;
    a request fails if its server is killed while holding it, or if no live
    server will take it.
    """

    @property
    def latency(self) -> Histogram:
        return self.metrics["latency"]

    @property
    def completed(self) -> int:
        return self.metrics["completed"].value

    @property
    def failed(self) -> int:
        failed = self.metrics["failed.killed"], self.metrics["failed.refused"]
        return sum(counter.value for counter in failed)

    @property
    def utilisation(self) -> np.ndarray:
        """Fraction of the run each server spent serving."""
        return self.data["utilisation"]

    @property
    def served(self) -> np.ndarray:
        """Requests each server completed."""
        return self.data["served"]

    @property
    def queue_lengths(self) -> np.ndarray:
        """Requests held by each server (columns) at each of `sample_times` (rows)."""
        return self.data["queue_lengths"]

    @property
    def sample_times(self) -> np.ndarray:
        return self.data["sample_times"]

    @property
    def offered_load(self) -> float:
        """Arrival rate over the fleet's capacity; >= 1 means overload."""
        return self.data["offered_load"]

    @property
    def overloaded(self) -> bool:
        return self.offered_load >= 1.0

    def row(self) -> dict[str, float]:
        """Latency summary (seconds), failures and the busiest server's
        utilisation: one run as one row of a table."""
        summary = self.latency.summary()
        return {"mean": summary["mean"], "p50": summary["p50"], "p99": summary["p99"],
                "p99.9": summary["p99.9"], "failed": self.failed,
                "max utilisation": float(self.utilisation.max())}

    def __repr__(self) -> str:
        return f"BalancingResult({self.data['headline']})"


@dataclass(frozen=True)
class _Setup:
    """Validated inputs of one run."""

    policy: Policy
    servers: int
    arrival_rate: float
    offered_load: float
    requests: int
    seed: int
    speeds: tuple[float, ...]
    weights: tuple[float, ...]
    service: dist.Distribution
    keys: int
    report_interval: float
    warmup: int
    faults: tuple[tuple[float, str, int], ...]
    samples: int
    params: dict[str, Any]


def _per_server(name: str, values: Sequence[float] | None, servers: int,
                positive: bool) -> tuple[float, ...]:
    """One number per server: 1.0 each if not given; > 0 (or >= 0) and not all 0."""
    if values is None:
        return (1.0,) * servers
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise ConfigError(f"{name} must be a sequence of {servers} numbers, "
                          f"got {values!r}")
    if len(values) != servers:
        raise ConfigError(f"{name} must have one number per server ({servers}), "
                          f"got {len(values)}")
    checked = tuple(require_number(f"{name}[{i}]", float(v) if isinstance(
        v, np.number) else v, positive=positive, minimum=None if positive else 0.0)
        for i, v in enumerate(values))
    if not any(checked):
        raise ConfigError(f"{name} are all 0: no server would get any request")
    return checked


def _faults(faults, servers: int) -> tuple[tuple[float, str, int], ...]:
    """(time, verb, server) triples, checked and in time order."""
    checked = []
    for fault in faults:
        if not (isinstance(fault, Sequence) and len(fault) == 3):
            raise ConfigError(f"each fault must be (time, 'kill' or 'restart', "
                              f"server), got {fault!r}")
        time, verb, server = fault
        if verb not in ("kill", "restart"):
            raise ConfigError(f"fault verb must be 'kill' or 'restart', got {verb!r}")
        server = require_int("fault server", server, minimum=0)
        if server >= servers:
            raise ConfigError(f"fault server {server} does not exist; servers are "
                              f"0..{servers - 1}")
        checked.append((require_number("fault time", time, minimum=0.0), verb, server))
    return tuple(sorted(checked, key=lambda f: f[0]))   # stable: ties keep order


def simulate(policy: str | Policy = "p2c", servers: int = 100, load: float = 0.9,
             requests: int = 200_000, seed: int = 1, *, d: int | None = None,
             weights: Sequence[float] | None = None,
             speeds: Sequence[float] | None = None,
             service: float | dist.Distribution | None = None,
             keys: int = 1_000_000, report_interval: float = 0.0, warmup: int = 0,
             faults: Iterable[tuple[float, str, int]] = (), samples: int = 100,
             engine: str = "auto") -> BalancingResult:
    """Send `requests` Poisson arrivals through a balancer to FIFO servers.

    policy: a name from POLICIES or a Policy instance; d: samples for "p2c".
    load: arrival rate over fleet capacity, sum(speeds) / mean service time
    (>= 1 is allowed and reported as overload; the run still ends after
    `requests` arrivals). service: service-time distribution of a speed-1
    server (default exponential, mean 1 s); a server of speed s takes 1/s as
    long. weights: for the weighted policies (default: the speeds). keys:
    request keys are uniform on range(keys). report_interval: servers report
    their loads every this many seconds (0: the balancer always knows them).
    warmup: leave the first this many requests out of the latency histogram.
    samples: queue lengths are sampled this many times over the time the
    arrivals take (more if the queues take long to drain).
    faults: (time, "kill" | "restart", server) events; a kill fails the
    requests that server holds. engine: "events" (general), "fast" (no faults
    and instant reports only) or "auto"; both give the same result.
    """
    the_policy = make_policy(policy, d)
    servers = require_int("servers", servers, minimum=1)
    if isinstance(the_policy, PowerOfD) and the_policy.d > servers:
        raise ConfigError(f"d={the_policy.d} > servers={servers}: cannot sample "
                          "more servers than exist")
    load = require_number("load", load, positive=True)
    requests = require_int("requests", requests, minimum=1)
    speeds = _per_server("speeds", speeds, servers, positive=True)
    weights = (speeds if weights is None
               else _per_server("weights", weights, servers, positive=False))
    service = dist.exponential(1.0) if service is None else dist.as_distribution(
        service, "service")
    if not service.mean > 0:
        raise ConfigError(f"service time must have a mean > 0, got {service!r}")
    warmup = require_int("warmup", warmup, minimum=0)
    if warmup >= requests:
        raise ConfigError(f"warmup={warmup} leaves no request of {requests} to measure")
    faults = _faults(faults, servers)
    if engine not in ("auto", "events", "fast"):
        raise ConfigError(f"engine must be 'auto', 'events' or 'fast', got {engine!r}")
    setup = _Setup(
        policy=the_policy, servers=servers, offered_load=load,
        arrival_rate=load * sum(speeds) / service.mean, requests=requests,
        seed=require_int("seed", seed), speeds=speeds, weights=weights,
        service=service, keys=require_int("keys", keys, minimum=1),
        report_interval=require_number("report_interval", report_interval,
                                       minimum=0.0),
        warmup=warmup, faults=faults,
        samples=require_int("samples", samples, minimum=1),
        params={"policy": policy if isinstance(policy, str) else repr(policy),
                "servers": servers, "load": load, "requests": requests,
                "d": d, "weights": list(weights), "speeds": list(speeds),
                "service": repr(service), "keys": keys,
                "report_interval": report_interval, "warmup": warmup,
                "faults": [list(f) for f in faults], "samples": samples})
    needs_events = bool(setup.faults) or setup.report_interval > 0
    if engine == "fast" and needs_events:
        raise ConfigError("engine='fast' handles neither faults nor report_interval "
                          "> 0; use engine='events' or 'auto'")
    if engine == "events" or needs_events:
        return _EventRun(setup).run()
    return _FastRun(setup).run()


class _Run:
    """State both engines share: streams, the view, per-server accounts."""

    def __init__(self, setup: _Setup):
        self.setup = setup
        n = setup.servers
        self.sim = sim = Simulator(setup.seed)
        self.view = View(n, setup.weights, setup.speeds, sim.rng("policy"))
        if setup.report_interval > 0:
            self.view.reported = [0] * n     # last reports: all idle at time 0
        self.interarrival = dist.exponential(1.0 / setup.arrival_rate).sampler(
            sim.rng("arrivals"))
        self.demand = setup.service.sampler(sim.rng("service"))
        self.draw_key = sim.rng("keys").random     # key = int(draw * keys)
        self.free_at = [0.0] * n        # when each server finishes its queue
        self.busy = [0.0] * n           # seconds of service each was given
        self.served = [0] * n
        self.refused = self.killed = 0
        self.samples: list[list[int]] = []
        self.sample_every = setup.requests / setup.arrival_rate / setup.samples
        setup.policy.start(self.view)

    def pick(self, now: float) -> int | None:
        """Ask the policy for a server for the request arriving now."""
        view = self.view
        view.now, view.key = now, int(self.draw_key() * self.setup.keys)
        if not view.live:
            return None         # every server is down: fail fast
        choice = self.setup.policy.choose(view)
        if choice is not None and not (
                type(choice) is int and 0 <= choice < view.servers
                and view.alive[choice]):
            self.reject(choice)
        return choice

    def reject(self, choice: Any) -> None:
        raise ConfigError(f"{self.setup.policy!r}.choose returned {choice!r}, "
                          f"not a live server index (live: {list(self.view.live)})")

    def result(self, latencies: list[float], end: float) -> BalancingResult:
        """Freeze the run; `latencies` are the measured ones in arrival order."""
        setup, metrics = self.setup, self.sim.metrics
        metrics.histogram("latency").extend(latencies)
        metrics.counter("completed").inc(sum(self.served))
        metrics.counter("failed.killed").inc(self.killed)
        metrics.counter("failed.refused").inc(self.refused)
        n, latency = setup.servers, metrics["latency"]
        said = (f"{setup.params['policy']}, {n} servers, load {setup.offered_load:g}"
                f"{' (OVERLOADED)' if setup.offered_load >= 1 else ''}: "
                f"{sum(self.served)} completed, ")
        said += (f"mean {latency.mean:.3g} s, p99 {latency.percentile(99):.3g} s, "
                 if latency.count else "")
        said += f"{self.killed + self.refused} failed"
        return BalancingResult(
            scenario="balancing", params=setup.params, seed=setup.seed,
            metrics=metrics, trace=tuple(self.sim.trace), end_time=end,
            data={"utilisation": np.array(self.busy) / end if end else np.zeros(n),
                  "served": np.array(self.served),
                  "queue_lengths": np.array(self.samples, dtype=int).reshape(-1, n),
                  "sample_times": self.sample_every * np.arange(
                      1, len(self.samples) + 1),
                  "offered_load": setup.offered_load,
                  "arrival_rate": setup.arrival_rate, "headline": said})


class _EventRun(_Run):
    """The general engine: arrivals, departures, faults, reports and samples are
    events on the Simulator's agenda."""

    def __init__(self, setup: _Setup):
        super().__init__(setup)
        self.latency: list[float | None] = [None] * setup.requests
        self.epoch = [0] * setup.servers   # bumped by a kill: stale departures
        self.done = 0
        sim = self.sim
        sim.at(self.interarrival(), self.arrive, 0)
        sim.at(self.sample_every, self.sample, 1)
        if setup.report_interval > 0:
            sim.at(setup.report_interval, self.report, 1)
        for time, verb, server in setup.faults:
            sim.at(time, getattr(self, verb), server)

    def run(self) -> BalancingResult:
        self.sim.run()
        latencies = [x for x in self.latency[self.setup.warmup:] if x is not None]
        return self.result(latencies, self.sim.now)

    def finish(self, count: int = 1) -> None:
        self.done += count
        if self.done == self.setup.requests:
            self.sim.stop()

    def arrive(self, k: int) -> None:
        sim, now = self.sim, self.sim.now
        if k + 1 < self.setup.requests:
            sim.at(now + self.interarrival(), self.arrive, k + 1)
        demand = self.demand()
        i = self.pick(now)
        if i is None:
            self.refused += 1
            self.finish()
            return
        service = demand / self.setup.speeds[i]
        free = self.free_at[i]
        finish = (now if now > free else free) + service
        self.free_at[i] = finish
        self.busy[i] += service
        self.view.outstanding[i] += 1
        sim.at(finish, self.depart, i, k, finish - now, self.epoch[i])

    def depart(self, i: int, k: int, latency: float, epoch: int) -> None:
        if epoch != self.epoch[i]:
            return              # the server was killed; the request already failed
        self.view.outstanding[i] -= 1
        self.served[i] += 1
        self.latency[k] = latency
        self.finish()

    def kill(self, i: int) -> None:
        """Crash server i: the requests it holds fail; it gets no more traffic."""
        if not self.view.alive[i]:
            return
        now, lost = self.sim.now, self.view.outstanding[i]
        self.busy[i] -= max(0.0, self.free_at[i] - now)   # work it will never do
        self.free_at[i] = now
        self.view.outstanding[i] = 0
        self.epoch[i] += 1
        self.view.set_alive(i, False)
        self.sim.record("fault", "balancer", f"s{i}", "kill", note=f"{lost} lost")
        self.killed += lost
        self.finish(lost)

    def restart(self, i: int) -> None:
        """Bring server i back, empty."""
        if self.view.alive[i]:
            return
        self.view.set_alive(i, True)
        self.sim.record("fault", "balancer", f"s{i}", "restart")

    def sample(self, m: int) -> None:
        self.samples.append(self.view.outstanding[:])
        self.sim.at((m + 1) * self.sample_every, self.sample, m + 1)

    def report(self, m: int) -> None:
        self.view.reported[:] = self.view.outstanding
        self.sim.at((m + 1) * self.setup.report_interval, self.report, m + 1)


class _FastRun(_Run):
    """The specialised engine for runs with no faults and instant load reports:
    the same arithmetic as `_EventRun`, in one loop over arrivals, with only
    departures (to keep `outstanding` exact) in a heap."""

    def run(self) -> BalancingResult:
        setup, view = self.setup, self.view
        outstanding, free_at, busy, served = (view.outstanding, self.free_at,
                                              self.busy, self.served)
        speeds, interarrival, demand = setup.speeds, self.interarrival, self.demand
        choose, draw_key, keys = setup.policy.choose, self.draw_key, setup.keys
        n, warmup = setup.servers, setup.warmup
        departures: list[tuple[float, int]] = []
        pop, push = heapq.heappop, heapq.heappush
        latencies: list[float] = []
        now, next_sample = 0.0, self.sample_every
        for k in range(setup.requests):
            now += interarrival()
            if next_sample < now:
                next_sample = self.sample_before(now, departures)
            while departures and departures[0][0] <= now:
                outstanding[pop(departures)[1]] -= 1
            d = demand()
            view.now, view.key = now, int(draw_key() * keys)   # as in `pick`,
            i = choose(view)                                   # all servers live
            if i is None:
                self.refused += 1
                continue
            if type(i) is not int or not 0 <= i < n:
                self.reject(i)
            service = d / speeds[i]
            free = free_at[i]
            finish = (now if now > free else free) + service
            free_at[i] = finish
            busy[i] += service
            outstanding[i] += 1
            served[i] += 1          # no faults here: every request is served
            push(departures, (finish, i))
            if k >= warmup:
                latencies.append(finish - now)
        end = max(now, *free_at)
        self.sample_before(end, departures)
        return self.result(latencies, end)

    def sample_before(self, time: float, departures: list[tuple[float, int]]) -> float:
        """Take every queue-length sample due before `time`, retiring the
        departures due before each; returns when the next sample is due."""
        outstanding, samples = self.view.outstanding, self.samples
        due = (len(samples) + 1) * self.sample_every
        while due < time:
            while departures and departures[0][0] <= due:
                outstanding[heapq.heappop(departures)[1]] -= 1
            samples.append(outstanding[:])
            due = (len(samples) + 1) * self.sample_every
        return due
