"""labkit.real against a real Dask cluster: word count on worker processes on
127.0.0.1 gives the single-process answer and labkit's simulated MapReduce
answer, also when a worker process is SIGKILLed mid-job, and every worker
process is gone afterwards. Skips where Dask is not installed."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from labkit import ConfigError, mapreduce, scenarios
from labkit.real import DASK_HINT, dask_wordcount

pytest.importorskip("distributed", reason=DASK_HINT)

DOCS = scenarios.corpus()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def expected() -> Counter:
    truth = Counter(word for _, text in DOCS for word in text.split())
    simulated = mapreduce.run(scenarios.words, scenarios.total, DOCS, workers=4,
                              seed=1, crash={"w2": 50.0})
    assert simulated.output == truth
    return truth


@pytest.mark.parametrize("kill_one", [False, True])
def test_dask_counts_equal_plain_python_and_labkit(expected, kill_one):
    run = dask_wordcount(DOCS, workers=2, kill_one=kill_one)
    assert run.output == expected
    assert list(run.output) == sorted(run.output)
    assert run.maps == 40
    if kill_one:
        # The killed worker held finished map results the reduce still needed;
        # the scheduler computed them again, and the nanny started a new process.
        assert run.recomputed >= 1
        assert len(run.worker_pids) >= 3
    else:
        assert run.recomputed == 0
        assert len(run.worker_pids) == 2
    assert not [pid for pid in run.worker_pids if _alive(pid)]


def test_the_kill_costs_a_recomputation_even_when_maps_finish_at_once(expected):
    # With no pause every map can finish before a polling client gets to the
    # kill, as on a loaded machine: the kill must still fall while the reduce
    # needs the lost results, and the nanny's new worker must be counted.
    run = dask_wordcount(DOCS, workers=2, pause=0.0, kill_one=True)
    assert run.output == expected
    assert run.recomputed >= 1
    assert len(run.worker_pids) == 3


def test_bad_arguments_are_refused_before_starting_anything():
    with pytest.raises(ConfigError, match="workers"):
        dask_wordcount(DOCS, workers=1, kill_one=True)
    with pytest.raises(ConfigError, match="pause"):
        dask_wordcount(DOCS, pause=-1)
