"""How a capstone run (notebook 09) is judged: the service-level objective
(`SLO`), one row per objective (`slo_rows`), the scorecard table and a
one-line `verdict`, and the `TuningJournal` of runs compared knob by knob
(one `JournalEntry` per run).

A scorecard may carry a 95 % interval for the p99 and the availability: the
sampling error of one run's requests taken as independent draws (order
statistics for the percentile, Wilson's score interval for the share). Faults
make failures and slow requests cluster, so the spread from seed to seed is
wider; `labkit.sweeps.tune` measures that one, over several seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_number,
    require_probability,
)
from labkit.metrics import Result

from .scenario import CAPSTONE_KNOBS, CapstoneRun


@dataclasses.dataclass(frozen=True)
class SLO:
    """A service-level objective (服务等级目标) over one whole run: the p99 of
    every user request's latency, end to end, at most `p99_ms`; the share of
    requests that succeed at least `availability`; at most `lost_writes`
    acknowledged writes lost."""

    p99_ms: float = 400.0
    availability: float = 0.999
    lost_writes: int = 0

    def __post_init__(self):
        require_number("p99_ms", self.p99_ms, positive=True)
        require_probability("availability", self.availability)
        require_int("lost_writes", self.lost_writes, minimum=0)


#: The normal quantile of a two-sided 95 % interval.
Z95 = 1.959964


def percentile_interval(values, q: float) -> tuple[float, float]:
    """A distribution-free 95 % interval for the q-th percentile (0 < q < 100)
    of independent draws `values`: the order statistics at ranks n·p ± 1.96
    √(n·p·(1-p)), the normal approximation of the binomial count below the
    percentile (clipped to the smallest and largest value)."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0 or not 0 < q < 100:
        raise ConfigError(f"a percentile interval needs values and 0 < q < 100, got "
                          f"{x.size} values and q = {q!r}")
    p, n = q / 100, x.size
    half = Z95 * math.sqrt(n * p * (1 - p))
    low = min(max(math.floor(n * p - half), 0), n - 1)
    return float(x[low]), float(x[min(max(math.ceil(n * p + half), 0), n - 1)])


def share_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95 % score interval for a share `successes` / `n` of
    independent trials."""
    if n <= 0 or not 0 <= successes <= n:
        raise ConfigError(f"a share needs 0 <= successes <= n and n > 0, got "
                          f"{successes} of {n}")
    p, z2 = successes / n, Z95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


@checked
def slo_rows(result: Result, slo: SLO = SLO(), *,
             interval: bool = False) -> list[dict[str, Any]]:
    """One row per objective: metric, objective, measured (in the metric's
    unit: ms, %, writes), with `interval` the 95 % interval of the p99 and the
    availability (see the module; "" for the lost writes, a count), and
    whether it is met."""
    if not isinstance(result, Result) or not isinstance(result.data, CapstoneRun):
        raise ConfigError(f"scorecard needs a scenarios.capstone result, got "
                          f"{result!r}")
    if not isinstance(slo, SLO):
        raise ConfigError(f"slo must be a scenarios.SLO, got {slo!r}")
    s = result.data.summary
    p99, available = round(s["p99 (ms)"], 1), round(100 * s["availability"], 3)
    rows = [
        {"metric": "p99 latency (ms)", "objective": f"≤ {slo.p99_ms:g}",
         "measured": p99, "met": bool(p99 <= slo.p99_ms)},
        {"metric": "availability (%)", "objective": f"≥ {100 * slo.availability:g}",
         "measured": available, "met": bool(available >= 100 * slo.availability)},
        {"metric": "lost acknowledged writes", "objective": f"≤ {slo.lost_writes}",
         "measured": s["lost acked writes"],
         "met": bool(s["lost acked writes"] <= slo.lost_writes)}]
    if interval:
        low, high = percentile_interval(result.metrics["latency"].values, 99)
        share = share_interval(round(s["availability"] * s["requests"]),
                               s["requests"])
        spans = [(1e3 * low, 1e3 * high, 1), (100 * share[0], 100 * share[1], 3)]
        for row, (lo, hi, digits) in zip(rows, spans, strict=False):
            row["95 % interval"] = f"{lo:.{digits}f} – {hi:.{digits}f}"
        rows[2]["95 % interval"] = ""
        for row in rows:
            row["met"] = row.pop("met")              # keep "met" the last column
    return rows


@checked
def scorecard(result: Result, slo: SLO = SLO(), *, interval: bool = False):
    """The run against the SLO as a pandas table: objective, measured value
    (with `interval`, its 95 % interval: see slo_rows) and whether it is met,
    one row per metric."""
    import pandas as pd  # here: only the notebook's tables need it

    return pd.DataFrame(slo_rows(result, slo, interval=interval)).set_index("metric")


@checked
def verdict(result: Result, slo: SLO = SLO()) -> str:
    """One line: "meets the SLO", or which objectives it misses and by what."""
    missed = [f"{row['metric']} {row['measured']:g} (wants {row['objective']})"
              for row in slo_rows(result, slo) if not row["met"]]
    return "meets the SLO" if not missed else "misses " + "; ".join(missed)


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    """One run in a `TuningJournal`: its number, the note, what changed since
    the run before, the seed, the knobs (with "kill": the nodes killed, or
    "none"), what each objective measured (by the scorecard's metric names),
    whether it meets the SLO and which objectives it misses."""

    run: int
    note: str
    changed: str
    seed: int
    knobs: dict[str, Any]
    measured: dict[str, Any]
    meets_slo: bool
    misses: str

    def row(self) -> dict[str, Any]:
        """The entry as a row of the journal's table."""
        return {"run": self.run, "note": self.note, "changed": self.changed,
                "seed": self.seed, **self.knobs, **self.measured,
                "meets SLO": self.meets_slo, "misses": self.misses}


class TuningJournal:
    """A lab notebook of capstone runs: each run's knobs, what changed since the
    run before, and its score against one SLO, so runs with the same seed and
    one knob changed can be compared. `table()` shows it."""

    def __init__(self, slo: SLO = SLO()):
        if not isinstance(slo, SLO):
            raise ConfigError(f"slo must be a scenarios.SLO, got {slo!r}")
        self.slo = slo
        self.entries: list[JournalEntry] = []
        self._last: Mapping[str, Any] | None = None

    def record(self, result: Result, note: str = "") -> JournalEntry:
        """Append one run; returns its entry."""
        scores = slo_rows(result, self.slo)
        knobs = {k: result.params[k] for k in CAPSTONE_KNOBS}
        knobs["kill"] = ",".join(result.params["kill"]) or "none"
        if self._last is None:
            changed = "first run"
        else:
            changed = ", ".join(f"{k} {self._last[k]}→{v}" for k, v in knobs.items()
                                if self._last[k] != v) or "nothing"
        entry = JournalEntry(
            run=len(self.entries) + 1, note=note, changed=changed, seed=result.seed,
            knobs=knobs, measured={s["metric"]: s["measured"] for s in scores},
            meets_slo=all(s["met"] for s in scores),
            misses=", ".join(s["metric"] for s in scores if not s["met"]))
        self.entries.append(entry)
        self._last = knobs
        return entry

    def table(self):
        """The journal as a pandas table, one row per run."""
        import pandas as pd  # here: only the notebook's tables need it

        return pd.DataFrame([e.row() for e in self.entries]).set_index("run")

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        met = sum(entry.meets_slo for entry in self.entries)
        return f"TuningJournal({len(self.entries)} runs, {met} meet the SLO)"
