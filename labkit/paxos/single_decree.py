"""Single-decree Paxos (Lamport, "Paxos Made Simple", 2001, §2): one value.

Proposers, acceptors and learners are separate nodes. `Acceptor` promises and
accepts ballots; `Proposer` runs phase 1 (prepare, promise) and phase 2
(accept, accepted), retries after a random backoff when preempted, and
announces the chosen value; `Learner` learns it. `PaxosCluster` is the facade
with the fault verbs, an adversary that delays message kinds, and `check()`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from labkit.errors import (
    ConfigError,
    InvariantViolation,
    Unavailable,
    checked,
    require_int,
    require_number,
)
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
    of silence) start ballots. `node`: a class to run as every proposer and
    acceptor instead of labkit's (a lab answer, see labkit.labs.paxos); it is
    built as node(name, network, settings).
    """

    @checked
    def __init__(self, acceptors: int = 5, proposers: int = 2, *, learners: int = 1,
                 seed: int = 0, net: NetConfig | None = None,
                 backoff: tuple[float, float] = (0.0, 0.05), timeout: float = 0.2,
                 leader: bool = False, heartbeat: float = 0.05,
                 leader_timeout: float = 0.15, trace: bool = True,
                 node: type | None = None):
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
            if node is not None and name[0] in "pa":
                return node(name, network, self.settings)
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
