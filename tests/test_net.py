"""The network: latency, loss, duplication, FIFO and reordering, partitions."""

import math
import statistics

import pytest

from labkit import ConfigError, NetConfig, Network, Simulator, dist


class Sink:
    """An endpoint that logs (arrival time, message)."""

    def __init__(self, sim):
        self.sim, self.alive, self.got = sim, True, []

    def deliver(self, msg):
        self.got.append((self.sim.now, msg))


def network(names=("a", "b"), seed=1, **knobs):
    sim = Simulator(seed)
    net = Network(sim, NetConfig(**knobs))
    sinks = {}
    for name in names:
        sinks[name] = Sink(sim)
        net.attach(name, sinks[name])
    return sim, net, sinks


def binomial_bound(n, p, z=5.0):
    """Half-width of a z-sigma interval for a Binomial(n, p) count."""
    return z * math.sqrt(n * p * (1 - p))


def mean_bound(variance, n, z=5.0):
    """Half-width of a z-sigma interval for the mean of n i.i.d. draws."""
    return z * math.sqrt(variance / n)


def exchange(sim, net, pairs, spacing=1.0):
    """Send one message per (src, dst) pair, `spacing` seconds apart; return the
    send times by message id."""
    sent_at = {}
    for i, (src, dst) in enumerate(pairs):
        sim.schedule(i * spacing, lambda s=src, d=dst: sent_at.__setitem__(
            net.send(s, d, "m", {}).id, sim.now))
    sim.run()
    return sent_at


# -- latency ----------------------------------------------------------------------

def test_constant_latency_is_exact():
    sim, net, sinks = network(latency=0.025)
    sent_at = exchange(sim, net, [("a", "b")] * 20)
    assert [t - sent_at[m.id] for t, m in sinks["b"].got] == [pytest.approx(0.025)] * 20


@pytest.mark.parametrize("latency", [
    dist.uniform(0.01, 0.03), dist.exponential(0.02), dist.lognormal(0.01, 0.08),
    dist.bimodal(0.005, 0.1, 0.1)], ids=repr)
def test_latency_draws_follow_the_configured_distribution(latency):
    n = 4000
    sim, net, sinks = network(latency=latency)
    sent_at = exchange(sim, net, [("a", "b")] * n)     # 1 s apart: FIFO never waits
    delays = [t - sent_at[m.id] for t, m in sinks["b"].got]
    assert len(delays) == n and min(delays) >= 0
    assert abs(statistics.fmean(delays) - latency.mean) <= mean_bound(
        latency.variance, n), f"latency {latency}"


def test_per_link_override_changes_one_direction_only_until_cleared():
    sim, net, sinks = network(latency=0.01)
    net.set_link("a", "b", latency=0.5)
    sent_at = exchange(sim, net, [("a", "b"), ("b", "a")])
    net.clear_link("a", "b")
    later = exchange(sim, net, [("a", "b")])
    (t_ab, m_ab), (t_late, m_late) = sinks["b"].got
    ((t_ba, m_ba),) = sinks["a"].got
    assert t_ab - sent_at[m_ab.id] == pytest.approx(0.5)
    assert t_ba - sent_at[m_ba.id] == pytest.approx(0.01)
    assert t_late - later[m_late.id] == pytest.approx(0.01)


def test_set_link_merges_knobs_and_update_reaches_overridden_links():
    sim, net, sinks = network(latency=0.01)
    net.set_link("a", "b", latency=0.2)
    net.set_link("a", "b", duplicate=1.0)          # keeps the latency override
    net.update(loss=1.0)                           # default changes everywhere...
    exchange(sim, net, [("a", "b"), ("b", "a")])
    assert net.drop_reasons == {"loss": 2}         # ...including the override
    net.update(loss=0.0)
    start = sim.now
    exchange(sim, net, [("a", "b")])
    assert [t - start for t, _ in sinks["b"].got] == [pytest.approx(0.2)] * 2
    assert net.config.latency.mean == 0.01


def test_update_changes_knobs_mid_run_and_rejects_unknown_ones():
    sim, net, sinks = network(latency=0.01)
    net.update(latency=0.3)
    assert net.config.latency.mean == 0.3 and net.config.loss == 0.0
    with pytest.raises(ConfigError, match="unknown network knob 'jitter'"):
        net.update(jitter=0.1)


