"""The Raft lab's graded scenarios of elections and replication, and the verbs
they and `persistence_scenarios` are told with: stories in the manner of MIT
6.5840's Raft tests (a handful of verbs: `one_leader`, `agree`, `no_leader`,
disconnect, kill, restart), on a network with 5-15 ms of jitter.

Every scenario runs the student's servers in a `RaftCluster`, whose audit
checks election safety, log matching, leader completeness and state machine
safety after every event (see `base.RaftBase`); a scenario adds what the
audit cannot see (a leader is elected, a command commits, nothing is elected
without a majority) and raises `Failed` with the reason. Randomness in a
scenario (whom to disconnect, when to crash) comes from the cluster's own
seeded streams, so `lk.labs.replay` replays a run exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from labkit import dist
from labkit.net import NetConfig
from labkit.raft import KVCluster, RaftCluster

from ..lab import Failed, Trial

LATENCY = dist.uniform(0.005, 0.015)
UNRELIABLE = {"loss": 0.1, "duplicate": 0.1, "reorder": 0.1}


# -- the verbs ------------------------------------------------------------------

def start(t: Trial, size: int, *, kv: bool = False, **net) -> RaftCluster:
    """`size` of the student's servers (n1, n2, ...) on a jittery network."""
    kind = KVCluster if kv else RaftCluster
    return t.watch(kind(size, seed=t.seed, node=t.impl,
                        net=NetConfig(latency=LATENCY, **net)))


def leader_among(c: RaftCluster, names: Sequence[str]) -> str | None:
    """The live server of `names` that leads the newest term, if any."""
    leaders = [n for n in names if c.is_up(n) and c.role(n) == "leader"]
    return max(leaders, key=c.term, default=None)


def one_leader(c: RaftCluster, among: Sequence[str] | None = None,
               within: float = 2.5, context: str = "") -> str:
    """Run until a live server of `among` leads a term no live server of
    `among` has passed; its name."""
    among = list(c.names if among is None else among)
    end = c.now + within
    while True:
        leader = leader_among(c, among)
        if leader is not None and all(c.term(n) <= c.term(leader)
                                      for n in among if c.is_up(n)):
            return leader
        if c.now >= end:
            raise Failed(f"no leader among {', '.join(among)} within {within:g} s"
                         f"{context}: a majority of them can talk, so one of them "
                         "should time out, win the election and send heartbeats")
        c.run(0.05)


def no_leader(c: RaftCluster, among: Sequence[str], seconds: float, above: int,
              context: str) -> None:
    """Run `seconds`; fail if a server of `among` leads a term newer than
    `above`."""
    end = c.now + seconds
    while c.now < end:
        c.run(0.05)
        for n in among:
            if c.is_up(n) and c.role(n) == "leader" and c.term(n) > above:
                raise Failed(f"{n} became leader of term {c.term(n)} {context}: a "
                             "leader needs the votes of a majority of all servers")


def applied_by(c: RaftCluster, command) -> int:
    return sum(command in c.applied(n) for n in c.names)


def agree(c: RaftCluster, command, expected: int, within: float = 5.0) -> None:
    """Submit `command` to the leader (again if leadership was lost) until
    `expected` servers applied it (MIT's `one`)."""
    end = c.now + within
    while c.now < end:
        if c.submit(command) is None:
            c.run(0.05)
            continue
        wait = min(end, c.now + 1.5)
        while c.now < wait:
            c.run(0.02)
            if applied_by(c, command) >= expected:
                return
    raise Failed(f"{command!r} was applied by {applied_by(c, command)} servers, not "
                 f"{expected}, within {within:g} s of submitting it to the leader: "
                 "it must be replicated to a majority, committed, and the commit "
                 "index passed on to followers")


def others(c: RaftCluster, *names: str) -> list[str]:
    return [n for n in c.names if n not in names]


def heal_all(c: RaftCluster) -> None:
    """Undo every fault: heal the network, no loss, every server up."""
    c.heal()
    c.network.update(loss=0.0, duplicate=0.0, reorder=0.0)
    for n in c.names:
        c.node(n).disarm()
        c.restart(n)


