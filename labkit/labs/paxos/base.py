"""What a Paxos lab answer is given: `PaxosBase`, an acceptor or proposer
with everything but the protocol, and the `Referee` that watches it. (In a
`MultiPaxosCluster` the same class is a replica: `multi_base`.)

The referee trusts nothing a node claims about itself: it sees every message
a node sends. From promises and acceptances it checks each acceptor's rules
(never promise below a promise, never accept below a promise, report the last
acceptance truthfully); from prepares that ballots are unique to a proposer
and only grow; from a majority of acceptances in one ballot which value is
chosen (at most one, and one a client proposed). A proposer may decide only a
chosen value. It raises `InvariantViolation` at the message that broke a
rule, so a failure points at its cause.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from labkit.errors import InvariantViolation
from labkit.net import Message, Network
from labkit.node import Node
from labkit.paxos import LogSettings, Settings, majority

from .multi_base import ReplicaBase
from .wire import PromiseLedger, check_new_ballot


def _copy(value: Any) -> Any:
    """A copy of a disk value: lists, dicts and sets copied, what they hold
    shared (ballots, slots and values are immutable; NOOP stays itself)."""
    return type(value)(value) if isinstance(value, list | dict | set) else value


GHOSTS = ("history", "heard", "learned", "learned_at")   # the referee's, kept on crash
CHECKED = {"proposer": ("prepare", "accept"), "acceptor": ("promise", "accepted")}


class Referee(PromiseLedger):
    """What the wire showed, for one cluster: per acceptor the highest ballot
    it promised or accepted and the (ballot, value) it last accepted; per
    ballot its proposer and the acceptors that accepted it; the values clients
    proposed. It survives every crash (it is the grader's, not a node's).
    To name the cause of a broken promise it also keeps, per acceptor, the
    highest ballot it promised in so many words (`pledged`) and how often it
    crashed before it reached its `promised` ballot."""

    def __init__(self, n: int):
        super().__init__()
        self.need = majority(n)
        self.accepted: dict[str, tuple[int, Any]] = {}
        self.owner: dict[int, str] = {}
        self.started: dict[str, int] = {}
        self.votes: dict[int, tuple[Any, list[str]]] = {}
        self.proposed: set = set()

    def chosen(self) -> dict[int, tuple[Any, list[str]]]:
        """{ballot: (value, acceptors)} of every ballot a majority accepted."""
        return {b: va for b, va in self.votes.items() if len(va[1]) >= self.need}

    def sent(self, node: PaxosBase, dst: str, kind: str, body: dict) -> None:
        """Check one message `node` sends; raise InvariantViolation if it breaks
        a rule."""
        if kind in CHECKED[node.role]:
            getattr(self, "_" + kind)(node, body)

    def _prepare(self, node: PaxosBase, body: dict) -> None:
        src, b = node.name, body.get("ballot")
        if b == self.started.get(src) and self.crashed_since(src):
            raise InvariantViolation(
                f"ballot freshness: {src} started ballot {b} again after a crash; "
                "each new ballot must exceed every ballot this proposer used, also "
                "across a crash (persist it before sending the prepare)")
        check_new_ballot(self.owner, self.started, src, b, "prepare")
        self.crashes_then[src] = self.crashes.get(src, 0)

    def _accept(self, node: PaxosBase, body: dict) -> None:
        src = node.name
        if body.get("value") not in self.proposed:
            raise InvariantViolation(
                f"validity: {src} asked the acceptors to accept "
                f"{body.get('value')!r}, which no client proposed")

    def _promise(self, node: PaxosBase, body: dict) -> None:
        src = node.name
        b, before = body.get("ballot"), self.promised.get(src, 0)
        if type(b) is not int or b < before:
            rule = self.cause(src, "promise rule", node.disk.get("promised"))
            raise InvariantViolation(
                f"{rule}: {src} promised ballot {b!r} "
                f"after it had {self._how(src)}; an acceptor never "
                "promises a ballot below one it promised or accepted (answer with a "
                "nack)")
        report = (body.get("accepted_ballot"), body.get("accepted_value"))
        last = self.accepted.get(src, (0, None))
        if report != last:
            raise InvariantViolation(
                f"promise report: {src} promised ballot {b} reporting {report} as "
                f"the last (ballot, value) it accepted, but it had accepted {last}; "
                "a promise carries the acceptor's last acceptance, which must be on "
                "disk before it answers anything")
        self._bound(src, b)
        self.pledged[src] = b

    def _accepted(self, node: PaxosBase, body: dict) -> None:
        src = node.name
        b, value = body.get("ballot"), body.get("value")
        before = self.promised.get(src, 0)
        if type(b) is not int or b < before:
            rule = self.cause(src, "accept rule", node.disk.get("promised"))
            raise InvariantViolation(
                f"{rule}: {src} accepted ballot {b!r} "
                f"after it had {self._how(src)}; an acceptor accepts "
                "only ballots at least as high as every ballot it promised or "
                "accepted (answer with a nack)")
        self._bound(src, b)
        self.accepted[src] = (b, value)
        known, names = self.votes.setdefault(b, (value, []))
        if known != value:
            raise InvariantViolation(f"ballot uniqueness: ballot {b} carried two "
                                     f"values, {known!r} and {value!r}")
        if src not in names:
            names.append(src)
        values = {v for v, _ in self.chosen().values()}
        if len(values) > 1:
            raise InvariantViolation(
                f"agreement: two values were chosen, {self._story()}; a new ballot "
                "must propose the value of the highest ballot the promises report")

    def _story(self) -> str:
        return ", ".join(f"{v!r} in ballot {b} (by {', '.join(names)})"
                         for b, (v, names) in sorted(self.chosen().items()))

    def decided(self, src: str, value: Any) -> None:
        if value not in {v for v, _ in self.chosen().values()}:
            votes = {b: names for b, (v, names) in self.votes.items() if v == value}
            raise InvariantViolation(
                f"quorum: {src} decided {value!r}, but no majority ({self.need}) of "
                f"the acceptors accepted it in one ballot (accepted by: "
                f"{votes or 'nobody'}); count accepts until a majority")


_REFEREES: WeakKeyDictionary[Network, Referee] = WeakKeyDictionary()


class PaxosBase(ReplicaBase, Node):
    """One Paxos node of the lab, acceptor or proposer: everything but the
    protocol.

    Given to both roles: `role` ("acceptor" or "proposer"), `acceptors`,
    `proposers` (names), `majority` (of the acceptors), `send(dst, kind,
    **fields)`, and `self.disk` with `persist()`: a change to the disk
    reaches stable storage only at `persist()`, like a write and an fsync,
    and a crash loses every change since. Persist before you send anything
    that depends on a change.

    An acceptor's disk: disk["promised"] (the highest ballot promised, 0 at
    first) and disk["accepted"] (the (ballot, value) last accepted, (0, None)
    at first).

    A proposer's disk: disk["ballot"] (the last ballot it used, 0 at first).
    Its volatile state, reset on every restart: `index` (1..len(proposers)),
    `value` (what its client asked for, or None), `phase` ("idle", "prepare",
    "accept", "backoff" or "done"), `ballot` (the current one), `highest`
    (the highest ballot seen anywhere), `promises` ({acceptor: (ballot,
    value) it reported}), `accepts` (acceptors that accepted this ballot) and
    `proposal` (the value of this ballot's phase 2). Given: `arm_timeout()`
    (retry this ballot if it has not finished within settings.timeout),
    `retry_later()` (a new ballot after a random backoff) and `decide(value)`
    (the value is chosen: learn it and announce it to everyone who learns).

    Built by `MultiPaxosCluster` (part `multi`), the same class is a
    Multi-Paxos replica instead: see `ReplicaBase` for what it is given.
    """

    def __init__(self, name: str, net: Network, settings: Settings | LogSettings):
        self.settings = settings
        self.multi = isinstance(settings, LogSettings)
        self._stable: dict[str, Any] = {}
        self._trap: tuple | None = None
        self._dying = False
        if self.multi:
            self._init_replica(name, net, settings)
        else:
            self.acceptors, self.proposers = settings.acceptors, settings.proposers
            self.role = "proposer" if name in self.proposers else "acceptor"
            self.index = self.proposers.index(name) + 1 \
                if self.role == "proposer" else 0
            self.majority = majority(len(self.acceptors))
            self.referee = _REFEREES.setdefault(net, Referee(len(self.acceptors)))
            self.rng = net.sim.rng(f"paxos.{name}")
        super().__init__(name, net)

    def reset(self) -> None:
        if self.multi:
            self._reset_replica()
            return
        disk = self.disk
        if self.role == "acceptor":
            if "promised" not in disk:
                disk.update(promised=0, accepted=(0, None), history=[])
                self.persist()
            return
        if "ballot" not in disk:
            disk.update(ballot=0, heard=[], learned=None, learned_at=None)
            self.persist()
        self.value: Hashable | None = None
        self.phase, self.ballot, self.highest = "idle", 0, disk["ballot"]
        self.promises: dict[str, tuple[int, Any]] = {}
        self.accepts: list[str] = []
        self.proposal: Hashable | None = None
        self.unacked: list[str] = []
        if disk["learned"] is not None:
            self.decide(disk["learned"])        # and tell whoever may have missed it

    def persist(self) -> None:
        """Write `self.disk` to stable storage (an fsync): what a crash keeps."""
        if not self._dying:
            self._stable = {k: _copy(v) for k, v in self.disk.items()
                            if k not in GHOSTS}

    # -- the proposer's given helpers ----------------------------------------
    def propose(self, value: Hashable) -> None:
        """A client asks this proposer to get `value` chosen."""
        self.referee.proposed.add(value)
        if self.phase == "done":
            return
        if self.value is None:
            self.value = value
        if self.phase == "idle":
            self.prepare()

    def arm_timeout(self) -> None:
        """If the current ballot has not finished within settings.timeout
        seconds, retry with a new one (after a backoff)."""
        self.set_timer("retry", self.settings.timeout, self._stalled, self.ballot)

    def _stalled(self, ballot: int) -> None:
        if ballot == self.ballot and self.phase in ("prepare", "accept"):
            self.retry_later()

    def retry_later(self) -> None:
        """Give up this ballot; call `prepare()` after a random backoff."""
        self.phase = "backoff"
        self.set_timer("retry", self.rng.uniform(*self.settings.backoff),
                       self._again)

    def _again(self) -> None:
        if self.phase == "backoff":
            self.prepare()

    def decide(self, value: Hashable) -> None:
        """`value` is chosen: remember it and announce it until every learner and
        every other proposer acknowledges."""
        self.referee.decided(self.name, value)
        self.phase = "done"
        self.cancel_timer("retry")
        self._learn(value)
        s = self.settings
        self.unacked = [n for n in (*s.learners, *s.proposers) if n != self.name]
        self._announce()

    def _learn(self, value: Hashable) -> None:
        disk = self.disk
        if value not in disk["heard"]:
            disk["heard"].append(value)
        if disk["learned"] is None:
            disk["learned"], disk["learned_at"] = value, self.sim.now
            self.persist()

    def _announce(self) -> None:
        for name in self.unacked:
            self.send(name, "chosen", value=self.disk["learned"])
        if self.unacked:
            self.set_timer("announce", self.settings.timeout, self._announce)

    def on_learned(self, msg: Message) -> None:
        if msg.src in self.unacked:
            self.unacked.remove(msg.src)

    def on_chosen(self, msg: Message) -> None:
        self._learn(msg.value)
        if self.phase != "done":
            self.phase = "done"
            self.cancel_timer("retry")
        self.send(msg.src, "learned")

    # -- the referee and crashes -----------------------------------------------
    def deliver(self, msg: Message) -> None:
        super().deliver(msg)
        if self.multi and self.alive:
            self.apply_chosen()         # what became chosen is applied at once

    def send(self, dst: str, kind: str, **body: Any) -> Message | None:
        if self._dying:              # crashed in mid-handler: nothing more leaves
            return None
        if self.multi:
            value = self.referee.sent(self, dst, kind, body)
            if kind == "p2b" and body.get("promised") == body.get("ballot"):
                self.disk["history"].append(
                    (self.sim.now, body.get("slot"), body.get("ballot"), value))
        else:
            self.referee.sent(self, dst, kind, body)
            if kind == "accepted" and self.role == "acceptor":
                self.disk.setdefault("history", []).append(
                    (self.sim.now, body.get("ballot"), body.get("value")))
        msg = super().send(dst, kind, **body)
        trap = self._trap
        if trap is not None and kind in trap[0]:
            self._trap, self._dying = None, True
            self.sim.schedule(0.0, trap[1])
        return msg

    def crash_after_sending(self, kinds: Sequence[str],
                            crash: Callable[[], None]) -> None:
        """For graders: right after this node sends a message of one of `kinds`
        it has crashed: nothing more it sends leaves, no later persist() reaches
        the disk, and `crash()`, which must kill it, runs next."""
        self._trap = (tuple(kinds), crash)

    def kill(self) -> None:
        """Crash: volatile state, and every change not persisted, is lost (the
        referee's ghosts stay)."""
        if self.alive:
            super().kill()
            self.referee.crashed(self.name)
            ghosts = {k: self.disk[k] for k in GHOSTS if k in self.disk}
            self.disk = {**{k: _copy(v) for k, v in self._stable.items()}, **ghosts}
            self._trap, self._dying = None, False
