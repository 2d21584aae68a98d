"""Automatic tuning against a service-level objective: `tune`.

Optuna's TPE sampler, seeded, proposes knob settings; each setting runs over
several seeds (through `sweep`, on the same Dask client as the other settings
of its round), and each SLO metric gets a mean and a 95 % confidence interval
over those seeds. A setting meets the SLO when the pessimistic end of every
interval does (the upper end of a "<=" bound, the lower end of a ">="), and
the best setting is the one of those with the lowest mean of the metric to
minimize. The sampler hears of the SLO as constraints, so it learns where the
feasible region lies as well as where the objective is low.

Settings are asked for in rounds of `batch` and told back in the order they
were asked, so the trials are the same for a given sampler seed and batch,
whatever the cluster. A setting asked for again is not run again: its rows are
reused (a run depends on its params and seed alone).

A round runs its settings one seed at a time, and a setting stops as soon as
its seeds so far prove that it cannot meet the SLO, whatever its other seeds
would show (`reachable_ends`): a race, in the manner of F-Race and Optuna's
pruners, but one that never stops a setting that could have met the SLO, so it
finds the same feasible settings for fewer runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.errors import ConfigError, Unavailable, require_int, require_number
from labkit.scenarios import SLO

from .runs import (
    check_seeds,
    client_scope,
    collect,
    grid_points,
    progress_bar,
    scenario_name,
)

OPTUNA_HINT = "Optuna is not installed: pip install optuna"
#: Student's t, two-sided 95 %, by degrees of freedom (a df between two entries
#: takes the smaller df's value: the wider, safer interval).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
       8: 2.306, 9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042,
       60: 2.000, 120: 1.980}
#: The columns of a capstone run's row that `scenarios.SLO` bounds.
CAPSTONE_COLUMNS = {"p99_ms": "summary.p99 (ms)",
                    "availability": "summary.availability",
                    "lost_writes": "summary.lost acked writes"}
OPERATORS = ("<=", ">=")


def t95(df: int) -> float:
    return T95[max(k for k in T95 if k <= df)]


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95 % confidence interval (Student's
    t, at least two values)."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) < 2:
        got = f"{len(x)}" if x.ndim == 1 else f"an array of shape {x.shape}"
        raise ConfigError(f"interval needs a flat list of at least two numbers "
                          f"(one per seed), got {got}")
    mean = float(x.mean())
    half = t95(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def reachable_ends(values: Sequence[float], n: int) -> tuple[float, float]:
    """(lowest high end, highest low end) that the 95 % interval of n values
    can still reach when `values` are k of them (1 <= k <= n) and the other
    n - k may be anything: how good a figure can still turn out to be. With
    k = n, the interval's own ends; (-inf, inf) when the rest could move
    either end without limit; NaN when a value is NaN (so is the interval).

    Why it is exact: the interval's high end, mean + t * sd / sqrt(n), is a
    convex function of the n - k free values and does not change when they are
    permuted, so its minimum is reached with all of them equal, at y = a + d
    (a, v: the mean and the sum of squared deviations of `values`). Then the
    mean is a + (n-k) d / n and the sum of squared deviations v + k (n-k) d² / n,
    and minimizing over d gives a + sqrt(v (t² / (n (n-1)) - (n-k) / (n k))),
    unbounded below when the bracket is negative. The low end mirrors it. With
    one value and n <= 4 seeds the bracket is zero: the high end can never fall
    below any single seed's value (Samuelson's inequality), so one seed that
    misses a bound decides."""
    k = len(values)
    if not 1 <= k <= n or n < 2:
        raise ConfigError(f"reachable_ends needs 1 to n values of n >= 2, got "
                          f"{k} of n = {n}")
    if k == n:
        _, low, high = interval(values)
        return high, low
    x = np.asarray(values, dtype=float)
    a = float(x.mean())
    if math.isnan(a):
        return math.nan, math.nan
    room = t95(n - 1) ** 2 / (n * (n - 1)) - (n - k) / (n * k)
    if room < 0:
        return -math.inf, math.inf
    half = math.sqrt(float(((x - a) ** 2).sum()) * room)
    return a + half, a - half


def slo_bounds(slo) -> dict[str, tuple[str, float]]:
    """{column: (operator, limit)} from a mapping of that shape, or from a
    `scenarios.SLO` (the capstone's: p99, availability, lost writes)."""
    if isinstance(slo, SLO):
        return {CAPSTONE_COLUMNS["p99_ms"]: ("<=", slo.p99_ms),
                CAPSTONE_COLUMNS["availability"]: (">=", slo.availability),
                CAPSTONE_COLUMNS["lost_writes"]: ("<=", slo.lost_writes)}
    if not isinstance(slo, Mapping) or not slo:
        raise ConfigError(f"slo must be a scenarios.SLO or a mapping {{column: "
                          f"('<=' or '>=', limit)}}, got {slo!r}")
    bounds = {}
    for column, bound in slo.items():
        if (not isinstance(column, str) or not isinstance(bound, tuple)
                or len(bound) != 2 or bound[0] not in OPERATORS):
            raise ConfigError(f"slo[{column!r}] must be ('<=' or '>=', limit), "
                              f"got {bound!r}")
        bounds[column] = (bound[0], require_number(f"slo[{column!r}]", bound[1]))
    return bounds


def distributions(scenario: Callable, space) -> dict[str, Any]:
    """Optuna distributions from a space {knob: spec}: a list or tuple of
    choices, a range of ints, or an optuna distribution (FloatDistribution for
    a continuous knob, e.g. FloatDistribution(0.05, 2.0, log=True))."""
    import optuna

    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"space must be a non-empty mapping {{knob: choices, "
                          f"range or optuna distribution}}, got {space!r}")
    grid_points(scenario, [dict.fromkeys(space)])          # knob names exist
    out = {}
    for knob, spec in space.items():
        if isinstance(spec, optuna.distributions.BaseDistribution):
            out[knob] = spec
        elif isinstance(spec, range):
            if len(spec) == 0:
                raise ConfigError(f"space[{knob!r}] is an empty range")
            out[knob] = optuna.distributions.IntDistribution(
                spec[0], spec[-1], step=abs(spec.step)) if spec.step > 0 else \
                optuna.distributions.CategoricalDistribution(list(spec))
        elif isinstance(spec, list | tuple) and spec:
            if not all(c is None or isinstance(c, bool | int | float | str)
                       for c in spec) or len(set(spec)) != len(spec):
                raise ConfigError(f"space[{knob!r}] choices must be distinct "
                                  f"numbers, strings, bools or None, got {spec!r}")
            out[knob] = optuna.distributions.CategoricalDistribution(tuple(spec))
        else:
            raise ConfigError(f"space[{knob!r}] must be a non-empty list of "
                              f"choices, a range or an optuna distribution, got "
                              f"{spec!r}")
    return out


