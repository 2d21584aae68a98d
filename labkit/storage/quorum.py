"""A Dynamo-style quorum key-value store: `QuorumReplica` nodes (replica.py's
`Replica` on the store's ring, with anti-entropy) keep key -> (version, value),
the `Coordinator` (the client library) sends each put and get to a key's
replicas and counts answers, and `QuorumKV` is the facade with N, R, W, read
repair and anti-entropy.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from labkit.errors import ConfigError, checked, require_int, require_number
from labkit.hashring import HashRing
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node
from labkit.sim import Future, finish, first, settled
from labkit.storage.anti_entropy import _leaf, check_depth, merkle, merkle_diff
from labkit.storage.replica import Replica, read_repair
from labkit.storage.staleness import WARS, check_wars


class QuorumReplica(Replica):
    """One node of a `QuorumKV`: a `Replica` whose keys live where the store's
    ring puts them, with the store's WARS `delays`; with `anti_entropy` seconds
    it compares a Merkle tree with a random peer that often."""

    def __init__(self, name: str, net: Network, kv: QuorumKV):
        self.kv = kv
        super().__init__(name, net, kv.delays)

    def reset(self) -> None:
        super().reset()
        kv = self.kv
        # With no peer (a one-node store) anti-entropy has nothing to compare.
        if kv.anti_entropy is not None and len(kv.replicas) > 1:
            self.rng = self.sim.rng(f"entropy.{self.name}")
            self.set_timer("entropy", self.rng.uniform(0, kv.anti_entropy),
                           self.start_sync)

    def owners(self, key: str) -> list[str]:
        return self.kv.ring.owners(key, self.kv.n)

    # -- anti-entropy (Dynamo §4.7) ----------------------------------------------------
    def start_sync(self) -> None:
        peer = self.rng.choice([p for p in self.kv.replicas if p != self.name])
        self.send(peer, "sync", tree=merkle(self.shared(peer), self.kv.depth))
        self.set_timer("entropy", self.kv.anti_entropy, self.start_sync)

    def on_sync(self, msg: Message) -> None:
        """A peer's tree: answer with our entries in the leaves that differ."""
        kv, mine = self.kv, self.shared(msg.src)
        leaves, compared = merkle_diff(msg.tree, merkle(mine, kv.depth))
        self.sim.metrics.counter("entropy.hashes").inc(compared)
        wanted = set(leaves)
        entries = tuple((k, *v) for k, v in sorted(mine.items())
                        if _leaf(k, kv.depth) in wanted)
        if leaves:
            self.send(msg.src, "sync_entries", leaves=tuple(leaves), entries=entries)

    def on_sync_entries(self, msg: Message) -> None:
        """Take the newer of each entry, and send back ours where they differ."""
        self.take(msg)
        mine = self.shared(msg.src)
        theirs = {k: version for k, version, _ in msg.entries}
        wanted = set(msg.leaves)
        back = tuple((k, *v) for k, v in sorted(mine.items())
                     if _leaf(k, self.kv.depth) in wanted and theirs.get(k) != v[0])
        self.send(msg.src, "sync_back", entries=back)

    def on_sync_back(self, msg: Message) -> None:
        self.take(msg)

    def take(self, msg: Message) -> None:
        self.sim.metrics.counter("entropy.entries").inc(len(msg.entries))
        self.absorb(msg.entries)


class Coordinator(Node):
    """The client library of the quorum store (Dynamo's partition-aware client):
    it numbers writes, sends them to the key's replicas and counts answers.
    Outside partitions, never crashed.

    fanout "all": a write goes to all N replicas and returns after W acks; a read
    asks all N and returns the newest of the first R answers, then repairs the
    replicas that answered with older versions (read repair). fanout "quorum":
    exactly W (or R) replicas chosen at random are asked, nothing else: the
    random partial quorums of Bailis et al.'s closed form.
    """

    def __init__(self, name: str, net: Network, kv: QuorumKV):
        self.kv = kv
        self.version = 0
        self.acked: dict[str, int] = {}    # key -> newest version a put returned
        super().__init__(name, net)
        net.keep_outside_partitions(name)
        self.rng = self.sim.rng("quorum.coordinator")

    def targets(self, key: str, needed: int) -> list[str]:
        owners = self.kv.ring.owners(key, self.kv.n)
        if self.kv.fanout == "quorum":
            return self.rng.sample(owners, needed)
        return owners

    def put(self, key: str, value: Any) -> Generator:
        kv = self.kv
        self.version += 1
        version, start = self.version, self.sim.now
        asked = [self.call(t, "put", kv.timeout, key=key, version=version,
                           value=value) for t in self.targets(key, kv.w)]
        yield first(asked, kv.w, f"a write of {key!r}")
        self.acked[key] = max(self.acked.get(key, 0), version)
        self.sim.metrics.histogram("put.latency").add(self.sim.now - start)
        return version

    def get(self, key: str) -> Generator:
        kv, metrics = self.kv, self.sim.metrics
        start, latest = self.sim.now, self.acked.get(key, 0)
        targets = self.targets(key, kv.r)
        asked = [self.call(t, "get", kv.timeout, key=key) for t in targets]
        replies = yield first(asked, kv.r, f"a read of {key!r}")
        newest = max(replies, key=lambda m: m.version)
        version, value = newest.version, newest.value
        metrics.histogram("get.latency").add(self.sim.now - start)
        metrics.counter("reads").inc()
        metrics.counter("reads.stale").inc(version < latest)
        if kv.fanout == "all" and kv.read_repair:
            settled(asked).add_done_callback(
                lambda _f: self.repair(key, targets, asked))
        return value

    def repair(self, key: str, targets: list[str], asked: list[Future]) -> None:
        """Read repair, once every answer is in (or timed out): send the newest
        version any replica answered to the replicas that answered older ones."""
        answers = [(t, f.value.version, f.value.value)
                   for t, f in zip(targets, asked, strict=True) if not f.failed]
        version, value, behind = read_repair(answers)
        for target in behind:
            self.sim.metrics.counter("read_repairs").inc()
            self.send(target, "put", key=key, version=version, value=value)

    def on_put_ok(self, msg: Message) -> None:
        """An ack of a read repair (sent without waiting for it)."""


