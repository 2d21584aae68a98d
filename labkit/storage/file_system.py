"""`FileSystem`, the facade: the course text's `upload`, `download` and
`delete` over chunk servers, a gateway, a janitor and a metadata service on a
replicated log, with the fault verbs of every cluster and the history of calls
for labkit.check.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from labkit import check
from labkit.errors import ConfigError, require_int, require_number
from labkit.hashring import HashRing
from labkit.metrics import Result
from labkit.net import NetConfig
from labkit.node import Cluster, Node
from labkit.sim import Future, finish
from labkit.storage.chunk_server import ChunkServer
from labkit.storage.chunks import check_data, check_name, chunk_id
from labkit.storage.gateway import PENDING, Gateway
from labkit.storage.janitor import Janitor
from labkit.storage.metadata import LogFactory, Metadata


class FileSystem(Cluster):
    """The course text's file system, distributed: chunk servers s1..sN, a
    metadata service on a replicated log, and the fault verbs of every cluster.

    `upload` returns (the file's new version) only after `write_quorum` chunk
    servers hold every chunk on disk and the metadata log committed the new
    entry; `download` returns exactly the bytes of the latest completed upload,
    checked against the chunk hashes, or raises; `delete` hides the file at once
    (its chunks are collected later). A missing or deleted file raises
    FileNotFoundError; if a quorum cannot be reached within `timeout` seconds,
    Unavailable. A failed upload never shows half a file: the file appears
    whole, or not at all (a commit already in the log when the call gave up may
    still take effect, unless a newer upload or delete of the name came first).

    log: builds the metadata log, (size, seed, net, trace) -> ReplicatedLog;
    `labkit.FileSystem` passes Raft. metadata: its number of nodes.
    write_quorum: W, default a majority of `replication`. rpc_timeout: how long
    one request to a server may take before the next server is tried.
    """

    def __init__(self, nodes: int = 5, replication: int = 3, *, seed: int = 0,
                 log: LogFactory, metadata: int = 3, write_quorum: int | None = None,
                 chunk_size: int = 1024, vnodes: int = 64, timeout: float = 2.0,
                 rpc_timeout: float = 0.05, repair_interval: float = 0.5,
                 gc_interval: float | None = 2.0, net: NetConfig | None = None,
                 trace: bool = True):
        nodes = require_int("nodes", nodes, minimum=1)
        self.replication = require_int("replication", replication, minimum=1)
        if replication > nodes:
            raise ConfigError(f"replication ({replication}) cannot exceed the number "
                              f"of chunk servers ({nodes})")
        if write_quorum is None:
            write_quorum = replication // 2 + 1
        self.write_quorum = require_int("write_quorum", write_quorum, minimum=1)
        if write_quorum > replication:
            raise ConfigError(f"write_quorum must be between 1 and replication "
                              f"({replication}), got {write_quorum}")
        self.chunk_size = require_int("chunk_size", chunk_size, minimum=1)
        self.timeout = require_number("timeout", timeout, positive=True)
        self.rpc_timeout = require_number("rpc_timeout", rpc_timeout, positive=True)
        self.repair_interval = require_number("repair_interval", repair_interval,
                                              positive=True)
        self.gc_interval = None if gc_interval is None else require_number(
            "gc_interval", gc_interval, positive=True)
        if not callable(log):
            raise ConfigError(f"log must build the metadata log, (size, seed, net, "
                              f"trace) -> ReplicatedLog, got {log!r}")
        metadata = require_int("metadata", metadata, minimum=1)
        if net is not None and not isinstance(net, NetConfig):
            raise ConfigError(f"net must be a NetConfig, got {net!r}")
        # Cluster.__init__ would make a simulator of its own; the file system
        # lives on the log's, so the log's nodes and ours share one clock and net.
        self.log = log(metadata, require_int("seed", seed), net, trace)
        self.sim, self.network = self.log.sim, self.log.network
        self.metadata_nodes = list(self.log.nodes)
        self.nodes: dict[str, Node] = {}
        self.ring = HashRing(vnodes=vnodes)
        self.servers: list[str] = []
        for _ in range(nodes):
            self.add_server()
        self.nodes.update(self.log.nodes)
        self.metadata = Metadata()          # the committed state, as replicas apply it
        self._folded = 0
        self._ops = 0
        self._hop = self.network.config.latency.sampler(self.sim.rng("storage.hop"))
        self.history: list[check.Op] = []
        self.gateway = Gateway("gateway", self.network, self)
        self.janitor = Janitor("janitor", self.network, self)

    # -- the course text's three calls ---------------------------------------------
    def upload(self, file_name: str, file_data: bytes) -> int:
        """Store file_data under file_name; returns the file's new version."""
        name, data = check_name(file_name), check_data(file_data)
        digest = chunk_id(data)
        version = self.new_op()
        return self._call("upload", name, digest,
                          self.gateway.upload(name, data, version))

    def download(self, file_name: str) -> bytes:
        """The bytes of the latest completed upload of file_name."""
        name = check_name(file_name)
        return self._call("download", name, None, self.gateway.download(name))

    def delete(self, file_name: str) -> None:
        """Remove file_name (its chunks are garbage-collected later)."""
        name = check_name(file_name)
        self._call("delete", name, None, self.gateway.delete(name, self.new_op()))

    def _call(self, what: str, name: str, digest: str | None,
              work: Generator) -> Any:
        """Run one call to completion in simulated time, time it, record it in
        `history` (as a register operation for labkit.check), and return or
        raise what it did."""
        start = self.sim.now
        process = finish(self.sim, self.gateway.spawn(work), self.timeout)
        error, metrics = process.error, self.sim.metrics
        metrics.histogram(f"{what}.latency").add(self.sim.now - start)
        outcome = "ok" if error is None else type(error).__name__
        metrics.counter(f"{what}.{outcome}").inc()
        self._record(what, name, digest, start, process)
        return process.value

    def _record(self, what: str, name: str, digest: str | None, start: float,
                process: Future) -> None:
        error, now = process.error, self.sim.now
        if what == "download":
            if isinstance(error, FileNotFoundError):
                op = check.Op("fs", "get", name, output=None, call=start, ret=now)
            elif error is None:
                op = check.Op("fs", "get", name, output=chunk_id(process.value),
                              call=start, ret=now)
            else:
                return                      # a failed read changed nothing
        elif what == "delete" and isinstance(error, FileNotFoundError):
            op = check.Op("fs", "get", name, output=None, call=start, ret=now)
        else:                               # an upload, or a delete: a put
            op = check.Op("fs", "put", name, value=digest, call=start,
                          ret=now if error is None else None)
        self.history.append(op)

    # -- the metadata log ----------------------------------------------------------
    def new_op(self) -> int:
        """A fresh number for a command or a version: they only grow, so a later
        call always carries a newer version than an earlier one."""
        self._ops += 1
        return self._ops

    def outcome(self, op: int) -> Any:
        """What applying command `op` answered, or PENDING if it is not applied."""
        self.catch_up()
        return self.metadata.outcomes.get(op, PENDING)

    def catch_up(self) -> None:
        """Fold into `metadata` the commands the leader has applied since the
        last look (a committed entry reaches the leader's state machine first;
        every replica applies the same sequence)."""
        leader = self.log.leader()
        if leader is not None:
            applied = self.log.applied(leader)
            for command in applied[self._folded:]:
                self.metadata.apply(command)
            self._folded = max(self._folded, len(applied))

    def hop(self) -> float:
        """One network delay between a client and the metadata leader."""
        return self._hop()

    # -- membership and faults -----------------------------------------------------
    def add_server(self) -> str:
        """Start a new empty chunk server and put it on the ring; the janitor
        moves the chunks that now belong to it. Returns its name."""
        name = f"s{len(self.servers) + 1}"
        self.nodes[name] = ChunkServer(name, self.network)
        self.servers.append(name)
        self.ring.add(name)
        return name

    def kill(self, name: str) -> None:
        if name in self.metadata_nodes:
            self.log.kill(name)
        else:
            super().kill(name)

    def restart(self, name: str) -> None:
        if name in self.metadata_nodes:
            self.log.restart(name)
        else:
            super().restart(name)

    # -- looking inside ------------------------------------------------------------
    def stored_bytes(self) -> dict[str, int]:
        """Bytes on each chunk server's disk (copies included)."""
        return {s: sum(len(d) for d, _ in self.nodes[s].disk["chunks"].values())
                for s in self.servers}

    def holders(self, chunk: str) -> list[str]:
        """The chunk servers whose disks hold `chunk`, in server order."""
        return [s for s in self.servers if chunk in self.nodes[s].disk["chunks"]]

    def under_replicated(self) -> int:
        """Referenced chunks held by fewer than `replication` live servers now."""
        self.catch_up()
        live = self.up()
        return sum(sum(s in live for s in self.holders(c)) < self.replication
                   for c in self.metadata.live_chunks())

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """The run so far; data adds bytes and chunks per server and the names
        of the chunk servers and metadata nodes."""
        result = super().result(scenario or "FileSystem", **params)
        data = {**result.data, "servers": list(self.servers),
                "metadata_nodes": list(self.metadata_nodes),
                "stored_bytes": self.stored_bytes(),
                "chunks": {s: len(self.nodes[s].disk["chunks"]) for s in self.servers}}
        return replace(result, data=data)

    def __repr__(self) -> str:
        return (f"FileSystem({len(self.servers)} chunk servers, replication "
                f"{self.replication}, W={self.write_quorum}, metadata on "
                f"{len(self.metadata_nodes)}, up={self.up()}, t={self.now:g}s)")
