"""Paxos: a set of nodes agreeing on values despite crashes and an asynchronous
network.

Single-decree Paxos (Lamport, "Paxos Made Simple", 2001, §2) runs proposers,
acceptors and learners as separate nodes: phase 1 (prepare, promise) and phase
2 (accept, accepted) with ballots that no two proposers share. Multi-Paxos
(§3 of the paper) runs one instance per slot of a replicated log: a stable
leader runs phase 1 once for every later slot, so each command costs one round
trip, and a new leader fills the gaps it finds with no-ops.

Whether a value is chosen is decided by an oracle, not by any node: every
acceptor keeps a ghost history on its disk (read only by `check`), and a value
is chosen once a majority of acceptors accepted it in one ballot.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from labkit.errors import (
    ConfigError,
    InvariantViolation,
    Unavailable,
    require_int,
    require_number,
)
from labkit.metrics import Result
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node


def majority(n: int) -> int:
    """The size of a majority quorum of n acceptors; any two majorities of the same
    n acceptors share at least one (quorum intersection)."""
    return n // 2 + 1


def next_ballot(index: int, count: int, above: int) -> int:
    """The smallest ballot of proposer `index` (1..count) above `above`. Proposer
    i owns the ballots i, i + count, i + 2·count, ..., so no two proposers ever
    use the same ballot."""
    return index + max(0, (above - index) // count + 1) * count


def _range(name: str, value: Any, *, positive: bool = False) -> tuple[float, float]:
    """A (low, high) pair of seconds with 0 <= low <= high (low > 0 if positive)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ConfigError(f"{name} must be a (low, high) pair of seconds, "
                          f"got {value!r}")
    low = require_number(f"{name} low", value[0], minimum=0.0, positive=positive)
    high = require_number(f"{name} high", value[1], minimum=low)
    return low, high


def _value(value: Any) -> Hashable:
    """A proposable value: not None (None means "nothing chosen") and hashable,
    so that acceptors and the checker can compare it."""
    if value is None:
        raise ConfigError("cannot propose None: it means 'nothing chosen'")
    try:
        hash(value)
    except TypeError:
        raise ConfigError(f"a proposed value must be immutable (hashable), got "
                          f"{value!r}") from None
    return value


def _chosen_by_ballot(histories: Mapping[str, Iterable[tuple]], n: int,
                      key: Callable[[tuple], Hashable]) -> dict:
    """From acceptors' ghost histories of (time, *key fields, value) acceptances:
    {key: (time it was chosen, value)} for every key (a ballot, or a (slot,
    ballot)) that a majority accepted. Raises if one key carried two values."""
    seen: dict[Hashable, tuple[Any, dict[str, float]]] = {}
    for name, history in histories.items():
        for record in history:
            k, value, time = key(record), record[-1], record[0]
            known, firsts = seen.setdefault(k, (value, {}))
            if known != value:
                raise InvariantViolation(
                    f"{k} carried two values, {known!r} and {value!r}: a proposer "
                    "reused a ballot")
            firsts.setdefault(name, time)
    need = majority(n)
    return {k: (sorted(firsts.values())[need - 1], value)
            for k, (value, firsts) in seen.items() if len(firsts) >= need}


# -- single-decree Paxos ----------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What every node of a PaxosCluster knows: the roles' names and the
    proposers' retry policy (seconds)."""

    acceptors: tuple[str, ...]
    proposers: tuple[str, ...]
    learners: tuple[str, ...]
    backoff: tuple[float, float]
    timeout: float
    leader: bool
    heartbeat: float
    leader_timeout: float


