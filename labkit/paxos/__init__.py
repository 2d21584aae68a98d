"""Paxos: a set of nodes agreeing on values despite crashes and an asynchronous
network.

Single-decree Paxos (Lamport, "Paxos Made Simple", 2001, §2) runs proposers,
acceptors and learners as separate nodes: phase 1 (prepare, promise) and phase
2 (accept, accepted) with ballots that no two proposers share. Multi-Paxos
(§3 of the paper) runs one instance per slot of a replicated log: a stable
leader runs phase 1 once for every later slot, so each command costs one round
trip, and a new leader fills the gaps it finds with no-ops.

Whether a value is chosen is decided by an oracle, not by any node: every
acceptor keeps a ghost history on its disk (read only by `check`), and a value
is chosen once a majority of acceptors accepted it in one ballot.

Where to read what:
    ballots.py        quorums, ballot numbering, the chosen-value oracle and
                      message counts, shared by both variants
    single_decree.py  `Acceptor`, `Learner`, `Proposer` and `PaxosCluster`
    multi.py          `MultiPaxosNode` and `MultiPaxosCluster`, a replicated log
"""

from labkit.paxos.ballots import count_messages, majority, next_ballot
from labkit.paxos.multi import (
    NOOP,
    PIGGYBACK,
    LogSettings,
    MultiPaxosCluster,
    MultiPaxosNode,
)
from labkit.paxos.single_decree import (
    Acceptor,
    Learner,
    PaxosCluster,
    Proposer,
    Settings,
)

__all__ = [
    "NOOP", "PIGGYBACK", "Acceptor", "Learner", "LogSettings", "MultiPaxosCluster",
    "MultiPaxosNode", "PaxosCluster", "Proposer", "Settings", "count_messages",
    "majority", "next_ballot",
]
