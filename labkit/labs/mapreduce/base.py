"""What a MapReduce lab answer is given: `MasterBase`, labkit's master with
everything but the decisions this lab is about, and the `Referee`.

`MasterBase` keeps labkit's plumbing: the task and worker records, heartbeat
bookkeeping (a worker that comes back with a new incarnation has crashed in
between), the failure-detector timer, handing tasks to idle workers, telling
reducers where map output lives, reducer preemption and the end of the job.
It asks the student's methods the questions: which workers are silent too
long (`silent_workers`), what to run again when a worker dies (`reassign`),
what an idle worker runs next (`pick`), which completions count (`finish`)
and what to copy near the end of a phase (`backup_for`).

The referee trusts nothing the master claims. It watches the wire (every
assignment and location the master sends, every heartbeat and completion it
receives), the workers themselves (alive? which incarnation? what is on their
local disks?) and the global file system. It raises `InvariantViolation` at
the message that broke a rule: a reduce task handed out before every map task
had completed; a reduce task run again after its committed completion reached
the master; reducers sent to fetch map output from a worker the master knows
lost it; and, where asked, backup copies launched before the end of a phase,
several at once, or for a task while an older one, with clearly more time
left, had no copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.errors import InvariantViolation
from labkit.mapreduce import MapReduceCluster, Master
from labkit.net import Message

KINDS = ("map", "reduce")


class MasterBase(Master):
    """The master of a `MapReduceCluster` (named "master", never crashed).

    What it knows, all of it kept up to date for you:
    - `self.maps`, `self.reduces`: one record per task, with `phase` ("map" or
      "reduce"), `index`, `state` ("idle", "running" or "completed"),
      `running` (the attempts the master counts on, each with `id`, `worker`
      and `start`), `location` (a map task's worker holding its output),
      `done_by` (the attempt that completed it) and `backups` (copies
      launched as backups);
    - `self.workers`: name -> `alive` (as far as the master knows),
      `incarnation`, `last_seen` (when its last heartbeat arrived), `attempt`
      (what it runs) and `progress`;
    - `self.reducing`: True once every map task has completed (once);
      `self.completed`: completed tasks per phase;
    - `self.job`: `timeout` (silence that means dead), `heartbeat`, `splits`
      (`splits[i].replicas`: the workers storing map task i's input);
      `self.sim.now`: the time.
    Helpers: `task_of(attempt)`, `cancel(attempt)` (stop a copy, free its
    worker) and `time_left(task)` (LATE's estimate, from progress)."""

    # -- failure detection: the timer and what follows a death -------------------------
    def check(self) -> None:
        for name in self.silent_workers():
            if self.workers[name].alive:
                self.worker_failed(name)
        self.schedule()
        self.set_timer("check", self.job.heartbeat, self.check)

    def worker_failed(self, name: str) -> None:
        """Book the death (its running attempt failed), ask `reassign` what to
        run again, then tell reducers where map output now lives."""
        state = self.workers[name]
        state.alive, state.progress = False, 0.0
        self.sim.metrics.counter("workers.failed").inc()
        if state.attempt is not None:
            state.attempt.close(self.sim.now, "failed")
            state.attempt = None
        tasks = [*self.maps, *self.reduces]
        before = [(t.state, t.location) for t in tasks]
        self.reassign(name)
        moved = False
        for task, (was, where) in zip(tasks, before, strict=True):
            if was != "idle" and task.state == "idle":
                task.rerun = True
            if was == "completed" and task.state != "completed":
                self.completed[task.phase] -= 1
                if task.done_by is not None and task.phase == "map":
                    task.done_by.outcome = "lost"
            moved = moved or task.location != where
        if moved:
            self.tell_reducers()
        self.schedule()

    # -- scheduling --------------------------------------------------------------------
    def schedule(self) -> None:
        """Give every idle live worker what `pick` chooses, else (when the job
        has backup tasks on) what `backup_for` chooses."""
        for name, state in self.workers.items():
            if state.alive and state.attempt is None and state.incarnation:
                task, backup = self._task(self.pick(name), "pick"), False
                if task is None and self.job.backups is not None:
                    task, backup = self._task(self.backup_for(name), "backup_for"), True
                if task is not None:
                    self.assign(task, name, backup)
        self.preempt_if_stuck()

    def _task(self, task: Any, method: str) -> Any:
        if task is not None and not any(task is t for t in (*self.maps, *self.reduces)):
            raise TypeError(f"{method} must return a task record from self.maps or "
                            f"self.reduces, or None; got {task!r}")
        return task

    def cancel(self, attempt: Any) -> None:
        """Stop `attempt` (another copy won): tell its worker, free the worker
        and stop counting on the attempt."""
        self.send(attempt.worker, "cancel", attempt=attempt.id, outcome="cancelled")
        state = self.workers[attempt.worker]
        if state.attempt is attempt:
            state.attempt = None
        task = self.task_of(attempt)
        if attempt in task.running:
            task.running.remove(attempt)

    # -- completions -------------------------------------------------------------------
    def on_map_done(self, msg: Message) -> None:
        self.done(msg)

    def on_reduce_done(self, msg: Message) -> None:
        self.done(msg)

    def done(self, msg: Message) -> None:
        """A worker says an attempt finished: free the worker, ask `finish`
        whether it completes its task, count it, and end the job after the
        last reduce."""
        attempt = self.job.attempts[msg.attempt]
        state = self.workers[msg.src]
        if state.attempt is attempt:
            state.attempt = None
        task = self._task(self.finish(attempt), "finish")
        # A map copy that lost its race is unused; a duplicate report of the
        # winner (the network may deliver one twice) changes nothing.
        if attempt.phase == "map" and attempt.outcome == "completed" \
                and self.task_of(attempt).done_by is not attempt:
            attempt.outcome = "unused"
        if task is None:
            self.schedule()
            return
        self.completed[task.phase] += 1
        self.durations[task.phase].append(self.sim.now - attempt.start)
        if task.phase == "map":
            self.reducing = self.reducing or self.completed["map"] >= len(self.maps)
            self.tell_reducers()
        elif self.completed["reduce"] >= len(self.reduces):
            self.end_job()
            return
        self.schedule()


class Referee:
    """What the wire, the workers and the file system showed, for one job.
    It survives every crash (it is the grader's, not a node's).

    backups: also check that backup copies wait for the end of their phase
    (every task of it started), that a task never has more than one, and that
    a copy goes to the likely straggler (see `_backup_order`)."""

    def __init__(self, cluster: MapReduceCluster, backups: bool = False):
        self.cluster, self.job, self.backups = cluster, cluster.job, backups
        self.workers = cluster.names[1:]
        self.mapped: set[int] = set()            # maps whose map_done reached it
        self.started: dict[str, set[int]] = {k: set() for k in KINDS}
        self.heard: dict[str, float] = {}        # last heartbeat at the master
        self.gaps: list[tuple[str, float, float]] = []   # silences over the timeout
        self.heard_incarnation: dict[str, tuple[int, float]] = {}
        self.given: dict[int, int] = {}          # attempt id -> incarnation sent
        self.safe: dict[int, float] = {}         # reduce -> when its commit was known
        self.died: dict[str, float] = {}         # down workers: when they crashed
        self.history: list[tuple[float, str, str, Any]] = []  # (t, event, worker, x)
        self.first_reduce: float | None = None
        self.copied: set[tuple[str, int]] = set()    # tasks a backup was started for
        self.progress: dict[str, float] = {}     # as the last heartbeat said
        self.listeners: list[Callable[[Message], None]] = []   # see every delivery

    def watch(self) -> None:
        """See every message the master sends and gets, and every crash."""
        cluster, network = self.cluster, self.cluster.network
        send, master = network.send, cluster.master
        deliver = master.deliver

        def watched_send(src: str, dst: str, kind: str, body: dict) -> Message:
            if src == master.name and kind in ("assign", "locations"):
                self.sent(dst, kind, body)
            return send(src, dst, kind, body)

        def watched_deliver(msg: Message) -> None:
            self.received(msg)
            for listen in self.listeners:
                listen(msg)
            deliver(msg)

        network.send, master.deliver = watched_send, watched_deliver
        for name in self.workers:
            self._watch_node(cluster.nodes[name])

    def _watch_node(self, node: Any) -> None:
        kill, restart = node.kill, node.restart

        def watched_kill() -> None:
            if node.alive:
                self.died[node.name] = node.sim.now
                self.history.append((node.sim.now, "crash", node.name, None))
            kill()

        def watched_restart() -> None:
            if not node.alive:
                self.died.pop(node.name, None)
                self.history.append((node.sim.now, "restart", node.name, None))
            restart()

        node.kill, node.restart = watched_kill, watched_restart

    # -- what reaches the master -------------------------------------------------------
    def received(self, msg: Message) -> None:
        now, src = self.cluster.now, msg.src
        if msg.kind == "heartbeat":
            last = self.heard.get(src)
            if last is not None and now - last > self.job.timeout + self.job.heartbeat:
                self.gaps.append((src, last, now))
            self.heard[src] = now
            self.progress[src] = msg.progress
            known = self.heard_incarnation.get(src)
            if known is None or known[0] != msg.incarnation:
                self.heard_incarnation[src] = (msg.incarnation, now)
        elif msg.kind in ("map_done", "reduce_done"):
            attempt = self.job.attempts[msg.attempt]
            if attempt.phase == "map":
                self.mapped.add(attempt.task)
            elif (self._counted(src, msg.attempt)
                  and attempt.task in self.job.output.files):
                self.safe.setdefault(attempt.task, now)

    def _counted(self, worker: str, attempt: int) -> bool:
        """Could the master have given up on this worker? Not if its last
        heartbeat is fresh and it has heard no newer incarnation."""
        fresh = self.cluster.now - self.heard.get(worker, -1e9) < self.job.timeout / 2
        incarnation = self.heard_incarnation.get(worker, (None, 0.0))[0]
        return fresh and incarnation == self.given.get(attempt)

    # -- what the master sends ---------------------------------------------------------
    def sent(self, dst: str, kind: str, body: dict) -> None:
        now = self.cluster.now
        if kind == "assign":
            attempt = self.job.attempts[body["attempt"]]
            self.given[attempt.id] = body.get("incarnation")
            self.progress[dst] = 0.0             # nothing heard of this attempt yet
            self.history.append((now, "assign", dst, attempt))
            if attempt.phase == "reduce":
                self._reduce_assigned(attempt, now)
            if self.backups:
                self._backup_rules(attempt, dst, now)
            self.started[attempt.phase].add(attempt.task)
        if body.get("locations") is not None:
            self._locations(tuple(body["locations"]), now)

    def _reduce_assigned(self, attempt: Any, now: float) -> None:
        r = attempt.task
        missing = sorted(set(range(len(self.job.splits))) - self.mapped)
        if missing:
            raise InvariantViolation(
                f"reduce before maps: the master handed out reduce task {r} at "
                f"t = {now:.1f} s, but map task(s) {_few(missing)} had never "
                "completed; reduce task r needs piece r of every map task's output, "
                "so the reduce phase starts only once every map task has completed")
        if r in self.safe:
            raise InvariantViolation(
                f"completed reduce re-executed: the master handed out reduce task "
                f"{r} again at t = {now:.1f} s, although its completion reached the "
                f"master at t = {self.safe[r]:.1f} s and its output is in the global "
                "file system; a dead worker's completed reduce tasks stay completed")
        if self.first_reduce is None:
            self.first_reduce = now

    def _locations(self, locations: tuple, now: float) -> None:
        nodes, grace = self.cluster.nodes, self.job.timeout + 2 * self.job.heartbeat
        for m, where in enumerate(locations):
            if where is None:
                continue
            node = nodes[where]
            if node.alive and m in node.files:
                continue
            if not node.alive and now - self.died[where] > grace:
                raise InvariantViolation(
                    f"stale location: at t = {now:.1f} s the master sent reducers to "
                    f"{where} for map task {m}'s output, but {where} crashed at "
                    f"t = {self.died[where]:.1f} s, more than the timeout ago; a dead "
                    "worker's completed map tasks must run again elsewhere")
            incarnation, since = self.heard_incarnation.get(where, (None, now))
            if node.alive and incarnation == node.disk["incarnation"] and since < now:
                raise InvariantViolation(
                    f"stale location: at t = {now:.1f} s the master sent reducers to "
                    f"{where} for map task {m}'s output, but {where} restarted with "
                    f"an empty local disk (the master heard its new incarnation at "
                    f"t = {since:.1f} s); a completion from a worker's earlier "
                    "incarnation, or from a worker declared dead, must be ignored")

    def _backup_rules(self, attempt: Any, dst: str, now: float) -> None:
        phase, task = attempt.phase, attempt.task
        copies = [n for n in self.workers if n != dst and self.runs(n, phase, task)]
        if not copies:
            return
        total = len(self.job.splits) if phase == "map" else self.job.partitions
        waiting = sorted(set(range(total)) - self.started[phase] - {task})
        what = f"{phase} task {task}"
        if waiting:
            raise InvariantViolation(
                f"wasteful backup: at t = {now:.1f} s the master started a second "
                f"copy of {what} (running on {copies[0]}) while {phase} task(s) "
                f"{_few(waiting)} had not started yet; backups are for the end of a "
                "phase, once every task of it has started")
        if len(copies) > 1:
            raise InvariantViolation(
                f"wasteful backup: at t = {now:.1f} s the master started a copy of "
                f"{what}, already running on {' and '.join(copies)}; one backup per "
                "task is enough (launch at most as many as tasks in progress)")
        self._backup_order(attempt, dst, copies[0], now)
        self.copied.add((phase, task))

    def _backup_order(self, attempt: Any, dst: str, original: str,
                      now: float) -> None:
        """The copy goes to the likely straggler (Dean & Ghemawat §3.6): no
        other task of the phase, running with no copy yet on a worker the
        master counts on, may have both started earlier and more time left by
        what the master could know (LATE's estimate from the heartbeats it
        received). So "oldest first" and "most time left first" both pass."""
        phase, task = attempt.phase, attempt.task
        chosen = self.cluster.nodes[original].attempt
        left = self.time_left(original, now)
        for name in self.workers:
            other = self.cluster.nodes[name].attempt
            if name in (dst, original) or other is None or other.phase != phase \
                    or other.task == task or (phase, other.task) in self.copied \
                    or not self.runs(name, phase, other.task) \
                    or not self._counted(name, other.id):
                continue
            longer = self.time_left(name, now)
            if other.start < chosen.start and longer > left:
                raise InvariantViolation(
                    f"backup order: at t = {now:.1f} s the master copied {phase} "
                    f"task {task}, running on {original} for "
                    f"{now - chosen.start:.1f} s (about {left:.1f} s left by its "
                    f"heartbeats), while {phase} task {other.task} had run "
                    f"{now - other.start:.1f} s on {name} with no copy (about "
                    f"{longer:.1f} s left); a backup rescues a straggler: copy the "
                    "task running longest first (or the one with the most time "
                    "left)")

    def time_left(self, name: str, now: float) -> float:
        """LATE's estimate of the time worker `name` needs to finish its
        attempt, as the master can make it: elapsed × (1 − p) / p, p the
        progress its last heartbeat since the assignment reported (0 before
        any: too early to judge), as `MasterBase.time_left`."""
        node = self.cluster.nodes[name]
        progress = self.progress.get(name, 0.0)
        elapsed = now - node.attempt.start
        return 0.0 if progress <= 0 else elapsed * (1 - progress) / progress

    def runs(self, name: str, phase: str, task: int) -> bool:
        """Is worker `name` up and executing that task right now?"""
        node = self.cluster.nodes[name]
        a = node.attempt
        return node.alive and a is not None and (a.phase, a.task) == (phase, task)


def _few(items: list[int], shown: int = 4) -> str:
    text = ", ".join(map(str, items[:shown]))
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")
