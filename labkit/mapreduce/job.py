"""One MapReduce job as data: the user's functions and where their errors are
reported (`TaskError`), when to launch backup tasks
(`Backups`), the input cut into splits (`make_splits`), the sizes of records
and pairs, the default partitioner, the output directory with its atomic
rename (`OutputFiles`), the live log record of a task attempt (`_Attempt`),
and `Job`, which holds them all and runs the user's code on real data.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, NamedTuple

from labkit.batch_cost import Cost
from labkit.errors import ConfigError, require_number
from labkit.hashring import stable_partition

from .result import TaskAttempt

#: Input splits are stored on this many workers (the file system's replicas).
REPLICAS = 3
_PREVIEW = 60           # characters of a record or key quoted in an error


class TaskError(RuntimeError):
    """The user's mapper, combiner, partitioner or reducer raised or returned
    something unusable; the message names the task and the record or key."""


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
    """The paper's default partitioning, hash(key) mod R (see
    `labkit.hashring.stable_partition`)."""
    return stable_partition(key, partitions)


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
                    try:
                        hash(pair[0])
                    except TypeError:
                        raise TaskError(f"the mapper yielded the key "
                                        f"{_preview(pair[0])}, which cannot be "
                                        "grouped (unhashable): use a tuple, not a "
                                        "list") from None
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
