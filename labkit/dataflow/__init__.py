"""Dataflow with lineage (Spark's model; 分布式计算 beside MapReduce).

Zaharia et al., "Resilient Distributed Datasets: A Fault-Tolerant Abstraction
for In-Memory Cluster Computing" (NSDI 2012): a job is a graph of datasets
built by coarse-grained transformations; the scheduler cuts it into stages at
shuffles; a reused dataset can stay in memory; and a lost partition is
rebuilt from its lineage instead of from replicas.

Where to read what: `dataset` (the lineage graph and the per-partition
functions), `scheduler` (the cost model, stage cutting, the driver and the
workers, the journal of task runs), `cluster` (`DataflowCluster`, the facade
with the fault verbs) and `pagerank` (the experiment: iterative PageRank as
chained MapReduce-style jobs and as a cached dataflow, with a generated graph).
"""

from .cluster import REPLICAS, DataflowCluster
from .dataset import Dataset, Dependency, TaskError, nbytes, partition_of
from .pagerank import (
    DAMPING,
    PageRankRun,
    generate_graph,
    read_graph,
    reference_pagerank,
    run_pagerank,
    write_graph,
)
from .scheduler import DRIVER, Cost, Stage, TaskRun, plan

__all__ = [
    "DAMPING", "DRIVER", "REPLICAS", "Cost", "DataflowCluster", "Dataset",
    "Dependency", "PageRankRun", "Stage", "TaskError", "TaskRun", "generate_graph",
    "nbytes", "partition_of", "plan", "read_graph", "reference_pagerank",
    "run_pagerank", "write_graph",
]
