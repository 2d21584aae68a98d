"""The experiment: iterative PageRank two ways on the same simulated cluster.

`chained`: one MapReduce-style job per iteration, as on Hadoop. Each job
reads the previous iteration's (page, (rank, out-links)) records from
replicated stable storage, shuffles both the rank contributions and the link
lists, and writes the new records back to stable storage (a checkpoint every
iteration), paying MapReduce's one-second task startup.

`dataflow`: Spark's version (the RDD paper's §3.2.2). The link lists are
hash-partitioned once and cached; each iteration joins them with the ranks,
which are partitioned the same way, so the join is narrow and only the
contributions are shuffled; tasks start in 50 ms on long-lived executors.
`cache=False` recomputes the link lists from the input's shuffle every
iteration; `checkpoint_every=k` writes the ranks to stable storage every k
iterations, which bounds how far back a recovery must go.

Ranks follow the unnormalised formula of the paper's example:
rank(v) = (1 - d) + d * sum over u -> v of rank(u) / outdegree(u), from 1.0.
The generated graphs give every page an in-link and an out-link (a ring plus
random links), so no page drops out of the sum.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Result

from .cluster import DataflowCluster
from .scheduler import Cost

DAMPING = 0.85
MODES = ("dataflow", "chained")
#: Task startup of the two engines: a fresh JVM per Hadoop task, a thread on a
#: long-lived executor in Spark.
STARTUP = {"chained": 1.0, "dataflow": 0.05}


def generate_graph(pages: int = 1000, links: int = 8, *, seed: int = 1
                   ) -> list[tuple[int, int]]:
    """Directed edges (src, dst) among pages 0..pages-1: a ring i -> i+1 plus
    random links drawn with preference for low page numbers (a few popular
    pages), about `links` out-links per page, no self-links or repeats."""
    pages = require_int("pages", pages, minimum=2)
    links = require_int("links", links, minimum=1)
    rng = random.Random(f"{seed}:dataflow.graph")
    edges = []
    for src in range(pages):
        targets = {(src + 1) % pages}
        for _ in range(links - 1):
            dst = int(pages * rng.random() ** 2)
            if dst != src:
                targets.add(dst)
        edges += [(src, dst) for dst in sorted(targets)]
    return edges


def write_graph(path: str | Path, edges: Sequence[tuple[int, int]]) -> None:
    """One "src dst" line per edge."""
    Path(path).write_text("".join(f"{a} {b}\n" for a, b in edges))


def read_graph(path: str | Path) -> list[tuple[int, int]]:
    """The edges of a file written by `write_graph`."""
    edges = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"{path} line {number}: expected 'src dst', got {line!r}")
        edges.append((int(parts[0]), int(parts[1])))
    return edges


def _edge_list(edges: Any) -> list[tuple[Any, Any]]:
    """`edges` as a list of (source, target) pairs, or a ConfigError saying
    what is wrong with it."""
    if isinstance(edges, str | bytes) or not isinstance(edges, Sequence):
        raise ConfigError(f"edges must be a list of (source, target) pairs, "
                          f"got {edges!r:.80}")
    if not edges:
        raise ConfigError("edges is empty: PageRank needs a graph")
    for edge in edges:
        if not isinstance(edge, tuple | list) or len(edge) != 2:
            raise ConfigError(f"edges must be (source, target) pairs, got {edge!r}")
    return [tuple(edge) for edge in edges]


def reference_pagerank(edges: Sequence[tuple[int, int]], iterations: int
                       ) -> dict[int, float]:
    """Plain single-process PageRank by the same formula (page -> rank)."""
    edges = _edge_list(edges)
    iterations = require_int("iterations", iterations, minimum=0)
    out: dict[int, list[int]] = {}
    for a, b in edges:
        out.setdefault(a, []).append(b)
    ranks = dict.fromkeys(out, 1.0)
    for _ in range(iterations):
        sums: dict[int, float] = {}
        for page, targets in out.items():
            for dst in targets:
                sums[dst] = sums.get(dst, 0.0) + ranks[page] / len(targets)
        ranks = {p: (1 - DAMPING) + DAMPING * s for p, s in sums.items()}
    return dict(sorted(ranks.items()))


# -- the user functions (named, so results name them) -----------------------------
def as_link(edge: tuple[int, int]) -> tuple[int, tuple[int, ...]]:
    return edge[0], (edge[1],)


def concat(a: tuple, b: tuple) -> tuple:
    return a + b


def initial_rank(_links: tuple) -> float:
    return 1.0


def spread(record: tuple[int, tuple[tuple[int, ...], float]]) -> list:
    """Dataflow: a page's rank shared among its out-links."""
    _page, (targets, rank) = record
    return [(dst, rank / len(targets)) for dst in targets]


