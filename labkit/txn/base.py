"""What every protocol of `labkit.txn` builds on: names, knobs, the world the
nodes share, and `TxnNode`, a node with accounts, row locks and a write-ahead log.

`TxnConfig` holds the knobs every node shares; `World` what a cluster's nodes
share (who owns which account, the armed crash `Trap`s). `TxnNode` is a storage
engine in miniature: `log` (lazy) and `force` (durable before whatever depends
on it), crash points, row locks and readers' leases, and a client's `ask`
answered from the log. Each protocol's module subclasses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from labkit.errors import ConfigError, require_int, require_number
from labkit.net import Message, Network
from labkit.node import Node

PROTOCOLS = ("2pc", "paxos_commit", "saga", "tcc")
COORDINATOR_CRASHES = ("coordinator.before_prepare", "coordinator.after_votes",
                       "coordinator.after_decision")
PARTICIPANT_CRASHES = ("participant.before_vote", "participant.after_vote")
#: Where a node can be made to crash, by name (see `TxnCluster.crash_at`).
CRASH_POINTS = COORDINATOR_CRASHES + PARTICIPANT_CRASHES
COMMITTED, ABORTED, PREPARED = "committed", "aborted", "prepared"
BLOCKED, PENDING = "blocked", "pending"
CLIENT, AUDITOR, TM = "client", "auditor", "tm"
#: Message kinds between clients (or the auditor) and the system, left out of
#: the protocol's message counts.
CLIENT_KINDS = ("begin", "outcome", "ask", "ask_ok", "read", "read_ok")


@dataclasses.dataclass(frozen=True)
class TxnConfig:
    """The knobs every node of a TxnCluster shares.

    protocol: one of PROTOCOLS. coordinator: "colocated" (the node of the first
    leg coordinates) or "separate" (a node "tm" that holds no accounts).
    accounts: accounts per participant, each starting at `balance`.
    fsync: seconds one forced log write takes.
    timeout: a coordinator aborts if the votes are not in after this long; a
        participant in doubt asks again, and lost decisions are resent, this often.
    failures: F, the crashes Paxos Commit tolerates (it uses 2F + 1 acceptors).
    ttl: seconds a TCC reservation lives unless confirmed or cancelled.
    idempotent: saga participants remember the steps they did, so a duplicate
        request is answered, not applied again.
    fail_step: a saga step every participant refuses (an injected business
        failure), or None.
    read_lease: seconds an auditor's shared lock on a row lasts.
    """

    protocol: str = "2pc"
    coordinator: str = "colocated"
    accounts: int = 2
    balance: int = 100
    fsync: float = 0.0
    timeout: float = 0.1
    failures: int = 1
    ttl: float = 1.0
    idempotent: bool = True
    fail_step: int | None = None
    read_lease: float = 0.05

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got "
                              f"{self.protocol!r}")
        require_coordinator(self.protocol, self.coordinator)
        require_int("accounts", self.accounts, minimum=1)
        require_int("balance", self.balance, minimum=0)
        require_number("fsync", self.fsync, minimum=0.0)
        require_number("timeout", self.timeout, positive=True)
        require_int("failures", self.failures, minimum=0)
        require_number("ttl", self.ttl, positive=True)
        require_number("read_lease", self.read_lease, positive=True)
        if not isinstance(self.idempotent, bool):
            raise ConfigError(f"idempotent must be True or False, got "
                              f"{self.idempotent!r}")
        if self.fail_step is not None:
            require_int("fail_step", self.fail_step, minimum=0)


def require_coordinator(protocol: str, coordinator: str) -> None:
    """Where the coordinator runs: "colocated" (on the first leg's node) or
    "separate" (a node of its own); Paxos Commit only runs co-located."""
    if coordinator not in ("colocated", "separate"):
        raise ConfigError(f"coordinator must be 'colocated' or 'separate', got "
                          f"{coordinator!r}")
    if protocol == "paxos_commit" and coordinator == "separate":
        raise ConfigError("paxos_commit runs co-located: its leader is the "
                          "first leg's node and acceptors sit on participants")


def require_acceptors(protocol: str, participants: int, failures: int) -> None:
    """Paxos Commit tolerating F failures needs 2F + 1 acceptors, one on each
    participant."""
    if protocol == "paxos_commit" and participants < 2 * failures + 1:
        raise ConfigError(f"paxos_commit with failures={failures} needs at least "
                          f"{2 * failures + 1} participants for its acceptors, "
                          f"got {participants}")


class Trap(NamedTuple):
    """A crash armed at a named point: on `node` (any if None), for `txn` (the
    first to get there if None); the node restarts `restart_after` seconds
    later, or stays down if None."""

    point: str
    node: str | None
    txn: str | None
    restart_after: float | None


class World:
    """What every node of one cluster shares: the config, who owns which account,
    and the armed crash traps."""

    def __init__(self, config: TxnConfig, participants: Sequence[str]):
        self.config = config
        self.participants = list(participants)
        self.owners = {account_name(p, k): p for p in participants
                       for k in range(config.accounts)}
        self.traps: list[Trap] = []

    def accounts_of(self, node: str) -> list[str]:
        return [a for a, owner in self.owners.items() if owner == node]

    def take_trap(self, point: str, node: str, txn: str) -> Trap | None:
        """The first trap armed for this point, node and transaction (removed)."""
        for i, trap in enumerate(self.traps):
            if trap.point == point and trap.node in (None, node) \
                    and trap.txn in (None, txn):
                return self.traps.pop(i)
        return None

    def acceptors(self, leader: str) -> list[str]:
        """Paxos Commit's 2F + 1 acceptors: the leader's node and the next 2F
        participants in cluster order (wrapping around)."""
        i, n = self.participants.index(leader), len(self.participants)
        return [self.participants[(i + k) % n]
                for k in range(2 * self.config.failures + 1)]


def account_name(node: str, k: int) -> str:
    return f"{node}.{k}"


def nodes_of(legs: Iterable[tuple[str, int]], owners: dict[str, str]) -> tuple:
    """The nodes a transaction touches, in the order its legs name them."""
    return tuple(dict.fromkeys(owners[a] for a, _ in legs))


class TxnNode(Node):
    """A node with accounts, row locks and a write-ahead log on its disk.

    `disk["log"]` is the durable log and `disk["balances"]` the database;
    records written lazily wait in `tail` and die with the node. Subclasses
    add a protocol's rules and rebuild their state from the log in `recover`.
    """

    def __init__(self, name: str, net: Network, world: World):
        self.world, self.config = world, world.config
        super().__init__(name, net)

    def reset(self) -> None:
        disk = self.disk
        if "log" not in disk:                       # first boot: a fresh database
            disk.update(log=[], boots=0, balances={
                a: self.config.balance for a in self.world.accounts_of(self.name)})
        disk["boots"] += 1
        self.incarnation = disk["boots"]
        self.tail: list[tuple] = []
        self.locks: dict[str, str] = {}             # account -> txn holding it
        self.locked_at: dict[str, float] = {}
        # account -> reader's lease end. Leases die in a crash, but the readers
        # holding them do not: a node that ever granted one (its disk says so)
        # waits out the longest one it could have granted before it writes again.
        self.leases: dict[str, float] = dict.fromkeys(
            self.balances, self.sim.now + self.config.read_lease) \
            if disk.get("leased") and disk["boots"] > 1 else {}
        self.inflight: list[tuple] = []             # local ops being forced
        self.recover()

    def recover(self) -> None:
        """Rebuild volatile protocol state from `disk` (runs on every boot)."""

    @property
    def balances(self) -> dict[str, int]:
        return self.disk["balances"]

    # -- the write-ahead log ----------------------------------------------------
    def log(self, *record: Any) -> None:
        """Append a record lazily: durable only with the next forced write."""
        self.tail.append(record)

    def force(self, *record: Any, then: Callable[[], None] | None = None) -> None:
        """Append a record and make the log durable (`fsync` seconds), then call
        `then`: whatever depends on the record happens only after it is safe.
        A crash before the write completes loses it, and `then` never runs."""
        self.tail.append(record)
        if self.config.fsync == 0:
            self._forced(self.incarnation, record, then)
        else:
            self.sim.schedule(self.config.fsync, self._forced, self.incarnation,
                              record, then)

    def _forced(self, incarnation: int, record: tuple, then) -> None:
        if not self.alive or incarnation != self.incarnation:
            return
        self.disk["log"] += self.tail
        self.tail = []
        self.disk["forced"] = self.disk.get("forced", 0) + 1
        self.sim.metrics.counter("log.forced").inc()
        self.sim.record("log", self.name, self.name, record[0], note=str(record[1]))
        if then is not None:
            then()

    def records(self, *kinds: str) -> Iterable[tuple]:
        """Durable log records of these kinds, oldest first."""
        return (r for r in self.disk["log"] if r[0] in kinds)

    def last_record(self, txn: str, *kinds: str) -> tuple | None:
        """The newest durable record of these kinds about `txn`, or None."""
        return next((r for r in reversed(self.disk["log"])
                     if r[0] in kinds and r[1] == txn), None)

    # -- a client asking how its transaction ended --------------------------------
    def on_ask(self, msg: Message) -> None:
        """A client that missed the outcome of `txn` asks its coordinator. The
        answer comes from the durable log: committed or aborted once decided on
        disk, "pending" while the transaction runs (the client asks again). A
        transaction the coordinator has no trace of (never begun, or forgotten:
        presumed abort) is aborted for good first, so a late `begin` can never
        commit what the client was told is aborted."""
        outcome = self.decision(msg.txn)
        if outcome is not None:
            self.answer(msg, txn=msg.txn, outcome=outcome)
        else:
            self.refuse(msg.txn, then=lambda: self.answer(msg, txn=msg.txn,
                                                          outcome=ABORTED))

    def decision(self, txn: str) -> str | None:
        """As `txn`'s coordinator: committed or aborted if durably decided,
        PENDING while it runs, None if there is no trace of it
        (protocol-specific)."""
        raise NotImplementedError

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """Abort `txn` for good as its coordinator, forced, then call `then`
        (protocol-specific)."""
        raise NotImplementedError

    # -- messages and crash points ----------------------------------------------
    def tell(self, dst: str, kind: str, **body: Any) -> None:
        """Send a message, or, when `dst` is this node, hand it to our own handler
        right after the current event (no network hop, nothing counted)."""
        if dst != self.name:
            self.send(dst, kind, **body)
            return
        msg = Message(self.name, self.name, kind, body, -1)
        self.sim.schedule(0.0, self._local, self.incarnation, msg)

    def _local(self, incarnation: int, msg: Message) -> None:
        if self.alive and incarnation == self.incarnation:
            self.deliver(msg)

    def force_once(self, key: tuple, *record: Any,
                   then: Callable[[], None]) -> None:
        """Force a local operation unless the same one (`key`) is already being
        forced: a duplicate request gets its answer from the first."""
        if key in self.inflight:
            return
        self.inflight.append(key)

        def done() -> None:
            self.inflight.remove(key)
            then()
        self.force(*record, then=done)

    def answer(self, msg: Message, **body: Any) -> None:
        """Reply `<kind>_ok` to a request, which may have come from this node."""
        self.tell(msg.src, msg.kind + "_ok", **body)

    def backoff(self) -> float:
        """How long to wait before retrying a request that found its row busy:
        random, so retries do not fall into step with whatever holds the row."""
        return self.config.timeout * self.sim.rng(f"backoff:{self.name}").uniform(
            0.1, 0.5)

    def crash_point(self, point: str, txn: str) -> bool:
        """Crash here if a trap is armed for this point: True means this node is
        now down and the caller must stop."""
        trap = self.world.take_trap(point, self.name, txn)
        if trap is None:
            return False
        self.sim.record("crash_point", self.name, self.name, point, note=txn)
        self.kill()
        if trap.restart_after is not None:
            self.sim.schedule(trap.restart_after, self.restart)
        return True

    # -- rows: exclusive locks for writers, leases for readers --------------------
    def is_free(self, accounts: Iterable[str], txn: str) -> bool:
        """No other transaction holds these rows and no reader's lease is live."""
        now = self.sim.now
        return all(self.locks.get(a, txn) == txn and self.leases.get(a, 0.0) <= now
                   for a in accounts)

    def lock(self, accounts: Iterable[str], txn: str, since: float) -> None:
        for a in accounts:
            self.locks[a], self.locked_at[a] = txn, since

    def unlock(self, txn: str) -> None:
        """Release every row `txn` holds, recording how long each was held."""
        metrics = self.sim.metrics
        for a in [a for a, holder in self.locks.items() if holder == txn]:
            del self.locks[a]
            held = self.sim.now - self.locked_at.pop(a)
            metrics.histogram("lock.hold").add(held)
            metrics.histogram(f"lock.hold:{a}").add(held)

    def apply(self, legs: Iterable[tuple[str, int]]) -> None:
        for account, delta in legs:
            self.balances[account] += delta

    def mine(self, legs: Iterable[tuple[str, int]]) -> tuple:
        """The legs on this node's accounts."""
        return tuple(leg for leg in legs if self.world.owners[leg[0]] == self.name)

    def on_read(self, msg: Message) -> None:
        """An auditor's read: every balance here under a short shared lease, or
        "busy" if a writer holds a row."""
        if self.locks:
            self.reply(msg, round=msg.round, total=None)
            return
        until = self.sim.now + self.config.read_lease
        for a in self.balances:
            self.leases[a] = until
        self.disk["leased"] = True      # see reset
        self.reply(msg, round=msg.round, total=sum(self.balances.values()))
