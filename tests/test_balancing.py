"""labkit.balancing: each policy's rule, both engines, theory, SimPy, bad input.

Statistical checks state their tolerance as a confidence interval: the
standard error comes from batch means (the run cut into 20 consecutive
batches, whose means are close to independent), and an estimate may sit at
most 4 standard errors from the reference (a t(19) variable leaves that range
with probability about 0.001). Each such test also checks that its interval is
narrow enough to catch a real error.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import simpy

from labkit import ConfigError, balancing, dist, queueing
from labkit.balancing import HashRing, View, simulate

BATCHES, Z = 20, 4.0


def batch_means(values, statistic=np.mean) -> tuple[float, float]:
    """(estimate, standard error) of a statistic from BATCHES consecutive batches:
    the mean of the batches' statistics and their sd over sqrt(BATCHES)."""
    values = np.asarray(values, dtype=float)
    size = len(values) // BATCHES
    stats = statistic(values[: size * BATCHES].reshape(BATCHES, size), axis=1)
    return float(stats.mean()), float(stats.std(ddof=1) / math.sqrt(BATCHES))


def p99(values, axis):
    return np.percentile(values, 99, axis=axis)


def picks(policy, view: View, count: int) -> list[int]:
    policy.start(view)
    return [policy.choose(view) for _ in range(count)]


def within_binomial(hits: int, trials: int, p: float, what: str) -> None:
    """hits ~ Binomial(trials, p) lies within Z standard deviations of its mean."""
    sd = math.sqrt(trials * p * (1 - p))
    assert abs(hits - trials * p) <= Z * sd, (
        f"{what}: {hits} of {trials}, expected {trials * p:.0f} ± {Z * sd:.0f}")


# -- the decision rules ------------------------------------------------------------

def test_smooth_weighted_round_robin_interleaves_like_nginx():
    # nginx's changeset introducing smooth weighted round robin (2012) gives the
    # sequence for weights { 5, 1, 1 }: { a, a, b, a, c, a, a }.
    chosen = picks(balancing.WeightedRoundRobin(), View(3, weights=[5, 1, 1]), 14)
    assert "".join("abc"[i] for i in chosen) == "aabacaa" * 2


@pytest.mark.parametrize("weights,per_cycle", [
    ([3, 2, 1], [3, 2, 1]), ([1, 1, 1, 1], [1, 1, 1, 1]), ([7, 0, 2], [7, 0, 2]),
    ([0.5, 1.5], [1, 3])])
def test_smooth_weighted_round_robin_gives_each_server_its_weight_per_cycle(
        weights, per_cycle):
    # After every cycle (weights in lowest whole terms, summed) all current
    # weights are back at 0, so each cycle serves each server its weight.
    cycle = sum(per_cycle)
    chosen = picks(balancing.WeightedRoundRobin(), View(len(weights), weights=weights),
                   3 * cycle)
    for start in range(0, 3 * cycle, cycle):
        window = chosen[start:start + cycle]
        assert [window.count(i) for i in range(len(weights))] == per_cycle


def test_round_robin_takes_turns_and_skips_dead_servers():
    view = View(4)
    policy = balancing.RoundRobin()
    assert picks(policy, view, 6) == [0, 1, 2, 3, 0, 1]
    view.set_alive(2, False)
    assert [policy.choose(view) for _ in range(4)] == [3, 0, 1, 3]


def test_random_is_uniform_over_live_servers():
    view = View(5, rng=random.Random(11))
    view.set_alive(1, False)
    chosen = picks(balancing.Random(), view, 40_000)
    assert 1 not in chosen
    for server in (0, 2, 3, 4):
        within_binomial(chosen.count(server), len(chosen), 1 / 4, f"server {server}")


