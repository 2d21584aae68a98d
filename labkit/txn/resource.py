"""The participant's rules that two-phase commit and Paxos Commit share.

`Resource` is a resource manager (Gray & Lamport's RM): on prepare it locks its
rows, checks funds, forces a `Prepared` record and votes; it applies the
decision when it learns it; after a crash it redoes the durable commits its
database lacks and asks about the transactions it is in doubt of. How a vote
travels and how a doubt is resolved is each protocol's (`two_phase`,
`paxos_commit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from labkit.net import Message
from labkit.txn.base import ABORTED, COMMITTED, PREPARED, TxnNode


class Prepared(NamedTuple):
    """What a participant forces to its log before voting yes: enough to finish
    the transaction after a crash (and to lock its rows again)."""

    txn: str
    coordinator: str
    legs: tuple            # this node's legs: ((account, delta), ...)
    participants: tuple
    client: str
    since: float           # when the rows were locked


class Resource(TxnNode):
    """A participant (resource manager) of an atomic commit protocol: on prepare
    it locks its rows (no-wait: a locked row means vote no), checks funds,
    forces a Prepared record and votes; it applies the decision when it learns
    it. After a crash it locks its in-doubt rows again and asks."""

    def recover(self) -> None:
        """Read the log: in-doubt transactions lock their rows again and ask, and
        a durable commit whose legs are not in the database yet is redone (a
        forced write saves the whole log, so another transaction's write can
        make our commit record durable before our own write applies it)."""
        self.disk.setdefault("applied", set())     # txns whose legs are in balances
        self.status: dict[str, str] = {}            # this participant's view per txn
        self.preparing: list[str] = []              # prepared record being forced
        self.doubt: dict[str, Prepared] = {}        # prepared, decision unknown
        for record in self.records(PREPARED, COMMITTED, ABORTED):
            kind, txn = record[0], record[1]
            self.status[txn] = kind
            if kind == PREPARED:
                self.doubt[txn] = record[2]
                continue
            info = self.doubt.pop(txn, None)
            if kind == COMMITTED:
                self.install(txn, info.legs)        # redo
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
            self.vote_no(txn, coordinator, participants)
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

    #: Whether a no vote is forced before it is sent. 2PC with presumed abort
    #: logs it lazily; Paxos Commit forces it (see PaxosCommitNode).
    FORCE_NO_VOTE = False

    def forces_no_vote(self, txn: str) -> bool:
        """Whether this no vote on `txn` is forced before it is sent."""
        return self.FORCE_NO_VOTE

    def vote_no(self, txn: str, coordinator: str, participants: tuple) -> None:
        """Abort `txn` here and vote no: at once with a lazy record, or (if
        `forces_no_vote`) once the record is durable, meanwhile answering no
        one, as while a Prepared record is forced."""
        if not self.forces_no_vote(txn):
            self.status[txn] = ABORTED
            self.log(ABORTED, txn)
            self.vote(txn, False, coordinator, participants)
            return
        self.preparing.append(txn)

        def forced() -> None:
            self.preparing.remove(txn)
            self.status[txn] = ABORTED
            self.vote(txn, False, coordinator, participants)
        self.force(ABORTED, txn, then=forced)

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
                self.install(txn, info.legs)
                self.status[txn] = COMMITTED
                self.unlock(txn)
                self.acknowledge(txn, msg.src)
            self.force(COMMITTED, txn, then=committed)
        elif self.status.get(txn) == COMMITTED:
            self.acknowledge(txn, msg.src)

    def install(self, txn: str, legs: tuple) -> None:
        """Apply a committed transaction's legs to the database, once: the
        balances and the mark that they hold `txn` change together, so a redo
        after a crash can tell whether they already do."""
        applied = self.disk["applied"]
        if txn not in applied:
            self.apply(legs)
            applied.add(txn)

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
