"""The simulated clock: an agenda of callbacks, seeded random streams, a trace;
futures, generator processes, and the helpers that wait for several futures
(`gather`, `settled`, `first`) or run the clock until one is done (`finish`).

Time only moves when `run` pops the next event, so a run is a pure function of
its seed: no wall clock, no threads, ties broken first-scheduled-first-run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Mapping, Sequence
from heapq import heapify, heappop, heappush
from types import GeneratorType
from typing import Any

from labkit.errors import ConfigError, Unavailable, require_int, require_number
from labkit.metrics import Metrics, Result, TraceRecord

_PENDING = object()
_INFINITY = float("inf")
_new_record = tuple.__new__


class _Halt(Exception):
    """Raised by a marker event to end `Simulator.run`'s loop (never escapes it)."""


def _halt() -> None:
    raise _Halt


class Future:
    """A value that a later event will supply (a reply, a timer, a process's end).

    Callbacks run at the simulated moment the value arrives. The first
    `resolve`/`fail` wins; later ones are ignored, as a late reply would be.
    """

    __slots__ = ("_value", "_error", "_callbacks")

    def __init__(self):
        self._value: Any = _PENDING
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Future], None]] = []

    @property
    def done(self) -> bool:
        return self._value is not _PENDING or self._error is not None

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def value(self) -> Any:
        """The value; raises the error if the future failed, or if it is pending."""
        if self._error is not None:
            raise self._error
        if self._value is _PENDING:
            raise RuntimeError("the future has no value yet: run the simulation longer")
        return self._value

    # resolve, fail and Process._step read the slots rather than `done`: they
    # run once or more per message, and a property costs a call.
    def resolve(self, value: Any = None) -> bool:
        """Supply the value; returns False if the future was already done."""
        if self._value is not _PENDING or self._error is not None:
            return False
        self._value = value
        if self._callbacks:
            self._fire()
        return True

    def fail(self, error: BaseException) -> bool:
        """Supply an error instead of a value; False if already done."""
        if self._value is not _PENDING or self._error is not None:
            return False
        self._error = error
        if self._callbacks:
            self._fire()
        return True

    def add_done_callback(self, fn: Callable[[Future], None]) -> None:
        """Call fn(self) when done (at once if it already is)."""
        if self.done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def _fire(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)

    def __repr__(self) -> str:
        if self._error is not None:
            return f"Future(failed: {type(self._error).__name__})"
        if self._value is _PENDING:
            return "Future(pending)"
        return f"Future({self._value!r})"


class Process(Future):
    """A generator run as a simulated activity; its value is what it returns.

    The generator yields a Future to wait for it (its value is sent back in, its
    error thrown in), or a number of seconds to sleep.
    """

    __slots__ = ("_sim", "_gen", "_guard")

    def __init__(self, sim: Simulator, gen: Generator,
                 guard: Callable[[], bool] | None = None):
        # Future.__init__ and sim.schedule(0.0, self._step, None, None), inlined:
        # a process starts per request in most models.
        self._value, self._error, self._callbacks = _PENDING, None, []
        self._sim, self._gen, self._guard = sim, gen, guard
        sim._seq = seq = sim._seq + 1
        heappush(sim._agenda, (sim.now, seq, self._step, (None, None)))

    def _step(self, value: Any, error: BaseException | None) -> None:
        # A loop, not recursion through add_done_callback: a process may yield
        # thousands of futures that are already done without growing the stack.
        gen, guard = self._gen, self._guard
        while True:
            if guard is not None and not guard():
                gen.close()         # its node crashed: the activity dies with it
                return
            try:
                waited = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                self.resolve(stop.value)
                return
            except BaseException as exc:
                if not self._callbacks:     # nobody is waiting to handle it: be loud
                    raise
                self.fail(exc)
                return
            if not isinstance(waited, Future):
                waited = self._sim.sleep(waited)
            error = waited._error
            if error is None:
                value = waited._value
                if value is _PENDING:
                    waited._callbacks.append(self._resume)
                    return
            else:
                value = None

    def _resume(self, done: Future) -> None:
        error = done._error
        self._step(done._value if error is None else None, error)


# -- waiting for several futures ----------------------------------------------------
# A process yields one Future; these combine several into one, so a client can
# fan a request out to replicas and wait for all, or for a quorum, of the answers.
# Each registers its callbacks in the order of `futures`, and a callback runs the
# moment its future is done: the combined future resolves at a well-defined event,
# which keeps runs deterministic.

