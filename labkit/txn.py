"""Distributed transactions (分布式事务): money moved between accounts kept on
several nodes, all or nothing.

Every participant keeps its accounts and a write-ahead log on its disk: a
*forced* write is durable before the message that depends on it is sent; a
lazy write sits in a volatile tail and is lost in a crash. Four protocols:

- "2pc": two-phase commit with presumed abort (Mohan, Lindsay & Obermarck,
  "Transaction Management in the R* Distributed Database Management System",
  1986). Rows stay locked from prepare to decision, so a prepared participant
  blocks while its coordinator is down.
- "paxos_commit": Gray & Lamport, "Consensus on Transaction Commit" (2006):
  each participant's vote is chosen by a Paxos instance on 2F + 1 acceptors,
  so any F crashes, the coordinator's included, do not block it.
- "saga" (Garcia-Molina & Salem, 1987): one local transaction per leg, in
  order; if a step fails, the done steps are compensated in reverse order.
- "tcc" (try-confirm-cancel, 柔性事务): the debit's funds are reserved (frozen)
  first, then confirmed or cancelled; a reservation expires on its own.

`TxnCluster` runs one protocol on nodes n1..nN (plus "tm" for a separate
coordinator) with the shared fault verbs, crash points placed by name, and the
checks: `check_atomicity`, `check_conservation`, `check_no_lost_commits`,
`check_no_hanging_tries`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from labkit.errors import (
    ConfigError,
    InvariantViolation,
    require_int,
    require_number,
    require_probability,
)
from labkit.metrics import TimeSeries
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node

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
BALLOT0 = (0, 0, 0)      # Paxos Commit: the ballot only a participant itself uses


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
        if self.coordinator not in ("colocated", "separate"):
            raise ConfigError(f"coordinator must be 'colocated' or 'separate', got "
                              f"{self.coordinator!r}")
        if self.protocol == "paxos_commit" and self.coordinator == "separate":
            raise ConfigError("paxos_commit runs co-located: its leader is the "
                              "first leg's node and acceptors sit on participants")
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


class Prepared(NamedTuple):
    """What a participant forces to its log before voting yes: enough to finish
    the transaction after a crash (and to lock its rows again)."""

    txn: str
    coordinator: str
    legs: tuple            # this node's legs: ((account, delta), ...)
    participants: tuple
    client: str
    since: float           # when the rows were locked


# -- the node every protocol builds on --------------------------------------------

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
        self.leases: dict[str, float] = {}          # account -> reader's lease end
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
        self.reply(msg, round=msg.round, total=sum(self.balances.values()))


# -- two-phase commit and Paxos Commit share the participant's rules ----------------

class Resource(TxnNode):
    """A participant (resource manager) of an atomic commit protocol: on prepare
    it locks its rows (no-wait: a locked row means vote no), checks funds,
    forces a Prepared record and votes; it applies the decision when it learns
    it. After a crash it locks its in-doubt rows again and asks."""

    def recover(self) -> None:
        self.status: dict[str, str] = {}            # this participant's view per txn
        self.preparing: list[str] = []              # prepared record being forced
        self.doubt: dict[str, Prepared] = {}        # prepared, decision unknown
        for record in self.records(PREPARED, COMMITTED, ABORTED):
            kind, txn = record[0], record[1]
            self.status[txn] = kind
            if kind == PREPARED:
                self.doubt[txn] = record[2]
            else:
                self.doubt.pop(txn, None)
        for txn, info in self.doubt.items():
            self.lock([a for a, _ in info.legs], txn, info.since)
            self.set_timer(f"doubt:{txn}", self.config.timeout, self.in_doubt, txn)

    def outcomes(self) -> dict[str, str]:
        """This participant's view of each transaction it took part in: its
        durable log, overridden by what it knows in memory while it is up."""
        durable = {r[1]: r[0] for r in self.records(PREPARED, COMMITTED, ABORTED)}
        return {**durable, **self.status} if self.alive else durable

    def prepare(self, txn: str, coordinator: str, legs: tuple, participants: tuple,
                client: str) -> None:
        """Phase one at this participant."""
        state = self.status.get(txn)
        if state is not None or txn in self.preparing:
            if state in (PREPARED, ABORTED):    # the coordinator may have missed it
                self.vote(txn, state == PREPARED, coordinator, participants)
            return
        if self.crash_point("participant.before_vote", txn):
            return
        mine = self.mine(legs)
        accounts = [a for a, _ in mine]
        reason = None
        if not self.is_free(accounts, txn):
            reason = "locked"
        elif any(self.balances[a] + d < 0 for a, d in mine):
            reason = "funds"
        if reason is not None:
            self.sim.metrics.counter(f"vote.no.{reason}").inc()
            self.status[txn] = ABORTED
            self.log(ABORTED, txn)
            self.vote(txn, False, coordinator, participants)
            return
        info = Prepared(txn, coordinator, mine, participants, client, self.sim.now)
        self.lock(accounts, txn, self.sim.now)
        self.preparing.append(txn)
        self.force(PREPARED, txn, info, then=lambda: self._prepared(info))

    def _prepared(self, info: Prepared) -> None:
        self.preparing.remove(info.txn)
        self.status[info.txn], self.doubt[info.txn] = PREPARED, info
        self.vote(info.txn, True, info.coordinator, info.participants)
        if self.crash_point("participant.after_vote", info.txn):
            return
        self.set_timer(f"doubt:{info.txn}", self.config.timeout, self.in_doubt,
                       info.txn)

    def vote(self, txn: str, yes: bool, coordinator: str,
             participants: tuple) -> None:
        """Send this participant's vote (protocol-specific)."""
        raise NotImplementedError

    def in_doubt(self, txn: str) -> None:
        """Prepared and no decision after `timeout`: find out (protocol-specific)."""
        raise NotImplementedError

    def on_commit(self, msg: Message) -> None:
        txn = msg.txn
        if self.status.get(txn) == PREPARED:
            info = self.doubt.pop(txn)
            self.cancel_timer(f"doubt:{txn}")
            self.status[txn] = "committing"

            def committed() -> None:
                self.apply(info.legs)           # atomic with the durable record
                self.status[txn] = COMMITTED
                self.unlock(txn)
                self.acknowledge(txn, msg.src)
            self.force(COMMITTED, txn, then=committed)
        elif self.status.get(txn) == COMMITTED:
            self.acknowledge(txn, msg.src)

    def on_abort(self, msg: Message) -> None:
        if self.status.get(msg.txn) in (None, PREPARED) \
                and msg.txn not in self.preparing:
            self.abort(msg.txn)
            self.log(ABORTED, msg.txn)      # lazy: presumed abort needs no force

    def abort(self, txn: str) -> None:
        """Abort `txn` here: out of doubt, rows released, and a late prepare
        will now be refused."""
        if self.doubt.pop(txn, None) is not None:
            self.cancel_timer(f"doubt:{txn}")
            self.unlock(txn)
        self.status[txn] = ABORTED

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """Abort `txn` at this node (its coordinator's) and force the record:
        its own participant can then never vote yes, so it never commits."""
        self.abort(txn)
        self.force(ABORTED, txn, then=then)

    def acknowledge(self, txn: str, coordinator: str) -> None:
        """Tell the coordinator the commit is applied (2PC only)."""


class Round:
    """A coordinator's volatile record of one transaction it runs."""

    def __init__(self, txn: str, participants: tuple, client: str, phase: str):
        self.txn, self.participants = txn, participants
        self.client, self.phase = client, phase
        self.votes: dict[str, bool] = {}
        self.acks: list[str] = []


