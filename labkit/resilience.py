"""Fault tolerance (故障容错): a backend that fails the way real ones do, and a
client that defends itself with timeouts, retries, backoff with jitter, a retry
budget, a circuit breaker (熔断), hedged and tied requests and adaptive
throttling.

The building blocks (`Backoff`, `RetryBudget`, `CircuitBreaker`,
`AdaptiveThrottle`) are small state machines a test can drive by hand. `Backend`
and `Client` wire them into a simulation, and `simulate` runs one: Poisson users
for `duration` seconds against a backend whose faults follow a schedule. Every
user request's latency is end to end, retries included. Side experiments:
`contention` (the optimistic-concurrency race of Brooker's backoff post),
`fanout` (the tail at scale) and `layered_retries` (retries multiplying across
layers).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from labkit import dist
from labkit.dist import Distribution, as_distribution
from labkit.errors import ConfigError, require_int, require_number, require_probability
from labkit.metrics import Result, nearest_rank
from labkit.sim import Future, Simulator

# What one attempt can come back with. A definite error tells the client the
# operation did not happen; a timeout is indefinite: it may have run anyway.
OK, ERROR, OVERLOADED, TIMEOUT = "ok", "error", "overloaded", "timeout"
REJECTED, THROTTLED = "rejected", "throttled"      # refused by the client itself
RETRYABLE = frozenset({ERROR, OVERLOADED, TIMEOUT})
DEFINITE = (ERROR, OVERLOADED, REJECTED, THROTTLED)
OUTCOMES = (OK, *DEFINITE, TIMEOUT)


# -- backoff -------------------------------------------------------------------

BACKOFF_STRATEGIES = ("none", "exponential", "full", "equal", "decorrelated")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """How long a client sleeps before retry number `attempt` (1 for the first).

    Formulas from Brooker, "Exponential Backoff And Jitter" (AWS, 2015), with
    v = min(cap, base * 2**attempt): "none" sleeps 0; "exponential" sleeps v;
    "full" jitter uniform(0, v); "equal" jitter v/2 + uniform(0, v/2);
    "decorrelated" min(cap, uniform(base, 3 * previous sleep)), starting from
    previous = base.
    """

    strategy: str = "full"
    base: float = 0.005
    cap: float = 2.0

    def __post_init__(self):
        if self.strategy not in BACKOFF_STRATEGIES:
            raise ConfigError(f"backoff strategy must be one of {BACKOFF_STRATEGIES},"
                              f" got {self.strategy!r}")
        require_number("backoff base", self.base, positive=True)
        if require_number("backoff cap", self.cap, positive=True) < self.base:
            raise ConfigError(f"backoff cap must be >= base, got cap={self.cap} "
                              f"< base={self.base}")

    def ceiling(self, attempt: int) -> float:
        """min(cap, base * 2**attempt): the un-jittered sleep before retry `attempt`."""
        attempt = require_int("attempt", attempt, minimum=1)
        # Past 2**64 the cap has long won; bounding the exponent avoids overflow.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random,
              previous: float | None = None) -> float:
        """The sleep before retry `attempt`, drawing jitter from `rng`; `previous`
        is the last sleep (decorrelated jitter only; None means base)."""
        strategy = self.strategy
        if strategy == "none":
            return 0.0
        if strategy == "decorrelated":
            previous = self.base if previous is None else previous
            return min(self.cap, rng.uniform(self.base, 3.0 * previous))
        v = self.ceiling(attempt)
        if strategy == "exponential":
            return v
        if strategy == "full":
            return rng.uniform(0.0, v)
        return v / 2 + rng.uniform(0.0, v / 2)

    def delays(self, retries: int, rng: random.Random) -> list[float]:
        """The sleeps before retries 1..`retries` of one request."""
        out, previous = [], None
        for attempt in range(1, require_int("retries", retries, minimum=0) + 1):
            previous = self.delay(attempt, rng, previous)
            out.append(previous)
        return out


# -- retry budget ------------------------------------------------------------

class RetryBudget:
    """A token bucket that keeps retries to about `ratio` of requests.

    Each request adds `ratio` tokens (the bucket holds at most `burst`), each
    retry spends one, and a retry with no whole token left is not sent. When
    everything fails, N requests can send at most ratio * N + burst retries
    (the SRE book's 10 % budget: amplification ~1.1x instead of ~3x).
    """

    def __init__(self, ratio: float = 0.1, burst: float = 10.0):
        self.ratio = require_probability("budget ratio", ratio)
        # A bucket smaller than one token could never pay for a retry.
        self.burst = require_number("budget burst", burst, minimum=1.0)
        self.tokens = self.burst            # a full bucket: a quiet client may retry
        self.spent = self.denied = 0

    def on_request(self) -> None:
        """A new request (not a retry) earns `ratio` of a retry."""
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; False (and no retry) if there is none."""
        # 10 * 0.1 sums to 0.999...: forgive float dust so the budget is exact.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            self.spent += 1
            return True
        self.denied += 1
        return False

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio:g}, tokens={self.tokens:.3g})"


