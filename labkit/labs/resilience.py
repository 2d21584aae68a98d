"""The resilience lab: write a circuit breaker and a retry budget with jittered
backoff, plug them into `resilience.simulate`'s client, let the grader break
them.

A student derives `MyDefence` from `DefenceSkeleton` and writes five methods:
`allow` and `on_result` (the breaker: closed, open, half-open over a count
window), `on_request` and `try_spend` (the retry budget, a token bucket) and
`backoff` (full jitter from the rng given). With `made = Made(MyDefence)`
they plug into `lk.resilience.Policy(breaker=made, budget=made,
backoff=made())`.
Grading:

  breaker  breaker_by_hand, opens_on_errors, opens_on_crash, stays_closed_when_healthy
  retry    budget_by_hand, caps_amplification, backoff_full_jitter, backoff_in_client

Expectations are independent of the answer: labkit's own `CircuitBreaker`
and `RetryBudget`, driven call by call on a hand-cranked clock beside the
student's, the bound amplification <= 1 + ratio + burst / requests, and the
definition of full jitter (sleep uniform in [0, min(cap, base * 2**attempt)],
drawn from the rng passed in).
"""

from __future__ import annotations

import functools
import math
import random
from collections import deque
from collections.abc import Callable

from labkit.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Backoff,
    BreakerConfig,
    CircuitBreaker,
    Policy,
    RetryBudget,
    simulate,
)

from .lab import Budget, Failed, Lab, Scenario, Trial

#: The breaker every scenario uses: 50 % failures over the last 20 calls, at
#: least 10 calls, 2 s open, 3 half-open probes.
CONFIG = BreakerConfig(failure_rate=0.5, window="count", window_size=20,
                       minimum_calls=10, open_duration=2.0, half_open_calls=3)
RATIO, BURST = 0.1, 10.0
BACKOFF = Backoff("full", base=0.01, cap=1.0)


class LabDefence:
    """What a resilience answer is given: the breaker's knobs and state, the
    budget's bucket and the backoff's base and cap, and the plumbing the
    client calls (`acquire`, `record`, `delay`).

    config: a BreakerConfig with a count window (`window_size` last calls);
    clock(): the current time in seconds. State: `state` (CLOSED, OPEN or
    HALF_OPEN), `outcomes` (the window: True for each failed call, oldest
    first), `probes` (calls admitted in half-open), `opened_at` (when it last
    opened); `enter(state)` changes state, empties the window and the probes
    and logs the change. Budget: `ratio`, `burst`, `tokens` (a full bucket to
    start). Backoff: `base`, `cap`."""

    def __init__(self, config: BreakerConfig = CONFIG,
                 clock: Callable[[], float] = lambda: 0.0,
                 ratio: float = RATIO, burst: float = BURST,
                 backoff: Backoff = BACKOFF):
        if config.window != "count":
            raise ValueError("the lab's breaker counts the last window_size calls: "
                             "use a BreakerConfig with window='count'")
        self.config, self.clock = config, clock
        self.ratio, self.burst, self.tokens = ratio, burst, burst
        self.base, self.cap = backoff.base, backoff.cap
        self.state, self.epoch = CLOSED, 0
        self.history: list[tuple[float, str]] = [(clock(), CLOSED)]
        self.outcomes: deque[bool] = deque()
        self.probes = 0
        self.opened_at = -math.inf

    def enter(self, state: str) -> None:
        """Change to `state` now: a new epoch with an empty window and no probes."""
        self.state, self.epoch = state, self.epoch + 1
        self.outcomes.clear()
        self.probes = 0
        if state == OPEN:
            self.opened_at = self.clock()
        self.history.append((self.clock(), state))

    # -- what labkit.resilience's Client calls -----------------------------------
    def acquire(self) -> int | None:
        """A permit (the epoch) if `allow()`, else None."""
        return self.epoch if self.allow() else None

    def record(self, permit: int, ok: bool) -> None:
        """`on_result(ok)`, unless the call was admitted in an earlier epoch."""
        if permit == self.epoch:
            self.on_result(ok)

    def delay(self, attempt: int, rng: random.Random,
              previous: float | None = None) -> float:
        return self.backoff(attempt, rng)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.state}, tokens={self.tokens:.3g})"


