"""The load-balancing lab: write a load-aware policy, run it in
`balancing.simulate`, let the grader measure it against theory.

A student derives `MyPolicy` from `PolicySkeleton` and writes two methods:
`candidates(view)` (every live server, or d of them drawn at random) and
`least_loaded(view, candidates)`. `MyPolicy()` is least outstanding (join
the shortest queue); `MyPolicy(d=2)` is the power of two choices. Either
plugs into `lk.balancing.simulate(policy=MyPolicy(d=2), ...)` and the plots
of notebook 02. Grading:

  least_outstanding  joins_shortest_queue, skips_dead_servers, latency_at_load,
                     servers_come_back
  power_of_d         supermarket, three_choices, one_choice_is_random,
                     every_server_used, samples_live_servers,
                     half_the_fleet_down

Every decision is checked as it is made (a live server, a plain int, the
least loaded when the part asks for it); latencies are compared with
labkit's own policies (least outstanding, power of d choices) on the same
seed, so with the same arrivals and service times, and with the power-of-d
fixed point of Mitzenmacher's supermarket model (`labkit.queueing.power_of_d`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from labkit import queueing
from labkit.balancing import (
    BalancingResult,
    LeastOutstanding,
    Policy,
    PowerOfD,
    View,
    simulate,
)
from labkit.errors import require_int

from .lab import Budget, Failed, Lab, Scenario, Trial


class LabPolicy(Policy):
    """What a balancing answer is given: `d` and the decision `choose`, which
    asks `candidates` for the servers to compare and `least_loaded` to pick.

    d: None to compare every live server (least outstanding); an int to
    sample d live servers (power of d choices). The View (see
    labkit.balancing.View) gives `live` (indices of the servers that are up,
    in order), `outstanding[i]` (requests server i holds) and `rng` (your
    seeded random stream; never use the global random module)."""

    name = "lab"

    def __init__(self, d: int | None = None):
        self.d = None if d is None else require_int("d", d, minimum=1)

    def choose(self, view: View) -> int:
        return self.least_loaded(view, self.candidates(view))


class PolicySkeleton(LabPolicy):
    """Your load-aware policy: fill in the two methods."""

    def candidates(self, view) -> list:
        """The servers this request may go to."""
        raise NotImplementedError(
            "not yet implemented: candidates: every live server (view.live) when "
            "self.d is None; else self.d live servers drawn independently with "
            "view.rng (with replacement, as in the supermarket model)")

    def least_loaded(self, view, candidates) -> int:
        """The server to send the request to."""
        raise NotImplementedError(
            "not yet implemented: least_loaded: the candidate with the fewest "
            "outstanding requests (view.outstanding[i]); on a tie, the first of "
            "them in `candidates`")


class PolicyReference(PolicySkeleton):
    """The worked answer: join the shortest of all, or of d sampled, queues."""

    def candidates(self, view) -> list:
        if self.d is None:
            return list(view.live)
        return [view.rng.choice(view.live) for _ in range(self.d)]

    def least_loaded(self, view, candidates) -> int:
        return min(candidates, key=lambda i: view.outstanding[i])   # first on ties


# -- the referee --------------------------------------------------------------------

#: How many decisions of a run the referee checks draw from view.rng.
DRAWS_CHECKED = 100


class Watched(Policy):
    """The student's policy with every decision checked as it is made: a plain
    int naming a live server (and `rule(view, choice)` if given); with d set,
    the first DRAWS_CHECKED decisions must each draw from view.rng."""

    name = "watched"

    def __init__(self, inner: Policy, rule: Callable[[View, int], None] | None,
                 trial: Trial):
        self.inner, self.rule, self.trial, self.requests = inner, rule, trial, 0

    def start(self, view: View) -> None:
        self.requests = 0
        self.inner.start(view)

    def choose(self, view: View) -> int:
        self.trial.time = now = view.now
        d = getattr(self.inner, "d", None)
        # A sample of d servers draws from view.rng (checked on the first requests,
        # where copying the stream's state is cheap): an rng of its own would
        # make the same choices on every seed.
        drawn = (view.rng.getstate() if d is not None and len(view.live) > 1
                 and self.requests < DRAWS_CHECKED else None)
        choice = self.inner.choose(view)
        self.requests += 1
        k = self.requests
        if drawn is not None and view.rng.getstate() == drawn:
            raise Failed(f"request {k} (t = {now:.3f} s) sampled d = {d} servers "
                         "without drawing from view.rng: sample with view.rng, the "
                         "run's own seeded stream; a random.Random of your own "
                         "makes the same choices on every seed")
        if choice is None:
            raise Failed(f"request {k} (t = {now:.3f} s) was refused (choose returned "
                         f"None) while servers {list(view.live)} were up")
        if type(choice) is not int:
            raise Failed(f"request {k}: choose returned {choice!r} of type "
                         f"{type(choice).__name__}; return a plain int index")
        if not (0 <= choice < view.servers and view.alive[choice]):
            raise Failed(f"request {k} (t = {now:.3f} s) went to server {choice}, "
                         f"which is down or does not exist; live servers are "
                         f"{list(view.live)}")
        if self.rule is not None:
            self.rule(view, choice)
        return choice

    def __repr__(self) -> str:
        return f"{type(self.inner).__name__}(d={getattr(self.inner, 'd', None)})"


#: Said with every wrong pick: counts a policy keeps itself (incremented on
#: every request, never decremented when one completes) pick wrong servers.
CURRENT_COUNTS = (" (compare the counts in view.outstanding as they are now: "
                  "counts of your own, never decremented when a request "
                  "completes, pick the wrong server)")


def shortest_first(view: View, choice: int) -> None:
    """Least outstanding: a server with the fewest requests, the first of them."""
    loads = view.outstanding
    best = min(view.live, key=lambda i: loads[i])
    if loads[choice] > loads[best]:
        raise Failed(f"at t = {view.now:.3f} s the request went to server {choice} "
                     f"with {loads[choice]} outstanding, but server {best} had "
                     f"{loads[best]}: least outstanding picks a server with the "
                     f"fewest{CURRENT_COUNTS}")
    if choice != best:
        raise Failed(f"at t = {view.now:.3f} s servers {best} and {choice} tied with "
                     f"{loads[best]} outstanding and the request went to {choice}: "
                     "on a tie take the first candidate, so every run repeats "
                     f"exactly{CURRENT_COUNTS}")


def run(t: Trial, d: int | None, rule=None, **params) -> BalancingResult:
    """One simulate() of the student's policy, every decision watched."""
    policy = Watched(t.impl(d=d), rule, t)
    return t.record(simulate(policy=policy, seed=t.seed, **params))


