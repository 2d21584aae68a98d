"""The Raft lab's graded persistence scenarios (MIT 6.5840's TestPersist and
TestFigure8Unreliable in spirit): servers crash and restart, alone, all
together or in churn, and must come back with their term, vote and log from
`disk`. They are told with the verbs of `scenarios`.
"""

from __future__ import annotations

from labkit.raft import RaftCluster

from ..lab import Failed, Trial
from .scenarios import (
    UNRELIABLE,
    agree,
    finish,
    heal_all,
    linearizable,
    one_leader,
    others,
    start,
)


def persist_basic(t: Trial) -> None:
    """Crash and restart every server, the leader, a follower: nothing committed is lost
    (MIT's TestPersist1)."""
    c = start(t, 3)
    one_leader(c)
    agree(c, 11, 3)
    for n in c.names:
        c.kill(n)
    for n in c.names:
        c.restart(n)
    agree(c, 12, 3)
    leader = one_leader(c)
    c.kill(leader)
    c.restart(leader)
    agree(c, 13, 3)
    leader = one_leader(c)
    c.kill(leader)
    agree(c, 14, 2)
    c.restart(leader)
    follower = others(c, one_leader(c))[0]
    c.kill(follower)
    agree(c, 15, 2)
    c.restart(follower)
    agree(c, 16, 3)
    if c.applied(c.names[0])[:1] != [11]:
        raise Failed("after restarts the servers applied "
                     f"{c.applied(c.names[0])}: the log (and what it commits) must "
                     "survive crashes")
    c.check()


def persist_more(t: Trial) -> None:
    """Rounds of crashes that leave a bare majority up (MIT's TestPersist2)."""
    c = start(t, 5)
    rng = c.sim.rng("lab.persist_more")
    command = 10
    for _ in range(4):
        agree(c, command, 5)
        command += 1
        leader = one_leader(c)
        down = [leader, rng.choice(others(c, leader))]
        for n in down:
            c.kill(n)
        agree(c, command, 3)
        command += 1
        rest = others(c, *down)
        more = rng.sample(rest, 2)
        for n in more:
            c.kill(n)
        for n in down:
            c.restart(n)
        agree(c, command, 3)
        command += 1
        for n in more:
            c.restart(n)
    finish(c)


def crash_all(t: Trial) -> None:
    """Every server crashes after ten commits and comes back: all ten are applied again,
    in order."""
    c = start(t, 5)
    one_leader(c)
    for command in range(10):
        agree(c, command, 5)
    for n in c.names:
        c.kill(n)
    for n in c.names:
        c.restart(n)
    agree(c, "after", 5)
    for n in c.names:
        if c.applied(n)[:10] != list(range(10)):
            raise Failed(f"after everyone restarted, {n} applied {c.applied(n)}: "
                         "the ten committed commands must come back from the logs")
    c.check()


def vote_persisted(t: Trial) -> None:
    """A voter that crashes right after voting, and restarts, must not vote again in
    that term."""
    c = start(t, 3)
    rng = c.sim.rng("lab.vote_persisted")
    v, a, b = rng.sample(c.names, 3)
    for n in c.names:
        c.kill(n)
    c.node(v).tune(election_timeout=(2.0, 2.5))      # v votes, never campaigns
    c.network.block(a, b)
    c.network.block(b, a)
    c.network.set_link(b, v, latency=0.06)            # b's requests reach v late

    def crash_and_return() -> None:
        c.kill(v)
        c.sim.schedule(0.002, c.restart, v)

    c.node(v).crash_after_sending(["request_vote_ok"], crash_and_return,
                                  when=lambda m: m.body.get("vote_granted") is True)
    for n in c.names:
        c.restart(n)
    c.run(1.0)
    c.heal()
    c.network.clear_link(b, v)
    one_leader(c, context=" after healing")
    c.check()


def next_entry_to_one_follower(t: Trial) -> tuple[RaftCluster, str, str, str]:
    """Three servers that agreed on "first", and the leader's link to f2 cut,
    so that only f1 gets the next entry: (cluster, leader, f1, f2)."""
    c = start(t, 3)
    leader = one_leader(c)
    agree(c, "first", 3)
    f1, f2 = others(c, leader)
    c.network.block(leader, f2)
    return c, leader, f1, f2


