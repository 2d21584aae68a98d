"""The capstone scenario (notebook 09): `capstone()` builds the service, its
Raft metadata cluster, users and operator from its knobs, runs one simulated
day under a fault schedule and folds the logs into a Result whose data is a
`CapstoneRun` (one `Window` per dashboard window); the walk-through's starting
and tuned knobs (`CAPSTONE_START`, `CAPSTONE_TUNED`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from labkit import balancing, dist, raft, resilience
from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_number,
    require_probability,
)
from labkit.metrics import Histogram, Record, Result, keyed
from labkit.net import NetConfig

from ..common import with_progress
from .faults import (
    CAPSTONE_FAULTS,
    CapstoneFault,
    FaultHit,
    _Operator,
    as_capstone_fault,
)
from .service import (
    CAPSTONE_METADATA,
    CAPSTONE_SERVERS,
    _Balancer,
    _Service,
    _StorageServer,
    _Users,
)

_CAPSTONE_HOP = dist.uniform(0.0003, 0.0007)         # one-way network delay
_DAY_PARTS = 20                                       # progress steps through a day
MAX_SKEW = 10.0                                       # the largest Zipf exponent

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


@dataclass(frozen=True, kw_only=True)
class Window(Record):
    """One window of a capstone run's dashboard: its start (s from the start
    of the workload), user requests and attempts per second, the share of
    requests that failed, p50 and p99 (ms; nan if none ended), the metadata
    leader at its end, seconds without a leader, elections held, and at its
    end the under-replicated keys and the acknowledged writes lost so far."""

    t: float = keyed("t (s)")
    request_rate: float = keyed("requests/s")
    attempt_rate: float = keyed("attempts/s")
    errors: float
    p50_ms: float = keyed("p50 (ms)")
    p99_ms: float = keyed("p99 (ms)")
    leader: str
    leaderless: float = keyed("leaderless (s)")
    elections: int
    under_replicated: int = keyed("under-replicated keys")
    lost_writes: int = keyed("lost acked writes")


@dataclass(frozen=True, kw_only=True)
class CapstoneRun(Record):
    """`capstone`'s data: one `Window` per dashboard window; each storage
    server's busy share per window ("load") and each metadata node's role at
    each window's end ("roles"), by node name; the run's totals ("summary", a
    table of named metrics: "requests", "availability", "p50 (ms)", "p99 (ms)",
    "p99.9 (ms)", "attempts per request", "lost acked writes", "stale reads",
    "reads", "elections", "leaderless (s)", "most under-replicated keys",
    "shed"); what each fault hit; requests by operation (get, put, meta); and a
    headline."""

    windows: list[Window]
    load: dict[str, list[float]]
    roles: dict[str, list[str]]
    summary: dict[str, float]
    faults: list[FaultHit]
    operations: dict[str, int]
    headline: str


@checked
def capstone(seed: int = 1, *, policy: str = "round_robin", timeout: float = 1.0,
             attempts: int = 3, jitter: str = "none", budget: bool = False,
             breaker: str = "none", hedging: bool = False, replication: int = 3,
             r: int = 1, w: int = 1, election_timeout: float = 2.0,
             faults: Iterable[CapstoneFault | Sequence] = CAPSTONE_FAULTS,
             kill: Iterable[str] = (), kill_at: float = 20.0,
             peak_rate: float = 200.0, duration: float = 60.0, window: float = 2.0,
             keys: int = 1000, skew: float = 1.0, reads: float = 0.75,
             meta: float = 0.1, health_interval: float = 0.5,
             backlog: float = 1.0,
             progress: Callable[..., Iterable] | None = None) -> Result:
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
    and stay down (the control panel's buttons). `progress` (e.g.
    labkit.widgets.progress) shows the day going by in twentieths; the run is
    the same with or without it.

    data: a `CapstoneRun`: windows (one `Window` per `window` s), load, roles,
    summary (the run's totals), faults (what each fault hit), operations
    (requests by kind) and headline. Raises InvariantViolation if the Raft
    cluster ever broke a safety property.
    """
    knobs = _capstone_knobs(locals())
    if isinstance(faults, CapstoneFault | str) or not isinstance(faults, Iterable):
        raise ConfigError(f"faults must be a list of CapstoneFault entries, got "
                          f"{faults!r}")
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
    start, parts = sim.now, range(1, _DAY_PARTS + 1)
    for k in with_progress(list(parts), progress, "capstone: the simulated day"):
        sim.run(until=start + knobs["duration"] if k == _DAY_PARTS
                else start + knobs["duration"] * k / _DAY_PARTS)
    operator.sample()
    for _ in range(600):             # let the requests under way finish
        if not users.unfinished:
            break
        sim.run(0.1)
    result = _capstone_result(seed, knobs, schedule, users, operator)
    sim.retire()         # a kept Result must not keep the whole service alive
    return result


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
    if knobs["skew"] > MAX_SKEW:    # k ** skew overflows long before it matters
        raise ConfigError(f"skew must be between 0 and {MAX_SKEW:g} (a Zipf "
                          f"exponent: 0 uniform, 1 the classic skew), got "
                          f"{knobs['skew']:g}")
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
    """Fold one run's logs into its `Window`s, per-server load and totals."""
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
    windows = []
    for k, sample in enumerate(operator.samples):
        lo, hi = edges[k], edges[k + 1]
        tail = Histogram("window", latency[which == k])
        windows.append(Window(
            t=round(lo - t0, 6), request_rate=started[k] / (hi - lo),
            attempt_rate=sent[k] / (hi - lo),
            errors=1 - good[k] / finished[k] if finished[k] else 0.0,
            p50_ms=1e3 * tail.percentile(50) if tail.count else math.nan,
            p99_ms=1e3 * tail.percentile(99) if tail.count else math.nan,
            leader=sample.leader, leaderless=raft.leaderless(roles, hi, lo),
            elections=sum(lo <= t < hi for t in elections),
            under_replicated=sample.under_replicated,
            lost_writes=sample.lost_writes))
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
        "most under-replicated keys": max(x.under_replicated for x in windows),
        "shed": service.shed}
    for name in ("lost acked writes", "stale reads", "shed", "elections"):
        sim.metrics.counter(f"capstone.{name}").inc(summary[name])
    load = {name: [b / (edges[k + 1] - edges[k]) for k, b in enumerate(busy)]
            for name, busy in zip(service.servers, service.busy, strict=True)}
    headline = (f"availability {summary['availability']:.2%} · p99 "
                f"{summary['p99 (ms)']:.0f} ms · {lost} acknowledged writes lost · "
                f"{summary['elections']} election(s)")
    return Result("capstone", {**knobs, "faults": tuple(schedule)}, seed,
                  sim.metrics, end_time=sim.now, data=CapstoneRun(
                      windows=windows, load=load,
                      roles={n: [s.roles[n] for s in operator.samples]
                             for n in metadata.names},
                      summary=summary, faults=operator.events,
                      operations={op: sum(r[0] == op for r in service.requests)
                                  for op in ("get", "put", "meta")},
                      headline=headline))
