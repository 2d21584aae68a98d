"""Notebook 07's consistent hashing: how evenly a ring spreads keys over
servers as virtual nodes grow (`ring_balance`), how many placements a join
moves against modulo hashing (`join_moves`), and the janitor's rebalance of
stored files after a join (`rebalance`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit import storage
from labkit.errors import checked, require_int, require_items
from labkit.metrics import Metrics, Record, Result, keyed

from .files import FileSystem, file_contents


@checked
def ring_balance(seed: int = 0, *, servers: int = 10,
                 vnodes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
                 ) -> Result:
    """How evenly a consistent-hash ring splits the key space, by number of
    virtual nodes: the largest share times N (1 is perfect) and the relative
    spread (std / mean) of the shares, beside 1/sqrt(vnodes), the spread of a sum
    of vnodes independent gaps. Server names carry the seed."""
    seed = require_int("seed", seed)
    servers = require_int("servers", servers, minimum=2)
    vnodes = require_items("vnodes", vnodes, "number of virtual nodes")
    largest, spread = {}, {}
    for v in vnodes:
        shares = np.array(list(storage.HashRing(
            [f"seed{seed}-s{i}" for i in range(servers)], vnodes=v).shares().values()))
        largest[v] = float(shares.max() * servers)
        spread[v] = float(shares.std() / shares.mean())
    return Result("ring_balance", {"servers": servers, "vnodes": list(vnodes)}, seed,
                  Metrics(), data=RingBalance(
                      largest=largest, spread=spread,
                      theory={v: 1 / math.sqrt(v) for v in vnodes}))


@checked
def join_moves(seed: int = 0, *, sizes: Sequence[int] = (3, 4, 5, 6, 8, 10, 12, 16,
                                                          20),
               keys: int = 3000, replicas: int = 3, vnodes: int = 128) -> Result:
    """Share of replica placements that move when one server joins N servers:
    consistent hashing against 1/(N+1) (the newcomer's fair share), modulo
    hashing against its exact average over residues."""
    seed = require_int("seed", seed)           # it names the keys: no object reprs
    names = [f"seed{seed}-k{i}" for i in range(require_int("keys", keys, minimum=1))]
    replicas = require_int("replicas", replicas, minimum=1)
    sizes = [require_int("sizes entry", n, minimum=1)
             for n in require_items("sizes", sizes, "cluster size")]
    ring, modulo, fair, exact = {}, {}, {}, {}
    for n in sizes:
        servers = [f"s{i}" for i in range(1, n + 1)]
        bigger = [*servers, f"s{n + 1}"]
        before = storage.HashRing(servers, vnodes=vnodes)
        after = storage.HashRing(bigger, vnodes=vnodes)
        ring[n] = storage.moved_share(names, lambda k, b=before: b.owners(k, replicas),
                                      lambda k, a=after: a.owners(k, replicas))
        modulo[n] = storage.moved_share(
            names, lambda k, s=servers: storage.modulo_owners(k, s, replicas),
            lambda k, s=bigger: storage.modulo_owners(k, s, replicas))
        fair[n] = 1 / (n + 1)
        exact[n] = _modulo_theory(n, replicas)
    return Result("join_moves", {"sizes": list(sizes), "keys": keys,
                                 "replicas": replicas, "vnodes": vnodes}, seed,
                  Metrics(), data=JoinMoves(ring=ring, modulo=modulo, fair=fair,
                                            modulo_theory=exact))


def _modulo_theory(n: int, replicas: int) -> float:
    """Expected share of placements that move under modulo hashing from n to n+1
    servers: h mod n(n+1) fixes both residues, so average over all of them."""
    moved = 0
    for h in range(n * (n + 1)):
        old = {(h % n + k) % n for k in range(min(replicas, n))}
        new = [(h % (n + 1) + k) % (n + 1) for k in range(min(replicas, n + 1))]
        moved += sum(s not in old for s in new)
    return moved / (n * (n + 1) * min(replicas, n + 1))


@checked
def rebalance(seed: int = 7, *, nodes: int = 5, files: int = 40,
              size: int = 1000) -> Result:
    """Measured on the file system: `files` files on `nodes` servers, then one
    more server joins and the janitor moves what now belongs to it. Data: total
    bytes stored, bytes moved, what the ring predicts and the 1/(N+1) share."""
    fs = FileSystem(nodes, 3, seed=seed, chunk_size=128, repair_interval=0.2,
                    trace=False)
    for name, data in file_contents(seed, files, size).items():
        fs.upload(name, data)
    fs.run(1.0)
    chunks = fs.metadata.chunk_sizes(fs.chunk_size)
    before = {c: fs.ring.owners(c, 3) for c in chunks}
    total = sum(fs.stored_bytes().values())
    fs.add_server()
    fs.run(2.0)
    predicted = sum(size * sum(s not in before[c] for s in fs.ring.owners(c, 3))
                    for c, size in chunks.items())
    moved = fs.sim.metrics["bytes.rebalance"].value
    return Result("rebalance", {"nodes": nodes, "files": files, "size": size}, seed,
                  fs.sim.metrics, data=Rebalance(stored=total, moved=moved,
                                                 predicted=predicted,
                                                 fair=total / (nodes + 1),
                                                 after=fs.stored_bytes()))


# -- the records of this module's scenarios (see labkit.metrics.Record) -----------

@dataclass(frozen=True, kw_only=True)
class RingBalance(Record):
    """`ring_balance`'s data, each {vnodes: value}: the largest share times N,
    the spread (std / mean) of the shares, and 1/sqrt(vnodes)."""

    largest: dict[int, float]
    spread: dict[int, float]
    theory: dict[int, float]


@dataclass(frozen=True, kw_only=True)
class JoinMoves(Record):
    """`join_moves`' data, each {N: share of placements moved}: consistent
    hashing, modulo hashing, the fair 1/(N+1) and modulo's exact average."""

    ring: dict[int, float]
    modulo: dict[int, float]
    fair: dict[int, float]
    modulo_theory: dict[int, float] = keyed("modulo theory")


@dataclass(frozen=True, kw_only=True)
class Rebalance(Record):
    """`rebalance`'s data: bytes stored before the join, moved by the janitor,
    predicted by the ring, the newcomer's fair share, and bytes per server
    after."""

    stored: int
    moved: int
    predicted: int
    fair: float
    after: dict[str, int]