def finish(c: RaftCluster, command="last") -> None:
    """Heal everything; every server must apply one more command; and the logs
    must satisfy Raft's invariants."""
    heal_all(c)
    agree(c, command, len(c.names), within=8.0)
    c.check()


# -- election -------------------------------------------------------------------

def initial_election(t: Trial) -> None:
    """Three servers elect one leader, and keep it and its term while nothing fails."""
    c = start(t, 3)
    leader = one_leader(c, context=" of the start")
    term = c.term(leader)
    c.run(0.2)
    terms = {n: c.term(n) for n in c.names}
    if set(terms.values()) != {term}:
        raise Failed(f"0.2 s after {leader} won term {term} the servers' terms are "
                     f"{terms}: heartbeats should bring everyone to the leader's term")
    c.run(2.0)
    stable(c, since=0.0)


def stable(c: RaftCluster, since: float) -> None:
    """Fail if more than one election was won since `since` on a healthy
    network: the first winner was deposed though it could talk to everyone."""
    won = [(time, name, term) for time, name, term in c.elections() if time >= since]
    if len(won) > 1:
        (_, first, term), (_, second, later) = won[:2]
        raise Failed(f"{first} won term {term}, then {second} won term {later} "
                     "although no server failed and no message was lost: an "
                     "election timer fired under a healthy leader (re-arm it on "
                     "every append_entries of the current leader, and whenever "
                     "you grant a vote)")


def leader_failure(t: Trial) -> None:
    """The leader crashes, three times: each time one new leader, who then keeps its
    term."""
    c = start(t, 7)
    one_leader(c)
    for _ in range(3):
        old = c.leader()
        c.kill(old)
        since = c.now
        one_leader(c, others(c, old), context=f" after the leader {old} crashed")
        c.run(1.0)
        stable(c, since)
    c.check()


def reelection(t: Trial) -> None:
    """A new leader after the leader is cut off; none without a majority; one again
    after healing."""
    c = start(t, 3)
    first = one_leader(c)
    c.disconnect(first)
    one_leader(c, others(c, first), context=f" after {first} was cut off")
    c.connect(first)
    third = one_leader(c, context=f" after {first} came back")
    c.disconnect(third)
    alone, last = others(c, third)
    c.disconnect(alone)
    no_leader(c, [last], 2.0, above=c.term(third),
              context=f"alone, with {third} and {alone} cut off")
    c.connect(alone)
    one_leader(c, [last, alone], context=f" after {alone} came back")
    c.connect(third)
    one_leader(c, context=" after healing")
    c.check()


def no_quorum(t: Trial) -> None:
    """With the leader on the minority side of a partition, only the majority elects."""
    c = start(t, 5)
    old = one_leader(c)
    term = c.term(old)
    rng = c.sim.rng("lab.no_quorum")
    buddy = rng.choice(others(c, old))
    minority, majority = [old, buddy], others(c, old, buddy)
    c.partition(minority, majority)
    one_leader(c, majority, context=f" after the partition {minority} | {majority}")
    no_leader(c, minority, 1.5, above=term, context="in the minority of a partition")
    c.heal()
    leader = one_leader(c, context=" after healing")
    c.run(0.2)                              # a heartbeat round
    if c.role(old) == "leader" and old != leader:
        raise Failed(f"{old} still believes it leads term {c.term(old)} after "
                     f"healing, though {leader} leads term {c.term(leader)}: a "
                     "leader steps down when it sees a newer term")
    c.check()


def many_elections(t: Trial) -> None:
    """Seven servers, three cut off at a time, five times over: always a leader among
    the other four."""
    c = start(t, 7)
    one_leader(c)
    rng = c.sim.rng("lab.many_elections")
    for _ in range(5):
        cut = rng.sample(c.names, 3)
        for n in cut:
            c.disconnect(n)
        one_leader(c, others(c, *cut), context=f" with {', '.join(cut)} cut off")
        for n in cut:
            c.connect(n)
    one_leader(c, context=" after healing")
    c.check()


