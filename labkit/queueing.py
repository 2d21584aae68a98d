"""Closed-form queueing results a notebook puts beside its simulation.

Times are in seconds and rates per second. The formulas are the standard ones
listed under "Queueing" and "Power of d choices" in the course's FACTS sheet:
Erlang B/C via the numerically stable recursion, Pollaczek-Khinchine for M/G/1,
Little's law, and Mitzenmacher's supermarket-model fixed point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.errors import ConfigError, require_int, require_number

__all__ = [
    "QueueStats",
    "erlang_b",
    "erlang_c",
    "littles_law",
    "md1",
    "mg1",
    "mm1",
    "mmc",
    "power_of_d",
    "power_of_d_tail",
]


@dataclass(frozen=True)
class QueueStats:
    """The long-run averages of a stable queue, plus the model they came from.

    Fields: utilisation rho (fraction of time a server is busy), the
    probability an arrival has to wait, mean wait in queue Wq, mean response
    time W = Wq + mean service, mean queue length Lq and mean number in the
    system L. The last four fields say which model produced the numbers and
    are what ``response_percentile`` needs.
    """

    utilisation: float
    wait_probability: float
    mean_wait: float
    mean_response: float
    mean_queue_length: float
    mean_in_system: float
    model: str
    arrival_rate: float
    service_rate: float
    servers: int

    def response_survival(self, t: float) -> float:
        """The probability that a customer's response time exceeds t seconds.

        Exact for M/M/c under FCFS: the response time is T = S + Wq with
        S ~ Exp(mu) and Wq independent of S, equal to 0 with probability
        1 - C and Exp(c*mu - lambda) with probability C (C = wait_probability).
        Hence, writing theta = c*mu - lambda,

            P(T > t) = (1 - C) e^(-mu t) + C P(S + X > t),   X ~ Exp(theta),
            P(S + X > t) = (theta e^(-mu t) - mu e^(-theta t)) / (theta - mu),

        which tends to (1 + mu t) e^(-mu t) as theta -> mu. For c = 1 the
        mixture collapses to T ~ Exp(mu - lambda). With no arrivals
        (lambda = 0, so C = 0) T is the service time alone: e^(-mu t).
        """
        self._require_markovian("response_survival")
        t = require_number("t", t, minimum=0.0)
        mu, lam, c = self.service_rate, self.arrival_rate, self.servers
        if c == 1:
            return math.exp(-(mu - lam) * t)
        theta = c * mu - lam
        waited = self.wait_probability
        return (1.0 - waited) * math.exp(-mu * t) + waited * _hypoexp_tail(
            mu, theta, t)

    def response_percentile(self, p: float) -> float:
        """The response time t that p percent of customers finish within.

        M/M/1: W is exponential with rate mu - lambda, so
        t = -ln(1 - p/100) / (mu - lambda) exactly. M/M/c: the survival
        function of ``response_survival`` has no closed-form inverse, so t is
        found by bisection on P(T > t) = 1 - p/100: double an upper bound
        until the survival drops below the target, then halve the bracket
        until it stops shrinking in floating point (P(T > t) is continuous
        and strictly decreasing, so the root is unique).
        """
        self._require_markovian("response_percentile")
        p = require_number("p", p)
        if not 0.0 < p < 100.0:
            raise ConfigError(f"p must be a percentile in (0, 100), got {p}")
        target = 1.0 - p / 100.0
        if self.servers == 1:
            return -math.log1p(-p / 100.0) / (self.service_rate - self.arrival_rate)
        lo, hi = 0.0, 1.0 / self.service_rate
        while self.response_survival(hi) > target:
            lo, hi = hi, 2.0 * hi
        for _ in range(2000):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if self.response_survival(mid) > target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def _require_markovian(self, what: str) -> None:
        # Only exponential service pins down the whole response distribution;
        # M/G/1 and M/D/1 here give means only.
        if not self.model.startswith("M/M/"):
            raise ConfigError(
                f"{what} needs exponential service (an M/M/c queue); this is "
                f"{self.model}, for which only the means are available")


def _hypoexp_tail(mu: float, theta: float, t: float) -> float:
    """P(S + X > t) for independent S ~ Exp(mu) and X ~ Exp(theta)."""
    delta = theta - mu
    if abs(delta) * t >= 1.0:
        return (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / delta
    # Near theta = mu the direct form cancels; rewrite it as
    # e^(-mu t) (1 + mu (1 - e^(-delta t)) / delta), whose limit is 1 + mu t.
    spread = t if delta == 0.0 else -math.expm1(-delta * t) / delta
    return math.exp(-mu * t) * (1.0 + mu * spread)


def _rate(name: str, value: float) -> float:
    return require_number(name, value, positive=True)


def _arrivals(name: str, value: float) -> float:
    """An arrival rate or offered load: 0 is allowed (an empty system, the limit
    of a light load), negative, NaN, infinite and bools are not."""
    # + 0.0 turns -0.0 into 0.0, so that no result of an empty system is -0.0.
    return require_number(name, value, minimum=0.0) + 0.0


def _servers(value: int) -> int:
    return require_int("servers", value, minimum=1)


def erlang_b(servers: int, offered_load: float) -> float:
    """The probability an arrival finds all servers busy and is lost (M/M/c/c).

    Computed with the stable recursion B_0 = 1,
    B_k = a B_(k-1) / (k + a B_(k-1)), where a is the offered load in Erlangs
    (arrival rate / service rate, >= 0; at 0 nothing is lost, B = 0); no
    factorials, so large c is safe.
    """
    servers = _servers(servers)
    load = _arrivals("offered_load", offered_load)
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(servers: int, offered_load: float) -> float:
    """The probability an arrival has to wait in an M/M/c queue (Erlang C).

    C = B_c / (1 - rho + rho B_c) with B_c = ``erlang_b(c, a)`` and
    rho = a / c, which must be below 1 for the queue to be stable. a = 0 is
    allowed: with no arrivals no one waits, C = 0.
    """
    servers = _servers(servers)
    load = _arrivals("offered_load", offered_load)
    if load >= servers:
        raise ConfigError(
            f"offered_load {load} >= servers {servers}: the queue is unstable "
            "(utilisation must be < 1)")
    rho = load / servers
    blocking = erlang_b(servers, load)
    return blocking / (1.0 - rho + rho * blocking)


def _require_stable(lam: float, capacity: float, what: str) -> None:
    """Refuse an arrival rate the servers cannot keep up with."""
    if lam >= capacity:
        raise ConfigError(
            f"arrival_rate {lam} >= {what} {capacity}: the queue is unstable "
            "(utilisation must be < 1)")


def _steady_state(model: str, lam: float, mu: float, servers: int,
                  wait_probability: float, wait: float) -> QueueStats:
    """QueueStats from a model's P(wait) and Wq: the rest follows from
    W = Wq + 1/mu and Little's law (Lq = lambda Wq, L = lambda W)."""
    response = wait + 1.0 / mu
    return QueueStats(
        utilisation=lam / (servers * mu), wait_probability=wait_probability,
        mean_wait=wait, mean_response=response, mean_queue_length=lam * wait,
        mean_in_system=lam * response, model=model, arrival_rate=lam,
        service_rate=mu, servers=servers)


