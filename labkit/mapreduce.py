"""MapReduce (分布式计算): a master hands map and reduce tasks to workers that
run the user's real `mapper` and `reducer` on real data, in simulated time.

Names and rules follow Dean & Ghemawat, "MapReduce: Simplified Data Processing
on Large Clusters" (OSDI 2004). The input is cut into M splits, one map task
each; a map task's output is cut by a partitioning function into R pieces
kept on that worker's local disk; reduce task r fetches piece r from every map
task (the shuffle), groups values by key and writes partition r of the output
with an atomic rename (§3.1). Workers heartbeat the master; a worker silent
for `timeout` seconds is dead, its running task and its completed map tasks
(their output died with its disk) run again elsewhere (§3.3). Near the end of
a phase idle workers run backup copies of the tasks still in progress, and
the first copy to finish wins (§3.6).

Time comes from a cost model (`Cost`): bytes read, computed, written and
fetched at per-worker rates, so skew, slow workers and the shuffle show up in
the job's duration; the values come from actually running the user's code.
"""

from __future__ import annotations

import math
import random
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, NamedTuple

from labkit.errors import ConfigError, Unavailable, require_int, require_number
from labkit.metrics import Result
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node

MASTER = "master"
#: How many times slower a straggler named without a factor is (disk and CPU).
STRAGGLER_SLOWDOWN = 10.0
#: Input splits are stored on this many workers (the file system's replicas).
REPLICAS = 3
#: Fetches a reduce task keeps in flight (Hadoop's shuffle.parallelcopies).
COPIES = 5
_PREVIEW = 60           # characters of a record or key quoted in an error


class TaskError(RuntimeError):
    """The user's mapper, combiner, partitioner or reducer raised or returned
    something unusable; the message names the task and the record or key."""


@dataclass(frozen=True)
class Cost:
    """How long work takes. Every byte of the real data counts as `scale`
    bytes, moved at these rates in bytes per second per worker (2004-era
    disks and a 100 Mbit/s network by default); a straggler divides its disk
    and CPU rates by its slowdown. A task also pays `startup` seconds."""

    scale: float = 1e5
    disk: float = 30e6
    network: float = 12.5e6
    cpu: float = 40e6
    startup: float = 1.0

    def __post_init__(self):
        for name in ("scale", "disk", "network", "cpu"):
            require_number(name, getattr(self, name), positive=True)
        require_number("startup", self.startup, minimum=0.0)

    def seconds(self, nbytes: int, rate: float) -> float:
        """Time to move or process `nbytes` real bytes at `rate` scaled bytes/s."""
        return nbytes * self.scale / rate


@dataclass(frozen=True)
class Backups:
    """When the master launches backup (speculative) copies of running tasks.

    Only once no task of the phase is waiting to start and at least `start`
    of the phase's tasks are done; then each idle worker takes a copy of the
    running task picked by `pick`. "oldest" (the default, the paper's §3.6:
    back up the remaining in-progress tasks) copies the task started first.
    "time_left" (LATE, Zaharia et al. 2008) copies the task with the longest
    estimated time to finish, elapsed × (1 − progress) / progress, and only if
    that is longer than the phase's median task so far (so that a fresh copy
    may finish first). At most `limit` of the phase's tasks get a copy (at
    least one), which caps the extra work.
    """

    start: float = 0.0
    pick: str = "oldest"
    limit: float = 1.0

    def __post_init__(self):
        for name in ("start", "limit"):
            value = require_number(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"Backups {name} must be in [0, 1], got {value}")
        if self.pick not in ("time_left", "oldest"):
            raise ConfigError(f"Backups pick must be 'time_left' or 'oldest', "
                              f"got {self.pick!r}")

    def cap(self, tasks: int) -> int:
        return max(1, math.floor(self.limit * tasks))


class TaskAttempt(NamedTuple):
    """One run of a task on one worker, as the timeline shows it.

    outcome: "completed" (its output is the one used), "failed" (its worker
    died while it ran), "lost" (it completed, but its output died with its
    worker and the task ran again), "cancelled" (another copy finished first),
    "unused" (it finished after another copy had). `shuffle_end` is when a
    reduce attempt had fetched all its input (None for maps).
    """

    id: int
    phase: str
    task: int
    worker: str
    start: float
    end: float
    outcome: str
    backup: bool
    shuffle_end: float | None
    bytes_in: int
    bytes_out: int

    @property
    def label(self) -> str:
        return f"{self.phase} {self.task}"


