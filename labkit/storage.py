"""Distributed storage (分布式存储): the course text's `FileSystem` spread over
machines, and a Dynamo-style quorum key-value store.

The file system keeps the course text's three calls, `upload(file_name,
file_data)`, `download(file_name)` and `delete(file_name)`, but its dict is now
three kinds of node on a simulated network:

- chunk servers s1, s2, ... keep fixed-size chunks on their disks, each named by
  the SHA-256 of its bytes (content addressing: a chunk can be checked on every
  read, and two files that share bytes share chunks);
- a metadata service keeps file name -> (version, size, chunk list), with a
  tombstone on delete, as a state machine on a replicated log (`ReplicatedLog`:
  Raft or Multi-Paxos, plugged in by the caller; this module never imports one);
- a gateway runs the calls, and a janitor re-replicates, rebalances and collects
  garbage in the background. Both sit outside partitions and never crash.

Placement is consistent hashing with virtual nodes (`HashRing`): a chunk's
replicas go to the first `replication` servers clockwise of its hash.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, NamedTuple, Protocol

from labkit import check
from labkit.dist import Distribution
from labkit.errors import (
    ConfigError,
    RequestTimeout,
    Unavailable,
    require_int,
    require_number,
)
from labkit.hashring import HashRing, key_hash
from labkit.metrics import Result
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node
from labkit.sim import Future, Simulator, finish, first, gather, settled

# -- placement ---------------------------------------------------------------------


def modulo_owners(key: str, servers: Sequence[str], n: int) -> list[str]:
    """Naive placement for comparison: server number hash(key) mod N, then the
    next n - 1 in the list. Changing N reshuffles almost every key."""
    first = key_hash(key) % len(servers)
    return [servers[(first + k) % len(servers)] for k in range(min(n, len(servers)))]


def moved_share(keys: Iterable[str], before: Callable[[str], Sequence[str]],
                after: Callable[[str], Sequence[str]]) -> float:
    """The share of replica placements that change between two placement
    functions (key -> servers): the data a cluster must copy when it changes."""
    moved = total = 0
    for key in keys:
        new = after(key)
        old = set(before(key))
        moved += sum(server not in old for server in new)
        total += len(new)
    return moved / total if total else 0.0


# -- chunks ------------------------------------------------------------------------

def chunk_id(data: bytes) -> str:
    """A chunk's name: the SHA-256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, chunk_size: int) -> list[bytes]:
    """Cut data into chunks of `chunk_size` bytes (the last may be shorter; an
    empty file has no chunks)."""
    return [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]


MAX_NAME = 255


def check_name(file_name: Any) -> str:
    """Return file_name if it is a plain relative path: a non-empty str of at most
    255 characters, parts separated by "/", none of them empty, "." or "..", no
    backslash or control character (so no name can point outside the store)."""
    if not isinstance(file_name, str):
        raise TypeError(f"file_name must be a str, got {type(file_name).__name__} "
                        f"{file_name!r}")
    if not file_name or len(file_name) > MAX_NAME:
        raise ConfigError(f"file_name must have 1 to {MAX_NAME} characters, got "
                          f"{len(file_name)}")
    if "\\" in file_name or any(ord(c) < 32 or ord(c) == 127 for c in file_name):
        raise ConfigError(f"file_name may not contain a backslash or control "
                          f"characters, got {file_name!r}")
    if any(part in ("", ".", "..") for part in file_name.split("/")):
        raise ConfigError(f"file_name must be a relative path without empty, '.' or "
                          f"'..' parts (e.g. 'docs/a.txt'), got {file_name!r}")
    return file_name


def check_data(file_data: Any) -> bytes:
    """Return file_data as bytes if it is bytes-like (bytes, bytearray,
    memoryview); text must be encoded first."""
    if isinstance(file_data, str):
        raise TypeError("file_data must be bytes, got a str: encode it first, e.g. "
                        "text.encode('utf-8')")
    if not isinstance(file_data, bytes | bytearray | memoryview):
        raise TypeError(f"file_data must be bytes, bytearray or memoryview, got "
                        f"{type(file_data).__name__}")
    return bytes(file_data)