def gather(futures: Sequence[Future]) -> Future:
    """A Future of all the values, in the order of `futures`; it fails with the
    first error to arrive (the others are then ignored). No futures: resolves at
    once to []."""
    done = Future()
    values: list[Any] = [None] * len(futures)
    left = [len(futures)]

    def settle(i: int, f: Future) -> None:
        if f.failed:
            done.fail(f.error)
            return
        values[i] = f.value
        left[0] -= 1
        if left[0] == 0:
            done.resolve(values)

    for i, future in enumerate(futures):
        future.add_done_callback(lambda f, i=i: settle(i, f))
    if not futures:
        done.resolve(values)
    return done


def settled(futures: Sequence[Future]) -> Future:
    """A Future that resolves to `futures` themselves (as a list) once every one
    is done, whether it resolved or failed; it never fails. Use it to act after
    the last answer or timeout, e.g. read repair."""
    return gather([_always(f) for f in futures])


def _always(future: Future) -> Future:
    """A Future that resolves to `future` when it is done, even if it failed."""
    out = Future()
    future.add_done_callback(lambda f: out.resolve(f))
    return out


def first(futures: Sequence[Future], needed: int, what: str) -> Future:
    """A Future of the first `needed` successful values, in arrival order (a
    quorum of k out of n answers). It fails with Unavailable, naming `what`, as
    soon as so many have failed that `needed` successes cannot happen."""
    done = Future()
    values: list[Any] = []
    failed = [0]

    def settle(f: Future) -> None:
        if f.failed:
            failed[0] += 1
            if len(futures) - failed[0] < needed:
                done.fail(Unavailable(f"{what} got {len(values)} of the {needed} "
                                      "answers it needs"))
            return
        values.append(f.value)
        if len(values) == needed:
            done.resolve(list(values))

    for future in futures:
        future.add_done_callback(settle)
    return done


def finish(sim: Simulator, process: Future, step: float) -> Future:
    """Run `sim` until `process` is done and return it: the clock stops at the
    event that finished it, not at the end of a step, so a blocking call (e.g.
    `fs.upload`) takes exactly the simulated time it needed. `step` is how far
    one `run` may go before looking again."""
    process.add_done_callback(lambda _f: sim.stop())
    while not process.done:
        sim.run(step)
    return process


