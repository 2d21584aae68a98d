"""DESIGN.md's layering, checked by reading every labkit module's source.

Imports point down only; plotting and widget libraries live in the top layer;
nothing inside labkit reads the wall clock, starts threads or uses the global
random generator, except `labkit.real`, which sits beside everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "labkit"

# The layer of each labkit module, lowest first. A module may import modules
# of lower layers; it may import modules of its own layer only where that
# layer is listed in SIBLINGS_MAY_IMPORT_EACH_OTHER.
LAYERS = {
    "labkit.errors": 0,
    "labkit.dist": 0,
    "labkit.metrics": 0,
    "labkit.sim": 1,
    "labkit.net": 2,
    "labkit.node": 3,
    # Beside the core: closed forms, invariant checkers, service building blocks.
    "labkit.queueing": 4,
    "labkit.check": 4,
    "labkit.service": 4,
    "labkit.hashring": 4,
    "labkit.batch_cost": 4,
    # Protocols and services: they meet only through narrow interfaces.
    "labkit.balancing": 5,
    "labkit.resilience": 5,
    "labkit.raft": 5,
    "labkit.paxos": 5,
    "labkit.txn": 5,
    "labkit.storage": 5,
    "labkit.mapreduce": 5,
    "labkit.dataflow": 5,
    "labkit.scenarios": 6,
    "labkit.labs": 6.5,    # skeletons, worked answers, graders: above the scenarios
    "labkit.plot": 7,
    "labkit.widgets": 7,
    "labkit.sweeps": 7,      # many runs on Dask, tuning: above everything it runs
}
SIBLINGS_MAY_IMPORT_EACH_OTHER = {0, 7}  # errors/dist/metrics; plot/widgets
# Packages with one module (or sub-package) per topic, i.e. per notebook: inside
# its package a topic module `labkit.P.T` may import only the shared modules
# listed here and its own parts (`labkit.P.T.*`), never another topic; the
# package's __init__ may import them all.
TOPIC_PACKAGES = {"labkit.scenarios": {"common"}, "labkit.plot": {"common"}}

INIT = "labkit"  # labkit/__init__.py: curates exports, may import any layer
REAL = "labkit.real"  # real engines: exempt from every rule here; nothing imports it
UI_LIBRARIES = {"plotly", "ipywidgets", "networkx", "anywidget", "IPython"}
UI_MODULES = {"labkit.plot", "labkit.widgets", REAL}
CONCURRENCY = {"threading", "asyncio", "multiprocessing", "concurrent", "subprocess"}
WALL_CLOCK = {
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns",
    "time.perf_counter", "time.perf_counter_ns", "time.sleep",
    "datetime.datetime.now", "datetime.datetime.today", "datetime.datetime.utcnow",
    "datetime.date.today",
}
NUMPY_SEEDABLE = {"default_rng", "Generator", "SeedSequence", "PCG64", "BitGenerator"}
HOW_TO_RANDOM = "take randomness from sim.rng(name) (a seeded random.Random)"


def component(name: str) -> str:
    """The unit the layers are about: `labkit.raft.log` -> `labkit.raft`,
    `plotly.graph_objects` -> `plotly`, `labkit` -> `labkit`."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "labkit" else parts[0]


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every (line, absolute dotted name) the module imports, relative ones resolved.

    `from labkit import sim` imports `labkit.sim`; `from labkit import Simulator`
    imports the package `labkit` itself (and through it, everything).
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # `.` is this package, `..` its parent, ...
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                name = f"{base}.{alias.name}"
                if base == INIT and not is_labkit_module(name):
                    name = INIT  # a name that labkit/__init__.py exports
                found.append((node.lineno, name))
    return found


def is_labkit_module(name: str) -> bool:
    """Whether `labkit.x` names a module (in the table or on disk), not an attribute."""
    short = name.split(".")[1]
    return (name in LAYERS or name == REAL or (PACKAGE / f"{short}.py").exists()
            or (PACKAGE / short / "__init__.py").exists())


