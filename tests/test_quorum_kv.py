"""The Dynamo-style quorum store: partial quorums against Bailis et al.'s closed
form and WARS numbers, read repair, Merkle-tree anti-entropy, availability,
bad input and determinism."""

from __future__ import annotations

import math

import pytest

from labkit import ConfigError, NetConfig, Unavailable, dist, scenarios
from labkit.storage import (
    WARS,
    QuorumKV,
    key_hash,
    merkle,
    merkle_diff,
    stale_probability,
    wars_consistency,
)


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
                                                            (1, 3))).data["rows"]}
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


def test_the_simulated_store_agrees_with_the_wars_model():
    result = scenarios.t_visibility(seed=2, trials=1000, points=2)
    for label, simulated in result.data["simulated"].items():
        delays = FAST if "fast" in label else SLOW
        for t, share in simulated.items():
            model = wars_consistency(3, 1, 1, delays, t, 20_000, seed=5)
            spread = 4 * math.sqrt(max(model * (1 - model), 1e-3) / 1000)
            assert abs(share - model) < spread, (label, t, share, model)
    slow = result.data["simulated"]["slow writes, Exp(10 ms)"]
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
