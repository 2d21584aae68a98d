"""The txn lab: write two-phase commit's participant and coordinator, and a
saga's steps and compensations; run them in `TxnCluster`; let the grader
break them.

A student derives `MyTxn` from `TxnSkeleton` and fills in its methods. Part
two_phase: the participant's `prepare`, `on_commit`, `on_abort`, `in_doubt`
and `recover_participant`, the coordinator's `coordinate`, `on_vote`,
`decide`, `on_inquire` and `recover_coordinator` (presumed abort). Part saga:
the participant's `do_step` and `undo_step`, the orchestrator's `step`,
`on_saga_do_ok` and `on_saga_undo_ok`. One class plays every role.
`lk.txn.TxnCluster("2pc", 3, seed=1, node=MyTxn)` (or "saga") runs it with
the fault verbs, `crash_at`, `settle` and `check`. Grading:

  two_phase  no_faults, coordinator_crash_before_prepare,
             coordinator_crash_after_votes, coordinator_crash_after_decision,
             coordinator_resends_after_crash, participant_crash_before_vote,
             participant_crash_after_vote, participant_crash_after_ack,
             partitioned_participant, late_duplicate_begin, unreliable_network
  saga       saga_no_faults, saga_step_fails, saga_contention,
             saga_compensation_lost, saga_crashes, saga_unreliable_network

The referee trusts nothing a node claims (see `Referee`): a yes vote needs
a forced prepared record, a commit every yes vote and a forced decision
first; a coordinator runs one round per transaction; a participant that
voted yes ends a transaction only as it is told; a restarted one holds its
prepared rows again and still holds every commit it acknowledged;
compensations run newest first and a saga ends with every step in effect or
none; no request moves money twice. After the faults heal, every
transaction must end and the balances must be the committed legs exactly.

Where to read what: `base` (what an answer is given, and the referee),
`skeleton` (the methods to write), `reference` (the worked answer),
`scenarios` (the graded stories).
"""

from __future__ import annotations

from ..lab import Budget, Lab, Scenario
from . import scenarios as s
from .base import Referee, TxnLabBase
from .reference import TxnReference
from .skeleton import TxnSkeleton

TWO_PHASE = (s.no_faults, s.coordinator_crash_before_prepare,
             s.coordinator_crash_after_votes, s.coordinator_crash_after_decision,
             s.coordinator_resends_after_crash, s.participant_crash_before_vote,
             s.participant_crash_after_vote, s.participant_crash_after_ack,
             s.partitioned_participant, s.late_duplicate_begin, s.unreliable_network)
SAGA = (s.saga_no_faults, s.saga_step_fails, s.saga_contention,
        s.saga_compensation_lost, s.saga_crashes, s.saga_unreliable_network)

LAB = Lab(
    name="txn",
    title="Transactions: two-phase commit that survives crashes, and sagas",
    parts=("two_phase", "saga"),
    scenarios=tuple(Scenario(fn.__name__, "two_phase", fn) for fn in TWO_PHASE)
    + tuple(Scenario(fn.__name__, "saga", fn) for fn in SAGA),
    skeleton=TxnSkeleton,
    reference=TxnReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(events=50_000, messages=50_000, cpu=5.0),
    window=0.3,
    hints={
        "force before vote": "A yes vote is a promise to commit if told to: it "
        "must survive a crash, so the prepared record is forced first",
        "durable decision": "The coordinator's commit record is the commit "
        "point: force it before anyone hears 'commit'",
        "commit without every yes": "Commit only with a yes from every "
        "participant; anything else, a timeout included, is abort",
        "in doubt": "After a yes vote only the coordinator decides: ask it, and "
        "keep the rows locked until it answers (2PC blocks)",
        "force before ack": "An ack tells the coordinator it may forget the "
        "transaction (presumed abort): force the commit record first, or a crash "
        "after the ack leaves a commit that nobody remembers",
        "one round": "One round per transaction: a begin may arrive twice, or "
        "late. Force the abort decision before announcing it (refuse), so a "
        "coordinator back from a crash still knows the transaction ended",
        "recovery": "On restart, every prepared transaction with no outcome in "
        "the log is in doubt again: relock its rows and ask",
        "compensation order": "Undo the done steps newest first",
        "saga atomicity": "A saga ends with every step in effect, or every done "
        "step compensated",
        "idempotence": "Retries and duplicates arrive: remember each (saga, "
        "step) result on disk and answer a repeat from it",
    },
)

__all__ = ["LAB", "Referee", "TxnLabBase", "TxnReference", "TxnSkeleton"]
