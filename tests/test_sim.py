"""The simulator: agenda order, run boundaries, random streams, processes,
and the helpers that wait for several futures."""

import itertools
import math
import random

import pytest

from labkit import ConfigError, Future, Simulator, Unavailable
from labkit.sim import finish, first, gather, settled


def recorder(sim):
    """A list and a callback that appends (now, tag) to it."""
    seen = []
    return seen, lambda tag: seen.append((sim.now, tag))


# -- agenda order ----------------------------------------------------------------

def test_equal_times_run_in_the_order_they_were_scheduled():
    sim = Simulator()
    seen, note = recorder(sim)
    tags = [f"e{i}" for i in range(50)]
    for tag in tags:
        sim.schedule(1.0, note, tag)
    sim.at(1.0, note, "last")          # absolute time, same instant, scheduled last
    sim.run()
    assert [tag for _, tag in seen] == tags + ["last"]


def test_events_run_in_time_order_whatever_the_scheduling_order():
    sim = Simulator()
    seen, note = recorder(sim)
    delays = random.Random(3).sample(range(1, 200), 60)
    for d in delays:
        sim.schedule(d / 100, note, d)
    sim.run()
    assert [tag for _, tag in seen] == sorted(delays)
    assert all(t == tag / 100 for t, tag in seen)


def test_an_event_due_exactly_at_the_end_of_run_waits_for_the_next_call():
    sim = Simulator()
    seen, note = recorder(sim)
    sim.schedule(2.0, note, "due at 2")
    sim.run(2.0)
    assert seen == [] and sim.now == 2.0
    note("kill")                        # what `run(2); kill(x); run(5)` does
    sim.run(5.0)
    assert seen == [(2.0, "kill"), (2.0, "due at 2")]
    assert sim.now == 7.0


def test_run_executes_everything_strictly_before_the_end_then_sets_the_clock():
    sim = Simulator()
    seen, note = recorder(sim)
    for t in (0.0, 0.5, 0.999):
        sim.at(t, note, t)
    sim.run(1.0)
    assert [tag for _, tag in seen] == [0.0, 0.5, 0.999]
    assert sim.now == 1.0
    sim.run(0.0)                        # a zero-length run does nothing
    assert sim.now == 1.0 and len(seen) == 3


def test_events_scheduled_by_events_run_in_the_same_call_if_due():
    sim = Simulator()
    seen, note = recorder(sim)
    sim.schedule(0.1, lambda: sim.schedule(0.2, note, "child"))
    sim.schedule(0.1, lambda: sim.schedule(0.0, note, "same instant"))
    sim.run(0.3 + 1e-9)
    assert [tag for _, tag in seen] == ["same instant", "child"]
    assert seen[1][0] == pytest.approx(0.3)


def test_cancelled_events_never_run_and_cancelling_twice_is_harmless():
    sim = Simulator()
    seen, note = recorder(sim)
    keep = sim.schedule(1.0, note, "keep")
    drop = sim.schedule(1.0, note, "drop")
    sim.cancel(drop)
    sim.cancel(drop)
    sim.run()
    sim.cancel(keep)                    # already ran
    assert seen == [(1.0, "keep")]
    assert sim.events_processed == 1


def test_run_without_duration_runs_to_exhaustion_and_stops_at_last_event():
    sim = Simulator()
    count = []

    def chain(n):
        count.append(n)
        if n < 99:
            sim.schedule(0.25, chain, n + 1)

    sim.schedule(0.0, chain, 0)
    sim.run()
    assert count == list(range(100))
    assert sim.now == 99 * 0.25 and sim.pending == 0


def test_stop_ends_run_after_the_current_event_and_run_resumes():
    sim = Simulator()
    seen, note = recorder(sim)
    sim.at(1.0, note, "a")
    sim.at(2.0, lambda: (note("b"), sim.stop()))
    sim.at(2.0, note, "c")
    sim.at(3.0, note, "d")
    sim.run(10.0)
    assert [tag for _, tag in seen] == ["a", "b"]
    assert sim.now == 2.0
    sim.run(10.0)
    assert [tag for _, tag in seen] == ["a", "b", "c", "d"]
    assert sim.now == 12.0


