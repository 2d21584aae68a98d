"""The load-balancing lab's grader, tested by the bugs it must catch: classic
mistakes, each a mutant of the worked answer, must fail grading at the
default seeds for their own reasons; and the worked answer passes every
scenario on 30 seeds (its latency tolerances are statistical; see
test_labs.SEEDS, balancing.near_labkit and balancing.near_fixed_point, checked
on 200 seeds, on all of which a sampler of d - 1 or d + 1 servers fails)."""

from __future__ import annotations

import random

import pytest
from test_labs import assert_caught, assert_reference_passes

import labkit.labs as labs
from labkit.labs import grader
from labkit.labs.balancing import PolicyReference


class AlwaysFirst(PolicyReference):
    """Sends every request to the first candidate, whatever its load."""

    def least_loaded(self, view, candidates):
        return candidates[0]


class IgnoresLoad(PolicyReference):
    """Picks a candidate at random (seeded), ignoring the outstanding counts."""

    def least_loaded(self, view, candidates):
        return view.rng.choice(candidates)


class PicksDeadServers(PolicyReference):
    """Considers every server, up or down."""

    def candidates(self, view):
        if self.d is None:
            return list(range(view.servers))
        return [view.rng.randrange(view.servers) for _ in range(self.d)]


class GlobalRandomTies(PolicyReference):
    """Breaks ties with the global random generator."""

    def least_loaded(self, view, candidates):
        least = min(view.outstanding[i] for i in candidates)
        return random.choice([i for i in candidates if view.outstanding[i] == least])


class MostLoaded(PolicyReference):
    """max instead of min."""

    def least_loaded(self, view, candidates):
        return max(candidates, key=lambda i: view.outstanding[i])


class OneSample(PolicyReference):
    """Samples one server, whatever d is."""

    def candidates(self, view):
        return list(view.live) if self.d is None else [view.rng.choice(view.live)]


class NeverLast(PolicyReference):
    """Off by one: never samples the last live server."""

    def candidates(self, view):
        if self.d is None:
            return list(view.live)
        top = max(1, len(view.live) - 1)
        return [view.live[view.rng.randrange(top)] for _ in range(self.d)]


class RemembersLiveSet(PolicyReference):
    """Reads the live servers once, when the run starts."""

    def start(self, view):
        self.live = list(view.live)

    def candidates(self, view):
        if self.d is None:
            return list(self.live)
        return [view.rng.choice(self.live) for _ in range(self.d)]


class SeededOwnRng(PolicyReference):
    """Samples from a random.Random(0) of its own: the same choices on every
    seed, so the grader's seeds explore nothing."""

    def __init__(self, d=None):
        super().__init__(d)
        self.rng = random.Random(0)

    def candidates(self, view):
        if self.d is None:
            return list(view.live)
        return [self.rng.choice(view.live) for _ in range(self.d)]


class DMinusOne(PolicyReference):
    """Samples d - 1 servers (at least one)."""

    def candidates(self, view):
        if self.d is None:
            return list(view.live)
        return [view.rng.choice(view.live) for _ in range(max(1, self.d - 1))]


class DPlusOne(PolicyReference):
    """Samples d + 1 servers."""

    def candidates(self, view):
        if self.d is None:
            return list(view.live)
        return [view.rng.choice(view.live) for _ in range(self.d + 1)]


class GlobalArgminLive(PolicyReference):
    """Ignores the candidates: the least loaded of every live server."""

    def least_loaded(self, view, candidates):
        return min(view.live, key=lambda i: view.outstanding[i])


class SamplesAllThenDropsDead(PolicyReference):
    """Samples d of every server, up or down, and drops the dead ones (one
    random live server if none is left): with half the fleet down, power of
    two choices quietly becomes nearly random choice (an audit's mutant)."""

    def candidates(self, view):
        if self.d is None:
            return list(view.live)
        drawn = [view.rng.randrange(view.servers) for _ in range(self.d)]
        return [i for i in drawn if view.alive[i]] or [view.rng.choice(view.live)]


class OwnCountsNeverDecremented(PolicyReference):
    """Keeps outstanding counts of its own, one more per request sent, never
    one less when a request completes (an audit's mutant): every failure must
    name the missing decrement, or the latency it costs."""

    def least_loaded(self, view, candidates):
        counts = self.__dict__.setdefault("counts", {})
        best = min(candidates, key=lambda i: counts.get(i, 0))
        counts[best] = counts.get(best, 0) + 1
        return best


NOT_LEAST = "least outstanding picks a server with the fewest"
TIE = "on a tie take the first candidate"
DOWN = "which is down or does not exist"
NONDETERMINISTIC = "your code reads the wall clock or global random"
LATENCY = "the mean latency is"
UNFAIR = "draw every live server with equal chance"
VIEW_RNG = "without drawing from view.rng"
# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (AlwaysFirst, "joins_shortest_queue", [NOT_LEAST, LATENCY]),
    (IgnoresLoad, "supermarket", [NOT_LEAST, TIE, LATENCY]),
    (PicksDeadServers, "samples_live_servers", [DOWN]),
    (GlobalRandomTies, "supermarket", [NONDETERMINISTIC, TIE]),
    (MostLoaded, "three_choices", [NOT_LEAST, LATENCY, UNFAIR]),
    (OneSample, "supermarket", [LATENCY]),
    (NeverLast, "every_server_used", [UNFAIR, "drawn uniformly", LATENCY]),
    (RemembersLiveSet, "skips_dead_servers", [DOWN]),
    (SeededOwnRng, "supermarket", [VIEW_RNG]),
    (DMinusOne, "three_choices", [LATENCY]),
    (DPlusOne, "supermarket", [LATENCY]),
    (GlobalArgminLive, "three_choices", [LATENCY]),
    (SamplesAllThenDropsDead, "half_the_fleet_down", [LATENCY]),
    (OwnCountsNeverDecremented, "joins_shortest_queue", ["never decremented",
                                                         LATENCY]),
]


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[m[0].__name__ for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    assert_caught("balancing", mutant, scenario, reasons)


@pytest.mark.parametrize("mutant,scenario", [(DPlusOne, "supermarket"),
                                              (DMinusOne, "three_choices")],
                         ids=["DPlusOne", "DMinusOne"])
def test_one_sample_too_many_or_too_few_fails_on_every_seed(mutant, scenario):
    """Three samples where two are asked for, or two where three are, fail on
    every seed, not only on the default ones (seeds 0-199 were checked; here
    ten more than the default ones)."""
    lab = labs.lab("balancing")
    seeds = tuple(range(6, 16))
    report = grader.grade_lab(lab, mutant, (lab.scenario(scenario),), seeds)
    assert {f.seed for f in report.failures} == set(seeds), repr(report)
    assert all(LATENCY in f.why for f in report.failures), repr(report)


def test_the_supermarket_tolerance_holds_where_it_once_failed():
    """Seed 149 put the worked answer's three_choices mean 1.157 times the fixed
    point at 25,000 requests (allowed 1.15): the mean's scatter is mostly the
    arrivals' and service times'. The close check is now against labkit's
    PowerOfD on the same seed, and the fixed point's tolerance follows from the
    run's size. Over seeds 0-199 the worked answer passes both scenarios."""
    report = labs.grade("balancing", PolicyReference, part="power_of_d",
                        seeds=[149])
    assert report.passed, repr(report)


@pytest.mark.slow
@pytest.mark.parametrize("part", labs.parts("balancing"))
def test_the_reference_passes_on_many_seeds(part):
    assert_reference_passes("balancing", part)