# -- the metadata state machine ----------------------------------------------------

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


# -- chunk servers -----------------------------------------------------------------

class ChunkServer(Node):
    """Keeps chunks on its disk: name -> (bytes, epoch of the latest write).

    The epoch tag lets garbage collection spare a chunk an upload has just
    written again (see `FileSystem`). Every request counts toward its load.
    """

    def reset(self) -> None:
        self.disk.setdefault("chunks", {})
        self.load = self.sim.metrics.counter(f"requests.{self.name}")

    def on_store(self, msg: Message) -> None:
        self.load.inc()
        ok = chunk_id(msg.data) == msg.chunk      # never store bytes under a wrong name
        if ok:
            chunks = self.disk["chunks"]
            old = chunks.get(msg.chunk)
            chunks[msg.chunk] = (msg.data, msg.tag if old is None
                                 else max(msg.tag, old[1]))
        self.reply(msg, ok=ok)

    def on_fetch(self, msg: Message) -> None:
        self.load.inc()
        entry = self.disk["chunks"].get(msg.chunk)
        self.reply(msg, data=None if entry is None else entry[0])

    def on_inventory(self, msg: Message) -> None:
        self.reply(msg, chunks=tuple(sorted(self.disk["chunks"])))

    def on_copy(self, msg: Message) -> None:
        """Send one of our chunks to another server; answer once it is stored."""
        self.spawn(self._copy(msg))

    def _copy(self, msg: Message) -> Generator:
        entry = self.disk["chunks"].get(msg.chunk)
        ok = False
        if entry is not None:
            try:
                answer = yield self.call(msg.to, "store", msg.patience, chunk=msg.chunk,
                                         data=entry[0], tag=entry[1])
                ok = answer.ok
            except RequestTimeout:
                pass
        self.reply(msg, ok=ok)

    def on_drop(self, msg: Message) -> None:
        self.disk["chunks"].pop(msg.chunk, None)

    def on_sweep(self, msg: Message) -> None:
        """Delete chunks no file references, unless written in epoch `below` or
        later (an upload in progress may be about to reference them)."""
        chunks = self.disk["chunks"]
        for name in [n for n, (_, tag) in chunks.items()
                     if tag < msg.below and n not in msg.live]:
            del chunks[name]


# -- the gateway and the janitor ---------------------------------------------------

class Agent(Node):
    """A process that works for the file system (the gateway or the janitor):
    outside partitions, never crashed, commits through the metadata log."""

    def __init__(self, name: str, net: Network, fs: FileSystem):
        self.fs = fs
        super().__init__(name, net)
        net.keep_outside_partitions(name)

    def commit(self, command: Any, deadline: float) -> Generator:
        """Submit a metadata command and wait until the log applies it; returns
        its outcome. If the leader changes first, it submits to the new one (the
        state machine applies a command once however often it is in the log).
        Raises Unavailable at `deadline`: the command may still commit later."""
        fs = self.fs
        yield fs.hop()               # the log is driven by calls: add the trip
        submitted_to = None
        while True:
            outcome = fs.outcome(command.op)
            if outcome is not PENDING:
                yield fs.hop()
                return outcome
            if self.sim.now >= deadline:
                raise Unavailable(f"the metadata service committed nothing within "
                                  f"{fs.timeout:g} s (no leader or no quorum)")
            leader = fs.log.leader()
            if leader is not None and leader != submitted_to and \
                    fs.log.submit(command) is not None:
                submitted_to = leader
            yield POLL


PENDING = object()
POLL = 0.001        # how often a client looks for its command's outcome (seconds)