class Acceptor(Node):
    """Promises and accepts ballots (Paxos Made Simple §2.2). Its promise and its
    accepted value are on disk before it replies; a nack names the higher ballot
    it promised, so the proposer knows what to beat."""

    def reset(self) -> None:
        disk = self.disk
        disk.setdefault("promised", 0)          # highest ballot promised
        disk.setdefault("accepted", (0, None))  # (ballot, value) last accepted
        disk.setdefault("history", [])          # ghost: (time, ballot, value)

    def on_prepare(self, msg: Message) -> None:
        if msg.ballot < self.disk["promised"]:
            self.send(msg.src, "nack", ballot=msg.ballot,
                      promised=self.disk["promised"])
            return
        self.disk["promised"] = msg.ballot
        ballot, value = self.disk["accepted"]
        self.send(msg.src, "promise", ballot=msg.ballot, accepted_ballot=ballot,
                  accepted_value=value)

    def on_accept(self, msg: Message) -> None:
        if msg.ballot < self.disk["promised"]:
            self.send(msg.src, "nack", ballot=msg.ballot,
                      promised=self.disk["promised"])
            return
        self.disk["promised"] = msg.ballot
        self.disk["accepted"] = (msg.ballot, msg.value)
        self.disk["history"].append((self.sim.now, msg.ballot, msg.value))
        self.send(msg.src, "accepted", ballot=msg.ballot, value=msg.value)


class Learner(Node):
    """Learns the chosen value from a proposer's announcement and acknowledges it."""

    def reset(self) -> None:
        self.disk.setdefault("learned", None)
        self.disk.setdefault("learned_at", None)
        self.disk.setdefault("heard", [])       # ghost: every distinct value announced

    def on_chosen(self, msg: Message) -> None:
        if msg.value not in self.disk["heard"]:
            self.disk["heard"].append(msg.value)
        if self.disk["learned"] is None:
            self.disk["learned"], self.disk["learned_at"] = msg.value, self.sim.now
        self.send(msg.src, "learned")


