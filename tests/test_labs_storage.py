"""The storage lab's grader, tested by the bugs it must catch: classic quorum
mistakes, each a mutant of the worked answer overriding one method, must fail
grading at the default seeds, each for its own reason; and the worked answer
passes every scenario on 100 seeds."""

from __future__ import annotations

import pytest
from test_labs import assert_caught, assert_reference_passes

import labkit.labs as labs
from labkit.errors import Unavailable
from labkit.labs import grader
from labkit.labs.storage import QuorumReference
from labkit.sim import first, settled


class AcksAfterWMinusOne(QuorumReference):
    """Returns from a write after W - 1 acks."""

    def put(self, key, value):
        self.version += 1
        version = self.version
        calls = [self.call(r, "put", self.kv.timeout, key=key, version=version,
                           value=value) for r in self.owners(key)]
        yield first(calls, self.kv.w - 1, f"a write of {key!r}")
        return version


class FirstAnswerWins(QuorumReference):
    """Returns the first answer of a read, not the newest of R."""

    def newest(self, answers):
        return answers[0]


class OlderWins(QuorumReference):
    """Compares versions the wrong way round: the oldest answer wins."""

    def newest(self, answers):
        return min(answers, key=lambda m: m.version)


class NoReadRepair(QuorumReference):
    """Never repairs a stale replica."""

    def repair(self, key, targets, calls):
        pass


class RepairsWithStaleValue(QuorumReference):
    """Repairs with the newest version number but the stale replica's own value."""

    def repair(self, key, targets, calls):
        answered = [(t, f.value) for t, f in zip(targets, calls, strict=True)
                    if not f.failed]
        best = self.newest([m for _, m in answered])
        for target, m in answered:
            if m.version < best.version:
                self.send(target, "put", key=key, version=best.version,
                          value=m.value)


class CountsARetryTwice(QuorumReference):
    """Asks every replica twice (a retry) and counts every answer: two acks
    from one replica make a quorum of two."""

    def owners(self, key):
        return [r for r in super().owners(key) for _ in "12"]


class SucceedsWithoutQuorum(QuorumReference):
    """Returns from a write even when W acks never came."""

    def put(self, key, value):
        try:
            return (yield from super().put(key, value))
        except Unavailable:
            return self.version


class ReturnsSelfVersion(QuorumReference):
    """Returns self.version once the acks are in: a put that started meanwhile
    has moved it on, so two concurrent puts both return the later version."""

    def put(self, key, value):
        self.version += 1
        calls = [self.call(r, "put", self.kv.timeout, key=key, version=self.version,
                           value=value) for r in self.owners(key)]
        yield first(calls, self.kv.w, f"a write of {key!r}")
        return self.version


class ReadsOneReplicaTwice(QuorumReference):
    """Asks the first owner twice (a retry) and counts both answers: a read
    quorum of one replica."""

    def get(self, key):
        owners = self.owners(key)
        owners = owners[:1] + owners
        calls = [self.call(r, "get", self.kv.timeout, key=key) for r in owners]
        replies = yield first(calls, self.kv.r, f"a read of {key!r}")
        settled(calls).add_done_callback(lambda _f: self.repair(key, owners, calls))
        return self.newest(replies).value


class WritesOnlyW(QuorumReference):
    """Sends a write to the first W owners only: one of them down and the write
    fails, though W owners are up."""

    def put(self, key, value):
        self.version += 1
        version = self.version
        calls = [self.call(r, "put", self.kv.timeout, key=key, version=version,
                           value=value) for r in self.owners(key)[:self.kv.w]]
        yield first(calls, self.kv.w, f"a write of {key!r}")
        return version


class AsksOnlyR(QuorumReference):
    """Asks the first R owners only."""

    def get(self, key):
        owners = self.owners(key)[:self.kv.r]
        calls = [self.call(r, "get", self.kv.timeout, key=key) for r in owners]
        replies = yield first(calls, self.kv.r, f"a read of {key!r}")
        settled(calls).add_done_callback(lambda _f: self.repair(key, owners, calls))
        return self.newest(replies).value


class ReadWaitsForAll(QuorumReference):
    """Waits for all N answers, not the first R."""

    def get(self, key):
        owners = self.owners(key)
        calls = [self.call(r, "get", self.kv.timeout, key=key) for r in owners]
        replies = yield first(calls, self.kv.n, f"a read of {key!r}")
        self.repair(key, owners, calls)
        return self.newest(replies).value


class RepairWithOwnVersion(QuorumReference):
    """Repairs with the newest value but the stale replica's own version."""

    def repair(self, key, targets, calls):
        answered = [(t, f.value) for t, f in zip(targets, calls, strict=True)
                    if not f.failed]
        best = self.newest([m for _, m in answered])
        for target, m in answered:
            if m.version < best.version:
                self.send(target, "put", key=key, version=m.version,
                          value=best.value)