def qualified_names(tree: ast.AST, imported: list[tuple[int, str]]):
    """Yield (line, dotted name) for every imported name and every attribute chain
    rooted in an imported module, e.g. `np.random.rand` -> `numpy.random.rand`."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    yield from imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, root = [node.attr], node.value
            while isinstance(root, ast.Attribute):
                chain.append(root.attr)
                root = root.value
            if isinstance(root, ast.Name) and root.id in aliases:
                yield node.lineno, ".".join([aliases[root.id], *reversed(chain)])


def nondeterminism(name: str) -> str | None:
    """Why using this dotted name would make a run irreproducible, or None."""
    parts = name.split(".")
    if name in WALL_CLOCK:
        return "reads the wall clock; use sim.now and sim.schedule"
    if parts[0] in CONCURRENCY:
        return "adds threads or processes; the simulator is single-threaded"
    if parts[0] == "random" and len(parts) > 1 and parts[1] != "Random":
        return f"uses the global random generator; {HOW_TO_RANDOM}"
    if parts[:2] == ["numpy", "random"] and len(parts) > 2:
        if parts[2] not in NUMPY_SEEDABLE:
            return f"uses numpy's global random state; {HOW_TO_RANDOM}"
    return None


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every layering and determinism rule this module's source breaks."""
    tree = ast.parse(source)
    mine = component(module)
    if mine == REAL:
        return []
    problems = []
    if mine not in LAYERS and mine != INIT:
        problems.append(
            f"{mine} is not in the layer table: add it to LAYERS in "
            "tests/test_layers.py so its place in DESIGN.md's layers is chosen "
            "deliberately")
    imported = imports(tree, module, is_package)
    for line, name in imported:
        target = component(name)
        if target == mine:
            problems += topic_problems(line, module, name)
            continue
        if target == REAL:
            problems.append(f"line {line}: imports {name}; nothing may import "
                            "labkit.real (it starts processes and reads the clock)")
        elif target == INIT:
            problems.append(f"line {line}: imports from the labkit package itself; "
                            "import from the module that defines the name")
        elif target in UI_LIBRARIES and mine not in UI_MODULES:
            problems.append(f"line {line}: imports {name}; only labkit.plot and "
                            "labkit.widgets may import plotting or widget libraries")
        elif target.startswith("labkit.") and mine in LAYERS:
            problems += layer_problems(line, mine, target)
    for line, name in qualified_names(tree, imported):
        reason = nondeterminism(name)
        if reason:
            problems.append(f"line {line}: {name} {reason}")
    problems += unseeded_numpy(tree)
    return list(dict.fromkeys(problems))  # without repeats, in order


def layer_problems(line: int, mine: str, target: str) -> list[str]:
    """Why `mine` may not import `target`, as a list of zero or one messages."""
    if target not in LAYERS:
        return [f"line {line}: imports {target}, which is not in the layer table "
                "in tests/test_layers.py; add it there"]
    here, there = LAYERS[mine], LAYERS[target]
    if there > here:
        return [f"line {line}: {mine} (layer {here}) imports {target} "
                f"(layer {there}): imports must point down"]
    if there == here and here not in SIBLINGS_MAY_IMPORT_EACH_OTHER:
        return [f"line {line}: {mine} imports its sibling {target} (both layer "
                f"{here}); siblings meet through a narrow interface passed in"]
    return []


def topic_problems(line: int, module: str, name: str) -> list[str]:
    """Why topic module `module` may not import `name` from its own package (a
    zero- or one-message list): only the shared modules and its own parts."""
    package = component(module)
    shared = TOPIC_PACKAGES.get(package)
    topic = module.split(".")[2:3]          # [] for the package's __init__
    if shared is None or not topic:
        return []
    there = name.split(".")[2:3]            # [] for the package itself
    if there and (there[0] in shared or there == topic):
        return []
    return [f"line {line}: {module} imports {name}: inside {package} a topic "
            f"module imports only {', '.join(sorted(shared))} and its own parts, "
            f"never another topic or the package (move what topics share to "
            f"{' or '.join(sorted(shared))})"]