class Proposer(Learner):
    """Runs ballots for a client's value (phases 1 and 2 of Paxos Made Simple
    §2.2) and, once a majority accepted, announces the value to the learners and
    the other proposers until each acknowledges.

    Preempted (a nack) or timed out, it retries with a fresh ballot after a
    random backoff drawn uniformly from `settings.backoff`. With
    `settings.leader`, only the distinguished proposer starts ballots: the live
    proposer with the lowest index heard from within `leader_timeout` (others
    forward their value to it).
    """

    def __init__(self, name: str, net: Network, settings: Settings):
        self.settings = settings                # set first: Node.__init__ calls reset()
        self.index = settings.proposers.index(name) + 1
        super().__init__(name, net)

    def reset(self) -> None:
        super().reset()
        self.disk.setdefault("ballot", 0)       # last ballot used: never reused
        self.rng = self.sim.rng(f"paxos.{self.name}")
        self.value: Hashable | None = None      # what a client asked to propose
        self.phase = "idle"                     # idle, prepare, accept, backoff, done
        self.ballot = 0
        self.highest = self.disk["ballot"]      # highest ballot seen anywhere
        self.promises: dict[str, tuple[int, Any]] = {}
        self.accepts: list[str] = []
        self.proposal: Hashable | None = None   # the value of this ballot's phase 2
        self.started = 0.0
        self.heard: dict[str, float] = {}
        self.unacked: list[str] = []
        if self.disk["learned"] is not None:
            self.decide(self.disk["learned"])   # and tell whoever may have missed it
        if self.settings.leader:                # first beat once every node exists
            self.set_timer("heartbeat", 0.0, self.tick)

    # -- client entry --------------------------------------------------------
    def propose(self, value: Hashable) -> None:
        """Ask this proposer to get `value` chosen (or learn what was chosen)."""
        if self.phase == "done":
            return
        if self.value is None:
            self.value, self.started = value, self.sim.now
        if self.phase == "idle":
            self.begin()

    def begin(self) -> None:
        """Start a ballot if allowed to; a non-leader forwards its value instead."""
        if self.phase == "done" or self.value is None:
            return
        if self.settings.leader and not self.is_leader():
            self.phase = "idle"
            self.send(self.leader(), "forward", value=self.value)
            return
        self.prepare()

    # -- phase 1 -----------------------------------------------------------
    def prepare(self) -> None:
        """Phase 1a: pick a ballot above any seen, persist it, ask every acceptor."""
        s = self.settings
        self.ballot = next_ballot(self.index, len(s.proposers), self.highest)
        self.disk["ballot"] = self.highest = self.ballot
        self.phase, self.promises, self.accepts = "prepare", {}, []
        self.sim.metrics.counter("paxos.ballots").inc()
        for acceptor in s.acceptors:
            self.send(acceptor, "prepare", ballot=self.ballot)
        self.set_timer("retry", s.timeout, self.preempted, self.ballot)

    def on_promise(self, msg: Message) -> None:
        if self.phase != "prepare" or msg.ballot != self.ballot:
            return                              # a late or duplicated reply
        self.promises[msg.src] = (msg.accepted_ballot, msg.accepted_value)
        if len(self.promises) == majority(len(self.settings.acceptors)):
            self.accept()

    # -- phase 2 -----------------------------------------------------------
    def accept(self) -> None:
        """Phase 2a: the value of the highest ballot any promise reported, else
        our own (this is what keeps a chosen value chosen)."""
        ballot, value = max(self.promises.values(), key=lambda bv: bv[0])
        self.proposal = value if ballot > 0 else self.value
        self.phase = "accept"
        for acceptor in self.settings.acceptors:
            self.send(acceptor, "accept", ballot=self.ballot, value=self.proposal)

    def on_accepted(self, msg: Message) -> None:
        if self.phase != "accept" or msg.ballot != self.ballot \
                or msg.src in self.accepts:
            return
        self.accepts.append(msg.src)
        if len(self.accepts) == majority(len(self.settings.acceptors)):
            self.decide(self.proposal)
            self.sim.metrics.histogram("paxos.decide").add(self.sim.now - self.started)

    def on_nack(self, msg: Message) -> None:
        self.highest = max(self.highest, msg.promised)
        if msg.ballot == self.ballot and self.phase in ("prepare", "accept"):
            self.sim.metrics.counter("paxos.preempted").inc()
            self.preempted(self.ballot)

    def preempted(self, ballot: int) -> None:
        """This ballot lost (nack) or stalled (timeout): retry after a backoff."""
        if ballot != self.ballot or self.phase not in ("prepare", "accept"):
            return
        self.phase = "backoff"
        self.set_timer("retry", self.rng.uniform(*self.settings.backoff), self.begin)

    # -- learning ----------------------------------------------------------
    def decide(self, value: Hashable) -> None:
        """We know `value` is chosen: remember it and tell everyone who learns."""
        self.phase = "done"
        self.cancel_timer("retry")
        if self.disk["learned"] is None:
            self.disk["learned"], self.disk["learned_at"] = value, self.sim.now
        s = self.settings
        self.unacked = [n for n in (*s.learners, *s.proposers) if n != self.name]
        self.announce()

    def announce(self) -> None:
        """Send the chosen value to whoever has not acknowledged it; repeat on a
        timer, since announcements can be lost."""
        for name in self.unacked:
            self.send(name, "chosen", value=self.disk["learned"])
        if self.unacked:
            self.set_timer("announce", self.settings.timeout, self.announce)

    def on_learned(self, msg: Message) -> None:
        if msg.src in self.unacked:
            self.unacked.remove(msg.src)

    def on_chosen(self, msg: Message) -> None:
        super().on_chosen(msg)
        if self.phase != "done":
            self.phase = "done"
            self.cancel_timer("retry")

    # -- the distinguished proposer ------------------------------------------
    def tick(self) -> None:
        """Heartbeat the other proposers; a leader with a value and no ballot
        running starts one, a follower re-forwards its value."""
        for other in self.settings.proposers:
            if other != self.name:
                self.send(other, "heartbeat")
        if self.phase == "idle":
            self.begin()
        self.set_timer("heartbeat", self.settings.heartbeat, self.tick)

    def on_heartbeat(self, msg: Message) -> None:
        self.heard[msg.src] = self.sim.now

    def leader(self) -> str:
        """The proposer with the lowest index heard from recently (maybe us)."""
        fresh = self.sim.now - self.settings.leader_timeout
        for name in self.settings.proposers:
            if name == self.name or self.heard.get(name, -1.0) >= fresh:
                return name
        return self.name                        # unreachable: we are in the list

    def is_leader(self) -> bool:
        return self.leader() == self.name

    def on_forward(self, msg: Message) -> None:
        self.propose(msg.value)