class TwoPhaseNode(Resource):
    """Two-phase commit with presumed abort: participant and coordinator rules.

    The coordinator forces a commit record before sending commit, and forgets
    the transaction once every participant has acknowledged; it logs nothing
    for an abort, and answers "abort" for any transaction it does not know.
    """

    def recover(self) -> None:
        super().recover()
        self.rounds: dict[str, Round] = {}
        self.initiating: dict[str, tuple] = {}
        ended = {r[1] for r in self.records("end")}
        for _, txn, participants, client in self.records("decided"):
            if txn not in ended:                     # resend until acknowledged
                self.rounds[txn] = Round(txn, participants, client, "committing")
                self.send_decision(txn)
                self.tell(client, "outcome", txn=txn, committed=True)

    def coordinator_of(self, legs: tuple) -> str:
        return TM if self.config.coordinator == "separate" \
            else self.world.owners[legs[0][0]]

    def on_begin(self, msg: Message) -> None:
        legs, participants = msg.legs, nodes_of(msg.legs, self.world.owners)
        coordinator = self.coordinator_of(legs)
        if coordinator == self.name:
            self.coordinate(msg.txn, legs, participants, msg.src, {})
        else:   # Gray & Lamport's initiating RM: prepare, then BeginCommit to TM
            self.initiating[msg.txn] = (legs, participants, msg.src)
            self.prepare(msg.txn, coordinator, legs, participants, msg.src)

    def vote(self, txn: str, yes: bool, coordinator: str,
             participants: tuple) -> None:
        if txn in self.initiating:
            legs, participants, client = self.initiating.pop(txn)
            if yes:
                self.tell(TM, "begin_commit", txn=txn, legs=legs,
                          participants=participants, client=client)
            else:
                self.tell(client, "outcome", txn=txn, committed=False)
            return
        self.tell(coordinator, "vote", txn=txn, yes=yes)

    def on_prepare(self, msg: Message) -> None:
        self.prepare(msg.txn, msg.src, msg.legs, msg.participants, msg.client)

    def in_doubt(self, txn: str) -> None:
        self.tell(self.doubt[txn].coordinator, "inquire", txn=txn)
        self.set_timer(f"doubt:{txn}", self.config.timeout, self.in_doubt, txn)

    def acknowledge(self, txn: str, coordinator: str) -> None:
        self.tell(coordinator, "ack", txn=txn)

    # -- the coordinator --------------------------------------------------------
    def on_begin_commit(self, msg: Message) -> None:
        self.coordinate(msg.txn, msg.legs, msg.participants, msg.client,
                        {msg.src: True})

    def coordinate(self, txn: str, legs: tuple, participants: tuple, client: str,
                   votes: dict[str, bool]) -> None:
        if txn in self.rounds or self.status.get(txn) == ABORTED \
                or self.crash_point("coordinator.before_prepare", txn):
            return                  # running, or aborted here (a late begin)
        r = self.rounds[txn] = Round(txn, participants, client, "voting")
        r.votes.update(votes)
        for p in participants:
            if p not in r.votes:
                self.tell(p, "prepare", txn=txn, legs=legs,
                          participants=participants, client=client)
        self.set_timer(f"votes:{txn}", self.config.timeout, self.decide, txn, False)
        self.tally(r)

    def on_vote(self, msg: Message) -> None:
        r = self.rounds.get(msg.txn)
        if r is None:
            if msg.yes:                     # presumed abort: unknown means aborted
                self.tell(msg.src, "abort", txn=msg.txn)
            return
        if r.phase == "committing" and msg.yes:
            self.tell(msg.src, "commit", txn=msg.txn)
        if r.phase != "voting":
            return
        r.votes[msg.src] = msg.yes
        if not msg.yes:
            self.decide(msg.txn, False)
        else:
            self.tally(r)

    def tally(self, r: Round) -> None:
        if all(r.votes.get(p) for p in r.participants):
            if not self.crash_point("coordinator.after_votes", r.txn):
                self.decide(r.txn, True)

    def decide(self, txn: str, commit: bool) -> None:
        r = self.rounds.get(txn)
        if r is None or r.phase != "voting":
            return
        self.cancel_timer(f"votes:{txn}")
        if not commit:              # presumed abort: nothing logged, nothing kept
            del self.rounds[txn]
            for p in r.participants:
                if r.votes.get(p) is not False:
                    self.tell(p, "abort", txn=txn)
            self.tell(r.client, "outcome", txn=txn, committed=False)
            return
        r.phase = "logging"

        def logged() -> None:
            r.phase = "committing"
            if self.crash_point("coordinator.after_decision", txn):
                return
            self.send_decision(txn)
            self.tell(r.client, "outcome", txn=txn, committed=True)
        self.force("decided", txn, r.participants, r.client, then=logged)

    def send_decision(self, txn: str) -> None:
        r = self.rounds[txn]
        for p in r.participants:
            if p not in r.acks:
                self.tell(p, "commit", txn=txn)
        self.set_timer(f"commit:{txn}", self.config.timeout, self.send_decision, txn)

    def on_ack(self, msg: Message) -> None:
        r = self.rounds.get(msg.txn)
        if r is None or r.phase != "committing":
            return
        if msg.src not in r.acks:
            r.acks.append(msg.src)
        if len(r.acks) == len(r.participants):
            self.cancel_timer(f"commit:{msg.txn}")
            self.log("end", msg.txn)        # lazy: if lost, commit is resent
            del self.rounds[msg.txn]

    def decision(self, txn: str) -> str | None:
        """Committed once the commit record is forced; with no round and no
        record, nothing (presumed abort: `refuse` makes it final)."""
        r = self.rounds.get(txn)
        if r is not None:
            return COMMITTED if r.phase == "committing" else PENDING
        if self.last_record(txn, "decided") is not None:
            return COMMITTED
        return PENDING if txn in self.preparing else None

    def on_inquire(self, msg: Message) -> None:
        r = self.rounds.get(msg.txn)
        if r is None:
            self.tell(msg.src, "abort", txn=msg.txn)        # presumed abort
        elif r.phase == "committing":
            self.tell(msg.src, "commit", txn=msg.txn)
        # still voting: the vote timer decides soon, and the asker asks again


class Leader:
    """A Paxos Commit leader's volatile record of one transaction: the normal
    leader at ballot 0, or a recovery leader at a higher ballot."""

    def __init__(self, txn: str, participants: tuple, acceptors: tuple, client: str,
                 ballot: tuple, phase: str):
        self.txn, self.participants, self.acceptors = txn, participants, acceptors
        self.client, self.ballot, self.phase = client, ballot, phase
        self.promises: dict[str, tuple] = {}        # acceptor -> its phase 1b votes
        self.accepted: dict[str, dict[str, str]] = {}   # acceptor -> {instance: value}
        self.proposal: tuple = ()


