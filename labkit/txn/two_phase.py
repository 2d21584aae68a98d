"""Two-phase commit with presumed abort (Mohan, Lindsay & Obermarck,
"Transaction Management in the R* Distributed Database Management System", 1986).

`TwoPhaseNode` is participant and coordinator; the coordinator keeps a `Round`
per transaction it runs. Rows stay locked from prepare to decision, so a
prepared participant blocks while its coordinator is down.
"""

from __future__ import annotations

from labkit.net import Message
from labkit.txn.base import ABORTED, COMMITTED, PENDING, TM, nodes_of
from labkit.txn.resource import Resource


class Round:
    """A coordinator's volatile record of one transaction it runs."""

    def __init__(self, txn: str, participants: tuple, client: str, phase: str):
        self.txn, self.participants = txn, participants
        self.client, self.phase = client, phase
        self.votes: dict[str, bool] = {}
        self.acks: list[str] = []


class CommitRounds:
    """A 2PC coordinator's second phase, shared by `TwoPhaseNode` and the lab's
    given plumbing (labkit.labs.txn): resend commit to the participants that
    have not acknowledged it, every timeout, and forget the round once all
    have. Needs `rounds` (txn -> Round), `tell`, timers and `log`."""

    def send_decision(self, txn: str) -> None:
        """Send commit to every participant of `txn` that has not acknowledged
        it, and again every timeout until all have."""
        r = self.rounds.get(txn)
        if r is None:
            return
        for p in r.participants:
            if p not in r.acks:
                self.tell(p, "commit", txn=txn)
        self.set_timer(f"commit:{txn}", self.config.timeout, self.send_decision, txn)

    def on_ack(self, msg: Message) -> None:
        """A participant applied the commit: once all have, end the round (a
        lazy "end" record: if it is lost, the commit is sent again)."""
        r = self.rounds.get(msg.txn)
        if r is None or r.phase != "committing":
            return
        if msg.src not in r.acks:
            r.acks.append(msg.src)
        if len(r.acks) == len(r.participants):
            self.cancel_timer(f"commit:{msg.txn}")
            self.log("end", msg.txn)
            del self.rounds[msg.txn]


class TwoPhaseNode(CommitRounds, Resource):
    """Two-phase commit with presumed abort: participant and coordinator rules.

    The coordinator forces a commit record before sending commit, and forgets
    the transaction once every participant has acknowledged; it answers
    "abort" for any transaction it does not know, forcing that abort first
    (`refuse`). Participants log their aborts lazily.

    It runs at most one round per transaction. Presumed abort (R*) lets a
    coordinator log nothing for an abort, but this network may deliver a
    `begin` twice, or late: a coordinator that crashed after an abort and
    forgot it would start a second round, which a stale abort of the first
    could then split (one participant committed, one aborted). So it forces
    its abort decision before announcing it, and never starts a round for a
    transaction it knows.
    """

    def recover(self) -> None:
        super().recover()
        self.rounds: dict[str, Round] = {}
        self.initiating: dict[str, tuple] = {}
        # txn -> who asked while its abort is being forced here as coordinator
        self.aborting: dict[str, list[str]] = {}
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

    def forces_no_vote(self, txn: str) -> bool:
        """The initiating participant's no is the outcome its client hears at
        once: forced first, as the coordinator's abort is, so that a late
        duplicate begin after a crash cannot commit what the client was told
        is aborted. Other no votes stay lazy (presumed abort)."""
        return txn in self.initiating

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

    def knows(self, txn: str) -> bool:
        """Whether this node has run, decided, refused or taken part in `txn`: a
        begin for it now is a duplicate or a late one."""
        return (txn in self.rounds or txn in self.status or txn in self.preparing
                or self.last_record(txn, "decided") is not None)

    def coordinate(self, txn: str, legs: tuple, participants: tuple, client: str,
                   votes: dict[str, bool]) -> None:
        if self.knows(txn) or self.crash_point("coordinator.before_prepare", txn):
            return
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
            if msg.yes:
                self.answer_unknown(msg.txn, msg.src)
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
        if not commit:              # forced first: a late begin must find it
            del self.rounds[txn]
            self.aborting[txn] = []

            def aborted() -> None:
                del self.aborting[txn]      # whoever asked meanwhile is told below
                for p in r.participants:
                    if r.votes.get(p) is not False:
                        self.tell(p, "abort", txn=txn)
                self.tell(r.client, "outcome", txn=txn, committed=False)
            self.refuse(txn, then=aborted)
            return
        r.phase = "logging"

        def logged() -> None:
            r.phase = "committing"
            if self.crash_point("coordinator.after_decision", txn):
                return
            self.send_decision(txn)
            self.tell(r.client, "outcome", txn=txn, committed=True)
        self.force("decided", txn, r.participants, r.client, then=logged)

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
            self.answer_unknown(msg.txn, msg.src)
        elif r.phase == "committing":
            self.tell(msg.src, "commit", txn=msg.txn)
        # still voting: the vote timer decides soon, and the asker asks again

    def answer_unknown(self, txn: str, asker: str) -> None:
        """Answer a participant about a transaction with no round here: commit
        if the commit record is on disk (the round ended), else abort, made
        final first (presumed abort), so a `begin` arriving late cannot start a
        round that commits it. A question that arrives while that abort is
        being forced is answered when it is durable, by the same write."""
        waiting = self.aborting.get(txn)
        if waiting is not None:
            if asker not in waiting:
                waiting.append(asker)
        elif self.last_record(txn, "decided") is not None:
            self.tell(asker, "commit", txn=txn)
        elif self.last_record(txn, ABORTED) is not None:
            self.tell(asker, "abort", txn=txn)
        else:
            self.aborting[txn] = [asker]

            def aborted() -> None:
                for waiter in self.aborting.pop(txn):
                    self.tell(waiter, "abort", txn=txn)
            self.refuse(txn, then=aborted)
