"""Raft (数据一致性): a replicated log kept consistent by an elected leader, and a
linearizable key-value store on top of it.

Names follow Figure 2 of Ongaro & Ousterhout's "In Search of an Understandable
Consensus Algorithm" (extended version): `current_term`, `voted_for` and `log`
are persistent and live on the node's `disk`, which survives kill/restart;
`commit_index`, `last_applied`, `next_index` and `match_index` are volatile and
rebuilt by `reset()`. Beyond Figure 2: the leader appends a no-op entry when it
takes office (§8), followers answer a failed AppendEntries with the first index
of the conflicting term so the leader skips a whole term per round trip (§5.3),
logs are compacted into snapshots sent with InstallSnapshot (§7, Figure 13),
and optionally Pre-Vote with leader stickiness (Ongaro's thesis §9.6) keeps a
node returning from a partition from deposing a healthy leader.

`RaftCluster` is the facade tests and notebooks drive; its `Audit` watches every
node and `check()` raises `InvariantViolation` naming the broken rule (election
safety, log matching, leader completeness, state machine safety). `KVCluster`
adds the key-value state machine with client sessions and clients whose
operations form a history for `labkit.check.linearizable`.

Where to read what:
    node.py     one server: `RaftNode` (elections, replication, commit, snapshots,
                clients) and `RaftConfig`, the knobs it reads
    cluster.py  `RaftCluster`, the facade with the fault verbs; `Digest`, the
                default state machine; `leaderless` time from a role timeline
    audit.py    `Audit`, the observer behind `check()`: Raft's safety properties
    kv.py       the key-value store: `KVStore`, `KVCommand`, `KVClient`,
                `KVCluster`
"""

from labkit.raft.audit import Audit
from labkit.raft.cluster import Digest, RaftCluster, leaderless
from labkit.raft.kv import KVClient, KVCluster, KVCommand, KVStore
from labkit.raft.node import (
    CANDIDATE,
    DOWN,
    FOLLOWER,
    LEADER,
    NOOP,
    READ_MODES,
    ROLES,
    RaftConfig,
    RaftNode,
)

__all__ = [
    "CANDIDATE", "DOWN", "FOLLOWER", "LEADER", "NOOP", "READ_MODES", "ROLES",
    "Audit", "Digest", "KVClient", "KVCluster", "KVCommand", "KVStore",
    "RaftCluster", "RaftConfig", "RaftNode", "leaderless",
]
