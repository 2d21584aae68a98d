"""The txn lab's skeleton, the class a student derives from: two-phase
commit's participant and coordinator rules with their crash recovery, and a
saga's steps and compensations, each raising NotImplementedError that says
what it must do."""

from __future__ import annotations

from .base import TxnLabBase


class TxnSkeleton(TxnLabBase):
    """Your transaction node: a 2PC participant and coordinator (presumed
    abort, Mohan et al. 1986) that recover from a crash at every step, and a
    saga's participant and orchestrator (Garcia-Molina & Salem 1987)."""

    # -- two_phase: the participant ----------------------------------------------
    def prepare(self, msg) -> None:
        """Phase one here: vote on msg.txn (msg.legs, msg.participants,
        msg.client; msg.src is the coordinator)."""
        raise NotImplementedError(
            "not yet implemented: prepare: a repeat (txn in self.status or "
            "self.preparing) re-sends the same vote if prepared or aborted; else "
            "mine = self.mine(msg.legs); if a row is not is_free or a balance "
            "would go below 0, status 'aborted', log('aborted', txn), vote(txn, "
            "False, msg.src); else lock the rows, add txn to preparing, and "
            "force('prepared', txn, self.Prepared(txn, msg.src, mine, "
            "msg.participants, msg.client, now), then=...) where then: status "
            "'prepared', doubt[txn] = info, vote(txn, True, msg.src), "
            "set_timer(f'doubt:{txn}', timeout, self.in_doubt, txn)")

    def on_commit(self, msg) -> None:
        """The coordinator's commit of msg.txn."""
        raise NotImplementedError(
            "not yet implemented: on_commit: if prepared, take it out of doubt, "
            "status 'committing', force('committed', txn, then=...) where then: "
            "install(txn, info.legs), status 'committed', unlock(txn) and tell the "
            "coordinator 'ack' (txn=): only once the record is durable, since the "
            "ack lets the coordinator forget txn; if already committed, just ack "
            "again")

    def on_abort(self, msg) -> None:
        """The coordinator's abort of msg.txn."""
        raise NotImplementedError(
            "not yet implemented: on_abort: unless committed, committing or still "
            "preparing, abort(txn) (given: out of doubt, rows released) and "
            "log('aborted', txn): lazily, presumed abort needs no force")

    def in_doubt(self, txn: str) -> None:
        """Timer: voted yes, and no decision yet."""
        raise NotImplementedError(
            "not yet implemented: in_doubt: never decide alone; tell the "
            "coordinator (doubt[txn].coordinator) 'inquire' (txn=) and set the "
            "doubt timer again")

    def recover_participant(self) -> None:
        """After a restart: rebuild the participant's state from its log."""
        raise NotImplementedError(
            "not yet implemented: recover_participant: read records('prepared', "
            "'committed', 'aborted') in order into status; a prepared txn goes "
            "into doubt; a committed one leaves doubt and is redone with "
            "install(txn, info.legs) (it may be missing from the balances); every "
            "txn still in doubt locks its rows again (since=info.since) and sets "
            "its doubt timer")

    # -- two_phase: the coordinator ----------------------------------------------
    def coordinate(self, txn: str, legs: tuple, client: str) -> None:
        """A new transaction arrives at its coordinator: phase one."""
        raise NotImplementedError(
            "not yet implemented: coordinate: rounds[txn] = self.Round(txn, "
            "participants_of(legs), client, 'voting'); tell each participant "
            "(this node too) 'prepare' (txn=, legs=, participants=, client=); "
            "set_timer(f'votes:{txn}', timeout, self.decide, txn, False)")

    def on_vote(self, msg) -> None:
        """A participant's vote (msg.txn, msg.yes)."""
        raise NotImplementedError(
            "not yet implemented: on_vote: no round, or a round 'committing': "
            "answer a yes from the log as on_inquire does (decision(txn) is "
            "'committed': commit, else abort, made final first); 'voting': record "
            "the vote; a no decides abort, a yes from every participant decides "
            "commit")

    def decide(self, txn: str, commit: bool) -> None:
        """Decide a round still voting (also the vote timer's callback)."""
        raise NotImplementedError(
            "not yet implemented: decide: only a round in phase 'voting'; cancel "
            "the vote timer; abort: drop the round and refuse(txn, then=...) (a "
            "forced abort: after a crash a duplicate or late begin must find it, "
            "or it starts a second round) where then: tell abort to every "
            "participant that did not vote no, tell the client 'outcome' (txn=, "
            "committed=False); commit: phase 'logging', force('decided', txn, "
            "participants, client, then=...) where then: phase 'committing', "
            "send_decision(txn) and tell the client 'outcome' (committed=True)")

    def on_inquire(self, msg) -> None:
        """A participant in doubt asks how msg.txn ended."""
        raise NotImplementedError(
            "not yet implemented: on_inquire: answer from decision(txn): "
            "'committed': commit; pending: nothing yet (the asker asks again); "
            "None (no trace: presumed abort): abort, made final first unless "
            "last_record(txn, 'aborted') is on disk: refuse(txn, then=tell abort), "
            "so a late begin cannot start a round that commits it")

    def recover_coordinator(self) -> None:
        """After a restart (and recover_participant): rebuild the coordinator."""
        raise NotImplementedError(
            "not yet implemented: recover_coordinator: for each record 'decided' "
            "(txn, participants, client) with no 'end' record, open a self.Round in "
            "phase 'committing', send_decision(txn) and tell the client "
            "'outcome' (committed=True); a round with no decision on disk is "
            "forgotten: presumed abort")

    # -- saga: the participant ---------------------------------------------------
    def do_step(self, msg) -> None:
        """Do step msg.step of saga msg.txn: add msg.delta to msg.account."""
        raise NotImplementedError(
            "not yet implemented: do_step: if disk['done'] has (txn, step, 'do'), "
            "answer(msg, txn=, step=, result=) with it (a repeat); else the step "
            "fails if step == config.fail_step or the balance would go below 0: "
            "run_step(msg, 'do', msg.delta, 'ok' or 'failed')")

    def undo_step(self, msg) -> None:
        """Compensate step msg.step of saga msg.txn: take msg.delta back."""
        raise NotImplementedError(
            "not yet implemented: undo_step: if disk['done'] has (txn, step, "
            "'undo'), answer it again; else run_step(msg, 'undo', -msg.delta, "
            "'ok'): a compensation never fails")

    # -- saga: the orchestrator --------------------------------------------------
    def step(self, txn: str) -> None:
        """Send the saga's current request, and again after a timeout."""
        raise NotImplementedError(
            "not yet implemented: step: s = sagas[txn]; all steps done: finish(s, "
            "True); failed and nothing left to undo (s.undo < 0): finish(s, "
            "False); else tell the owner of the leg's account 'saga_do' (step "
            "s.next) or 'saga_undo' (step s.undo) with txn=, step=, account=, "
            "delta=, and set_timer(f'saga:{txn}', timeout, self.step, txn)")

    def on_saga_do_ok(self, msg) -> None:
        """A step's answer: msg.result is 'ok', 'failed' or 'busy'."""
        raise NotImplementedError(
            "not yet implemented: on_saga_do_ok: ignore it unless it answers "
            "s.next of a saga not failing; busy: step again after backoff(); ok: "
            "s.next += 1, log('saga_step', txn, step); failed: s.failed_at = step, "
            "s.undo = step - 1, log('saga_failed', txn, step); then step(txn)")

    def on_saga_undo_ok(self, msg) -> None:
        """A compensation's answer: msg.result is 'ok' or 'busy'."""
        raise NotImplementedError(
            "not yet implemented: on_saga_undo_ok: ignore it unless it answers "
            "s.undo of a failing saga; busy: step again after backoff(); ok: "
            "s.undo -= 1, log('saga_undone', txn, step); then step(txn)")
