"""Plotly figures of simulation results (the only package besides widgets that
imports plotly or networkx).

Every function returns a `go.Figure` built only from its arguments: no random
ids, numbers rounded, so a notebook that stores the figure stores the same JSON
on every run.

Where things are: `common` holds the house style and the drawings several
topics share (latency histograms and CDFs, time series, bars, curves, small
multiples, the topology, the space-time diagram); each other module holds the
views of one notebook, named after its topic (`performance` for 01,
`load_balancing` 02, `fault_tolerance` 03, `paxos` 04, `raft` 05,
`transactions` 06, `storage` 07, `mapreduce` 08, `capstone` 09, `dataflow`
10; `tuning` for `labkit.sweeps.tune`; `labs` for notebooks/labs/). A topic's
module imports only `common`. Every public name is re-exported here, so
`plot.latency_cdf(...)` and `plot.gantt(...)` work without knowing the module.
"""

from .capstone import capstone_dashboard
from .common import (
    CUT,
    DOWN,
    FAINT,
    LINK,
    PALETTE,
    ROLE_COLOURS,
    UNITS,
    UP,
    bars,
    curves,
    latency_ccdf,
    latency_cdf,
    latency_hist,
    panels,
    sequence_diagram,
    timeseries,
    topology,
)
from .dataflow import PARTITION_COLOURS, iteration_times, recovery, stage_graph
from .fault_tolerance import resilience_timeline
from .labs import lab_failure
from .load_balancing import fleet, server_queues
from .mapreduce import ATTEMPT_COLOURS, data_rates, gantt
from .mapreduce import _data_rates as _data_rates  # tests/test_mapreduce.py uses it
from .paxos import paxos_timeline, quorums
from .performance import fan_out_tail, omission, percentile_merge, percentiles_vs_load
from .raft import log_grid, roles
from .storage import storage_dashboard
from .transactions import audit_totals, commit_rates, txn_playground, txn_timeline
from .tuning import tuning_trials

__all__ = [
    "ATTEMPT_COLOURS", "CUT", "DOWN", "FAINT", "LINK", "PALETTE", "PARTITION_COLOURS",
    "ROLE_COLOURS", "UNITS", "UP", "audit_totals", "bars", "capstone_dashboard",
    "commit_rates", "curves", "data_rates", "fan_out_tail", "fleet", "gantt",
    "iteration_times", "lab_failure", "latency_ccdf", "latency_cdf", "latency_hist",
    "log_grid", "omission", "panels", "paxos_timeline", "percentile_merge",
    "percentiles_vs_load", "quorums", "recovery", "resilience_timeline", "roles",
    "sequence_diagram", "server_queues", "stage_graph", "storage_dashboard",
    "timeseries", "topology", "tuning_trials", "txn_playground", "txn_timeline",
]
