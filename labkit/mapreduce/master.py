"""The MapReduce master node: its record of every task and worker, failure
detection by missed heartbeats (§3.3), scheduling with locality (§3.4),
backup tasks near the end of a phase (§3.6), reducer preemption, and the end
of the job when the last reduce commits.

Messages may be lost, duplicated or cut off by a brief partition. Handlers
of completions are idempotent, and every heartbeat carries the worker's own
account of its work (the attempt it runs, the last one it finished, the
locations of map output it last heard, the fetches it waits for and those it
has queued to serve), which the master reconciles with its record: a lost
completion, a lost assignment, a lost update of locations or a lost fetch
is found from the heartbeats that follow (see `Master.reconcile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from labkit.net import Message, Network
from labkit.node import Node

from .job import Job, _Attempt

#: The master's node name: workers send it heartbeats and finished tasks.
MASTER = "master"


def _median(values: Sequence[float]) -> float:
    """The middle value (the lower of the two middle ones); 0 if empty."""
    return sorted(values)[(len(values) - 1) // 2] if values else 0.0


@dataclass
class _Task:
    """The master's record of one task (§3.2: idle, in-progress, completed)."""

    phase: str
    index: int
    state: str = "idle"
    running: list[_Attempt] = field(default_factory=list)
    location: str | None = None         # maps: the worker holding the output
    done_by: _Attempt | None = None
    backups: int = 0
    rerun: bool = False                 # an attempt failed or its output was lost


@dataclass
class _WorkerState:
    """What the master knows about one worker."""

    alive: bool = True
    incarnation: int | None = None
    last_seen: float = 0.0
    attempt: _Attempt | None = None
    progress: float = 0.0
    doubted: float | None = None        # heartbeats contradict `attempt` since
    # The fetches it has queued to serve, (reduce attempt, map task), as its
    # last heartbeat said; for a reducer, since when each fetch it waits for,
    # (attempt, map task, worker asked), has been missing from that queue.
    serving: frozenset[tuple[int, int]] = frozenset()
    unserved: dict[tuple[int, int, str], float] = field(default_factory=dict)