# -- loss and duplication ---------------------------------------------------------

@pytest.mark.parametrize("loss", [0.0, 0.1, 0.5, 1.0])
def test_loss_rate_is_binomial(loss):
    n = 5000
    sim, net, sinks = network(latency=0.001, loss=loss, seed=11)
    for _ in range(n):
        net.send("a", "b", "m", {})
    sim.run()
    lost = net.drop_reasons.get("loss", 0)
    assert abs(lost - n * loss) <= binomial_bound(n, loss)
    assert lost + len(sinks["b"].got) == n
    assert net.dropped == ({"m": lost} if lost else {})


def test_duplication_delivers_some_messages_twice():
    n, p = 5000, 0.2
    sim, net, sinks = network(latency=dist.exponential(0.01), duplicate=p, seed=5)
    for _ in range(n):
        net.send("a", "b", "m", {})
    sim.run()
    copies = {}
    for _, msg in sinks["b"].got:
        copies[msg.id] = copies.get(msg.id, 0) + 1
    assert len(copies) == n and set(copies.values()) <= {1, 2}
    twice = sum(1 for c in copies.values() if c == 2)
    assert twice == net.duplicated
    assert abs(twice - n * p) <= binomial_bound(n, p)
    assert net.messages_delivered == n + twice


# -- ordering ---------------------------------------------------------------------

def test_a_link_is_fifo_without_reorder_even_with_random_latency():
    sim, net, sinks = network(latency=dist.exponential(0.05), seed=3)
    ids = [net.send("a", "b", "m", {}).id for _ in range(300)]
    sim.run(0.01)
    ids += [net.send("a", "b", "m", {}).id for _ in range(300)]
    sim.run()
    got = [m.id for _, m in sinks["b"].got]
    assert got == ids
    times = [t for t, _ in sinks["b"].got]
    assert times == sorted(times)


def test_reorder_lets_later_messages_overtake():
    sim, net, sinks = network(latency=dist.exponential(0.05), reorder=0.3, seed=3)
    ids = [net.send("a", "b", "m", {}).id for _ in range(300)]
    sim.run()
    got = [m.id for _, m in sinks["b"].got]
    assert sorted(got) == ids
    overtaken = sum(1 for x, y in zip(got, got[1:], strict=False) if x > y)
    assert overtaken > 0


def test_fifo_holds_per_link_not_across_links():
    sim, net, sinks = network(names=("a", "b", "c"), latency=0.01)
    net.set_link("a", "c", latency=0.5)
    net.send("a", "c", "slow", {})
    net.send("b", "c", "fast", {})
    sim.run()
    assert [m.kind for _, m in sinks["c"].got] == ["fast", "slow"]


# -- partitions -------------------------------------------------------------------

NAMES = ("n1", "n2", "n3", "n4", "n5")


def reachable(net):
    """The set of directed pairs a message can cross right now."""
    return {(a, b) for a in NAMES for b in NAMES if a != b and not net.is_blocked(a, b)}


def connected(*groups):
    return {(a, b) for g in groups for a in g for b in g if a != b}


def test_partition_groups_are_symmetric_and_unlisted_nodes_form_one_group():
    sim, net, _ = network(names=NAMES)
    net.partition(["n1", "n2"], ["n3"])
    assert reachable(net) == connected(["n1", "n2"], ["n3"], ["n4", "n5"])
    assert net.describe_cuts() == "n1,n2 | n3 | n4,n5"


def test_a_new_partition_replaces_the_old_and_heal_restores_everything():
    sim, net, _ = network(names=NAMES)
    net.partition(["n1"], ["n2", "n3", "n4", "n5"])
    net.partition(["n1", "n2", "n3"])
    assert reachable(net) == connected(["n1", "n2", "n3"], ["n4", "n5"])
    net.heal()
    assert reachable(net) == connected(NAMES)
    assert net.describe_cuts() == "fully connected"


def test_partition_given_sets_is_described_in_sorted_order():
    sim, net, _ = network(names=NAMES)
    net.partition({"n3", "n1"}, frozenset({"n5", "n2"}))
    assert net.describe_cuts() == "n1,n3 | n2,n5 | n4"


