"""The Raft lab: write a Raft server, run it in `RaftCluster`, let the grader
break it.

A student derives `MyRaft` from `RaftSkeleton` and fills in its methods;
`RaftCluster(5, seed=1, node=MyRaft)` (or `KVCluster(..., node=MyRaft)`) runs
it with the fault verbs, `check()`, the playground and the diagrams of
notebook 05. Grading runs the scenarios part by part:

  election     initial_election, leader_failure, reelection, no_quorum,
               many_elections, split_votes, unreliable_elections, late_votes,
               deaf_old_leader
  replication  basic_agreement, follower_failure, no_majority, leader_rejoin,
               backup, figure8, stale_suffix, stale_tail, late_acks, old_match,
               stale_candidates, deposed_by_stale, unreliable_agreement,
               kv_partitions
  persistence  persist_basic, persist_more, crash_all, vote_persisted,
               log_persisted, leader_persisted, figure8_unreliable, churn,
               kv_crashes

Where to read what: `base` (what an answer is given: state, timers, helpers,
and the referee that reports to labkit.raft's Audit), `skeleton` (the methods
to write), `reference` (the worked answer), `scenarios` (the verbs, and the
graded stories of election and replication), `persistence_scenarios`.
"""

from __future__ import annotations

from labkit.raft import CANDIDATE, FOLLOWER, LEADER

from ..lab import Budget, Lab, Scenario
from . import persistence_scenarios as p
from . import scenarios as s
from .base import RaftBase
from .reference import RaftReference
from .skeleton import RaftSkeleton

PARTS = ("election", "replication", "persistence")

LAB = Lab(
    name="raft",
    title="Raft: elections, log replication, persistence",
    parts=PARTS,
    scenarios=tuple(Scenario(fn.__name__, part, fn) for part, fns in {
        "election": [s.initial_election, s.leader_failure, s.reelection, s.no_quorum,
                     s.many_elections, s.split_votes, s.unreliable_elections,
                     s.late_votes, s.deaf_old_leader],
        "replication": [s.basic_agreement, s.follower_failure, s.no_majority,
                        s.leader_rejoin, s.backup, s.figure8, s.stale_suffix,
                        s.stale_tail, s.late_acks, s.old_match,
                        s.stale_candidates, s.deposed_by_stale,
                        s.unreliable_agreement, s.kv_partitions],
        "persistence": [p.persist_basic, p.persist_more, p.crash_all,
                        p.vote_persisted, p.log_persisted, p.leader_persisted,
                        p.figure8_unreliable, p.churn, p.kv_crashes],
    }.items() for fn in fns),
    skeleton=RaftSkeleton,
    reference=RaftReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(events=50_000, messages=50_000, cpu=5.0),
    window=1.0,
    hints={
        "election safety": "At most one leader per term: two won the same term "
        "because a server voted twice in it (a second candidate, or a vote lost "
        "in a crash: persist the vote before answering), or a candidate counted "
        "a vote granted in an earlier term (count answers of the current term "
        "only)",
        "leader completeness": "A leader must hold every committed entry: this one "
        "was elected without one, because a voter skipped the up-to-date check "
        "(§5.4.1), or the entry was committed too early (Figure 8: count replicas "
        "only for entries of the current term; count append_entries_ok of the "
        "current term only), or a server lost an entry it was counted for (persist "
        "before answering; a leader persists a new entry before counting its own "
        "copy)",
        "state machine safety": "Every server applies the same command at an "
        "index: a committed entry was overwritten or applied differently, or a "
        "follower committed entries it had not checked against the leader's "
        "(commit only up to min(leader_commit, index of the last new entry))",
        "log matching": "Two logs with an entry of the same index and term agree "
        "on everything before it. A follower deletes its entries from the first "
        "one that conflicts with the leader's to the end of its log, not only those "
        "the leader sent (Figure 2, AppendEntries step 3), and nothing else: an "
        "entry it acknowledged stays, whatever a stale or duplicated append_entries "
        "says",
    },
)

__all__ = ["CANDIDATE", "FOLLOWER", "LAB", "LEADER", "PARTS", "RaftBase",
           "RaftReference", "RaftSkeleton"]
