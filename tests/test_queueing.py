"""Closed forms checked against published numbers and independent derivations."""

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import ConfigError
from labkit.queueing import (
    erlang_b,
    erlang_c,
    littles_law,
    md1,
    mg1,
    mm1,
    mmc,
    power_of_d,
    power_of_d_tail,
)

MEANS = ("utilisation", "wait_probability", "mean_wait", "mean_response",
         "mean_queue_length", "mean_in_system")

service_rates = st.floats(min_value=0.01, max_value=1000.0)
utilisations = st.floats(min_value=0.001, max_value=0.999)
percentiles = st.floats(min_value=0.01, max_value=99.99)


def same_means(a, b, rel=1e-9):
    """True when two QueueStats agree on every long-run average."""
    return all(math.isclose(getattr(a, f), getattr(b, f), rel_tol=rel)
               for f in MEANS)


# The textbook direct formulas, with factorials and exact fractions: fine for
# small c, which is exactly where the recursion can be checked against them.

def erlang_b_direct(c, a):
    a = Fraction(a)
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    return float(terms[-1] / sum(terms))


def erlang_c_direct(c, a):
    a = Fraction(a)
    top = a**c / math.factorial(c) * c / (c - a)
    return float(top / (sum(a**k / math.factorial(k) for k in range(c)) + top))


def mmc_survival(lam, mu, c, t):
    """P(T > t) for M/M/c FCFS: S ~ Exp(mu) plus a wait that is 0 or Exp(theta)."""
    waited, theta = erlang_c_direct(c, lam / mu), c * mu - lam
    both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - waited) * math.exp(-mu * t) + waited * both


# --- published numbers --------------------------------------------------------

def test_mm10_at_load_point_nine_matches_the_published_erlang_c():
    stats = mmc(arrival_rate=9, service_rate=1, servers=10)
    assert round(stats.wait_probability, 6) == 0.668732
    assert round(stats.mean_response, 6) == 1.668732
    assert stats.utilisation == pytest.approx(0.9)


def test_power_of_d_matches_mitzenmacher():
    assert round(power_of_d(0.9, 2), 4) == 2.6141
    assert round(power_of_d(0.9, 3), 4) == 2.0279
    assert power_of_d(0.9, 1) == pytest.approx(10.0)
    assert power_of_d(0.9, 2, servers=1000) == power_of_d(0.9, 2)


# --- one model is a special case of another ------------------------------------

@given(service_rates, utilisations)
def test_mmc_with_one_server_is_mm1(mu, rho):
    one, single = mmc(rho * mu, mu, 1), mm1(rho * mu, mu)
    assert same_means(one, single)
    assert one.response_percentile(90) == pytest.approx(
        single.response_percentile(90), rel=1e-9)


@given(service_rates, utilisations)
def test_md1_is_mg1_with_constant_service(mu, rho):
    assert same_means(md1(rho * mu, mu), mg1(rho * mu, 1 / mu, 1 / mu**2))


@given(service_rates, utilisations)
def test_mg1_with_exponential_service_is_mm1(mu, rho):
    # Exp(mu) has E[S^2] = 2/mu^2.
    assert same_means(mg1(rho * mu, 1 / mu, 2 / mu**2), mm1(rho * mu, mu))


def test_md1_waits_half_as_long_as_mm1():
    assert md1(0.8, 1).mean_wait == pytest.approx(mm1(0.8, 1).mean_wait / 2)


# --- Erlang B and C: stable recursion against the direct formulas --------------

@given(st.integers(min_value=1, max_value=30), utilisations)
def test_erlang_c_recursion_equals_direct_formula(c, rho):
    assert erlang_c(c, rho * c) == pytest.approx(
        erlang_c_direct(c, rho * c), rel=1e-9)


@given(st.integers(min_value=1, max_value=30),
       st.floats(min_value=0.01, max_value=60.0))
