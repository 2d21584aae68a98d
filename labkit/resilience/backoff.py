"""How a client paces its retries: `Backoff`, the sleep before each retry
(none, exponential, or exponential with full, equal or decorrelated jitter),
and `RetryBudget`, a token bucket that caps retries at a share of requests.
Both are small values a test can drive by hand.
"""

from __future__ import annotations

import dataclasses
import math
import random

from labkit.errors import ConfigError, require_int, require_number, require_probability

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
        # ldexp is base * 2**attempt, exactly; past the largest float the cap wins.
        try:
            return min(self.cap, math.ldexp(self.base, attempt))
        except OverflowError:
            return self.cap

    def delay(self, attempt: int, rng: random.Random,
              previous: float | None = None) -> float:
        """The sleep before retry `attempt` (1 for the first), drawing jitter from
        `rng`; `previous` is the last sleep (decorrelated jitter only; None
        means base), at least base: no decorrelated sleep is shorter, and below
        base / 3 uniform(base, 3 * previous) would sleep less than base."""
        require_int("attempt", attempt, minimum=1)
        strategy = self.strategy
        if strategy == "none":
            return 0.0
        if strategy == "decorrelated":
            previous = (self.base if previous is None else
                        require_number("previous sleep", previous,
                                       minimum=self.base))
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
