"""Simulated queues against closed forms and against a second implementation.

`labkit.service.Station` fed by Poisson arrivals must reproduce Erlang C
(M/M/c), Pollaczek-Khinchine (M/D/1, M/G/1) and Little's law, and agree with
the same M/M/c queue written independently in SimPy.

How long to run. Successive response times in a queue are strongly correlated
(a customer who waited long is followed by others who wait long), so the
variance of their mean is far above Var(T)/n. `customers_needed` sizes each run
with the heavy-traffic rule of thumb: the queue content behaves like reflected
Brownian motion with drift -delta = -(c mu - lambda) and variance
sigma^2 = lambda c_a^2 + c mu c_s^2 per unit time, and the time average of that
process over a time t has variance sigma^6 / (2 delta^4 t) (Whitt, "Planning
queueing simulations", Management Science 35, 1989; for M/M/1 it is the exact
asymptotic variance 2 rho (1 + rho) / (mu^2 (1 - rho)^4) as rho -> 1). By
Little's law the mean wait is that average over lambda; with t = n / lambda
and the service times' own noise added,

    n Var(mean T) ~= Var(S) + sigma^6 / (2 delta^4 lambda).

Each run is sized so that its relative standard error is tolerance / Z, and a
correct simulator fails a check about once in 100. The rule is within about
30 % of what batch means measure (above it at moderate load, a little below it
for heavy-tailed service), so every test also measures its standard error by
batch means and checks that the run resolves the tolerance: an error as big as
the tolerance would stand out by at least two standard errors.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import pytest
import simpy

from labkit import dist, queueing
from labkit.service import OpenLoop, Station
from labkit.sim import Simulator

Z = 2.576           # two-sided 99 % normal quantile
Z_CROSS = 3.291     # two-sided 99.9 %, for the two-implementation comparison
BATCHES = 30        # batch means: each batch spans thousands of relaxation times


def customers_needed(rate: float, service: dist.Distribution, servers: int,
                     target: float, tolerance: float) -> int:
    """Customers for the relative standard error of a mean whose true value is
    `target` (W, or Wq) to be tolerance / Z (module docstring)."""
    mu = 1.0 / service.mean
    delta = servers * mu - rate
    sigma2 = rate + servers * mu * service.scv
    per_customer = service.variance + sigma2**3 / (2 * delta**4 * rate)
    return math.ceil(per_customer / target**2 * (Z / tolerance) ** 2)


def relative_se(values: np.ndarray, target: float) -> float:
    """Standard error of the mean of autocorrelated `values` by batch means,
    relative to `target`."""
    usable = len(values) - len(values) % BATCHES
    batches = values[:usable].reshape(BATCHES, -1).mean(axis=1)
    return float(batches.std(ddof=1) / math.sqrt(BATCHES) / target)


def run_station(seed: int, servers: int, rate: float, service: dist.Distribution,
                customers: int) -> Station:
    """A Poisson-fed station: a 5 % warm-up unmeasured, then `customers`."""
    sim = Simulator(seed, trace=False)
    station = Station(sim, servers, service, measure=False)
    OpenLoop(sim, station, rate=rate, requests=customers,
             warmup=max(1000, customers // 20))
    sim.run()
    return station


# -- M/M/c against Erlang C, and Little's law on the same runs ----------------------

# (servers, utilisation, seed). The cost grows like 1/(1 - rho)^2: M/M/10 at 0.9
# (the FACTS example: lambda = 9, mu = 1, W = 1.668732) needs 1.0 M customers,
# but M/M/1 and M/M/2 at 0.9 would need 2.8 M and 2.5 M (over 10 s each), so
# one and two servers are checked up to 0.8.
MMC_CASES = [(1, 0.5, 11), (1, 0.8, 12), (2, 0.5, 13), (2, 0.8, 14),
             (10, 0.5, 15), (10, 0.9, 16)]
MMC_TOLERANCE = 0.03


@functools.cache
def mmc_run(servers: int, rho: float, seed: int):
    service = dist.exponential(1.0)
    theory = queueing.mmc(rho * servers, 1.0, servers)
    n = customers_needed(theory.arrival_rate, service, servers,
                         theory.mean_response, MMC_TOLERANCE)
    return run_station(seed, servers, theory.arrival_rate, service, n), theory


@pytest.mark.parametrize("servers,rho,seed", MMC_CASES)
def test_mmc_mean_time_in_system_matches_erlang_c(servers, rho, seed):
    station, theory = mmc_run(servers, rho, seed)
    measured = station.latency.mean
    error = measured / theory.mean_response - 1
    assert abs(error) < MMC_TOLERANCE, (
        f"M/M/{servers} at rho={rho}: W = {measured:.4f} vs Erlang C "
        f"{theory.mean_response:.4f} ({error:+.2%}), seed={seed}, "
        f"n={station.latency.count}")
    se = relative_se(station.latency.values, theory.mean_response)
    assert 2 * se < MMC_TOLERANCE, f"run too short: relative SE {se:.2%}, seed={seed}"


def test_mmc_example_from_facts():
    theory = queueing.mmc(9.0, 1.0, 10)
    assert theory.wait_probability == pytest.approx(0.668732, abs=1e-6)
    assert theory.mean_response == pytest.approx(1.668732, abs=1e-6)
    assert (10, 0.9, 16) in MMC_CASES        # ...and the simulation checks it


@pytest.mark.parametrize("servers,rho,seed", MMC_CASES)
def test_littles_law_on_the_same_runs(servers, rho, seed):
    station, _ = mmc_run(servers, rho, seed)
    stats = station.stats()
    # L from the gauge's time average, lambda from arrivals over the measured
    # time, W from the latency histogram: three independent measurements.
    predicted = stats["arrival_rate"] * stats["mean_latency"]
    assert stats["in_system"] == pytest.approx(predicted, rel=0.01), f"seed={seed}"


def test_measured_utilisation_is_the_offered_load():
    station, theory = mmc_run(10, 0.9, 16)
    assert station.stats()["utilisation"] == pytest.approx(theory.utilisation,
                                                           rel=0.01)


# -- one server, general service: Pollaczek-Khinchine ------------------------------

PK_TOLERANCE = 0.05          # on the mean wait Wq, which is noisier than W
PK_LOAD = 0.7
PK_SERVICES = {
    "deterministic": dist.constant(1.0),
    "bimodal": dist.bimodal(1.0, 10.0, 0.05),     # 5 % of requests 10x slower
}


@pytest.mark.parametrize("name,seed", [("deterministic", 21), ("bimodal", 23)])
def test_mg1_mean_wait_matches_pollaczek_khinchine(name, seed):
    service = PK_SERVICES[name]
    rate = PK_LOAD / service.mean
    theory = queueing.mg1(rate, service.mean, service.second_moment)
    n = customers_needed(rate, service, 1, theory.mean_wait, PK_TOLERANCE)
    station = run_station(seed, 1, rate, service, n)
    waits = station.latency.values - service.mean
    error = waits.mean() / theory.mean_wait - 1
    assert abs(error) < PK_TOLERANCE, (
        f"M/G/1 {name}: Wq = {waits.mean():.4f} vs P-K {theory.mean_wait:.4f} "
        f"({error:+.2%}), seed={seed}, n={n}")
    se = relative_se(waits, theory.mean_wait)
    assert 2 * se < PK_TOLERANCE, f"run too short: relative SE {se:.2%}, seed={seed}"


def test_md1_is_pollaczek_khinchine_with_constant_service():
    # M/D/1's own formula and P-K with E[S^2] = E[S]^2 are one result.
    assert queueing.md1(0.7, 1.0).mean_wait == pytest.approx(
        queueing.mg1(0.7, 1.0, 1.0).mean_wait)


# -- the same queue, written independently in SimPy --------------------------------

def simpy_mmc(servers: int, rate: float, mean_service: float, customers: int,
              warmup: int, seed: int) -> np.ndarray:
    """Response times of M/M/c customers (after `warmup`) using SimPy's FIFO
    Resource: a second implementation sharing no code with labkit."""
    env = simpy.Environment()
    counter = simpy.Resource(env, capacity=servers)
    arrivals, services = random.Random(f"{seed}:a"), random.Random(f"{seed}:s")
    times: list[float] = []

    def customer(index: int):
        arrived = env.now
        with counter.request() as turn:
            yield turn
            yield env.timeout(services.expovariate(1.0 / mean_service))
        if index >= warmup:
            times.append(env.now - arrived)

    def source():
        for index in range(warmup + customers):
            yield env.timeout(arrivals.expovariate(rate))
            env.process(customer(index))

    env.process(source())
    env.run()
    return np.array(times)


def test_station_matches_simpy_model():
    servers, rho, seed, customers = 2, 0.5, 31, 120_000
    rate = rho * servers
    ours = run_station(seed, servers, rate, dist.exponential(1.0), customers)
    theirs = simpy_mmc(servers, rate, 1.0, customers, customers // 20, seed)
    w_ours, w_theirs = ours.latency.mean, float(theirs.mean())
    # Independent runs: the difference's SE combines both batch-means SEs.
    se = math.hypot(relative_se(ours.latency.values, 1.0),
                    relative_se(theirs, 1.0))
    assert abs(w_ours - w_theirs) < Z_CROSS * se, (
        f"labkit W = {w_ours:.4f}, SimPy W = {w_theirs:.4f}, bound "
        f"{Z_CROSS * se:.4f} (99.9 %), seed={seed}")
    # The bound must be tight enough to catch a real error (5 % of W here).
    assert Z_CROSS * se < 0.05 * queueing.mmc(rate, 1.0, servers).mean_response