class PaxosCommitNode(Resource):
    """Paxos Commit (Gray & Lamport 2006, §4): participant, acceptor and leader.

    Each participant's vote is one Paxos instance. At ballot 0 only the
    participant itself proposes, so it skips phase 1 and sends its phase 2a
    straight to F + 1 acceptors; an acceptor forces the whole bundle of votes
    once and answers the leader with one phase 2b. Any node in doubt for
    `timeout` becomes a recovery leader: phase 1 at a higher ballot on all
    2F + 1 acceptors, re-proposing what they accepted and "aborted" for any
    instance with no accepted vote, so F crashed nodes never block it.
    """

    def recover(self) -> None:
        self.disk.setdefault("acceptor", {})
        self.buffer: dict[str, dict[str, str]] = {}   # ballot-0 votes not yet forced
        self.leading: dict[str, Leader] = {}
        self.attempts = 0
        self.rng = self.sim.rng(f"paxos_commit:{self.name}")
        super().recover()

    # -- participant ------------------------------------------------------------
    def on_begin(self, msg: Message) -> None:
        txn = msg.txn
        if txn in self.leading or txn in self.status \
                or self.crash_point("coordinator.before_prepare", txn):
            return
        participants = nodes_of(msg.legs, self.world.owners)
        acceptors = tuple(self.world.acceptors(self.name))
        self.leading[txn] = Leader(txn, participants, acceptors, msg.src, BALLOT0,
                                   "accept")
        for p in participants:
            self.tell(p, "prepare", txn=txn, legs=msg.legs, participants=participants,
                      client=msg.src)
        self.set_timer(f"lead:{txn}", self.config.timeout, self.lead, txn)

    def on_prepare(self, msg: Message) -> None:
        self.prepare(msg.txn, msg.src, msg.legs, msg.participants, msg.client)

    def decision(self, txn: str) -> str | None:
        """The leader keeps no decision log: its own participant's record says
        committed (forced); prepared, or leading, means Paxos is still choosing.
        Aborted, or never prepared here: `refuse` forces the abort."""
        state = self.status.get(txn)
        if state == COMMITTED:
            return COMMITTED
        if state in (PREPARED, "committing") or txn in self.preparing \
                or txn in self.leading:
            return PENDING
        return None

    def vote(self, txn: str, yes: bool, coordinator: str,
             participants: tuple) -> None:
        votes = ((self.name, PREPARED if yes else ABORTED),)
        for a in self.world.acceptors(coordinator)[:self.config.failures + 1]:
            self.tell(a, "phase2a", txn=txn, ballot=BALLOT0, votes=votes,
                      participants=participants, leader=coordinator)

    def in_doubt(self, txn: str) -> None:
        if txn not in self.leading:
            self.lead(txn)
        self.set_timer(f"doubt:{txn}", self.config.timeout, self.in_doubt, txn)

    # -- acceptor ---------------------------------------------------------------
    def promised(self, txn: str) -> tuple:
        state = self.disk["acceptor"].get(txn)
        return state["mbal"] if state else BALLOT0

    def on_phase2a(self, msg: Message) -> None:
        txn, ballot, votes = msg.txn, msg.ballot, msg.votes
        if ballot < self.promised(txn):
            return
        if ballot == BALLOT0 and votes[0][1] == PREPARED:
            waiting = self.buffer.setdefault(txn, {})   # force all N votes at once
            waiting.update(votes)
            if len(waiting) < len(msg.participants):
                return
            votes = tuple(self.buffer.pop(txn).items())
        self.accept(txn, ballot, votes, msg.leader)

    def accept(self, txn: str, ballot: tuple, votes: tuple, leader: str) -> None:
        def accepted() -> None:
            state = self.disk["acceptor"].setdefault(txn, {"mbal": BALLOT0,
                                                           "votes": {}})
            if ballot < state["mbal"]:          # promised higher while forcing
                return
            state["mbal"] = ballot
            state["votes"].update((inst, (ballot, value)) for inst, value in votes)
            self.tell(leader, "phase2b", txn=txn, ballot=ballot, votes=votes)
        self.force("accepted", txn, ballot, votes, then=accepted)

    def on_phase1a(self, msg: Message) -> None:
        txn, ballot = msg.txn, msg.ballot
        if ballot <= self.promised(txn):
            return

        def promised() -> None:
            state = self.disk["acceptor"].setdefault(txn, {"mbal": BALLOT0,
                                                           "votes": {}})
            if ballot <= state["mbal"]:
                return
            state["mbal"] = ballot
            self.buffer.pop(txn, None)          # those ballot-0 votes are now too late
            self.tell(msg.src, "phase1b", txn=txn, ballot=ballot,
                      votes=tuple(state["votes"].items()))
        self.force("promised", txn, ballot, then=promised)

    # -- leader -----------------------------------------------------------------
    def lead(self, txn: str) -> None:
        """Start (or restart) Paxos for every instance of `txn` at a fresh ballot."""
        if self.status.get(txn) in (COMMITTED, ABORTED, "committing"):
            self.leading.pop(txn, None)
            return
        old, info = self.leading.get(txn), self.doubt.get(txn)
        if old is not None:
            participants, acceptors, client = old.participants, old.acceptors, \
                old.client
        elif info is not None:
            participants, client = info.participants, info.client
            acceptors = tuple(self.world.acceptors(info.coordinator))
        else:
            return
        self.attempts += 1      # (attempt, boot, node) is never used twice
        ballot = (self.attempts, self.incarnation,
                  self.world.participants.index(self.name) + 1)
        self.leading[txn] = Leader(txn, participants, acceptors, client, ballot,
                                   "promise")
        for a in acceptors:
            self.tell(a, "phase1a", txn=txn, ballot=ballot)
        # A random extra wait keeps two recovery leaders from duelling forever.
        self.set_timer(f"lead:{txn}", self.config.timeout * (1 + self.rng.random()),
                       self.lead, txn)

    def on_phase1b(self, msg: Message) -> None:
        leader = self.leading.get(msg.txn)
        if leader is None or leader.ballot != msg.ballot or leader.phase != "promise":
            return
        leader.promises[msg.src] = msg.votes
        if len(leader.promises) <= self.config.failures:
            return
        best: dict[str, tuple] = {}
        for votes in leader.promises.values():
            for inst, (ballot, value) in votes:
                if inst not in best or ballot > best[inst][0]:
                    best[inst] = (ballot, value)
        leader.proposal = tuple((p, best[p][1] if p in best else ABORTED)
                                for p in leader.participants)
        leader.phase = "accept"
        for a in leader.acceptors:
            self.tell(a, "phase2a", txn=msg.txn, ballot=leader.ballot,
                      votes=leader.proposal, participants=leader.participants,
                      leader=self.name)

    def on_phase2b(self, msg: Message) -> None:
        leader = self.leading.get(msg.txn)
        if leader is None or leader.ballot != msg.ballot or leader.phase != "accept":
            return
        got = leader.accepted.setdefault(msg.src, {})
        got.update(msg.votes)
        quorum = self.config.failures + 1
        if leader.ballot == BALLOT0:
            # Only the participant proposes at ballot 0, so one "aborted" from it
            # means "prepared" can never be chosen: abort at once.
            if ABORTED in got.values():
                self.decide(leader, False)
                return
            chosen = all(sum(v.get(p) == PREPARED for v in leader.accepted.values())
                         >= quorum for p in leader.participants)
            commit = True
        else:
            chosen = len(leader.accepted) >= quorum
            commit = all(value == PREPARED for _, value in leader.proposal)
        if chosen and not self.crash_point("coordinator.after_votes", msg.txn):
            self.decide(leader, commit)

    def decide(self, leader: Leader, commit: bool) -> None:
        txn = leader.txn
        del self.leading[txn]
        self.cancel_timer(f"lead:{txn}")
        if self.crash_point("coordinator.after_decision", txn):
            return
        for p in leader.participants:
            self.tell(p, "commit" if commit else "abort", txn=txn)
        self.tell(leader.client, "outcome", txn=txn, committed=commit)


# -- flexible transactions (柔性事务) ------------------------------------------------

class Saga:
    """An orchestrator's record of one saga: the next step to do, or, after a
    step failed, the next step to compensate."""

    def __init__(self, txn: str, legs: tuple, client: str):
        self.txn, self.legs, self.client = txn, legs, client
        self.next = 0
        self.failed_at: int | None = None
        self.undo = -1


class SagaNode(TxnNode):
    """A saga (Garcia-Molina & Salem 1987): each leg is a local transaction,
    committed at once and visible to everyone. The orchestrator runs the steps
    in order and retries each until it gets an answer (forward recovery); if a
    step fails it compensates the done steps in reverse order (backward
    recovery). Participants remember what they did per (saga, step), so a
    retried or duplicated request is answered, not applied twice."""

    def recover(self) -> None:
        self.disk.setdefault("done", {})    # (txn, step, "do"/"undo") -> result
        self.sagas: dict[str, Saga] = {}
        self.ended = {r[1]: r[2] for r in self.records("saga_end")}
        for _, txn, legs, client in self.records("saga"):
            if txn not in self.ended:
                self.sagas[txn] = Saga(txn, legs, client)
        for kind, txn, step in self.records("saga_step", "saga_failed",
                                            "saga_undone"):
            s = self.sagas.get(txn)
            if s is None:
                continue
            if kind == "saga_step":
                s.next = step + 1
            elif kind == "saga_failed":
                s.failed_at, s.undo = step, step - 1
            else:
                s.undo = step - 1
        for txn in self.sagas:      # lazy progress records may be behind: redo is safe
            self.step(txn)

    # -- participant ------------------------------------------------------------
    def local(self, msg: Message, kind: str, delta: int,
              check: Callable[[], str]) -> None:
        """Run one local step: answer a remembered result, "busy" if the row is
        held, else force the step and apply it if `check()` says "ok"."""
        done, key = self.disk["done"], (msg.txn, msg.step, kind)
        if self.config.idempotent and key in done:
            self.answer(msg, txn=msg.txn, step=msg.step, result=done[key])
            return
        if not self.is_free([msg.account], msg.txn):
            self.answer(msg, txn=msg.txn, step=msg.step, result="busy")
            return
        if key in self.inflight:
            return
        result = check()
        self.lock([msg.account], msg.txn, self.sim.now)

        def applied() -> None:
            if result == "ok":
                self.apply(((msg.account, delta),))
            done[key] = result
            self.unlock(msg.txn)
            self.answer(msg, txn=msg.txn, step=msg.step, result=result)
            if kind == "do":
                self.crash_point("participant.after_vote", msg.txn)
        self.force_once(key, "saga_" + kind, msg.txn, msg.step, result, then=applied)

    def on_saga_do(self, msg: Message) -> None:
        if (msg.txn, msg.step, "do") not in self.disk["done"] \
                and self.crash_point("participant.before_vote", msg.txn):
            return

        def check() -> str:
            fails = msg.step == self.config.fail_step or \
                self.balances[msg.account] + msg.delta < 0
            return "failed" if fails else "ok"
        self.local(msg, "do", msg.delta, check)

    def on_saga_undo(self, msg: Message) -> None:
        def check() -> str:     # a compensation must not fail; it may overdraw
            if self.balances[msg.account] - msg.delta < 0:
                self.sim.metrics.counter("saga.overdrafts").inc()
            return "ok"
        self.local(msg, "undo", -msg.delta, check)

    # -- orchestrator -----------------------------------------------------------
    def on_begin(self, msg: Message) -> None:
        txn = msg.txn
        if txn in self.sagas or txn in self.ended \
                or self.crash_point("coordinator.before_prepare", txn):
            return
        self.sagas[txn] = Saga(txn, msg.legs, msg.src)
        self.force("saga", txn, msg.legs, msg.src, then=lambda: self.step(txn))

    def step(self, txn: str) -> None:
        """Send the saga's current request (again, after a timeout)."""
        s = self.sagas[txn]
        if s.failed_at is None and s.next == len(s.legs):
            self.finish(s, True)
            return
        if s.failed_at is not None and s.undo < 0:
            self.finish(s, False)
            return
        i, kind = (s.next, "saga_do") if s.failed_at is None else (s.undo, "saga_undo")
        account, delta = s.legs[i]
        self.tell(self.world.owners[account], kind, txn=txn, step=i, account=account,
                  delta=delta)
        self.set_timer(f"saga:{txn}", self.config.timeout, self.step, txn)

    def on_saga_do_ok(self, msg: Message) -> None:
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is not None or msg.step != s.next:
            return                      # a duplicate or a late answer
        if msg.result == "busy":
            self.set_timer(f"saga:{s.txn}", self.backoff(), self.step, s.txn)
            return
        if msg.result == "ok":
            s.next += 1
            self.log("saga_step", s.txn, msg.step)
            if self.crash_point("coordinator.after_votes", s.txn):
                return
        else:
            s.failed_at, s.undo = msg.step, msg.step - 1
            self.log("saga_failed", s.txn, msg.step)
        self.step(s.txn)

    def on_saga_undo_ok(self, msg: Message) -> None:
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is None or msg.step != s.undo:
            return
        if msg.result == "busy":
            self.set_timer(f"saga:{s.txn}", self.backoff(), self.step, s.txn)
            return
        s.undo -= 1
        self.log("saga_undone", s.txn, msg.step)
        self.step(s.txn)

    def decision(self, txn: str) -> str | None:
        """Ended once its "saga_end" record is forced; running (or finishing)
        until then."""
        end = self.last_record(txn, "saga_end")
        if end is not None:
            return COMMITTED if end[2] else ABORTED
        return PENDING if txn in self.sagas or txn in self.ended else None

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """End a saga that never began as aborted: `on_begin` now ignores it."""
        self.ended[txn] = False
        self.force("saga_end", txn, False, then=then)

    def finish(self, s: Saga, completed: bool) -> None:
        self.cancel_timer(f"saga:{s.txn}")
        del self.sagas[s.txn]
        self.ended[s.txn] = completed

        def logged() -> None:
            if not self.crash_point("coordinator.after_decision", s.txn):
                self.tell(s.client, "outcome", txn=s.txn, committed=completed)
        self.force("saga_end", s.txn, completed, then=logged)


