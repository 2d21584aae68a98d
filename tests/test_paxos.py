"""Single-decree Paxos as stories: one value chosen, kept through crashes and
duels, in the message and delay counts the paper gives (Lamport, "Paxos Made
Simple"), and never two values, whatever the network and the crashes do."""

from __future__ import annotations

import random

import pytest
from faults import random_faults

from labkit import ConfigError, InvariantViolation, NetConfig, Unavailable, dist
from labkit.paxos import PaxosCluster, Proposer, count_messages, majority, next_ballot

D = 0.010                       # one-way latency of the constant-latency runs
PHASES = ("prepare", "promise", "accept", "accepted")


def quiet(acceptors=5, proposers=2, **kw) -> PaxosCluster:
    """A fault-free cluster on a constant 10 ms network."""
    return PaxosCluster(acceptors, proposers, net=NetConfig(latency=D), **kw)


def duel(seed=1, **kw) -> PaxosCluster:
    """The adversarial schedule of §2.4: accept messages spend 40 ms more in flight
    than the others, and p2 starts 40 ms after p1, so each new prepare lands just
    before the other proposer's accepts."""
    c = quiet(seed=seed, timeout=1.0, **kw)
    c.delay("accept", 0.040)
    c.propose("x", proposer="p1")
    c.run(0.040)
    c.propose("y", proposer="p2")
    return c


# -- the normal case: 2 round trips, 4n messages ---------------------------------

@pytest.mark.parametrize("n", [1, 3, 5, 7])
def test_one_proposer_needs_two_round_trips_and_4n_messages(n):
    c = quiet(acceptors=n, proposers=1)
    c.propose("x", proposer="p1")
    c.run(1.0)
    assert c.chosen() == "x"
    assert c.chosen_at() == pytest.approx(3 * D)   # the majority's accepts land
    assert c.sim.metrics["paxos.decide"].values.tolist() == pytest.approx([4 * D])
    counts = c.network.counts()
    assert [counts[k]["sent"] for k in PHASES] == [n, n, n, n]
    assert count_messages(c.result(), PHASES) == 4 * n
    assert c.learned("l1") == "x"
    c.check()


def test_every_learner_and_proposer_learns_the_chosen_value():
    c = quiet(proposers=3, learners=3)
    c.propose("x", proposer="p2")
    c.run(1.0)
    assert [c.learned(n) for n in c.learners + c.proposers] == ["x"] * 6
    c.check()


def test_learners_that_missed_the_announcement_get_it_again():
    c = quiet(proposers=1, learners=2)
    c.disconnect("l2")
    c.propose("x", proposer="p1")
    c.run(1.0)
    assert (c.learned("l1"), c.learned("l2")) == ("x", None)
    c.connect("l2")
    c.run(1.0)
    assert c.learned("l2") == "x"


# -- ballots and nacks ----------------------------------------------------------

def test_ballots_are_disjoint_per_proposer_and_the_smallest_above():
    for count in range(1, 6):
        for above in range(40):
            ballots = [next_ballot(i, count, above) for i in range(1, count + 1)]
            assert len(set(ballots)) == count
            for i, b in enumerate(ballots, start=1):
                assert b > above and b % count == i % count and b - count <= above


def test_a_nack_carries_the_higher_ballot_and_the_retry_beats_it():
    c = quiet(proposers=2, backoff=(0.0, 0.0))
    c.propose("y", proposer="p2")                  # p2 owns ballots 2, 4, 6, ...
    c.run(1.5 * D)                                 # every acceptor promised 2
    c.kill("p2")
    c.propose("x", proposer="p1")                  # ballot 1 is nacked with 2
    c.run(1.0)
    p1 = c.node("p1")
    assert c.sim.metrics["paxos.preempted"].value == 1
    assert p1.ballot == 3 == p1.disk["ballot"]     # next_ballot(1, 2, above=2)
    assert c.chosen() == "x" and c.learned("p1") == "x"
    c.check()


def test_a_restarted_proposer_never_reuses_a_ballot():
    c = quiet(proposers=1)
    c.propose("x", proposer="p1")
    c.run(0.5 * D)                                 # prepare(1) is in flight
    c.kill("p1")
    c.restart("p1")
    c.propose("z", proposer="p1")
    c.run(1.0)
    assert c.node("p1").ballot == 2
    assert c.chosen() == "z"


