"""Paxos Commit (Gray & Lamport, "Consensus on Transaction Commit", 2006).

Each participant's vote is chosen by a Paxos instance on 2F + 1 acceptors, so
any F crashes, the coordinator's included, do not block the transaction.
`PaxosCommitNode` is participant, acceptor and leader; a leader keeps a
`Leader` record per transaction it leads.
"""

from __future__ import annotations

from labkit.net import Message
from labkit.txn.base import ABORTED, COMMITTED, PENDING, PREPARED, nodes_of
from labkit.txn.resource import Resource

BALLOT0 = (0, 0, 0)      # Paxos Commit: the ballot only a participant itself uses


class Leader:
    """A Paxos Commit leader's volatile record of one transaction: the normal
    leader at ballot 0, or a recovery leader at a higher ballot."""

    def __init__(self, txn: str, participants: tuple, acceptors: tuple, client: str,
                 ballot: tuple, phase: str):
        self.txn, self.participants, self.acceptors = txn, participants, acceptors
        self.client, self.ballot, self.phase = client, ballot, phase
        self.tries = 0                              # recovery ballots led so far
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

    #: A participant's vote is its ballot-0 proposal, so it must never propose
    #: two: a no vote lost in a crash, then a late prepare, would propose
    #: Prepared at the same ballot. It forces the no vote before sending it.
    FORCE_NO_VOTE = True

    def recover(self) -> None:
        self.disk.setdefault("acceptor", {})
        self.disk.setdefault("rounds", 0)       # ballots this node has led, ever
        self.buffer: dict[str, dict[str, str]] = {}   # ballot-0 votes not yet forced
        self.leading: dict[str, Leader] = {}
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
            self.tell(msg.src, "nack", txn=txn, promised=self.promised(txn))
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
        # A ballot is (round, boot, node), never used twice. The round count is
        # on disk (like Raft's current_term): after a restart this node goes on
        # above every ballot it used before, which acceptors may have promised,
        # instead of climbing past them again from 1. Among equal rounds, the
        # boot count lets a node that has just restarted (and is in doubt) win.
        self.disk["rounds"] += 1
        ballot = (self.disk["rounds"], self.incarnation,
                  self.world.participants.index(self.name) + 1)
        leader = self.leading[txn] = Leader(txn, participants, acceptors, client,
                                            ballot, "promise")
        leader.tries = 1 if old is None else old.tries + 1
        for a in acceptors:
            self.tell(a, "phase1a", txn=txn, ballot=ballot)
        # A random extra wait keeps two recovery leaders from duelling forever,
        # and the wait doubles with each ballot (up to 8 timeouts), so a ballot
        # can finish even when four message delays take longer than a timeout.
        backoff = 2 ** min(leader.tries - 1, 3)
        self.set_timer(f"lead:{txn}",
                       self.config.timeout * backoff * (1 + self.rng.random()),
                       self.lead, txn)

    def on_nack(self, msg: Message) -> None:
        """An acceptor promised a higher ballot: the next one this node leads
        starts above it, instead of climbing one round a try (each try waiting
        twice as long as the last)."""
        self.disk["rounds"] = max(self.disk["rounds"], msg.promised[0])

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
