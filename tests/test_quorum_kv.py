"""The Dynamo-style quorum store: partial quorums against Bailis et al.'s closed
form and WARS numbers, read repair, Merkle-tree anti-entropy, availability,
bad input and determinism; and the replica parts it shares with the capstone
(`read_repair`, `Replica`'s hand-off, `CoordinatingReplica`'s quorums)."""

from __future__ import annotations

import math

import pytest

from labkit import ConfigError, NetConfig, Unavailable, dist, hashring, scenarios
from labkit.net import Network
from labkit.sim import Simulator
from labkit.storage import (
    VERSION_SLOTS,
    WARS,
    CoordinatingReplica,
    QuorumKV,
    Replica,
    key_hash,
    merkle,
    merkle_diff,
    modulo_owners,
    read_repair,
    stale_probability,
    wars_consistency,
)
from labkit.storage.anti_entropy import MAX_DEPTH


def measured_staleness(n: int, r: int, w: int, trials: int, seed: int = 1) -> float:
    kv = QuorumKV(n, n=n, r=r, w=w, fanout="quorum", seed=seed, trace=False)
    for i in range(trials):
        kv.put(f"k{i}", i)
        kv.get(f"k{i}")
    assert kv.sim.metrics["reads"].value == trials
    return kv.sim.metrics["reads.stale"].value / trials


# -- partial quorums ----------------------------------------------------------------

def test_closed_form_matches_the_papers_example_and_counting():
    assert stale_probability(3, 1, 1) == pytest.approx(2 / 3)
    assert stale_probability(3, 2, 2) == 0.0                # R + W > N
    assert stale_probability(3, 1, 1, versions=2) == pytest.approx(4 / 9)
    # By counting: the read misses the write iff all R read replicas are among
    # the N - W the write skipped.
    n, r, w = 5, 2, 2
    hits = sum(1 for a in range(n) for b in range(a + 1, n) if {a, b} <= {2, 3, 4})
    assert stale_probability(n, r, w) == pytest.approx(hits / math.comb(n, r))


@pytest.mark.parametrize("n, r, w", [(3, 1, 1), (3, 1, 2), (5, 2, 2), (5, 1, 3)])
def test_random_partial_quorums_are_stale_as_often_as_the_closed_form(n, r, w):
    trials = 1500
    p = stale_probability(n, r, w)
    spread = 4 * math.sqrt(p * (1 - p) / trials)
    assert abs(measured_staleness(n, r, w, trials) - p) < spread, (n, r, w)


@pytest.mark.parametrize("n, r, w", [(3, 2, 2), (3, 1, 3), (5, 3, 3)])
def test_overlapping_quorums_are_never_stale(n, r, w):
    assert measured_staleness(n, r, w, 300) == 0.0


def test_dynamo_mode_reads_are_stale_only_without_overlap():
    rows = {(row["R"], row["W"]): row for row in
            scenarios.quorum_costs(seed=2, ops=300, combos=((1, 1), (2, 2),
                                                            (1, 3))).data.rows}
    assert rows[1, 1]["stale reads"] > 0.02     # the write is still on its way
    assert rows[2, 2]["stale reads"] == 0.0 == rows[1, 3]["stale reads"]
    # Waiting for more acks costs latency: W = 3 waits for the slowest replica.
    assert rows[1, 3]["put p99 (ms)"] > rows[1, 1]["put p99 (ms)"]


# -- t-visibility (WARS) ------------------------------------------------------------

FAST = WARS(dist.exponential(0.00025), *[dist.exponential(0.001)] * 3)
SLOW = WARS(dist.exponential(0.010), *[dist.exponential(0.001)] * 3)


@pytest.mark.parametrize("delays, t, paper", [
    (FAST, 0.0, 0.94), (FAST, 0.001, 0.999), (SLOW, 0.0, 0.41), (SLOW, 0.065, 0.999)])
def test_the_wars_model_reproduces_the_papers_synthetic_numbers(delays, t, paper):
    trials = 20_000
    got = wars_consistency(3, 1, 1, delays, t, trials, seed=3)
    # 4 standard errors, plus the paper's rounding to two or three digits.
    tolerance = 4 * math.sqrt(paper * (1 - paper) / trials) + 0.005
    assert abs(got - paper) < tolerance