def mm1(arrival_rate: float, service_rate: float) -> QueueStats:
    """The steady state of one exponential server fed by Poisson arrivals.

    rho = lambda/mu, P(wait) = rho, W = 1/(mu - lambda), Wq = W - 1/mu,
    L = lambda W and Lq = lambda Wq (Little's law).
    arrival_rate >= 0: at 0 the queue is empty (Wq = Lq = L = 0, rho = 0) and
    W is the mean service time, the limit of a light load.
    """
    lam = _arrivals("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate)
    _require_stable(lam, mu, "service_rate")
    rho = lam / mu
    return _steady_state("M/M/1", lam, mu, 1, rho, rho / (mu - lam))


def mmc(arrival_rate: float, service_rate: float, servers: int) -> QueueStats:
    """The steady state of c exponential servers sharing one FCFS queue.

    a = lambda/mu, rho = a/c, P(wait) = Erlang C(c, a), Wq = C/(c mu - lambda),
    W = Wq + 1/mu, Lq = lambda Wq and L = lambda W (Little's law).
    arrival_rate >= 0: at 0 the queue is empty (Wq = Lq = L = 0, rho = 0) and
    W is the mean service time, the limit of a light load.
    """
    lam = _arrivals("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate)
    servers = _servers(servers)
    _require_stable(lam, servers * mu, "servers*service_rate")
    waited = erlang_c(servers, lam / mu)
    return _steady_state(f"M/M/{servers}", lam, mu, servers, waited,
                         waited / (servers * mu - lam))


def md1(arrival_rate: float, service_rate: float) -> QueueStats:
    """The steady state of one server with constant service time 1/mu.

    rho = lambda/mu, P(wait) = rho, Wq = rho / (2 mu (1 - rho)) (half the
    M/M/1 wait), W = Wq + 1/mu, Lq = lambda Wq and L = lambda W.
    arrival_rate >= 0: at 0 the queue is empty (Wq = Lq = L = 0, rho = 0) and
    W is the mean service time, the limit of a light load.
    """
    lam = _arrivals("arrival_rate", arrival_rate)
    mu = _rate("service_rate", service_rate)
    _require_stable(lam, mu, "service_rate")
    rho = lam / mu
    return _steady_state("M/D/1", lam, mu, 1, rho, rho / (2.0 * mu * (1.0 - rho)))


def mg1(arrival_rate: float, mean_service: float, second_moment: float) -> QueueStats:
    """The steady state of one server with any service-time distribution.

    Pollaczek-Khinchine: rho = lambda E[S], Wq = lambda E[S^2] / (2 (1 - rho)),
    W = Wq + E[S], Lq = lambda Wq, L = lambda W. P(wait) = rho, the chance a
    Poisson arrival finds the server busy (PASTA). E[S^2] >= E[S]^2 is
    required, since the variance of a service time cannot be negative.
    arrival_rate >= 0: at 0 the queue is empty (Wq = Lq = L = 0, rho = 0) and
    W is the mean service time, the limit of a light load.
    """
    lam = _arrivals("arrival_rate", arrival_rate)
    mean = _rate("mean_service", mean_service)
    second = _rate("second_moment", second_moment)
    # A relative slack of 1e-12 lets 1/mu**2 stand for (1/mu)**2 exactly.
    if second < mean * mean * (1.0 - 1e-12):
        raise ConfigError(
            f"second_moment {second} < mean_service**2 {mean * mean}: E[S^2] must "
            "be at least E[S]^2 (a variance cannot be negative)")
    rho = lam * mean
    if rho >= 1.0:
        raise ConfigError(
            f"arrival_rate*mean_service {rho} >= 1: the queue is unstable "
            "(utilisation must be < 1)")
    return _steady_state("M/G/1", lam, 1.0 / mean, 1, rho,
                         lam * second / (2.0 * (1.0 - rho)))


def littles_law(
    arrival_rate: float | None = None,
    mean_time: float | None = None,
    mean_number: float | None = None,
) -> float:
    """The third of L = lambda W, given the other two (any stable system).

    Pass exactly two of arrival_rate (lambda > 0), mean_time (W >= 0) and
    mean_number (L >= 0); the missing one is returned. Works for the whole
    system (L, W) and for the queue alone (Lq, Wq) alike.
    """
    given = {name: value for name, value in [
        ("arrival_rate", arrival_rate), ("mean_time", mean_time),
        ("mean_number", mean_number)] if value is not None}
    if len(given) != 2:
        raise ConfigError(
            "littles_law needs exactly two of arrival_rate, mean_time and "
            f"mean_number, got {len(given)}: {sorted(given) or 'none'}")
    if arrival_rate is not None:
        arrival_rate = _rate("arrival_rate", arrival_rate)
    if mean_time is not None:
        mean_time = require_number("mean_time", mean_time, minimum=0.0)
    if mean_number is not None:
        mean_number = require_number("mean_number", mean_number, minimum=0.0)
    if mean_number is None:
        return arrival_rate * mean_time
    if mean_time is None:
        return mean_number / arrival_rate
    if mean_time == 0.0:
        raise ConfigError(
            "mean_time must be > 0 to solve for arrival_rate, got 0.0")
    return mean_number / mean_time


def _choices(d: int) -> int:
    return require_int("d", d, minimum=1)


def _load(load: float) -> float:
    load = require_number("load", load, minimum=0.0)
    if load >= 1.0:
        raise ConfigError(
            f"load {load} >= 1: the queues are unstable (load must be in [0, 1))")
    return load


def power_of_d(load: float, d: int, servers: int | None = None) -> float:
    """The mean time in system when each arrival joins the shortest of d queues.

    Mitzenmacher's supermarket model as n -> infinity: Poisson arrivals at
    rate load*n, n FIFO servers with Exp(1) service (so the answer is in
    mean service times), each arrival samples d servers and joins the
    shortest. T_d = sum_{i>=1} load^((d^i - d)/(d - 1)) for d >= 2, summed
    until a term drops below 1e-15; T_1 = 1/(1 - load), the M/M/1 value.
    ``servers`` does not change the value, which is the n -> infinity limit
    (finite n sits above it); if given it is checked to be an int >= d.
    """
    load, d = _load(load), _choices(d)
    if servers is not None:
        servers = _servers(servers)
        if d > servers:
            raise ConfigError(
                f"d {d} > servers {servers}: cannot sample more queues than exist")
    if d == 1:
        return 1.0 / (1.0 - load)
    total, i = 0.0, 1
    while True:
        term = load ** ((d**i - d) // (d - 1))   # exact: d - 1 divides d^i - d
        total += term
        if term < 1e-15:
            return total
        i += 1


def power_of_d_tail(load: float, d: int, i: int) -> float:
    """The fraction of queues holding at least i customers at the fixed point.

    s_i = load^((d^i - 1)/(d - 1)) = load^(1 + d + ... + d^(i-1)) in
    Mitzenmacher's supermarket model (n -> infinity); for d = 1 this is
    load^i, the M/M/1 tail, and s_0 = 1.
    """
    load, d = _load(load), _choices(d)
    i = require_int("i", i, minimum=0)
    if d > 1 and i > 1000:
        # The exponent is at least 2^i - 1 > 10^300, so s_i underflows to 0;
        # d**i itself would take minutes to build for i in the hundreds of millions.
        return 0.0
    exponent = i if d == 1 else (d**i - 1) // (d - 1)
    if exponent > 10**300:      # too big for a float; load < 1 underflows to 0
        return 0.0
    return load**exponent
