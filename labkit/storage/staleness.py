"""How stale a partial-quorum read may be, without a simulation: Bailis et al.'s
closed form for random quorums (`stale_probability`) and a Monte Carlo of their
WARS delay model (`wars_consistency`), from "Probabilistically Bounded
Staleness for Practical Partial Quorums" (VLDB 2012).
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

from labkit.dist import Distribution, as_distribution
from labkit.errors import ConfigError, require_int, require_number


class WARS(NamedTuple):
    """Per-replica delays of Bailis et al.'s WARS model ("Probabilistically
    Bounded Staleness for Practical Partial Quorums", VLDB 2012, §5): the write
    reaching a replica, its ack returning, the read reaching it, its response
    returning. Each is a `labkit.dist` distribution, drawn independently, or a
    number of seconds meaning a constant delay (as `NetConfig(latency=...)`
    takes either)."""

    write: Distribution | float
    ack: Distribution | float
    read: Distribution | float
    response: Distribution | float


def check_wars(delays: WARS, name: str = "delays") -> WARS:
    """`delays` with each field a distribution (a number becomes a constant);
    ConfigError naming the field if it is neither."""
    if not isinstance(delays, WARS):
        raise ConfigError(f"{name} must be a WARS(write, ack, read, response) of "
                          f"labkit.dist distributions or seconds, got {delays!r}")
    return WARS(*(as_distribution(value, f"{name}.{field}")
                  for field, value in zip(WARS._fields, delays, strict=True)))


def _quorum(n: int, r: int, w: int) -> tuple[int, int, int]:
    """n, r and w checked: 1 <= r, w <= n."""
    n = require_int("n", n, minimum=1)
    r, w = require_int("r", r, minimum=1), require_int("w", w, minimum=1)
    if r > n or w > n:
        raise ConfigError(f"r and w must be at most n = {n}, got r={r}, w={w}")
    return n, r, w


def stale_probability(n: int, r: int, w: int, versions: int = 1) -> float:
    """Bailis et al.'s closed form for random partial quorums: the chance that a
    read of R of N replicas misses all of the last `versions` writes, each of
    which reached W random replicas: (C(N-W, R) / C(N, R)) ** versions."""
    n, r, w = _quorum(n, r, w)
    return (math.comb(n - w, r) / math.comb(n, r)) ** require_int(
        "versions", versions, minimum=1)


def wars_consistency(n: int, r: int, w: int, delays: WARS, t: float,
                     trials: int, seed: int = 0) -> float:
    """Monte Carlo of the WARS model without any simulation around it: the share
    of reads started t seconds after a write committed that return it. The write
    commits when the W-th ack arrives; replica i has it when the read arrives
    if W_i <= commit + t + R_i; the read returns the R fastest responses."""
    n, r, w = _quorum(n, r, w)
    delays = check_wars(delays)
    t = require_number("t", t, minimum=0.0)
    seed = require_int("seed", seed)
    rng = random.Random(f"wars:{seed}")
    draw = [d.sampler(rng) for d in delays]
    fresh = 0
    for _ in range(require_int("trials", trials, minimum=1)):
        wi, ai, ri, si = ([sample() for _ in range(n)] for sample in draw)
        commit = sorted(x + y for x, y in zip(wi, ai, strict=True))[w - 1]
        first = sorted(range(n), key=lambda j: ri[j] + si[j])[:r]
        fresh += any(wi[j] <= commit + t + ri[j] for j in first)
    return fresh / trials