# -- circuit breaker ------------------------------------------------------------

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
BREAKER_STATES = (CLOSED, HALF_OPEN, OPEN)      # plotted bottom to top


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """The knobs of a circuit breaker.

    In CLOSED it records the outcome of every call in a sliding window, of the
    last `window_size` calls ("count") or of the last `window_size` seconds
    ("time"). Once the window holds at least `minimum_calls` calls and their
    failure rate reaches `failure_rate`, it opens: every call is rejected for
    `open_duration` seconds; then HALF_OPEN admits `half_open_calls` probes and
    closes if their failure rate is below `failure_rate`, else opens again.
    """

    failure_rate: float = 0.5
    window: str = "count"
    window_size: float = 100
    minimum_calls: int = 100
    open_duration: float = 60.0
    half_open_calls: int = 10

    def __post_init__(self):
        rate = require_number("failure_rate", self.failure_rate)
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"failure_rate must be in (0, 1], got {rate}")
        if self.window not in ("count", "time"):
            raise ConfigError(f"window must be 'count' (last N calls) or 'time' "
                              f"(last N seconds), got {self.window!r}")
        require_int("minimum_calls", self.minimum_calls, minimum=1)
        require_number("open_duration", self.open_duration, positive=True)
        require_int("half_open_calls", self.half_open_calls, minimum=1)
        if self.window == "count":
            size = require_int("window_size (calls)", self.window_size, minimum=1)
            if self.minimum_calls > size:
                raise ConfigError(f"a count window of {size} calls never holds "
                                  f"minimum_calls={self.minimum_calls}; lower it")
        else:
            require_number("window_size (seconds)", self.window_size, positive=True)


def resilience4j(**overrides: Any) -> BreakerConfig:
    """resilience4j's defaults: 50 % of a count window of 100 calls, at least 100
    calls, 60 s open, 10 calls permitted in half-open (overrides change any)."""
    config = BreakerConfig(failure_rate=0.5, window="count", window_size=100,
                           minimum_calls=100, open_duration=60.0, half_open_calls=10)
    return dataclasses.replace(config, **overrides)


def hystrix(**overrides: Any) -> BreakerConfig:
    """Hystrix's defaults: 50 % errors over a 10 s rolling window with at least 20
    requests, a 5 s sleep window, then a single probe (overrides change any)."""
    config = BreakerConfig(failure_rate=0.5, window="time", window_size=10.0,
                           minimum_calls=20, open_duration=5.0, half_open_calls=1)
    return dataclasses.replace(config, **overrides)


BREAKER_PRESETS: dict[str, Callable[..., BreakerConfig]] = {
    "resilience4j": resilience4j, "hystrix": hystrix}


class CircuitBreaker:
    """A circuit breaker's state machine (see `BreakerConfig`), on a given clock.

    `acquire()` asks to make a call: it returns a permit, or None when the call
    is rejected. `record(permit, ok)` reports how the call ended. Each state
    change starts a new epoch with an empty window, and outcomes of calls
    admitted in an earlier epoch are ignored, so a slow call from before the
    breaker opened never counts as a half-open probe. `history` lists
    (time, state) from (t0, "closed"); the open -> half-open change is stamped
    when the open duration ends, even though it is noticed at the next call.
    """

    def __init__(self, config: BreakerConfig, clock: Callable[[], float]):
        if not isinstance(config, BreakerConfig):
            raise TypeError(f"config must be a BreakerConfig, got {config!r}")
        self.config, self._clock = config, clock
        self._state, self.epoch = CLOSED, 0
        self._history: list[tuple[float, str]] = [(clock(), CLOSED)]
        self._window: deque[tuple[float, bool]] = deque()
        self._failures = self._probes = 0
        self._opened_at = -math.inf
        self.rejected = 0

    @property
    def history(self) -> list[tuple[float, str]]:
        """(time, state) of every change so far, from (t0, "closed")."""
        self._tick()
        return list(self._history)

    @property
    def state(self) -> str:
        self._tick()
        return self._state

    def _tick(self) -> None:
        """Make the open -> half-open change once the open duration has passed."""
        reopens = self._opened_at + self.config.open_duration
        if self._state == OPEN and self._clock() >= reopens:
            self._enter(HALF_OPEN, reopens)

    def acquire(self) -> int | None:
        """A permit (the current epoch) if a call may go out now, else None."""
        state = self.state
        if state == CLOSED:
            return self.epoch
        if state == HALF_OPEN and self._probes < self.config.half_open_calls:
            self._probes += 1
            return self.epoch
        self.rejected += 1
        return None

    def record(self, permit: int, ok: bool) -> None:
        """Report the outcome of a call admitted with `permit`."""
        if permit != self.epoch or self.state == OPEN:
            return                      # admitted under a state that has passed
        now, config = self._clock(), self.config
        self._window.append((now, not ok))
        self._failures += not ok
        if self._state == HALF_OPEN:
            if len(self._window) == config.half_open_calls:
                rate = self._failures / len(self._window)
                self._enter(OPEN if rate >= config.failure_rate else CLOSED, now)
            return
        self._slide(now)
        calls = len(self._window)
        if (calls >= config.minimum_calls
                and self._failures / calls >= config.failure_rate):
            self._enter(OPEN, now)

    def _slide(self, now: float) -> None:
        """Forget outcomes that fell out of the window."""
        window, config = self._window, self.config
        if config.window == "count":
            while len(window) > config.window_size:
                self._failures -= window.popleft()[1]
        else:
            while window and window[0][0] <= now - config.window_size:
                self._failures -= window.popleft()[1]

    def _enter(self, state: str, at: float) -> None:
        self._state, self.epoch = state, self.epoch + 1
        self._window.clear()
        self._failures = self._probes = 0
        if state == OPEN:
            self._opened_at = at
        self._history.append((at, state))

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.state}, epoch={self.epoch})"


