"""Probability distributions of durations (latencies, service times), in seconds.

Each distribution draws from a `random.Random` stream it is handed, so the
caller decides which seeded stream pays for the randomness, and knows its own
mean and second moment so theory (e.g. Pollaczek-Khinchine) can sit beside it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from math import log

from labkit.errors import ConfigError, require_number, require_probability

# z such that P(N(0,1) <= z) = 0.99: turns "median and p99" into a sigma.
_Z99 = 2.3263478740408408


class Distribution:
    """A non-negative random duration with a known mean and second moment."""

    mean: float
    second_moment: float

    def sample(self, rng: random.Random) -> float:
        """One draw, using only `rng` for chance."""
        raise NotImplementedError

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A zero-argument function drawing from `rng` (fast in hot loops)."""
        return partial(self.sample, rng)

    def scaled(self, factor: float) -> Distribution:
        """The same shape with every draw multiplied by `factor` (> 0)."""
        return Scaled(self, require_number("factor", factor, positive=True))

    @property
    def variance(self) -> float:
        return self.second_moment - self.mean**2

    @property
    def scv(self) -> float:
        """Squared coefficient of variation: variance / mean**2 (1 for exponential)."""
        return self.variance / self.mean**2 if self.mean else 0.0


@dataclass(frozen=True)
class Constant(Distribution):
    """Always the same duration."""

    value: float

    def __post_init__(self):
        object.__setattr__(
            self, "value", require_number("constant duration", self.value, minimum=0.0))

    @property
    def mean(self) -> float:
        return self.value

    @property
    def second_moment(self) -> float:
        return self.value**2

    def sample(self, rng: random.Random) -> float:
        return self.value

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        value = self.value
        return lambda: value


@dataclass(frozen=True)
class Uniform(Distribution):
    """Equally likely anywhere in [low, high]."""

    low: float
    high: float

    def __post_init__(self):
        require_number("low", self.low, minimum=0.0)
        require_number("high", self.high, minimum=0.0)
        if self.high < self.low:
            raise ConfigError(
                f"uniform needs low <= high, got {self.low} > {self.high}")

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def second_moment(self) -> float:
        lo, hi = self.low, self.high
        return (lo * lo + lo * hi + hi * hi) / 3

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        # random.uniform's own arithmetic, a + (b - a) * U, in one frame: the
        # same draws, bit for bit (the network draws one per message).
        uniform, low, width = rng.random, self.low, self.high - self.low

        def draw() -> float:
            return low + width * uniform()
        return draw


@dataclass(frozen=True)
class Exponential(Distribution):
    """Memoryless durations with the given mean (Poisson arrivals, M/M/c service)."""

    mean_value: float

    def __post_init__(self):
        require_number("mean", self.mean_value, positive=True)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def second_moment(self) -> float:
        return 2 * self.mean_value**2

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean_value)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        # random.expovariate's own arithmetic, -log(1 - U) / rate, in one frame:
        # the same draws, bit for bit, without its method and global lookups.
        uniform, rate = rng.random, 1.0 / self.mean_value

        def draw() -> float:
            return -log(1.0 - uniform()) / rate
        return draw


@dataclass(frozen=True)
class LogNormal(Distribution):
    """A right-skewed duration given by its median and 99th percentile.

    Real network and service latencies look like this: most requests near the
    median, a long tail. sigma = ln(p99 / median) / z_0.99.
    """

    median: float
    p99: float

    def __post_init__(self):
        require_number("median", self.median, positive=True)
        require_number("p99", self.p99, positive=True)
        if self.p99 < self.median:
            raise ConfigError(
                f"lognormal needs p99 >= median, got p99={self.p99} "
                f"< median={self.median}")

    @property
    def mu(self) -> float:
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        return math.log(self.p99 / self.median) / _Z99

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)

    @property
    def second_moment(self) -> float:
        return self.median**2 * math.exp(2 * self.sigma**2)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        return partial(rng.lognormvariate, self.mu, self.sigma)


@dataclass(frozen=True)
class Bimodal(Distribution):
    """Mostly `fast`, but a fraction `slow_fraction` of draws come from `slow`.

    The shape of a service where a few requests (cache misses, big scans) are
    far slower than the rest.
    """

    fast: Distribution
    slow: Distribution
    slow_fraction: float

    def __post_init__(self):
        require_probability("slow_fraction", self.slow_fraction)
        for name in ("fast", "slow"):
            if not isinstance(getattr(self, name), Distribution):
                raise ConfigError(f"bimodal {name} must be a Distribution")

    @property
    def mean(self) -> float:
        p = self.slow_fraction
        return (1 - p) * self.fast.mean + p * self.slow.mean

    @property
    def second_moment(self) -> float:
        p = self.slow_fraction
        return (1 - p) * self.fast.second_moment + p * self.slow.second_moment

    def sample(self, rng: random.Random) -> float:
        branch = self.slow if rng.random() < self.slow_fraction else self.fast
        return branch.sample(rng)


@dataclass(frozen=True)
class Scaled(Distribution):
    """`base` with every draw multiplied by `factor` (a slower or faster server)."""

    base: Distribution
    factor: float

    @property
    def mean(self) -> float:
        return self.base.mean * self.factor

    @property
    def second_moment(self) -> float:
        return self.base.second_moment * self.factor**2

    def sample(self, rng: random.Random) -> float:
        return self.base.sample(rng) * self.factor


def constant(value: float) -> Constant:
    """A fixed duration."""
    return Constant(value)


def uniform(low: float, high: float) -> Uniform:
    """A duration uniform on [low, high]."""
    return Uniform(low, high)


def exponential(mean: float) -> Exponential:
    """An exponential duration with the given mean."""
    return Exponential(mean)


def lognormal(median: float, p99: float) -> LogNormal:
    """A lognormal duration with the given median and 99th percentile."""
    return LogNormal(median, p99)


def bimodal(fast: float | Distribution, slow: float | Distribution,
            slow_fraction: float) -> Bimodal:
    """A mix: `fast` usually, `slow` with probability `slow_fraction`."""
    return Bimodal(as_distribution(fast, "fast"), as_distribution(slow, "slow"),
                   slow_fraction)


def as_distribution(value: float | Distribution,
                    name: str = "duration") -> Distribution:
    """Accept a Distribution, or a number meaning a constant duration."""
    if isinstance(value, Distribution):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{name} must be a number of seconds or a labkit.dist distribution "
            f"(constant, uniform, exponential, lognormal, bimodal), got {value!r}")
    return Constant(require_number(name, value, minimum=0.0))
