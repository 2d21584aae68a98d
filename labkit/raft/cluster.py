"""`RaftCluster`, the facade tests and notebooks drive, and its default state
machine.

N `RaftNode`s on one simulated network with the shared fault verbs, plus the
contract of DESIGN.md (`leader, role, term, submit, applied, check`), knobs
that change mid-run (`configure`) and what a plot needs (`result`,
`leaderless`). `Digest` is the state machine a cluster applies when none is
given: it accepts any command.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from labkit.errors import ConfigError, require_int
from labkit.metrics import Result
from labkit.net import NetConfig
from labkit.node import Cluster
from labkit.raft.audit import Audit
from labkit.raft.node import DOWN, LEADER, NOOP, RaftConfig, RaftNode


class Digest:
    """The default state machine: counts commands and folds each one's repr into
    a CRC-32, so two nodes hold equal digests iff they applied the same commands
    in the same order. Small enough to snapshot on every compaction."""

    def __init__(self):
        self.count, self.crc = 0, 0

    def apply(self, command: Any) -> int:
        self.count += 1
        self.crc = zlib.crc32(repr(command).encode(), self.crc)
        return self.count

    def is_read(self, command: Any) -> bool:
        return False

    def snapshot(self) -> tuple[int, int]:
        return (self.count, self.crc)

    def restore(self, snapshot: tuple[int, int]) -> None:
        self.count, self.crc = snapshot


class RaftCluster(Cluster):
    """N Raft servers n1..nN on one simulated network, with the shared fault verbs
    and `leader, role, term, submit, applied, check` (see DESIGN.md).

    machine: a factory of state machines (objects with apply, is_read, snapshot,
    restore); the default `Digest` accepts any command. snapshot_every: compact
    a node's log once it has applied that many entries past its last snapshot.
    pre_vote: turn on Pre-Vote and leader stickiness. disk_delay: seconds a
    server takes to persist before it answers an RPC (0: instant disks).
    node: the class of the servers, called as node(name, network, names,
    config, audit, machine); default `RaftNode`. A lab's answer plugs in here
    (`RaftCluster(5, seed=1, node=MyRaft)`, see `labkit.labs.raft`) and gets
    the same fault verbs, `check()`, playground and diagrams.
    """

    def __init__(self, size: int = 5, *, seed: int = 0,
                 election_timeout: tuple[float, float] = (0.150, 0.300),
                 heartbeat: float = 0.050, net: NetConfig | None = None,
                 pre_vote: bool = False, snapshot_every: int | None = None,
                 max_entries: int = 64, disk_delay: float = 0.0,
                 machine: Callable[[], Any] = Digest, read: str = "log",
                 trace: bool = True, node: Callable[..., RaftNode] = RaftNode):
        size = require_int("size", size, minimum=1)
        if not callable(machine):
            raise ConfigError(f"machine must be a factory of state machines, got "
                              f"{machine!r}")
        if not callable(node):
            raise ConfigError(f"node must be a class of Raft servers, got {node!r}")
        self.config = RaftConfig(election_timeout, heartbeat, pre_vote,
                                 snapshot_every, max_entries, read,
                                 disk_delay).validate()
        names = [f"n{i}" for i in range(1, size + 1)]
        self.audit = Audit(self)
        super().__init__(names=names, seed=seed, net=net, trace=trace,
                         node_factory=lambda name, network: node(
                             name, network, names, self.config, self.audit, machine))

    # -- the contract -------------------------------------------------------------
    def leader(self) -> str | None:
        """The live leader of the newest term that has one, else None."""
        best = None
        for node in self.nodes.values():
            if node.alive and node.role == LEADER and (
                    best is None or node.disk["current_term"]
                    > best.disk["current_term"]):
                best = node
        return None if best is None else best.name

    def role(self, name: str) -> str:
        """"leader", "candidate", "follower", or "down" if killed."""
        node = self.node(name)
        return node.role if node.alive else DOWN

    def term(self, name: str) -> int:
        return self.node(name).disk["current_term"]

    def submit(self, command: Any, node: str | None = None) -> int | None:
        """Append `command` via `node` (default: the leader) and start replicating
        it; its log index, or None if that node is not a live leader."""
        if command is NOOP:
            raise ConfigError("None is the no-op entry; submit another value")
        name = self.leader() if node is None else node
        if name is None:
            return None
        server = self.node(name)
        if not server.alive or server.role != LEADER:
            return None
        return server.append(command)

    def applied(self, name: str) -> list:
        """The client commands `name`'s state machine has applied, in log order."""
        self.node(name)
        return [c for _, c in self.audit.applied_by[name] if c is not NOOP]

    def check(self) -> None:
        """Raise InvariantViolation if election safety, log matching, leader
        completeness or state machine safety was ever broken."""
        self.audit.check()

    def configure(self, **knobs: Any) -> None:
        """Change knobs of the running cluster (election_timeout, heartbeat,
        pre_vote, snapshot_every, max_entries, read, disk_delay); each node uses
        them from its next timer or message on."""
        known = [f.name for f in dataclasses.fields(RaftConfig)]
        for name in knobs:
            if name not in known:
                raise ConfigError(f"unknown Raft knob {name!r}; knobs are {known}")
        new = dataclasses.replace(self.config, **knobs).validate()
        for name in known:
            setattr(self.config, name, getattr(new, name))

    # -- more to look at ----------------------------------------------------------
    def commit_index(self, name: str) -> int:
        return self.node(name).commit_index

    def log(self, name: str) -> list[tuple[int, int, Any]]:
        """(index, term, command) of every entry `name` stores (after its snapshot)."""
        node = self.node(name)
        base = node.disk["log_base"]
        return [(base + i, t, c) for i, (t, c) in enumerate(node.disk["log"]) if i]

    def kill(self, name: str) -> None:
        node = self.node(name)
        if node.alive:
            super().kill(name)
            self.audit.role(name, DOWN, node.disk["current_term"])

    def elections(self) -> list[tuple[float, str, int]]:
        """(time, leader, term) of every election won so far."""
        return list(self.audit.elections)

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """The run so far; data adds the role timeline ("roles"), elections, each
        node's log, log_base and commit index, and the leaderless time."""
        result = super().result(scenario, **params)
        names = self.names
        logs = {n: [(i, t) for i, t, _ in self.log(n)] for n in names}
        data = {**result.data, "names": names, "roles": tuple(self.audit.roles),
                "elections": tuple(self.audit.elections), "logs": logs,
                "log_base": {n: self.node(n).disk["log_base"] for n in names},
                "commit": {n: self.node(n).commit_index for n in names},
                "leaderless": leaderless(self.audit.roles, self.now)}
        return dataclasses.replace(result, data=data)


def leaderless(roles: Sequence[tuple[float, str, str, int]], end: float,
               start: float = 0.0) -> float:
    """Seconds in [start, end) during which no node was in the leader role, from
    a role timeline of (time, node, role, term)."""
    if not start <= end:
        raise ConfigError(f"leaderless needs start <= end, got start={start} and "
                          f"end={end}")
    current: dict[str, str] = {}
    total, before = 0.0, start
    for time, name, role, _ in roles:
        time = min(max(time, start), end)
        if LEADER not in current.values():
            total += time - before
        before = time
        current[name] = role
    if LEADER not in current.values():
        total += end - before
    return total