class Placement:
    """Writing one chunk: stores go to the first `replication` servers of its
    preference list; each one that fails is replaced by the next server on the
    ring (a sloppy quorum). `durable` resolves once `write_quorum` distinct
    servers hold the chunk, or fails if that cannot happen by the deadline; the
    writes go on in the background until `replication` servers hold it."""

    def __init__(self, gateway: Agent, chunk: str, data: bytes, tag: int,
                 deadline: float):
        fs = gateway.fs
        self.gateway, self.fs, self.chunk, self.data, self.tag = (
            gateway, fs, chunk, data, tag)
        self.deadline = deadline
        self.walk = fs.ring.walk(chunk)
        self.next = self.inflight = 0
        self.holders: list[str] = []
        self.durable = Future()
        self.quorum_at = 0.0
        for _ in range(min(fs.replication, len(self.walk))):
            self._launch()

    def _launch(self) -> None:
        # Around the ring again if need be: a server may have come back.
        candidates = [s for s in self.walk if s not in self.holders]
        if candidates and self.gateway.sim.now < self.deadline:
            server = candidates[self.next % len(candidates)]
            self.next += 1
            self.inflight += 1
            self.gateway.call(server, "store", self.fs.rpc_timeout, chunk=self.chunk,
                              data=self.data, tag=self.tag).add_done_callback(
                lambda reply, s=server: self._answer(s, reply))
        elif self.inflight == 0 and not self.durable.done:
            self.durable.fail(Unavailable(
                f"only {len(self.holders)} of the {self.fs.write_quorum} servers "
                f"needed stored chunk {self.chunk[:12]} within {self.fs.timeout:g} s"))

    def _answer(self, server: str, reply: Future) -> None:
        self.inflight -= 1
        if reply.failed or not reply.value.ok:
            self._launch()
            return
        if server not in self.holders:
            self.holders.append(server)
        fs, now = self.fs, self.gateway.sim.now
        if len(self.holders) == fs.write_quorum:
            self.quorum_at = now
            self.durable.resolve(list(self.holders))
        if len(self.holders) == fs.replication:
            fs.sim.metrics.histogram("replication.lag").add(now - self.quorum_at)
        elif self.inflight < fs.replication - len(self.holders):
            self._launch()


class Gateway(Agent):
    """Runs the file system's calls as processes on the simulated network."""

    def upload(self, name: str, data: bytes, version: int) -> Generator:
        fs = self.fs
        deadline = self.sim.now + fs.timeout
        pieces = split(data, fs.chunk_size)
        chunks = tuple(chunk_id(p) for p in pieces)
        unique = dict(zip(chunks, pieces, strict=True))   # a file may repeat a chunk
        epoch = fs.metadata.epoch
        while True:
            placed = [Placement(self, c, p, epoch, deadline).durable
                      for c, p in unique.items()]
            yield gather(placed)
            command = Put(fs.new_op(), name, version, len(data), chunks, epoch)
            outcome = yield from self.commit(command, deadline)
            if outcome == OK:
                return version
            if outcome == STALE:    # only a newer write can do this: it wins
                raise Unavailable(f"a newer version of {name!r} was written first")
            epoch = outcome[1]      # a garbage collection began: write again

    def download(self, name: str) -> Generator:
        fs = self.fs
        deadline = self.sim.now + fs.timeout
        entry = yield from self.commit(Lookup(fs.new_op(), name), deadline)
        if entry is None:
            raise FileNotFoundError(f"no file named {name!r}")
        jobs = {c: self.spawn(self.fetch(c, deadline)) for c in dict.fromkeys(
            entry.chunks)}
        pieces = yield gather(list(jobs.values()))
        found = dict(zip(jobs, pieces, strict=True))
        data = b"".join(found[c] for c in entry.chunks)
        if len(data) != entry.size:
            raise AssertionError(f"{name!r}: chunks add up to {len(data)} bytes, the "
                                 f"metadata says {entry.size}")
        return data

    def fetch(self, chunk: str, deadline: float) -> Generator:
        """Read one chunk from the first server on its preference list that has
        it; the bytes are checked against the name, so any copy will do."""
        walk = self.fs.ring.walk(chunk)
        attempt = 0
        while self.sim.now < deadline:
            server = walk[attempt % len(walk)]
            attempt += 1
            try:
                reply = yield self.call(server, "fetch", self.fs.rpc_timeout,
                                        chunk=chunk)
            except RequestTimeout:
                continue
            if reply.data is not None and chunk_id(reply.data) == chunk:
                return reply.data
            if attempt % len(walk) == 0:
                yield self.fs.rpc_timeout       # nobody has it now: pause, go round
        raise Unavailable(f"no server returned chunk {chunk[:12]} within "
                          f"{self.fs.timeout:g} s")

    def delete(self, name: str, version: int) -> Generator:
        fs = self.fs
        outcome = yield from self.commit(Remove(fs.new_op(), name, version),
                                         self.sim.now + fs.timeout)
        if outcome == MISSING:
            raise FileNotFoundError(f"no file named {name!r}")
        if outcome == STALE:
            raise Unavailable(f"a newer version of {name!r} was written first")