@dataclass(frozen=True, repr=False)
class Tuning:
    """What `tune` found: `best` (the knobs of the best setting that meets the
    SLO, or None), `trials` (a DataFrame, one row per trial: its knobs, each
    metric's mean, low and high, how many seeds it ran and whether it stopped
    early, whether it meets the SLO, whether it is on the Pareto front of the
    SLO metrics of the trials that ran every seed, whether it is the best) and
    `runs` (scenario runs it took; a setting asked for twice runs once)."""

    scenario: str
    knobs: tuple[str, ...]
    slo: Mapping[str, tuple[str, float]]
    minimize: str
    trials: Any
    best: Mapping[str, Any] | None
    runs: int

    def plot(self, title: str | None = None):
        """Knob values against the SLO metrics, one panel each; the Pareto front
        and the best trial marked (labkit.plot.tuning_trials)."""
        from labkit.plot.tuning import tuning_trials

        return tuning_trials(self.trials, self.knobs, self.slo, minimize=self.minimize,
                             title=title or f"Tuning {self.scenario}")

    def __repr__(self) -> str:
        found = "none meets the SLO" if self.best is None else f"best {dict(self.best)}"
        stopped = int(self.trials["stopped early"].sum())
        return (f"Tuning({self.scenario!r}, {len(self.trials)} trials, {self.runs} "
                f"runs, {stopped} stopped early, {found})")


