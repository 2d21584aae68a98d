"""The client side: `Policy`, everything a client does to defend itself as
one value (timeouts, retries with backoff, a retry budget, a circuit breaker,
hedged or tied requests, adaptive throttling), `Percentile` for durations read
from observed latency, and `Client`, users whose requests run that policy
against a `Backend`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable

import numpy as np

from labkit.errors import ConfigError, require_int, require_number, require_probability
from labkit.metrics import nearest_rank
from labkit.sim import Future, Simulator

from .backend import (
    ERROR,
    OK,
    OUTCOMES,
    REJECTED,
    RETRYABLE,
    THROTTLED,
    TIMEOUT,
    Backend,
    _Job,
)
from .backoff import Backoff, RetryBudget
from .breaker import BREAKER_PRESETS, AdaptiveThrottle, BreakerConfig, CircuitBreaker

# -- durations read from observed latency ------------------------------------------

@dataclasses.dataclass(frozen=True)
class Percentile:
    """A duration set from recent latencies: `factor` times the `p`-th percentile
    of the last `window` replies (late ones included), or `initial` until a tenth
    of the window has been seen. Used for timeouts and hedge delays."""

    p: float = 99.0
    initial: float = 1.0
    factor: float = 1.0
    window: int = 1000

    def __post_init__(self):
        p = require_number("percentile p", self.p)
        if not 0.0 < p <= 100.0:
            raise ConfigError(f"percentile p must be in (0, 100], got {p}")
        require_number("percentile initial", self.initial, positive=True)
        require_number("percentile factor", self.factor, positive=True)
        require_int("percentile window", self.window, minimum=10)


class _Tracker:
    """The live value of a fixed duration or of a `Percentile`."""

    __slots__ = ("value", "_spec", "_recent", "_seen", "_every")

    def __init__(self, spec: float | Percentile):
        self._spec = spec
        if isinstance(spec, Percentile):
            self.value = spec.initial
            self._recent: deque[float] | None = deque(maxlen=spec.window)
            self._every = spec.window // 10
        else:
            self.value, self._recent, self._every = float(spec), None, 0
        self._seen = 0

    def observe(self, latency: float) -> None:
        recent = self._recent
        if recent is None:
            return
        recent.append(latency)
        self._seen += 1
        if self._seen % self._every == 0:   # re-sorting every reply would dominate
            p = nearest_rank(np.sort(np.fromiter(recent, float)), self._spec.p)
            self.value = p * self._spec.factor


def _duration(name: str, value: float | Percentile) -> float | Percentile:
    if isinstance(value, Percentile):
        return value
    return require_number(name, value, positive=True)


# -- the client's policy -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Policy:
    """Everything a client does to defend itself, as one value.

    timeout: seconds per attempt, or a `Percentile` of observed latency.
    attempts: tries per user request (1 = no retries). Only errors, overload
    rejections and timeouts are retried, after a `backoff` sleep.
    budget: retry budget ratio (0.1 = retries at most ~10 % of requests, with
    `budget_burst` tokens to start), or None for no budget.
    breaker: a `BreakerConfig` (see `resilience4j`, `hystrix`), or None.
    Your own parts plug in too (the labs do this): `breaker` may be a factory
    called with the clock, `budget` one called with nothing, each returning an
    object with the methods of `CircuitBreaker` (acquire, record, history) or
    `RetryBudget` (on_request, try_spend); `backoff` anything with `delay`.
    hedge: send a second copy to another replica if the first has not answered
    after this delay (seconds or a `Percentile`); None for no hedging.
    tied: send two copies this many seconds apart, each telling its replica
    about the other; whichever starts first cancels the other; None for no ties.
    A tied attempt fails only when neither copy can still succeed: a copy that
    was shed never started and cancelled nothing, and twins that both started
    before the cancel arrived both run, so the client waits for the other one.
    throttle: k of client-side adaptive throttling over `throttle_window`
    seconds, or None.
    """

    timeout: float | Percentile = 1.0
    attempts: int = 1
    backoff: Backoff = Backoff("none")
    budget: float | Callable[[], RetryBudget] | None = None
    budget_burst: float = 10.0
    breaker: BreakerConfig | Callable[..., CircuitBreaker] | None = None
    hedge: float | Percentile | None = None
    tied: float | None = None
    throttle: float | None = None
    throttle_window: float = 120.0

    def __post_init__(self):
        _duration("timeout", self.timeout)
        require_int("attempts", self.attempts, minimum=1)
        if isinstance(self.backoff, type) or not callable(getattr(self.backoff,
                                                                  "delay", None)):
            raise ConfigError(f"backoff must be a Backoff (e.g. Backoff('full')), "
                              f"got {self.backoff!r}")
        if self.budget is not None and not callable(self.budget):
            require_probability("budget", self.budget)
        require_number("budget_burst", self.budget_burst, minimum=1.0)
        makers = {**BREAKER_PRESETS, "BreakerConfig": BreakerConfig}
        uncalled = next((name for name, make in makers.items()
                         if self.breaker is make), None)
        if uncalled is not None:    # a factory is called with the clock: it fails
            raise ConfigError(f"breaker={uncalled} makes a BreakerConfig but is not "
                              f"one: call it, breaker={uncalled}()")
        if self.breaker is not None and not (isinstance(self.breaker, BreakerConfig)
                                             or callable(self.breaker)):
            raise ConfigError("breaker must be a BreakerConfig (e.g. resilience4j() "
                              f"or hystrix()) or None, got {self.breaker!r}")
        if self.hedge is not None:
            _duration("hedge", self.hedge)
        if self.tied is not None:
            require_number("tied", self.tied, minimum=0.0)
            if self.hedge is not None:
                raise ConfigError("choose hedge or tied requests, not both")
        if self.throttle is not None:
            require_number("throttle", self.throttle, minimum=1.0)
        require_number("throttle_window", self.throttle_window, positive=True)


# -- the client ---------------------------------------------------------------------

class _Attempt:
    """One try of one user request: its copies, timers and the future it settles.
    `outcome` is the outcome `done` resolved to, None while it is pending (read
    on the hot paths instead of the future's `done` property)."""

    __slots__ = ("rid", "done", "permit", "pending", "jobs", "timer", "extra",
                 "check", "outcome")

    def __init__(self, rid: int, permit: int | None):
        self.rid, self.permit, self.done = rid, permit, Future()
        self.outcome: str | None = None
        self.pending = 0                    # copies sent that have not answered
        self.jobs: list[_Job] = []
        # Pending events: the timeout, the hedge or tied partner going out, and
        # the moment a tied partner is known to be cancelled.
        self.timer = self.extra = self.check = -1


class Client:
    """Users sending requests to a `Backend` through one `Policy`.

    `start(rate, until)` begins Poisson arrivals. Each user request runs as a
    simulated process: attempt, and on a retryable failure sleep a backoff and
    try again, up to `policy.attempts` times. Random streams: `<name>.arrivals`,
    `<name>.jitter`, `<name>.throttle`.
    """

    def __init__(self, sim: Simulator, backend: Backend, policy: Policy = Policy(),
                 *, name: str = "client"):
        if not isinstance(policy, Policy):
            raise ConfigError(f"policy must be a Policy, got {policy!r}")
        if getattr(backend, "sim", sim) is not sim:
            raise ConfigError("the backend runs on another Simulator than the "
                              "client: build both on the same one")
        if policy.tied is not None and backend.servers < 2:
            raise ConfigError("tied requests need a backend of at least 2 servers")
        self.sim, self.backend, self.policy, self.name = sim, backend, policy, name
        clock = self._clock
        breaker, budget = policy.breaker, policy.budget
        self.breaker = (None if breaker is None
                        else breaker(clock) if callable(breaker)
                        else CircuitBreaker(breaker, clock))
        self.budget = (None if budget is None else budget() if callable(budget)
                       else RetryBudget(budget, policy.budget_burst))
        self.throttle = (None if policy.throttle is None
                         else AdaptiveThrottle(clock, policy.throttle,
                                               policy.throttle_window))
        self.timeout = _Tracker(policy.timeout)
        self.hedge = None if policy.hedge is None else _Tracker(policy.hedge)
        # Trackers of a fixed duration observe nothing: not called per reply.
        self._observers = tuple(tracker.observe for tracker in (self.timeout,
                                                                 self.hedge)
                                if tracker is not None
                                and tracker._recent is not None)
        self._jitter = sim.rng(f"{name}.jitter")
        self._throttle_rng = sim.rng(f"{name}.throttle")
        self.outstanding = sim.metrics.gauge(f"{name}.outstanding")
        self._latency = None        # the "latency" histogram, once a request ends
        # For series. starts: when each user request began (index = request id).
        # ends, outcomes: one per finished request in the order they finished
        # (the order of the "latency" histogram), not by id: ends[i] pairs with
        # outcomes[i], not with starts[i].
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.outcomes: list[str] = []
        self.send_times: list[float] = []
        self.attempts: list[_Attempt] = []
        self.counts = dict.fromkeys(OUTCOMES, 0)    # attempts by outcome
        self.retries = self.hedges = self.budget_denied = 0

    def _clock(self) -> float:
        return self.sim.now

    def start(self, rate: float, until: float) -> None:
        """Send Poisson arrivals at `rate` per second until time `until`."""
        rate = require_number("rate", rate, positive=True)
        until = require_number("until", until, minimum=0.0)
        sim, starts, request = self.sim, self.starts, self._request
        gap = sim.rng(f"{self.name}.arrivals").expovariate
        spawn, at = sim.spawn, sim.at

        def arrive() -> None:
            spawn(request(len(starts)))
            next_time = sim.now + gap(rate)
            if next_time < until:
                at(next_time, arrive)

        first = gap(rate)
        if first < until:
            sim.at(first, arrive)

    @property
    def unfinished(self) -> int:
        return len(self.starts) - len(self.ends)

    # -- one user request ----------------------------------------------------
    def _request(self, rid: int):
        """Attempt, back off, retry: the body of one user request's process."""
        policy, sim, budget = self.policy, self.sim, self.budget
        self.starts.append(sim.now)
        self.outstanding.add(1)
        if budget is not None:
            budget.on_request()
        outcome, previous = OK, None
        for attempt in range(policy.attempts):
            if attempt:
                if outcome not in RETRYABLE:
                    break
                if budget is not None and not budget.try_spend():
                    self.budget_denied += 1
                    break
                self.retries += 1
                previous = policy.backoff.delay(attempt, self._jitter, previous)
                if previous > 0:
                    yield previous
            outcome = yield self._attempt(rid)
            if outcome == OK:
                break
        now = sim.now
        self.ends.append(now)
        self.outcomes.append(outcome)
        self.outstanding.add(-1)
        latency = self._latency
        if latency is None:
            latency = self._latency = sim.metrics.histogram("latency")
        latency.add(now - self.starts[rid])

    def _attempt(self, rid: int) -> Future:
        """Start one attempt; its future resolves to its outcome."""
        if self.throttle is not None and not self.throttle.admit(self._throttle_rng):
            return self._refuse(THROTTLED)
        permit = None
        breaker = self.breaker
        if breaker is not None:
            permit = breaker.acquire()
            if permit is None:
                return self._refuse(REJECTED)
        attempt, sim, tied = _Attempt(rid, permit), self.sim, self.policy.tied
        self.attempts.append(attempt)
        if tied is None:
            self._send(attempt)
            attempt.timer = sim.schedule(self.timeout.value, self._expire, attempt)
            if self.hedge is not None:
                attempt.extra = sim.schedule(self.hedge.value, self._send_extra,
                                             attempt)
        else:
            tie = [math.inf]
            self._send(attempt, tie)
            attempt.timer = sim.schedule(self.timeout.value, self._expire, attempt)
            attempt.extra = sim.schedule(tied, self._send_extra, attempt, tie)
        return attempt.done

    def _refuse(self, outcome: str) -> Future:
        self.counts[outcome] += 1
        done = Future()
        done.resolve(outcome)
        return done

    def _send(self, attempt: _Attempt, tie: list[float] | None = None) -> None:
        now, jobs = self.sim.now, attempt.jobs
        job = _Job(attempt, now, self._on_reply, tie)
        avoid = jobs[0].replica if jobs else -1
        jobs.append(job)
        attempt.pending += 1
        self.send_times.append(now)
        self.backend.send(job, avoid)

    def _send_extra(self, attempt: _Attempt, tie: list[float] | None = None) -> None:
        """The hedge (or the tied partner) goes out, unless the attempt is over."""
        attempt.extra = -1
        if attempt.outcome is None:
            self.hedges += tie is None
            self._send(attempt, tie)

    def _expire(self, attempt: _Attempt) -> None:
        attempt.timer = -1
        self._settle(attempt, TIMEOUT)

    def _on_reply(self, job: _Job, outcome: str) -> None:
        if self._observers:                 # late replies count: no censoring
            latency = self.sim.now - job.sent
            for observe in self._observers:
                observe(latency)
        attempt = job.attempt
        if attempt.outcome is not None:
            return
        attempt.pending -= 1
        if outcome == OK:
            self._settle(attempt, outcome)
        elif job.tie is not None:
            self._tied_failure(attempt, job, outcome)
        elif attempt.pending == 0:      # a hedged failure waits for the other copy
            self._settle(attempt, outcome)

    def _tied_failure(self, attempt: _Attempt, job: _Job, outcome: str) -> None:
        """A tied copy failed. The attempt fails only once the partner can no
        longer answer: it has answered, or this copy's start cancelled it (it had
        not started when the cancel arrived, at tie[0], so it never will). A
        copy that never started (shed) cancelled nothing: wait for the partner,
        sent or still to go, as a hedged attempt waits for its other copy."""
        if not job.started:
            if attempt.pending == 0 and len(attempt.jobs) == 2:
                self._settle(attempt, outcome)
            return
        cancel_at = job.tie[0]
        if self.sim.now >= cancel_at:
            self._partner_cancelled(attempt, outcome)
        else:
            attempt.check = self.sim.at(cancel_at, self._partner_cancelled, attempt,
                                        outcome)

    def _partner_cancelled(self, attempt: _Attempt, outcome: str) -> None:
        """The cancel of a failed tied copy has reached its partner: settle
        unless the partner started before it and has yet to answer."""
        attempt.check = -1
        started = len(attempt.jobs) == 2 and all(j.started for j in attempt.jobs)
        if not (started and attempt.pending):
            self._settle(attempt, outcome)

    def _settle(self, attempt: _Attempt, outcome: str) -> None:
        if attempt.outcome is not None:
            return
        cancel = self.sim.cancel
        if attempt.timer >= 0:
            cancel(attempt.timer)
        if attempt.extra >= 0:
            cancel(attempt.extra)
        if attempt.check >= 0:
            cancel(attempt.check)
        self.counts[outcome] += 1
        if self.breaker is not None:
            self.breaker.record(attempt.permit, outcome == OK)
        if self.throttle is not None and outcome in (OK, ERROR):
            self.throttle.record_accept()
        attempt.outcome = outcome
        attempt.done.resolve(outcome)
