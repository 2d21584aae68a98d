"""What a finished MapReduce job returns: `MapReduceResult` (its output files,
duration, timeline and costs) and `TaskAttempt`, one row of the timeline."""

from __future__ import annotations

from typing import Any, NamedTuple

from labkit.metrics import Result


class TaskAttempt(NamedTuple):
    """One run of a task on one worker, as the timeline shows it.

    outcome: "completed" (its output is the one used), "failed" (its worker
    died while it ran), "lost" (it completed, but its output died with its
    worker and the task ran again), "cancelled" (another copy finished first),
    "unused" (it finished after another copy had), "preempted" (a reduce the
    master stopped to give its worker a map task; it runs again later),
    "unneeded" (still running when the job ended, its task not completed: a
    map run again for output every reduce had fetched already). `shuffle_end` is when a
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
