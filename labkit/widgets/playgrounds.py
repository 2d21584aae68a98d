"""The topic playgrounds built on `explore`: load balancing (02), Paxos (04),
storage (07), MapReduce (08) and Spark-style dataflow (10).
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit import plot, scenarios
from labkit.errors import checked
from labkit.plot.dataflow import stage_graph
from labkit.scenarios.dataflow import dataflow_playground as _dataflow_scenario

from .controls import ServerSwitches
from .explorer import Explorer, SwitchedExplorer, explore


@checked
def balancer_playground(*, seed: int = 1, servers: int = 8, max_servers: int = 12,
                        requests: int = 20_000) -> SwitchedExplorer:
    """The load-balancing playground of notebook 02: policy, load, fleet size, d
    and the slowdown of server s1, with a kill/restart switch per server s1..sN
    (a switched-off server dies a third of the way into the run). Every change
    reruns the scenario (cached by parameters) and redraws `plot.fleet`: the
    latency CDF and each server's busy share while requests arrive."""
    explorer = explore(
        scenarios.load_balancer, plot.fleet, seed=seed, requests=requests,
        policy=list(scenarios.BALANCING_POLICIES), load=(0.1, 1.2, 0.05, 0.9),
        servers=(2, max_servers, 1, servers), d=(1, 4, 1, 2),
        slow=(1.0, 5.0, 0.5, 3.0))
    return SwitchedExplorer("BalancerPlayground", explorer, ServerSwitches(servers),
                            "servers")


@checked
def paxos_playground(*, seed: int = 0, acceptors: int = 5,
                     max_acceptors: int = 7) -> SwitchedExplorer:
    """The single-decree playground of notebook 04: acceptors, proposers, loss,
    backoff range, a distinguished proposer, the seed, and a kill/restart switch
    per acceptor a1..aN (a killed acceptor crashes at 15 ms, after promising).
    Every change reruns the scenario and redraws `plot.paxos_timeline`; the
    status line says whether and when a value was chosen."""
    explorer = explore(
        scenarios.paxos_playground, plot.paxos_timeline,
        seed=(0, 20, 1, seed), acceptors=(1, max_acceptors, 1, acceptors),
        proposers=(1, 3, 1, 2), loss=(0.0, 0.3, 0.05, 0.0),
        backoff=(0.0, 0.2, 0.01, 0.05), leader=False)
    return SwitchedExplorer("PaxosPlayground", explorer,
                            ServerSwitches(acceptors, prefix="a", first=1),
                            "acceptors")


@checked
def storage_playground(*, seed: int = 1, nodes: int = 5, max_nodes: int = 8,
                       down: Iterable[str] = ()) -> SwitchedExplorer:
    """The storage playground of notebook 07: chunk servers, replication factor,
    write quorum, chunk size, R and W of the quorum store, the read share of the
    workload, a partition preset, killing the metadata leader, and a kill/restart
    switch per chunk server s1..sN (killed at t = 1 s); `down` names the servers
    switched off at the start (e.g. ["s1"]). Every change reruns
    `scenarios.storage_playground` and redraws `plot.storage_dashboard`."""
    explorer = explore(
        scenarios.storage_playground, plot.storage_dashboard, seed=seed,
        nodes=(3, max_nodes, 1, nodes), replication=(1, 5, 1, 3),
        write_quorum=(1, 5, 1, 2), chunk_size=[1024, 256, 4096],
        r=(1, 5, 1, 1), w=(1, 5, 1, 1), reads=(0.0, 1.0, 0.1, 0.5),
        partition=list(scenarios.STORAGE_PARTITIONS), kill_leader=False)
    panel = SwitchedExplorer("StoragePlayground", explorer,
                             ServerSwitches(nodes, prefix="s", first=1), "nodes")
    panel.switches.switch_off(down)
    return panel


@checked
def mapreduce_playground(*, seed: int = 1, workers: int = 8,
                         max_workers: int = 12) -> SwitchedExplorer:
    """The MapReduce playground of notebook 08: job, workers, M, R, the
    combiner, the last worker's slowdown, the backup policy, when killed
    workers crash, and a kill switch per worker w1..wN (a killed worker stays
    down). Every change reruns `scenarios.mapreduce_playground` and redraws
    `plot.gantt`; the status line gives the job time, re-executions and
    backups."""
    explorer = explore(
        scenarios.mapreduce_playground, plot.gantt, seed=(0, 9, 1, seed),
        job=list(scenarios.MAPREDUCE_JOBS), workers=(2, max_workers, 1, workers),
        splits=(4, 64, 4, 32), partitions=(1, 32, 1, 8), combiner=False,
        straggler=(1.0, 20.0, 1.0, 1.0), backups=list(scenarios.MAPREDUCE_BACKUPS),
        kill_at=(0.0, 600.0, 20.0, 100.0))
    return SwitchedExplorer("MapReducePlayground", explorer,
                            ServerSwitches(workers, prefix="w", first=1), "workers")


@checked
def dataflow_playground(*, seed: int = 1, iterations: int = 5,
                        workers: int = 4) -> Explorer:
    """Controls: the graph's seed, cache on/off, checkpoint every k
    iterations (0: never), the iteration at whose start a worker dies (0:
    none) and which worker. Every change reruns
    `scenarios.dataflow.dataflow_playground` and redraws `plot.stage_graph`;
    the status line gives the run's time and the partitions rebuilt."""
    names = [f"w{i}" for i in range(1, workers + 1)]
    return explore(_dataflow_scenario, stage_graph, title="DataflowPlayground",
                   seed=(0, 9, 1, seed), iterations=iterations, workers=workers,
                   cache=True, checkpoint_every=(0, iterations, 1, 0),
                   kill_at=(0, iterations, 1, min(3, iterations)),
                   worker=names[1:] + names[:1])
