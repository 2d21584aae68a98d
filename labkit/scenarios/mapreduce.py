"""Scenarios of notebook 08, MapReduce: the corpus (data/corpus.txt) and the
example jobs on it (word count, inverted index, sort: `MAPREDUCE_JOBS`),
Figure 3 of Dean & Ghemawat scaled down (in one process, or as a sweep's
scenario, measure and summary: `figure3_run`, `figure3_measure`,
`figure3_summary`), skew against hash and sampled partitioning, and the
playground. The engine is `labkit.mapreduce`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from labkit import mapreduce
from labkit.errors import ConfigError, checked, require_int, require_number
from labkit.metrics import Metrics, Result

from .common import Runs, with_progress

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus.txt"


@checked
def corpus(documents: int | None = None) -> tuple[tuple[str, str], ...]:
    """The documents of data/corpus.txt (the first `documents`, or all) as
    (doc id, text) records: made-up words with Zipf frequencies (data/README.md)."""
    records = tuple(tuple(line.split("\t", 1))
                    for line in CORPUS.read_text().splitlines())
    if documents is None:
        return records
    documents = require_int("documents", documents, minimum=1)
    return records[:documents]


def words(record: tuple[str, str]) -> Iterable[tuple[str, int]]:
    """Word count's map: (word, 1) for every word of a document."""
    for word in record[1].split():
        yield word, 1


def total(key: str, counts: list[int]) -> int:
    """Word count's reduce, and its combiner: the sum of the counts."""
    return sum(counts)


def postings(record: tuple[str, str]) -> Iterable[tuple[str, str]]:
    """Inverted index's map: (word, doc id) once per distinct word of a document."""
    doc, text = record
    for word in dict.fromkeys(text.split()):
        yield word, doc


def doc_list(key: str, docs: list[str]) -> tuple[str, ...]:
    """Inverted index's reduce: the ids of the documents holding the word, sorted."""
    return tuple(sorted(docs))


def positions(record: tuple[str, str]) -> Iterable[tuple[tuple[str, str, int], str]]:
    """Sort's map, standing in for the paper's 1 TB sort: every word occurrence
    keyed by (word, doc id, position), so the map output is as big as the
    input, every key is distinct and partitions come out even."""
    doc, text = record
    for i, word in enumerate(text.split()):
        yield (word, doc, i), ""


def first(key: Any, values: list) -> Any:
    """Sort's reduce: the identity (every key occurs once)."""
    return values[0]


#: Example jobs by name: (mapper, reducer, combiner or None).
MAPREDUCE_JOBS: Mapping[str, tuple] = MappingProxyType({
    "word count": (words, total, total),
    "inverted index": (postings, doc_list, None),
    "sort": (positions, first, None),
})

#: Figure 3's setup scaled down: 20 workers, M = 100 map and R = 80 reduce
#: tasks (the paper: 1746 workers, M = 15000, R = 4000), one straggler with
#: disk and CPU ten times slower. "Killed": 2 of the 20 workers (the paper's
#: 200 of 1746) crash 60 s in and restart at once, as new processes.
FIGURE3: Mapping[str, Any] = MappingProxyType({
    "workers": 20, "splits": 100, "partitions": 80, "stragglers": {"w20": 10.0}})
FIGURE3_KILLED: Mapping[str, float] = MappingProxyType({"w1": 60.0, "w2": 60.0})
#: Dean & Ghemawat, Figure 3: seconds to sort 1 TB (anchors/FACTS.md).
FIGURE3_PAPER: Mapping[str, float] = MappingProxyType({
    "normal": 891.0, "no backup tasks": 1283.0, "200 of 1746 workers killed": 933.0})


#: Figure 3's three executions: name -> what changes from FIGURE3.
FIGURE3_EXECUTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "normal": {}, "no backup tasks": {"backup_tasks": False},
    "2 of 20 workers killed": {"crash": dict(FIGURE3_KILLED), "restart": 0.0}})


def _sort(seed: int, execution: str) -> mapreduce.MapReduceResult:
    """The sort of the corpus with FIGURE3's setup, run as `execution` says."""
    if execution not in FIGURE3_EXECUTIONS:
        raise ConfigError(f"execution must be one of {list(FIGURE3_EXECUTIONS)}, "
                          f"got {execution!r}")
    mapper, reducer, _ = MAPREDUCE_JOBS["sort"]
    return mapreduce.run(mapper, reducer, corpus(), seed=seed,
                         **FIGURE3_EXECUTIONS[execution], **FIGURE3)