def state_at(history: Sequence[tuple[float, str]], time: float) -> str:
    """The breaker state at `time` according to a (time, state) history."""
    state = history[0][1]
    for at, new in history:
        if at > time:
            break
        state = new
    return state


def first_entry(history: Sequence[tuple[float, str]], state: str,
                after: float = 0.0) -> float:
    """When the breaker first entered `state` at or after `after` (inf if never)."""
    return next((at for at, new in history if new == state and at >= after),
                math.inf)


# -- adaptive throttling ----------------------------------------------------------

class AdaptiveThrottle:
    """Client-side adaptive throttling (Google SRE book, "Handling Overload").

    Over the last `window` seconds the client counts requests (all it tried,
    including those it refused itself) and accepts (those the backend took) and
    refuses a new request with probability
    max(0, (requests - k * accepts) / (requests + 1)). Under heavy overload the
    backend therefore sees about k times what it accepts.
    """

    def __init__(self, clock: Callable[[], float], k: float = 2.0,
                 window: float = 120.0):
        self.k = require_number("throttle k", k, minimum=1.0)
        self.window = require_number("throttle window", window, positive=True)
        self._clock = clock
        self._requests: deque[float] = deque()
        self._accepts: deque[float] = deque()

    def reject_probability(self) -> float:
        """The current chance that `admit` refuses a request."""
        horizon = self._clock() - self.window
        for times in (self._requests, self._accepts):
            while times and times[0] <= horizon:
                times.popleft()
        requests = len(self._requests)
        return max(0.0, (requests - self.k * len(self._accepts)) / (requests + 1))

    def admit(self, rng: random.Random) -> bool:
        """Count a request and decide, with `rng`, whether it may go out."""
        p = self.reject_probability()
        self._requests.append(self._clock())
        return rng.random() >= p

    def record_accept(self) -> None:
        """The backend accepted a request (answered it, rather than shed it)."""
        self._accepts.append(self._clock())

    def __repr__(self) -> str:
        return (f"AdaptiveThrottle(k={self.k:g}, "
                f"p_reject={self.reject_probability():.3f})")


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
    hedge: send a second copy to another replica if the first has not answered
    after this delay (seconds or a `Percentile`); None for no hedging.
    tied: send two copies this many seconds apart, each telling its replica
    about the other; whichever starts first cancels the other; None for no ties.
    throttle: k of client-side adaptive throttling over `throttle_window`
    seconds, or None.
    """

    timeout: float | Percentile = 1.0
    attempts: int = 1
    backoff: Backoff = Backoff("none")
    budget: float | None = None
    budget_burst: float = 10.0
    breaker: BreakerConfig | None = None
    hedge: float | Percentile | None = None
    tied: float | None = None
    throttle: float | None = None
    throttle_window: float = 120.0

    def __post_init__(self):
        _duration("timeout", self.timeout)
        require_int("attempts", self.attempts, minimum=1)
        if not isinstance(self.backoff, Backoff):
            raise ConfigError(f"backoff must be a Backoff, got {self.backoff!r}")
        if self.budget is not None:
            require_probability("budget", self.budget)
        require_number("budget_burst", self.budget_burst, minimum=1.0)
        if self.breaker is not None and not isinstance(self.breaker, BreakerConfig):
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


# -- the backend -------------------------------------------------------------------

FAULT_MODES = ("crash", "slow", "errors", "brownout")
#: Default service time: 10 ms on average, memoryless (M/M/1 replicas).
SERVICE = dist.exponential(0.010)


class Fault(NamedTuple):
    """A backend failure from `start` to `end` seconds.

    mode "crash": a `severity` fraction of replicas die (their work is lost and
    the load balancer keeps sending them requests that are never answered);
    "slow": service takes `severity` times longer; "errors": each request fails
    with probability `severity`; "brownout": a `severity` fraction of replicas
    leave the load balancer's rotation, so capacity drops by that fraction.
    """

    mode: str
    start: float
    end: float = math.inf
    severity: float = 1.0


def as_fault(value: Fault | Sequence) -> Fault:
    """A validated Fault from a Fault or a (mode, start[, end[, severity]]) tuple."""
    if not isinstance(value, tuple | list) or not 2 <= len(value) <= 4:
        raise ConfigError(f"a fault is (mode, start, end, severity), got {value!r}")
    fault = Fault(*value)
    if fault.mode not in FAULT_MODES:
        raise ConfigError(f"fault mode must be one of {FAULT_MODES}, got "
                          f"{fault.mode!r}")
    start = require_number("fault start", fault.start, minimum=0.0)
    if not fault.end > start:  # inf allowed: the fault never ends
        raise ConfigError(f"fault end must be after its start, got {fault.end}")
    if fault.mode == "slow":
        require_number("slow factor", fault.severity, minimum=1.0)
    else:
        require_probability(f"{fault.mode} severity", fault.severity)
    return fault


class _Job:
    """One copy of one attempt, as the backend sees it."""

    __slots__ = ("attempt", "sent", "replica", "reply", "tie", "executed")

    def __init__(self, attempt: Any, sent: float, reply: Callable,
                 tie: list[float] | None):
        self.attempt, self.sent, self.reply, self.tie = attempt, sent, reply, tie
        self.replica, self.executed = -1, False


class _Replica:
    __slots__ = ("free", "queue", "up", "epoch")

    def __init__(self, workers: int):
        self.free, self.queue, self.up, self.epoch = workers, deque(), True, 0


class Backend:
    """A pool of `servers` replicas behind a load balancer.

    The balancer sends each request to a replica chosen uniformly at random
    among those in rotation; each replica serves its own FIFO queue with
    `workers` workers. A request arriving to a full queue (`queue_limit`
    waiting) is shed with an "overloaded" reply. Every message takes a one-way
    `network` delay. Faults (see `Fault`) are switched on with `crash`, `slow`,
    `errors`, `brownout` and off with `recover`. Random streams:
    `<name>.route`, `<name>.service`, `<name>.errors`, `<name>.network`.
    """

    def __init__(self, sim: Simulator, *, servers: int = 10, workers: int = 1,
                 service: Distribution | float = SERVICE,
                 queue_limit: int | None = None,
                 network: Distribution | float = 0.0005, name: str = "backend"):
        if not isinstance(sim, Simulator):
            raise TypeError(f"sim must be a labkit Simulator, got {sim!r}")
        self.sim, self.name = sim, name
        self.servers = require_int("servers", servers, minimum=1)
        self.workers = require_int("workers", workers, minimum=1)
        self.service = as_distribution(service, "service")
        self.queue_limit = (None if queue_limit is None
                            else require_int("queue_limit", queue_limit, minimum=0))
        self.network = as_distribution(network, "network")
        self._route = sim.rng(f"{name}.route").random
        self._service = self.service.sampler(sim.rng(f"{name}.service"))
        self._error_draw = sim.rng(f"{name}.errors").random
        self._net = self.network.sampler(sim.rng(f"{name}.network"))
        self._replicas = [_Replica(workers) for _ in range(servers)]
        self._rotation = list(range(servers))
        self.slowdown, self.error_rate = 1.0, 0.0
        self.arrivals = self.started = self.served = 0
        self.shed = self.lost = self.cancelled = 0
        self.arrival_times: list[float] = []

    @property
    def capacity(self) -> float:
        """Requests per second the replicas in rotation can serve when healthy."""
        return len(self._rotation) * self.workers / (self.service.mean
                                                     * self.slowdown)

    # -- requests ----------------------------------------------------------
    def send(self, job: _Job, avoid: int = -1) -> None:
        """Route `job` now (to a replica other than `avoid` if there is one); it
        arrives after a network delay. With no replica in rotation it is lost."""
        rotation = self._rotation
        n = len(rotation)
        if n == 0:
            self.lost += 1
            return
        if avoid in rotation and n > 1:
            pick = rotation[int(self._route() * (n - 1))]
            job.replica = rotation[-1] if pick == avoid else pick
        else:
            job.replica = rotation[int(self._route() * n)]
        self.sim.schedule(self._net(), self._arrive, job)

    def _arrive(self, job: _Job) -> None:
        replica = self._replicas[job.replica]
        self.arrivals += 1
        self.arrival_times.append(self.sim.now)
        if not replica.up:
            self.lost += 1
        elif replica.free:
            replica.free -= 1
            if not self._begin(replica, job):
                replica.free += 1
        elif self.queue_limit is not None and len(replica.queue) >= self.queue_limit:
            self.shed += 1
            self.sim.schedule(self._net(), job.reply, job, OVERLOADED)
        else:
            replica.queue.append(job)

    def _begin(self, replica: _Replica, job: _Job) -> bool:
        """Start serving `job` on a free worker; False if a tied copy has been
        cancelled (its partner started and the cancel has arrived)."""
        tie, now = job.tie, self.sim.now
        if tie is not None:
            if now >= tie[0]:
                self.cancelled += 1
                return False
            if tie[0] == math.inf:      # first copy to start: tell the other one
                tie[0] = now + self._net()
        self.started += 1
        self.sim.schedule(self._service() * self.slowdown, self._finish, replica,
                          job, replica.epoch)
        return True

    def _finish(self, replica: _Replica, job: _Job, epoch: int) -> None:
        if epoch != replica.epoch:
            return                      # the replica crashed while serving it
        self.served += 1
        outcome = ERROR if self._error_draw() < self.error_rate else OK
        job.executed = outcome == OK
        self.sim.schedule(self._net(), job.reply, job, outcome)
        queue = replica.queue
        while queue:
            if self._begin(replica, queue.popleft()):
                return
        replica.free += 1

    # -- faults ------------------------------------------------------------
    def _count(self, fraction: float) -> int:
        return round(require_probability("fraction", fraction) * self.servers)

    def crash(self, fraction: float = 1.0) -> None:
        """The first `fraction` of replicas die: queued and running work is lost,
        and requests routed to them are never answered until `recover`."""
        for replica in self._replicas[:self._count(fraction)]:
            if replica.up:
                self.lost += len(replica.queue) + self.workers - replica.free
                replica.queue.clear()
                replica.up, replica.free = False, self.workers
                replica.epoch += 1
        self.sim.record("fault", self.name, self.name, "crash", note=f"{fraction:g}")

    def slow(self, factor: float) -> None:
        """Every service starting from now takes `factor` times longer."""
        self.slowdown = require_number("slow factor", factor, minimum=1.0)
        self.sim.record("fault", self.name, self.name, "slow", note=f"{factor:g}")

    def errors(self, rate: float) -> None:
        """Each request finishing from now fails with probability `rate`."""
        self.error_rate = require_probability("error rate", rate)
        self.sim.record("fault", self.name, self.name, "errors", note=f"{rate:g}")

    def brownout(self, fraction: float) -> None:
        """The last `fraction` of replicas leave the rotation (they finish what
        they hold); capacity drops by that fraction."""
        self._rotation = list(range(self.servers - self._count(fraction)))
        self.sim.record("fault", self.name, self.name, "brownout",
                        note=f"{fraction:g}")

    def recover(self, mode: str | None = None) -> None:
        """End fault `mode` (every fault if None): replicas restart empty, the
        rotation is whole again, the slowdown and error rate are gone."""
        if mode not in (None, *FAULT_MODES):
            raise ConfigError(f"mode must be None or one of {FAULT_MODES}, got "
                              f"{mode!r}")
        if mode in (None, "crash"):
            for replica in self._replicas:
                replica.up = True
        if mode in (None, "slow"):
            self.slowdown = 1.0
        if mode in (None, "errors"):
            self.error_rate = 0.0
        if mode in (None, "brownout"):
            self._rotation = list(range(self.servers))
        self.sim.record("fault", self.name, self.name, "recover", note=mode or "all")

    def schedule(self, faults: Iterable[Fault | Sequence]) -> list[Fault]:
        """Switch each fault on at its start and off at its end; returns them."""
        faults = [as_fault(f) for f in faults]
        for fault in faults:
            self.sim.at(fault.start, getattr(self, fault.mode), fault.severity)
            if fault.end != math.inf:
                self.sim.at(fault.end, self.recover, fault.mode)
        return faults

    def __repr__(self) -> str:
        return (f"Backend({self.name!r}, servers={self.servers}, "
                f"in_rotation={len(self._rotation)}, served={self.served})")


# -- the client ---------------------------------------------------------------------

class _Attempt:
    """One try of one user request: its copies, timers and the future it settles."""

    __slots__ = ("rid", "done", "permit", "pending", "jobs", "timer", "extra")

    def __init__(self, rid: int, permit: int | None):
        self.rid, self.permit, self.done = rid, permit, Future()
        self.pending = 0
        self.jobs: list[_Job] = []
        self.timer = self.extra = -1        # pending events: timeout, hedge or tie


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
        if policy.tied is not None and backend.servers < 2:
            raise ConfigError("tied requests need a backend of at least 2 servers")
        self.sim, self.backend, self.policy, self.name = sim, backend, policy, name
        clock = self._clock
        self.breaker = (None if policy.breaker is None
                        else CircuitBreaker(policy.breaker, clock))
        self.budget = (None if policy.budget is None
                       else RetryBudget(policy.budget, policy.budget_burst))
        self.throttle = (None if policy.throttle is None
                         else AdaptiveThrottle(clock, policy.throttle,
                                               policy.throttle_window))
        self.timeout = _Tracker(policy.timeout)
        self.hedge = None if policy.hedge is None else _Tracker(policy.hedge)
        self._jitter = sim.rng(f"{name}.jitter")
        self._throttle_rng = sim.rng(f"{name}.throttle")
        self.outstanding = sim.metrics.gauge(f"{name}.outstanding")
        # Per user request (index = request id) and per copy sent, for series.
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
        gap = self.sim.rng(f"{self.name}.arrivals").expovariate

        def arrive() -> None:
            self.sim.spawn(self._request(len(self.starts)))
            next_time = self.sim.now + gap(rate)
            if next_time < until:
                self.sim.at(next_time, arrive)

        first = gap(rate)
        if first < until:
            self.sim.at(first, arrive)

    @property
    def unfinished(self) -> int:
        return len(self.starts) - len(self.ends)

    # -- one user request ----------------------------------------------------
    def _request(self, rid: int):
        """Attempt, back off, retry: the body of one user request's process."""
        policy, sim = self.policy, self.sim
        self.starts.append(sim.now)
        self.outstanding.add(1)
        if self.budget is not None:
            self.budget.on_request()
        outcome, previous = OK, None
        for attempt in range(policy.attempts):
            if attempt:
                if outcome not in RETRYABLE:
                    break
                if self.budget is not None and not self.budget.try_spend():
                    self.budget_denied += 1
                    break
                self.retries += 1
                previous = policy.backoff.delay(attempt, self._jitter, previous)
                if previous > 0:
                    yield previous
            outcome = yield self._attempt(rid)
            if outcome == OK:
                break
        self.ends.append(sim.now)
        self.outcomes.append(outcome)
        self.outstanding.add(-1)
        sim.metrics.histogram("latency").add(sim.now - self.starts[rid])

    def _attempt(self, rid: int) -> Future:
        """Start one attempt; its future resolves to its outcome."""
        if self.throttle is not None and not self.throttle.admit(self._throttle_rng):
            return self._refuse(THROTTLED)
        permit = None
        if self.breaker is not None:
            permit = self.breaker.acquire()
            if permit is None:
                return self._refuse(REJECTED)
        attempt, sim, policy = _Attempt(rid, permit), self.sim, self.policy
        self.attempts.append(attempt)
        tie = None if policy.tied is None else [math.inf]
        self._send(attempt, tie)
        attempt.timer = sim.schedule(self.timeout.value, self._expire, attempt)
        if tie is not None:
            attempt.extra = sim.schedule(policy.tied, self._send_extra, attempt, tie)
        elif self.hedge is not None:
            attempt.extra = sim.schedule(self.hedge.value, self._send_extra, attempt)
        return attempt.done

    def _refuse(self, outcome: str) -> Future:
        self.counts[outcome] += 1
        done = Future()
        done.resolve(outcome)
        return done

    def _send(self, attempt: _Attempt, tie: list[float] | None = None) -> None:
        job = _Job(attempt, self.sim.now, self._on_reply, tie)
        avoid = attempt.jobs[0].replica if attempt.jobs else -1
        attempt.jobs.append(job)
        attempt.pending += 1
        self.send_times.append(self.sim.now)
        self.backend.send(job, avoid)

    def _send_extra(self, attempt: _Attempt, tie: list[float] | None = None) -> None:
        """The hedge (or the tied partner) goes out, unless the attempt is over."""
        attempt.extra = -1
        if not attempt.done.done:
            self.hedges += tie is None
            self._send(attempt, tie)

    def _expire(self, attempt: _Attempt) -> None:
        attempt.timer = -1
        self._settle(attempt, TIMEOUT)

    def _on_reply(self, job: _Job, outcome: str) -> None:
        latency = self.sim.now - job.sent
        self.timeout.observe(latency)       # late replies count: no censoring
        if self.hedge is not None:
            self.hedge.observe(latency)
        attempt = job.attempt
        if attempt.done.done:
            return
        attempt.pending -= 1
        # A hedged attempt's error waits for the other copy; a tied partner
        # that was cancelled never answers, so a tied error settles at once.
        if outcome == OK or attempt.pending == 0 or job.tie is not None:
            self._settle(attempt, outcome)

    def _settle(self, attempt: _Attempt, outcome: str) -> None:
        if attempt.done.done:
            return
        for event in (attempt.timer, attempt.extra):
            if event >= 0:
                self.sim.cancel(event)
        self.counts[outcome] += 1
        if self.breaker is not None:
            self.breaker.record(attempt.permit, outcome == OK)
        if self.throttle is not None and outcome in (OK, ERROR):
            self.throttle.record_accept()
        attempt.done.resolve(outcome)


