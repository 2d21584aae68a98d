"""Datasets as a lineage graph (Spark's RDDs, Zaharia et al., NSDI 2012, §2).

A `Dataset` is an immutable, partitioned collection defined by how to compute
it from its parents: `map`, `filter`, `flat_map` and `map_values` are narrow
(partition p needs only partition p of its parent, so they pipeline inside one
task); `reduce_by_key` and `join` are wide (a shuffle) unless a join's parent
is already hash-partitioned the same way, in which case that side stays
narrow (§3.1, "co-partitioned"). `cache()` keeps computed partitions in the
memory of the worker that made them; `checkpoint()` writes them to
replicated stable storage, after which nothing needs their lineage. Actions
(`collect`, `count`) hand the dataset to its cluster's scheduler.

This module holds only the graph and the per-partition functions; where and
when partitions are computed is `scheduler`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from labkit.errors import ConfigError, require_int
from labkit.hashring import stable_partition

if TYPE_CHECKING:
    from .cluster import DataflowCluster

NARROW_OPS = ("map", "filter", "flat_map", "map_values")
_PREVIEW = 60


class TaskError(RuntimeError):
    """A user function raised or returned something unusable; the message
    names the dataset, the partition and the record."""


def partition_of(key: Any, partitions: int) -> int:
    """Hash partitioning (see `labkit.hashring.stable_partition`)."""
    return stable_partition(key, partitions)


def nbytes(records: Iterable) -> int:
    """Bytes of records written one per line in their text form."""
    return sum(len(repr(r)) + 1 for r in records)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW - 3] + "..."


def _fn_name(fn: Callable | None) -> str:
    return "" if fn is None else getattr(fn, "__qualname__", type(fn).__name__)


class Dependency(NamedTuple):
    """An edge of the lineage graph: `shuffle` is the shuffle's id for a wide
    dependency, None for a narrow one."""

    parent: Dataset
    shuffle: int | None


class Dataset:
    """One node of the lineage graph; build it with the transformations below,
    starting from `DataflowCluster.parallelize`."""

    def __init__(self, ctx: DataflowCluster, op: str, deps: Sequence[Dependency],
                 partitions: int, *, fn: Callable | None = None,
                 partitioned: bool = False, name: str | None = None):
        self.ctx, self.op, self.fn = ctx, op, fn
        self.deps = tuple(deps)
        self.partitions = partitions
        self.partitioned = partitioned      # hash-partitioned by key into `partitions`
        self.id = ctx._new_id()
        self.name = name or f"{op}#{self.id}"
        self.cached = False
        self.checkpointed = False   # asked for; stable once every part is written

    def __repr__(self) -> str:
        flags = "".join((", cached" if self.cached else "",
                         ", checkpoint" if self.checkpointed else ""))
        return f"Dataset({self.name}, {self.partitions} partitions{flags})"

    # -- narrow transformations ----------------------------------------------------
    def _narrow(self, op: str, fn: Any, keeps_partitioning: bool,
                name: str | None) -> Dataset:
        if not callable(fn):
            raise TypeError(f"{op} needs a function, got {fn!r}")
        return Dataset(self.ctx, op, [Dependency(self, None)], self.partitions, fn=fn,
                       partitioned=self.partitioned and keeps_partitioning, name=name)

    def map(self, fn: Callable[[Any], Any], name: str | None = None) -> Dataset:
        """fn(record) for every record."""
        return self._narrow("map", fn, False, name)

    def filter(self, fn: Callable[[Any], bool], name: str | None = None) -> Dataset:
        """The records for which fn(record) is true (keeps the partitioning)."""
        return self._narrow("filter", fn, True, name)

    def flat_map(self, fn: Callable[[Any], Iterable], name: str | None = None
                 ) -> Dataset:
        """Every item of fn(record), for every record."""
        return self._narrow("flat_map", fn, False, name)

    def map_values(self, fn: Callable[[Any], Any], name: str | None = None
                   ) -> Dataset:
        """(key, fn(value)) for every (key, value) pair (keeps the partitioning)."""
        return self._narrow("map_values", fn, True, name)

    # -- wide transformations ------------------------------------------------------
    def _side(self, partitions: int) -> Dependency:
        """Narrow if already hash-partitioned into `partitions`, else a shuffle."""
        if self.partitioned and self.partitions == partitions:
            return Dependency(self, None)
        return Dependency(self, self.ctx._new_shuffle())

    def reduce_by_key(self, fn: Callable[[Any, Any], Any],
                      partitions: int | None = None, name: str | None = None
                      ) -> Dataset:
        """One (key, value) per key, values combined with fn(a, b) (first on
        each map task's output, then across them): always a shuffle."""
        if not callable(fn):
            raise TypeError(f"reduce_by_key needs a function fn(a, b), got {fn!r}")
        partitions = self._count(partitions)
        dep = Dependency(self, self.ctx._new_shuffle())
        return Dataset(self.ctx, "reduce_by_key", [dep], partitions, fn=fn,
                       partitioned=True, name=name)

    def join(self, other: Dataset, partitions: int | None = None,
             name: str | None = None) -> Dataset:
        """(key, (v, w)) for every v of self and w of other with that key."""
        if not isinstance(other, Dataset) or other.ctx is not self.ctx:
            raise TypeError(f"join needs a Dataset of the same cluster, got {other!r}")
        partitions = self._count(partitions)
        return Dataset(self.ctx, "join", [self._side(partitions),
                                          other._side(partitions)],
                       partitions, partitioned=True, name=name)

    def _count(self, partitions: int | None) -> int:
        return require_int("partitions", self.partitions if partitions is None
                           else partitions, minimum=1)

    # -- persistence and actions -----------------------------------------------------
    def cache(self) -> Dataset:
        """Keep computed partitions in the memory of the worker that computed
        them (lost if it crashes). Returns self."""
        self.cached = True
        return self

    def checkpoint(self) -> Dataset:
        """Write partitions to replicated stable storage as they are computed;
        once all are written the lineage behind them is never needed again.
        Returns self."""
        self.checkpointed = True
        return self

    def collect(self) -> list:
        """Every record, partition by partition (runs a job)."""
        return self.ctx.run_job(self, "collect")

    def count(self) -> int:
        """The number of records (runs a job)."""
        return self.ctx.run_job(self, "count")

    def lineage(self) -> list[Dataset]:
        """This dataset and its ancestors, every parent before its children.
        Raises ConfigError if the graph has a cycle."""
        order: list[Dataset] = []
        state: dict[int, str] = {}
        stack: list[tuple[Dataset, bool]] = [(self, False)]
        while stack:
            ds, done = stack.pop()
            if done:
                state[ds.id] = "done"
                order.append(ds)
                continue
            if state.get(ds.id) == "done":
                continue
            if state.get(ds.id) == "open":
                raise ConfigError(f"the lineage of {self.name} has a cycle through "
                                  f"{ds.name}: a dataset cannot depend on itself")
            state[ds.id] = "open"
            stack.append((ds, True))
            for dep in reversed(ds.deps):
                if state.get(dep.parent.id) == "open":
                    raise ConfigError(f"the lineage of {self.name} has a cycle "
                                      f"through {dep.parent.name}: a dataset "
                                      f"cannot depend on itself")
                stack.append((dep.parent, False))
        return order

    # -- evaluation (called by the scheduler inside a task) ---------------------------
    def call(self, fn: Callable, part: int, record: Any, *args: Any) -> Any:
        try:
            return fn(record, *args)
        except Exception as exc:
            raise TaskError(f"{self.name} partition {part}: {_fn_name(fn)} raised "
                            f"{type(exc).__name__}: {exc} on {_preview(record)}"
                            ) from exc

    def pairs(self, records: Iterable, part: int) -> list[tuple[Any, Any]]:
        """The records checked to be (key, value) pairs."""
        out = list(records)
        for r in out:
            if not (isinstance(r, tuple) and len(r) == 2):
                raise TaskError(f"{self.name} partition {part}: {self.op} needs "
                                f"(key, value) pairs, got {_preview(r)}")
        return out

    def narrow(self, records: list, part: int) -> list:
        """Apply this narrow transformation to one parent partition."""
        fn, op = self.fn, self.op
        if op == "map":
            return [self.call(fn, part, r) for r in records]
        if op == "filter":
            return [r for r in records if self.call(fn, part, r)]
        if op == "flat_map":
            out = []
            for r in records:
                items = self.call(fn, part, r)
                if isinstance(items, str | bytes) or not isinstance(items, Iterable):
                    raise TaskError(f"{self.name} partition {part}: "
                                    f"{_fn_name(fn)} must return an iterable, got "
                                    f"{_preview(items)}")
                out.extend(items)
            return out
        return [(k, self.call(fn, part, v)) for k, v in self.pairs(records, part)]

    def buckets(self, records: list, part: int, child: Dataset) -> list[list]:
        """Map side of a shuffle into `child`: one bucket of pairs per child
        partition, combined by key if the child reduces."""
        out: list = [[] for _ in range(child.partitions)]
        for pair in self.pairs(records, part):
            out[child.key_partition(pair[0], part)].append(pair)
        if child.op == "reduce_by_key":
            out = [list(child.combine(b, part).items()) for b in out]
        return out

    def key_partition(self, key: Any, part: int) -> int:
        try:
            hash(key)           # grouped in a dict on the other side
            return partition_of(key, self.partitions)
        except Exception as exc:
            raise TaskError(f"{self.name}: cannot partition key {_preview(key)} "
                            f"from partition {part}: {exc}") from exc

    def combine(self, pairs: Iterable[tuple[Any, Any]], part: int) -> dict:
        """reduce_by_key's fold: {key: value}, keys in first-seen order."""
        out: dict = {}
        for key, value in pairs:
            out[key] = (self.call(self.fn, part, out[key], value) if key in out
                        else value)
        return out

    def wide(self, inputs: list[list], part: int) -> list:
        """Reduce side: reduce_by_key or join over its inputs (one list of
        pairs per dependency, shuffled buckets already concatenated)."""
        if self.op == "reduce_by_key":
            return list(self.combine(inputs[0], part).items())
        left: dict = {}
        for k, v in self.pairs(inputs[0], part):
            left.setdefault(k, []).append(v)
        right: dict = {}
        for k, w in self.pairs(inputs[1], part):
            right.setdefault(k, []).append(w)
        return [(k, (v, w)) for k, vs in left.items() if k in right
                for v in vs for w in right[k]]