@checked
def figure3(seed: int = 1, *,
            progress: Callable[..., Iterable] | None = None) -> Result:
    """The sort three ways, as in the paper's Figure 3: normal (backup tasks
    on), without backup tasks, and with a tenth of the workers killed early.
    data.runs (name -> MapReduceResult) and data.rows (seconds and the change
    against normal, simulated beside the paper). `progress` (e.g.
    labkit.widgets.progress) wraps the three runs, called as
    progress(names, total=, description=). The same runs, one per Dask task:
    `lk.sweep(figure3_run, {"execution": list(FIGURE3_EXECUTIONS)}, [seed],
    measure=figure3_measure)`, then `figure3_summary` of its rows."""
    names = with_progress(list(FIGURE3_EXECUTIONS), progress, "Figure 3: three sorts")
    runs = {name: _sort(seed, name) for name in names}
    rows = _figure3_rows({name: figure3_measure(run) for name, run in runs.items()})
    return Result("figure3", {**FIGURE3, "killed": dict(FIGURE3_KILLED)}, seed,
                  Metrics(), data=Runs(runs=runs, rows=rows))


@checked
def figure3_run(seed: int = 1, *, execution: str = "normal") -> Result:
    """One sort of Figure 3 (`execution`: a name of FIGURE3_EXECUTIONS), as a
    sweep's scenario: the MapReduceResult without its output and files (the
    sorted words, which a sweep would not send back), its data the timeline
    and headline."""
    run = _sort(seed, execution)
    return dataclasses.replace(run, data={"timeline": run.timeline,
                                          "headline": run.data["headline"]})


@checked
def figure3_measure(run: mapreduce.MapReduceResult) -> dict[str, Any]:
    """What Figure 3 keeps of a sort (a sweep's `measure`): job time,
    re-executed and backup tasks, extra work, and the timeline and cost model
    the data-rate plot reads."""
    return {"simulated (s)": run.duration, "re-executed tasks": run.reexecutions,
            "backup tasks": run.backups, "extra work": run.extra_work,
            "timeline": run.timeline, "cost": run.params["cost"]}


@checked
def figure3_summary(rows) -> Runs:
    """Figure 3 from a sweep's table (or its rows as dicts) of the three
    executions (columns "execution", "seed" and those of `figure3_measure`):
    rows, as `figure3`'s, and runs, name -> a MapReduceResult holding only the
    timeline, job time and cost model (what `plot.data_rates` draws)."""
    if hasattr(rows, "to_dict"):                          # a pandas DataFrame
        rows = rows.to_dict("records")
    kept = {}
    for row in rows:
        if not isinstance(row, Mapping) or not {"execution", "seed", "timeline",
                                                "cost", "simulated (s)"} <= set(row):
            raise ConfigError(f"each row must hold the execution, seed and what "
                              f"figure3_measure keeps (a sweep with measure="
                              f"figure3_measure), got {row!r}")
        kept[row["execution"]] = row
    if list(kept) != list(FIGURE3_EXECUTIONS):
        raise ConfigError(f"Figure 3 needs one row per execution, in the order "
                          f"{list(FIGURE3_EXECUTIONS)}; got {list(kept)}")
    runs = {name: mapreduce.MapReduceResult(
        "figure3_run", {"execution": name, "cost": row["cost"]}, row["seed"],
        Metrics(), end_time=row["simulated (s)"], data={"timeline": row["timeline"]})
        for name, row in kept.items()}
    return Runs(runs=runs, rows=_figure3_rows(kept))