class WriteWaitsForEveryCall(QuorumReference):
    """Waits for every put to be acked or time out, then returns if W acked (a
    spec audit's mutant): never wrong, but with one owner down every write
    takes the full timeout."""

    def put(self, key, value):
        self.version += 1
        version = self.version
        calls = [self.call(r, "put", self.kv.timeout, key=key, version=version,
                           value=value) for r in self.owners(key)]
        yield settled(calls)
        if sum(not f.failed for f in calls) < self.kv.w:
            raise Unavailable(f"a write of {key!r}")
        return version


class ReadWaitsForEveryCall(QuorumReference):
    """Waits for every get to be answered or time out, then returns the newest
    answer (a spec audit's mutant): with one owner down every read takes the
    full timeout."""

    def get(self, key):
        owners = self.owners(key)
        calls = [self.call(r, "get", self.kv.timeout, key=key) for r in owners]
        yield settled(calls)
        replies = [f.value for f in calls if not f.failed]
        if len(replies) < self.kv.r:
            raise Unavailable(f"a read of {key!r}")
        self.repair(key, owners, calls)
        return self.newest(replies).value


class RepairsFirstStaleOnly(QuorumReference):
    """Repairs the first replica that answered an older version and stops (a
    spec audit's mutant): with two stale owners, one stays stale."""

    def repair(self, key, targets, calls):
        answered = [(t, f.value) for t, f in zip(targets, calls, strict=True)
                    if not f.failed]
        best = self.newest([m for _, m in answered])
        for target, m in answered:
            if m.version < best.version:
                self.send(target, "put", key=key, version=best.version,
                          value=best.value)
                return


class RetriesWriteOnce(QuorumReference):
    """Not a bug: a write that failed is tried once more, with a new version and
    the same value."""

    def put(self, key, value):
        try:
            return (yield from super().put(key, value))
        except Unavailable:
            return (yield from super().put(key, value))


# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (AcksAfterWMinusOne, "read_your_writes", ["write quorum", "no quorum"]),
    (FirstAnswerWins, "replica_crashes", ["stale read", "no read repair"]),
    (OlderWins, "replica_crashes", ["stale read", "no read repair"]),
    (NoReadRepair, "replica_crashes", ["no read repair"]),
    (RepairsWithStaleValue, "replica_crashes", ["read repair"]),
    (CountsARetryTwice, "no_quorum", ["write quorum", "no quorum"]),
    (SucceedsWithoutQuorum, "no_quorum", ["write quorum", "no quorum"]),
    (ReturnsSelfVersion, "concurrent_writes", ["return the version this put sent"]),
    (ReadsOneReplicaTwice, "stale_owner_answers_first", ["R distinct replicas"]),
    (WritesOnlyW, "no_quorum", ["send the put to all N owners"]),
    (AsksOnlyR, "no_quorum", ["ask all N owners"]),
    (ReadWaitsForAll, "no_quorum", ["ask all N owners"]),
    (RepairWithOwnVersion, "replica_crashes", ["read repair"]),
    (WriteWaitsForEveryCall, "no_quorum", ["return after the first W acks"]),
    (ReadWaitsForEveryCall, "no_quorum", ["return after the first R answers"]),
    (RepairsFirstStaleOnly, "two_stale_owners", ["no read repair"]),
]

# mutants that their scenario must catch on every default seed, not only on the
# seeds where chance arranges the situation (a spec audit's)
EVERY_SEED = (WriteWaitsForEveryCall, ReadWaitsForEveryCall, RepairsFirstStaleOnly)


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[m[0].__name__ for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    assert_caught("storage", mutant, scenario, reasons)


@pytest.mark.parametrize("mutant", EVERY_SEED, ids=[m.__name__ for m in EVERY_SEED])
def test_its_scenario_catches_it_on_every_default_seed(mutant):
    scenario = next(s for m, s, _ in MUTANTS if m is mutant)
    lab = labs.lab("storage")
    report = grader.grade_lab(lab, mutant, (lab.scenario(scenario),), lab.seeds)
    assert {f.seed for f in report.failures} == set(lab.seeds), repr(report)


def test_a_write_retried_with_a_new_version_is_no_stale_read():
    """A failed write tried again carries its value under a second version; a
    read of that value is as new as the retry, not the first attempt."""
    report = labs.grade("storage", RetriesWriteOnce)
    assert report.passed, repr(report)


@pytest.mark.parametrize("part", labs.parts("storage"))
def test_the_reference_passes_on_100_seeds(part):
    assert_reference_passes("storage", part)