def within(what: str, got: float, expected: float, low: float, high: float,
           hint: str) -> None:
    if not low * expected <= got <= high * expected:
        raise Failed(f"{what} is {got:.3f} s, {got / expected:.2f} times "
                     f"{expected:.3f} s (allowed {low:g}-{high:g} times): {hint}")


# -- least outstanding --------------------------------------------------------------

def joins_shortest_queue(t: Trial) -> None:
    """Every request goes to a live server with the fewest outstanding requests, the
    first such on a tie."""
    run(t, None, shortest_first, servers=10, load=0.8, requests=3000)


def skips_dead_servers(t: Trial) -> None:
    """Servers crash and come back: requests go to live servers only, none is
    refused."""
    faults = [(50.0, "kill", 0), (60.0, "kill", 3), (80.0, "kill", 7),
              (150.0, "restart", 3), (200.0, "restart", 0)]
    run(t, None, shortest_first, servers=8, load=0.6, requests=3000, faults=faults)


def latency_at_load(t: Trial) -> None:
    """Twenty servers at load 0.9: mean and p99 latency as labkit's least-outstanding
    policy gets on the same seed.

    The same seed gives both runs the same arrivals and service times, so for a
    correct answer (ties go another way) the two means differ by 0.8 % and the
    p99s by 2.4 % (standard deviations over seeds 0-149, 9,000 requests
    measured), far inside the 15 % and 30 % allowed."""
    params = {"servers": 20, "load": 0.9, "requests": 10_000, "warmup": 1_000}
    mine = run(t, None, **params).latency
    theirs = simulate(policy=LeastOutstanding(), seed=t.seed, **params).latency
    hint = "least outstanding should match labkit's LeastOutstanding"
    within("the mean latency", mine.mean, theirs.mean, 0.85, 1.15, hint)
    within("the p99 latency", mine.percentile(99), theirs.percentile(99), 0.7, 1.3,
           hint)


def servers_come_back(t: Trial) -> None:
    """Five of six servers start down and return after 40 s to a long queue on the
    survivor: every one of them gets requests."""
    faults = [(0.0, "kill", i) for i in range(1, 6)] + [
        (40.0, "restart", i) for i in range(1, 6)]
    served = run(t, None, shortest_first, servers=6, load=0.5, requests=3000,
                 faults=faults).served.tolist()
    if min(served) == 0:
        raise Failed(f"the servers served {served} requests: servers that come back "
                     "must get requests again (read view.live afresh for every "
                     "request)")