def split_votes(t: Trial) -> None:
    """Election timeouts of 150-165 ms and duplicated messages: many split votes, still
    one leader per term."""
    c = start(t, 5, duplicate=0.2)
    c.configure(election_timeout=(0.150, 0.165))
    one_leader(c, within=10.0, context=" with election timeouts of 150-165 ms")
    c.run(1.0)
    c.check()


def unreliable_elections(t: Trial) -> None:
    """Loss, duplication, reordering and a new partition every half second: never two
    leaders in a term."""
    c = start(t, 5, **UNRELIABLE)
    rng = c.sim.rng("lab.unreliable_elections")
    for _ in range(12):
        names = c.names
        rng.shuffle(names)
        cut = rng.randint(1, 4)
        c.partition(names[:cut], names[cut:])
        c.run(0.5)
    c.heal()
    one_leader(c, context=" after healing")
    c.check()


def late_votes(t: Trial) -> None:
    """A vote from an older term arrives while its candidate runs the next one.
    n2's votes reach n1 0.5 s late; n1 runs for term 1 (n2 grants) and n3, cut
    off from n1, wins term 2 with n2's vote; then n1 runs for term 2. When
    n2's grant for term 1 arrives, n1 must not count it (Figure 2: votes of
    the current term only), or term 2 has two leaders. Elections here are
    started by hand: the timers are set to 5-10 s."""
    c = start(t, 3)
    c.configure(election_timeout=(5.0, 10.0))
    for n in c.names:                      # re-arm every timer with the new range
        c.kill(n)
        c.restart(n)
    c.network.adversary = lambda msg: 0.5 if (
        msg.kind == "request_vote_ok" and msg.src == "n2" and msg.dst == "n1") else 0.0
    c.network.block("n1", "n3")
    c.network.block("n3", "n1")
    c.node("n1").on_election_timeout()     # term 1: n2 grants, late
    c.run(0.05)
    c.node("n3").on_election_timeout()     # term 1: n2 already voted
    c.run(0.05)
    c.node("n3").on_election_timeout()     # term 2: n2 grants, n3 leads
    c.run(0.05)
    c.node("n1").on_election_timeout()     # term 2: n2 refuses, late
    c.run(1.0)
    c.check()
    c.network.adversary = None
    c.configure(election_timeout=(0.150, 0.300))
    finish(c)


def deaf_old_leader(t: Trial) -> None:
    """A deposed leader hears of the newer term only in answers to its own
    heartbeats. The leader is cut off, the others elect a new one; then it
    comes back, but the new leader's messages to it are lost. Its heartbeats
    reach the others, who answer with their newer term: it must step down
    (Figure 2, for all servers: a request or a RESPONSE with a newer term), or
    it goes on leading a term everyone else has left."""
    c = start(t, 5)
    old = one_leader(c)
    c.disconnect(old)
    new = one_leader(c, others(c, old), context=f" after {old} was cut off")
    c.connect(old)
    c.network.block(new, old)
    c.run(0.3)                              # a few heartbeat rounds, and answers
    end = c.now + 1.0
    while c.now < end:
        newest = max(c.term(n) for n in c.names if c.is_up(n))
        if c.role(old) == "leader" and c.term(old) < newest:
            raise Failed(f"{old} still leads term {c.term(old)}, though the others "
                         f"answered its heartbeats with term {newest}: a leader steps "
                         "down when an answer (append_entries_ok) carries a newer "
                         "term, not only a request")
        c.run(0.05)
    finish(c)


# -- replication ------------------------------------------------------------------

def basic_agreement(t: Trial) -> None:
    """Three commands, each applied by all three servers, in order."""
    c = start(t, 3)
    one_leader(c)
    for command in (101, 102, 103):
        for n in c.names:
            if c.role(n) != "leader" and c.submit(command, node=n) is not None:
                raise Failed(f"{n}, a {c.role(n)}, accepted a command: only the "
                             "leader appends to the log")
        agree(c, command, 3)
    applied = {n: c.applied(n) for n in c.names}
    if any(a != [101, 102, 103] for a in applied.values()):
        raise Failed(f"the servers applied {applied}; each should apply [101, 102, "
                     "103], in that order")
    c.check()