def test_isolate_and_rejoin_leave_other_cuts_alone():
    sim, net, _ = network(names=NAMES)
    net.partition(["n1", "n2"])
    net.isolate("n5")
    net.isolate("n5")                              # idempotent
    assert reachable(net) == connected(["n1", "n2"], ["n3", "n4"])
    assert net.describe_cuts() == "n1,n2 | n3,n4,n5; isolated: n5"
    net.rejoin("n5")
    net.rejoin("n5")
    assert reachable(net) == connected(["n1", "n2"], ["n3", "n4", "n5"])


def test_block_cuts_one_direction_only():
    sim, net, sinks = network(names=NAMES)
    net.block("n1", "n2")
    assert reachable(net) == connected(NAMES) - {("n1", "n2")}
    assert net.describe_cuts() == "blocked: n1->n2"
    net.send("n1", "n2", "m", {})
    net.send("n2", "n1", "m", {})
    sim.run()
    assert net.drop_reasons == {"partition": 1}
    assert len(sinks["n1"].got) == 1 and sinks["n2"].got == []


def test_a_message_in_flight_is_dropped_when_its_link_is_cut():
    sim, net, sinks = network(latency=0.1)
    net.send("a", "b", "m", {})
    net.send("b", "a", "m", {})
    sim.run(0.05)
    net.block("a", "b")
    sim.run()
    assert sinks["b"].got == [] and len(sinks["a"].got) == 1
    assert net.drop_reasons == {"partition": 1}
    assert [r.note for r in sim.trace if r.event == "drop"] == ["partition"]


def test_a_message_to_a_down_node_is_dropped_as_down():
    sim, net, sinks = network(latency=0.1)
    net.send("a", "b", "m", {})
    sim.run(0.05)
    sinks["b"].alive = False
    sim.run()
    assert sinks["b"].got == [] and net.drop_reasons == {"down": 1}


# -- journal ----------------------------------------------------------------------

def test_journal_counts_each_kind_and_matches_the_trace():
    sim, net, sinks = network(names=("a", "b", "c"), latency=0.01)
    net.block("a", "c")
    for _ in range(3):
        net.send("a", "b", "vote", {})
    for _ in range(2):
        net.send("a", "c", "append", {})
    net.send("b", "c", "append", {})
    sim.run()
    assert net.counts() == {
        "append": {"sent": 3, "delivered": 1, "dropped": 2},
        "vote": {"sent": 3, "delivered": 3, "dropped": 0}}
    assert net.messages_sent == 6 and net.messages_delivered == 4
    assert net.messages_dropped == 2
    events = [r.event for r in sim.trace]
    assert (events.count("send"), events.count("deliver"), events.count("drop")) == (
        6, 4, 2)


def test_message_body_reads_as_attributes_and_names_missing_fields():
    sim, net, sinks = network()
    net.send("a", "b", "vote", {"term": 3})
    sim.run()
    ((_, msg),) = sinks["b"].got
    assert (msg.src, msg.dst, msg.kind, msg.term) == ("a", "b", "vote", 3)
    with pytest.raises(AttributeError, match="no field 'index'"):
        _ = msg.index


def test_a_delivered_body_cannot_be_changed_so_a_duplicate_arrives_intact():
    sim, net, sinks = network(duplicate=1.0)    # every message arrives twice
    net.send("a", "b", "vote", {"term": 3})
    sim.run()
    first, second = (msg for _, msg in sinks["b"].got)
    assert first is second                       # one Message, delivered twice
    with pytest.raises(TypeError):
        first.body["term"] = 4
    with pytest.raises(TypeError):
        del first.body["term"]
    with pytest.raises(AttributeError):
        first.body.update(term=4)
    for change in (lambda: setattr(first, "term", 4),
                   lambda: setattr(first, "round", 1),     # a field it has not
                   lambda: delattr(first, "term"),
                   lambda: setattr(first, "kind", "vote_ok")):
        with pytest.raises(AttributeError, match="read-only"):
            change()
    assert second.term == 3 and dict(second.body) == {"term": 3}
    assert second.kind == "vote" and not hasattr(second, "round")


# -- the fast path --------------------------------------------------------------
# With no partition, override, loss, duplicates, reordering or adversary, `send`
# puts the delivery on the agenda itself. A per-link override that changes
# nothing sends the same traffic down the general path (`_launch`, `sim.at`).