# -- power of d ---------------------------------------------------------------------

#: The supermarket runs: 100 servers at load 0.9, 10,000 requests measured.
SUPERMARKET = {"servers": 100, "load": 0.9, "requests": 12_000, "warmup": 2_000}

#: The seed-to-seed scatter, relative standard deviation times sqrt(requests
#: measured), of the ratio of a correct answer's mean latency to labkit's
#: PowerOfD(d) on the same seed (see `near_labkit`).
SAME_INPUT_SPREAD = {2: 1.8, 3: 1.2}

#: The half-the-fleet-down runs: 40 servers, the odd-numbered 20 down from the
#: start, at load 0.45 of the fleet (0.9 on the live half), 5,000 requests
#: measured.
FLEET_DOWN = {"servers": 40, "load": 0.45, "requests": 6_000, "warmup": 1_000,
              "faults": tuple((0.0, "kill", i) for i in range(1, 40, 2))}

#: As SAME_INPUT_SPREAD, for the FLEET_DOWN runs with d = 2 (seeds 0-399).
FLEET_DOWN_SPREAD = 1.9


def near_fixed_point(measured: int) -> tuple[float, float]:
    """The range, as multiples of the power-of-d fixed point, where the mean
    latency of a correct answer over `measured` requests lands.

    With 100 servers, not infinitely many, the mean sits about 2 % above the
    fixed point (0-2 % after a warm-up of 2,000 requests from empty queues),
    and from seed to seed it scatters with a relative standard deviation of
    about 6 / sqrt(measured) (0.055 at 10,000 requests, 0.037 at 25,000, 0.02
    at 90,000, over 200-300 seeds for d = 2 and 3). Six of them either side:
    a correct answer practically never falls outside. The scatter is the
    arrivals' and service times' own (a congested stretch slows every policy
    alike), so this range is wide: `near_labkit` is the close check."""
    spread = 6 * 6.0 / math.sqrt(measured)
    return round(1.02 - spread, 2), round(1.02 + spread, 2)


def near_labkit(d: int, measured: int) -> tuple[float, float]:
    """The range, as multiples of the mean latency labkit's PowerOfD(d) gets on
    the same seed, where the mean latency of a correct answer over `measured`
    requests lands.

    The same seed gives both runs the same arrivals and service times; only
    the servers sampled differ. Nearly all of a mean's scatter from seed to
    seed is the arrivals' and service times' (two correct samplers' means
    correlate at 0.94 for d = 2, 0.97 for d = 3), so the ratio of the two
    scatters far less than either mean: a relative standard deviation of
    SAME_INPUT_SPREAD[d] / sqrt(measured), 0.018 for d = 2 and 0.012 for d = 3
    at 10,000 requests (measured on seeds 0-299, labkit's PowerOfD against a
    sampler written apart from it, and on 0-199 against the worked answer),
    where the mean itself scatters by 0.055. Six of them either side: a
    correct answer practically never falls outside (it stayed within 2.8),
    while sampling d - 1 or d + 1 servers lands far out, on every seed of
    0-199: for d = 2, 2.57 and 0.79 times (sd 0.11 and 0.012), for d = 3, 1.27
    and 0.88 times (sd 0.021 and 0.010)."""
    spread = 6 * SAME_INPUT_SPREAD[d] / math.sqrt(measured)
    return round(1 - spread, 2), round(1 + spread, 2)


@lru_cache(maxsize=64)
def labkit_mean(d: int, seed: int, params: tuple) -> float:
    """The mean latency of labkit's PowerOfD(d) on `seed` with `params` (the
    items of SUPERMARKET or FLEET_DOWN); cached, since grading runs a seed more
    than once."""
    return simulate(policy=PowerOfD(d), seed=seed, **dict(params)).latency.mean