def test_acceptors_keep_their_promise_and_value_across_a_crash():
    c = quiet(acceptors=3, proposers=2, backoff=(0.0, 0.0))
    c.propose("y", proposer="p2")
    c.run(3 * D + 0.001)                           # y is chosen; p2 does not know
    c.kill("p2")
    for a in c.acceptors:
        c.kill(a)
        c.restart(a)
        assert c.node(a).disk["promised"] == 2
        assert c.node(a).disk["accepted"] == (2, "y")
    c.propose("x", proposer="p1")                  # nacked with 2, retried with 3
    c.run(1.0)
    assert c.node("p1").ballot == 3
    assert c.chosen() == "y" and c.learned("p1") == "y"
    c.check()


# -- crashes mid-round ------------------------------------------------------------

def test_a_proposer_crash_after_choosing_leaves_the_value_chosen():
    c = quiet(proposers=2)
    c.propose("x", proposer="p1")
    c.run(3 * D + 0.001)                           # accepts landed, replies in flight
    c.kill("p1")
    assert c.chosen() == "x" and c.learned("l1") is None
    c.propose("y", proposer="p2")
    c.run(1.0)
    assert c.learned("l1") == "x" and c.learned("p2") == "x"
    c.check()


def test_a_value_one_acceptor_accepted_may_be_adopted_but_never_split():
    c = quiet(proposers=2)
    c.propose("x", proposer="p1")
    c.run(2 * D + 0.001)                           # phase 1 done, accepts in flight
    c.partition(["p1", "a1"], [n for n in c.names if n not in ("p1", "a1")])
    c.run(D)                                       # only a1 accepts x
    c.kill("p1")
    c.heal()
    assert c.node("a1").disk["accepted"] == (1, "x") and c.chosen() is None
    c.propose("y", proposer="p2")
    c.run(1.0)
    # p2's majority may or may not include a1: either value is allowed, one only.
    assert c.chosen() in ("x", "y") and c.learned("l1") == c.chosen()
    c.check()


def test_a_minority_of_acceptors_down_does_not_stop_progress_a_majority_does():
    c = quiet(acceptors=5, proposers=1)
    for a in c.acceptors[:5 - majority(5)]:
        c.kill(a)
    c.propose("x", proposer="p1")
    c.run(1.0)
    assert c.chosen() == "x"
    blocked = quiet(acceptors=5, proposers=1)
    for a in blocked.acceptors[:5 - majority(5) + 1]:
        blocked.kill(a)
    blocked.propose("x", proposer="p1")
    blocked.run(5.0)
    assert blocked.chosen() is None


def test_even_acceptor_counts_work_and_tolerate_what_one_fewer_does():
    for down, progress in ((1, True), (2, False)):
        c = quiet(acceptors=4, proposers=1)        # majority(4) = 3
        for a in c.acceptors[:down]:
            c.kill(a)
        c.propose("x", proposer="p1")
        c.run(2.0)
        assert (c.chosen() == "x") is progress, down


# -- dueling proposers ------------------------------------------------------------

def test_dueling_proposers_choose_nothing_while_the_schedule_lasts():
    c = duel(backoff=(0.0, 0.0))
    c.run(4.98 - c.now)
    assert c.chosen() is None
    assert all(c.node(a).disk["history"] == [] for a in c.acceptors)
    # Each proposer restarts every 3d + (d + 40 ms) = 80 ms: before 4.98 s, p1
    # at 0, 80, ..., 4960 ms (63 ballots), p2 at 40, 120, ..., 4920 ms (62).
    assert c.sim.metrics["paxos.ballots"].value == 63 + 62
    c.check()
    c.delay("accept", 0.0)                         # the adversary gives up
    c.run(1.0)
    assert c.chosen() in ("x", "y")
    c.check()


@pytest.mark.parametrize("seed", range(20))
def test_randomized_backoff_ends_the_duel(seed):
    c = duel(seed=seed, backoff=(0.0, 0.1))
    c.run(1.0)
    assert c.chosen() is not None, f"seed {seed}: still dueling after 1 s"
    c.check()


def test_a_distinguished_proposer_ends_the_duel_in_one_ballot():
    c = duel(leader=True)
    c.run(1.0)
    # p2 heard p1's heartbeat at 10 ms, so it forwards instead of preparing;
    # p1's accepts land at 20 ms + 50 ms.
    assert c.chosen() == "x" and c.chosen_at() == pytest.approx(0.070)
    assert c.sim.metrics["paxos.ballots"].value == 1
    assert c.learned("p2") == "x"


