"""The Paxos lab's graded scenarios: stories of dueling proposers, lost,
duplicated and reordered messages, crashed acceptors and proposers, on a
network with 5-15 ms of jitter.

Each runs the student's nodes in a `PaxosCluster`, whose referee (see
`base.Referee`) checks safety at every message; a scenario adds what the
referee cannot see (a value is learned by everyone once a majority is up and
connected; nothing is learned without one) and raises `Failed` with the
reason. Randomness in a scenario comes from the cluster's own seeded streams,
so `lk.labs.replay` replays a run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from labkit import dist
from labkit.net import NetConfig
from labkit.paxos import PaxosCluster

from ..lab import Failed, Trial

LATENCY = dist.uniform(0.005, 0.015)


def start(t: Trial, acceptors: int, proposers: int, **net: Any) -> PaxosCluster:
    """The student's acceptors and proposers and one labkit learner on a jittery
    network."""
    return t.watch(PaxosCluster(acceptors, proposers, seed=t.seed, node=t.impl,
                                net=NetConfig(latency=LATENCY, **net)))


def learned_by_all(c: PaxosCluster, within: float, context: str) -> Hashable:
    """Run until every learner and live proposer learned a value; check it."""
    end = c.now + within
    names = [*c.learners, *c.proposers]
    while any(c.is_up(n) and c.learned(n) is None for n in names):
        if c.now >= end:
            missing = [n for n in names if c.is_up(n) and c.learned(n) is None]
            raise Failed(f"{', '.join(missing)} learned nothing within {within:g} s "
                         f"{context}: with a majority of acceptors up and connected "
                         "a proposer must get a value chosen (retry with a higher "
                         "ballot after a nack or a timeout) and announce it")
        c.run(0.02)
    c.check()
    return c.chosen()


def finish(c: PaxosCluster, within: float = 3.0) -> Hashable:
    """Heal everything, restart every node; everyone must learn one value."""
    c.heal()
    c.network.update(loss=0.0, duplicate=0.0, reorder=0.0)
    c.delay("accept", 0.0)
    c.delay("prepare", 0.0)
    for n in c.names:
        c.restart(n)
    return learned_by_all(c, within, "after healing every fault")


def until_chosen(c: PaxosCluster, within: float) -> None:
    end = c.now + within
    while c.chosen() is None:
        if c.now >= end:
            raise Failed(f"nothing was chosen within {within:g} s with one proposer "
                         "and every acceptor up: phase 1 then phase 2 should take two "
                         "round trips")
        c.run(0.002)


def watch(c: PaxosCluster, within: float,
          offence: Callable[[], str | None]) -> None:
    """Run `within` s in 2 ms steps (less than any message's flight, so before
    an acceptor answers what was sent); raise Failed as soon as `offence()`
    names one."""
    end = c.now + within
    while c.now < end - 1e-9:
        c.run(min(0.002, end - c.now))
        why = offence()
        if why:
            raise Failed(why)


def one_proposer(t: Trial) -> None:
    """One proposer, three acceptors: its value is chosen and learned."""
    c = start(t, 3, 1)
    c.propose("x", "p1")
    got = learned_by_all(c, 1.0, "with one proposer and no faults")
    if got != "x":
        raise Failed(f"{got!r} was chosen, but only 'x' was proposed")


def dueling_proposers(t: Trial) -> None:
    """Three proposers at once while accepts are slowed (they preempt one another):
    one value, then learned by all."""
    c = start(t, 5, 3)
    c.delay("accept", 0.03)
    for i, p in enumerate(c.proposers):
        c.propose(f"v{i + 1}", p)
    c.run(1.0)
    c.check()
    finish(c)


def unreliable_network(t: Trial) -> None:
    """Two proposers on a network that loses, duplicates and reorders 20% of
    messages."""
    c = start(t, 5, 2, loss=0.2, duplicate=0.2, reorder=0.2)
    c.propose("x", "p1")
    c.run(0.01)
    c.propose("y", "p2")
    c.run(2.0)
    c.check()
    finish(c)


def duplicated_replies(t: Trial) -> None:
    """Every reply of a1 to p1 arrives twice, and p1's accepts reach a2 and a3
    60 ms late: p1 must count each acceptor once, in both phases, and decide
    only once a2 or a3 accepted too."""
    c = start(t, 3, 1)
    c.network.set_link("a1", "p1", duplicate=1.0)
    c.network.adversary = lambda msg: 0.06 if (
        msg.kind == "accept" and msg.dst in ("a2", "a3")) else 0.0
    c.propose("x", "p1")
    got = learned_by_all(c, 1.0, "with one proposer and no faults")
    if got != "x":
        raise Failed(f"{got!r} was chosen, but only 'x' was proposed")


def acceptor_crashes(t: Trial) -> None:
    """Acceptors crash and restart while two proposers run; two stay down."""
    c = start(t, 5, 2)
    rng = c.sim.rng("lab.acceptor_crashes")
    c.propose("x", "p1")
    c.propose("y", "p2")
    for _ in range(6):
        victim = rng.choice(c.acceptors)
        c.kill(victim)
        c.run(rng.uniform(0.0, 0.03))
        c.restart(victim)
    c.kill("a1")
    c.kill("a2")
    learned_by_all(c, 3.0, "with three of five acceptors up")
    finish(c)


def no_majority(t: Trial) -> None:
    """Three of five acceptors are down: nothing is decided; once two return, the
    value is."""
    c = start(t, 5, 1)
    for a in ("a3", "a4", "a5"):
        c.kill(a)
    c.propose("x", "p1")
    c.run(1.0)
    if c.learned("l1") is not None:
        raise Failed(f"l1 learned {c.learned('l1')!r} with three of five acceptors "
                     "down: a value needs a majority")
    c.restart("a3")
    c.restart("a4")
    learned_by_all(c, 2.0, "after two acceptors came back")


def lone_winner(t: Trial, c: PaxosCluster) -> None:
    """p1 proposes 'x' unheard by p2 and the learners; once 'x' is chosen p1
    crashes, and p2 proposes 'y': the promises must show it 'x'."""
    for other in (*c.proposers[1:], *c.learners):
        c.network.block("p1", other)
    c.propose("x", "p1")
    until_chosen(c, 1.0)
    c.kill("p1")
    c.propose("y", "p2")
    got = learned_by_all(c, 2.0, "after p1 crashed")
    if got != "x":
        raise Failed(f"{got!r} was learned, but 'x' was chosen first")


def chosen_value_survives(t: Trial) -> None:
    """'x' is chosen, its proposer crashes before telling anyone, a second proposer
    proposes 'y': 'x' is learned."""
    lone_winner(t, start(t, 3, 2))


def amnesia(t: Trial) -> None:
    """As chosen_value_survives, but every acceptor crashes right after answering
    (and restarts 10 ms later): what it answered must be on its disk."""
    c = start(t, 3, 2)
    crash_after(c, "accepted")
    lone_winner(t, c)


def crash_after(c: PaxosCluster, kind: str) -> None:
    """Every acceptor crashes right after it next sends a `kind`, and restarts
    10 ms later."""
    for a in c.acceptors:
        def crash(a=a):
            c.kill(a)
            c.sim.schedule(0.01, c.restart, a)
        c.node(a).crash_after_sending((kind,), crash)


def forgotten_promise(t: Trial) -> None:
    """p1's accepts are slow; meanwhile p2 prepares a higher ballot and every
    acceptor crashes right after promising it: p1's accepts must be refused."""
    c = start(t, 3, 2)
    c.delay("accept", 0.06)
    c.propose("x", "p1")
    c.run(0.035)                            # p1 has its promises; accepts in flight
    crash_after(c, "promise")
    c.propose("y", "p2")
    c.run(0.3)
    c.check()
    finish(c)