def test_weighted_random_follows_weights_and_live_set():
    view = View(3, weights=[6, 3, 1], rng=random.Random(12))
    policy = balancing.WeightedRandom()
    chosen = picks(policy, view, 30_000)
    for server, share in enumerate([0.6, 0.3, 0.1]):
        within_binomial(chosen.count(server), len(chosen), share, f"server {server}")
    view.set_alive(0, False)            # the cumulative weights must be redone
    chosen = [policy.choose(view) for _ in range(20_000)]
    within_binomial(chosen.count(1), len(chosen), 0.75, "server 1 after 0 died")
    assert 0 not in chosen


def test_weighted_policies_refuse_when_only_zero_weights_are_live():
    for policy in (balancing.WeightedRoundRobin(), balancing.WeightedRandom()):
        view = View(2, weights=[1, 0])
        view.set_alive(0, False)
        assert picks(policy, view, 1) == [None], policy


def test_least_outstanding_takes_the_minimum_and_breaks_ties_at_random():
    view = View(5, rng=random.Random(13))
    view.outstanding[:] = [3, 1, 4, 1, 5]
    chosen = picks(balancing.LeastOutstanding(), view, 4_000)
    assert set(chosen) == {1, 3}
    within_binomial(chosen.count(1), len(chosen), 0.5, "tie 1 vs 3")
    view.set_alive(1, False)
    view.set_alive(3, False)
    assert picks(balancing.LeastOutstanding(), view, 5) == [0] * 5


def test_least_loaded_stale_reads_the_reports_not_the_counts():
    view = View(3)
    view.reported = [0, 5, 5]             # the last reports
    view.outstanding[:] = [9, 0, 0]       # what is true now
    assert picks(balancing.LeastLoadedStale(), view, 10) == [0] * 10
    assert picks(balancing.LeastOutstanding(), view, 1) != [0]


@pytest.mark.parametrize("d,expected", [(1, 1 / 4), (2, 1 - (3 / 4) ** 2),
                                        (3, 1 - (3 / 4) ** 3)])
def test_power_of_d_picks_the_short_queue_when_it_samples_it(d, expected):
    # One empty server among four busy ones is chosen iff it is among the d
    # samples drawn with replacement: probability 1 - (3/4)^d.
    view = View(4, rng=random.Random(14))
    view.outstanding[:] = [5, 5, 0, 5]
    chosen = picks(balancing.PowerOfD(d), view, 20_000)
    within_binomial(chosen.count(2), len(chosen), expected, f"d={d}")


# -- consistent hashing ------------------------------------------------------------

def test_hash_ring_join_moves_about_k_over_n_keys_and_only_to_the_newcomer():
    keys, servers, vnodes = 200_000, 10, 100
    ring = HashRing(range(servers), vnodes)
    before = [ring.owner(k) for k in range(keys)]
    ring.add(servers)
    after = [ring.owner(k) for k in range(keys)]
    moved = [k for k in range(keys) if before[k] != after[k]]
    assert all(after[k] == servers for k in moved)          # nothing else moves
    assert sum(a == servers for a in after) == len(moved)   # all its keys are new
    # The newcomer owns V of M = (N+1)V points placed uniformly at random, so its
    # share of the circle is Beta(V, M - V): mean 1/(N+1); each key then moves
    # with that probability (binomial). Total variance of the moved fraction:
    total = (servers + 1) * vnodes
    share = 1 / (servers + 1)
    var = vnodes * (total - vnodes) / (total**2 * (total + 1)) + share * (
        1 - share) / keys
    assert abs(len(moved) / keys - share) <= Z * math.sqrt(var), (
        f"moved {len(moved) / keys:.4f} of keys, expected {share:.4f}")


def test_hash_ring_leave_moves_exactly_the_leavers_keys():
    ring = HashRing(range(8), vnodes=50)
    before = [ring.owner(k) for k in range(20_000)]
    ring.remove(3)
    after = [ring.owner(k) for k in range(20_000)]
    assert [k for k in range(20_000) if before[k] != after[k]] == [
        k for k in range(20_000) if before[k] == 3]
    assert 3 not in after


def test_a_dead_server_on_the_ring_acts_as_if_removed():
    alive = [True] * 6
    alive[4] = False
    full, without = HashRing(range(6), 40), HashRing([0, 1, 2, 3, 5], 40)
    assert [full.owner(k, alive) for k in range(5_000)] == [
        without.owner(k) for k in range(5_000)]
    assert full.owner(7, [False] * 6) is None


