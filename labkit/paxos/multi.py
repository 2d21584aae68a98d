"""Multi-Paxos ("Paxos Made Simple" §3): a replicated log, one Paxos instance
per slot.

`MultiPaxosNode` is acceptor and learner for every slot and proposer while it
leads: a stable leader runs phase 1 once for every later slot, so each command
costs one round trip (phase 2), and a new leader fills the gaps it finds with
`NOOP`. `MultiPaxosCluster` offers Raft's log interface (`submit`, `applied`,
`leader`) with the fault verbs and `check()`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from labkit.errors import ConfigError, InvariantViolation, require_int, require_number
from labkit.metrics import Result
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node
from labkit.paxos.ballots import (
    _chosen_by_ballot,
    _range,
    _value,
    majority,
    next_ballot,
)


class _NoOp:
    """The no-op a new leader proposes for a slot nobody accepted anything in."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOOP"

    def __reduce__(self) -> str:
        return "NOOP"       # pickled and copied as the module's one NOOP


NOOP = _NoOp()
PIGGYBACK = 32      # chosen values a leader carries per message to a lagging peer


@dataclass(frozen=True)
class LogSettings:
    """What every Multi-Paxos server knows: the servers and the timing (seconds)."""

    names: tuple[str, ...]
    election_timeout: tuple[float, float]
    heartbeat: float


