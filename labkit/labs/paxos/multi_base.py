"""What a Multi-Paxos answer is given (part `multi` of the Paxos lab): the
plumbing of a replica (`ReplicaBase`), its key-value state machine (`KV`),
and the `MultiReferee` that watches the wire.

A replica is acceptor and learner for every slot of a log, and proposer
while it leads. The student writes the protocol; the base keeps timers,
heartbeats, retransmission of unanswered accepts, catching followers up with
chosen values, and the state machine, and referees: it sees every p1a, p1b,
p2a and p2b a node sends and every command it applies, and raises
`InvariantViolation` at the message that broke a rule. Message kinds follow
van Renesse and Altinbuken, "Paxos Made Moderately Complex" (p1a, p1b, p2a,
p2b), so they never meet the single-decree part's handlers.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from labkit.errors import InvariantViolation
from labkit.net import Message, Network
from labkit.paxos import NOOP, PIGGYBACK, LogSettings, majority

from .wire import PromiseLedger, check_new_ballot


@dataclass
class Proposal:
    """A leader's phase 2 for one slot: the value, the acceptors that accepted
    it in the current ballot, and when its p2a last went out."""

    value: Hashable
    acks: list[str] = field(default_factory=list)
    sent: float = 0.0


class KV:
    """The replicated state machine: a key-value store. A command
    (op_id, "put" | "append" | "get", key, value) runs once per op_id (a
    client's retry that lands in a second slot returns the first answer); any
    other command (e.g. "x=1" from a notebook) is only logged."""

    def __init__(self):
        self.data: dict[Hashable, Any] = {}
        self.done: dict[Hashable, Any] = {}

    def execute(self, command: Hashable) -> Any:
        if not (isinstance(command, tuple) and len(command) == 4
                and command[1] in ("put", "append", "get")):
            return None
        op, kind, key, value = command
        if op not in self.done:
            if kind == "put":
                self.data[key] = value
            elif kind == "append":
                self.data[key] = self.data.get(key, "") + value
            self.done[op] = self.data.get(key) if kind == "get" else None
        return self.done[op]


class MultiReferee(PromiseLedger):
    """What the wire showed, for one cluster: ballots and their owners, each
    acceptor's promise and acceptances, the votes per (slot, ballot), the
    value chosen per slot, when phase 1 ran and when ballots were refused, and
    every client operation's first answer. It survives every crash. To name
    the cause of a broken promise it also keeps, per acceptor, the highest
    ballot it promised in a p1b (`pledged`) and how often it crashed before
    it reached its `promised` ballot."""

    def __init__(self, names: tuple[str, ...]):
        super().__init__()
        self.need = majority(len(names))
        self.owner: dict[int, str] = {}
        self.started: dict[str, int] = {}
        self.asked: dict[tuple[int, str], int] = {}   # (ballot, acceptor) -> slot
        self.accepted: dict[str, dict[int, tuple[int, Hashable]]] = {}
        self.promisers: dict[int, list[str]] = {}
        self.values: dict[tuple[int, int], Hashable] = {}
        self.votes: dict[tuple[int, int], list[str]] = {}
        self.chosen: dict[int, Hashable] = {}
        self.phase1: list[tuple[float, int, str]] = []   # (time, ballot, dst) of p1a
        self.refused: dict[int, float] = {}              # ballot -> first refusal
        self.outputs: dict[Hashable, tuple[float, Any]] = {}

    def sent(self, node: ReplicaBase, dst: str, kind: str, body: dict) -> Any:
        """Check one message; for an acceptance (p2b) return the value accepted."""
        check = getattr(self, "_" + kind, None)
        self._sender = node
        return None if check is None else check(node.name, dst, body, node.sim.now)

    def _p1a(self, src: str, dst: str, body: dict, now: float) -> None:
        b, slot = body.get("ballot"), body.get("slot")
        if type(slot) is not int or slot < 1:
            raise InvariantViolation(f"messages: {src} sent a p1a for slot {slot!r}; "
                                     "slots are ints from 1")
        check_new_ballot(self.owner, self.started, src, b, "p1a")  # once per p1a
        self.asked[(b, dst)] = max(self.asked.get((b, dst), 0), slot)
        self.phase1.append((now, b, dst))

    def _p1b(self, src: str, dst: str, body: dict, now: float) -> None:
        b, promised = body.get("ballot"), body.get("promised")
        if promised != b:
            self.refused.setdefault(b, now)
            return
        before = self.promised.get(src, 0)
        if b < before:
            rule = self.cause(src, "promise rule", self._sender.disk.get("promised"))
            raise InvariantViolation(
                f"{rule}: {src} promised ballot {b} "
                f"after it had {self._how(src)}; never promise below a promise "
                "(answer with promised = your higher promise)")
        start = self.asked.get((b, src), 1)     # a reply to any p1a it was sent
        mine = {s: bv for s, bv in self.accepted.get(src, {}).items() if s >= start}
        try:
            told = {s: (ab, v) for s, ab, v in body.get("accepted", ()) if s >= start}
        except (TypeError, ValueError):
            told = None
        if told != mine:
            raise InvariantViolation(
                f"promise report: {src} promised ballot {b} reporting {told} as its "
                f"acceptances from slot {start} on, but it had accepted {mine}: "
                "report every (slot, ballot, value) you accepted, and persist "
                "before you answer so that a crash cannot undo an acceptance")
        self._bound(src, b)
        self.pledged[src] = b
        if dst == self.owner.get(b) and src not in self.promisers.setdefault(b, []):
            self.promisers[b].append(src)

    def _p2a(self, src: str, dst: str, body: dict, now: float) -> None:
        b, slot, value = body.get("ballot"), body.get("slot"), body.get("value")
        if type(slot) is not int or slot < 1:
            raise InvariantViolation(f"messages: {src} sent a p2a for slot {slot!r}; "
                                     "slots are ints from 1")
        if self.owner.get(b) != src:
            raise InvariantViolation(
                f"phase 1 first: {src} sent a p2a in ballot {b!r}, for which it "
                "never sent a p1a; a leader proposes only in the ballot it won")
        promisers = self.promisers.get(b, [])
        if len(promisers) < self.need:
            stale = self._stale(src, b)
            if len(promisers) + len(stale) >= self.need:
                raise InvariantViolation(
                    f"stale promise: {src} sent a p2a in ballot {b} with promises "
                    f"of that ballot from only {promisers or 'nobody'}; "
                    f"{', '.join(f'{a} (ballot {ob})' for a, ob in stale)} promised "
                    f"only an earlier ballot of {src}'s, not {b}")
            raise InvariantViolation(
                f"phase 1 first: {src} sent a p2a in ballot {b} with promises from "
                f"only {promisers or 'nobody'}; wait for a majority ({self.need})")
        known = self.values.setdefault((b, slot), value)
        if known != value:
            raise InvariantViolation(
                f"ballot uniqueness: ballot {b} proposed two values for slot {slot}, "
                f"{known!r} and {value!r}; a leader proposes one value per slot")

    def _stale(self, src: str, b: int) -> list[tuple[str, int]]:
        """(acceptor, ballot) for the acceptors that promised `src` one of its
        ballots below `b`, though not `b` itself: their p1b are stale in `b`."""
        fresh, stale = self.promisers.get(b, []), {}
        for older, names in sorted(self.promisers.items()):
            if older < b and self.owner.get(older) == src:
                stale.update((a, older) for a in names if a not in fresh)
        return sorted(stale.items())

    def _p2b(self, src: str, dst: str, body: dict, now: float) -> Hashable:
        b, slot, promised = body.get("ballot"), body.get("slot"), body.get("promised")
        if type(promised) is int and type(b) is int and promised < b:
            raise InvariantViolation(
                f"promise on accept: {src} answered the p2a of ballot {b} (slot "
                f"{slot}) with promised = {promised}, below that ballot; a p2b "
                "with promised = its ballot is an acceptance, with a higher "
                "promise a refusal")
        if promised != b:
            self.refused.setdefault(b, now)
            return None
        if (b, slot) not in self.values:
            raise InvariantViolation(f"messages: {src} accepted slot {slot!r} in "
                                     f"ballot {b!r}, which nobody proposed")
        before = self.promised.get(src, 0)
        if b < before:
            rule = self.cause(src, "accept rule", self._sender.disk.get("promised"))
            raise InvariantViolation(
                f"{rule}: {src} accepted ballot {b} "
                f"(slot {slot}) after it had {self._how(src)}; accept only ballots "
                "at least as high as your promise (answer with promised = your "
                "promise)")
        value = self.values[(b, slot)]
        self._bound(src, b)
        self.accepted.setdefault(src, {})[slot] = (b, value)
        voters = self.votes.setdefault((slot, b), [])
        if src not in voters:
            voters.append(src)
        if len(voters) >= self.need:
            first = self.chosen.setdefault(slot, value)
            if first != value:
                raise InvariantViolation(
                    f"agreement: slot {slot} had {first!r} chosen, then {value!r} in "
                    f"ballot {b} (by {', '.join(voters)}); a new leader must "
                    "re-propose, per slot, the value of the highest ballot its "
                    "promises report")
        return value

    def learned(self, name: str, slot: Any, value: Hashable) -> None:
        if type(slot) is not int or self.chosen.get(slot, None) != value \
                or slot not in self.chosen:
            raise InvariantViolation(
                f"learning: {name} learned {value!r} for slot {slot!r}, but "
                f"{repr(self.chosen[slot]) if slot in self.chosen else 'nothing'} "
                "was chosen there; a slot's value is chosen once a majority "
                "accepted it in one ballot")

    def applied(self, name: str, slot: int, value: Hashable, now: float,
                output: Any) -> None:
        if self.chosen.get(slot) != value or slot not in self.chosen:
            raise InvariantViolation(
                f"state machine safety: {name} applied {value!r} at slot {slot}, "
                "where it was not chosen")
        if isinstance(value, tuple) and len(value) == 4:
            self.outputs.setdefault(value[0], (now, output))


_REFEREES: WeakKeyDictionary[Network, MultiReferee] = WeakKeyDictionary()


class ReplicaBase:
    """A Multi-Paxos replica's given plumbing (mixed into `PaxosBase`; used when
    the class runs in `MultiPaxosCluster`).

    Disk (a change reaches stable storage only at `persist()`):
      disk["promised"]  the highest ballot promised, for every slot (0 at first)
      disk["accepted"]  {slot: (ballot, value)} this acceptor accepted
      disk["ballot"]    the last ballot this server used as a candidate
      disk["chosen"]    {slot: value} known chosen (`learn` writes it)
    Volatile, rebuilt at every restart: `role` ("follower", "candidate" or
    "leader"), `ballot` (the ballot of our own last campaign), `highest` (the
    highest ballot seen), `promises` ({acceptor: its reported acceptances}),
    `proposals` ({slot: Proposal}), `next_slot`, `applied_slot`.
    Given: `members` (every server's name, ourselves included; messages to
    ourselves travel the network too), `majority`, `index` and `proposers`
    (so part 1's `new_ballot` works: every server may propose), `frontier()`,
    `learn(slot, value)`, `apply(slot, value)`, `propose_at(slot, value)`,
    `follow(ballot)`, `reset_election_timer()`, `beat()`, and the heartbeat
    acknowledgements.
    """

    def _init_replica(self, name: str, net: Network, settings: LogSettings) -> None:
        self.members = self.proposers = tuple(settings.names)
        self.index = self.members.index(name) + 1
        self.majority = majority(len(self.members))
        self.referee = _REFEREES.setdefault(net, MultiReferee(self.members))
        self.rng = net.sim.rng(f"multipaxos.{name}")

    def _reset_replica(self) -> None:
        disk = self.disk
        if "promised" not in disk:
            disk.update(promised=0, accepted={}, ballot=0, chosen={}, history=[])
            self.persist()
        self.role, self.ballot = "follower", 0
        self.highest = max(disk["promised"], disk["ballot"])
        self.promises: dict[str, tuple] = {}
        self.proposals: dict[int, Proposal] = {}
        self.next_slot = 1
        self.applied_slot = 0
        self.known: dict[str, int] = {}      # peer -> its frontier, as it told us
        self.machine = KV()
        self.log: list[Hashable] = []        # commands applied, in order (no NOOPs)
        self.reset_election_timer()

    # -- given helpers -----------------------------------------------------------
    def frontier(self) -> int:
        """The first slot this server does not know to be chosen."""
        slot, chosen = 1, self.disk["chosen"]
        while slot in chosen:
            slot += 1
        return slot

    def learn(self, slot: int, value: Hashable) -> None:
        """`value` is chosen at `slot`: record it in disk["chosen"]."""
        self.referee.learned(self.name, slot, value)
        self.disk["chosen"].setdefault(slot, value)

    def apply(self, slot: int, value: Hashable) -> None:
        """Run the chosen `value` of `slot` on the state machine; slots must come
        in order 1, 2, 3, ... (NOOP changes nothing)."""
        if slot != self.applied_slot + 1:
            raise InvariantViolation(
                f"apply order: {self.name} applied slot {slot} after slot "
                f"{self.applied_slot}; apply chosen commands in slot order, and wait "
                "at a slot whose value is not yet known chosen")
        output = None if value is NOOP else self.machine.execute(value)
        self.referee.applied(self.name, slot, value, self.sim.now, output)
        self.applied_slot = slot
        if value is not NOOP:
            self.log.append(value)

    def propose_at(self, slot: int, value: Hashable) -> None:
        """Leader: phase 2a for `slot`: send p2a(ballot, slot, value) to every
        server and keep a `Proposal` (beat() resends it to whoever has not
        accepted)."""
        self.proposals[slot] = Proposal(value, [], self.sim.now)
        for name in self.members:
            self.send(name, "p2a", ballot=self.ballot, slot=slot, value=value)

    def follow(self, ballot: int) -> None:
        """Someone runs `ballot`: remember it in `highest`, become (or stay) a
        follower, drop our proposals and heartbeats, re-arm the election timer."""
        self.highest = max(self.highest, ballot)
        self.role, self.proposals = "follower", {}
        self.cancel_timer("heartbeat")
        self.reset_election_timer()

    def reset_election_timer(self) -> None:
        """(Re)arm the election timer: `on_election_timeout()` runs after a fresh
        random draw from the election timeout, unless this is called again."""
        self.set_timer("election", self.rng.uniform(*self.settings.election_timeout),
                       self._event, self.on_election_timeout)

    def beat(self) -> None:
        """Leader: send every other server a heartbeat(ballot, chosen) carrying
        the chosen (slot, value) pairs it lacks; resend each proposal's p2a to
        servers that have not accepted it for a heartbeat; re-arm."""
        if self.role != "leader":
            return
        now, every = self.sim.now, self.settings.heartbeat
        for name in self.members:
            if name != self.name:
                self.send(name, "heartbeat", ballot=self.ballot,
                          chosen=self._news(name))
        for slot, p in sorted(self.proposals.items()):
            if now - p.sent >= every * 0.999:
                p.sent = now
                for name in self.members:
                    if name not in p.acks:
                        self.send(name, "p2a", ballot=self.ballot, slot=slot,
                                  value=p.value)
        self.set_timer("heartbeat", every, self._event, self.beat)

    def _news(self, peer: str) -> tuple[tuple[int, Hashable], ...]:
        chosen, start = self.disk["chosen"], self.known.get(peer, 1)
        return tuple((s, chosen[s]) for s in range(start, start + PIGGYBACK)
                     if s in chosen)

    def on_heartbeat_ok(self, msg: Message) -> None:
        """A follower's answer to a heartbeat: it knows every slot below
        msg.frontier (after a crash maybe fewer than before), so the next
        heartbeat carries what comes after."""
        if self.role == "leader" and msg.ballot == self.ballot:
            self.known[msg.src] = msg.frontier

    def _event(self, fn: Any, *args: Any) -> None:
        """Run a timer's callback, then apply what became chosen."""
        fn(*args)
        if self.alive:
            self.apply_chosen()
