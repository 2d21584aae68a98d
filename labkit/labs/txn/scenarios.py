"""The txn lab's graded scenarios: transfers between accounts on three or four
nodes while coordinators and participants crash at every step of the
protocol (and restart), a participant is partitioned away, and the network
loses, duplicates and reorders messages, on 5-15 ms of jitter and 2 ms
forced writes. Some stories are arranged by hand so that they happen on
every seed: a participant crashing right after its ack while its coordinator
forgets the transaction, a begin delivered twice around a coordinator's
crash, a coordinator back from a crash whose participants' inquiries are
lost, three sagas meeting on one row, and a compensation sent to a node that
is down.

Each runs the student's class in a `TxnCluster` whose referee (see
`base.Referee`) checks the rules at every message and every log record. A
scenario then heals every fault, lets the system settle and checks what the
referee cannot see on its own: every transaction decided and known to the
client, no row left locked, and the balances exactly the opening balances
plus the legs of the transactions that committed (for a saga: that ended
done), so money is conserved and nothing is applied twice or lost; last,
labkit's own `TxnCluster.check` (atomicity, no lost commits, conservation).
It raises `Failed` with the reason. Randomness comes from the cluster's own
seeded streams, so `lk.labs.replay` replays a run exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit import dist
from labkit.net import Message, NetConfig
from labkit.txn import TxnCluster
from labkit.txn.base import CLIENT, Trap

from ..lab import Failed, Trial
from .base import referee_of

LATENCY = dist.uniform(0.005, 0.015)
SETTLE = 5.0                 # seconds everything has, once healed, to finish
RESEND = 0.1                 # seconds a restarted coordinator has to resend


class Bank:
    """The student's nodes in a TxnCluster, the referee, and the scenario's
    own random stream."""

    def __init__(self, t: Trial, protocol: str, participants: int = 3,
                 fail_step: int | None = None, **net: Any):
        self.c = t.watch(TxnCluster(protocol, participants, seed=t.seed,
                                    node=t.impl, fsync=0.002, fail_step=fail_step,
                                    net=NetConfig(latency=LATENCY, **net)))
        self.referee = referee_of(self.c.network)
        self.rng = self.c.sim.rng("lab.txn")

    def transfers(self, n: int, over: float, most: int = 60) -> None:
        """Submit `n` transfers of 1..`most` between accounts of different nodes
        at random moments of the next `over` seconds (some overdraw, some meet
        on a locked row: they abort)."""
        c, rng = self.c, self.rng
        for _ in range(n):
            src = rng.choice(c.accounts)
            dst = rng.choice([a for a in c.accounts if c.owner(a) != c.owner(src)])
            c.sim.schedule(rng.uniform(0.0, over), c.transfer, src, dst,
                           rng.randint(1, most))

    def sagas(self, n: int, over: float) -> None:
        """Submit `n` sagas at random moments of the next `over` seconds: a debit
        on one node's account, then a credit on an account of one to all of the
        other nodes (so a saga has 2 to 4 steps)."""
        c, rng = self.c, self.rng
        for _ in range(n):
            src = rng.choice(c.accounts)
            others = [p for p in c.participants if p != c.owner(src)]
            credits = [rng.choice([a for a in c.accounts if c.owner(a) == p])
                       for p in rng.sample(others, rng.randint(1, len(others)))]
            each = rng.randint(1, 30)
            legs = ((src, -each * len(credits)), *((a, each) for a in credits))
            c.sim.schedule(rng.uniform(0.0, over), c.submit, legs)

    def crash(self, point: str, node: str | None = None, down: float = 0.3) -> None:
        self.c.crash_at(point, node=node, restart_after=down)

    def transfer(self, src: str, dst: str) -> str:
        """Submit one transfer of 1..60 from account `src` to account `dst`."""
        return self.c.transfer(src, dst, self.rng.randint(1, 60))

    def account(self, node: str) -> str:
        """One of `node`'s accounts, at random."""
        return self.rng.choice(self.c.world.accounts_of(node))

    def forget_ended(self, name: str) -> None:
        """A checkpoint at `name`, as presumed abort allows a coordinator: once
        every participant acknowledged a commit, the coordinator may forget the
        transaction. The log is forced, then the "decided" and "end" records of
        every ended transaction are dropped; an inquiry about one of them now
        finds no trace, and hears abort."""
        node = self.c.nodes[name]

        def drop() -> None:
            ended = {r[1] for r in node.records("end")}
            node.disk["log"] = [r for r in node.disk["log"] if not (
                r[0] in ("decided", "end") and r[1] in ended)]
        node.force("checkpoint", None, then=drop)

    def random_crashes(self, n: int) -> None:
        points = ("coordinator.before_prepare", "coordinator.after_votes",
                  "coordinator.after_decision", "participant.before_vote",
                  "participant.after_vote")
        for _ in range(n):
            self.crash(self.rng.choice(points), self.rng.choice(self.c.participants),
                       self.rng.uniform(0.05, 0.4))

    def verdict(self) -> None:
        """Heal, settle, then check what happened (see the module docstring)."""
        c = self.c
        c.network.update(duplicate=0.0, reorder=0.0)
        c.world.traps.clear()
        c.heal()
        c.network.update(loss=0.0)
        end = c.now + SETTLE
        while c.now < end and (self._open() or c.unsettled()):
            for name in c.names:
                c.restart(name)
            c.run(0.1)
        unknown, held = self._open(), self._held()
        if unknown or held:
            raise Failed(
                f"undecided: {SETTLE:g} s after every fault healed, "
                + "; ".join(filter(None, (
                    f"the client still does not know how {', '.join(unknown)} "
                    "ended" if unknown else "",
                    ", ".join(held) if held else "")))
                + ". Every transaction must end once the faults heal: a participant "
                "in doubt asks its coordinator until it hears, a coordinator resends "
                "its decision until acknowledged, a saga retries each request until "
                "answered")
        self._balances()
        c.check()

    def _open(self) -> list[str]:
        return [t for t, r in self.c.client.records.items() if r.outcome is None]

    def _held(self) -> list[str]:
        c = self.c
        return [f"{name} holds {account} for {txn}" for name in c.names
                for account, txn in c.nodes[name].locks.items()]

    def _balances(self) -> None:
        c, referee = self.c, self.referee
        if c.protocol == "2pc":
            committed = referee.decided
        else:
            committed = {t for t, done in referee.ended.items() if done}
        expected = dict.fromkeys(c.accounts, c.config.balance)
        for txn, record in c.client.records.items():
            told = record.outcome == "committed"
            if told != (txn in committed):
                raise Failed(f"atomicity: the client was told {txn} {record.outcome}"
                             f", but it {'did' if txn in committed else 'did not'} "
                             "commit")
            if txn in committed:
                for account, delta in record.legs:
                    expected[account] += delta
        actual = c.balances()
        wrong = {a: (actual[a], expected[a]) for a in expected
                 if actual[a] != expected[a]}
        if wrong:
            raise Failed(
                "money: the balances are not the opening balances plus the legs of "
                f"the committed transactions, (actual, expected): {wrong}; a leg was "
                "applied without its transaction committing, twice, or never")