#: The request a TCC orchestrator sends to each leg in each phase.
TCC_REQUESTS = {"trying": "tcc_try", "confirming": "tcc_confirm",
                "cancelling": "tcc_cancel"}


class Tcc:
    """An orchestrator's record of one TCC transaction."""

    def __init__(self, txn: str, legs: tuple, client: str):
        self.txn, self.legs, self.client = txn, legs, client
        self.phase = "trying"           # then deciding, confirming or cancelling
        self.done: list[str] = []       # accounts whose current op is answered


class TccNode(TxnNode):
    """Try-confirm-cancel. Try reserves: the debit's funds are frozen (still in
    the balance, no longer available) for `ttl` seconds; a credit is recorded
    as pending. Confirm makes a reservation real, cancel releases it. The
    orchestrator confirms the debit first, so if that reservation has expired it
    can still cancel the credits. Participants guard against the classic TCC
    hazards: idempotent confirm/cancel, an "empty rollback" (cancel before try)
    and a "hanging" try (a try that arrives after its cancel is refused)."""

    def recover(self) -> None:
        disk = self.disk
        for field in ("tcc", "held", "frozen"):
            disk.setdefault(field, {})
        for key, (delta, expires) in disk["held"].items():
            if delta < 0:
                self.set_timer(f"expire:{key}", max(0.0, expires - self.sim.now),
                               self.expire, key)
        self.tccs: dict[str, Tcc] = {}
        self.ended = {r[1]: r[2] for r in self.records("tcc_end")}
        decided = {r[1]: r[2] for r in self.records("tcc_decision")}
        for _, txn, legs, client in self.records("tcc"):
            if txn in self.ended:
                continue
            t = self.tccs[txn] = Tcc(txn, legs, client)
            if txn in decided:
                t.phase = "confirming" if decided[txn] else "cancelling"
                self.send_ops(t)
            else:
                self.decide(t, False)   # presumed abort: undecided means cancel

    def available(self, account: str) -> int:
        return self.balances[account] - self.disk["frozen"].get(account, 0)

    # -- participant ------------------------------------------------------------
    def respond(self, msg: Message, result: str) -> None:
        self.answer(msg, txn=msg.txn, account=msg.account, result=result)

    def leg_state(self, key: tuple) -> str | None:
        """A leg's state as a try must see it: the durable one, or "cancelled"
        from the moment a cancel is accepted, while its record is still being
        forced. The anti-hanging rule: once a cancel has been seen, every try
        for that leg is refused, one whose own write is in flight included."""
        state = self.disk["tcc"].get(key)
        return "cancelled" if state is None and ("cancel", key) in self.inflight \
            else state

    def on_tcc_try(self, msg: Message) -> None:
        key = (msg.txn, msg.account)
        state = self.leg_state(key)
        if state is not None:       # a duplicate, or a try hanging after its cancel
            self.respond(msg, "ok" if state in ("reserved", "confirmed") else "refused")
            return
        if self.crash_point("participant.before_vote", msg.txn):
            return
        if not self.is_free([msg.account], msg.txn):
            self.respond(msg, "busy")
            return
        if ("try", key) in self.inflight:
            return
        if msg.delta < 0 and self.available(msg.account) + msg.delta < 0:
            self.respond(msg, "refused")
            return
        self.lock([msg.account], msg.txn, self.sim.now)

        def reserved() -> None:
            self.unlock(msg.txn)
            if self.leg_state(key) is not None:     # its cancel came while forcing
                self.respond(msg, "refused")
                return
            self.disk["tcc"][key] = "reserved"
            self.disk["held"][key] = (msg.delta, self.sim.now + self.config.ttl)
            if msg.delta < 0:
                frozen = self.disk["frozen"]
                frozen[msg.account] = frozen.get(msg.account, 0) - msg.delta
                self.set_timer(f"expire:{key}", self.config.ttl, self.expire, key)
            self.respond(msg, "ok")
            self.crash_point("participant.after_vote", msg.txn)
        self.force_once(("try", key), "tcc_try", msg.txn, msg.account, msg.delta,
                        then=reserved)

    def release(self, key: tuple, state: str) -> None:
        """End a reservation: unfreeze its funds and record how it ended."""
        delta, _ = self.disk["held"].pop(key)
        if delta < 0:
            self.disk["frozen"][key[1]] += delta
        self.disk["tcc"][key] = state
        self.cancel_timer(f"expire:{key}")

    def expire(self, key: tuple) -> None:
        def expired() -> None:
            if self.disk["tcc"].get(key) == "reserved":
                self.release(key, "expired")
                self.sim.metrics.counter("tcc.expired").inc()
        self.force_once(("expire", key), "tcc_expire", key[0], key[1], then=expired)

    def on_tcc_confirm(self, msg: Message) -> None:
        key = (msg.txn, msg.account)
        if self.disk["tcc"].get(key) != "reserved":
            self.respond(msg, "ok" if self.disk["tcc"].get(key) == "confirmed"
                        else "expired")
            return
        if not self.is_free([msg.account], msg.txn):
            self.respond(msg, "busy")
            return

        def confirmed() -> None:
            if self.disk["tcc"].get(key) != "reserved":     # expired meanwhile
                self.respond(msg, "ok" if self.disk["tcc"].get(key) == "confirmed"
                             else "expired")
                return
            delta = self.disk["held"][key][0]
            self.release(key, "confirmed")
            self.apply(((msg.account, delta),))
            self.respond(msg, "ok")
        self.force_once(("confirm", key), "tcc_confirm", msg.txn, msg.account,
                        then=confirmed)

    def on_tcc_cancel(self, msg: Message) -> None:
        key = (msg.txn, msg.account)
        if self.disk["tcc"].get(key) in ("cancelled", "expired", "confirmed"):
            self.respond(msg, "ok")
            return
        if not self.is_free([msg.account], msg.txn):
            self.respond(msg, "busy")
            return

        def cancelled() -> None:
            state = self.disk["tcc"].get(key)
            if state == "reserved":
                self.release(key, "cancelled")
            elif state is None:         # empty rollback: the try never got here
                self.disk["tcc"][key] = "cancelled"
                self.sim.metrics.counter("tcc.empty_rollbacks").inc()
            self.respond(msg, "ok")
        self.force_once(("cancel", key), "tcc_cancel", msg.txn, msg.account,
                        then=cancelled)

    # -- orchestrator -----------------------------------------------------------
    def on_begin(self, msg: Message) -> None:
        txn = msg.txn
        if txn in self.tccs or txn in self.ended \
                or self.crash_point("coordinator.before_prepare", txn):
            return
        t = self.tccs[txn] = Tcc(txn, msg.legs, msg.src)
        self.force("tcc", txn, msg.legs, msg.src, then=lambda: self.send_ops(t))

    def send_ops(self, t: Tcc) -> None:
        """Send the current phase's request to every leg not yet answered (in
        the confirm phase: the debit first, the credits once it is confirmed)."""
        legs = [leg for leg in t.legs if leg[0] not in t.done]
        kind = TCC_REQUESTS[t.phase]
        if t.phase == "confirming" and any(d < 0 for _, d in legs):
            legs = [leg for leg in legs if leg[1] < 0]
        for account, delta in legs:
            self.tell(self.world.owners[account], kind, txn=t.txn, account=account,
                      delta=delta)
        # Tries get one deadline, then the transaction is cancelled; confirms
        # and cancels are resent until every leg has answered.
        if t.phase == "trying":
            self.set_timer(f"tcc:{t.txn}", self.config.timeout, self.decide, t, False)
        else:
            self.set_timer(f"tcc:{t.txn}", self.config.timeout, self.send_ops, t)

    def resend(self, t: Tcc, account: str) -> None:
        """Ask one leg again after it answered "busy" (if still pending)."""
        delta = dict(t.legs)[account]
        kind = TCC_REQUESTS.get(t.phase)
        if kind is not None and account not in t.done:
            self.tell(self.world.owners[account], kind, txn=t.txn, account=account,
                      delta=delta)

    def on_tcc_try_ok(self, msg: Message) -> None:
        t = self.tccs.get(msg.txn)
        if t is None or t.phase != "trying" or msg.account in t.done:
            return
        if msg.result == "busy":
            self.set_timer(f"again:{t.txn}:{msg.account}", self.backoff(),
                           self.resend, t, msg.account)
        elif msg.result == "refused":
            self.decide(t, False)
        else:
            t.done.append(msg.account)
            if len(t.done) == len(t.legs) \
                    and not self.crash_point("coordinator.after_votes", t.txn):
                self.decide(t, True)

    def decide(self, t: Tcc, confirm: bool) -> None:
        t.phase = "deciding"
        self.cancel_timer(f"tcc:{t.txn}")
        for account, _ in t.legs:   # a retry of the old phase must not fire in the new
            self.cancel_timer(f"again:{t.txn}:{account}")

        def decided() -> None:
            t.phase, t.done = ("confirming" if confirm else "cancelling"), []
            if not self.crash_point("coordinator.after_decision", t.txn):
                self.send_ops(t)
        self.force("tcc_decision", t.txn, confirm, then=decided)

    def on_tcc_confirm_ok(self, msg: Message) -> None:
        t = self.tccs.get(msg.txn)
        if t is None or t.phase != "confirming" or msg.account in t.done:
            return
        if msg.result == "busy":
            self.set_timer(f"again:{t.txn}:{msg.account}", self.backoff(),
                           self.resend, t, msg.account)
        elif msg.result == "expired":   # only the debit can expire: cancel the rest
            self.decide(t, False)
        else:
            t.done.append(msg.account)
            if len(t.done) == len(t.legs):
                self.finish(t, True)
            elif dict(t.legs)[msg.account] < 0:     # the debit is in: the credits
                self.send_ops(t)

    def on_tcc_cancel_ok(self, msg: Message) -> None:
        t = self.tccs.get(msg.txn)
        if t is None or t.phase != "cancelling" or msg.account in t.done:
            return
        if msg.result == "busy":
            self.set_timer(f"again:{t.txn}:{msg.account}", self.backoff(),
                           self.resend, t, msg.account)
            return
        t.done.append(msg.account)
        if len(t.done) == len(t.legs):
            self.finish(t, False)

    def decision(self, txn: str) -> str | None:
        """The "tcc_end" record is lazy, but it follows a forced decision, and
        redoing that decision's confirms or cancels ends the same way."""
        if txn in self.tccs:
            return PENDING
        if txn not in self.ended:
            return None
        last = self.last_record(txn, "tcc_decision", "tcc_end")
        if last is None:                # its refusal is being forced
            return PENDING
        return COMMITTED if last[2] else ABORTED

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """End a TCC transaction that never began as cancelled: `on_begin` now
        ignores it."""
        self.ended[txn] = False
        self.force("tcc_end", txn, False, then=then)

    def finish(self, t: Tcc, confirmed: bool) -> None:
        self.cancel_timer(f"tcc:{t.txn}")
        del self.tccs[t.txn]
        self.ended[t.txn] = confirmed
        self.log("tcc_end", t.txn, confirmed)   # lazy: if lost, the ops are resent
        self.tell(t.client, "outcome", txn=t.txn, committed=confirmed)


