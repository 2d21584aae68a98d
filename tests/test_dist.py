"""Distributions: declared moments match draws; the fast sampler is the same.

Validation messages are checked with the rest of the core in test_bad_input.py.
"""

import math
import random
import statistics

import pytest

from labkit import dist

N = 100_000
Z = 5.0          # a 5-sigma band: a correct sampler fails it about once in 2 million


def fourth_moment(d):
    """E[X^4] from theory, independent of labkit, for the second-moment band."""
    if isinstance(d, dist.Constant):
        return d.value**4
    if isinstance(d, dist.Uniform):
        lo, hi = d.low, d.high
        return (hi**5 - lo**5) / (5 * (hi - lo)) if hi > lo else lo**4
    if isinstance(d, dist.Exponential):
        return 24 * d.mean**4
    if isinstance(d, dist.LogNormal):
        return math.exp(4 * d.mu + 8 * d.sigma**2)
    if isinstance(d, dist.Bimodal):
        p = d.slow_fraction
        return (1 - p) * fourth_moment(d.fast) + p * fourth_moment(d.slow)
    if isinstance(d, dist.Scaled):
        return d.factor**4 * fourth_moment(d.base)
    raise TypeError(d)


CASES = [
    dist.constant(0.25),
    dist.uniform(0.01, 0.05),
    dist.uniform(2.0, 2.0),
    dist.exponential(0.1),
    dist.lognormal(0.01, 0.05),
    dist.bimodal(0.001, dist.exponential(0.1), 0.05),
    dist.exponential(0.1).scaled(3.0),
]


@pytest.mark.parametrize("d", CASES, ids=repr)
def test_sample_mean_and_second_moment_are_within_a_confidence_band(d):
    rng = random.Random(f"dist:{d!r}")
    xs = [d.sample(rng) for _ in range(N)]
    assert min(xs) >= 0
    mean_band = Z * math.sqrt(max(d.variance, 0.0) / N)
    assert abs(statistics.fmean(xs) - d.mean) <= mean_band + 1e-12, d
    var_of_square = fourth_moment(d) - d.second_moment**2
    square_band = Z * math.sqrt(max(var_of_square, 0.0) / N)
    got = statistics.fmean(x * x for x in xs)
    assert abs(got - d.second_moment) <= square_band + 1e-12, d


@pytest.mark.parametrize("d", CASES, ids=repr)
def test_sampler_draws_the_same_sequence_as_sample(d):
    a, b = random.Random(5), random.Random(5)
    fast = d.sampler(b)
    assert [d.sample(a) for _ in range(200)] == [fast() for _ in range(200)]


def test_declared_moments_of_simple_cases():
    assert dist.uniform(1, 3).mean == 2
    assert dist.uniform(1, 3).variance == pytest.approx(4 / 12)
    assert dist.exponential(0.5).scv == pytest.approx(1.0)
    assert dist.constant(2).variance == 0 and dist.constant(0).scv == 0
    assert dist.as_distribution(0.3) == dist.constant(0.3)


@pytest.mark.parametrize("median,p99", [(0.01, 0.05), (1.0, 1.5), (0.002, 0.2)])
def test_lognormal_p99_matches_its_declared_p99(median, p99):
    d = dist.lognormal(median, p99)
    rng = random.Random(f"p99:{median}:{p99}")
    xs = sorted(d.sample(rng) for _ in range(N))
    # The count of draws below the true p99 is Binomial(N, 0.99); a Z-sigma band
    # on that count brackets the true p99 between two order statistics.
    half = Z * math.sqrt(N * 0.99 * 0.01)
    lo, hi = xs[math.floor(0.99 * N - half)], xs[math.ceil(0.99 * N + half)]
    assert lo <= p99 <= hi
    half = Z * math.sqrt(N * 0.5 * 0.5)      # the same band around the median
    assert xs[math.floor(N / 2 - half)] <= median <= xs[math.ceil(N / 2 + half)]
