"""Load-balancing policies: the `View` a policy reads, the `Policy` base class
with its one decision method `choose(view)`, and the built-in policies
(round robin, random, weighted, least outstanding, stale least loaded, power
of d choices, consistent hashing), registered by name in `POLICIES`.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence

from labkit.errors import ConfigError, require_int

from .ring import HashRing


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
    #: Whether `choose` reads `view.key`. The engines draw a key per request
    #: only for policies that do (keys come from their own stream, so skipping
    #: them changes no other draw); the built-ins say False unless they hash.
    reads_key = True

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
    reads_key = False

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
    reads_key = False

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
    reads_key = False

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
    reads_key = False

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
    reads_key = False
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
    reads_key = False

    def __init__(self, d: int = 2):
        self.d = require_int("d", d, minimum=1)

    def choose(self, view: View) -> int:
        live, loads, draw = view.live, view.reported, view.rng.random
        m = len(live)
        best = live[int(draw() * m)]
        if self.d == 2:             # the common case, without the loop
            other = live[int(draw() * m)]
            return other if loads[other] < loads[best] else best
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
