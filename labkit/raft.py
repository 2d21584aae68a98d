"""Raft (数据一致性): a replicated log kept consistent by an elected leader, and a
linearizable key-value store on top of it.

Names follow Figure 2 of Ongaro & Ousterhout's "In Search of an Understandable
Consensus Algorithm" (extended version): `current_term`, `voted_for` and `log`
are persistent and live on the node's `disk`, which survives kill/restart;
`commit_index`, `last_applied`, `next_index` and `match_index` are volatile and
rebuilt by `reset()`. Beyond Figure 2: the leader appends a no-op entry when it
takes office (§8), followers answer a failed AppendEntries with the first index
of the conflicting term so the leader skips a whole term per round trip (§5.3),
logs are compacted into snapshots sent with InstallSnapshot (§7, Figure 13),
and optionally Pre-Vote with leader stickiness (Ongaro's thesis §9.6) keeps a
node returning from a partition from deposing a healthy leader.

`RaftCluster` is the facade tests and notebooks drive; its `Audit` watches every
node and `check()` raises `InvariantViolation` naming the broken rule (election
safety, log matching, leader completeness, state machine safety). `KVCluster`
adds the key-value state machine with client sessions and clients whose
operations form a history for `labkit.check.linearizable`.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import zlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from labkit import check
from labkit.errors import (
    ConfigError,
    InvariantViolation,
    RequestTimeout,
    require_int,
    require_number,
    require_probability,
)
from labkit.metrics import Result
from labkit.net import Message, NetConfig, Network
from labkit.node import Cluster, Node

LEADER, CANDIDATE, FOLLOWER, DOWN = "leader", "candidate", "follower", "down"
ROLES = (LEADER, CANDIDATE, FOLLOWER, DOWN)
#: The command of a no-op entry (and of the entry that stands for a snapshot).
NOOP = None
#: How a KVCluster serves reads; see KVCluster.
READ_MODES = ("log", "index", "local")


def _term_of(entry: tuple[int, Any]) -> int:
    return entry[0]


# -- state machines -------------------------------------------------------------

class Digest:
    """The default state machine: counts commands and folds each one's repr into
    a CRC-32, so two nodes hold equal digests iff they applied the same commands
    in the same order. Small enough to snapshot on every compaction."""

    def __init__(self):
        self.count, self.crc = 0, 0

    def apply(self, command: Any) -> int:
        self.count += 1
        self.crc = zlib.crc32(repr(command).encode(), self.crc)
        return self.count

    def is_read(self, command: Any) -> bool:
        return False

    def snapshot(self) -> tuple[int, int]:
        return (self.count, self.crc)

    def restore(self, snapshot: tuple[int, int]) -> None:
        self.count, self.crc = snapshot


class KVCommand(NamedTuple):
    """One client operation as a log entry: the session (client, seq) makes a
    retried command take effect at most once."""

    client: str
    seq: int
    op: str          # "get", "put" or "append"
    key: Hashable
    value: Any = None


class KVStore:
    """A key-value state machine with client sessions.

    `sessions[client]` holds the last sequence number applied for that client
    and its output, so a command that reaches the log twice (a client retried
    after a lost answer) is applied once and answered twice (Raft paper §8).
    """

    def __init__(self):
        self.data: dict[Hashable, Any] = {}
        self.sessions: dict[str, tuple[int, Any]] = {}

    def apply(self, command: KVCommand) -> Any:
        last = self.sessions.get(command.client)
        if last is not None and command.seq <= last[0]:
            return last[1]           # a duplicate: answer it, change nothing
        if command.op == "get":
            output = self.data.get(command.key)
        else:
            if command.op == "put":
                self.data[command.key] = command.value
            else:
                self.data[command.key] = self.data.get(command.key, "") + command.value
            output = None
        self.sessions[command.client] = (command.seq, output)
        return output

    def is_read(self, command: KVCommand) -> bool:
        return command.op == "get"

    def query(self, command: KVCommand) -> Any:
        """Answer a read from the current state without going through the log."""
        return self.data.get(command.key)

    def snapshot(self) -> tuple[tuple, tuple]:
        return (tuple(self.data.items()), tuple(self.sessions.items()))

    def restore(self, snapshot: tuple[tuple, tuple]) -> None:
        self.data, self.sessions = dict(snapshot[0]), dict(snapshot[1])


# -- configuration --------------------------------------------------------------

@dataclass
class RaftConfig:
    """Knobs every node of one cluster reads (shared, so a playground can change
    them mid-run). Times in seconds."""

    election_timeout: tuple[float, float] = (0.150, 0.300)
    heartbeat: float = 0.050
    pre_vote: bool = False
    snapshot_every: int | None = None   # compact after this many applied entries
    max_entries: int = 64               # entries per AppendEntries at most
    read: str = "log"                   # how a KVCluster serves reads
    disk_delay: float = 0.0             # time to persist before answering an RPC

    def validate(self) -> RaftConfig:
        timeout = self.election_timeout
        if not isinstance(timeout, tuple | list) or len(timeout) != 2:
            raise ConfigError(f"election_timeout must be a (low, high) pair of "
                              f"seconds, got {timeout!r}")
        lo = require_number("election_timeout low", timeout[0], positive=True)
        hi = require_number("election_timeout high", timeout[1], minimum=lo)
        self.election_timeout = (lo, hi)
        self.heartbeat = require_number("heartbeat", self.heartbeat, positive=True)
        if self.heartbeat >= lo:
            raise ConfigError(f"heartbeat ({self.heartbeat:g} s) must be shorter than "
                              f"the election timeout ({lo:g} s), or followers start "
                              "elections against a healthy leader")
        if not isinstance(self.pre_vote, bool):
            raise ConfigError(f"pre_vote must be True or False, got {self.pre_vote!r}")
        if self.snapshot_every is not None:
            require_int("snapshot_every", self.snapshot_every, minimum=1)
        require_int("max_entries", self.max_entries, minimum=1)
        self.disk_delay = require_number("disk_delay", self.disk_delay, minimum=0.0)
        if self.read not in READ_MODES:
            raise ConfigError(f"read must be one of {READ_MODES}, got {self.read!r}")
        return self


# -- one server -----------------------------------------------------------------

class RaftNode(Node):
    """One Raft server; names follow Figure 2 of the Raft paper.

    disk: current_term, voted_for, log (a list of (term, command); log[0] stands
    for the snapshot: its term is the last included entry's) and log_base (the
    index of log[0]), snapshot (the state machine's state at log_base).
    """

    def __init__(self, name: str, net: Network, members: Sequence[str],
                 config: RaftConfig, audit: Audit,
                 machine: Callable[[], Any]):
        self.members = tuple(members)
        self.others = tuple(m for m in members if m != name)
        self.majority = len(self.members) // 2 + 1
        self.config, self.audit, self.make_machine = config, audit, machine
        self.rng = net.sim.rng(f"raft.{name}")
        super().__init__(name, net)

    def reset(self) -> None:
        """Volatile state from scratch; the state machine from the snapshot."""
        disk = self.disk
        if "log" not in disk:
            disk.update(current_term=0, voted_for=None, log=[(0, NOOP)], log_base=0,
                        snapshot=None)
        self.role, self.leader_id = FOLLOWER, None
        self.machine = self.make_machine()
        if disk["snapshot"] is not None:
            self.machine.restore(disk["snapshot"])
        self.commit_index = self.last_applied = disk["log_base"]
        self.votes: set[str] = set()
        self.pre_votes: set[str] | None = None
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.sent_upto: dict[str, int] = {}   # highest index sent to each peer
        self.last_contact = -math.inf         # when a leader was last heard from
        self.last_broadcast = -math.inf       # leader: last heartbeat round
        self.pending: dict[int, Message] = {}  # leader: client requests by index
        self.read_round = 0                    # leader: heartbeat rounds for reads
        self.acked_round: dict[str, int] = {}
        self.reads: list[list] = []            # leader: [request, round, read index]
        self.audit.restarted(self)
        self.reset_election_timer()

    # -- small helpers ----------------------------------------------------------
    def last_index(self) -> int:
        return self.disk["log_base"] + len(self.disk["log"]) - 1

    def term_at(self, index: int) -> int:
        return self.disk["log"][index - self.disk["log_base"]][0]

    def is_up_to_date(self, last_log_index: int, last_log_term: int) -> bool:
        """§5.4.1: the candidate's log ends in a later term, or the same term and
        at least as far."""
        my_term = self.disk["log"][-1][0]
        return last_log_term > my_term or (last_log_term == my_term
                                           and last_log_index >= self.last_index())

    def heard_from_leader_recently(self) -> bool:
        """Leader stickiness: within the minimum election timeout of a leader."""
        return (self.role == LEADER or self.sim.now - self.last_contact
                < self.config.election_timeout[0])

    def answer(self, dst: str, kind: str, **body: Any) -> None:
        """Answer an RPC once what it changed is on disk (Figure 2: persist
        before responding); the write takes `disk_delay` seconds."""
        delay = self.config.disk_delay
        if delay:
            self.sim.schedule(delay, self._answer_later, self._epoch, dst, kind, body)
        else:
            self.net.send(self.name, dst, kind, body)

    def _answer_later(self, epoch: int, dst: str, kind: str, body: dict) -> None:
        if epoch == self._epoch and self.alive:     # a crash loses the write
            self.net.send(self.name, dst, kind, body)

    def reset_election_timer(self) -> None:
        lo, hi = self.config.election_timeout
        self.set_timer("election", self.rng.uniform(lo, hi), self.election_timeout)

    def _set_role(self, role: str) -> None:
        self.role = role
        self.audit.role(self.name, role, self.disk["current_term"])

    # -- elections (§5.2) ---------------------------------------------------------
    def election_timeout(self) -> None:
        if self.role == LEADER:
            return
        if self.config.pre_vote:
            self.start_pre_vote()
        else:
            self.become_candidate()

    def start_pre_vote(self) -> None:
        """Ask whether an election could be won before disturbing anyone's term."""
        self.pre_votes = {self.name}
        self.reset_election_timer()
        last_index, last_term = self.last_index(), self.disk["log"][-1][0]
        for peer in self.others:
            self.send(peer, "pre_vote", term=self.disk["current_term"] + 1,
                      last_log_index=last_index, last_log_term=last_term)
        if len(self.pre_votes) >= self.majority:
            self.become_candidate()

    def become_candidate(self) -> None:
        disk = self.disk
        disk["current_term"] += 1              # persisted before any vote request
        disk["voted_for"] = self.name
        self.leader_id, self.votes, self.pre_votes = None, {self.name}, None
        self._set_role(CANDIDATE)
        self.reset_election_timer()            # a split vote retries after a new draw
        last_index, last_term = self.last_index(), disk["log"][-1][0]
        for peer in self.others:
            self.send(peer, "request_vote", term=disk["current_term"],
                      candidate_id=self.name, last_log_index=last_index,
                      last_log_term=last_term)
        if len(self.votes) >= self.majority:
            self.become_leader()

    def become_follower(self, term: int) -> None:
        """Adopt a newer term (forgetting the vote), and stop leading or running."""
        disk = self.disk
        if term > disk["current_term"]:
            disk["current_term"], disk["voted_for"] = term, None
        if self.role == FOLLOWER:
            return
        was_leader = self.role == LEADER
        self.pre_votes = None
        self._set_role(FOLLOWER)
        if was_leader:
            self.cancel_timer("heartbeat")
            self.reset_election_timer()
            self._refuse_clients()

    def become_leader(self) -> None:
        self._set_role(LEADER)
        self.leader_id = self.name
        self.audit.became_leader(self)
        self.cancel_timer("election")
        following = self.last_index() + 1
        for peer in self.others:
            self.next_index[peer], self.match_index[peer] = following, 0
            self.sent_upto[peer], self.acked_round[peer] = 0, 0
        # §8: a no-op of its own term lets the leader commit (and learn the commit
        # index) without waiting for a client.
        self.disk["log"].append((self.disk["current_term"], NOOP))
        self.broadcast()
        self.advance_commit_index()            # a one-node cluster commits alone

    def on_pre_vote(self, msg: Message) -> None:
        b = msg.body
        grant = (b["term"] > self.disk["current_term"]
                 and not self.heard_from_leader_recently()
                 and self.is_up_to_date(b["last_log_index"], b["last_log_term"]))
        self.send(msg.src, "pre_vote_ok", term=self.disk["current_term"],
                  vote_granted=grant, for_term=b["term"])

    def on_pre_vote_ok(self, msg: Message) -> None:
        b = msg.body
        if b["term"] > self.disk["current_term"]:
            self.become_follower(b["term"])
            self.pre_votes = None
            return
        if (self.pre_votes is None or not b["vote_granted"]
                or b["for_term"] != self.disk["current_term"] + 1):
            return
        self.pre_votes.add(msg.src)
        if len(self.pre_votes) >= self.majority:
            self.become_candidate()

    def on_request_vote(self, msg: Message) -> None:
        b, disk = msg.body, self.disk
        term = b["term"]
        if self.config.pre_vote and term > disk["current_term"] and \
                self.heard_from_leader_recently():
            # Thesis §4.2.3: within the minimum election timeout of hearing from a
            # leader, neither adopt the term nor vote.
            self.answer(msg.src, "request_vote_ok", term=disk["current_term"],
                        vote_granted=False)
            return
        if term > disk["current_term"]:
            self.become_follower(term)
        grant = (term == disk["current_term"]
                 and disk["voted_for"] in (None, b["candidate_id"])
                 and self.is_up_to_date(b["last_log_index"], b["last_log_term"]))
        if grant:
            disk["voted_for"] = b["candidate_id"]
            self.reset_election_timer()
        self.answer(msg.src, "request_vote_ok", term=disk["current_term"],
                    vote_granted=grant)

    def on_request_vote_ok(self, msg: Message) -> None:
        b = msg.body
        if b["term"] > self.disk["current_term"]:
            self.become_follower(b["term"])
            return
        if (self.role != CANDIDATE or b["term"] != self.disk["current_term"]
                or not b["vote_granted"]):
            return
        self.votes.add(msg.src)
        if len(self.votes) >= self.majority:
            self.become_leader()

    # -- log replication (§5.3) -----------------------------------------------------
    def append(self, command: Any) -> int:
        """Leader: append a command in the current term; its index. A follower
        that has been sent everything before it gets it at once (pipelined); one
        still catching up gets it with the next batch."""
        self.disk["log"].append((self.disk["current_term"], command))
        index = self.last_index()
        for peer in self.others:
            if self.sent_upto[peer] == index - 1:
                self.send_append_entries(peer, index)
        if self.majority == 1:
            self.advance_commit_index()
        return index

    def broadcast(self) -> None:
        """Leader: one round of AppendEntries (heartbeats carry any new entries)."""
        self.last_broadcast = self.sim.now
        for peer in self.others:
            self.send_append_entries(peer)
        self.set_timer("heartbeat", self.config.heartbeat, self.broadcast)

    def send_append_entries(self, peer: str, following: int | None = None) -> None:
        """Send `peer` the entries from `following` (default: its next_index) on,
        or the snapshot if they were compacted away."""
        disk = self.disk
        base, log = disk["log_base"], disk["log"]
        if following is None:
            following = self.next_index[peer]
        if following <= base:                  # the entries are gone: send the snapshot
            self.sent_upto[peer] = base
            self.send(peer, "install_snapshot", term=disk["current_term"],
                      leader_id=self.name, last_included_index=base,
                      last_included_term=log[0][0], data=disk["snapshot"],
                      round=self.read_round)
            return
        start = following - base
        entries = tuple(log[start:start + self.config.max_entries])
        self.sent_upto[peer] = following - 1 + len(entries)
        self.send(peer, "append_entries", term=disk["current_term"],
                  leader_id=self.name, prev_log_index=following - 1,
                  prev_log_term=log[start - 1][0], entries=entries,
                  leader_commit=self.commit_index, round=self.read_round)

    def on_append_entries(self, msg: Message) -> None:
        b, disk = msg.body, self.disk
        term = b["term"]
        if not self._accept_leader(msg, "append_entries_ok"):
            return
        base, log = disk["log_base"], disk["log"]
        prev, entries = b["prev_log_index"], b["entries"]
        prev_term = b["prev_log_term"]
        if prev < base:
            # Entries up to log_base are in our snapshot: committed, so they match
            # the leader's (leader completeness). Skip them.
            entries = entries[base - prev:]
            prev, prev_term = base, log[0][0]
        last = base + len(log) - 1
        if prev > last:                        # our log is too short
            self.answer(msg.src, "append_entries_ok", term=term, success=False,
                        conflict_term=None, conflict_index=last + 1, round=b["round"])
            return
        if log[prev - base][0] != prev_term:   # §5.3 fast backup: skip a whole term
            conflict = log[prev - base][0]
            first = bisect.bisect_left(log, conflict, 1, prev - base + 1, key=_term_of)
            self.answer(msg.src, "append_entries_ok", term=term, success=False,
                        conflict_term=conflict, conflict_index=base + first,
                        round=b["round"])
            return
        # Figure 2, steps 3-4: delete a conflicting suffix, append what is new.
        # Entries already present are kept: a delayed message must not cut the log.
        for k, entry in enumerate(entries):
            pos = prev + 1 + k - base
            if pos == len(log):
                log.extend(entries[k:])
                break
            if log[pos][0] != entry[0]:
                if base + pos <= self.commit_index:
                    self.audit.problem(
                        "state machine safety", f"{self.name} was told to overwrite "
                        f"committed index {base + pos} (commit index "
                        f"{self.commit_index}) by {msg.src} in term {term}")
                del log[pos:]
                log.extend(entries[k:])
                break
        match = prev + len(entries)
        if b["leader_commit"] > self.commit_index:
            self.commit_index = max(self.commit_index, min(b["leader_commit"], match))
            self.apply_committed()
        self.answer(msg.src, "append_entries_ok", term=term, success=True,
                    match_index=match, round=b["round"])

    def _accept_leader(self, msg: Message, reply_kind: str) -> bool:
        """Common head of AppendEntries and InstallSnapshot: refuse a stale
        leader (telling it our term), else follow this one and reset the timer."""
        term, disk = msg.body["term"], self.disk
        if term < disk["current_term"]:
            self.answer(msg.src, reply_kind, term=disk["current_term"], success=False,
                        conflict_term=None, conflict_index=0, match_index=0,
                        round=msg.body["round"])
            return False
        if term > disk["current_term"] or self.role != FOLLOWER:
            self.become_follower(term)
        self.leader_id, self.last_contact = msg.src, self.sim.now
        self.pre_votes = None
        self.reset_election_timer()
        return True

    def on_append_entries_ok(self, msg: Message) -> None:
        b = msg.body
        if not self._from_follower(msg):
            return
        peer = msg.src
        if b["success"]:
            match = b["match_index"]
            if match > self.match_index[peer]:
                self.match_index[peer] = match
                self.advance_commit_index()
            if match >= self.next_index[peer]:
                self.next_index[peer] = match + 1
            # Catching up, one batch at a time: only the answer to the latest batch
            # sends the next, so duplicated answers never multiply the messages.
            upto = self.sent_upto[peer]
            if match >= upto and upto < self.last_index():
                self.send_append_entries(peer)
            return
        following = b["conflict_index"]
        if b["conflict_term"] is not None:     # resume after our last entry of it
            log, base = self.disk["log"], self.disk["log_base"]
            pos = bisect.bisect_right(log, b["conflict_term"], 1, key=_term_of) - 1
            if pos >= 1 and log[pos][0] == b["conflict_term"]:
                following = base + pos + 1
        following = max(self.match_index[peer] + 1, following)
        if following < self.next_index[peer]:   # a repeated answer changes nothing
            self.next_index[peer] = following
            self.send_append_entries(peer)

    def _from_follower(self, msg: Message) -> bool:
        """Common head of replies to the leader: step down before a newer term,
        ignore stale replies, count the heartbeat round the follower saw."""
        term = msg.body["term"]
        if term > self.disk["current_term"]:
            self.become_follower(term)
            return False
        if self.role != LEADER or term != self.disk["current_term"]:
            return False
        if msg.body["round"] > self.acked_round[msg.src]:
            self.acked_round[msg.src] = msg.body["round"]
            if self.reads:
                self.serve_reads()
        return True

    def advance_commit_index(self) -> None:
        """Leader: commit the highest index stored on a majority, but only if its
        entry is from the current term; older entries commit with it (§5.4.2,
        the Figure 8 rule)."""
        matches = sorted([self.last_index(), *self.match_index.values()],
                         reverse=True)
        n = matches[self.majority - 1]
        if n > self.commit_index and self.term_at(n) == self.disk["current_term"]:
            self.audit.commit(self, self.commit_index, n)
            self.commit_index = n
            self.apply_committed()

    def apply_committed(self) -> None:
        """Apply entries up to commit_index in order, answer waiting clients, and
        compact the log when it has grown past `snapshot_every`."""
        log, base = self.disk["log"], self.disk["log_base"]
        machine, pending = self.machine, self.pending
        while self.last_applied < self.commit_index:
            self.last_applied += 1
            index = self.last_applied
            term, command = log[index - base]
            output = None if command is NOOP else machine.apply(command)
            self.audit.applied(self, index, term, command)
            if pending:
                request = pending.pop(index, None)
                if request is not None:      # only a leader of this term has any
                    self.reply(request, ok=True, output=output, leader=self.name)
        if self.reads:
            self.serve_reads()
        every = self.config.snapshot_every
        if every is not None and self.last_applied - base >= every:
            self.take_snapshot()

    # -- log compaction (§7) --------------------------------------------------------
    def take_snapshot(self) -> None:
        """Replace the applied prefix of the log by the state machine's state."""
        disk = self.disk
        cut = self.last_applied - disk["log_base"]
        log = disk["log"]
        disk["snapshot"] = self.machine.snapshot()
        disk["log"] = [(log[cut][0], NOOP), *log[cut + 1:]]
        disk["log_base"] = self.last_applied
        self.audit.event(self, "snapshot", self.last_applied)

    def on_install_snapshot(self, msg: Message) -> None:
        if not self._accept_leader(msg, "install_snapshot_ok"):
            return
        b, disk = msg.body, self.disk
        index, term = b["last_included_index"], b["last_included_term"]
        if index > self.commit_index:
            base, log = disk["log_base"], disk["log"]
            keep = []
            if index <= self.last_index() and log[index - base][0] == term:
                keep = log[index - base + 1:]    # Figure 13 step 6: keep what follows
            disk["log"], disk["log_base"] = [(term, NOOP), *keep], index
            disk["snapshot"] = b["data"]
            self.machine = self.make_machine()
            self.machine.restore(b["data"])
            self.commit_index = self.last_applied = index
            self.audit.installed(self, index)
        self.answer(msg.src, "install_snapshot_ok", term=disk["current_term"],
                    success=True, match_index=index, round=b["round"])

    def on_install_snapshot_ok(self, msg: Message) -> None:
        self.on_append_entries_ok(msg)

    # -- clients ----------------------------------------------------------------
    def on_request(self, msg: Message) -> None:
        """A client command: append it (or answer a read), if we lead."""
        if self.role != LEADER:
            self.reply(msg, ok=False, output=None, leader=self.leader_id)
            return
        command = msg.body["command"]
        mode = self.config.read
        if mode != "log" and self.machine.is_read(command):
            if mode == "local":                # BROKEN on purpose: may be deposed
                self.reply(msg, ok=True, output=self.machine.query(command),
                           leader=self.name)
                return
            self.read_round += 1               # read index (thesis §6.4)
            self.reads.append([msg, self.read_round, None])
            self.serve_reads()
            for peer in self.others:
                self.send_append_entries(peer)
            return
        self.pending[self.append(command)] = msg

    def serve_reads(self) -> None:
        """Read index: answer reads once a majority acknowledged a heartbeat round
        sent after the read arrived (we were still leader then) and the state
        machine has applied the commit index of that moment."""
        rounds = sorted([self.read_round, *self.acked_round.values()], reverse=True)
        confirmed = rounds[self.majority - 1]
        current = self.term_at(self.commit_index) == self.disk["current_term"]
        waiting = []
        for read in self.reads:
            request, needed, index = read
            if index is None and current:
                index = read[2] = self.commit_index
            if needed <= confirmed and index is not None and \
                    self.last_applied >= index:
                self.reply(request, ok=True,
                           output=self.machine.query(request.body["command"]),
                           leader=self.name)
            else:
                waiting.append(read)
        self.reads = waiting

    def _refuse_clients(self) -> None:
        """A deposed leader tells its waiting clients to look elsewhere."""
        for request in [*self.pending.values(), *(r[0] for r in self.reads)]:
            self.reply(request, ok=False, output=None, leader=None)
        self.pending, self.reads = {}, []


# -- the observer behind check() ----------------------------------------------------

class Audit:
    """Watches every node of a cluster (as a test harness would) and records what
    Raft's safety properties forbid; `check` raises the first one found.

    roles: (time, node, role, term) each time a role changes, for timelines.
    committed: (term, command) of every index known committed, in order.
    """

    def __init__(self, cluster: RaftCluster):
        self.cluster = cluster
        self.roles: list[tuple[float, str, str, int]] = []
        self.leaders: dict[int, str] = {}
        self.elections: list[tuple[float, str, int]] = []
        self.committed: list[tuple[int, Any]] = []
        self.applied_by: dict[str, list[tuple[int, Any]]] = {}
        self.problems: list[str] = []

    @property
    def sim(self):
        return self.cluster.sim

    def problem(self, rule: str, text: str) -> None:
        self.problems.append(f"{rule}: {text} (t = {self.sim.now:.4f} s)")

    def role(self, name: str, role: str, term: int) -> None:
        self.roles.append((self.sim.now, name, role, term))
        if self.sim.tracing:
            self.sim.record("role", name, name, role, note=f"term {term}")

    def event(self, node: RaftNode, what: str, index: int) -> None:
        if self.sim.tracing:
            self.sim.record(what, node.name, node.name, what, note=f"index {index}")

    def restarted(self, node: RaftNode) -> None:
        applied = self.applied_by.setdefault(node.name, [])
        del applied[node.last_applied:]        # it will apply the rest again
        self.role(node.name, FOLLOWER, node.disk["current_term"])

    def became_leader(self, node: RaftNode) -> None:
        """Election safety and leader completeness, checked as the leader starts."""
        term = node.disk["current_term"]
        other = self.leaders.setdefault(term, node.name)
        if other != node.name:
            self.problem("election safety", f"{other} and {node.name} were both "
                         f"elected leader in term {term}")
        self.elections.append((self.sim.now, node.name, term))
        base, last = node.disk["log_base"], node.last_index()
        for index in range(base + 1, len(self.committed) + 1):
            if index > last or node.term_at(index) != self.committed[index - 1][0]:
                self.problem("leader completeness", f"{node.name}, leader of term "
                             f"{term}, lacks committed index {index}")
                break

    def commit(self, node: RaftNode, old: int, new: int) -> None:
        log, base = node.disk["log"], node.disk["log_base"]
        for index in range(old + 1, new + 1):
            self._commit(node, index, log[index - base])

    def _commit(self, node: RaftNode, index: int, entry: tuple[int, Any]) -> None:
        known = self.committed
        if index <= len(known):
            if known[index - 1] != entry:
                self.problem("state machine safety", f"{node.name} has {entry} at "
                             f"committed index {index}, which holds "
                             f"{known[index - 1]}")
        elif index == len(known) + 1:
            known.append(entry)
        else:
            self.problem("log matching", f"{node.name} committed index {index} "
                         f"before index {len(known) + 1}")

    def applied(self, node: RaftNode, index: int, term: int, command: Any) -> None:
        self._commit(node, index, (term, command))
        self.applied_by[node.name].append((term, command))

    def installed(self, node: RaftNode, index: int) -> None:
        if index > len(self.committed):
            self.problem("state machine safety", f"{node.name} installed a snapshot "
                         f"up to index {index}, beyond anything committed")
        self.applied_by[node.name] = list(self.committed[:index])
        self.event(node, "install", index)

    def check(self) -> None:
        """Raise InvariantViolation for the first problem seen so far, or for a
        pair of logs that break log matching now."""
        if self.problems:
            more = len(self.problems) - 1
            raise InvariantViolation(self.problems[0] + (f" [and {more} more]"
                                                         if more else ""))
        nodes = list(self.cluster.nodes.values())
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                _check_log_matching(a, b)
        for node in nodes:
            applied = self.applied_by[node.name]
            if applied != self.committed[:len(applied)]:
                first = next(i for i, (x, y) in enumerate(
                    zip(applied, self.committed, strict=False)) if x != y)
                raise InvariantViolation(
                    f"state machine safety: {node.name} applied {applied[first]} at "
                    f"index {first + 1}, committed there is {self.committed[first]}")


def _check_log_matching(a: RaftNode, b: RaftNode) -> None:
    """If two logs hold an entry with the same index and term, they hold the same
    entries up to it (§5.3). Compared over the indexes both still store."""
    la, lb = a.disk["log"], b.disk["log"]
    ba, bb = a.disk["log_base"], b.disk["log_base"]
    low, high = max(ba, bb) + 1, min(a.last_index(), b.last_index())
    matched = False
    for index in range(high, low - 1, -1):
        ea, eb = la[index - ba], lb[index - bb]
        matched = matched or ea[0] == eb[0]
        if matched and ea != eb:
            raise InvariantViolation(
                f"log matching: {a.name} and {b.name} hold entries of one term at "
                f"or after index {index} but differ there: {ea} vs {eb}")


# -- the cluster facade ------------------------------------------------------------

class RaftCluster(Cluster):
    """N Raft servers n1..nN on one simulated network, with the shared fault verbs
    and `leader, role, term, submit, applied, check` (see DESIGN.md).

    machine: a factory of state machines (objects with apply, is_read, snapshot,
    restore); the default `Digest` accepts any command. snapshot_every: compact
    a node's log once it has applied that many entries past its last snapshot.
    pre_vote: turn on Pre-Vote and leader stickiness. disk_delay: seconds a
    server takes to persist before it answers an RPC (0: instant disks).
    """

    def __init__(self, size: int = 5, *, seed: int = 0,
                 election_timeout: tuple[float, float] = (0.150, 0.300),
                 heartbeat: float = 0.050, net: NetConfig | None = None,
                 pre_vote: bool = False, snapshot_every: int | None = None,
                 max_entries: int = 64, disk_delay: float = 0.0,
                 machine: Callable[[], Any] = Digest, read: str = "log",
                 trace: bool = True):
        size = require_int("size", size, minimum=1)
        if not callable(machine):
            raise ConfigError(f"machine must be a factory of state machines, got "
                              f"{machine!r}")
        self.config = RaftConfig(election_timeout, heartbeat, pre_vote,
                                 snapshot_every, max_entries, read,
                                 disk_delay).validate()
        names = [f"n{i}" for i in range(1, size + 1)]
        self.audit = Audit(self)
        super().__init__(names=names, seed=seed, net=net, trace=trace,
                         node_factory=lambda name, network: RaftNode(
                             name, network, names, self.config, self.audit, machine))

    # -- the contract -------------------------------------------------------------
    def leader(self) -> str | None:
        """The live leader of the newest term that has one, else None."""
        best = None
        for node in self.nodes.values():
            if node.alive and node.role == LEADER and (
                    best is None or node.disk["current_term"]
                    > best.disk["current_term"]):
                best = node
        return None if best is None else best.name

    def role(self, name: str) -> str:
        """"leader", "candidate", "follower", or "down" if killed."""
        node = self.node(name)
        return node.role if node.alive else DOWN

    def term(self, name: str) -> int:
        return self.node(name).disk["current_term"]

    def submit(self, command: Any, node: str | None = None) -> int | None:
        """Append `command` via `node` (default: the leader) and start replicating
        it; its log index, or None if that node is not a live leader."""
        if command is NOOP:
            raise ConfigError("None is the no-op entry; submit another value")
        name = self.leader() if node is None else node
        if name is None:
            return None
        server = self.node(name)
        if not server.alive or server.role != LEADER:
            return None
        return server.append(command)

    def applied(self, name: str) -> list:
        """The client commands `name`'s state machine has applied, in log order."""
        self.node(name)
        return [c for _, c in self.audit.applied_by[name] if c is not NOOP]

    def check(self) -> None:
        """Raise InvariantViolation if election safety, log matching, leader
        completeness or state machine safety was ever broken."""
        self.audit.check()

    def configure(self, **knobs: Any) -> None:
        """Change knobs of the running cluster (election_timeout, heartbeat,
        pre_vote, snapshot_every, max_entries, read, disk_delay); each node uses
        them from its next timer or message on."""
        known = [f.name for f in dataclasses.fields(RaftConfig)]
        for name in knobs:
            if name not in known:
                raise ConfigError(f"unknown Raft knob {name!r}; knobs are {known}")
        new = dataclasses.replace(self.config, **knobs).validate()
        for name in known:
            setattr(self.config, name, getattr(new, name))

    # -- more to look at ----------------------------------------------------------
    def commit_index(self, name: str) -> int:
        return self.node(name).commit_index

    def log(self, name: str) -> list[tuple[int, int, Any]]:
        """(index, term, command) of every entry `name` stores (after its snapshot)."""
        node = self.node(name)
        base = node.disk["log_base"]
        return [(base + i, t, c) for i, (t, c) in enumerate(node.disk["log"]) if i]

    def kill(self, name: str) -> None:
        node = self.node(name)
        if node.alive:
            super().kill(name)
            self.audit.role(name, DOWN, node.disk["current_term"])

    def elections(self) -> list[tuple[float, str, int]]:
        """(time, leader, term) of every election won so far."""
        return list(self.audit.elections)

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """The run so far; data adds the role timeline ("roles"), elections, each
        node's log, log_base and commit index, and the leaderless time."""
        result = super().result(scenario, **params)
        names = self.names
        logs = {n: [(i, t) for i, t, _ in self.log(n)] for n in names}
        data = {**result.data, "names": names, "roles": tuple(self.audit.roles),
                "elections": tuple(self.audit.elections), "logs": logs,
                "log_base": {n: self.node(n).disk["log_base"] for n in names},
                "commit": {n: self.node(n).commit_index for n in names},
                "leaderless": leaderless(self.audit.roles, self.now)}
        return dataclasses.replace(result, data=data)


def leaderless(roles: Sequence[tuple[float, str, str, int]], end: float,
               start: float = 0.0) -> float:
    """Seconds in [start, end) during which no node was in the leader role, from
    a role timeline of (time, node, role, term)."""
    current: dict[str, str] = {}
    total, before = 0.0, start
    for time, name, role, _ in roles:
        time = min(max(time, start), end)
        if LEADER not in current.values():
            total += time - before
        before = time
        current[name] = role
    if LEADER not in current.values():
        total += end - before
    return total


# -- a key-value store with clients --------------------------------------------------

class KVClient(Node):
    """A client of a KVCluster: one operation at a time, retried with the same
    sequence number until a leader answers, so it takes effect at most once.

    Clients sit outside partitions (they reach every server) and never crash.
    Every operation is recorded in the cluster's history as a `check.Op`.
    """

    def __init__(self, name: str, net: Network, cluster: KVCluster,
                 timeout: float):
        self.cluster, self.timeout = cluster, timeout
        self.servers = cluster.names
        super().__init__(name, net)
        net.keep_outside_partitions(name)

    def reset(self) -> None:
        self.seq, self.leader_hint, self.turn = 0, None, 0

    def get(self, key: Hashable):
        return self.spawn(self._perform("get", key, None))

    def put(self, key: Hashable, value: Any):
        return self.spawn(self._perform("put", key, value))

    def append(self, key: Hashable, value: str):
        return self.spawn(self._perform("append", key, value))

    def _perform(self, op: str, key: Hashable, value: Any):
        self.seq += 1
        command = KVCommand(self.name, self.seq, op, key, value)
        history = self.cluster.history
        slot = len(history)
        history.append(check.Op(self.name, op, key, value, None, self.sim.now))
        while True:
            server = self.leader_hint or self.servers[self.turn % len(self.servers)]
            try:
                reply = yield self.call(server, "request", self.timeout,
                                        command=command)
            except RequestTimeout:
                self.leader_hint, self.turn = None, self.turn + 1
                continue
            if reply.ok:
                history[slot] = history[slot]._replace(output=reply.output,
                                                       ret=self.sim.now)
                return reply.output
            hint = reply.leader
            self.leader_hint = hint if hint not in (None, server) else None
            if self.leader_hint is None:
                self.turn += 1
                yield self.cluster.config.heartbeat   # nobody knows: wait a beat


class KVCluster(RaftCluster):
    """A RaftCluster whose state machine is a `KVStore`, with clients c1, c2, ...

    read: "log" — a get is a log entry like a write (linearizable, one log entry
    per read); "index" — the leader notes its commit index, confirms it is still
    leader with one heartbeat round to a majority, and answers once that index is
    applied (linearizable, no log growth; Raft thesis §6.4); "local" — BROKEN on
    purpose: whoever believes it is leader answers from its own state at once,
    so a deposed leader cut off by a partition serves stale reads.
    """

    def __init__(self, size: int = 5, *, read: str = "log",
                 client_timeout: float = 0.5, **options: Any):
        super().__init__(size, machine=KVStore, read=read, **options)
        self.client_timeout = require_number("client_timeout", client_timeout,
                                             positive=True)
        self.history: list[check.Op] = []
        self.clients: dict[str, KVClient] = {}

    def client(self, name: str | None = None) -> KVClient:
        """The client called `name` (default: a new one, c1, c2, ...)."""
        if name is None:
            name = f"c{len(self.clients) + 1}"
        if name not in self.clients:
            if name in self.nodes:
                raise ConfigError(f"{name!r} is a server's name")
            self.clients[name] = KVClient(name, self.network, self,
                                          self.client_timeout)
        return self.clients[name]

    def workload(self, clients: int = 3, *, keys: Sequence[Hashable] = ("x", "y"),
                 think: float = 0.05, reads: float = 0.5, writes: str = "put",
                 until: float | None = None) -> None:
        """Start `clients` closed-loop clients: each waits an exponential think
        time (mean `think` s), then gets a random key (probability `reads`) or
        writes a unique token "c1.7;" to it (with `writes` "put" or "append"),
        until simulated time `until` (default: forever). Put histories are quick
        to check; appends show duplicates plainly but many overlapping appends
        to one key make the check slow (each order is a different string)."""
        clients = require_int("clients", clients, minimum=1)
        think = require_number("think", think, positive=True)
        reads = require_probability("reads", reads)
        if writes not in ("put", "append"):
            raise ConfigError(f"writes must be 'put' or 'append', got {writes!r}")
        if not keys:
            raise ConfigError("keys must name at least one key")
        for _ in range(clients):
            client = self.client()
            rng = self.sim.rng(f"kv.{client.name}")
            client.spawn(self._loop(client, rng, list(keys), think, reads,
                                    getattr(client, writes), until))

    def _loop(self, client: KVClient, rng, keys, think, reads, write, until):
        while until is None or self.sim.now < until:
            yield rng.expovariate(1.0 / think)
            key = rng.choice(keys)
            if rng.random() < reads:
                yield client.get(key)
            else:
                yield write(key, f"{client.name}.{client.seq + 1};")

    def linearizable(self, **options: Any) -> check.CheckResult:
        """Check the history recorded so far (see labkit.check.linearizable)."""
        return check.linearizable(self.history, **options)

    def value(self, name: str, key: Hashable) -> Any:
        """The value of `key` in `name`'s state machine now."""
        return self.node(name).machine.data.get(key)
