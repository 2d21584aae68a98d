"""The balancer's consistent-hash ring, and two measurements of it.

`HashRing` is `labkit.hashring.HashRing` with the balancer's defaults: servers
are indices 0..n-1, each owning `vnodes` points named "server-<i>#<v>" and
hashed with BLAKE2b, and integer request keys are spread with splitmix64
(`blake2b_hash`). `key_movement` counts the keys that move when a server joins
or leaves (ring against modulo hashing); `imbalance` is the ring's peak-to-mean
load for a number of virtual nodes.
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit import hashring
from labkit.errors import require_int
from labkit.hashring import blake2b_hash, mix64


class HashRing(hashring.HashRing):
    """A hash ring of server indices, as the balancer builds it: `vnodes`
    points per server named "server-<i>#<v>", positions from `blake2b_hash`.
    Only the defaults differ from `labkit.hashring.HashRing` (SHA-256 of
    "<name>#<v>", 64 points), which the store uses."""

    def __init__(self, servers: Iterable[int] = (), vnodes: int = 100):
        super().__init__(servers, vnodes, position=blake2b_hash,
                         label="server-{server}#{vnode}")


def key_movement(servers: int = 10, keys: int = 100_000,
                 vnodes: int = 100) -> dict[str, float]:
    """The fraction of keys 0..keys-1 that change server when one server joins
    a fleet of `servers`, and when one leaves it: on a hash ring, and with
    plain modulo hashing (hash(key) mod number of servers)."""
    servers = require_int("servers", servers, minimum=2)
    ring = HashRing(range(servers), vnodes)
    keys = range(require_int("keys", keys, minimum=1))
    before = [ring.owner(k) for k in keys]
    ring.add(servers)
    joined = [ring.owner(k) for k in keys]
    ring.remove(servers)
    ring.remove(servers - 1)
    left = [ring.owner(k) for k in keys]

    def modulo(n: int) -> list[int]:
        return [mix64(k) % n for k in keys]

    def moved(a: list[int], b: list[int]) -> float:
        return sum(x != y for x, y in zip(a, b, strict=True)) / len(keys)

    return {"ring, one joins": moved(before, joined),
            "ring, one leaves": moved(before, left),
            "modulo, one joins": moved(modulo(servers), modulo(servers + 1)),
            "modulo, one leaves": moved(modulo(servers), modulo(servers - 1))}


def imbalance(servers: int, vnodes: int, rings: int = 20) -> float:
    """Peak-to-mean load of a hash ring: the largest server's share of the
    circle times the number of servers (1 is perfectly even), averaged over
    `rings` rings whose servers have different names."""
    servers = require_int("servers", servers, minimum=1)
    rings = require_int("rings", rings, minimum=1)
    peaks = [max(HashRing(range(r * servers, (r + 1) * servers), vnodes)
                 .shares().values()) for r in range(rings)]
    return sum(peaks) / rings * servers
