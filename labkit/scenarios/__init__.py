"""Scenarios: pure functions (seed, **params) -> Result that notebooks explore.

Each builds a fresh simulation from its arguments alone, runs it and returns a
frozen Result, so a widget can cache runs by parameters and CI can replay them.

Where things are: one module per notebook, named after its topic: `tour` (00),
`performance` (01), `load_balancing` (02), `fault_tolerance` (03), `paxos`
(04, with Multi-Paxos beside Raft at its end), `raft` (05), `transactions`
(06), `storage` (07, also `FileSystem` with Raft metadata), `mapreduce` (08),
the package `capstone` (09) and `dataflow` (10). `common` holds the little
that several of them share. A topic's module imports only `common` (and its
own parts), never another topic. Every public name is re-exported here, so
`scenarios.raft_failover(...)` works without knowing the module.

What a scenario measured beyond its metrics is in `result.data`: a frozen
record of its family (`labkit.metrics.Record`, defined in its module or, for
shapes several share, in `common`), read by attribute (`res.data.rows`). The
capstone's is a `CapstoneRun` (with `Window`s and `FaultHit`s). The Results the
topic packages return themselves (`balancing.simulate`, `RaftCluster.result()`,
...) still carry dicts.
"""

from .capstone import (
    CAPSTONE_COSTS,
    CAPSTONE_FAULT_KINDS,
    CAPSTONE_FAULTS,
    CAPSTONE_KNOBS,
    CAPSTONE_METADATA,
    CAPSTONE_SERVERS,
    CAPSTONE_START,
    CAPSTONE_TUNED,
    SLO,
    CapstoneFault,
    TuningJournal,
    as_capstone_fault,
    capstone,
    scorecard,
    slo_rows,
    verdict,
)
from .common import SERVICE_SHAPES, THEORY_LOADS, cluster_result, service_time
from .dataflow import (
    RDD_PAPER,
    WEB_GRAPH,
    dataflow_playground,
    lineage_recovery,
    pagerank_failure,
    pagerank_speedup,
    web_graph,
)
from .fault_tolerance import (
    PLAYGROUND_MODES,
    STORM,
    STORM_POLICIES,
    TAIL_SETTINGS,
    backoff_race,
    breaker_tradeoffs,
    fault_playground,
    fault_severity,
    hedge_storms,
    tail_tolerance,
    throttling,
    timeout_sweep,
)
from .load_balancing import (
    BALANCING_POLICIES,
    balancing_vs_theory,
    load_balancer,
    stale_reports,
)
from .mapreduce import (
    CORPUS,
    FIGURE3,
    FIGURE3_EXECUTIONS,
    FIGURE3_KILLED,
    FIGURE3_PAPER,
    MAPREDUCE_BACKUPS,
    MAPREDUCE_JOBS,
    corpus,
    doc_list,
    figure3,
    figure3_measure,
    figure3_run,
    figure3_summary,
    first,
    mapreduce_playground,
    positions,
    postings,
    sampled_partitioner,
    skew,
    total,
    words,
)
from .paxos import (
    LOG_PROTOCOLS,
    PAXOS_LATENCY,
    PAXOS_STORIES,
    PLAYGROUND_LATENCY,
    backoff_sweep,
    leader_failover,
    log_comparison,
    paxos_costs,
    paxos_duel,
    paxos_playground,
    paxos_result,
    paxos_story,
)
from .performance import (
    coordinated_omission,
    fan_out,
    load_sweep,
    merged_percentiles,
    mmc_queue,
    queue_theory,
    theory_curve,
)
from .raft import (
    ETCD_DATA,
    ETCD_SETTINGS,
    FIG16_DISK,
    FIG16_LATENCY,
    FIG16_PAPER,
    FIG16_RANGES,
    JITTERY_LATENCY,
    downtimes,
    etcd_comparison,
    etcd_measured,
    figure_16,
    figure_16_grid,
    figure_16_summary,
    raft_cluster,
    raft_election,
    raft_failover,
    raft_kv,
    raft_result,
    timing_rule,
)
from .storage import (
    PBS_PAPER,
    QUORUM_LATENCY,
    QUORUMS,
    STORAGE_PARTITIONS,
    FileSystem,
    convergence,
    durability,
    join_moves,
    quorum_costs,
    raft_log,
    rebalance,
    ring_balance,
    single_points,
    staleness,
    storage_playground,
    storage_tour,
    t_visibility,
    visibility_summary,
)
from .tour import (
    TOUR_LATENCIES,
    PingNode,
    cluster_step,
    echo_cluster,
    halves,
    journal_by_node,
    latency_samples,
    ping,
)
from .transactions import (
    TXN_CRASHES,
    audit_run,
    blocking_window,
    client_outcomes,
    contention_sweep,
    txn_playground,
    txn_story,
)