class DefenceSkeleton(LabDefence):
    """Your circuit breaker, retry budget and backoff: fill in the five methods."""

    def allow(self) -> bool:
        """May a call go out now? (breaker)"""
        raise NotImplementedError(
            "not yet implemented: allow: CLOSED admits every call; OPEN rejects "
            "until self.config.open_duration has passed since self.opened_at, then "
            "enters HALF_OPEN; HALF_OPEN admits self.config.half_open_calls probes "
            "(count them in self.probes) and rejects the rest")

    def on_result(self, ok: bool) -> None:
        """A call admitted in this state ended, well (ok) or not. (breaker)"""
        raise NotImplementedError(
            "not yet implemented: on_result: append `not ok` to self.outcomes; in "
            "CLOSED keep the last window_size, and once they are at least "
            "minimum_calls with a failure rate >= failure_rate enter OPEN; in "
            "HALF_OPEN, after half_open_calls outcomes enter OPEN if their failure "
            "rate is >= failure_rate, else CLOSED")

    def on_request(self) -> None:
        """A new user request (not a retry) starts. (retry budget)"""
        raise NotImplementedError(
            "not yet implemented: on_request: add self.ratio tokens, keeping at "
            "most self.burst")

    def try_spend(self) -> bool:
        """May a retry go out? (retry budget)"""
        raise NotImplementedError(
            "not yet implemented: try_spend: if a whole token is left (allow "
            "1e-9 of float dust) take it and return True, else return False")

    def backoff(self, attempt: int, rng) -> float:
        """Seconds to sleep before retry number `attempt` (1 for the first)."""
        raise NotImplementedError(
            "not yet implemented: backoff: full jitter, uniform between 0 and "
            "min(self.cap, self.base * 2**attempt), drawn from rng")


class DefenceReference(DefenceSkeleton):
    """The worked answer."""

    def allow(self) -> bool:
        config = self.config
        if self.state == OPEN and self.clock() >= self.opened_at + config.open_duration:
            self.enter(HALF_OPEN)
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and self.probes < config.half_open_calls:
            self.probes += 1
            return True
        return False

    def on_result(self, ok: bool) -> None:
        config, outcomes = self.config, self.outcomes
        outcomes.append(not ok)
        if self.state == HALF_OPEN:
            if len(outcomes) == config.half_open_calls:
                failed = sum(outcomes) / len(outcomes) >= config.failure_rate
                self.enter(OPEN if failed else CLOSED)
            return
        if len(outcomes) > config.window_size:
            outcomes.popleft()
        if (len(outcomes) >= config.minimum_calls
                and sum(outcomes) / len(outcomes) >= config.failure_rate):
            self.enter(OPEN)

    def on_request(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def backoff(self, attempt: int, rng) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** attempt))


class Made:
    """A factory of the student's class that the Policy calls (with the clock
    for a breaker, with nothing for a budget); its repr has no address, so a
    run's fingerprint is the same in every process."""

    def __init__(self, impl: type, **kwargs):
        self.impl, self.kwargs = impl, kwargs

    def __call__(self, clock: Callable[[], float] = lambda: 0.0) -> LabDefence:
        return self.impl(clock=clock, **self.kwargs)

    def __repr__(self) -> str:
        return f"Made({self.impl.__name__})"


# -- the breaker's referee -------------------------------------------------------------

def transition_hint(before: str, expected: str | None, got: str | None) -> str:
    """What rule a breaker broke, given the state it was in, the state the
    definition moves to (None: stay) and the state the answer moved to."""
    if before == CLOSED and expected == OPEN:
        return ("it should have opened: once the window holds at least "
                "minimum_calls calls and their failure rate reaches failure_rate, "
                "enter OPEN")
    if before == CLOSED and got == OPEN:
        return ("it opened too early: open only once the window holds at least "
                "minimum_calls calls (of the last window_size) and their failure "
                "rate reaches failure_rate")
    if before == OPEN and expected == HALF_OPEN:
        return ("it should have half-opened: once open_duration has passed, the "
                "next call enters HALF_OPEN and goes out as a probe")
    if before == OPEN:
        return ("it left OPEN too early: reject every call for open_duration "
                "seconds, then enter HALF_OPEN")
    return ("half-open decides after exactly half_open_calls probe outcomes: "
            "CLOSED if their failure rate is below failure_rate, else OPEN again")


def admission_hint(state: str) -> str:
    if state == HALF_OPEN:
        return ("half-open admits only half_open_calls probes and rejects the rest "
                "until they have answered")
    if state == OPEN:
        return "an open breaker rejects every call for open_duration seconds"
    return "a closed breaker admits every call"