def near_power_of_d(t: Trial, d: int, hint: str) -> None:
    """The supermarket run with d samples: its mean latency must match labkit's
    PowerOfD(d) on the same arrivals and service times closely, and the fixed
    point roughly."""
    mean = run(t, d, **SUPERMARKET).latency.mean
    theirs = labkit_mean(d, t.seed, tuple(SUPERMARKET.items()))
    fixed = queueing.power_of_d(SUPERMARKET["load"], d)
    measured = SUPERMARKET["requests"] - SUPERMARKET["warmup"]
    low, high = near_labkit(d, measured)
    far_low, far_high = near_fixed_point(measured)
    if not (low * theirs <= mean <= high * theirs
            and far_low * fixed <= mean <= far_high * fixed):
        raise Failed(f"the mean latency is {mean:.3f} s, {mean / theirs:.2f} times the "
                     f"{theirs:.3f} s labkit's PowerOfD({d}) gets with the same "
                     f"arrivals and service times (allowed {low:g}-{high:g} times), "
                     f"and {mean / fixed:.2f} times the fixed point {fixed:.3f} s "
                     f"(allowed {far_low:g}-{far_high:g} times): {hint}")


def supermarket(t: Trial) -> None:
    """d = 2, 100 servers at load 0.9: mean latency as labkit's power of two choices
    gets on the same seed, near the fixed point."""
    near_power_of_d(t, 2, "two random live servers, the less loaded of them, should "
                    "land near Mitzenmacher's fixed point (lk.queueing.power_of_d)")


def three_choices(t: Trial) -> None:
    """d = 3, 100 servers at load 0.9: mean latency as labkit's power of three choices
    gets on the same seed, near the fixed point."""
    near_power_of_d(t, 3, "sample self.d servers, not a fixed number")


def one_choice_is_random(t: Trial) -> None:
    """d = 1 is uniform random: ten servers at load 0.5 behave like M/M/1 queues."""
    mean = run(t, 1, servers=10, load=0.5, requests=20_000, warmup=2_000).latency.mean
    within("the mean latency", mean, queueing.power_of_d(0.5, 1), 0.9, 1.1,
           "with d = 1 each request should go to a live server drawn uniformly "
           "with view.rng")


def every_server_used(t: Trial) -> None:
    """d = 2, 20 servers at load 0.9: every server gets a fair share of the requests."""
    served = run(t, 2, servers=20, load=0.9, requests=10_000).served.tolist()
    mean = sum(served) / len(served)
    share = [x / mean for x in served]
    if min(share) < 0.5 or max(share) > 1.5:
        low, high = share.index(min(share)), share.index(max(share))
        raise Failed(f"server {low} served {served[low]} requests and server {high} "
                     f"{served[high]} (the mean is {mean:.0f}): draw every live "
                     "server with equal chance")


def samples_live_servers(t: Trial) -> None:
    """d = 2 while servers crash and come back: samples only live servers."""
    faults = [(30.0, "kill", 1), (40.0, "kill", 4), (90.0, "restart", 1)]
    run(t, 2, servers=6, load=0.5, requests=3000, faults=faults)


def half_the_fleet_down(t: Trial) -> None:
    """d = 2, 40 servers of which the 20 odd-numbered are down, 0.9 load on the
    live half: mean latency as labkit's power of two choices gets on the same
    seed.

    Two samples drawn from the live servers, as asked. Drawn from every server
    with the dead ones dropped, three in four requests are left with one
    sample or none: nearly random choice, 1.6-2.1 times labkit's mean (seeds
    0-99), where a correct answer stays within 0.93-1.10 (seeds 0-399; the
    ratio's relative standard deviation is FLEET_DOWN_SPREAD / sqrt(measured),
    0.027; allowed: six of them either side)."""
    mean = run(t, 2, **FLEET_DOWN).latency.mean
    theirs = labkit_mean(2, t.seed, tuple(FLEET_DOWN.items()))
    measured = FLEET_DOWN["requests"] - FLEET_DOWN["warmup"]
    spread = 6 * FLEET_DOWN_SPREAD / math.sqrt(measured)
    within("with half the fleet down, the mean latency", mean, theirs,
           round(1 - spread, 2), round(1 + spread, 2),
           "draw each of the d samples uniformly from the live servers "
           "(view.live), all of them and only them: samples drawn from every "
           "server, the dead ones then dropped, leave most requests one choice "
           "or none, close to random")


LAB = Lab(
    name="balancing",
    title="Load balancing: least outstanding and the power of d choices",
    parts=("least_outstanding", "power_of_d"),
    scenarios=tuple(Scenario(fn.__name__, part, fn) for part, fns in {
        "least_outstanding": [joins_shortest_queue, skips_dead_servers,
                              latency_at_load, servers_come_back],
        "power_of_d": [supermarket, three_choices, one_choice_is_random,
                       every_server_used, samples_live_servers,
                       half_the_fleet_down],
    }.items() for fn in fns),
    skeleton=PolicySkeleton,
    reference=PolicyReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(cpu=10.0),
    window=0.0,
)