FANOUTS = ("all", "quorum")


class QuorumKV(Cluster):
    """A Dynamo-style key-value store: each key lives on the first N replicas of
    its preference list (a `HashRing`); a put returns after W acks, a get after R
    answers. R + W > N makes every read quorum meet every write quorum; smaller
    quorums answer sooner and may return stale data, which read repair and
    anti-entropy (Merkle-tree comparison every `anti_entropy` seconds) fix later.

    `put`/`get` run one operation to completion; `coordinator.put/get` are the
    generator versions for concurrent workloads. fanout: see `Coordinator`.
    delays: a WARS tuple of per-replica delays (use it with a zero-latency net).
    coordinator: the client library's class (a `Coordinator` subclass, e.g. a
    lab answer).
    """

    @checked
    def __init__(self, nodes: int = 3, *, n: int = 3, r: int = 1, w: int = 1,
                 seed: int = 0, fanout: str = "all", read_repair: bool = True,
                 anti_entropy: float | None = None, delays: WARS | None = None,
                 depth: int = 6, vnodes: int = 64, timeout: float = 0.5,
                 net: NetConfig | None = None, trace: bool = True,
                 coordinator: type[Coordinator] = Coordinator):
        nodes = require_int("nodes", nodes, minimum=1)
        self.n = require_int("n", n, minimum=1)
        if n > nodes:
            raise ConfigError(f"n ({n}) cannot exceed the number of nodes ({nodes})")
        self.r, self.w = require_int("r", r, minimum=1), require_int("w", w, minimum=1)
        if r > n or w > n:
            raise ConfigError(f"r and w must be between 1 and n = {n}, got r={r}, "
                              f"w={w}")
        if fanout not in FANOUTS:
            raise ConfigError(f"fanout must be one of {FANOUTS}, got {fanout!r}")
        if not isinstance(read_repair, bool):
            raise ConfigError(f"read_repair must be True or False, got "
                              f"{read_repair!r}")
        if delays is not None:
            if not isinstance(delays, WARS):
                raise ConfigError(f"delays must be a storage.WARS tuple, got "
                                  f"{delays!r}")
            delays = check_wars(delays)        # a number: a constant delay
        self.fanout, self.read_repair, self.delays = fanout, read_repair, delays
        if not (isinstance(coordinator, type) and issubclass(coordinator, Coordinator)):
            raise ConfigError(f"coordinator must be a class: labkit.storage."
                              f"Coordinator or a subclass of it, got {coordinator!r}")
        self.anti_entropy = None if anti_entropy is None else require_number(
            "anti_entropy", anti_entropy, positive=True)
        self.depth = check_depth(depth, minimum=1)
        self.timeout = require_number("timeout", timeout, positive=True)
        self.replicas = [f"r{i}" for i in range(1, nodes + 1)]
        self.ring = HashRing(self.replicas, vnodes=vnodes)
        super().__init__(names=self.replicas, seed=seed, net=net, trace=trace,
                         node_factory=lambda name, network: QuorumReplica(
                             name, network, self))
        self.coordinator = coordinator("client", self.network, self)

    def put(self, key: str, value: Any) -> int:
        """Write `value` under `key`; returns its version. Unavailable if fewer
        than W replicas answer within `timeout`."""
        return finish(self.sim, self.coordinator.spawn(
            self.coordinator.put(_key(key), value)), self.timeout).value

    def get(self, key: str) -> Any:
        """The newest value among the first R answers (None if none has the key)."""
        return finish(self.sim, self.coordinator.spawn(
            self.coordinator.get(_key(key))), self.timeout).value

    def versions(self, key: str) -> dict[str, int]:
        """The version of `key` on each replica's disk (0: missing)."""
        key = _key(key)
        return {name: self.nodes[name].version(key) for name in self.replicas}

    def __repr__(self) -> str:
        return (f"QuorumKV({len(self.replicas)} nodes, N={self.n}, R={self.r}, "
                f"W={self.w}, fanout={self.fanout}, up={self.up()}, t={self.now:g}s)")


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"a key must be a non-empty str, got {key!r}")
    return key
