"""Invariants of the core under random faults, found by hypothesis (derandomized,
so CI sees the same examples every run)."""

import operator

import pytest
from faults import PingNode, random_faults
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import Cluster, NetConfig, TraceRecord, dist


class WatchedNode(PingNode):
    """A PingNode that writes every handled message and armed timer to the trace,
    so the checks below read only the trace, not the node's own `alive` flag."""

    def on_ping(self, msg):
        self.sim.record("handle", msg.src, self.name, msg.kind, msg.id)
        super().on_ping(msg)

    def on_ping_ok(self, msg):
        self.sim.record("handle", msg.src, self.name, msg.kind, msg.id)
        super().on_ping_ok(msg)

    def set_timer(self, name, delay, fn, *args):
        self.sim.record("arm", self.name, self.name, name)
        super().set_timer(name, delay, fn, *args)


LATENCIES = {
    "constant": 0.01,
    "uniform": dist.uniform(0.001, 0.05),
    "exponential": dist.exponential(0.02),
    "lognormal": dist.lognormal(0.01, 0.2),
}

scenarios = st.fixed_dictionaries({
    "seed": st.integers(min_value=0, max_value=10**6),
    "latency": st.sampled_from(sorted(LATENCIES)),
    "loss": st.sampled_from([0.0, 0.05, 0.3]),
    "duplicate": st.sampled_from([0.0, 0.1, 0.5]),
    "reorder": st.sampled_from([0.0, 0.2, 0.8]),
    "size": st.integers(min_value=2, max_value=5),
    "duration": st.floats(min_value=0.5, max_value=3.0),
})

PROPERTY = settings(max_examples=40, derandomize=True, database=None, deadline=None)


def build(s):
    net = NetConfig(latency=LATENCIES[s["latency"]], loss=s["loss"],
                    duplicate=s["duplicate"], reorder=s["reorder"])
    return Cluster(s["size"], seed=s["seed"], net=net, node_factory=WatchedNode)


def in_flight(network):
    """Message copies on the agenda: events whose callback belongs to the network
    (the network schedules nothing else)."""
    sim = network.sim
    return sum(1 for entry in sim._agenda
               if getattr(entry[2], "__self__", None) is network
               and entry[1] not in sim._cancelled)


def conserved(network):
    """sent + duplicated == delivered + dropped + in flight, with the numbers."""
    left = network.messages_sent + network.duplicated
    right = network.messages_delivered + network.messages_dropped + in_flight(network)
    return left == right, (left, right, network.counts(), network.duplicated)


@PROPERTY
@given(s=scenarios)
def test_messages_are_conserved_under_random_faults(s):
    c = build(s)
    for part in range(3):
        log = random_faults(c, s["duration"], s["seed"] * 3 + part, mean_gap=0.2)
        ok, numbers = conserved(c.network)
        assert ok, (s, str(log), numbers)
    for name in c.names:                 # silence every sender, then drain
        c.kill(name)
    c.run(1000.0)
    assert in_flight(c.network) == 0
    ok, numbers = conserved(c.network)
    assert ok, (s, numbers)
    events = [r.event for r in c.sim.trace]
    assert events.count("send") == c.network.messages_sent
    assert events.count("deliver") == c.network.messages_delivered
    assert events.count("drop") == c.network.messages_dropped


def check_trace_against_faults(trace):
    """Replay the trace: no node handles a message, receives a delivery or fires a
    timer while it is down, and no timer armed before a kill ever fires."""
    down, kills, armed = set(), {}, {}
    for i, r in enumerate(trace):
        if r.event == "fault" and r.kind == "kill":
            down.add(r.src)
            kills[r.src] = i
        elif r.event == "fault" and r.kind == "restart":
            down.discard(r.src)
        elif r.event == "arm":
            armed[(r.src, r.kind)] = i
        elif r.event in ("deliver", "handle"):
            assert r.dst not in down, f"{r.dst} got {r} while down"
        elif r.event == "timer":
            assert r.src not in down, f"{r.src} fired {r} while down"
            assert kills.get(r.src, -1) < armed[(r.src, r.kind)], (
                f"{r} was armed before {r.src} was killed")


@PROPERTY
@given(s=scenarios)
def test_down_nodes_never_handle_messages_or_fire_timers(s):
    c = build(s)
    log = random_faults(c, s["duration"] * 3, s["seed"], mean_gap=0.1)
    try:
        check_trace_against_faults(c.sim.trace)
    except AssertionError as exc:
        exc.add_note(f"{s}; {log}")
        raise


def test_the_trace_check_sees_restarted_nodes_at_work():
    # Not vacuous: restarted nodes handle messages and fire timers in these runs.
    after_restart = {"handle": 0, "timer": 0}
    for seed in range(5):
        c = Cluster(5, seed=seed, net=NetConfig(latency=0.01), node_factory=WatchedNode)
        random_faults(c, 3.0, seed, mean_gap=0.1)
        check_trace_against_faults(c.sim.trace)
        restarted = set()
        for r in c.sim.trace:
            if r.event == "fault" and r.kind == "restart":
                restarted.add(r.src)
            elif r.event == "handle" and r.dst in restarted:
                after_restart["handle"] += 1
            elif r.event == "timer" and r.src in restarted:
                after_restart["timer"] += 1
    assert min(after_restart.values()) > 0, after_restart


@PROPERTY
@given(s=scenarios)
def test_same_seed_same_fingerprint(s):
    prints = []
    for _ in range(2):
        c = build(s)
        random_faults(c, s["duration"], s["seed"])
        prints.append(c.result("ping", **s).fingerprint)
    assert prints[0] == prints[1], s


def test_the_checker_catches_a_timer_that_fires_after_a_kill():
    # The trace check above must be able to fail: feed it a forged trace.
    forged = [TraceRecord(0.0, "arm", "n1", "n1", "tick"),
              TraceRecord(0.1, "fault", "n1", "n1", "kill"),
              TraceRecord(0.2, "fault", "n1", "n1", "restart"),
              TraceRecord(0.3, "timer", "n1", "n1", "tick")]
    try:
        check_trace_against_faults(forged)
    except AssertionError as exc:
        assert "armed before n1 was killed" in str(exc)
    else:
        raise AssertionError("the checker missed a stale timer")


# -- the fault helper itself ------------------------------------------------------

def test_random_faults_is_seeded_and_advances_exactly_the_duration():
    logs = []
    for seed in (4, 4, 5):
        c = Cluster(4, seed=0)
        c.run(1.0)
        logs.append(random_faults(c, 5.0, seed, mean_gap=0.2))
        assert c.now == pytest.approx(6.0)
    assert logs[0].events == logs[1].events != logs[2].events
    assert len(logs[0].events) > 5
    assert {verb for _, verb, _ in logs[0].events} >= {"kill", "restart", "partition"}


def test_random_faults_keeps_at_most_max_down_nodes_dead():
    c = Cluster(5, seed=0)
    log = random_faults(c, 20.0, 9, mean_gap=0.05, max_down=2)
    dead, worst = set(), 0
    for r in c.sim.trace:
        if r.event == "fault" and r.kind in ("kill", "restart"):
            (dead.add if r.kind == "kill" else dead.discard)(r.src)
            worst = max(worst, len(dead))
    assert worst == 2, log


def test_an_error_during_random_faults_carries_the_seed():
    c = Cluster(3, seed=0)
    c.sim.schedule(0.7, operator.truediv, 1, 0)
    with pytest.raises(ZeroDivisionError) as caught:
        random_faults(c, 2.0, 31, mean_gap=0.1)
    assert any("random_faults(seed=31)" in note for note in caught.value.__notes__)