def test_run_inside_an_event_is_refused_and_the_simulator_stays_usable():
    sim = Simulator()
    sim.schedule(1.0, sim.run, 1.0)
    with pytest.raises(RuntimeError, match="inside an event"):
        sim.run()
    seen, note = recorder(sim)
    sim.schedule(1.0, note, "later")
    sim.run()
    assert seen == [(2.0, "later")]


# -- random streams --------------------------------------------------------------

def draws(sim, name, n=20):
    stream = sim.rng(name)
    return [stream.random() for _ in range(n)]


def test_same_seed_same_draws_different_seed_different_draws():
    assert draws(Simulator(5), "net") == draws(Simulator(5), "net")
    assert draws(Simulator(5), "net") != draws(Simulator(6), "net")
    assert draws(Simulator(5), "net") != draws(Simulator(5), "clients")


def test_adding_a_stream_does_not_shift_an_existing_one():
    plain = Simulator(9)
    before = draws(plain, "raft", 10)
    crowded = Simulator(9)
    for name in ("client", "jitter", "net"):
        draws(crowded, name, 7)
    interleaved = []
    for _ in range(10):
        interleaved.append(crowded.rng("raft").random())
        crowded.rng("newcomer").random()
    assert interleaved == before


def test_rng_returns_the_same_stream_object_for_a_name():
    sim = Simulator(1)
    assert sim.rng("a") is sim.rng("a")


# -- processes and futures -------------------------------------------------------

def test_process_sleeps_by_yielding_seconds_and_returns_a_value():
    sim = Simulator()
    times = []

    def worker():
        for delay in (0.5, 0.25, 1.0):
            yield delay
            times.append(sim.now)
        return "done"

    proc = sim.spawn(worker())
    sim.run()
    assert times == [0.5, 0.75, 1.75]
    assert proc.done and proc.value == "done"


def test_future_values_and_errors_flow_into_the_waiting_generator():
    sim = Simulator()
    got = []
    ok, bad = sim.future(), sim.future()

    def waiter():
        value = yield ok
        got.append((sim.now, value))
        try:
            yield bad
        except KeyError as exc:
            got.append((sim.now, exc.args[0]))
        return len(got)

    proc = sim.spawn(waiter())
    sim.schedule(1.0, ok.resolve, 42)
    sim.schedule(2.0, bad.fail, KeyError("missing"))
    sim.run()
    assert got == [(1.0, 42), (2.0, "missing")]
    assert proc.value == 2


def test_a_process_waits_for_another_process_and_sees_its_error():
    sim = Simulator()

    def child(fail):
        yield 1.0
        if fail:
            raise ValueError("child broke")
        return 7

    def parent():
        value = yield sim.spawn(child(False))
        try:
            yield sim.spawn(child(True))
        except ValueError as exc:
            return value, str(exc), sim.now

    proc = sim.spawn(parent())
    sim.run()
    assert proc.value == (7, "child broke", 2.0)


def test_a_process_error_with_nobody_waiting_propagates_out_of_run():
    sim = Simulator()

    def broken():
        yield 1.0
        raise ZeroDivisionError("nobody catches me")

    sim.spawn(broken())
    with pytest.raises(ZeroDivisionError, match="nobody catches me"):
        sim.run()
    assert sim.now == 1.0


def test_a_failed_process_raises_its_error_from_value():
    sim = Simulator()

    def broken():
        yield 0.1
        raise KeyError("k")

    proc = sim.spawn(broken())
    proc.add_done_callback(lambda f: None)     # someone is waiting
    sim.run()
    assert proc.failed and isinstance(proc.error, KeyError)
    with pytest.raises(KeyError):
        _ = proc.value


def test_a_long_run_of_ready_futures_does_not_overflow_the_stack():
    sim = Simulator()
    ready = sim.future()
    ready.resolve(1)

    def summer():
        total = 0
        for _ in range(20_000):
            total += yield ready
        return total

    proc = sim.spawn(summer())
    sim.run()
    assert proc.value == 20_000