# -- clients, the auditor, the cluster ------------------------------------------------

@dataclasses.dataclass
class TxnRecord:
    """What a client knows of one transaction it submitted."""

    txn: str
    legs: tuple
    submitted: float
    outcome: str | None = None          # committed / aborted, once told
    finished: float | None = None


class TxnClient(Node):
    """Submits transactions and learns their outcomes (it never crashes). The
    coordinator tells it once; that message may be lost, or never sent by a
    coordinator that crashed, so until it knows, the client asks the
    coordinator by transaction id every `ask_every` seconds."""

    def __init__(self, name: str, net: Network, ask_every: float):
        self.ask_every = ask_every      # set first: Node.__init__ calls reset()
        super().__init__(name, net)

    def reset(self) -> None:
        self.records: dict[str, TxnRecord] = {}

    def submit(self, legs: tuple, entry: str, coordinator: str) -> str:
        """Send `begin` to `entry`; ask `coordinator` later if not told."""
        txn = f"t{len(self.records) + 1}"
        self.records[txn] = TxnRecord(txn, legs, self.sim.now)
        self.sim.metrics.counter("txn.submitted").inc()
        self.send(entry, "begin", txn=txn, legs=legs)
        self.set_timer(f"ask:{txn}", self.ask_every, self.ask, txn, coordinator)
        return txn

    def ask(self, txn: str, coordinator: str) -> None:
        self.sim.metrics.counter("txn.asks").inc()
        self.send(coordinator, "ask", txn=txn)
        self.set_timer(f"ask:{txn}", self.ask_every, self.ask, txn, coordinator)

    def on_outcome(self, msg: Message) -> None:
        self.learn(msg.txn, COMMITTED if msg.committed else ABORTED)

    def on_ask_ok(self, msg: Message) -> None:
        if msg.outcome != PENDING:          # still running: the timer asks again
            self.learn(msg.txn, msg.outcome)

    def learn(self, txn: str, outcome: str) -> None:
        record = self.records.get(txn)
        if record is None or record.outcome is not None:
            return                                  # told twice: the first wins
        self.cancel_timer(f"ask:{txn}")
        record.outcome, record.finished = outcome, self.sim.now
        self.sim.metrics.counter(f"txn.{outcome}").inc()
        if outcome == COMMITTED:
            self.sim.metrics.histogram("txn.latency").add(self.sim.now -
                                                          record.submitted)


class Auditor(Node):
    """Every `every` seconds, reads every participant's balances under a short
    shared lease and records the total it saw, as any client could. It keeps a
    read only if all the leases overlapped (every answer came back within one
    lease), so what it saw is one consistent moment of the committed state."""

    def __init__(self, name: str, net: Network, world: World, every: float,
                 expected: int):
        self.world, self.every, self.expected = world, every, expected
        super().__init__(name, net)

    def reset(self) -> None:
        self.round, self.started, self.failed = 0, 0.0, False
        self.replies: dict[str, int] = {}
        self.set_timer("audit", self.every, self.audit)

    def audit(self) -> None:
        self.round += 1
        self.started, self.failed, self.replies = self.sim.now, False, {}
        for p in self.world.participants:
            self.send(p, "read", round=self.round)
        self.set_timer("audit", self.every, self.audit)

    def on_read_ok(self, msg: Message) -> None:
        if msg.round != self.round or self.failed:
            return
        metrics = self.sim.metrics
        if msg.total is None:
            self.failed = True
            metrics.counter("audit.busy").inc()
            return
        self.replies[msg.src] = msg.total
        if len(self.replies) < len(self.world.participants):
            return
        if self.sim.now - self.started >= self.world.config.read_lease:
            metrics.counter("audit.late").inc()     # leases may not have overlapped
            return
        total = sum(self.replies.values())
        metrics.series("audit.total").add(self.sim.now, total)
        metrics.counter("audit.reads").inc()
        if total != self.expected:
            metrics.counter("audit.anomalies").inc()