def _check_columns(rows: list[dict], columns: list[str]) -> None:
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise ConfigError(f"the runs have no column {missing}; the columns are "
                          f"{list(rows[0])}")


def _summaries(rows: list[dict], columns: list[str], n: int) -> dict[str, tuple]:
    """{column: (mean, low, high)} over one setting's rows; low and high are NaN
    for a setting stopped before its n-th seed (it has no interval)."""
    if len(rows) == n:
        return {c: interval([r[c] for r in rows]) for c in columns}
    return {c: (float(np.mean([r[c] for r in rows])), math.nan, math.nan)
            for c in columns}


def _slack(rows: list[dict], n: int, bounds: Mapping[str, tuple]) -> list[float]:
    """One number per bound: how far the pessimistic end of its interval over n
    seeds lies beyond the bound at best, given the seeds run so far (<= 0: it
    can still meet it; with all n seeds, it does). inf where the figure is
    undefined or infinite on some seed (NaN: e.g. a percentile of no completed
    request), which meets no bound."""
    slack = []
    for column, (op, limit) in bounds.items():
        high, low = reachable_ends([r[column] for r in rows], n)
        s = high - limit if op == "<=" else limit - low
        slack.append(s if math.isfinite(s) or s < 0 else math.inf)
    return slack


def _race(scenario, settings: Mapping[tuple, dict], seeds: list[int], bounds,
          columns: list[str], stop_early: bool, **run) -> dict[tuple, list[dict]]:
    """Each setting's rows: with stop_early, one seed at a time, and a setting
    whose rows so far already miss the SLO (`_slack` > 0) runs no further seed;
    without, every seed in one go (one batch of runs for the cluster)."""
    rows: dict[tuple, list[dict]] = {key: [] for key in settings}
    going = list(settings)
    for stage in ([seed] for seed in seeds) if stop_early else [seeds]:
        if not going:
            break
        found = collect(scenario, [settings[key] for key in going], stage, **run)
        _check_columns(found, columns)
        for i, key in enumerate(going):       # found is in (setting, seed) order
            rows[key].extend(found[i * len(stage):(i + 1) * len(stage)])
        if stop_early:
            going = [key for key in going
                     if max(_slack(rows[key], len(seeds), bounds)) <= 0]
    return rows


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def pareto(points: np.ndarray) -> np.ndarray:
    """Which rows of `points` (smaller is better in every column) no other row
    dominates (at least as good everywhere, strictly better somewhere)."""
    front = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        better_or_equal = np.all(points <= p, axis=1)
        strictly = np.any(points < p, axis=1)
        front[i] = not np.any(better_or_equal & strictly)
    return front


def _frame(records: list[dict], bounds, minimize):
    import pandas as pd

    trials = pd.DataFrame(records)
    columns = list(dict.fromkeys([*bounds, minimize]))
    signs = [1.0 if bounds.get(c, ("<=",))[0] == "<=" else -1.0 for c in columns]
    means = trials[[f"{c} mean" for c in columns]].to_numpy(dtype=float) * signs
    # A setting stopped early has means over fewer seeds: it is not compared.
    complete = ~trials["stopped early"].to_numpy(dtype=bool)
    front = np.zeros(len(trials), dtype=bool)
    front[complete] = pareto(np.nan_to_num(means[complete], nan=math.inf))  # NaN: worst
    trials["pareto"] = front
    feasible = trials[trials["meets SLO"]]
    best = None if feasible.empty else int(
        feasible.sort_values(["objective", "trial"], kind="stable")["trial"].iloc[0])
    trials["best"] = trials["trial"] == best
    return trials.set_index("trial"), best