def follower_failure(t: Trial) -> None:
    """A cut-off follower does not stop the other two, and catches up when it comes
    back."""
    c = start(t, 3)
    leader = one_leader(c)
    agree(c, 101, 3)
    cut = others(c, leader)[0]
    c.disconnect(cut)
    for command in (102, 103, 104):
        agree(c, command, 2)
    c.connect(cut)
    agree(c, 105, 3)
    if c.applied(cut) != c.applied(leader):
        raise Failed(f"{cut} applied {c.applied(cut)} after rejoining, the leader "
                     f"{c.applied(leader)}: a follower that was cut off must catch up")
    c.check()


def no_majority(t: Trial) -> None:
    """A leader with only one follower commits nothing; after healing, agreement
    resumes."""
    c = start(t, 5)
    leader = one_leader(c)
    agree(c, 10, 5)
    cut = others(c, leader)[1:]
    for n in cut:
        c.disconnect(n)
    index = c.submit(20)
    if index is None:
        raise Failed(f"{leader} refused a command while it still led")
    c.run(2.0)
    if applied_by(c, 20):
        raise Failed("a command was applied while only 2 of 5 servers could talk: a "
                     "leader commits an entry only once a majority stores it")
    for n in cut:
        c.connect(n)
    agree(c, 30, 5)
    c.check()


def leader_rejoin(t: Trial) -> None:
    """A cut-off leader's uncommitted entries are replaced once it rejoins (MIT's
    TestRejoin)."""
    c = start(t, 3)
    first = one_leader(c)
    agree(c, 101, 3)
    c.disconnect(first)
    for command in (102, 103, 104):
        c.submit(command, node=first)        # accepted, never committed
    second = one_leader(c, others(c, first), context=f" after {first} was cut off")
    agree(c, 103, 2)
    c.disconnect(second)
    c.connect(first)
    agree(c, 104, 2)
    c.connect(second)
    agree(c, 105, 3)
    if any(102 in c.applied(n) for n in c.names):
        raise Failed(f"102, accepted by {first} while it was cut off and never "
                     "committed, was applied")
    c.check()


def backup(t: Trial) -> None:
    """A leader brings a follower with a long wrong log back in line quickly (MIT's
    TestBackup)."""
    c = start(t, 5)
    leader = one_leader(c)
    agree(c, "start", 5)
    kept = others(c, leader)[0]
    c.partition([leader, kept], others(c, leader, kept))
    for i in range(50):
        c.submit(f"lost{i}", node=leader)
    c.run(0.5)
    rest = others(c, leader, kept)
    one_leader(c, rest, context=" on the majority side")
    for i in range(20):
        agree(c, f"kept{i}", 3)
    c.heal()
    finish(c)
    if any(str(x).startswith("lost") for n in c.names for x in c.applied(n)):
        raise Failed("an entry of the minority's leader, never committed, was applied")


def figure8(t: Trial) -> None:
    """Figure 8 of the paper: an old term's entry on a majority must not be committed by
    counting replicas."""
    c = start(t, 5)
    rng = c.sim.rng("lab.figure8")
    names = c.names
    rng.shuffle(names)
    a, b, x, y, z = names                   # a, b hold "b"; x, y lack it; z has "c"
    logs = {a: [(1, "a"), (2, "b")], b: [(1, "a"), (2, "b")], x: [(1, "a")],
            y: [(1, "a")], z: [(1, "a"), (3, "c")]}
    for n, log in logs.items():
        c.kill(n)
        c.node(n).install(current_term=3, voted_for=None, log=[(0, None), *log])
    # The term-4 leader's own entries (a no-op, if the answer appends one) never
    # reach x and y, so only counting replicas could commit "b".
    c.network.adversary = lambda m: 60.0 if m.dst in (x, y) and any(
        e[0] > 3 for e in m.body.get("entries", ())) else 0.0
    for n in (a, b, x, y):
        c.restart(n)
    leader = one_leader(c, [a, b, x, y], context=" of four servers")
    c.run(0.5)
    c.kill(a)
    c.kill(b)
    c.network.adversary = None
    c.restart(z)
    one_leader(c, [x, y, z], context=f" after {leader} and its twin crashed")
    finish(c)


