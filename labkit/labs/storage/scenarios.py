"""The quorum lab's graded scenarios: writes and reads of a few keys while
replicas crash, restart and drop off the network, on a network with 5-15 ms
of jitter that may lose, duplicate and reorder messages.

Each runs the student's client in a `QuorumKV` with R + W > N, whose referee
(see `base.Referee`) checks every put on the wire and every write's acks. A
scenario adds what the referee cannot see: a read that began after a write
was acknowledged returns that write or a newer one; an operation that cannot
reach W (or R) replicas fails with Unavailable rather than answering, and
one that can returns with the first W (or R) answers, not waiting for a
replica that is down; and after reads, read repair brings every live replica
of the key to the newest version. It raises `Failed` with the reason.
Randomness comes from the store's own seeded streams, so `lk.labs.replay`
replays a run exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from labkit import dist
from labkit.errors import Unavailable
from labkit.net import NetConfig
from labkit.storage import QuorumKV

from ..lab import Failed, Trial
from .base import Referee

LATENCY = dist.uniform(0.005, 0.015)
KEYS = ("apple", "banana", "cherry")
SLOW = dist.constant(0.1)    # a link that answers after everyone else's
WITHIN = 3.0                 # seconds an operation may take before it must end


class Store:
    """The student's client in a QuorumKV, its referee, and what the grader
    knows: per key the newest version a put returned."""

    def __init__(self, t: Trial, nodes: int = 5, r: int = 2, w: int = 2,
                 **net: Any):
        self.kv = t.watch(QuorumKV(nodes, n=3, r=r, w=w, seed=t.seed,
                                   coordinator=t.impl,
                                   net=NetConfig(latency=LATENCY, **net)))
        self.referee = Referee(self.kv)
        self.referee.watch(self.kv)
        self.acked: dict[str, int] = {}
        self.writes = 0
        self.rng = self.kv.sim.rng("lab.storage")

    def spawn(self, gen: Any, what: str) -> Any:
        """Start one client operation, a generator of the student's put or get."""
        if not inspect.isgenerator(gen):
            method = "put" if "write" in what else "get"
            raise Failed(f"{what}: {type(self.kv.coordinator).__name__}.{method} "
                         f"returned {gen!r}, not a generator: {method} must yield "
                         "the Futures it waits for (yield first(...)), so that it "
                         "is a generator function")
        return self.kv.coordinator.spawn(gen)

    def run(self, gen: Any, what: str) -> Any:
        """Run one client operation to its end; raise Unavailable if it failed."""
        kv = self.kv
        process = self.spawn(gen, what)
        end = kv.now + WITHIN
        while not process.done:
            if kv.now >= end:
                raise Failed(f"{what} neither returned nor failed within "
                             f"{WITHIN:g} s: an operation must end, with Unavailable "
                             "if W (or R) answers cannot come")
            kv.run(0.01)
        return process.value

    def put(self, key: str, must: bool = False) -> int | None:
        self.writes += 1
        value = f"{key}#{self.writes}"
        try:
            version = self.run(self.kv.coordinator.put(key, value),
                               f"the write of {value!r}")
        except Unavailable:
            if must:
                raise Failed(f"the write of {value!r} failed {self.with_up(key)}: "
                             f"with W = {self.kv.w} owners up a write must succeed; "
                             "send the put to all N owners and return after the "
                             "first W acks") from None
            return None
        self.returned(key, value, version)
        return version

    def returned(self, key: str, value: Any, version: Any) -> None:
        """A put of `value` returned `version`: the referee checks it, and later
        reads must see it."""
        self.referee.acknowledged(key, version, value)
        self.acked[key] = max(self.acked.get(key, 0), version)

    def get(self, key: str, must: bool = False) -> Any:
        floor, asked = self.acked.get(key, 0), len(self.referee.asked)
        try:
            value = self.run(self.kv.coordinator.get(key), f"a read of {key!r}")
        except Unavailable:
            if must:
                raise Failed(f"a read of {key!r} failed {self.with_up(key)}: with "
                             f"R = {self.kv.r} owners up a read must succeed; ask "
                             "all N owners and return after the first R answers"
                             ) from None
            return None
        version = self.referee.version_of(key, value)
        if version is None:
            raise Failed(f"a read of {key!r} returned {value!r}, which no write "
                         "wrote")
        if version < floor:
            twice = sorted({r for r in self.referee.asked[asked:]
                            if self.referee.asked[asked:].count(r) > 1})
            cause = (f"; it asked {' and '.join(twice)} more than once: the R "
                     "answers must come from R distinct replicas" if twice else "")
            raise Failed(f"stale read: a read of {key!r} returned version {version} "
                         f"({value!r}) after version {floor} was acknowledged; with "
                         "R + W > N every read quorum meets every write quorum, so "
                         f"the newest of the R answers is at least that "
                         f"version{cause}")
        return value

    def quick(self, op: str, key: str, start: float) -> None:
        """`op` of `key`, begun at `start`, returned while one of the key's owners
        was down: it must have returned with the first W (or R) answers, not after
        the down owner's call timed out."""
        took, timeout = self.kv.now - start, self.kv.timeout
        if took >= timeout / 2:
            what, first = (("write", "first W acks") if op == "put"
                           else ("read", "first R answers"))
            raise Failed(f"slow quorum: a {what} of {key!r} took {took:.2f} s "
                         f"{self.with_up(key)}; a call to the down owner times "
                         f"out after {timeout:g} s: return after the {first}, "
                         "not once every call has answered or timed out; a "
                         "quorum of W (or R) is there so that one slow or dead "
                         "replica does not slow every operation")

    def two_owners_down(self, key: str) -> list[str]:
        """Write `key`, then crash two of its three owners: a write must now
        fail with Unavailable. The two owners down."""
        self.put(key, must=True)
        down = self.owners(key)[:2]
        for o in down:
            self.kv.kill(o)
        self.unavailable("put", key)
        return down

    def with_up(self, key: str) -> str:
        """Which of `key`'s owners are up, in words, for a failure message."""
        down = [o for o in self.owners(key) if not self.kv.is_up(o)]
        if not down:
            return "with every fault healed"
        return (f"with {self.kv.n - len(down)} of its {self.kv.n} owners up "
                f"({', '.join(down)} down)")

    def together(self, ops: list[tuple[Any, str]]) -> list[Any]:
        """Start several client operations at once and run until all have ended;
        their results in order (an exception for one that failed)."""
        kv = self.kv
        processes = [(self.spawn(gen, what), what) for gen, what in ops]
        end = kv.now + WITHIN
        while not all(p.done for p, _ in processes):
            if kv.now >= end:
                what = next(w for p, w in processes if not p.done)
                raise Failed(f"{what} neither returned nor failed within "
                             f"{WITHIN:g} s: an operation must end, with Unavailable "
                             "if W (or R) answers cannot come")
            kv.run(0.01)
        for p, what in processes:
            if p.failed:
                raise Failed(f"{what} failed with every fault healed: {p.error}")
        return [p.value for p, _ in processes]

    def unavailable(self, op: str, key: str) -> None:
        """`op` of `key` must fail: too few of its replicas are up."""
        up = [o for o in self.owners(key) if self.kv.is_up(o)]
        try:
            if op == "put":
                self.writes += 1
                self.run(self.kv.coordinator.put(key, f"{key}#{self.writes}"),
                         f"a write of {key!r}")
            else:
                self.run(self.kv.coordinator.get(key), f"a read of {key!r}")
        except Unavailable:
            return
        need = self.kv.w if op == "put" else self.kv.r
        raise Failed(f"no quorum: a {op} of {key!r} succeeded with only "
                     f"{len(up)} of its replicas up, fewer than the {need} it needs; "
                     "it must fail with Unavailable instead")

    def owners(self, key: str) -> list[str]:
        return self.kv.ring.owners(key, self.kv.n)

    def heal(self) -> None:
        kv = self.kv
        kv.heal()
        kv.network.update(loss=0.0, duplicate=0.0, reorder=0.0)
        for name in kv.names:
            if not kv.is_up(name):
                kv.restart(name)

    def converged(self) -> None:
        """Heal, read every key, wait for read repair: every replica of a key
        must hold its newest version, with the value that version wrote."""
        self.heal()
        self.read_repaired(KEYS)

    def read_repaired(self, keys: tuple[str, ...]) -> None:
        """With every replica up, read each of `keys` once and wait for read
        repair: every replica of a key must then hold its newest version, with
        the value that version wrote."""
        asked = {}
        for key in keys:
            start = len(self.referee.asked)
            self.get(key, must=True)
            asked[key] = set(self.referee.asked[start:])
        self.kv.run(2 * self.kv.timeout)
        for key in keys:
            disks = {o: self.kv.nodes[o].disk["data"].get(key, (0, None))
                     for o in self.owners(key)}
            newest = max(v for v, _ in disks.values())
            stale = sorted(o for o, (v, _) in disks.items() if v < newest)
            if stale:
                unasked = [o for o in self.owners(key) if o not in asked[key]]
                cause = (f"; the read never asked {', '.join(unasked)}: ask all N "
                         "owners, so that repair hears from each"
                         if unasked else "")
                raise Failed(f"no read repair: after a read of {key!r} with every "
                             f"replica up, {', '.join(stale)} still "
                             f"hold{'s' if len(stale) == 1 else ''} an older "
                             f"version than {newest}; read repair must send the "
                             f"newest answer to replicas that answered older "
                             f"ones{cause}")
            for o, (v, value) in disks.items():
                if v and self.referee.written.get((key, v)) != value:
                    raise Failed(f"read repair: {o} holds {value!r} as version {v} "
                                 f"of {key!r}, which wrote "
                                 f"{self.referee.written.get((key, v))!r}")

    def crash(self, victim: str) -> Callable[[], None]:
        """Crash `victim`; returns how to restart it."""
        self.kv.kill(victim)
        return lambda: self.kv.restart(victim)

    def cut(self, victim: str) -> Callable[[], None]:
        """Cut `victim` off the network; returns how to reconnect it."""
        self.kv.disconnect(victim)
        return lambda: self.kv.connect(victim)

    def churn(self, rounds: int, fault: Callable[[str], Callable[[], None]]) -> None:
        """`rounds` times: apply `fault` to a random owner of a random key, write
        and read keys, then undo it."""
        for _ in range(rounds):
            key = self.rng.choice(KEYS)
            victim = self.rng.choice(self.owners(key))
            undo = fault(victim)
            for _ in range(2):
                self.put(self.rng.choice(KEYS))
            undo()
            for k in KEYS:
                self.get(k)


