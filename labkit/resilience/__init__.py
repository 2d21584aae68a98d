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

Where each part lives: `backoff` (`Backoff`, `RetryBudget`), `breaker`
(`BreakerConfig` and its presets, `CircuitBreaker`, `AdaptiveThrottle`),
`backend` (what an attempt can come back with, `Fault`, `Backend`), `client`
(`Policy`, `Percentile`, `Client`), `simulation` (`simulate`, `summarize`)
and `experiments` (`contention`, `fanout`, `layered_retries`).
"""

from .backend import (
    DEFINITE,
    ERROR,
    FAULT_MODES,
    OK,
    OUTCOMES,
    OVERLOADED,
    REJECTED,
    RETRYABLE,
    SERVICE,
    THROTTLED,
    TIMEOUT,
    Backend,
    Fault,
    as_fault,
)
from .backoff import BACKOFF_STRATEGIES, Backoff, RetryBudget
from .breaker import (
    BREAKER_PRESETS,
    BREAKER_STATES,
    CLOSED,
    HALF_OPEN,
    OPEN,
    AdaptiveThrottle,
    BreakerConfig,
    CircuitBreaker,
    first_entry,
    hystrix,
    resilience4j,
    state_at,
)
from .client import Client, Percentile, Policy
from .experiments import FAST_LEAF, SLOW_LEAF, contention, fanout, layered_retries
from .simulation import simulate, summarize

__all__ = [
    "BACKOFF_STRATEGIES", "BREAKER_PRESETS", "BREAKER_STATES", "CLOSED", "DEFINITE",
    "ERROR", "FAST_LEAF", "FAULT_MODES", "HALF_OPEN", "OK", "OPEN", "OUTCOMES",
    "OVERLOADED", "REJECTED", "RETRYABLE", "SERVICE", "SLOW_LEAF", "THROTTLED",
    "TIMEOUT", "AdaptiveThrottle", "Backend", "Backoff", "BreakerConfig",
    "CircuitBreaker", "Client", "Fault", "Percentile", "Policy", "RetryBudget",
    "as_fault", "contention", "fanout", "first_entry", "hystrix", "layered_retries",
    "resilience4j", "simulate", "state_at", "summarize",
]
