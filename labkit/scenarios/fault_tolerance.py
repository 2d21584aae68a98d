"""Scenarios of notebook 03, fault tolerance: a retry storm and the client
policies that tame it (`STORM`, `STORM_POLICIES`), the fault playground,
timeouts against the healthy p99, Brooker's backoff race, circuit-breaker
settings, hedged and tied requests against the tail, and client-side
throttling. The client and backend are `labkit.resilience`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from labkit import dist, resilience
from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_items,
    require_number,
)
from labkit.metrics import Metrics, Record, Result

from .common import Report, _window, with_progress


@dataclass(frozen=True, kw_only=True)
class TimeoutSweep(Report):
    """`timeout_sweep`'s data: one row per timeout factor, a headline, and the
    healthy p99 the factors multiply."""

    p99: float


@dataclass(frozen=True, kw_only=True)
class BackoffRace(Record):
    """`backoff_race`'s data: mean calls and completion time (s), each
    {strategy: {clients: mean}}, and a headline."""

    calls: dict[str, dict[int, float]]
    completion: dict[str, dict[int, float]]
    headline: str


@dataclass(frozen=True, kw_only=True)
class ComparedRuns(Report):
    """Runs of `labkit.resilience.simulate` by name ("runs"), one row each, and
    a headline (`breaker_tradeoffs`)."""

    runs: dict[str, Result]


@dataclass(frozen=True, kw_only=True)
class TailRuns(ComparedRuns):
    """`tail_tolerance`'s data: `ComparedRuns` by technique, and the p95 of the
    undefended run (where the hedge fires)."""

    p95: float

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


@checked
def fault_severity(mode: str, severity: float) -> float:
    """A 0..1 slider position as a fault's severity: the share of replicas
    (crash, brownout) or of requests (errors); slow: service × (1 + 19·s)."""
    severity = require_number("severity", severity, minimum=0.0)
    if severity > 1.0:
        raise ConfigError(f"severity must be in [0, 1], got {severity}")
    return 1.0 + 19.0 * severity if mode == "slow" else severity


@checked
def fault_playground(seed: int = 1, *, mode: str = "slow", severity: float = 0.5,
                     timeout: float = 0.25, attempts: int = 3, jitter: str = "full",
                     budget: bool = False, breaker: str = "none",
                     hedging: bool = False, rate: float = 300.0, servers: int = 6,
                     duration: float = 14.0,
                     window: tuple[float, float] = (5.0, 8.0)) -> Result:
    """One client against a backend that fails in `mode` during `window`: the
    notebook 03 playground. jitter: a backoff strategy (base 10 ms, cap 1 s);
    budget: a 10 % retry budget; breaker: "none", "resilience4j" or "hystrix"
    (their default settings); hedging: a second copy after the observed p95.
    The default 14 s is the shortest run that still shows the slowest recovery
    a control can pick (hystrix's 10 s window closes at 12 s) beside a retry
    storm that outlives the fault; every second more costs a slider move time."""
    if mode not in PLAYGROUND_MODES:
        raise ConfigError(f"mode must be one of {PLAYGROUND_MODES}, got {mode!r}")
    if breaker not in ("none", *resilience.BREAKER_PRESETS):
        raise ConfigError(f"breaker must be 'none' or one of "
                          f"{list(resilience.BREAKER_PRESETS)}, got {breaker!r}")
    start, end = _window("window", window)
    duration = require_number("duration", duration, positive=True)
    if start >= duration:
        raise ConfigError(f"window {window} starts after the run ends "
                          f"(duration {duration:g} s): the fault would never happen")
    policy = resilience.Policy(
        timeout=timeout, attempts=attempts,
        backoff=resilience.Backoff(jitter, base=0.010, cap=1.0),
        budget=0.1 if budget else None,
        breaker=None if breaker == "none" else resilience.BREAKER_PRESETS[breaker](),
        hedge=resilience.Percentile(95, initial=timeout / 2) if hedging else None)
    fault = resilience.Fault(mode, start, end, fault_severity(mode, severity))
    return resilience.simulate(seed, policy=policy, rate=rate, servers=servers,
                               duration=duration, faults=[fault])


@checked
def timeout_sweep(seed: int = 1, *, factors: Sequence[float] = (0.25, 0.5, 1, 2, 4,
                                                                 8, 16),
                  dead: float = 0.1, rate: float = 1000.0,
                  duration: float = 5.0) -> Result:
    """Timeouts set to multiples of the healthy p99, three attempts each, while a
    `dead` share of replicas silently swallows requests. A fault-free run with no
    timeout pressure measures the p99 first. data.rows: one dict per factor."""
    factors = require_items("factors", factors, "factor")
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
                  Metrics(), data=TimeoutSweep(
                      p99=p99, rows=rows, headline=f"healthy p99 {1e3 * p99:.1f} ms"))


@checked
def backoff_race(seed: int = 1, *, clients: Sequence[int] = (10, 25, 50, 100),
                 trials: int = 5) -> Result:
    """Brooker's optimistic-concurrency race for every backoff strategy and
    number of clients, averaged over `trials`. data.calls and data.completion
    (seconds), each {strategy: {clients: mean}}."""
    clients = require_items("clients", clients, "number of clients")
    calls = {s: {} for s in resilience.BACKOFF_STRATEGIES}
    completion = {s: {} for s in resilience.BACKOFF_STRATEGIES}
    for strategy in resilience.BACKOFF_STRATEGIES:
        for n in clients:
            run = resilience.contention(seed, clients=n, strategy=strategy,
                                        trials=trials)
            calls[strategy][n] = run.metrics["calls"].mean
            completion[strategy][n] = run.metrics["completion"].mean
    return Result("backoff_race", {"clients": tuple(clients), "trials": trials},
                  seed, Metrics(), data=BackoffRace(
                      calls=calls, completion=completion,
                      headline=f"{trials} trials per point"))


@checked
def breaker_tradeoffs(seed: int = 1, *,
                      configs: Mapping[str, resilience.BreakerConfig],
                      failure: tuple[float, float] = (5.0, 17.0), rate: float = 200.0,
                      duration: float = 30.0) -> Result:
    """Each breaker config while every request fails during `failure`: how fast
    it opens, how long it stays shut after the backend is back, how much load it
    kept off the failing backend. data.rows one per config, data.runs."""
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
                  Metrics(), data=ComparedRuns(rows=rows, runs=runs,
                                               headline=f"errors during {failure} s"))


#: Two ways a tail forms: rare slow services (hiccups) and queues (load).
TAIL_SETTINGS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "hiccups": {"rate": 800.0, "servers": 10, "workers": 4, "duration": 8.0,
                "service": dist.bimodal(dist.lognormal(0.004, 0.012),
                                        dist.uniform(0.5, 1.0), 0.002)},
    "queueing": {"rate": 700.0, "servers": 10, "workers": 1, "duration": 8.0,
                 "service": dist.exponential(0.010)},
})


def _tail_runs(seed: int, setting: str, tied: bool) -> tuple[dict[str, Result], float]:
    """The runs of one `TAIL_SETTINGS` setting by technique: none, a hedge after
    the p95 that the undefended run measured, and (if `tied`) tied requests;
    and that p95."""
    if setting not in TAIL_SETTINGS:
        raise ConfigError(f"setting must be one of {list(TAIL_SETTINGS)}, got "
                          f"{setting!r}")
    common = TAIL_SETTINGS[setting]
    plain = resilience.simulate(seed, policy=resilience.Policy(timeout=5.0), **common)
    p95 = plain.metrics["latency"].percentile(95)
    runs = {"none": plain, "hedge after p95": resilience.simulate(
        seed, policy=resilience.Policy(timeout=5.0, hedge=p95), **common)}
    if tied:
        runs["tied, 1 ms apart"] = resilience.simulate(
            seed, policy=resilience.Policy(timeout=5.0, tied=0.001), **common)
    return runs, p95


@checked
def tail_tolerance(seed: int = 1, *, setting: str = "hiccups") -> Result:
    """No defence, a hedge after the measured p95, and tied requests (second
    copy after 1 ms) in one of `TAIL_SETTINGS`. data.rows one per technique:
    percentiles (ms), extra copies sent and extra work started per request;
    data.runs the runs by technique."""
    runs, p95 = _tail_runs(seed, setting, tied=True)
    rows = []
    for name, run in runs.items():
        s, m = run.data["summary"], run.metrics
        rows.append({"technique": name, "p50 (ms)": 1e3 * s["p50"],
                     "p99 (ms)": 1e3 * s["p99"], "p99.9 (ms)": 1e3 * s["p99.9"],
                     "extra copies": s["amplification"] - 1,
                     "extra work": m["backend.started"].value / s["requests"] - 1})
    return Result("tail_tolerance", {"setting": setting}, seed, Metrics(),
                  data=TailRuns(rows=rows, p95=p95, runs=runs,
                                headline=f"{setting}: p95 {1e3 * p95:.1f} ms"))


#: Extra copies beyond which hedges after the p95 have run away: three times
#: the 5 % they cost when their load does not feed itself.
RUNAWAY_COPIES = 0.15


@checked
def hedge_storms(seed: int = 1, *, seeds: int = 16, setting: str = "queueing",
                 progress: Callable[..., Iterable] | None = None) -> Result:
    """A hedge after the p95 on `seeds` seeds from `seed` on, in one of
    `TAIL_SETTINGS`: does its extra load feed itself? Under queueing a hedge
    adds load, which slows the queues, which sends more hedges; past a
    threshold (about a fifth of requests hedged) the loop runs away, the
    replicas are offered more than they can serve, and the queues grow for the
    rest of the run. Whether a run crosses it, and when, is down to chance, so
    a longer run tips on more seeds. data.rows: per
    seed, the p99 without and with the hedge (ms), the extra copies, and
    whether they ran away (over RUNAWAY_COPIES). `progress` (e.g.
    labkit.widgets.progress) wraps the seeds."""
    seeds = require_int("seeds", seeds, minimum=1)
    rows = []
    for s in with_progress(range(seed, seed + seeds), progress, "hedge_storms: seeds"):
        runs, _ = _tail_runs(s, setting, tied=False)
        hedged = runs["hedge after p95"].data["summary"]
        extra = hedged["amplification"] - 1
        rows.append({"seed": s,
                     "p99 (ms), none": 1e3 * runs["none"].data["summary"]["p99"],
                     "p99 (ms), hedged": 1e3 * hedged["p99"],
                     "extra copies": extra, "ran away": extra > RUNAWAY_COPIES})
    storms = sum(row["ran away"] for row in rows)
    return Result("hedge_storms", {"seeds": seeds, "setting": setting}, seed,
                  Metrics(), data=Report(rows=rows, headline=(
                      f"{setting}: the hedges ran away on {storms} of {seeds} seeds")))


@checked
def throttling(seed: int = 1, *, ks: Sequence[float] = (1.5, 2.0, 3.0),
               overload: float = 5.0, duration: float = 10.0) -> Result:
    """Clients offering `overload` times what a 2-replica backend (200 req/s,
    short queues that shed the rest) can serve, throttling themselves with each
    k. data.rows: the backend's arrivals per accepted request against the
    prediction, max(1, min(k, overload)): a client refuses nothing while it
    sends less than k times what is accepted, so below k the backend sees all
    it is offered (and accepts all of it below capacity, a ratio of 1)."""
    ks = require_items("ks", ks, "k")
    overload = require_number("overload", overload, positive=True)
    rows = []
    for k in ks:
        run = resilience.simulate(seed, policy=resilience.Policy(timeout=1.0,
                                                                 throttle=k),
                                  rate=200.0 * overload, duration=duration,
                                  servers=2, queue_limit=10)
        m = run.metrics
        accepted = m["attempts.ok"].value + m["attempts.error"].value
        rows.append({"k": k, "predicted": max(1.0, min(k, overload)),
                     "backend sees / accepts": m["backend.arrivals"].value / accepted,
                     "refused by the client": m["attempts.throttled"].value
                     / m["requests"].value})
    return Result("throttling", {"ks": tuple(ks), "overload": overload,
                                 "duration": duration}, seed, Metrics(),
                  data=Report(rows=rows, headline=f"offered {overload:g}× capacity"))
