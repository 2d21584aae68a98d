"""labkit.txn's flexible transactions (柔性事务): sagas with compensation and TCC
with expiring reservations. Compensation order, idempotence under duplicated
messages, the intermediate state other readers see, TCC's empty rollback and
hanging try, and conservation once everything settles, over many seeds of
random faults."""

from __future__ import annotations

import pytest
from faults import random_faults
from test_txn import clients_know_every_outcome

from labkit import NetConfig, dist
from labkit.errors import InvariantViolation
from labkit.net import Message
from labkit.txn import (
    ABORTED,
    COMMITTED,
    PENDING,
    TxnCluster,
    check_atomicity,
    check_conservation,
    check_no_hanging_tries,
    check_no_lost_commits,
)

LATENCY = 0.010
PAYROLL = [("n1.0", -30), ("n2.0", 10), ("n3.0", 10), ("n4.0", 10)]


def cluster(protocol: str, participants: int = 4, **knobs) -> TxnCluster:
    knobs.setdefault("net", NetConfig(latency=LATENCY))
    return TxnCluster(protocol, participants, **knobs)


def sent_steps(c: TxnCluster, kind: str) -> list[int]:
    """The steps the participants forced a record of one kind for."""
    return [r[2] for name in c.participants for r in c.nodes[name].records(kind)]


# -- sagas ------------------------------------------------------------------------

def test_a_saga_runs_its_steps_in_order_and_completes():
    c = cluster("saga")
    txn = c.submit(PAYROLL)
    c.run(1.0)
    assert c.outcome(txn) == COMMITTED == c.client.records[txn].outcome
    assert [c.balances()[a] for a, _ in PAYROLL] == [70, 110, 110, 110]
    # One round trip per remote step, one after another: 3 remote steps.
    latency = c.sim.metrics["txn.latency"].values[0]
    assert 3 * 2 * LATENCY <= latency < 4 * 2 * LATENCY + 0.01
    check_conservation(c)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_failed_step_is_compensated_in_reverse_order(k):
    c = cluster("saga", fail_step=k)
    txn = c.submit(PAYROLL)
    c.run(1.0)
    assert c.outcome(txn) == ABORTED == c.client.records[txn].outcome
    log = [(r[0], r[2]) for r in c.nodes["n1"].disk["log"]
           if r[0] in ("saga_step", "saga_failed", "saga_undone") and r[1] == txn]
    # Steps 0..k-1 done, step k refused, then every done step undone, last first.
    assert log == [("saga_step", i) for i in range(k)] + [("saga_failed", k)] + \
        [("saga_undone", i) for i in range(k - 1, -1, -1)]
    assert c.balances() == dict.fromkeys(c.accounts, 100)
    check_atomicity(c)
    check_conservation(c)


def test_insufficient_funds_fail_the_first_step_and_nothing_is_compensated():
    c = cluster("saga")
    txn = c.submit([("n1.0", -300), ("n2.0", 300)])
    c.run(1.0)
    assert c.outcome(txn) == ABORTED
    assert sent_steps(c, "saga_undo") == []
    assert c.balances() == dict.fromkeys(c.accounts, 100)


def test_forward_recovery_waits_for_a_crashed_participant_instead_of_aborting():
    c = cluster("saga")
    c.crash_at("participant.before_vote", node="n3", restart_after=1.0)
    txn = c.submit(PAYROLL)
    c.run(0.5)
    assert c.outcome(txn) == PENDING        # n1 paid, n2 credited, n3 down
    assert c.balances()["n1.0"] == 70 and c.balances()["n2.0"] == 110
    c.run(1.0)
    assert c.outcome(txn) == COMMITTED       # the step was retried until n3 came back
    # The client asked at 0.5 s and 1 s, while n3 was down: "pending" both times.
    assert c.network.delivered["ask_ok"] == 2
    assert c.client.records[txn].outcome == COMMITTED
    assert c.sim.metrics["txn.latency"].values[0] > 1.0
    check_conservation(c)


def test_orchestrator_crash_mid_saga_resumes_from_its_log():
    c = cluster("saga")
    c.crash_at("coordinator.after_votes", node="n1", restart_after=0.5)
    txn = c.submit(PAYROLL)
    c.run(0.3)
    assert c.outcome(txn) == PENDING and c.balances()["n1.0"] == 70
    c.run(1.0)
    assert c.outcome(txn) == COMMITTED
    c.check()
    check_conservation(c)


