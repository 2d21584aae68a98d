"""Side experiments, each a small model of its own rather than a run of
`simulate`: `contention`, the optimistic-concurrency race of Brooker's backoff
post; `fanout`, the tail at scale; `layered_retries`, retries multiplying
across the layers of a call chain.
"""

from __future__ import annotations

import random

from labkit import dist
from labkit.dist import Distribution
from labkit.errors import checked, require_int, require_number, require_probability
from labkit.metrics import Result
from labkit.sim import Simulator

from .backoff import Backoff, RetryBudget


def contention(seed: int = 0, *, clients: int = 10, strategy: str = "full",
               base: float = 0.005, cap: float = 2.0, delay: float = 0.010,
               delay_sd: float = 0.002, trials: int = 1) -> Result:
    """Brooker's race: `clients` clients each update one row once with
    optimistic concurrency (read its version, write if it is unchanged); a
    loser backs off with `strategy`, then reads again. One-way network delay
    |Normal(delay, delay_sd)|. Histograms "calls" (writes per trial) and
    "completion" (seconds until the last client succeeded), one value per trial.
    """
    clients = require_int("clients", clients, minimum=1)
    trials = require_int("trials", trials, minimum=1)
    backoff = Backoff(strategy, base, cap)
    delay = require_number("delay", delay, minimum=0.0)
    delay_sd = require_number("delay_sd", delay_sd, minimum=0.0)
    sim = Simulator(seed, trace=False)
    calls, completion = (sim.metrics.histogram("calls"),
                         sim.metrics.histogram("completion"))
    for trial in range(trials):
        writes, took = _occ_race(sim, clients, backoff, sim.rng(f"jitter.{trial}"),
                                 sim.rng(f"net.{trial}"), delay, delay_sd)
        calls.add(writes)
        completion.add(took)
    return sim.result("contention", {"clients": clients, "strategy": strategy,
                                     "base": base, "cap": cap, "delay": delay,
                                     "delay_sd": delay_sd, "trials": trials})


def _occ_race(sim: Simulator, clients: int, backoff: Backoff,
              jitter: random.Random, net_rng: random.Random, delay: float,
              delay_sd: float) -> tuple[int, float]:
    """Run one race to the end: (writes the row received, seconds it took)."""

    def net() -> float:
        return abs(net_rng.normalvariate(delay, delay_sd))

    start, row = sim.now, {"version": 0, "writes": 0, "last": sim.now}

    def read(retry: int, previous: float | None) -> None:
        # The server reads the version now; the write carrying it arrives after
        # two one-way delays: the read's answer back, the write out again.
        sim.schedule(net() + net(), arrive, row["version"], retry, previous)

    def arrive(version: int, retry: int, previous: float | None) -> None:
        row["writes"] += 1
        won = version == row["version"]         # the conditional write
        row["version"] += won
        sim.schedule(net(), answer, won, retry + 1, previous)

    def answer(won: bool, retry: int, previous: float | None) -> None:
        if won:
            row["last"] = sim.now
            return
        sleep = backoff.delay(retry, jitter, previous)
        sim.schedule(sleep + net(), read, retry, sleep)

    for _ in range(clients):
        sim.schedule(net(), read, 0, None)
    sim.run()
    return row["writes"], row["last"] - start


#: Default leaves of `fanout`: usually ~10 ms, slow ones take 1-2 s.
FAST_LEAF, SLOW_LEAF = dist.lognormal(0.010, 0.050), dist.uniform(1.0, 2.0)


@checked
def fanout(seed: int = 0, *, servers: int = 100, slow_probability: float = 0.01,
           requests: int = 2000, threshold: float = 1.0,
           fast: Distribution | float = FAST_LEAF,
           slow: Distribution | float = SLOW_LEAF) -> Result:
    """The tail at scale: each request waits for all `servers` leaves; a leaf is
    slow (drawn from `slow`) with probability `slow_probability`, else `fast`.
    Histogram "latency" of requests; counter "slow" of requests over `threshold`;
    data["predicted"] = 1 - (1 - p)**n, the share expected to be slow."""
    servers = require_int("servers", servers, minimum=1)
    requests = require_int("requests", requests, minimum=1)
    p = require_probability("slow_probability", slow_probability)
    require_number("threshold", threshold, minimum=0.0)
    sim = Simulator(seed, trace=False)
    latency = sim.metrics.histogram("latency")
    draw = dist.bimodal(fast, slow, p).sampler(sim.rng("leaves"))
    for _ in range(requests):
        latency.add(max(draw() for _ in range(servers)))
    sim.metrics.counter("slow").inc(round(latency.fraction_above(threshold)
                                          * requests))
    return sim.result("fanout", {"servers": servers, "slow_probability": p,
                                 "requests": requests, "threshold": threshold,
                                 "fast": fast, "slow": slow},
                      {"predicted": 1 - (1 - p) ** servers})


def layered_retries(seed: int = 0, *, layers: int = 3, attempts: int = 4,
                    budget: float | None = None, burst: float = 10.0,
                    requests: int = 100, failure: float = 1.0) -> Result:
    """A call chain user -> layer 1 -> ... -> layer `layers` -> database, where
    every layer tries the one below up to `attempts` times (with its own retry
    `budget` ratio, if given) and the database fails with probability `failure`.
    data["calls"][i] = calls that reached depth i per user request (depth 0 is
    layer 1, depth `layers` the database): attempts**i when everything fails."""
    layers = require_int("layers", layers, minimum=1)
    attempts = require_int("attempts", attempts, minimum=1)
    requests = require_int("requests", requests, minimum=1)
    failure = require_probability("failure", failure)
    sim = Simulator(seed, trace=False)
    fails = sim.rng("database").random
    budgets = [None if budget is None else RetryBudget(budget, burst)
               for _ in range(layers)]
    calls = [0] * (layers + 1)

    def call(depth: int):
        calls[depth] += 1
        if depth == layers:
            return fails() >= failure
        if budgets[depth] is not None:
            budgets[depth].on_request()
        for attempt in range(attempts):
            if attempt and budgets[depth] is not None \
                    and not budgets[depth].try_spend():
                return False
            if (yield sim.spawn(call(depth + 1))):
                return True
        return False

    succeeded = 0
    for _ in range(requests):
        user = sim.spawn(call(0))
        sim.run()
        succeeded += user.value
    sim.metrics.counter("succeeded").inc(succeeded)
    return sim.result("layered_retries",
                      {"layers": layers, "attempts": attempts, "budget": budget,
                       "burst": burst, "requests": requests, "failure": failure},
                      {"calls": [c / requests for c in calls]})