def accept_promises(t: Trial) -> None:
    """An acceptance is a promise too. a1 promises p1's ballot; p1's accept to
    a1 is 0.1 s slow. Meanwhile p2 prepares a higher ballot with a2 and a3
    only, and a1 accepts p2's ballot without having promised it. When p1's
    accept arrives, a1 must refuse it: accepting a ballot promises it."""
    c = start(t, 3, 2)
    net = c.network
    net.block("p1", "a3")
    net.adversary = lambda msg: 0.1 if (
        msg.kind == "accept" and msg.src == "p1" and msg.dst == "a1") else 0.0
    c.propose("x", "p1")                    # promised by a1 and a2
    c.run(0.05)
    net.block("p2", "a1")
    c.propose("y", "p2")                    # prepared with a2 and a3 only
    net.heal()                              # its accepts reach a1 too
    c.run(0.3)
    c.check()
    net.adversary = None
    finish(c)


def highest_ballot_wins(t: Trial) -> None:
    """The promises a proposer gathers report two different accepted values:
    'x' accepted by a1 alone in p1's ballot, and 'y', chosen by a2 and a3 in
    p2's later ballot. p3's quorum is a1 and a2, and a1's promise arrives
    first: p3 must propose 'y', the value of the highest accepted ballot
    (Paxos Made Simple, P2c), not the first or the lowest it hears of."""
    c = start(t, 3, 3)
    net = c.network
    # p1: prepares reach a1 and a2 at once, then its accept to a2 is stuck
    # (and dropped when p1 crashes), so only a1 accepts 'x'.
    net.block("p1", "a3")
    for a in ("a1", "a2"):
        net.set_link("p1", a, latency=0.001)
    c.propose("x", "p1")
    c.run(0.002)
    net.set_link("p1", "a2", latency=1.0)
    c.run(0.1)
    c.kill("p1")
    net.block("p1", "a2")
    # p2, which never reaches a1: 'y' is chosen by a2 and a3; p3 hears of it
    # only through its own promises.
    net.block("p2", "a1")
    for n in c.names:
        if n not in ("a1", "a2", "p3"):
            net.block(n, "p3")
    c.propose("y", "p2")
    until_chosen(c, 1.0)
    # p3 reaches a1 and a2 only, and hears a1 first.
    net.block("p3", "a3")
    net.set_link("a1", "p3", latency=0.001)
    net.set_link("a2", "p3", latency=0.03)
    c.propose("z", "p3")
    c.run(0.5)
    c.check()
    got = finish(c)
    if got != "y":
        raise Failed(f"{got!r} was learned, but 'y' was chosen first")


