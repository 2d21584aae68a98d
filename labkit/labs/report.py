"""What grading returns: a `Report` of `Run`s (one scenario on one seed each)
and the `Failure`s among them.

The report shows as a table, one row per scenario: its part, the seeds that
passed, and the simulated seconds, messages and CPU seconds all its runs took.
Under the table come the failures, each with a one-line call that replays
exactly that run. For the first failure the report keeps the run's `Result`
(its trace up to the moment of failure) and the window of it worth drawing;
`labkit.plot.lab_failure(report)` draws that window as a space-time diagram.
CPU seconds differ from run to run: `frame(cpu=False)` leaves them out.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from labkit.metrics import Result


@dataclass(frozen=True)
class Run:
    """One scenario on one seed: passed or not, and what it cost."""

    scenario: str
    part: str
    seed: int
    passed: bool
    sim_time: float
    messages: int
    cpu: float
    why: str = ""
    at: float | None = None         # simulated time of the failure


@dataclass(frozen=True)
class Failure:
    """A failed run: where (scenario, part, seed), why in plain words, when (in
    simulated seconds, if known), and the call that replays it."""

    scenario: str
    part: str
    seed: int
    why: str
    replay: str
    at: float | None = None

    def __str__(self) -> str:
        when = "" if self.at is None else f" at t = {self.at:.3f} s"
        return (f"{self.scenario} [{self.part}], seed {self.seed}{when}: {self.why}"
                f"\n  replay: {self.replay}")

    def __repr__(self) -> str:
        return f"Failure({self.scenario!r}, seed={self.seed}, why={self.why!r})"


COLUMNS = ("part", "scenario", "seeds passed", "simulated s", "messages", "CPU s")


class Report:
    """The verdict on one implementation: `passed`, `failures`, `runs`, and
    for the first failure its run's `result` and the `window` (start, end) of
    simulated time that shows it."""

    def __init__(self, lab: str, impl: str, parts: tuple[str, ...],
                 runs: tuple[Run, ...], failures: tuple[Failure, ...],
                 result: Result | None = None,
                 window: tuple[float, float] | None = None):
        self.lab, self.impl, self.parts = lab, impl, parts
        self.runs, self.failures = runs, failures
        self.result, self.window = result, window

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def cpu(self) -> float:
        """CPU seconds all runs took."""
        return sum(r.cpu for r in self.runs)

    def rows(self, cpu: bool = True) -> list[dict]:
        """One row per scenario, in grading order (see COLUMNS)."""
        rows: dict[str, dict] = {}
        for r in self.runs:
            row = rows.setdefault(r.scenario, {
                "part": r.part, "scenario": r.scenario, "passed": 0, "seeds": 0,
                "simulated s": 0.0, "messages": 0, "CPU s": 0.0})
            row["passed"] += r.passed
            row["seeds"] += 1
            row["simulated s"] += r.sim_time
            row["messages"] += r.messages
            row["CPU s"] += r.cpu
        out = []
        for row in rows.values():
            passed, seeds = row.pop("passed"), row.pop("seeds")
            row = {"part": row["part"], "scenario": row["scenario"],
                   "seeds passed": f"{passed}/{seeds}",
                   "simulated s": round(row["simulated s"], 3),
                   "messages": row["messages"], "CPU s": round(row["CPU s"], 2)}
            if not cpu:
                del row["CPU s"]
            out.append(row)
        return out

    def frame(self, cpu: bool = True):
        """The table as a pandas DataFrame indexed by scenario."""
        import pandas as pd  # imported here: only notebooks need it

        columns = [c for c in COLUMNS if cpu or c != "CPU s"]
        return pd.DataFrame(self.rows(cpu), columns=columns).set_index("scenario")

    def headline(self) -> str:
        runs, bad = len(self.runs), len(self.failures)
        verdict = "PASSED" if self.passed else "FAILED"
        what = ", ".join(self.parts)
        return (f"{self.lab} lab, {self.impl} ({what}): {verdict}, "
                f"{runs - bad}/{runs} runs passed, {self.cpu:.2f} s CPU")

    def _texts(self) -> list[dict[str, str]]:
        """The rows as text: seconds to two decimals, messages with commas."""
        return [{c: f"{r[c]:.2f}" if c in ("simulated s", "CPU s")
                 else f"{r[c]:,}" if c == "messages" else str(r[c]) for c in COLUMNS}
                for r in self.rows()]

    def __repr__(self) -> str:
        rows = self._texts()
        widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in COLUMNS}
        numeric = ("simulated s", "messages", "CPU s")
        lines = [self.headline(), "  ".join(
            c.rjust(widths[c]) if c in numeric else c.ljust(widths[c])
            for c in COLUMNS)]
        lines += ["  ".join(r[c].rjust(widths[c]) if c in numeric
                            else r[c].ljust(widths[c]) for c in COLUMNS).rstrip()
                  for r in rows]
        lines += self._failure_lines()
        return "\n".join(lines)

    def _failure_lines(self) -> list[str]:
        if not self.failures:
            return []
        lines = [f"{len(self.failures)} failed run(s); the first "
                 f"{min(len(self.failures), SHOWN)}:"]
        for f in self.failures[:SHOWN]:
            lines += [f"- {line}" if i == 0 else f"  {line}"
                      for i, line in enumerate(str(f).splitlines())]
        return lines

    def _repr_html_(self) -> str:
        rows = self._texts()
        head = "".join(f"<th>{c}</th>" for c in COLUMNS)
        body = "".join(
            "<tr>" + "".join(
                f"<td style='color:#d62728'>{html.escape(str(r[c]))}</td>"
                if c == "seeds passed" and r[c].split("/")[0] != r[c].split("/")[1]
                else f"<td>{html.escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>"
            for r in rows)
        parts = [f"<p><b>{html.escape(self.headline())}</b></p>",
                 f"<table><tr>{head}</tr>{body}</table>"]
        if self.failures:
            items = "".join(
                f"<li><b>{html.escape(f.scenario)}</b> [{html.escape(f.part)}], "
                f"seed {f.seed}{'' if f.at is None else f', t = {f.at:.3f} s'}: "
                f"{html.escape(f.why)}<br><code>{html.escape(f.replay)}</code></li>"
                for f in self.failures[:SHOWN])
            more = len(self.failures) - SHOWN
            parts.append(f"<ol>{items}</ol>" + (f"<p>… and {more} more</p>"
                                                if more > 0 else ""))
        return "\n".join(parts)


SHOWN = 5   # failures listed in the table view (all are in .failures)