def stale_suffix(t: Trial) -> None:
    """An empty heartbeat to a follower holding an old term's stale entries: it must
    commit none of them.

    Figure 2's rule 5, commit_index = min(leader_commit, index of last new entry):
    without the min the follower applies its stale entries."""
    c = start(t, 3)
    names = c.names
    c.sim.rng("lab.stale_suffix").shuffle(names)
    a, b, f = names                         # a, b hold term 3's entries, f term 2's
    fresh = [(1, "a"), (3, "b"), (3, "c")]
    stale = [(1, "a"), *((2, f"stale{i}") for i in range(5))]
    for n in names:
        c.kill(n)
        c.node(n).install(current_term=3, voted_for=None,
                          log=[(0, None), *(stale if n == f else fresh)])
        if n != f:
            c.network.block(n, f)           # f hears nothing, and keeps its entries
    c.node(f).tune(election_timeout=(5.0, 6.0))    # f only follows
    for n in names:
        c.restart(n)
    one_leader(c, [a, b], context=f" of {a} and {b}")
    agree(c, "d", 2)                        # commits "b", "c" and "d" on a and b
    leader = c.node(one_leader(c, [a, b]))
    # A heartbeat as Figure 2 allows one: no entries, after the one entry f shares
    # with the leader. The first message on its link, it reaches f first.
    c.heal()
    leader.send(f, "append_entries", term=c.term(leader.name),
                leader_id=leader.name, prev_log_index=1, prev_log_term=1,
                entries=(), leader_commit=leader.commit_index)
    finish(c)


def stale_tail(t: Trial) -> None:
    """A follower's conflicting entries run past the end of the new leader's log: it
    must delete all of them, not only those the leader sends.

    f and g hold term 2's entries x0-x4 after "a", `lead` holds term 3's "b"
    after "a". With g down, lead wins term 4 (by hand: timers of 5-10 s) and
    sends f "b" for index 2, where f holds x0. Figure 2 (AppendEntries, step
    3): delete the conflicting entry and all that follow it. A follower that
    overwrites x0 and keeps x1-x4 holds g's entries of term 2 after an entry
    g lacks, which breaks log matching."""
    c = start(t, 3)
    names = c.names
    c.sim.rng("lab.stale_tail").shuffle(names)
    lead, f, g = names
    stale = [(1, "a"), *((2, f"x{i}") for i in range(5))]
    logs = {lead: [(1, "a"), (3, "b")], f: stale, g: stale}
    c.configure(election_timeout=(5.0, 10.0))
    for n, log in logs.items():
        c.kill(n)
        c.node(n).install(current_term=3, voted_for=None, log=[(0, None), *log])
    c.restart(lead)
    c.restart(f)
    c.node(lead).on_election_timeout()      # term 4: f grants ("b" is of a later term)
    c.run(0.3)                              # lead brings f in line
    c.check()                               # g's log, on its disk, against f's
    c.configure(election_timeout=(0.150, 0.300))
    finish(c)