def stale_promise(t: Trial) -> None:
    """A promise of a proposer's earlier ballot arrives during its next one.
    p1's prepare reaches only a1, whose promise comes back 0.27 s late, so
    p1's first ballot times out (after 0.2 s). Meanwhile p2 gets 'y' chosen
    by a1 and a2, unheard by p1 and a3. p1 prepares again, heard at once by
    a3, by a1 and a2 0.15 s late. When a1's late promise arrives p1 must not
    count it: it promises nothing about the new ballot, and it predates a1's
    acceptance of 'y'. Counted, p1 has a1 and a3 and proposes its own 'x'
    over 'y'."""
    c = start(t, 3, 2)
    first = p1_prepares_to_a1(c)
    c.network.adversary = lambda msg: 0.27 if (
        msg.kind == "promise" and msg.src == "a1" and msg.dst == "p1"
        and msg.ballot == first) else 0.15 if (
        msg.kind == "prepare" and msg.src == "p1" and msg.dst in ("a1", "a2")
        and msg.ballot != first) else 0.0
    c.run(0.02)                             # a1 promised p1's first ballot
    y_chosen_behind_p1(c)
    c.run(0.6)
    y_stays(c)


def p1_prepares_to_a1(c: PaxosCluster) -> int:
    """p1 proposes 'x', its prepare reaching only a1: its first ballot."""
    for a in ("a2", "a3"):
        c.network.block("p1", a)
    c.propose("x", "p1")
    return c.node("p1").ballot


def y_chosen_behind_p1(c: PaxosCluster) -> None:
    """p2 gets 'y' chosen by a1 and a2, unheard by p1 and a3; then the network
    heals, but for p2's messages to p1."""
    net = c.network
    net.block("p2", "a3")
    net.block("p2", "p1")
    c.propose("y", "p2")
    until_chosen(c, 0.15)
    net.heal()                              # p1's next prepare reaches all
    net.block("p2", "p1")


def y_stays(c: PaxosCluster) -> None:
    """The rules held, and, healed, everyone learns 'y', chosen first."""
    c.check()
    c.network.adversary = None
    got = finish(c)
    if got != "y":
        raise Failed(f"{got!r} was learned, but 'y' was chosen first")


def old_promises(t: Trial) -> None:
    """A new ballot starts with no promises. p1's first prepare reaches only
    a1, which promises at once; one promise is no majority, so the ballot
    times out. Meanwhile p2 gets 'y' chosen by a1 and a2, unheard by p1 and
    a3. p1 prepares again, heard at once by a3, by a1 and a2 0.15 s late.
    a1's promise of the first ballot must not count toward the second: it
    promises nothing about it, and it predates a1's acceptance of 'y' (empty
    the promises in prepare). Kept, p1 has a1 and a3 and proposes its own
    'x' over 'y'."""
    c = start(t, 3, 2)
    first = p1_prepares_to_a1(c)
    promised: dict[int, list[str]] = {}     # p1's ballot -> who promised it
    early: list[tuple[int, list[str]]] = []

    def adversary(msg: Any) -> float:
        if msg.kind == "promise" and msg.dst == "p1":
            promised.setdefault(msg.ballot, []).append(msg.src)
        elif msg.kind == "accept" and msg.src == "p1" \
                and len(set(promised.get(msg.ballot, ()))) < 2:
            early.append((msg.ballot, promised.get(msg.ballot, [])))
        return 0.15 if (msg.kind == "prepare" and msg.src == "p1"
                        and msg.dst in ("a1", "a2") and msg.ballot != first) else 0.0

    def offence() -> str | None:
        if not early:
            return None
        ballot, names = early[0]
        return (f"p1 sent accepts in ballot {ballot} when only "
                f"{', '.join(sorted(set(names))) or 'nobody'} had promised that "
                f"ballot (a1 promised ballot {first}): a promise counts only toward "
                "the ballot it answers, so prepare starts a new ballot with no "
                "promises (empty self.promises)")

    c.network.adversary = adversary
    c.run(0.04)                             # a1 promised p1's first ballot
    y_chosen_behind_p1(c)
    watch(c, 0.6, offence)
    y_stays(c)