#: Call sequences that sit exactly on a threshold of CONFIG, each in a fresh
#: breaker: F a failed call, S a good one, a number the seconds to wait. Each
#: verdict differs for a window one call shorter or longer, a minimum one call
#: higher, a rate over window_size rather than the calls held, or a half-open
#: breaker that wants every probe to succeed.
SCRIPTS = (
    "S" * 5 + "F" * 5,                      # 5 of 10 at minimum_calls: opens
    "F" + "S" * 10 + "F" * 9,               # 10 of the last 20: opens at call 20
    "S" * 11 + "F" * 10,                    # the window slides: opens at call 21
    "S" * 5 + "F" * 5 + "1SFS",             # open for 1 s of 2: rejects, stays
    "S" * 5 + "F" * 5 + "2SFS",             # 1 of 3 probes failed: closes
    "S" * 5 + "F" * 5 + "2FSF",             # 2 of 3 probes failed: opens again
)


#: CONFIG with four probes: the one script run with it (in `breaker_by_hand`)
#: makes exactly half the probes fail, a rate no three probes can have.
EVEN_PROBES = BreakerConfig(failure_rate=0.5, window="count", window_size=20,
                            minimum_calls=10, open_duration=2.0, half_open_calls=4)
#: 2 of 4 probes fail, 50 % = failure_rate: "at least" the rate opens again.
EVEN_SCRIPT = "S" * 5 + "F" * 5 + "2SFSF"


def judged(where: str, got: str, expected: str, agreed: str,
           window: list[bool], config: BreakerConfig = CONFIG) -> None:
    """Fail unless the state is the definition's, saying which outcomes (the
    window, or the probes) the definition judged."""
    if got == expected:
        return
    hint = transition_hint(agreed, expected if expected != agreed else None,
                           got if got != agreed else None)
    failed, n = sum(window), len(window)
    if not n:
        raise Failed(f"{where}: your breaker is {got}, the definition says "
                     f"{expected}: {hint}")
    knobs = (f"minimum_calls = {config.minimum_calls}, failure_rate = "
             f"{config.failure_rate:.0%}")
    if agreed == HALF_OPEN:
        who = f"the {n} probes"
        rule = ("; a rate equal to failure_rate opens again: >=, not >"
                if failed / n == config.failure_rate else "")
        knobs = (f"half_open_calls = {config.half_open_calls}, failure_rate = "
                 f"{config.failure_rate:.0%}")
    elif n == config.window_size:
        who = f"the last window_size = {n} calls"
        rule = "; keep exactly the last window_size outcomes"
    else:
        who = f"the {n} calls in the window"
        rule = ("; judge once len(outcomes) >= minimum_calls, dividing by the calls "
                "held, not by window_size" if n == config.minimum_calls
                else "; the rate is over the calls held, not window_size")
    raise Failed(f"{where}: your breaker is {got}, the definition says {expected}: "
                 f"{hint}; here {who}: {failed} failed, {failed}/{n} = "
                 f"{failed / n:.0%} ({knobs}{rule})")


def scripted(t: Trial, script: str, config: BreakerConfig = CONFIG) -> None:
    """One SCRIPTS sequence, each call admitted and ended before the next, in
    your breaker and in labkit's on a hand-cranked clock."""
    now = [0.0]
    mine = t.impl(config=config, clock=lambda: now[0])
    truth = CircuitBreaker(config, lambda: now[0])
    window: list[bool] = []          # the definition's outcomes in this state
    calls, agreed = 0, CLOSED
    for step in script:
        if step.isdigit():
            now[0] += float(step) + 0.05
            continue
        calls, now[0] = calls + 1, now[0] + 0.01
        t.time = now[0]
        where = f"scripted calls {script!r}, call {calls}" + (
            f" (half_open_calls = {config.half_open_calls})" if config is not CONFIG
            else "")
        ours, theirs = truth.acquire(), mine.acquire()
        judged(where, mine.state, truth.state, agreed, window, config)
        agreed = truth.state                  # half-open once open_duration is over
        if (theirs is not None) != (ours is not None):
            raise Failed(f"{where}: your {mine.state} breaker "
                         f"{'admitted' if theirs is not None else 'rejected'} it: "
                         f"{admission_hint(mine.state)}")
        if ours is None:
            continue
        ok = step == "S"
        truth.record(ours, ok)
        mine.record(theirs, ok)
        window = (window + [not ok])[-config.window_size:]
        judged(f"{where} ({'ok' if ok else 'failed'})", mine.state, truth.state,
               agreed, window, config)
        if truth.state != agreed:             # a new state starts an empty window
            agreed, window = truth.state, []