class MultiPaxosNode(Node):
    """One server of a Multi-Paxos log: acceptor and learner for every slot, and
    proposer when it leads.

    A follower that hears no leader for a random election timeout runs phase 1
    once for every slot from its first unchosen one (`prepare`); with a majority
    of promises it leads: it learns the values the promises report chosen,
    re-proposes the highest-ballot value each promise reported per other slot,
    fills the remaining gaps with NOOP, and from then on runs only phase 2 per
    command. An accept may carry several slots (`entries`): the leader sends one
    per command, and at each heartbeat one per peer with every proposal that peer
    has left unanswered for a heartbeat or more. Chosen values ride to followers
    on the next accept or heartbeat, from the first slot the follower reported
    not knowing.
    """

    def __init__(self, name: str, net: Network, settings: LogSettings):
        self.settings = settings                # set first: Node.__init__ calls reset()
        self.index = settings.names.index(name) + 1
        self.quorum = majority(len(settings.names))
        # The other servers of this log (the network may carry other nodes too,
        # e.g. a file system's chunk servers).
        self.others = [n for n in settings.names if n != name]
        super().__init__(name, net)

    def reset(self) -> None:
        disk = self.disk
        disk.setdefault("ballot", 0)            # last ballot used as a candidate
        disk.setdefault("promised", 0)          # one promise covers every slot
        disk.setdefault("accepted", {})         # slot -> (ballot, value)
        disk.setdefault("chosen", {})           # slot -> value (never changes)
        disk.setdefault("history", [])          # ghost: (time, slot, ballot, value)
        self.rng = self.sim.rng(f"multipaxos.{self.name}")
        self.role, self.ballot, self.highest = "follower", 0, disk["promised"]
        self.promises: dict[str, tuple] = {}
        self.proposals: dict[int, tuple[Hashable, list[str]]] = {}
        self.sent_at: dict[int, float] = {}     # slot -> when its accept last went out
        self.known: dict[str, int] = {}         # peer -> its first unchosen slot
        self.submitted: dict[int, float] = {}
        self.campaigned = 0.0                   # when our last phase 1 began
        self.next_slot = 1
        self.frontier = 1                       # first slot not known chosen
        self.applied_slot = 0
        self.log: list[Hashable] = []           # client commands applied, in order
        self.learn(())
        self.wait_for_leader()

    # -- learning and applying ------------------------------------------------
    def learn(self, chosen: Iterable[tuple[int, Hashable]]) -> None:
        """Record chosen (slot, value) pairs and apply the contiguous prefix."""
        known = self.disk["chosen"]
        for slot, value in chosen:
            known.setdefault(slot, value)
        while self.frontier in known:
            self.frontier += 1
        while self.applied_slot + 1 < self.frontier:
            self.applied_slot += 1
            value = known[self.applied_slot]
            if value is not NOOP:
                self.log.append(value)

    def wait_for_leader(self) -> None:
        self.set_timer("election", self.rng.uniform(*self.settings.election_timeout),
                       self.campaign)

    def heard_leader(self, ballot: int) -> None:
        """A message of a ballot at least our promise: give way to its sender."""
        if ballot > self.ballot and self.role != "follower":
            self.role, self.proposals = "follower", {}
            self.cancel_timer("heartbeat")
        self.wait_for_leader()

    # -- phase 1, once per leader ----------------------------------------------
    def campaign(self) -> None:
        """Phase 1a for every slot from our first unchosen one, with a new ballot."""
        s = self.settings
        self.ballot = next_ballot(self.index, len(s.names),
                                  max(self.highest, self.disk["promised"]))
        self.disk["ballot"] = self.disk["promised"] = self.highest = self.ballot
        self.role, self.proposals = "candidate", {}
        self.cancel_timer("heartbeat")
        self.promises = {self.name: (self.accepted_from(self.frontier),
                                     self.frontier)}
        self.campaigned = self.sim.now
        self.sim.metrics.counter("multipaxos.elections").inc()
        for peer in self.others:
            self.send(peer, "prepare", ballot=self.ballot, slot=self.frontier)
        self.wait_for_leader()                  # no majority in time: try again
        if len(self.promises) >= self.quorum:
            self.lead()

    def accepted_from(self, slot: int) -> tuple[tuple[int, int, Hashable], ...]:
        return tuple((s, b, v) for s, (b, v) in sorted(self.disk["accepted"].items())
                     if s >= slot)

    def chosen_from(self, slot: int) -> tuple[tuple[int, Hashable], ...]:
        return tuple((s, v) for s, v in sorted(self.disk["chosen"].items())
                     if s >= slot)

    def admits(self, msg: Message) -> bool:
        """The acceptor's rule for prepare and accept alike: refuse a ballot below
        our promise with a NACK carrying it; otherwise raise the promise (on disk,
        before any reply) and follow that ballot's leader."""
        if msg.ballot < self.disk["promised"]:
            self.send(msg.src, "nack", ballot=msg.ballot,
                      promised=self.disk["promised"])
            return False
        self.disk["promised"] = self.highest = max(self.highest, msg.ballot)
        self.heard_leader(msg.ballot)
        return True

    def on_prepare(self, msg: Message) -> None:
        if not self.admits(msg):
            return
        # The values we know chosen save a lagging candidate phase 2 for them.
        self.send(msg.src, "promise", ballot=msg.ballot,
                  accepted=self.accepted_from(msg.slot),
                  chosen=self.chosen_from(msg.slot), frontier=self.frontier)

    def on_promise(self, msg: Message) -> None:
        if self.role != "candidate" or msg.ballot != self.ballot:
            return
        self.learn(msg.chosen)
        self.promises[msg.src] = (msg.accepted, msg.frontier)
        if len(self.promises) == self.quorum:
            self.lead()

    def lead(self) -> None:
        """Become leader: re-propose what the promises reported, NOOP the gaps,
        and send each peer those proposals in one accept (`beat`)."""
        self.role = "leader"
        self.sim.metrics.histogram("multipaxos.phase1").add(
            self.sim.now - self.campaigned)
        best: dict[int, tuple[int, Hashable]] = {}
        for accepted, _ in self.promises.values():
            for slot, ballot, value in accepted:
                if slot not in best or ballot > best[slot][0]:
                    best[slot] = (ballot, value)
        self.known = {peer: frontier for peer, (_, frontier) in self.promises.items()
                      if peer != self.name}
        top = max([*best, *self.disk["chosen"], self.frontier - 1])
        self.next_slot = top + 1
        self.cancel_timer("election")
        for slot in range(self.frontier, top + 1):
            if slot not in self.disk["chosen"]:
                self.propose(slot, best.get(slot, (0, NOOP))[1])
        self.beat()                             # one accept per peer, all slots

    # -- phase 2, once per command ----------------------------------------------
    def submit(self, command: Hashable) -> int | None:
        """Append `command` to the log if we lead: its slot, else None."""
        if self.role != "leader":
            return None
        slot, self.next_slot = self.next_slot, self.next_slot + 1
        self.submitted[slot] = self.sim.now
        self.propose(slot, command)
        for peer in self.others:
            self.send_accept(peer, ((slot, command),))
        self.sent_at[slot] = self.sim.now
        return slot

    def propose(self, slot: int, value: Hashable) -> None:
        """Phase 2a for one slot, our part: accept the value ourselves and await
        a majority (the caller sends the accepts and notes when in `sent_at`;
        until then the next heartbeat sends them)."""
        self.sent_at.pop(slot, None)
        self.accept_locally(slot, self.ballot, value)
        self.proposals[slot] = (value, [self.name])
        self.count(slot)                        # a log of one server: chosen now

    def send_accept(self, peer: str,
                    entries: tuple[tuple[int, Hashable], ...]) -> None:
        """Phase 2a to one peer: accept(ballot, entries) for (slot, value) pairs."""
        self.send(peer, "accept", ballot=self.ballot, entries=entries,
                  chosen=self.piggyback(peer))

    def accept_locally(self, slot: int, ballot: int, value: Hashable) -> None:
        self.disk["accepted"][slot] = (ballot, value)
        self.disk["history"].append((self.sim.now, slot, ballot, value))

    def piggyback(self, peer: str) -> tuple[tuple[int, Hashable], ...]:
        """Chosen values from the first slot `peer` reported not knowing (at most
        PIGGYBACK); none until it has reported one (its answers do)."""
        if peer not in self.known:
            return ()
        chosen, start = self.disk["chosen"], self.known[peer]
        return tuple((s, chosen[s]) for s in range(start, start + PIGGYBACK)
                     if s in chosen)

    def on_accept(self, msg: Message) -> None:
        if not self.admits(msg):
            return
        for slot, value in msg.entries:
            self.accept_locally(slot, msg.ballot, value)
        self.learn(msg.chosen)
        self.send(msg.src, "accepted", ballot=msg.ballot,
                  slots=tuple(slot for slot, _ in msg.entries), frontier=self.frontier)

    def on_accepted(self, msg: Message) -> None:
        if self.role != "leader" or msg.ballot != self.ballot:
            return
        self.known[msg.src] = max(self.known.get(msg.src, 1), msg.frontier)
        for slot in msg.slots:
            proposal = self.proposals.get(slot)
            if proposal is not None and msg.src not in proposal[1]:
                proposal[1].append(msg.src)
                self.count(slot)

    def count(self, slot: int) -> None:
        """A majority accepted this slot's value in our ballot: it is chosen."""
        value, acks = self.proposals[slot]
        if len(acks) < self.quorum:
            return
        del self.proposals[slot]
        self.sent_at.pop(slot, None)
        self.learn([(slot, value)])
        if slot in self.submitted:
            self.sim.metrics.histogram("multipaxos.commit").add(
                self.sim.now - self.submitted.pop(slot))

    def on_nack(self, msg: Message) -> None:
        self.highest = max(self.highest, msg.promised)
        if msg.ballot == self.ballot and self.role != "follower":
            self.role, self.proposals = "follower", {}
            self.cancel_timer("heartbeat")
            self.wait_for_leader()

    # -- heartbeats: leadership, catch-up, retransmission ------------------------
    def beat(self) -> None:
        """Tell every peer we still lead, with one message carrying the chosen
        values it lacks: an accept with every proposal it has not answered
        although its accept went out at least a heartbeat ago (it or the answer
        may have been lost; a younger one is most likely still on its way, and
        resending it would only double its messages), or a heartbeat if there is
        none. One message, not one per slot: each message has its own delay, and
        on a FIFO link a burst arrives after its slowest one, holding up
        everything behind it."""
        now, every = self.sim.now, self.settings.heartbeat
        # 0.999: a timer set a heartbeat after a send fires at now + every, which
        # float rounding may put a hair short of `every` after it.
        due = [slot for slot in sorted(self.proposals)
               if slot not in self.sent_at or now - self.sent_at[slot] >= every * 0.999]
        for peer in self.others:
            unanswered = tuple((slot, self.proposals[slot][0]) for slot in due
                               if peer not in self.proposals[slot][1])
            if unanswered:
                self.send_accept(peer, unanswered)
            else:
                self.send(peer, "heartbeat", ballot=self.ballot,
                          chosen=self.piggyback(peer))
        # Forget slots no longer proposed (chosen, or we stopped leading).
        self.sent_at = {slot: self.sent_at[slot] for slot in self.proposals
                        if slot in self.sent_at}
        self.sent_at.update(dict.fromkeys(due, now))
        self.set_timer("heartbeat", every, self.beat)

    def on_heartbeat(self, msg: Message) -> None:
        if msg.ballot < self.disk["promised"]:
            self.send(msg.src, "nack", ballot=msg.ballot,
                      promised=self.disk["promised"])
            return
        self.disk["promised"] = self.highest = max(self.highest, msg.ballot)
        self.heard_leader(msg.ballot)
        self.learn(msg.chosen)
        self.send(msg.src, "heartbeat_ok", ballot=msg.ballot, frontier=self.frontier)

    def on_heartbeat_ok(self, msg: Message) -> None:
        if self.role == "leader" and msg.ballot == self.ballot:
            self.known[msg.src] = max(self.known.get(msg.src, 1), msg.frontier)


