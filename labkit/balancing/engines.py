"""The two engines that run one load-balancing experiment, given its checked
inputs (`_Setup`); both give the same answer on the same seed.

`_EventRun`, the general one, puts every arrival, departure, fault, load
report and queue sample on a `Simulator` agenda. `_FastRun`, for pure
queueing runs (no faults, fresh load information), skips the agenda: with
FIFO servers a request's finish time is known when it arrives (Lindley's
recursion), so only departures need a small heap. `_TwoChoiceRun` is
`_FastRun` for the supermarket model (p2c, d = 2) that benchmarks run. `_Run`
holds what they share: the random streams, the policy's `View` and
per-server accounts.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit import dist
from labkit.errors import ConfigError
from labkit.sim import Simulator

from .policies import Policy, View
from .result import BalancingResult


@dataclass(frozen=True)
class _Setup:
    """Validated inputs of one run."""

    policy: Policy
    servers: int
    arrival_rate: float
    offered_load: float
    requests: int
    seed: int
    speeds: tuple[float, ...]
    weights: tuple[float, ...]
    service: dist.Distribution
    keys: int
    report_interval: float
    warmup: int
    faults: tuple[tuple[float, str, int], ...]
    samples: int
    params: dict[str, Any]


class _Run:
    """State both engines share: streams, the view, per-server accounts."""

    def __init__(self, setup: _Setup):
        self.setup = setup
        n = setup.servers
        self.sim = sim = Simulator(setup.seed)
        self.view = View(n, setup.weights, setup.speeds, sim.rng("policy"))
        if setup.report_interval > 0:
            self.view.reported = [0] * n     # last reports: all idle at time 0
        self.interarrival = dist.exponential(1.0 / setup.arrival_rate).sampler(
            sim.rng("arrivals"))
        self.demand = setup.service.sampler(sim.rng("service"))
        self.draw_key = sim.rng("keys").random     # key = int(draw * keys)
        self.free_at = [0.0] * n        # when each server finishes its queue
        self.busy = [0.0] * n           # seconds of service each was given
        self.served = [0] * n
        self.refused = self.killed = 0
        self.samples: list[list[int]] = []
        self.sample_every = setup.requests / setup.arrival_rate / setup.samples
        setup.policy.start(self.view)

    def pick(self, now: float) -> int | None:
        """Ask the policy for a server for the request arriving now."""
        view = self.view
        view.now = now
        if self.setup.policy.reads_key:
            view.key = int(self.draw_key() * self.setup.keys)
        if not view.live:
            return None         # every server is down: fail fast
        choice = self.setup.policy.choose(view)
        if choice is not None and not (
                type(choice) is int and 0 <= choice < view.servers
                and view.alive[choice]):
            self.reject(choice)
        return choice

    def reject(self, choice: Any) -> None:
        raise ConfigError(f"{self.setup.policy!r}.choose returned {choice!r}, "
                          f"not a live server index (live: {list(self.view.live)})")

    def result(self, latencies: list[float], end: float) -> BalancingResult:
        """Freeze the run; `latencies` are the measured ones in arrival order."""
        setup, metrics = self.setup, self.sim.metrics
        metrics.histogram("latency").extend(latencies)
        metrics.counter("completed").inc(sum(self.served))
        metrics.counter("failed.killed").inc(self.killed)
        metrics.counter("failed.refused").inc(self.refused)
        n, latency = setup.servers, metrics["latency"]
        said = (f"{setup.params['policy']}, {n} servers, load {setup.offered_load:g}"
                f"{' (OVERLOADED)' if setup.offered_load >= 1 else ''}: "
                f"{sum(self.served)} completed, ")
        said += (f"mean {_seconds(latency.mean)}, "
                 f"p99 {_seconds(latency.percentile(99))}, " if latency.count else "")
        said += f"{self.killed + self.refused} failed"
        return BalancingResult(
            scenario="balancing", params=setup.params, seed=setup.seed,
            metrics=metrics, trace=tuple(self.sim.trace), end_time=end,
            data={"utilisation": np.array(self.busy) / end if end else np.zeros(n),
                  "served": np.array(self.served),
                  "queue_lengths": np.array(self.samples, dtype=int).reshape(-1, n),
                  "sample_times": self.sample_every * np.arange(
                      1, len(self.samples) + 1),
                  "offered_load": setup.offered_load,
                  "arrival_rate": setup.arrival_rate, "headline": said})


def _seconds(value: float) -> str:
    """Seconds to three significant digits, or whole seconds with a thousands
    separator from 100 s on ("7,820 s", never "7.82e+03 s")."""
    return f"{value:.3g} s" if value < 99.95 else f"{value:,.0f} s"


class _EventRun(_Run):
    """The general engine: arrivals, departures, faults, reports and samples are
    events on the Simulator's agenda."""

    def __init__(self, setup: _Setup):
        super().__init__(setup)
        self.latency: list[float | None] = [None] * setup.requests
        self.epoch = [0] * setup.servers   # bumped by a kill: stale departures
        self.done = 0
        sim = self.sim
        sim.at(self.interarrival(), self.arrive, 0)
        sim.at(self.sample_every, self.sample, 1)
        if setup.report_interval > 0:
            sim.at(setup.report_interval, self.report, 1)
        for time, verb, server in setup.faults:
            sim.at(time, getattr(self, verb), server)

    def run(self) -> BalancingResult:
        self.sim.run()
        latencies = [x for x in self.latency[self.setup.warmup:] if x is not None]
        return self.result(latencies, self.sim.now)

    def finish(self, count: int = 1) -> None:
        self.done += count
        if self.done == self.setup.requests:
            self.sim.stop()

    def arrive(self, k: int) -> None:
        sim, now = self.sim, self.sim.now
        if k + 1 < self.setup.requests:
            sim.at(now + self.interarrival(), self.arrive, k + 1)
        demand = self.demand()
        i = self.pick(now)
        if i is None:
            self.refused += 1
            self.finish()
            return
        service = demand / self.setup.speeds[i]
        free = self.free_at[i]
        finish = (now if now > free else free) + service
        self.free_at[i] = finish
        self.busy[i] += service
        self.view.outstanding[i] += 1
        sim.at(finish, self.depart, i, k, finish - now, self.epoch[i])

    def depart(self, i: int, k: int, latency: float, epoch: int) -> None:
        if epoch != self.epoch[i]:
            return              # the server was killed; the request already failed
        self.view.outstanding[i] -= 1
        self.served[i] += 1
        self.latency[k] = latency
        self.finish()

    def kill(self, i: int) -> None:
        """Crash server i (s{i + 1} in the trace, as the course names servers
        s1..sN): the requests it holds fail; it gets no more traffic."""
        if not self.view.alive[i]:
            return
        now, lost = self.sim.now, self.view.outstanding[i]
        self.busy[i] -= max(0.0, self.free_at[i] - now)   # work it will never do
        self.free_at[i] = now
        self.view.outstanding[i] = 0
        self.epoch[i] += 1
        self.view.set_alive(i, False)
        self.sim.record("fault", "balancer", f"s{i + 1}", "kill", note=f"{lost} lost")
        self.killed += lost
        self.finish(lost)

    def restart(self, i: int) -> None:
        """Bring server i back, empty."""
        if self.view.alive[i]:
            return
        self.view.set_alive(i, True)
        self.sim.record("fault", "balancer", f"s{i + 1}", "restart")

    def sample(self, m: int) -> None:
        self.samples.append(self.view.outstanding[:])
        self.sim.at((m + 1) * self.sample_every, self.sample, m + 1)

    def report(self, m: int) -> None:
        self.view.reported[:] = self.view.outstanding
        self.sim.at((m + 1) * self.setup.report_interval, self.report, m + 1)