class PaxosCluster(Cluster):
    """Single-decree Paxos: proposers p1..pM, acceptors a1..aN and learners
    l1..lL on one network, with the shared fault verbs.

    `propose(value, proposer=...)` hands a value to a proposer; `chosen()` is the
    chosen value (or None) according to the acceptors' histories; `check()`
    raises InvariantViolation if two values were chosen or anyone learned a
    value that was not chosen. Any number of acceptors >= 1 works (an even n
    tolerates no more crashes than n - 1). `backoff` is the (low, high) range of
    a proposer's random wait before it retries, `timeout` how long a ballot may
    take before it is retried; `leader=True` lets only a distinguished proposer
    (elected by heartbeats every `heartbeat` s, lost after `leader_timeout` s
    of silence) start ballots.
    """

    def __init__(self, acceptors: int = 5, proposers: int = 2, *, learners: int = 1,
                 seed: int = 0, net: NetConfig | None = None,
                 backoff: tuple[float, float] = (0.0, 0.05), timeout: float = 0.2,
                 leader: bool = False, heartbeat: float = 0.05,
                 leader_timeout: float = 0.15, trace: bool = True):
        counts = {"acceptors": require_int("acceptors", acceptors, minimum=1),
                  "proposers": require_int("proposers", proposers, minimum=1),
                  "learners": require_int("learners", learners, minimum=0)}
        if not isinstance(leader, bool):
            raise ConfigError(f"leader must be True or False, got {leader!r}")
        prefix = {"acceptors": "a", "proposers": "p", "learners": "l"}
        roles = {role: tuple(f"{prefix[role]}{i}" for i in range(1, n + 1))
                 for role, n in counts.items()}
        self.settings = Settings(
            **roles, backoff=_range("backoff", backoff),
            timeout=require_number("timeout", timeout, positive=True), leader=leader,
            heartbeat=require_number("heartbeat", heartbeat, positive=True),
            leader_timeout=require_number("leader_timeout", leader_timeout,
                                          positive=True))
        kinds = {"a": Acceptor, "l": Learner}

        def build(name: str, network: Network) -> Node:
            if name[0] == "p":
                return Proposer(name, network, self.settings)
            return kinds[name[0]](name, network)

        self._delays: dict[str, float] = {}
        super().__init__(None, seed=seed, net=net,
                         names=[*roles["proposers"], *roles["acceptors"],
                                *roles["learners"]],
                         node_factory=build, trace=trace)

    @property
    def acceptors(self) -> list[str]:
        return list(self.settings.acceptors)

    @property
    def proposers(self) -> list[str]:
        return list(self.settings.proposers)

    @property
    def learners(self) -> list[str]:
        return list(self.settings.learners)

    def propose(self, value: Hashable, proposer: str = "p1") -> None:
        """Ask `proposer` to get `value` chosen; it retries until some value is
        chosen. Raises Unavailable if that proposer is down."""
        value = _value(value)
        if proposer not in self.settings.proposers:
            raise ConfigError(f"unknown proposer {proposer!r}; proposers are "
                              f"{self.proposers}")
        node = self.node(proposer)
        if not node.alive:
            raise Unavailable(f"proposer {proposer} is down")
        node.propose(value)

    def delay(self, kind: str, seconds: float) -> None:
        """The adversary: from now on every `kind` message spends `seconds` more
        in flight (0 removes the delay). An asynchronous network allows any
        such schedule; `kind="accept"` makes proposers duel."""
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"kind must be a message kind (str), got {kind!r}")
        seconds = require_number("seconds", seconds, minimum=0.0)
        if seconds:
            self._delays[kind] = seconds
        else:
            self._delays.pop(kind, None)
        delays = self._delays
        self.network.adversary = (lambda msg: delays.get(msg.kind, 0.0)) \
            if delays else None

    # -- what happened ------------------------------------------------------
    def _chosen(self) -> list[tuple[float, int, Hashable]]:
        """(time, ballot, value) of every ballot a majority accepted, by time."""
        histories = {a: self.node(a).disk["history"] for a in self.settings.acceptors}
        found = _chosen_by_ballot(histories, len(histories), key=lambda r: r[1])
        return sorted((time, ballot, value)
                      for ballot, (time, value) in found.items())

    def chosen(self) -> Hashable | None:
        """The value a majority of acceptors accepted in one ballot, or None."""
        found = self._chosen()
        return found[0][2] if found else None

    def chosen_at(self) -> float | None:
        """When a value was first chosen (simulated seconds), or None."""
        found = self._chosen()
        return found[0][0] if found else None

    def learned(self, name: str) -> Hashable | None:
        """The value a learner (or proposer) has learned, or None."""
        if name in self.settings.acceptors:
            raise ConfigError(f"{name} is an acceptor; learners are {self.learners} "
                              f"and proposers {self.proposers}")
        return self.node(name).disk["learned"]

    def check(self) -> None:
        """Raise InvariantViolation if two different values were chosen, one
        ballot carried two values, or a learner or proposer heard or learned a
        value that was not chosen."""
        chosen = self._chosen()
        values = list(dict.fromkeys(value for _, _, value in chosen))
        if len(values) > 1:
            raise InvariantViolation(f"two different values were chosen: {chosen}")
        for name in (*self.settings.learners, *self.settings.proposers):
            disk = self.node(name).disk
            for value in disk["heard"] + [disk["learned"]]:
                if value is not None and value not in values:
                    raise InvariantViolation(
                        f"{name} learned {value!r}, which was not chosen "
                        f"(chosen: {values or 'nothing'})")

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """The run so far, with node names, the chosen value and when, and a
        one-line headline."""
        result = super().result(scenario, **params)
        value, at = self.chosen(), self.chosen_at()
        headline = ("nothing chosen" if at is None
                    else f"{value!r} chosen at {1e3 * at:.1f} ms")
        return replace(result, data={**result.data, "names": self.names,
                                     "chosen": value, "chosen_at": at,
                                     "headline": headline})


