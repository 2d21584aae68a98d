"""Merkle trees for anti-entropy (Dynamo §4.7): two replicas compare the hashes
of their key ranges top-down and exchange only the leaves that differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from labkit.errors import ConfigError, require_int
from labkit.hashring import key_hash

#: The deepest tree `merkle` builds: 2**16 = 65,536 leaves. Every tree hashes
#: all of its 2**(depth + 1) - 1 nodes, so a deeper one costs seconds and memory
#: for nothing a course-sized store can use (the notebooks use 6 and 8).
MAX_DEPTH = 16


def check_depth(depth: int, minimum: int = 0) -> int:
    """Return depth if it is an int from `minimum` to MAX_DEPTH."""
    require_int("depth", depth)
    if not minimum <= depth <= MAX_DEPTH:
        raise ConfigError(f"depth must be >= {minimum} and <= {MAX_DEPTH} (a Merkle "
                          f"tree of 2**depth leaves), got {depth}")
    return depth


def merkle(items: Mapping[str, tuple[int, Any]], depth: int) -> list[list[str]]:
    """A Merkle tree over key -> (version, value): 2**depth leaves, a key in the
    leaf given by the top bits of its ring hash, each leaf the hash of its sorted
    (key, version) pairs, each inner node the hash of its two children.
    levels[0] is [root], levels[depth] the leaves. depth: 0 to MAX_DEPTH."""
    check_depth(depth)
    if not isinstance(items, Mapping):
        raise ConfigError(f"items must be a dict of key -> (version, value), got "
                          f"{items!r}"[:200])
    for key, entry in items.items():
        if not isinstance(key, str):
            raise ConfigError(f"items: a key must be a str, got {key!r}")
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ConfigError(f"items[{key!r}] must be a (version, value) pair, got "
                              f"{entry!r}")
    buckets: list[list[str]] = [[] for _ in range(2 ** depth)]
    for key in sorted(items):
        buckets[key_hash(key) >> (64 - depth)].append(f"{key}={items[key][0]}")
    level = [hashlib.sha256(";".join(b).encode()).hexdigest() for b in buckets]
    levels = [level]
    while len(level) > 1:
        level = [hashlib.sha256((level[i] + level[i + 1]).encode()).hexdigest()
                 for i in range(0, len(level), 2)]
        levels.append(level)
    return levels[::-1]


def merkle_diff(a: list[list[str]], b: list[list[str]]) -> tuple[list[int], int]:
    """The leaves where two trees differ, found by descending only into children
    whose hashes differ; and how many hashes were compared on the way. Both
    trees must come from `merkle` with the same depth."""
    depth_a, depth_b = _tree_depth("a", a), _tree_depth("b", b)
    if depth_a != depth_b:
        raise ConfigError(f"merkle_diff compares two trees of the same depth, got "
                          f"depths {depth_a} and {depth_b}")
    frontier, compared = [0], 1
    if a[0][0] == b[0][0]:
        return [], compared
    for depth in range(1, len(a)):
        children = [c for i in frontier for c in (2 * i, 2 * i + 1)]
        compared += len(children)
        frontier = [c for c in children if a[depth][c] != b[depth][c]]
    return frontier, compared


def _tree_depth(name: str, tree: Any) -> int:
    """The depth of a tree `merkle` built: level i holds 2**i hashes."""
    if (isinstance(tree, list | tuple) and 1 <= len(tree) <= MAX_DEPTH + 1
            and all(isinstance(level, list | tuple) and len(level) == 2 ** i
                    for i, level in enumerate(tree))):
        return len(tree) - 1
    raise ConfigError(f"{name} must be a Merkle tree as merkle() builds it (a list "
                      f"of levels, level i holding 2**i hashes), got {tree!r}"[:240])


def _leaf(key: str, depth: int) -> int:
    return key_hash(key) >> (64 - depth)