@dataclass(slots=True)
class _Attempt:
    """A task attempt while the job runs (the log record the timeline freezes)."""

    id: int
    phase: str
    task: int
    worker: str
    start: float
    backup: bool
    end: float | None = None
    outcome: str = "running"
    shuffle_end: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0

    def close(self, now: float, outcome: str) -> None:
        if self.end is None:
            self.end, self.outcome = now, outcome

    def frozen(self) -> TaskAttempt:
        return TaskAttempt(self.id, self.phase, self.task, self.worker, self.start,
                           self.end, self.outcome, self.backup, self.shuffle_end,
                           self.bytes_in, self.bytes_out)


def size(value: Any) -> int:
    """Bytes a value takes in a text file: its text form (str) in UTF-8."""
    return len((value if isinstance(value, str) else str(value)).encode())


def pairs_size(pairs: Iterable[tuple[Any, Any]]) -> int:
    """Bytes of (key, value) pairs written one per line: key, tab, value,
    newline."""
    return sum(size(key) + size(value) + 2 for key, value in pairs)


def hash_partition(key: Any, partitions: int) -> int:
    """The paper's default partitioning, hash(key) mod R, with a hash that is
    the same in every process (Python's str hash is salted per process)."""
    return zlib.crc32(repr(key).encode()) % partitions


def _median(values: Sequence[float]) -> float:
    """The middle value (the lower of the two middle ones); 0 if empty."""
    return sorted(values)[(len(values) - 1) // 2] if values else 0.0


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW - 3] + "..."


def _sorted_keys(keys: Iterable) -> list:
    """Keys in increasing order (§4.2), or by repr if they do not compare."""
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


class Split(NamedTuple):
    """One map task's input: records `first`.. of the input, and the workers
    holding a replica of it (a map there reads it from local disk)."""

    first: int
    records: tuple
    nbytes: int
    replicas: tuple[str, ...]


def make_splits(records: Sequence, count: int, workers: Sequence[str],
                rng: random.Random) -> list[Split]:
    """Cut the records into `count` runs of consecutive records of about equal
    bytes (each at least one record), each stored on REPLICAS random workers."""
    sizes = [size(r) for r in records]
    total = list(accumulate(sizes))
    cuts, previous = [0], 0
    for j in range(1, count):
        cut = bisect_left(total, total[-1] * j / count) + 1
        cut = min(max(cut, previous + 1), len(records) - (count - j))
        cuts.append(cut)
        previous = cut
    cuts.append(len(records))
    copies = min(REPLICAS, len(workers))
    return [Split(a, tuple(records[a:b]), sum(sizes[a:b]),
                  tuple(sorted(rng.sample(list(workers), copies))))
            for a, b in zip(cuts, cuts[1:], strict=False)]


class OutputFiles:
    """The output directory of the global file system. A reduce attempt
    writes a temporary file and renames it to partition r's name; the rename
    is atomic and the first one wins (§3.3), so a re-executed or backup reduce
    never adds a second copy of a partition."""

    def __init__(self):
        self.files: dict[int, tuple[tuple[Any, Any], ...]] = {}
        self.writers: dict[int, int] = {}
        self.discarded = 0

    def commit(self, partition: int, attempt: int,
               pairs: tuple[tuple[Any, Any], ...]) -> bool:
        """Rename attempt's temporary file to partition's final name; False
        (and the file discarded) if another attempt already did."""
        if partition in self.files:
            self.discarded += 1
            return False
        self.files[partition], self.writers[partition] = pairs, attempt
        return True


