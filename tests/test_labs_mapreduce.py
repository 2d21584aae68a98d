"""The MapReduce lab's grader, tested by the bugs it must catch: classic
mistakes of a MapReduce master, each a mutant of the worked answer
overriding one method, must fail grading at the default seeds, each for its
own reason; the worked answer passes every scenario on 100 seeds; the
skeleton fails with readable reports; and an answer runs in the topic's own
facade, `mapreduce.run(..., master=...)`.

A mutant of backup_for alone is graded on the stragglers part only: the
reassignment part never asks backup_for (the worked answer passes it on 100
seeds with a backup_for that raises), so there such a mutant runs exactly as
the worked answer does, which passes: grading it there too could add no
failure."""

from __future__ import annotations

from collections import Counter

import pytest
from test_labs import SEEDS, assert_caught, assert_reference_passes, changed

import labkit.labs as labs
from labkit import mapreduce
from labkit.labs.mapreduce import MasterReference
from labkit.labs.mapreduce.scenarios import corpus, total, words


class NeverDetects(MasterReference):
    """Waits for a dead worker's heartbeat for ever: no failure detector."""

    def silent_workers(self):
        return []


class NeverReassigns(MasterReference):
    """Sends a dead worker's completed maps back to idle, but forgets the task
    it was running: it stays 'running' on a dead worker."""

    def reassign(self, worker):
        for task in self.maps:
            if task.state == "completed" and task.location == worker:
                task.state, task.location = "idle", None


class KeepsLostMapOutput(MasterReference):
    """Re-runs a dead worker's running task, but trusts its completed map
    output, which died with its local disk."""

    def reassign(self, worker):
        for task in self.maps + self.reduces:
            task.running = [a for a in task.running if a.worker != worker]
            if task.state == "running" and not task.running:
                task.state = "idle"


class RerunsCompletedReduces(MasterReference):
    """Also sends a dead worker's completed reduce tasks back to idle, although
    their output is in the global file system."""

    def reassign(self, worker):
        super().reassign(worker)
        for task in self.reduces:
            if task.state == "completed" and task.done_by.worker == worker:
                task.state = "idle"


class AcceptsLateCompletion(MasterReference):
    """Counts any completion of a task not yet completed, even one from an
    attempt it gave up on (its worker declared dead)."""

    def finish(self, attempt):
        task = self.task_of(attempt)
        if task.state == "completed":
            return None
        for other in list(task.running):
            if other is not attempt:
                self.cancel(other)
        task.running, task.state, task.done_by = [], "completed", attempt
        if task.phase == "map":
            task.location = attempt.worker
        return task


class CountsEveryCopy(MasterReference):
    """Counts each completion of an attempt it counts on, but neither stops
    counting on the attempt nor cancels the other copies: a duplicated
    message, or a backup's second copy, completes the task twice."""

    def finish(self, attempt):
        task = self.task_of(attempt)
        if attempt not in task.running:
            return None
        task.state, task.done_by = "completed", attempt
        if task.phase == "map":
            task.location = attempt.worker
        return task


class ReducesEarly(MasterReference):
    """Hands out reduce tasks as soon as a worker is free, before the maps are
    done (the reducers then hold workers the maps need)."""

    def pick(self, worker):
        maps = [t for t in self.maps if t.state == "idle"]
        local = [t for t in maps if worker in self.job.splits[t.index].replicas]
        if local or maps:
            return (local or maps)[0]
        return next((t for t in self.reduces if t.state == "idle"), None)


class NoBackups(MasterReference):
    """Never launches a backup copy: the job waits for the straggler."""

    def backup_for(self, worker):
        return None


class PilesOnTheOldest(MasterReference):
    """Every idle worker copies the oldest running task, however many copies
    it already has."""

    def backup_for(self, worker):
        phase = self.reduces if self.reducing else self.maps
        running = [t for t in phase if t.state == "running"
                   and all(a.worker != worker for a in t.running)]
        return min(running, key=lambda t: t.running[0].start, default=None)


class NewestBackup(MasterReference):
    """Copies the most recently started running task first: the straggler,
    running longest, waits until every newer task has a copy."""

    def backup_for(self, worker):
        phase = self.reduces if self.reducing else self.maps
        candidates = [t for t in phase if t.state == "running" and t.backups == 0
                      and all(a.worker != worker for a in t.running)]
        return max(candidates, key=lambda t: t.running[0].start, default=None)


class BacksUpFromTheStart(MasterReference):
    """Copies a running task before handing out the tasks still waiting: a
    backup for every task, from the start of the phase."""

    def pick(self, worker):
        if self.job.backups is not None:
            copy = self.backup_for(worker)
            if copy is not None:
                copy.backups += 1
                return copy
        return super().pick(worker)


class SlowDetector(MasterReference):
    """Declares a worker dead only after twice the timeout (an audit's
    mutant): the job still finishes, later."""

    def silent_workers(self):
        deadline = self.sim.now - 2 * self.job.timeout
        return [name for name, state in self.workers.items()
                if state.alive and state.last_seen < deadline]


class IdlesTaskWithLiveCopy(MasterReference):
    """When a worker dies, puts every task it ran a copy of back to idle and
    cancels the other copies, even a healthy backup (an audit's mutant): the
    task starts over, the output stays right, the job is slower."""

    def reassign(self, worker):
        for task in self.maps + self.reduces:
            had = any(a.worker == worker for a in task.running)
            task.running = [a for a in task.running if a.worker != worker]
            if task.state == "running" and had:
                for other in list(task.running):
                    self.cancel(other)
                task.state = "idle"
        for task in self.maps:
            if task.state == "completed" and task.location == worker:
                task.state, task.location = "idle", None


