"""Figures show their input: every number drawn is checked against the data it
came from (the histogram's values, the run's trace), recounted independently."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from labkit import plot
from labkit.errors import ConfigError
from labkit.metrics import Histogram, TimeSeries
from labkit.node import Cluster, Node
from labkit.scenarios import cluster_result, echo_cluster, latency_samples, ping


def segments(trace):
    """(x0, x1, y0, y1) of each None-separated segment of a line trace."""
    xs, ys = list(trace.x), list(trace.y)
    return [(xs[i], xs[i + 1], ys[i], ys[i + 1]) for i in range(0, len(xs), 3)]


def by_name(fig):
    return {t.name: t for t in fig.data if t.name}


@pytest.fixture(scope="module")
def lossy():
    return ping(seed=1, nodes=3, loss=0.25, duration=0.6, partition=(0.2, 0.4))


def test_cdf_is_monotone_ends_at_one_and_at_the_maximum():
    samples = latency_samples(seed=3, samples=5000)
    hists = {name: samples.metrics[name] for name in samples.data.names}
    fig = plot.latency_cdf(hists, points=100)
    for trace in fig.data:
        hist = hists[trace.name]
        assert trace.y[-1] == 1.0
        assert len(trace.x) <= 100
        assert list(trace.x) == sorted(trace.x) and list(trace.y) == sorted(trace.y)
        assert trace.x[-1] == pytest.approx(hist.max * 1000, abs=1e-4)


def test_cdf_of_a_small_histogram_steps_by_one_over_n_through_every_value():
    hist = Histogram("h", [0.003, 0.001, 0.002, 0.002])
    trace = plot.latency_cdf({"h": hist}, unit="s").data[0]
    assert list(trace.x) == [0.001, 0.002, 0.002, 0.003]
    assert list(trace.y) == [0.25, 0.5, 0.75, 1.0]


def test_cdf_accepts_results_and_log_axis(lossy):
    fig = plot.latency_cdf({"lossy": lossy}, metric="rtt", log_x=True)
    assert fig.layout.xaxis.type == "log"
    assert fig.data[0].y[-1] == 1.0


def test_histogram_bars_hold_the_share_of_values_in_range():
    samples = latency_samples(seed=2, samples=4000)
    hists = {name: samples.metrics[name] for name in samples.data.names}
    fig = plot.latency_hist(hists, bins=30, upto=99)
    top = max(h.percentile(99) for h in hists.values())
    assert [t.name for t in fig.data] == list(hists)
    for trace in fig.data:
        values = hists[trace.name].values
        assert len(trace.y) == 30
        assert sum(trace.y) == pytest.approx(np.mean(values <= top), abs=1e-3)
    constant = by_name(fig)["constant"]
    assert max(constant.y) == 1.0 and sorted(constant.y)[-2] == 0.0


def test_sequence_diagram_draws_one_arrow_per_delivery_and_one_x_per_drop(lossy):
    fig = plot.sequence_diagram(lossy)
    events = Counter((r.event, r.kind) for r in lossy.trace)
    traces = by_name(fig)
    for kind in ("ping", "pong"):
        assert len(segments(traces[kind])) == events["deliver", kind]
    drops = sum(n for (event, _), n in events.items() if event == "drop")
    assert drops > 0 and len(traces["dropped"].x) == drops
    assert len(traces["timer"].x) == sum(n for (e, _), n in events.items()
                                         if e == "timer")
    assert [a.text for a in fig.layout.annotations] == ["partition", "heal"]


def test_sequence_diagram_arrows_join_send_and_delivery(lossy):
    sent = {r.msg: r for r in lossy.trace if r.event == "send"}
    rows = {name: i for i, name in enumerate(lossy.data.names)}
    expected = sorted((round(sent[r.msg].time, 6), round(r.time, 6),
                       rows[r.src], rows[r.dst])
                      for r in lossy.trace if r.event == "deliver")
    fig = plot.sequence_diagram(lossy)
    drawn = sorted(s for kind in ("ping", "pong") for s in segments(by_name(fig)[kind]))
    assert drawn == expected


def test_message_dropped_on_arrival_is_marked_on_the_receivers_line():
    cluster = echo_cluster(seed=0, nodes=2, latency=0.05, interval=0.5)
    cluster.run(0.6)
    cluster.kill("n2")
    cluster.run(1.0)
    res = cluster_result(cluster, "kill demo")
    fig = plot.sequence_diagram(res)
    drops = [r for r in res.trace if r.event == "drop"]
    assert drops and all(r.note == "down" and r.dst == "n2" for r in drops)
    assert set(by_name(fig)["dropped"].y) == {1}      # n2's row
    assert list(by_name(fig)["fault"].hovertext) == ["n2 fault kill at 0.6000 s"]


def test_sequence_diagram_until_kinds_and_cap(lossy):
    early = plot.sequence_diagram(lossy, until=0.2, kinds=["ping"])
    names = {t.name for t in early.data}
    assert "pong" not in names
    assert all(x is None or x <= 0.2 for t in early.data for x in t.x)
    capped = plot.sequence_diagram(lossy, max_messages=5)
    total = sum(1 for r in lossy.trace if r.event == "send")
    assert f"first 5 of {total} messages" in capped.layout.title.text
    shown = sum(len(segments(t)) for t in capped.data if t.name in ("ping", "pong"))
    assert 0 < shown <= 5


def test_topology_colours_nodes_and_dashes_cut_links():
    names = ["n1", "n2", "n3", "n4", "n5"]
    fig = plot.topology(names, up=["n2", "n3", "n4", "n5"],
                        cuts=[("n1", "n2"), ("n3", "n1")])
    nodes = by_name(fig)["nodes"]
    assert list(nodes.text) == names
    assert list(nodes.marker.color) == [plot.DOWN] + [plot.UP] * 4
    for x, y in zip(nodes.x, nodes.y, strict=True):
        assert math.hypot(x, y) == pytest.approx(1.0, abs=1e-3)
    cut, links = by_name(fig)["cut link"], by_name(fig)["link"]
    assert cut.line.dash == "dash" and cut.line.color == plot.CUT
    assert len(segments(cut)) == 2 and len(segments(links)) == 10 - 2
    assert fig.to_json() == plot.topology(names, names[1:], [("n1", "n2"),
                                                            ("n3", "n1")]).to_json()


def test_bars_and_timeseries_show_their_numbers():
    fig = plot.bars({"delivered": {"n1": 3, "n2": 5}, "dropped": {"n1": 1, "n2": 0}})
    assert [list(t.x) for t in fig.data] == [["n1", "n2"], ["n1", "n2"]]
    assert [list(t.y) for t in fig.data] == [[3, 5], [1, 0]]
    series = TimeSeries("queue")
    for t, v in [(0.0, 1), (0.5, 3), (1.0, 2)]:
        series.add(t, v)
    line = plot.timeseries({"queue": series}).data[0]
    assert list(line.x) == [0.0, 0.5, 1.0] and list(line.y) == [1, 3, 2]


def test_figures_are_reproducible_and_carry_no_random_ids(lossy):
    again = ping(seed=1, nodes=3, loss=0.25, duration=0.6, partition=(0.2, 0.4))
    one, two = plot.sequence_diagram(lossy).to_json(), plot.sequence_diagram(
        again).to_json()
    assert one == two and '"uid"' not in one


def test_sequence_diagram_orders_nodes_by_first_appearance_without_names():
    cluster = Cluster(names=["b", "a"])
    cluster.network.send("b", "a", "hello", {})
    cluster.kill("a")                    # plain Nodes have no handlers: drop it
    cluster.run(1.0)
    fig = plot.sequence_diagram(cluster.result("hello"))
    assert list(fig.layout.yaxis.ticktext) == ["b", "a"]


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="unit"):
        plot.latency_cdf({"h": Histogram("h", [1.0])}, unit="furlongs")
    with pytest.raises(TypeError, match="Histogram"):
        plot.latency_hist({"h": [1, 2, 3]})
    with pytest.raises(TypeError, match="TimeSeries"):
        plot.timeseries({"s": [1, 2]})


def test_sequence_diagram_fits_its_time_axis_to_the_messages():
    """60 ms of messages in a 1.5 s run fill the axis, not a sliver of it; a
    timer ticking later does not widen it, a crash does."""
    class Quiet(Node):
        def on_ping(self, msg):
            pass

    cluster = Cluster(3, seed=4, node_factory=Quiet)
    n1, n2 = cluster.nodes["n1"], cluster.nodes["n2"]
    cluster.sim.schedule(0.10, lambda: n1.send("n2", "ping"))
    cluster.sim.schedule(0.14, lambda: n2.send("n3", "ping"))
    cluster.sim.schedule(1.40, lambda: n1.set_timer("late", 0.01, lambda: None))
    cluster.run(1.5)
    lo, hi = plot.sequence_diagram(cluster.result()).layout.xaxis.range
    sends = [r.time for r in cluster.sim.trace if r.event == "send"]
    delivered = [r.time for r in cluster.sim.trace if r.event == "deliver"]
    covered = (max(delivered) - min(sends)) / (hi - lo)
    assert lo <= min(sends) and max(delivered) <= hi and covered >= 0.8
    cluster.kill("n3")
    cluster.run(0.1)
    assert plot.sequence_diagram(cluster.result()).layout.xaxis.range[1] > 1.5


def test_ccdf_gives_the_share_of_values_above_x_on_log_axes():
    h = Histogram("latency")
    for v in range(1, 1001):            # 1 .. 1000 ms, each once
        h.add(v / 1000)
    fig = plot.latency_ccdf({"even": h})
    (curve,) = fig.data
    for x, y in zip(curve.x, curve.y, strict=True):
        assert y == pytest.approx((1000 - x) / 1000)    # x ms: 1000 - x values above
    assert min(curve.y) == pytest.approx(0.001) and max(curve.x) == 999
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "log"