@dataclass
class Job:
    """One MapReduce job: the user's functions, the input splits, the cost
    model and knobs, and what the run records (attempts, output files)."""

    mapper: Callable[[Any], Iterable[tuple[Any, Any]]]
    reducer: Callable[[Any, list], Any]
    combiner: Callable[[Any, list], Any] | None
    partitioner: Callable[[Any, int], int]
    splits: list[Split]
    partitions: int
    speeds: dict[str, float]
    cost: Cost
    backups: Backups | None
    locality: bool
    heartbeat: float
    timeout: float
    attempts: list[_Attempt] = field(default_factory=list)
    output: OutputFiles = field(default_factory=OutputFiles)
    done: bool = False

    def map_split(self, attempt: _Attempt) -> tuple[tuple[tuple[Any, Any], ...], ...]:
        """Run the mapper over the attempt's split (and the combiner over each
        piece); the R pieces of intermediate pairs, in emission order."""
        split = self.splits[attempt.task]
        pieces: list[list[tuple[Any, Any]]] = [[] for _ in range(self.partitions)]
        for offset, record in enumerate(split.records):
            try:
                pairs = list(self.mapper(record))
                for pair in pairs:
                    if not isinstance(pair, tuple) or len(pair) != 2:
                        raise TaskError(f"the mapper must yield (key, value) pairs, "
                                        f"got {_preview(pair)}")
                    pieces[self.partition(pair[0])].append(pair)
            except Exception as exc:
                what = (str(exc) if isinstance(exc, TaskError) else
                        f"the mapper raised {type(exc).__name__}: {exc}")
                raise TaskError(f"map task {attempt.task} on {attempt.worker}, record "
                                f"{split.first + offset} {_preview(record)}: "
                                f"{what}") from exc
        if self.combiner is None:
            return tuple(map(tuple, pieces))
        return tuple(self.combine(piece, attempt) for piece in pieces)

    def partition(self, key: Any) -> int:
        try:
            part = self.partitioner(key, self.partitions)
        except Exception as exc:
            raise TaskError(f"the partitioner raised on key {_preview(key)}: "
                            f"{type(exc).__name__}: {exc}") from exc
        if isinstance(part, bool) or not isinstance(part, int) or not (
                0 <= part < self.partitions):
            raise TaskError(f"the partitioner must return an int in "
                            f"[0, {self.partitions}), got {part!r} for key "
                            f"{_preview(key)}")
        return part

    def combine(self, pairs: list[tuple[Any, Any]],
                attempt: _Attempt) -> tuple[tuple[Any, Any], ...]:
        """The combiner applied to one piece: one pair per key (§4.3)."""
        groups: dict[Any, list] = {}
        for key, value in pairs:
            groups.setdefault(key, []).append(value)
        return tuple((key, self.call("combiner", self.combiner, key, values,
                                     f"map task {attempt.task} on "
                                     f"{attempt.worker}"))
                     for key, values in groups.items())

    def reduce_piece(self, attempt: _Attempt,
                     chunks: Sequence[tuple[tuple[Any, Any], ...]]
                     ) -> tuple[tuple[Any, Any], ...]:
        """Group the fetched pairs by key (values in map-task order, so every
        attempt sees the same lists) and reduce each key, in key order."""
        groups: dict[Any, list] = {}
        for chunk in chunks:
            for key, value in chunk:
                groups.setdefault(key, []).append(value)
        return tuple((key, self.call("reducer", self.reducer, key, groups[key],
                                     f"reduce task {attempt.task} on "
                                     f"{attempt.worker}"))
                     for key in _sorted_keys(groups))

    @staticmethod
    def call(role: str, fn: Callable, key: Any, values: list, where: str) -> Any:
        try:
            return fn(key, values)
        except Exception as exc:
            raise TaskError(f"{where}: the {role} raised on key {_preview(key)} "
                            f"({len(values)} values, first {_preview(values[0])}): "
                            f"{type(exc).__name__}: {exc}") from exc