# -- running it ------------------------------------------------------------------------

def simulate(seed: int = 0, *, policy: Policy = Policy(), rate: float = 500.0,
             duration: float = 30.0, faults: Iterable[Fault | Sequence] = (),
             servers: int = 10, workers: int = 1,
             service: Distribution | float = SERVICE,
             queue_limit: int | None = None, network: Distribution | float = 0.0005,
             bucket: float = 1.0) -> Result:
    """Users at `rate` per second for `duration` seconds against a backend with
    scheduled `faults`, defended by `policy`; runs until every request is done.

    Metrics: histogram "latency" (every user request, end to end); counters
    "requests", "succeeded", "attempts.<outcome>", "retries", "hedges",
    "copies" (messages the backend was sent), "budget_denied",
    "timeouts.executed" / "timeouts.not_executed" (timed-out attempts whose
    work did or did not happen), "duplicates" (requests executed more than
    once), "backend.arrivals" / "backend.started" / "backend.served" (copies
    that reached, began and finished service); gauge "client.outstanding"
    (user requests in progress); series per `bucket`
    seconds: "amplification" (copies sent / requests started), "success_rate",
    "goodput" (successes per second), "p50", "p99", "backend.load" (arrivals per
    second) and "breaker" (0 closed, 1 half-open, 2 open, at each change).
    `data["summary"]` holds the headline numbers (see `summarize`).
    """
    duration = require_number("duration", duration, positive=True)
    bucket = require_number("bucket", bucket, positive=True)
    sim = Simulator(seed, trace=True)
    backend = Backend(sim, servers=servers, workers=workers, service=service,
                      queue_limit=queue_limit, network=network)
    faults = backend.schedule(faults)
    client = Client(sim, backend, policy)
    client.start(rate, duration)
    sim.run(duration)
    while client.unfinished and sim.pending:    # let started requests finish
        sim.run(bucket)
    _record(sim, client, backend, duration, bucket)
    params = {"policy": policy, "rate": rate, "duration": duration,
              "faults": faults, "servers": servers, "workers": workers,
              "service": service, "queue_limit": queue_limit, "network": network,
              "bucket": bucket}
    history = [] if client.breaker is None else client.breaker.history
    result = sim.result("resilience", params, {"breaker_history": history})
    summary = summarize(result)
    return dataclasses.replace(result, data={
        **result.data, "summary": summary,
        "headline": f"success {summary['success_rate']:.1%} · amplification "
                    f"{summary['amplification']:.2f}x · p99 "
                    f"{summary['p99'] * 1e3:.0f} ms"})