def test_guard_stops_a_process_when_it_would_resume():
    sim = Simulator()
    alive = [True]
    ticks = []

    def ticker():
        while True:
            ticks.append(sim.now)
            yield 1.0

    proc = sim.spawn(ticker(), guard=lambda: alive[0])
    sim.run(2.5)
    alive[0] = False
    sim.run(10.0)
    assert ticks == [0.0, 1.0, 2.0]
    assert not proc.done and sim.pending == 0


def test_first_resolve_or_fail_wins_and_later_ones_are_ignored():
    fut = Future()
    calls = []
    fut.add_done_callback(calls.append)
    assert fut.resolve("first")
    assert not fut.resolve("second")
    assert not fut.fail(RuntimeError("late"))
    assert fut.value == "first" and calls == [fut]
    fut.add_done_callback(calls.append)          # already done: called at once
    assert calls == [fut, fut]


def test_pending_future_value_raises():
    with pytest.raises(RuntimeError, match="no value yet"):
        _ = Future().value


# -- waiting for several futures: gather, settled, first, finish --------------------

def arrivals(sim, futures, outcomes):
    """Settle futures[i] at time i + 1 (in the order given by `outcomes`, a list
    of (index, value-or-exception)); returns a list that records (now, tag)."""
    for t, (i, outcome) in enumerate(outcomes, start=1):
        if isinstance(outcome, BaseException):
            sim.schedule(float(t), futures[i].fail, outcome)
        else:
            sim.schedule(float(t), futures[i].resolve, outcome)


def when_done(sim, future):
    """A list that gets the simulated time at which `future` is done."""
    seen = []
    future.add_done_callback(lambda f: seen.append(sim.now))
    return seen


def test_gather_keeps_the_order_of_the_futures_not_of_the_answers():
    sim = Simulator()
    futures = [Future() for _ in range(3)]
    both = gather(futures)
    at = when_done(sim, both)
    arrivals(sim, futures, [(2, "c"), (0, "a"), (1, "b")])
    sim.run(2.5)
    assert not both.done                       # one answer still missing
    sim.run()
    assert both.value == ["a", "b", "c"] and at == [3.0]


def test_gather_fails_with_the_first_error_and_ignores_the_rest():
    sim = Simulator()
    futures = [Future() for _ in range(4)]
    both = gather(futures)
    at = when_done(sim, both)
    first_error, second_error = KeyError("first"), ValueError("second")
    arrivals(sim, futures, [(3, "d"), (1, first_error), (0, second_error), (2, "c")])
    sim.run()
    assert both.error is first_error and at == [2.0]


def test_gather_of_nothing_or_of_done_futures_resolves_at_once():
    assert gather([]).value == []
    ready = [Future(), Future()]
    ready[1].resolve("y")
    ready[0].resolve("x")
    assert gather(ready).value == ["x", "y"]


def test_settled_waits_for_every_future_and_never_fails():
    sim = Simulator()
    futures = [Future() for _ in range(3)]
    every = settled(futures)
    at = when_done(sim, every)
    error = RuntimeError("timed out")
    arrivals(sim, futures, [(1, error), (0, "a"), (2, "c")])
    sim.run(2.5)
    assert not every.done                      # a failure does not end the wait
    sim.run()
    assert at == [3.0] and every.value == futures     # the futures themselves
    assert [f.failed for f in every.value] == [False, True, False]


def expected_first(outcomes, n, needed):
    """first() by its definition, not by counting: the answer is decided by the
    shortest prefix of the arrivals that holds `needed` successes (resolve with
    them) or more than n - needed failures (fail); returns (time, values|None)."""
    for t in range(1, len(outcomes) + 1):
        prefix = [value for _, value in outcomes[:t]]
        ok = [v for v in prefix if not isinstance(v, Exception)]
        if len(ok) == needed:
            return float(t), ok
        if len(prefix) - len(ok) > n - needed:
            return float(t), None
    return None, None


