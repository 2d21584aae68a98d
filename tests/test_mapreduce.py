"""MapReduce: the output is the single-process answer whatever fails, and the
time model, failure handling and backup tasks behave as the paper says."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from labkit import Unavailable, mapreduce, plot, scenarios
from labkit.errors import ConfigError
from labkit.mapreduce import Backups, Cost, TaskError

ROOT = Path(__file__).resolve().parents[1]
DOCS = scenarios.corpus(60)             # a quarter of a second per job at most
SMALL = {"workers": 5, "splits": 15, "partitions": 5}


# -- second implementations: the same jobs in plain Python ---------------------------

def word_counts(records) -> dict[str, int]:
    return dict(Counter(word for _, text in records for word in text.split()))


def inverted_index(records) -> dict[str, tuple[str, ...]]:
    index: dict[str, set[str]] = {}
    for doc, text in records:
        for word in text.split():
            index.setdefault(word, set()).add(doc)
    return {word: tuple(sorted(docs)) for word, docs in index.items()}


def random_faults(seed: int, workers: int, horizon: float) -> dict:
    """Crashes (some restarting), stragglers, a backup policy and a combiner
    choice drawn from the seed."""
    rng = random.Random(seed)
    names = [f"w{i}" for i in range(1, workers + 1)]
    crashed = rng.sample(names, rng.randint(0, workers - 1))
    slow = rng.sample(names, rng.randint(0, 2))
    return {
        "crash": {w: round(rng.uniform(0, horizon), 3) for w in crashed},
        "restart": rng.choice([None, 0.0, 5.0, 50.0]),
        "stragglers": {w: rng.choice([2.0, 5.0, 20.0]) for w in slow},
        "backup_tasks": rng.choice([False, Backups(), Backups(pick="time_left"),
                                    Backups(start=0.5, limit=0.2)]),
    }


def check_files(result: mapreduce.MapReduceResult, partitions: int) -> None:
    """Exactly one committed file per partition, every key in exactly one file,
    in its hash partition, keys in order within a file, and each reduce task
    completed by exactly one attempt: the one whose rename won."""
    assert sorted(result.files) == list(range(partitions))
    keys = [key for pairs in result.files.values() for key, _ in pairs]
    assert len(keys) == len(set(keys)) == len(result.output)
    for r, pairs in result.files.items():
        assert [k for k, _ in pairs] == sorted(k for k, _ in pairs)
        assert all(mapreduce.hash_partition(k, partitions) == r for k, _ in pairs)
    completed = Counter(a.task for a in result.timeline
                        if a.phase == "reduce" and a.outcome == "completed")
    assert completed == Counter(range(partitions))


# -- correctness under faults ---------------------------------------------------------

@pytest.mark.parametrize("seed", range(60))
def test_word_count_equals_counter_under_random_faults(seed):
    faults = random_faults(seed, SMALL["workers"], horizon=250.0)
    combiner = scenarios.total if seed % 2 else None
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=seed,
                           combiner=combiner, **SMALL, **faults)
    assert result.output == word_counts(DOCS), f"replay with seed={seed}: {faults}"
    check_files(result, SMALL["partitions"])


@pytest.mark.parametrize("seed", range(30))
def test_inverted_index_equals_plain_python_under_random_faults(seed):
    faults = random_faults(1000 + seed, 4, horizon=300.0)
    result = mapreduce.run(scenarios.postings, scenarios.doc_list, DOCS, seed=seed,
                           workers=4, splits=12, partitions=3, **faults)
    assert result.output == inverted_index(DOCS), f"replay: seed={seed}, {faults}"
    check_files(result, 3)


def test_sort_output_is_every_occurrence_in_key_order_within_each_file():
    result = mapreduce.run(scenarios.positions, scenarios.first, DOCS, seed=3,
                           stragglers=["w2"], crash={"w4": 60.0}, **SMALL)
    expected = [(word, doc, i) for doc, text in DOCS
                for i, word in enumerate(text.split())]
    assert sorted(result.output) == sorted(expected)
    check_files(result, SMALL["partitions"])


def test_values_reach_the_reducer_in_input_order_whatever_failed():
    def collect(key, values):
        return tuple(values)

    def tagged(record):
        for word in record[1].split()[:3]:
            yield word, record[0]

    plain = mapreduce.run(tagged, collect, DOCS, seed=1, backup_tasks=False, **SMALL)
    broken = mapreduce.run(tagged, collect, DOCS, seed=1, stragglers={"w1": 20.0},
                           crash={"w2": 30.0, "w3": 100.0}, restart=0.0, **SMALL)
    assert broken.output == plain.output
    docs = [doc for doc, _ in DOCS]
    assert all(list(v) == sorted(v, key=docs.index) for v in plain.output.values())


# -- atomic commit: no duplicated output ------------------------------------------

def test_the_first_rename_of_a_partition_wins_and_later_ones_are_discarded():
    files = mapreduce.OutputFiles()
    assert files.commit(0, attempt=7, pairs=(("a", 1),))
    assert not files.commit(0, attempt=9, pairs=(("a", 1), ("a", 1)))
    assert files.files == {0: (("a", 1),)} and files.writers == {0: 7}
    assert files.discarded == 1


def test_backup_reduces_never_duplicate_output():
    # Every reduce gets a copy (start=0, limit=1): many races, one file each.
    for seed in range(10):
        result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=seed,
                               stragglers={"w5": 5.0}, **SMALL,
                               backup_tasks=Backups(start=0.0, limit=1.0))
        assert result.backups > 0, f"seed={seed}"
        check_files(result, SMALL["partitions"])
        assert result.output == word_counts(DOCS), f"seed={seed}"


# -- stragglers and backup tasks ---------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_backup_tasks_cut_job_time_with_a_straggler(seed):
    runs = {backups: mapreduce.run(scenarios.words, scenarios.total, DOCS,
                                   seed=seed, stragglers={"w5": 10.0},
                                   backup_tasks=backups, **SMALL)
            for backups in (True, False)}
    assert runs[True].duration < 0.8 * runs[False].duration, f"seed={seed}"
    assert runs[True].backups > 0 and runs[False].backups == 0
    assert runs[False].extra_work == 0.0
    assert runs[True].output == runs[False].output


@pytest.mark.parametrize("kill_at,outcome", [(600.0, "preempted"), (800.0, "unneeded")])
def test_without_backups_wasted_work_is_not_counted_as_backup_cost(kill_at, outcome):
    # Without backups nothing races, so extra work is nil. It counted a reduce
    # the master preempted to re-run lost maps (workers killed at 600 s), and
    # maps re-run for output every reduce already had, still running when the
    # job ended (at 800 s), as copies that lost a race.
    docs = scenarios.corpus()             # notebook 08's job
    run = mapreduce.run(scenarios.words, scenarios.total, docs, workers=8, seed=1,
                        crash={"w1": kill_at, "w2": kill_at}, backup_tasks=False)
    outcomes = Counter(a.outcome for a in run.timeline)
    assert outcomes[outcome] > 0 and outcomes["cancelled"] == outcomes["unused"] == 0
    assert run.extra_work == 0.0
    assert run.output == word_counts(docs)


@pytest.mark.slow
def test_figure3_shape_backups_matter_and_killing_a_tenth_costs_little():
    rows = {row["execution"]: row for row in scenarios.figure3(seed=1).data.rows}
    no_backups = rows["no backup tasks"]["simulated vs normal"]
    killed = rows["2 of 20 workers killed"]["simulated vs normal"]
    assert no_backups > 0.25                       # the paper: +44 %
    assert abs(killed) < 0.10                      # the paper: +5 %
    assert rows["normal"]["extra work"] < 0.10     # "no more than a few percent"
    assert rows["2 of 20 workers killed"]["re-executed tasks"] > 0


def test_a_straggler_alone_makes_a_job_slower_than_a_healthy_one():
    healthy = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=2,
                            backup_tasks=False, **SMALL)
    slow = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=2,
                         stragglers=["w1"], backup_tasks=False, **SMALL)
    assert slow.duration > healthy.duration
    assert slow.params["stragglers"] == {"w1": mapreduce.STRAGGLER_SLOWDOWN}


# -- failures --------------------------------------------------------------------------

def first_completed_map(result, worker):
    return min(a.end for a in result.timeline
               if a.worker == worker and a.phase == "map" and a.outcome == "completed")


def test_completed_maps_of_a_dead_worker_are_re_executed():
    clean = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=4, **SMALL)
    map_end = max(a.end for a in clean.timeline if a.phase == "map")
    # Crash w1 in the reduce phase: all its map output dies with its disk.
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=4,
                           crash={"w1": map_end + 5.0}, **SMALL)
    lost = [a for a in result.timeline if a.outcome == "lost"]
    assert lost and all(a.worker == "w1" and a.phase == "map" for a in lost)
    for attempt in lost:
        again = [a for a in result.timeline if a.phase == "map"
                 and a.task == attempt.task and a.start > attempt.end]
        assert any(a.outcome == "completed" and a.worker != "w1" for a in again)
    assert result.reexecutions >= len(lost)
    assert result.output == word_counts(DOCS)
    assert result.duration > clean.duration


def test_failure_is_detected_after_the_heartbeat_timeout():
    # Four map tasks on five workers: one worker is idle, ready for the retry.
    crash_at, timeout, heartbeat = 10.0, 10.0, 1.0
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=5,
                           crash={"w2": crash_at}, timeout=timeout,
                           heartbeat=heartbeat, backup_tasks=False, workers=5,
                           splits=4, partitions=2)
    failed = [a for a in result.timeline if a.outcome == "failed"]
    assert [a.worker for a in failed] == ["w2"] and failed[0].end == crash_at
    retry = min((a for a in result.timeline if a.phase == failed[0].phase
                 and a.task == failed[0].task and a.start > crash_at),
                key=lambda a: a.start)
    # The last heartbeat left at most one interval before the crash; the
    # master checks once per interval.
    assert crash_at + timeout - heartbeat < retry.start <= (crash_at + timeout
                                                            + heartbeat + 0.01)


def test_a_worker_that_restarts_at_once_is_noticed_by_its_new_incarnation():
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=6,
                           crash={"w3": 120.0}, restart=0.0, timeout=1000.0,
                           **SMALL)
    assert result.metrics["workers.failed"].value == 1   # long before any timeout
    assert result.duration < 1000.0
    assert result.output == word_counts(DOCS)
    assert any(a.worker == "w3" and a.start > 120.0 for a in result.timeline)


def test_a_job_outlives_all_but_one_worker():
    crash = {f"w{i}": 10.0 * i for i in range(1, SMALL["workers"])}
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=7,
                           crash=crash, **SMALL)
    assert result.output == word_counts(DOCS)
    late = [a for a in result.timeline if a.start > max(crash.values()) + 20]
    assert late and {a.worker for a in late} == {f"w{SMALL['workers']}"}


def test_a_job_that_cannot_finish_in_time_is_unavailable():
    with pytest.raises(Unavailable, match="did not finish within 50 simulated s"):
        mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=1, deadline=50.0,
                      **SMALL)


def test_the_master_cannot_be_killed():
    job = mapreduce.Job(scenarios.words, scenarios.total, None,
                        mapreduce.hash_partition,
                        mapreduce.make_splits(DOCS, 3, ["w1"], random.Random(1)), 1,
                        {"w1": 1.0}, Cost(), None, True, 1.0, 10.0)
    cluster = mapreduce.MapReduceCluster(job, ["w1"])
    with pytest.raises(ConfigError, match="master"):
        cluster.kill("master")


# -- lost, duplicated and cut-off messages ---------------------------------------------
# `run` has a perfect network; a MapReduceCluster's can lose, duplicate and cut.

def word_count_cluster(seed: int, backups: bool = True) -> mapreduce.MapReduceCluster:
    """The SMALL word count on a cluster the test can break. Without backup
    tasks nothing else rescues a task stuck on a lost message (a backup copy
    would finish it)."""
    names = [f"w{i}" for i in range(1, SMALL["workers"] + 1)]
    job = mapreduce.Job(scenarios.words, scenarios.total, None,
                        mapreduce.hash_partition,
                        mapreduce.make_splits(DOCS, SMALL["splits"], names,
                                              random.Random(seed)),
                        SMALL["partitions"], dict.fromkeys(names, 1.0), Cost(),
                        Backups() if backups else None, True, 1.0, 10.0)
    return mapreduce.MapReduceCluster(job, names, seed=seed)


def finish(cluster: mapreduce.MapReduceCluster, deadline: float = 5_000.0) -> None:
    """Run to the end of the job: it ends, with exactly the word count, one
    file per partition, each reduce task completed by one attempt and each map
    task by an attempt booked as completed (duplicates change no outcome)."""
    job, partitions = cluster.job, SMALL["partitions"]
    cluster.run(deadline)
    assert job.done, f"stalled at t = {cluster.now:.0f} s"
    assert sorted(job.output.files) == list(range(partitions))
    keys = [key for pairs in job.output.files.values() for key, _ in pairs]
    assert len(keys) == len(set(keys))
    assert dict(kv for pairs in job.output.files.values()
                for kv in pairs) == word_counts(DOCS)
    completed = Counter(a.task for a in job.attempts
                        if a.phase == "reduce" and a.outcome == "completed")
    assert completed == Counter(range(partitions))
    assert all(t.done_by.outcome == "completed" for t in cluster.master.maps)


def drop_first(cluster: mapreduce.MapReduceCluster, kind: str,
               where=lambda body: True) -> list:
    """Lose the first message of `kind` whose body passes `where`; the list
    of what was lost, (src, dst, body), fills in when it happens."""
    network, send, lost = cluster.network, cluster.network.send, []

    def lossy(src, dst, k, body):
        if k == kind and not lost and where(body):
            lost.append((src, dst, body))
            return None
        return send(src, dst, k, body)

    network.send = lossy
    return lost


@pytest.mark.parametrize("seed", range(30))
def test_a_job_finishes_right_under_loss_duplicates_and_a_brief_partition(seed):
    rng = random.Random(f"{seed}:test.lossy")
    cluster = word_count_cluster(seed)
    cluster.network.update(loss=rng.choice([0.05, 0.1]), duplicate=0.05)
    cut, at = rng.choice(cluster.names[1:]), rng.uniform(0.0, 150.0)
    cluster.sim.at(at, cluster.disconnect, cut)         # shorter than the timeout:
    cluster.sim.at(at + rng.uniform(1.0, 8.0), cluster.connect, cut)  # not dead
    finish(cluster, deadline=20_000.0)
    assert cluster.network.messages_dropped > 0


def test_a_lost_map_done_reaches_the_master_in_the_heartbeats():
    cluster = word_count_cluster(seed=1, backups=False)
    lost = drop_first(cluster, "map_done")
    finish(cluster)
    attempt = cluster.job.attempts[lost[0][2]["attempt"]]
    # The master took the worker's word (no re-execution): the attempt counts.
    assert cluster.master.maps[attempt.task].done_by is attempt
    assert cluster.sim.metrics.counter("tasks.reexecuted").value == 0


def test_a_lost_assignment_fails_the_attempt_and_its_task_runs_again():
    cluster = word_count_cluster(seed=2, backups=False)
    lost = drop_first(cluster, "assign")
    finish(cluster)
    attempt = cluster.job.attempts[lost[0][2]["attempt"]]
    assert attempt.outcome == "failed"
    assert cluster.sim.metrics.counter("tasks.reexecuted").value >= 1
    assert cluster.sim.metrics.counter("workers.failed").value == 0   # w alive


def test_a_lost_answer_to_a_fetch_is_asked_for_again():
    cluster = word_count_cluster(seed=3, backups=False)
    lost = drop_first(cluster, "fetch_ok", lambda body: body["pairs"] is not None)
    finish(cluster)
    asked = cluster.network.counts()["fetch"]["sent"]
    answered = cluster.network.counts()["fetch_ok"]["sent"]
    assert lost and asked == answered + 1          # the lost one, asked again


def test_a_reducer_that_missed_where_map_output_moved_is_told_again():
    # w1 dies in the reduce phase, so its map tasks run again elsewhere and
    # the reducers are told where their output now is; one of them misses it.
    clean = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=4, **SMALL)
    map_end = max(a.end for a in clean.timeline if a.phase == "map")
    cluster = word_count_cluster(seed=4, backups=False)
    cluster.sim.at(map_end + 5.0, cluster.kill, "w1")
    lost = drop_first(cluster, "locations",
                      lambda body: None not in body["locations"])
    finish(cluster)
    assert lost


# -- the cost model ----------------------------------------------------------------

def test_one_worker_one_split_one_partition_takes_what_the_cost_model_says():
    cost = Cost(scale=1e4, disk=2e6, network=1e6, cpu=4e6, startup=0.5)
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS[:5], workers=1,
                           splits=1, partitions=1, seed=1, cost=cost,
                           backup_tasks=False)
    (m, r) = result.timeline
    n_in = sum(mapreduce.size(record) for record in DOCS[:5])
    n_mid = mapreduce.pairs_size((w, 1) for _, t in DOCS[:5] for w in t.split())
    n_out = mapreduce.pairs_size(word_counts(DOCS[:5]).items())
    assert (m.bytes_in, m.bytes_out, r.bytes_in, r.bytes_out) == (n_in, n_mid,
                                                                  n_mid, n_out)
    s = 1e4         # the only worker holds every replica: the map reads locally
    map_time = 0.5 + n_in * s / 2e6 + n_in * s / 4e6 + n_mid * s / 2e6
    fetch = n_mid * s / 1e6                 # min(network, disk)
    reduce_time = 0.5 + fetch + n_mid * s / 4e6 + n_out * s / 1e6
    hop = 0.001                     # one message on the critical path
    # heartbeat -> master assigns the map -> worker runs it -> map_done -> master
    # assigns the reduce -> worker starts, asks for the piece (of itself), gets
    # it, reduces and writes -> reduce_done reaches the master: seven hops.
    assert m.end - m.start == pytest.approx(map_time + hop, abs=1e-9)
    assert r.shuffle_end - r.start == pytest.approx(0.5 + fetch + 3 * hop, abs=1e-9)
    assert r.end - r.start == pytest.approx(reduce_time + 3 * hop, abs=1e-9)
    assert result.duration == pytest.approx(map_time + reduce_time + 7 * hop,
                                            abs=1e-9)


def test_a_combiner_shrinks_the_shuffle_without_changing_the_output():
    plain = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=1,
                          backup_tasks=False, **SMALL)
    combined = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=1,
                             combiner=scenarios.total, backup_tasks=False, **SMALL)
    assert combined.output == plain.output
    assert combined.bytes_shuffled < 0.8 * plain.bytes_shuffled
    reduce_in = sum(plain.reduce_inputs().values())
    assert plain.bytes_shuffled == reduce_in    # no backups: nothing fetched twice


def test_locality_makes_maps_faster():
    def map_seconds(locality):
        run = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=2,
                            locality=locality, backup_tasks=False, workers=8,
                            splits=24, partitions=4)
        return sum(a.end - a.start for a in run.timeline if a.phase == "map")
    assert map_seconds(True) < map_seconds(False)


def test_skew_hot_key_bounds_the_largest_reduce_and_the_combiner_fixes_it():
    rows = {r["partitioning"]: r for r in scenarios.skew(seed=1).data.rows}
    counts = Counter(w for _, t in scenarios.corpus() for w in t.split())
    bytes_of = {w: c * mapreduce.pairs_size([(w, 1)]) for w, c in counts.items()}
    hot_share = max(bytes_of.values()) / sum(bytes_of.values())
    bound = hot_share * 16          # one key cannot be split over partitions
    for name in ("hash", "sampled"):
        assert rows[name]["largest / mean reduce input"] >= bound
    assert rows["sampled"]["largest / mean reduce input"] < rows["hash"][
        "largest / mean reduce input"]
    assert rows["hash + combiner"]["largest / mean reduce input"] < 1.25
    assert rows["hash + combiner"]["job time (s)"] < rows["hash"]["job time (s)"]


# -- determinism --------------------------------------------------------------------

def test_same_seed_same_run_different_seed_different_placement():
    kw = dict(stragglers={"w2": 5.0}, crash={"w3": 50.0}, **SMALL)
    a = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=8, **kw)
    b = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=8, **kw)
    c = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=9, **kw)
    assert a.timeline == b.timeline and a.fingerprint == b.fingerprint
    assert a.timeline != c.timeline and a.output == c.output


def test_runs_agree_across_processes_with_different_hash_seeds():
    code = ("from labkit import mapreduce, scenarios; r = mapreduce.run("
            "scenarios.words, scenarios.total, scenarios.corpus(60), workers=5, "
            "splits=15, partitions=5, seed=3, crash={'w1': 40.0}); "
            "print(r.fingerprint, r.duration, list(r.output)[:5])")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, check=True, cwd=ROOT,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1


def test_the_corpus_file_is_what_its_generator_writes():
    spec = subprocess.run([sys.executable, str(ROOT / "data" / "make_corpus.py"),
                           os.devnull], capture_output=True, text=True, check=True)
    assert spec.returncode == 0
    sys.path.insert(0, str(ROOT / "data"))
    try:
        import make_corpus
    finally:
        sys.path.remove(str(ROOT / "data"))
    assert make_corpus.corpus() == (ROOT / "data" / "corpus.txt").read_text()
    assert len(scenarios.corpus()) == make_corpus.DOCUMENTS


# -- bad input ------------------------------------------------------------------------

def explode(record):
    if record[0] == "doc007":
        raise ValueError("bad record")
    yield record[0], 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"workers": 0}, ConfigError, "workers must be >= 1, got 0"),
    ({"mapper": "words"}, TypeError, "mapper must be a function"),
    ({"reducer": None}, TypeError, "reducer must be a function"),
    ({"combiner": 3}, TypeError, "combiner must be a function"),
    ({"inputs": []}, ConfigError, "inputs is empty"),
    ({"inputs": "some text"}, ConfigError, "inputs must be a list of records"),
    ({"splits": 61}, ConfigError, "at most the number of records"),
    ({"partitions": 0}, ConfigError, "partitions must be >= 1"),
    ({"crash": {"w9": 1.0}}, ConfigError, "unknown worker 'w9'"),
    ({"crash": {"master": 1.0}}, ConfigError, "unknown worker 'master'"),
    ({"crash": {"w1": -1.0}}, ConfigError, "crash time of w1 must be >= 0"),
    ({"crash": dict.fromkeys(["w1", "w2", "w3", "w4", "w5"], 5.0)}, ConfigError,
     "every worker crashes and none restarts"),
    ({"stragglers": {"w1": 0.5}}, ConfigError, "slowdown of w1 must be >= 1"),
    ({"stragglers": "w1"}, ConfigError, "stragglers must be a dict"),
    ({"backup_tasks": "yes"}, ConfigError, "backup_tasks must be True, False"),
    ({"cost": {"disk": 1}}, ConfigError, "cost must be a Cost"),
    ({"timeout": 0}, ConfigError, "timeout must be > 0"),
])
def test_bad_arguments_are_refused_with_a_clear_message(kwargs, error, message):
    args = {"mapper": scenarios.words, "reducer": scenarios.total, "inputs": DOCS,
            **SMALL, **kwargs}
    with pytest.raises(error, match=message):
        mapreduce.run(args.pop("mapper"), args.pop("reducer"), args.pop("inputs"),
                      **args)


def test_a_mapper_that_raises_is_reported_with_its_task_and_record():
    with pytest.raises(TaskError, match=r"map task \d+ on w\d, record 7 "
                       r"\('doc007', .*the mapper raised ValueError: bad record"):
        mapreduce.run(explode, scenarios.total, DOCS, **SMALL)


def test_a_reducer_that_raises_is_reported_with_its_task_and_key():
    def picky(key, values):
        if key == "vi":
            raise KeyError(key)
        return sum(values)
    with pytest.raises(TaskError, match=r"reduce task \d+ on w\d: the reducer "
                       r"raised on key 'vi' \(\d+ values, first 1\): KeyError"):
        mapreduce.run(scenarios.words, picky, DOCS, **SMALL)


def test_a_mapper_that_yields_no_pairs_or_a_bad_partition_is_reported():
    with pytest.raises(TaskError, match="must yield \\(key, value\\) pairs, got 'd'"):
        mapreduce.run(lambda r: r[0], scenarios.total, DOCS, **SMALL)
    with pytest.raises(TaskError, match=r"int in \[0, 5\), got 5 for key"):
        mapreduce.run(scenarios.words, scenarios.total, DOCS,
                      partitioner=lambda key, r: r, **SMALL)


def test_bad_backup_and_cost_settings_are_refused():
    with pytest.raises(ConfigError, match="pick must be 'time_left' or 'oldest'"):
        Backups(pick="random")
    with pytest.raises(ConfigError, match="start must be in \\[0, 1\\]"):
        Backups(start=2)
    with pytest.raises(ConfigError, match="network must be > 0"):
        Cost(network=0)


# -- plots and the playground ------------------------------------------------------

def test_gantt_draws_every_attempt_and_the_crash():
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=4,
                           crash={"w1": 100.0}, **SMALL)
    fig = plot.gantt(result)
    drawn = sum(len(t.x) for t in fig.data if t.type == "bar")
    reduces = sum(a.phase == "reduce" and a.outcome == "completed"
                  for a in result.timeline)
    assert drawn == len(result.timeline) + reduces   # shuffle + reduce bars
    crosses = [t for t in fig.data if t.name == "crash"]
    assert list(crosses[0].x) == [100.0] and list(crosses[0].y) == ["w1"]


def test_data_rates_integrate_to_the_bytes_moved():
    result = mapreduce.run(scenarios.words, scenarios.total, DOCS, seed=1, **SMALL)
    edges = np.linspace(0.0, result.duration, 51)
    rates = plot._data_rates(result, edges)
    mb = result.params["cost"].scale / 1e6
    width = edges[1] - edges[0]
    assert rates["input"].sum() * width == pytest.approx(
        sum(a.bytes_in for a in result.timeline if a.phase == "map") * mb)
    assert rates["shuffle"].sum() * width == pytest.approx(result.bytes_shuffled * mb)


def test_playground_kill_switch_reruns_the_job_with_that_worker_crashed():
    from labkit import widgets

    playground = widgets.mapreduce_playground(workers=4)
    playground.explorer.controls["splits"].value = 8
    before = playground.result.duration
    playground.switches.buttons[0].value = True
    assert playground.result.params["crash"] == {"w1": 100.0}
    assert playground.result.duration != before
    assert "re-executed" in playground.explorer.status.value
    playground.explorer.controls["job"].value = "sort"
    playground.explorer.controls["combiner"].value = True
    assert "has no combiner" in playground.explorer.status.value


def test_figure3_rejects_a_progress_that_is_not_a_function():
    with pytest.raises(TypeError, match="progress must be a function"):
        scenarios.figure3(seed=1, progress="bar")


@pytest.mark.slow
def test_figure3_progress_sees_the_three_runs_and_changes_no_number():
    seen = []

    def progress(items, total, description):
        seen.append(total)
        for item in items:
            seen.append(item)
            yield item

    runs = scenarios.figure3(seed=1, progress=progress).data.runs
    assert seen == [3, *runs] == [3, "normal", "no backup tasks",
                                  "2 of 20 workers killed"]
    mapper, reducer, _ = scenarios.MAPREDUCE_JOBS["sort"]
    alone = mapreduce.run(mapper, reducer, scenarios.corpus(), seed=1,
                          backup_tasks=False, **scenarios.FIGURE3)
    assert runs["no backup tasks"].duration == alone.duration


# -- what an independent audit found -------------------------------------------------

def test_equal_keys_of_different_types_meet_in_one_reduce():
    # 0 and numpy's 0 are one dict key; partitioning by repr sent them to two
    # reduce tasks, and the final merge kept one of the two sums.
    inputs = list(range(10))
    expected: dict = {}
    for r in inputs:
        expected[r % 3] = expected.get(r % 3, 0) + 1
    run = mapreduce.run(lambda r: [(np.int64(r % 3) if r % 2 == 0 else r % 3, 1)],
                        lambda key, values: sum(values), inputs, workers=4,
                        seed=1, partitions=4)
    assert run.output == expected
    assert mapreduce.hash_partition(1, 7) == mapreduce.hash_partition(1.0, 7) \
        == mapreduce.hash_partition(True, 7) == mapreduce.hash_partition(np.int64(1), 7)


def test_an_unhashable_key_is_a_task_error_naming_it():
    with pytest.raises(mapreduce.TaskError, match=r"yielded the key \[0\], which "
                                                   r"cannot be grouped"):
        mapreduce.run(lambda r: [([r], 1)], lambda key, values: sum(values),
                      list(range(10)), workers=2, seed=1)


@pytest.mark.parametrize("heartbeat, timeout", [(1.0, 0.5), (2.0, 1.5), (1.0, 1.999)])
def test_a_timeout_shorter_than_two_heartbeats_is_refused(heartbeat, timeout):
    # These livelocked (a live worker declared dead between two heartbeats,
    # its tasks run again and again) until the deadline.
    with pytest.raises(ConfigError, match="at least two heartbeat intervals"):
        mapreduce.run(scenarios.words, scenarios.total, DOCS, **SMALL,
                      heartbeat=heartbeat, timeout=timeout)


def test_a_negative_straggler_is_refused():
    with pytest.raises(ConfigError, match="straggler must be >= 1"):
        scenarios.mapreduce_playground(straggler=-5.0)
