"""The gateway: the process that runs the file system's calls (upload, download,
delete) on the simulated network, and `Agent`, what it shares with the janitor:
a node outside partitions that commits commands through the metadata log.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from labkit.errors import RequestTimeout, Unavailable
from labkit.net import Network
from labkit.node import Cluster, Node
from labkit.sim import gather
from labkit.storage.chunks import chunk_id, split
from labkit.storage.metadata import MISSING, OK, STALE, Lookup, Put, Remove
from labkit.storage.placement import Placement


class Agent(Node):
    """A process that works for the file system (the gateway or the janitor):
    outside partitions, never crashed, commits through the metadata log."""

    def __init__(self, name: str, net: Network, fs: Cluster):   # a FileSystem
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
