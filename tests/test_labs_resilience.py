"""The resilience lab's grader, tested by the bugs it must catch: classic
mistakes in a circuit breaker, a retry budget and jittered backoff, each a
mutant of the worked answer, must fail grading at the default seeds for their
own reasons; and the worked answer passes every scenario on many seeds
(test_labs.SEEDS: 30 for the breaker, 100 for retries).

A mutant is graded on its own part only: it changes methods of that part
alone, and the other part never calls them (checked by grading each part with
the other part's methods raising), so there it runs exactly as the worked
answer does, which passes: grading it there too could add no failure."""

from __future__ import annotations

import random

import pytest
from test_labs import assert_caught, assert_reference_passes, changed

import labkit.labs as labs
from labkit.labs.resilience import CLOSED, HALF_OPEN, OPEN, DefenceReference
from labkit.resilience import Policy, simulate


class NeverOpens(DefenceReference):
    """Records outcomes but never trips."""

    def on_result(self, ok):
        if self.state != OPEN:
            self.outcomes.append(not ok)


class OpensOnFirstFailure(DefenceReference):
    """Ignores minimum_calls: one failure in an empty window is a 100 % rate."""

    def on_result(self, ok):
        if not ok and self.state != OPEN:
            self.enter(OPEN)
            return
        super().on_result(ok)


class NeverHalfOpens(DefenceReference):
    """Once open, stays open."""

    def allow(self):
        return self.state != OPEN and super().allow()


class HalfOpenLetsAllThrough(DefenceReference):
    """Half-open admits every call, not half_open_calls probes."""

    def allow(self):
        admitted = super().allow()
        return admitted or self.state != OPEN


class WindowOffByOne(DefenceReference):
    """Drops the oldest outcome once the window is full, before judging: the
    window holds window_size - 1 calls."""

    def on_result(self, ok):
        if self.state == HALF_OPEN:
            return super().on_result(ok)
        config, outcomes = self.config, self.outcomes
        outcomes.append(not ok)
        if len(outcomes) >= config.window_size:
            outcomes.popleft()
        if (len(outcomes) >= config.minimum_calls
                and sum(outcomes) / len(outcomes) >= config.failure_rate):
            self.enter(OPEN)


class MinCallsOffByOne(DefenceReference):
    """Judges only once the window holds more than minimum_calls calls."""

    def on_result(self, ok):
        if self.state == HALF_OPEN:
            return super().on_result(ok)
        config, outcomes = self.config, self.outcomes
        outcomes.append(not ok)
        if len(outcomes) > config.window_size:
            outcomes.popleft()
        if (len(outcomes) > config.minimum_calls
                and sum(outcomes) / len(outcomes) >= config.failure_rate):
            self.enter(OPEN)


class RateOverWindowSize(DefenceReference):
    """Divides the failures by window_size, not by the calls in the window."""

    def on_result(self, ok):
        if self.state == HALF_OPEN:
            return super().on_result(ok)
        config, outcomes = self.config, self.outcomes
        outcomes.append(not ok)
        if len(outcomes) > config.window_size:
            outcomes.popleft()
        if (len(outcomes) >= config.minimum_calls
                and sum(outcomes) / config.window_size >= config.failure_rate):
            self.enter(OPEN)


class HalfOpenDecidesOnOpenRate(DefenceReference):
    """Half-open closes only if every probe succeeded: one failed probe of three
    re-opens it."""

    def on_result(self, ok):
        if self.state != HALF_OPEN:
            return super().on_result(ok)
        self.outcomes.append(not ok)
        if len(self.outcomes) == self.config.half_open_calls:
            self.enter(OPEN if sum(self.outcomes) > 0 else CLOSED)


class HalfOpenReopensAboveTheRate(DefenceReference):
    """A spec audit's mutant: half-open opens again only if the probes' failure
    rate is strictly above failure_rate (>, not >=). Two of four probes failing
    close it on a backend that is half down; with three probes no rate equals
    50 %, so only a scripted run with four probes tells it apart."""

    def on_result(self, ok):
        if self.state != HALF_OPEN:
            return super().on_result(ok)
        self.outcomes.append(not ok)
        if len(self.outcomes) == self.config.half_open_calls:
            rate = sum(self.outcomes) / len(self.outcomes)
            self.enter(OPEN if rate > self.config.failure_rate else CLOSED)


class NeverRefills(DefenceReference):
    """Requests earn no tokens: the burst is all there ever is."""

    def on_request(self):
        pass


class NeverSpends(DefenceReference):
    """Says yes without taking a token."""

    def try_spend(self):
        return self.tokens >= 1.0 - 1e-9


class NoCap(DefenceReference):
    """Refills without the cap: a quiet client hoards more than burst tokens."""

    def on_request(self):
        self.tokens += self.ratio


class NoDust(DefenceReference):
    """Asks for a whole token exactly: ten requests' 10 * 0.1 = 0.999... buys
    no retry."""

    def try_spend(self):
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class IntTokens(DefenceReference):
    """Rounds the bucket down before comparing: loses the dust like NoDust."""

    def try_spend(self):
        if int(self.tokens) >= 1:
            self.tokens -= 1.0
            return True
        return False


