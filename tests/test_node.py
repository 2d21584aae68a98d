"""Nodes and the Cluster facade: handlers, RPC, timers, crashes, fault verbs."""

import random

import pytest

from labkit import Cluster, ConfigError, NetConfig, Node, RequestTimeout, Simulator
from labkit.errors import UnknownMessage


class Echo(Node):
    """Answers `echo` at once and `slow` after `delay` seconds; logs everything."""

    delay = 0.5

    def reset(self):
        self.log = []                  # volatile: rebuilt on restart
        self.resets = getattr(self, "resets", 0) + 1

    def on_echo(self, msg):
        self.log.append(("echo", msg.src, msg.text))
        self.reply(msg, text=msg.text.upper())

    def on_slow(self, msg):
        self.set_timer(f"answer{msg.rpc}", self.delay, self.reply, msg)

    def on_note(self, msg):
        self.log.append(("note", msg.src, self.sim.now))


def cluster(size=3, latency=0.01, **kw):
    return Cluster(size, seed=1, net=NetConfig(latency=latency), node_factory=Echo,
                   **kw)


# -- messages ---------------------------------------------------------------------

def test_messages_go_to_the_on_kind_handler():
    c = cluster()
    c.node("n1").send("n2", "note")
    c.node("n3").send("n2", "note")
    c.run(1.0)
    assert c.node("n2").log == [("note", "n1", 0.01), ("note", "n3", 0.01)]
    assert c.node("n1").log == [] and c.node("n3").log == []


def test_an_unknown_kind_is_a_loud_error_naming_node_and_kind():
    c = cluster()
    c.node("n1").send("n2", "gossip")
    with pytest.raises(UnknownMessage, match=r"n2 got a 'gossip' message from n1.*"
                                             r"on_gossip"):
        c.run(1.0)


def test_call_resolves_with_the_reply_after_a_round_trip():
    c = cluster(latency=0.02)
    reply = c.node("n1").call("n2", "echo", timeout=1.0, text="hi")
    c.run(0.039)
    assert not reply.done
    c.run(0.002)
    assert reply.done and reply.value.text == "HI" and reply.value.src == "n2"
    assert c.node("n2").log == [("echo", "n1", "hi")]


def test_call_fails_with_request_timeout_when_no_reply_comes():
    c = cluster()
    c.partition(["n1"], ["n2", "n3"])
    reply = c.node("n1").call("n2", "echo", timeout=0.3, text="hi")
    c.run(0.3)
    assert not reply.done               # due exactly at 0.3: next run
    c.run(0.001)
    assert reply.failed and isinstance(reply.error, RequestTimeout)
    assert "no reply to 'echo' from n2 within 0.3s" in str(reply.error)


def test_a_late_reply_is_ignored_not_handled():
    c = cluster()                       # Echo has no on_slow_ok handler
    reply = c.node("n1").call("n2", "slow", timeout=0.2)
    c.run(2.0)
    assert isinstance(reply.error, RequestTimeout)
    assert c.network.delivered == {"slow": 1, "slow_ok": 1}


def test_a_process_can_wait_for_calls_and_catch_timeouts():
    c = cluster()
    n1 = c.node("n1")
    outcome = []

    def client():
        answer = yield n1.call("n2", "echo", timeout=1.0, text="a")
        outcome.append(answer.text)
        try:
            yield n1.call("n3", "slow", timeout=0.1)
        except RequestTimeout:
            outcome.append(("timeout", c.now))

    n1.spawn(client())
    c.run(5.0)
    assert outcome == ["A", ("timeout", pytest.approx(0.12))]


# -- timers -----------------------------------------------------------------------

def test_a_timer_fires_once_and_setting_it_again_replaces_it():
    c = cluster()
    n1, fired = c.node("n1"), []
    n1.set_timer("t", 1.0, fired.append, "first")
    c.run(0.5)
    n1.set_timer("t", 1.0, fired.append, "second")
    assert n1.has_timer("t")
    c.run(5.0)
    assert fired == ["second"] and not n1.has_timer("t")
    assert [r.time for r in c.sim.trace if r.event == "timer"] == [1.5]


def test_cancel_timer_disarms_it():
    c = cluster()
    n1, fired = c.node("n1"), []
    n1.set_timer("t", 1.0, fired.append, "x")
    n1.cancel_timer("t")
    n1.cancel_timer("t")
    c.run(5.0)
    assert fired == [] and not n1.has_timer("t")


