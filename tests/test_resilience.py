"""labkit.resilience: each technique against its definition, the presets against
the libraries' documented defaults, the simulation against closed forms."""

from __future__ import annotations

import heapq
import math
import random
import re

import numpy as np
import pytest

from labkit import dist
from labkit.errors import ConfigError
from labkit.resilience import (
    BACKOFF_STRATEGIES,
    CLOSED,
    HALF_OPEN,
    OPEN,
    AdaptiveThrottle,
    Backend,
    Backoff,
    BreakerConfig,
    CircuitBreaker,
    Client,
    Percentile,
    Policy,
    RetryBudget,
    as_fault,
    contention,
    fanout,
    first_entry,
    hystrix,
    layered_retries,
    resilience4j,
    simulate,
    state_at,
)
from labkit.sim import Simulator


class Clock:
    """A hand-cranked clock for driving state machines without a simulator."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def binomial_tolerance(p: float, n: int, z: float = 4.0) -> float:
    """z standard errors of a share estimated from n Bernoulli(p) trials."""
    return z * math.sqrt(p * (1 - p) / n)


# -- backoff -------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("strategy", BACKOFF_STRATEGIES)
def test_backoff_sleeps_stay_in_the_formula_ranges(strategy, seed):
    backoff = Backoff(strategy, base=0.005, cap=2.0)
    rng = random.Random(seed)
    previous = None
    for attempt in range(1, 30):
        sleep = backoff.delay(attempt, rng, previous)
        v = min(2.0, 0.005 * 2**attempt)
        low, high = {
            "none": (0.0, 0.0),
            "exponential": (v, v),
            "full": (0.0, v),
            "equal": (v / 2, v),
            "decorrelated": (0.005, min(2.0, 3 * (previous or 0.005))),
        }[strategy]
        assert low <= sleep <= high, f"seed {seed}, attempt {attempt}: {sleep}"
        previous = sleep


def test_full_jitter_averages_half_the_ceiling():
    backoff, rng, n = Backoff("full", base=0.01, cap=1.0), random.Random(3), 20_000
    mean = sum(backoff.delay(4, rng) for _ in range(n)) / n
    v = 0.16                                    # uniform(0, v): mean v/2, sd v/sqrt(12)
    assert abs(mean - v / 2) < 4 * v / math.sqrt(12 * n)


def test_exponential_backoff_doubles_then_caps():
    delays = Backoff("exponential", base=0.1, cap=1.0).delays(6, random.Random(0))
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_backoff_survives_huge_attempt_numbers():
    assert Backoff("exponential", base=0.1, cap=5.0).ceiling(10_000) == 5.0


def test_a_tiny_base_still_reaches_the_cap():
    # min(cap, base * 2**attempt): 1e-20 * 2**100 is about 1.3e10, far past the cap.
    backoff, rng = Backoff("exponential", base=1e-20, cap=1.0), random.Random(0)
    assert backoff.delay(100, rng) == 1.0
    assert backoff.ceiling(10**6) == 1.0
    assert backoff.ceiling(60) == 1e-20 * 2.0**60          # below the cap: exact


@pytest.mark.parametrize("kwargs", [
    {"strategy": "linear"}, {"base": 0.0}, {"base": -1.0}, {"cap": 0.001},
])
def test_backoff_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        Backoff(**{"strategy": "full", "base": 0.005, "cap": 2.0, **kwargs})


# -- retry budget ----------------------------------------------------------------

def test_retry_budget_earns_one_retry_per_ten_requests_exactly():
    budget = RetryBudget(ratio=0.1, burst=1.0)
    assert budget.try_spend()                   # the bucket starts full
    for _ in range(9):
        budget.on_request()
    assert not budget.try_spend()
    budget.on_request()                         # ten tenths: one whole token
    assert budget.try_spend()
    assert not budget.try_spend()
    assert (budget.spent, budget.denied) == (2, 2)


def test_retry_budget_burst_is_a_ceiling():
    budget = RetryBudget(ratio=0.5, burst=2.0)
    for _ in range(100):
        budget.on_request()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


# -- circuit breaker: resilience4j defaults --------------------------------------------

def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, ok=False)


def test_resilience4j_preset_matches_documented_defaults():
    config = resilience4j()
    assert (config.failure_rate, config.window, config.window_size,
            config.minimum_calls, config.open_duration, config.half_open_calls) == (
        0.5, "count", 100, 100, 60.0, 10)


def test_resilience4j_opens_on_the_hundredth_failure_not_before():
    clock = Clock()
    breaker = CircuitBreaker(resilience4j(), clock)
    fail(breaker, 99)
    assert breaker.state == CLOSED              # 99 calls: below minimum_calls
    fail(breaker, 1)
    assert breaker.state == OPEN


def test_resilience4j_rejects_for_sixty_seconds_then_admits_ten_probes():
    clock = Clock()
    breaker = CircuitBreaker(resilience4j(), clock)
    fail(breaker, 100)
    clock.now = 59.999
    assert breaker.acquire() is None
    clock.now = 60.0
    permits = [breaker.acquire() for _ in range(11)]
    assert None not in permits[:10] and permits[10] is None
    assert breaker.state == HALF_OPEN
    for permit in permits[:10]:
        breaker.record(permit, ok=True)
    assert breaker.state == CLOSED
    assert breaker.history == [(0.0, CLOSED), (0.0, OPEN), (60.0, HALF_OPEN),
                               (60.0, CLOSED)]


@pytest.mark.parametrize("failed_probes,expected", [(4, CLOSED), (5, OPEN), (10, OPEN)])
def test_half_open_probes_decide_by_the_failure_threshold(failed_probes, expected):
    clock = Clock()
    breaker = CircuitBreaker(resilience4j(), clock)
    fail(breaker, 100)
    clock.now = 60.0
    permits = [breaker.acquire() for _ in range(10)]
    for i, permit in enumerate(permits):
        breaker.record(permit, ok=i >= failed_probes)
    assert breaker.state == expected


def test_count_window_forgets_the_oldest_call():
    clock = Clock()
    breaker = CircuitBreaker(resilience4j(), clock)
    fail(breaker, 49)
    for _ in range(51):
        breaker.record(breaker.acquire(), ok=True)
    assert breaker.state == CLOSED              # 49 % of 100
    fail(breaker, 1)                            # drops a failure, adds one: 49 %
    assert breaker.state == CLOSED
    for _ in range(48):                         # each slides out an old failure ...
        fail(breaker, 1)
    assert breaker.state == CLOSED
    fail(breaker, 1)                            # ... until successes slide out: 50 %
    assert breaker.state == OPEN


def test_outcome_of_a_call_admitted_before_opening_is_not_a_probe():
    clock = Clock()
    breaker = CircuitBreaker(resilience4j(half_open_calls=1), clock)
    slow_call = breaker.acquire()
    fail(breaker, 100)
    clock.now = 60.0
    probe = breaker.acquire()
    breaker.record(slow_call, ok=False)         # stale: ignored
    assert breaker.state == HALF_OPEN
    breaker.record(probe, ok=True)
    assert breaker.state == CLOSED


# -- circuit breaker: Hystrix defaults ---------------------------------------------

def test_hystrix_preset_matches_documented_defaults():
    config = hystrix()
    assert (config.failure_rate, config.window, config.window_size,
            config.minimum_calls, config.open_duration, config.half_open_calls) == (
        0.5, "time", 10.0, 20, 5.0, 1)


def test_hystrix_trips_at_twenty_requests_then_sends_a_single_probe():
    clock = Clock()
    breaker = CircuitBreaker(hystrix(), clock)
    fail(breaker, 19)
    assert breaker.state == CLOSED
    fail(breaker, 1)
    assert breaker.state == OPEN
    clock.now = 4.999
    assert breaker.acquire() is None
    clock.now = 5.0
    probe = breaker.acquire()
    assert probe is not None and breaker.acquire() is None
    breaker.record(probe, ok=False)             # the probe failed: another 5 s
    assert breaker.state == OPEN
    clock.now = 9.999
    assert breaker.acquire() is None
    clock.now = 10.0
    breaker.record(breaker.acquire(), ok=True)
    assert breaker.state == CLOSED
    assert first_entry(breaker.history, OPEN, after=1.0) == 5.0
    assert state_at(breaker.history, 7.5) == OPEN


def test_hystrix_window_lets_old_failures_expire():
    clock = Clock()
    breaker = CircuitBreaker(hystrix(), clock)
    fail(breaker, 19)
    clock.now = 10.5                            # the 19 failures left the 10 s window
    fail(breaker, 19)
    assert breaker.state == CLOSED


@pytest.mark.parametrize("kwargs", [
    {"failure_rate": 0.0}, {"failure_rate": 1.5}, {"failure_rate": -0.1},
    {"window": "sliding"}, {"minimum_calls": 0}, {"open_duration": 0.0},
    {"open_duration": -5.0}, {"half_open_calls": 0},
    {"window_size": 10, "minimum_calls": 20},
])
def test_breaker_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        resilience4j(**kwargs)


def test_breaker_accepts_a_threshold_of_exactly_one():
    assert BreakerConfig(failure_rate=1.0).failure_rate == 1.0


# -- adaptive throttling -----------------------------------------------------------

def test_throttle_probability_is_the_sre_formula():
    clock = Clock()
    throttle = AdaptiveThrottle(clock, k=2.0, window=120.0)
    rng = random.Random(0)
    for _ in range(100):
        throttle.admit(rng)
    for _ in range(30):
        throttle.record_accept()
    assert throttle.reject_probability() == pytest.approx((100 - 2 * 30) / 101)
    for _ in range(20):
        throttle.record_accept()
    assert throttle.reject_probability() == 0.0     # k * accepts >= requests
    clock.now = 120.0                                # everything left the window
    assert throttle.reject_probability() == 0.0


def test_under_heavy_overload_the_backend_sees_k_times_what_it_accepts():
    for k in (1.5, 2.0, 3.0):
        result = simulate(5, policy=Policy(timeout=1.0, throttle=k), rate=1000,
                          duration=6.0, servers=2, queue_limit=10)
        m = result.metrics
        accepted = m["attempts.ok"].value + m["attempts.error"].value
        assert m["backend.arrivals"].value / accepted == pytest.approx(k, rel=0.1), \
            f"k={k}, seed 5"


def test_the_throttling_table_predicts_k_capped_by_the_overload():
    # Offered 3x capacity, a client with k = 4 or 6 never reaches requests >
    # k * accepts, refuses nothing, and the backend sees the 3x it is offered;
    # offered 0.8x, the backend accepts (nearly) all it sees: a ratio of 1.
    from labkit import scenarios

    rows = [*scenarios.throttling(1, ks=(1.5, 4.0, 6.0), overload=3.0,
                                  duration=6.0).data.rows,
            *scenarios.throttling(1, ks=(2.0,), overload=0.8, duration=6.0).data.rows]
    for row, expected in zip(rows, (1.5, 3.0, 3.0, 1.0), strict=True):
        assert row["predicted"] == expected
        assert row["backend sees / accepts"] == pytest.approx(expected, rel=0.1), row
    assert rows[2]["refused by the client"] < 0.01


def test_hedges_after_the_p95_either_stay_near_5_percent_or_run_away():
    # Under queueing a hedge's extra load feeds itself on some seeds and not on
    # others (seed 1 runs away, seed 2 does not); each seed's hedged run is the
    # one tail_tolerance makes.
    from labkit import scenarios

    rows = scenarios.hedge_storms(1, seeds=2).data.rows
    assert [r["ran away"] for r in rows] == [True, False]
    assert rows[0]["extra copies"] > 3 * 0.05 > 0.1 > rows[1]["extra copies"]
    assert rows[0]["p99 (ms), hedged"] > 5 * rows[0]["p99 (ms), none"]
    tail = scenarios.tail_tolerance(seed=2, setting="queueing").data.rows
    assert rows[1]["p99 (ms), hedged"] == tail[1]["p99 (ms)"]
    assert rows[1]["extra copies"] == tail[1]["extra copies"]


def test_a_runaway_hedge_loop_has_no_second_steady_state():
    # Past about a fifth of requests hedged, M/M/1 replicas at load 0.7 are
    # offered 0.7 x (1 + h) -> 1.4 times their capacity: the copies head for
    # two per request and the queues, so the p99, keep growing. Seed 5 stays
    # near 5 % for the notebook's 8 s and tips later in a longer run.
    from labkit import resilience
    from labkit.scenarios.fault_tolerance import TAIL_SETTINGS

    day = {**TAIL_SETTINGS["queueing"], "duration": 24.0}
    p95 = resilience.simulate(5, policy=Policy(timeout=5.0), **day).metrics[
        "latency"].percentile(95)
    hedged = resilience.simulate(5, policy=Policy(timeout=5.0, hedge=p95), **day)
    copies, p99 = (list(hedged.metrics[name].values)
                   for name in ("amplification", "p99"))
    assert max(copies[:8]) < 1.15                     # the notebook's 8 s: fine
    assert min(copies[-10:]) > 1.9                    # then two copies a request
    assert all(b > a for a, b in zip(p99[-10:-1], p99[-9:], strict=True))  # climbing
    assert p99[-1] > 10 * max(p99[:8])


@pytest.mark.parametrize("change,words", [
    ({"ks": []}, "ks must list at least one k"),
    ({"ks": 2.0}, "ks must be a list, one k per item, got 2.0"),
    ({"overload": 0}, "overload must be > 0"),
])
def test_bad_throttling_arguments_are_refused(change, words):
    from labkit import ConfigError, scenarios

    with pytest.raises(ConfigError, match=words):
        scenarios.throttling(1, **change)


# -- the simulated client and backend --------------------------------------------------

def test_three_attempts_cap_amplification_at_exactly_three_when_all_fail():
    result = simulate(1, policy=Policy(timeout=0.2, attempts=3), rate=200,
                      duration=3.0, faults=[("errors", 0.0, math.inf, 1.0)])
    assert result.data["summary"]["amplification"] == 3.0
    assert result.metrics["succeeded"].value == 0


def test_retry_budget_caps_amplification_near_one_point_one_when_all_fail():
    result = simulate(2, policy=Policy(timeout=0.2, attempts=3, budget=0.1),
                      rate=500, duration=6.0, faults=[("errors", 0.0, math.inf, 1.0)])
    requests = result.metrics["requests"].value
    amplification = result.data["summary"]["amplification"]
    # Retries <= ratio * N + burst; a few tenths are lost while the bucket is full.
    assert amplification <= 1 + 0.1 + 10 / requests
    assert amplification >= 1 + 0.1 - 0.01


def test_fault_free_run_without_retries_sends_one_copy_per_request():
    result = simulate(3, rate=300, duration=3.0)
    summary = result.data["summary"]
    assert summary["amplification"] == 1.0 and summary["success_rate"] == 1.0
    assert result.metrics["latency"].count == summary["requests"]


def test_hedges_cost_the_share_of_attempts_slower_than_the_hedge_delay():
    service, net, delay = dist.lognormal(0.010, 0.050), 0.0005, 0.020
    # Light load and many workers: no queueing, so the first copy answers after
    # 2 * net + service, and a hedge goes out iff that exceeds the delay.
    result = simulate(4, policy=Policy(timeout=5.0, hedge=delay), rate=200,
                      duration=20.0, servers=10, workers=50, service=service,
                      network=net)
    z = (math.log(delay - 2 * net) - service.mu) / service.sigma
    expected = 0.5 * math.erfc(z / math.sqrt(2))
    n = result.metrics["requests"].value
    measured = result.metrics["hedges"].value / n
    assert abs(measured - expected) < binomial_tolerance(expected, n), \
        f"seed 4: {measured} vs {expected}"


def test_hedging_after_p95_cuts_the_tail_for_about_five_percent_more_load():
    service = dist.bimodal(dist.lognormal(0.004, 0.012), dist.uniform(0.5, 1.0), 0.002)
    common = {"rate": 800, "duration": 8.0, "servers": 10, "workers": 4,
              "service": service}
    plain = simulate(6, policy=Policy(timeout=5.0), **common)
    p95 = plain.metrics["latency"].percentile(95)
    hedged = simulate(6, policy=Policy(timeout=5.0, hedge=p95), **common)
    extra = hedged.data["summary"]["amplification"] - 1
    assert extra == pytest.approx(0.05, abs=binomial_tolerance(0.05, 6400))
    assert hedged.data["summary"]["p99.9"] < plain.data["summary"]["p99.9"] / 5


def test_tied_requests_cut_queueing_tail_with_little_extra_work():
    common = {"rate": 700, "duration": 6.0, "servers": 10,
              "service": dist.exponential(0.010)}
    plain = simulate(7, policy=Policy(timeout=5.0), **common)
    tied = simulate(7, policy=Policy(timeout=5.0, tied=0.001), **common)
    work = tied.metrics["backend.started"].value / tied.metrics["requests"].value
    assert 1.0 < work < 1.1                     # only copies that start together
    assert tied.data["summary"]["p99"] < plain.data["summary"]["p99"] / 1.5


def test_a_tied_attempt_fails_only_when_no_copy_succeeded():
    # Replicas without queues shed a copy that finds its worker busy; that copy
    # never started, so it cancelled nothing, and its twin may still succeed.
    # An attempt succeeds iff one of its copies did (no timeout can fire here).
    sim = Simulator(1, trace=False)
    backend = Backend(sim, servers=3, workers=1, queue_limit=0, service=0.005)
    client = Client(sim, backend, Policy(timeout=1.0, tied=0.0))
    client.start(200, 2.0)
    sim.run()
    outcomes = {a.done.value for a in client.attempts}
    assert outcomes == {"ok", "overloaded"}
    wrong = [a for a in client.attempts
             if (a.done.value == "ok") != any(j.executed for j in a.jobs)]
    assert wrong == []


def test_tied_copies_that_both_start_fail_together_only():
    # Every copy fails with probability 1/2, independently. Two copies sent at
    # once to idle replicas both start before either cancel arrives, so both run
    # and the attempt fails only if both fail: success 1 - 0.5**2 = 0.75. A copy
    # that started after its twin's cancel arrived was dropped: success 0.5.
    sim = Simulator(2, trace=False)
    backend = Backend(sim, servers=10, service=0.005)
    backend.schedule([("errors", 0.0, math.inf, 0.5)])
    client = Client(sim, backend, Policy(timeout=1.0, tied=0.0))
    client.start(100, 30.0)
    sim.run()
    both = [a.done.value == "ok" for a in client.attempts
            if all(j.started for j in a.jobs)]
    one = [a.done.value == "ok" for a in client.attempts
           if sum(j.started for j in a.jobs) == 1]
    assert len(both) > 2000
    assert abs(np.mean(both) - 0.75) < binomial_tolerance(0.75, len(both))
    if len(one) > 50:
        assert abs(np.mean(one) - 0.5) < binomial_tolerance(0.5, len(one))
    assert all(a.done.value == "ok" for a in client.attempts
               if any(j.executed for j in a.jobs))


@pytest.mark.parametrize("network", [0.0005, dist.exponential(0.001)])
def test_a_tied_failure_does_not_wait_for_the_twin_it_cancelled(network):
    # Every copy fails. A copy that started cancels its twin, which then never
    # answers: the attempt must fail when the cancel has arrived, not wait out
    # the 5 s timeout. (With a random network delay an error can come back
    # before the cancel has reached the twin.)
    sim = Simulator(3, trace=False)
    backend = Backend(sim, servers=4, service=dist.uniform(0.0, 0.002),
                      network=network)
    backend.schedule([("errors", 0.0, math.inf, 1.0)])
    client = Client(sim, backend, Policy(timeout=5.0, tied=0.001))
    client.start(300, 3.0)
    sim.run()
    assert backend.cancelled > 0
    assert client.counts["error"] == len(client.attempts)
    assert client.counts["timeout"] == 0
    assert sim.metrics["latency"].max < 0.1


def test_timeouts_count_as_indefinite_and_record_whether_work_happened():
    crashed = simulate(8, policy=Policy(timeout=0.1, attempts=2), rate=100,
                       duration=2.0, faults=[("crash", 0.0, math.inf, 1.0)])
    m = crashed.metrics
    assert m["attempts.timeout"].value == 2 * m["requests"].value
    assert m["timeouts.not_executed"].value == m["attempts.timeout"].value
    assert m["timeouts.executed"].value == 0
    slow = simulate(8, policy=Policy(timeout=0.01, attempts=3), rate=100,
                    duration=2.0, service=dist.constant(0.015))
    m = slow.metrics
    # Every attempt takes 16 ms > 10 ms: it times out, yet the server did it.
    assert m["timeouts.executed"].value == m["attempts.timeout"].value > 0
    assert m["duplicates"].value == m["requests"].value


def test_copies_still_queued_when_the_users_are_done_run_before_the_counts():
    # A retry storm that outlives its 2 s slowdown: when the last user request
    # gives up, the queues still hold copies. Nothing crashes and no queue sheds,
    # so the backend loses nothing: every copy sent is served in the end, and
    # every timed-out attempt ran.
    storm = simulate(1, policy=Policy(timeout=0.25, attempts=3), rate=300,
                     servers=6, duration=8.0, faults=[("slow", 2.0, 4.0, 10.0)])
    m = storm.metrics
    assert m["attempts.timeout"].value > 1000
    assert m["backend.served"].value == m["copies"].value
    assert m["timeouts.executed"].value == m["attempts.timeout"].value
    assert m["timeouts.not_executed"].value == 0


def test_ends_and_outcomes_are_in_completion_order_like_the_latencies():
    sim = Simulator(4, trace=False)
    backend = Backend(sim, servers=4)
    backend.schedule([("errors", 0.0, math.inf, 0.5)])
    client = Client(sim, backend, Policy(timeout=1.0, attempts=3,
                                         backoff=Backoff("exponential", 0.05, 1.0)))
    client.start(50, 2.0)
    sim.run()
    ends, latency = np.asarray(client.ends), sim.metrics["latency"].values
    assert len(ends) == len(client.outcomes) == len(client.starts)
    assert (np.diff(ends) >= 0).all()
    # ends[i] pairs with latencies[i]: their difference is some request's start.
    assert np.allclose(np.sort(ends - latency), client.starts)
    assert not np.allclose(ends - latency, client.starts)     # not by request id


def test_breaker_opens_while_backend_fails_and_closes_after_recovery():
    result = simulate(9, policy=Policy(timeout=0.5, breaker=resilience4j(
        open_duration=2.0)), rate=200, duration=12.0,
        faults=[("errors", 3.0, 7.0, 1.0)])
    history = result.data["breaker_history"]
    opened = first_entry(history, OPEN, after=3.0)
    assert 3.0 < opened < 4.0                   # 50 failures at 200/s: ~0.25 s
    assert state_at(history, 6.9) in (OPEN, HALF_OPEN)
    assert first_entry(history, CLOSED, after=7.0) < 7.0 + 2.0 + 0.5
    assert state_at(history, 11.9) == CLOSED


def test_brownout_sheds_capacity_and_crash_loses_work():
    sim = Simulator(0)
    backend = Backend(sim, servers=10, service=0.01)
    assert backend.capacity == pytest.approx(1000)
    backend.brownout(0.3)
    assert backend.capacity == pytest.approx(700)
    backend.slow(2.0)
    assert backend.capacity == pytest.approx(350)
    backend.recover()
    assert backend.capacity == pytest.approx(1000)


@pytest.mark.parametrize("mode, long, short, levels", [
    # (mode, severity over [0, 3), severity over [1, 2), the expected level in
    # [0, 1), [1, 2), [2, 3), [3, ...)) by the rules in Fault's docstring.
    ("errors", 0.5, 0.2, [0.5, 1 - 0.5 * 0.8, 0.5, 0.0]),
    ("errors", 0.5, 1.0, [0.5, 1.0, 0.5, 0.0]),
    ("slow", 2.0, 3.0, [2.0, 6.0, 2.0, 1.0]),
    # brownout: replicas left in rotation, of 10 (the larger share wins)
    ("brownout", 0.3, 0.5, [7, 5, 7, 10]),
    ("brownout", 0.5, 0.3, [5, 5, 5, 10]),
])
def test_overlapping_faults_of_one_mode_combine_and_end_one_at_a_time(
        mode, long, short, levels):
    sim = Simulator(0)
    backend = Backend(sim, servers=10, service=0.01)
    backend.schedule([(mode, 0.0, 3.0, long), (mode, 1.0, 2.0, short)])
    seen = []
    for t in (0.5, 1.5, 2.5, 3.5):
        sim.run(until=t)
        seen.append({"errors": backend.error_rate, "slow": backend.slowdown,
                     "brownout": backend.capacity * 0.01}[mode])
    assert seen == pytest.approx(levels)


def test_a_crash_that_ends_leaves_an_overlapping_one_in_force():
    # 50 % of replicas crash over [0, 3 s), 30 % (the same first ones) over
    # [1, 2 s): half the replicas are down until 3 s. One attempt, a short
    # timeout and light load: a request succeeds iff it reaches a live replica.
    sim = Simulator(5, trace=False)
    backend = Backend(sim, servers=10, service=0.005)
    backend.schedule([("crash", 0.0, 3.0, 0.5), ("crash", 1.0, 2.0, 0.3)])
    client = Client(sim, backend, Policy(timeout=0.05))
    client.start(300, 4.0)
    sim.run()
    for lo, expected in ((0.0, 0.5), (1.0, 0.5), (2.0, 0.5), (3.0, 1.0)):
        ok = [a.done.value == "ok" for a in client.attempts
              if lo <= client.starts[a.rid] < lo + 0.9]
        tolerance = max(binomial_tolerance(expected, len(ok)), 0.01)
        assert abs(np.mean(ok) - expected) < tolerance, (lo, np.mean(ok))


def test_errors_that_overlap_fail_requests_independently():
    # 50 % errors throughout, every request failing over [1, 2 s): per second the
    # success rate is 0.5, 1 - (1 - 0.5)(1 - 1) = 0, then 0.5 again.
    result = simulate(0, policy=Policy(timeout=1.0), rate=500, duration=4.0,
                      faults=[("errors", 0.0, math.inf, 0.5),
                              ("errors", 1.0, 2.0, 1.0)])
    series = result.metrics["success_rate"]
    n = result.metrics["requests"].value / 4
    for measured, expected in zip(series.values, [0.5, 0.0, 0.5, 0.5], strict=True):
        assert abs(measured - expected) < max(binomial_tolerance(expected, n), 0.01)


def test_slow_fault_multiplies_latency_at_light_load():
    common = {"rate": 100, "duration": 5.0, "servers": 10, "workers": 20,
              "service": dist.constant(0.010), "network": 0.0}
    slow = simulate(10, faults=[("slow", 0.0, math.inf, 3.0)], **common)
    assert slow.metrics["latency"].mean == pytest.approx(0.030)


def test_percentile_timeout_adapts_to_the_observed_p99():
    # Starts far too long; must learn that about 1 % of attempts outlast the p99.
    result = simulate(11, policy=Policy(timeout=Percentile(99, initial=10.0)),
                      rate=500, duration=10.0, servers=10, workers=20,
                      service=dist.lognormal(0.010, 0.050))
    m = result.metrics
    share = m["attempts.timeout"].value / m["requests"].value
    assert 0.003 < share < 0.025


def test_same_seed_same_run_and_streams_stay_independent():
    common = {"rate": 300, "duration": 3.0, "faults": [("errors", 1.0, 2.0, 0.5)]}
    policy = Policy(timeout=0.2, attempts=3, backoff=Backoff("full", 0.01, 0.1))
    a, b = simulate(12, policy=policy, **common), simulate(12, policy=policy, **common)
    assert a.fingerprint == b.fingerprint
    assert simulate(13, policy=policy, **common).fingerprint != a.fingerprint
    # A different jitter strategy must not move the users' arrival times.
    other = simulate(12, policy=Policy(timeout=0.2, attempts=3,
                                       backoff=Backoff("equal", 0.01, 0.1)), **common)
    assert other.metrics["requests"].value == a.metrics["requests"].value
    assert other.fingerprint != a.fingerprint


@pytest.mark.parametrize("kwargs", [
    {"timeout": -1.0}, {"timeout": 0.0}, {"attempts": 0}, {"attempts": 1.5},
    {"budget": 1.5}, {"breaker": "hystrix"}, {"hedge": -0.1},
    {"hedge": 0.01, "tied": 0.001}, {"throttle": 0.5}, {"backoff": "full"},
])
def test_policy_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        Policy(**kwargs)


@pytest.mark.parametrize("preset", [hystrix, resilience4j, BreakerConfig])
def test_an_uncalled_breaker_preset_is_refused_with_the_call_to_make(preset):
    # A preset is callable, like a factory taking the clock, but it takes none.
    name = preset.__name__
    with pytest.raises(ConfigError, match=re.escape(f"breaker={name}()")):
        Policy(breaker=preset)
    assert isinstance(Policy(breaker=preset()).breaker, BreakerConfig)


@pytest.mark.parametrize("fault", [
    ("meltdown", 1.0), ("crash", -1.0), ("crash", 2.0, 1.0), ("errors", 0, 1, 1.5),
    ("slow", 0, 1, 0.5), ("crash",),
])
def test_faults_are_validated(fault):
    with pytest.raises(ConfigError):
        as_fault(fault)


def test_retry_budget_rejects_a_bucket_smaller_than_one_retry():
    with pytest.raises(ConfigError):
        RetryBudget(ratio=0.1, burst=0.5)


def test_percentile_rejects_bad_settings():
    for kwargs in ({"p": 0}, {"p": 101}, {"initial": -1.0}, {"window": 5}):
        with pytest.raises(ConfigError):
            Percentile(**kwargs)


def test_tied_requests_need_two_servers():
    sim = Simulator(0)
    with pytest.raises(ConfigError):
        Client(sim, Backend(sim, servers=1), Policy(tied=0.001))


# -- side experiments ----------------------------------------------------------------

def test_fanout_slow_share_matches_one_minus_one_minus_p_to_the_n():
    for servers in (1, 10, 100):
        result = fanout(14, servers=servers, slow_probability=0.01, requests=3000)
        predicted = 1 - 0.99**servers
        measured = result.metrics["slow"].value / 3000
        assert result.data["predicted"] == pytest.approx(predicted)
        assert abs(measured - predicted) < binomial_tolerance(predicted, 3000), \
            f"n={servers}, seed 14"


def test_three_layers_of_four_attempts_send_sixty_four_to_the_bottom():
    assert layered_retries(15, layers=3, attempts=4).data["calls"] == [1, 4, 16, 64]


def test_per_layer_budgets_keep_each_layer_near_one_point_one():
    calls = layered_retries(16, layers=3, attempts=4, budget=0.1, burst=10.0,
                            requests=2000).data["calls"]
    for upper, lower in zip(calls, calls[1:], strict=False):
        assert lower <= upper * 1.1 + 10 / 2000 + 1e-9


def test_a_lone_client_writes_once():
    result = contention(17, clients=1, strategy="none")
    assert result.metrics["calls"].mean == 1


def test_jitter_halves_the_calls_of_plain_backoff_with_100_clients():
    # Brooker (2015): with 100 contending clients, jitter cuts calls by more
    # than half compared with exponential backoff without jitter.
    plain = contention(18, clients=100, strategy="exponential", trials=3)
    full = contention(18, clients=100, strategy="full", trials=3)
    assert full.metrics["calls"].mean < plain.metrics["calls"].mean / 2
    assert full.metrics["completion"].mean < plain.metrics["completion"].mean
    assert plain.metrics["calls"].mean >= 100


def _brooker_race(clients: int, strategy: str, rng: random.Random) -> tuple[int, float]:
    """A second, independent model of Brooker's race (his 2015 simulator's
    setup): one event heap; the server reads the version when a read arrives;
    the write carrying it arrives two one-way delays later; a loser's next read
    arrives one delay plus its backoff after it learned it lost. Returns (writes
    the server received, time the last client learned it won)."""
    base, cap = 0.005, 2.0

    def net() -> float:
        return abs(rng.normalvariate(0.010, 0.002))

    def sleep(client: int) -> float:
        failures[client] += 1
        ceiling = min(cap, base * 2 ** failures[client])
        match strategy:
            case "none":
                return 0.0
            case "exponential":
                return ceiling
            case "full":
                return rng.uniform(0, ceiling)
            case "equal":
                return ceiling / 2 + rng.uniform(0, ceiling / 2)
        last[client] = min(cap, rng.uniform(base, 3 * last[client]))
        return last[client]

    failures, last = [0] * clients, [base] * clients
    heap = [(net(), client, "read", None) for client in range(clients)]
    heapq.heapify(heap)
    version = writes = 0
    now = 0.0
    while heap:
        now, client, event, seen = heapq.heappop(heap)
        if event == "read":
            heapq.heappush(heap, (now + net() + net(), client, "write", version))
        elif event == "write":
            writes += 1
            won = seen == version
            version += won
            heapq.heappush(heap, (now + net(), client, "won" if won else "lost", None))
        elif event == "lost":
            heapq.heappush(heap, (now + net() + sleep(client), client, "read", None))
    return writes, now


@pytest.mark.parametrize("strategy", BACKOFF_STRATEGIES)
def test_contention_matches_an_independent_model_of_brookers_race(strategy):
    # Means over 150 races of 20 clients each, labkit against the model above:
    # they must agree within four standard errors of their difference. One
    # extra network delay between read and write (a bug once shipped) costs
    # 10-14 % more calls and 30-45 % more time, far outside that band.
    trials, clients = 150, 20
    ours = contention(19, clients=clients, strategy=strategy, trials=trials).metrics
    model = [_brooker_race(clients, strategy, random.Random(1000 + t))
             for t in range(trials)]
    for name, mine, theirs in (("calls", ours["calls"].values, [w for w, _ in model]),
                               ("completion", ours["completion"].values,
                                [t for _, t in model])):
        theirs = np.array(theirs)
        band = 4 * math.sqrt(mine.var(ddof=1) / trials + theirs.var(ddof=1) / trials)
        assert abs(mine.mean() - theirs.mean()) < band, (
            f"{strategy} {name}: labkit {mine.mean():.4g}, model {theirs.mean():.4g}, "
            f"allowed difference {band:.3g}")


# -- notebook 03's playground ---------------------------------------------------------

def test_playground_redraws_when_a_control_changes():
    from labkit import plot, scenarios
    from labkit.widgets import explore

    explorer = explore(scenarios.fault_playground, plot.resilience_timeline,
                       budget=False, breaker=["none", "resilience4j", "hystrix"],
                       duration=8.0, window=(2.0, 4.0))
    first = explorer.result
    assert first.params["policy"].budget is None
    explorer.controls["budget"].value = True
    assert explorer.result.params["policy"].budget == 0.1
    rows_without_breaker = len(explorer.figure.data)
    explorer.controls["breaker"].value = "hystrix"
    assert explorer.result.params["policy"].breaker == hystrix()
    assert len(explorer.figure.data) == rows_without_breaker + 1   # breaker panel


def test_playground_rejects_unknown_modes_and_severities():
    from labkit import scenarios

    with pytest.raises(ConfigError):
        scenarios.fault_playground(mode="meltdown")
    with pytest.raises(ConfigError):
        scenarios.fault_playground(severity=1.5)
    assert scenarios.fault_severity("slow", 1.0) == 20.0
    assert scenarios.fault_severity("errors", 0.3) == 0.3


def test_playground_controls_moved_there_and_back_reuse_the_cached_run(monkeypatch):
    from labkit import plot, scenarios
    from labkit.widgets import explore

    calls = []

    def counted(**params):
        calls.append(params)
        return scenarios.fault_playground(**params)

    explorer = explore(counted, plot.resilience_timeline,
                       mode=list(scenarios.PLAYGROUND_MODES),
                       severity=(0.0, 1.0, 0.05, 0.5), attempts=(1, 5, 1, 3),
                       budget=False, duration=4.0, window=(1.0, 2.0))
    first = explorer.result
    for name, there in (("mode", "crash"), ("severity", 0.55), ("attempts", 4),
                        ("budget", True)):
        back = explorer.controls[name].value
        explorer.controls[name].value = there
        assert explorer.result is not first
        explorer.controls[name].value = back
        assert explorer.result is first, f"{name}: moved back, but ran again"
    assert len(calls) == 5                          # the first run and one per control


def test_playground_default_run_outlasts_the_slowest_recovery():
    from labkit import scenarios

    def last_second(run):
        return run.metrics["success_rate"].values[-1]

    storm = scenarios.fault_playground()            # metastable: still failing
    hystrix = scenarios.fault_playground(breaker="hystrix")   # closes at 12 s
    assert storm.params["duration"] - max(f.end for f in storm.params["faults"]) >= 5
    assert last_second(storm) == 0.0 and last_second(hystrix) == 1.0
