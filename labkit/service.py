"""A service under load: a FIFO queue with c servers, and the clients that drive it.

`Station` is the model every latency curve in the workbook comes from: requests
wait in one first-come-first-served line for the first free server. `OpenLoop`
sends requests on a schedule that ignores replies (Poisson arrivals by
default); `ClosedLoop` is N users who each send, wait for the reply, think and
send again, which is how most load testers work and why they miss stalls
(coordinated omission). Hot paths are plain callbacks with no per-request
objects beyond one small tuple, so a few hundred thousand requests take about
a second.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from labkit.dist import Distribution, as_distribution, exponential
from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Counter, Gauge, Histogram, TimeSeries
from labkit.sim import Simulator

Done = Callable[[Any], None]


def _require_sim(sim: Simulator) -> Simulator:
    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a labkit Simulator, got {type(sim).__name__}")
    return sim


def _require_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name must be a non-empty str, got {name!r}")
    return name


class Station:
    """One service: a FIFO queue in front of `servers` parallel servers.

    A request's latency is the time from `arrive` to the end of its service
    (queueing plus service). Metrics, named `<name>.<metric>` in `sim.metrics`,
    cover the requests that arrive after measuring starts (at construction, or
    at `start_measuring()` when built with `measure=False`, so a warm-up can be
    left out): histogram `latency`; counters `arrivals` and `completed`; gauges
    `in_system`, `queue` (waiting, not in service) and `busy` (servers working),
    whose time averages are L, Lq and c times the utilisation. With
    `sample_every` set, series `series.in_system`, `series.queue` and
    `series.throughput` are sampled in simulated time from t = 0; with
    `keep_requests`, series `requests` holds (arrival time, latency) per request.

    `speeds` makes servers unequal: a server of speed 2 halves every service
    time; an arrival that finds several idle servers takes the fastest (lowest
    index among equals). Service draws come from the stream `<name>.service`.
    """

    def __init__(self, sim: Simulator, servers: int = 1,
                 service: Distribution | float = 1.0, *,
                 speeds: Sequence[float] | None = None, name: str = "service",
                 measure: bool = True, sample_every: float | None = None,
                 keep_requests: bool = False):
        self.sim = _require_sim(sim)
        self.servers = require_int("servers", servers, minimum=1)
        self.service = as_distribution(service, "service")
        if self.service.mean <= 0:
            raise ConfigError("service must have a mean > 0 seconds, got "
                              f"{self.service.mean}")
        self.speeds = self._speeds(speeds)
        self.name = _require_name(name)
        self._draw = self.service.sampler(sim.rng(f"{name}.service"))
        self._idle = [(-speed, s) for s, speed in enumerate(self.speeds)]
        heapq.heapify(self._idle)
        self._keys = [(-speed, s) for s, speed in enumerate(self.speeds)]
        self._jobs: list[tuple[float, Done | None, Any] | None] = [None] * servers
        self._ends = [0.0] * servers        # when each busy server finishes
        self._events = [0] * servers        # its departure event, for `stall`
        self._waiting: deque[tuple[float, Done | None, Any]] = deque()
        self._stalled_until = -math.inf
        self.departed = 0                   # every departure, warm-up included
        self.measuring = False
        self._since = math.inf              # requests arriving from here are measured
        # Until measuring starts, metrics go to private objects nobody reads.
        clock = self._clock
        self.latency = Histogram("warmup")
        self.arrivals, self.completed = Counter("warmup"), Counter("warmup")
        self.in_system, self.queue, self.busy = (Gauge("warmup", clock),
                                                 Gauge("warmup", clock),
                                                 Gauge("warmup", clock))
        self.requests: TimeSeries | None = None
        self._keep_requests = bool(keep_requests)
        if measure:
            self.start_measuring()
        if sample_every is not None:
            every = require_number("sample_every", sample_every, positive=True)
            self._sampler_last = 0
            sim.schedule(every, self._sample, every)

    def _clock(self) -> float:
        return self.sim.now

    def _speeds(self, speeds: Sequence[float] | None) -> list[float]:
        if speeds is None:
            return [1.0] * self.servers
        speeds = [require_number("speed", s, positive=True) for s in speeds]
        if len(speeds) != self.servers:
            raise ConfigError(f"speeds needs one entry per server ({self.servers}), "
                              f"got {len(speeds)}")
        return speeds

    # -- measurement ----------------------------------------------------------
    def start_measuring(self) -> None:
        """Measure from now on: requests arriving from this moment are counted,
        and the gauges' time averages start here (once per station)."""
        if self.measuring:
            raise ConfigError(f"station {self.name!r} is already measuring; "
                              "start_measuring() may be called once")
        self.measuring, self._since = True, self.sim.now
        metrics, name = self.sim.metrics, self.name
        self.latency = metrics.histogram(f"{name}.latency")
        self.arrivals = metrics.counter(f"{name}.arrivals")
        self.completed = metrics.counter(f"{name}.completed")
        levels = (self.in_system.value, self.queue.value, self.busy.value)
        self.in_system = metrics.gauge(f"{name}.in_system")
        self.queue = metrics.gauge(f"{name}.queue")
        self.busy = metrics.gauge(f"{name}.busy")
        for gauge, level in zip((self.in_system, self.queue, self.busy), levels,
                                strict=True):
            gauge.set(level)
        if self._keep_requests:
            self.requests = metrics.series(f"{name}.requests")

    @property
    def measured_time(self) -> float:
        """Simulated seconds since measuring started (0 if it has not)."""
        return self.sim.now - self._since if self.measuring else 0.0

    def stats(self) -> dict[str, float]:
        """What was measured: arrival rate and throughput (per second), mean
        latency W, time-average number in system L and in queue Lq, utilisation."""
        span = self.measured_time
        if span <= 0:
            raise ConfigError(f"station {self.name!r} has measured no time yet")
        return {
            "arrival_rate": self.arrivals.value / span,
            "throughput": self.completed.value / span,
            "mean_latency": self.latency.mean,
            "in_system": self.in_system.time_average(),
            "queue": self.queue.time_average(),
            "utilisation": self.busy.time_average() / self.servers,
        }

    def _sample(self, every: float) -> None:
        metrics, name, now = self.sim.metrics, self.name, self.sim.now
        metrics.series(f"{name}.series.in_system").add(now, self.in_system.value)
        metrics.series(f"{name}.series.queue").add(now, self.queue.value)
        done, self._sampler_last = self.departed - self._sampler_last, self.departed
        metrics.series(f"{name}.series.throughput").add(now, done / every)
        if self.sim.pending:        # stop once nothing else is left to happen
            self.sim.schedule(every, self._sample, every)

    # -- requests -------------------------------------------------------------
    def arrive(self, done: Done | None = None, token: Any = None) -> None:
        """A request enters now; `done(token)` is called when it leaves."""
        now = self.sim.now
        if now >= self._since:
            self.arrivals.value += 1
        self.in_system.set(self.in_system.value + 1)
        if self._idle and now >= self._stalled_until:
            self._begin(heapq.heappop(self._idle)[1], (now, done, token))
            self.busy.set(self.busy.value + 1)
        else:
            self._waiting.append((now, done, token))
            self.queue.set(len(self._waiting))

    def _begin(self, server: int, job: tuple[float, Done | None, Any]) -> None:
        end = self.sim.now + self._draw() / self.speeds[server]
        self._jobs[server], self._ends[server] = job, end
        self._events[server] = self.sim.at(end, self._depart, server)

    def _depart(self, server: int) -> None:
        arrived, done, token = self._jobs[server]
        now = self.sim.now
        self.departed += 1
        if arrived >= self._since:
            self.latency.add(now - arrived)
            self.completed.value += 1
            if self.requests is not None:
                self.requests.add(arrived, now - arrived)
        self.in_system.set(self.in_system.value - 1)
        if self._waiting:
            self._begin(server, self._waiting.popleft())
            self.queue.set(len(self._waiting))
        else:
            self._jobs[server] = None
            heapq.heappush(self._idle, self._keys[server])
            self.busy.set(self.busy.value - 1)
        if done is not None:
            done(token)

    # -- faults ---------------------------------------------------------------
    def stall(self, duration: float) -> None:
        """Freeze the whole service for `duration` seconds from now (a GC pause,
        a stop-the-world compaction): no service progresses and no new request
        starts; requests keep arriving and queue up. Overlapping stalls merge."""
        duration = require_number("duration", duration, minimum=0.0)
        now = self.sim.now
        until = now + duration
        extra = until - max(now, self._stalled_until)
        if extra <= 0:
            return
        self._stalled_until = until
        self.sim.record("fault", self.name, self.name, "stall", note=f"{duration:g}s")
        for server, job in enumerate(self._jobs):
            if job is not None:   # work in progress resumes where it stopped
                self.sim.cancel(self._events[server])
                self._ends[server] += extra
                self._events[server] = self.sim.at(
                    self._ends[server], self._depart, server)
        self.sim.at(until, self._resume)

    def _resume(self) -> None:
        if self.sim.now < self._stalled_until:
            return      # a later stall extended this one
        while self._idle and self._waiting:
            self._begin(heapq.heappop(self._idle)[1], self._waiting.popleft())
            self.busy.set(self.busy.value + 1)
        self.queue.set(len(self._waiting))

    def __repr__(self) -> str:
        return (f"Station({self.name!r}, servers={self.servers}, "
                f"in_system={self.in_system.value:g})")


