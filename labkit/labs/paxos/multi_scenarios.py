"""The Paxos lab's graded scenarios for part `multi`: a Multi-Paxos log under
a stable leader, leader crashes, holes, partitions, an unreliable network,
an acceptor whose p2b arrives twice, crashes and restarts, a deposed leader,
a p1b of an earlier ballot that arrives late, p1b reporting two values for a
slot, acceptors that crash right after promising, an acceptance made
without a promise, and a p2b of a leader's earlier ballot that arrives late,
on a network with 5-15 ms of jitter.

Each runs the student's replicas in a `MultiPaxosCluster`, whose referee
(`multi_base.MultiReferee`) checks safety at every message and every applied
command. A scenario adds what the referee cannot see: key-value clients whose
history must be linearizable (`labkit.check.linearizable`), progress once the
faults heal, phase 1 only once per leadership change (p1a messages counted
on the wire), and a leader that steps down once the acceptors refuse it. All
randomness comes from the cluster's seeded streams, so `lk.labs.replay`
replays a run exactly.
"""

from __future__ import annotations

from typing import Any

from labkit import dist
from labkit.check import Op, linearizable
from labkit.net import NetConfig
from labkit.paxos import MultiPaxosCluster

from ..lab import Failed, Trial
from .multi_base import MultiReferee

LATENCY = dist.uniform(0.005, 0.015)
KEYS = ("x", "y")


def start(t: Trial, size: int = 5,
          election_timeout: tuple[float, float] = (0.150, 0.300),
          **net: Any) -> MultiPaxosCluster:
    """The student's replicas on a jittery network, 150-300 ms election timeout
    (unless told), 50 ms heartbeats."""
    return t.watch(MultiPaxosCluster(size, seed=t.seed, node=t.impl,
                                     election_timeout=election_timeout,
                                     net=NetConfig(latency=LATENCY, **net)))


def referee(c: MultiPaxosCluster) -> MultiReferee:
    return c.node(c.names[0]).referee


def one_leader(c: MultiPaxosCluster, within: float = 2.0,
               other_than: str | None = None) -> str:
    """Run until the cluster has a leader (not `other_than`); its name."""
    end = c.now + within
    while c.leader() in (None, other_than):
        if c.now >= end:
            raise Failed(f"no leader within {within:g} s with a majority up and "
                         "connected: a follower whose election timer fires runs "
                         "phase 1 with a new ballot and leads once a majority "
                         "promised it")
        c.run(0.01)
    return c.leader()


class Clients:
    """Key-value clients driven by the scenario: each sends one operation at a
    time to the current leader (`submit`), retries it with the same id every
    0.3 s until some server applied it, and records when it was called and
    first applied. Reads go through the log too."""

    def __init__(self, c: MultiPaxosCluster, count: int, until: float):
        self.c, self.until, self.rng = c, until, c.sim.rng("lab.clients")
        self.ops: list[dict] = []
        for i in range(count):
            c.sim.schedule(0.001 * i, self._next, f"c{i + 1}", 1)

    def _next(self, client: str, n: int) -> None:
        if self.c.now >= self.until:
            return
        kind = self.rng.choice(("put", "append", "get"))
        key = self.rng.choice(KEYS)
        value = f"{client}.{n}" if kind != "get" else None
        op = {"client": client, "kind": kind, "key": key, "value": value,
              "call": self.c.now, "id": f"{client}.{n}", "n": n}
        self.ops.append(op)
        self._send(op)

    def _send(self, op: dict) -> None:
        c = self.c
        leader = c.leader()
        if leader is not None:
            c.submit((op["id"], op["kind"], op["key"], op["value"]), node=leader)
        op["sent"] = c.now
        c.sim.schedule(0.01, self._poll, op)

    def _poll(self, op: dict) -> None:
        answer = referee(self.c).outputs.get(op["id"])
        if answer is not None:
            op["ret"], op["output"] = answer
            self.c.sim.schedule(self.rng.uniform(0.0, 0.02), self._next,
                                op["client"], op["n"] + 1)
        elif self.c.now - op["sent"] >= 0.3:
            self._send(op)
        else:
            self.c.sim.schedule(0.01, self._poll, op)

    def pending(self) -> int:
        return sum("ret" not in op for op in self.ops)

    def history(self) -> list[Op]:
        return [Op(op["client"], op["kind"], op["key"], op["value"],
                   op.get("output"), op["call"], op.get("ret")) for op in self.ops]


