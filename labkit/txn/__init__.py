"""Distributed transactions (分布式事务): money moved between accounts kept on
several nodes, all or nothing.

Every participant keeps its accounts and a write-ahead log on its disk: a
*forced* write is durable before the message that depends on it is sent; a
lazy write sits in a volatile tail and is lost in a crash. Four protocols:

- "2pc": two-phase commit with presumed abort (Mohan, Lindsay & Obermarck,
  "Transaction Management in the R* Distributed Database Management System",
  1986). Rows stay locked from prepare to decision, so a prepared participant
  blocks while its coordinator is down.
- "paxos_commit": Gray & Lamport, "Consensus on Transaction Commit" (2006):
  each participant's vote is chosen by a Paxos instance on 2F + 1 acceptors,
  so any F crashes, the coordinator's included, do not block it.
- "saga" (Garcia-Molina & Salem, 1987): one local transaction per leg, in
  order; if a step fails, the done steps are compensated in reverse order.
- "tcc" (try-confirm-cancel, 柔性事务): the debit's funds are reserved (frozen)
  first, then confirmed or cancelled; a reservation expires on its own.

`TxnCluster` runs one protocol on nodes n1..nN (plus "tm" for a separate
coordinator) with the shared fault verbs, crash points placed by name, and the
checks: `check_atomicity`, `check_conservation`, `check_no_lost_commits`,
`check_no_hanging_tries`.

Where to read what:
    base.py          names, `TxnConfig`, `World` (accounts, crash traps) and
                     `TxnNode`: accounts, row locks, the write-ahead log
    resource.py      `Resource`: the participant's rules 2PC and Paxos Commit
                     share (prepare, vote, apply, redo after a crash)
    two_phase.py     `TwoPhaseNode`: two-phase commit with presumed abort
    paxos_commit.py  `PaxosCommitNode`: participant, acceptor and leader
    saga.py          `SagaNode`: steps in order, compensation in reverse
    tcc.py           `TccNode`: try, confirm, cancel
    client.py        `TxnClient` and its `TxnRecord`s, the `Auditor`,
                     `commit_rate`
    cluster.py       `TxnCluster`, the facade with the fault verbs
    invariants.py    the `check_*` functions behind `TxnCluster.check`
    cost.py          the cost of commit: `gray_lamport`, `normal_case`
"""

from labkit.txn.base import (
    ABORTED,
    AUDITOR,
    BLOCKED,
    CLIENT,
    CLIENT_KINDS,
    COMMITTED,
    COORDINATOR_CRASHES,
    CRASH_POINTS,
    PARTICIPANT_CRASHES,
    PENDING,
    PREPARED,
    PROTOCOLS,
    TM,
    Trap,
    TxnConfig,
    TxnNode,
    World,
    account_name,
    nodes_of,
)
from labkit.txn.client import Auditor, TxnClient, TxnRecord, commit_rate
from labkit.txn.cluster import NODE_TYPES, TxnCluster, protocol_messages
from labkit.txn.cost import COUNTED_KINDS, gray_lamport, normal_case
from labkit.txn.invariants import (
    check_atomicity,
    check_conservation,
    check_no_hanging_tries,
    check_no_lost_commits,
)
from labkit.txn.paxos_commit import BALLOT0, Leader, PaxosCommitNode
from labkit.txn.resource import Prepared, Resource
from labkit.txn.saga import Saga, SagaNode
from labkit.txn.tcc import TCC_REQUESTS, Tcc, TccNode
from labkit.txn.two_phase import Round, TwoPhaseNode

__all__ = [
    "ABORTED", "AUDITOR", "BALLOT0", "BLOCKED", "CLIENT", "CLIENT_KINDS", "COMMITTED",
    "COORDINATOR_CRASHES", "COUNTED_KINDS", "CRASH_POINTS", "NODE_TYPES",
    "PARTICIPANT_CRASHES", "PENDING", "PREPARED", "PROTOCOLS", "TCC_REQUESTS", "TM",
    "Auditor", "Leader", "PaxosCommitNode", "Prepared", "Resource", "Round", "Saga",
    "SagaNode", "Tcc", "TccNode", "Trap", "TwoPhaseNode", "TxnClient", "TxnCluster",
    "TxnConfig", "TxnNode", "TxnRecord", "World", "account_name", "check_atomicity",
    "check_conservation", "check_no_hanging_tries", "check_no_lost_commits",
    "commit_rate", "gray_lamport", "nodes_of", "normal_case", "protocol_messages",
]