class OpenLoop:
    """Requests sent on their own schedule, whatever the service is doing.

    Gaps between sends are drawn from `interarrival` (default: exponential with
    mean 1/rate, i.e. Poisson arrivals), from the stream `<name>.arrivals`. The
    first `warmup` requests are sent before the station starts measuring (the
    station must be built with `measure=False`); then `requests` more are sent
    (None: forever).
    """

    def __init__(self, sim: Simulator, station: Station, rate: float | None = None,
                 *, interarrival: Distribution | float | None = None,
                 requests: int | None = None, warmup: int = 0, name: str = "open"):
        self.sim = _require_sim(sim)
        if not isinstance(station, Station):
            raise TypeError(f"station must be a Station, got {type(station).__name__}")
        if (rate is None) == (interarrival is None):
            raise ConfigError("give exactly one of rate (requests per second) and "
                              "interarrival (a distribution of gaps)")
        if rate is not None:
            interarrival = exponential(1.0 / require_number("rate", rate,
                                                            positive=True))
        self.interarrival = as_distribution(interarrival, "interarrival")
        if self.interarrival.mean <= 0:
            raise ConfigError("interarrival must have a mean > 0 seconds, got "
                              f"{self.interarrival.mean}")
        self.warmup = require_int("warmup", warmup, minimum=0)
        if self.warmup and station.measuring:
            raise ConfigError("a warm-up needs a station built with measure=False, "
                              "so that measuring starts after it")
        self.limit = None if requests is None else self.warmup + require_int(
            "requests", requests, minimum=1)
        self.station, self.name, self.sent = station, _require_name(name), 0
        self._draw = self.interarrival.sampler(sim.rng(f"{name}.arrivals"))
        self._arrive = station.arrive
        sim.schedule(self._draw(), self._send)

    def _send(self) -> None:
        self.sent += 1
        if self.sent == self.warmup + 1 and self.warmup:
            self.station.start_measuring()
        self._arrive()
        if self.limit is None or self.sent < self.limit:
            self.sim.schedule(self._draw(), self._send)

    def __repr__(self) -> str:
        return f"OpenLoop({self.name!r}, sent={self.sent})"