def test_hash_ring_shares_cover_the_circle_and_even_out_with_more_vnodes():
    spread = {}
    for vnodes in (1, 10, 1000):
        shares = HashRing(range(20), vnodes).shares()
        assert sum(shares.values()) == pytest.approx(1.0)
        spread[vnodes] = max(shares.values()) * 20
    # A server's share is Beta(V, 19V): relative sd about 1/sqrt(V), so the
    # largest of 20 sits ~2/sqrt(V) above the mean: ~3x at V = 1, <1.2x at 1000.
    assert spread[1] > spread[10] > spread[1000]
    assert spread[1000] < 1.2


def test_string_keys_hash_the_same_in_every_run():
    ring = HashRing(range(5), 30)
    assert [ring.owner(f"user-{i}") for i in range(50)] == [
        HashRing(range(5), 30).owner(f"user-{i}") for i in range(50)]


# -- the two engines ---------------------------------------------------------------

ENGINE_CASES = {
    "p2c exponential": dict(policy="p2c", servers=30, load=0.9),
    "least outstanding, slow server": dict(policy="least_outstanding", servers=8,
                                           load=0.8, speeds=[1 / 3] + [1] * 7),
    "wrr lognormal": dict(policy="weighted_round_robin", servers=5, load=0.7,
                          speeds=[2, 1, 1, 1, 0.5],
                          service=dist.lognormal(0.5, 4.0)),
    "consistent hash bimodal": dict(policy="consistent_hash", servers=6, load=0.6,
                                    keys=50, service=dist.bimodal(0.5, 5.0, 0.1)),
    "round robin constant, overloaded": dict(policy="round_robin", servers=4,
                                             load=1.3, service=1.0),
    "weighted random, zero weight, warmup": dict(
        policy="weighted_random", servers=4, load=0.5, weights=[1, 2, 0, 1],
        warmup=500),
    # p2c with d = 2 takes its own engine (per-server deques, choose inlined).
    "p2c unequal speeds, warmup": dict(policy="p2c", servers=7, load=0.9,
                                       speeds=[1, 2, 3, 1, 1, 0.5, 1], warmup=300),
    "p2c lognormal, overloaded": dict(
        policy="p2c", servers=3, load=1.2, service=dist.lognormal(0.5, 4.0)),
    "p2c d=3": dict(policy="p2c", servers=12, load=0.95, d=3),
}


@pytest.mark.parametrize("case", ENGINE_CASES)
def test_fast_engine_gives_the_event_engines_answer(case):
    kw = ENGINE_CASES[case]
    fast = simulate(requests=8_000, seed=5, engine="fast", **kw)
    events = simulate(requests=8_000, seed=5, engine="events", **kw)
    assert np.array_equal(fast.latency.values, events.latency.values)
    assert np.array_equal(fast.utilisation, events.utilisation)
    assert np.array_equal(fast.queue_lengths, events.queue_lengths)
    assert np.array_equal(fast.served, events.served)
    assert fast.end_time == events.end_time
    assert fast.fingerprint == events.fingerprint


def test_the_two_choice_engine_gives_the_general_fast_engines_answer():
    # A subclass of PowerOfD is not the built-in p2c: it runs on the general
    # fast engine (one heap of departures, `choose` called), the same draws.
    class SameChoice(balancing.PowerOfD):
        pass

    kw = dict(servers=20, load=0.95, requests=20_000, seed=8, speeds=[1.0, 0.5] * 10)
    mine, general = simulate("p2c", **kw), simulate(SameChoice(2), **kw)
    assert np.array_equal(mine.latency.values, general.latency.values)
    assert np.array_equal(mine.queue_lengths, general.queue_lengths)
    assert np.array_equal(mine.utilisation, general.utilisation)
    assert mine.end_time == general.end_time