class Janitor(Agent):
    """Keeps every referenced chunk on its `replication` preference-list servers.

    Every `repair_interval` it asks each chunk server for its inventory; a
    server that does not answer counts as down. A chunk whose target servers
    (the first `replication` live ones on its preference list) lack it is copied
    there from a holder: re-replication if it had fewer than `replication` live
    copies, rebalancing if it only sat on the wrong servers (a server joined or
    came back). Once every target holds it, copies elsewhere are dropped. Every
    `gc_interval` it collects garbage (see `FileSystem`).
    """

    def reset(self) -> None:
        self.spawn(self.loop())

    def loop(self) -> Generator:
        fs = self.fs
        last_gc = 0.0
        while True:
            yield fs.repair_interval
            yield from self.repair()
            if fs.gc_interval is not None and self.sim.now - last_gc >= fs.gc_interval:
                last_gc = self.sim.now
                yield from self.collect()

    def repair(self) -> Generator:
        fs = self.fs
        asked = {s: self.call(s, "inventory", fs.rpc_timeout) for s in fs.servers}
        yield settled(list(asked.values()))
        holding = {s: set(f.value.chunks) for s, f in asked.items() if not f.failed}
        live = [s for s in fs.servers if s in holding]
        metrics = self.sim.metrics
        under = 0
        for chunk, size in fs.metadata.chunk_sizes(fs.chunk_size).items():
            holders = [s for s in live if chunk in holding[s]]
            under += len(holders) < fs.replication
            if not holders:
                continue                   # every copy is on a server that is down
            targets = fs.ring.owners(chunk, fs.replication, live)
            missing = [t for t in targets if chunk not in holding[t]]
            why = "repair" if len(holders) < fs.replication else "rebalance"
            for i, target in enumerate(missing):
                copy = self.call(holders[i % len(holders)], "copy",
                                 3 * fs.rpc_timeout, chunk=chunk, to=target,
                                 patience=fs.rpc_timeout)
                copy.add_done_callback(partial(self._copied, why, size))
            if not missing:
                for extra in holders:
                    if extra not in targets:
                        self.send(extra, "drop", chunk=chunk)
        metrics.series("under_replicated").add(self.sim.now, under)

    def _copied(self, why: str, size: int, copy: Future) -> None:
        if not copy.failed and copy.value.ok:
            self.sim.metrics.counter(f"bytes.{why}").inc(size)

    def collect(self) -> Generator:
        """Garbage collection in two steps. First a Collect command goes through
        the log: it starts epoch e and answers the chunks referenced at that
        point. Then every server deletes the chunks not in that set whose last
        write came before epoch e. An upload commits only in the epoch in which
        it wrote its chunks, so a chunk it still needs is either referenced by
        then or was written in epoch e or later."""
        fs = self.fs
        try:
            epoch, live = yield from self.commit(Collect(fs.new_op()),
                                                 self.sim.now + fs.timeout)
        except Unavailable:
            return                               # try again next time
        for server in fs.servers:
            self.send(server, "sweep", live=live, below=epoch)
        self.sim.metrics.counter("gc.rounds").inc()


# -- the file system ---------------------------------------------------------------

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


# -- a Dynamo-style quorum key-value store ------------------------------------------

class WARS(NamedTuple):
    """Per-replica delays of Bailis et al.'s WARS model ("Probabilistically
    Bounded Staleness for Practical Partial Quorums", VLDB 2012, §5): the write
    reaching a replica, its ack returning, the read reaching it, its response
    returning. Each is a `labkit.dist` distribution, drawn independently."""

    write: Distribution
    ack: Distribution
    read: Distribution
    response: Distribution