def log_persisted(t: Trial) -> None:
    """A follower that acknowledges an entry and crashes still has it: the leader's
    commit stays true."""
    c, leader, f1, f2 = next_entry_to_one_follower(t)

    def crash_and_return() -> None:
        c.kill(f1)
        c.sim.schedule(0.005, c.restart, f1)

    index = c.node(leader).last_index() + 1
    c.node(f1).crash_after_sending(
        ["append_entries_ok"], crash_and_return,
        when=lambda m: m.body.get("success") is True
        and m.body.get("match_index", 0) >= index)
    c.submit("second")
    c.run(0.3)
    c.kill(leader)
    c.heal()
    one_leader(c, [f1, f2], context=f" after {leader} crashed")
    c.restart(leader)
    finish(c)


def leader_persisted(t: Trial) -> None:
    """A leader that commits an entry with one follower and crashes still has it: it
    persisted the entry before counting its own copy.

    The leader's messages reach only f1; it crashes right after it tells its
    followers that "second" is committed, and comes back at once, while f1 is
    cut off. The leader and f2 elect a leader, who must hold "second": the
    leader counted itself among the servers that store it, so it must have
    been on its disk (Figure 2: persistent state is updated on stable storage
    before it is relied on)."""
    c, leader, f1, f2 = next_entry_to_one_follower(t)

    def crash_and_return() -> None:
        c.kill(leader)
        c.heal()
        c.disconnect(f1)
        c.sim.schedule(0.005, come_back)

    def come_back() -> None:
        c.restart(leader)
        if all(command != "second" for _, command in c.node(leader).disk["log"]):
            raise Failed(f"{leader} committed 'second' (index {index}) counting its "
                         f"own copy and {f1}'s, crashed, and came back without it: "
                         "a leader persists a new entry before it counts it (Figure "
                         "2: persistent state is on stable storage before it is "
                         "relied on)")

    index = c.node(leader).last_index() + 1
    c.node(leader).crash_after_sending(
        ["append_entries"], crash_and_return,
        when=lambda m: m.body.get("leader_commit", 0) >= index)
    c.submit("second")
    c.run(0.3)
    one_leader(c, [leader, f2], context=f" after {leader} crashed, with {f1} cut off")
    c.connect(f1)
    finish(c)


def figure8_unreliable(t: Trial) -> None:
    """Leaders crash soon after taking commands, on a network that loses and reorders
    (MIT's TestFigure8Unreliable)."""
    c = start(t, 5, **UNRELIABLE)
    rng = c.sim.rng("lab.figure8_unreliable")
    up = 5
    for i in range(150):
        for n in c.names:
            if c.is_up(n) and c.role(n) == "leader":
                c.submit(i, node=n)
        c.run(rng.uniform(0.0, 0.1) if rng.random() < 0.1 else rng.uniform(0, 0.013))
        leader = c.leader()
        if leader is not None and rng.random() < 0.5:
            c.kill(leader)
            up -= 1
        if up < 3:
            down = [n for n in c.names if not c.is_up(n)]
            c.restart(rng.choice(down))
            up += 1
    finish(c)


def churn(t: Trial) -> None:
    """Random crashes (some right after a message leaves), restarts and cut-offs while
    commands flow."""
    c = start(t, 5, loss=0.05)
    rng = c.sim.rng("lab.churn")
    for i in range(30):
        leader = c.leader()
        if leader is not None:
            c.submit(i)
        victim = rng.choice(c.names)
        verb = rng.choice(["kill", "crash_after_send", "restart", "disconnect",
                           "connect"])
        down = sum(not c.is_up(n) for n in c.names)
        if verb == "kill" and down < 2:
            c.kill(victim)
        elif verb == "crash_after_send" and down < 2 and c.is_up(victim):
            c.node(victim).crash_after_sending(
                ["request_vote_ok", "append_entries_ok", "request_vote",
                 "append_entries"], lambda n=victim: c.kill(n))
        elif verb == "restart":
            c.restart(victim)
        elif verb == "disconnect":
            c.disconnect(victim)
        else:
            c.connect(victim)
        c.run(rng.uniform(0.05, 0.3))
    finish(c)


def kv_crashes(t: Trial) -> None:
    """The key-value store while servers crash and restart: the history is
    linearizable."""
    c = start(t, 5, kv=True)
    one_leader(c)
    c.workload(3, until=c.now + 4.0)
    rng = c.sim.rng("lab.kv_crashes")
    for _ in range(8):
        victim = rng.choice(c.names)
        c.kill(victim)
        c.run(0.25)
        c.restart(victim)
        c.run(0.25)
    heal_all(c)
    c.run(3.0)
    linearizable(c)
