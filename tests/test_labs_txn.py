"""The txn lab's grader, tested by the bugs it must catch: classic two-phase
commit and saga mistakes, each a mutant of the worked answer overriding one
method, must fail grading at the default seeds, each for its own reason; the
worked answer passes every scenario on 100 seeds; the skeleton fails with
readable reports; and the TxnCluster hook runs an answer with the fault verbs."""

from __future__ import annotations

import pytest
from test_labs import assert_caught

import labkit.labs as labs
from labkit import NetConfig
from labkit.errors import ConfigError
from labkit.labs.txn import TxnReference
from labkit.txn import COMMITTED, PREPARED, TxnCluster

# -- two_phase ---------------------------------------------------------------------


class CommitsOnMostVotes(TxnReference):
    """Commits once all but one participant voted yes."""

    def on_vote(self, msg):
        r = self.rounds.get(msg.txn)
        if r is None or r.phase != "voting":
            return super().on_vote(msg)
        r.votes[msg.src] = msg.yes
        if not msg.yes:
            self.decide(msg.txn, False)
        elif sum(r.votes.values()) >= len(r.participants) - 1:
            self.decide(msg.txn, True)


class TellsBeforeDurable(TxnReference):
    """Sends commit and tells the client before its decision is forced."""

    def decide(self, txn, commit):
        r = self.rounds.get(txn)
        if not commit or r is None or r.phase != "voting":
            return super().decide(txn, commit)
        self.cancel_timer(f"votes:{txn}")
        r.phase = "committing"
        self.send_decision(txn)
        self.tell(r.client, "outcome", txn=txn, committed=True)
        self.force("decided", txn, r.participants, r.client)


class VotesBeforeForcing(TxnReference):
    """Writes its prepared record lazily and votes yes at once."""

    def prepare(self, msg):
        mine = self.mine(msg.legs)
        if msg.txn in self.status or not self.is_free([a for a, _ in mine], msg.txn) \
                or any(self.balances[a] + d < 0 for a, d in mine):
            return super().prepare(msg)
        info = self.Prepared(msg.txn, msg.src, mine, msg.participants, msg.client,
                             self.sim.now)
        self.lock([a for a, _ in mine], msg.txn, self.sim.now)
        self.log(PREPARED, msg.txn, info)
        self.status[msg.txn], self.doubt[msg.txn] = PREPARED, info
        self.vote(msg.txn, True, msg.src)
        self.set_timer(f"doubt:{msg.txn}", self.config.timeout, self.in_doubt,
                       msg.txn)


class AcksBeforeForcingCommit(TxnReference):
    """Applies a commit and acknowledges it at once, logging the commit record
    lazily: a crash right after the ack loses the record, and the coordinator,
    every ack in, may already have forgotten the transaction."""

    def on_commit(self, msg):
        txn = msg.txn
        if self.status.get(txn) != PREPARED:
            return super().on_commit(msg)
        info = self.doubt.pop(txn)
        self.cancel_timer(f"doubt:{txn}")
        self.install(txn, info.legs)
        self.status[txn] = COMMITTED
        self.unlock(txn)
        self.tell(msg.src, "ack", txn=txn)
        self.log(COMMITTED, txn)


class AbortsWithoutARecord(TxnReference):
    """Announces an abort with nothing forced (textbook presumed abort): after
    a crash the coordinator has no trace of it, and a duplicate or late begin
    starts a second round of a transaction the client was told aborted."""

    def decide(self, txn, commit):
        r = self.rounds.get(txn)
        if commit or r is None or r.phase != "voting":
            return super().decide(txn, commit)
        self.cancel_timer(f"votes:{txn}")
        del self.rounds[txn]
        for p in r.participants:
            if r.votes.get(p) is not False:
                self.tell(p, "abort", txn=txn)
        self.tell(r.client, "outcome", txn=txn, committed=False)


class AbortsWhenInDoubt(TxnReference):
    """A participant in doubt gives up and aborts when its timer fires."""

    def in_doubt(self, txn):
        self.abort(txn)
        self.log("aborted", txn)


class RecoveryForgetsPrepared(TxnReference):
    """On restart, forgets the transactions it had prepared (rows released)."""

    def recover_participant(self):
        for record in self.records(COMMITTED):
            self.status[record[1]] = COMMITTED