class Worker(Node):
    """A worker: runs one task attempt at a time, keeps the output of its map
    tasks on its local disk and serves it to reducers, heartbeats the master.

    Its outgoing link sends one fetched piece at a time (first come, first
    served), so reducers fetching from the same worker queue behind each
    other; its incoming link caps how fast its own fetches arrive.
    """

    def __init__(self, name: str, net: Network, job: Job):
        self.job = job              # set first: Node.__init__ calls reset()
        super().__init__(name, net)

    def reset(self) -> None:
        self.disk["incarnation"] = self.disk.get("incarnation", 0) + 1
        # A crashed worker's intermediate files are out of reach and the master
        # runs those map tasks again, so a restarted worker starts with none.
        self.files: dict[int, tuple[tuple[tuple[Any, Any], ...], ...]] = {}
        self.file_bytes: dict[int, tuple[int, ...]] = {}
        self.attempt: _Attempt | None = None
        self.busy = (self.sim.now, self.sim.now)    # current stage's start, end
        self.stage = (0.0, 1.0)                     # its share of the progress
        self.locations: list[str | None] = []
        self.order: list[int] = []                 # the order to fetch pieces in
        self.chunks: dict[int, tuple[tuple[Any, Any], ...]] = {}
        self.fetching: dict[int, str] = {}      # map task -> worker asked for it
        self.outgoing = self.incoming = self.sim.now   # when each link is free
        self.heartbeat()

    @property
    def speed(self) -> float:
        return self.job.speeds[self.name]

    def kill(self) -> None:
        if self.alive and self.attempt is not None:
            self.attempt.close(self.sim.now, "failed")
        super().kill()

    def progress(self) -> float:
        """Share of the current attempt done (Hadoop's convention for reduces:
        a third copying, two thirds sorting and reducing)."""
        (start, end), (base, share) = self.busy, self.stage
        if self.attempt is None:
            return 0.0
        if self.attempt.phase == "reduce" and self.attempt.shuffle_end is None:
            return len(self.chunks) / max(1, len(self.locations)) / 3
        return base + share * min(1.0, (self.sim.now - start) / max(end - start,
                                                                      1e-12))

    def heartbeat(self) -> None:
        self.send(MASTER, "heartbeat", incarnation=self.disk["incarnation"],
                  progress=self.progress())
        self.set_timer("heartbeat", self.job.heartbeat, self.heartbeat)

    def work(self, seconds: float, then: Callable, *args: Any,
             stage: tuple[float, float] = (0.0, 1.0)) -> None:
        self.busy, self.stage = (self.sim.now, self.sim.now + seconds), stage
        self.set_timer("task", seconds, then, *args)

    def on_assign(self, msg: Message) -> None:
        if msg.incarnation != self.disk["incarnation"]:
            return                  # meant for the process that crashed
        self.attempt = attempt = self.job.attempts[msg.attempt]
        if attempt.phase == "map":
            self.run_map(attempt)
        else:
            self.locations, self.chunks = list(msg.locations), {}
            self.fetching = {}
            count = len(self.locations)
            first = attempt.task * count // self.job.partitions
            self.order = [*range(first, count), *range(first)]
            self.work(self.job.cost.startup, self.fetch_next)

    # -- map --------------------------------------------------------------------
    def run_map(self, attempt: _Attempt) -> None:
        job, cost, speed = self.job, self.job.cost, self.speed
        split = job.splits[attempt.task]
        pieces = job.map_split(attempt)
        sizes = tuple(map(pairs_size, pieces))
        attempt.bytes_in, attempt.bytes_out = split.nbytes, sum(sizes)
        read = cost.disk * speed if self.name in split.replicas else min(
            cost.network, cost.disk)
        seconds = (cost.startup + cost.seconds(split.nbytes, read)
                   + cost.seconds(split.nbytes, cost.cpu * speed)
                   + cost.seconds(attempt.bytes_out, cost.disk * speed))
        self.work(seconds, self.finish_map, attempt, pieces, sizes)

    def finish_map(self, attempt: _Attempt, pieces: tuple, sizes: tuple) -> None:
        self.files[attempt.task], self.file_bytes[attempt.task] = pieces, sizes
        # The worker's word on its own attempt wins over a master that gave it
        # up for dead (the master then ignores the result).
        attempt.end, attempt.outcome = self.sim.now, "completed"
        self.attempt = None
        self.send(MASTER, "map_done", attempt=attempt.id)

    def on_fetch(self, msg: Message) -> None:
        """Serve piece `partition` of map task `map`'s output, after the
        transfers queued before it (or say it is missing)."""
        pieces = self.files.get(msg.map)
        if pieces is None:
            self.reply(msg, map=msg.map, attempt=msg.attempt, pairs=None, nbytes=0)
            return
        pairs = pieces[msg.partition]
        nbytes = self.file_bytes[msg.map][msg.partition]
        cost = self.job.cost
        rate = min(cost.network, cost.disk * self.speed)
        self.outgoing = max(self.outgoing, self.sim.now) + cost.seconds(nbytes, rate)
        self.set_timer(f"fetch {msg.id}", self.outgoing - self.sim.now, self.serve,
                       msg, pairs, nbytes)

    def serve(self, msg: Message, pairs: tuple, nbytes: int) -> None:
        self.reply(msg, map=msg.map, attempt=msg.attempt, pairs=pairs, nbytes=nbytes)

    # -- reduce -----------------------------------------------------------------
    def on_locations(self, msg: Message) -> None:
        """The master says where each map task's output is now (None: it is
        being produced again); drop a fetch from a place that no longer has it."""
        if self.attempt is None or self.attempt.id != msg.attempt:
            return
        self.locations = list(msg.locations)
        self.fetching = {m: where for m, where in self.fetching.items()
                         if self.locations[m] == where}
        if not self.has_timer("task"):
            self.fetch_next()

    def fetch_next(self) -> None:
        """Keep COPIES fetches of missing pieces with known locations in flight;
        once all M are here, reduce. Reduce task r starts at map task r·M/R
        and goes round, so reducers do not all queue at one map worker."""
        attempt, count = self.attempt, len(self.locations)
        if len(self.chunks) == count:
            self.run_reduce(attempt)
            return
        for m in self.order:
            if len(self.fetching) >= COPIES:
                return
            where = self.locations[m]
            if m not in self.chunks and m not in self.fetching and where is not None:
                self.fetching[m] = where
                self.send(where, "fetch", map=m, partition=attempt.task,
                          attempt=attempt.id)

    def on_fetch_ok(self, msg: Message) -> None:
        if not self.is_fetching(msg.attempt, msg.map, msg.src):
            return                  # for an attempt or a fetch given up on
        if msg.pairs is None:       # that worker restarted: wait for the master
            del self.fetching[msg.map]
            self.locations[msg.map] = None
            self.fetch_next()
            return
        # The piece has fully arrived once the sender has sent it and this
        # worker's incoming link has had time for it after earlier pieces.
        self.incoming = max(self.sim.now, self.incoming + self.job.cost.seconds(
            msg.nbytes, self.job.cost.network))
        self.set_timer(f"receive {msg.id}", self.incoming - self.sim.now,
                       self.receive, msg)

    def is_fetching(self, attempt: int, m: int, src: str) -> bool:
        return (self.attempt is not None and self.attempt.id == attempt
                and self.fetching.get(m) == src)

    def receive(self, msg: Message) -> None:
        if not self.is_fetching(msg.attempt, msg.map, msg.src):
            return
        del self.fetching[msg.map]
        self.chunks[msg.map] = msg.pairs
        self.attempt.bytes_in += msg.nbytes
        self.sim.metrics.counter("bytes.shuffled").inc(msg.nbytes)
        self.fetch_next()

    def run_reduce(self, attempt: _Attempt) -> None:
        attempt.shuffle_end = self.sim.now
        pairs = self.job.reduce_piece(
            attempt, [self.chunks[m] for m in range(len(self.locations))])
        attempt.bytes_out = pairs_size(pairs)
        cost, speed = self.job.cost, self.speed
        seconds = (cost.seconds(attempt.bytes_in, cost.cpu * speed)
                   + cost.seconds(attempt.bytes_out,
                                  min(cost.network, cost.disk * speed)))
        self.work(seconds, self.finish_reduce, attempt, pairs, stage=(1 / 3, 2 / 3))

    def finish_reduce(self, attempt: _Attempt, pairs: tuple) -> None:
        committed = self.job.output.commit(attempt.task, attempt.id, pairs)
        attempt.end = self.sim.now
        attempt.outcome = "completed" if committed else "unused"
        self.attempt, self.chunks = None, {}
        self.send(MASTER, "reduce_done", attempt=attempt.id)

    def on_cancel(self, msg: Message) -> None:
        """Another copy of this task finished first, or the master preempted
        this reduce: stop and become idle."""
        if self.attempt is not None and self.attempt.id == msg.attempt:
            self.cancel_timer("task")
            self.attempt.close(self.sim.now, "cancelled")
            self.attempt, self.fetching, self.chunks = None, {}, {}


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
        if joined:
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
        self.send(victim.worker, "cancel", attempt=victim.id)
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
        state.attempt, state.progress = attempt, 0.0
        metrics = self.sim.metrics
        if backup:
            task.backups += 1
            self.backups_launched[task.phase] += 1
            metrics.counter("tasks.backup").inc()
        elif task.rerun:
            task.rerun = False
            metrics.counter("tasks.reexecuted").inc()
        extra = {"locations": self.locations()} if task.phase == "reduce" else {}
        self.send(worker, "assign", attempt=attempt.id,
                  incarnation=state.incarnation, **extra)

    def locations(self) -> tuple[str | None, ...]:
        return tuple(t.location for t in self.maps)

    def tell_reducers(self) -> None:
        """§3.3: workers running reduce tasks learn where map output now lives."""
        where = self.locations()
        for task in self.reduces:
            for attempt in task.running:
                self.send(attempt.worker, "locations", attempt=attempt.id,
                          locations=where)

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
            self.job.done = True
            for attempt in self.job.attempts:
                attempt.close(self.sim.now, "cancelled")
            self.sim.stop()
        else:
            self.schedule()

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
            if attempt.outcome == "completed" and attempt is not winner:
                attempt.outcome = "unused"
            self.schedule()
            return None
        winner.outcome = "completed"
        self.completed[task.phase] += 1
        self.durations[task.phase].append(self.sim.now - winner.start)
        for other in task.running:
            self.send(other.worker, "cancel", attempt=other.id)
            self.workers[other.worker].attempt = None
        task.running, task.state, task.done_by = [], "completed", winner
        return task


