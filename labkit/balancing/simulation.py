"""`simulate`: check the inputs of one load-balancing run, then hand them to
the fast engine when it applies (no faults, instant load reports) and to the
event engine otherwise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from labkit import dist
from labkit.errors import ConfigError, checked, require_int, require_number

from .engines import _EventRun, _FastRun, _Setup, _TwoChoiceRun
from .policies import Policy, PowerOfD, make_policy
from .result import BalancingResult

#: Limits that keep one run bounded: beyond MAX_LOAD times capacity every queue
#: only grows, and sampling it while it drains takes ever longer; reports more
#: often than a thousandth of a mean service time are as good as instant and
#: cost an event each.
MAX_LOAD, MAX_SERVERS, MAX_SAMPLES, MIN_REPORT_SHARE = 10.0, 100_000, 10_000, 1e-3


def _per_server(name: str, values: Sequence[float] | None, servers: int,
                positive: bool) -> tuple[float, ...]:
    """One number per server: 1.0 each if not given; > 0 (or >= 0) and not all 0."""
    if values is None:
        return (1.0,) * servers
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise ConfigError(f"{name} must be a sequence of {servers} numbers, "
                          f"got {values!r}")
    if len(values) != servers:
        raise ConfigError(f"{name} must have one number per server ({servers}), "
                          f"got {len(values)}")
    checked = tuple(require_number(f"{name}[{i}]", float(v) if isinstance(
        v, np.number) else v, positive=positive, minimum=None if positive else 0.0)
        for i, v in enumerate(values))
    if not any(checked):
        raise ConfigError(f"{name} are all 0: no server would get any request")
    return checked


def _faults(faults, servers: int) -> tuple[tuple[float, str, int], ...]:
    """(time, verb, server) triples, checked and in time order."""
    checked = []
    for fault in faults:
        if not (isinstance(fault, Sequence) and len(fault) == 3):
            raise ConfigError(f"each fault must be (time, 'kill' or 'restart', "
                              f"server), got {fault!r}")
        time, verb, server = fault
        if verb not in ("kill", "restart"):
            raise ConfigError(f"fault verb must be 'kill' or 'restart', got {verb!r}")
        server = require_int("fault server", server, minimum=0)
        if server >= servers:
            raise ConfigError(f"fault server {server} does not exist; servers are "
                              f"0..{servers - 1}")
        checked.append((require_number("fault time", time, minimum=0.0), verb, server))
    return tuple(sorted(checked, key=lambda f: f[0]))   # stable: ties keep order


@checked
def simulate(policy: str | Policy = "p2c", servers: int = 100, load: float = 0.9,
             requests: int = 200_000, seed: int = 1, *, d: int | None = None,
             weights: Sequence[float] | None = None,
             speeds: Sequence[float] | None = None,
             service: float | dist.Distribution | None = None,
             keys: int = 1_000_000, report_interval: float = 0.0, warmup: int = 0,
             faults: Iterable[tuple[float, str, int]] = (), samples: int = 100,
             engine: str = "auto") -> BalancingResult:
    """Send `requests` Poisson arrivals through a balancer to FIFO servers.

    policy: a name from POLICIES or a Policy instance; d: samples for "p2c".
    load: arrival rate over fleet capacity, sum(speeds) / mean service time
    (>= 1 is allowed and reported as overload; the run still ends after
    `requests` arrivals). service: service-time distribution of a speed-1
    server (default exponential, mean 1 s); a server of speed s takes 1/s as
    long. weights: for the weighted policies (default: the speeds). keys:
    request keys are uniform on range(keys). report_interval: servers report
    their loads every this many seconds (0: the balancer always knows them).
    warmup: leave the first this many requests out of the latency histogram.
    samples: queue lengths are sampled this many times over the time the
    arrivals take (more if the queues take long to drain).
    faults: (time, "kill" | "restart", server) events; a kill fails the
    requests that server holds. engine: "events" (general), "fast" (no faults
    and instant reports only) or "auto"; both give the same result.
    """
    the_policy = make_policy(policy, d)
    servers = require_int("servers", servers, minimum=1, maximum=MAX_SERVERS)
    if isinstance(the_policy, PowerOfD) and the_policy.d > servers:
        raise ConfigError(f"d={the_policy.d} > servers={servers}: cannot sample "
                          "more servers than exist")
    load = require_number("load", load, positive=True)
    if load > MAX_LOAD:
        raise ConfigError(f"load must be at most {MAX_LOAD:g} times the fleet's "
                          f"capacity, got {load:g}: beyond that every queue only "
                          "grows")
    requests = require_int("requests", requests, minimum=1)
    speeds = _per_server("speeds", speeds, servers, positive=True)
    weights = (speeds if weights is None
               else _per_server("weights", weights, servers, positive=False))
    service = dist.exponential(1.0) if service is None else dist.as_distribution(
        service, "service")
    if not service.mean > 0:
        raise ConfigError(f"service time must have a mean > 0, got {service!r}")
    warmup = require_int("warmup", warmup, minimum=0)
    if warmup >= requests:
        raise ConfigError(f"warmup={warmup} leaves no request of {requests} to measure")
    faults = _faults(faults, servers)
    report_interval = require_number("report_interval", report_interval, minimum=0.0)
    fastest = MIN_REPORT_SHARE * service.mean
    if 0 < report_interval < fastest:
        raise ConfigError(f"report_interval must be 0 (instant reports) or at least "
                          f"{fastest:g} s, a thousandth of the mean service time, "
                          f"got {report_interval:g}: reports any more often are as "
                          "good as instant")
    if engine not in ("auto", "events", "fast"):
        raise ConfigError(f"engine must be 'auto', 'events' or 'fast', got {engine!r}")
    setup = _Setup(
        policy=the_policy, servers=servers, offered_load=load,
        arrival_rate=load * sum(speeds) / service.mean, requests=requests,
        seed=require_int("seed", seed), speeds=speeds, weights=weights,
        service=service, keys=require_int("keys", keys, minimum=1),
        report_interval=report_interval, warmup=warmup, faults=faults,
        samples=require_int("samples", samples, minimum=1, maximum=MAX_SAMPLES),
        params={"policy": policy if isinstance(policy, str) else repr(policy),
                "servers": servers, "load": load, "requests": requests,
                "d": d, "weights": list(weights), "speeds": list(speeds),
                "service": repr(service), "keys": keys,
                "report_interval": report_interval, "warmup": warmup,
                "faults": [list(f) for f in faults], "samples": samples})
    needs_events = bool(setup.faults) or setup.report_interval > 0
    if engine == "fast" and needs_events:
        raise ConfigError("engine='fast' handles neither faults nor report_interval "
                          "> 0; use engine='events' or 'auto'")
    if engine == "events" or needs_events:
        return _EventRun(setup).run()
    if type(the_policy) is PowerOfD and the_policy.d == 2:
        return _TwoChoiceRun(setup).run()
    return _FastRun(setup).run()