def split_accepts(t: Trial) -> None:
    """A value is chosen by a majority of acceptances in one ballot. p1's
    first ballot is accepted by a1 and a2 only (2 of 5), and a2's reply comes
    0.32 s late, so the ballot times out; p1's second ballot is accepted at
    once by a3 and a4 only (its accepts to a1, a2 and a5 are 0.3 s late). No
    ballot has a majority: p1 must not decide. It counts only replies of the
    current ballot (check msg.ballot), and a new ballot starts counting from
    nobody (empty the accepts in prepare): a1's acceptance, counted in the
    first ballot, and a2's late reply to it say nothing about the second."""
    c = start(t, 5, 1)
    net = c.network
    c.propose("x", "p1")
    first = c.node("p1").ballot
    net.adversary = lambda msg: 0.32 if (
        msg.kind == "accepted" and msg.src == "a2" and msg.ballot == first) \
        else 0.05 if msg.kind == "accept" and msg.ballot == first \
        and msg.dst in ("a3", "a4", "a5") \
        else 0.3 if msg.kind == "accept" and msg.ballot != first \
        and msg.dst in ("a1", "a2", "a5") else 0.0
    c.run(0.02)                             # the first prepares have arrived
    for a in ("a3", "a4", "a5"):
        net.block("p1", a)                  # and its accepts there are lost
    c.run(0.13)
    net.heal()
    c.run(0.45)
    c.check()
    net.adversary = None
    finish(c)


def one_value_per_ballot(t: Trial) -> None:
    """A ballot proposes one value, once. p1's 'y' is accepted by a3 alone,
    then p1 crashes. p2 prepares: a1 and a2 promise at once, reporting no
    acceptance, so p2 proposes its own 'x' (its accepts to a1 and a2 are
    0.1 s slow); a3's promise, reporting 'y', arrives 50 ms late, while phase
    2 runs. p2 must ignore it (phase 2 began: the value is fixed). Counted, it
    makes p2 choose again and send accepts for 'y' in the same ballot."""
    c = start(t, 3, 2)
    net = c.network
    # p1: its accept to a2 is stuck (and dropped when p1 crashes), so only a3
    # accepts 'y'.
    net.block("p1", "a1")
    net.adversary = lambda msg: 1.0 if (
        msg.kind == "accept" and msg.src == "p1" and msg.dst == "a2") else 0.0
    c.propose("y", "p1")
    c.run(0.1)
    c.kill("p1")
    net.block("p1", "a2")
    values: dict[int, list[Hashable]] = {}  # p2's ballot -> values it proposed

    def adversary(msg: Any) -> float:
        if msg.kind == "accept" and msg.src == "p2":
            if msg.value not in values.setdefault(msg.ballot, []):
                values[msg.ballot].append(msg.value)
            return 0.1 if msg.dst in ("a1", "a2") else 0.0
        return 0.05 if (msg.kind == "promise" and msg.src == "a3"
                        and msg.dst == "p2") else 0.0

    def offence() -> str | None:
        for ballot, sent in values.items():
            if len(sent) > 1:
                return (f"p2 sent accepts for {sent[0]!r}, then for {sent[1]!r}, in "
                        f"ballot {ballot}: a3's promise arrived after phase 2 had "
                        "begun, and p2 chose the value again. A ballot proposes one "
                        "value: once phase 2 begins, ignore further promises "
                        "(on_promise acts only in phase 'prepare')")
        return None

    net.adversary = adversary
    c.propose("x", "p2")
    watch(c, 0.4, offence)
    c.check()
    net.adversary = None
    finish(c)


def proposer_restarts(t: Trial) -> None:
    """Proposers crash and restart mid-ballot and propose again: their ballots
    only grow."""
    c = start(t, 3, 2)
    rng = c.sim.rng("lab.proposer_restarts")
    for round in range(4):
        for p in c.proposers:
            if c.is_up(p):
                c.propose(f"{p}.{round}", p)
        c.run(rng.uniform(0.005, 0.03))
        victim = rng.choice(c.proposers)
        c.kill(victim)
        c.run(0.005)
        c.restart(victim)
    c.check()
    finish(c)