def unseeded_numpy(tree: ast.AST) -> list[str]:
    """Calls of `default_rng()` without a seed: it draws entropy from the OS."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not node.args and not node.keywords:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(
                func, "id", "")
            if name == "default_rng":
                problems.append(f"line {node.lineno}: default_rng() without a seed "
                                f"is irreproducible; {HOW_TO_RANDOM}")
    return problems


def labkit_modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module under labkit/."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


@pytest.mark.parametrize("module,path", labkit_modules(),
                         ids=[name for name, _ in labkit_modules()])
def test_module_obeys_the_layers(module, path):
    problems = violations(module, path.read_text(), path.name == "__init__.py")
    assert not problems, f"{path}:\n  " + "\n  ".join(problems)


# The checker checks itself: each rule must catch a small violating module.

@pytest.mark.parametrize("module,source,expected", [
    ("labkit.sim", "from labkit.raft import RaftCluster", "imports must point down"),
    ("labkit.sim", "from .node import Node", "imports must point down"),
    ("labkit.sim", "from labkit import raft", "imports must point down"),
    ("labkit.raft", "import labkit.paxos", "sibling"),
    ("labkit.check", "from labkit.queueing import mm1", "sibling"),
    ("labkit.raft", "from labkit import Simulator", "labkit package itself"),
    ("labkit.scenarios", "from labkit.real import EtcdCluster", "labkit.real"),
    ("labkit", "from labkit import real", "labkit.real"),
    ("labkit.raft", "from labkit.gossip import Gossip", "not in the layer table"),
    ("labkit.gossip", "x = 1", "not in the layer table"),
    ("labkit.net", "import plotly.graph_objects as go", "only labkit.plot"),
    ("labkit.scenarios", "from ipywidgets import Button", "only labkit.plot"),
    ("labkit", "import networkx", "only labkit.plot"),
    ("labkit.raft", "import time\nt = time.time()", "wall clock"),
    ("labkit.raft", "from time import perf_counter", "wall clock"),
    ("labkit.raft", "import time as clock\nclock.monotonic()", "wall clock"),
    ("labkit.raft", "from datetime import datetime\ndatetime.now()", "wall clock"),
    ("labkit.raft", "import datetime\ndatetime.date.today()", "wall clock"),
    ("labkit.raft", "import threading", "threads or processes"),
    ("labkit.raft", "import asyncio", "threads or processes"),
    ("labkit.raft", "import random\nrandom.seed(1)", "global random"),
    ("labkit.raft", "import random\nx = random.choice([1, 2])", "global random"),
    ("labkit.raft", "from random import random", "global random"),
    ("labkit.raft", "import numpy as np\nnp.random.rand(3)", "global random"),
    ("labkit.raft", "import numpy as np\nnp.random.default_rng()", "without a seed"),
    ("labkit.scenarios.raft", "from .paxos import leader_failover", "another topic"),
    ("labkit.scenarios.raft", "from labkit.scenarios.tour import halves",
     "another topic"),
    ("labkit.scenarios.raft", "from labkit.scenarios import ping", "another topic"),
    ("labkit.scenarios.raft", "from .. import scenarios", "another topic"),
    ("labkit.scenarios.common", "from .storage import FileSystem", "another topic"),
    ("labkit.scenarios.capstone.faults", "from ..raft import raft_cluster",
     "another topic"),
    ("labkit.plot.raft", "from .paxos import quorums", "another topic"),
    ("labkit.plot.capstone", "import labkit.plot.storage", "another topic"),
])
def test_checker_catches(module, source, expected):
    problems = violations(module, source)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("module,source", [
    ("labkit.raft", "from labkit.node import Node\nfrom labkit.errors import "
                    "Unavailable\nfrom labkit import sim, net"),
    ("labkit.metrics", "from labkit.errors import ConfigError"),
    ("labkit.widgets", "import ipywidgets\nfrom labkit import plot, scenarios"),
    ("labkit.plot", "import plotly.graph_objects as go\nimport networkx as nx"),
    ("labkit.raft", "import random\nrng = random.Random('7:n1')\nrng.random()"),
    ("labkit.raft", "import numpy as np\nrng = np.random.default_rng(7)"),
    ("labkit.raft", "def f(time):\n    return time.time"),  # a parameter named time
    ("labkit", "from labkit.raft import RaftCluster\nfrom labkit import plot"),
    ("labkit.real", "import subprocess, time\nimport plotly\nfrom labkit import raft\n"
                    "t = time.monotonic()"),
    ("labkit.scenarios.raft", "from .common import _window\nfrom labkit import raft"),
    ("labkit.scenarios.paxos", "from labkit.scenarios.common import cluster_result"),
    ("labkit.scenarios.capstone.scenario", "from .faults import CapstoneFault\n"
                                           "from ..common import _window"),
    ("labkit.plot.raft", "from .common import PALETTE\nfrom labkit.raft import ROLES"),
    ("labkit.scenarios", "from labkit.scenarios.raft import raft_kv\n"
                         "from labkit.scenarios.capstone import capstone"),
])
def test_checker_accepts(module, source):
    assert violations(module, source) == []


def test_a_topic_package_init_may_import_every_topic():
    source = "from .paxos import paxos_story\nfrom .capstone import SLO"
    assert violations("labkit.scenarios", source, is_package=True) == []
    # ... and a topic sub-package's __init__ its own parts only.
    assert violations("labkit.scenarios.capstone", "from .faults import CapstoneFault",
                      is_package=True) == []
    problems = violations("labkit.scenarios.capstone", "from ..raft import raft_kv",
                          is_package=True)
    assert any("another topic" in p for p in problems), problems


def test_relative_imports_resolve_inside_subpackages():
    # labkit/raft/log.py: `.` is labkit.raft, `..` is labkit.
    source = "from . import node\nfrom ..node import Node"
    assert violations("labkit.raft.log", source) == []
    problems = violations("labkit.raft.log", "from ..paxos import Acceptor")
    assert any("sibling" in p for p in problems), problems
