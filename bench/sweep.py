"""Sweep benchmark: the same runs serially and on a local Dask cluster.

A sweep of `--runs` small M/M/c queue runs (`scenarios.mmc_queue`, a few
milliseconds each) in this process (workers=0), then on a LocalCluster of
`--workers` worker processes on 127.0.0.1 with the default batching and with
one run per Dask task. Prints runs per wall-clock second, the speed-up over
serial (with and without the cluster's start-up) and how much CPU the workers
actually got (on a shared machine, the bound on the speed-up), the scheduling
overhead per task that batching saves, and the peak memory of this process
and of each worker. The tables must be identical, or the script fails.

Run: `.venv/bin/python bench/sweep.py` (`--runs 400` for a quick look). On a
shared 2-core machine the speed-up is bounded by what the other processes
leave free.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from labkit import scenarios  # noqa: E402
from labkit.sweeps import local_client, sweep  # noqa: E402
from labkit.sweeps.runs import BATCHES_PER_WORKER  # noqa: E402

GRID = {"load": [0.5, 0.9], "servers": [1, 2]}


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


def timed(label: str, runs: int, call):
    start = time.perf_counter()
    table = call()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:7.2f} s  {runs / seconds:8.1f} runs/s")
    return table, seconds


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
          f"{args.workers} workers")
    serial, t_serial = timed("serial (this process)", runs, lambda: sweep(
        queue, grid, seeds, workers=0, progress=False))
    start = time.perf_counter()
    with local_client(args.workers) as client:
        t_start = time.perf_counter() - start
        print(f"{'LocalCluster start':<34} {t_start:7.2f} s")
        cpu_before = sum(client.run(cpu_seconds).values())
        batched, t_batched = timed("Dask, default batches", runs, lambda: sweep(
            queue, grid, seeds, client=client, progress=False))
        cores = (sum(client.run(cpu_seconds).values()) - cpu_before) / t_batched
        single, t_single = timed("Dask, one run per task", runs, lambda: sweep(
            queue, grid, seeds, client=client, batch=1, progress=False))
        workers_mb = client.run(peak_mb)
    assert serial.equals(batched) and serial.equals(single), "tables differ"
    batch = -(-runs // (BATCHES_PER_WORKER * args.workers))   # sweep's default
    tasks = -(-runs // batch)
    print(f"speed-up over serial: {t_serial / t_batched:.2f}x "
          f"({t_serial / (t_batched + t_start):.2f}x counting the cluster's start); "
          f"the workers got {cores:.2f} cores' worth of CPU (of {args.workers})")
    print(f"per-task overhead without batching: "
          f"{1e3 * (t_single - t_batched) / (runs - tasks):.2f} ms per extra task "
          f"({runs} tasks instead of {tasks})")
    print(f"peak memory: this process {peak_mb():.0f} MB; workers "
          + ", ".join(f"{mb:.0f} MB" for mb in workers_mb.values()))
    print("identical tables: yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