class _FastRun(_Run):
    """The specialised engine for runs with no faults and instant load reports:
    the same arithmetic as `_EventRun`, in one loop over arrivals, with only
    departures (to keep `outstanding` exact) in a heap."""

    def run(self) -> BalancingResult:
        setup, view = self.setup, self.view
        outstanding, free_at, busy, served = (view.outstanding, self.free_at,
                                              self.busy, self.served)
        speeds, interarrival, demand = setup.speeds, self.interarrival, self.demand
        choose, draw_key, keys = setup.policy.choose, self.draw_key, setup.keys
        reads_key = setup.policy.reads_key
        n, warmup = setup.servers, setup.warmup
        departures: list[tuple[float, int]] = []
        pop, push = heapq.heappop, heapq.heappush
        latencies: list[float] = []
        now, next_sample = 0.0, self.sample_every
        for k in range(setup.requests):
            now += interarrival()
            if next_sample < now:
                next_sample = self.sample_before(now, departures)
            while departures and departures[0][0] <= now:
                outstanding[pop(departures)[1]] -= 1
            d = demand()
            view.now = now                      # as in `pick`, all servers live
            if reads_key:
                view.key = int(draw_key() * keys)
            i = choose(view)
            if i is None:
                self.refused += 1
                continue
            if type(i) is not int or not 0 <= i < n:
                self.reject(i)
            service = d / speeds[i]
            free = free_at[i]
            finish = (now if now > free else free) + service
            free_at[i] = finish
            busy[i] += service
            outstanding[i] += 1
            served[i] += 1          # no faults here: every request is served
            push(departures, (finish, i))
            if k >= warmup:
                latencies.append(finish - now)
        end = max(now, *free_at)
        self.sample_before(end, departures)
        return self.result(latencies, end)

    def sample_before(self, time: float, departures: list[tuple[float, int]]) -> float:
        """Take every queue-length sample due before `time`, retiring the
        departures due before each; returns when the next sample is due."""
        outstanding, samples = self.view.outstanding, self.samples
        due = (len(samples) + 1) * self.sample_every
        while due < time:
            while departures and departures[0][0] <= due:
                outstanding[heapq.heappop(departures)[1]] -= 1
            samples.append(outstanding[:])
            due = (len(samples) + 1) * self.sample_every
        return due