# -- two_phase ------------------------------------------------------------------------

def no_faults(t: Trial) -> None:
    """Transfers among three nodes, no faults: some commit, some abort (an
    overdraft, or a row another transfer holds)."""
    b = Bank(t, "2pc")
    b.transfers(16, 1.0)
    b.c.run(1.5)
    b.verdict()


def crashes(t: Trial, *points: tuple[str, str | None, float]) -> None:
    """Ten transfers over 1 s with crashes armed at (point, node or None for
    the first to get there, seconds down)."""
    b = Bank(t, "2pc")
    for point, node, down in points:
        b.crash(point, node, down)
    b.transfers(10, 1.0)
    b.c.run(1.5)
    b.verdict()


def coordinator_crash_before_prepare(t: Trial) -> None:
    """A coordinator crashes on receiving a transfer, before any prepare, and
    restarts 0.3 s later: the client's ask meets presumed abort."""
    crashes(t, ("coordinator.before_prepare", None, 0.3))


def coordinator_crash_after_votes(t: Trial) -> None:
    """A coordinator crashes with every vote yes and no decision, and restarts
    0.3 s later: its participants wait in doubt, then learn abort."""
    crashes(t, ("coordinator.after_votes", None, 0.3))


def coordinator_crash_after_decision(t: Trial) -> None:
    """A coordinator crashes with its commit on disk and nothing sent, and
    restarts 0.3 s later: its participants wait in doubt; it resends commit."""
    crashes(t, ("coordinator.after_decision", None, 0.3))