def late_acks(t: Trial) -> None:
    """An append_entries ack of an older term reaches its leader, elected again since:
    it must not count.

    Elections here are started by hand (timers of 5-10 s) on logs written as
    in Figure 8: `lead` holds term 2's entries "b" and "c" after "a", f only
    "a", m term 3's "d". lead wins term 4 and sends f "b" and "c"; f's acks
    (term 4, matched up to index 3) reach lead 1 s late. m wins term 5 with
    f's vote ("d" is of a later term than "c") and replaces "b" and "c" by "d"
    on f and lead; lead wins term 6 and takes "lone" at index 3, which no one
    else gets. When f's acks of term 4 arrive they speak of lead's old log:
    counting them commits "lone" on lead alone (Figure 2: a leader counts
    replies of its current term only)."""
    c = start(t, 3)
    names = c.names
    c.sim.rng("lab.late_acks").shuffle(names)
    lead, f, m = names
    logs = {lead: [(1, "a"), (2, "b"), (2, "c")], f: [(1, "a")],
            m: [(1, "a"), (3, "d")]}
    c.configure(election_timeout=(5.0, 10.0))
    for n, log in logs.items():
        c.kill(n)
        c.node(n).install(current_term=3, voted_for=None, log=[(0, None), *log])
    c.network.adversary = lambda msg: late_in_term4(msg, lead, f)
    c.network.block(lead, m)
    c.network.block(m, lead)
    for n in names:
        c.restart(n)
    c.node(lead).on_election_timeout()      # term 4: f grants, gets "b" and "c"
    c.run(0.2)
    c.node(m).on_election_timeout()         # term 4: f already voted
    c.run(0.05)
    c.node(m).on_election_timeout()         # term 5: f grants, gets "d"
    c.run(0.2)
    c.heal()                                # m's heartbeats give lead "d"
    c.run(0.2)
    c.node(lead).on_election_timeout()      # term 6: both grant
    c.run(0.1)
    c.network.block(lead, f)                # what lead sends from now on is lost
    c.network.block(lead, m)
    c.submit("lone", node=lead)
    c.run(0.6)                              # f's acks of term 4 arrive
    if "lone" in c.applied(lead):
        raise Failed(f"{lead} applied 'lone', which no other server stores: it "
                     f"counted an append_entries_ok that {f} sent in term 4 about "
                     f"{lead}'s log of then (a leader counts replies of its current "
                     "term only: Figure 2)")
    c.network.adversary = None
    c.configure(election_timeout=(0.150, 0.300))
    finish(c)


def old_match(t: Trial) -> None:
    """A leader elected again must not trust what followers matched in its
    earlier term. n1 leads term 1 with n2 on its side of a partition: n2
    stores (and acks) two commands that n3-n5 never see; n3 wins term 2 and
    commits "m" in their place, which the heal copies to n1 and n2. n1 wins
    term 3, then n2, n4 and n5 are cut off and n1 appends "lone": only n1 and
    n3 store it, which is no majority of five. Counting n2 as matching up to
    index 3, as it acked in term 1, commits it (become_leader sets every
    match_index to 0: what a follower matched then says nothing about its log
    now). Elections here are started by hand: the timers are set to 5-10 s."""
    c = start(t, 5)
    c.configure(election_timeout=(5.0, 10.0))
    for n in c.names:                      # re-arm every timer with the new range
        c.kill(n)
        c.restart(n)
    c.node("n1").on_election_timeout()     # term 1
    c.run(0.1)
    agree(c, "x", 5)
    c.partition(["n1", "n2"], ["n3", "n4", "n5"])
    for command in ("lost1", "lost2"):
        c.submit(command, node="n1")
    c.run(0.1)                              # n2 acks them: match_index 3
    c.node("n3").on_election_timeout()     # term 2: n4 and n5 grant
    c.run(0.1)
    c.submit("m", node="n3")
    c.run(0.1)
    c.heal()
    c.run(0.3)                              # n1 steps down; n1, n2 get "m"
    c.node("n1").on_election_timeout()     # term 3: everyone grants
    c.run(0.1)
    for n in ("n2", "n4", "n5"):
        c.disconnect(n)
    c.submit("lone", node="n1")
    c.run(0.3)
    if "lone" in c.applied("n1"):
        raise Failed("n1 applied 'lone', which only n1 and n3 store: as leader of "
                     "term 3 it counted n2 as matching index 3, as n2 acked in term "
                     "1, but n2's log has changed since (become_leader sets every "
                     "match_index to 0)")
    c.configure(election_timeout=(0.150, 0.300))
    finish(c)