class _TwoChoiceRun(_Run):
    """`_FastRun` for power of two choices (`PowerOfD` with d = 2): the same
    draws and arithmetic, with `PowerOfD.choose` inlined and, instead of one
    heap of departures, each server's finish times in its own deque (a FIFO
    server's finish times never decrease). A server's count is brought up to
    date only when the policy samples it or a queue sample is taken."""

    def run(self) -> BalancingResult:
        setup = self.setup
        n, warmup, speeds = setup.servers, setup.warmup, setup.speeds
        interarrival, demand = self.interarrival, self.demand
        draw = self.view.rng.random
        busy, served = self.busy, self.served
        self.queues = queues = [deque() for _ in range(n)]
        latencies: list[float] = []
        now, next_sample = 0.0, self.sample_every
        for k in range(setup.requests):
            now += interarrival()
            if next_sample < now:
                next_sample = self.sample_before(now)
            d = demand()
            i = int(draw() * n)                 # PowerOfD.choose, d = 2
            j = int(draw() * n)
            mine, other = queues[i], queues[j]
            while mine and mine[0] <= now:      # retire what has departed
                mine.popleft()
            while other and other[0] <= now:
                other.popleft()
            if len(other) < len(mine):
                i, mine = j, other
            service = d / speeds[i]
            finish = (mine[-1] if mine else now) + service   # Lindley
            mine.append(finish)
            busy[i] += service
            served[i] += 1
            if k >= warmup:
                latencies.append(finish - now)
        end = max(now, *(queue[-1] for queue in queues if queue))
        self.sample_before(end)
        return self.result(latencies, end)

    def sample_before(self, time: float) -> float:
        """Take every queue-length sample due before `time`; returns when the
        next one is due."""
        samples, queues = self.samples, self.queues
        due = (len(samples) + 1) * self.sample_every
        while due < time:
            row = []
            for queue in queues:
                while queue and queue[0] <= due:
                    queue.popleft()
                row.append(len(queue))
            samples.append(row)
            due = (len(samples) + 1) * self.sample_every
        return due