def test_erlang_b_recursion_equals_direct_formula(c, a):
    assert erlang_b(c, a) == pytest.approx(erlang_b_direct(c, a), rel=1e-9)


def test_erlang_b_stays_finite_for_a_thousand_servers():
    assert 0.0 < erlang_b(1000, 950.0) < 1.0


# --- Little's law, checked against each model's own textbook L ------------------

def textbook_cases():
    """(stats, lambda, textbook L, textbook Lq), L derived without Little's law."""
    lam, mu = 0.75, 1.0
    rho = lam / mu
    yield mm1(lam, mu), lam, rho / (1 - rho), rho**2 / (1 - rho)
    c, lam_c = 4, 3.2
    lq = erlang_c_direct(c, lam_c / mu) * (lam_c / (c * mu)) / (1 - lam_c / (c * mu))
    yield mmc(lam_c, mu, c), lam_c, lq + lam_c / mu, lq   # L = Lq + busy servers
    yield md1(lam, mu), lam, rho + rho**2 / (2 * (1 - rho)), rho**2 / (2 * (1 - rho))
    mean, second = 0.5, 0.9                               # a high-variance service
    rho_g = 1.2 * mean
    lq_g = 1.2**2 * second / (2 * (1 - rho_g))
    yield mg1(1.2, mean, second), 1.2, lq_g + rho_g, lq_g


@pytest.mark.parametrize("stats, lam, big_l, big_lq", list(textbook_cases()),
                         ids=lambda v: getattr(v, "model", None))
def test_littles_law_holds_for_every_form(stats, lam, big_l, big_lq):
    assert littles_law(arrival_rate=lam, mean_time=stats.mean_response) == (
        pytest.approx(big_l))
    assert littles_law(arrival_rate=lam, mean_time=stats.mean_wait) == (
        pytest.approx(big_lq))
    assert stats.mean_in_system == pytest.approx(big_l)
    assert stats.mean_queue_length == pytest.approx(big_lq)
    assert littles_law(arrival_rate=lam, mean_number=big_l) == pytest.approx(
        stats.mean_response)
    assert littles_law(mean_time=stats.mean_response, mean_number=big_l) == (
        pytest.approx(lam))


# --- response-time distribution ------------------------------------------------

@given(service_rates, utilisations)
def test_mm1_median_response_is_ln2_over_spare_capacity(mu, rho):
    lam = rho * mu
    assert mm1(lam, mu).response_percentile(50) == pytest.approx(
        math.log(2) / (mu - lam), rel=1e-12)


@given(st.integers(min_value=2, max_value=30), utilisations, percentiles)
def test_mmc_percentile_solves_the_survival_equation(c, rho, p):
    mu = 2.0
    lam = rho * c * mu
    t = mmc(lam, mu, c).response_percentile(p)
    if abs((c * mu - lam) - mu) * t > 1e-3:   # the test's formula cancels at theta=mu
        assert mmc_survival(lam, mu, c, t) == pytest.approx(1 - p / 100, abs=1e-9)
    assert mmc(lam, mu, c).response_survival(t) == pytest.approx(
        1 - p / 100, abs=1e-9)


def test_mmc_survival_equals_numerical_convolution():
    # P(T > t) = P(S > t) + integral_0^t mu e^(-mu s) C e^(-theta (t - s)) ds.
    lam, mu, c, t = 9.0, 1.0, 10, 2.5
    waited, theta = erlang_c_direct(c, lam / mu), c * mu - lam
    n, h = 2000, t / 2000

    def f(s):
        return mu * math.exp(-mu * s) * waited * math.exp(-theta * (t - s))

    simpson = h / 3 * (f(0) + f(t) + sum((4 if k % 2 else 2) * f(k * h)
                                         for k in range(1, n)))
    expected = math.exp(-mu * t) + simpson
    assert mmc(lam, mu, c).response_survival(t) == pytest.approx(expected,
                                                                  rel=1e-10)