def breaker_by_hand(t: Trial) -> None:
    """Your breaker beside labkit's CircuitBreaker on a hand-cranked clock: first
    short scripted sequences that sit exactly on each threshold (one with four
    half-open probes, two of which fail: a probe failure rate equal to
    failure_rate opens again, as a window's does), then calls that start and
    end (up to six in flight) as the failure rate swings; every admission and
    state must match the definition."""
    for script in SCRIPTS:
        scripted(t, script)
    scripted(t, EVEN_SCRIPT, EVEN_PROBES)
    rng, now = random.Random(t.seed), [0.0]
    mine = t.impl(config=CONFIG, clock=lambda: now[0])
    truth = CircuitBreaker(CONFIG, lambda: now[0])
    inflight: deque[tuple[int | None, int | None]] = deque()
    p_fail, calls, agreed = 0.1, 0, CLOSED
    for step in range(600):
        now[0] += rng.expovariate(5.0)
        t.time = now[0]
        if step % 60 == 0:
            p_fail = rng.choice((0.05, 0.3, 0.7, 0.95))
        ending = bool(inflight) and (len(inflight) >= 6 or rng.random() < 0.5)
        if ending:
            theirs, ours = inflight.popleft()
            ok = rng.random() >= p_fail
            truth.record(ours, ok)         # a rejected call (None) is ignored
            mine.record(theirs, ok)
            where = f"after a call ended at t = {now[0]:.3f} s"
        else:
            calls += 1
            ours, theirs = truth.acquire(), mine.acquire()
            where = f"call {calls} at t = {now[0]:.3f} s"
        expected, got = truth.state, mine.state
        # labkit's breaker half-opens when read; yours at the next call
        noticed_later = ending and agreed == got == OPEN and expected == HALF_OPEN
        if got != expected and not noticed_later:
            hint = transition_hint(agreed, expected if expected != agreed else None,
                                   got if got != agreed else None)
            raise Failed(f"{where}: your breaker is {got}, the definition says "
                         f"{expected}: {hint}")
        agreed = got
        if ending:
            continue
        if (theirs is not None) != (ours is not None):
            raise Failed(f"{where}: your {got} breaker "
                         f"{'admitted' if theirs is not None else 'rejected'} the "
                         f"call: {admission_hint(got)}")
        inflight.append((theirs, ours))


def same_entry(got: tuple[float, str], expected: tuple[float, str]) -> bool:
    """The same change at the same time; yours half-opens at the first call after
    open_duration, labkit's history is stamped when it ends."""
    (g_at, g), (e_at, e) = got, expected
    if g != e:
        return False
    return e_at <= g_at <= e_at + 1.0 if g == HALF_OPEN else abs(g_at - e_at) < 1e-9


@functools.lru_cache(maxsize=1024)
def labkit_history(seed: int, faults: tuple, params: tuple) -> tuple:
    """The changes of state of labkit's own breaker (CONFIG) in simulate() on
    `seed`: (time, state) pairs. They depend on nothing the student wrote, and a
    run is a pure function of its seed and settings, so each (scenario, seed) is
    run once per process however many answers are graded on it."""
    run = simulate(seed, policy=Policy(timeout=0.1, breaker=CONFIG), rate=200.0,
                   duration=20.0, faults=list(faults), **dict(params))
    return tuple(run.data["breaker_history"])


def against_labkit(t: Trial, faults: list, **params) -> None:
    """simulate() with the student's breaker and with labkit's on the same seed:
    the same changes of state at the same times."""
    made = Made(t.impl, config=CONFIG)
    run = dict(rate=200.0, duration=20.0, faults=faults, **params)
    result = t.record(simulate(t.seed, policy=Policy(timeout=0.1, breaker=made),
                               **run))
    got = result.data["breaker_history"]
    expected = labkit_history(t.seed, tuple(map(tuple, faults)),
                              tuple(sorted(params.items())))
    for i in range(1, max(len(got), len(expected))):
        g = got[i] if i < len(got) else (math.inf, None)
        e = expected[i] if i < len(expected) else (math.inf, None)
        if same_entry(g, e):
            continue
        before = expected[i - 1][1]
        if g[1] == e[1] or g[0] < e[0]:     # the first to change broke the rule
            hint, t.time = (transition_hint(before, None, g[1]) if g[0] < e[0]
                            else transition_hint(before, e[1], None)), min(g[0], e[0])
        else:
            hint, t.time = transition_hint(before, e[1], None), e[0]
        yours = f"{g[1]} at t = {g[0]:.3f} s" if g[1] else "(stays)"
        theirs = f"{e[1]} at t = {e[0]:.3f} s" if e[1] else "(stays)"
        raise Failed(f"your breaker went {before} -> {yours}, the definition "
                     f"{before} -> {theirs}: {hint}")