@pytest.mark.parametrize("seed", range(10))
def test_idempotent_steps_apply_once_under_duplicated_messages(seed):
    c = cluster("saga", seed=seed, net=NetConfig(latency=dist.uniform(0.002, 0.02),
                                                 duplicate=0.5, reorder=0.2))
    c.workload(rate=30, duration=2.0)
    c.run(2.0)
    assert c.settle(2.0) == []
    assert c.network.duplicated > 50
    check_atomicity(c)
    check_no_lost_commits(c)
    check_conservation(c)


def test_without_idempotence_duplicates_make_or_destroy_money():
    broken = 0
    for seed in range(5):
        c = cluster("saga", seed=seed, idempotent=False,
                    net=NetConfig(latency=dist.uniform(0.002, 0.02), duplicate=0.5))
        c.workload(rate=30, duration=2.0)
        c.run(2.0)
        c.settle(2.0)
        try:
            check_no_lost_commits(c)
        except InvariantViolation:
            broken += 1
    assert broken == 5


def test_a_reader_sees_the_money_in_flight_in_a_saga_but_never_in_2pc():
    anomalies = {}
    for protocol in ("saga", "2pc"):
        c = TxnCluster(protocol, 3, seed=3, balance=1000,
                       net=NetConfig(latency=0.005), audit_every=0.1,
                       read_lease=0.02)
        c.workload(rate=40, duration=4.0, contention=0.2)
        c.run(4.0)
        c.settle(1.0)
        reads = c.sim.metrics["audit.reads"].value
        assert reads >= 20
        anomalies[protocol] = c.sim.metrics.counter("audit.anomalies").value
        totals = c.sim.metrics["audit.total"].values
        assert min(totals) < c.initial_total if protocol == "saga" else \
            set(totals) == {c.initial_total}
        check_conservation(c)           # ...and yet nothing is lost at the end
    assert anomalies["saga"] >= 5 and anomalies["2pc"] == 0


# -- TCC ----------------------------------------------------------------------------

def frozen(c: TxnCluster, account: str) -> int:
    return c.nodes[c.owner(account)].disk.get("frozen", {}).get(account, 0)


def test_tcc_confirms_after_every_try_succeeds():
    c = cluster("tcc")
    txn = c.submit(PAYROLL)
    c.run(1.0)
    assert c.outcome(txn) == COMMITTED
    assert [c.balances()[a] for a, _ in PAYROLL] == [70, 110, 110, 110]
    assert frozen(c, "n1.0") == 0
    check_conservation(c)


def test_tcc_try_freezes_funds_that_others_cannot_spend():
    c = cluster("tcc")
    c.crash_at("coordinator.after_votes", node="n2")
    first = c.submit([("n2.0", 80), ("n1.0", -80)])     # n2 orchestrates
    c.run(0.2)
    assert frozen(c, "n1.0") == 80 and c.balances()["n1.0"] == 100
    # Only 20 is still available: a second try for 30 is refused at n1.
    second = c.submit([("n3.0", 30), ("n1.0", -30)])    # n3 orchestrates
    c.run(0.2)
    assert c.outcome(second) == ABORTED
    c.restart("n2")
    c.run(0.2)
    assert c.outcome(first) == ABORTED       # presumed abort after n2's restart
    assert frozen(c, "n1.0") == 0


@pytest.mark.parametrize("ttl", [0.5, 2.0])
def test_reservations_expire_so_a_crashed_coordinator_does_not_block_forever(ttl):
    c = cluster("tcc", ttl=ttl)
    c.crash_at("coordinator.after_votes", node="n1")
    txn = c.submit([("n1.0", 50), ("n2.0", -50)])  # n1 orchestrates, n2 pays
    c.run(ttl - 0.1)
    assert frozen(c, "n2.0") == 50
    c.run(0.2)
    assert frozen(c, "n2.0") == 0                 # expired: 2PC would still hold it
    assert c.sim.metrics["tcc.expired"].value == 1
    c.restart("n1")
    c.run(1.0)
    assert c.outcome(txn) == ABORTED and c.settle(1.0) == []
    check_conservation(c)