NODE_TYPES: dict[str, type[TxnNode]] = {"2pc": TwoPhaseNode,
                                        "paxos_commit": PaxosCommitNode,
                                        "saga": SagaNode, "tcc": TccNode}


class TxnCluster(Cluster):
    """Participants n1..nN, each holding `accounts` accounts ("n1.0", "n1.1", ...)
    of `balance` each, running one protocol; plus "tm" when the coordinator is
    separate, a client that submits transfers (and asks the coordinator for
    an outcome it has not heard every `ask_every` seconds) and, with
    `audit_every`, an auditor. Client and auditor stay outside partitions and
    never crash.

    Other knobs are TxnConfig's. `crash_at` places a crash at a named point;
    `settle` stops the faults and lets everything finish; `check` runs the
    invariants.
    """

    def __init__(self, protocol: str = "2pc", participants: int = 3, *, seed: int = 0,
                 net: NetConfig | None = None, coordinator: str = "colocated",
                 accounts: int = 2, balance: int = 100, fsync: float = 0.0,
                 timeout: float = 0.1, failures: int = 1, ttl: float = 1.0,
                 idempotent: bool = True, fail_step: int | None = None,
                 read_lease: float = 0.05, audit_every: float | None = None,
                 ask_every: float = 0.5, trace: bool = True):
        config = TxnConfig(protocol, coordinator, accounts, balance, fsync, timeout,
                           failures, ttl, idempotent, fail_step, read_lease)
        size = require_int("participants", participants, minimum=1)
        if protocol == "paxos_commit" and size < 2 * failures + 1:
            raise ConfigError(f"paxos_commit with failures={failures} needs at least "
                              f"{2 * failures + 1} participants for its acceptors, "
                              f"got {size}")
        names = [f"n{i}" for i in range(1, size + 1)]
        self.world = World(config, names)
        self.config, self.protocol = config, protocol
        kind = NODE_TYPES[protocol]
        super().__init__(names=names + ([TM] if coordinator == "separate" else []),
                         seed=seed, net=net, trace=trace,
                         node_factory=lambda name, network: kind(name, network,
                                                                 self.world))
        self.client = TxnClient(CLIENT, self.network,
                                require_number("ask_every", ask_every, positive=True))
        self.network.keep_outside_partitions(CLIENT)
        self.initial_total = balance * len(self.world.owners)
        self.auditor: Auditor | None = None
        if audit_every is not None:
            every = require_number("audit_every", audit_every, positive=True)
            self.auditor = Auditor(AUDITOR, self.network, self.world, every,
                                   self.initial_total)
            self.network.keep_outside_partitions(AUDITOR)

    # -- what there is ------------------------------------------------------------
    @property
    def participants(self) -> list[str]:
        return list(self.world.participants)

    @property
    def accounts(self) -> list[str]:
        return list(self.world.owners)

    def owner(self, account: str) -> str:
        try:
            return self.world.owners[account]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown account {account!r}; accounts are "
                              f"{self.accounts}") from None

    def coordinator_of(self, txn: str) -> str:
        """The node that coordinates (or orchestrates) a submitted transaction."""
        legs = self.record(txn).legs
        return TM if self.config.coordinator == "separate" else self.owner(legs[0][0])

    def record(self, txn: str) -> TxnRecord:
        try:
            return self.client.records[txn]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown transaction {txn!r}") from None

    def balances(self) -> dict[str, int]:
        """Every account's durable balance (a crashed node's disk included)."""
        return {a: self.nodes[owner].balances[a]
                for a, owner in self.world.owners.items()}

    def total(self) -> int:
        return sum(self.balances().values())

    # -- what the client does -------------------------------------------------------
    def submit(self, legs: Iterable[tuple[str, int]]) -> str:
        """Start a transaction of legs (account, delta) that sum to zero; returns
        its id ("t1", "t2", ...). The first leg's node coordinates (co-located),
        or, for 2PC with a separate coordinator, prepares first and hands over."""
        legs = self.check_legs(legs)
        first = self.owner(legs[0][0])
        coordinator = TM if self.config.coordinator == "separate" else first
        entry = first if self.protocol == "2pc" else coordinator
        return self.client.submit(legs, entry, coordinator)

    def transfer(self, src: str, dst: str, amount: int) -> str:
        """Move `amount` from account `src` to account `dst`."""
        amount = require_int("amount", amount, minimum=1)
        return self.submit(((src, -amount), (dst, amount)))

    def check_legs(self, legs: Iterable[tuple[str, int]]) -> tuple:
        try:
            legs = tuple((account, delta) for account, delta in legs)
        except (TypeError, ValueError):
            raise ConfigError(f"legs must be (account, delta) pairs, got {legs!r}") \
                from None
        if len(legs) < 2:
            raise ConfigError(f"a transaction needs at least two legs, got {legs}")
        for account, delta in legs:
            self.owner(account)
            if require_int(f"delta of {account}", delta) == 0:
                raise ConfigError(f"leg {account}: delta must not be 0")
        if len({a for a, _ in legs}) < len(legs):
            raise ConfigError(f"each account may appear in one leg only, got {legs}")
        if sum(d for _, d in legs) != 0:
            raise ConfigError(f"legs must sum to 0 (money moves, it is never made), "
                              f"got {legs}")
        if self.protocol == "tcc" and sum(d < 0 for _, d in legs) != 1:
            raise ConfigError(f"a TCC transfer has exactly one debit leg, got {legs}")
        return legs

    def workload(self, rate: float, duration: float, *, contention: float = 0.0,
                 amount: int = 5) -> None:
        """Submit random transfers as a Poisson stream of `rate` per second for the
        next `duration` seconds, each 1..`amount` between accounts on different
        nodes; with probability `contention` the credit goes to the one hot
        account (the first, "n1.0"), so such transfers compete for its row."""
        rate = require_number("rate", rate, positive=True)
        end = self.now + require_number("duration", duration, minimum=0.0)
        contention = require_probability("contention", contention)
        amount = require_int("amount", amount, minimum=1)
        if len(self.participants) < 2:
            raise ConfigError("a workload moves money between nodes: it needs at "
                              "least 2 participants")
        rng, owners = self.sim.rng("workload"), self.world.owners
        accounts = self.accounts

        def arrive() -> None:
            if self.now >= end:
                return
            dst = accounts[0] if rng.random() < contention else rng.choice(accounts)
            src = rng.choice([a for a in accounts if owners[a] != owners[dst]])
            self.transfer(src, dst, rng.randint(1, amount))
            self.sim.schedule(rng.expovariate(rate), arrive)
        self.sim.schedule(rng.expovariate(rate), arrive)

    # -- faults ---------------------------------------------------------------------
    def crash_at(self, point: str, node: str | None = None, txn: str | None = None,
                 restart_after: float | None = None) -> None:
        """Arm a crash: the first time `node` (any node if None) reaches `point`
        (one of CRASH_POINTS) for `txn` (any transaction if None), it crashes;
        it restarts `restart_after` seconds later, or stays down if None.

        coordinator.before_prepare: it has the transaction, nothing sent yet.
        coordinator.after_votes: every vote is yes (saga: a step is done;
            TCC: every try succeeded), no decision yet.
        coordinator.after_decision: the decision is logged (Paxos Commit:
            known), nothing sent yet.
        participant.before_vote: a prepare (saga step, TCC try) has arrived.
        participant.after_vote: it forced its record and voted yes.
        """
        if point not in CRASH_POINTS:
            raise ConfigError(f"point must be one of {CRASH_POINTS}, got {point!r}")
        if node is not None:
            self.node(node)
        if txn is not None and not isinstance(txn, str):
            raise ConfigError(f"txn must be a transaction id like 't1', got {txn!r}")
        if restart_after is not None:
            restart_after = require_number("restart_after", restart_after,
                                           minimum=0.0)
        self.world.traps.append(Trap(point, node, txn, restart_after))

    def settle(self, seconds: float = 5.0) -> list[str]:
        """Stop the faults (heal, no loss, restart every node, no armed crash)
        and run `seconds`; returns what is still unsettled (see `unsettled`)."""
        self.world.traps.clear()
        self.heal()
        self.network.update(loss=0.0)
        for name in self.names:
            self.restart(name)
        self.run(seconds)
        return self.unsettled()

    # -- what happened --------------------------------------------------------------
    def outcome(self, txn: str) -> str:
        """committed, aborted, blocked (2PC / Paxos Commit: a live participant is
        prepared, holds its rows and does not know the decision) or pending
        (still running, or waiting for a crashed node's log). A transaction no
        one remembers is aborted: the presumption of presumed abort."""
        legs = self.record(txn).legs
        coordinator = self.nodes[self.coordinator_of(txn)]
        if self.protocol in ("2pc", "paxos_commit"):
            views = {p: self.nodes[p].outcomes().get(txn)
                     for p in nodes_of(legs, self.world.owners)}
            for state in (COMMITTED, ABORTED):
                if state in views.values():
                    return state
            if any(v in (PREPARED, "committing") and self.is_up(p)
                   for p, v in views.items()):
                return BLOCKED
            running = coordinator.rounds if self.protocol == "2pc" \
                else coordinator.leading
            return PENDING if PREPARED in views.values() or (
                coordinator.alive and txn in running) else ABORTED
        ended = {r[1]: r[2] for r in coordinator.records("saga_end", "tcc_end")}
        if coordinator.alive:
            ended.update(coordinator.ended)
        if txn in ended:
            return COMMITTED if ended[txn] else ABORTED
        started = any(r[1] == txn for r in coordinator.records("saga", "tcc"))
        return PENDING if started or txn in getattr(coordinator, "sagas", {}) \
            or txn in getattr(coordinator, "tccs", {}) else ABORTED

    def outcomes(self) -> dict[str, str]:
        return {txn: self.outcome(txn) for txn in self.client.records}

    def outcome_known(self) -> float:
        """The share of submitted transactions whose outcome the client knows
        (told, or answered when it asked); 1.0 if none were submitted."""
        records = self.client.records.values()
        if not records:
            return 1.0
        return sum(r.outcome is not None for r in records) / len(records)

    def views(self, txn: str) -> dict[str, str]:
        """What each participant of `txn` knows of it now, in words, from its
        disk and (while it is up) its memory; "(down)" marks a crashed node."""
        legs, out = self.record(txn).legs, {}
        for step, (account, _) in enumerate(legs):
            name = self.owner(account)
            node = self.nodes[name]
            if self.protocol in ("2pc", "paxos_commit"):
                view = node.outcomes().get(txn, "knows nothing")
            elif self.protocol == "saga":
                done = node.disk["done"]
                view = {"ok": "did its step", "failed": "refused its step"}.get(
                    done.get((txn, step, "do")), "nothing yet")
                if done.get((txn, step, "undo")) == "ok":
                    view = "did and undid its step"
            else:
                view = node.disk["tcc"].get((txn, account), "nothing yet")
            out[name] = view if node.alive else f"{view} (down)"
        return out

    def in_doubt(self) -> list[tuple[str, str]]:
        """(txn, node) for every live participant that is prepared and does not
        know the decision: it holds its rows locked until it learns it."""
        return [(txn, name) for name in self.participants
                if self.nodes[name].alive
                for txn in getattr(self.nodes[name], "doubt", {})]

    def unsettled(self) -> list[str]:
        """Everything that keeps the system from quiescence, as sentences: rows
        locked, participants in doubt, funds frozen, sagas or TCC transactions
        still running, nodes down. Empty means settled."""
        out = [f"{name} is down" for name in self.names if not self.is_up(name)]
        for name in self.names:
            node = self.nodes[name]
            out += [f"{name} holds {account} for {txn}"
                    for account, txn in node.locks.items()]
            out += [f"{txn} in doubt at {name}" for txn in getattr(node, "doubt", {})]
            out += [f"{amount} frozen at {account}"
                    for account, amount in node.disk.get("frozen", {}).items()
                    if amount]
            out += [f"saga {txn} running at {name}" for txn in getattr(node, "sagas",
                                                                        {})]
            out += [f"tcc {txn} running at {name}" for txn in getattr(node, "tccs", {})]
        return out

    def stats(self) -> dict[str, float]:
        """Per-run numbers: counts, abort rate, latency, protocol messages and
        forced log writes per submitted transaction, lock hold time."""
        m, records = self.sim.metrics, list(self.client.records.values())
        submitted = len(records)
        committed = sum(r.outcome == COMMITTED for r in records)
        aborted = sum(r.outcome == ABORTED for r in records)
        latency = m.histogram("txn.latency")
        hold = m.histogram("lock.hold")
        per = max(submitted, 1)
        return {
            "submitted": submitted, "committed": committed, "aborted": aborted,
            "unanswered": submitted - committed - aborted,
            "outcome known": self.outcome_known(),
            "abort rate": aborted / max(committed + aborted, 1),
            "mean latency (ms)": latency.mean * 1e3 if latency.count else 0.0,
            "p99 latency (ms)": latency.percentile(99) * 1e3 if latency.count
            else 0.0,
            "messages per txn": protocol_messages(self.network.sent) / per,
            "forced writes per txn": m.counter("log.forced").value / per,
            "mean lock hold (ms)": hold.mean * 1e3 if hold.count else 0.0,
            "max lock hold (ms)": float(max(hold.values)) * 1e3 if hold.count else 0.0,
        }

    def result(self, scenario: str | None = None, *,
               data: dict[str, Any] | None = None, **params: Any):
        """Freeze the run: metrics, trace, and in `data` the names, each
        transaction's record and outcome, balances, stats and message counts,
        plus whatever `data` adds."""
        records = [dataclasses.astuple(r) for r in self.client.records.values()]
        data = {"names": self.names, "protocol": self.protocol,
                "records": records, "outcomes": self.outcomes(),
                "balances": self.balances(), "stats": self.stats(),
                "messages": self.network.counts(), "up": self.up(),
                "in_doubt": self.in_doubt(), "unsettled": self.unsettled(),
                **(data or {})}
        return self.sim.result(scenario or f"txn:{self.protocol}", params, data)

    def check(self) -> None:
        """Atomicity, no lost commits and no hanging tries always; conservation
        once settled."""
        check_atomicity(self)
        check_no_lost_commits(self)
        check_no_hanging_tries(self)
        if not self.unsettled():
            check_conservation(self)


