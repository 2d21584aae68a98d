"""Scenarios of notebook 06, transactions: one transfer under 2PC, Paxos
Commit, a saga or TCC with a crash placed in it (`txn_story`), how long a
crashed coordinator blocks a hot row (`blocking_window`), what an auditor
sees (`audit_run`), throughput under contention, whether clients learn how
their transactions ended under random faults (`client_outcomes`), and the
playground. The protocols are `labkit.txn`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labkit import dist, txn
from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_items,
    require_number,
)
from labkit.metrics import Metrics, Record, Result, TimeSeries, keyed
from labkit.net import NetConfig

from .common import Table, with_data

#: The crash points a notebook 06 story or playground can choose ("none": no crash).
TXN_CRASHES = ("none", *txn.CRASH_POINTS)


@dataclass(frozen=True, kw_only=True)
class TxnRun(Record):
    """A TxnCluster's run (see `TxnCluster.result`): node names, protocol, each
    transaction's record and outcome, balances, stats, message counts, the
    nodes up, who is in doubt and what is unsettled at the end."""

    names: list[str]
    protocol: str
    records: list[tuple]
    outcomes: dict[str, str]
    balances: dict[str, int]
    stats: dict[str, Any]
    messages: dict[str, dict[str, int]]
    up: list[str]
    in_doubt: list[tuple[str, str]]
    unsettled: list


@dataclass(frozen=True, kw_only=True)
class TxnStory(TxnRun):
    """`txn_story`'s data: the transfer's id, what each participant knew at
    time `look` ("during") and who was in doubt then, what each knows at the
    end ("views"), the outcome and a headline."""

    txn: str
    during: dict[str, str]
    doubt: list[str]
    look: float
    views: dict[str, str]
    outcome: str
    headline: str


@dataclass(frozen=True, kw_only=True)
class BlockingWindow(TxnRun):
    """`blocking_window`'s data: commits per second touching the hot row and
    the rest, the victim transfer's outcome, the hot row's longest lock hold,
    the coordinator's outage (start, end) and a headline."""

    hot: TimeSeries
    rest: TimeSeries
    victim: str
    hot_hold: float = keyed("hot hold (s)")
    window: tuple[float, float]
    headline: str


@dataclass(frozen=True, kw_only=True)
class Audit(TxnRun):
    """`audit_run`'s data: the totals the auditor read, how many reads and how
    many of them were wrong, the lowest total seen, the true total, whether
    everything settled and the total once settled."""

    totals: TimeSeries
    reads: int
    anomalies: int
    lowest: int
    expected: int
    settled: bool
    final_total: int = keyed("final total")


@dataclass(frozen=True, kw_only=True)
class TxnPlayground(TxnRun):
    """`txn_playground`'s data: t1's id, views and outcome, the commit rate of
    the random transfers, and a headline."""

    txn: str
    views: dict[str, str]
    outcome: str
    rate: TimeSeries
    headline: str


@dataclass(frozen=True, kw_only=True)
class Outcomes(Record):
    """`client_outcomes`' data: per protocol, the share of outcomes the client
    knows over time ("known"), and one row per protocol."""

    known: dict[str, TimeSeries]
    rows: list[dict[str, Any]]


def _txn_result(c: txn.TxnCluster, scenario: str, record: type[TxnRun],
                fields: dict[str, Any], **params: Any) -> Result:
    """The cluster's Result, its data a `record` of what `TxnCluster.result`
    holds plus `fields`."""
    result = c.result(scenario, **params)
    return with_data(result, record(**result.data, **fields))


def _txn_cluster(seed: int, protocol: str, participants: int, crash: str,
                 down: float | None, **knobs: Any) -> txn.TxnCluster:
    """A TxnCluster with the story's crash armed for its first transaction:
    coordinator points on the coordinator (n1, or "tm"), participant points on
    n2; the crashed node restarts `down` seconds later (never if None)."""
    if crash not in TXN_CRASHES:
        raise ConfigError(f"crash must be one of {TXN_CRASHES}, got {crash!r}")
    c = txn.TxnCluster(protocol, participants, seed=seed, **knobs)
    if crash != "none":
        separate = c.config.coordinator == "separate"
        node = (txn.TM if separate else "n1") if crash.startswith("coordinator") \
            else "n2"
        c.crash_at(crash, node=node, txn="t1", restart_after=down)
    return c


