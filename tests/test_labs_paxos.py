"""The Paxos lab's grader, tested by the bugs it must catch: classic Paxos
mistakes, each a mutant of the worked answer overriding one method, must fail
grading at the default seeds, each for its own reason; and the worked answer
passes every scenario on 100 seeds."""

from __future__ import annotations

import pytest
from test_labs import assert_caught, assert_reference_passes

import labkit.labs as labs
from labkit.labs.paxos import PaxosReference


class PromisesAnyBallot(PaxosReference):
    """Promises every prepare, even one below a ballot it promised."""

    def on_prepare(self, msg):
        self.disk["promised"] = max(self.disk["promised"], msg.ballot)
        self.persist()
        ballot, value = self.disk["accepted"]
        self.send(msg.src, "promise", ballot=msg.ballot, accepted_ballot=ballot,
                  accepted_value=value)


class AcceptsBelowPromise(PaxosReference):
    """Accepts every ballot, whatever it promised."""

    def on_accept(self, msg):
        self.disk["accepted"] = (msg.ballot, msg.value)
        self.disk["promised"] = max(self.disk["promised"], msg.ballot)
        self.persist()
        self.send(msg.src, "accepted", ballot=msg.ballot, value=msg.value)


class ProposesOwnValue(PaxosReference):
    """Ignores the values the promises report: always proposes its client's."""

    def choose_value(self):
        return self.value


class MinorityQuorum(PaxosReference):
    """Counts n // 2 acceptors as a quorum (a minority when n is odd)."""

    def reset(self):
        super().reset()
        self.majority = len(self.acceptors) // 2


class RepliesBeforePersisting(PaxosReference):
    """Answers a prepare or an accept first and writes its disk after."""

    def on_prepare(self, msg):
        if msg.ballot >= self.disk["promised"]:
            self.disk["promised"] = msg.ballot
            ballot, value = self.disk["accepted"]
            self.send(msg.src, "promise", ballot=msg.ballot, accepted_ballot=ballot,
                      accepted_value=value)
        self.persist()                  # too late: the answer has left

    def on_accept(self, msg):
        if msg.ballot >= self.disk["promised"]:
            self.disk["promised"] = msg.ballot
            self.disk["accepted"] = (msg.ballot, msg.value)
            self.send(msg.src, "accepted", ballot=msg.ballot, value=msg.value)
        self.persist()


class SharedBallots(PaxosReference):
    """Every proposer uses the next integer: two proposers share ballots."""

    def new_ballot(self):
        return self.highest + 1


class ForgetsItsBallot(PaxosReference):
    """Keeps its last ballot in memory only: after a crash it starts again at 0."""

    def prepare(self):
        self.ballot = self.highest = self.new_ballot()
        self.phase, self.promises, self.accepts = "prepare", {}, []
        for a in self.acceptors:
            self.send(a, "prepare", ballot=self.ballot)
        self.arm_timeout()


# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (PromisesAnyBallot, "dueling_proposers", ["promise rule"]),
    (AcceptsBelowPromise, "dueling_proposers", ["accept rule"]),
    (ProposesOwnValue, "chosen_value_survives", ["agreement"]),
    (MinorityQuorum, "no_majority", ["quorum", "agreement"]),
    (RepliesBeforePersisting, "amnesia", ["promise report", "accept rule"]),
    (SharedBallots, "dueling_proposers", ["ballot uniqueness"]),
    (ForgetsItsBallot, "proposer_restarts", ["ballot freshness"]),
]


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[m[0].__name__ for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    assert_caught("paxos", mutant, scenario, reasons)


@pytest.mark.parametrize("part", labs.parts("paxos"))
def test_the_reference_passes_on_100_seeds(part):
    assert_reference_passes("paxos", part)
