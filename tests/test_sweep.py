"""labkit.sweeps: sweeps on Dask give the rows a serial loop gives, whatever the
workers, batches or a worker killed mid-sweep; errors name the run; the
default cluster leaves no process behind, even when interrupted; the tuner is
deterministic for a sampler seed and batch, and its best setting is the best
of its trials that meets the SLO, checked against intervals computed here.

Expected rows come from plain loops over the scenario written in this file.
One module-wide LocalCluster of 2 worker processes serves most tests."""

from __future__ import annotations

import gc
import itertools
import math
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from labkit import scenarios
from labkit.errors import ConfigError
from labkit.sweeps import RunFailed, local_client, pareto, row, sweep, tune
from labkit.sweeps.runs import batch_sizes

pytest.importorskip("distributed")
pytest.importorskip("optuna")

REPO = Path(__file__).resolve().parents[1]
QUEUE = {"customers": 400, "warmup": 50}          # a run of a few milliseconds
GRID = {"load": [0.5, 0.8], "servers": [1, 2]}
SEEDS = range(4)


def small_queue(seed, *, load=0.5, servers=1):
    return scenarios.mmc_queue(seed, load=load, servers=servers, **QUEUE)


def serial(scenario, points, seeds):
    """The expected table: a plain loop, point by point, seed by seed."""
    out = []
    for point in points:
        for seed in seeds:
            result = scenario(seed, **point)
            out.append({**point, "seed": seed, "fingerprint": result.fingerprint,
                        "p99": result.metrics["service.latency"].percentile(99)})
    return out


def grid_points():
    return [{"load": load, "servers": servers}
            for load in GRID["load"] for servers in GRID["servers"]]


def same_rows(table: pd.DataFrame, expected: list[dict]) -> None:
    assert len(table) == len(expected)
    got = table[["load", "servers", "seed", "fingerprint",
                 "service.latency.p99"]].to_dict("records")
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["service.latency.p99"] == theirs.pop("p99")
        del mine["service.latency.p99"]
        assert mine == theirs


@pytest.fixture(scope="module")
def client():
    with local_client(2) as c:
        yield c


# -- the rows ------------------------------------------------------------------

def test_a_row_holds_the_runs_scalars():
    result = small_queue(3, load=0.7, servers=2)
    values = row(result, lambda r: {"twice p50": 2 * r.metrics[
        "service.latency"].percentile(50)}, params={"load": 0.7})
    hist = result.metrics["service.latency"]
    assert values["load"] == 0.7 and values["seed"] == 3
    assert values["fingerprint"] == result.fingerprint
    assert values["service.latency.p99"] == hist.percentile(99)
    assert values["service.latency.count"] == hist.count == QUEUE["customers"]
    assert values["service.completed"] == result.metrics["service.completed"].value
    assert values["stats.utilisation"] == result.data.stats["utilisation"]
    assert values["twice p50"] == 2 * hist.percentile(50)
    assert all(v is None or isinstance(v, bool | int | float | str)
               for v in values.values())
    with pytest.raises(ConfigError, match="'seed'"):
        row(result, lambda r: {"seed": 1})
    with pytest.raises(TypeError, match="never the whole Result"):
        row(result, lambda r: {"run": r})
    kept = row(result, lambda r: {"latencies": tuple(r.metrics["service.latency"]
                                                     .values)})["latencies"]
    assert kept == tuple(hist.values) and len(kept) == QUEUE["customers"]


def test_serially_the_rows_are_the_loops():
    table = sweep(small_queue, GRID, SEEDS, workers=0, progress=False)
    same_rows(table, serial(small_queue, grid_points(), SEEDS))
    as_array = {"load": np.array(GRID["load"]), "servers": GRID["servers"]}
    assert sweep(small_queue, as_array, SEEDS, workers=0, progress=False).equals(table)


def test_on_two_workers_the_rows_are_the_loops_whatever_the_batch(client):
    expected = serial(small_queue, grid_points(), SEEDS)
    for batch in (1, 3, None):
        same_rows(sweep(small_queue, GRID, SEEDS, client=client, batch=batch,
                        progress=False), [dict(e) for e in expected])


