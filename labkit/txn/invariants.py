"""What every run of a `TxnCluster` must satisfy: atomicity (all or nothing), no
lost commits, no hanging TCC tries, and conservation (no money made or
destroyed). `TxnCluster.check` runs them all, each as far as it is defined at
that moment.
"""

from __future__ import annotations

from labkit.errors import InvariantViolation
from labkit.node import Cluster
from labkit.txn.base import ABORTED, COMMITTED, nodes_of


def _legs_applied(cluster: Cluster, txn: str) -> list[int]:
    """Saga: per step, how many times its effect is in the database now
    (done minus compensated), from the participants' records."""
    out = []
    for step, (account, _) in enumerate(cluster.record(txn).legs):
        done = cluster.nodes[cluster.owner(account)].disk.get("done", {})
        out.append((done.get((txn, step, "do")) == "ok")
                   - (done.get((txn, step, "undo")) == "ok"))
    return out


def _tcc_states(cluster: Cluster, txn: str) -> list[str | None]:
    return [cluster.nodes[cluster.owner(a)].disk.get("tcc", {}).get((txn, a))
            for a, _ in cluster.record(txn).legs]


def check_atomicity(cluster: Cluster) -> None:
    """All or nothing: no transaction is committed at one participant and aborted
    at another (saga: every step done, or every step undone; TCC: every leg
    confirmed, or none), and no client was told an outcome that differs."""
    for txn, record in cluster.client.records.items():
        outcome = cluster.outcome(txn)
        if cluster.protocol in ("2pc", "paxos_commit"):
            views = {p: cluster.nodes[p].outcomes().get(txn)
                     for p in nodes_of(record.legs, cluster.world.owners)}
            if COMMITTED in views.values() and ABORTED in views.values():
                raise InvariantViolation(f"atomicity: {txn} is committed at some "
                                         f"participants and aborted at others: "
                                         f"{views}")
        elif cluster.protocol == "saga" and outcome in (COMMITTED, ABORTED):
            applied = _legs_applied(cluster, txn)
            if applied != [int(outcome == COMMITTED)] * len(applied):
                raise InvariantViolation(f"atomicity: saga {txn} ended {outcome} "
                                         f"but its steps are applied {applied} times")
        elif cluster.protocol == "tcc" and outcome in (COMMITTED, ABORTED):
            states = _tcc_states(cluster, txn)
            confirmed = [s == "confirmed" for s in states]
            if any(confirmed) and (outcome == ABORTED or not all(confirmed)):
                raise InvariantViolation(f"atomicity: TCC {txn} ended {outcome} "
                                         f"with legs {states}")
        if record.outcome is not None and outcome in (COMMITTED, ABORTED) \
                and record.outcome != outcome:
            raise InvariantViolation(f"atomicity: the client was told {txn} "
                                     f"{record.outcome}, but it {outcome}")


def check_no_hanging_tries(cluster: Cluster) -> None:
    """No leg is left reserved after its transaction has finished (TCC): once
    the orchestrator has ended a transaction, every leg is confirmed, cancelled
    or expired. A "hanging" try, one that reserves after its leg's cancel,
    would hold its funds for nothing, a credit's forever (only debits expire).
    Holds at any moment; the other protocols reserve nothing."""
    if cluster.protocol != "tcc":
        return
    for txn, record in cluster.client.records.items():
        outcome = cluster.outcome(txn)
        if outcome not in (COMMITTED, ABORTED):
            continue
        states = _tcc_states(cluster, txn)
        hanging = [a for (a, _), s in zip(record.legs, states, strict=True)
                   if s == "reserved"]
        if hanging:
            raise InvariantViolation(f"hanging try: TCC {txn} ended {outcome}, but "
                                     f"{hanging} still reserved")


def check_conservation(cluster: Cluster) -> None:
    """No money made or destroyed: the balances sum to what they started at and
    nothing is left frozen. Holds at quiescence (after `settle`)."""
    total = cluster.total()
    if total != cluster.initial_total:
        raise InvariantViolation(f"conservation: balances sum to {total}, they "
                                 f"started at {cluster.initial_total}")
    frozen = {a: v for name in cluster.names
              for a, v in cluster.nodes[name].disk.get("frozen", {}).items() if v}
    if frozen:
        raise InvariantViolation(f"conservation: funds still frozen {frozen}")


def check_no_lost_commits(cluster: Cluster) -> None:
    """What the client was told committed stays committed, and every committed
    transaction is in the database exactly once. At any moment: a transaction
    the client was told committed is not aborted. Once settled (nothing down,
    in doubt or running): it is committed, (2PC, Paxos Commit) every
    participant of a committed transaction has committed it, and each account's
    balance is its opening balance plus the legs of the transactions that
    committed. Before that, a told commit may still be blocked or pending: its
    decision is durable, but a participant has not learnt it yet, or the
    coordinator that told the client is down and its lazy end record (TCC) was
    lost; recovery finishes it."""
    settled = not cluster.unsettled()
    expected = dict.fromkeys(cluster.accounts, cluster.config.balance)
    for txn, record in cluster.client.records.items():
        outcome = cluster.outcome(txn)
        if record.outcome == COMMITTED and (outcome == ABORTED or settled
                                            and outcome != COMMITTED):
            raise InvariantViolation(f"lost commit: the client was told {txn} "
                                     f"committed, but it is {outcome}")
        if outcome == COMMITTED:
            for account, delta in record.legs:
                expected[account] += delta
        if settled and outcome == COMMITTED and cluster.protocol in (
                "2pc", "paxos_commit"):
            views = {p: cluster.nodes[p].outcomes().get(txn)
                     for p in nodes_of(record.legs, cluster.world.owners)}
            if any(v != COMMITTED for v in views.values()):
                raise InvariantViolation(f"lost commit: {txn} committed but the "
                                         f"participants say {views}")
    if settled:
        actual = cluster.balances()
        wrong = {a: (actual[a], expected[a]) for a in expected
                 if actual[a] != expected[a]}
        if wrong:
            raise InvariantViolation(f"balances differ from the committed "
                                     f"transactions (actual, expected): {wrong}")