def stale_probability(n: int, r: int, w: int, versions: int = 1) -> float:
    """Bailis et al.'s closed form for random partial quorums: the chance that a
    read of R of N replicas misses all of the last `versions` writes, each of
    which reached W random replicas: (C(N-W, R) / C(N, R)) ** versions."""
    n = require_int("n", n, minimum=1)
    r, w = require_int("r", r, minimum=1), require_int("w", w, minimum=1)
    if r > n or w > n:
        raise ConfigError(f"r and w must be at most n = {n}, got r={r}, w={w}")
    return (math.comb(n - w, r) / math.comb(n, r)) ** require_int(
        "versions", versions, minimum=1)


def wars_consistency(n: int, r: int, w: int, delays: WARS, t: float,
                     trials: int, seed: int = 0) -> float:
    """Monte Carlo of the WARS model without any simulation around it: the share
    of reads started t seconds after a write committed that return it. The write
    commits when the W-th ack arrives; replica i has it when the read arrives
    if W_i <= commit + t + R_i; the read returns the R fastest responses."""
    rng = random.Random(f"wars:{seed}")
    draw = [d.sampler(rng) for d in delays]
    fresh = 0
    for _ in range(require_int("trials", trials, minimum=1)):
        wi, ai, ri, si = ([sample() for _ in range(n)] for sample in draw)
        commit = sorted(x + y for x, y in zip(wi, ai, strict=True))[w - 1]
        first = sorted(range(n), key=lambda j: ri[j] + si[j])[:r]
        fresh += any(wi[j] <= commit + t + ri[j] for j in first)
    return fresh / trials


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


class Replica(Node):
    """One node of the quorum store: key -> (version, value) on disk, newest
    version wins. With `delays` it waits W then A around a write and R then S
    around a read (the WARS model); with `anti_entropy` seconds it compares a
    Merkle tree with a random peer that often."""

    def __init__(self, name: str, net: Network, kv: QuorumKV):
        self.kv = kv
        super().__init__(name, net)

    def reset(self) -> None:
        self.disk.setdefault("data", {})
        kv = self.kv
        if kv.delays is not None:
            rng = self.sim.rng(f"wars.{self.name}")
            self.wait = {k: d.sampler(rng) for k, d in kv.delays._asdict().items()}
        if kv.anti_entropy is not None:
            self.rng = self.sim.rng(f"entropy.{self.name}")
            self.set_timer("entropy", self.rng.uniform(0, kv.anti_entropy),
                           self.start_sync)

    def store(self, key: str, version: int, value: Any) -> None:
        data = self.disk["data"]
        if version > data.get(key, (0, None))[0]:
            data[key] = (version, value)

    def on_put(self, msg: Message) -> None:
        self.spawn(self._put(msg))

    def _put(self, msg: Message) -> Generator:
        if self.kv.delays is not None:
            yield self.wait["write"]()
        self.store(msg.key, msg.version, msg.value)
        if self.kv.delays is not None:
            yield self.wait["ack"]()
        self.reply(msg)

    def on_get(self, msg: Message) -> None:
        self.spawn(self._get(msg))

    def _get(self, msg: Message) -> Generator:
        if self.kv.delays is not None:
            yield self.wait["read"]()
        version, value = self.disk["data"].get(msg.key, (0, None))
        if self.kv.delays is not None:
            yield self.wait["response"]()
        self.reply(msg, version=version, value=value)

    # -- anti-entropy (Dynamo §4.7) ----------------------------------------------------
    def shared(self, peer: str) -> dict[str, tuple[int, Any]]:
        """Our entries for the keys both we and `peer` replicate."""
        kv = self.kv
        return {k: v for k, v in self.disk["data"].items()
                if peer in kv.ring.owners(k, kv.n)}

    def start_sync(self) -> None:
        peer = self.rng.choice([p for p in self.kv.replicas if p != self.name])
        self.send(peer, "sync", tree=merkle(self.shared(peer), self.kv.depth))
        self.set_timer("entropy", self.kv.anti_entropy, self.start_sync)

    def on_sync(self, msg: Message) -> None:
        """A peer's tree: answer with our entries in the leaves that differ."""
        kv, mine = self.kv, self.shared(msg.src)
        leaves, compared = merkle_diff(msg.tree, merkle(mine, kv.depth))
        self.sim.metrics.counter("entropy.hashes").inc(compared)
        wanted = set(leaves)
        entries = tuple((k, *v) for k, v in sorted(mine.items())
                        if _leaf(k, kv.depth) in wanted)
        if leaves:
            self.send(msg.src, "sync_entries", leaves=tuple(leaves), entries=entries)

    def on_sync_entries(self, msg: Message) -> None:
        """Take the newer of each entry, and send back ours where they differ."""
        self.absorb(msg)
        mine = self.shared(msg.src)
        theirs = {k: version for k, version, _ in msg.entries}
        wanted = set(msg.leaves)
        back = tuple((k, *v) for k, v in sorted(mine.items())
                     if _leaf(k, self.kv.depth) in wanted and theirs.get(k) != v[0])
        self.send(msg.src, "sync_back", entries=back)

    def on_sync_back(self, msg: Message) -> None:
        self.absorb(msg)

    def absorb(self, msg: Message) -> None:
        self.sim.metrics.counter("entropy.entries").inc(len(msg.entries))
        for key, version, value in msg.entries:
            self.store(key, version, value)


