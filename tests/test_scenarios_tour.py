"""The notebook-00 scenarios: ping/pong between nodes, latency samples, the echo
cluster. Expected numbers come from the protocol (every ping delivered is
answered) or from probability theory, never from a stored run."""

from __future__ import annotations

import math

import pytest

from labkit import dist
from labkit.errors import ConfigError
from labkit.scenarios import (
    TOUR_LATENCIES,
    cluster_step,
    echo_cluster,
    halves,
    journal_by_node,
    latency_samples,
    ping,
)


def deliveries(result, since=0.0, until=math.inf):
    """(src, dst) of each delivery in [since, until), read from the trace."""
    return [(r.src, r.dst) for r in result.trace
            if r.event == "deliver" and since <= r.time < until]


def test_same_seed_same_run_and_another_seed_another():
    a = ping(seed=3, loss=0.1, latency=dist.exponential(0.01))
    b = ping(seed=3, loss=0.1, latency=dist.exponential(0.01))
    c = ping(seed=4, loss=0.1, latency=dist.exponential(0.01))
    assert a.trace == b.trace and a.fingerprint == b.fingerprint
    assert c.fingerprint != a.fingerprint and c.trace != a.trace


def test_every_node_pings_every_peer_once_per_interval():
    # Each node's first tick is in [0, interval), so a run of k intervals holds
    # exactly k ticks per node, each a ping to each of the other nodes.
    nodes, interval, duration = 4, 0.1, 1.0
    res = ping(seed=5, nodes=nodes, interval=interval, duration=duration)
    rounds = round(duration / interval)
    assert res.data.messages["ping"]["sent"] == nodes * (nodes - 1) * rounds


def test_every_delivered_ping_is_answered_and_rtt_is_two_latencies():
    res = ping(seed=2, nodes=3, latency=0.010, duration=2.0)
    counts = res.data.messages
    assert counts["pong"]["sent"] == counts["ping"]["delivered"]
    rtt = res.metrics["rtt"]
    assert rtt.count == counts["pong"]["delivered"] > 0
    assert math.isclose(rtt.percentile(0.1), 0.020, rel_tol=1e-9)
    assert math.isclose(rtt.max, 0.020, rel_tol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_loss_drops_a_binomial_share_of_pings(seed):
    p = 0.2
    res = ping(seed=seed, nodes=5, loss=p, duration=5.0)
    ping_counts = res.data.messages["ping"]
    n, lost = ping_counts["sent"], res.data.drop_reasons["loss"]
    pong_lost = res.data.messages["pong"]["dropped"]
    sd = math.sqrt(n * p * (1 - p))
    assert abs(ping_counts["dropped"] - n * p) < 4 * sd, f"seed={seed}"
    assert lost == ping_counts["dropped"] + pong_lost, f"seed={seed}"


def test_partition_stops_traffic_across_the_cut_only_while_it_lasts():
    res = ping(seed=1, nodes=5, duration=1.0, partition=(0.3, 0.6))
    minority, majority = halves(res.data.names)
    def crosses(pair):
        return (pair[0] in minority) != (pair[1] in minority)
    assert not any(crosses(p) for p in deliveries(res, 0.3, 0.6))
    assert any(not crosses(p) for p in deliveries(res, 0.3, 0.6))
    assert any(crosses(p) for p in deliveries(res, 0.6))
    assert res.data.drop_reasons["partition"] > 0
    assert majority == ["n3", "n4", "n5"]


def test_journal_by_node_adds_up_to_the_network_totals():
    res = ping(seed=4, nodes=4, loss=0.3, duration=1.0)
    counts = journal_by_node(res.trace, res.data.names)
    messages = res.data.messages.values()
    assert sum(counts["delivered"].values()) == sum(m["delivered"] for m in messages)
    assert sum(counts["dropped"].values()) == sum(m["dropped"] for m in messages)
    later = journal_by_node(res.trace, res.data.names, since=0.5)
    assert all(later["delivered"][n] <= counts["delivered"][n] for n in counts[
        "delivered"])


def test_killed_echo_node_receives_nothing():
    cluster = echo_cluster(seed=0, nodes=3)
    cluster.run(0.5)
    cluster.kill("n2")
    before = len(cluster.sim.trace)
    cluster.run(0.5)
    window = journal_by_node(cluster.sim.trace[before:], cluster.names)
    assert window["delivered"]["n2"] == 0 and window["dropped"]["n2"] > 0
    assert window["delivered"]["n1"] > 0


def test_cluster_step_counts_the_step_alone_and_says_the_totals():
    cluster = echo_cluster(seed=2, nodes=4, loss=0.3)
    cluster.run(1.0)
    net = cluster.network
    delivered, dropped = net.messages_delivered, net.messages_dropped
    run = cluster_step(cluster, 0.5)
    assert cluster.now == pytest.approx(1.5) and run.end_time == cluster.now
    window = run.data.window
    assert sum(window["delivered"].values()) == net.messages_delivered - delivered > 0
    assert sum(window["dropped"].values()) == net.messages_dropped - dropped > 0
    assert run.data.headline == (f"delivered {net.messages_delivered} · "
                                 f"dropped {net.messages_dropped}")
    assert run.data.names == cluster.names and run.data.up == cluster.names
    with pytest.raises(ConfigError, match="seconds"):
        cluster_step(cluster, -1.0)


@pytest.mark.parametrize("name", list(TOUR_LATENCIES))
def test_sample_mean_is_within_the_confidence_interval_of_the_mean(name):
    n = 20_000
    shape = TOUR_LATENCIES[name]
    res = latency_samples(seed=9, samples=n)
    hist = res.metrics[name]
    assert hist.count == n
    half_width = 4 * math.sqrt(shape.variance / n)   # 4 standard errors
    assert abs(hist.mean - shape.mean) <= half_width + 1e-12, f"seed=9 {name}"


def test_latency_samples_are_deterministic_per_seed():
    assert (latency_samples(seed=1, samples=500).fingerprint
            == latency_samples(seed=1, samples=500).fingerprint)
    assert (latency_samples(seed=1, samples=500).fingerprint
            != latency_samples(seed=2, samples=500).fingerprint)


def test_halves_splits_minority_first():
    assert halves(["a", "b", "c", "d", "e"]) == (["a", "b"], ["c", "d", "e"])
    assert halves(["a", "b"]) == (["a"], ["b"])


@pytest.mark.parametrize("kwargs", [
    {"nodes": 1}, {"interval": 0.0}, {"duration": -1.0}, {"loss": 1.5},
    {"partition": (0.5, 0.2)}, {"partition": 0.3}, {"latency": "fast"},
])
def test_bad_arguments_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        ping(**kwargs)
