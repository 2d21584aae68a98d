"""How a capstone run (notebook 09) is judged: the service-level objective
(`SLO`), one row per objective (`slo_rows`), the scorecard table and a
one-line `verdict`, and the `TuningJournal` of runs compared knob by knob.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from labkit.errors import ConfigError, require_int, require_number, require_probability
from labkit.metrics import Result

from .scenario import CAPSTONE_KNOBS


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


def slo_rows(result: Result, slo: SLO = SLO()) -> list[dict[str, Any]]:
    """One row per objective: metric, objective, measured (in the metric's
    unit: ms, %, writes) and whether it is met."""
    if not isinstance(result, Result) or result.scenario != "capstone":
        raise ConfigError(f"scorecard needs a scenarios.capstone result, got "
                          f"{result!r}")
    if not isinstance(slo, SLO):
        raise ConfigError(f"slo must be a scenarios.SLO, got {slo!r}")
    s = result.data["summary"]
    p99, available = round(s["p99 (ms)"], 1), round(100 * s["availability"], 3)
    return [
        {"metric": "p99 latency (ms)", "objective": f"≤ {slo.p99_ms:g}",
         "measured": p99, "met": bool(p99 <= slo.p99_ms)},
        {"metric": "availability (%)", "objective": f"≥ {100 * slo.availability:g}",
         "measured": available, "met": bool(available >= 100 * slo.availability)},
        {"metric": "lost acknowledged writes", "objective": f"≤ {slo.lost_writes}",
         "measured": s["lost acked writes"],
         "met": bool(s["lost acked writes"] <= slo.lost_writes)}]


def scorecard(result: Result, slo: SLO = SLO()):
    """The run against the SLO as a pandas table: objective, measured value and
    whether it is met, one row per metric."""
    import pandas as pd  # here: only the notebook's tables need it

    return pd.DataFrame(slo_rows(result, slo)).set_index("metric")


def verdict(result: Result, slo: SLO = SLO()) -> str:
    """One line: "meets the SLO", or which objectives it misses and by what."""
    missed = [f"{row['metric']} {row['measured']:g} (wants {row['objective']})"
              for row in slo_rows(result, slo) if not row["met"]]
    return "meets the SLO" if not missed else "misses " + "; ".join(missed)


class TuningJournal:
    """A lab notebook of capstone runs: each run's knobs, what changed since the
    run before, and its score against one SLO, so runs with the same seed and
    one knob changed can be compared. `table()` shows it."""

    def __init__(self, slo: SLO = SLO()):
        if not isinstance(slo, SLO):
            raise ConfigError(f"slo must be a scenarios.SLO, got {slo!r}")
        self.slo = slo
        self.rows: list[dict[str, Any]] = []
        self._last: Mapping[str, Any] | None = None

    def record(self, result: Result, note: str = "") -> dict[str, Any]:
        """Append one run; returns its row."""
        scores = slo_rows(result, self.slo)
        knobs = {k: result.params[k] for k in CAPSTONE_KNOBS}
        knobs["kill"] = ",".join(result.params["kill"]) or "none"
        if self._last is None:
            changed = "first run"
        else:
            changed = ", ".join(f"{k} {self._last[k]}→{v}" for k, v in knobs.items()
                                if self._last[k] != v) or "nothing"
        row = {"run": len(self.rows) + 1, "note": note, "changed": changed,
               "seed": result.seed, **knobs,
               **{s["metric"]: s["measured"] for s in scores},
               "meets SLO": all(s["met"] for s in scores),
               "misses": ", ".join(s["metric"] for s in scores if not s["met"])}
        self.rows.append(row)
        self._last = knobs
        return row

    def table(self):
        """The journal as a pandas table, one row per run."""
        import pandas as pd  # here: only the notebook's tables need it

        return pd.DataFrame(self.rows).set_index("run")

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        met = sum(row["meets SLO"] for row in self.rows)
        return f"TuningJournal({len(self.rows)} runs, {met} meet the SLO)"