def test_a_new_distinguished_proposer_takes_over_when_the_leader_dies():
    c = quiet(proposers=2, leader=True, heartbeat=0.05, leader_timeout=0.15)
    c.run(0.1)
    c.kill("p1")                                   # its last beat reached p2 at 60 ms
    c.propose("y", proposer="p2")                  # p2 still defers to p1...
    c.run(0.1)
    assert c.chosen() is None
    c.run(1.0)                                     # ...until p1 is silent 150 ms:
    assert c.chosen() == "y"                       # p2's tick at 250 ms, + 3d
    assert c.chosen_at() == pytest.approx(0.25 + 3 * D)


# -- safety under random faults ---------------------------------------------------

def faulty_run(seed: int) -> PaxosCluster:
    """Three proposers, each handed three values at random times in the first
    100 ms, on a lossy, duplicating, reordering network whose adversary adds an
    exponential delay to every message; then crashes, restarts, partitions and
    loss for 2 s; then everything heals and p1 proposes once more."""
    c = PaxosCluster(5, 3, learners=2, seed=seed, backoff=(0.0, 0.03), timeout=0.1,
                     net=NetConfig(latency=dist.uniform(0.001, 0.02),
                                   duplicate=0.05, reorder=0.1))
    rng, jitter = random.Random(f"values:{seed}"), random.Random(f"delays:{seed}")
    c.network.adversary = lambda msg: jitter.expovariate(1 / 0.02)
    for p in c.proposers:
        for k in range(3):
            c.sim.at(rng.uniform(0, 0.1), lambda p=p, k=k: c.node(p).alive
                     and c.propose(f"{p}.{k}", proposer=p))
    random_faults(c, 2.0, seed, mean_gap=0.05)
    c.network.adversary = None
    c.heal()
    c.network.update(loss=0.0)
    for name in c.names:
        c.restart(name)
    c.propose("late", proposer="p1")
    c.run(3.0)
    return c


@pytest.mark.parametrize("block", range(10))
def test_never_two_values_under_random_faults(block):
    for seed in range(50 * block, 50 * block + 50):
        c = faulty_run(seed)
        try:
            c.check()
        except InvariantViolation as exc:
            raise AssertionError(f"seed {seed}: {exc}") from exc
        # Liveness once the faults stop: every learner and proposer learns it.
        assert c.chosen() is not None, f"seed {seed}: nothing chosen after healing"
        for name in c.learners + c.proposers:
            assert c.learned(name) == c.chosen(), f"seed {seed}: {name} lags"


def test_the_checker_catches_a_proposer_that_ignores_promised_values(monkeypatch):
    def careless(self):                            # phase 2a with our own value
        self.proposal, self.phase = self.value, "accept"
        for acceptor in self.settings.acceptors:
            self.send(acceptor, "accept", ballot=self.ballot, value=self.proposal)

    monkeypatch.setattr(Proposer, "accept", careless)
    caught = []
    for seed in range(200):
        try:
            faulty_run(seed).check()
        except InvariantViolation:
            caught.append(seed)
    assert caught, "200 faulty runs and the broken proposer was never caught"


def test_the_checker_rejects_forged_histories():
    c = quiet(acceptors=3, proposers=1)
    for a in c.acceptors[:2]:
        c.node(a).disk["history"] += [(0.1, 1, "x"), (0.2, 3, "y")]
    with pytest.raises(InvariantViolation, match="two different values"):
        c.check()
    c = quiet(acceptors=3, proposers=1)
    c.node("a1").disk["history"].append((0.1, 1, "x"))
    c.node("a2").disk["history"].append((0.1, 1, "y"))
    with pytest.raises(InvariantViolation, match="two values"):
        c.check()
    c = quiet(acceptors=3, proposers=1)
    c.node("l1").disk["learned"] = "ghost"
    with pytest.raises(InvariantViolation, match="not chosen"):
        c.check()


# -- determinism and bad input ----------------------------------------------------

def test_same_seed_same_run_and_different_seeds_differ():
    def fingerprint(seed):
        return faulty_run(seed).result("faulty").fingerprint

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


