"""The Raft lab's worked answer: Figure 2 of the Raft paper, rule by rule, in
small named methods (as RaftScope writes it). It is compact on purpose: no
Pre-Vote, no snapshots, no no-op entry at election; labkit.raft.RaftNode has
them all."""

from __future__ import annotations

from labkit.raft import CANDIDATE, FOLLOWER, LEADER

from .skeleton import RaftSkeleton


class RaftReference(RaftSkeleton):
    """A Raft server: elections (§5.2), log replication and commit (§5.3,
    §5.4), everything persisted before it is relied on (Figure 2)."""

    # -- election ------------------------------------------------------------------
    def on_election_timeout(self) -> None:
        if self.role == LEADER:
            return
        disk = self.disk
        disk["current_term"] += 1
        disk["voted_for"] = self.name
        self.persist()                       # before any request_vote leaves
        self.role, self.leader_id, self.votes = CANDIDATE, None, {self.name}
        self.reset_election_timer()          # a split vote retries after a new draw
        for peer in self.others:
            self.send(peer, "request_vote", term=disk["current_term"],
                      candidate_id=self.name, last_log_index=self.last_index(),
                      last_log_term=self.last_term())
        if len(self.votes) >= self.majority:  # a cluster of one
            self.become_leader()

    def on_request_vote(self, msg) -> None:
        granted = self.decide_vote(msg)
        self.persist()                       # Figure 2: on disk before answering
        self.send(msg.src, "request_vote_ok", term=self.disk["current_term"],
                  vote_granted=granted)

    def decide_vote(self, msg) -> bool:
        """Adopt a newer term, then grant the vote if we may."""
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
        if self.may_grant(msg):
            self.grant_vote(msg.candidate_id)
            return True
        return False

    def may_grant(self, msg) -> bool:
        """One vote per term, and only for a log at least as up to date as ours."""
        disk = self.disk
        return (msg.term == disk["current_term"]
                and disk["voted_for"] in (None, msg.candidate_id)
                and self.is_up_to_date(msg.last_log_index, msg.last_log_term))

    def is_up_to_date(self, last_log_index: int, last_log_term: int) -> bool:
        """§5.4.1: the candidate's log ends in a later term, or in the same term
        and at least as far as ours."""
        return (last_log_term, last_log_index) >= (self.last_term(), self.last_index())

    def grant_vote(self, candidate: str) -> None:
        self.disk["voted_for"] = candidate
        self.reset_election_timer()          # §5.2: a vote granted restarts the wait

    def on_request_vote_ok(self, msg) -> None:
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
            self.persist()
            return
        if (self.role == CANDIDATE and msg.term == self.disk["current_term"]
                and msg.vote_granted):
            self.votes.add(msg.src)          # a set: a duplicated answer counts once
            if len(self.votes) >= self.majority:
                self.become_leader()

    def become_leader(self) -> None:
        self.role, self.leader_id = LEADER, self.name
        self.cancel_timer("election")
        for peer in self.others:
            self.next_index[peer] = self.last_index() + 1
            self.match_index[peer] = 0
        self.on_heartbeat_timeout()          # assert leadership at once

    def become_follower(self, term: int) -> None:
        disk = self.disk
        if term > disk["current_term"]:
            disk["current_term"], disk["voted_for"] = term, None
        if self.role == LEADER:
            self.cancel_timer("heartbeat")
            self.reset_election_timer()
        self.role = FOLLOWER

    def on_heartbeat_timeout(self) -> None:
        if self.role != LEADER:
            return
        for peer in self.others:
            self.send_append_entries(peer)
        self.start_heartbeat_timer()

    # -- replication -----------------------------------------------------------------
    def append(self, command) -> int:
        self.disk["log"].append((self.disk["current_term"], command))
        self.persist()
        for peer in self.others:             # at once, not at the next heartbeat
            self.send_append_entries(peer)
        if self.majority == 1:
            self.advance_commit_index()
        return self.last_index()

    def send_append_entries(self, peer: str) -> None:
        following = self.next_index[peer]
        self.send(peer, "append_entries", term=self.disk["current_term"],
                  leader_id=self.name, prev_log_index=following - 1,
                  prev_log_term=self.term_at(following - 1),
                  entries=tuple(self.disk["log"][following:]),
                  leader_commit=self.commit_index)

    def on_append_entries(self, msg) -> None:
        disk = self.disk
        if msg.term < disk["current_term"]:          # a stale leader: tell it
            self.send(msg.src, "append_entries_ok", term=disk["current_term"],
                      success=False, match_index=0, retry=0)
            return
        self.become_follower(msg.term)
        self.leader_id = msg.leader_id
        self.reset_election_timer()
        prev = msg.prev_log_index
        if prev > self.last_index() or self.term_at(prev) != msg.prev_log_term:
            self.persist()                   # the term may have changed
            self.send(msg.src, "append_entries_ok", term=disk["current_term"],
                      success=False, match_index=0, retry=self.retry_from(prev))
            return
        self.store_entries(prev, msg.entries)
        match = prev + len(msg.entries)
        if msg.leader_commit > self.commit_index:    # Figure 2, step 5
            self.commit_index = max(self.commit_index, min(msg.leader_commit, match))
        self.persist()                       # the entries are on disk before the ack
        self.send(msg.src, "append_entries_ok", term=disk["current_term"],
                  success=True, match_index=match, retry=0)

    def retry_from(self, prev: int) -> int:
        """Where the leader should retry after a mismatch at `prev`: after our
        last entry if our log is too short, else the first index of our term at
        prev, skipping a whole term per round trip (§5.3)."""
        if prev > self.last_index():
            return self.last_index() + 1
        term, index = self.term_at(prev), prev
        while index > 1 and self.term_at(index - 1) == term:
            index -= 1
        return index

    def store_entries(self, prev: int, entries: tuple) -> None:
        """Figure 2, steps 3-4: delete a conflicting suffix and append what is
        new. Entries we already hold are kept: a delayed or duplicated message
        must not cut the log."""
        log = self.disk["log"]
        for k, entry in enumerate(entries):
            index = prev + 1 + k
            if index < len(log) and log[index][0] == entry[0]:
                continue
            del log[index:]
            log.extend(entries[k:])
            return

    def on_append_entries_ok(self, msg) -> None:
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
            self.persist()
            return
        if self.role != LEADER or msg.term != self.disk["current_term"]:
            return
        peer = msg.src
        if msg.success:
            if msg.match_index > self.match_index[peer]:
                self.match_index[peer] = msg.match_index
                self.advance_commit_index()
            self.next_index[peer] = max(self.next_index[peer], msg.match_index + 1)
            return
        following = max(self.match_index[peer] + 1,
                        min(msg.retry, self.next_index[peer] - 1))
        if following < self.next_index[peer]:        # a repeated answer: no resend
            self.next_index[peer] = following
            self.send_append_entries(peer)

    def advance_commit_index(self) -> None:
        """The highest index on a majority commits if its entry is of our term;
        older entries commit with it (§5.4.2: Figure 8)."""
        stored = sorted([self.last_index(), *self.match_index.values()], reverse=True)
        n = stored[self.majority - 1]
        if n > self.commit_index and self.term_at(n) == self.disk["current_term"]:
            self.commit_index = n