def test_mmc_survival_is_continuous_where_theta_equals_mu():
    # c = 2, lambda = mu: theta = c*mu - lambda = mu, where S + X is Erlang-2.
    at = mmc(1.0, 1.0, 2)
    t, waited = 1.7, at.wait_probability
    erlang2 = (1 + t) * math.exp(-t)
    assert at.response_survival(t) == pytest.approx(
        (1 - waited) * math.exp(-t) + waited * erlang2, rel=1e-12)
    near = mmc(1.0 + 1e-9, 1.0, 2)
    assert near.response_survival(t) == pytest.approx(at.response_survival(t),
                                                      rel=1e-7)


def test_higher_percentiles_take_longer():
    stats = mmc(9, 1, 10)
    times = [stats.response_percentile(p) for p in (10, 50, 90, 99, 99.9)]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_percentiles_need_exponential_service():
    with pytest.raises(ConfigError, match="needs exponential service.*M/D/1"):
        md1(0.5, 1).response_percentile(99)
    with pytest.raises(ConfigError, match="needs exponential service.*M/G/1"):
        mg1(0.5, 1, 2).response_percentile(99)


def test_stats_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        mm1(1, 2).mean_wait = 0.0


# --- no arrivals: the empty system, a slider at 0 ---------------------------------
# With lambda = 0 (offered load a = 0) nobody is ever blocked or waits: B = C = 0,
# Wq = Lq = L = 0 and utilisation 0, while the response time of a (hypothetical)
# customer is its service time alone: W = E[S], and for exponential service
# P(T > t) = e^(-mu t), so the p-th percentile is -ln(1 - p/100) / mu.

MU, C, MEAN, SECOND = 4.0, 3, 0.25, 0.5
ZERO_LOAD = {                               # model: (its stats at lambda, E[S])
    "M/M/1": (lambda lam: mm1(lam, MU), 1 / MU),
    "M/M/3": (lambda lam: mmc(lam, MU, C), 1 / MU),
    "M/M/c, c=1": (lambda lam: mmc(lam, MU, 1), 1 / MU),
    "M/D/1": (lambda lam: md1(lam, MU), 1 / MU),
    "M/G/1": (lambda lam: mg1(lam, MEAN, SECOND), MEAN),
}
MARKOVIAN = [name for name in ZERO_LOAD if name.startswith("M/M/")]


@pytest.mark.parametrize("servers", [1, 2, 10, 1000])
def test_nothing_is_blocked_or_waits_without_arrivals(servers):
    assert erlang_b(servers, 0) == 0.0 and erlang_b(servers, 0.0) == 0.0
    assert erlang_c(servers, 0) == 0.0 and erlang_c(servers, 0.0) == 0.0


@pytest.mark.parametrize("name", ZERO_LOAD)
def test_an_empty_queue_is_its_service_time(name):
    make, service = ZERO_LOAD[name]
    stats = make(0)
    assert (stats.utilisation, stats.wait_probability, stats.mean_wait,
            stats.mean_queue_length, stats.mean_in_system) == (0, 0, 0, 0, 0)
    assert stats.mean_response == pytest.approx(service, rel=1e-15)
    assert stats.arrival_rate == 0.0


@pytest.mark.parametrize("name", MARKOVIAN)
def test_an_empty_markovian_queue_answers_in_one_service_time(name):
    stats = ZERO_LOAD[name][0](0.0)
    for t in (0.0, 0.1, 0.25, 1.0, 3.0, 20.0):
        assert stats.response_survival(t) == pytest.approx(math.exp(-MU * t),
                                                           rel=1e-12, abs=1e-300)
    for p in (0.01, 10, 50, 90, 99, 99.99):
        assert stats.response_percentile(p) == pytest.approx(
            -math.log(1 - p / 100) / MU, rel=1e-12)