def coordinator_resends_after_crash(t: Trial) -> None:
    """A coordinator crashes with its commit on disk and nothing sent, and
    restarts 0.3 s later, while every inquiry from its participants is lost:
    only its own resend can finish the transfer. On restart a coordinator
    resends its decision and tells the client; it does not wait to be asked.

    t1 debits n1 and credits n2 and n3; n1 decides commit and crashes. At
    0.2 s (n1 is down) the links from n2 and n3 to n1 are cut, so their
    inquiries (and acks) never arrive. Within 0.1 s (a timeout) of n1's
    return, n2 and n3 must have heard commit and the client its outcome. Then
    the links heal and six more transfers run."""
    b = Bank(t, "2pc")
    c, n1 = b.c, b.c.nodes["n1"]
    c.crash_at("coordinator.after_decision", node="n1", txn="t1", restart_after=0.3)
    c.submit(((b.account("n1"), -20), (b.account("n2"), 10), (b.account("n3"), 10)))
    c.run(0.2)
    crashed = not n1.alive
    c.network.block("n2", "n1")
    c.network.block("n3", "n1")
    while not n1.alive and c.now < 1.0:
        c.run(0.005)
    c.run(RESEND)
    if crashed and "t1" in b.referee.decided:
        missing = [p for p in ("n2", "n3") if b.referee.told.get((p, "t1")) != "commit"]
        if c.client.records["t1"].outcome is None:
            missing.append("the client")
        if missing:
            raise Failed(
                f"resend after recovery: n1 came back from its crash with the commit "
                f"of t1 on disk and no end record, but {RESEND:g} s later "
                f"{' and '.join(missing)} had not heard it (their inquiries to n1 are "
                "lost). After a restart the coordinator itself resends each "
                "unfinished decision to the participants that have not acknowledged "
                "it, and tells the client: it does not wait to be asked")
    c.heal()
    b.transfers(6, 0.5)
    c.run(0.8)
    b.verdict()


def participant_crash_before_vote(t: Trial) -> None:
    """Participants crash on receiving a prepare and restart 0.3 s later: the
    coordinator's vote timer aborts the transfer."""
    crashes(t, ("participant.before_vote", "n2", 0.3),
            ("participant.before_vote", "n3", 0.3))


def participant_crash_after_vote(t: Trial) -> None:
    """Participants crash right after voting yes and restart 0.2 s later: each
    must lock its rows again, ask, and apply the commit."""
    crashes(t, ("participant.after_vote", "n2", 0.2),
            ("participant.after_vote", "n3", 0.2))


def participant_crash_after_ack(t: Trial) -> None:
    """A participant crashes right after acknowledging a commit and restarts
    0.3 s later, while its coordinator, every ack in, forgets the transfer
    (presumed abort lets it): the participant's log must hold the commit.

    n2 acknowledges t1 (n1 to n2) and crashes at once; at 0.2 s n1 drops its
    records of t1. Had n2 acknowledged before its commit record was durable,
    it would come back in doubt, ask, and hear abort. Then eight more
    transfers."""
    b = Bank(t, "2pc")
    b.c.world.traps.append(Trap("participant.after_ack", "n2", "t1", 0.3))
    b.transfer(b.account("n1"), b.account("n2"))    # t1, by n1: it commits
    b.c.run(0.2)                            # n2 acked and crashed, n1 ended t1
    b.forget_ended("n1")
    b.transfers(8, 1.0)
    b.c.run(1.3)
    b.verdict()


def partitioned_participant(t: Trial) -> None:
    """A participant is cut off from the others for 0.4 s while transfers run."""
    b = Bank(t, "2pc")
    b.transfers(10, 1.0)
    b.c.run(b.rng.uniform(0.1, 0.4))
    victim = b.rng.choice(b.c.participants)
    b.c.partition([victim], [p for p in b.c.participants if p != victim])
    b.c.run(0.4)
    b.c.heal()
    b.c.run(0.8)
    b.verdict()