@pytest.mark.parametrize("make, message", [
    (lambda: PaxosCluster(0), "acceptors must be >= 1"),
    (lambda: PaxosCluster(2.5), "acceptors must be an int"),
    (lambda: PaxosCluster(3, 0), "proposers must be >= 1"),
    (lambda: PaxosCluster(3, 1, learners=-1), "learners must be >= 0"),
    (lambda: PaxosCluster(backoff=(0.1, 0.05)), "backoff high must be >= 0.1"),
    (lambda: PaxosCluster(backoff=0.1), "backoff must be a .low, high. pair"),
    (lambda: PaxosCluster(backoff=(-1, 0)), "backoff low must be >= 0"),
    (lambda: PaxosCluster(timeout=0), "timeout must be > 0"),
    (lambda: PaxosCluster(leader="yes"), "leader must be True or False"),
    (lambda: PaxosCluster().propose(None), "cannot propose None"),
    (lambda: PaxosCluster().propose(float("nan")), "must equal itself"),
    (lambda: PaxosCluster().propose([1]), "must be immutable"),
    (lambda: PaxosCluster().propose("x", proposer="p9"), "unknown proposer 'p9'"),
    (lambda: PaxosCluster().propose("x", proposer="a1"), "unknown proposer 'a1'"),
    (lambda: PaxosCluster().delay("", 1.0), "kind must be a message kind"),
    (lambda: PaxosCluster().delay("accept", -1), "seconds must be >= 0"),
    (lambda: PaxosCluster().learned("a1"), "a1 is an acceptor"),
])
def test_bad_input_is_rejected_with_a_clear_message(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_proposing_to_a_dead_proposer_is_unavailable():
    c = PaxosCluster()
    c.kill("p2")
    with pytest.raises(Unavailable, match="p2 is down"):
        c.propose("x", proposer="p2")


# -- scenarios, figures and the playground of notebook 04 ------------------------

def test_the_stories_end_as_the_notebook_tells_them():
    from labkit import scenarios

    normal = scenarios.paxos_story(story="normal")
    assert normal.data.chosen_at == pytest.approx(3 * D)
    crashed = scenarios.paxos_story(story="acceptor crash")
    assert crashed.data.chosen == "x" and crashed.data.chosen_at > 0.100
    adopted = scenarios.paxos_story(story="proposer crash")
    assert adopted.data.chosen == "x" and adopted.data.ballots == 2
    with pytest.raises(ConfigError, match="story must be one of"):
        scenarios.paxos_story(story="meteor")


def test_measured_costs_match_the_paper_counts():
    from labkit import scenarios

    for n in (3, 5):
        rows = {r["protocol"]: r for r in scenarios.paxos_costs(acceptors=n)
                .data.rows}
        basic = rows["basic Paxos, one value"]
        multi = rows["Multi-Paxos, per command"]
        assert (basic["messages"], basic["round trips"]) == (4 * n, 2.0)
        assert multi["messages"] == 2 * (n - 1)
        assert multi["round trips"] == pytest.approx(1.0)


def test_quorum_figure_marks_the_shared_acceptor():
    from labkit import plot

    names = [f"a{i}" for i in range(1, 6)]
    fig = plot.quorums(names, ["a1", "a2", "a3"], ["a3", "a4", "a5"])
    assert "share: a3" in fig.layout.title.text
    colours = fig.data[-1].marker.color
    assert len(set(colours)) == 3 and colours[2] not in (colours[0], colours[4])


def test_the_playground_redraws_when_acceptors_are_killed_and_restarted():
    from labkit import plot, widgets

    pg = widgets.paxos_playground(seed=0)
    assert "chosen at" in pg.explorer.status.value
    for button in pg.switches.buttons[:3]:
        button.value = True                        # a1-a3 crash at 15 ms
    assert pg.result.params["down"] == (0, 1, 2)
    assert "nothing chosen" in pg.explorer.status.value
    assert pg.switches.buttons[0].description == "restart a1"
    pg.switches.buttons[2].value = False           # a majority is back
    assert "chosen at" in pg.explorer.status.value
    pg.explorer.controls["acceptors"].value = 3    # a1, a2 still down: 1 of 3 left
    assert len(pg.switches.buttons) == 3 and pg.result.params["down"] == (0, 1)
    assert "nothing chosen" in pg.explorer.status.value
    pg.switches.buttons[0].value = False
    assert "chosen at" in pg.explorer.status.value
    assert [s.line.color for s in pg.figure.layout.shapes] == [plot.UP]


def test_the_playground_seed_changes_the_run_at_the_default_settings():
    from labkit import scenarios

    runs = [scenarios.paxos_playground(seed) for seed in range(5)]
    # Each message takes 5-15 ms (uniform), so seeds differ even with no loss ...
    flights = {}
    for r in runs:
        for rec in r.trace:
            if rec.event in ("send", "deliver"):
                flights.setdefault((r.seed, rec.msg), []).append(rec.time)
    delays = [t[1] - t[0] for t in flights.values() if len(t) == 2]
    assert delays and 0.005 <= min(delays) and max(delays) <= 0.015 + 1e-9
    assert len({round(d, 6) for d in delays}) > 10
    # ... and a student sees it: the times a value is chosen are not all equal.
    assert len({round(r.data.chosen_at, 6) for r in runs}) > 1
    assert scenarios.paxos_playground(3).fingerprint == runs[3].fingerprint
