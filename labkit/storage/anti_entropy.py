"""Merkle trees for anti-entropy (Dynamo §4.7): two replicas compare the hashes
of their key ranges top-down and exchange only the leaves that differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from labkit.hashring import key_hash


def merkle(items: Mapping[str, tuple[int, Any]], depth: int) -> list[list[str]]:
    """A Merkle tree over key -> (version, value): 2**depth leaves, a key in the
    leaf given by the top bits of its ring hash, each leaf the hash of its sorted
    (key, version) pairs, each inner node the hash of its two children.
    levels[0] is [root], levels[depth] the leaves."""
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
    whose hashes differ; and how many hashes were compared on the way."""
    frontier, compared = [0], 1
    if a[0][0] == b[0][0]:
        return [], compared
    for depth in range(1, len(a)):
        children = [c for i in frontier for c in (2 * i, 2 * i + 1)]
        compared += len(children)
        frontier = [c for c in children if a[depth][c] != b[depth][c]]
    return frontier, compared


def _leaf(key: str, depth: int) -> int:
    return key_hash(key) >> (64 - depth)
