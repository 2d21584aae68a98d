"""labkit.dataflow: PageRank on the dataflow equals an independent power
iteration (numpy, written here) on random graphs with random crashes; after a
crash the scheduler rebuilds exactly the lost products the next job needs
(the expected set computed here from the lineage and the placement); stages
are cut at shuffles and only there; runs are deterministic; bad input gets a
clear error."""

from __future__ import annotations

import operator
import random
import re

import numpy as np
import pytest

from labkit import ConfigError, Unavailable
from labkit.dataflow import (
    DataflowCluster,
    TaskError,
    generate_graph,
    plan,
    read_graph,
    reference_pagerank,
    run_pagerank,
)
from labkit.scenarios.dataflow import WEB_GRAPH, dataflow_playground


def numpy_pagerank(edges, iterations, damping=0.85):
    """Power iteration with arrays: r <- (1 - d) + d * A^T (r / outdegree)."""
    src = np.array([a for a, _ in edges])
    dst = np.array([b for _, b in edges])
    n = int(max(src.max(), dst.max())) + 1
    out = np.bincount(src, minlength=n).astype(float)
    r = np.ones(n)
    for _ in range(iterations):
        r = (1 - damping) + damping * np.bincount(dst, weights=r[src] / out[src],
                                                  minlength=n)
    return r


def random_graph(rng, pages, extra):
    """A ring (every page has an in- and an out-link) plus random links."""
    edges = {(i, (i + 1) % pages) for i in range(pages)}
    while len(edges) < pages + extra:
        a, b = rng.randrange(pages), rng.randrange(pages)
        if a != b:
            edges.add((a, b))
    return sorted(edges)


def assert_ranks(run, edges, iterations):
    expected = numpy_pagerank(edges, iterations)
    assert sorted(run.ranks) == list(range(len(expected)))
    got = np.array([run.ranks[p] for p in range(len(expected))])
    assert np.max(np.abs(got - expected)) < 1e-9, run.seed


@pytest.mark.parametrize("seed", range(12))
def test_pagerank_equals_power_iteration_with_random_crashes(seed):
    rng = random.Random(seed)
    edges = random_graph(rng, rng.randrange(20, 60), rng.randrange(10, 120))
    iterations, workers = rng.randrange(1, 5), rng.randrange(2, 5)
    crash = (rng.randrange(1, iterations + 1), rng.choice([0.0, 5.0, 40.0, 200.0]),
             f"w{rng.randrange(1, workers + 1)}")
    every = rng.choice([None, 1, 2])
    runs = [run_pagerank(edges, iterations=iterations, workers=workers, seed=seed,
                         cache=rng.random() < 0.7, checkpoint_every=every,
                         crash=crash),
            run_pagerank(edges, mode="chained", iterations=iterations,
                         workers=workers, seed=seed)]
    for run in runs:
        assert_ranks(run, edges, iterations)


def test_the_committed_graph_is_the_generator_output_and_fits_pagerank():
    edges = read_graph(WEB_GRAPH)
    assert edges == generate_graph(1000, 8, seed=2012)
    assert {a for a, _ in edges} == {b for _, b in edges} == set(range(1000))
    assert len(edges) == len(set(edges)) and all(a != b for a, b in edges)
    assert WEB_GRAPH.stat().st_size < 300_000


# -- recovery rebuilds exactly what is lost and needed ----------------------------

def build(cluster, rng):
    """input -> pairs -> (shuffle) sums, cached -> (shuffle) regrouped, cached
    -> scaled: two shuffles and two cached datasets."""
    records = [(rng.randrange(30), rng.randrange(100)) for _ in range(300)]
    sums = (cluster.parallelize(records, 6).map(lambda r: (r[0] % 12, r[1]))
            .reduce_by_key(lambda a, b: a + b, 4).cache())
    grouped = (sums.map(lambda kv: (kv[1] % 5, kv[0]))
               .reduce_by_key(lambda a, b: a + b, 3).cache())
    return records, sums, grouped, grouped.map_values(lambda v: 2 * v)