class Coordinator(Node):
    """The client library of the quorum store (Dynamo's partition-aware client):
    it numbers writes, sends them to the key's replicas and counts answers.
    Outside partitions, never crashed.

    fanout "all": a write goes to all N replicas and returns after W acks; a read
    asks all N and returns the newest of the first R answers, then repairs the
    replicas that answered with older versions (read repair). fanout "quorum":
    exactly W (or R) replicas chosen at random are asked, nothing else: the
    random partial quorums of Bailis et al.'s closed form.
    """

    def __init__(self, name: str, net: Network, kv: QuorumKV):
        self.kv = kv
        self.version = 0
        self.acked: dict[str, int] = {}    # key -> newest version a put returned
        super().__init__(name, net)
        net.keep_outside_partitions(name)
        self.rng = self.sim.rng("quorum.coordinator")

    def targets(self, key: str, needed: int) -> list[str]:
        owners = self.kv.ring.owners(key, self.kv.n)
        if self.kv.fanout == "quorum":
            return self.rng.sample(owners, needed)
        return owners

    def put(self, key: str, value: Any) -> Generator:
        kv = self.kv
        self.version += 1
        version, start = self.version, self.sim.now
        asked = [self.call(t, "put", kv.timeout, key=key, version=version,
                           value=value) for t in self.targets(key, kv.w)]
        yield first(asked, kv.w, f"a write of {key!r}")
        self.acked[key] = max(self.acked.get(key, 0), version)
        self.sim.metrics.histogram("put.latency").add(self.sim.now - start)
        return version

    def get(self, key: str) -> Generator:
        kv, metrics = self.kv, self.sim.metrics
        start, latest = self.sim.now, self.acked.get(key, 0)
        targets = self.targets(key, kv.r)
        asked = [self.call(t, "get", kv.timeout, key=key) for t in targets]
        replies = yield first(asked, kv.r, f"a read of {key!r}")
        newest = max(replies, key=lambda m: m.version)
        version, value = newest.version, newest.value
        metrics.histogram("get.latency").add(self.sim.now - start)
        metrics.counter("reads").inc()
        metrics.counter("reads.stale").inc(version < latest)
        if kv.fanout == "all" and kv.read_repair:
            settled(asked).add_done_callback(
                lambda _f: self.repair(key, targets, asked))
        return value

    def repair(self, key: str, targets: list[str], asked: list[Future]) -> None:
        """Read repair, once every answer is in (or timed out): send the newest
        version any replica answered to the replicas that answered older ones."""
        answers = {t: f.value for t, f in zip(targets, asked, strict=True)
                   if not f.failed}
        newest = max(answers.values(), key=lambda m: m.version)
        for target, answer in answers.items():
            if answer.version < newest.version:
                self.sim.metrics.counter("read_repairs").inc()
                self.send(target, "put", key=key, version=newest.version,
                          value=newest.value)

    def on_put_ok(self, msg: Message) -> None:
        """An ack of a read repair (sent without waiting for it)."""


