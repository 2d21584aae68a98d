"""Benchmark of labkit.check: the published histories of Porcupine and Knossos
(data/peer-histories), each checked for its verdict, timed in CPU seconds.

Run: `.venv/bin/python bench/check.py` (`--repeat 3` on a busy machine keeps the
least CPU of three runs per history). Prints histories per second over the whole
set, the worst case, the two 50-client key-value histories, and for every
non-linearizable history the size of its failure window and what finding the
window cost beside the search itself.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                    # run from a checkout
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))          # the histories' reader and models

from simcore import count  # noqa: E402
from test_peer_histories import EXPECTED, history  # noqa: E402

from labkit.check import SearchTooLarge, linearizable  # noqa: E402


def cpu(path: str, repeat: int, **options) -> tuple[object, float, int]:
    """The check of one history, the least CPU seconds of `repeat` runs (its
    SearchTooLarge, if it is undecided, counts as the result), and its size."""
    ops, model = history(path)
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.process_time()
        try:
            result = linearizable(ops, model=model, **options)
        except SearchTooLarge as exc:
            result = exc
        best = min(best, time.process_time() - start)
    return result, best, len(ops)


def verdict(result: object) -> object:
    return "undecided" if isinstance(result, SearchTooLarge) else result.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=count, default=1,
                        help="time each check this many times, keep the least CPU")
    args = parser.parse_args(argv)
    print(f"labkit.check on the published histories  (Python "
          f"{platform.python_version()}, {len(EXPECTED)} histories)")
    rows = []
    for path in sorted(EXPECTED):
        result, seconds, size = cpu(path, args.repeat, minimize=False)
        rows.append((path, size, verdict(result), seconds))
    wrong = [r for r in rows if r[2] != EXPECTED[r[0]]]
    total = sum(r[3] for r in rows)
    worst = max(rows, key=lambda r: r[3])
    print(f"verdicts as published: {len(rows) - len(wrong)} of {len(rows)} "
          f"(goal: every one, {'met' if not wrong else 'NOT met'})"
          + "".join(f"\n  WRONG {p}: {v} (expected {EXPECTED[p]})"
                    for p, _, v, _ in wrong))
    print(f"all histories: {total:.3f} CPU s, {len(rows) / total:,.0f} histories/s")
    print(f"worst case: {worst[0]} ({worst[1]:,} operations) {worst[3]:.3f} s")
    for path, n, v, seconds in rows:
        if "c50" in path:
            print(f"{path}: {n:,} operations, {v}, {seconds:.3f} s")
    print(f"{'non-linearizable history':<54}{'search s':>9}{'window s':>9}"
          f"{'ratio':>7}{'ops':>5}  minimal")
    for path, _, v, seconds in rows:
        if v is not False:
            continue
        result, both, _ = cpu(path, args.repeat)
        window = max(both - seconds, 0.0)
        ratio = window / seconds if seconds > 0 else math.nan
        print(f"{path:<54}{seconds:>9.4f}{window:>9.4f}{ratio:>7.1f}"
              f"{len(result.window):>5}  {'yes' if result.minimal else 'NO'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