def late_duplicate_begin(t: Trial) -> None:
    """A transfer's begin arrives twice, the copy 0.6 s late, after its
    coordinator aborted it, crashed and came back: it must not run again.

    t1 (n2 to n1) holds n1's row: n2 crashes with t1 decided and returns 0.4 s
    later. Meanwhile t2 (n1 to n3) needs that row, so n1 votes no and tells
    the client t2 aborted (its messages to n3 are cut), then crashes and
    returns. The network's copy of t2's begin arrives when the row is free: n1
    must know t2 ended, or it commits what the client was told aborted."""
    b = Bank(t, "2pc")
    c, row = b.c, b.account("n1")
    c.crash_at("coordinator.after_decision", node="n2", txn="t1", restart_after=0.4)
    b.transfer(b.account("n2"), row)        # t1: n1 locks the row, waits for n2
    c.run(0.1)
    c.network.block("n1", "n3")
    c.network.adversary = late_copy("begin", "t2", 0.6)
    c.network.set_link(CLIENT, "n1", duplicate=1.0)
    b.transfer(row, b.account("n3"))        # t2, by n1: the row is held, abort
    c.network.clear_link(CLIENT, "n1")
    c.run(0.1)
    c.kill("n1")
    c.heal()
    c.run(0.05)
    c.restart("n1")                         # then n2 returns, and t1 commits
    c.run(0.75)                             # the copy of t2's begin arrives
    c.network.adversary = None
    b.verdict()


def late_copy(kind: str, txn: str, delay: float) -> Callable[[Message], float]:
    """An adversary that holds back every copy but the first of a message of
    `kind` for `txn` (the network duplicates it) by `delay` seconds."""
    seen: list[int] = []

    def hold(msg: Message) -> float:
        if msg.kind != kind or msg.body.get("txn") != txn:
            return 0.0
        seen.append(msg.id)
        return delay if len(seen) > 1 else 0.0
    return hold


def unreliable_network(t: Trial) -> None:
    """Transfers on a network that loses 10% and duplicates and reorders 20% of
    messages, while nodes crash at random steps and restart."""
    b = Bank(t, "2pc", loss=0.1, duplicate=0.2, reorder=0.2)
    b.random_crashes(5)
    b.transfers(20, 1.5)
    b.c.run(2.0)
    b.verdict()


# -- saga ----------------------------------------------------------------------------

def saga_no_faults(t: Trial) -> None:
    """Sagas over four nodes, no faults: each debits one account and credits
    accounts on other nodes; one that would overdraw is compensated."""
    b = Bank(t, "saga", 4)
    b.sagas(10, 1.0)
    b.c.run(1.5)
    b.verdict()


def saga_step_fails(t: Trial) -> None:
    """Step 2 of every saga of three or more steps fails: steps 1 and 0 are
    compensated, newest first."""
    b = Bank(t, "saga", 4, fail_step=2)
    b.sagas(6, 1.0)
    b.c.run(1.5)
    b.verdict()


