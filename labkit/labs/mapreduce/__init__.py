"""The MapReduce lab: write the master's reassignment of failed and
straggling tasks, run it in `MapReduceCluster` (or `lk.mapreduce.run(...,
master=MyMaster)`), let the grader break it.

A student derives `MyMaster` from `MasterSkeleton` and fills in its methods:
`silent_workers` (the failure detector: silent longer than the timeout),
`reassign` (a dead worker's in-progress tasks and its completed map tasks go
back to idle, its completed reduce tasks do not), `pick` (maps first, with
locality; reduces once every map is done), `finish` (only the first
completion of an attempt the master still counts on) and `backup_for`
(near the end of a phase, one backup copy per task still running, the
oldest first). Grading:

  reassignment  healthy, crash_at_start, crash_during_maps,
                crash_after_maps, crash_after_commit, late_completion,
                partitioned_worker, unreliable_network
  stragglers    slow_mapper, slowing_down, straggler_and_crash,
                straggler_dies, backups_are_cheap

The referee trusts nothing the master claims: it compares every assignment
and location the master sends with what the workers' disks and the global
file system hold (see `Referee`). The scenarios check that the job finishes
(else which task was lost, and how), that the output is exactly the word
count of the input, and with stragglers that backups keep the job within
a bound of a straggler-free run (Dean & Ghemawat: 44 % slower without them).

Where to read what: `base` (what an answer is given, and the referee),
`skeleton` (the methods to write), `reference` (the worked answer),
`scenarios` (the graded stories).
"""

from __future__ import annotations

from ..lab import Budget, Lab, Scenario
from . import scenarios as s
from .base import MasterBase, Referee
from .reference import MasterReference
from .skeleton import MasterSkeleton

REASSIGNMENT = (s.healthy, s.crash_at_start, s.crash_during_maps,
                s.crash_after_maps, s.crash_after_commit, s.late_completion,
                s.partitioned_worker, s.unreliable_network)
STRAGGLERS = (s.slow_mapper, s.slowing_down,
              s.straggler_and_crash, s.straggler_dies, s.backups_are_cheap)

LAB = Lab(
    name="mapreduce",
    title="MapReduce: the master's reassignment of failed and straggling tasks",
    parts=("reassignment", "stragglers"),
    scenarios=tuple(Scenario(fn.__name__, part, fn)
                    for part, fns in (("reassignment", REASSIGNMENT),
                                      ("stragglers", STRAGGLERS)) for fn in fns),
    skeleton=MasterSkeleton,
    reference=MasterReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(events=50_000, messages=50_000, cpu=5.0),
    window=3.0,
    hints={
        "reduce before maps": "Hand out reduce tasks only once self.reducing: "
        "every map task has completed",
        "completed reduce re-executed": "In reassign, leave completed reduce "
        "tasks alone: their output is in the global file system, not on the "
        "dead worker's disk",
        "stale location": "Name silent workers in silent_workers; in reassign, "
        "send the dead worker's completed map tasks back to idle; in finish, "
        "ignore an attempt no longer in its task's running list",
        "wasteful backup": "backup_for copies only running tasks with "
        "task.backups == 0, and only when nothing waits to start",
        "backup order": "In backup_for, of the candidates pick the one whose "
        "first attempt started earliest (min of task.running[0].start): the task "
        "that has run longest is the likely straggler",
    },
)

__all__ = ["LAB", "MasterBase", "MasterReference", "MasterSkeleton", "Referee"]
