"""Scenarios of notebook 04, Paxos: the single-decree stories (a crash of
acceptors, of a proposer), duelling proposers and the randomised backoff that
ends the duel, the playground, and what a decision costs in basic and
Multi-Paxos. The notebook ends by putting Multi-Paxos beside Raft on the same
network (`leader_failover`, `log_comparison`), so this module also builds
Raft clusters (`labkit.raft`, not notebook 05's scenarios).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from labkit import dist, paxos, raft
from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_items,
    require_number,
)
from labkit.metrics import Histogram, Metrics, Record, Result
from labkit.net import NetConfig
from labkit.node import Cluster

from .common import Table, failover_size, with_data

#: One-way latency of the Paxos stories: a round trip is 20 ms.
PAXOS_LATENCY = 0.010
#: The playground's one-way latency, drawn per message: the same 10 ms on
#: average, but with jitter, so that each seed gives its own run.
PLAYGROUND_LATENCY = dist.uniform(0.005, 0.015)
#: The single-decree stories `paxos_story` tells, with what each shows.
PAXOS_STORIES = MappingProxyType({
    "normal": "one proposer, no faults: two round trips",
    "acceptor crash": "a1-a3 crash after promising; a1 restarts at 100 ms",
    "proposer crash": "p1's accepts reach only a1, a2; p1 crashes; p2 takes over",
})


@dataclass(frozen=True, kw_only=True)
class PaxosRun(Record):
    """A single-decree run: message counts by kind, the nodes up and the cuts at
    the end, node names, the value chosen (None: nothing) and when, the ballots
    started, and a headline."""

    messages: dict[str, dict[str, int]]
    up: list[str]
    cuts: str
    names: list[str]
    chosen: Any
    chosen_at: float | None
    ballots: int
    headline: str


@dataclass(frozen=True, kw_only=True)
class BackoffSweep(Record):
    """`backoff_sweep`'s data, each {backoff high end: value}: mean seconds to
    a choice in the duel and alone on a lossy network, and the share of duels
    that chose nothing."""

    duel: dict[float, float]
    loss: dict[float, float]
    stuck: dict[float, float]


@dataclass(frozen=True, kw_only=True)
class Failover(Record):
    """`leader_failover`'s data: seconds without a leader after each crash."""

    gaps: Histogram


def _paxos(seed: int, acceptors: int = 5, proposers: int = 1, *, loss: float = 0.0,
           latency: float | dist.Distribution = PAXOS_LATENCY,
           **settings: Any) -> paxos.PaxosCluster:
    return paxos.PaxosCluster(acceptors, proposers, seed=seed,
                              net=NetConfig(latency=latency, loss=loss), **settings)


@checked
def paxos_result(cluster: paxos.PaxosCluster, scenario: str,
                 **params: Any) -> Result:
    """The cluster's Result with the ballots started and the messages sent in the
    headline."""
    result = cluster.result(scenario, **params)
    ballots = cluster.sim.metrics.counter("paxos.ballots").value
    headline = (f"{result.data['headline']} · {ballots} ballot"
                f"{'s' if ballots != 1 else ''} · {cluster.messages_sent} messages")
    return with_data(result, PaxosRun(**{**result.data, "headline": headline},
                                      ballots=ballots))


@checked
def paxos_story(seed: int = 0, *, story: str = "normal") -> Result:
    """One of `PAXOS_STORIES` on five acceptors and a 10 ms network, run for
    0.35 s (p1 proposes "x" at 0; in the proposer story p2 proposes "y" at 50 ms)."""
    if story not in PAXOS_STORIES:
        raise ConfigError(f"story must be one of {list(PAXOS_STORIES)}, got "
                          f"{story!r}")
    c = _paxos(seed, proposers=2 if story == "proposer crash" else 1)
    c.propose("x", proposer="p1")
    if story == "acceptor crash":
        c.sim.at(0.015, lambda: [c.kill(a) for a in ("a1", "a2", "a3")])
        c.sim.at(0.100, c.restart, "a1")
    elif story == "proposer crash":
        c.sim.at(0.015, lambda: [c.network.block("p1", a) for a in ("a3", "a4",
                                                                    "a5")])
        c.sim.at(0.025, c.kill, "p1")
        c.sim.at(0.050, c.propose, "y", "p2")
    c.run(0.35)
    return paxos_result(c, "paxos_story", story=story)