def test_a_confirm_that_finds_its_reservation_expired_cancels_everything():
    c = cluster("tcc", ttl=0.5)
    c.crash_at("coordinator.after_decision", node="n1", restart_after=1.0)
    txn = c.submit([("n1.0", 40), ("n2.0", -40)])  # decided "confirm", then crashed
    c.run(2.0)
    assert c.outcome(txn) == ABORTED
    assert c.balances() == dict.fromkeys(c.accounts, 100)
    assert c.settle(1.0) == []
    check_atomicity(c)
    check_conservation(c)


def test_empty_rollback_and_hanging_try():
    c = cluster("tcc", net=NetConfig(latency=LATENCY, reorder=1.0))  # not FIFO
    # The try for n2 is held up in the network past the try deadline: the cancel
    # gets there first (an empty rollback) and the late try must be refused.
    c.network.adversary = lambda msg: 0.5 if msg.kind == "tcc_try" and \
        msg.dst == "n2" else 0.0
    txn = c.transfer("n1.0", "n2.0", 10)
    c.run(1.5)
    assert c.outcome(txn) == ABORTED
    assert c.sim.metrics["tcc.empty_rollbacks"].value == 1
    assert c.nodes["n2"].disk["tcc"][(txn, "n2.0")] == "cancelled"
    assert c.settle(1.0) == [] and frozen(c, "n1.0") == 0
    check_conservation(c)


FSYNC = 0.010
#: How long to hold up the try to n2 of transfer n1.0 -> n2.0 (n1 orchestrates)
#: so that it lands mid-way through its cancel's forced write, or the cancel
#: mid-way through the try's. Every hop takes 2 LATENCY (the network is not
#: FIFO): begin at n1 at 2L, "tcc" record forced and the tries sent at 2L + F;
#: the try deadline (0.1 s) and the forced decision put the cancel at n2 at
#: 0.1 + 4L + 2F, forced until 0.1 + 4L + 3F.
RACES = {"cancel first": 0.1 + 1.5 * FSYNC, "try first": 0.1 + 0.5 * FSYNC}


@pytest.mark.parametrize("race", RACES)
def test_a_try_that_meets_its_cancel_on_the_way_to_disk_is_refused(race):
    c = cluster("tcc", fsync=FSYNC, net=NetConfig(latency=LATENCY, reorder=1.0))
    answers = []

    def adversary(msg: Message) -> float:
        if msg.kind == "tcc_try_ok" and msg.src == "n2":
            answers.append(msg.result)
        return RACES[race] if msg.kind == "tcc_try" and msg.dst == "n2" else 0.0
    c.network.adversary = adversary
    txn = c.transfer("n1.0", "n2.0", 10)
    c.run(1.0)
    at_n2 = {(r.event, r.kind): r.time for r in reversed(c.sim.trace) if r.dst == "n2"}
    cancel, try_ = at_n2["deliver", "tcc_cancel"], at_n2["deliver", "tcc_try"]
    first, second = (cancel, try_) if race == "cancel first" else (try_, cancel)
    assert first < second < first + FSYNC        # the race really was constructed
    # Anti-hanging: the cancel was seen, so the try is refused and reserves nothing.
    assert answers == ["refused"]
    assert c.views(txn) == {"n1": "cancelled", "n2": "cancelled"}
    assert c.nodes["n2"].disk["held"] == {} and c.outcome(txn) == ABORTED
    c.check()
    assert c.settle(1.0) == []


def test_check_no_hanging_tries_catches_a_leg_reserved_after_its_end():
    c = cluster("tcc")
    txn = c.transfer("n1.0", "n2.0", 150)          # n1.0 holds 100: cancelled
    c.run(1.0)
    assert c.outcome(txn) == ABORTED
    check_no_hanging_tries(c)
    c.nodes["n2"].disk["tcc"][(txn, "n2.0")] = "reserved"     # as a hanging try would
    with pytest.raises(InvariantViolation, match="hanging try"):
        c.check()