class ClosedLoop:
    """N users who each send a request, wait for its reply, think, and repeat.

    At most `users` requests are ever outstanding, so when the service stalls
    the users stall with it and stop sending: the measurement skips exactly
    the moments that hurt (coordinated omission). Think times come from the
    stream `<name>.think`; each user first sends at a random moment within one
    mean think time, so users do not start in lockstep. Gauge
    `<name>.outstanding` counts requests in flight.
    """

    def __init__(self, sim: Simulator, station: Station, users: int,
                 think: Distribution | float = 0.0, *, name: str = "closed"):
        self.sim = _require_sim(sim)
        if not isinstance(station, Station):
            raise TypeError(f"station must be a Station, got {type(station).__name__}")
        self.users = require_int("users", users, minimum=1)
        self.think = as_distribution(think, "think")
        self.station, self.name, self.sent = station, _require_name(name), 0
        self.outstanding = sim.metrics.gauge(f"{name}.outstanding")
        rng = sim.rng(f"{name}.think")
        self._draw = self.think.sampler(rng)
        for user in range(users):
            sim.schedule(rng.uniform(0.0, self.think.mean), self._send, user)

    def _send(self, user: int) -> None:
        self.sent += 1
        self.outstanding.set(self.outstanding.value + 1)
        self.station.arrive(self._reply, user)

    def _reply(self, user: int) -> None:
        self.outstanding.set(self.outstanding.value - 1)
        self.sim.schedule(self._draw(), self._send, user)

    def __repr__(self) -> str:
        return f"ClosedLoop({self.name!r}, users={self.users}, sent={self.sent})"