class Master(Node):
    """The master: assigns tasks to idle workers, detects dead workers by
    missed heartbeats and runs their tasks again, launches backup copies
    near the end of each phase, and ends the job when every reduce is done."""

    def __init__(self, name: str, net: Network, job: Job, workers: Sequence[str]):
        self.job, self.worker_names = job, list(workers)
        super().__init__(name, net)

    def reset(self) -> None:
        job = self.job
        self.maps = [_Task("map", i) for i in range(len(job.splits))]
        self.reduces = [_Task("reduce", r) for r in range(job.partitions)]
        self.workers = {w: _WorkerState() for w in self.worker_names}
        self.reducing = False
        self.completed = {"map": 0, "reduce": 0}
        self.durations: dict[str, list[float]] = {"map": [], "reduce": []}
        self.backups_launched = {"map": 0, "reduce": 0}
        # How many times reducers were told where map output lives, and when
        # last: the version a reducer reports in its heartbeats.
        self.version, self.version_at = 0, 0.0
        self.set_timer("check", job.heartbeat, self.check)

    # -- failure detection (§3.3) -------------------------------------------------
    def on_heartbeat(self, msg: Message) -> None:
        state = self.workers[msg.src]
        if state.alive and state.incarnation not in (None, msg.incarnation):
            self.worker_failed(msg.src)     # it crashed and restarted in between
        # Work is handed out when something changes (a task finishes, a worker
        # fails or joins) and on every check, when backups may have become due.
        joined = not state.alive or state.incarnation != msg.incarnation
        state.alive, state.incarnation = True, msg.incarnation
        state.last_seen, state.progress = self.sim.now, msg.progress
        state.serving = msg.serving
        if joined:
            self.schedule()
        else:
            self.reconcile(msg)

    def reconcile(self, msg: Message) -> None:
        """Compare a heartbeat's account of the worker's work with the master's
        record, and repair what a lost message left wrong.

        The heartbeat says which attempt the worker runs (`running`), the last
        it finished (`finished`) and the version of map output locations it
        last heard (`version`). When it has contradicted the master's record
        of the worker's attempt for a whole timeout, the message that would
        have settled it is taken as lost (one still on its way, an assignment
        to the worker or its report of a completion, arrives well within a
        timeout; so does a heartbeat sent after it, which would clear the
        doubt): if the worker finished the attempt, its report is handled as
        if it had arrived; otherwise the worker never got the assignment, and
        the attempt has failed. A reducer a timeout behind on locations is
        sent them again, and told to ask again for a piece whose request or
        answer was lost (`chase_fetches`). Without loss none of this ever acts."""
        state, now, patience = self.workers[msg.src], self.sim.now, self.job.timeout
        attempt = state.attempt
        if attempt is None or msg.running == attempt.id:
            state.doubted = None
            if attempt is not None and attempt.phase == "reduce":
                if msg.version < self.version and now - self.version_at >= patience:
                    self.send(msg.src, "locations", attempt=attempt.id,
                              locations=self.locations(), version=self.version)
                if msg.waiting or state.unserved:
                    self.chase_fetches(msg, attempt)
            return
        if state.doubted is None:
            state.doubted = now
        if now - state.doubted < patience:
            return
        state.doubted = None
        if msg.finished == attempt.id:
            # Through `deliver`, as if the lost report had arrived (so that
            # whatever watches the master's mail sees it too).
            self.deliver(Message(msg.src, self.name, f"{attempt.phase}_done",
                                 {"attempt": attempt.id}, msg.id))
        else:
            self.assignment_lost(attempt)

    def chase_fetches(self, msg: Message, attempt: _Attempt) -> None:
        """Tell the reducer to ask again for a piece whose request or answer
        was lost.

        The reducer's heartbeat lists the fetches it has had no answer to
        (`waiting`: map task, worker asked); every worker's lists the
        requests it has queued to serve (`serving`), each from its arrival
        until its answer leaves, and the answer arrives a moment later. So a
        fetch the reducer still waits for, that its worker (alive, and still
        where that map output is) has not listed for a whole timeout, nor in
        a heartbeat that came a whole interval into it (when the request had
        had time to arrive), was lost on its way or served and its answer
        lost. A slow answer, queued behind other transfers however long,
        stays listed and is never asked for again; without loss this never
        acts."""
        state, now = self.workers[msg.src], self.sim.now
        unserved = {}
        for m, where in msg.waiting:
            server = self.workers[where]
            if ((attempt.id, m) in server.serving or not server.alive
                    or self.maps[m].location != where):
                continue            # queued there, or the output has moved
            key = (attempt.id, m, where)
            since = state.unserved.get(key, now)
            if (now - since >= self.job.timeout
                    and server.last_seen - since >= self.job.heartbeat):
                self.send(msg.src, "ask_again", attempt=attempt.id, map=m,
                          where=where)
                since = now
            unserved[key] = since
        state.unserved = unserved

    def assignment_lost(self, attempt: _Attempt) -> None:
        """The worker never got `attempt`: it has failed, and its task goes
        back to idle if no other copy runs, to be scheduled again."""
        attempt.close(self.sim.now, "failed")
        self.workers[attempt.worker].attempt = None
        task = self.task_of(attempt)
        if attempt in task.running:
            task.running.remove(attempt)
        if not task.running and task.state == "running":
            task.state, task.rerun = "idle", True
        self.schedule()

    def check(self) -> None:
        for name, state in self.workers.items():
            if state.alive and self.sim.now - state.last_seen > self.job.timeout:
                self.worker_failed(name)
        self.schedule()
        self.set_timer("check", self.job.heartbeat, self.check)

    def worker_failed(self, name: str) -> None:
        """Its running attempt failed, and the output of its completed map tasks
        is gone with it: those tasks go back to idle (if reduces still need it)."""
        state = self.workers[name]
        state.alive, state.progress = False, 0.0
        self.sim.metrics.counter("workers.failed").inc()
        if state.attempt is not None:
            attempt, state.attempt = state.attempt, None
            attempt.close(self.sim.now, "failed")
            task = self.task_of(attempt)
            task.running.remove(attempt)
            if not task.running and task.state == "running":
                task.state, task.rerun = "idle", True
        moved = False
        for task in self.maps:
            if task.state == "completed" and task.location == name:
                task.state, task.location, task.rerun = "idle", None, True
                task.done_by.outcome = "lost"
                self.completed["map"] -= 1
                moved = True
        if moved:
            self.tell_reducers()
        self.schedule()

    # -- scheduling (§3.1, §3.4, §3.6) --------------------------------------------
    def schedule(self) -> None:
        """Give every idle live worker a task, if there is one for it."""
        for name, state in self.workers.items():
            if state.alive and state.attempt is None and state.incarnation:
                task, backup = self.pick(name)
                if task is not None:
                    self.assign(task, name, backup)
        self.preempt_if_stuck()

    def preempt_if_stuck(self) -> None:
        """Reduces waiting for lost map output can hold every live worker, so
        the maps they wait for never run. Then cancel the reduce attempt with
        the least progress and give its worker a map (Hadoop's reducer
        preemption does the same)."""
        if (not any(t.state == "idle" for t in self.maps)
                or any(t.state == "running" for t in self.maps)
                or any(s.alive and s.attempt is None and s.incarnation
                       for s in self.workers.values())):
            return
        running = [a for t in self.reduces for a in t.running]
        if not running:
            return
        victim = min(running, key=lambda a: (self.workers[a.worker].progress, -a.id))
        self.send(victim.worker, "cancel", attempt=victim.id, outcome="preempted")
        self.workers[victim.worker].attempt = None
        task = self.reduces[victim.task]
        task.running.remove(victim)
        if not task.running:
            task.state, task.rerun = "idle", True
        self.sim.metrics.counter("tasks.preempted").inc()
        self.schedule()

    def pick(self, worker: str) -> tuple[_Task | None, bool]:
        idle = [t for t in self.maps if t.state == "idle"]
        if self.reducing:
            idle += [t for t in self.reduces if t.state == "idle"]
        if idle:
            if self.job.locality:
                local = [t for t in idle if t.phase == "map"
                         and worker in self.job.splits[t.index].replicas]
                idle = local or idle
            return idle[0], False
        return self.backup_for(worker), True

    def backup_for(self, worker: str) -> _Task | None:
        """The task to copy near the end of the phase, per the Backups policy."""
        policy = self.job.backups
        name = "map" if self.completed["map"] < len(self.maps) else "reduce"
        phase = self.maps if name == "map" else self.reduces
        if (policy is None or self.completed[name] < policy.start * len(phase)
                or self.backups_launched[name] >= policy.cap(len(phase))):
            return None
        candidates = [t for t in phase if t.state == "running" and t.backups == 0
                      and all(a.worker != worker for a in t.running)]
        if policy.pick == "oldest":
            return min(candidates, key=lambda t: t.running[0].start, default=None)
        typical = _median(self.durations[name])
        left = {t.index: self.time_left(t) for t in candidates}
        worth = [t for t in candidates if left[t.index] > typical]
        return max(worth, key=lambda t: left[t.index], default=None)

    def time_left(self, task: _Task) -> float:
        """LATE's estimate, elapsed × (1 − progress) / progress; 0 for a task
        that has reported no progress yet (too early to judge)."""
        attempt = task.running[0]
        progress = self.workers[attempt.worker].progress
        elapsed = self.sim.now - attempt.start
        return 0.0 if progress <= 0 else elapsed * (1 - progress) / progress

    def assign(self, task: _Task, worker: str, backup: bool) -> None:
        job, state = self.job, self.workers[worker]
        attempt = _Attempt(len(job.attempts), task.phase, task.index, worker,
                           self.sim.now, backup)
        job.attempts.append(attempt)
        task.state = "running"
        task.running.append(attempt)
        state.attempt, state.progress, state.doubted = attempt, 0.0, None
        metrics = self.sim.metrics
        if backup:
            task.backups += 1
            self.backups_launched[task.phase] += 1
            metrics.counter("tasks.backup").inc()
        elif task.rerun:
            task.rerun = False
            metrics.counter("tasks.reexecuted").inc()
        extra = ({"locations": self.locations(), "version": self.version}
                 if task.phase == "reduce" else {})
        self.send(worker, "assign", attempt=attempt.id,
                  incarnation=state.incarnation, **extra)

    def locations(self) -> tuple[str | None, ...]:
        return tuple(t.location for t in self.maps)

    def tell_reducers(self) -> None:
        """§3.3: workers running reduce tasks learn where map output now lives
        (a new version of the locations)."""
        where = self.locations()
        self.version, self.version_at = self.version + 1, self.sim.now
        for task in self.reduces:
            for attempt in task.running:
                self.send(attempt.worker, "locations", attempt=attempt.id,
                          locations=where, version=self.version)

    # -- completion ---------------------------------------------------------------
    def task_of(self, attempt: _Attempt) -> _Task:
        return (self.maps if attempt.phase == "map" else self.reduces)[attempt.task]

    def on_map_done(self, msg: Message) -> None:
        task = self.finished(msg)
        if task is None:
            return
        task.location = msg.src
        if self.completed["map"] == len(self.maps):
            self.reducing = True
        self.tell_reducers()
        self.schedule()

    def on_reduce_done(self, msg: Message) -> None:
        if self.finished(msg) is None:
            return
        if self.completed["reduce"] == len(self.reduces):
            self.end_job()
        else:
            self.schedule()

    def end_job(self) -> None:
        """The last reduce committed: stop the clock. An attempt still running
        lost its race if its task completed ("cancelled"), or else was not
        needed any more ("unneeded": a map run again for its lost output,
        which every reduce had fetched already)."""
        self.job.done = True
        for attempt in self.job.attempts:
            done = self.task_of(attempt).state == "completed"
            attempt.close(self.sim.now, "cancelled" if done else "unneeded")
        self.sim.stop()

    def finished(self, msg: Message) -> _Task | None:
        """Book a finished attempt; the task if it is now completed (other copies
        are cancelled), else None. A map task completes with the first copy the
        master still counts on; a reduce task with whichever copy's rename
        committed its partition (§3.3: later completions are ignored)."""
        attempt = self.job.attempts[msg.attempt]
        task, state = self.task_of(attempt), self.workers[msg.src]
        if state.attempt is attempt:
            state.attempt = None
        counted = attempt in task.running
        if counted:
            task.running.remove(attempt)
        if task.phase == "reduce":
            writer = self.job.output.writers.get(task.index)
            winner = None if writer is None else self.job.attempts[writer]
        else:
            winner = attempt if counted and attempt.outcome == "completed" else None
        if task.state == "completed" or winner is None:
            # (A duplicate report of the attempt that completed the task
            # changes nothing.)
            if (attempt.outcome == "completed" and attempt is not winner
                    and attempt is not task.done_by):
                attempt.outcome = "unused"
            self.schedule()
            return None
        winner.outcome = "completed"
        self.completed[task.phase] += 1
        self.durations[task.phase].append(self.sim.now - winner.start)
        for other in task.running:
            self.send(other.worker, "cancel", attempt=other.id, outcome="cancelled")
            self.workers[other.worker].attempt = None
        task.running, task.state, task.done_by = [], "completed", winner
        return task
