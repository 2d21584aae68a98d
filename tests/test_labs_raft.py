"""The Raft lab's grader, tested by the bugs it must catch: classic student
bugs, each a mutant of the worked answer overriding one method, must fail
grading at the default seeds, each for its own reason; and the worked answer
passes every scenario on 100 seeds."""

from __future__ import annotations

import pytest
from test_labs import assert_caught, assert_reference_passes

import labkit.labs as labs
from labkit.labs.raft import CANDIDATE, FOLLOWER, LEADER, RaftReference


class VotesWithoutLogCheck(RaftReference):
    """Grants votes without the up-to-date log check (§5.4.1)."""

    def is_up_to_date(self, last_log_index, last_log_term):
        return True


class CountsStaleVotes(RaftReference):
    """Counts a granted vote whatever the term it was granted in (an audit's
    mutant: it passed every scenario until late_votes)."""

    def on_request_vote_ok(self, msg):
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
            self.persist()
            return
        if self.role == CANDIDATE and msg.vote_granted:
            self.votes.add(msg.src)
            if len(self.votes) >= self.majority:
                self.become_leader()


class VotesTwicePerTerm(RaftReference):
    """Forgets whom it voted for, so it votes again in the same term."""

    def may_grant(self, msg):
        self.disk["voted_for"] = None
        return super().may_grant(msg)


class CommitsByCounting(RaftReference):
    """Commits an older term's entry once a majority stores it (no Figure 8 rule)."""

    def advance_commit_index(self):
        stored = sorted([self.last_index(), *self.match_index.values()], reverse=True)
        self.commit_index = max(self.commit_index, stored[self.majority - 1])


class AnswersBeforePersisting(RaftReference):
    """Sends its vote before its term and vote are on disk."""

    def on_request_vote(self, msg):
        granted = self.decide_vote(msg)
        self.send(msg.src, "request_vote_ok", term=self.disk["current_term"],
                  vote_granted=granted)
        self.persist()                  # too late: the answer has left


class KeepsTimerWhenVoting(RaftReference):
    """Does not re-arm its election timer when it grants a vote."""

    def grant_vote(self, candidate):
        self.disk["voted_for"] = candidate


class TruncatesOnStaleAppend(RaftReference):
    """Cuts its log after every AppendEntries, even a delayed duplicate."""

    def store_entries(self, prev, entries):
        del self.disk["log"][prev + 1:]
        self.disk["log"].extend(entries)


class CommitsPastItsMatch(RaftReference):
    """Takes the leader's commit index as its own, dropping the min of Figure 2's
    rule 5: commit_index = leader_commit, not min(leader_commit, last new entry)."""

    def on_append_entries(self, msg):
        super().on_append_entries(msg)
        prev = msg.prev_log_index
        if (msg.term == self.disk["current_term"] and prev <= self.last_index()
                and self.term_at(prev) == msg.prev_log_term):     # it said success
            self.commit_index = max(self.commit_index, msg.leader_commit)


class AcceptsOldTermAcks(RaftReference):
    """Counts an append_entries success whatever the term it was sent in: an ack
    to its leadership of an older term raises match_index in the new one, where
    the entries at those indexes may differ (an audit's mutant: it passed every
    scenario until late_acks)."""

    def on_append_entries_ok(self, msg):
        if msg.term > self.disk["current_term"]:
            self.become_follower(msg.term)
            self.persist()
            return
        if self.role != LEADER:
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
        if following < self.next_index[peer]:
            self.next_index[peer] = following
            self.send_append_entries(peer)


class OverwriteNoTruncate(RaftReference):
    """On a conflict, overwrites entries in place and keeps the rest of its log,
    where Figure 2 deletes the conflicting entry and all that follow it (an
    audit's mutant: 6 seeds of 100 caught it until stale_tail)."""

    def store_entries(self, prev, entries):
        log = self.disk["log"]
        for k, entry in enumerate(entries):
            index = prev + 1 + k
            if index < len(log):
                log[index] = entry
            else:
                log.append(entry)


