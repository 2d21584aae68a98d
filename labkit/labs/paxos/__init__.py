"""The Paxos lab: write single-decree Paxos's acceptor and proposer, then a
Multi-Paxos replica, run them in labkit's facades, let the grader break them.

A student derives `MyPaxos` from `PaxosSkeleton` and fills in its methods,
part by part. Part `single_decree`: the acceptor's `on_prepare` and
`on_accept`, and the proposer's `new_ballot`, `prepare`, `on_promise`,
`choose_value`, `on_accepted` and `on_nack`. One class plays both roles
(`self.role`); labkit's own `Learner` nodes learn.
`lk.paxos.PaxosCluster(5, 2, seed=1, node=MyPaxos)` runs it with the fault
verbs, `delay` (the adversary) and `check()`. Part `multi`: the same class
as a Multi-Paxos replica (acceptor `on_p1a`, `on_p2a`; leader
`on_election_timeout`, `on_p1b`, `become_leader`, `submit`, `on_p2b`;
follower `on_heartbeat`; `apply_chosen`), reusing `new_ballot`, in
`lk.paxos.MultiPaxosCluster(5, seed=1, node=MyPaxos)`. Grading:

  single_decree  one_proposer, dueling_proposers, unreliable_network,
                 duplicated_replies, acceptor_crashes, no_majority,
                 chosen_value_survives, amnesia, forgotten_promise,
                 accept_promises, stale_promise, old_promises,
                 split_accepts, one_value_per_ballot, highest_ballot_wins,
                 proposer_restarts
  multi          stable_leader, leader_crash, holes, partitions,
                 unreliable_log, duplicated_acks, crash_restart,
                 deposed_leader, late_promise, highest_ballot_per_slot,
                 promise_survives_crash, accept_raises_promise, late_p2b

The referees trust nothing a node claims about itself: they watch what every
node sends. From the promises and acceptances on the wire they check each
acceptor's rules, from the prepares that ballots are unique and fresh, and
from a majority of acceptances in one ballot which value is chosen (per
slot, in Multi-Paxos): at most one. A proposer may decide, a replica learn
and apply, only a chosen value, and a replica applies slots in order.

Where to read what: `base` (what an answer is given, and the single-decree
referee), `multi_base` (what a replica is given, and its referee),
`skeleton` (the methods to write), `reference` (the worked answer),
`scenarios` and `multi_scenarios` (the graded stories).
"""

from __future__ import annotations

from ..lab import Budget, Lab, Scenario
from . import multi_scenarios as m
from . import scenarios as s
from .base import PaxosBase, Referee
from .reference import PaxosReference
from .skeleton import PaxosSkeleton

LAB = Lab(
    name="paxos",
    title="Paxos: single-decree acceptors and proposers, then Multi-Paxos",
    parts=("single_decree", "multi"),
    scenarios=tuple(Scenario(fn.__name__, "single_decree", fn) for fn in (
        s.one_proposer, s.dueling_proposers, s.unreliable_network,
        s.duplicated_replies, s.acceptor_crashes, s.no_majority,
        s.chosen_value_survives, s.amnesia, s.forgotten_promise,
        s.accept_promises, s.stale_promise, s.old_promises, s.split_accepts,
        s.one_value_per_ballot, s.highest_ballot_wins, s.proposer_restarts)) + tuple(
        Scenario(fn.__name__, "multi", fn) for fn in m.SCENARIOS),
    skeleton=PaxosSkeleton,
    reference=PaxosReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(events=50_000, messages=50_000, cpu=5.0),
    window=0.2,
    hints={
        "agreement": "At most one value is chosen: a second ballot proposed its "
        "own value though a promise reported an accepted one, an acceptor "
        "forgot what it accepted, or a quorum was smaller than a majority (two "
        "quorums must share an acceptor)",
        "quorum": "A value is chosen once a majority of acceptors accepted it in "
        "the same ballot: count each acceptor once (the network may deliver a "
        "reply twice), and a majority is more than half (any two majorities share "
        "an acceptor)",
        "promise rule": "A promise for ballot b means: I will never accept below b",
        "accept rule": "Accept only if the ballot is at least what you promised",
        "forgotten promise": "Persist before you reply: a crash must not undo a "
        "promise or an acceptance, so after a restart the acceptor still refuses "
        "what it refused before",
        "promise report": "Persist before you reply: a crash must not undo a "
        "promise or an acceptance",
        "ballot uniqueness": "Proposers draw ballots from disjoint sets",
        "ballot freshness": "Persist the last ballot before sending its prepare",
        "phase 1 first": "A leader sends p2a only in a ballot a majority promised",
        "stale promise": "A p1b counts only toward the ballot it answers: a late "
        "reply to an earlier campaign promises nothing about the current one, and "
        "its report of acceptances may be out of date (check msg.ballot)",
        "promise on accept": "Accepting ballot b is also a promise of b: raise "
        "your promise to b when you accept, or a later prepare or accept below b "
        "gets through",
        "apply order": "Apply slot k + 1 only after slot k: a hole waits until a "
        "leader gets a value (or a no-op) chosen there",
        "learning": "Learn a slot's value only once a majority accepted it in the "
        "leader's ballot: count each acceptor's p2b once (the network may deliver "
        "it twice), and only p2b of the current ballot",
        "state machine safety": "Every replica applies the same command at a slot: "
        "the chosen one",
    },
)

__all__ = ["LAB", "PaxosBase", "PaxosReference", "PaxosSkeleton", "Referee"]