class MultiPaxosCluster(Cluster):
    """A replicated log on Multi-Paxos: servers n1..nN, each acceptor, learner and
    would-be leader, with the shared fault verbs and Raft's log interface.

    `submit(cmd, node=None)` appends through that server (default: the leader)
    and returns the slot, or None if it does not lead; `applied(name)` lists
    the client commands that server applied, in order (no-ops are not listed);
    `check()` raises InvariantViolation if two values were chosen for a slot or
    a server learned or applied anything else. `node`: a class to run as every
    server instead of `MultiPaxosNode` (a lab answer, see labkit.labs.paxos);
    it is built as node(name, network, settings) and must keep the state the
    facade reads: `role`, `ballot`, `log`, `submit(command)`, and on its disk
    "promised", "chosen" and the ghost "history".
    """

    def __init__(self, size: int = 5, *, seed: int = 0, net: NetConfig | None = None,
                 election_timeout: tuple[float, float] = (0.150, 0.300),
                 heartbeat: float = 0.050, trace: bool = True,
                 node: type | None = None):
        size = require_int("size", size, minimum=1)
        self.settings = LogSettings(
            names=tuple(f"n{i}" for i in range(1, size + 1)),
            election_timeout=_range("election_timeout", election_timeout,
                                    positive=True),
            heartbeat=require_number("heartbeat", heartbeat, positive=True))
        if node is not None and not isinstance(node, type):
            raise ConfigError(f"node must be a class, got {node!r}")
        server = MultiPaxosNode if node is None else node
        super().__init__(None, seed=seed, net=net, names=list(self.settings.names),
                         node_factory=lambda name, network: server(
                             name, network, self.settings), trace=trace)

    def leader(self) -> str | None:
        """The live leader whose ballot no live server has promised to beat, or
        None (e.g. during an election, or while a deposed leader has not heard)."""
        live = [self.node(n) for n in self.up()]
        newest = max((node.disk["promised"] for node in live), default=0)
        for node in live:
            if node.role == "leader" and node.ballot == newest:
                return node.name
        return None

    def role(self, name: str) -> str:
        """"leader", "candidate", "follower", or "down" (killed)."""
        node = self.node(name)
        return node.role if node.alive else "down"

    def ballot(self, name: str) -> int:
        """The highest ballot that server has promised."""
        return self.node(name).disk["promised"]

    def submit(self, command: Hashable, node: str | None = None) -> int | None:
        """Append `command` via `node` (default: the leader): its slot, or None if
        that server is not a leader (or there is no leader)."""
        command = _value(command)
        if command is NOOP:
            raise ConfigError("NOOP is reserved for filling gaps in the log")
        name = self.leader() if node is None else self.node(node).name
        if name is None or not self.is_up(name):
            return None
        return self.node(name).submit(command)

    def applied(self, name: str) -> list[Hashable]:
        """Client commands applied by that server's state machine, in order."""
        return list(self.node(name).log)

    def chosen(self) -> dict[int, Hashable]:
        """{slot: value} for every slot a majority accepted a value for."""
        histories = {n: self.node(n).disk["history"] for n in self.names}
        found = _chosen_by_ballot(histories, len(histories), key=lambda r: r[1:3])
        out: dict[int, Hashable] = {}
        for (slot, ballot), (_, value) in sorted(found.items()):
            if out.setdefault(slot, value) != value:
                raise InvariantViolation(
                    f"slot {slot}: two values chosen, {out[slot]!r} and {value!r} "
                    f"(ballot {ballot})")
        return out

    def check(self) -> None:
        """Raise InvariantViolation if a slot had two values chosen, a server
        learned a value that was not chosen, or a server's applied commands are
        not the chosen ones in slot order (a prefix of them: it may lag), no
        command missing, repeated or added."""
        chosen = self.chosen()
        for name in self.names:
            for slot, value in sorted(self.node(name).disk["chosen"].items()):
                if slot not in chosen or chosen[slot] != value:
                    raise InvariantViolation(
                        f"{name} learned {value!r} for slot {slot}, but "
                        f"{'nothing' if slot not in chosen else repr(chosen[slot])}"
                        " was chosen there")
        commands, slot = [], 1          # the chosen log, as far as it has no hole
        while slot in chosen:
            if chosen[slot] is not NOOP:
                commands.append(chosen[slot])
            slot += 1
        for name in self.names:
            log = self.node(name).log
            if log != commands[:len(log)]:
                raise InvariantViolation(
                    f"{name} applied {log}, but the commands chosen in slot order "
                    f"begin {commands[:len(log)]}")

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """The run so far, with node names and the chosen log in its data."""
        result = super().result(scenario, **params)
        return replace(result, data={**result.data, "names": self.names,
                                     "leader": self.leader(),
                                     "chosen": self.chosen()})
