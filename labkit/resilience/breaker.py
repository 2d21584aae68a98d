"""How a client stops calling a backend that is failing: the circuit breaker
(熔断) with its knobs (`BreakerConfig`) and the resilience4j and Hystrix
presets, helpers that read a breaker's state history, and client-side
adaptive throttling (`AdaptiveThrottle`). Each is a small state machine on a
clock passed in, so a test can drive it by hand.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from labkit.errors import ConfigError, require_int, require_number

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
    return _preset(BreakerConfig(failure_rate=0.5, window="count", window_size=100,
                                 minimum_calls=100, open_duration=60.0,
                                 half_open_calls=10), overrides)


def hystrix(**overrides: Any) -> BreakerConfig:
    """Hystrix's defaults: 50 % errors over a 10 s rolling window with at least 20
    requests, a 5 s sleep window, then a single probe (overrides change any)."""
    return _preset(BreakerConfig(failure_rate=0.5, window="time", window_size=10.0,
                                 minimum_calls=20, open_duration=5.0,
                                 half_open_calls=1), overrides)


def _preset(config: BreakerConfig, overrides: dict[str, Any]) -> BreakerConfig:
    """`config` with `overrides`, which must name BreakerConfig's fields."""
    fields = [f.name for f in dataclasses.fields(BreakerConfig)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"a breaker has no setting {unknown}; its settings are "
                          f"{fields}")
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
        self.config, self._clock = config, _require_clock(clock)
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
        if self._state == OPEN:         # `self.state`, without the property
            self._tick()
        state = self._state
        if state == CLOSED:
            return self.epoch
        if state == HALF_OPEN and self._probes < self.config.half_open_calls:
            self._probes += 1
            return self.epoch
        self.rejected += 1
        return None

    def record(self, permit: int, ok: bool) -> None:
        """Report the outcome of a call admitted with `permit`."""
        if permit != self.epoch:
            return                      # admitted under a state that has passed
        if self._state == OPEN:         # `self.state`, without the property
            self._tick()
            if self._state == OPEN:
                return
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
    if not history:
        raise ConfigError("history must list at least the breaker's first state, "
                          "as (time, state) pairs from (t0, 'closed'), got an "
                          "empty one")
    state = history[0][1]
    for at, new in history:
        if at > time:
            break
        state = new
    return state


def _require_clock(clock: Any) -> Callable[[], float]:
    if not callable(clock):
        raise ConfigError(f"clock must be a function returning the time (e.g. "
                          f"lambda: sim.now), got {clock!r}")
    return clock


def first_entry(history: Sequence[tuple[float, str]], state: str,
                after: float = 0.0) -> float:
    """When the breaker first entered `state` at or after `after` (inf if never)."""
    if state not in BREAKER_STATES:
        raise ConfigError(f"state must be one of {BREAKER_STATES}, got {state!r}")
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
        self._clock = _require_clock(clock)
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
