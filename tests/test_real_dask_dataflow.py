"""labkit.real.dask_pagerank against a real Dask cluster: PageRank on worker
processes on 127.0.0.1 gives the single-process answer and labkit's simulated
dataflow answer, also when a worker process holding persisted ranks is
SIGKILLed between iterations (its results are recomputed from Dask's task
graph), and every worker process is gone afterwards. Skips where Dask is not
installed."""

from __future__ import annotations

import pytest
from test_real_dask import _alive

from labkit import ConfigError
from labkit.dataflow import generate_graph, reference_pagerank, run_pagerank
from labkit.real import DASK_HINT, dask_pagerank

pytest.importorskip("distributed", reason=DASK_HINT)

EDGES = generate_graph(300, 6, seed=4)
ITERATIONS = 6


def _close(a: dict, b: dict) -> bool:
    return sorted(a) == sorted(b) and max(abs(a[k] - b[k]) for k in a) < 1e-9


@pytest.mark.parametrize("kill_at", [None, 3])
def test_dask_pagerank_equals_plain_python_and_labkit(kill_at):
    truth = reference_pagerank(EDGES, ITERATIONS)
    simulated = run_pagerank(EDGES, iterations=ITERATIONS, workers=4,
                             crash=(3, 20.0, "w2"))
    assert _close(simulated.ranks, truth)
    run = dask_pagerank(EDGES, iterations=ITERATIONS, workers=2, partitions=6,
                        kill_at=kill_at)
    assert _close(run.ranks, truth)
    assert run.tasks == 6 * 2 + ITERATIONS * 6 * 2
    if kill_at:
        # The killed worker held persisted ranks the next iteration needed:
        # they were computed again, and the nanny started a new process.
        assert run.recomputed >= 1
        assert len(run.worker_pids) == 3
    else:
        assert run.recomputed == 0
        assert len(run.worker_pids) == 2
    assert not [pid for pid in run.worker_pids if _alive(pid)]


def test_bad_arguments_are_refused_before_starting_anything():
    with pytest.raises(ConfigError, match="workers"):
        dask_pagerank(EDGES, workers=1, kill_at=2)
    with pytest.raises(ConfigError, match="kill_at"):
        dask_pagerank(EDGES, iterations=3, kill_at=4)