def add(a: float, b: float) -> float:
    return a + b


def damp(total: float) -> float:
    return (1 - DAMPING) + DAMPING * total


def start_record(targets: tuple) -> tuple[float, tuple]:
    return 1.0, targets


def emit(record: tuple[int, tuple[float, tuple[int, ...]]]) -> list:
    """Chained MapReduce: the contributions, and the page's own link list so
    the next job still has it."""
    page, (rank, targets) = record
    return [(page, (0.0, targets))] + [(dst, (rank / len(targets), None))
                                       for dst in targets]


def merge(a: tuple, b: tuple) -> tuple:
    return a[0] + b[0], a[1] or b[1]


def finish(value: tuple) -> tuple[float, tuple]:
    return damp(value[0]), value[1]


# -- the two programs ------------------------------------------------------------------
def chained_pagerank(cluster: DataflowCluster, edges: Sequence, iterations: int,
                     partitions: int) -> list[tuple[int, float]]:
    """One job per iteration, every iteration's records materialised."""
    state = (cluster.parallelize(edges, partitions, name="edges").map(as_link)
             .reduce_by_key(concat, partitions, name="links")
             .map_values(start_record, name="state 0").checkpoint())
    state.count()
    for i in range(1, iterations + 1):
        state = (state.flat_map(emit, name=f"emit {i}")
                 .reduce_by_key(merge, partitions, name=f"merged {i}")
                 .map_values(finish, name=f"state {i}").checkpoint())
        state.count()
    return [(page, rank) for page, (rank, _) in state.collect()]


def dataflow_pagerank(cluster: DataflowCluster, edges: Sequence, iterations: int,
                      partitions: int, *, cache: bool = True,
                      checkpoint_every: int | None = None,
                      crash: tuple[int, float, str] | None = None
                      ) -> list[tuple[int, float]]:
    """Spark's PageRank: cached, co-partitioned links joined with the ranks.
    crash = (iteration, seconds into it, worker)."""
    links = (cluster.parallelize(edges, partitions, name="edges").map(as_link)
             .reduce_by_key(concat, partitions, name="links"))
    ranks = links.map_values(initial_rank, name="ranks 0")
    if cache:
        links.cache()
        ranks.cache()
    ranks.count()
    for i in range(1, iterations + 1):
        contribs = links.join(ranks, name=f"joined {i}").flat_map(
            spread, name=f"contribs {i}")
        ranks = contribs.reduce_by_key(add, partitions, name=f"sums {i}").map_values(
            damp, name=f"ranks {i}")
        if cache:
            ranks.cache()
        if checkpoint_every and i % checkpoint_every == 0:
            ranks.checkpoint()
        if crash is not None and crash[0] == i:
            cluster.sim.at(cluster.now + crash[1], cluster.kill, crash[2])
        ranks.count()
    return ranks.collect()


class PageRankRun(Result):
    """One PageRank run: the ranks, the time of each iteration and what
    recovery rebuilt."""

    @property
    def ranks(self) -> dict[int, float]:
        return self.data["ranks"]

    @property
    def iteration_times(self) -> list[float]:
        """Simulated seconds of each iteration's job (index 0: loading)."""
        return self.data["iteration_times"]

    @property
    def rebuilt(self) -> list[tuple]:
        """Products (cached partitions, shuffle outputs) rebuilt after a loss."""
        return [p for run in self.data["journal"] for p in run.rebuilt]