@pytest.mark.parametrize("args,words", [
    ((3, 1, 4, FAST, 0.0, 10), "r and w must be at most n = 3"),
    ((3, 1, 0, FAST, 0.0, 10), "w must be >= 1"),
    ((3, 0, 1, FAST, 0.0, 10), "r must be >= 1"),
    ((3, 1, 1, FAST, -1.0, 10), "t must be >= 0"),
    ((3, 1, 1, FAST, math.nan, 10), "t must be finite"),
    ((3, 1, 1, "x", 0.0, 10), r"delays must be a WARS\(write, ack, read, response\)"),
    ((3, 1, 1, FAST, 0.0, 0), "trials must be >= 1"),
])
def test_the_wars_model_refuses_what_it_cannot_mean(args, words):
    with pytest.raises(ConfigError, match=words):
        wars_consistency(*args)


def test_a_wars_delay_may_be_a_number_of_seconds_as_a_net_latency_may():
    numbers = WARS(0.004, 0.001, 0.001, 0.001)
    constants = WARS(*(dist.constant(x) for x in numbers))
    assert wars_consistency(3, 1, 1, numbers, 0.0, 200) == \
        wars_consistency(3, 1, 1, constants, 0.0, 200)
    kv = QuorumKV(3, delays=numbers, net=NetConfig(latency=0.0))
    assert kv.put("x", 1) == 1 and kv.now == pytest.approx(0.005)
    assert kv.get("x") == 1


@pytest.mark.parametrize("delays, words", [
    (WARS(None, 0.001, 0.001, 0.001), "delays.write must be a number of seconds or "
                                      "a labkit.dist distribution"),
    (WARS(0.001, "1", 0.001, 0.001), "delays.ack must be a number of seconds"),
    (WARS(0.001, 0.001, -1, 0.001), "delays.read must be >= 0"),
])
def test_a_wars_field_that_is_no_delay_is_refused_by_name(delays, words):
    with pytest.raises(ConfigError, match=words):
        wars_consistency(3, 1, 1, delays, 0.0, 10)
    with pytest.raises(ConfigError, match=words):
        QuorumKV(3, delays=delays)


def test_the_simulated_store_agrees_with_the_wars_model():
    result = scenarios.t_visibility(seed=2, trials=1000, points=2)
    for label, simulated in result.data.simulated.items():
        delays = FAST if "fast" in label else SLOW
        for t, share in simulated.items():
            model = wars_consistency(3, 1, 1, delays, t, 20_000, seed=5)
            spread = 4 * math.sqrt(max(model * (1 - model), 1e-3) / 1000)
            assert abs(share - model) < spread, (label, t, share, model)
    slow = result.data.simulated["slow writes, Exp(10 ms)"]
    assert slow[0.0] < slow[0.01] < slow[0.02] < slow[0.065]   # waiting helps


# -- repair -----------------------------------------------------------------------

def test_read_repair_fixes_a_replica_that_missed_a_write():
    kv = QuorumKV(3, n=3, r=1, w=1, seed=1)
    kv.kill("r3")
    kv.put("x", "new")
    kv.restart("r3")
    assert kv.versions("x")["r3"] == 0
    assert kv.get("x") in (None, "new")           # R = 1: r3 may answer first
    kv.run(0.1)                                   # the repair follows the read
    assert kv.versions("x") == {"r1": 1, "r2": 1, "r3": 1}
    assert kv.sim.metrics["read_repairs"].value == 1
    assert kv.get("x") == "new"


def test_without_read_repair_the_replica_stays_behind():
    kv = QuorumKV(3, n=3, r=1, w=1, seed=1, read_repair=False)
    kv.kill("r3")
    kv.put("x", "new")
    kv.restart("r3")
    kv.get("x")
    kv.run(1.0)
    assert kv.versions("x")["r3"] == 0