class LeavesOtherCopiesRunning(MasterReference):
    """Counts the first completion but cancels no other copy (a spec audit's
    mutant): the losing copy runs on to its end, holding its worker; near the
    end of a phase that costs little time, so only the check that the loser is
    cancelled catches it on every seed."""

    def finish(self, attempt):
        task = self.task_of(attempt)
        if attempt not in task.running or task.state == "completed":
            return None
        task.running.remove(attempt)
        task.state, task.done_by = "completed", attempt
        if task.phase == "map":
            task.location = attempt.worker
        return task


class IgnoresLocality(MasterReference):
    """Hands out the first idle map task, wherever its input is (a spec audit's
    mutant): the output is right and the job barely slower."""

    def pick(self, worker):
        maps = [t for t in self.maps if t.state == "idle"]
        if maps:
            return maps[0]
        if self.reducing:
            return next((t for t in self.reduces if t.state == "idle"), None)
        return None


# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (NeverDetects, "crash_during_maps", ["never declared", "ran none of",
                                         "stale location", "slow failure detector"]),
    (NeverReassigns, "crash_during_maps", ["never handed it out again",
                                                "stale location",
                                                "did not finish"]),
    (KeepsLostMapOutput, "crash_after_maps", ["never ran it again",
                                              "stale location", "still waits for",
                                              "ran none of"]),
    (RerunsCompletedReduces, "crash_after_commit", ["completed reduce re-executed"]),
    (AcceptsLateCompletion, "late_completion", ["stale location"]),
    (CountsEveryCopy, "unreliable_network", ["reduce before maps",
                                             "missing output", "too slow",
                                             "copy not cancelled"]),
    (CountsEveryCopy, "slow_mapper", ["reduce before maps", "missing output",
                                      "too slow", "copy not cancelled"]),
    (ReducesEarly, "healthy", ["reduce before maps"]),
    (NoBackups, "slow_mapper", ["too slow"]),
    (PilesOnTheOldest, "backups_are_cheap", ["wasteful backup"]),
    (BacksUpFromTheStart, "backups_are_cheap", ["wasteful backup"]),
    (NewestBackup, "slow_mapper", ["backup order"]),
    (SlowDetector, "crash_during_maps", ["slow failure detector", "stale location"]),
    (IdlesTaskWithLiveCopy, "straggler_dies", ["healthy copy cancelled",
                                               "started over"]),
    (LeavesOtherCopiesRunning, "slow_mapper", ["copy not cancelled", "too slow"]),
    (IgnoresLocality, "healthy", ["no locality", "too slow"]),
]
# Not listed: a backup_for that may copy a task onto the worker already running
# it. The base asks backup_for(worker) only for a worker the master counts as
# idle, and every path that frees a worker also drops its attempt from the
# task's running list (finish, cancel, reassign, preemption), so no candidate
# ever runs on `worker`: with the worked answer's other methods that mutant
# behaves exactly like the answer, and no scenario can tell them apart.


class RefusesBackups(MasterReference):
    """The worked answer, but backup_for raises."""

    def backup_for(self, worker):
        raise AssertionError("the reassignment part asked backup_for")


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[f"{m[0].__name__}-{m[1]}" for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    """A mutant of backup_for alone is graded on the stragglers part only: the
    reassignment part never asks backup_for (see
    test_the_reference_passes_on_100_seeds), so there it runs exactly as the
    worked answer does and could fail for no reason."""
    part = "stragglers" if changed(mutant) == {"backup_for"} else None
    assert_caught("mapreduce", mutant, scenario, reasons, part=part)


@pytest.mark.parametrize("part", labs.parts("mapreduce"))
def test_the_reference_passes_on_100_seeds(part):
    """On reassignment the worked answer runs with a backup_for that raises
    (RefusesBackups): it passes just the same, so that part never asks
    backup_for and the runs are the worked answer's own (which the mutant test
    relies on)."""
    if part != "reassignment":
        assert_reference_passes("mapreduce", part)
        return
    seeds = range(SEEDS.get(("mapreduce", part), 100))
    report = labs.grade("mapreduce", RefusesBackups, part=part, seeds=seeds)
    assert report.passed, "\n".join(str(f) for f in report.failures[:5])


def test_the_skeleton_fails_saying_which_method_to_write():
    report = labs.grade("mapreduce", labs.skeleton("mapreduce"), part="reassignment",
                        seeds=[1])
    assert not report.passed and len(report.failures) == len(report.runs)
    why = report.failures[0].why
    assert why.startswith("not yet implemented: ")
    assert "in MasterSkeleton." in why and "line" in why
    assert 'lk.labs.replay("mapreduce", MasterSkeleton, "healthy", seed=1)' in repr(
        report)


def test_the_answer_runs_in_the_topic_facade():
    docs = corpus(7)
    truth = Counter(w for line in docs for w in line.split())
    run = mapreduce.run(words, total, docs, workers=5, seed=7, crash={"w3": 20.0},
                        master=MasterReference)
    assert run.output == truth
    lost = [a for a in run.timeline if a.worker == "w3" and a.outcome == "lost"]
    assert lost and run.reexecutions >= len(lost)


@pytest.mark.parametrize("master", [object, "MasterReference", None])
def test_run_refuses_a_master_that_is_not_a_master_class(master):
    with pytest.raises(TypeError, match="master must be a class derived from"):
        mapreduce.run(words, total, corpus(1), master=master)
