"""The backend a client defends itself against: a pool of replicas behind a
load balancer that fails on a schedule (`Fault`: crash, slow, errors,
brownout), and the outcomes an attempt can come back with.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from labkit import dist
from labkit.dist import Distribution, as_distribution
from labkit.errors import ConfigError, require_int, require_number, require_probability
from labkit.sim import Simulator

# What one attempt can come back with. A definite error tells the client the
# operation did not happen; a timeout is indefinite: it may have run anyway.
OK, ERROR, OVERLOADED, TIMEOUT = "ok", "error", "overloaded", "timeout"
REJECTED, THROTTLED = "rejected", "throttled"      # refused by the client itself
RETRYABLE = frozenset({ERROR, OVERLOADED, TIMEOUT})
DEFINITE = (ERROR, OVERLOADED, REJECTED, THROTTLED)
OUTCOMES = (OK, *DEFINITE, TIMEOUT)


FAULT_MODES = ("crash", "slow", "errors", "brownout")
#: Default time one worker takes for one request: 10 ms on average, memoryless
#: (M/M/1 replicas).
SERVICE = dist.exponential(0.010)


class Fault(NamedTuple):
    """A backend failure from `start` to `end` seconds.

    mode "crash": a `severity` fraction of replicas die (their work is lost and
    the load balancer keeps sending them requests that are never answered);
    "slow": service takes `severity` times longer; "errors": each request fails
    with probability `severity`; "brownout": a `severity` fraction of replicas
    leave the load balancer's rotation, so capacity drops by that fraction.

    Faults may overlap, of one mode too, and while several of a mode are in
    force their effects combine: slowdowns multiply (×2 and ×3 make ×6);
    error probabilities fail requests independently, 1 - (1 - p1)(1 - p2)
    (0.5 and 0.5 make 0.75); crashes and brown-outs each take the first (last)
    replicas, so together they take the largest share of them. When one ends
    the others stay in force, combined as above (a crashed replica that none of
    them covers any more restarts, empty).
    """

    mode: str
    start: float
    end: float = math.inf
    severity: float = 1.0


def as_fault(value: Fault | Sequence) -> Fault:
    """A validated Fault from a Fault or a (mode, start[, end[, severity]]) tuple."""
    if not isinstance(value, tuple | list) or not 2 <= len(value) <= 4:
        raise ConfigError(f"a fault is (mode, start, end, severity), got {value!r}")
    fault = Fault(*value)
    if fault.mode not in FAULT_MODES:
        raise ConfigError(f"fault mode must be one of {FAULT_MODES}, got "
                          f"{fault.mode!r}")
    start = require_number("fault start", fault.start, minimum=0.0)
    if not fault.end > start:  # inf allowed: the fault never ends
        raise ConfigError(f"fault end must be after its start, got {fault.end}")
    if fault.mode == "slow":
        require_number("slow factor", fault.severity, minimum=1.0)
    else:
        require_probability(f"{fault.mode} severity", fault.severity)
    return fault


class _Job:
    """One copy of one attempt, as the backend sees it. `tie` is shared by the
    two copies of a tied request: [time from which a copy that has not started
    is cancelled], inf until one of them starts."""

    __slots__ = ("attempt", "sent", "replica", "reply", "tie", "started", "executed")

    def __init__(self, attempt: Any, sent: float, reply: Callable,
                 tie: list[float] | None):
        self.attempt, self.sent, self.reply, self.tie = attempt, sent, reply, tie
        self.replica, self.started, self.executed = -1, False, False


class _Replica:
    __slots__ = ("free", "queue", "up", "epoch")

    def __init__(self, workers: int):
        self.free, self.queue, self.up, self.epoch = workers, deque(), True, 0


class Backend:
    """A pool of `servers` replicas behind a load balancer.

    The balancer sends each request to a replica chosen uniformly at random
    among those in rotation; each replica serves its own FIFO queue with
    `workers` workers. A request arriving to a full queue (`queue_limit`
    waiting) is shed with an "overloaded" reply. Every message takes a one-way
    `network` delay. Faults (see `Fault`) are switched on with `crash`, `slow`,
    `errors`, `brownout` and off with `recover`. Random streams:
    `<name>.route`, `<name>.service`, `<name>.errors`, `<name>.network`.

    Three things in labkit are called a service. This one is the replicated
    service under test in notebook 03, with its own balancer and faults, and
    its `service` argument is the time one worker takes for one request. It is
    not `labkit.service` (one FIFO queue with c servers, `Station`, and the
    open- and closed-loop clients that load it) nor `scenarios._Service` (the
    settings and counters shared by the nodes of one capstone run).
    """

    def __init__(self, sim: Simulator, *, servers: int = 10, workers: int = 1,
                 service: Distribution | float = SERVICE,
                 queue_limit: int | None = None,
                 network: Distribution | float = 0.0005, name: str = "backend"):
        if not isinstance(sim, Simulator):
            raise TypeError(f"sim must be a labkit Simulator, got {sim!r}")
        self.sim, self.name = sim, name
        self.servers = require_int("servers", servers, minimum=1)
        self.workers = require_int("workers", workers, minimum=1)
        self.service = as_distribution(service, "service")
        self.queue_limit = (None if queue_limit is None
                            else require_int("queue_limit", queue_limit, minimum=0))
        self.network = as_distribution(network, "network")
        self._route = sim.rng(f"{name}.route").random
        self._service = self.service.sampler(sim.rng(f"{name}.service"))
        self._error_draw = sim.rng(f"{name}.errors").random
        self._net = self.network.sampler(sim.rng(f"{name}.network"))
        self._replicas = [_Replica(workers) for _ in range(servers)]
        self._rotation = list(range(servers))
        self.slowdown, self.error_rate = 1.0, 0.0
        # Severity of each fault in force, by mode (crash and brownout as the
        # share of replicas they take, rounded to whole replicas).
        self._active: dict[str, list[float]] = {mode: [] for mode in FAULT_MODES}
        self.arrivals = self.started = self.served = 0
        self.shed = self.lost = self.cancelled = 0
        self.arrival_times: list[float] = []
        self._in_flight = 0                 # sent, not yet arrived at a replica

    @property
    def capacity(self) -> float:
        """Requests per second the replicas in rotation can serve when healthy."""
        return len(self._rotation) * self.workers / (self.service.mean
                                                     * self.slowdown)

    @property
    def backlog(self) -> int:
        """Copies the backend still holds: on their way to a replica, queued, or
        in service on a replica that is up. Zero once it has drained."""
        return self._in_flight + sum(
            len(r.queue) + self.workers - r.free for r in self._replicas if r.up)

    # -- requests ----------------------------------------------------------
    def send(self, job: _Job, avoid: int = -1) -> None:
        """Route `job` now (to a replica other than `avoid` if there is one); it
        arrives after a network delay. With no replica in rotation it is lost."""
        rotation = self._rotation
        n = len(rotation)
        if n == 0:
            self.lost += 1
            return
        if avoid >= 0 and n > 1 and avoid in rotation:   # avoid = -1: no scan
            pick = rotation[int(self._route() * (n - 1))]
            job.replica = rotation[-1] if pick == avoid else pick
        else:
            job.replica = rotation[int(self._route() * n)]
        self._in_flight += 1
        self.sim.schedule(self._net(), self._arrive, job)

    def _arrive(self, job: _Job) -> None:
        self._in_flight -= 1
        replica = self._replicas[job.replica]
        self.arrivals += 1
        self.arrival_times.append(self.sim.now)
        if not replica.up:
            self.lost += 1
        elif replica.free:
            replica.free -= 1
            if not self._begin(replica, job):
                replica.free += 1
        elif self.queue_limit is not None and len(replica.queue) >= self.queue_limit:
            self.shed += 1
            self.sim.schedule(self._net(), job.reply, job, OVERLOADED)
        else:
            replica.queue.append(job)

    def _begin(self, replica: _Replica, job: _Job) -> bool:
        """Start serving `job` on a free worker; False if a tied copy has been
        cancelled (its partner started and the cancel has arrived)."""
        tie, now = job.tie, self.sim.now
        if tie is not None:
            if now >= tie[0]:
                self.cancelled += 1
                return False
            if tie[0] == math.inf:      # first copy to start: tell the other one
                tie[0] = now + self._net()
        self.started += 1
        job.started = True
        self.sim.schedule(self._service() * self.slowdown, self._finish, replica,
                          job, replica.epoch)
        return True

    def _finish(self, replica: _Replica, job: _Job, epoch: int) -> None:
        if epoch != replica.epoch:
            return                      # the replica crashed while serving it
        self.served += 1
        outcome = ERROR if self._error_draw() < self.error_rate else OK
        job.executed = outcome == OK
        self.sim.schedule(self._net(), job.reply, job, outcome)
        queue = replica.queue
        while queue:
            if self._begin(replica, queue.popleft()):
                return
        replica.free += 1

    # -- faults ------------------------------------------------------------
    def _count(self, fraction: float) -> int:
        return round(require_probability("fraction", fraction) * self.servers)

    def crash(self, fraction: float = 1.0) -> None:
        """The first `fraction` of replicas die: queued and running work is lost,
        and requests routed to them are never answered until `recover`."""
        self._switch_on("crash", self._count(fraction) / self.servers, fraction)

    def slow(self, factor: float) -> None:
        """Every service starting from now takes `factor` times longer."""
        self._switch_on("slow", require_number("slow factor", factor, minimum=1.0))

    def errors(self, rate: float) -> None:
        """Each request finishing from now fails with probability `rate`."""
        self._switch_on("errors", require_probability("error rate", rate))

    def brownout(self, fraction: float) -> None:
        """The last `fraction` of replicas leave the rotation (they finish what
        they hold); capacity drops by that fraction."""
        self._switch_on("brownout", self._count(fraction) / self.servers, fraction)

    def _switch_on(self, mode: str, level: float, given: float | None = None) -> None:
        self._active[mode].append(level)
        self._apply(mode)
        self.sim.record("fault", self.name, self.name, mode,
                        note=f"{level if given is None else given:g}")

    def _apply(self, mode: str) -> None:
        """Set the backend to the combined effect of the active faults of `mode`
        (see `Fault`)."""
        active = self._active[mode]
        if mode == "crash":
            down = round(max(active, default=0.0) * self.servers)
            for i, replica in enumerate(self._replicas):
                if i >= down:
                    replica.up = True           # restarts empty
                elif replica.up:
                    self.lost += len(replica.queue) + self.workers - replica.free
                    replica.queue.clear()
                    replica.up, replica.free = False, self.workers
                    replica.epoch += 1
        elif mode == "slow":
            self.slowdown = math.prod(active, start=1.0)
        elif mode == "errors":
            # Independent failures; one fault's rate is kept exactly as given.
            survive = math.prod((1.0 - p for p in active), start=1.0)
            self.error_rate = active[0] if len(active) == 1 else 1.0 - survive
        else:
            out = round(max(active, default=0.0) * self.servers)
            self._rotation = list(range(self.servers - out))

    def recover(self, mode: str | None = None) -> None:
        """End every fault of `mode` (of every mode if None): replicas restart
        empty, the rotation is whole again, the slowdown and error rate are gone.
        (A scheduled fault that ends ends only itself; see `Fault`.)"""
        if mode not in (None, *FAULT_MODES):
            raise ConfigError(f"mode must be None or one of {FAULT_MODES}, got "
                              f"{mode!r}")
        for each in FAULT_MODES if mode is None else (mode,):
            self._active[each].clear()
            self._apply(each)
        self.sim.record("fault", self.name, self.name, "recover", note=mode or "all")

    def _end(self, fault: Fault, level: float) -> None:
        """End one scheduled fault; the other active faults of its mode stay."""
        active = self._active[fault.mode]
        if level in active:         # a recover() in between may have ended it
            active.remove(level)
            self._apply(fault.mode)
        self.sim.record("fault", self.name, self.name, "recover", note=fault.mode)

    def schedule(self, faults: Iterable[Fault | Sequence]) -> list[Fault]:
        """Switch each fault on at its start and off at its end; returns them.
        Faults may overlap, of one mode too: see `Fault` for how they combine."""
        faults = [as_fault(f) for f in faults]
        for fault in faults:
            self.sim.at(fault.start, getattr(self, fault.mode), fault.severity)
            if fault.end != math.inf:
                level = (float(fault.severity) if fault.mode in ("slow", "errors")
                         else self._count(fault.severity) / self.servers)
                self.sim.at(fault.end, self._end, fault, level)
        return faults

    def __repr__(self) -> str:
        return (f"Backend({self.name!r}, servers={self.servers}, "
                f"in_rotation={len(self._rotation)}, served={self.served})")