class AnswersFromMemoryOnly(TxnReference):
    """A coordinator answers an inquiry from its volatile rounds only: after a
    crash it says abort for a transaction it decided to commit."""

    def on_inquire(self, msg):
        r = self.rounds.get(msg.txn)
        if r is None:
            self.tell(msg.src, "abort", txn=msg.txn)
        elif r.phase == "committing":
            self.tell(msg.src, "commit", txn=msg.txn)

    def recover_coordinator(self):
        pass


class WaitsToBeAskedAfterCrash(TxnReference):
    """An audit's mutant: on restart, rebuilds its committing rounds but
    neither resends the decision nor tells the client; only the participants'
    inquiries (and the client's asks) finish the transaction."""

    def recover_coordinator(self):
        ended = {r[1] for r in self.records("end")}
        for _, txn, participants, client in self.records("decided"):
            if txn not in ended:
                self.rounds[txn] = self.Round(txn, participants, client,
                                              "committing")


# -- saga -----------------------------------------------------------------------------


class CompensatesForward(TxnReference):
    """Compensates the done steps oldest first."""

    def on_saga_do_ok(self, msg):
        s = self.sagas.get(msg.txn)
        if s is not None and s.failed_at is None and msg.step == s.next \
                and msg.result == "failed":
            s.failed_at, s.undo = msg.step, 0 if msg.step > 0 else -1
            self.step(s.txn)
            return
        super().on_saga_do_ok(msg)

    def on_saga_undo_ok(self, msg):
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is None or msg.step != s.undo \
                or msg.result == "busy":
            return super().on_saga_undo_ok(msg)
        s.undo = s.undo + 1 if s.undo + 1 < s.failed_at else -1
        self.step(s.txn)


class CompensatesOnlyTheLastStep(TxnReference):
    """Compensates the step before the failed one and stops there."""

    def on_saga_undo_ok(self, msg):
        s = self.sagas.get(msg.txn)
        if s is not None and s.failed_at is not None and msg.step == s.undo \
                and msg.result == "ok":
            s.undo = -1
            self.step(s.txn)
            return
        super().on_saga_undo_ok(msg)


class NoRetryOfCompensation(TxnReference):
    """Sends each compensation once and never again."""

    def step(self, txn):
        super().step(txn)
        s = self.sagas.get(txn)
        if s is not None and s.failed_at is not None:
            self.cancel_timer(f"saga:{txn}")


class RetriesOnlySteps(TxnReference):
    """An audit's mutant: arms the retry timer for steps only, never for a
    compensation (the timer left over from the failed step retries it once)."""

    def step(self, txn):
        s = self.sagas[txn]
        if s.failed_at is None or s.undo < 0:
            return super().step(txn)
        account, delta = s.legs[s.undo]
        self.tell(self.world.owners[account], "saga_undo", txn=txn, step=s.undo,
                  account=account, delta=delta)


class BusyIsFailure(TxnReference):
    """An audit's mutant: takes a "busy" answer (the row held by another
    saga for a moment) for a failed step, and compensates."""

    def on_saga_do_ok(self, msg):
        s = self.sagas.get(msg.txn)
        if s is not None and s.failed_at is None and msg.step == s.next \
                and msg.result == "busy":
            s.failed_at, s.undo = msg.step, msg.step - 1
            self.log("saga_failed", s.txn, msg.step)
            self.step(s.txn)
            return
        super().on_saga_do_ok(msg)


class GivesUpOnBusyAfterTimeout(TxnReference):
    """A spec audit's mutant: a step still answered "busy" a whole timeout
    after it was first sent is taken for failed ("the other saga is stuck"),
    and the done steps are compensated. A busy answer may belong to an earlier
    copy of the request, arriving after a retry already did the step: the
    step stays in effect while the steps before it are undone."""

    def step(self, txn):
        s = self.sagas[txn]
        if s.failed_at is None:
            self.__dict__.setdefault("first_sent", {}).setdefault(
                (txn, s.next), self.sim.now)
        super().step(txn)

    def on_saga_do_ok(self, msg):
        s = self.sagas.get(msg.txn)
        sent = self.__dict__.get("first_sent", {}).get((msg.txn, msg.step))
        if s is not None and s.failed_at is None and msg.step == s.next \
                and msg.result == "busy" and sent is not None \
                and self.sim.now - sent >= self.config.timeout:
            s.failed_at, s.undo = msg.step, msg.step - 1
            self.log("saga_failed", s.txn, msg.step)
            self.step(s.txn)
            return
        super().on_saga_do_ok(msg)


class NotIdempotent(TxnReference):
    """Does a step again when the request is repeated."""

    def do_step(self, msg):
        fails = msg.step == self.config.fail_step \
            or self.balances[msg.account] + msg.delta < 0
        self.run_step(msg, "do", msg.delta, "failed" if fails else "ok")


# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (CommitsOnMostVotes, "participant_crash_before_vote",
     ["commit without every yes"]),
    (TellsBeforeDurable, "no_faults", ["durable decision"]),
    (VotesBeforeForcing, "no_faults", ["force before vote"]),
    (AcksBeforeForcingCommit, "participant_crash_after_ack", ["force before ack"]),
    (AbortsWithoutARecord, "late_duplicate_begin", ["one round"]),
    (AbortsWhenInDoubt, "coordinator_crash_after_decision", ["in doubt"]),
    (RecoveryForgetsPrepared, "participant_crash_after_vote", ["recovery"]),
    (AnswersFromMemoryOnly, "coordinator_crash_after_decision", ["atomicity"]),
    (WaitsToBeAskedAfterCrash, "coordinator_resends_after_crash",
     ["resend after recovery"]),
    (CompensatesForward, "saga_step_fails", ["compensation order"]),
    (CompensatesOnlyTheLastStep, "saga_step_fails", ["saga atomicity"]),
    (NoRetryOfCompensation, "saga_compensation_lost", ["undecided"]),
    (RetriesOnlySteps, "saga_compensation_lost", ["undecided"]),
    (BusyIsFailure, "saga_contention", ["busy is not failure"]),
    (GivesUpOnBusyAfterTimeout, "saga_contention", ["busy is not failure"]),
    (NotIdempotent, "saga_unreliable_network", ["idempotence"]),
]


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[m[0].__name__ for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    assert_caught("txn", mutant, scenario, reasons)


@pytest.mark.parametrize("part", labs.parts("txn"))
def test_the_reference_passes_on_100_seeds(part):
    report = labs.grade("txn", TxnReference, part=part, seeds=range(100))
    assert report.passed, "\n".join(str(f) for f in report.failures[:5])


@pytest.mark.parametrize("part", labs.parts("txn"))
def test_the_skeleton_fails_with_a_readable_report(part):
    report = labs.grade("txn", labs.skeleton("txn"), part=part, seeds=[1])
    assert len(report.failures) == len(report.runs) == len(labs.scenarios("txn",
                                                                          part))
    first = report.failures[0]
    assert first.why.startswith("not yet implemented: ")
    assert "Traceback" not in repr(report) and first.replay in repr(report)


def test_the_answer_runs_in_the_facade_with_crash_points():
    """A coordinator crash after its decision blocks the others; on restart it
    resends commit and every leg is applied once (expected by hand: 100 - 7)."""
    c = TxnCluster("2pc", 3, seed=4, node=TxnReference, fsync=0.002)
    c.crash_at("coordinator.after_decision", node="n1", restart_after=0.5)
    t = c.transfer("n1.0", "n3.1", 7)
    c.run(0.3)
    assert c.outcome(t) == "blocked" and ("t1", "n3") in c.in_doubt()
    assert c.settle(2.0) == []
    assert c.outcome(t) == COMMITTED and c.record(t).outcome == COMMITTED
    assert (c.balances()["n1.0"], c.balances()["n3.1"]) == (93, 107)
    c.check()


def test_a_saga_answer_runs_in_the_facade_with_instant_disks_and_duplicates():
    """fsync=0 (the facade's default) and every message possibly doubled: the
    two-step saga completes, the three-step one fails at step 2 and is undone,
    and each step moved money once (expected by hand)."""
    c = TxnCluster("saga", 4, seed=3, node=TxnReference, fail_step=2,
                   net=NetConfig(latency=0.01, duplicate=0.5))
    done = c.submit([("n1.0", -4), ("n2.0", 4)])
    undone = c.submit([("n2.1", -6), ("n3.0", 3), ("n4.0", 3)])
    assert c.settle(2.0) == []
    assert (c.outcome(done), c.outcome(undone)) == ("committed", "aborted")
    assert c.network.duplicated > 0
    expected = dict.fromkeys(c.accounts, 100) | {"n1.0": 96, "n2.0": 104}
    assert c.balances() == expected
    c.check()


def test_the_facade_refuses_a_node_class_that_is_not_a_txn_node():
    with pytest.raises(ConfigError, match="node must be a class derived from "
                                          "TxnNode"):
        TxnCluster("2pc", 3, node=object)
    with pytest.raises(ConfigError, match="co-located coordinator"):
        TxnCluster("tcc", 3, node=TxnReference)
