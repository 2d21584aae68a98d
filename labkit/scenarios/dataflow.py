"""Scenarios of notebook 10, Spark-style dataflow: the web graph
(data/web-graph.txt), iterative PageRank as chained MapReduce jobs against a
cached dataflow, a worker killed mid-iteration, lineage length against
recovery time with and without checkpoints, and the playground. The engine
is `labkit.dataflow`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from labkit import dataflow
from labkit.errors import ConfigError, checked, require_int, require_items
from labkit.metrics import Metrics, Result

from .common import Runs, Table

WEB_GRAPH = Path(__file__).resolve().parents[2] / "data" / "web-graph.txt"
#: Zaharia et al., NSDI 2012 (anchors/FACTS.md): iterative jobs up to ~20x
#: faster than Hadoop MapReduce once the working set stays in memory.
RDD_PAPER: Mapping[str, float] = MappingProxyType({"iterative speed-up, up to": 20.0})


@checked
def web_graph() -> tuple[tuple[int, int], ...]:
    """The edges (src, dst) of data/web-graph.txt: 1,000 pages (data/README.md)."""
    return tuple(dataflow.read_graph(WEB_GRAPH))


def _steady(run: dataflow.PageRankRun) -> float:
    """Mean seconds of the iterations after the first two (the input loaded
    and the ranks grown to full-precision floats)."""
    later = run.iteration_times[3:] or run.iteration_times[1:]
    return sum(later) / len(later)


@checked
def pagerank_speedup(seed: int = 1, *, iterations: int = 10, workers: int = 8
                     ) -> Result:
    """PageRank on the web graph three ways: chained MapReduce jobs, the
    cached dataflow, and the dataflow without cache. data.runs (name ->
    PageRankRun) and data.rows (loading, steady iteration, speed-up)."""
    edges = web_graph()
    runs = {
        "chained MapReduce": dataflow.run_pagerank(
            edges, mode="chained", iterations=iterations, workers=workers, seed=seed),
        "dataflow, cached": dataflow.run_pagerank(
            edges, iterations=iterations, workers=workers, seed=seed),
        "dataflow, no cache": dataflow.run_pagerank(
            edges, iterations=iterations, workers=workers, seed=seed, cache=False)}
    base = _steady(runs["chained MapReduce"])
    rows = [{"program": name, "loading (s)": run.iteration_times[0],
             "steady iteration (s)": _steady(run),
             "speed-up per iteration": base / _steady(run),
             "total (s)": run.end_time} for name, run in runs.items()]
    return Result("pagerank_speedup", {"iterations": iterations, "workers": workers},
                  seed, Metrics(), data=Runs(runs=runs, rows=rows))


@checked
def pagerank_failure(seed: int = 1, *, iterations: int = 10, workers: int = 8,
                     at_iteration: int = 6, worker: str = "w3") -> Result:
    """The cached dataflow, healthy and with `worker` killed halfway through
    iteration `at_iteration` (it stays down). data.runs and data.rows (one
    row per iteration: seconds healthy and with the failure)."""
    at_iteration = require_int("at_iteration", at_iteration, minimum=1)
    if at_iteration > iterations:
        raise ConfigError(f"at_iteration must be at most iterations ({iterations}), "
                          f"got {at_iteration}")
    edges = web_graph()
    healthy = dataflow.run_pagerank(edges, iterations=iterations, workers=workers,
                                    seed=seed)
    half = healthy.iteration_times[at_iteration] / 2
    failed = dataflow.run_pagerank(edges, iterations=iterations, workers=workers,
                                   seed=seed, crash=(at_iteration, half, worker))
    rows = [{"iteration": i, "healthy (s)": h, "with the failure (s)": f}
            for i, (h, f) in enumerate(zip(healthy.iteration_times,
                                           failed.iteration_times, strict=True))]
    return Result("pagerank_failure", {"iterations": iterations, "workers": workers,
                                       "at_iteration": at_iteration, "worker": worker},
                  seed, Metrics(), data=Runs(runs={"healthy": healthy,
                                                   f"{worker} killed": failed},
                                             rows=rows))


@checked
def lineage_recovery(seed: int = 1, *, lengths: Sequence[int] = (1, 2, 4, 6, 8, 10),
                     checkpoint_every: int = 3, workers: int = 8,
                     worker: str = "w3") -> Result:
    """For each lineage length L: run L iterations of the cached dataflow,
    kill `worker` as iteration L + 1 starts, and measure that iteration's
    extra seconds over a healthy run (the recovery), without and with a
    checkpoint of the ranks every `checkpoint_every` iterations. data.rows."""
    lengths = [require_int("lineage length", n, minimum=1)
               for n in require_items("lengths", lengths, "lineage length")]
    edges, rows = web_graph(), []
    longest = max(lengths) + 1
    options = {"without checkpoints": None, "with checkpoints": checkpoint_every}
    healthy = {name: dataflow.run_pagerank(edges, iterations=longest,
                                           workers=workers, seed=seed,
                                           checkpoint_every=every)
               for name, every in options.items()}
    for n in lengths:
        row = {"lineage length": n}
        for name, every in options.items():
            run = dataflow.run_pagerank(edges, iterations=n + 1, workers=workers,
                                        seed=seed, checkpoint_every=every,
                                        crash=(n + 1, 0.0, worker))
            row[f"recovery (s), {name}"] = (run.iteration_times[n + 1]
                                            - healthy[name].iteration_times[n + 1])
            row[f"rebuilt, {name}"] = len(run.rebuilt)
        rows.append(row)
    return Result("lineage_recovery", {"lengths": lengths, "workers": workers,
                                       "checkpoint_every": checkpoint_every,
                                       "worker": worker},
                  seed, Metrics(), data=Table(rows=rows))


@checked
def dataflow_playground(seed: int = 1, *, pages: int = 120, iterations: int = 5,
                        workers: int = 4, cache: bool = True,
                        checkpoint_every: int = 0, kill_at: int = 0,
                        worker: str = "w2") -> dataflow.PageRankRun:
    """PageRank of a generated graph of `pages` pages on the cached (or not)
    dataflow; `worker` is killed as iteration `kill_at` starts (0: never);
    ranks are checkpointed every `checkpoint_every` iterations (0: never)."""
    kill_at = require_int("kill_at", kill_at, minimum=0)
    every = require_int("checkpoint_every", checkpoint_every, minimum=0)
    if kill_at > iterations:
        raise ConfigError(f"kill_at must be at most iterations ({iterations}), "
                          f"got {kill_at}")
    run = dataflow.run_pagerank(
        dataflow.generate_graph(pages, 4, seed=seed), iterations=iterations,
        workers=workers, seed=seed, cache=cache, checkpoint_every=every or None,
        crash=(kill_at, 0.0, worker) if kill_at else None)
    said = (f"{run.end_time:.0f} s · {len(run.rebuilt)} partitions rebuilt"
            + (f" after {worker} died" if kill_at else ""))
    return dataclasses.replace(run, data={**run.data, "headline": said})