def opens_on_errors(t: Trial) -> None:
    """The backend fails every request from 5 s to 10 s: the breaker opens,
    probes, and closes again once it recovers, as the definition says."""
    against_labkit(t, [("errors", 5.0, 10.0, 1.0)])


def opens_on_crash(t: Trial) -> None:
    """Every replica crashes from 4 s to 9 s: timeouts count as failures."""
    against_labkit(t, [("crash", 4.0, 9.0, 1.0)])


def stays_closed_when_healthy(t: Trial) -> None:
    """A twentieth of requests fail and replicas run half again as slow for 4 s:
    far below the failure rate, so the breaker stays closed.

    Judged beside labkit's breaker on the same seed, which stays closed on seeds
    0-199; with a tenth failing, or replicas twice as slow (timeouts count as
    failures), 10 failures in 20 calls come by chance and it opens on some."""
    against_labkit(t, [("errors", 2.0, 20.0, 0.05), ("slow", 8.0, 12.0, 1.5)])


# -- the retry budget and backoff ------------------------------------------------------

def spent_as_defined(where: str, mine: LabDefence, truth: RetryBudget,
                     requests: int) -> None:
    """One retry asks both budgets: yours must spend or deny as labkit's does."""
    had, yours = truth.tokens, getattr(mine, "tokens", None)
    got, expected = mine.try_spend(), truth.try_spend()
    if got and not expected:
        hoard = (f"; yours held {yours:.2f} after {requests} requests in a row: keep "
                 "at most burst, min(burst, tokens + ratio)"
                 if isinstance(yours, float | int) and yours > BURST + 1e-9 else "")
        raise Failed(f"{where}: your budget spent a retry with no whole token left "
                     f"({had:.2f} tokens): each retry costs one token and each "
                     f"request earns ratio = {RATIO}, the bucket holding at most "
                     f"burst = {BURST:g}{hoard}")
    if expected and not got:
        dust = (f" ({had!r}: {requests} requests' ratio = {RATIO} sum to just under "
                "1 in floating point; allow 1e-9 of float dust)"
                if had < 1.0 and isinstance(yours, float | int)
                and abs(yours - had) < 1e-6 else "")
        raise Failed(f"{where}: your budget denied a retry while the bucket held "
                     f"{had:.2f} tokens{dust}: each request earns ratio = {RATIO} "
                     f"(up to burst = {BURST:g}), each retry takes one")


def budget_by_hand(t: Trial) -> None:
    """Your budget beside labkit's RetryBudget: first a script (many requests with
    no retry, then retries until the bucket is empty, then just enough requests
    for one more), then requests and retries in a seeded order; every retry must
    be spent or denied as the definition says."""
    mine, truth = t.impl(ratio=RATIO, burst=BURST), RetryBudget(RATIO, BURST)
    quiet = round(3 * BURST / RATIO)
    for _ in range(quiet):                  # a quiet spell: the bucket stays full
        mine.on_request()
        truth.on_request()
    for retry in range(1, round(BURST) + 2):
        spent_as_defined(f"after {quiet} requests and no retry, retry {retry}", mine,
                         truth, quiet)
    again = round(1 / RATIO)
    for _ in range(again):                  # 10 * 0.1 is 0.9999999999999999
        mine.on_request()
        truth.on_request()
    spent_as_defined(f"with the bucket emptied, {again} requests later, a retry",
                     mine, truth, again)
    rng, requests = random.Random(t.seed), 0
    for step in range(3000):
        if rng.random() < 0.6:
            mine.on_request()
            truth.on_request()
            requests += 1
            continue
        spent_as_defined(f"step {step}", mine, truth, requests)
        requests = 0