def settle(c: MultiPaxosCluster, clients: Clients | None = None,
           within: float = 3.0) -> None:
    """Heal every fault and restart every server; then every client operation
    must complete and every server apply the same log, within `within` s."""
    c.heal()
    c.network.update(loss=0.0, duplicate=0.0, reorder=0.0)
    for n in c.names:
        c.restart(n)
    end = c.now + within
    while not caught_up(c, clients):
        if c.now >= end:
            raise Failed(stalled(c, clients, within))
        c.run(0.02)
    c.check()
    if clients is not None:
        verdict = linearizable(clients.history())
        if not verdict.ok:
            raise Failed("the key-value history is not linearizable: "
                         + "; ".join(verdict.explain().splitlines()))


def caught_up(c: MultiPaxosCluster, clients: Clients | None) -> bool:
    if clients is not None and clients.pending():
        return False
    top = max(referee(c).chosen, default=0)
    return c.leader() is not None and all(
        c.node(n).applied_slot >= top for n in c.names)


def stalled(c: MultiPaxosCluster, clients: Clients | None, within: float) -> str:
    """Why the log did not catch up, in plain words."""
    chosen = referee(c).chosen
    proposed = max((slot for _, slot in referee(c).values), default=0)
    hole = next((s for s in range(1, proposed + 1) if s not in chosen), None)
    applied = ", ".join(f"{n}: {c.node(n).applied_slot}" for n in c.names)
    waiting = f"{clients.pending()} client operations never completed; " \
        if clients is not None and clients.pending() else ""
    if hole is not None and hole < proposed:
        why = (f"slot {hole} was never chosen, though slots up to {proposed} were "
               "proposed, so no server can apply past it: a new leader must "
               "propose, for every open slot below its next slot, the value the "
               "promises report or else a no-op (NOOP)")
    elif c.leader() is None:
        why = "there is no leader: a follower must run phase 1 when its timer fires"
    else:
        why = ("a server did not apply every chosen slot: apply_chosen must apply "
               "slots in order as they become known, and heartbeats carry what a "
               "follower lacks")
    return (f"{within:g} s after healing every fault, {waiting}slots applied: "
            f"{applied}; {why}")


def stable_leader(t: Trial) -> None:
    """Five servers, no faults: the leader idles for 0.6 s (heartbeats only),
    then three clients run for 2 s: every command completes, and phase 1 runs
    once, not once per command, nor when a follower that hears heartbeats
    times out (on_heartbeat follows the leader: that re-arms its timer)."""
    c = start(t)
    one_leader(c)
    c.run(0.1)
    before = len(referee(c).phase1)
    c.run(0.5)
    idle = sorted({b for _, b, _ in referee(c).phase1[before:]})
    if idle:
        raise Failed(f"phase 1 ran again (p1a in ballots {idle}) while the leader "
                     "was idle with no fault, sending only heartbeats: a follower "
                     "that hears its leader's heartbeat re-arms its election timer "
                     "(on_heartbeat calls follow)")
    clients = Clients(c, 3, until=c.now + 2.0)
    c.run(2.0)
    ballots = sorted({b for _, b, _ in referee(c).phase1[before:]})
    done = len(clients.ops) - clients.pending()
    if ballots:
        raise Failed(f"phase 1 ran again (p1a in ballots {ballots}, "
                     f"{len(referee(c).phase1) - before} messages) while one leader "
                     f"served {done} commands with no fault: a stable leader runs "
                     "phase 1 once for every slot and then only phase 2 per command")
    settle(c, clients)
    if done < 30:
        raise Failed(f"only {done} commands completed in 2 s with a stable leader; "
                     "each should take one round trip (about 20 ms)")


def leader_crash(t: Trial) -> None:
    """Three times: the leader crashes the moment its command is chosen, before
    anyone else knows; the next leader must keep that command."""
    c = start(t)
    clients = Clients(c, 2, until=3.0)
    for round in range(3):
        leader = one_leader(c)
        c.run(0.1)
        slot = c.submit(f"cmd{round}", node=leader)
        end = c.now + 0.5
        while slot is not None and slot not in referee(c).chosen and c.now < end:
            c.run(0.001)
        c.kill(leader)
        one_leader(c)
        c.run(0.2)
        c.restart(leader)
    settle(c, clients)