FANOUTS = ("all", "quorum")


class QuorumKV(Cluster):
    """A Dynamo-style key-value store: each key lives on the first N replicas of
    its preference list (a `HashRing`); a put returns after W acks, a get after R
    answers. R + W > N makes every read quorum meet every write quorum; smaller
    quorums answer sooner and may return stale data, which read repair and
    anti-entropy (Merkle-tree comparison every `anti_entropy` seconds) fix later.

    `put`/`get` run one operation to completion; `coordinator.put/get` are the
    generator versions for concurrent workloads. fanout: see `Coordinator`.
    delays: a WARS tuple of per-replica delays (use it with a zero-latency net).
    """

    def __init__(self, nodes: int = 3, *, n: int = 3, r: int = 1, w: int = 1,
                 seed: int = 0, fanout: str = "all", read_repair: bool = True,
                 anti_entropy: float | None = None, delays: WARS | None = None,
                 depth: int = 6, vnodes: int = 64, timeout: float = 0.5,
                 net: NetConfig | None = None, trace: bool = True):
        nodes = require_int("nodes", nodes, minimum=1)
        self.n = require_int("n", n, minimum=1)
        if n > nodes:
            raise ConfigError(f"n ({n}) cannot exceed the number of nodes ({nodes})")
        self.r, self.w = require_int("r", r, minimum=1), require_int("w", w, minimum=1)
        if r > n or w > n:
            raise ConfigError(f"r and w must be between 1 and n = {n}, got r={r}, "
                              f"w={w}")
        if fanout not in FANOUTS:
            raise ConfigError(f"fanout must be one of {FANOUTS}, got {fanout!r}")
        if not isinstance(read_repair, bool):
            raise ConfigError(f"read_repair must be True or False, got "
                              f"{read_repair!r}")
        if delays is not None and not isinstance(delays, WARS):
            raise ConfigError(f"delays must be a storage.WARS tuple, got {delays!r}")
        self.fanout, self.read_repair, self.delays = fanout, read_repair, delays
        self.anti_entropy = None if anti_entropy is None else require_number(
            "anti_entropy", anti_entropy, positive=True)
        self.depth = require_int("depth", depth, minimum=1)
        self.timeout = require_number("timeout", timeout, positive=True)
        self.replicas = [f"r{i}" for i in range(1, nodes + 1)]
        self.ring = HashRing(self.replicas, vnodes=vnodes)
        super().__init__(names=self.replicas, seed=seed, net=net, trace=trace,
                         node_factory=lambda name, network: Replica(name, network,
                                                                    self))
        self.coordinator = Coordinator("client", self.network, self)

    def put(self, key: str, value: Any) -> int:
        """Write `value` under `key`; returns its version. Unavailable if fewer
        than W replicas answer within `timeout`."""
        return finish(self.sim, self.coordinator.spawn(
            self.coordinator.put(_key(key), value)), self.timeout).value

    def get(self, key: str) -> Any:
        """The newest value among the first R answers (None if none has the key)."""
        return finish(self.sim, self.coordinator.spawn(
            self.coordinator.get(_key(key))), self.timeout).value

    def versions(self, key: str) -> dict[str, int]:
        """The version of `key` on each replica's disk (0: missing)."""
        return {name: self.nodes[name].disk["data"].get(key, (0, None))[0]
                for name in self.replicas}

    def __repr__(self) -> str:
        return (f"QuorumKV({len(self.replicas)} nodes, N={self.n}, R={self.r}, "
                f"W={self.w}, fanout={self.fanout}, up={self.up()}, t={self.now:g}s)")


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"a key must be a non-empty str, got {key!r}")
    return key
