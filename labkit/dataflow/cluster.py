"""`DataflowCluster`: a driver and workers w1..wN on one simulated network,
the place datasets start from (`parallelize`) and jobs run (`run_job`, called
by a dataset's `collect` and `count`), with the fault verbs every labkit
cluster has. Input and checkpoints live in stable storage: each partition on
REPLICAS workers' disks for locality, and (as in HDFS) never lost to one crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labkit.errors import ConfigError, Unavailable, require_int, require_number
from labkit.metrics import Result
from labkit.net import NetConfig, Network
from labkit.node import Cluster, Node

from .dataset import Dataset, _preview
from .scheduler import DRIVER, Cost, Driver, Stage, TaskRun, Worker, plan

#: Stable storage keeps each partition on this many workers.
REPLICAS = 3


class DataflowCluster(Cluster):
    """A Spark-like cluster in simulated time: `parallelize` records, chain
    transformations, call an action; `kill`/`restart` workers between or
    during jobs (`sim.at(t, cluster.kill, "w2")`). `detect`: seconds before
    the driver hears that a worker is gone (0: its connection drops at once).
    `jobs` lists (job, dataset name, start, end) per action run so far.
    """

    def __init__(self, workers: int = 4, *, seed: int = 1, cost: Cost | None = None,
                 detect: float = 0.0, trace: bool = False):
        workers = require_int("workers", workers, minimum=1)
        if cost is not None and not isinstance(cost, Cost):
            raise ConfigError(f"cost must be a dataflow.Cost, got {cost!r}")
        self.cost = cost or Cost()
        self.detect = require_number("detect", detect, minimum=0.0)
        self.workers = [f"w{i}" for i in range(1, workers + 1)]
        self.stable: dict[tuple[int, int], tuple[tuple, tuple[str, ...]]] = {}
        self.shuffles: dict[int, tuple[Dataset, Dataset]] = {}
        self.jobs: list[tuple[int, str, float, float]] = []
        self._ids = self._shuffle_ids = 0

        def build(name: str, net: Network) -> Node:
            return (Driver if name == DRIVER else Worker)(name, net, self)

        super().__init__(names=[DRIVER, *self.workers], seed=seed, trace=trace,
                         net=NetConfig(latency=0.001), node_factory=build)

    @property
    def driver(self) -> Driver:
        return self.nodes[DRIVER]

    @property
    def journal(self) -> list[TaskRun]:
        return self.driver.journal

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def _new_shuffle(self) -> int:
        self._shuffle_ids += 1
        return self._shuffle_ids

    # -- data ----------------------------------------------------------------------
    def parallelize(self, records: Sequence, partitions: int | None = None,
                    name: str | None = None) -> Dataset:
        """A dataset of these records, cut into `partitions` runs of consecutive
        records (default two per worker, at most one per record) kept in stable
        storage."""
        if isinstance(records, str | bytes) or not isinstance(records, Sequence):
            raise ConfigError(f"records must be a list, got {_preview(records)}")
        if not records:
            raise ConfigError("records is empty: a dataset needs at least one record")
        if partitions is None:
            partitions = min(2 * len(self.workers), len(records))
        partitions = require_int("partitions", partitions, minimum=1)
        if partitions > len(records):
            raise ConfigError(f"partitions must be at most the number of records "
                              f"({len(records)}), got {partitions}")
        ds = Dataset(self, "source", [], partitions, name=name or "input")
        n = len(records)
        for p in range(partitions):
            first, end = p * n // partitions, (p + 1) * n // partitions
            self.store((ds.id, p), records[first:end])
        return ds

    def store(self, key: tuple[int, int], records: Sequence, writer: str | None = None
              ) -> None:
        """Put one partition in stable storage: on the writer and random others."""
        pool = [w for w in self.workers if w != writer]
        rng = self.sim.rng("dataflow.placement")
        others = rng.sample(pool, min(len(pool), REPLICAS - (writer is not None)))
        replicas = tuple(sorted(([writer] if writer else []) + others))
        self.stable[key] = (tuple(records), replicas)

    def is_stable(self, ds: Dataset) -> bool:
        """Whether every partition of ds is in stable storage (its lineage cut)."""
        return all((ds.id, p) in self.stable for p in range(ds.partitions))

    def stages(self, ds: Dataset) -> list[Stage]:
        """The stages a job on ds is cut into now, parents first."""
        self._mine(ds)
        return plan(ds, self.is_stable)

    # -- jobs ----------------------------------------------------------------------
    def _mine(self, ds: Any) -> None:
        if not isinstance(ds, Dataset) or ds.ctx is not self:
            raise TypeError(f"expected a Dataset of this cluster, got {ds!r}")

    def run_job(self, ds: Dataset, action: str) -> Any:
        """Run one job computing every partition of ds, and return the action's
        value ("collect": the records, "count": how many)."""
        self._mine(ds)
        if action not in ("collect", "count"):
            raise ConfigError(f"action must be 'collect' or 'count', got {action!r}")
        for d in ds.lineage():
            for dep in d.deps:
                if dep.shuffle is not None:
                    self.shuffles[dep.shuffle] = (dep.parent, d)
        start, driver = self.sim.now, self.driver
        driver.start(ds)
        try:
            self.sim.run()
        except BaseException:
            driver.running.clear()      # the job is abandoned; late replies ignored
            raise
        finally:
            driver.job_ds = None
        results = driver.results
        if len(results) < ds.partitions:
            raise Unavailable(f"{ds.name}: the job cannot finish, every worker is "
                              f"down ({len(results)} of {ds.partitions} partitions)")
        self.jobs.append((driver.job, ds.name, start, self.sim.now))
        parts = [results[p] for p in range(ds.partitions)]
        if action == "count":
            return sum(map(len, parts))
        return [r for part in parts for r in part]

    # -- faults ----------------------------------------------------------------------
    def kill(self, name: str) -> None:
        if name == DRIVER:
            raise ConfigError("the driver cannot be killed (in Spark that ends the "
                              f"application); kill a worker: {self.workers}")
        node = self.node(name)
        if not node.alive:
            return
        node.kill()
        if self.detect:
            self.sim.schedule(self.detect, self.driver.worker_lost, name)
        else:
            self.driver.worker_lost(name)

    def restart(self, name: str) -> None:
        if name == DRIVER:
            raise ConfigError("the driver never crashes")
        super().restart(name)
        self.sim.schedule(0.0, self.driver.update)

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        base = super().result(scenario or "dataflow", **params)
        return Result(scenario=base.scenario, params=base.params, seed=base.seed,
                      metrics=base.metrics, trace=base.trace, end_time=base.end_time,
                      data={**base.data, "jobs": list(self.jobs),
                            "journal": list(self.journal)})