def expected_rebuilds(final, cached, outputs, dead):
    """Walk the lineage from every partition of `final`: a cached partition
    still on a live worker stops the walk; one that was on the dead worker is
    rebuilt and its own inputs walked; a shuffle needs every map output, and
    those on the dead worker are rebuilt from their map partition."""
    rebuilt = set()

    def need(ds, p):
        if ds.cached and (ds.id, p) in cached:
            if cached[(ds.id, p)] != dead:
                return
            if ("cache", ds.id, p) in rebuilt:
                return
            rebuilt.add(("cache", ds.id, p))
        for parent, shuffle in ds.deps:
            if shuffle is None:
                need(parent, p)
                continue
            for m in range(parent.partitions):
                if outputs[(shuffle, m)] == dead and ("shuffle", shuffle, m) \
                        not in rebuilt:
                    rebuilt.add(("shuffle", shuffle, m))
                    need(parent, m)

    for p in range(final.partitions):
        need(final, p)
    return rebuilt


@pytest.mark.parametrize("seed", range(10))
def test_a_crash_rebuilds_exactly_the_lost_products_the_job_needs(seed):
    rng = random.Random(seed)
    cluster = DataflowCluster(4, seed=seed)
    records, sums, grouped, final = build(cluster, rng)
    truth = {}
    for k, v in records:
        truth[k % 12] = truth.get(k % 12, 0) + v
    regrouped = {}
    for k, v in truth.items():
        regrouped[v % 5] = regrouped.get(v % 5, 0) + k
    if rng.random() < 0.5:
        sums.count()            # a job that caches sums but not grouped first
    assert sorted(final.collect()) == sorted((k, 2 * v) for k, v in regrouped.items())
    cached, outputs = dict(cluster.driver.cached), dict(cluster.driver.outputs)
    dead = f"w{rng.randrange(1, 5)}"
    expected = expected_rebuilds(final, cached, outputs, dead)
    cluster.kill(dead)
    jobs = len(cluster.jobs)
    assert sorted(final.collect()) == sorted((k, 2 * v) for k, v in regrouped.items())
    rebuilt = [p for run in cluster.journal if run.job == jobs for p in run.rebuilt]
    assert sorted(rebuilt) == sorted(expected), (seed, dead)
    tasks = [run for run in cluster.journal
             if run.job == jobs and run.outcome == "done"]
    assert len(tasks) == final.partitions + sum(p[0] == "shuffle" for p in expected)
    assert all(run.worker != dead for run in cluster.journal if run.job == jobs)
    # a third run needs nothing rebuilt: everything needed lives again
    final.count()
    assert not [p for run in cluster.journal if run.job == jobs + 1
                for p in run.rebuilt]


def test_a_worker_killed_mid_job_fails_its_task_and_the_job_still_answers():
    cluster = DataflowCluster(3, seed=4)
    data = cluster.parallelize(list(range(200)), 6)
    keyed = data.map(lambda x: (x % 7, x)).reduce_by_key(lambda a, b: a + b)
    cluster.sim.at(0.5, cluster.kill, "w2")
    cluster.sim.at(30.0, cluster.restart, "w2")
    assert dict(keyed.collect()) == {k: sum(range(k, 200, 7)) for k in range(7)}
    outcomes = [run.outcome for run in cluster.journal if run.worker == "w2"]
    assert outcomes[0] == "failed"
    every_rebuilt = [p for run in cluster.journal for p in run.rebuilt]
    assert len(every_rebuilt) == len(set(every_rebuilt))


def test_after_a_crash_pagerank_rebuilds_only_lost_products_and_recovers_slower():
    edges = generate_graph(200, 5, seed=3)
    healthy = run_pagerank(edges, iterations=6, workers=4)
    failed = run_pagerank(edges, iterations=6, workers=4, crash=(4, 1.0, "w2"))
    lost = {p for run in failed.data["journal"] if run.job < 4 and run.worker == "w2"
            for p in run.products if p[0] != "stable"}
    assert failed.rebuilt and set(failed.rebuilt) <= lost
    assert len(failed.rebuilt) == len(set(failed.rebuilt))
    assert failed.iteration_times[4] > healthy.iteration_times[4]
    assert failed.iteration_times[:4] == healthy.iteration_times[:4]


def test_checkpoints_shorten_recovery_of_a_long_lineage():
    edges = generate_graph(200, 5, seed=3)
    rebuilt = {every: len(run_pagerank(edges, iterations=9, workers=4,
                                       checkpoint_every=every,
                                       crash=(9, 0.0, "w3")).rebuilt)
               for every in (None, 4)}
    assert rebuilt[4] < rebuilt[None]


def test_checkpoint_after_cache_writes_the_cached_partitions_on_the_next_job():
    # It did nothing: the next job read the cached copies and never wrote them.
    cluster = DataflowCluster(2, seed=1)
    squares = cluster.parallelize(list(range(20)), 4).map(lambda x: x * x).cache()
    assert squares.count() == 20 and not cluster.is_stable(squares)
    squares.checkpoint()
    assert squares.collect() == [x * x for x in range(20)]
    assert cluster.is_stable(squares)
    roots = squares.map(abs, name="abs")
    assert names(cluster.stages(roots)) == {"result": ({"abs", squares.name}, set())}