@pytest.mark.parametrize("name", ZERO_LOAD)
def test_zero_load_is_the_limit_of_a_tiny_load(name):
    make = ZERO_LOAD[name][0]
    at, near = make(0), make(1e-9)
    for field in MEANS:
        assert getattr(near, field) == pytest.approx(getattr(at, field),
                                                     rel=1e-7, abs=1e-8), field
    if name in MARKOVIAN:
        for t in (0.0, 0.5, 2.0):
            assert near.response_survival(t) == pytest.approx(
                at.response_survival(t), rel=1e-7)
        assert near.response_percentile(99) == pytest.approx(
            at.response_percentile(99), rel=1e-7)


@pytest.mark.parametrize("servers", [1, 4])
def test_erlang_at_zero_is_the_limit_of_a_tiny_load(servers):
    assert erlang_b(servers, 1e-9) == pytest.approx(erlang_b(servers, 0), abs=1e-8)
    assert erlang_c(servers, 1e-9) == pytest.approx(erlang_c(servers, 0), abs=1e-8)


def test_a_negative_zero_load_gives_positive_zeros():
    stats = mmc(-0.0, 1.0, 2)
    assert math.copysign(1.0, stats.arrival_rate) == 1.0
    assert all(math.copysign(1.0, getattr(stats, f)) == 1.0 for f in MEANS)


# --- power of d choices ---------------------------------------------------------

