"""The Paxos lab: write single-decree Paxos's acceptor and proposer, run them
in `PaxosCluster`, let the grader break them.

A student derives `MyPaxos` from `PaxosSkeleton` and fills in its methods:
the acceptor's `on_prepare` and `on_accept`, and the proposer's
`new_ballot`, `prepare`, `on_promise`, `choose_value`, `on_accepted` and
`on_nack`. One class plays both roles (`self.role`); labkit's own `Learner`
nodes learn. `lk.paxos.PaxosCluster(5, 2, seed=1, node=MyPaxos)` runs it
with the fault verbs, `delay` (the adversary) and `check()`. Grading:

  single_decree  one_proposer, dueling_proposers, unreliable_network,
                 acceptor_crashes, no_majority, chosen_value_survives,
                 amnesia, forgotten_promise, proposer_restarts

The referee trusts nothing a node claims about itself: it watches what every
node sends (see `Referee`). From the promises and acceptances on the wire it
checks each acceptor's rules, from the prepares that ballots are unique and
fresh, and from a majority of acceptances in one ballot which value is
chosen: at most one, and one a client proposed. A proposer may decide only a
chosen value, and labkit's learners may learn only it.

Where to read what: `base` (what an answer is given, and the referee),
`skeleton` (the methods to write), `reference` (the worked answer),
`scenarios` (the graded stories).
"""

from __future__ import annotations

from ..lab import Budget, Lab, Scenario
from . import scenarios as s
from .base import PaxosBase, Referee
from .reference import PaxosReference
from .skeleton import PaxosSkeleton

LAB = Lab(
    name="paxos",
    title="Paxos: single-decree acceptors and proposers",
    parts=("single_decree",),
    scenarios=tuple(Scenario(fn.__name__, "single_decree", fn) for fn in (
        s.one_proposer, s.dueling_proposers, s.unreliable_network,
        s.acceptor_crashes, s.no_majority, s.chosen_value_survives, s.amnesia,
        s.forgotten_promise, s.proposer_restarts)),
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
        "the same ballot; any two majorities share an acceptor",
        "promise rule": "A promise for ballot b means: I will never accept below b",
        "accept rule": "Accept only if the ballot is at least what you promised",
        "promise report": "Persist before you reply: a crash must not undo a "
        "promise or an acceptance",
        "ballot uniqueness": "Proposers draw ballots from disjoint sets",
        "ballot freshness": "Persist the last ballot before sending its prepare",
    },
)

__all__ = ["LAB", "PaxosBase", "PaxosReference", "PaxosSkeleton", "Referee"]