def read_your_writes(t: Trial) -> None:
    """No faults, N=3, R=W=2: every write succeeds and every read sees the last
    one; replicas agree."""
    s = Store(t)
    for i in range(12):
        key = KEYS[i % len(KEYS)]
        s.put(key, must=True)
        s.get(KEYS[(i * 2) % len(KEYS)], must=True)
    s.converged()


def replica_crashes(t: Trial) -> None:
    """One owner crashes while keys are written, then restarts with a stale disk:
    reads must see the newest write and repair it."""
    s = Store(t)

    s.churn(6, s.crash)
    s.converged()


def partitioned_replica(t: Trial) -> None:
    """One owner is cut off from the client while keys are written, then
    reconnects."""
    s = Store(t)

    s.churn(6, s.cut)
    s.converged()


def write_all_read_one(t: Trial) -> None:
    """N=3, W=3, R=1 with replicas crashing: a write needs every owner, a read
    any one."""
    s = Store(t, r=1, w=3)

    s.churn(5, s.crash)
    s.converged()


def unreliable_network(t: Trial) -> None:
    """The network loses, duplicates and reorders 10-20% of messages and owners
    crash: operations may fail, but never answer wrong."""
    s = Store(t, loss=0.1, duplicate=0.2, reorder=0.2)

    s.churn(6, s.crash)
    s.converged()


