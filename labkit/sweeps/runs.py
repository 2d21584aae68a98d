"""Many runs of one scenario, on a Dask cluster: `sweep`, and the row of scalars
(`row`) each run comes back as.

A sweep runs every (params, seed) pair of a grid and a list of seeds. The runs
go to Dask workers in batches (so that a run of milliseconds is not swamped by
the scheduler's overhead per task) and come back as rows of plain numbers,
never whole Results, so memory stays bounded however many runs there are. The
rows are put in (grid point, seed) order before the table is made, so the table
is the same whatever the workers, their number, the batch size or the order in
which batches finish: each run depends on its params and seed alone. A worker
that dies mid-sweep costs only time: the scheduler runs its batches again
elsewhere (a run is a pure function of its inputs, so a rerun gives the same
row).

Where no client is given, `sweep` starts a `distributed.LocalCluster` of
single-threaded worker processes on 127.0.0.1 and stops it, and every worker
process, before it returns, raises, or is interrupted (`local_client`, a
context manager, does the same for several sweeps). workers=0 runs in this
process, without Dask.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from labkit.errors import ConfigError, Unavailable, require_int
from labkit.metrics import Record, Result, record_items

#: Dask's install command, for the error where it is missing.
DASK_HINT = "Dask is not installed: pip install 'dask[distributed]'"
#: Default batching, "guided" (as OpenMP calls it): each batch takes
#: 1/(BATCHES_PER_WORKER x workers) of the runs not yet handed out, so batches
#: shrink as the sweep goes: big ones first (little overhead per run), small
#: ones last (no worker waits long for another's last batch, however unevenly
#: the machine shares its cores)...
BATCHES_PER_WORKER = 4
#: ...but never below 1/(TASKS_PER_WORKER x workers) of all the runs, so a sweep
#: is at most about TASKS_PER_WORKER + BATCHES_PER_WORKER tasks per worker.
TASKS_PER_WORKER = 16
#: The most seeds an iterator may give (a list or range may hold more): past
#: it, the iterator is taken for an endless one, as itertools.count() is.
MAX_SEEDS = 100_000

#: Dask settings of the local cluster: what only a dashboard would show (the
#: event loop's 20 ms blocked-loop check, the 0.5 s system monitor, the
#: workers' sampling profiler) off or rarer, and no work stealing (the
#: scheduler hands out queued batches as workers free up, biggest first). On
#: this 2-core machine they cut the CPU the scheduler spends in the calling
#: process during a sweep by about 60 % (0.3 s instead of 0.5-1.0 s per 500
#: small runs), CPU the workers get instead.
QUIET = {"distributed.admin.tick.interval": "1s",
         "distributed.admin.system-monitor.interval": "5s",
         "distributed.worker.profile.enabled": False,
         "distributed.scheduler.work-stealing": False}

Scalar = bool | int | float | str | None


class RunFailed(RuntimeError):
    """One run of a sweep raised: the message names the scenario, its params and
    seed, and the original error (type and message)."""


# -- one run's row -------------------------------------------------------------

def _scalar(value: Any) -> tuple[bool, Scalar]:
    """(whether `value` is a plain scalar, its Python form)."""
    if isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return True, value
    return False, None


def _put(out: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Add a scalar under `key`, or under "source.key" should the key be taken."""
    ok, value = _scalar(value)
    if ok:
        out[key if key not in out else f"{source}.{key}"] = value