def _fan_out(c: txn.TxnCluster, amount: int = 10) -> str:
    """n1 pays `amount` to the first account of every other participant."""
    others = c.participants[1:]
    return c.submit([("n1.0", -amount * len(others))] +
                    [(f"{p}.0", amount) for p in others])


@checked
def txn_story(seed: int = 1, *, protocol: str = "2pc", participants: int = 3,
              coordinator: str = "colocated", crash: str = "none",
              down: float | None = 1.0, fail_step: int | None = None,
              fsync: float = 0.002, latency: float = 0.010, loss: float = 0.0,
              timeout: float = 0.1, ttl: float = 1.0,
              duration: float = 2.0) -> Result:
    """One transfer from n1 to every other participant, with an optional crash
    (see `_txn_cluster`). data.during: what each participant knew halfway
    through the outage (or at 0.5 s with no crash), data.doubt who was in
    doubt then, data.views what they know at the end, data.outcome.
    fail_step: the saga step (0 to participants - 1) every participant refuses."""
    if fail_step is not None:
        if protocol != "saga":
            raise ConfigError(f"fail_step applies to protocol='saga' only, got "
                              f"{protocol!r}")
        require_int("fail_step", fail_step, minimum=0,
                    maximum=require_int("participants", participants, minimum=2) - 1)
    c = _txn_cluster(seed, protocol, participants, crash, down,
                     coordinator=coordinator, fail_step=fail_step, fsync=fsync,
                     timeout=timeout, ttl=ttl,
                     net=NetConfig(latency=latency, loss=loss))
    t = _fan_out(c)
    look = min(duration, 0.5 if crash == "none" or down is None else 0.05 + down / 2)
    c.run(look)
    during, doubt = c.views(t), [node for _, node in c.in_doubt()]
    c.run(duration - look)
    outcome = c.outcome(t)
    return _txn_result(c, "txn_story", TxnStory, {
        "txn": t, "during": during, "doubt": doubt, "look": look,
        "views": c.views(t), "outcome": outcome,
        "headline": f"{protocol}, crash: {crash} → {outcome}"},
        seed=seed, protocol=protocol, participants=participants,
        coordinator=coordinator, crash=crash, down=down, fail_step=fail_step,
        fsync=fsync, latency=latency, loss=loss, timeout=timeout, ttl=ttl,
        duration=duration)


@checked
def blocking_window(seed: int = 1, *, protocol: str = "2pc", down: float = 2.0,
                    rate: float = 60.0, contention: float = 0.5,
                    duration: float = 5.0, width: float = 0.25) -> Result:
    """Three participants of 10 accounts each take random transfers, half of
    them crediting the hot account n1.0. At t = 1 s a transfer n2.1 → n1.0
    (coordinated by n2) gets every yes vote and n2 crashes before deciding; it
    is back `down` s later.
    data: commits per second over time for transfers touching the hot row and
    for the rest, the hot row's longest lock hold, the victim's outcome."""
    c = txn.TxnCluster(protocol, 3, seed=seed, accounts=10, balance=10_000,
                       net=NetConfig(latency=0.005), trace=False)
    c.workload(rate=rate, duration=duration, contention=contention)
    c.run(1.0)
    victim = c.transfer("n2.1", "n1.0", 5)
    c.crash_at("coordinator.after_votes", txn=victim, restart_after=down)
    c.run(duration - 1.0)
    records = [dataclasses.astuple(r) for r in c.client.records.values()]
    hot = txn.commit_rate(records, end=duration, width=width, touching="n1.0")
    rest = txn.commit_rate(records, end=duration, width=width, avoiding="n1.0")
    hold = c.sim.metrics.histogram("lock.hold:n1.0")
    longest = float(max(hold.values)) if hold.count else 0.0
    return _txn_result(c, "blocking_window", BlockingWindow, {
        "hot": hot, "rest": rest, "victim": c.outcome(victim),
        "hot_hold": longest, "window": (1.0, 1.0 + down),
        "headline": f"{protocol}: hot row held {longest:.2f} s at most"},
        seed=seed, protocol=protocol, down=down, rate=rate,
        contention=contention, duration=duration, width=width)


