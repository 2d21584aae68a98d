"""Scenarios of notebook 07, distributed storage: the file system with its
metadata on a Raft log (`FileSystem`, also `lk.FileSystem`), what one crash
costs with and without redundancy, a tour of calls under faults, consistent
hashing (balance, keys moved on a join, the rebalance), partial quorums
(staleness against Bailis et al.'s closed form, t-visibility with
`visibility_summary` to join runs of a sweep, latency costs),
how a stale replica converges, durability under random crash schedules, and
the playground. The stores themselves are `labkit.storage`.
"""

from .files import (
    STORAGE_PARTITIONS,
    FileSystem,
    durability,
    raft_log,
    single_points,
    storage_playground,
    storage_tour,
)
from .quorums import (
    PBS_PAPER,
    QUORUM_LATENCY,
    QUORUMS,
    convergence,
    quorum_costs,
    staleness,
    t_visibility,
    visibility_summary,
)
from .rings import join_moves, rebalance, ring_balance

__all__ = [
    "PBS_PAPER", "QUORUMS", "QUORUM_LATENCY", "STORAGE_PARTITIONS", "FileSystem",
    "convergence", "durability", "join_moves", "quorum_costs", "raft_log",
    "rebalance", "ring_balance", "single_points", "staleness", "storage_playground",
    "storage_tour", "t_visibility", "visibility_summary",
]