def test_first_by_hand_two_of_three():
    sim = Simulator()
    futures = [Future() for _ in range(3)]
    quorum = first(futures, 2, "a write of 'k'")
    at = when_done(sim, quorum)
    arrivals(sim, futures, [(1, "b"), (0, RuntimeError("lost")), (2, "c")])
    sim.run()
    assert at == [3.0] and quorum.value == ["b", "c"]   # arrival order

    sim = Simulator()
    futures = [Future() for _ in range(3)]
    quorum = first(futures, 2, "a write of 'k'")
    at = when_done(sim, quorum)
    arrivals(sim, futures, [(2, RuntimeError("x")), (0, "a"), (1, RuntimeError("y"))])
    sim.run()
    assert at == [3.0] and quorum.failed               # at the second failure
    assert isinstance(quorum.error, Unavailable)
    assert str(quorum.error) == "a write of 'k' got 1 of the 2 answers it needs"


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_first_resolves_at_the_kth_success_or_fails_when_too_many_fail(n):
    # Every k, every success/failure pattern and every arrival order of n futures.
    for needed in range(1, n + 1):
        for pattern in itertools.product([True, False], repeat=n):
            for order in itertools.permutations(range(n)):
                sim = Simulator()
                futures = [Future() for _ in range(n)]
                quorum = first(futures, needed, "a read")
                at = when_done(sim, quorum)
                outcomes = [(i, f"v{i}" if pattern[i] else RuntimeError(f"e{i}"))
                            for i in order]
                arrivals(sim, futures, outcomes)
                sim.run()
                time, values = expected_first(outcomes, n, needed)
                case = f"n={n} needed={needed} pattern={pattern} order={order}"
                assert at == [time], case
                if values is None:
                    assert isinstance(quorum.error, Unavailable), case
                    assert f"of the {needed} answers it needs" in str(quorum.error)
                else:
                    assert quorum.value == values, case


def test_finish_stops_the_clock_at_the_event_that_ends_the_process():
    sim = Simulator()
    late = []
    sim.schedule(0.5, late.append, "after")

    def work():
        yield 0.3
        return "uploaded"

    proc = finish(sim, sim.spawn(work()), 1.0)
    assert proc.value == "uploaded" and sim.now == 0.3 and late == []
    sim.run()
    assert late == ["after"]


def test_finish_takes_as_many_steps_as_needed_and_hands_back_a_failure():
    sim = Simulator()

    def work():
        yield 2.5
        raise KeyError("gone")

    proc = finish(sim, sim.spawn(work()), 1.0)
    assert proc.failed and isinstance(proc.error, KeyError) and sim.now == 2.5


# -- trace and result ------------------------------------------------------------

def test_record_stamps_simulated_time_and_tracing_can_be_off():
    on, off = Simulator(), Simulator(trace=False)
    for sim in (on, off):
        sim.schedule(1.5, sim.record, "custom", "a", "b", "k")
        sim.run()
    assert [(r.time, r.event, r.src, r.dst, r.kind) for r in on.trace] == [
        (1.5, "custom", "a", "b", "k")]
    assert off.trace == []


def test_result_freezes_seed_time_and_trace():
    sim = Simulator(seed=4)
    sim.schedule(1.0, sim.record, "x", "a", "b", "k")
    sim.run(2.0)
    res = sim.result("demo", {"p": 1})
    sim.schedule(0.5, sim.record, "y", "a", "b", "k")
    sim.run(1.0)
    assert (res.scenario, res.seed, res.end_time, len(res.trace)) == ("demo", 4, 2.0, 1)
    assert res.params == {"p": 1}


# -- bad input --------------------------------------------------------------------

@pytest.mark.parametrize("delay", [-1.0, -1e-12, math.nan, math.inf])
def test_schedule_rejects_bad_delays(delay):
    with pytest.raises(ConfigError, match="delay"):
        Simulator().schedule(delay, print)


@pytest.mark.parametrize("time", [-0.5, math.nan, math.inf])
def test_at_rejects_past_or_non_finite_times(time):
    with pytest.raises(ConfigError, match="time"):
        Simulator().at(time, print)