@checked
def paxos_duel(seed: int = 1, *, backoff: float = 0.0, leader: bool = False,
               duration: float = 1.0, slow_accepts: float = 0.040) -> Result:
    """Two proposers under the adversarial schedule of Paxos Made Simple §2.4:
    accept messages spend `slow_accepts` s more in flight, p1 proposes "x" at 0
    and p2 "y" at 40 ms, so each new prepare lands just before the other's
    accepts. `backoff` is the high end of the random wait before a retry;
    `leader` lets only a distinguished proposer start ballots."""
    c = _paxos(seed, proposers=2, backoff=(0.0, require_number(
        "backoff", backoff, minimum=0.0)), timeout=1.0, leader=leader)
    c.delay("accept", slow_accepts)
    c.propose("x", proposer="p1")
    c.sim.at(0.040, c.propose, "y", "p2")
    c.run(require_number("duration", duration, positive=True))
    return paxos_result(c, "paxos_duel", backoff=backoff, leader=leader,
                        duration=duration, slow_accepts=slow_accepts)


@checked
def backoff_sweep(seed: int = 1, *, highs: Sequence[float] = (0.0, 0.01, 0.02, 0.05,
                                                              0.1, 0.2, 0.5, 1.0),
                  trials: int = 20, horizon: float = 5.0) -> Result:
    """Mean time until a value is chosen against the backoff range (0, high), in
    two settings: the duel of `paxos_duel`, and one proposer alone on a network
    that loses 20 % of messages (each lost round waits a 0.2 s timeout plus the
    backoff). A run that chooses nothing within `horizon` s counts as `horizon`.
    data.duel, data.loss: {high: mean seconds}; data.stuck: {high:
    share of duels with nothing chosen}."""
    trials = require_int("trials", trials, minimum=1)
    horizon = require_number("horizon", horizon, positive=True)
    highs = require_items("highs", highs, "backoff range")
    duel, lossy, stuck = {}, {}, {}
    for high in highs:
        times = {"duel": [], "loss": []}
        for trial in range(trials):
            run = paxos_duel(seed + trial, backoff=high, duration=horizon)
            times["duel"].append(run.data.chosen_at)
            alone = _paxos(seed + trial, loss=0.2, backoff=(0.0, high), timeout=0.2)
            alone.propose("x")
            alone.run(horizon)
            times["loss"].append(alone.chosen_at())
        duel[high] = float(np.mean([horizon if t is None else t
                                    for t in times["duel"]]))
        lossy[high] = float(np.mean([horizon if t is None else t
                                     for t in times["loss"]]))
        stuck[high] = sum(t is None for t in times["duel"]) / trials
    return Result("backoff_sweep", {"highs": tuple(highs), "trials": trials,
                                    "horizon": horizon}, seed, Metrics(),
                  data=BackoffSweep(duel=duel, loss=lossy, stuck=stuck))


@checked
def paxos_playground(seed: int = 0, *, acceptors: int = 5, proposers: int = 2,
                     loss: float = 0.0, backoff: float = 0.05,
                     down: Iterable[int] = (), leader: bool = False,
                     duration: float = 0.5) -> Result:
    """Proposer p_i proposes "v_i" at (i - 1) · 5 ms; the acceptors listed in
    `down` (0-based: 0 is a1) crash at 15 ms, after promising; run `duration` s.
    Messages take 5-15 ms (PLAYGROUND_LATENCY), so the seed matters even with
    no loss: it decides who hears whom first."""
    c = _paxos(seed, acceptors, proposers, loss=loss, leader=leader,
               latency=PLAYGROUND_LATENCY,
               backoff=(0.0, require_number("backoff", backoff, minimum=0.0)),
               timeout=0.1)
    down = sorted(set(down))
    if any(i not in range(acceptors) for i in down):
        raise ConfigError(f"down lists acceptors 0..{acceptors - 1}, got {down}")
    for i, name in enumerate(c.proposers):
        c.sim.at(0.005 * i, c.propose, f"v{i + 1}", name)
    for i in down:
        c.sim.at(0.015, c.kill, c.acceptors[i])
    c.run(require_number("duration", duration, positive=True))
    return paxos_result(c, "paxos_playground", acceptors=acceptors,
                        proposers=proposers, loss=loss, backoff=backoff,
                        down=tuple(down), leader=leader, duration=duration)


@checked
def paxos_costs(seed: int = 1, *, acceptors: int = 5, commands: int = 20) -> Result:
    """Messages and delay per decision on a fault-free 10 ms network: one basic
    Paxos instance (one proposer, n acceptors), and `commands` commands through a
    stable Multi-Paxos leader of n servers, plus the election that made it.
    data.rows: one per protocol, counted from the network journal."""
    n = require_int("acceptors", acceptors, minimum=1)
    commands = require_int("commands", commands, minimum=1)
    basic = _paxos(seed, n)
    basic.propose("x")
    basic.run(1.0)
    phases = ("prepare", "promise", "accept", "accepted")
    rtt = 2 * PAXOS_LATENCY
    log = paxos.MultiPaxosCluster(n, seed=seed, net=NetConfig(latency=PAXOS_LATENCY))
    log.run(1.0)
    start = log.now
    for i in range(commands):
        log.submit(f"cmd{i}")
    log.run(1.0)
    journal = log.result()
    rows = [
        {"protocol": "basic Paxos, one value", "messages": paxos.count_messages(
            basic.result(), phases), "round trips": float(
            basic.sim.metrics["paxos.decide"].mean / rtt)},
        {"protocol": "Multi-Paxos, per command", "messages": paxos.count_messages(
            journal, ("accept", "accepted"), since=start) / commands,
         "round trips": float(log.sim.metrics["multipaxos.commit"].mean / rtt)},
        {"protocol": "Multi-Paxos, electing a leader", "messages":
            paxos.count_messages(journal, ("prepare", "promise")),
         "round trips": float(log.sim.metrics["multipaxos.phase1"].mean / rtt)},
    ]
    return Result("paxos_costs", {"acceptors": n, "commands": commands}, seed,
                  Metrics(), data=Table(rows=rows))