class MapReduceCluster(Cluster):
    """A master and workers w1..wN on one network, running one job.

    `run(seconds)` advances the job; `kill`/`restart` crash and revive workers
    (a restarted worker is a new process with an empty local disk). The master
    stops the clock when the last reduce task commits. Tracing every message
    is off by default (a job sends tens of thousands); the timeline of task
    attempts tells a job's story.
    """

    def __init__(self, job: Job, workers: Sequence[str], *, seed: int = 1,
                 trace: bool = False):
        def build(name: str, net: Network) -> Node:
            if name == MASTER:
                return Master(name, net, job, workers)
            return Worker(name, net, job)

        super().__init__(names=[MASTER, *workers], seed=seed, trace=trace,
                         net=NetConfig(latency=0.001), node_factory=build)
        self.job = job

    @property
    def master(self) -> Master:
        return self.nodes[MASTER]

    def kill(self, name: str) -> None:
        if name == MASTER:
            raise ConfigError("the master cannot be killed: as in the paper (§3.3) "
                              "its failure aborts the job; kill a worker instead")
        super().kill(name)


class MapReduceResult(Result):
    """One MapReduce job: its output and how it got there."""

    @property
    def output(self) -> dict[Any, Any]:
        """key -> reduced value, partition by partition, keys in order."""
        return self.data["output"]

    @property
    def files(self) -> dict[int, tuple[tuple[Any, Any], ...]]:
        """The committed output files: partition -> its (key, value) pairs."""
        return self.data["files"]

    @property
    def duration(self) -> float:
        """Simulated seconds from the start until the last reduce committed."""
        return self.end_time

    @property
    def timeline(self) -> tuple[TaskAttempt, ...]:
        return self.data["timeline"]

    @property
    def bytes_shuffled(self) -> int:
        """Bytes of intermediate data reducers fetched (unscaled, real bytes)."""
        return self.metrics["bytes.shuffled"].value

    @property
    def reexecutions(self) -> int:
        """Attempts started because an earlier one failed or its output was lost."""
        return self.metrics["tasks.reexecuted"].value

    @property
    def backups(self) -> int:
        """Backup copies launched."""
        return self.metrics["tasks.backup"].value

    @property
    def busy(self) -> float:
        """Worker-seconds spent on all attempts."""
        return sum(a.end - a.start for a in self.timeline)

    @property
    def extra_work(self) -> float:
        """Share of worker-seconds spent on copies that lost a race
        (cancelled or unused): what backup tasks cost."""
        lost = sum(a.end - a.start for a in self.timeline
                   if a.outcome in ("cancelled", "unused"))
        return lost / self.busy if self.busy else 0.0

    def reduce_inputs(self) -> dict[int, int]:
        """Bytes each reduce task fetched (its completed attempt's input)."""
        return {a.task: a.bytes_in for a in self.timeline
                if a.phase == "reduce" and a.outcome == "completed"}


