"""What a Raft lab answer is given: `RaftBase`, a server with everything but
the protocol.

It holds Figure 2's state where the paper puts it (persistent state on a disk
that survives crashes, volatile state rebuilt on restart), the timers, the
log helpers, the state machine and the clients. It also referees: after every
message and timer it looks at what the server did and reports it to the
cluster's `labkit.raft.Audit`, which checks Raft's safety properties, and it
raises `InvariantViolation` the moment one breaks, so a failure points at the
event that caused it. The student's code never reports anything itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from labkit.errors import InvariantViolation
from labkit.net import Message, Network
from labkit.node import Node
from labkit.raft import CANDIDATE, FOLLOWER, LEADER, NOOP, Audit, RaftConfig

ROLES = (LEADER, CANDIDATE, FOLLOWER)


def _copy(state: dict) -> dict:
    """A copy of a disk: its lists, dicts and sets copied, the rest shared (log
    entries are immutable tuples)."""
    return {k: type(v)(v) if isinstance(v, list | dict | set) else v
            for k, v in state.items()}


class RaftBase(Node):
    """One Raft server of the lab: everything but the protocol.

    Persistent state (Figure 2) lives in `self.disk`:
      disk["current_term"]  the latest term this server has seen (0 at first boot)
      disk["voted_for"]     whom it voted for in the current term, or None
      disk["log"]           a list of (term, command) tuples; log[0] = (0, None)
                            is a placeholder, so the first entry has index 1
    A change to `self.disk` reaches stable storage only at `self.persist()`,
    like a write and an fsync: a crash loses every change made since. So
    persist before you send anything that depends on a change (Figure 2:
    "updated on stable storage before responding to RPCs").

    Volatile state, set up by `reset()` at boot and after every restart:
      role          "follower", "candidate" or "leader"
      leader_id     who you believe leads (a hint for clients), or None
      commit_index  highest index known committed; last_applied is the base's
      votes         a set, for candidates to collect votes in
      next_index, match_index  dicts by peer, for leaders

    Given: `others` (the other servers' names), `majority`, `rng` (your own
    seeded random stream), `config` (election_timeout, heartbeat),
    `last_index()`, `last_term()`, `term_at(i)`, `persist()`,
    `reset_election_timer()`, `start_heartbeat_timer()`, `cancel_timer(name)`,
    `send(peer, kind, **fields)`. Entries up to `commit_index` are applied
    to the state machine for you, in order, after every event, and client
    requests ("request" messages) are handled for you through `append`.
    """

    def __init__(self, name: str, net: Network, members: Sequence[str],
                 config: RaftConfig, audit: Audit, machine: Callable[[], Any]):
        self.members = tuple(members)
        self.others = tuple(m for m in members if m != name)
        self.majority = len(self.members) // 2 + 1
        self.config, self.audit, self.make_machine = config, audit, machine
        self.rng = net.sim.rng(f"raft.{name}")
        self._stable: dict[str, Any] = {}
        self._trap: tuple | None = None
        self._dying = False
        super().__init__(name, net)

    def reset(self) -> None:
        """Volatile state from scratch (at boot and after every restart). To
        keep more volatile state, override it and call super().reset() first."""
        if "log" not in self.disk:
            self.disk.update(current_term=0, voted_for=None, log=[(0, NOOP)],
                             log_base=0)
            self.persist()
        self.role, self.leader_id = FOLLOWER, None
        self.commit_index = self.last_applied = 0
        self.votes: set[str] = set()
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.machine = self.make_machine()
        self.pending: dict[int, Message] = {}
        self.audit.restarted(self)
        self._seen = (FOLLOWER, self.disk["current_term"], 0, self.disk["log"][0])
        self._acked = (0, 0)        # (term, index): matched, as told to a leader
        self.reset_election_timer()

    # -- given helpers ----------------------------------------------------------
    def last_index(self) -> int:
        """The index of the last entry of the log (0 if it is empty)."""
        return len(self.disk["log"]) - 1

    def last_term(self) -> int:
        """The term of the last entry of the log (0 if it is empty)."""
        return self.disk["log"][-1][0]

    def term_at(self, index: int) -> int:
        """The term of the entry at `index` (0 for index 0)."""
        return self.disk["log"][index][0]

    def persist(self) -> None:
        """Write `self.disk` to stable storage (an fsync): what a crash keeps."""
        if not self._dying:
            self._stable = _copy(self.disk)

    def reset_election_timer(self) -> None:
        """(Re)arm the election timer: `on_election_timeout()` runs after a fresh
        random draw from config.election_timeout, unless this is called again
        first."""
        lo, hi = self.config.election_timeout
        self.set_timer("election", self.rng.uniform(lo, hi), self.on_election_timeout)

    def start_heartbeat_timer(self) -> None:
        """Arm the heartbeat timer: `on_heartbeat_timeout()` runs after
        config.heartbeat seconds."""
        self.set_timer("heartbeat", self.config.heartbeat, self.on_heartbeat_timeout)

    # -- clients ----------------------------------------------------------------
    def on_request(self, msg: Message) -> None:
        """A client's command: a leader appends it and answers once it is
        applied; anyone else says who it thinks leads."""
        index = self.append(msg.command) if self.role == LEADER else None
        if type(index) is not int:
            self.reply(msg, ok=False, output=None, leader=self.leader_id)
            return
        self.pending[index] = msg

    def _refuse_clients(self) -> None:
        for request in self.pending.values():
            self.reply(request, ok=False, output=None, leader=None)
        self.pending = {}

    # -- the referee --------------------------------------------------------------
    def deliver(self, msg: Message) -> None:
        super().deliver(msg)
        self._referee()

    def set_timer(self, name: str, delay: float, fn: Callable, *args: Any) -> None:
        super().set_timer(name, delay, self._after_timer, fn, args)

    def _after_timer(self, fn: Callable, args: tuple) -> None:
        fn(*args)
        self._referee()

    def _referee(self) -> None:
        """Compare the server's state with what it was before the event; report
        role changes, elections and commits to the audit; apply what is newly
        committed; raise at once if a safety rule broke."""
        audit, disk = self.audit, self.disk
        before = len(audit.problems)
        role, term, commit = self.role, disk["current_term"], self.commit_index
        seen_role, seen_term, seen_commit, tip = self._seen
        if term < seen_term:
            audit.problem("terms", f"{self.name}'s current_term went down from "
                          f"{seen_term} to {term}; a term never decreases")
        if role not in ROLES:
            audit.problem("roles", f"{self.name}'s role is {role!r}, not one of "
                          f"{ROLES}")
        elif role != seen_role or term != seen_term:
            audit.role(self.name, role, term)
            if role == LEADER:
                audit.became_leader(self)
            if seen_role == LEADER:
                self._refuse_clients()
        log = disk["log"]
        if commit != seen_commit:
            self._commit(seen_commit, commit, log)
        elif commit and (len(log) <= commit or log[commit] != tip):
            audit.problem("state machine safety", f"{self.name} removed or changed "
                          f"its entry at index {commit}, which it had committed")
        if self._acked[0] == term and len(log) <= self._acked[1]:
            audit.problem("log matching", f"{self.name} told the leader of term "
                          f"{term} that its log matched up to index {self._acked[1]}, "
                          f"then cut it to {len(log) - 1} in the same term: a stale "
                          "or duplicated append_entries must not cut the log (Figure "
                          "2: delete only entries that conflict)")
        commit = self.commit_index if type(self.commit_index) is int else seen_commit
        self._seen = (role, term, commit, log[commit] if commit < len(log) else tip)
        if len(audit.problems) > before:
            raise InvariantViolation(audit.problems[before])

    def _commit(self, old: int, new: Any, log: list) -> None:
        """Check a move of commit_index from `old` to `new`, then apply."""
        audit = self.audit
        if type(new) is not int:
            audit.problem("commit index", f"{self.name}'s commit_index is {new!r}, "
                          "not an int")
        elif new < old:
            audit.problem("commit index", f"{self.name}'s commit_index went down "
                          f"from {old} to {new}; what is committed stays committed")
        elif new >= len(log):
            audit.problem("commit index", f"{self.name} set commit_index to {new} "
                          f"but its log ends at index {len(log) - 1}")
        else:
            self._apply(new, log)

    def _apply(self, upto: int, log: list) -> None:
        """Apply entries up to `upto` in order; answer clients waiting for them."""
        while self.last_applied < upto:
            index = self.last_applied + 1
            entry = log[index]
            if not (type(entry) is tuple and len(entry) == 2):
                self.audit.problem("log entries", f"{self.name}'s log[{index}] is "
                                   f"{entry!r}; entries are (term, command) tuples")
                return
            self.last_applied = index
            term, command = entry
            output = None if command is NOOP else self.machine.apply(command)
            self.audit.applied(self, index, term, command)
            request = self.pending.pop(index, None)
            if request is not None:
                ok = request.command == command
                self.reply(request, ok=ok, output=output if ok else None,
                           leader=self.name)

    # -- crashes ----------------------------------------------------------------
    def send(self, dst: str, kind: str, **body: Any) -> Message | None:
        if self._dying:              # crashed in mid-handler: nothing more leaves
            return None
        msg = super().send(dst, kind, **body)
        if kind == "append_entries_ok" and body.get("success") is True:
            acked = (self.disk["current_term"], body.get("match_index"))
            if type(acked[1]) is int and acked > self._acked:
                self._acked = acked
        trap = self._trap
        if trap is not None and kind in trap[0] and trap[1](msg):
            self._trap, self._dying = None, True
            self.sim.schedule(0.0, trap[2])
        return msg

    def crash_after_sending(self, kinds: Sequence[str], crash: Callable[[], None],
                            when: Callable[[Message], bool] = lambda msg: True
                            ) -> None:
        """For graders: right after this server sends a message of one of `kinds`
        (for which `when(msg)` holds) it has crashed: nothing more it sends
        leaves, no later persist() reaches the disk, and `crash()`, which must
        kill it, runs next."""
        self._trap = (tuple(kinds), when, crash)

    def disarm(self) -> None:
        """For graders: forget a `crash_after_sending` that has not fired."""
        self._trap = None

    def install(self, **disk: Any) -> None:
        """For graders: write a down server's disk (e.g. Figure 8's logs)."""
        if self.alive:
            raise RuntimeError(f"{self.name} is up: kill it before writing its disk")
        self._stable = _copy({**self._stable, **disk})
        self.disk = _copy(self._stable)

    def tune(self, **knobs: Any) -> None:
        """For graders: give this server its own config knobs (e.g. a slower
        election timeout), from its next timer on."""
        self.config = dataclasses.replace(self.config, **knobs).validate()

    def kill(self) -> None:
        """Crash: volatile state, and every change not persisted, is lost."""
        if self.alive:
            super().kill()
            self.disk = _copy(self._stable)
            self._trap, self._dying = None, False