def test_the_headline_names_servers_from_s1_and_writes_long_times_out():
    res = simulate("round_robin", servers=2, load=1.5, requests=4_000, seed=1,
                   faults=[(1.0, "kill", 0), (2.0, "restart", 0)])
    assert [(r.kind, r.dst) for r in res.trace] == [("kill", "s1"), ("restart", "s1")]
    headline = res.data["headline"]
    assert res.latency.mean > 100 and "e+" not in headline
    assert f"mean {res.latency.mean:,.0f} s" in headline


def test_same_seed_same_run_and_a_policy_object_can_be_reused():
    policy = balancing.WeightedRoundRobin()
    kw = dict(servers=5, load=0.8, requests=5_000, speeds=[1, 2, 1, 1, 3])
    first, again = simulate(policy, seed=9, **kw), simulate(policy, seed=9, **kw)
    assert first.fingerprint == again.fingerprint
    assert simulate(policy, seed=10, **kw).fingerprint != first.fingerprint


def test_accounting_adds_up():
    res = simulate("p2c", servers=10, load=0.9, requests=20_000, seed=2)
    assert res.completed == res.latency.count == res.served.sum() == 20_000
    assert res.failed == 0 and not res.overloaded
    # Work conservation: mean utilisation is the work brought (20,000 Exp(1)
    # service times) over 10 x the run's length (20,000 Exp(1/9) gaps plus a
    # short drain): a ratio of two sums with relative sd 1/sqrt(20,000) each.
    assert res.utilisation.mean() == pytest.approx(
        0.9, rel=Z * math.sqrt(2 / 20_000) + 0.003)
    assert res.queue_lengths.shape == (len(res.sample_times), 10)
    assert res.queue_lengths.min() >= 0


# -- faults --------------------------------------------------------------------------

def test_a_killed_server_fails_what_it_holds_and_gets_nothing_more():
    res = simulate("round_robin", servers=4, load=0.9, requests=20_000, seed=3,
                   faults=[(1000.0, "kill", 2)])
    assert res.failed > 0
    assert res.completed + res.failed == 20_000
    after = res.sample_times > 1000.0
    assert after.any() and res.queue_lengths[after, 2].max() == 0
    assert res.queue_lengths[~after, 2].max() > 0
    assert [r.kind for r in res.trace] == ["kill"]
    # Round robin over three servers at 4/3 of their capacity: they overload.
    assert res.latency.percentile(99) > simulate(
        "round_robin", servers=4, load=0.9, requests=20_000, seed=3
    ).latency.percentile(99)


def test_a_restarted_server_comes_back_empty_and_takes_traffic():
    res = simulate("least_outstanding", servers=3, load=0.5, requests=10_000, seed=4,
                   faults=[(500.0, "kill", 0), (2000.0, "restart", 0)])
    down = (res.sample_times > 500) & (res.sample_times < 2000)
    assert res.queue_lengths[down, 0].max() == 0
    assert res.queue_lengths[res.sample_times > 2000, 0].max() > 0
    assert res.completed + res.failed == 10_000


def test_with_every_server_dead_requests_fail_fast_and_the_run_ends():
    res = simulate("consistent_hash", servers=3, load=0.7, requests=5_000, seed=6,
                   faults=[(100.0, "kill", s) for s in range(3)])
    assert res.completed + res.failed == 5_000
    assert res.metrics["failed.refused"].value > 4_000   # arrivals after t = 100
    arrivals_per_second = 0.7 * 3
    assert res.end_time == pytest.approx(5_000 / arrivals_per_second, rel=0.1)


def test_overload_is_reported_and_the_run_still_ends():
    res = simulate("p2c", servers=10, load=1.5, requests=20_000, seed=7)
    assert res.overloaded and "OVERLOADED" in repr(res)
    assert res.completed == 20_000
    # Backlog grows at (1.5 - 1) x capacity: the last request waits about a third
    # of the run (20,000 arrivals at 15/s take ~1333 s; 1/3 of those remain).
    assert res.latency.max > 300