def test_anti_entropy_brings_every_key_back_without_any_reads():
    kv = QuorumKV(3, n=3, r=1, w=1, seed=1, read_repair=False, anti_entropy=0.2)
    kv.kill("r3")
    for i in range(50):
        kv.put(f"k{i}", i)
    kv.restart("r3")
    kv.run(2.0)
    assert all(kv.versions(f"k{i}")["r3"] == i + 1 for i in range(50))


def test_anti_entropy_only_exchanges_keys_replicated_on_both_sides():
    kv = QuorumKV(5, n=2, r=1, w=2, seed=4, anti_entropy=0.1)
    for i in range(40):
        kv.put(f"k{i}", i)
    kv.run(1.0)
    for i in range(40):                           # nothing spread beyond N = 2
        assert sum(v > 0 for v in kv.versions(f"k{i}").values()) == 2


def test_merkle_diff_finds_exactly_the_leaves_that_differ():
    depth = 6
    mine = {f"k{i}": (1, i) for i in range(1000)}
    theirs = dict(mine)
    changed = ["k7", "k300", "k999"]
    for key in changed:
        theirs[key] = (2, "newer")
    a, b = merkle(mine, depth), merkle(theirs, depth)
    leaves, compared = merkle_diff(a, b)
    # A key sits in the leaf named by the top `depth` bits of its ring position.
    assert leaves == sorted({key_hash(k) >> (64 - depth) for k in changed})
    assert 1 <= len(leaves) <= 3
    assert compared <= 1 + 2 * depth * len(leaves)   # a path per difference
    assert merkle_diff(a, merkle(dict(mine), depth)) == ([], 1)


def test_merkle_depth_is_bounded_and_two_trees_must_match():
    items = {"a": (1, "x")}
    assert len(merkle(items, MAX_DEPTH)[-1]) == 2 ** MAX_DEPTH
    assert len(merkle(items, 0)) == 1                 # the root is the one leaf
    # 2**30 leaves would take minutes and gigabytes; a negative depth was an
    # internal TypeError, a str another.
    for depth in (MAX_DEPTH + 1, 30, -1):
        with pytest.raises(ConfigError, match=f"depth must be >= 0 and <= "
                                              f"{MAX_DEPTH}.*got {depth}"):
            merkle(items, depth)
    with pytest.raises(ConfigError, match="depth must be an int"):
        merkle(items, "x")
    with pytest.raises(ConfigError, match="items must be a dict"):
        merkle([("a", (1, "x"))], 2)
    with pytest.raises(ConfigError, match="a key must be a str, got 1"):
        merkle({1: (1, "x")}, 2)
    with pytest.raises(ConfigError, match=r"items\['a'\] must be a \(version, value\)"):
        merkle({"a": 1}, 2)
    # Trees of two depths used to give wrong leaves, or an IndexError.
    for a, b in ((2, 4), (4, 2)):
        with pytest.raises(ConfigError, match=f"same depth, got depths {a} and {b}"):
            merkle_diff(merkle(items, a), merkle({"a": (2, "y")}, b))
    with pytest.raises(ConfigError, match="a must be a Merkle tree"):
        merkle_diff([], merkle(items, 2))


def test_the_store_bounds_its_merkle_depth():
    for depth in (MAX_DEPTH + 1, 70):        # 70: a negative shift, too
        with pytest.raises(ConfigError, match=f"depth must be >= 1 and <= "
                                              f"{MAX_DEPTH}"):
            QuorumKV(3, depth=depth, anti_entropy=0.1)


def test_a_one_node_store_with_anti_entropy_runs_with_no_peer_to_sync():
    kv = QuorumKV(1, n=1, anti_entropy=0.1)
    kv.put("x", 1)
    kv.run(1.0)                      # was an IndexError: a peer from no peers
    assert kv.get("x") == 1
    assert kv.network.sent.get("sync", 0) == 0


# -- availability -------------------------------------------------------------------

def test_a_write_needs_w_live_replicas_and_a_read_r():
    kv = QuorumKV(3, n=3, r=2, w=2, seed=1, timeout=0.1)
    kv.put("x", 1)
    kv.kill("r1")
    kv.put("x", 2)
    assert kv.get("x") == 2
    kv.kill("r2")
    with pytest.raises(Unavailable, match="1 of the 2"):
        kv.put("x", 3)
    with pytest.raises(Unavailable, match="a read"):
        kv.get("x")