def test_timers_never_fire_after_kill_even_if_reset_before_it():
    c = cluster()
    n1, fired = c.node("n1"), []
    n1.set_timer("a", 1.0, fired.append, "a")
    n1.set_timer("b", 0.5, fired.append, "b")
    c.run(0.2)
    n1.set_timer("a", 0.5, fired.append, "a again")     # re-set just before the kill
    c.kill("n1")
    c.run(0.1)
    c.restart("n1")
    c.run(5.0)
    assert fired == [] and not n1.has_timer("a")


class EagerTimers:
    """The timers of a node as the plain agenda gives them, to compare with:
    every set cancels the old event and schedules a new one; nothing fires
    while the node is down; a kill cancels them all."""

    def __init__(self, sim, fired):
        self.sim, self.fired, self.events, self.alive = sim, fired, {}, True

    def set(self, name, delay):
        self.cancel(name)
        self.events[name] = self.sim.schedule(delay, self.fire, name)

    def cancel(self, name):
        if name in self.events:
            self.sim.cancel(self.events.pop(name))

    def fire(self, name):
        del self.events[name]
        if self.alive:
            self.fired.append((self.sim.now, name))

    def kill(self):
        for name in list(self.events):
            self.cancel(name)
        self.alive = False


@pytest.mark.parametrize("seed", range(20))
def test_timers_fire_when_and_in_the_order_a_fresh_schedule_would(seed):
    # A timer re-armed later keeps its agenda entry and re-queues itself when
    # it pops; it must fire at the same moment, and among events due at the
    # same moment in the same place, as cancel-and-schedule would make it.
    # Times are multiples of 0.25 s, so ties between timers and other events
    # (scheduled before and after each re-arm) are everywhere.
    rng = random.Random(seed)
    c, mine = cluster(), []
    node = c.node("n1")
    sim, theirs = Simulator(0), []
    eager = EagerTimers(sim, theirs)
    for step in range(1, 120):
        now = step * 0.25
        c.sim.run(until=now)
        sim.run(until=now)
        action, name = rng.random(), rng.choice("abc")
        delay = rng.choice((0.0, 0.25, 0.5, 1.0, 2.0))
        if action < 0.55:
            node.set_timer(name, delay, lambda n=name: mine.append((c.sim.now, n)))
            eager.set(name, delay)
        elif action < 0.7:
            node.cancel_timer(name)
            eager.cancel(name)
        elif action < 0.9:      # another event, due with the timers
            c.sim.schedule(delay, mine.append, (now + delay, "event"))
            sim.schedule(delay, theirs.append, (now + delay, "event"))
        elif node.alive:
            c.kill("n1")
            eager.kill()
        else:
            c.restart("n1")
            eager.alive = True
    c.run(5.0)
    sim.run(5.0)
    assert mine == theirs and len(mine) > 20
    assert c.sim.events_processed == len(mine)   # a re-queue is no event


def test_disk_survives_a_crash_and_volatile_state_is_rebuilt_by_reset():
    c = cluster()
    n2 = c.node("n2")
    n2.disk["term"] = 7
    c.node("n1").send("n2", "note")
    c.run(1.0)
    assert len(n2.log) == 1 and n2.resets == 1
    c.kill("n2")
    c.restart("n2")
    assert n2.disk == {"term": 7} and n2.log == [] and n2.resets == 2


def test_a_spawned_process_dies_with_its_node_and_stays_dead_after_restart():
    c = cluster()
    n1, ticks = c.node("n1"), []

    def ticker():
        while True:
            yield 0.1
            ticks.append(round(c.now, 6))

    n1.spawn(ticker())
    c.run(0.35)
    c.kill("n1")
    c.run(0.5)
    c.restart("n1")
    c.run(1.0)
    assert ticks == [0.1, 0.2, 0.3]


def test_a_killed_node_receives_nothing_and_pending_calls_never_resolve():
    c = cluster(latency=0.1)
    call = c.node("n1").call("n2", "echo", timeout=0.5, text="x")
    c.run(0.15)
    c.node("n3").send("n1", "note")
    c.kill("n1")                         # the reply and the note are on their way
    c.run(2.0)
    assert not call.done
    assert c.network.drop_reasons == {"down": 2}


# -- the cluster facade -----------------------------------------------------------

def test_names_and_custom_names():
    assert cluster(4).names == ["n1", "n2", "n3", "n4"]
    named = Cluster(names=["x", "y"], node_factory=Echo)
    assert named.names == ["x", "y"] and named.node("x").peers == ["y"]


def test_fault_verbs_are_idempotent():
    c = cluster()
    for verb in (c.kill, c.kill, c.restart, c.restart, c.disconnect, c.disconnect,
                 c.connect, c.connect):
        verb("n2")
    c.heal()
    c.heal()
    faults = [(r.src, r.kind) for r in c.sim.trace if r.event == "fault"]
    assert [f for f in faults if f[1] in ("kill", "restart")] == [
        ("n2", "kill"), ("n2", "restart")]
    assert c.node("n2").resets == 2                   # one restart, one reset
    assert c.up() == c.names and c.network.describe_cuts() == "fully connected"