def commit_rate(records: Iterable[tuple], *, end: float, width: float = 0.25,
                touching: str | None = None, avoiding: str | None = None):
    """Commits per second in consecutive bins `width` seconds wide up to `end`, by
    when the client heard of them, as a TimeSeries stamped at each bin's start;
    only transactions with a leg on account `touching` / none on `avoiding`.
    `records` are TxnRecords or their tuples (as in a Result's data)."""
    width = require_number("width", width, positive=True)
    bins = [0] * max(1, round(require_number("end", end, positive=True) / width))
    for record in records:
        _, legs, _, outcome, finished = dataclasses.astuple(record) \
            if isinstance(record, TxnRecord) else record
        accounts = [a for a, _ in legs]
        if outcome != COMMITTED or finished >= len(bins) * width \
                or (touching is not None and touching not in accounts) \
                or (avoiding is not None and avoiding in accounts):
            continue
        bins[int(finished / width)] += 1
    series = TimeSeries("commits per second")
    for i, n in enumerate(bins):
        series.add(round(i * width, 9), n / width)
    return series


def protocol_messages(sent: dict[str, int]) -> int:
    """Messages of the commit protocol itself: every kind but the client's and
    the auditor's."""
    return sum(n for kind, n in sent.items() if kind not in CLIENT_KINDS)


# -- invariants ------------------------------------------------------------------

def _legs_applied(cluster: TxnCluster, txn: str) -> list[int]:
    """Saga: per step, how many times its effect is in the database now
    (done minus compensated), from the participants' records."""
    out = []
    for step, (account, _) in enumerate(cluster.record(txn).legs):
        done = cluster.nodes[cluster.owner(account)].disk.get("done", {})
        out.append((done.get((txn, step, "do")) == "ok")
                   - (done.get((txn, step, "undo")) == "ok"))
    return out


def _tcc_states(cluster: TxnCluster, txn: str) -> list[str | None]:
    return [cluster.nodes[cluster.owner(a)].disk.get("tcc", {}).get((txn, a))
            for a, _ in cluster.record(txn).legs]