# -- stages --------------------------------------------------------------------------

def names(stages):
    return {s.name: (set(s.datasets), set(s.parents)) for s in stages}


def test_keys_python_treats_as_equal_meet_in_one_partition():
    # Decimal(1) == 1 and Fraction(1, 2) == 0.5 are one dict key each, but
    # Decimal is no numbers.Real: partitioned by its repr it was reduced apart
    # and missed its join partner. Any two equal keys must share a partition,
    # as a plain dict, the test's own reference, merges them.
    from decimal import Decimal
    from fractions import Fraction

    pairs = [(1, "a"), (Decimal(1), "b"), (complex(1, 0), "c"), (0.5, "d"),
             (Fraction(1, 2), "e"), (Decimal("0.5"), "f"), (Decimal("0.1"), "g")]
    expected: dict = {}
    for key, value in pairs:
        expected[key] = expected.get(key, "") + value
    cluster = DataflowCluster(2, seed=1)
    merged = cluster.parallelize(pairs, 3).reduce_by_key(lambda a, b: a + b, 4)
    assert dict(merged.collect()) == expected
    assert sorted(v for _, v in merged.collect()) == ["abc", "def", "g"]
    other = cluster.parallelize([(1, "x")], 1)
    joined = cluster.parallelize(pairs[:2], 1).join(other, 4)
    assert sorted(joined.collect(), key=repr) == [(1, ("a", "x")), (1, ("b", "x"))]


def test_stages_keep_datasets_that_share_a_name_apart():
    # Stages listed datasets by name, so the second "input" (parallelize's
    # default name) was taken for the first and its shuffle stage went missing.
    cluster = DataflowCluster(2, seed=1)
    left, right = (cluster.parallelize([(i % 3, i) for i in range(12)], 2)
                   .reduce_by_key(max, 2) for _ in range(2))
    joined = left.join(right, 2)
    shuffles = {f"shuffle {d.deps[0].shuffle}" for d in (left, right)}
    stages = {s.name: s for s in cluster.stages(joined)}
    assert set(stages) == {*shuffles, "result"}
    assert set(stages["result"].parents) == shuffles
    assert all(stages[s].datasets == ("input",) for s in shuffles)
    assert sorted(joined.collect()) == [(k, (9 + k, 9 + k)) for k in range(3)]


def test_stages_are_cut_at_shuffles_and_only_there():
    cluster = DataflowCluster(2, seed=1)
    src = cluster.parallelize([(i % 3, i) for i in range(30)], 4, name="src")
    pairs = src.map(lambda kv: kv, name="pairs")
    summed = pairs.reduce_by_key(lambda a, b: a + b, 4, name="summed")
    scaled = summed.map_values(lambda v: v * 2, name="scaled").filter(
        lambda kv: kv[1] > 0, name="kept")
    s1 = summed.deps[0].shuffle
    assert names(cluster.stages(scaled)) == {
        f"shuffle {s1}": ({"pairs", "src"}, set()),
        "result": ({"kept", "scaled", "summed"}, {f"shuffle {s1}"})}
    # co-partitioned join: narrow on both sides, no new stage
    other = pairs.reduce_by_key(max, 4, name="maxed")
    joined = summed.join(other, 4, name="joined")
    s2 = other.deps[0].shuffle
    assert all(d.shuffle is None for d in joined.deps)
    assert names(cluster.stages(joined)) == {
        f"shuffle {s1}": ({"pairs", "src"}, set()),
        f"shuffle {s2}": ({"pairs", "src"}, set()),
        "result": ({"joined", "summed", "maxed"}, {f"shuffle {s1}", f"shuffle {s2}"})}
    # an unpartitioned side, or another partition count, is shuffled
    loose = summed.join(pairs, 4, name="loose")
    assert [d.shuffle is None for d in loose.deps] == [True, False]
    assert len(cluster.stages(loose)) == 3
    assert all(d.shuffle is not None for d in summed.join(other, 3).deps)
    # a completed checkpoint cuts the lineage: no parent stage is left
    summed.checkpoint().count()
    assert names(cluster.stages(scaled)) == {
        "result": ({"kept", "scaled", "summed"}, set())}


# -- determinism ---------------------------------------------------------------------