@checked
def audit_run(seed: int = 3, *, protocol: str = "saga", rate: float = 40.0,
              contention: float = 0.2, duration: float = 4.0,
              every: float = 0.1) -> Result:
    """Random transfers while an auditor reads every balance each `every`
    seconds under short shared leases: data.totals is the series of the
    totals it saw, data.anomalies how many differed from the true total."""
    c = txn.TxnCluster(protocol, 3, seed=seed, balance=1000, audit_every=every,
                       read_lease=0.02, net=NetConfig(latency=0.005), trace=False)
    c.workload(rate=rate, duration=duration, contention=contention)
    c.run(duration)
    left = c.settle(1.0)
    m = c.sim.metrics
    totals = m.series("audit.total")
    return _txn_result(c, "audit_run", Audit, {
        "totals": totals, "reads": m.counter("audit.reads").value,
        "anomalies": m.counter("audit.anomalies").value,
        "lowest": min(totals.values, default=c.initial_total),
        "expected": c.initial_total, "settled": not left,
        "final_total": c.total()},
        seed=seed, protocol=protocol, rate=rate, contention=contention,
        duration=duration, every=every)


@checked
def contention_sweep(seed: int = 2, *,
                     protocols: Sequence[str] = ("2pc", "paxos_commit", "saga",
                                                 "tcc"),
                     contentions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                     rate: float = 80.0, duration: float = 3.0) -> Result:
    """Every protocol at every contention level (share of transfers crediting
    one hot account; 30 accounts in all), same seed: committed transfers per
    second, abort rate and latency. data.rows: one dict per (protocol,
    contention)."""
    rate = require_number("rate", rate, positive=True)
    duration = require_number("duration", duration, positive=True)
    protocols = require_items("protocols", protocols, "protocol")
    contentions = require_items("contentions", contentions, "contention level")
    rows = []
    for protocol in protocols:
        for level in contentions:
            c = txn.TxnCluster(protocol, 3, seed=seed, accounts=10,
                               balance=10_000, net=NetConfig(latency=0.005),
                               trace=False)
            c.workload(rate=rate, duration=duration, contention=level)
            c.run(duration)
            c.settle(1.0)
            s = c.stats()
            rows.append({"protocol": protocol, "contention": level,
                         "commits/s": s["committed"] / duration,
                         "abort rate": s["abort rate"],
                         "mean latency (ms)": s["mean latency (ms)"],
                         "p99 latency (ms)": s["p99 latency (ms)"],
                         "messages per txn": s["messages per txn"]})
    return Result("contention_sweep", {"protocols": tuple(protocols),
                                       "contentions": tuple(contentions),
                                       "rate": rate, "duration": duration},
                  seed, Metrics(), data=Table(rows=rows))


def _txn_faults(c: txn.TxnCluster, duration: float, mean_gap: float) -> None:
    """For the next `duration` seconds, after each exponential gap of mean
    `mean_gap`, one random fault: kill or restart a node, cut the nodes in two,
    heal the cuts, or set the message loss to 0, 5 % or 20 %."""
    rng, end = c.sim.rng("txn.faults"), c.now + duration

    def fault() -> None:
        if c.now >= end:
            return
        up, down = c.up(), [n for n in c.names if not c.is_up(n)]
        verb = rng.choice(["partition", "heal", "loss"] + ["kill"] * bool(up)
                          + ["restart"] * bool(down))
        if verb in ("kill", "restart"):
            getattr(c, verb)(rng.choice(up if verb == "kill" else down))
        elif verb == "partition":
            names = rng.sample(c.names, len(c.names))
            cut = rng.randint(1, len(names) - 1)
            c.partition(names[:cut], names[cut:])
        elif verb == "heal":
            c.heal()
        else:
            c.network.update(loss=rng.choice((0.0, 0.05, 0.2)))
        c.sim.schedule(rng.expovariate(1 / mean_gap), fault)
    c.sim.schedule(rng.expovariate(1 / mean_gap), fault)