def _callable(name: str, fn: Any, optional: bool = False) -> None:
    if fn is None and optional:
        return
    if not callable(fn):
        raise TypeError(f"{name} must be a function, got {fn!r}")


def _name(fn: Callable | None) -> str | None:
    return None if fn is None else getattr(fn, "__qualname__", type(fn).__name__)


def _workers_in(what: str, value: Any, names: Sequence[str]) -> dict[str, Any]:
    """A {worker: value} mapping from a mapping or a list of names."""
    if value is None:
        return {}
    if isinstance(value, str) or not isinstance(value, Mapping | Sequence):
        raise ConfigError(f"{what} must be a dict {{worker: value}} or a list of "
                          f"worker names, got {value!r}")
    if not isinstance(value, Mapping):
        value = dict.fromkeys(value)
    for name in value:
        if name not in names:
            raise ConfigError(f"{what}: unknown worker {name!r}; workers are "
                              f"{names[0]}..{names[-1]} (the master cannot fail)")
    return dict(value)


def run(mapper: Callable[[Any], Iterable[tuple[Any, Any]]],
        reducer: Callable[[Any, list], Any], inputs: Sequence, *,
        workers: int = 4, seed: int = 1,
        crash: Mapping[str, float] | None = None, restart: float | None = None,
        stragglers: Mapping[str, float] | Sequence[str] | None = None,
        backup_tasks: bool | Backups = True,
        combiner: Callable[[Any, list], Any] | None = None,
        splits: int | None = None, partitions: int | None = None,
        partitioner: Callable[[Any, int], int] = hash_partition,
        locality: bool = True, cost: Cost | None = None, heartbeat: float = 1.0,
        timeout: float = 10.0, deadline: float = 36_000.0) -> MapReduceResult:
    """Run one MapReduce job to completion and return its MapReduceResult.

    mapper(record) yields (key, value) pairs; reducer(key, values) returns one
    value; combiner (same shape as reducer) pre-reduces each map task's output.
    inputs: the records (e.g. lines or (doc id, text) pairs). splits = M map
    tasks (default 4 per worker, at most one per record); partitions = R reduce
    tasks (default one per worker); partitioner(key, R) -> int in [0, R).
    crash = {worker: time}: crash those workers then ("w1".."wN"); each comes
    back as a new process `restart` seconds later (None: never). stragglers:
    {worker: slowdown} or a list of workers (STRAGGLER_SLOWDOWN times slower
    disk and CPU). backup_tasks: True (default Backups()), False, or a Backups.
    locality: give a worker the map tasks whose input it stores. Workers
    heartbeat every `heartbeat` s; one silent for `timeout` s is declared dead.
    Raises TaskError if the user's code fails, Unavailable if the job has not
    finished by `deadline` simulated seconds.
    """
    _callable("mapper", mapper)
    _callable("reducer", reducer)
    _callable("combiner", combiner, optional=True)
    _callable("partitioner", partitioner)
    workers = require_int("workers", workers, minimum=1)
    seed = require_int("seed", seed)
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
        raise ConfigError(f"inputs must be a list of records, got {_preview(inputs)}")
    if not inputs:
        raise ConfigError("inputs is empty: a job needs at least one record")
    names = [f"w{i}" for i in range(1, workers + 1)]
    splits = require_int("splits", min(len(inputs), 4 * workers)
                         if splits is None else splits, minimum=1)
    if splits > len(inputs):
        raise ConfigError(f"splits must be at most the number of records "
                          f"({len(inputs)}), got {splits}")
    partitions = require_int("partitions", workers if partitions is None
                             else partitions, minimum=1)
    crash = _workers_in("crash", crash, names)
    for name, when in crash.items():
        require_number(f"crash time of {name}", when, minimum=0.0)
    if restart is not None:
        restart = require_number("restart", restart, minimum=0.0)
    if len(crash) == workers and restart is None:
        raise ConfigError("every worker crashes and none restarts: the job could "
                          "never finish (set restart= or spare a worker)")
    slow = _workers_in("stragglers", stragglers, names)
    speeds = dict.fromkeys(names, 1.0)
    for name, factor in slow.items():
        factor = STRAGGLER_SLOWDOWN if factor is None else factor
        speeds[name] = 1.0 / require_number(f"slowdown of {name}", factor,
                                            minimum=1.0)
    if isinstance(backup_tasks, bool):
        backups = Backups() if backup_tasks else None
    elif isinstance(backup_tasks, Backups):
        backups = backup_tasks
    else:
        raise ConfigError(f"backup_tasks must be True, False or a Backups, "
                          f"got {backup_tasks!r}")
    if cost is not None and not isinstance(cost, Cost):
        raise ConfigError(f"cost must be a Cost, got {cost!r}")
    if not isinstance(locality, bool):
        raise ConfigError(f"locality must be True or False, got {locality!r}")
    heartbeat = require_number("heartbeat", heartbeat, positive=True)
    timeout = require_number("timeout", timeout, positive=True)
    deadline = require_number("deadline", deadline, positive=True)

    placement = random.Random(f"{seed}:mapreduce.placement")
    cluster = MapReduceCluster(Job(
        mapper, reducer, combiner, partitioner,
        make_splits(inputs, splits, names, placement), partitions, speeds,
        cost or Cost(), backups, locality, heartbeat, timeout), names, seed=seed)
    job, sim = cluster.job, cluster.sim
    for counter in ("bytes.shuffled", "tasks.reexecuted", "tasks.backup",
                    "tasks.preempted", "workers.failed"):
        sim.metrics.counter(counter)
    for name, when in crash.items():
        sim.at(when, cluster.kill, name)
        if restart is not None:
            sim.at(when + restart, cluster.restart, name)
    sim.run(deadline)
    if not job.done:
        done = sum(t.state == "completed" for t in cluster.master.reduces)
        raise Unavailable(f"the job did not finish within {deadline:g} simulated s "
                          f"({done} of {partitions} reduce tasks done)")
    return _result(cluster, dict(
        mapper=_name(mapper), reducer=_name(reducer), combiner=_name(combiner),
        partitioner=_name(partitioner), records=len(inputs), workers=workers,
        splits=splits, partitions=partitions, crash=crash, restart=restart,
        stragglers={n: round(1 / s, 6) for n, s in speeds.items() if s != 1.0},
        backup_tasks=backups, locality=locality, cost=job.cost, heartbeat=heartbeat,
        timeout=timeout))


def _result(cluster: MapReduceCluster, params: dict[str, Any]) -> MapReduceResult:
    job, sim = cluster.job, cluster.sim
    files = dict(sorted(job.output.files.items()))
    output = {key: value for pairs in files.values() for key, value in pairs}
    sim.metrics.counter("commits.discarded").inc(job.output.discarded)
    timeline = tuple(a.frozen() for a in job.attempts)
    sim.metrics.histogram("attempt.seconds").extend(a.end - a.start for a in timeline)
    result = cluster.result("mapreduce", **params)
    headline = (f"{result.end_time:.0f} s · {len(timeline)} attempts · "
                f"{sim.metrics['tasks.reexecuted'].value} re-executed · "
                f"{sim.metrics['tasks.backup'].value} backups")
    return MapReduceResult(
        scenario=result.scenario, params=result.params, seed=result.seed,
        metrics=result.metrics, trace=result.trace, end_time=result.end_time,
        data={**result.data, "output": output, "files": files, "timeline": timeline,
              "workers": cluster.names[1:], "speeds": dict(job.speeds),
              "headline": headline})
