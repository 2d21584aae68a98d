"""Sweep benchmark: the same runs serially and on a local Dask cluster.

A sweep of `--runs` small M/M/c queue runs (`scenarios.mmc_queue`, about 10 ms
each) in this process (workers=0), then on a LocalCluster of `--workers`
worker processes on 127.0.0.1 with the default (guided) batching and with one
run per Dask task. Prints, beside the goal (1.7x on 2 cores), the speed-up
over serial in wall-clock time (with and without the cluster's start-up). On a
shared machine that figure is bounded by what the other processes leave free,
so the script also prints the load average, the share of a core the serial
run got, the cores' worth of CPU the workers got, and the speed-up in CPU
time: the serial run's CPU seconds over the workers' (how much the sweep
spends on scheduling, pickling and rows; what idle cores would give) and over
the busiest worker's. Then the scheduling overhead per task that batching
saves, and the peak memory of this process and of each worker. The tables
must be identical, or the script fails.

Run: `.venv/bin/python bench/sweep.py` (`--runs 400` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from labkit import scenarios  # noqa: E402
from labkit.sweeps import local_client, sweep  # noqa: E402
from labkit.sweeps.runs import batch_sizes  # noqa: E402

GRID = {"load": [0.5, 0.9], "servers": [1, 2]}
#: The issue's goal: speed-up over serial of a 2,000-run sweep on 2 cores.
GOAL = 1.7


def queue(seed, *, load, servers, customers):
    return scenarios.mmc_queue(seed, load=load, servers=servers, customers=customers,
                               warmup=customers // 10)


def peak_mb() -> float:
    """This process's peak resident memory (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time this process has used (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    one, five, _ = os.getloadavg()
    return (f"load average {one:.1f} (1 min), {five:.1f} (5 min) on "
            f"{os.cpu_count()} cores")


class Timed:
    """Wall-clock seconds, this process's CPU seconds and (given a client) each
    worker's CPU seconds spent by `call`."""

    def __init__(self, label: str, runs: int, call, client=None):
        workers = client.run(cpu_seconds) if client is not None else {}
        cpu, start = cpu_seconds(), time.perf_counter()
        self.table = call()
        self.wall = time.perf_counter() - start
        self.cpu = cpu_seconds() - cpu
        after = client.run(cpu_seconds) if client is not None else {}
        self.workers = [after[w] - workers[w] for w in sorted(after) if w in workers]
        where = (f"this process {self.cpu:5.2f} s CPU ({self.cpu / self.wall:.0%} of "
                 f"a core)")
        if self.workers:
            where = (f"workers {sum(self.workers):5.2f} s CPU ("
                     f"{sum(self.workers) / self.wall:.2f} cores' worth), " + where)
        print(f"{label:<28} {self.wall:6.2f} s  {runs / self.wall:7.1f} runs/s  "
              f"{where}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--customers", type=int, default=400,
                        help="measured requests per run (run length)")
    args = parser.parse_args(argv)
    points = len(GRID["load"]) * len(GRID["servers"])
    seeds = range(-(-args.runs // points))
    runs = points * len(seeds)
    grid = {**GRID, "customers": [args.customers]}
    print(f"# {runs} runs of mmc_queue ({args.customers} requests each), "
          f"{args.workers} workers; {load()}")
    serial = Timed("serial (this process)", runs, lambda: sweep(
        queue, grid, seeds, workers=0, progress=False))
    start = time.perf_counter()
    with local_client(args.workers) as client:
        t_start = time.perf_counter() - start
        print(f"{'LocalCluster start':<28} {t_start:6.2f} s  (workers import labkit)")
        batched = Timed("Dask, default batches", runs, lambda: sweep(
            queue, grid, seeds, client=client, progress=False), client)
        single = Timed("Dask, one run per task", runs, lambda: sweep(
            queue, grid, seeds, client=client, batch=1, progress=False), client)
        workers_mb = client.run(peak_mb)
    assert serial.table.equals(batched.table) and serial.table.equals(single.table), \
        "tables differ"
    wall = serial.wall / batched.wall
    verdict = "met" if wall >= GOAL else (
        f"not met here: the serial run got {serial.cpu / serial.wall:.0%} of a core, "
        f"the workers {sum(batched.workers) / batched.wall:.2f} cores' worth")
    started = serial.wall / (batched.wall + t_start)
    print(f"speed-up over serial: {wall:.2f}x wall-clock (goal >= {GOAL}x on "
          f"{args.workers} cores: {verdict}); {started:.2f}x counting the "
          f"cluster's start")
    share = serial.cpu / sum(batched.workers)
    print(f"in CPU time: the workers spent {sum(batched.workers):.2f} s on what took "
          f"{serial.cpu:.2f} s serially ({share:.0%} efficient), so {args.workers} "
          f"idle cores would give about {args.workers * share:.2f}x less the last "
          f"batch's tail; the busiest worker's {max(batched.workers):.2f} s give "
          f"{serial.cpu / max(batched.workers):.2f}x")
    tasks = len(batch_sizes(runs, args.workers))
    print(f"per-task overhead without batching: "
          f"{1e3 * (single.wall - batched.wall) / (runs - tasks):.2f} ms wall, "
          f"{1e3 * (sum(single.workers) - sum(batched.workers)) / (runs - tasks):.2f}"
          f" ms worker CPU per extra task ({runs} tasks instead of {tasks})")
    print(f"peak memory: this process {peak_mb():.0f} MB; workers "
          + ", ".join(f"{mb:.0f} MB" for mb in workers_mb.values()))
    print(f"identical tables: yes; at the end, {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