def check_atomicity(cluster: TxnCluster) -> None:
    """All or nothing: no transaction is committed at one participant and aborted
    at another (saga: every step done, or every step undone; TCC: every leg
    confirmed, or none), and no client was told an outcome that differs."""
    for txn, record in cluster.client.records.items():
        outcome = cluster.outcome(txn)
        if cluster.protocol in ("2pc", "paxos_commit"):
            views = {p: cluster.nodes[p].outcomes().get(txn)
                     for p in nodes_of(record.legs, cluster.world.owners)}
            if COMMITTED in views.values() and ABORTED in views.values():
                raise InvariantViolation(f"atomicity: {txn} is committed at some "
                                         f"participants and aborted at others: "
                                         f"{views}")
        elif cluster.protocol == "saga" and outcome in (COMMITTED, ABORTED):
            applied = _legs_applied(cluster, txn)
            if applied != [int(outcome == COMMITTED)] * len(applied):
                raise InvariantViolation(f"atomicity: saga {txn} ended {outcome} "
                                         f"but its steps are applied {applied} times")
        elif cluster.protocol == "tcc" and outcome in (COMMITTED, ABORTED):
            states = _tcc_states(cluster, txn)
            confirmed = [s == "confirmed" for s in states]
            if any(confirmed) and (outcome == ABORTED or not all(confirmed)):
                raise InvariantViolation(f"atomicity: TCC {txn} ended {outcome} "
                                         f"with legs {states}")
        if record.outcome is not None and outcome in (COMMITTED, ABORTED) \
                and record.outcome != outcome:
            raise InvariantViolation(f"atomicity: the client was told {txn} "
                                     f"{record.outcome}, but it {outcome}")


def check_no_hanging_tries(cluster: TxnCluster) -> None:
    """No leg is left reserved after its transaction has finished (TCC): once
    the orchestrator has ended a transaction, every leg is confirmed, cancelled
    or expired. A "hanging" try, one that reserves after its leg's cancel,
    would hold its funds for nothing, a credit's forever (only debits expire).
    Holds at any moment; the other protocols reserve nothing."""
    if cluster.protocol != "tcc":
        return
    for txn, record in cluster.client.records.items():
        outcome = cluster.outcome(txn)
        if outcome not in (COMMITTED, ABORTED):
            continue
        states = _tcc_states(cluster, txn)
        hanging = [a for (a, _), s in zip(record.legs, states, strict=True)
                   if s == "reserved"]
        if hanging:
            raise InvariantViolation(f"hanging try: TCC {txn} ended {outcome}, but "
                                     f"{hanging} still reserved")


def check_conservation(cluster: TxnCluster) -> None:
    """No money made or destroyed: the balances sum to what they started at and
    nothing is left frozen. Holds at quiescence (after `settle`)."""
    total = cluster.total()
    if total != cluster.initial_total:
        raise InvariantViolation(f"conservation: balances sum to {total}, they "
                                 f"started at {cluster.initial_total}")
    frozen = {a: v for name in cluster.names
              for a, v in cluster.nodes[name].disk.get("frozen", {}).items() if v}
    if frozen:
        raise InvariantViolation(f"conservation: funds still frozen {frozen}")


def check_no_lost_commits(cluster: TxnCluster) -> None:
    """Every committed transaction is in the database exactly once: each
    account's balance is its opening balance plus the legs of the transactions
    that committed, and (2PC, Paxos Commit) every participant of a committed
    transaction has committed it once the system settled."""
    settled = not cluster.unsettled()
    expected = dict.fromkeys(cluster.accounts, cluster.config.balance)
    for txn, record in cluster.client.records.items():
        outcome = cluster.outcome(txn)
        if record.outcome == COMMITTED and outcome != COMMITTED:
            raise InvariantViolation(f"lost commit: the client was told {txn} "
                                     f"committed, but it is {outcome}")
        if outcome == COMMITTED:
            for account, delta in record.legs:
                expected[account] += delta
        if settled and outcome == COMMITTED and cluster.protocol in (
                "2pc", "paxos_commit"):
            views = {p: cluster.nodes[p].outcomes().get(txn)
                     for p in nodes_of(record.legs, cluster.world.owners)}
            if any(v != COMMITTED for v in views.values()):
                raise InvariantViolation(f"lost commit: {txn} committed but the "
                                         f"participants say {views}")
    if settled:
        actual = cluster.balances()
        wrong = {a: (actual[a], expected[a]) for a in expected
                 if actual[a] != expected[a]}
        if wrong:
            raise InvariantViolation(f"balances differ from the committed "
                                     f"transactions (actual, expected): {wrong}")


# -- the cost of commit ------------------------------------------------------------

#: Message kinds Gray & Lamport count (acknowledgements that only let a
#: coordinator forget are off the critical path and not counted).
COUNTED_KINDS = {"2pc": ("begin_commit", "prepare", "vote", "commit", "abort"),
                 "paxos_commit": ("prepare", "phase2a", "phase2b", "commit",
                                  "abort")}


def gray_lamport(protocol: str, participants: int, *, coordinator: str = "colocated",
                 failures: int = 1) -> dict[str, int]:
    """Normal-case cost of committing one transaction of N participants, from
    Gray & Lamport, "Consensus on Transaction Commit" (2006): messages and
    message delays. 2PC: 3N - 1 messages and 4 delays with a separate
    coordinator, 3N - 3 and 3 co-located. Paxos Commit, co-located (its
    normal-case pattern: prepare to N - 1, phase 2a from N - 1 to F + 1
    acceptors, one bundled phase 2b from each of F remote acceptors, commit to
    N - 1): N(F + 3) - 3 messages (17 at N = 5, F = 1) and one delay more."""
    n = require_int("participants", participants, minimum=2)
    f = require_int("failures", failures, minimum=0)
    if protocol == "2pc":
        if coordinator == "separate":
            return {"messages": 3 * n - 1, "delays": 4}
        return {"messages": 3 * n - 3, "delays": 3}
    if protocol == "paxos_commit" and coordinator == "colocated":
        return {"messages": n * (f + 3) - 3, "delays": 4}
    raise ConfigError(f"Gray & Lamport's counts cover '2pc' (colocated or separate) "
                      f"and co-located 'paxos_commit', got {protocol!r}, "
                      f"{coordinator!r}")


def normal_case(protocol: str = "2pc", participants: int = 5, *,
                coordinator: str = "colocated", failures: int = 1,
                latency: float = 0.010, fsync: float = 0.005,
                seed: int = 0) -> dict[str, float]:
    """Measure one failure-free commit across `participants` nodes (one leg on
    each) from the network journal: messages of the kinds Gray & Lamport count,
    acknowledgements, message delays and forced-write delays on the path to
    the decision, forced writes before the decision and in all.

    Runs the commit twice on a constant-latency network: without disk time
    (the decision's arrival at the last participant / latency = message
    delays) and with `fsync` seconds per forced write (the extra time / fsync
    = write delays)."""
    if protocol not in COUNTED_KINDS:
        raise ConfigError(f"normal_case measures {tuple(COUNTED_KINDS)}, got "
                          f"{protocol!r}")
    latency = require_number("latency", latency, positive=True)
    fsync = require_number("fsync", fsync, positive=True)
    runs = [_one_commit(protocol, participants, coordinator, failures, latency,
                        disk, seed) for disk in (0.0, fsync)]
    (plain, sent, _, _), (slow, _, forced, before) = runs     # disk time orders writes
    delays = plain / latency
    return {"messages": sum(sent.get(k, 0) for k in COUNTED_KINDS[protocol]),
            "acks": sent.get("ack", 0),
            "delays": round(delays, 6),
            "write delays": round((slow - plain) / fsync, 6),
            "forced writes before decision": before,
            "forced writes": forced}


def _one_commit(protocol: str, participants: int, coordinator: str, failures: int,
                latency: float, fsync: float, seed: int) -> tuple:
    """(seconds from the coordinator's start to the decision reaching the last
    participant, messages sent by kind, forced writes, forced writes before
    the first decision message)."""
    c = TxnCluster(protocol, participants, seed=seed, coordinator=coordinator,
                   failures=failures, fsync=fsync, net=NetConfig(latency=latency))
    legs = [(account_name("n1", 0), 1 - participants)] + \
        [(account_name(f"n{i}", 0), 1) for i in range(2, participants + 1)]
    txn = c.submit(legs)
    c.run(1.0 + 10 * fsync)
    if c.outcome(txn) != COMMITTED:
        raise RuntimeError(f"the failure-free commit did not commit: "
                           f"{c.outcome(txn)}")
    trace = c.sim.trace
    start = next(r.time for r in trace if r.event == "deliver" and r.kind == "begin")
    decided = [r.time for r in trace if r.kind == "commit"]
    logs = [r.time for r in trace if r.event == "log"]
    return (max(decided) - start, dict(c.network.sent), len(logs),
            sum(t <= min(decided) for t in logs))
