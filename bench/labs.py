"""Benchmark of the labs' graders: CPU seconds to grade each part of each lab
with its default seeds, for the worked answer (every scenario runs to its
end) and for an answer that floods the network or spins on timers (every run
is stopped by a budget). Target: under 30 s of CPU per part, on one core.

Run: `.venv/bin/python bench/labs.py` (or `make bench`); `--repeat 3` on a
busy machine keeps the cheapest of three gradings.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from labkit import labs  # noqa: E402

TARGET_CPU = 30.0


class Floods(labs.reference("raft")):
    """Answers every append_entries with messages until the budget stops it."""

    def on_append_entries(self, msg):
        while True:
            self.send(msg.src, "append_entries_ok", term=0, success=False,
                      match_index=0)


class Spins(labs.reference("raft")):
    """Re-arms a timer with no delay until the budget stops it."""

    def on_heartbeat_timeout(self):
        self.set_timer("spin", 0.0, self.on_heartbeat_timeout)


def cpu(lab: str, impl: type, part: str, repeat: int) -> tuple[float, labs.Report]:
    """The least CPU of `repeat` gradings of one part, and the last report."""
    best = math.inf
    for _ in range(repeat):
        start = time.process_time()
        report = labs.grade(lab, impl, part=part)
        best = min(best, time.process_time() - start)
    return best, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1,
                        help="grade each part this many times, keep the least CPU")
    args = parser.parse_args(argv)
    print(f"labkit labs benchmark  (Python {platform.python_version()})")
    print(f"{'lab':<11}{'part':<19}{'answer':<11}{'runs':>6}{'passed':>8}"
          f"{'CPU s':>8}")
    worst = 0.0
    answers = {lab: [("reference", labs.reference(lab))] for lab in labs.LABS}
    answers["raft"] += [("floods", Floods), ("spins", Spins)]
    for lab, impls in answers.items():
        for part in labs.parts(lab):
            for name, impl in impls:
                seconds, report = cpu(lab, impl, part, args.repeat)
                worst = max(worst, seconds)
                passed = len(report.runs) - len(report.failures)
                print(f"{lab:<11}{part:<19}{name:<11}{len(report.runs):>6}"
                      f"{passed:>8}{seconds:>8.2f}")
    print(f"target: every part under {TARGET_CPU:g} s CPU: "
          f"{'met' if worst < TARGET_CPU else 'NOT met'} (worst {worst:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