def saga_contention(t: Trial) -> None:
    """Three sagas credit the same row at the same instant, with money enough
    for all: the row answers "busy" to all but the first, and every one must
    commit. Busy means another saga holds the row for a moment: try the same
    step again after a backoff; it is not a failed step. The first busy answer
    is held back past the saga's timeout: the retry of that credit is done
    first, and the busy (the answer to the earlier copy) arrives after it, a
    moment before the retry's "ok". Even then busy only means try again: the
    credit is done, and failing the step would compensate the debit and leave
    the credit in place.

    t1 (by n1), t2 (by n3) and t3 (by n4) each debit 10 from an account of
    their orchestrator, then credit 10 to the same account of n2; the links
    from the client and to and from n2 are steady (10 ms), so the three
    credits reach n2 together. Then six more sagas, some of which fail at
    step 2."""
    b = Bank(t, "saga", 4, fail_step=2)
    c, row = b.c, b.account("n2")
    by = ("n1", "n3", "n4")
    for node in by:
        c.network.set_link(CLIENT, node, latency=0.01)
        c.network.set_link(node, "n2", latency=0.01)
        c.network.set_link("n2", node, latency=0.01)
    contended = [c.submit(((b.account(node), -10), (row, 10))) for node in by]
    late: dict[str, float] = {}     # the saga whose busy is held -> its arrival
    hold = 2 * c.config.timeout

    def compensates(node: Any) -> None:
        """Fail as soon as orchestrator `node` asks for a compensation of a
        contended saga (before it leaves: to itself it takes no network hop)."""
        tell = node.tell

        def watched(dst: str, kind: str, **body: Any) -> None:
            txn = body.get("txn")
            if kind == "saga_undo" and txn in contended:
                raise Failed(
                    f"busy is not failure: at t = {c.now:.3f} s {txn} began to "
                    f"compensate, though its credit to {row} " + (
                        "was done by a retry: the busy answer to an earlier copy "
                        f"of it, held back {hold:g} s, arrived after the retry "
                        "had credited the row, and compensating now would leave "
                        "that credit in place. An answer may belong to an "
                        "earlier copy of the request" if txn in late else
                        "only found the row held for a moment by another saga, "
                        "and there was money enough for all three")
                    + ". A 'busy' answer means try the same step again after "
                    "backoff(); only 'failed' fails a step")
            tell(dst, kind, **body)
        node.tell = watched

    def late_busy(msg: Message) -> float:
        txn = msg.body.get("txn")
        if msg.kind != "saga_do_ok" or msg.src != "n2" or txn not in contended:
            return 0.0
        if msg.body.get("result") == "busy" and not late:
            late[txn] = c.now + 0.01 + hold
            return hold
        if txn in late and msg.body.get("result") == "ok":
            return max(0.0, late[txn] + 0.02 - c.now - 0.01)
        return 0.0
    nodes = [c.nodes[name] for name in by]
    for node in nodes:
        compensates(node)
    c.network.adversary = late_busy
    c.run(0.3)
    c.network.adversary = None
    for node in nodes:
        del node.tell                       # the class's own again
    for node in by:
        c.network.clear_link(CLIENT, node)
        c.network.clear_link(node, "n2")
        c.network.clear_link("n2", node)
    b.sagas(6, 1.0)
    c.run(1.3)
    b.verdict()
    aborted = [txn for txn in contended
               if c.client.records[txn].outcome != "committed"]
    if aborted:
        raise Failed(
            f"busy is not failure: {' and '.join(aborted)} ended compensated, though "
            f"their credit to {row} only found the row held for a moment by another "
            "saga and there was money enough for all three. A 'busy' answer means "
            "try the same step again after backoff(); only 'failed' fails a step")


def saga_compensation_lost(t: Trial) -> None:
    """A saga fails at step 2 while the node that did its step 1 is down, so
    the first request to compensate step 1 is lost: the orchestrator must
    retry a compensation, as it retries a step, until it is answered.

    t1 (by n1) debits n1 and credits n2 and n3, and step 2 fails. n2 crashes
    right after answering step 1 and restarts 0.4 s later: the compensation
    of step 1 reaches a node that is down. Then six more sagas."""
    b = Bank(t, "saga", 4, fail_step=2)
    c = b.c
    c.crash_at("participant.after_vote", node="n2", txn="t1", restart_after=0.4)
    c.submit(((b.account("n1"), -20), (b.account("n2"), 10), (b.account("n3"), 10)))
    c.run(0.2)
    b.sagas(6, 1.0)
    c.run(1.3)
    b.verdict()


def saga_crashes(t: Trial) -> None:
    """Orchestrators and participants crash after a step, after deciding and
    before a step, and restart, while some sagas fail at step 2."""
    b = Bank(t, "saga", 4, fail_step=2)
    for point in ("coordinator.after_votes", "participant.after_vote",
                  "coordinator.after_decision", "participant.before_vote",
                  "coordinator.after_votes"):
        b.crash(point, None, b.rng.uniform(0.05, 0.3))
    b.sagas(8, 1.0)
    b.c.run(1.5)
    b.verdict()


def saga_unreliable_network(t: Trial) -> None:
    """Sagas on a network that loses 20% and duplicates and reorders 30% of
    messages, some failing at step 2: every request is retried until answered,
    and a repeat is never applied twice."""
    b = Bank(t, "saga", 4, fail_step=2, loss=0.2, duplicate=0.3, reorder=0.3)
    b.sagas(12, 1.0)
    b.c.run(2.0)
    b.verdict()