def test_a_partition_cuts_a_replica_off_like_a_crash():
    kv = QuorumKV(3, n=3, r=3, w=1, seed=1, timeout=0.1)
    kv.partition(["r1"], ["r2", "r3"])
    kv.disconnect("r1")
    with pytest.raises(Unavailable):
        kv.get("x")
    kv.heal()
    assert kv.get("x") is None


# -- bad input and determinism ---------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"nodes": 2, "n": 3}, "cannot exceed"),
    ({"r": 4}, "r and w must be between 1 and n"),
    ({"w": 0}, "w must be >= 1"),
    ({"fanout": "some"}, "fanout must be one of"),
    ({"read_repair": 1}, "read_repair must be True or False"),
    ({"anti_entropy": 0}, "anti_entropy must be > 0"),
    ({"delays": (1, 2, 3, 4)}, "delays must be a storage.WARS"),
    ({"depth": 0}, "depth must be >= 1"),
    ({"timeout": -1}, "timeout must be > 0"),
])
def test_bad_configuration_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        QuorumKV(**options)


def test_bad_keys_and_closed_form_arguments_are_refused():
    kv = QuorumKV()
    for key in ("", 5, None):
        with pytest.raises(ConfigError, match="key must be a non-empty str"):
            kv.put(key, 1)
    with pytest.raises(ConfigError, match="at most n"):
        stale_probability(3, 4, 1)
    with pytest.raises(ConfigError, match="versions must be >= 1"):
        stale_probability(3, 1, 1, versions=0)


def fingerprint(seed: int) -> str:
    kv = QuorumKV(5, n=3, r=1, w=2, seed=seed, anti_entropy=0.3,
                  net=NetConfig(latency=dist.lognormal(0.001, 0.01), reorder=0.3))
    for i in range(30):
        kv.put(f"k{i % 7}", i)
        kv.get(f"k{(i * 3) % 7}")
        if i == 10:
            kv.kill("r2")
    kv.run(1.0)
    return kv.result("kv").fingerprint


def test_same_seed_same_run():
    assert fingerprint(5) == fingerprint(5)
    assert fingerprint(5) != fingerprint(6)


# -- the replica parts the quorum store shares with the capstone -----------------------

def test_read_repair_plans_the_newest_answer_for_the_replicas_behind():
    answers = [("a", 2, "x"), ("b", 3, "y"), ("c", 1, None), ("d", 3, "z")]
    # The first of the newest answers wins; everyone older is behind, in order.
    assert read_repair(answers) == (3, "y", ["a", "c"])
    assert read_repair([("a", 4, "v")]) == (4, "v", [])
    with pytest.raises(ValueError, match="at least one answer"):
        read_repair([])


@pytest.mark.parametrize("answers, words", [
    ([("r1",)], r"answer 0 must be a \(replica, version, value\) triple"),
    ([("r1", None, 1), ("r2", 2, 1)], r"answer 0 \('r1'\): version must be an int"),
    ([("r1", 1, "x"), ("r2", "2", 1)], r"answer 1 \('r2'\): version must be an int"),
    ("r1", "answers must be a list of"),
    (None, "answers must be a list of"),
])
def test_read_repair_refuses_answers_it_cannot_order(answers, words):
    with pytest.raises(ConfigError, match=words):
        read_repair(answers)


def test_placement_helpers_and_versions_refuse_what_is_not_a_key():
    with pytest.raises(ConfigError, match="key must be a str, got 5"):
        key_hash(5)                                 # was an AttributeError
    assert key_hash("k") == hashring.key_hash("k")
    with pytest.raises(ConfigError, match="servers must be a non-empty list"):
        modulo_owners("x", 0, 1)                    # was a TypeError
    with pytest.raises(ConfigError, match="servers must be a non-empty list"):
        modulo_owners("x", [], 1)
    with pytest.raises(ConfigError, match="n must be >= 1"):
        modulo_owners("x", ["s1"], 0)
    with pytest.raises(ConfigError, match="key must be a str, got 5"):
        modulo_owners(5, ["s1"], 1)
    kv = QuorumKV()
    for key in (5, "", None):                       # put and get refuse them too
        with pytest.raises(ConfigError, match="key must be a non-empty str"):
            kv.versions(key)
    with pytest.raises(ConfigError, match="coordinator must be a class: "
                                          "labkit.storage.Coordinator or a subclass"):
        QuorumKV(coordinator=int)                   # was int()'s own TypeError