class Simulator:
    """A clock and an agenda of callbacks: the only source of time and chance.

    `run(d)` executes every event due strictly before now + d and then sets the
    clock to now + d; an event due exactly at the end runs in the next call, so
    `run(2); kill(x); run(5)` acts before anything else happens at t = 2.
    """

    def __init__(self, seed: int = 0, *, trace: bool = True):
        self.seed = require_int("seed", seed)
        self.now = 0.0
        self.events_processed = 0
        if not isinstance(trace, bool):
            raise ConfigError(f"trace must be True or False, got {trace!r}")
        self.tracing = trace
        self.trace: list[TraceRecord] = []
        self.metrics = Metrics(clock=lambda: self.now)
        # Events are plain (time, seq, fn, args) tuples: seq, the last number
        # drawn from `_seq`, breaks ties first-scheduled-first-run. Two hot
        # paths use the agenda directly, with the same keys: the network pushes
        # its deliveries (see Network.send), and a node's timer re-armed later
        # draws its number from `_seq` and re-queues itself under it when its
        # old entry pops (see Node.set_timer). While `run` runs, `_marks` marker
        # events (seq < 0) sit on the agenda too: one at the end of the run and
        # one when `stop` was called.
        self._agenda: list[tuple[float, int, Callable, tuple]] = []
        self._seq = -1
        self._marks = 0
        self._cancelled: set[int] = set()
        self._streams: dict[str, random.Random] = {}
        self._running = self._stopped = self._retired = False

    # -- scheduling ---------------------------------------------------------
    def schedule(self, delay: float, fn: Callable, *args) -> int:
        """Call fn(*args) `delay` seconds from now; returns an id for `cancel`."""
        if 0.0 <= delay < _INFINITY:      # False for NaN too
            self._seq = seq = self._seq + 1
            heappush(self._agenda, (self.now + delay, seq, fn, args))
            return seq
        raise ConfigError(f"delay must be finite and >= 0 seconds, got {delay}")

    def at(self, time: float, fn: Callable, *args) -> int:
        """Call fn(*args) at absolute simulated time `time` (not in the past)."""
        if self.now <= time < _INFINITY:
            self._seq = seq = self._seq + 1
            heappush(self._agenda, (time, seq, fn, args))
            return seq
        raise ConfigError(f"time {time} is in the past or not finite "
                          f"(now is {self.now})")

    def cancel(self, event_id: int) -> None:
        """Forget a scheduled event; cancelling one that already ran is harmless."""
        self._cancelled.add(event_id)

    def run(self, duration: float | None = None, *, until: float | None = None) -> None:
        """Advance the clock by `duration` seconds (or to the time `until`), running
        every event due before the end. With neither, run until nothing is left to
        do (or `stop`). Running to t1 and then to t2 runs exactly what running
        to t2 at once would: the way to show progress through a long run."""
        if self._running:
            raise RuntimeError("run() called from inside an event; schedule instead")
        if self._retired:
            raise RuntimeError("this simulator was retired (its run is over and its "
                               "agenda dropped): build a new one to run again")
        if until is not None:
            if duration is not None:
                raise ConfigError("give run() a duration or an until time, not both")
            end = require_number("until", until, minimum=self.now)
        elif duration is None:
            end = float("inf")
        else:
            end = self.now + require_number("duration", duration, minimum=0.0)
        agenda, cancelled = self._agenda, self._cancelled
        self._running, self._stopped, count = True, False, 0
        if end < _INFINITY:
            # A marker at (end, -1) pops before every event due at `end` or later,
            # so the loop needs no test of the clock (nor of `stop`, which pushes
            # a marker at (now, -2)): markers end it by raising _Halt.
            heappush(agenda, (end, -1, _halt, ()))
            self._marks = 1
        try:
            # The hot loop of every simulation.
            while agenda:
                time, seq, fn, args = heappop(agenda)
                if cancelled and seq in cancelled:
                    cancelled.discard(seq)
                    continue
                self.now = time
                count += 1
                fn(*args)
        except _Halt:
            count -= 1                      # the marker was no event
            self._marks -= 1
        finally:
            self._running = False
            self.events_processed += count
            if self._marks:                 # left by `stop` or by an error
                agenda[:] = [event for event in agenda if event[1] >= 0]
                heapify(agenda)             # same keys: the same order of pops
                self._marks = 0
        if end < _INFINITY and not self._stopped:
            self.now = end

    def stop(self) -> None:
        """End the current `run` after the event that is executing now."""
        if self._running and not self._stopped:
            heappush(self._agenda, (self.now, -2, _halt, ()))
            self._marks += 1
        self._stopped = True

    def retire(self) -> None:
        """The run is over: forget the events still on the agenda. A Result
        holds its simulator (its metrics read this clock), and the pending
        events hold the whole model (clients, servers, requests in flight);
        a notebook keeps dozens of Results, and every garbage collection walks
        what they keep alive. A retired simulator cannot run again."""
        self._agenda.clear()
        self._retired = True

    @property
    def pending(self) -> int:
        """Events still on the agenda (cancelled ones included until popped)."""
        return len(self._agenda) - self._marks

    # -- chance ---------------------------------------------------------------
    def rng(self, name: str) -> random.Random:
        """An independent random stream for one component, derived from the seed.

        Streams are seeded by (seed, name), so adding a stream for a new component
        never shifts the draws of an existing one.
        """
        stream = self._streams.get(name)
        if stream is None:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"stream name must be a non-empty str, got {name!r}")
            stream = self._streams[name] = random.Random(f"{self.seed}:{name}")
        return stream

    # -- processes --------------------------------------------------------------
    def future(self) -> Future:
        """A fresh pending Future."""
        return Future()

    def sleep(self, delay: float) -> Future:
        """A Future that resolves `delay` seconds from now."""
        done = Future()
        self.schedule(delay, done.resolve, None)
        return done

    def spawn(self, gen: Generator, guard: Callable[[], bool] | None = None) -> Process:
        """Start a generator process now; see `Process`. If `guard` is given the
        process is abandoned as soon as guard() is false when it would resume."""
        if type(gen) is not GeneratorType and not isinstance(gen, Generator):
            raise ConfigError(f"spawn needs a generator (a function using yield), "
                              f"got {gen!r}")
        return Process(self, gen, guard)

    # -- observation ------------------------------------------------------------
    def record(self, event: str, src: str, dst: str, kind: str,
               msg: int = -1, note: str = "") -> None:
        """Append one record to the trace (if tracing is on)."""
        if self.tracing:
            # tuple.__new__ skips namedtuple's Python-level __new__ (about twice as
            # fast, and the record is the same); the network calls this per message.
            self.trace.append(_new_record(
                TraceRecord, (self.now, event, src, dst, kind, msg, note)))

    def result(self, scenario: str, params: Mapping[str, Any] | None = None,
               data: Mapping[str, Any] | None = None) -> Result:
        """Freeze what this simulator measured and traced so far."""
        return Result(scenario=scenario, params=dict(params or {}), seed=self.seed,
                      metrics=self.metrics, trace=tuple(self.trace),
                      end_time=self.now, data=dict(data or {}))

    def __repr__(self) -> str:
        return f"Simulator(seed={self.seed}, now={self.now:g}, pending={self.pending})"