def test_a_retry_from_the_try_phase_does_not_confirm_a_credit_before_its_debit():
    c = cluster("tcc", 3, coordinator="separate")
    txn = c.transfer("n1.0", "n2.0", 10)
    c.run(2.1 * LATENCY)                  # both tries are in, answers on the way
    c.network.block("tm", "n1")           # the debit's confirm will not get through
    c.run(0.4 * LATENCY)
    # A late "busy" from n2 (to an earlier copy of its try) arms a retry...
    c.nodes["tm"].deliver(Message("n2", "tm", "tcc_try_ok",
                                  {"txn": txn, "account": "n2.0", "result": "busy"},
                                  -1))
    c.run(1.5)                            # ...the tries succeed, tm decides confirm
    c.heal()                              # and the debit's reservation expires
    c.run(1.0)
    # The credit was never confirmed ahead of the debit: both legs end undone.
    assert c.views(txn) == {"n1": "expired", "n2": "cancelled"}
    assert c.outcome(txn) == ABORTED and c.total() == c.initial_total
    c.check()


def test_tcc_does_not_hold_a_hot_row_and_aborts_less_than_2pc_under_contention():
    rates = {}
    for protocol in ("2pc", "tcc"):
        c = TxnCluster(protocol, 3, seed=2, balance=10_000,
                       net=NetConfig(latency=0.005))
        c.workload(rate=80, duration=4.0, contention=0.8)
        c.run(4.0)
        c.settle(1.0)
        rates[protocol] = c.stats()["abort rate"]
        check_conservation(c)
    assert rates["tcc"] < 0.05 < 0.3 < rates["2pc"]


# -- random faults ------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(50))
@pytest.mark.parametrize("protocol", ["saga", "tcc"])
def test_flexible_transactions_settle_conserving_under_random_faults(protocol, seed):
    net = NetConfig(latency=dist.uniform(0.002, 0.02), duplicate=0.1, reorder=0.05)
    c = TxnCluster(protocol, 4, seed=seed, net=net, trace=False, fsync=0.002,
                   ttl=0.3)
    c.workload(rate=40, duration=3.0, contention=0.3)
    random_faults(c, 3.0, seed, mean_gap=0.3)
    left = c.settle(5.0)
    assert left == [], f"{protocol} seed {seed}: unsettled {left[:5]}"
    assert set(c.outcomes().values()) <= {COMMITTED, ABORTED}, f"seed {seed}"
    try:
        check_atomicity(c)
        check_conservation(c)
        check_no_lost_commits(c)
        check_no_hanging_tries(c)
    except InvariantViolation as exc:
        exc.add_note(f"replay: protocol={protocol!r}, seed={seed}")
        raise
    clients_know_every_outcome(c, seed)


@pytest.mark.parametrize("seed", range(60))
def test_no_tcc_leg_is_left_reserved_after_its_transaction_under_random_faults(seed):
    # A slow disk, a network that reorders, and balances so small that many
    # tries are refused: cancels often overtake the other leg's try.
    net = NetConfig(latency=dist.uniform(0.002, 0.02), duplicate=0.1, reorder=0.3)
    c = TxnCluster("tcc", 4, seed=seed, net=net, trace=False, fsync=0.01, ttl=0.3,
                   balance=10)
    c.workload(rate=40, duration=3.0, contention=0.3)
    random_faults(c, 3.0, seed, mean_gap=0.3)
    try:
        check_no_hanging_tries(c)               # it holds at any moment
        assert c.settle(5.0) == [], f"seed {seed}"
        c.check()
        check_conservation(c)
    except InvariantViolation as exc:
        exc.add_note(f"replay: seed={seed}")
        raise


def test_a_saga_with_two_legs_on_one_node_shows_each_legs_step():
    """n1 credits n1.0 first and is refused the debit of n1.1 last; keyed by node
    alone, the refusal hid that n1 had done and undone its first step."""
    c = TxnCluster("saga", 2, accounts=2, net=NetConfig(latency=0.01))
    txn = c.submit([("n1.0", 50), ("n2.0", 100), ("n1.1", -150)])   # n1.1 holds 100
    c.run(2.0)
    assert c.outcome(txn) == ABORTED
    assert c.views(txn) == {"n1 (n1.0)": "did and undid its step",
                            "n2": "did and undid its step",
                            "n1 (n1.1)": "refused its step"}
    assert set(c.balances().values()) == {100}