class Server(CoordinatingReplica):
    """A replica that owns the keys `placement` gives it and logs its hooks."""

    def __init__(self, name: str, net: Network, placement: dict[str, list[str]],
                 **settings):
        self.placement, self.log = placement, []
        super().__init__(name, net, **settings)

    def owners(self, key: str) -> list[str]:
        return self.placement[key]

    def reached(self, quorum, version: int) -> None:
        self.log.append(("reached", round(self.sim.now, 6), quorum.request, version))

    def missed(self, quorum) -> None:
        self.log.append(("missed", round(self.sim.now, 6), quorum.request))


def servers(r: int = 1, w: int = 2, back: dict[str, float] | None = None,
            placement: dict[str, list[str]] | None = None) -> dict[str, Server]:
    """Coordinator x and replicas a, b, d of key k: 1 ms out, `back` s home."""
    sim = Simulator(0)
    net = Network(sim, NetConfig(latency=0.001))
    placement = placement or {"k": ["a", "b", "d"]}
    nodes = {name: Server(name, net, placement, index=i, r=r, w=w, timeout=0.5)
             for i, name in enumerate("xabd")}
    for name, seconds in (back or {}).items():
        net.set_link(name, "x", latency=seconds)
    return nodes


def test_a_write_is_reached_once_after_w_acks_with_its_clock_version():
    nodes = servers(w=2, back={"a": 0.001, "b": 0.003, "d": 0.005})
    x, sim = nodes["x"], nodes["x"].sim
    sim.run(0.25)
    x.start_quorum("w1", "put", "k", "v1")
    x.start_quorum("w2", "put", "k", "v2")          # the same microsecond
    sim.run(1.0)
    # Version: clock in microseconds times the slots plus x's index (0); a
    # second write in the same microsecond gets the next number.
    first = 250_000 * VERSION_SLOTS
    assert x.log == [("reached", 0.254, "w1", first),
                     ("reached", 0.254, "w2", first + 1)]
    assert {n: nodes[n].lookup("k") for n in "abd"} == {
        n: (first + 1, "v2") for n in "abd"}
    assert x.quorums == {}                            # all answers in: forgotten


def test_a_read_repairs_every_replica_behind_once_even_after_its_answer():
    nodes = servers(r=1, back={"a": 0.001, "b": 0.005, "d": 0.009})
    x, sim = nodes["x"], nodes["x"].sim
    nodes["a"].store("k", 5, "new")
    nodes["b"].store("k", 3, "old")                  # d has no copy
    x.start_quorum("r1", "get", "k")
    sim.run(1.0)
    assert x.log == [("reached", 0.002, "r1", 5)]    # a answered first
    # b and d answered after the read returned; each got one repair put.
    assert x.net.sent["put"] == 2
    assert {n: nodes[n].lookup("k") for n in "abd"} == {n: (5, "new") for n in "abd"}


def test_a_read_returns_the_newest_of_the_first_r_answers():
    nodes = servers(r=2, back={"a": 0.009, "b": 0.001, "d": 0.005})
    x, sim = nodes["x"], nodes["x"].sim
    nodes["a"].store("k", 5, "new")
    nodes["b"].store("k", 3, "old")
    x.start_quorum("r1", "get", "k", latest=5)
    sim.run(1.0)
    assert x.log == [("reached", 0.006, "r1", 3)]    # a stale read: a came last
    assert {n: nodes[n].version("k") for n in "abd"} == {"a": 5, "b": 5, "d": 5}