# -- Multi-Paxos ------------------------------------------------------------------

class _NoOp:
    """The no-op a new leader proposes for a slot nobody accepted anything in."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOOP"


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
    of promises it leads: it re-proposes the highest-ballot value each promise
    reported per slot, fills the other gaps with NOOP, and from then on runs only
    phase 2 per command. Chosen values ride to followers on the next accept or
    heartbeat.
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
        self.send(msg.src, "promise", ballot=msg.ballot,
                  accepted=self.accepted_from(msg.slot), frontier=self.frontier)

    def on_promise(self, msg: Message) -> None:
        if self.role != "candidate" or msg.ballot != self.ballot:
            return
        self.promises[msg.src] = (msg.accepted, msg.frontier)
        if len(self.promises) == self.quorum:
            self.lead()

    def lead(self) -> None:
        """Become leader: re-propose what the promises reported, NOOP the gaps."""
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
        self.beat()

    # -- phase 2, once per command ----------------------------------------------
    def submit(self, command: Hashable) -> int | None:
        """Append `command` to the log if we lead: its slot, else None."""
        if self.role != "leader":
            return None
        slot, self.next_slot = self.next_slot, self.next_slot + 1
        self.submitted[slot] = self.sim.now
        self.propose(slot, command)
        return slot

    def propose(self, slot: int, value: Hashable) -> None:
        """Phase 2a for one slot: accept it ourselves, then ask every peer."""
        self.accept_locally(slot, self.ballot, value)
        self.proposals[slot] = (value, [self.name])
        for peer in self.others:
            self.send_accept(peer, slot, value)
        self.count(slot)

    def send_accept(self, peer: str, slot: int, value: Hashable) -> None:
        self.send(peer, "accept", ballot=self.ballot, slot=slot, value=value,
                  chosen=self.piggyback(peer))

    def accept_locally(self, slot: int, ballot: int, value: Hashable) -> None:
        self.disk["accepted"][slot] = (ballot, value)
        self.disk["history"].append((self.sim.now, slot, ballot, value))

    def piggyback(self, peer: str) -> tuple[tuple[int, Hashable], ...]:
        """Chosen values `peer` has not reported knowing (at most PIGGYBACK)."""
        chosen, start = self.disk["chosen"], self.known.get(peer, 1)
        return tuple((s, chosen[s]) for s in range(start, start + PIGGYBACK)
                     if s in chosen)

    def on_accept(self, msg: Message) -> None:
        if not self.admits(msg):
            return
        self.accept_locally(msg.slot, msg.ballot, msg.value)
        self.learn(msg.chosen)
        self.send(msg.src, "accepted", ballot=msg.ballot, slot=msg.slot,
                  frontier=self.frontier)

    def on_accepted(self, msg: Message) -> None:
        if self.role != "leader" or msg.ballot != self.ballot:
            return
        self.known[msg.src] = max(self.known.get(msg.src, 1), msg.frontier)
        proposal = self.proposals.get(msg.slot)
        if proposal is not None and msg.src not in proposal[1]:
            proposal[1].append(msg.src)
            self.count(msg.slot)

    def count(self, slot: int) -> None:
        """A majority accepted this slot's value in our ballot: it is chosen."""
        value, acks = self.proposals[slot]
        if len(acks) < self.quorum:
            return
        del self.proposals[slot]
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
        """Tell every peer we still lead (with the chosen values it lacks) and
        resend accepts a peer has not answered (they may have been lost)."""
        for peer in self.others:
            self.send(peer, "heartbeat", ballot=self.ballot,
                      chosen=self.piggyback(peer))
        for slot, (value, acks) in sorted(self.proposals.items()):
            for peer in self.others:
                if peer not in acks:
                    self.send_accept(peer, slot, value)
        self.set_timer("heartbeat", self.settings.heartbeat, self.beat)

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
    a server learned or applied anything else.
    """

    def __init__(self, size: int = 5, *, seed: int = 0, net: NetConfig | None = None,
                 election_timeout: tuple[float, float] = (0.150, 0.300),
                 heartbeat: float = 0.050, trace: bool = True):
        size = require_int("size", size, minimum=1)
        self.settings = LogSettings(
            names=tuple(f"n{i}" for i in range(1, size + 1)),
            election_timeout=_range("election_timeout", election_timeout,
                                    positive=True),
            heartbeat=require_number("heartbeat", heartbeat, positive=True))
        super().__init__(None, seed=seed, net=net, names=list(self.settings.names),
                         node_factory=lambda name, network: MultiPaxosNode(
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
        learned a value that was not chosen, or two servers applied different
        commands at the same position."""
        chosen = self.chosen()
        for name in self.names:
            for slot, value in sorted(self.node(name).disk["chosen"].items()):
                if slot not in chosen or chosen[slot] != value:
                    raise InvariantViolation(
                        f"{name} learned {value!r} for slot {slot}, but "
                        f"{'nothing' if slot not in chosen else repr(chosen[slot])}"
                        " was chosen there")
        logs = sorted((self.node(n).log for n in self.names), key=len)
        for shorter, longer in zip(logs, logs[1:], strict=False):
            if longer[:len(shorter)] != shorter:
                raise InvariantViolation(
                    f"two servers applied different commands: {shorter} vs {longer}")

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """The run so far, with node names and the chosen log in its data."""
        result = super().result(scenario, **params)
        return replace(result, data={**result.data, "names": self.names,
                                     "leader": self.leader(),
                                     "chosen": self.chosen()})


def count_messages(result: Result, kinds: Sequence[str], *,
                   since: float = 0.0) -> int:
    """Messages of these kinds sent at or after `since`, read from the journal."""
    wanted = set(kinds)
    return sum(1 for r in result.trace
               if r.event == "send" and r.kind in wanted and r.time >= since)
