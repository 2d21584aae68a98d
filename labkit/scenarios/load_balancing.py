"""Scenarios of notebook 02, load balancing: one balancer in front of a fleet
(`load_balancer`, the playground's scenario), the power of d choices against
its fixed point and a pooled queue (`balancing_vs_theory`), and policies fed
stale load reports (`stale_reports`); with the two readings the playground
prints, each server's busy share while requests arrive (`busy_share`) and
durations in the unit a student reads (`duration_text`). The simulator itself
is `labkit.balancing`; servers are numbered from 0 there and named s1..sN here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from labkit import balancing, queueing
from labkit.errors import checked, require_int, require_items, require_number
from labkit.metrics import Metrics, Record, Result

from .common import THEORY_LOADS, service_time, with_data, with_progress

#: The policies the load-balancing playground offers, default first.
BALANCING_POLICIES = ("p2c", "round_robin", "random", "weighted_round_robin",
                      "weighted_random", "least_outstanding", "consistent_hash")
#: Queue-length samples the playground's runs take while requests arrive: the
#: busy shares it shows are read from them (a share to about ±2 %).
BUSY_SAMPLES = 1000


@dataclass(frozen=True, kw_only=True)
class PolicyCurves(Record):
    """Mean time in system by policy: "simulated" {label: {x: mean}} and a
    headline (`stale_reports`: x is the report interval)."""

    simulated: dict[str, dict[float, float]]
    headline: str


@dataclass(frozen=True, kw_only=True)
class TheoryCurves(PolicyCurves):
    """`balancing_vs_theory`'s data: `PolicyCurves` against load, and the
    closed forms {label: {load: mean}} beside them ("theory")."""

    theory: dict[str, dict[float, float]]


@checked
def load_balancer(seed: int = 1, *, policy: str = "p2c", load: float = 0.9,
                  servers: int = 8, d: int = 2, slow: float = 3.0,
                  service: str = "exponential", down: Iterable[int] = (),
                  requests: int = 20_000) -> balancing.BalancingResult:
    """One balancer in front of `servers` servers, the first (s1) `slow` times
    slower than the rest (weights = speeds), service times of the `service`
    shape with mean 1 s on a speed-1 server. The servers listed in `down`
    (numbered from 0: 0 is s1) are killed a third of the way through the
    arrivals (what they hold fails). d is used by "p2c" only, capped at the
    number of servers. Queue lengths are sampled BUSY_SAMPLES times while
    requests arrive (see `busy_share`); the headline prints durations with
    `duration_text`."""
    servers = require_int("servers", servers, minimum=1)
    speeds = [1 / require_number("slow", slow, minimum=1.0)] + [1.0] * (servers - 1)
    arrivals_end = require_int("requests", requests, minimum=1) / (
        require_number("load", load, positive=True) * sum(speeds))
    faults = [(arrivals_end / 3, "kill", s) for s in sorted(set(down)) if s < servers]
    res = balancing.simulate(
        policy, servers=servers, load=load, requests=requests, seed=seed,
        speeds=speeds, service=service_time(service, 1.0), faults=faults,
        d=min(require_int("d", d, minimum=1), servers) if policy == "p2c" else None,
        samples=BUSY_SAMPLES)
    latency = res.latency
    said = (f"{policy}, {servers} servers, load {load:g}"
            f"{' (OVERLOADED)' if res.overloaded else ''}: {res.completed} completed, ")
    if latency.count:
        said += (f"mean {duration_text(latency.mean)}, "
                 f"p99 {duration_text(latency.percentile(99))}, ")
    return with_data(res, {**res.data, "headline": f"{said}{res.failed} failed"})


def duration_text(seconds: float) -> str:
    """A duration as a student reads it: milliseconds below 1 s, seconds to
    three significant digits below 100 s, and above that whole seconds with a
    thousands separator and the minutes or hours they make, e.g.
    "4,170 s ≈ 70 min" (never "4.17e+03 s")."""
    seconds = require_number("seconds", seconds, minimum=0.0)
    if seconds < 0.9995:               # else it would read 1000 ms
        ms = 1e3 * seconds
        return f"{ms:.3g} ms" if ms < 99.95 else f"{ms:.0f} ms"
    if seconds < 99.95:
        return f"{seconds:.3g} s"
    said = f"{seconds:,.0f} s"
    if seconds >= 7200:
        return f"{said} ≈ {seconds / 3600:.1f} h"
    return f"{said} ≈ {seconds / 60:.0f} min" if seconds >= 600 else said


@dataclass(frozen=True)
class BusyShare:
    """Each server's share of the window [start, end] during which it held a
    request (so was serving: servers are FIFO), read from `samples` equally
    spaced queue-length samples; `shares[i]` is server s(i + 1)'s."""

    shares: np.ndarray
    start: float
    end: float
    samples: int

    @property
    def window(self) -> str:
        """What the shares measure, for a label: "busy share, 0–3,030 s"."""
        return f"busy share, {self.start:,.0f}–{self.end:,.0f} s"