def _figure3_rows(kept: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Seconds and the change against normal, simulated beside the paper, from
    what `figure3_measure` keeps of each execution."""
    normal, paper_normal = kept["normal"]["simulated (s)"], FIGURE3_PAPER["normal"]
    return [{"execution": name, "paper (s)": paper,
             "paper vs normal": paper / paper_normal - 1,
             "simulated (s)": numbers["simulated (s)"],
             "simulated vs normal": numbers["simulated (s)"] / normal - 1,
             "re-executed tasks": numbers["re-executed tasks"],
             "backup tasks": numbers["backup tasks"],
             "extra work": numbers["extra work"]}
            for (name, numbers), paper in zip(kept.items(), FIGURE3_PAPER.values(),
                                              strict=True)]


@checked
def sampled_partitioner(records: Sequence, mapper: Callable, partitions: int, *,
                        share: float = 0.1) -> Callable[[Any, int], int]:
    """A partitioner built from a sample (TeraSort's trick against skew): run
    the mapper over the first `share` of the records, then hand out the keys
    seen, heaviest first (in bytes of map output), each to the partition with
    the least sampled load so far; keys missing from the sample are hashed."""
    partitions = require_int("partitions", partitions, minimum=1)
    counts: dict[Any, int] = {}
    for record in records[:max(1, round(share * len(records)))]:
        for pair in mapper(record):
            counts[pair[0]] = counts.get(pair[0], 0) + mapreduce.pairs_size([pair])
    load, table = [0] * partitions, {}
    for key in sorted(counts, key=lambda k: (-counts[k], repr(k))):
        lightest = load.index(min(load))
        table[key] = lightest
        load[lightest] += counts[key]

    def partition(key: Any, r: int) -> int:
        return table.get(key, mapreduce.hash_partition(key, r))

    return partition


def skew(seed: int = 1, *, workers: int = 8, splits: int = 32,
         partitions: int = 16) -> Result:
    """Word count four ways on the Zipf corpus: hash or sampled partitioning,
    with or without the combiner. data.runs, and data.rows with the job time,
    bytes shuffled, and the largest reduce input over the mean one."""
    records = corpus()
    sampled = sampled_partitioner(records, words, partitions)
    ways = {"hash": (mapreduce.hash_partition, None),
            "hash + combiner": (mapreduce.hash_partition, total),
            "sampled": (sampled, None),
            "sampled + combiner": (sampled, total)}
    runs, rows = {}, []
    for name, (partitioner, combiner) in ways.items():
        run = runs[name] = mapreduce.run(
            words, total, records, workers=workers, splits=splits,
            partitions=partitions, seed=seed, partitioner=partitioner,
            combiner=combiner)
        inputs = list(run.reduce_inputs().values())
        rows.append({"partitioning": name, "job time (s)": run.duration,
                     "KB shuffled": run.bytes_shuffled / 1e3,
                     "largest / mean reduce input": max(inputs) * len(inputs)
                     / sum(inputs)})
    return Result("skew", {"workers": workers, "splits": splits,
                           "partitions": partitions}, seed, Metrics(),
                  data=Runs(runs=runs, rows=rows))


#: The playground's backup policies, by name (None: backup tasks off).
MAPREDUCE_BACKUPS: Mapping[str, mapreduce.Backups | None] = MappingProxyType({
    "oldest": mapreduce.Backups(), "time_left": mapreduce.Backups(pick="time_left"),
    "off": None})


@checked
def mapreduce_playground(seed: int = 1, *, job: str = "word count",
                         workers: int = 8, splits: int = 32, partitions: int = 8,
                         combiner: bool = False, straggler: float = 1.0,
                         backups: str = "oldest", down: Sequence[int] = (),
                         kill_at: float = 60.0) -> mapreduce.MapReduceResult:
    """One job of MAPREDUCE_JOBS on the corpus: the last worker is `straggler`
    times slower, the workers numbered in `down` (0-based) crash at `kill_at`
    seconds and stay down, `backups` names a MAPREDUCE_BACKUPS policy."""
    if job not in MAPREDUCE_JOBS:
        raise ConfigError(f"job must be one of {list(MAPREDUCE_JOBS)}, got {job!r}")
    if backups not in MAPREDUCE_BACKUPS:
        raise ConfigError(f"backups must be one of {list(MAPREDUCE_BACKUPS)}, "
                          f"got {backups!r}")
    mapper, reducer, combine = MAPREDUCE_JOBS[job]
    if combiner and combine is None:
        raise ConfigError(f"{job} has no combiner: its reduce does not take its "
                          f"own output as input")
    workers = require_int("workers", workers, minimum=1)
    straggler = require_number("straggler", straggler, minimum=1.0)
    slow = {f"w{workers}": straggler} if straggler > 1 else None
    policy = MAPREDUCE_BACKUPS[backups]
    return mapreduce.run(
        mapper, reducer, corpus(), workers=workers, seed=seed, splits=splits,
        partitions=partitions, combiner=combine if combiner else None,
        stragglers=slow, crash={f"w{i + 1}": kill_at for i in down},
        backup_tasks=policy or False)