@pytest.mark.parametrize("seed", [1.0, "7", None, True, False])
def test_seed_must_be_an_int_not_a_bool(seed):
    with pytest.raises(ConfigError, match="seed"):
        Simulator(seed)


@pytest.mark.parametrize("duration", [-1, math.nan, math.inf, "1", True])
def test_run_rejects_bad_durations(duration):
    with pytest.raises(ConfigError, match="duration"):
        Simulator().run(duration)


@pytest.mark.parametrize("name", ["", 3, None])
def test_rng_rejects_bad_stream_names(name):
    with pytest.raises(ConfigError, match="stream name"):
        Simulator().rng(name)


def test_spawn_rejects_a_non_generator():
    def not_a_generator():
        return 1

    with pytest.raises(ConfigError, match="generator"):
        Simulator().spawn(not_a_generator)


def test_a_retired_simulator_lets_its_model_go_and_cannot_run_again():
    import gc
    import weakref

    class Model:
        def tick(self):
            pass

    sim = Simulator(seed=1)
    model = Model()
    sim.schedule(5.0, model.tick)
    sim.run(1.0)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is not None          # the pending event holds it
    sim.retire()
    gc.collect()
    assert alive() is None and sim.pending == 0 and sim.now == 1.0
    with pytest.raises(RuntimeError, match="retired"):
        sim.run(1.0)


def test_running_in_steps_until_given_times_runs_exactly_what_one_run_does():
    def build():
        sim, seen = Simulator(seed=3), []
        rng = sim.rng("ticks")

        def tick(k):
            seen.append((sim.now, k))
            if k < 300:
                sim.schedule(rng.choice([0.0, 0.1, rng.random()]), tick, k + 1)
        sim.schedule(0.0, tick, 0)
        sim.at(2.0, seen.append, "at a boundary")      # exactly at a step's end
        return sim, seen

    whole, once = build()
    whole.run(10.0)
    steps, stepped = build()
    for t in (0.5, 2.0, 2.0, 7.25):
        steps.run(until=t)
    steps.run(until=10.0)
    assert stepped == once and steps.now == whole.now == 10.0
    assert steps.events_processed == whole.events_processed
    with pytest.raises(ConfigError, match="not both"):
        steps.run(1.0, until=12.0)
    with pytest.raises(ConfigError, match="until"):
        steps.run(until=9.0)                          # the past


# -- the end of a run ------------------------------------------------------------
# `run` ends at its end time and at `stop` by markers on the agenda; they must
# never show as events (pending, events_processed) nor outlive the run.

def test_pending_and_events_processed_count_events_only_during_and_after_a_run():
    sim = Simulator()
    seen = []
    for t in (1.0, 2.0, 3.0):
        sim.at(t, lambda: seen.append(sim.pending))
    sim.run(2.5)
    assert seen == [2, 1] and sim.pending == 1 and sim.events_processed == 2
    sim.run()
    assert seen == [2, 1, 0] and sim.pending == 0 and sim.events_processed == 3


def test_stop_twice_in_one_event_stops_once_and_the_next_run_goes_to_its_end():
    sim = Simulator()
    seen, note = recorder(sim)
    sim.at(1.0, lambda: (sim.stop(), sim.stop()))
    sim.at(2.0, note, "b")
    sim.at(3.0, note, "c")
    sim.run(10.0)
    assert sim.now == 1.0 and sim.pending == 2
    sim.stop()                               # outside a run: no effect on the next
    sim.run(10.0)
    assert [tag for _, tag in seen] == ["b", "c"] and sim.now == 11.0


def test_an_error_in_an_event_leaves_the_agenda_as_it_was():
    sim = Simulator()
    seen, note = recorder(sim)

    def fail():
        sim.stop()
        raise ValueError("boom")

    sim.at(1.0, fail)
    sim.at(1.0, note, "same time")
    sim.at(4.0, note, "later")
    with pytest.raises(ValueError, match="boom"):
        sim.run(5.0)
    assert sim.now == 1.0 and sim.pending == 2
    sim.run(5.0)                             # not cut short by a stale marker
    assert seen == [(1.0, "same time"), (4.0, "later")] and sim.now == 6.0
