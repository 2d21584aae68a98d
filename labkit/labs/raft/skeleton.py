"""The Raft lab's skeleton: the methods a student writes, each raising
NotImplementedError with what it must do. `lk.labs.skeleton_source("raft")`
pastes this class (under the student's class name) into a notebook cell."""

from __future__ import annotations

from .base import RaftBase


class RaftSkeleton(RaftBase):
    """Your Raft server (Figure 2 of the Raft paper). Fill in the methods.

    Messages: send with self.send(peer, kind, **fields); a message of kind k
    arrives at on_k(msg), its fields read as msg.term, msg.entries, ...
      request_vote       term, candidate_id, last_log_index, last_log_term
      request_vote_ok    term, vote_granted
      append_entries     term, leader_id, prev_log_index, prev_log_term,
                         entries (a tuple of (term, command) pairs; empty for a
                         heartbeat), leader_commit
      append_entries_ok  term, success, match_index (on success: the index of
                         the last entry now known to match the leader's log,
                         prev_log_index + len(entries)); add fields if you like,
                         e.g. a hint where to retry
    Parts, in order:
      election     on_election_timeout, on_request_vote, on_request_vote_ok,
                   become_leader, become_follower, on_heartbeat_timeout, and
                   first versions of send_append_entries, on_append_entries and
                   on_append_entries_ok that carry heartbeats (terms, timers)
      replication  append, send_append_entries, on_append_entries,
                   on_append_entries_ok, advance_commit_index (Figure 8 rule)
      persistence  call self.persist() after changing the disk and before
                   sending anything that depends on the change
    The servers' names are self.name and self.others; see RaftBase for the
    rest you are given (state, timers, log helpers).
    """

    # -- election ------------------------------------------------------------------
    def on_election_timeout(self) -> None:
        """The election timer fired (it is armed by reset_election_timer)."""
        raise NotImplementedError(
            "not yet implemented: on_election_timeout: unless leader, start an "
            "election: increment disk['current_term'], vote for yourself, become "
            "candidate, re-arm the election timer, send request_vote to every "
            "other server")

    def on_request_vote(self, msg) -> None:
        """A candidate asks for your vote."""
        raise NotImplementedError(
            "not yet implemented: on_request_vote: adopt a newer term (become "
            "follower); grant the vote if the term is current, you have not voted "
            "for someone else in it, and the candidate's log is at least as up to "
            "date as yours (§5.4.1); when granting, record it and re-arm the "
            "election timer; answer with request_vote_ok")

    def on_request_vote_ok(self, msg) -> None:
        """An answer to your request_vote."""
        raise NotImplementedError(
            "not yet implemented: on_request_vote_ok: step down on a newer term; "
            "as a candidate in that term, count the granted vote (each voter once) "
            "and become leader on a majority")

    def become_leader(self) -> None:
        """You won the election."""
        raise NotImplementedError(
            "not yet implemented: become_leader: set role 'leader', stop the "
            "election timer, set next_index to last_index() + 1 and match_index to "
            "0 for every peer, and send append_entries to everyone at once")

    def become_follower(self, term: int) -> None:
        """You saw `term`, at least your current term, from someone else."""
        raise NotImplementedError(
            "not yet implemented: become_follower: if term is newer, adopt it and "
            "forget your vote; become follower; a leader stepping down stops its "
            "heartbeat timer and re-arms its election timer")

    def on_heartbeat_timeout(self) -> None:
        """The heartbeat timer fired (it is armed by start_heartbeat_timer)."""
        raise NotImplementedError(
            "not yet implemented: on_heartbeat_timeout: as leader, send "
            "append_entries to every other server and re-arm the heartbeat timer")

    # -- replication ---------------------------------------------------------------
    def send_append_entries(self, peer: str) -> None:
        """Leader: send one append_entries to `peer`."""
        raise NotImplementedError(
            "not yet implemented: send_append_entries: send peer the entries from "
            "next_index[peer] on, after prev_log_index = next_index[peer] - 1 and "
            "its term, with your commit_index")

    def on_append_entries(self, msg) -> None:
        """A leader's append_entries (a heartbeat if it has no entries)."""
        raise NotImplementedError(
            "not yet implemented: on_append_entries: refuse a stale term; else "
            "follow this leader (become follower, re-arm the election timer); refuse "
            "if your log has no entry at prev_log_index with prev_log_term; else "
            "delete only a conflicting suffix, append what is new, advance "
            "commit_index to min(leader_commit, last new entry), answer")

    def on_append_entries_ok(self, msg) -> None:
        """A follower's answer to append_entries."""
        raise NotImplementedError(
            "not yet implemented: on_append_entries_ok: step down on a newer term; "
            "as leader in that term: on success raise match_index and next_index "
            "and try to advance the commit index; on failure move next_index back "
            "and send again")

    def append(self, command) -> int:
        """Leader: a client's command."""
        raise NotImplementedError(
            "not yet implemented: append: add (current term, command) to your log, "
            "start replicating it, and return its index")

    def advance_commit_index(self) -> None:
        """Leader: after match_index changed."""
        raise NotImplementedError(
            "not yet implemented: advance_commit_index: set commit_index to the "
            "highest index stored on a majority (yourself included), but only if "
            "that entry is from your current term (§5.4.2, Figure 8)")
