"""Consistent hashing (一致性哈希) with virtual nodes (虚拟节点): the one hash ring
that the load balancer (`labkit.balancing`: request keys to servers) and the
store (`labkit.storage`: chunks and keys to replicas) both place things with.

Karger et al. 1997; DeCandia et al., "Dynamo", SOSP 2007, §4.2. Each server
owns `vnodes` pseudo-random points on a circle of 2**64 positions. A key
belongs to the servers met first walking clockwise from its own position, so a
joining server takes over only the keys that now fall to it (about 1/N of
them) and a leaving one hands over only its own.

Where a string lands on the circle (`position`) and how a virtual node is
named before it is hashed (`label`) are parameters, because the two topics
chose differently and their notebooks' numbers must not change: the store
hashes "s1#0" with SHA-256 (`key_hash`, the default); the balancer hashes
"server-0#0" with BLAKE2b and spreads integer request keys with splitmix64
(`blake2b_hash`). `stable_partition` is the plain hash(key) mod R that
MapReduce and the dataflow engine partition by. Beside the core: imports only
`labkit.errors`.
"""

from __future__ import annotations

import bisect
import hashlib
import numbers
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from labkit.errors import ConfigError, checked, require_int

Server = int | str          # an index 0, 1, ... or a name "s1", "r2", ...

_MASK = (1 << 64) - 1


def canonical(key: Any) -> Any:
    """`key` in a form whose repr is the same for all keys Python treats as
    equal: 1, 1.0, True and numpy's 1 are one dict key, so they must land in
    one partition (their reprs differ); a frozenset's elements in a fixed
    order (its repr follows the salted str hash)."""
    if type(key) is str or type(key) is int:   # most keys: already canonical
        return key
    if isinstance(key, tuple):
        return tuple(canonical(k) for k in key)
    if isinstance(key, frozenset):
        return ("frozenset", tuple(sorted(repr(canonical(k)) for k in key)))
    if isinstance(key, numbers.Integral):
        return int(key)
    if isinstance(key, numbers.Number):         # floats, Fraction, Decimal, complex
        return _plain_number(key)
    return key


def _plain_number(key: numbers.Number) -> Any:
    """The int or float equal to a number, if there is one (Decimal(1) == 1,
    Fraction(1, 2) == 0.5, complex(2, 0) == 2), else the number itself."""
    if isinstance(key, numbers.Complex) and not isinstance(key, numbers.Real):
        if key.imag != 0:
            return key
        key = key.real
    try:
        whole = int(key)
    except (OverflowError, ValueError):         # infinities, NaN
        whole = None
    if whole is not None and whole == key:
        return whole
    value = float(key)
    return value if value == key else key


def stable_partition(key: Any, partitions: int) -> int:
    """hash(key) mod `partitions`, with a hash that is the same in every process
    (Python's str hash is salted per process) and for equal keys."""
    return zlib.crc32(repr(canonical(key)).encode()) % partitions


def key_hash(key: str) -> int:
    """A key's position on the ring: the first 8 bytes of its SHA-256 as an int
    (the same in every process, unlike the built-in hash())."""
    if not isinstance(key, str):
        raise ConfigError(f"key must be a str, got {key!r}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer that is
    the same in every process (unlike the built-in hash of a str)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def blake2b_hash(key: int | str) -> int:
    """A position in [0, 2**64): an 8-byte BLAKE2b digest of a str, `mix64` of
    an int (so integer keys need no encoding)."""
    if isinstance(key, str):
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest())
    return mix64(key & _MASK)


class HashRing:
    """A circle of 2**64 positions on which each server owns `vnodes` points.

    Servers are indices (ints >= 0) or names (non-empty strs). `position(text)`
    puts a key or a point's label on the circle; point v of server s is
    `label.format(server=s, vnode=v)`. A key belongs to the first point
    strictly clockwise of its position (Dynamo's "first node with a position
    larger than the item's"); points that tie keep the order servers joined.
    `servers` lists the servers in the order they joined.
    """

    @checked
    def __init__(self, servers: Iterable[Server] = (), vnodes: int = 64, *,
                 position: Callable[[Any], int] = key_hash,
                 label: str = "{server}#{vnode}"):
        self.vnodes = require_int("vnodes", vnodes, minimum=1)
        self.position, self.label = position, label
        self.servers: list[Server] = []
        self._placed: dict[Server, list[int]] = {}     # server -> its points
        for server in servers:
            self._place(server)
        self._rebuild()

    def add(self, server: Server) -> None:
        """Put a server's virtual nodes on the ring."""
        self._place(server)
        self._rebuild()

    def remove(self, server: Server) -> None:
        """Take a server's virtual nodes off the ring."""
        if server not in self._placed:
            raise ConfigError(f"server {server!r} is not on the ring {self.servers}")
        self.servers.remove(server)
        del self._placed[server]
        self._rebuild()

    def _place(self, server: Server) -> None:
        if not ((isinstance(server, str) and server) or (
                isinstance(server, int) and not isinstance(server, bool)
                and server >= 0)):
            raise ConfigError(f"a server must be a non-empty name (str) or an index "
                              f"(int >= 0), got {server!r}")
        if server in self._placed:
            raise ConfigError(f"server {server!r} is already on the ring")
        self.servers.append(server)
        self._placed[server] = [self.position(self.label.format(server=server,
                                                                vnode=v))
                                for v in range(self.vnodes)]

    def _rebuild(self) -> None:
        # A stable sort by position: equal points stay in the order they joined.
        ring = sorted(((point, server) for server in self.servers
                       for point in self._placed[server]), key=itemgetter(0))
        self._points = [point for point, _ in ring]
        self._owners = [server for _, server in ring]

    def walk(self, key: Any, alive: Collection[Server] | None = None) -> list[Server]:
        """The preference list: every server (or every one in `alive`) once, in
        the order met walking clockwise from the key's position."""
        wanted = len(self.servers) if alive is None else len(alive)
        order: list[Server] = []
        start = bisect.bisect_right(self._points, self.position(key))
        owners, n = self._owners, len(self._owners)
        for k in range(n):
            server = owners[(start + k) % n]
            if server not in order and (alive is None or server in alive):
                order.append(server)
                if len(order) == wanted:
                    break
        return order

    def owners(self, key: Any, n: int,
               alive: Collection[Server] | None = None) -> list[Server]:
        """The first `n` servers of the key's preference list."""
        return self.walk(key, alive)[:n]

    def owner(self, key: Any,
              up: Sequence[bool] | Mapping[Server, bool] | None = None
              ) -> Server | None:
        """The first server of the key's preference list for which `up[server]`
        is true (a list of bools by index, or a dict by name; every server is
        up if None); None if none is. One step per point: the balancer's hot
        path, so it builds no list."""
        owners = self._owners
        start = bisect.bisect_right(self._points, self.position(key))
        for j in range(start, start + len(owners)):
            server = owners[j % len(owners)]
            if up is None or up[server]:
                return server
        return None

    def shares(self) -> dict[Server, float]:
        """The share of the circle for which each server comes first (sums to 1)."""
        out = dict.fromkeys(self.servers, 0.0)
        points, owners = self._points, self._owners
        for i, point in enumerate(points):
            gap = (point - points[i - 1]) % 2**64 or (2**64 if len(points) == 1 else 0)
            out[owners[i]] += gap / 2**64
        return out

    def __repr__(self) -> str:
        return f"HashRing({len(self.servers)} servers x {self.vnodes} vnodes)"
