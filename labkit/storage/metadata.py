"""The metadata service's state machine: file name -> (version, size, chunk
list), with a tombstone on delete, and the garbage-collection epoch.

It runs on a replicated log (`ReplicatedLog`: Raft or Multi-Paxos, plugged in by
the caller; labkit.storage never imports one). The commands are `Put`,
`Remove`, `Lookup` and `Collect`; `Metadata.apply` is what every replica does
with each, in log order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from labkit.net import NetConfig, Network
from labkit.node import Node
from labkit.sim import Simulator


class FileEntry(NamedTuple):
    """What the metadata service knows about one name. A delete leaves a
    tombstone, so a late upload older than the delete cannot bring it back."""

    version: int
    size: int
    chunks: tuple[str, ...]
    deleted: bool = False


class Put(NamedTuple):
    """Make `name` the file (size, chunks), if `version` is newer than what the
    name holds and the chunks were written in the current GC `epoch`."""

    op: int
    name: str
    version: int
    size: int
    chunks: tuple[str, ...]
    epoch: int


class Remove(NamedTuple):
    """Replace `name` by a tombstone of `version`."""

    op: int
    name: str
    version: int


class Lookup(NamedTuple):
    """Read `name`'s entry at this point of the log (a linearizable read)."""

    op: int
    name: str


class Collect(NamedTuple):
    """Start a garbage-collection epoch: answer the chunks still referenced."""

    op: int


OK, STALE, MISSING = "ok", "stale", "missing"


class Metadata:
    """The metadata service's state machine: name -> FileEntry, and the garbage
    collection epoch. Every replica applies the same commands in log order, so
    all hold the same state; `outcomes[op]` is what applying command `op`
    answered (a command applied twice, because its client resubmitted it to a new
    leader, takes effect once)."""

    def __init__(self):
        self.files: dict[str, FileEntry] = {}
        self.epoch = 0
        self.outcomes: dict[int, Any] = {}

    def apply(self, command: Put | Remove | Lookup | Collect) -> None:
        if command.op not in self.outcomes:
            self.outcomes[command.op] = self._apply(command)

    def _apply(self, command: Put | Remove | Lookup | Collect) -> Any:
        if isinstance(command, Collect):
            self.epoch += 1
            return (self.epoch, self.live_chunks())
        old = self.files.get(command.name)
        if isinstance(command, Lookup):
            return None if old is None or old.deleted else old
        if old is not None and command.version <= old.version:
            return STALE                    # a newer upload or delete got there first
        if isinstance(command, Remove):
            if old is None or old.deleted:
                return MISSING
            self.files[command.name] = FileEntry(command.version, 0, (), True)
            return OK
        if command.epoch != self.epoch:
            # The chunks were written before a garbage collection started, which
            # may have swept them: the client must write them again.
            return ("epoch", self.epoch)
        self.files[command.name] = FileEntry(command.version, command.size,
                                             command.chunks)
        return OK

    def live_chunks(self) -> frozenset[str]:
        """Chunks referenced by a file that exists."""
        return frozenset(c for e in self.files.values() for c in e.chunks)

    def chunk_sizes(self, chunk_size: int) -> dict[str, int]:
        """Bytes of each referenced chunk, by name (sorted, for a stable order)."""
        sizes: dict[str, int] = {}
        for entry in self.files.values():
            for i, chunk in enumerate(entry.chunks):
                last = i == len(entry.chunks) - 1
                sizes[chunk] = entry.size - i * chunk_size if last else chunk_size
        return dict(sorted(sizes.items()))


class ReplicatedLog(Protocol):
    """What the file system needs of a replicated log (a RaftCluster fits): it
    shares the log's simulator and network, and hosts the log's nodes."""

    sim: Simulator
    network: Network
    nodes: dict[str, Node]

    def submit(self, command: Any) -> int | None:
        """Append via the leader; an index, or None if there is no leader."""

    def applied(self, name: str) -> list:
        """The commands `name` has applied, in log order."""

    def leader(self) -> str | None:
        """The live leader of the newest term, if any."""

    def kill(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...


#: Builds the metadata log: (size, seed, net, trace) -> ReplicatedLog.
LogFactory = Callable[[int, int, NetConfig | None, bool], ReplicatedLog]