def _items(data: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(data, Record):
        return record_items(data).items()
    if isinstance(data, Mapping):
        return ((str(k), v) for k, v in data.items())
    return ()


def row(result: Result, measure: Callable[[Result], Mapping[str, Any]] | None = None,
        *, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One run as a flat dict of scalars, in this order: `params` (as given; the
    sweep passes the grid point), seed, fingerprint; each metric's numbers (a
    counter's value; a gauge's "name.value", ".time_average" and ".max"; a
    histogram's "name.count", ".mean", ".p50" ... ".max"); the scalar entries
    of `result.data` (its top level, and one level into each mapping, e.g.
    "summary.p99 (ms)"); then what `measure(result)` returns, a mapping of
    names to values: scalars, or small plain data such as a tuple of a run's
    downtimes for a figure (anything that pickles but a Result). A metric or
    data key already taken gets a "metric." or "data." prefix; a measure name
    already taken is an error."""
    if not isinstance(result, Result):
        raise TypeError(f"a scenario must return a labkit Result, got "
                        f"{type(result).__name__}")
    out: dict[str, Any] = dict(params or {})
    out["seed"], out["fingerprint"] = result.seed, result.fingerprint
    for name, numbers in result.metrics.snapshot().items():
        if isinstance(numbers, Mapping):
            for part, value in numbers.items():
                _put(out, f"{name}.{part}", value, "metric")
        else:
            _put(out, name, numbers, "metric")
    for key, value in _items(result.data):
        if isinstance(value, Mapping):
            for part, inner in value.items():
                _put(out, f"{key}.{part}", inner, "data")
        else:
            _put(out, key, value, "data")
    if measure is not None:
        extra = measure(result)
        if not isinstance(extra, Mapping):
            raise TypeError(f"measure must return a mapping of names to values, "
                            f"got {type(extra).__name__}")
        for key, value in extra.items():
            if not isinstance(key, str) or isinstance(value, Result):
                raise TypeError(f"measure returned {key!r}: {value!r}; names must "
                                f"be strings, and values what to keep of the run "
                                f"(numbers, a tuple...), never the whole Result")
            if key in out:
                raise ConfigError(f"measure returned {key!r}, a column the row "
                                  f"already has; name it differently")
            scalar, plain = _scalar(value)
            out[key] = plain if scalar else value
    return out


# -- the plan: what to run -----------------------------------------------------

def scenario_name(scenario: Callable) -> str:
    inner = getattr(scenario, "func", scenario)          # a functools.partial
    return getattr(inner, "__qualname__", type(inner).__name__)


def _check_names(scenario: Callable, names: Iterable[str], what: str) -> None:
    """Every name is a keyword the scenario takes (seed is the sweep's own)."""
    try:
        signature = inspect.signature(scenario)
    except (TypeError, ValueError):                  # a builtin: cannot tell
        return
    kinds = {p.name: p.kind for p in signature.parameters.values()}
    if "seed" not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds.values():
        raise ConfigError(f"{scenario_name(scenario)} takes no seed: a scenario is "
                          f"a function (seed, **params) -> Result")
    takes_any = inspect.Parameter.VAR_KEYWORD in kinds.values()
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{what} keys must be parameter names, got {name!r}")
        if name == "seed":
            raise ConfigError(f"seed cannot be in the {what}: pass seeds=")
        if not takes_any and (name not in kinds or kinds[name] in (
                inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)):
            allowed = [n for n in kinds if n != "seed"]
            raise ConfigError(f"{scenario_name(scenario)} has no parameter "
                              f"{name!r}; it takes {allowed}")


def grid_points(scenario: Callable, grid) -> list[dict[str, Any]]:
    """The parameter sets of a grid: the product of a mapping {name: values} (in
    the mapping's order, the last name varying fastest), or a sequence of
    mappings taken as they are."""
    if not callable(scenario):
        raise TypeError(f"scenario must be a function (seed, **params) -> Result, "
                        f"got {scenario!r}")
    if isinstance(grid, Mapping):
        grid = {name: values.tolist() if isinstance(values, np.ndarray)
                and values.ndim == 1 else values for name, values in grid.items()}
        for name, values in grid.items():
            if isinstance(values, str | bytes | Mapping) or not isinstance(
                    values, Sequence | range):
                raise ConfigError(f"grid[{name!r}] must be a list of values, got "
                                  f"{values!r}; write [{values!r}] for one value")
            if len(values) == 0:
                raise ConfigError(f"grid[{name!r}] is empty; give at least one value")
        _check_names(scenario, grid, "grid")
        names = list(grid)
        points = [dict(zip(names, combo, strict=True))
                  for combo in itertools.product(*(grid[n] for n in names))]
    elif isinstance(grid, Sequence) and not isinstance(grid, str | bytes) and grid:
        if not all(isinstance(p, Mapping) for p in grid):
            raise ConfigError("a grid given as a list must hold mappings "
                              "{param: value}, one per point")
        points = [dict(p) for p in grid]
        _check_names(scenario, dict.fromkeys(k for p in points for k in p), "grid")
    else:
        raise ConfigError(f"grid must be a mapping {{param: [values]}} or a "
                          f"non-empty list of {{param: value}} points, got {grid!r}")
    return points


def check_seeds(seeds) -> list[int]:
    """The seeds as a list of distinct ints (a range, a list...)."""
    if isinstance(seeds, int | str | bytes) or not isinstance(seeds, Iterable):
        raise ConfigError(f"seeds must be a list or range of ints, e.g. range(10), "
                          f"got {seeds!r}")
    if not isinstance(seeds, Sized):       # an iterator: it may never end
        seeds = list(itertools.islice(seeds, MAX_SEEDS + 1))
        if len(seeds) > MAX_SEEDS:
            raise ConfigError(f"seeds gave more than {MAX_SEEDS:,} seeds (an endless "
                              f"iterator such as itertools.count()?): give a list "
                              f"or range, e.g. range(10)")
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("seeds is empty; give at least one seed")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ConfigError(f"seeds must be ints, got {seed!r}")
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        raise ConfigError(f"seeds must be distinct (a repeated seed repeats a run), "
                          f"got {twice} more than once")
    return seeds


# -- running -------------------------------------------------------------------

def run_batch(scenario: Callable, tasks: Sequence[tuple[int, dict, int]],
              measure: Callable | None) -> list[tuple[int, dict[str, Any]]]:
    """Run (index, params, seed) tasks one after another: [(index, row)]. A run
    that raises is reported as RunFailed naming its params and seed; a result
    that makes no row (the scenario returned no Result, `measure` returned no
    mapping) keeps its own error, TypeError or ConfigError, with a note naming
    the run: it is the caller's mistake, not the run's."""
    rows = []
    for index, params, seed in tasks:
        try:
            result = scenario(seed, **params)
        except Exception as error:
            raise RunFailed(f"{_call(scenario, seed, params)} failed: "
                            f"{type(error).__name__}: {error}") from error
        try:
            rows.append((index, row(result, measure, params=params)))
        except Exception as error:
            error.add_note(f"making the row of {_call(scenario, seed, params)}")
            raise
    return rows


def _call(scenario: Callable, seed: int, params: Mapping[str, Any]) -> str:
    """How a run is named in an error: the call that makes it again."""
    return (f"{scenario_name(scenario)}(seed={seed}"
            + "".join(f", {k}={v!r}" for k, v in params.items()) + ")")


@contextmanager
def local_client(workers: int = 2) -> Iterator[Any]:
    """A distributed.Client of a fresh LocalCluster: `workers` single-threaded
    worker processes on 127.0.0.1, no dashboard, labkit's scenarios imported
    in each. Leaving the block (returning, raising or interrupted) closes the
    client and stops the cluster and every process it started."""
    workers = require_int("workers", workers, minimum=1)
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise Unavailable(DASK_HINT) from error
    # No dashboard; the scheduler's own HTTP server (health, metrics) on any
    # free port, not on 8787, which another cluster may hold. QUIET: fewer
    # wake-ups of the scheduler, which runs in this process.
    with dask.config.set(QUIET), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=None,
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                         silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.run(_warm_up)
        yield client


def _warm_up() -> None:
    """Import the scenarios in a worker as it starts, so that its first batch
    of runs does not pay for it (about half a second of CPU); then take what
    the worker holds by now (Dask's own objects, labkit, numpy: over 100,000
    objects) out of the cyclic garbage collector's sight. A run allocates fast
    enough to set off collections that walk all of it: 20-35 ms of a 0.36 s
    capstone run, 7 ms after the freeze."""
    import gc

    import labkit.scenarios  # noqa: F401

    gc.collect()
    gc.freeze()


def client_scope(client, workers: int):
    """A context giving the client to use: the given one (left running), a local
    cluster's (stopped at the end), or None for workers=0 (this process)."""
    if client is not None:
        from distributed import Client

        if not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client, got {client!r}")
        return nullcontext(client)
    if require_int("workers", workers, minimum=0) == 0:
        return nullcontext(None)
    return local_client(workers)


def batch_sizes(runs: int, workers: int, batch: int | None = None) -> list[int]:
    """How many runs each Dask task of a sweep of `runs` takes: `batch` each
    (the last takes the rest), or by default guided by the number of worker
    threads (see BATCHES_PER_WORKER and TASKS_PER_WORKER)."""
    runs = require_int("runs", runs, minimum=0)
    workers = require_int("workers", workers, minimum=1)
    if batch is not None:
        batch = require_int("batch", batch, minimum=1)
        return [min(batch, runs - i) for i in range(0, runs, batch)]
    smallest = math.ceil(runs / (TASKS_PER_WORKER * workers))
    sizes, left = [], runs
    while left:
        sizes.append(min(left, max(smallest,
                                   math.ceil(left / (BATCHES_PER_WORKER * workers)))))
        left -= sizes[-1]
    return sizes


def _batches(tasks: list, client, batch: int | None) -> list[list]:
    """The tasks in batches (`batch_sizes`; in this process, one at a time
    unless `batch` is given)."""
    if client is None:
        sizes = batch_sizes(len(tasks), 1, 1 if batch is None else batch)
    else:
        sizes = batch_sizes(len(tasks), max(sum(client.nthreads().values()), 1), batch)
    starts = itertools.accumulate(sizes, initial=0)
    return [tasks[start:start + size]
            for start, size in zip(starts, sizes, strict=False)]


def _stream(scenario, batches: list[list], measure,
            client) -> Iterator[tuple[int, dict]]:
    """(index, row) of every task as its batch finishes. On an error or an
    interrupt the batches not yet finished are cancelled."""
    if client is None:
        for tasks in batches:
            yield from run_batch(scenario, tasks, measure)
        return
    from distributed import as_completed

    futures = [client.submit(run_batch, scenario, tasks, measure, pure=False)
               for tasks in batches]
    try:
        for future in as_completed(futures):
            yield from future.result()
            future.release()
    finally:
        client.cancel([f for f in futures if not f.done()])


def progress_bar(progress, description: str) -> Callable[[Iterable, int], Iterable]:
    """How to wrap the stream of rows: `progress` True (labkit.widgets.progress
    inside a Jupyter kernel, no bar elsewhere), False, or a function like
    widgets.progress (iterable, total, description) -> iterable."""
    if progress is True:
        if "ipykernel" not in sys.modules:
            return lambda items, total: items
        from labkit.widgets import progress  # the notebook's bar
    if progress is False or progress is None:
        return lambda items, total: items
    if not callable(progress):
        raise TypeError(f"progress must be True, False or a function like "
                        f"labkit.widgets.progress, got {progress!r}")
    return lambda items, total: progress(items, total=total, description=description)


def collect(scenario, points: list[dict], seeds: list[int], *, client, batch,
            measure, progress, description: str | None = None) -> list[dict[str, Any]]:
    """The rows of every (point, seed) pair, in that order, whatever order they
    finish in."""
    if measure is not None and not callable(measure):
        raise TypeError(f"measure must be a function Result -> mapping, got "
                        f"{measure!r}")
    if description is None:
        description = f"{scenario_name(scenario)} runs"
    elif not isinstance(description, str):
        raise TypeError(f"description must be a string (the progress bar's "
                        f"label), got {description!r}")
    tasks = [(i, point, seed) for i, (point, seed)
             in enumerate(itertools.product(points, seeds))]
    bar = progress_bar(progress, description)
    found: list[dict | None] = [None] * len(tasks)
    stream = _stream(scenario, _batches(tasks, client, batch), measure, client)
    for index, values in bar(stream, len(tasks)):
        found[index] = values
    return found


def sweep(scenario: Callable[..., Result], grid, seeds, *, client=None,
          workers: int = 2, batch: int | None = None,
          measure: Callable[[Result], Mapping[str, Any]] | None = None,
          progress=True, description: str | None = None):
    """Run `scenario(seed, **params)` for every params of `grid` and every seed
    of `seeds`; a pandas DataFrame with one row per run, in (grid point, seed)
    order: the params, seed, fingerprint and the run's scalars (see `row`;
    `measure` adds columns of your own).

    grid: {name: [values]} (every combination) or a list of {name: value}.
    client: a distributed.Client to run on (e.g. one connected to a scheduler
    of several machines: Client("tcp://host:8786")); None starts a LocalCluster
    of `workers` processes on 127.0.0.1 and stops it before returning;
    workers=0 runs here, without Dask. batch: runs per Dask task (default:
    `batch_sizes`, big batches first, smaller ones as the sweep ends). The rows
    do not depend on client, workers or batch.
    A failing run raises RunFailed naming its params and seed. progress: a bar
    counting the runs (True: labkit.widgets.progress in a notebook), labelled
    `description` (default "<scenario> runs")."""
    import pandas as pd  # here: the simulated layers below never need it

    points = grid_points(scenario, grid)
    seeds = check_seeds(seeds)
    with client_scope(client, workers) as running:
        rows = collect(scenario, points, seeds, client=running, batch=batch,
                       measure=measure, progress=progress, description=description)
    return pd.DataFrame(rows)