@given(st.floats(min_value=0.0, max_value=0.99), st.integers(min_value=1, max_value=20))
def test_tail_with_one_choice_is_geometric(load, i):
    assert power_of_d_tail(load, 1, i) == pytest.approx(load**i, rel=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_time_in_system_is_queue_length_over_load(d):
    # Little's law per queue: L = sum_{i>=1} s_i, arrival rate = load, T = L / load.
    load = 0.9
    queue_length = sum(power_of_d_tail(load, d, i) for i in range(1, 2000))
    assert power_of_d(load, d) == pytest.approx(queue_length / load, rel=1e-9)


def test_tail_starts_at_one_and_then_the_busy_fraction():
    assert power_of_d_tail(0.7, 2, 0) == 1.0
    assert power_of_d_tail(0.7, 2, 1) == pytest.approx(0.7)   # servers busy = load
    assert power_of_d_tail(0.7, 2, 2000) == 0.0


@pytest.mark.parametrize("d", [2, 3, 10])
def test_a_far_tail_is_zero_without_building_d_to_the_i(d):
    # s_i = load^((d^i - 1)/(d - 1)) with an exponent of at least 2^i - 1: even
    # the load closest to 1 gives exp(-2^-53 * 2^1000) = 0.0 at i = 1001, and
    # at i = 10^9 building d**i alone used to take many minutes.
    load = math.nextafter(1.0, 0.0)
    assert load ** float(2**1000) == 0.0
    assert power_of_d_tail(load, d, 1001) == 0.0
    assert power_of_d_tail(load, d, 10**9) == 0.0


def test_going_from_one_choice_to_two_beats_going_from_two_to_three():
    load = 0.99
    one, two, three = (power_of_d(load, d) for d in (1, 2, 3))
    assert one / two > 10 and two / three < 2


# --- bad input says what was given and what is allowed ---------------------------

nan, inf = float("nan"), float("inf")

BAD = [
    (mmc, (9.5, 1.0, 9), (r"arrival_rate 9\.5 >= servers\*service_rate 9\.0: the "
                          r"queue is unstable \(utilisation must be < 1\)")),
    (mm1, (2.0, 1.0), r"arrival_rate 2\.0 >= service_rate 1\.0: .*unstable"),
    (md1, (1.0, 1.0), r"arrival_rate 1\.0 >= service_rate 1\.0: .*unstable"),
    (mg1, (2.0, 0.5, 1.0), r"arrival_rate\*mean_service 1\.0 >= 1: .*unstable"),
    (mg1, (0.5, 1.0, 0.5), r"second_moment 0\.5 < mean_service\*\*2 1\.0"),
    (mm1, (-1.0, 1.0), r"arrival_rate must be >= 0\.0, got -1\.0"),
    (mmc, (-1e-9, 1.0, 2), r"arrival_rate must be >= 0\.0, got -1e-09"),
    (md1, (-1.0, 1.0), r"arrival_rate must be >= 0\.0, got -1\.0"),
    (mg1, (-1.0, 0.5, 1.0), r"arrival_rate must be >= 0\.0, got -1\.0"),
    (mm1, (True, 2.0), r"arrival_rate must be a number, got True"),
    (mm1, (inf, 2.0), r"arrival_rate must be finite, got inf"),
    (erlang_b, (2, -1.0), r"offered_load must be >= 0\.0, got -1\.0"),
    (erlang_b, (2, nan), r"offered_load must be finite, got nan"),
    (erlang_b, (2, False), r"offered_load must be a number, got False"),
    (mm1, (1.0, 0), r"service_rate must be > 0, got 0"),
    (mm1, (nan, 1.0), r"arrival_rate must be finite, got nan"),
    (mmc, (1.0, inf, 2), r"service_rate must be finite, got inf"),
    (mm1, ("1", 2.0), r"arrival_rate must be a number, got '1'"),
    (mmc, (1.0, 2.0, True), r"servers must be an int, got True"),
    (mmc, (1.0, 2.0, 2.0), r"servers must be an int, got 2\.0$"),
    (mmc, (1.0, 2.0, np.int64(2)), r"servers must be an int, got np\.int64\(2\) "
                                   r"\(a numpy int64: .*plain Python numbers, int"),
    (mm1, (np.float32(1.0), 2.0), r"arrival_rate must be a number, got .* "
                                  r"\(a numpy float32: .*plain Python numbers, float"),
    (mmc, (1.0, 2.0, 0), r"servers must be >= 1, got 0"),
    (erlang_b, (0, 1.0), r"servers must be >= 1, got 0"),
    (erlang_c, (3, 3.0), r"offered_load 3\.0 >= servers 3: .*unstable"),
    (erlang_c, (3, -1.0), r"offered_load must be >= 0\.0, got -1\.0"),
    (power_of_d, (1.0, 2), r"load 1\.0 >= 1: .*load must be in \[0, 1\)"),
    (power_of_d, (0.5, 0), r"d must be >= 1, got 0"),
    (power_of_d, (0.5, 3, 2), r"d 3 > servers 2"),
    (power_of_d_tail, (0.5, 2, -1), r"i must be >= 0, got -1"),
    (power_of_d_tail, (-0.1, 2, 1), r"load must be >= 0\.0, got -0\.1"),
]


@pytest.mark.parametrize("fn, args, message", BAD,
                         ids=[f"{fn.__name__}{args}" for fn, args, _ in BAD])
def test_bad_input_is_a_config_error_that_explains_itself(fn, args, message):
    with pytest.raises(ConfigError, match=message):
        fn(*args)


@pytest.mark.parametrize("p", [0, 100, -5, 150, nan])
def test_percentile_must_lie_strictly_between_0_and_100(p):
    with pytest.raises(ConfigError, match=r"p must be (a percentile in \(0, 100\)"
                                          r"|finite), got"):
        mmc(9, 1, 10).response_percentile(p)


@pytest.mark.parametrize("kwargs", [
    {}, {"arrival_rate": 1.0},
    {"arrival_rate": 1.0, "mean_time": 2.0, "mean_number": 2.0}])
def test_littles_law_needs_exactly_two_of_three(kwargs):
    with pytest.raises(ConfigError, match=f"exactly two .*got {len(kwargs)}"):
        littles_law(**kwargs)


def test_littles_law_cannot_get_a_rate_from_zero_time():
    with pytest.raises(ConfigError, match="mean_time must be > 0"):
        littles_law(mean_time=0.0, mean_number=3.0)