def holes(t: Trial) -> None:
    """The leader proposes a command only it accepts, then one everyone accepts,
    and crashes: the next leader must fill the hole with a no-op."""
    c = start(t)
    for round in range(2):
        leader = one_leader(c)
        c.run(0.1)
        for other in c.names:
            if other != leader:
                c.network.block(leader, other)
        c.submit(f"lost{round}", node=leader)
        c.heal()
        c.submit(f"kept{round}", node=leader)
        c.kill(leader)
        one_leader(c)
        c.submit(f"after{round}")
        c.run(0.3)
        c.restart(leader)
    settle(c)


def partitions(t: Trial) -> None:
    """Three clients; every 0.8 s the servers split two against three at random,
    and 5% of messages are lost: the history is linearizable."""
    c = start(t, loss=0.05)
    rng = c.sim.rng("lab.partitions")
    one_leader(c)
    clients = Clients(c, 3, until=c.now + 3.2)
    for _ in range(4):
        names = c.names
        rng.shuffle(names)
        c.partition(names[:2], names[2:])
        c.run(0.8)
    settle(c, clients)


def unreliable_log(t: Trial) -> None:
    """Three clients on a network that loses, duplicates and reorders 15% of
    messages: the history is linearizable."""
    c = start(t, loss=0.15, duplicate=0.15, reorder=0.15)
    one_leader(c, 4.0)
    clients = Clients(c, 3, until=c.now + 2.5)
    c.run(2.5)
    settle(c, clients)


def duplicated_acks(t: Trial) -> None:
    """A stable leader's commands: one acceptor's p2b to the leader always
    arrives twice, and the leader's p2a to the other three servers 80 ms late.
    The leader must count each acceptor's p2b once, so it learns a command only
    when a third acceptor has accepted it; then the faults heal."""
    c = start(t)
    net, leader = c.network, one_leader(c)
    c.run(0.1)
    acker = next(n for n in c.names if n != leader)
    net.set_link(acker, leader, duplicate=1.0)
    # 80 ms, below the 150 ms election timeout: links are FIFO, so the
    # heartbeats behind a late p2a are late too, and must not depose the leader
    net.adversary = lambda msg: 0.08 if (
        msg.kind == "p2a" and msg.src == leader
        and msg.dst not in (leader, acker)) else 0.0
    for command in ("x", "y", "z"):
        c.submit(command, node=leader)
        c.run(0.05)
    c.run(0.3)
    net.adversary = None
    net.clear_link(acker, leader)
    settle(c)


def crash_restart(t: Trial) -> None:
    """Three clients while a server crashes every 0.3 s (the leader every other
    time), some right after answering a p1a or p2a: the history is
    linearizable, and nothing an acceptor answered is lost."""
    c = start(t)
    rng = c.sim.rng("lab.crash_restart")
    one_leader(c)
    clients = Clients(c, 3, until=c.now + 3.0)
    for i in range(10):
        leader = c.leader()
        victim = leader if i % 2 == 0 and leader is not None else rng.choice(c.names)
        if i % 3 == 2:
            def crash(v=victim):
                c.kill(v)
                c.sim.schedule(0.05, c.restart, v)
            c.node(victim).crash_after_sending(("p1b", "p2b"), crash)
        else:
            c.kill(victim)
            c.run(rng.uniform(0.05, 0.2))
            c.restart(victim)
        c.run(0.3)
    settle(c, clients)


def deposed_leader(t: Trial) -> None:
    """The leader is cut off with a command pending while the others elect a new
    one; reconnected (but deaf to the new leader), its resent p2a must be
    refused, and it must step down."""
    c = start(t)
    old = one_leader(c)
    c.run(0.1)
    c.disconnect(old)
    c.submit("stale", node=old)
    new = one_leader(c, other_than=old)
    c.run(0.2)
    c.connect(old)
    c.network.block(new, old)
    ref = referee(c)
    ballot = c.node(old).ballot
    end = c.now + 1.0
    while ballot not in ref.refused and c.now < end:
        c.run(0.01)
    c.run(0.5)
    node = c.node(old)
    newest = max(c.ballot(n) for n in c.up())
    if node.role == "leader" and node.ballot == ballot < newest:
        raise Failed(f"{old} still acts as leader of ballot {ballot} 0.5 s after the "
                     f"acceptors refused it (they promised ballot {newest}): a leader "
                     "whose p1b or p2b comes back with a higher promise must step "
                     "down (follow that ballot) and stop proposing")
    settle(c)