def busy_share(result: balancing.BalancingResult) -> BusyShare:
    """Each server's busy share while requests arrive: from time 0 to the
    expected last arrival (requests / arrival rate), or the end of the run if
    that comes first. Unlike `result.utilisation` (busy time over the whole
    run), it leaves out the drain after the last arrival: when one server is
    overloaded, its backlog can take longer to clear than the arrivals took,
    and the others, idle all that time, would look a third as busy as they
    were while the load was on."""
    if not isinstance(result, balancing.BalancingResult):
        raise TypeError(f"busy_share needs a labkit.balancing.BalancingResult, got "
                        f"{type(result).__name__}")
    end = min(result.params["requests"] / result.data["arrival_rate"],
              result.end_time)
    inside = result.queue_lengths[result.sample_times <= end * (1 + 1e-9)]
    if not len(inside):
        raise ValueError(f"no queue-length sample falls in 0–{end:g} s; run with "
                         "more `samples`")
    return BusyShare(shares=(inside > 0).mean(axis=0), start=0.0, end=end,
                     samples=len(inside))


@checked
def balancing_vs_theory(seed: int = 1, *, servers: int = 100,
                        loads: Sequence[float] = (0.5, 0.7, 0.8, 0.9),
                        requests: int = 40_000,
                        progress: Callable[..., Iterable] | None = None) -> Result:
    """Mean time in system against load on `servers` Exp(1) servers, simulated
    for random assignment, power of 2 and 3 choices and least outstanding,
    beside theory: M/M/1 per server, the supermarket fixed point for d = 2, 3,
    and one pooled M/M/`servers` queue (a single shared line: the ideal).

    Random assignment's queues settle on a time scale of 1/(1 - sqrt(load))^2
    service times (380 at 90 %), so its runs are 6x longer; every run leaves
    its first quarter out as warm-up. data.simulated and data.theory, each
    {label: {load: mean time}}, and a headline. `progress`: a wrapper that
    shows a bar while it yields the runs, called as progress(runs, total=,
    description=), e.g. labkit.widgets.progress.
    """
    servers = require_int("servers", servers, minimum=3)
    loads = require_items("loads", loads, "load")
    runs = {"random (d = 1)": ("random", None, 6), "p2c, d = 2": ("p2c", 2, 1),
            "p2c, d = 3": ("p2c", 3, 1), "least outstanding": (
                "least_outstanding", None, 1)}
    simulated = {label: {} for label in runs}
    jobs = [(label, rho) for label in runs for rho in loads]
    for label, rho in with_progress(jobs, progress, "balancing_vs_theory runs"):
        policy, d, longer = runs[label]
        res = balancing.simulate(policy, servers=servers, load=rho, d=d,
                                 requests=requests * longer, seed=seed,
                                 warmup=requests * longer // 4)
        simulated[label][rho] = res.latency.mean
    grid = [rho for rho in THEORY_LOADS if rho <= max(loads)]
    theory = {"random (d = 1)": {r: queueing.mm1(r, 1.0).mean_response for r in grid},
              "p2c, d = 2": {r: queueing.power_of_d(r, 2) for r in grid},
              "p2c, d = 3": {r: queueing.power_of_d(r, 3) for r in grid},
              f"pooled M/M/{servers}": {
                  r: queueing.mmc(r * servers, 1.0, servers).mean_response
                  for r in grid}}
    params = dict(servers=servers, loads=tuple(loads), requests=requests)
    said = f"{servers} servers, {len(loads)} loads × {len(runs)} policies"
    return Result("balancing_vs_theory", params, seed, Metrics(),
                  data=TheoryCurves(simulated=simulated, theory=theory,
                                    headline=said))


@checked
def stale_reports(seed: int = 1, *, intervals: Sequence[float] = (0, 1, 2, 5, 10),
                  policies: Sequence[str] = ("least_loaded_stale", "random", "p2c",
                                             "least_outstanding"),
                  servers: int = 20, load: float = 0.9,
                  requests: int = 20_000) -> Result:
    """Mean time in system against the load-report interval (in mean service
    times) for each policy: least_loaded_stale and p2c read the reports,
    random reads nothing, least_outstanding counts its own requests. data:
    simulated {policy: {interval: mean}}, headline."""
    intervals = require_items("intervals", intervals, "report interval")
    policies = require_items("policies", policies, "policy")
    simulated = {p: {} for p in policies}
    for policy in policies:
        for interval in intervals:
            res = balancing.simulate(policy, servers=servers, load=load,
                                     requests=requests, seed=seed,
                                     report_interval=interval, warmup=requests // 10)
            simulated[policy][interval] = res.latency.mean
    params = dict(intervals=tuple(intervals), policies=tuple(policies),
                  servers=servers, load=load, requests=requests)
    said = f"{servers} servers at load {load:g}, reports every {intervals} s"
    return Result("stale_reports", params, seed, Metrics(),
                  data=PolicyCurves(simulated=simulated, headline=said))