@pytest.mark.parametrize("runs, workers", [(2000, 2), (9, 2), (1, 4), (333, 3)])
def test_default_batches_shrink_to_a_floor_and_cover_every_run(runs, workers):
    sizes = batch_sizes(runs, workers)
    assert sum(sizes) == runs and sizes == sorted(sizes, reverse=True)
    assert sizes[0] == -(-runs // (4 * workers))          # a quarter of a share
    floor = -(-runs // (16 * workers))
    assert min(sizes[:-1], default=floor) >= floor        # the last takes the rest
    assert len(sizes) <= 20 * workers                     # few tasks per worker
    # each batch takes 1/(4 workers) of what is left, or the floor
    left = runs
    for size in sizes[:-1]:
        assert size == max(floor, -(-left // (4 * workers)))
        left -= size


def test_given_batches_are_that_size_but_the_last():
    assert batch_sizes(10, 2, 3) == [3, 3, 3, 1]
    assert batch_sizes(10, 2, 20) == [10]
    with pytest.raises(ConfigError, match="batch"):
        batch_sizes(10, 2, 0)


@pytest.mark.slow
def test_the_default_cluster_starts_and_stops_its_processes():
    # multiprocessing's resource tracker is this process's own, started at its
    # first use and kept until this process ends: start it before counting.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    table = sweep(small_queue, {"load": [0.6], "servers": [2]}, range(6),
                  progress=False, measure=lambda _: {"frozen": gc.get_freeze_count()})
    same_rows(table, serial(small_queue, [{"load": 0.6, "servers": 2}], range(6)))
    # Each worker ran its runs with what it held at its start out of the
    # garbage collector's sight (labkit.sweeps.runs._warm_up).
    assert (table["frozen"] > 10_000).all(), table["frozen"].tolist()
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [p.cmdline() for p in left]


def kill_once(marker: str, victim_seed: int):
    """A measure that SIGKILLs the worker process running it, the first time it
    sees `victim_seed` (the marker file records that it did)."""
    def measure(result):
        if result.seed == victim_seed and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return {}
    return measure


def test_a_worker_killed_mid_sweep_changes_no_row(client, tmp_path):
    marker = tmp_path / "killed"
    pids = set(client.run(os.getpid).values())
    table = sweep(small_queue, GRID, range(6), client=client, batch=2,
                  measure=kill_once(str(marker), victim_seed=4), progress=False)
    assert int(marker.read_text()) in pids          # a worker of ours died...
    same_rows(table, serial(small_queue, grid_points(), range(6)))   # ...harmlessly
    client.wait_for_workers(2, timeout=60)


def failing(seed, *, x=0):
    if (x, seed) == (2, 3):
        raise ValueError("boom")
    return scenarios.ping(seed, duration=0.2)


@pytest.mark.parametrize("where", ["serial", "dask"])
def test_a_failing_run_is_named_by_its_params_and_seed(where, request):
    place = {"workers": 0} if where == "serial" else {
        "client": request.getfixturevalue("client")}
    with pytest.raises(RunFailed) as caught:
        sweep(failing, {"x": [1, 2]}, range(5), batch=2, progress=False, **place)
    message = str(caught.value)
    assert "failing(seed=3, x=2)" in message and "ValueError: boom" in message


def test_the_progress_bar_counts_every_run():
    seen = {}

    def bar(items, total, description):
        seen.update(total=total, description=description)
        for n, item in enumerate(items, start=1):
            seen["done"] = n
            yield item

    sweep(small_queue, GRID, SEEDS, workers=0, progress=bar)
    assert seen == {"total": 16, "done": 16, "description": "small_queue runs"}
    sweep(small_queue, GRID, SEEDS, workers=0, progress=bar, description="queues")
    assert seen["description"] == "queues"
    with pytest.raises(TypeError, match="description must be a string"):
        sweep(small_queue, GRID, SEEDS, workers=0, progress=bar, description=3)


@pytest.mark.parametrize("grid, seeds, match", [
    ({"load": 0.5}, SEEDS, "must be a list"),
    ({"load": "0.5"}, SEEDS, "must be a list"),
    ({"load": []}, SEEDS, "empty"),
    ({"lod": [0.5]}, SEEDS, "no parameter 'lod'"),
    ({"seed": [1]}, SEEDS, "seeds="),
    ([{"load": 0.5}, 3], SEEDS, "mappings"),
    ("load", SEEDS, "grid must be"),
    (GRID, [], "seeds is empty"),
    (GRID, 5, "range"),
    (GRID, [1, 1], "distinct"),
    (GRID, [1.5], "ints"),
    (GRID, [True], "ints"),
    (GRID, itertools.count(), "more than 100,000 seeds"),
])
def test_bad_grids_and_seeds_are_refused(grid, seeds, match):
    with pytest.raises(ConfigError, match=match):
        sweep(small_queue, grid, seeds, workers=0, progress=False)


def test_seeds_may_come_from_a_finite_iterator():
    rows = sweep(small_queue, GRID, iter(SEEDS), workers=0, progress=False)
    assert sorted(set(rows.seed)) == sorted(SEEDS)


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="batch"):
        sweep(small_queue, GRID, SEEDS, workers=0, batch=0, progress=False)
    with pytest.raises(ConfigError, match="workers"):
        sweep(small_queue, GRID, SEEDS, workers=-1, progress=False)
    with pytest.raises(TypeError, match="distributed.Client"):
        sweep(small_queue, GRID, SEEDS, client="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="measure"):
        sweep(small_queue, GRID, SEEDS, workers=0, measure=3, progress=False)
    with pytest.raises(TypeError, match="scenario"):
        sweep("mmc_queue", GRID, SEEDS, workers=0)


# -- interrupted: nothing left running -----------------------------------------

SLOW = textwrap.dedent("""
    import time
    from labkit import scenarios
    from labkit.sweeps import sweep

    def slow(seed):
        time.sleep(30)
        return scenarios.ping(seed)

    if __name__ == "__main__":
        sweep(slow, {}, range(4), workers=2, progress=False)
""")


@pytest.mark.slow
def test_ctrl_c_mid_sweep_leaves_no_process(tmp_path):
    script, token = tmp_path / "slow_sweep.py", uuid.uuid4().hex
    script.write_text(SLOW)
    child = subprocess.Popen([sys.executable, str(script)], cwd=REPO,
                             env=dict(os.environ, LABKIT_SWEEP_TOKEN=token),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ours() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["environ"]):
            try:
                if ((p.info["environ"] or {}).get("LABKIT_SWEEP_TOKEN") == token
                        and p.status() != psutil.STATUS_ZOMBIE):
                    found.append(p)
            except psutil.NoSuchProcess:
                pass
        return found

    try:
        deadline = time.monotonic() + 90
        while len(ours()) < 3 and time.monotonic() < deadline:   # us + 2 workers
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.2)
        time.sleep(2)                                  # the runs are under way
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
        assert b"KeyboardInterrupt" in child.stderr.read()
        deadline = time.monotonic() + 20
        while ours() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not ours(), [p.cmdline() for p in ours()]
    finally:
        for p in ours():
            p.kill()
        if child.poll() is None:
            child.kill()
            child.wait()


# -- tuning --------------------------------------------------------------------

SPACE = {"servers": [1, 2, 3], "load": [0.5, 0.7, 0.9]}
#: p99 at most 100 ms; minimized: the cost, servers per unit of load carried.
QUEUE_SLO = {"service.latency.p99": ("<=", 0.100)}
T95_FOR_3 = 4.303                    # Student's t, 2 degrees of freedom, 95 %


def cost(result):
    return {"cost": result.params["servers"] / result.params["load"]}


def tune_queue(**where):
    return tune(scenarios.mmc_queue, SPACE, QUEUE_SLO, trials=8, seeds=range(3),
                minimize="cost", measure=cost, fixed=QUEUE, batch=3,
                sampler_seed=5, progress=False, **where)


def test_the_tuner_is_deterministic_and_its_best_is_checked_here(client):
    on_dask, here = tune_queue(client=client), tune_queue(workers=0)
    pd.testing.assert_frame_equal(on_dask.trials, here.trials)
    assert on_dask.best == here.best and on_dask.runs == here.runs
    trials = here.trials
    assert len(trials) == 8
    settings = {tuple(t) for t in trials[list(SPACE)].itertuples(index=False)}
    feasible, runs = {}, 0
    for servers, load in settings:
        p99 = [scenarios.mmc_queue(s, servers=servers, load=load, **QUEUE).metrics[
            "service.latency"].percentile(99) for s in range(3)]
        high = statistics.mean(p99) + T95_FOR_3 * statistics.stdev(p99) / math.sqrt(3)
        if high <= 0.100:
            feasible[(servers, load)] = servers / load
        chosen = trials[(trials.servers == servers) & (trials.load == load)]
        assert (chosen["meets SLO"] == ((servers, load) in feasible)).all()
        # A setting stops after the first k seeds with which no third (or second
        # and third) seed could bring the high end within the bound.
        seeds_run = next((k for k in (1, 2) if best_high(p99[:k], 3) > 0.100), 3)
        assert (chosen["seeds run"] == seeds_run).all()
        assert (chosen["stopped early"] == (seeds_run < 3)).all()
        if seeds_run == 3:
            assert chosen["service.latency.p99 high"].iloc[0] == pytest.approx(high)
        else:
            assert chosen["service.latency.p99 high"].isna().all()
        runs += seeds_run                           # a repeated setting reran nothing
    assert here.runs == runs
    assert trials["stopped early"].any(), "the test wants a setting stopped early"
    assert feasible, "the test wants at least one trial that meets the SLO"
    cheapest = min(feasible.values())
    assert here.best is not None
    assert here.best["servers"] / here.best["load"] == pytest.approx(cheapest)
    assert trials["best"].sum() == 1


def test_without_stopping_early_every_setting_runs_every_seed():
    tuning = tune_queue(workers=0, stop_early=False)
    settings = {tuple(t) for t in tuning.trials[list(SPACE)].itertuples(index=False)}
    assert tuning.runs == 3 * len(settings)
    assert (tuning.trials["seeds run"] == 3).all() and tuning.trials[
        "service.latency.p99 high"].notna().all()


def interval_high(values):
    """The 95 % interval's high end, from the statistics module and a t table."""
    t = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447}[len(values) - 1]
    return statistics.mean(values) + t * statistics.stdev(values) / math.sqrt(
        len(values))


def best_high(known, n):
    """The lowest high end over completions of `known` to n values that repeat
    one value y: the high end is convex in y, so a ternary search finds it
    (far below zero where it falls without limit)."""
    def high(y):
        return interval_high([*known, *[y] * (n - len(known))])

    a, b = -1e9, 1e9
    for _ in range(300):
        m1, m2 = a + (b - a) / 3, b - (b - a) / 3
        a, b = (a, m2) if high(m1) < high(m2) else (m1, b)
    return high(a)


@pytest.mark.parametrize("case", range(120))
def test_reachable_ends_is_the_best_the_other_seeds_can_do(case):
    from labkit.sweeps import reachable_ends

    rng = np.random.default_rng(case)
    n = int(rng.integers(2, 8))
    known = list(rng.normal(0, rng.choice([0.1, 1.0, 10.0]), size=int(
        rng.integers(1, n + 1))))
    high, low = reachable_ends(known, n)
    free = n - len(known)
    if free == 0:
        assert high == pytest.approx(interval_high(known))
        assert low == pytest.approx(-interval_high([-x for x in known]))
        return
    # Sound: no completion, random or all-equal, gets the high end lower.
    tries = [list(rng.normal(0, 10, size=free)) for _ in range(50)]
    tries += [[y] * free for y in np.linspace(-50, 50, 201)]
    assert min(interval_high(known + rest) for rest in tries) >= high - 1e-9
    # Tight: the best all-equal completion reaches it.
    if math.isinf(high):
        assert best_high(known, n) < -1e5
    else:
        assert best_high(known, n) == pytest.approx(high, abs=1e-6)
    assert low == pytest.approx(-reachable_ends([-x for x in known], n)[0])


def constant_seeds(seed: int, *, level: float = 0.0):
    """A scenario whose figure "h.max" is `level` + 1.1 on seed 0, `level` on the
    other seeds."""
    from labkit.metrics import Metrics, Result

    metrics = Metrics()
    metrics.histogram("h").extend([level + (1.1 if seed == 0 else 0.0)])
    return Result("constant_seeds", {"level": level}, seed, metrics)


@pytest.mark.parametrize("seeds, stops", [(4, True), (5, False)])
def test_one_seed_over_the_bound_stops_a_setting_only_where_it_proves_a_miss(
        seeds, stops):
    # Seed 0 is 0.1 over the bound of 1.0 and the rest 0: with 4 seeds no
    # interval can meet the bound (high end >= every value), but with 5 the
    # high end is 0.22 + 2.776 x 0.49 / sqrt(5) = 0.83 and the setting meets it.
    tuning = tune(constant_seeds, {"level": [0.0]}, {"h.max": ("<=", 1.0)},
                  trials=1, seeds=range(seeds), workers=0, progress=False)
    trial = tuning.trials.iloc[0]
    assert trial["stopped early"] == stops and trial["meets SLO"] != stops
    assert tuning.runs == (1 if stops else 5)
    if not stops:
        assert trial["h.max high"] == pytest.approx(interval_high(
            [1.1, 0, 0, 0, 0]))


def test_another_sampler_seed_asks_differently():
    first = tune_queue(workers=0).trials[list(SPACE)]
    other = tune(scenarios.mmc_queue, SPACE, QUEUE_SLO, trials=8, seeds=range(3),
                 fixed=QUEUE, batch=3, sampler_seed=6, workers=0,
                 progress=False).trials[list(SPACE)]
    assert not first.equals(other)


def test_pareto_marks_exactly_the_undominated():
    points = [[1, 5], [2, 2], [3, 1], [3, 3], [2, 2], [4, 4]]
    expected = [not any(all(q[k] <= p[k] for k in range(2)) and q != p
                        for q in points) for p in points]
    assert list(pareto(pd.DataFrame(points).to_numpy(float))) == expected


def test_the_trials_plot_marks_the_front_and_the_best():
    result = tune_queue(workers=0)
    fig = result.plot()
    names = {trace.name for trace in fig.data}
    assert names == {"stopped early", "misses the SLO", "meets the SLO",
                     "Pareto front", "best"}
    stopped = [t for t in fig.data if t.name == "stopped early"]
    assert sum(len(t.x) for t in stopped) == 4 * result.trials["stopped early"].sum()
    assert all(t.error_y.array is None for t in stopped)
    stars = [t for t in fig.data if t.name == "best"]    # (p99, cost) x 2 knobs
    assert len(stars) == 4 and all(len(t.x) == 1 for t in stars)
    best = result.best
    assert {t.x[0] for t in stars} == {best["servers"], best["load"]}
    assert stars[-1].y[0] == pytest.approx(best["servers"] / best["load"])
    ring = [t for t in fig.data if t.name == "Pareto front"][0]
    assert len(ring.x) == result.trials["pareto"].sum() >= 1


@pytest.mark.parametrize("change, match", [
    ({"space": {}}, "space must be"),
    ({"space": {"servers": []}}, "non-empty"),
    ({"space": {"servers": [1, 1]}}, "distinct"),
    ({"space": {"servrs": [1]}}, "no parameter"),
    ({"slo": {"x": ("<", 1)}}, "'<=' or '>='"),
    ({"slo": []}, "slo must be"),
    ({"seeds": [1]}, "two seeds"),
    ({"trials": 0}, "trials"),
    ({"fixed": {"servers": 2}}, "both fixed and in the space"),
])
def test_bad_tuning_arguments_are_refused(change, match):
    args = {"space": SPACE, "slo": QUEUE_SLO, "trials": 2, "seeds": range(2),
            **change}
    with pytest.raises(ConfigError, match=match):
        tune(scenarios.mmc_queue, args.pop("space"), args.pop("slo"), workers=0,
             progress=False, **args)


def test_a_missing_slo_column_is_named():
    with pytest.raises(ConfigError, match="no column"):
        tune(scenarios.mmc_queue, {"servers": [1]}, {"p99": ("<=", 1.0)}, trials=1,
             seeds=range(2), fixed=QUEUE, workers=0, progress=False)


def test_the_capstone_slo_bounds_the_capstone_summary():
    from labkit.sweeps import slo_bounds

    bounds = slo_bounds(scenarios.SLO(p99_ms=300, availability=0.99, lost_writes=1))
    assert bounds == {"summary.p99 (ms)": ("<=", 300), "summary.availability":
                      (">=", 0.99), "summary.lost acked writes": ("<=", 1)}


# -- what an independent audit found -------------------------------------------------

def half_empty(seed: int, x: int = 1):
    """A scenario whose histogram is empty at x = 0 (its p99 is NaN), as when no
    request of a setting completes."""
    from labkit.metrics import Metrics, Result

    metrics = Metrics()
    metrics.histogram("h").extend([] if x == 0 else [x, 2 * x + seed])
    return Result("half_empty", {"x": x}, seed, metrics)


def test_a_setting_with_an_undefined_figure_meets_no_slo_and_the_search_goes_on():
    # Optuna refused the NaN constraint after the runs, and every trial was lost;
    # a NaN row was also on the Pareto front (NaN is never dominated).
    tuning = tune(half_empty, {"x": [0, 1, 2, 3]}, {"h.p99": (">=", 3)},
                  minimize="h.mean", trials=8, seeds=range(2), workers=0, batch=2,
                  progress=False)
    undefined = tuning.trials[tuning.trials["x"] == 0]
    assert len(undefined) > 0 and not undefined["meets SLO"].any()
    assert not undefined["pareto"].any()


def test_a_setting_undefined_on_its_first_seed_stops_there():
    # With 5 seeds one defined value could not prove a miss (its interval could
    # still end anywhere), but an undefined one makes the interval undefined.
    tuning = tune(half_empty, {"x": [0]}, {"h.p99": (">=", 3)}, minimize="h.mean",
                  trials=1, seeds=range(5), workers=0, progress=False)
    assert tuning.runs == 1 and tuning.trials["stopped early"].all()


def test_interval_needs_a_flat_list_of_two_numbers_or_more():
    from labkit.sweeps import interval

    for values in ([], [1.0], [[1, 2], [3, 4]]):
        with pytest.raises(ConfigError, match="interval needs a flat list of at "
                                              "least two numbers"):
            interval(values)
    mean, low, high = interval([1.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(12.706)   # t(1) x sd / sqrt(2)


def test_a_numpy_float_parameter_fingerprints_as_the_equal_float():
    # np.float64 is a float subclass, so it was hashed by its repr,
    # "np.float64(0.5)", while np.float32 and np.int64 were hashed by value.
    plain = scenarios.mmc_queue(1, load=0.5, customers=200)
    numpy = scenarios.mmc_queue(1, load=np.float64(0.5), customers=200)
    assert plain.fingerprint == numpy.fingerprint


def no_result(seed, *, x=0):
    return {"x": x}


@pytest.mark.parametrize("where", ["serial", "dask"])
def test_a_caller_mistake_keeps_its_error_and_names_the_run(where, request):
    """A scenario returning no Result, or a measure returning no mapping, is the
    caller's mistake: its TypeError, not RunFailed, with the run in a note."""
    place = {"workers": 0} if where == "serial" else {
        "client": request.getfixturevalue("client")}
    with pytest.raises(TypeError, match="must return a labkit Result") as caught:
        sweep(no_result, {"x": [1]}, range(1), progress=False, **place)
    assert caught.value.__notes__ == ["making the row of no_result(seed=0, x=1)"]
    with pytest.raises(TypeError, match="measure must return a mapping") as caught:
        sweep(failing, {"x": [1]}, range(1), progress=False, measure=lambda r: [1],
              **place)
    assert caught.value.__notes__ == ["making the row of failing(seed=0, x=1)"]