def test_stale_reports_make_least_loaded_herd_but_not_power_of_two():
    # Mitzenmacher, "How Useful Is Old Information?" (2000): with loads posted
    # every T service times, picking the least loaded herds everything onto one
    # server per period and loses even to random; two choices stay ahead.
    runs = {p: simulate(p, servers=20, load=0.9, requests=30_000, seed=8,
                        report_interval=5.0, warmup=3_000)
            for p in ("least_loaded_stale", "random", "p2c")}
    means = {p: r.latency.mean for p, r in runs.items()}
    assert means["least_loaded_stale"] > means["random"] > means["p2c"], means
    # one herd: about load x servers x T = 90 requests land on one server per period
    assert runs["least_loaded_stale"].queue_lengths.max() > 60


# -- theory -------------------------------------------------------------------------

def test_random_assignment_matches_mm1_per_server():
    # Random splitting of a Poisson stream gives each server Poisson arrivals at
    # the load: every server is an M/M/1 queue, for any number of servers.
    res = simulate("random", servers=1000, load=0.7, requests=500_000, seed=21,
                   warmup=100_000)
    theory = queueing.mm1(0.7, 1.0)
    mean, se = batch_means(res.latency.values)
    print(f"seed 21: random mean {mean:.4f} ± {se:.4f}, M/M/1 {theory.mean_response}")
    assert se < 0.01 * theory.mean_response
    assert abs(mean - theory.mean_response) <= Z * se
    tail, tail_se = batch_means(res.latency.values, p99)
    print(f"p99 {tail:.4f} ± {tail_se:.4f}, M/M/1 {theory.response_percentile(99)}")
    assert abs(tail - theory.response_percentile(99)) <= Z * tail_se


@pytest.fixture(scope="module")
def jsq2():
    return simulate("p2c", servers=1000, load=0.9, requests=1_000_000, seed=22, d=2,
                    warmup=100_000)


@pytest.mark.parametrize("d", [2, 3])
def test_power_of_d_matches_the_fixed_point(d, jsq2):
    # n = 1000 servers: the finite-n excess over the n -> infinity fixed point is
    # O(1/n), about 0.1 %, well inside the interval.
    res = jsq2 if d == 2 else simulate("p2c", servers=1000, load=0.9, d=3,
                                       requests=600_000, seed=23, warmup=100_000)
    theory = queueing.power_of_d(0.9, d)
    mean, se = batch_means(res.latency.values)
    print(f"seed {res.seed}, d={d}: mean {mean:.4f} ± {se:.4f}, "
          f"fixed point {theory:.4f}")
    assert se < 0.01 * theory
    assert abs(mean - theory) <= Z * se


def test_power_of_two_queue_length_tail_matches_the_fixed_point(jsq2):
    # s_i = load^(2^i - 1): the share of queues holding at least i requests.
    late = jsq2.queue_lengths[jsq2.sample_times > 200.0]
    for i in range(1, 6):
        share = (late >= i).mean(axis=1)        # one estimate per sample time
        mean, se = float(share.mean()), share.std(ddof=1) / math.sqrt(len(share))
        theory = queueing.power_of_d_tail(0.9, 2, i)
        print(f"seed {jsq2.seed}, s_{i}: {mean:.4f} ± {se:.4f}, "
              f"fixed point {theory:.4f}")
        assert abs(mean - theory) <= Z * se


def test_weighted_round_robin_evens_out_a_heterogeneous_fleet():
    # Weights equal to speeds send each server its share of the capacity, so
    # every server runs at the load; round robin sends each a quarter of the
    # requests, which keeps the 3x slower one 3x busier than the others.
    speeds, load, requests = [1 / 3, 1, 1, 1], 0.3, 30_000
    wrr = simulate("weighted_round_robin", servers=4, load=load, speeds=speeds,
                   requests=requests, seed=24)
    rr = simulate("round_robin", servers=4, load=load, speeds=speeds,
                  requests=requests, seed=24)
    per_server = load * sum(speeds) / 4           # round robin's arrival rate each
    # Utilisation = (sum of ~requests/4 service times) / (run length); relative
    # sd about sqrt(4/requests + 1/requests).
    tolerance = Z * math.sqrt(5 / requests)
    assert wrr.utilisation == pytest.approx([load] * 4, rel=tolerance)
    assert rr.utilisation == pytest.approx(
        [per_server * 3] + [per_server] * 3, rel=tolerance)


