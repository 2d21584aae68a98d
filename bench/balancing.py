"""Supermarket-model benchmark: labkit.balancing against SimPy in one process.

Poisson arrivals at rate 0.9 per server to 100 FIFO servers with Exp(1)
service; each arrival samples d = 2 servers and joins the shorter queue
(Mitzenmacher's supermarket model). Both simulators run the same model for
the same number of arrivals; the script prints arrivals per CPU second for
SimPy and for both labkit engines, the ratios beside issue 20's goal (8x),
and the peak memory of one labkit run beside its goal (under 100 MB).

Run: `.venv/bin/python bench/balancing.py` (or `make bench`); `--arrivals`
makes it smaller, `--repeat 3` keeps the least CPU of three runs each (the
engines take turns).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))      # bench/simcore.py

from simcore import arguments, banner, interleaved  # noqa: E402

from labkit import balancing, queueing  # noqa: E402

SERVERS, LOAD, D, SEED = 100, 0.9, 2, 1
TARGET_SPEEDUP, TARGET_MB = 8.0, 100.0                # issue 20


def simpy_supermarket(arrivals: int, seed: int) -> float:
    """Mean time in system, with the model written the way SimPy's documentation
    writes queues: a source process, one Resource per server, one process per
    customer."""
    env = simpy.Environment()
    rng = random.Random(seed)
    servers = [simpy.Resource(env, capacity=1) for _ in range(SERVERS)]
    latencies: list[float] = []

    def customer(server: simpy.Resource, service: float):
        arrived = env.now
        with server.request() as turn:
            yield turn
            yield env.timeout(service)
        latencies.append(env.now - arrived)

    def queue_length(server: simpy.Resource) -> int:
        return len(server.users) + len(server.queue)

    def source():
        for _ in range(arrivals):
            yield env.timeout(rng.expovariate(LOAD * SERVERS))
            sampled = [rng.choice(servers) for _ in range(D)]
            env.process(customer(min(sampled, key=queue_length),
                                 rng.expovariate(1.0)))

    env.process(source())
    env.run()
    return sum(latencies) / len(latencies)


def labkit_supermarket(engine: str) -> Callable[[int, int], float]:
    """The same model on labkit.balancing with the given engine."""
    def run(arrivals: int, seed: int) -> float:
        return balancing.simulate("p2c", servers=SERVERS, load=LOAD, d=D,
                                  requests=arrivals, seed=seed,
                                  engine=engine).latency.mean
    return run


def timed(model: Callable[[int, int], float], arrivals: int) -> Callable[[], dict]:
    """One run of `model` as simcore.interleaved takes it: its CPU seconds and
    mean time in system."""
    def run() -> dict:
        start = time.process_time()
        mean = model(arrivals, SEED)
        return {"cpu": time.process_time() - start, "mean": mean}
    return run


def peak_mb(arrivals: int) -> float:
    """Peak memory (MB) Python allocated during one run of `simulate`'s default
    engine, traced by tracemalloc (which slows it: not timed)."""
    tracemalloc.start()
    labkit_supermarket("auto")(arrivals, SEED)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv, __doc__,
                     arrivals=(1_000_000, "arrivals per run (default 1,000,000)"))
    arrivals, repeat = args.arrivals, args.repeat
    banner("balancing", SEED)
    print(f"supermarket model: {SERVERS} servers, d={D}, load={LOAD}, "
          f"{arrivals:,} arrivals (n -> infinity: mean time in system "
          f"{queueing.power_of_d(LOAD, D):.4f}); rates per CPU second")
    runs = interleaved({"SimPy": timed(simpy_supermarket, arrivals),
                        "labkit events": timed(labkit_supermarket("events"), arrivals),
                        "labkit fast": timed(labkit_supermarket("fast"), arrivals)},
                       repeat)
    rates = {name: arrivals / run["cpu"] for name, run in runs.items()}
    for name, run in runs.items():
        print(f"{name:>14}: {rates[name]:>10,.0f} arrivals/s   mean time in system "
              f"{run['mean']:.4f}   {rates[name] / rates['SimPy']:4.1f}x SimPy")
    speedup = rates["labkit fast"] / rates["SimPy"]
    print(f"simulate()'s default (fast) engine vs SimPy: {speedup:.1f}x   "
          f"goal >= {TARGET_SPEEDUP:g}x: "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}")
    peak = peak_mb(arrivals)
    print(f"peak memory of one labkit run, {arrivals:,} arrivals: {peak:.1f} MB   "
          f"goal < {TARGET_MB:g} MB: {'met' if peak < TARGET_MB else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
