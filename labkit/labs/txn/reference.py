"""The txn lab's worked answer: two-phase commit with presumed abort (a
participant forces its prepared record before voting yes and its commit
record before acknowledging, and, in doubt, asks; the coordinator forces its
commit decision before sending it and resends it after a crash, and forces an
abort before announcing it, so that a duplicate or late begin after a crash
never starts a second round), and a saga whose participants answer repeats
from memory and whose orchestrator compensates the done steps newest first."""

from __future__ import annotations

from labkit.txn.base import ABORTED, COMMITTED, PENDING, PREPARED

from .skeleton import TxnSkeleton


class TxnReference(TxnSkeleton):
    """The worked answer."""

    # -- two_phase: the participant ----------------------------------------------
    def prepare(self, msg) -> None:
        txn, state = msg.txn, self.status.get(msg.txn)
        if state is not None or txn in self.preparing:
            if state in (PREPARED, ABORTED):     # the coordinator may have missed it
                self.vote(txn, state == PREPARED, msg.src)
            return
        mine = self.mine(msg.legs)
        accounts = [a for a, _ in mine]
        if not self.is_free(accounts, txn) \
                or any(self.balances[a] + d < 0 for a, d in mine):
            self.status[txn] = ABORTED
            self.log(ABORTED, txn)
            self.vote(txn, False, msg.src)
            return
        info = self.Prepared(txn, msg.src, mine, msg.participants, msg.client,
                             self.sim.now)
        self.lock(accounts, txn, self.sim.now)
        self.preparing.append(txn)

        def prepared() -> None:
            self.preparing.remove(txn)
            self.status[txn], self.doubt[txn] = PREPARED, info
            self.vote(txn, True, msg.src)
            self.set_timer(f"doubt:{txn}", self.config.timeout, self.in_doubt, txn)
        self.force(PREPARED, txn, info, then=prepared)

    def on_commit(self, msg) -> None:
        txn, state = msg.txn, self.status.get(msg.txn)
        if state == COMMITTED:
            self.tell(msg.src, "ack", txn=txn)
        if state != PREPARED:
            return
        info = self.doubt.pop(txn)
        self.cancel_timer(f"doubt:{txn}")
        self.status[txn] = "committing"

        def committed() -> None:
            self.install(txn, info.legs)
            self.status[txn] = COMMITTED
            self.unlock(txn)
            self.tell(msg.src, "ack", txn=txn)
        self.force(COMMITTED, txn, then=committed)

    def on_abort(self, msg) -> None:
        if self.status.get(msg.txn) in (None, PREPARED) \
                and msg.txn not in self.preparing:
            self.abort(msg.txn)
            self.log(ABORTED, msg.txn)

    def in_doubt(self, txn: str) -> None:
        self.tell(self.doubt[txn].coordinator, "inquire", txn=txn)
        self.set_timer(f"doubt:{txn}", self.config.timeout, self.in_doubt, txn)

    def recover_participant(self) -> None:
        for record in self.records(PREPARED, COMMITTED, ABORTED):
            kind, txn = record[0], record[1]
            self.status[txn] = kind
            if kind == PREPARED:
                self.doubt[txn] = record[2]
                continue
            info = self.doubt.pop(txn, None)
            if kind == COMMITTED and info is not None:
                self.install(txn, info.legs)        # redo: idempotent
        for txn, info in self.doubt.items():
            self.lock([a for a, _ in info.legs], txn, info.since)
            self.set_timer(f"doubt:{txn}", self.config.timeout, self.in_doubt, txn)

    # -- two_phase: the coordinator ----------------------------------------------
    def coordinate(self, txn: str, legs: tuple, client: str) -> None:
        participants = self.participants_of(legs)
        self.rounds[txn] = self.Round(txn, participants, client, "voting")
        for p in participants:
            self.tell(p, "prepare", txn=txn, legs=legs, participants=participants,
                      client=client)
        self.set_timer(f"votes:{txn}", self.config.timeout, self.decide, txn, False)

    def on_vote(self, msg) -> None:
        txn, r = msg.txn, self.rounds.get(msg.txn)
        if r is None or r.phase == "committing":
            if msg.yes:
                self.answer_from_log(txn, msg.src)
            return
        if r.phase != "voting":
            return
        r.votes[msg.src] = msg.yes
        if not msg.yes:
            self.decide(txn, False)
        elif all(r.votes.get(p) for p in r.participants):
            self.decide(txn, True)

    def decide(self, txn: str, commit: bool) -> None:
        r = self.rounds.get(txn)
        if r is None or r.phase != "voting":
            return
        self.cancel_timer(f"votes:{txn}")
        if not commit:          # forced first: a late begin after a crash finds it
            del self.rounds[txn]

            def aborted() -> None:
                for p in r.participants:
                    if r.votes.get(p) is not False:
                        self.tell(p, "abort", txn=txn)
                self.tell(r.client, "outcome", txn=txn, committed=False)
            self.refuse(txn, then=aborted)
            return
        r.phase = "logging"

        def logged() -> None:
            r.phase = "committing"
            self.send_decision(txn)
            self.tell(r.client, "outcome", txn=txn, committed=True)
        self.force("decided", txn, r.participants, r.client, then=logged)

    def on_inquire(self, msg) -> None:
        if self.decision(msg.txn) != PENDING:
            self.answer_from_log(msg.txn, msg.src)

    def answer_from_log(self, txn: str, asker: str) -> None:
        """Tell `asker` commit if the decision is on disk, else abort: presumed
        abort, made final first (`refuse`) unless an abort is on disk already,
        so a late begin cannot start a round that commits it."""
        if self.decision(txn) == COMMITTED:
            self.tell(asker, "commit", txn=txn)
        elif self.last_record(txn, ABORTED) is not None:
            self.tell(asker, "abort", txn=txn)
        else:
            self.refuse(txn, then=lambda: self.tell(asker, "abort", txn=txn))

    def recover_coordinator(self) -> None:
        ended = {r[1] for r in self.records("end")}
        for _, txn, participants, client in self.records("decided"):
            if txn not in ended:
                self.rounds[txn] = self.Round(txn, participants, client,
                                              "committing")
                self.send_decision(txn)
                self.tell(client, "outcome", txn=txn, committed=True)

    # -- saga: the participant ---------------------------------------------------
    def do_step(self, msg) -> None:
        done = self.disk["done"].get((msg.txn, msg.step, "do"))
        if done is not None:
            self.answer(msg, txn=msg.txn, step=msg.step, result=done)
            return
        fails = msg.step == self.config.fail_step \
            or self.balances[msg.account] + msg.delta < 0
        self.run_step(msg, "do", msg.delta, "failed" if fails else "ok")

    def undo_step(self, msg) -> None:
        done = self.disk["done"].get((msg.txn, msg.step, "undo"))
        if done is not None:
            self.answer(msg, txn=msg.txn, step=msg.step, result=done)
            return
        self.run_step(msg, "undo", -msg.delta, "ok")

    # -- saga: the orchestrator --------------------------------------------------
    def step(self, txn: str) -> None:
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

    def on_saga_do_ok(self, msg) -> None:
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is not None or msg.step != s.next:
            return                      # a repeat or a late answer
        if msg.result == "busy":
            self.set_timer(f"saga:{s.txn}", self.backoff(), self.step, s.txn)
            return
        if msg.result == "ok":
            s.next += 1
            self.log("saga_step", s.txn, msg.step)
        else:
            s.failed_at, s.undo = msg.step, msg.step - 1
            self.log("saga_failed", s.txn, msg.step)
        self.step(s.txn)

    def on_saga_undo_ok(self, msg) -> None:
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is None or msg.step != s.undo:
            return
        if msg.result == "busy":
            self.set_timer(f"saga:{s.txn}", self.backoff(), self.step, s.txn)
            return
        s.undo -= 1
        self.log("saga_undone", s.txn, msg.step)
        self.step(s.txn)