def late_in_term4(msg, lead: str, f: str) -> float:
    """late_acks' adversary: f's successful acks of term 4 reach lead 1 s late."""
    return 1.0 if (msg.kind == "append_entries_ok" and msg.src == f and msg.dst == lead
                   and msg.body.get("term") == 4 and msg.body.get("success")) else 0.0


def stale_candidates(t: Trial) -> None:
    """After the leader crashes, a server whose log is behind campaigns every
    100-110 ms; it can never win, and the up-to-date server must still time out
    and win. `behind` was cut off while three commands committed on the leader
    and `ahead`; then the leader crashes. `ahead` refuses the votes (§5.4.1) and
    must not re-arm its election timer when refusing: only a granted vote or
    the current leader's append_entries re-arms it (§5.2), else the requests
    keep it from ever timing out and nobody leads."""
    stale_campaign(t, crash="leader")


def deposed_by_stale(t: Trial) -> None:
    """As stale_candidates, but `ahead` crashes and the leader stays up: the
    first request_vote of `behind`, with its newer term, deposes the leader,
    which refuses the vote (§5.4.1). It is the only server that can win now,
    so it must time out and campaign: a leader stepping down re-arms its
    election timer (it stopped it when it became leader), else nobody ever
    leads again."""
    stale_campaign(t, crash="ahead")


def stale_campaign(t: Trial, crash: str) -> None:
    """`behind` misses three commands, then campaigns every 100-110 ms after
    `crash` ("leader" or "ahead") crashed; the other live server must win."""
    c = start(t, 3)
    leader = one_leader(c)
    behind, ahead = c.sim.rng("lab.stale_candidates").sample(others(c, leader), 2)
    c.disconnect(behind)
    for i in range(3):
        agree(c, f"while {behind} was away {i}", 2)
    if crash == "leader":
        c.connect(behind)
        c.node(behind).tune(election_timeout=(0.100, 0.110))
        c.kill(leader)
        live = ahead
    else:
        c.node(behind).tune(election_timeout=(0.100, 0.110))
        c.kill(ahead)
        c.run(0.25)                         # behind campaigns: its term passes
        c.connect(behind)                   # the leader's, its log stays behind
        live = leader
    why = (f" after the leader {leader} crashed" if crash == "leader" else
           f" after {ahead} crashed and {behind}'s newer term deposed the leader "
           f"{leader}")
    why += f", with {behind} (its log behind) campaigning every 100-110 ms"
    if crash != "leader":
        why += (f": {leader} must time out and win (a leader stepping down "
                "re-arms its election timer)")
    one_leader(c, [behind, live], context=why)
    c.node(behind).tune(election_timeout=(0.150, 0.300))
    finish(c)


def unreliable_agreement(t: Trial) -> None:
    """Thirty commands over a network that loses, duplicates and reorders messages:
    applied in one order everywhere."""
    c = start(t, 5, **UNRELIABLE)
    one_leader(c, within=5.0)
    for i in range(30):
        c.sim.at(c.now + 0.03 * i, c.submit, i)
    c.run(1.5)
    finish(c)


def kv_partitions(t: Trial) -> None:
    """A key-value store on your Raft, three clients, a partition every second: the
    history is linearizable."""
    c = start(t, 5, kv=True, loss=0.05)
    one_leader(c)
    c.workload(3, until=c.now + 4.0)
    rng = c.sim.rng("lab.kv_partitions")
    for _ in range(4):
        names = c.names
        rng.shuffle(names)
        c.partition(names[:2], names[2:])
        c.run(1.0)
    heal_all(c)
    c.run(3.0)
    linearizable(c)


def linearizable(c: KVCluster) -> None:
    """Fail unless the clients' history is linearizable and most of it returned."""
    done = sum(op.ret is not None for op in c.history)
    if done < len(c.history) // 2 or done < 5:
        raise Failed(f"only {done} of {len(c.history)} client operations completed: "
                     "the clients need a leader that commits their commands")
    verdict = c.linearizable()
    if not verdict.ok:
        raise Failed("the key-value history is not linearizable: "
                     + "; ".join(verdict.explain().splitlines()))
    c.check()
