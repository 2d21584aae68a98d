"""Distributed storage (分布式存储): the course text's `FileSystem` spread over
machines, and a Dynamo-style replicated key-value service.

The file system keeps the course text's three calls, `upload(file_name,
file_data)`, `download(file_name)` and `delete(file_name)`, but its dict is now
three kinds of node on a simulated network:

- chunk servers s1, s2, ... keep fixed-size chunks on their disks, each named by
  the SHA-256 of its bytes (content addressing: a chunk can be checked on every
  read, and two files that share bytes share chunks);
- a metadata service keeps file name -> (version, size, chunk list), with a
  tombstone on delete, as a state machine on a replicated log (`ReplicatedLog`:
  Raft or Multi-Paxos, plugged in by the caller; this package never imports one);
- a gateway runs the calls, and a janitor re-replicates, rebalances and collects
  garbage in the background. Both sit outside partitions and never crash.

Placement is consistent hashing with virtual nodes (`HashRing`): a chunk's
replicas go to the first `replication` servers clockwise of its hash.

Where to read what:
    chunks.py        chunk names (`chunk_id`), `split`, the checks on a file's
                     name and bytes
    placement.py     `modulo_owners` and `moved_share` beside the ring
                     (`key_hash`, a key's ring position, is labkit.hashring's);
                     `Placement`, writing one chunk to a sloppy quorum
    metadata.py      the metadata state machine (`Metadata`, `FileEntry`, the
                     commands `Put`, `Remove`, `Lookup`, `Collect`) and the
                     `ReplicatedLog` it needs
    chunk_server.py  `ChunkServer`, the node that keeps chunks on its disk
    gateway.py       `Agent` (commits through the log) and the `Gateway`
    janitor.py       the `Janitor`: repair, rebalancing, garbage collection
    file_system.py   `FileSystem`, the facade with the fault verbs
    replica.py       the replicated key-value service's parts: `Replica`
                     (versioned keys, put/get, hand-off), `read_repair`,
                     `CoordinatingReplica` (server-side quorums, used by the
                     capstone) and its `Quorum`
    quorum.py        the quorum store: `QuorumReplica`, `Coordinator` (the
                     client library), `QuorumKV`
    staleness.py     Bailis et al.'s `stale_probability` and the `WARS` model
    anti_entropy.py  Merkle trees (`merkle`, `merkle_diff`) for anti-entropy
"""

from labkit.errors import Unavailable
from labkit.hashring import HashRing, key_hash
from labkit.storage.anti_entropy import merkle, merkle_diff
from labkit.storage.chunk_server import ChunkServer
from labkit.storage.chunks import MAX_NAME, check_data, check_name, chunk_id, split
from labkit.storage.file_system import FileSystem
from labkit.storage.gateway import PENDING, POLL, Agent, Gateway
from labkit.storage.janitor import Janitor
from labkit.storage.metadata import (
    MISSING,
    OK,
    STALE,
    Collect,
    FileEntry,
    LogFactory,
    Lookup,
    Metadata,
    Put,
    Remove,
    ReplicatedLog,
)
from labkit.storage.placement import Placement, modulo_owners, moved_share
from labkit.storage.quorum import FANOUTS, Coordinator, QuorumKV, QuorumReplica
from labkit.storage.replica import (
    VERSION_SLOTS,
    CoordinatingReplica,
    Quorum,
    Replica,
    read_repair,
)
from labkit.storage.staleness import WARS, stale_probability, wars_consistency

__all__ = [
    "FANOUTS", "MAX_NAME", "MISSING", "OK", "PENDING", "POLL", "STALE",
    "VERSION_SLOTS", "WARS", "Agent", "ChunkServer", "Collect", "Coordinator",
    "CoordinatingReplica", "FileEntry", "FileSystem", "Gateway", "HashRing", "Janitor",
    "LogFactory", "Lookup", "Metadata", "Placement", "Put", "Quorum", "QuorumKV",
    "QuorumReplica", "Remove", "Replica", "ReplicatedLog", "Unavailable",
    "check_data", "check_name", "chunk_id", "key_hash", "merkle", "merkle_diff",
    "modulo_owners", "moved_share", "read_repair", "split", "stale_probability",
    "wars_consistency",
]
