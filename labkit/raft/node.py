"""One Raft server (`RaftNode`) and the knobs it reads (`RaftConfig`).

Everything a single server does lives here, as small methods named after
Figure 2 of the Raft paper: elections and Pre-Vote (§5.2, thesis §9.6), log
replication with the fast conflict backup (§5.3), the commit rule (§5.4.2),
applying entries, compaction with InstallSnapshot (§7) and serving clients,
including read-index reads (thesis §6.4). The role names and the no-op command
are defined here too, since every other module of the package speaks them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.errors import ConfigError, require_int, require_number
from labkit.net import Message, Network
from labkit.node import Node

LEADER, CANDIDATE, FOLLOWER, DOWN = "leader", "candidate", "follower", "down"
ROLES = (LEADER, CANDIDATE, FOLLOWER, DOWN)
#: The command of a no-op entry (and of the entry that stands for a snapshot).
NOOP = None
#: How a KVCluster serves reads; see KVCluster.
READ_MODES = ("log", "index", "local")


def _term_of(entry: tuple[int, Any]) -> int:
    return entry[0]


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
                 config: RaftConfig, audit: Any,   # the cluster's raft.audit.Audit
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

    def answer(self, dst: str, kind: str, body: dict[str, Any]) -> None:
        """Answer an RPC with the fields `body` once what it changed is on disk
        (Figure 2: persist before responding); the write takes `disk_delay`
        seconds."""
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
        # rng.uniform(lo, hi), written out (the same arithmetic, the same draw):
        # every AppendEntries a follower accepts comes through here.
        self.set_timer("election", lo + (hi - lo) * self.rng.random(),
                       self.election_timeout)

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
        # A candidate whose timer fired may have a pre-vote round open; a leader
        # runs none (its late answers must not make it a candidate again).
        self.leader_id, self.pre_votes = self.name, None
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
        grant = (msg.term > self.disk["current_term"]
                 and not self.heard_from_leader_recently()
                 and self.is_up_to_date(msg.last_log_index, msg.last_log_term))
        self.send(msg.src, "pre_vote_ok", term=self.disk["current_term"],
                  vote_granted=grant, for_term=msg.term)

    def on_pre_vote_ok(self, msg: Message) -> None:
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
            self.pre_votes = None
            return
        if (self.pre_votes is None or not msg.vote_granted
                or msg.for_term != self.disk["current_term"] + 1):
            return
        self.pre_votes.add(msg.src)
        if len(self.pre_votes) >= self.majority:
            self.become_candidate()

    def on_request_vote(self, msg: Message) -> None:
        disk = self.disk
        term = msg.term
        if self.config.pre_vote and term > disk["current_term"] and \
                self.heard_from_leader_recently():
            # Thesis §4.2.3: within the minimum election timeout of hearing from a
            # leader, neither adopt the term nor vote.
            self.answer(msg.src, "request_vote_ok", {"term": disk["current_term"],
                                                     "vote_granted": False})
            return
        if term > disk["current_term"]:
            self.become_follower(term)
        grant = (term == disk["current_term"]
                 and disk["voted_for"] in (None, msg.candidate_id)
                 and self.is_up_to_date(msg.last_log_index, msg.last_log_term))
        if grant:
            disk["voted_for"] = msg.candidate_id
            self.reset_election_timer()
        self.answer(msg.src, "request_vote_ok", {"term": disk["current_term"],
                                                 "vote_granted": grant})

    def on_request_vote_ok(self, msg: Message) -> None:
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
            return
        if (self.role != CANDIDATE or msg.term != self.disk["current_term"]
                or not msg.vote_granted):
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
        # self.send with the dict its **body would build: one call and one
        # keyword parsing less on the commonest message.
        self.net.send(self.name, peer, "append_entries", {
            "term": disk["current_term"], "leader_id": self.name,
            "prev_log_index": following - 1, "prev_log_term": log[start - 1][0],
            "entries": entries, "leader_commit": self.commit_index,
            "round": self.read_round})

    def on_append_entries(self, msg: Message) -> None:
        disk = self.disk
        term = msg.term
        if not self._accept_leader(msg, "append_entries_ok"):
            return
        base, log = disk["log_base"], disk["log"]
        prev, entries = msg.prev_log_index, msg.entries
        prev_term = msg.prev_log_term
        if prev < base:
            # Entries up to log_base are in our snapshot: committed, so they match
            # the leader's (leader completeness). Skip them.
            entries = entries[base - prev:]
            prev, prev_term = base, log[0][0]
        last = base + len(log) - 1
        if prev > last:                        # our log is too short
            self.answer(msg.src, "append_entries_ok", {
                "term": term, "success": False, "conflict_term": None,
                "conflict_index": last + 1, "round": msg.round})
            return
        if log[prev - base][0] != prev_term:   # §5.3 fast backup: skip a whole term
            conflict = log[prev - base][0]
            first = bisect.bisect_left(log, conflict, 1, prev - base + 1, key=_term_of)
            self.answer(msg.src, "append_entries_ok", {
                "term": term, "success": False, "conflict_term": conflict,
                "conflict_index": base + first, "round": msg.round})
            return
        # Figure 2, steps 3-4: skip the entries we already hold (a delayed message
        # must not cut the log), delete a conflicting suffix, append the rest.
        k, pos = 0, prev + 1 - base            # entries[k] belongs at log[pos]
        while k < len(entries) and pos < len(log) and log[pos][0] == entries[k][0]:
            k, pos = k + 1, pos + 1
        if k < len(entries):
            if pos < len(log):                 # a conflict
                if base + pos <= self.commit_index:
                    self.audit.problem(
                        "state machine safety", f"{self.name} was told to overwrite "
                        f"committed index {base + pos} (commit index "
                        f"{self.commit_index}) by {msg.src} in term {term}")
                del log[pos:]
            log.extend(entries[k:])
        match = prev + len(entries)
        # Figure 2, step 5: commit_index = min(leader_commit, index of the last
        # new entry), but never lowered by a stale message: max(commit_index,
        # min(leader_commit, match)), written as comparisons (no builtin calls).
        leader_commit = msg.leader_commit
        if leader_commit > self.commit_index:
            if match > self.commit_index:
                self.commit_index = leader_commit if leader_commit < match else match
            self.apply_committed()
        self.answer(msg.src, "append_entries_ok", {
            "term": term, "success": True, "match_index": match, "round": msg.round})

    def _accept_leader(self, msg: Message, reply_kind: str) -> bool:
        """Common head of AppendEntries and InstallSnapshot: refuse a stale
        leader (telling it our term), else follow this one and reset the timer."""
        term, disk = msg.term, self.disk
        if term < disk["current_term"]:
            self.answer(msg.src, reply_kind, {
                "term": disk["current_term"], "success": False, "conflict_term": None,
                "conflict_index": 0, "match_index": 0, "round": msg.round})
            return False
        if term > disk["current_term"] or self.role != FOLLOWER:
            self.become_follower(term)
        self.leader_id, self.last_contact = msg.src, self.sim.now
        self.pre_votes = None
        self.reset_election_timer()
        return True

    def on_append_entries_ok(self, msg: Message) -> None:
        term, peer, disk = msg.term, msg.src, self.disk
        if term > disk["current_term"]:        # Figure 2, all servers: a newer term
            self.become_follower(term)
            return
        if self.role != LEADER or term != disk["current_term"]:
            return                             # a stale reply, to an older term's RPC
        if msg.round > self.acked_round[peer]:  # read index: the latest round it saw
            self.acked_round[peer] = msg.round
            if self.reads:
                self.serve_reads()
        if msg.success:
            match = msg.match_index
            if match > self.match_index[peer]:
                self.match_index[peer] = match
                self.advance_commit_index()
            if match >= self.next_index[peer]:
                self.next_index[peer] = match + 1
            # Catching up, one batch at a time: only the answer to the latest batch
            # sends the next, so duplicated answers never multiply the messages.
            # (upto < last_index(), written out: this runs on every answer.)
            upto = self.sent_upto[peer]
            if match >= upto and upto < disk["log_base"] + len(disk["log"]) - 1:
                self.send_append_entries(peer)
            return
        following = msg.conflict_index
        if msg.conflict_term is not None:     # resume after our last entry of it
            log, base = disk["log"], disk["log_base"]
            pos = bisect.bisect_right(log, msg.conflict_term, 1, key=_term_of) - 1
            if pos >= 1 and log[pos][0] == msg.conflict_term:
                following = base + pos + 1
        following = max(self.match_index[peer] + 1, following)
        if following < self.next_index[peer]:   # a repeated answer changes nothing
            self.next_index[peer] = following
            self.send_append_entries(peer)

    def advance_commit_index(self) -> None:
        """Leader: commit the highest index stored on a majority, but only if its
        entry is from the current term; older entries commit with it (§5.4.2,
        the Figure 8 rule)."""
        disk = self.disk
        log, base = disk["log"], disk["log_base"]
        # This runs on every new match: last_index() and term_at(n) are written
        # out, and the list is sorted in place, ascending, so the majority-th
        # highest index (the highest stored on a majority) is at -majority.
        matches = [base + len(log) - 1, *self.match_index.values()]
        matches.sort()
        n = matches[-self.majority]
        if n > self.commit_index and log[n - base][0] == disk["current_term"]:
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
        disk = self.disk
        index, term = msg.last_included_index, msg.last_included_term
        if index > self.commit_index:
            base, log = disk["log_base"], disk["log"]
            keep = []
            if index <= self.last_index() and log[index - base][0] == term:
                keep = log[index - base + 1:]    # Figure 13 step 6: keep what follows
            disk["log"], disk["log_base"] = [(term, NOOP), *keep], index
            disk["snapshot"] = msg.data
            self.machine = self.make_machine()
            self.machine.restore(msg.data)
            self.commit_index = self.last_applied = index
            self.audit.installed(self, index)
        self.answer(msg.src, "install_snapshot_ok", {
            "term": disk["current_term"], "success": True, "match_index": index,
            "round": msg.round})

    def on_install_snapshot_ok(self, msg: Message) -> None:
        self.on_append_entries_ok(msg)

    # -- clients ----------------------------------------------------------------
    def on_request(self, msg: Message) -> None:
        """A client command: append it (or answer a read), if we lead."""
        if self.role != LEADER:
            self.reply(msg, ok=False, output=None, leader=self.leader_id)
            return
        command = msg.command
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
        # Noted before appending: a one-node cluster commits and applies (and
        # so answers) inside `append`.
        self.pending[self.last_index() + 1] = msg
        self.append(command)

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
                           output=self.machine.query(request.command),
                           leader=self.name)
            else:
                waiting.append(read)
        self.reads = waiting

    def _refuse_clients(self) -> None:
        """A deposed leader tells its waiting clients to look elsewhere."""
        for request in [*self.pending.values(), *(r[0] for r in self.reads)]:
            self.reply(request, ok=False, output=None, leader=None)
        self.pending, self.reads = {}, []