def test_same_seed_same_run_and_other_seeds_place_differently():
    edges = generate_graph(100, 4, seed=1)
    a, b = (run_pagerank(edges, iterations=3, workers=3, seed=5,
                         crash=(2, 10.0, "w1")) for _ in range(2))
    assert a.fingerprint == b.fingerprint and a.ranks == b.ranks
    c = run_pagerank(edges, iterations=3, workers=3, seed=6, crash=(2, 10.0, "w1"))
    assert c.ranks == pytest.approx(a.ranks, abs=1e-12)
    assert c.fingerprint != a.fingerprint
    assert dataflow_playground(seed=2).fingerprint == dataflow_playground(
        seed=2).fingerprint


# -- bad input -----------------------------------------------------------------------

def test_bad_input_gets_a_clear_error():
    cluster = DataflowCluster(2)
    data = cluster.parallelize([(1, 2), (3, 4)], 2)
    with pytest.raises(TypeError, match="map needs a function"):
        data.map(42)
    with pytest.raises(TypeError, match="reduce_by_key needs a function"):
        data.reduce_by_key("sum")
    with pytest.raises(TypeError, match="join needs a Dataset of the same cluster"):
        data.join(DataflowCluster(2).parallelize([(1, 1)], 1))
    with pytest.raises(ConfigError, match="empty"):
        cluster.parallelize([])
    with pytest.raises(ConfigError, match="partitions must be at most"):
        cluster.parallelize([1, 2], 3)
    with pytest.raises(ConfigError, match="partitions must be an int"):
        data.reduce_by_key(max, 0.5)
    with pytest.raises(TaskError,
                       match=r"partition 0: .*ZeroDivisionError.* on \(1, 2\)"):
        data.map(lambda kv: (kv[0] // 0, kv[1])).reduce_by_key(max).count()
    assert data.count() == 2                # an error leaves the cluster usable
    with pytest.raises(TaskError, match="needs \\(key, value\\) pairs"):
        cluster.parallelize([1, 2], 1).reduce_by_key(max).count()
    with pytest.raises(TaskError, match="must return an iterable"):
        data.flat_map(lambda kv: 5).count()
    with pytest.raises(ConfigError, match="driver cannot be killed"):
        cluster.kill("driver")
    with pytest.raises(ConfigError, match="action must be"):
        cluster.run_job(data, "save")
    looped = data.map(lambda kv: kv)
    looped.deps = (looped.deps[0]._replace(parent=looped),)
    with pytest.raises(ConfigError, match="cycle"):
        looped.count()
    with pytest.raises(ConfigError, match="mode must be one of"):
        run_pagerank([(0, 1), (1, 0)], mode="hadoop")
    with pytest.raises(ConfigError, match="crash worker"):
        run_pagerank([(0, 1), (1, 0)], workers=2, crash=(1, 0.0, "w9"))
    with pytest.raises(ConfigError, match="cost: unknown field"):
        run_pagerank([(0, 1), (1, 0)], cost={"disks": 1.0})


def test_a_job_with_every_worker_down_is_unavailable_and_the_cluster_recovers():
    cluster = DataflowCluster(2)
    data = cluster.parallelize(list(range(10)), 2)
    cluster.kill("w1")
    cluster.kill("w2")
    with pytest.raises(Unavailable, match="every worker is down"):
        data.count()
    cluster.restart("w2")
    assert data.count() == 10


def test_a_job_waits_out_every_worker_down_when_a_restart_is_scheduled():
    # It gave up at the moment the last worker died ("every worker is down"),
    # and the restart still on the agenda then failed the next job as well.
    cluster = DataflowCluster(2)
    data = cluster.parallelize(list(range(10)), 2)
    for worker in cluster.workers:
        cluster.sim.at(0.001, cluster.kill, worker)
    cluster.sim.at(1.0, cluster.restart, "w1")
    assert data.count() == 10
    (_, _, start, end), = cluster.jobs
    assert start == 0.0 and end > 1.0                  # finished after the restart
    assert {run.worker for run in cluster.journal if run.outcome == "done"} == {"w1"}


# -- the views and the playground ------------------------------------------------------

def test_stage_graph_colours_every_rebuilt_partition_red_and_only_those():
    from labkit.plot.dataflow import stage_graph

    run = dataflow_playground(kill_at=3)
    writer = {shuffle: parent for node in run.data["graph"]
              for parent, shuffle in node["parents"] if shuffle is not None}
    rebuilt = {(writer[a], p) if kind == "shuffle" else (a, p)
               for kind, a, p in run.rebuilt}
    fig = stage_graph(run)
    red = next(t for t in fig.data if t.name == "rebuilt")
    assert rebuilt and len(red.x) == len(rebuilt)
    total = sum(node["partitions"] for node in run.data["graph"])
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == total


def test_the_playground_answers_every_control_and_never_raises():
    # How fast it answers is bench/widgets.py's to measure, not a test's.
    from labkit.widgets import dataflow_playground as playground

    widget = playground()
    assert "partitions rebuilt after w2 died" in widget.status.value
    moves = {"kill_at": [0, 5, 1], "checkpoint_every": [1, 5, 0],
             "cache": [False, True],
             "worker": ["w4", "w1"], "seed": [9, 0]}
    for name, values in moves.items():
        for value in values:
            widget.controls[name].value = value
            assert "⚠" not in widget.status.value and widget.result is not None
    assert widget.result.params["crash"] == (1, 0.0, "w1")


# -- what an independent audit found -------------------------------------------------

def test_equal_keys_of_different_types_meet_in_one_partition():
    # 1, 1.0 and numpy's 1 are one dict key; partitioning by repr kept them apart.
    cluster = DataflowCluster(2, seed=1)
    pairs = cluster.parallelize([(1, 1), (np.int64(1), 1), (1.0, 1)], 1)
    assert pairs.reduce_by_key(operator.add, 4).collect() == [(1, 3)]
    right = cluster.parallelize([(1.0, "b")], 1)
    assert cluster.parallelize([(1, "a")], 1).join(right, 4).collect() == \
        [(1, ("a", "b"))]


@pytest.mark.parametrize("edges, lonely", [
    ([(0, 1), (1, 0), (2, 0)], "[2]"),        # page 2: no link in (it was dropped)
    ([(0, 1), (1, 2)], "[0, 2]"),             # 0: none in; 2: none out (KeyError)
])
def test_pagerank_refuses_a_page_without_a_link_in_or_out(edges, lonely):
    with pytest.raises(ConfigError, match=re.escape(f"{lonely} lack one")):
        run_pagerank(edges, iterations=2)


RING = [(0, 1), (1, 2), (2, 0)]


def test_pagerank_refuses_a_crash_after_the_last_iteration_and_a_bad_cost():
    with pytest.raises(ConfigError, match="crash iteration must be <= 2"):
        run_pagerank(RING, iterations=2, crash=(5, 0.0, "w1"))
    with pytest.raises(ConfigError, match="cost must be a dict of Cost fields"):
        run_pagerank(RING, iterations=2, cost=[1])


@pytest.mark.parametrize("call,words", [
    (lambda: run_pagerank("ab"), "edges must be a list of .source, target. pairs"),
    (lambda: run_pagerank([1, 2, 3]), r"edges must be .source, target. pairs, got 1"),
    (lambda: run_pagerank([(0, 1, 2)]), r"pairs, got \(0, 1, 2\)"),
    (lambda: run_pagerank(None), "edges must be a list"),
    (lambda: run_pagerank(RING, cache="no"), "cache must be True or False"),
    (lambda: reference_pagerank(RING, -1), "iterations must be >= 0"),
])
def test_pagerank_refuses_what_is_no_graph_by_name(call, words):
    # These were bare unpacking errors, or ran (cache="no" cached; -1
    # iterations returned the starting ranks).
    with pytest.raises(ConfigError, match=words):
        call()


def test_default_partitions_fit_a_short_input():
    # Two per worker by default refused 3 records on 4 workers ("partitions
    # must be at most the number of records (3), got 8"), a number never given.
    assert DataflowCluster(4).parallelize([1, 2, 3]).partitions == 3
    ring = [(i, (i + 1) % 5) for i in range(5)]
    assert run_pagerank(ring, workers=8).ranks == pytest.approx(
        reference_pagerank(ring, 10))
    with pytest.raises(TypeError, match="plan needs a Dataset, got 5"):
        plan(5)


def test_an_unhashable_key_is_a_task_error_and_the_cluster_goes_on():
    # It was a bare TypeError, and the abandoned job's task stayed "running":
    # the next job on that worker reported "every worker is down".
    cluster = DataflowCluster(1, seed=1)
    good = cluster.parallelize([(1, 2), (3, 4)], 2)
    with pytest.raises(TaskError, match=r"cannot partition key \[1\]"):
        cluster.parallelize([([1], 2)], 1).reduce_by_key(max).collect()
    assert good.count() == 2
