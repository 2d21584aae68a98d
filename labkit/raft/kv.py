"""A linearizable key-value store on Raft: the state machine and its clients.

`KVStore` applies `KVCommand`s and keeps client sessions so a retried command
takes effect once (Raft paper §8). `KVClient` retries one operation at a time
until a leader answers and records each in a history; `KVCluster` is a
`RaftCluster` running `KVStore`, with clients, a closed-loop workload, and
`linearizable()` to check that history with `labkit.check`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

from labkit import check
from labkit.errors import (
    ConfigError,
    RequestTimeout,
    require_int,
    require_number,
    require_probability,
)
from labkit.net import Network
from labkit.node import Node
from labkit.raft.cluster import RaftCluster


class KVCommand(NamedTuple):
    """One client operation as a log entry: the session (client, seq) makes a
    retried command take effect at most once."""

    client: str
    seq: int
    op: str          # "get", "put" or "append"
    key: Hashable
    value: Any = None


class WrongType(NamedTuple):
    """The answer to an append to a key whose value is no string: the store
    refuses it and changes nothing, and the client raises ConfigError."""

    key: Hashable
    value: Any

    def message(self) -> str:
        return (f"append to key {self.key!r}, which holds {self.value!r} of type "
                f"{type(self.value).__name__}: append needs a string value there")


class KVStore:
    """A key-value state machine with client sessions.

    `sessions[client]` holds the last sequence number applied for that client
    and its output, so a command that reaches the log twice (a client retried
    after a lost answer) is applied once and answered twice (Raft paper §8).
    """

    def __init__(self):
        self.data: dict[Hashable, Any] = {}
        self.sessions: dict[str, tuple[int, Any]] = {}

    def apply(self, command: KVCommand) -> Any:
        last = self.sessions.get(command.client)
        if last is not None and command.seq <= last[0]:
            return last[1]           # a duplicate: answer it, change nothing
        output = None
        if command.op == "get":
            output = self.data.get(command.key)
        elif command.op == "put":
            self.data[command.key] = command.value
        else:
            current = self.data.get(command.key, "")
            if isinstance(current, str):
                self.data[command.key] = current + command.value
            else:                    # every replica refuses it alike (Redis: WRONGTYPE)
                output = WrongType(command.key, current)
        self.sessions[command.client] = (command.seq, output)
        return output

    def is_read(self, command: KVCommand) -> bool:
        return command.op == "get"

    def query(self, command: KVCommand) -> Any:
        """Answer a read from the current state without going through the log."""
        return self.data.get(command.key)

    def snapshot(self) -> tuple[tuple, tuple]:
        return (tuple(self.data.items()), tuple(self.sessions.items()))

    def restore(self, snapshot: tuple[tuple, tuple]) -> None:
        self.data, self.sessions = dict(snapshot[0]), dict(snapshot[1])


class KVClient(Node):
    """A client of a KVCluster: one operation at a time, retried with the same
    sequence number until a leader answers, so it takes effect at most once.

    Clients sit outside partitions (they reach every server) and never crash.
    Every operation is recorded in the cluster's history as a `check.Op`.
    """

    def __init__(self, name: str, net: Network, cluster: KVCluster,
                 timeout: float):
        self.cluster, self.timeout = cluster, timeout
        self.servers = cluster.names
        super().__init__(name, net)
        net.keep_outside_partitions(name)

    def reset(self) -> None:
        self.seq, self.leader_hint, self.turn = 0, None, 0
        self.busy: tuple[str, Hashable] | None = None   # the operation in flight

    def get(self, key: Hashable):
        return self._start("get", key, None)

    def put(self, key: Hashable, value: Any):
        return self._start("put", key, value)

    def append(self, key: Hashable, value: str):
        if not isinstance(value, str):
            raise ConfigError(f"append adds a string to a key's string value, got "
                              f"{value!r}")
        return self._start("append", key, value)

    def _start(self, op: str, key: Hashable, value: Any):
        """Check the call, then run the operation as a process of this client."""
        try:
            hash(key)
        except TypeError:
            raise ConfigError(f"a key must be hashable (a string, a number...), "
                              f"got {key!r}") from None
        if self.busy is not None:
            raise ConfigError(
                f"client {self.name} still waits for its {self.busy[0]} of "
                f"{self.busy[1]!r}: a client performs one operation at a time (its "
                f"sequence numbers say which retry is which); wait for it (yield "
                f"it) or use another client, cluster.client()")
        self.busy = (op, key)
        return self.spawn(self._perform(op, key, value))

    def _perform(self, op: str, key: Hashable, value: Any):
        self.seq += 1
        command = KVCommand(self.name, self.seq, op, key, value)
        history = self.cluster.history
        slot = len(history)
        history.append(check.Op(self.name, op, key, value, None, self.sim.now))
        while True:
            server = self.leader_hint or self.servers[self.turn % len(self.servers)]
            try:
                reply = yield self.call(server, "request", self.timeout,
                                        command=command)
            except RequestTimeout:
                self.leader_hint, self.turn = None, self.turn + 1
                continue
            if reply.ok:
                self.busy = None
                if isinstance(reply.output, WrongType):   # it took no effect
                    raise ConfigError(reply.output.message())
                history[slot] = history[slot]._replace(output=reply.output,
                                                       ret=self.sim.now)
                return reply.output
            hint = reply.leader
            self.leader_hint = hint if hint not in (None, server) else None
            if self.leader_hint is None:
                self.turn += 1
                yield self.cluster.config.heartbeat   # nobody knows: wait a beat


class KVCluster(RaftCluster):
    """A RaftCluster whose state machine is a `KVStore`, with clients c1, c2, ...

    read: "log" — a get is a log entry like a write (linearizable, one log entry
    per read); "index" — the leader notes its commit index, confirms it is still
    leader with one heartbeat round to a majority, and answers once that index is
    applied (linearizable, no log growth; Raft thesis §6.4); "local" — BROKEN on
    purpose: whoever believes it is leader answers from its own state at once,
    so a deposed leader cut off by a partition serves stale reads.
    """

    def __init__(self, size: int = 5, *, read: str = "log",
                 client_timeout: float = 0.5, **options: Any):
        if "machine" in options:
            raise ConfigError("a KVCluster's state machine is its KVStore; for "
                              "another, use RaftCluster(machine=...)")
        super().__init__(size, machine=KVStore, read=read, **options)
        self.client_timeout = require_number("client_timeout", client_timeout,
                                             positive=True)
        self.history: list[check.Op] = []
        self.clients: dict[str, KVClient] = {}

    def client(self, name: str | None = None) -> KVClient:
        """The client called `name` (default: a new one, c1, c2, ...)."""
        if name is None:
            name = f"c{len(self.clients) + 1}"
        if name not in self.clients:
            if name in self.nodes:
                raise ConfigError(f"{name!r} is a server's name")
            self.clients[name] = KVClient(name, self.network, self,
                                          self.client_timeout)
        return self.clients[name]

    def workload(self, clients: int = 3, *, keys: Sequence[Hashable] = ("x", "y"),
                 think: float = 0.05, reads: float = 0.5, writes: str = "put",
                 until: float | None = None) -> None:
        """Start `clients` closed-loop clients: each waits an exponential think
        time (mean `think` s), then gets a random key (probability `reads`) or
        writes a unique token "c1.7;" to it (with `writes` "put" or "append"),
        until simulated time `until` (default: forever). Put histories are quick
        to check; appends show duplicates plainly but many overlapping appends
        to one key make the check slow (each order is a different string)."""
        clients = require_int("clients", clients, minimum=1)
        think = require_number("think", think, positive=True)
        reads = require_probability("reads", reads)
        if writes not in ("put", "append"):
            raise ConfigError(f"writes must be 'put' or 'append', got {writes!r}")
        if not keys:
            raise ConfigError("keys must name at least one key")
        for _ in range(clients):
            client = self.client()
            rng = self.sim.rng(f"kv.{client.name}")
            client.spawn(self._loop(client, rng, list(keys), think, reads,
                                    getattr(client, writes), until))

    def _loop(self, client: KVClient, rng, keys, think, reads, write, until):
        while until is None or self.sim.now < until:
            yield rng.expovariate(1.0 / think)
            key = rng.choice(keys)
            if rng.random() < reads:
                yield client.get(key)
            else:
                yield write(key, f"{client.name}.{client.seq + 1};")

    def linearizable(self, **options: Any) -> check.CheckResult:
        """Check the history recorded so far (see labkit.check.linearizable)."""
        return check.linearizable(self.history, **options)

    def value(self, name: str, key: Hashable) -> Any:
        """The value of `key` in `name`'s state machine now."""
        return self.node(name).machine.data.get(key)