def _record(sim: Simulator, client: Client, backend: Backend, duration: float,
            bucket: float) -> None:
    """Turn the client's and backend's logs into the run's metrics."""
    metrics = sim.metrics
    metrics.counter("requests").inc(len(client.starts))
    succeeded = sum(outcome == OK for outcome in client.outcomes)
    metrics.counter("succeeded").inc(succeeded)
    for outcome, count in client.counts.items():
        metrics.counter(f"attempts.{outcome}").inc(count)
    for name in ("retries", "hedges", "budget_denied"):
        metrics.counter(name).inc(getattr(client, name))
    metrics.counter("copies").inc(len(client.send_times))
    metrics.counter("backend.served").inc(backend.served)
    metrics.counter("backend.started").inc(backend.started)
    metrics.counter("backend.arrivals").inc(backend.arrivals)
    executions = [0] * len(client.starts)
    executed = not_executed = 0
    for attempt in client.attempts:
        ran = sum(job.executed for job in attempt.jobs)
        executions[attempt.rid] += ran
        if attempt.done.done and attempt.done.value == TIMEOUT:
            executed += ran > 0
            not_executed += ran == 0
    metrics.counter("timeouts.executed").inc(executed)
    metrics.counter("timeouts.not_executed").inc(not_executed)
    metrics.counter("duplicates").inc(sum(n > 1 for n in executions))
    _series(metrics, client, backend, duration, bucket)


