"""The MapReduce lab's skeleton, the class a student derives from: the
master's failure detector, what to run again when a worker dies, what an idle
worker runs next, which completions count, and which task to back up, each
raising NotImplementedError that says what it must do."""

from __future__ import annotations

from .base import MasterBase


class MasterSkeleton(MasterBase):
    """Your MapReduce master: detect dead workers, run their lost work again,
    hand out tasks phase by phase, count each task's first completion only,
    and back up stragglers near the end of a phase (Dean & Ghemawat §3.3,
    §3.6). Task records are in self.maps and self.reduces, workers in
    self.workers (see MasterBase)."""

    def silent_workers(self) -> list:
        """The names of the workers the master counts as alive that have sent
        no heartbeat for more than self.job.timeout seconds (checked once per
        heartbeat interval; the base then declares each one dead)."""
        raise NotImplementedError(
            "not yet implemented: silent_workers: the names in self.workers whose "
            "state is alive and whose last_seen is more than self.job.timeout "
            "seconds before self.sim.now")

    def reassign(self, worker: str) -> None:
        """`worker` is dead (its attempt is already booked as failed): put back
        to idle what died with it. Its in-progress attempts stop counting, and
        a task left with no running copy becomes idle; its completed map tasks
        become idle too (their output was on its local disk: set location to
        None); its completed reduce tasks stay completed (their output is in
        the global file system)."""
        raise NotImplementedError(
            "not yet implemented: reassign: drop the attempts on `worker` from "
            "every task's running list (a running task left with none: state "
            "'idle'); every completed map task whose location is `worker`: state "
            "'idle', location None; leave completed reduce tasks alone")

    def pick(self, worker: str) -> object:
        """The idle task `worker` should run next, or None: an idle map task
        first (better one whose input `worker` stores, in
        self.job.splits[i].replicas); an idle reduce task only once
        self.reducing (every map task has completed)."""
        raise NotImplementedError(
            "not yet implemented: pick: an idle task of self.maps (prefer one "
            "whose split has `worker` among its replicas), else, if "
            "self.reducing, an idle task of self.reduces, else None")

    def finish(self, attempt: object) -> object:
        """A worker reports that `attempt` finished. Return its task if this
        completion counts, now marked completed; None to ignore it. It counts
        only if the master still counts on the attempt (it is in the task's
        running list: not from a worker declared dead, not cancelled) and the
        task is not completed yet (a duplicate, or a slower copy). Then: mark
        the task completed, done_by the attempt, a map's location the
        attempt's worker, and cancel the other copies still running."""
        raise NotImplementedError(
            "not yet implemented: finish: task = self.task_of(attempt); None if "
            "attempt is not in task.running or task.state == 'completed'; else "
            "remove it from task.running, self.cancel(c) every other copy, set "
            "state 'completed', done_by, location (maps: attempt.worker); return "
            "the task")

    def backup_for(self, worker: str) -> object:
        """Called only when no task waits to start (the end of a phase) and the
        job has backups on: the running task of the current phase (maps until
        self.reducing, then reduces) to copy on idle `worker`, or None. Copy
        each task at most once (task.backups counts copies), never on a worker
        that already runs it; the oldest running task first."""
        raise NotImplementedError(
            "not yet implemented: backup_for: of the running tasks of the current "
            "phase with task.backups == 0 and no attempt on `worker`, the one whose "
            "first attempt started earliest; None if there is none")