def concurrent_writes(t: Trial) -> None:
    """Two writes of one key at once, then two of two keys, then three: each
    returns the version it sent, and reads see the newest."""
    s = Store(t)
    for keys in ([KEYS[0], KEYS[0]], [KEYS[1], KEYS[2]], list(KEYS)):
        writes = []
        for key in keys:
            s.writes += 1
            writes.append((key, f"{key}#{s.writes}"))
        versions = s.together([(s.kv.coordinator.put(key, value),
                                f"the write of {value!r}") for key, value in writes])
        for (key, value), version in zip(writes, versions, strict=True):
            s.returned(key, value, version)
        for key in sorted(set(keys)):
            s.get(key, must=True)
    s.converged()


def stale_owner_answers_first(t: Trial) -> None:
    """An owner misses a write while down, comes back, and answers a read first
    (the other two are slow): the read still returns the write."""
    s = Store(t)
    key = KEYS[0]
    s.put(key, must=True)
    stale, *others = s.owners(key)
    restart = s.crash(stale)
    s.put(key, must=True)
    restart()
    for o in others:
        s.kv.network.set_link(o, s.kv.coordinator.name, latency=SLOW)
    s.get(key, must=True)
    for o in others:
        s.kv.network.clear_link(o, s.kv.coordinator.name)
    s.converged()


def no_quorum(t: Trial) -> None:
    """Two of a key's three owners are down: writes and reads fail with
    Unavailable; once one returns, both succeed, with the first W (or R)
    answers, not waiting for the owner still down."""
    s = Store(t)
    key = KEYS[0]
    down = s.two_owners_down(key)
    s.unavailable("get", key)
    s.kv.restart(down[0])
    start = s.kv.now
    s.put(key, must=True)
    s.quick("put", key, start)
    start = s.kv.now
    s.get(key, must=True)
    s.quick("get", key, start)
    s.converged()


def two_stale_owners(t: Trial) -> None:
    """A write fails for want of a quorum (two of a key's three owners are down)
    but reaches the third; the two come back with the older version: one read's
    repair must bring both up, every replica that answered an older version."""
    s = Store(t)
    key = KEYS[0]
    for o in s.two_owners_down(key):
        s.kv.restart(o)
    s.read_repaired((key,))
