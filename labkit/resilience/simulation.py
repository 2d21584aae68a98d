"""`simulate`: one run of users against a faulty backend through a client
`Policy`, turned into a Result's metrics (counters, the latency histogram,
per-second series), and `summarize`, its headline numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

from labkit.dist import Distribution
from labkit.errors import ConfigError, checked, require_number
from labkit.metrics import Result, nearest_rank
from labkit.sim import Simulator

from .backend import DEFINITE, OK, SERVICE, TIMEOUT, Backend, Fault
from .breaker import BREAKER_STATES
from .client import Client, Policy


@checked
def simulate(seed: int = 0, *,
             policy: Policy = Policy(),  # noqa: B008 (frozen: safe to share)
             rate: float = 500.0, duration: float = 30.0,
             faults: Iterable[Fault | Sequence] = (),
             servers: int = 10, workers: int = 1,
             service: Distribution | float = SERVICE,
             queue_limit: int | None = None, network: Distribution | float = 0.0005,
             bucket: float = 1.0) -> Result:
    """Users at `rate` per second for `duration` seconds against a backend with
    scheduled `faults`, defended by `policy`. The run goes on until every user
    request is done and then until the backend has drained (nothing on its way
    to a replica, queued or in service), so copies their clients gave up on
    still run and every count below is final; `end_time` is when that was.

    Metrics: histogram "latency" (every user request, end to end); counters
    "requests", "succeeded", "attempts.<outcome>", "retries", "hedges",
    "copies" (messages the backend was sent), "budget_denied",
    "timeouts.executed" / "timeouts.not_executed" (timed-out attempts whose
    work did, at any time, or never did happen), "duplicates" (requests
    executed more than once), "backend.arrivals" / "backend.started" /
    "backend.served" (copies that reached, began and finished service);
    gauge "client.outstanding" (user requests in progress); series per `bucket`
    seconds: "amplification" (copies sent / requests started), "success_rate",
    "goodput" (successes per second), "p50", "p99", "backend.load" (arrivals per
    second) and "breaker" (0 closed, 1 half-open, 2 open, at each change).
    `data["summary"]` holds the headline numbers (see `summarize`).
    """
    duration = require_number("duration", duration, positive=True)
    bucket = require_number("bucket", bucket, positive=True)
    sim = Simulator(seed, trace=True)
    backend = Backend(sim, servers=servers, workers=workers, service=service,
                      queue_limit=queue_limit, network=network)
    faults = backend.schedule(faults)
    late = [f for f in faults if f.start >= duration]
    if late:
        raise ConfigError(f"a fault would start after the users stop at {duration:g} "
                          f"s, so it could change nothing: {late[0]}")
    client = Client(sim, backend, policy)
    client.start(rate, duration)
    sim.run(duration)
    # Let started requests finish, then let the backend drain: copies still
    # queued when their request gave up run (or are dropped) before the
    # executed / duplicate counts are taken.
    while (client.unfinished or backend.backlog) and sim.pending:
        sim.run(bucket)
    _record(sim, client, backend, duration, bucket)
    params = {"policy": policy, "rate": rate, "duration": duration,
              "faults": faults, "servers": servers, "workers": workers,
              "service": service, "queue_limit": queue_limit, "network": network,
              "bucket": bucket}
    history = [] if client.breaker is None else client.breaker.history
    result = sim.result("resilience", params, {"breaker_history": history})
    summary = summarize(result)
    sim.retire()          # a kept Result must not keep the clients and servers alive
    return dataclasses.replace(result, data={
        **result.data, "summary": summary,
        "headline": f"success {summary['success_rate']:.1%} · amplification "
                    f"{summary['amplification']:.2f}x · p99 "
                    f"{summary['p99'] * 1e3:.0f} ms"})


def _record(sim: Simulator, client: Client, backend: Backend, duration: float,
            bucket: float) -> None:
    """Turn the client's and backend's logs into the run's metrics."""
    metrics = sim.metrics
    metrics.counter("requests").inc(len(client.starts))
    succeeded = sum(outcome == OK for outcome in client.outcomes)
    metrics.counter("succeeded").inc(succeeded)
    for outcome, count in client.counts.items():
        metrics.counter(f"attempts.{outcome}").inc(count)
    for name in ("retries", "hedges", "budget_denied"):
        metrics.counter(name).inc(getattr(client, name))
    metrics.counter("copies").inc(len(client.send_times))
    metrics.counter("backend.served").inc(backend.served)
    metrics.counter("backend.started").inc(backend.started)
    metrics.counter("backend.arrivals").inc(backend.arrivals)
    executions = [0] * len(client.starts)
    executed = not_executed = 0
    for attempt in client.attempts:
        jobs = attempt.jobs             # one copy, unless hedged or tied
        ran = (jobs[0].executed if len(jobs) == 1
               else sum(job.executed for job in jobs))
        executions[attempt.rid] += ran
        if attempt.outcome == TIMEOUT:  # settled, as a timeout
            executed += ran > 0
            not_executed += ran == 0
    metrics.counter("timeouts.executed").inc(executed)
    metrics.counter("timeouts.not_executed").inc(not_executed)
    metrics.counter("duplicates").inc(sum(n > 1 for n in executions))
    _series(metrics, client, backend, duration, bucket)