def run_pagerank(edges: Sequence[tuple[int, int]], *, mode: str = "dataflow",
                 iterations: int = 10, workers: int = 8,
                 partitions: int | None = None, seed: int = 1, cache: bool = True,
                 checkpoint_every: int | None = None,
                 crash: tuple[int, float, str] | None = None,
                 cost: Mapping[str, Any] | None = None) -> PageRankRun:
    """PageRank of `edges` on a simulated cluster, mode "dataflow" or
    "chained". crash = (iteration, seconds into it, worker): kill that worker
    then (it stays down; dataflow only). cost: Cost fields overriding the
    defaults (startup defaults to STARTUP[mode])."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    iterations = require_int("iterations", iterations, minimum=1)
    workers = require_int("workers", workers, minimum=1)
    edges = _edge_list(edges)
    if partitions is None:
        partitions = min(2 * workers, len(edges))
    partitions = require_int("partitions", partitions, minimum=1)
    if not isinstance(cache, bool):
        raise ConfigError(f"cache must be True or False, got {cache!r}")
    if checkpoint_every is not None:
        require_int("checkpoint_every", checkpoint_every, minimum=1)
    if crash is not None:
        if mode != "dataflow" or not (isinstance(crash, tuple) and len(crash) == 3):
            raise ConfigError(f"crash must be (iteration, seconds, worker) in "
                              f"dataflow mode, got {crash!r} in {mode} mode")
        require_int("crash iteration", crash[0], minimum=1, maximum=iterations)
        require_number("crash seconds", crash[1], minimum=0.0)
        if crash[2] not in [f"w{i}" for i in range(1, workers + 1)]:
            raise ConfigError(f"crash worker must be one of w1..w{workers}, "
                              f"got {crash[2]!r}")
    sources, targets = {s for s, _ in edges}, {d for _, d in edges}
    if sources != targets:
        lonely = sorted(sources ^ targets)[:5]
        raise ConfigError(f"every page needs a link in and a link out, but "
                          f"{lonely} lack one: a page with no in-link drops out "
                          "of the ranks, and one with no out-link leaks them")
    if cost is not None and not isinstance(cost, Mapping):
        raise ConfigError(f"cost must be a dict of Cost fields, got {cost!r}")
    settings = {"startup": STARTUP[mode], **dict(cost or {})}
    try:
        model = Cost(**settings)
    except TypeError as exc:
        raise ConfigError(f"cost: unknown field ({exc}); fields are scale, disk, "
                          f"network, cpu, memory, startup") from None
    cluster = DataflowCluster(workers, seed=seed, cost=model)
    if mode == "chained":
        ranks = chained_pagerank(cluster, edges, iterations, partitions)
    else:
        ranks = dataflow_pagerank(cluster, edges, iterations, partitions,
                                  cache=cache, checkpoint_every=checkpoint_every,
                                  crash=crash)
    base = cluster.result("pagerank", mode=mode, iterations=iterations,
                          workers=workers, partitions=partitions, cache=cache,
                          checkpoint_every=checkpoint_every, crash=crash,
                          cost=settings)
    times = [end - start for _, _, start, end in cluster.jobs[:iterations + 1]]
    return PageRankRun(scenario=base.scenario, params=base.params, seed=base.seed,
                       metrics=base.metrics, trace=base.trace,
                       end_time=base.end_time,
                       data={**base.data, "ranks": dict(sorted(ranks)),
                             "iteration_times": times,
                             "lost": sorted(cluster.driver.lost, key=repr),
                             "graph": [_node(d, cluster) for d in
                                       cluster_lineage(cluster)]})


def cluster_lineage(cluster: DataflowCluster) -> list:
    """Every dataset of the cluster's last job, parents first."""
    last = cluster.driver.last
    return [] if last is None else last.lineage()


def _node(ds, cluster: DataflowCluster) -> dict[str, Any]:
    return {"id": ds.id, "name": ds.name, "op": ds.op, "partitions": ds.partitions,
            "cached": ds.cached, "stable": cluster.is_stable(ds),
            "parents": [(d.parent.id, d.shuffle) for d in ds.deps]}
