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

Where each part lives: `job` (the job itself: the user's functions, input
splits, the cost model, backup policy, output files and the attempt log),
`worker` (a worker node: map, shuffle, reduce), `master` (the master node:
failure detection, scheduling, backup tasks), `cluster` (`MapReduceCluster`
and `run`, the one call that runs a job) and `result` (`MapReduceResult` and
the `TaskAttempt` rows of its timeline).
"""

from labkit.batch_cost import Cost

from .cluster import STRAGGLER_SLOWDOWN, MapReduceCluster, run
from .job import (
    REPLICAS,
    Backups,
    Job,
    OutputFiles,
    Split,
    TaskError,
    hash_partition,
    make_splits,
    pairs_size,
    size,
)
from .master import MASTER, Master
from .result import MapReduceResult, TaskAttempt
from .worker import COPIES, Worker

__all__ = [
    "COPIES", "MASTER", "REPLICAS", "STRAGGLER_SLOWDOWN", "Backups", "Cost", "Job",
    "MapReduceCluster", "MapReduceResult", "Master", "OutputFiles", "Split",
    "TaskAttempt", "TaskError", "Worker", "hash_partition", "make_splits",
    "pairs_size", "run", "size",
]