# -- an independent simulator --------------------------------------------------------

def simpy_least_outstanding(speeds, service, load, requests, seed) -> np.ndarray:
    """The same model written independently in SimPy: Poisson arrivals, join the
    server with the fewest requests (ties at random), FIFO, service / speed."""
    env, rng = simpy.Environment(), random.Random(seed)
    servers = [simpy.Resource(env, capacity=1) for _ in speeds]
    rate = load * sum(speeds) / service.mean
    latencies = []

    def request(i, work):
        arrived = env.now
        with servers[i].request() as turn:
            yield turn
            yield env.timeout(work / speeds[i])
        latencies.append(env.now - arrived)

    def source():
        for _ in range(requests):
            yield env.timeout(rng.expovariate(rate))
            held = [len(s.users) + len(s.queue) for s in servers]
            ties = [i for i, h in enumerate(held) if h == min(held)]
            env.process(request(rng.choice(ties), service.sample(rng)))

    env.process(source())
    env.run()
    return np.array(latencies)


def test_least_outstanding_agrees_with_simpy_on_a_mixed_fleet():
    speeds, service = [1 / 3, 1, 1, 2, 1, 1], dist.bimodal(0.5, 5.0, 0.1)
    ours = simulate("least_outstanding", servers=6, load=0.7, speeds=speeds,
                    service=service, requests=100_000, seed=31, warmup=5_000)
    theirs = simpy_least_outstanding(speeds, service, 0.7, 100_000, seed=31)[5_000:]
    for statistic in (np.mean, p99):
        (a, se_a), (b, se_b) = (batch_means(ours.latency.values, statistic),
                                batch_means(theirs, statistic))
        print(f"seed 31 {statistic.__name__}: labkit {a:.4f} ± {se_a:.4f}, "
              f"SimPy {b:.4f} ± {se_b:.4f}")
        assert se_a < 0.03 * a and se_b < 0.03 * b
        assert abs(a - b) <= Z * math.hypot(se_a, se_b)


# -- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(policy="fastest"), "choose one of consistent_hash, least_loaded_stale"),
    (dict(policy=42), "unknown policy 42"),
    (dict(load=0), "load must be > 0"),
    (dict(load=-0.5), "load must be > 0"),
    (dict(load=float("nan")), "load must be finite"),
    (dict(servers=0), "servers must be >= 1"),
    (dict(servers=2.5), "servers must be an int"),
    (dict(requests=0), "requests must be >= 1"),
    (dict(weights=[1, 2]), "one number per server (3), got 2"),
    (dict(weights=[1, -1, 1]), "weights[1] must be >= 0"),
    (dict(weights=[0, 0, 0]), "weights are all 0"),
    (dict(weights="abc"), "weights must be a sequence of 3 numbers"),
    (dict(speeds=[1, 0, 1]), "speeds[1] must be > 0"),
    (dict(policy="p2c", d=4), "d=4 > servers=3"),
    (dict(policy="p2c", d=0), "d must be >= 1"),
    (dict(policy="random", d=2), "d applies to policy='p2c' only"),
    (dict(service=-1.0), "service must be >= 0"),
    (dict(service=0.0), "mean > 0"),
    (dict(service="slow"), "labkit.dist distribution"),
    (dict(warmup=100), "leaves no request"),
    (dict(report_interval=-1), "report_interval must be >= 0"),
    # these three ran for ever (sampling a drain, or an event every nanosecond)
    (dict(load=1e9), "load must be at most 10 times the fleet's capacity"),
    (dict(report_interval=1e-9), "report_interval must be 0 (instant reports) or "
                                 "at least 0.001 s"),
    (dict(service=10.0, report_interval=0.005), "at least 0.01 s"),
    (dict(samples=10**9), "samples must be <= 10,000"),
    (dict(servers=10**9), "servers must be <= 100,000"),
    (dict(faults=[(1.0, "explode", 0)]), "'kill' or 'restart'"),
    (dict(faults=[(1.0, "kill", 3)]), "servers are 0..2"),
    (dict(faults=[(-1.0, "kill", 0)]), "fault time must be >= 0"),
    (dict(faults=[(1.0, "kill")]), "each fault must be"),
    (dict(faults=[(1.0, "kill", 0)], engine="fast"), "engine='fast' handles"),
    (dict(engine="turbo"), "engine must be"),
])
def test_bad_input_is_rejected_with_a_clear_message(kwargs, message):
    args = dict(servers=3, requests=100, seed=1) | kwargs
    with pytest.raises(ConfigError) as err:
        simulate(**args)
    assert message in str(err.value)