def late_promise(t: Trial) -> None:
    """A p1b of a candidate's earlier ballot arrives during its next campaign.
    n3's p1b for n1's first ballot reaches n1 0.2 s late; meanwhile n2 leads
    with n3 and n4 and gets 'x' chosen at slot 1, unheard by n1 and n5. Then
    n1 campaigns again, heard at once by n5 only. When the late p1b arrives
    n1 must not count it: it promises nothing about the new ballot, and it
    predates n3's acceptance of 'x'. Counted, n1 leads with n1, n5 and a stale
    promise and proposes over slot 1. Campaigns here are started by hand: the
    timers are set to 5-10 s."""
    c = start(t, election_timeout=(5.0, 10.0))
    net, n1 = c.network, c.node("n1")
    for n in ("n2", "n4", "n5"):
        net.block("n1", n)
    n1.on_election_timeout()              # n1 and n3 promise; n3's p1b is late
    first = n1.ballot
    net.adversary = lambda msg: 0.2 if (
        msg.kind == "p1b" and msg.src == "n3" and msg.dst == "n1"
        and msg.ballot == first) else 0.4 if (
        msg.kind == "p1a" and msg.src == "n1" and msg.dst in ("n2", "n3", "n4")
        and msg.ballot != first) else 0.0
    c.run(0.05)
    net.block("n2", "n1")
    net.block("n2", "n5")
    c.node("n2").on_election_timeout()    # n2, n3 and n4 promise: n2 leads
    c.run(0.05)
    c.submit("x", node="n2")              # chosen by n2, n3 and n4
    c.run(0.05)
    net.heal()
    net.block("n2", "n1")
    net.block("n2", "n5")
    n1.on_election_timeout()              # n5 promises at once, n2-n4 0.4 s late
    c.run(0.15)                           # the late p1b has arrived
    c.submit("y", node="n1")              # a leader only if it counted it
    c.run(0.5)
    c.check()
    net.adversary = None
    settle(c)


def by_hand(t: Trial) -> MultiPaxosCluster:
    """Five replicas whose election timers are set to 5-10 s: the scenario
    starts campaigns by hand. n1 leads the first ballot, promised by all."""
    c = start(t, election_timeout=(5.0, 10.0))
    c.node("n1").on_election_timeout()
    c.run(0.05)
    return c


def highest_ballot_per_slot(t: Trial) -> None:
    """The p1b a new leader gathers report two values for slot 1: 'x',
    accepted by n1 and n5 in n1's ballot, and 'y', chosen by n2, n3 and n4 in
    n2's later ballot. n5 campaigns, and its own p1b arrives first, n3's and
    n4's 30 ms later: n5 must re-propose 'y', the value of the highest ballot
    reported for the slot, not the first it hears of."""
    c = by_hand(t)
    net = c.network
    for n in ("n2", "n3", "n4"):
        net.block("n1", n)
    c.submit("x", node="n1")              # accepted by n1 and n5 only
    c.run(0.05)
    c.kill("n1")
    net.block("n2", "n5")                 # n5 never hears of 'y'
    c.node("n2").on_election_timeout()    # n2, n3 and n4 promise
    c.run(0.05)
    c.submit("y", node="n2")              # chosen by n2, n3 and n4
    c.run(0.05)
    net.set_link("n5", "n5", latency=0.001)
    for n in ("n3", "n4"):
        net.set_link(n, "n5", latency=0.03)
    c.node("n5").on_election_timeout()    # n5, then n3 and n4 promise
    c.run(0.3)
    c.check()
    settle(c)