def _series(metrics, client: Client, backend: Backend, duration: float,
            bucket: float) -> None:
    edges = np.arange(0.0, duration + bucket / 2, bucket)
    if edges[-1] < duration:
        edges = np.append(edges, duration)

    def per_bucket(times) -> np.ndarray:
        return np.histogram(np.asarray(times, float), bins=edges)[0]

    starts, ends = np.asarray(client.starts), np.asarray(client.ends)
    ok = np.asarray([o == OK for o in client.outcomes], bool)
    latency = metrics["latency"].values
    started, sent = per_bucket(starts), per_bucket(client.send_times)
    finished, good = per_bucket(ends), per_bucket(ends[ok])
    load = per_bucket(backend.arrival_times)
    which = np.searchsorted(edges, ends, side="right") - 1
    widths = np.diff(edges)
    for i, left in enumerate(edges[:-1]):
        t = float(left)
        mine = np.sort(latency[which == i])
        metrics.series("amplification").add(t, sent[i] / started[i] if started[i]
                                             else math.nan)
        metrics.series("success_rate").add(t, good[i] / finished[i] if finished[i]
                                           else math.nan)
        metrics.series("goodput").add(t, good[i] / widths[i])
        metrics.series("backend.load").add(t, load[i] / widths[i])
        metrics.series("p50").add(t, nearest_rank(mine, 50))
        metrics.series("p99").add(t, nearest_rank(mine, 99))
    breaker = metrics.series("breaker")
    if client.breaker is not None:
        for at, state in client.breaker.history:
            breaker.add(at, BREAKER_STATES.index(state))


