"""labkit: run, break and measure distributed systems on a laptop.

Deterministic discrete-event simulations (a clock, a network, nodes, protocols)
with metrics, plots and widgets for the workbook's notebooks. Plotting and
widget modules are imported on first use so the core stays light.
"""

import importlib

from labkit import dist, errors, metrics, queueing
from labkit.errors import ConfigError, InvariantViolation, RequestTimeout, Unavailable
from labkit.metrics import Histogram, Metrics, Result, TraceRecord
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node
from labkit.sim import Future, Simulator

_LAZY = ("plot", "widgets", "scenarios", "labs", "service", "check", "balancing",
         "resilience", "paxos", "raft", "txn", "storage", "mapreduce", "dataflow",
         "hashring", "sweeps")
_LAZY_NAMES = {"FileSystem": "labkit.scenarios",    # name -> module defining it
               "RaftCluster": "labkit.raft", "sweep": "labkit.sweeps",
               "tune": "labkit.sweeps"}


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"labkit.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__all__ = [
    "Cluster", "ConfigError", "FileSystem", "Future", "Histogram",
    "InvariantViolation", "Message", "Metrics", "NetConfig", "Network", "Node",
    "RaftCluster", "RequestTimeout", "Result", "Simulator", "TraceRecord",
    "Unavailable", "dist", "errors", "metrics", "queueing", "sweep", "tune",
]