def tune(scenario: Callable, space, slo, *, trials: int, seeds, minimize: str | None
         = None, fixed: Mapping[str, Any] | None = None,
         measure: Callable | None = None, client=None, workers: int = 2,
         batch: int = 4, sampler_seed: int = 0, stop_early: bool = True,
         progress=True) -> Tuning:
    """Search the knobs `space` of `scenario` for the setting that meets `slo`
    with the lowest mean of `minimize` (default: the SLO's first "<=" column),
    over `trials` settings that Optuna's TPE sampler (seeded by `sampler_seed`)
    proposes, `batch` at a time; each setting runs once per seed of `seeds` (at
    least two, for the confidence interval), with `fixed` params added and
    `measure`'s columns (see `sweep`) beside the run's own.

    stop_early: a setting stops at the first seed after which it can no longer
    meet the SLO (see `reachable_ends`; with four seeds or fewer, the first
    seed that misses a bound), and Optuna hears of it as pruned, with how far
    it misses at best; False runs every setting on every seed.
    slo: a `scenarios.SLO` (the capstone's) or {row column: ("<=" | ">=",
    limit)}, the columns being those of `sweep`'s rows. client/workers: as for
    `sweep`; one cluster serves every round. The result does not depend on
    the client or its workers, only on the arguments."""
    try:
        import optuna
    except ImportError as error:
        raise Unavailable(OPTUNA_HINT) from error
    trials = require_int("trials", trials, minimum=1)
    batch = require_int("batch", batch, minimum=1)
    sampler_seed = require_int("sampler_seed", sampler_seed, minimum=0)
    if not isinstance(stop_early, bool):
        raise ConfigError(f"stop_early must be True or False, got {stop_early!r}")
    seeds = check_seeds(seeds)
    if len(seeds) < 2:
        raise ConfigError("tune needs at least two seeds, for a confidence interval")
    fixed = dict(fixed or {})
    shape = distributions(scenario, space)
    clash = sorted(set(fixed) & set(shape))
    if clash:
        raise ConfigError(f"{clash} are both fixed and in the space")
    grid_points(scenario, [fixed] if fixed else [{}])
    bounds = slo_bounds(slo)
    if minimize is None:
        minimize = next((c for c, (op, _) in bounds.items() if op == "<="), None)
    if not isinstance(minimize, str):
        raise ConfigError(f"minimize must name a row column, got {minimize!r}")
    columns = list(dict.fromkeys([*bounds, minimize]))
    seen: dict[tuple, list[dict]] = {}
    records: list[dict] = []
    bar = progress_bar(progress, f"tuning {scenario_name(scenario)}")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)     # no line per trial
    try:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(
            seed=sampler_seed), direction="minimize")
        with client_scope(client, workers) as running:
            for start in bar(range(0, trials, batch), math.ceil(trials / batch)):
                asked = [study.ask(shape) for _ in range(min(batch, trials - start))]
                todo = {}                    # new settings, in the order asked
                for trial in asked:
                    if _key(trial.params) not in seen:
                        todo[_key(trial.params)] = {**fixed, **trial.params}
                seen.update(_race(scenario, todo, seeds, bounds, columns, stop_early,
                                  client=running, batch=None, measure=measure,
                                  progress=False))
                for trial in asked:
                    rows = seen[_key(trial.params)]
                    stats = _summaries(rows, columns, len(seeds))
                    slack = _slack(rows, len(seeds), bounds)
                    for column, value in zip(bounds, slack, strict=True):
                        trial.set_constraint(column, value)
                    stopped = len(rows) < len(seeds)
                    objective = stats[minimize][0]      # NaN tells as the worst
                    if stopped:
                        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    else:
                        study.tell(trial, math.inf if math.isnan(objective)
                                   else objective)
                    records.append({
                        "trial": trial.number, **trial.params,
                        "objective": objective,
                        **{f"{c} {part}": value for c, s in stats.items()
                           for part, value in zip(("mean", "low", "high"), s,
                                                  strict=True)},
                        "seeds run": len(rows), "stopped early": stopped,
                        "meets SLO": all(v <= 0 for v in slack)})
    finally:
        optuna.logging.set_verbosity(verbosity)
    table, best = _frame(records, bounds, minimize)
    return Tuning(scenario_name(scenario), tuple(shape), bounds, minimize, table,
                  None if best is None else {k: records[best][k] for k in shape},
                  sum(map(len, seen.values())))