def summarize(result: Result) -> dict[str, float]:
    """Headline numbers of a `simulate` run: requests, success_rate, goodput (per
    second of the run), amplification (copies per request), p50/p99/p99.9 (s),
    definite and indefinite (timed-out) errors per attempt, and duplicates."""
    m = result.metrics
    requests = m["requests"].value
    latency = m["latency"]
    duration = result.params["duration"]
    return {
        "requests": requests,
        "success_rate": m["succeeded"].value / requests if requests else math.nan,
        "goodput": m["succeeded"].value / duration,
        "amplification": m["copies"].value / requests if requests else math.nan,
        "p50": latency.percentile(50) if latency.count else math.nan,
        "p99": latency.percentile(99) if latency.count else math.nan,
        "p99.9": latency.percentile(99.9) if latency.count else math.nan,
        "definite_errors": sum(m[f"attempts.{o}"].value for o in DEFINITE),
        "indefinite_errors": m[f"attempts.{TIMEOUT}"].value,
        "timeouts_executed": m["timeouts.executed"].value,
        "duplicates": m["duplicates"].value,
    }


# -- side experiments -----------------------------------------------------------------

def contention(seed: int = 0, *, clients: int = 10, strategy: str = "full",
               base: float = 0.005, cap: float = 2.0, delay: float = 0.010,
               delay_sd: float = 0.002, trials: int = 1) -> Result:
    """Brooker's race: `clients` clients each update one row once with
    optimistic concurrency (read its version, write if it is unchanged); a
    loser backs off with `strategy`, then reads again. One-way network delay
    |Normal(delay, delay_sd)|. Histograms "calls" (writes per trial) and
    "completion" (seconds until the last client succeeded), one value per trial.
    """
    clients = require_int("clients", clients, minimum=1)
    trials = require_int("trials", trials, minimum=1)
    backoff = Backoff(strategy, base, cap)
    delay = require_number("delay", delay, minimum=0.0)
    delay_sd = require_number("delay_sd", delay_sd, minimum=0.0)
    sim = Simulator(seed, trace=False)
    calls, completion = (sim.metrics.histogram("calls"),
                         sim.metrics.histogram("completion"))
    for trial in range(trials):
        writes, took = _occ_race(sim, clients, backoff, sim.rng(f"jitter.{trial}"),
                                 sim.rng(f"net.{trial}"), delay, delay_sd)
        calls.add(writes)
        completion.add(took)
    return sim.result("contention", {"clients": clients, "strategy": strategy,
                                     "base": base, "cap": cap, "delay": delay,
                                     "delay_sd": delay_sd, "trials": trials})