#: The replicated logs `leader_failover` and `log_comparison` can run.
LOG_PROTOCOLS = ("multipaxos", "raft")


def _log_cluster(protocol: str, seed: int, size: int,
                 election_timeout: tuple[float, float]) -> Cluster:
    """A Multi-Paxos or Raft cluster (same interface: leader, submit, applied) on
    the 10 ms network of the Paxos stories, 50 ms heartbeats."""
    if protocol not in LOG_PROTOCOLS:
        raise ConfigError(f"protocol must be one of {LOG_PROTOCOLS}, got "
                          f"{protocol!r}")
    net = NetConfig(latency=PAXOS_LATENCY)
    if protocol == "raft":
        return raft.RaftCluster(size, seed=seed, election_timeout=election_timeout,
                                net=net)
    return paxos.MultiPaxosCluster(size, seed=seed, election_timeout=election_timeout,
                                   net=net)


def _until(cluster: Cluster, done: Any, limit: float = 10.0) -> float:
    """Run in 0.1 ms steps until done() holds (at most `limit` s): the time taken."""
    start = cluster.now
    while not done() and cluster.now - start < limit:
        cluster.run(0.0001)
    return cluster.now - start


@checked
def leader_failover(seed: int = 1, *, protocol: str = "multipaxos",
                    election_timeout: tuple[float, float] = (0.150, 0.300),
                    trials: int = 20, size: int = 5) -> Result:
    """Kill a stable leader `trials` times (at a random moment of its heartbeat
    interval) and measure how long the log has no leader (polled every 0.1 ms).
    data.gaps: a Histogram of seconds."""
    trials = require_int("trials", trials, minimum=1)
    size = failover_size("size", size)
    gaps = Histogram("leaderless")
    for trial in range(trials):
        c = _log_cluster(protocol, seed + trial, size, election_timeout)
        c.run(1.0 + c.sim.rng("failover").uniform(0.0, 0.050))
        c.kill(c.leader())
        gaps.add(_until(c, lambda c=c: c.leader() is not None))
    return Result("leader_failover", {"protocol": protocol, "election_timeout":
                                      tuple(election_timeout), "trials": trials,
                                      "size": size}, seed, Metrics(),
                  data=Failover(gaps=gaps))


@checked
def log_comparison(seed: int = 1, *, size: int = 5, commands: int = 20,
                   every: float = 0.050, trials: int = 20) -> Result:
    """Multi-Paxos and Raft on the same network: messages and latency per command
    (one command every `every` s through a stable leader; messages beyond what
    the idle cluster sends in as long) and the time without a leader after the
    leader crashes (`leader_failover`). data.rows: one per protocol."""
    commands = require_int("commands", commands, minimum=1)
    size = failover_size("size", size)
    rows = []
    for protocol in LOG_PROTOCOLS:
        c = _log_cluster(protocol, seed, size, (0.150, 0.300))
        c.run(1.0)
        idle = c.messages_sent
        c.run(commands * every)
        idle, start, waits = c.messages_sent - idle, c.messages_sent, []
        begin = c.now
        for i in range(commands):
            leader = c.leader()
            c.submit(f"cmd{i}")
            waits.append(_until(c, lambda c=c, i=i, leader=leader:
                                f"cmd{i}" in c.applied(leader)))
            c.run(begin + (i + 1) * every - c.now)
        gaps = leader_failover(seed, protocol=protocol, trials=trials,
                               size=size).data.gaps
        rows.append({"protocol": protocol,
                     "messages per command": (c.messages_sent - start - idle)
                     / commands,
                     "latency per command (ms)": 1e3 * float(np.mean(waits)),
                     "leaderless after a crash, mean (ms)": 1e3 * gaps.mean,
                     "leaderless, worst (ms)": 1e3 * gaps.max})
    return Result("log_comparison", {"size": size, "commands": commands,
                                     "every": every, "trials": trials}, seed,
                  Metrics(), data=Table(rows=rows))