def traffic(latency, general):
    """Who got what when: 60 sends, three at each instant, plus a tick due at
    exactly each constant-latency arrival time, scheduled before the sends, and
    one tock due at the first arrival time, scheduled after the first sends
    (ties go to the earlier-scheduled event)."""
    sim, net, sinks = network(("a", "b", "c"), seed=3, latency=latency)
    if general:
        net.set_link("c", "a", loss=0.0)            # forces the general path
    log = []
    for sink in sinks.values():
        sink.deliver = lambda msg: log.append((sim.now, msg.dst, msg.body["i"]))
    for k in range(20):
        sim.at(k * 0.001 + 0.002, lambda k=k: log.append((sim.now, "tick", k)))
    for i in range(60):
        sim.schedule(i // 3 * 0.001, net.send, "ab"[i % 2], "bc"[i % 3 // 2], "m",
                     {"i": i})
    sim.schedule(0.0, sim.at, 0.002, lambda: log.append((sim.now, "tock", 0)))
    sim.run()
    return log


@pytest.mark.parametrize("latency", [0.002, dist.exponential(0.003),
                                     dist.uniform(0.001, 0.004)])
def test_the_fast_path_delivers_exactly_like_the_general_path(latency):
    fast, general = traffic(latency, False), traffic(latency, True)
    assert len(fast) == 81 and fast == general


def test_a_delivery_ties_with_other_events_in_the_order_they_were_scheduled():
    at_first_arrival = [what for now, what, _ in traffic(0.002, False)
                        if now == 0.002]
    assert at_first_arrival == ["tick", "b", "b", "c", "tock"]   # sends 0, 1, 2


def test_a_message_on_the_fast_path_is_read_only_too():
    sim, net, sinks = network()
    msg = net.send("a", "b", "vote", {"term": 3})
    with pytest.raises(TypeError):
        msg.body["term"] = 4
    with pytest.raises(AttributeError):
        msg.term = 4
    sim.run()
    assert sinks["b"].got == [(0.001, msg)] and msg.term == 3


class Backwards(dist.Distribution):
    """A broken latency: every draw is negative."""

    mean = second_moment = 1.0

    def sample(self, rng):
        return -1.0


@pytest.mark.parametrize("general", [False, True])
def test_a_negative_latency_draw_is_refused_on_either_path(general):
    sim, net, _ = network(latency=Backwards())
    if general:
        net.adversary = lambda msg: 0.0
    sim.schedule(1.0, net.send, "a", "b", "m", {})    # later than the FIFO clock
    with pytest.raises(ConfigError, match="in the past"):
        sim.run()


def test_the_adversary_must_be_a_function_or_none():
    _, net, _ = network()
    with pytest.raises(ConfigError, match="adversary"):
        net.adversary = 0.5
    net.adversary = lambda msg: 0.5
    net.adversary = None
    assert net.adversary is None


# -- bad input --------------------------------------------------------------------

def test_unknown_names_are_rejected_with_the_valid_names():
    sim, net, _ = network(names=("a", "b"))
    for verb, args in [(net.partition, (["a", "zz"],)), (net.isolate, ("zz",)),
                       (net.block, ("a", "zz")), (net.set_link, ("zz", "a")),
                       (net.send, ("a", "zz", "m", {}))]:
        with pytest.raises(ConfigError, match=r"'zz'.*\['a', 'b'\]"):
            verb(*args)


def test_attach_rejects_duplicate_and_empty_names():
    sim, net, _ = network(names=("a",))
    with pytest.raises(ConfigError, match="already attached"):
        net.attach("a", Sink(sim))
    with pytest.raises(ConfigError, match="node name"):
        net.attach("", Sink(sim))


@pytest.mark.parametrize("then", [0.001, dist.uniform(0.0, 0.002)])
def test_a_link_stays_fifo_when_a_constant_latency_changes_mid_flight(then):
    # Constant latency sends skip the FIFO clock; a change of latency must still
    # see the message in flight: the later message may not overtake it.
    sim, net, sinks = network(latency=0.010)
    net.send("a", "b", "m", {"i": 1})
    sim.run(0.001)
    net.update(latency=then)
    net.send("a", "b", "m", {"i": 2})
    net.send("b", "a", "m", {"i": 3})       # another link: not held back
    sim.run()
    got = [(t, m.body["i"]) for t, m in sinks["b"].got]
    assert got == [(0.010, 1), (0.010, 2)]
    assert sinks["a"].got[0][0] < 0.0035
