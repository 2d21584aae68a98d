"""The driver and the workers: stages cut at shuffles, tasks placed near
their cached inputs, and recovery by lineage (Zaharia et al., NSDI 2012, §5.1).

`plan` cuts a job's lineage into stages the way Spark's DAG scheduler does:
narrow dependencies pipeline inside a stage, every shuffle starts a new one.
At run time the `Driver` works per partition: a task may run once every
shuffle output it needs exists; a needed output that does not exist (never
made, or lost with a crashed worker) adds the map task that makes it, and so
on back through the lineage until it reaches cached partitions that are still
alive, checkpoints or the input. So after a crash only what is both lost and
needed is computed again, and the journal (`TaskRun` rows) says which
products (cached partitions, shuffle outputs) each task rebuilt.

A task's duration comes from a cost model (`Cost`) of the bytes it reads,
computes, shuffles, caches and writes: `labkit.batch_cost.Cost`, MapReduce's
(2004-era disks, a 100 Mbit/s network, one second to start a task), plus a
memory rate for cached partitions; the records come from
really running the user's functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from labkit.batch_cost import Cost as BatchCost
from labkit.errors import require_number
from labkit.net import Message, Network
from labkit.node import Node

from .dataset import Dataset, nbytes

if TYPE_CHECKING:
    from .cluster import DataflowCluster

DRIVER = "driver"


@dataclass(frozen=True)
class Cost(BatchCost):
    """MapReduce's cost model (`labkit.batch_cost.Cost`, the same defaults) and
    `memory`, the rate of reading and writing cached partitions."""

    memory: float = 1e9

    def __post_init__(self):
        super().__post_init__()
        require_number("memory", self.memory, positive=True)


class Stage(NamedTuple):
    """A run of pipelined datasets between shuffles: `shuffle` is the id of
    the shuffle it writes (None for the job's result stage)."""

    name: str
    shuffle: int | None
    datasets: tuple[str, ...]
    parents: tuple[str, ...]


def plan(ds: Dataset, stable=lambda d: False) -> list[Stage]:
    """The stages of a job on `ds`, parents first. `stable(d)` says whether a
    dataset is stored (a completed checkpoint), which cuts its lineage."""
    if not isinstance(ds, Dataset):
        raise TypeError(f"plan needs a Dataset, got {ds!r}")
    ds.lineage()                                    # refuses cycles
    stages: dict[str, Stage] = {}

    def build(top: Dataset, shuffle: int | None) -> str:
        name = "result" if shuffle is None else f"shuffle {shuffle}"
        if name in stages:
            return name
        members, seen, parents, stack = [], set(), [], [top]
        while stack:
            d = stack.pop()
            if d.id in seen:            # by id: two datasets may share a name
                continue
            seen.add(d.id)
            members.append(d.name)
            if stable(d):
                continue
            for dep in d.deps:
                if dep.shuffle is None:
                    stack.append(dep.parent)
                else:
                    parents.append(build(dep.parent, dep.shuffle))
        stages[name] = Stage(name, shuffle, tuple(members),
                             tuple(dict.fromkeys(parents)))
        return name

    build(ds, None)
    return list(stages.values())


class TaskRun(NamedTuple):
    """One task attempt in the journal. `stage` is "shuffle <id>" (a map task
    writing that shuffle's partition `partition`) or "result"; outcome is
    "done", "failed" (its worker crashed) or "aborted" (an input vanished
    before it started). `products`: what it stored, as ("cache", dataset id,
    p) and ("shuffle", id, p); `rebuilt`: those of them lost before."""

    id: int
    job: int
    stage: str
    partition: int
    worker: str
    start: float
    end: float
    outcome: str
    products: tuple
    rebuilt: tuple


class _Missing(Exception):
    """An input vanished between the driver's decision and the task's start."""


class _Work:
    """One task computing on one worker: evaluates partitions through the
    lineage and adds up the seconds each byte costs."""

    def __init__(self, cluster: DataflowCluster, worker: str):
        self.cluster, self.worker, self.cost = cluster, worker, cluster.cost
        self.seconds = self.cost.startup
        self.cache: dict[tuple[int, int], list] = {}
        self.stored: list[tuple] = []

    def charge(self, records: int | list, rate: float) -> None:
        size = records if isinstance(records, int) else nbytes(records)
        self.seconds += size * self.cost.scale / rate

    def read_stable(self, key: tuple[int, int]) -> list:
        records, replicas = self.cluster.stable[key]
        cost = self.cost
        self.charge(records, cost.disk if self.worker in replicas
                    else min(cost.disk, cost.network))
        return list(records)

    def compute(self, ds: Dataset, p: int) -> list:
        """Partition p of ds, from the cheapest place that still has it."""
        cluster, key = self.cluster, (ds.id, p)
        if key in cluster.stable:
            return self.read_stable(key)
        holder = cluster.driver.cached.get(key)
        if ds.cached and holder is not None:
            records = cluster.nodes[holder].memory.get(key)
            if records is None:
                raise _Missing(("cache", *key))
            self.charge(records, self.cost.memory if holder == self.worker
                        else self.cost.network)
            self.write_checkpoint(ds, p, records)
            return list(records)
        if ds.op in ("map", "filter", "flat_map", "map_values"):
            records = ds.narrow(self.compute(ds.deps[0].parent, p), p)
        else:
            inputs = [self.compute(d.parent, p) if d.shuffle is None
                      else self.fetch(d.shuffle, p) for d in ds.deps]
            records = ds.wide(inputs, p)
        self.charge(records, self.cost.cpu)
        if ds.cached:
            self.cache[key] = records
            self.stored.append(("cache", ds.id, p))
            self.charge(records, self.cost.memory)
        self.write_checkpoint(ds, p, records)
        return records

    def write_checkpoint(self, ds: Dataset, p: int, records: list) -> None:
        """Write partition p to stable storage if ds is to be checkpointed: as
        it is computed, or read from a cache (checkpoint() after cache())."""
        if ds.checkpointed:
            self.charge(records, self.cost.disk)
            self.charge(records, self.cost.network)     # one pipelined replica hop
            self.stored.append(("stable", ds.id, p, tuple(records)))

    def fetch(self, shuffle: int, p: int) -> list:
        """Bucket p of every map output of the shuffle, in map order."""
        cluster, out = self.cluster, []
        for m in range(cluster.shuffles[shuffle][0].partitions):
            holder = cluster.driver.outputs.get((shuffle, m))
            buckets = None if holder is None else cluster.nodes[holder].shuffle.get(
                (shuffle, m))
            if buckets is None:
                raise _Missing(("shuffle", shuffle, m))
            cost = self.cost
            self.charge(buckets[p], cost.disk if holder == self.worker
                        else min(cost.disk, cost.network))
            out.extend(buckets[p])
        return out


class Worker(Node):
    """An executor: runs one task at a time; keeps cached partitions in memory
    and shuffle outputs on local disk, both lost when it crashes."""

    def __init__(self, name: str, net: Network, cluster: DataflowCluster):
        self.cluster = cluster
        super().__init__(name, net)

    def reset(self) -> None:
        self.memory: dict[tuple[int, int], list] = {}
        self.shuffle: dict[tuple[int, int], list[list]] = {}

    def kill(self) -> None:
        super().kill()
        self.reset()                # memory and local shuffle files are gone

    def on_launch(self, msg: Message) -> None:
        cluster, (stage, p) = self.cluster, msg.task
        if msg.run not in cluster.driver.running:
            return                  # its job was abandoned after a TaskError
        work = _Work(cluster, self.name)
        try:
            if stage == "result":
                value = work.compute(cluster.driver.job_ds, p)
                buckets = None
            else:
                parent, child = cluster.shuffles[stage]
                buckets = parent.buckets(work.compute(parent, p), p, child)
                work.charge(sum(nbytes(b) for b in buckets), cluster.cost.disk)
                value = None
        except _Missing as missing:
            self.send(DRIVER, "aborted", run=msg.run, missing=missing.args[0])
            return
        self.set_timer("task", work.seconds, self.finish, msg, work, buckets, value)

    def finish(self, msg: Message, work: _Work, buckets, value) -> None:
        self.memory.update(work.cache)
        stage, p = msg.task
        products = list(work.stored)
        if buckets is not None:
            self.shuffle[(stage, p)] = buckets
            products.append(("shuffle", stage, p))
        self.send(DRIVER, "done", run=msg.run, products=tuple(products), value=value)


class Driver(Node):
    """Spark's driver: plans each job, places tasks, tracks where cached
    partitions and shuffle outputs live, and recomputes lost ones on demand.
    It never crashes (losing it ends the application, as in Spark)."""

    def __init__(self, name: str, net: Network, cluster: DataflowCluster):
        self.cluster = cluster
        super().__init__(name, net)

    def reset(self) -> None:
        self.cached: dict[tuple[int, int], str] = {}     # (dataset, p) -> worker
        self.outputs: dict[tuple[int, int], str] = {}    # (shuffle, m) -> worker
        self.lost: set[tuple] = set()           # products lost, not rebuilt
        self.journal: list[TaskRun] = []
        self.running: dict[int, tuple] = {}     # run id -> (task, worker, start)
        self.launched = 0
        self.job_ds: Dataset | None = None
        self.last: Dataset | None = None                 # the last job's dataset
        self.job = -1
        self.results: dict[int, list] = {}

    # -- jobs ------------------------------------------------------------------------
    def start(self, ds: Dataset) -> None:
        self.job += 1
        self.job_ds = self.last = ds
        self.results = {}
        self.update()

    def needs(self, ds: Dataset, p: int, shuffles: list, prefer: list) -> None:
        """Walk the narrow lineage of partition p: the shuffles it reads and the
        workers holding its cached or stored inputs."""
        cluster, key = self.cluster, (ds.id, p)
        if key in cluster.stable:
            prefer.extend(cluster.stable[key][1])
            return
        if ds.cached and key in self.cached:
            prefer.append(self.cached[key])
            return
        for dep in ds.deps:
            if dep.shuffle is None:
                self.needs(dep.parent, p, shuffles, prefer)
            else:
                shuffles.append(dep.shuffle)

    def update(self) -> None:
        """Start every task that can run now on an idle worker; end the job
        once every result partition is in."""
        ds = self.job_ds
        if ds is None:
            return
        if len(self.results) == ds.partitions:
            self.job_ds = None
            self.sim.stop()
            return
        busy = {task for task, _, _ in self.running.values()}
        ready, queued = [], set()
        todo = [("result", p) for p in range(ds.partitions) if p not in self.results]
        while todo:
            task = todo.pop(0)
            if task in busy or task in queued:
                continue
            queued.add(task)
            stage, p = task
            top = ds if stage == "result" else self.cluster.shuffles[stage][0]
            shuffles, prefer = [], []
            self.needs(top, p, shuffles, prefer)
            missing = [(s, m) for s in shuffles
                       for m in range(self.cluster.shuffles[s][0].partitions)
                       if (s, m) not in self.outputs]
            if missing:
                todo.extend(missing)
            else:
                ready.append((task, prefer))
        idle = [w for w in self.cluster.workers
                if self.cluster.nodes[w].alive
                and all(w != who for _, who, _ in self.running.values())]
        for worker in idle:
            if not ready:
                break
            pick = next((r for r in ready if worker in r[1]), ready[0])
            ready.remove(pick)
            self.launch(pick[0], worker)
        # With every worker down the job waits: a restart already on the agenda
        # calls `update` again, and with none the agenda runs dry, which ends
        # `run_job` with the partitions missing (Unavailable).

    def launch(self, task: tuple, worker: str) -> None:
        run = self.launched
        self.launched += 1
        self.running[run] = (task, worker, self.sim.now)
        self.send(worker, "launch", run=run, task=task)

    def close(self, run: int, outcome: str, products=(), rebuilt=()) -> tuple:
        task, worker, start = self.running.pop(run)
        stage = "result" if task[0] == "result" else f"shuffle {task[0]}"
        self.journal.append(TaskRun(len(self.journal), self.job, stage,
                                    task[1], worker, start, self.sim.now, outcome,
                                    products, rebuilt))
        return task

    # -- messages from workers -------------------------------------------------------
    def on_done(self, msg: Message) -> None:
        if msg.run not in self.running:
            return                      # from a worker already declared lost
        worker = msg.src
        rebuilt, products = [], []
        for product in msg.products:
            kind, a, p = product[:3]
            if kind == "stable":
                self.cluster.store((a, p), product[3], worker)
                product = ("stable", a, p)
            elif kind == "cache":
                self.cached[(a, p)] = worker
            else:
                self.outputs[(a, p)] = worker
            products.append(product)
            if product in self.lost:
                self.lost.discard(product)
                rebuilt.append(product)
        task = self.close(msg.run, "done", tuple(products), tuple(rebuilt))
        if task[0] == "result" and self.job_ds is not None:
            self.results[task[1]] = msg.value
        self.update()

    def on_aborted(self, msg: Message) -> None:
        """An input was gone when the task started: forget where it was."""
        kind, *key = msg.missing
        where = self.cached if kind == "cache" else self.outputs
        if where.pop(tuple(key), None) is not None:
            self.lost.add(msg.missing)
        if msg.run in self.running:
            self.close(msg.run, "aborted")
            self.update()

    def worker_lost(self, worker: str) -> None:
        """Forget everything the worker held; its running task failed."""
        for key in [k for k, w in self.cached.items() if w == worker]:
            del self.cached[key]
            self.lost.add(("cache", *key))
        for key in [k for k, w in self.outputs.items() if w == worker]:
            del self.outputs[key]
            self.lost.add(("shuffle", *key))
        for run in [r for r, (_, w, _) in self.running.items() if w == worker]:
            self.close(run, "failed")
        self.update()