def _sample_known(c: txn.TxnCluster, series: TimeSeries, until: float,
                  width: float) -> None:
    """Run `c` until time `until`, adding the share of outcomes its client knows
    to `series` every `width` seconds."""
    while c.now < until - 1e-9:
        c.run(min(width, until - c.now))
        series.add(round(c.now, 9), c.outcome_known())


@checked
def client_outcomes(seed: int = 1, *,
                    protocols: Sequence[str] = ("2pc", "paxos_commit", "saga", "tcc"),
                    faults: float = 3.0, heal: float = 2.0, rate: float = 40.0,
                    width: float = 0.25) -> Result:
    """Does the client learn how each transaction ended? Random transfers on
    four participants at `rate` per second under random crashes, partitions
    and loss (`_txn_faults`) for `faults` seconds; then every fault heals and
    the cluster runs `heal` seconds more while clients ask about what they
    missed. data.known: per protocol, the share of transactions whose
    outcome the client knows every `width` seconds; data.rows: that share
    when the faults stop and after the heal, and whether every outcome the
    client knows then is the one the system reached."""
    faults = require_number("faults", faults, positive=True)
    heal = require_number("heal", heal, positive=True)
    width = require_number("width", width, positive=True)
    protocols = require_items("protocols", protocols, "protocol")
    known, rows = {}, []
    for protocol in protocols:
        c = txn.TxnCluster(protocol, 4, seed=seed, fsync=0.002, trace=False,
                           net=NetConfig(latency=dist.uniform(0.002, 0.02),
                                         duplicate=0.05))
        c.workload(rate=rate, duration=faults)
        _txn_faults(c, faults, mean_gap=0.3)
        series = known[protocol] = TimeSeries(protocol)
        _sample_known(c, series, faults, width)
        stopped = c.outcome_known()
        c.settle(0.0)                               # heal, restart all, no loss
        _sample_known(c, series, faults + heal, width)
        told = {t: r.outcome for t, r in c.client.records.items()}
        rows.append({"protocol": protocol, "transactions": len(told),
                     "when the faults stop": stopped,
                     "after the heal": c.outcome_known(),
                     "told what happened": told == c.outcomes()})
    return Result("client_outcomes", {"protocols": tuple(protocols),
                                      "faults": faults, "heal": heal, "rate": rate,
                                      "width": width},
                  seed, Metrics(), data=Outcomes(known=known, rows=rows))


@checked
def txn_playground(seed: int = 1, *, protocol: str = "2pc", crash: str = "none",
                   participants: int = 3, loss: float = 0.0,
                   contention: float = 0.5, rate: float = 30.0,
                   duration: float = 2.0) -> Result:
    """The notebook 06 playground: transfer t1 from n1 to every other
    participant, with `crash` placed in it (the node is back after 1 s); from
    t = 1.5 s, random transfers at `rate` per second with `contention`, for
    `duration` s; the network loses `loss` of messages throughout. data: t1's
    views and outcome, the commit rate."""
    c = _txn_cluster(seed, protocol, participants, crash, 1.0, accounts=10,
                     balance=1000, fsync=0.002,
                     net=NetConfig(latency=0.010, loss=loss))
    t = _fan_out(c)
    c.run(1.5)
    c.workload(rate=rate, duration=duration, contention=contention)
    c.run(duration)
    records = [dataclasses.astuple(r) for r in c.client.records.values()]
    s = c.stats()
    return _txn_result(c, "txn_playground", TxnPlayground, {
        "txn": t, "views": c.views(t), "outcome": c.outcome(t),
        "rate": txn.commit_rate(records, end=1.5 + duration, width=0.25),
        "headline": f"t1 {c.outcome(t)} · {s['committed']} of {s['submitted']} "
                    f"committed, abort rate {s['abort rate']:.0%}, mean "
                    f"latency {s['mean latency (ms)']:.0f} ms"},
        seed=seed, protocol=protocol, crash=crash, participants=participants,
        loss=loss, contention=contention, rate=rate, duration=duration)
