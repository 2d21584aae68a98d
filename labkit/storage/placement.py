"""Where a chunk's copies go, and how much moves when the servers change.

Placement is consistent hashing with virtual nodes (`labkit.hashring.HashRing`):
a chunk's replicas go to the first `replication` servers clockwise of its hash
(its preference list). `modulo_owners` is the naive hash-mod-N placement it is
compared with, and `moved_share` measures what a change of servers moves.
`Placement` writes one chunk to its preference list, replacing a server that
fails by the next one on the ring (a sloppy quorum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from labkit import hashring
from labkit.errors import ConfigError, Unavailable, require_int
from labkit.node import Node
from labkit.sim import Future


def modulo_owners(key: str, servers: Sequence[str], n: int) -> list[str]:
    """Naive placement for comparison: server number hash(key) mod N, then the
    next n - 1 in the list. Changing N reshuffles almost every key."""
    if isinstance(servers, str | bytes) or not isinstance(servers, Sequence) \
            or not servers:
        raise ConfigError(f"servers must be a non-empty list of server names, got "
                          f"{servers!r}")
    require_int("n", n, minimum=1)
    first = hashring.key_hash(key) % len(servers)
    return [servers[(first + k) % len(servers)] for k in range(min(n, len(servers)))]


def moved_share(keys: Iterable[str], before: Callable[[str], Sequence[str]],
                after: Callable[[str], Sequence[str]]) -> float:
    """The share of replica placements that change between two placement
    functions (key -> servers): the data a cluster must copy when it changes."""
    moved = total = 0
    for key in keys:
        new = after(key)
        old = set(before(key))
        moved += sum(server not in old for server in new)
        total += len(new)
    return moved / total if total else 0.0


class Placement:
    """Writing one chunk: stores go to the first `replication` servers of its
    preference list; each one that fails is replaced by the next server on the
    ring (a sloppy quorum). `durable` resolves once `write_quorum` distinct
    servers hold the chunk, or fails if that cannot happen by the deadline; the
    writes go on in the background until `replication` servers hold it."""

    def __init__(self, gateway: Node, chunk: str, data: bytes, tag: int,
                 deadline: float):
        fs = gateway.fs
        self.gateway, self.fs, self.chunk, self.data, self.tag = (
            gateway, fs, chunk, data, tag)
        self.deadline = deadline
        self.walk = fs.ring.walk(chunk)
        self.next = self.inflight = 0
        self.holders: list[str] = []
        self.durable = Future()
        self.quorum_at = 0.0
        for _ in range(min(fs.replication, len(self.walk))):
            self._launch()

    def _launch(self) -> None:
        # Around the ring again if need be: a server may have come back.
        candidates = [s for s in self.walk if s not in self.holders]
        if candidates and self.gateway.sim.now < self.deadline:
            server = candidates[self.next % len(candidates)]
            self.next += 1
            self.inflight += 1
            self.gateway.call(server, "store", self.fs.rpc_timeout, chunk=self.chunk,
                              data=self.data, tag=self.tag).add_done_callback(
                lambda reply, s=server: self._answer(s, reply))
        elif self.inflight == 0 and not self.durable.done:
            self.durable.fail(Unavailable(
                f"only {len(self.holders)} of the {self.fs.write_quorum} servers "
                f"needed stored chunk {self.chunk[:12]} within {self.fs.timeout:g} s"))

    def _answer(self, server: str, reply: Future) -> None:
        self.inflight -= 1
        if reply.failed or not reply.value.ok:
            self._launch()
            return
        if server not in self.holders:
            self.holders.append(server)
        fs, now = self.fs, self.gateway.sim.now
        if len(self.holders) == fs.write_quorum:
            self.quorum_at = now
            self.durable.resolve(list(self.holders))
        if len(self.holders) == fs.replication:
            fs.sim.metrics.histogram("replication.lag").add(now - self.quorum_at)
        elif self.inflight < fs.replication - len(self.holders):
            self._launch()