class Stubborn(balancing.Policy):
    """Always server 0, dead or alive: a bug the balancer must catch."""

    def choose(self, view):
        return 0


def test_a_policy_that_picks_a_dead_server_is_a_loud_error():
    with pytest.raises(ConfigError, match="not a live server index"):
        simulate(Stubborn(), servers=2, requests=1_000, faults=[(1.0, "kill", 0)])


def test_a_policy_without_choose_says_what_is_missing():
    with pytest.raises(NotImplementedError, match=r"define choose\(view\)"):
        simulate(balancing.Policy(), servers=2, requests=10)


# -- the notebook's scenario and playground -------------------------------------------

def test_load_balancer_scenario_kills_listed_servers_a_third_of_the_way_in():
    from labkit import scenarios

    res = scenarios.load_balancer(servers=4, load=0.5, requests=6_000, down=[1, 9])
    kills = [r for r in res.trace if r.kind == "kill"]
    assert [r.dst for r in kills] == ["s2"]         # server 1 is s2; 9 does not exist
    arrivals_end = 6_000 / (0.5 * (1 / 3 + 3))
    assert kills[0].time == pytest.approx(arrivals_end / 3)
    assert res.params["speeds"] == [1 / 3, 1.0, 1.0, 1.0]


def test_playground_switches_kill_and_restart_servers_and_redraw():
    from labkit import plot, widgets

    pg = widgets.balancer_playground(servers=4, requests=3_000)
    healthy = pg.result
    bars = pg.figure.data[-1]
    assert bars.type == "bar" and plot.CUT not in bars.marker.color
    pg.switches.buttons[1].value = True
    assert [r.dst for r in pg.result.trace if r.kind == "kill"] == ["s2"]
    assert pg.figure.data[-1].marker.color[1] == plot.CUT
    assert pg.switches.buttons[1].description == "restart s2"   # named from s1
    assert pg.result.fingerprint in pg.explorer.status.value
    pg.switches.buttons[1].value = False                      # restart: as before
    assert pg.result.fingerprint == healthy.fingerprint
    pg.switches.buttons[3].value = True
    pg.explorer.controls["servers"].value = 3                  # s3 is gone
    assert len(pg.switches.buttons) == 3 and pg.switches.value == ()
    assert pg.result.params["servers"] == 3 and not pg.result.trace
    pg.explorer.controls["policy"].value = "round_robin"
    assert pg.result.params["policy"] == "round_robin"


# -- what the playground prints: windows, units, names, progress ------------------

