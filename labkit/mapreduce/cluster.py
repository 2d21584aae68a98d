"""`MapReduceCluster`, a master and workers on one simulated network, and
`run`, the one call a notebook makes: check the arguments, build the job and
the cluster, schedule crashes and restarts, run to the end and return a
`MapReduceResult`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from labkit.batch_cost import Cost
from labkit.errors import ConfigError, Unavailable, require_int, require_number
from labkit.net import NetConfig, Network
from labkit.node import Cluster, Node

from .job import Backups, Job, _preview, hash_partition, make_splits
from .master import MASTER, Master
from .result import MapReduceResult
from .worker import Worker

#: How many times slower a straggler named without a factor is (disk and CPU).
STRAGGLER_SLOWDOWN = 10.0


class MapReduceCluster(Cluster):
    """A master and workers w1..wN on one network, running one job.

    `run(seconds)` advances the job; `kill`/`restart` crash and revive workers
    (a restarted worker is a new process with an empty local disk). The master
    stops the clock when the last reduce task commits. The job also finishes,
    with the same output, on a network that loses, duplicates or reorders
    messages (`cluster.network.update(loss=0.05)`) or cuts a worker off for a
    while: heartbeats carry each worker's account of its work, from which the
    master repairs what a lost message left wrong. They include the fetches
    a reducer waits for and those a worker has queued to serve: a fetch whose
    request or answer was lost is asked for again about a timeout and two
    heartbeats after the loss, a slow answer never (and a worker serves a
    request it already has queued once). Without loss no message is added,
    and a run is the one it was. Tracing every message is off by default (a
    job sends tens of thousands); the timeline of task attempts tells a job's
    story. `master`: the master's class, labkit's `Master` or a subclass
    (e.g. a lab answer derived from `labkit.labs.skeleton("mapreduce")`).
    """

    def __init__(self, job: Job, workers: Sequence[str], *, seed: int = 1,
                 trace: bool = False, master: type[Master] = Master):
        _master_class(master)

        def build(name: str, net: Network) -> Node:
            if name == MASTER:
                return master(name, net, job, workers)
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


def _master_class(master: Any) -> None:
    if not (isinstance(master, type) and issubclass(master, Master)):
        raise TypeError(f"master must be a class derived from labkit.mapreduce."
                        f"Master (e.g. your lab answer), got {master!r}")


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
        timeout: float = 10.0, deadline: float = 36_000.0,
        master: type[Master] = Master) -> MapReduceResult:
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
    master: the master's class (default labkit's `Master`; a lab answer runs
    here the same way). Raises TaskError if the user's code fails, Unavailable
    if the job has not finished by `deadline` simulated seconds.
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
    if timeout < 2 * heartbeat:
        raise ConfigError(f"timeout ({timeout:g} s) must be at least two heartbeat "
                          f"intervals ({2 * heartbeat:g} s): a live worker would "
                          "look dead between two heartbeats, and its tasks would "
                          "run again and again")
    deadline = require_number("deadline", deadline, positive=True)
    _master_class(master)

    placement = random.Random(f"{seed}:mapreduce.placement")
    cluster = MapReduceCluster(Job(
        mapper, reducer, combiner, partitioner,
        make_splits(inputs, splits, names, placement), partitions, speeds,
        cost or Cost(), backups, locality, heartbeat, timeout), names, seed=seed,
        master=master)
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