class LeaderNoPersistAppend(RaftReference):
    """Appends a client's command to its own log without persisting it, yet
    counts itself among the servers that store it (an audit's mutant: churn
    caught it at one default seed until leader_persisted)."""

    def append(self, command):
        self.disk["log"].append((self.disk["current_term"], command))
        for peer in self.others:
            self.send_append_entries(peer)
        if self.majority == 1:
            self.advance_commit_index()
        return self.last_index()


class ReArmsTimerWhenRefusing(RaftReference):
    """Re-arms its election timer on every request_vote, granted or refused, so a
    candidate that can never win keeps everyone else from timing out (an
    audit's mutant: it passed every scenario until stale_candidates)."""

    def on_request_vote(self, msg):
        granted = self.decide_vote(msg)
        self.reset_election_timer()
        self.persist()
        self.send(msg.src, "request_vote_ok", term=self.disk["current_term"],
                  vote_granted=granted)


class IgnoresNewerTermInAnswers(RaftReference):
    """A leader ignores a newer term in append_entries_ok: it steps down only on
    requests (an audit's mutant: it passed every scenario until
    deaf_old_leader)."""

    def on_append_entries_ok(self, msg):
        if msg.term > self.disk["current_term"]:
            return
        super().on_append_entries_ok(msg)


class KeepsOldMatchIndex(RaftReference):
    """become_leader keeps match_index from an earlier leadership instead of
    setting it to 0: a follower's log may have changed since (a spec audit's
    mutant: it passed every scenario until old_match)."""

    def become_leader(self):
        self.role, self.leader_id = LEADER, self.name
        self.cancel_timer("election")
        for peer in self.others:
            self.next_index[peer] = self.last_index() + 1
            self.match_index.setdefault(peer, 0)
        self.on_heartbeat_timeout()


class DeposedLeaderNoTimer(RaftReference):
    """A leader stepping down stops its heartbeat timer but does not re-arm its
    election timer, so it never campaigns again (a spec audit's mutant: it
    passed every scenario until deposed_by_stale)."""

    def become_follower(self, term):
        disk = self.disk
        if term > disk["current_term"]:
            disk["current_term"], disk["voted_for"] = term, None
        if self.role == LEADER:
            self.cancel_timer("heartbeat")
        self.role = FOLLOWER


# mutant, a scenario that must catch it, the reasons its failures may give
MUTANTS = [
    (VotesWithoutLogCheck, "kv_partitions", ["leader completeness"]),
    (VotesTwicePerTerm, "vote_persisted", ["election safety"]),
    (CountsStaleVotes, "late_votes", ["election safety"]),
    (CommitsByCounting, "figure8", ["leader completeness"]),
    (AnswersBeforePersisting, "vote_persisted", ["election safety"]),
    (KeepsTimerWhenVoting, "leader_failure", ["whenever you grant a vote"]),
    (TruncatesOnStaleAppend, "unreliable_agreement", ["must not cut the log"]),
    (CommitsPastItsMatch, "stale_suffix", ["state machine safety", "commit index"]),
    (AcceptsOldTermAcks, "late_acks", ["replies of its current term only"]),
    (OverwriteNoTruncate, "stale_tail", ["log matching"]),
    (LeaderNoPersistAppend, "leader_persisted",
     ["came back without it", "leader completeness"]),
    (ReArmsTimerWhenRefusing, "stale_candidates", ["its log behind"]),
    (IgnoresNewerTermInAnswers, "deaf_old_leader", ["an answer (append_entries_ok)"]),
    (KeepsOldMatchIndex, "old_match", ["counted n2 as matching index 3"]),
    (DeposedLeaderNoTimer, "deposed_by_stale",
     ["a leader stepping down re-arms its election timer"]),
]


@pytest.mark.parametrize("mutant,scenario,reasons", MUTANTS,
                         ids=[m[0].__name__ for m in MUTANTS])
def test_mutant_fails_for_the_right_reason(mutant, scenario, reasons):
    assert_caught("raft", mutant, scenario, reasons)


@pytest.mark.parametrize("part", labs.parts("raft"))
def test_the_reference_passes_on_100_seeds(part):
    assert_reference_passes("raft", part)