def test_busy_share_measures_the_arrivals_not_the_drain_of_a_slow_server():
    """Random at 0.9 with s1 three times slower: s1 gets 1/8 of the arrivals, 2.5
    times what it can serve, and its backlog outlasts the arrivals 2.5 times. The
    whole-run utilisation of a fast server is diluted by that drain to about
    0.33; over the arrivals each fast server is busy rho_i = 0.9 * (7 + 1/3) / 8."""
    from labkit import scenarios
    from labkit.scenarios.load_balancing import busy_share

    res = scenarios.load_balancer(policy="random", load=0.9, slow=3.0, servers=8)
    busy = busy_share(res)
    window = 20_000 / (0.9 * (7 + 1 / 3))
    assert busy.start == 0.0 and busy.end == pytest.approx(window)
    assert busy.window == f"busy share, 0–{window:,.0f} s"
    assert busy.samples == scenarios.load_balancing.BUSY_SAMPLES
    fast, rho = busy.shares[1:], 0.9 * (7 + 1 / 3) / 8
    assert fast.mean() == pytest.approx(rho, abs=0.02) and busy.shares[0] > 0.97
    assert (res.utilisation[1:] < 0.4).all()                 # the diluted figure
    # Sampled shares against the exact work each stable server was given over the
    # window (it drains within seconds, so that is its busy time in the window).
    given = res.utilisation[1:] * res.end_time / window
    assert np.abs(fast - given).max() < 0.04


def test_busy_share_refuses_what_is_not_a_balancing_run():
    from labkit import scenarios
    from labkit.metrics import Metrics, Result

    with pytest.raises(TypeError, match="BalancingResult"):
        scenarios.load_balancing.busy_share(Result("x", {}, 1, Metrics()))


@pytest.mark.parametrize("seconds, said", [
    (0.0, "0 ms"), (0.0123, "12.3 ms"), (0.9996, "1 s"), (5.5, "5.5 s"),
    (99.96, "100 s"), (4169.5, "4,170 s ≈ 69 min"), (9000.0, "9,000 s ≈ 2.5 h")])
def test_durations_print_in_ms_s_and_minutes_never_in_e_notation(seconds, said):
    from labkit.scenarios.load_balancing import duration_text

    assert duration_text(seconds) == said


def test_duration_text_never_uses_e_notation_and_refuses_negative_time():
    from labkit.scenarios.load_balancing import duration_text

    for exponent in np.linspace(-5, 6, 200):
        assert "e" not in duration_text(10.0 ** exponent).replace("≈", "")
    with pytest.raises(ConfigError, match="seconds"):
        duration_text(-1.0)


def test_the_playground_names_servers_from_s1_and_prints_readable_numbers():
    from labkit import plot, scenarios

    res = scenarios.load_balancer(policy="random", load=0.9, down=[1])
    p99 = res.latency.percentile(99)
    assert p99 > 1000 and f"p99 {p99:,.0f} s ≈ " in res.data["headline"]
    fig = plot.fleet(res)
    assert f"p99 {p99:,.0f} s ≈ " in fig.layout.title.text
    bars = fig.data[-1]
    assert list(bars.x) == [f"s{i}" for i in range(1, 9)]
    assert bars.marker.color[1] == plot.CUT and plot.CUT not in bars.marker.color[2:]
    assert fig.layout.yaxis2.title.text.startswith("busy share, 0–3,030 s")
    assert fig.layout.yaxis2.tickformat == ".0%"
    queues = plot.server_queues(res, servers=[0, 7])
    assert [line.name for line in queues.data] == ["s1", "s8"]


class Recorder:
    """A stand-in for labkit.widgets.progress that notes what it was given."""

    def __init__(self):
        self.items, self.calls = [], []

    def __call__(self, items, total, description):
        self.calls.append((total, description))
        for item in items:
            self.items.append(item)
            yield item


def test_balancing_vs_theory_shows_every_run_once_and_the_same_numbers():
    from labkit import scenarios

    kw = dict(servers=3, loads=(0.5, 0.8), requests=400)
    bar = Recorder()
    shown = scenarios.balancing_vs_theory(seed=2, progress=bar, **kw)
    runs = [(label, rho) for label in shown.data.simulated for rho in kw["loads"]]
    assert sorted(bar.items) == sorted(runs) and len(bar.items) == 8
    assert bar.calls == [(8, "balancing_vs_theory runs")]
    assert shown.fingerprint == scenarios.balancing_vs_theory(seed=2, **kw).fingerprint
    with pytest.raises(TypeError, match="progress must be a function"):
        scenarios.balancing_vs_theory(progress=5, **kw)