def caps_amplification(t: Trial) -> None:
    """Everything fails and each request may try four times: the budget keeps
    copies per request within 1 + ratio + burst / requests, and spends it."""
    made = Made(t.impl)
    policy = Policy(timeout=0.1, attempts=4, budget=made, backoff=made())
    result = t.record(simulate(t.seed, policy=policy, rate=200.0, duration=10.0,
                               faults=[("errors", 0.0, math.inf, 1.0)]))
    summary, m = result.data["summary"], result.metrics
    requests, retries = summary["requests"], m["retries"].value
    bound = 1 + RATIO + BURST / requests
    if summary["amplification"] > bound + 1e-9:
        raise Failed(f"amplification {summary['amplification']:.3f} is over "
                     f"1 + ratio + burst / requests = {bound:.3f}: {retries} retries "
                     f"for {requests} requests; each retry must spend a token")
    least = RATIO * (requests - 1) + BURST - 1.5
    if retries < least:
        raise Failed(f"only {retries} retries for {requests} failing requests, "
                     f"expected about {least + 1.5:.0f}: every request earns ratio "
                     f"= {RATIO} of a token, so the budget refills")


def backoff_full_jitter(t: Trial) -> None:
    """backoff(attempt, rng) by hand: within [0, min(cap, base * 2**attempt)],
    uniform over it, and the same sleeps from two rngs with the same seed."""
    mine = t.impl()
    for attempt in (1, 3, 6, 7, 12):
        ceiling = BACKOFF.ceiling(attempt)
        one, two = random.Random(t.seed), random.Random(t.seed)
        first = [mine.backoff(attempt, one) for _ in range(400)]
        second = [mine.backoff(attempt, two) for _ in range(400)]
        if first != second:
            raise Failed(f"attempt {attempt}: two rngs with seed {t.seed} gave "
                         "different sleeps: draw the jitter from the rng you are "
                         "given, never the global random module")
        bad = next((s for s in first if not 0.0 <= s <= ceiling), None)
        if bad is not None:
            raise Failed(f"attempt {attempt}: slept {bad!r} s, outside [0, "
                         f"min(cap, base * 2**attempt)] = [0, {ceiling:g}]")
        mean = sum(first) / len(first) / ceiling
        if not 0.4 <= mean <= 0.6 or min(first) > 0.1 * ceiling:
            raise Failed(f"attempt {attempt}: sleeps average {mean:.2f} of "
                         f"min(cap, base * 2**attempt) = {ceiling:g} s, least "
                         f"{min(first):.4f} s: full jitter draws uniformly from "
                         f"[0, {ceiling:g}], averaging half of it")


class WatchedBackoff:
    """The student's backoff inside the client, every sleep checked."""

    def __init__(self, inner: LabDefence):
        self.inner = inner

    def delay(self, attempt: int, rng: random.Random,
              previous: float | None = None) -> float:
        sleep = self.inner.backoff(attempt, rng)
        ceiling = BACKOFF.ceiling(attempt)
        if not (isinstance(sleep, float | int) and 0.0 <= sleep <= ceiling):
            raise Failed(f"retry {attempt} slept {sleep!r} s, outside [0, "
                         f"min(cap, base * 2**attempt)] = [0, {ceiling:g}]")
        return sleep

    def __repr__(self) -> str:
        return f"WatchedBackoff({type(self.inner).__name__})"


def backoff_in_client(t: Trial) -> None:
    """Half the requests fail and each may try three times: every sleep the client
    takes is full jitter within bounds, and the run replays exactly."""
    made = Made(t.impl)
    policy = Policy(timeout=0.1, attempts=3, budget=made,
                    backoff=WatchedBackoff(made()))
    result = t.record(simulate(t.seed, policy=policy, rate=200.0, duration=10.0,
                               faults=[("errors", 0.0, math.inf, 0.5)]))
    if result.metrics["retries"].value == 0:
        raise Failed("no retry went out while half the requests failed: the "
                     "budget starts full (burst tokens)")


LAB = Lab(
    name="resilience",
    title="Resilience: a circuit breaker, a retry budget and jittered backoff",
    parts=("breaker", "retry"),
    scenarios=tuple(Scenario(fn.__name__, part, fn) for part, fns in {
        "breaker": [breaker_by_hand, opens_on_errors, opens_on_crash,
                    stays_closed_when_healthy],
        "retry": [budget_by_hand, caps_amplification, backoff_full_jitter,
                  backoff_in_client],
    }.items() for fn in fns),
    skeleton=DefenceSkeleton,
    reference=DefenceReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(cpu=10.0),
    window=0.0,
)