def test_a_quorum_that_cannot_form_is_missed_at_its_deadline():
    nodes = servers(w=2)
    x, sim = nodes["x"], nodes["x"].sim
    nodes["a"].kill()
    nodes["b"].kill()
    x.start_quorum("w1", "put", "k", "v")
    sim.run(1.0)
    assert x.log == [("missed", 0.5, "w1")]
    assert nodes["d"].lookup("k")[1] == "v"          # the one ack came too late


def test_a_restart_forgets_the_quorums_in_flight_but_a_crash_does_not():
    for restart in (False, True):
        nodes = servers(w=3)
        x, sim = nodes["x"], nodes["x"].sim
        nodes["a"].kill()
        x.start_quorum("w1", "put", "k", "v")
        sim.run(0.1)
        x.kill()
        if restart:
            x.restart()
        sim.run(1.0)
        assert x.log == ([] if restart else [("missed", 0.5, "w1")])


def test_a_replica_pulls_only_the_keys_it_shares_and_keeps_newer_ones():
    placement = {"k1": ["a", "b"], "k2": ["b", "d"], "k3": ["a", "d"]}
    nodes = servers(placement=placement)
    a, sim = nodes["a"], nodes["a"].sim
    nodes["b"].store("k1", 4, "b-k1")
    nodes["b"].store("k2", 4, "b-k2")
    nodes["d"].store("k3", 2, "d-k3")
    a.store("k3", 7, "a-k3")
    a.pull(["a", "b", "d"])
    sim.run(1.0)
    assert a.disk["data"] == {"k1": (4, "b-k1"), "k3": (7, "a-k3")}
    assert nodes["x"].net.sent["pull"] == 2          # not to itself


def test_a_write_started_after_another_returned_wins_within_one_microsecond():
    # Coordinators y (index 0) and x (index 1), no latency: x's write returns,
    # then y's starts 0.1 us later. With the clock in microseconds plus the
    # index, y's write got the smaller version and every replica kept x's.
    sim = Simulator(0)
    net = Network(sim, NetConfig(latency=0.0))
    placement = {"k": ["a", "b", "d"]}
    nodes = {name: Server(name, net, placement, index=i, r=3, w=3, timeout=0.5)
             for i, name in enumerate("yxabd")}
    x, y = nodes["x"], nodes["y"]
    sim.run(0.25)
    x.start_quorum("w1", "put", "k", "first")
    sim.run(1e-7)
    assert [entry[2] for entry in x.log] == ["w1"]          # w1 has returned
    y.start_quorum("w2", "put", "k", "second")
    sim.run(1e-7)
    (_, _, _, first), (_, _, _, second) = x.log[0], y.log[0]
    assert second > first
    assert {n: nodes[n].lookup("k")[1] for n in "abd"} == dict.fromkeys("abd",
                                                                        "second")
    # Two writes started at the same instant, one after the other: the later
    # one gets the higher version (an index cannot order them rightly).
    x.start_quorum("w3", "put", "k", "third")
    y.start_quorum("w4", "put", "k", "fourth")
    sim.run(1.0)
    assert x.log[-1][3] < y.log[-1][3]
    assert {n: nodes[n].lookup("k")[1] for n in "abd"} == dict.fromkeys("abd",
                                                                        "fourth")


def test_replica_settings_are_checked():
    net = Network(Simulator(0))
    with pytest.raises(ConfigError, match="index must be below 8"):
        Server("x", net, {}, index=VERSION_SLOTS, r=1, w=1, timeout=1.0)
    with pytest.raises(ConfigError, match="r must be >= 1"):
        Server("x", net, {}, index=0, r=0, w=1, timeout=1.0)
    with pytest.raises(ConfigError, match="timeout"):
        Server("x", net, {}, index=0, r=1, w=1, timeout=0.0)
    with pytest.raises(ConfigError, match="delays must be a storage.WARS"):
        Replica("y", net, delays=(1, 2, 3, 4))
    x = Server("z", net, {"k": ["z"]}, index=0, r=1, w=1, timeout=1.0)
    with pytest.raises(ConfigError, match="op must be 'put' or 'get'"):
        x.start_quorum("q", "delete", "k")
    with pytest.raises(NotImplementedError, match="who owns a key"):
        Replica("v", net).owners("k")