def test_disconnect_isolates_and_connect_restores():
    c = cluster()
    c.disconnect("n1")
    c.node("n1").send("n2", "note")
    c.node("n2").send("n3", "note")
    c.run(1.0)
    c.connect("n1")
    c.node("n1").send("n2", "note")
    c.run(1.0)
    assert [src for _, src, _ in c.node("n2").log] == ["n1"]
    assert len(c.node("n3").log) == 1
    assert c.network.drop_reasons == {"partition": 1}


def test_partition_and_heal_through_the_facade():
    c = cluster(4)
    c.partition(["n1", "n2"], ["n3", "n4"])
    c.node("n1").send("n3", "note")
    c.node("n1").send("n2", "note")
    c.run(1.0)
    c.heal()
    c.node("n1").send("n3", "note")
    c.run(1.0)
    assert len(c.node("n2").log) == 1 and len(c.node("n3").log) == 1
    notes = [r.note for r in c.sim.trace if r.kind == "partition"]
    assert notes == ["n1,n2 | n3,n4"]


def test_killing_every_node_is_allowed_and_messages_are_dropped_as_down():
    c = cluster(latency=0.1)
    for src in c.names:
        for dst in c.node(src).peers:
            c.node(src).send(dst, "note")
    c.run(0.05)
    for name in c.names:
        c.kill(name)
    c.run(1.0)
    assert c.up() == [] and c.network.drop_reasons == {"down": 6}
    assert all(not c.is_up(n) for n in c.names)


def test_result_has_message_counts_and_liveness():
    c = cluster()
    c.node("n1").call("n2", "echo", timeout=1.0, text="x")
    c.node("n1").send("n3", "note")
    c.kill("n3")
    c.run(1.0)
    res = c.result("demo", knob=1)
    assert res.data["messages"] == {
        "echo": {"sent": 1, "delivered": 1, "dropped": 0},
        "echo_ok": {"sent": 1, "delivered": 1, "dropped": 0},
        "note": {"sent": 1, "delivered": 0, "dropped": 1}}
    assert res.data["up"] == ["n1", "n2"] and c.messages_sent == 3
    assert (res.scenario, res.params, res.seed, res.end_time) == (
        "demo", {"knob": 1}, 1, 1.0)


@pytest.mark.parametrize("verb", ["kill", "restart", "disconnect", "connect",
                                  "is_up", "node"])
def test_unknown_node_names_raise_config_error_listing_valid_names(verb):
    c = cluster()
    with pytest.raises(ConfigError, match=r"'n9'.*\['n1', 'n2', 'n3'\]"):
        getattr(c, verb)("n9")
    with pytest.raises(ConfigError, match=r"'n9'.*\['n1', 'n2', 'n3'\]"):
        c.partition(["n1"], ["n9"])


class Answers(Node):
    """Handles `ask_ok` itself (plain replies that answer no call) and calls."""

    def reset(self):
        self.seen = []

    def on_ask(self, msg):
        self.reply(msg, n=msg.n)

    def on_ask_ok(self, msg):
        self.seen.append(msg.n)


def test_a_reply_kind_answers_calls_first_and_else_goes_to_its_handler():
    # One handler table per kind: `ask_ok` both answers n1's call (rpc set, so
    # the handler must not see it) and reaches on_ask_ok when sent plainly.
    c = Cluster(2, seed=1, net=NetConfig(latency=0.01), node_factory=Answers)
    n1 = c.node("n1")
    reply = n1.call("n2", "ask", timeout=1.0, n=1)
    n1.send("n2", "ask", n=2)
    c.run(1.0)
    assert reply.value.n == 1 and n1.seen == [2]
    n1.send("n2", "tell_ok", n=3)           # a reply kind with no handler
    with pytest.raises(UnknownMessage, match=r"n2 got a 'tell_ok' message from n1"):
        c.run(1.0)


def test_a_reply_kind_answers_calls_even_after_plain_replies_came_first():
    # A node caches the handler of a reply kind it has not called as on_<kind>
    # alone; its first call of the kind must bring the check for answers back.
    c = Cluster(2, seed=1, net=NetConfig(latency=0.01), node_factory=Answers)
    n1 = c.node("n1")
    n1.send("n2", "ask", n=1)
    c.run(1.0)
    reply = n1.call("n2", "ask", timeout=1.0, n=2)
    n1.send("n2", "ask", n=3)
    c.run(1.0)
    assert reply.value.n == 2 and n1.seen == [1, 3]
