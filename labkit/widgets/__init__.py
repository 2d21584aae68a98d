"""ipywidgets controls that drive scenarios and redraw plotly figures in place.

Everything here works without a browser: set a control's value (or click a
button) in plain Python, then read the figure's data; that is how the tests
drive it. Sliders act on release, not while dragging, and scenario runs are
cached by their parameters, so a classroom demo answers at once.

Where to read what: `controls` (sliders, menus, the status line, progress,
switches), `explorer` (`explore` and its panels), `cluster` (the cluster
and Raft playgrounds that step a live cluster), `playgrounds` (the topic
playgrounds built on `explore`), `capstone` (notebook 09's panel), `figure`
(`LiveFigure`, the live plotly figure every playground draws in).

Importing this package freezes the cyclic garbage collector's view of what
the process holds so far (`gc.freeze`): a notebook imports it in its first
cell, when that is the kernel and the modules it loaded (plotly, pandas,
ipywidgets: some 150,000 objects that live as long as the kernel). Left out
of every later collection, they no longer slow the full collection that a
playground's action now and then sets off: 0.05 s instead of 0.13 s.
"""

import gc

from .capstone import CapstonePanel, capstone_panel
from .cluster import (
    RAFT_CUTS,
    ClusterPlayground,
    RaftPlayground,
    cluster_playground,
    raft_playground,
)
from .controls import (
    WARNING_COLOUR,
    WIDE,
    NodeSwitches,
    ServerSwitches,
    control,
    headline,
    progress,
    slider,
)
from .explorer import CACHE_SIZE, Explorer, ExplorerPanel, SwitchedExplorer, explore
from .figure import LiveFigure
from .playgrounds import (
    balancer_playground,
    dataflow_playground,
    mapreduce_playground,
    paxos_playground,
    storage_playground,
)

__all__ = [
    "CACHE_SIZE", "CapstonePanel", "ClusterPlayground", "Explorer", "ExplorerPanel",
    "LiveFigure", "NodeSwitches", "RAFT_CUTS", "RaftPlayground", "ServerSwitches",
    "SwitchedExplorer", "WARNING_COLOUR", "WIDE", "balancer_playground",
    "capstone_panel", "cluster_playground", "control", "dataflow_playground",
    "explore", "headline", "mapreduce_playground", "paxos_playground", "progress",
    "raft_playground", "slider", "storage_playground",
]

gc.freeze()