__all__ = [
    # 00 simulator tour
    "TOUR_LATENCIES", "PingNode", "cluster_step", "echo_cluster", "halves",
    "journal_by_node", "latency_samples", "ping",
    # shared by several notebooks
    "SERVICE_SHAPES", "THEORY_LOADS", "cluster_result", "service_time",
    # 01 performance monitoring
    "coordinated_omission", "fan_out", "load_sweep", "merged_percentiles",
    "mmc_queue", "queue_theory", "theory_curve",
    # 02 load balancing
    "BALANCING_POLICIES", "balancing_vs_theory", "load_balancer", "stale_reports",
    # 03 fault tolerance
    "PLAYGROUND_MODES", "STORM", "STORM_POLICIES", "TAIL_SETTINGS", "backoff_race",
    "breaker_tradeoffs", "fault_playground", "fault_severity", "hedge_storms",
    "tail_tolerance", "throttling", "timeout_sweep",
    # 04 paxos
    "LOG_PROTOCOLS", "PAXOS_LATENCY", "PAXOS_STORIES", "backoff_sweep",
    "leader_failover", "log_comparison", "paxos_costs", "paxos_duel",
    "PLAYGROUND_LATENCY", "paxos_playground", "paxos_result", "paxos_story",
    # 05 raft
    "ETCD_DATA", "ETCD_SETTINGS", "FIG16_DISK", "FIG16_LATENCY", "FIG16_PAPER",
    "FIG16_RANGES", "JITTERY_LATENCY", "downtimes", "etcd_comparison", "etcd_measured",
    "figure_16", "figure_16_grid", "figure_16_summary",
    "raft_cluster", "raft_election", "raft_failover", "raft_kv", "raft_result",
    "timing_rule",
    # 06 transactions
    "TXN_CRASHES", "audit_run", "blocking_window", "client_outcomes",
    "contention_sweep", "txn_playground", "txn_story",
    # 07 storage
    "PBS_PAPER", "QUORUMS", "QUORUM_LATENCY", "STORAGE_PARTITIONS", "FileSystem",
    "convergence", "durability", "join_moves", "quorum_costs", "raft_log",
    "rebalance", "ring_balance", "single_points", "staleness",
    "storage_playground", "storage_tour", "t_visibility", "visibility_summary",
    # 08 mapreduce
    "CORPUS", "FIGURE3", "FIGURE3_EXECUTIONS", "FIGURE3_KILLED", "FIGURE3_PAPER",
    "MAPREDUCE_BACKUPS", "MAPREDUCE_JOBS", "corpus", "doc_list", "figure3",
    "figure3_measure", "figure3_run", "figure3_summary", "first",
    "mapreduce_playground", "positions", "postings", "sampled_partitioner", "skew",
    "total", "words",
    # 09 capstone
    "CAPSTONE_COSTS", "CAPSTONE_FAULTS", "CAPSTONE_FAULT_KINDS", "CAPSTONE_KNOBS",
    "CAPSTONE_METADATA", "CAPSTONE_SERVERS", "CAPSTONE_START", "CAPSTONE_TUNED",
    "SLO", "CapstoneFault", "TuningJournal", "as_capstone_fault", "capstone",
    "scorecard", "slo_rows", "verdict",
    # 10 spark dataflow
    "RDD_PAPER", "WEB_GRAPH", "dataflow_playground", "lineage_recovery",
    "pagerank_failure", "pagerank_speedup", "web_graph",
]