#: Default leaves of `fanout`: usually ~10 ms, slow ones take 1-2 s.
FAST_LEAF, SLOW_LEAF = dist.lognormal(0.010, 0.050), dist.uniform(1.0, 2.0)


def _occ_race(sim: Simulator, clients: int, backoff: Backoff,
              jitter: random.Random, net_rng: random.Random, delay: float,
              delay_sd: float) -> tuple[int, float]:
    """Run one race to the end: (writes the row received, seconds it took)."""

    def net() -> float:
        return abs(net_rng.normalvariate(delay, delay_sd))

    start, row = sim.now, {"version": 0, "writes": 0, "last": sim.now}

    def read(retry: int, previous: float | None) -> None:
        # The server reads the version now; the write carrying it arrives after
        # two one-way delays: the read's answer back, the write out again.
        sim.schedule(net() + net(), arrive, row["version"], retry, previous)

    def arrive(version: int, retry: int, previous: float | None) -> None:
        row["writes"] += 1
        won = version == row["version"]         # the conditional write
        row["version"] += won
        sim.schedule(net(), answer, won, retry + 1, previous)

    def answer(won: bool, retry: int, previous: float | None) -> None:
        if won:
            row["last"] = sim.now
            return
        sleep = backoff.delay(retry, jitter, previous)
        sim.schedule(sleep + net(), read, retry, sleep)

    for _ in range(clients):
        sim.schedule(net(), read, 0, None)
    sim.run()
    return row["writes"], row["last"] - start


def fanout(seed: int = 0, *, servers: int = 100, slow_probability: float = 0.01,
           requests: int = 2000, threshold: float = 1.0,
           fast: Distribution | float = FAST_LEAF,
           slow: Distribution | float = SLOW_LEAF) -> Result:
    """The tail at scale: each request waits for all `servers` leaves; a leaf is
    slow (drawn from `slow`) with probability `slow_probability`, else `fast`.
    Histogram "latency" of requests; counter "slow" of requests over `threshold`;
    data["predicted"] = 1 - (1 - p)**n, the share expected to be slow."""
    servers = require_int("servers", servers, minimum=1)
    requests = require_int("requests", requests, minimum=1)
    p = require_probability("slow_probability", slow_probability)
    sim = Simulator(seed, trace=False)
    latency = sim.metrics.histogram("latency")
    draw = dist.bimodal(fast, slow, p).sampler(sim.rng("leaves"))
    for _ in range(requests):
        latency.add(max(draw() for _ in range(servers)))
    sim.metrics.counter("slow").inc(round(latency.fraction_above(threshold)
                                          * requests))
    return sim.result("fanout", {"servers": servers, "slow_probability": p,
                                 "requests": requests, "threshold": threshold,
                                 "fast": fast, "slow": slow},
                      {"predicted": 1 - (1 - p) ** servers})


def layered_retries(seed: int = 0, *, layers: int = 3, attempts: int = 4,
                    budget: float | None = None, burst: float = 10.0,
                    requests: int = 100, failure: float = 1.0) -> Result:
    """A call chain user -> layer 1 -> ... -> layer `layers` -> database, where
    every layer tries the one below up to `attempts` times (with its own retry
    `budget` ratio, if given) and the database fails with probability `failure`.
    data["calls"][i] = calls that reached depth i per user request (depth 0 is
    layer 1, depth `layers` the database): attempts**i when everything fails."""
    layers = require_int("layers", layers, minimum=1)
    attempts = require_int("attempts", attempts, minimum=1)
    requests = require_int("requests", requests, minimum=1)
    failure = require_probability("failure", failure)
    sim = Simulator(seed, trace=False)
    fails = sim.rng("database").random
    budgets = [None if budget is None else RetryBudget(budget, burst)
               for _ in range(layers)]
    calls = [0] * (layers + 1)

    def call(depth: int):
        calls[depth] += 1
        if depth == layers:
            return fails() >= failure
        if budgets[depth] is not None:
            budgets[depth].on_request()
        for attempt in range(attempts):
            if attempt and budgets[depth] is not None \
                    and not budgets[depth].try_spend():
                return False
            if (yield sim.spawn(call(depth + 1))):
                return True
        return False

    succeeded = 0
    for _ in range(requests):
        user = sim.spawn(call(0))
        sim.run()
        succeeded += user.value
    sim.metrics.counter("succeeded").inc(succeeded)
    return sim.result("layered_retries",
                      {"layers": layers, "attempts": attempts, "budget": budget,
                       "burst": burst, "requests": requests, "failure": failure},
                      {"calls": [c / requests for c in calls]})