def _series(metrics, client: Client, backend: Backend, duration: float,
            bucket: float) -> None:
    edges = np.arange(0.0, duration + bucket / 2, bucket)
    if edges[-1] < duration:
        edges = np.append(edges, duration)

    def per_bucket(times) -> np.ndarray:
        return np.histogram(np.asarray(times, float), bins=edges)[0]

    starts, ends = np.asarray(client.starts), np.asarray(client.ends)
    ok = np.asarray([o == OK for o in client.outcomes], bool)
    latency = metrics["latency"].values
    started, sent = per_bucket(starts), per_bucket(client.send_times)
    finished, good = per_bucket(ends), per_bucket(ends[ok])
    load = per_bucket(backend.arrival_times)
    which = np.searchsorted(edges, ends, side="right") - 1
    widths = np.diff(edges)
    for i, left in enumerate(edges[:-1]):
        t = float(left)
        mine = np.sort(latency[which == i])
        metrics.series("amplification").add(t, sent[i] / started[i] if started[i]
                                             else math.nan)
        metrics.series("success_rate").add(t, good[i] / finished[i] if finished[i]
                                           else math.nan)
        metrics.series("goodput").add(t, good[i] / widths[i])
        metrics.series("backend.load").add(t, load[i] / widths[i])
        metrics.series("p50").add(t, nearest_rank(mine, 50))
        metrics.series("p99").add(t, nearest_rank(mine, 99))
    breaker = metrics.series("breaker")
    if client.breaker is not None:
        for at, state in client.breaker.history:
            breaker.add(at, BREAKER_STATES.index(state))


def summarize(result: Result) -> dict[str, float]:
    """Headline numbers of a `simulate` run: requests, success_rate, goodput (per
    second of the run), amplification (copies per request), p50/p99/p99.9 (s),
    definite and indefinite (timed-out) errors per attempt, and duplicates."""
    if not isinstance(result, Result) or result.scenario != "resilience":
        raise ConfigError(f"summarize takes the Result of resilience.simulate, got "
                          f"{result!r}"[:200])
    m = result.metrics
    requests = m["requests"].value
    latency = m["latency"]
    duration = result.params["duration"]
    return {
        "requests": requests,
        "success_rate": m["succeeded"].value / requests if requests else math.nan,
        "goodput": m["succeeded"].value / duration,
        "amplification": m["copies"].value / requests if requests else math.nan,
        "p50": latency.percentile(50) if latency.count else math.nan,
        "p99": latency.percentile(99) if latency.count else math.nan,
        "p99.9": latency.percentile(99.9) if latency.count else math.nan,
        "definite_errors": sum(m[f"attempts.{o}"].value for o in DEFINITE),
        "indefinite_errors": m[f"attempts.{TIMEOUT}"].value,
        "timeouts_executed": m["timeouts.executed"].value,
        "duplicates": m["duplicates"].value,
    }