def promise_survives_crash(t: Trial) -> None:
    """n1 leads; its p2a for 'x' to n3, n4 and n5 is 0.2 s late. Meanwhile n2
    campaigns, unheard by n1, and n3, n4 and n5 crash right after sending
    their p1b (back 10 ms later). When n1's late p2a arrives they must refuse
    it: the promise they made n2 must be on disk before the p1b leaves."""
    c = by_hand(t)
    net = c.network
    net.adversary = lambda msg: 0.2 if (
        msg.kind == "p2a" and msg.src == "n1"
        and msg.dst in ("n3", "n4", "n5")) else 0.0
    c.submit("x", node="n1")
    net.block("n1", "n2")
    net.block("n2", "n1")
    c.run(0.05)
    for a in ("n3", "n4", "n5"):
        def crash(a=a):
            c.kill(a)
            c.sim.schedule(0.01, c.restart, a)
        c.node(a).crash_after_sending(("p1b",), crash)
    c.node("n2").on_election_timeout()    # n3, n4 and n5 promise, then crash
    c.run(0.5)
    c.check()
    net.adversary = None
    settle(c)


def accept_raises_promise(t: Trial) -> None:
    """An acceptance is a promise too. Everyone promised n1's ballot; n1's p2a
    for 'x' reaches n5 0.3 s late and nobody else. Meanwhile n2 leads a higher
    ballot promised by n2, n3 and n4 only, and n5 accepts n2's 'y' at slot 1
    without having promised n2's ballot. When n1's p2a arrives, n5 must refuse
    it: accepting a ballot promises it."""
    c = by_hand(t)
    net = c.network
    for n in ("n2", "n3", "n4"):
        net.block("n1", n)
    net.adversary = lambda msg: 0.3 if (
        msg.kind == "p2a" and msg.src == "n1" and msg.dst == "n5") else 0.0
    c.submit("x", node="n1")
    net.block("n2", "n5")
    net.block("n2", "n1")
    c.node("n2").on_election_timeout()    # n2, n3 and n4 promise
    c.run(0.1)
    net.heal()                            # n2's p2a reach n5 too
    for n in ("n2", "n3", "n4"):
        net.block("n1", n)
    net.block("n2", "n1")
    c.submit("y", node="n2")              # chosen by n2 to n5
    c.run(0.5)
    c.check()
    net.adversary = None
    settle(c)


def late_p2b(t: Trial) -> None:
    """A p2b of a leader's earlier ballot arrives while it leads a new one.
    n1 leads; its 'x' at slot 1 is accepted by n1 and n2 only (2 of 5), and
    n2's p2b comes back 0.3 s late. n1 crashes, restarts at once and
    campaigns again; n1 and n3 promise first (its p1a to n4 and n5 are 50 ms
    late), n1's promise reports 'x' at slot 1, so n1 proposes 'x' again,
    accepted at once by n1 and n3 only (its p2a to n2, n4 and n5 are 0.5 s
    late). When n2's late p2b arrives n1 must not count it: it accepted the
    earlier ballot, and no ballot has a majority yet (check msg.ballot).
    Counted, n1 learns 'x' with no majority behind it in one ballot."""
    c = by_hand(t)
    net, n1 = c.network, c.node("n1")
    first = n1.ballot
    for n in ("n3", "n4", "n5"):
        net.block("n1", n)
    net.adversary = lambda msg: 0.3 if (
        msg.kind == "p2b" and msg.src == "n2" and msg.dst == "n1"
        and msg.ballot == first) else 0.05 if (
        msg.kind == "p1a" and msg.src == "n1" and msg.dst in ("n4", "n5")
        and msg.ballot != first) else 0.5 if (
        msg.kind == "p2a" and msg.src == "n1" and msg.dst in ("n2", "n4", "n5")
        and msg.ballot != first) else 0.0
    c.submit("x", node="n1")              # accepted by n1 and n2
    c.run(0.05)
    c.kill("n1")
    c.restart("n1")
    net.heal()
    n1.on_election_timeout()              # n1 and n3 promise first
    c.run(0.5)                            # the late p2b has arrived
    c.check()
    net.adversary = None
    settle(c)


SCENARIOS = (stable_leader, leader_crash, holes, partitions, unreliable_log,
             duplicated_acks, crash_restart, deposed_leader, late_promise,
             highest_ballot_per_slot, promise_survives_crash, accept_raises_promise,
             late_p2b)