class NoJitter(DefenceReference):
    """Plain exponential backoff: every client retries in lockstep."""

    def backoff(self, attempt, rng):
        return min(self.cap, self.base * 2 ** attempt)


class GlobalRandomJitter(DefenceReference):
    """Draws the jitter from the global random module."""

    def backoff(self, attempt, rng):
        return random.uniform(0.0, min(self.cap, self.base * 2 ** attempt))


SHOULD_OPEN = "it should have opened"
TOO_EARLY = "it opened too early"
HALF_OPENS = "it should have half-opened"
PROBES = "half-open admits only half_open_calls probes"
DECIDES = "half-open decides after exactly half_open_calls"
AT_LEAST = "a rate equal to failure_rate opens again"
REFILL = "so the budget refills"
DENIED = "your budget denied a retry"
NO_TOKEN = "with no whole token left"
AMPLIFICATION = "is over 1 + ratio + burst / requests"
JITTER = "full jitter draws uniformly"
WINDOW = "the last window_size = 20 calls: 10 failed"
MINIMUM = "calls in the window"
CAP = "keep at most burst"
DUST = "float dust"
NONDETERMINISTIC = "your code reads the wall clock or global random"
SAME_SEED = "draw the jitter from the rng you are given"
# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (NeverOpens, "opens_on_errors", [SHOULD_OPEN]),
    (OpensOnFirstFailure, "stays_closed_when_healthy", [TOO_EARLY]),
    (NeverHalfOpens, "breaker_by_hand", [HALF_OPENS]),
    (HalfOpenLetsAllThrough, "breaker_by_hand", [PROBES, DECIDES]),
    (WindowOffByOne, "breaker_by_hand", [WINDOW]),
    (MinCallsOffByOne, "breaker_by_hand", [MINIMUM]),
    (RateOverWindowSize, "breaker_by_hand", [MINIMUM]),
    (HalfOpenDecidesOnOpenRate, "breaker_by_hand", [DECIDES]),
    (HalfOpenReopensAboveTheRate, "breaker_by_hand", [AT_LEAST]),
    (NeverRefills, "caps_amplification", [REFILL, DENIED]),
    (NoCap, "budget_by_hand", [CAP]),
    (NoDust, "budget_by_hand", [DUST]),
    (IntTokens, "budget_by_hand", [DUST]),
    (NeverSpends, "budget_by_hand", [NO_TOKEN, AMPLIFICATION]),
    (NoJitter, "backoff_full_jitter", [JITTER]),
    (GlobalRandomJitter, "backoff_in_client", [NONDETERMINISTIC, SAME_SEED]),
]


#: The methods an answer writes, by part.
METHODS = {"breaker": {"allow", "on_result"},
           "retry": {"on_request", "try_spend", "backoff"}}


def sealed(part: str) -> type:
    """The worked answer, but for the methods of the other parts, which raise."""
    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"part {part} called {name}")
        return method

    others = set().union(*(m for p, m in METHODS.items() if p != part))
    return type("Sealed", (DefenceReference,), {n: refuse(n) for n in others})


@pytest.mark.parametrize("part", labs.parts("resilience"))
def test_each_part_calls_only_its_own_methods(part):
    """Every scenario of `part`, at the default seeds, with the other parts'
    methods raising: it passes, so it never calls them. Hence a mutant that
    changes only methods of one part grades on every other part exactly as the
    worked answer does (which passes) and can fail there for no reason."""
    report = labs.grade("resilience", sealed(part), part=part)
    assert report.passed, "\n".join(str(f) for f in report.failures[:5])


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[m[0].__name__ for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    """Graded on its own part: it changes that part's methods only, so grading
    the other part too could add no failure (see
    test_each_part_calls_only_its_own_methods)."""
    part = labs.lab("resilience").scenario(scenario).part
    assert changed(mutant) <= METHODS[part], changed(mutant)
    assert_caught("resilience", mutant, scenario, reasons, part=part)


def test_the_answer_plugs_into_the_client_like_labkits_own():
    """Policy(breaker=<factory>, budget=<factory>, backoff=<object>) is the hook;
    the reference gives labkit's own numbers."""
    from labkit.labs.resilience import BACKOFF, CONFIG, Made

    run = {"rate": 200.0, "duration": 10.0, "faults": [("errors", 3.0, 6.0, 1.0)]}
    made = Made(DefenceReference)
    mine = simulate(3, policy=Policy(timeout=0.1, attempts=3, breaker=made,
                                     budget=made, backoff=made()), **run)
    theirs = simulate(3, policy=Policy(timeout=0.1, attempts=3, breaker=CONFIG,
                                       budget=0.1, backoff=BACKOFF), **run)
    assert mine.data["summary"] == theirs.data["summary"]
    assert [s for _, s in mine.data["breaker_history"]] == [
        s for _, s in theirs.data["breaker_history"]]


@pytest.mark.slow
@pytest.mark.parametrize("part", labs.parts("resilience"))
def test_the_reference_passes_on_many_seeds(part):
    assert_reference_passes("resilience", part)
