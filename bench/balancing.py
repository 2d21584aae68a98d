"""Supermarket-model benchmark: labkit.balancing against SimPy in one process.

Poisson arrivals at rate 0.9 per server to 100 FIFO servers with Exp(1)
service; each arrival samples d = 2 servers and joins the shorter queue
(Mitzenmacher's supermarket model). Both simulators run the same model for
the same number of arrivals; the script prints arrivals per wall-clock second
for SimPy and for both labkit engines, and the ratios.

Run: `.venv/bin/python bench/balancing.py` (or `make bench`); `--arrivals`
makes it smaller.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from labkit import balancing, queueing  # noqa: E402

SERVERS, LOAD, D, SEED = 100, 0.9, 2, 1


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


def rate(model: Callable[[int, int], float], arrivals: int) -> tuple[float, float]:
    """(arrivals per wall-clock second, mean time in system) of one run."""
    start = time.perf_counter()
    mean = model(arrivals, SEED)
    return arrivals / (time.perf_counter() - start), mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=int, default=1_000_000)
    arrivals = parser.parse_args().arrivals
    print(f"supermarket model: {SERVERS} servers, d={D}, load={LOAD}, "
          f"{arrivals:,} arrivals (n -> infinity: mean time in system "
          f"{queueing.power_of_d(LOAD, D):.4f})")
    rows = {"SimPy": rate(simpy_supermarket, arrivals),
            "labkit events": rate(labkit_supermarket("events"), arrivals),
            "labkit fast": rate(labkit_supermarket("fast"), arrivals)}
    simpy_rate = rows["SimPy"][0]
    for name, (per_second, mean) in rows.items():
        print(f"{name:>14}: {per_second:>10,.0f} arrivals/s   mean time in system "
              f"{mean:.4f}   {per_second / simpy_rate:4.1f}x SimPy")
    print(f"ratio, simulate()'s default (fast) engine vs SimPy: "
          f"{rows['labkit fast'][0] / simpy_rate:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
