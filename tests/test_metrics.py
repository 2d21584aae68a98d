"""Metrics: exact percentiles, time averages, and the Result fingerprint."""

import copy
import dataclasses
import functools
import math
import pickle
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import ConfigError, Histogram, Metrics, Result, Simulator, TraceRecord
from labkit.metrics import (
    SUMMARY_PERCENTILES,
    Counter,
    Gauge,
    Record,
    keyed,
    record_items,
)

samples = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
                   min_size=1, max_size=300)
# Percentiles with at most three decimals, as people write them (99.9, 99.99).
percents = st.integers(min_value=1, max_value=100_000).map(lambda k: Fraction(k, 1000))


def exact_nearest_rank(values, p):
    """Nearest rank in exact arithmetic: the ceil(p n / 100)-th smallest value."""
    return sorted(values)[math.ceil(p * len(values) / 100) - 1]


@settings(max_examples=300, derandomize=True, database=None)
@given(values=samples, p=percents)
def test_percentile_is_nearest_rank_like_numpy_inverted_cdf(values, p):
    hist = Histogram("h", values)
    got = hist.percentile(float(p))
    assert got == exact_nearest_rank(values, p)
    # numpy computes p/100 * n in floating point, so when p n / 100 is a whole
    # number it can land one ulp above it and pick the next rank; elsewhere the
    # two implementations must agree exactly.
    if (p * len(values) / 100).denominator != 1:
        assert got == np.percentile(values, float(p), method="inverted_cdf")


@settings(max_examples=100, derandomize=True, database=None)
@given(values=samples, p=st.integers(min_value=1, max_value=100))
def test_integer_percentiles_agree_with_numpy_when_rank_is_fractional(values, p):
    hist = Histogram("h", values)
    expected = np.percentile(values, p, method="inverted_cdf")
    if p * len(values) % 100:
        assert hist.percentile(p) == expected


def test_percentile_edges_and_empty_histogram():
    hist = Histogram("h", [5.0, 1.0, 3.0, 2.0, 4.0])
    assert [hist.percentile(p) for p in (1, 20, 20.001, 50, 100)] == [1, 1, 2, 3, 5]
    assert hist.max == 5.0 and hist.mean == 3.0
    empty = Histogram("e")
    assert math.isnan(empty.percentile(50)) and math.isnan(empty.mean)
    assert empty.summary()["count"] == 0 and math.isnan(empty.summary()["p99"])


def test_p999_of_a_thousand_values_is_the_999th():
    hist = Histogram("h", range(1, 1001))
    assert hist.percentile(99.9) == 999 and hist.percentile(99.99) == 1000


@settings(max_examples=50, derandomize=True, database=None)
@given(values=samples)
def test_summary_has_the_documented_keys_and_values(values):
    s = Histogram("h", values).summary()
    keys = ["count", "mean"] + [f"p{p:g}" for p in SUMMARY_PERCENTILES] + ["max"]
    assert list(s) == keys
    assert s["count"] == len(values) and s["max"] == max(values)
    assert s["mean"] == pytest.approx(np.mean(values), abs=1e-6)
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["p99.9"] <= s["max"]


@settings(max_examples=50, derandomize=True, database=None)
@given(parts=st.lists(samples, min_size=1, max_size=4), p=percents)
def test_merged_equals_the_concatenation(parts, p):
    merged = Histogram.merged("all", [Histogram(f"h{i}", v)
                                      for i, v in enumerate(parts)])
    flat = [x for part in parts for x in part]
    assert merged.count == len(flat)
    assert merged.percentile(float(p)) == Histogram("flat", flat).percentile(float(p))
    assert list(merged.values) == flat


@settings(max_examples=50, derandomize=True, database=None)
@given(values=samples, threshold=st.floats(min_value=-2e6, max_value=2e6))
def test_fraction_above_counts_strictly_greater(values, threshold):
    expected = sum(1 for v in values if v > threshold) / len(values)
    assert Histogram("h", values).fraction_above(threshold) == expected


def test_histogram_cache_is_refreshed_by_add():
    hist = Histogram("h", [1.0, 2.0])
    assert hist.max == 2.0
    hist.add(9.0)
    assert hist.max == 9.0
    hist.extend([10.0, 11.0])
    assert hist.max == 11.0 and hist.count == 5


def test_gauge_time_average_of_a_step_function():
    clock = [2.0]
    gauge = Gauge("q", lambda: clock[0])       # created at t = 2
    for t, level in [(3.0, 4.0), (5.0, 1.0), (9.0, 0.0)]:
        clock[0] = t
        gauge.set(level)
    clock[0] = 10.0
    # 0 on [2,3), 4 on [3,5), 1 on [5,9), 0 on [9,10): area 0 + 8 + 4 + 0 over 8 s.
    assert gauge.time_average() == pytest.approx(12.0 / 8.0)
    assert gauge.maximum == 4.0 and gauge.value == 0.0


def test_gauge_add_and_zero_span_average():
    clock = [0.0]
    gauge = Gauge("q", lambda: clock[0])
    gauge.add(3)
    gauge.add(-1)
    assert gauge.time_average() == 2          # no time has passed: the level
    clock[0] = 4.0
    assert gauge.time_average() == 2


def test_counter_only_goes_up():
    c = Counter("c")
    c.inc()
    c.inc(2.5)
    assert c.value == 3.5
    with pytest.raises(ConfigError, match="only goes up"):
        c.inc(-1)


def test_metrics_registry_returns_the_same_item_and_refuses_a_kind_clash():
    m = Metrics()
    assert m.counter("x") is m.counter("x")
    with pytest.raises(ConfigError, match="'x' is a Counter, not a Histogram"):
        m.histogram("x")
    with pytest.raises(KeyError, match="no metric 'y'"):
        m["y"]
    m.histogram("lat").add(1.0)
    assert m.names() == ["lat", "x"] and list(m.snapshot()) == ["lat", "x"]


# -- Result -----------------------------------------------------------------------

TRACE = (TraceRecord(0.5, "send", "n1", "n2", "ping", 0),
         TraceRecord(0.6, "deliver", "n1", "n2", "ping", 0))


def result(trace=TRACE, **params):
    m = Metrics()
    m.histogram("latency").extend([0.1, 0.2, 0.3])
    return Result("demo", params or {"a": 1}, 7, m, trace, 1.0)


def test_fingerprint_is_stable_for_equal_inputs():
    assert result().fingerprint == result().fingerprint
    assert len(result().fingerprint) == 16


@pytest.mark.parametrize("field", range(len(TraceRecord._fields)))
def test_fingerprint_changes_when_any_field_of_a_trace_record_changes(field):
    record = list(TRACE[1])
    record[field] = 0.7 if isinstance(record[field], float) else (
        record[field] + 1 if isinstance(record[field], int) else record[field] + "x")
    changed = (TRACE[0], TraceRecord(*record))
    assert result(changed).fingerprint != result().fingerprint


def test_fingerprint_depends_on_params_seed_and_metrics():
    base = result().fingerprint
    assert result(a=2).fingerprint != base
    m = Metrics()
    m.histogram("latency").extend([0.1, 0.2, 0.4])
    assert Result("demo", {"a": 1}, 7, m, TRACE, 1.0).fingerprint != base
    assert Result("demo", {"a": 1}, 8, result().metrics, TRACE, 1.0).fingerprint != base


def test_fingerprint_does_not_move_when_the_run_continues():
    sim = Simulator(3)
    gauge = sim.metrics.gauge("queue")
    sim.run(1.0)
    gauge.set(5.0)
    sim.run(1.0)
    res = sim.result("demo")
    before = res.fingerprint
    sim.metrics.histogram("late").add(1.0)
    sim.run(1.0)                               # the gauge's time average moves on
    assert res.fingerprint == before


def test_fingerprint_of_set_params_does_not_depend_on_set_order():
    forward = result(tags={"alpha", "beta", "gamma"}).fingerprint
    assert forward == result(tags=frozenset(["gamma", "beta", "alpha"])).fingerprint


def test_trace_frame_has_one_row_per_record_and_the_record_columns():
    frame = result().trace_frame()
    assert list(frame.columns) == ["time", "event", "src", "dst", "kind", "msg", "note"]
    assert frame["event"].tolist() == ["send", "deliver"] and len(frame) == 2


def test_result_repr_is_one_line_without_addresses():
    text = repr(result())
    assert "\n" not in text and "0x" not in text and result().fingerprint in text


# -- the fingerprint covers what a run produced, not only what it was asked ----------

def _leaf_paths(value, path=()):
    """Paths to every number, string and histogram inside dicts and lists."""
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _leaf_paths(value[key], (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaf_paths(item, (*path, i))
    elif isinstance(value, int | float | str | Histogram) \
            and not isinstance(value, bool):
        yield path


def _changed_at(data, path):
    """A deep copy of `data` with the leaf at `path` changed."""
    data = copy.deepcopy(dict(data))
    *parents, last = path
    holder = functools.reduce(lambda node, key: node[key], parents, data)
    leaf = holder[last]
    if isinstance(leaf, Histogram):
        leaf.add(12345.0)
    else:
        holder[last] = leaf + ("x" if isinstance(leaf, str) else 1)
    return data


#: Scenarios whose outcome lives (partly) in Result.data, with small params.
PRODUCED = {"leader_failover": {"trials": 2},
            "backoff_race": {"clients": (10, 20), "trials": 1},
            "timeout_sweep": {"factors": (1.0, 4.0), "duration": 2.0}}


def _changed_record(record, path):
    """A copy of `record` with the leaf at `path` (of its items) changed."""
    names = {f.metadata.get("key", f.name): f.name for f in dataclasses.fields(record)}
    data = _changed_at(record_items(record), path)
    return type(record)(**{names[key]: value for key, value in data.items()})


@pytest.mark.parametrize("name", PRODUCED)
def test_fingerprint_changes_when_anything_in_data_changes(name):
    # leader_failover's outcome lives only in data.gaps: a fingerprint over
    # inputs, metrics and trace alone did not move when its gaps changed.
    from labkit import scenarios

    res = getattr(scenarios, name)(**PRODUCED[name])
    paths = list(_leaf_paths(record_items(res.data)))
    assert paths, f"{res.scenario} has no data to vary"
    step = max(1, len(paths) // 40)
    for path in paths[::step]:
        changed = dataclasses.replace(res, data=_changed_record(res.data, path))
        assert changed.fingerprint != res.fingerprint, (
            f"{res.scenario}: data{list(path)}")


# -- records: typed data with the fingerprint of the dict they replaced -------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class _Window(Record):
    victim: str
    hot_hold: float = keyed("hot hold (s)")
    window: tuple[float, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Plain:
    victim: str


def test_a_record_fingerprints_as_the_dict_of_its_fields_under_their_keys():
    record = _Window(victim="aborted", hot_hold=2.5, window=(1.0, 3.0))
    same = {"window": (1.0, 3.0), "hot hold (s)": 2.5, "victim": "aborted"}
    renamed = {"window": (1.0, 3.0), "hot_hold": 2.5, "victim": "aborted"}
    other = {"window": (1.0, 3.0), "hot hold (s)": 2.0, "victim": "aborted"}

    def fingerprint(data):
        return Result("demo", {}, 1, Metrics(), data=data).fingerprint

    assert fingerprint(record) == fingerprint(same)
    assert fingerprint(record) != fingerprint(renamed)
    assert fingerprint(record) != fingerprint(other)
    # Inside other data too, and only records: any other dataclass keeps its name.
    assert fingerprint({"run": record}) == fingerprint({"run": same})
    assert fingerprint({"x": _Plain(victim="a")}) != fingerprint({"x": {"victim": "a"}})


def test_a_record_is_read_by_attribute_and_cannot_change():
    record = _Window(victim="aborted", hot_hold=2.5, window=(1.0, 3.0))
    assert record.hot_hold == 2.5
    assert record_items(record) == {"victim": "aborted", "hot hold (s)": 2.5,
                                    "window": (1.0, 3.0)}
    with pytest.raises(AttributeError):
        _ = record.hot_hodl                     # a typo is an error, not a None
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.victim = "committed"
    with pytest.raises(TypeError):
        _Window("aborted", 2.5, (1.0, 3.0))     # fields by name only


def test_fingerprint_covers_arrays_dataclasses_series_and_nested_results():
    base = result()
    variants = [
        ({"a": np.array([1.0, 2.0])}, {"a": np.array([1.0, 2.5])}),
        ({"a": np.float64(1.0)}, {"a": np.float64(1.5)}),
        ({"a": Fraction(1, 2)}, {"a": Fraction(1, 3)}),
        ({"inner": base}, {"inner": result(a=2)}),
    ]
    for before, after in variants:
        assert (Result("demo", {}, 1, Metrics(), data=before).fingerprint
                != Result("demo", {}, 1, Metrics(), data=after).fingerprint)
    m1, m2 = Metrics(), Metrics()
    m1.series("queue").add(1.0, 3.0)
    m2.series("queue").add(1.0, 4.0)        # same number of points, other value
    assert (Result("demo", {}, 1, m1).fingerprint
            != Result("demo", {}, 1, m2).fingerprint)


def test_fingerprint_refuses_values_whose_repr_holds_an_address():
    with pytest.raises(TypeError, match="memory address"):
        _ = Result("demo", {}, 1, Metrics(), data={"thing": object()}).fingerprint


def test_a_result_pickles_with_its_gauges_stopped_at_the_time_it_was_copied():
    # Level 2 for 1 s, then 4: at t = 3 the time average is (2*1 + 4*2)/3.
    sim = Simulator(1)
    level = sim.metrics.gauge("queue")
    level.set(2)
    sim.schedule(1.0, level.set, 4)
    sim.run(3.0)
    result = Result("gauge", {}, 1, sim.metrics, end_time=sim.now)
    copied = pickle.loads(pickle.dumps(result))
    sim.run(3.0)                                   # the live run goes on to t = 6
    assert copied.metrics["queue"].time_average() == pytest.approx(10 / 3)
    assert level.time_average() == pytest.approx((2 * 1 + 4 * 5) / 6)
    assert copied.fingerprint == result.fingerprint
    deep = copy.deepcopy(result.metrics)
    assert deep["queue"].time_average() == pytest.approx(22 / 6)


def test_a_histogram_holding_nan_or_no_number_is_refused_by_name():
    # add() stays unchecked (every simulation's hot path); the statistics
    # refuse what would make them lie: NaN skewed p50 and counted as "above",
    # None and strings raised bare errors later, far from their cause.
    for bad, words in ((math.nan, "holds NaN or None"), (None, "holds NaN or None"),
                       ("x", "holds 'x': every value must be a number")):
        histogram = Histogram("latency")
        histogram.extend([1.0, 2.0, bad])
        for statistic in (lambda h: h.percentile(50), lambda h: h.mean,
                          lambda h: h.fraction_above(1.5)):
            with pytest.raises(ConfigError, match=f"histogram 'latency' {words}"):
                statistic(histogram)


def test_a_counter_refuses_nan():
    with pytest.raises(ConfigError, match=r"only goes up, got inc\(nan\)"):
        Counter("served").inc(math.nan)


@pytest.mark.parametrize("bad", [math.nan, None, "3", True])
def test_a_gauge_refuses_a_level_that_is_no_real_number(bad):
    gauge = Gauge("queue", lambda: 0.0)
    with pytest.raises(ConfigError, match=f"gauge 'queue' holds a level.*got {bad!r}"):
        gauge.set(bad)
    assert gauge.value == 0.0 and gauge.time_average() == 0.0   # left as it was


def test_a_gauge_takes_other_real_numbers_as_floats():
    clock = [0.0]
    gauge = Gauge("queue", lambda: clock[0])
    gauge.set(np.float32(2.5))
    clock[0] = 2.0
    gauge.set(Fraction(1, 2))
    clock[0] = 4.0
    assert type(gauge.value) is float and gauge.time_average() == (5.0 + 1.0) / 4


def test_a_trace_record_is_written_as_canonical_writes_any_tuple():
    # The fingerprint's fast path for plain records against the general rule,
    # on records plain and not (nan and numpy times, bool and numpy message
    # numbers, notes that are not strings, records of other lengths).
    from labkit.metrics import _canonical, _canonical_record
    rng = random.Random(3)
    times = [0.0, -0.0, 1.5, 1e-300, 2.0 ** 60, float("nan"), float("inf"),
             np.float64(0.25), 7]
    texts = ["", "send", "it's", 'a "quoted"\\n', "电", 3]
    for _ in range(2000):
        record = TraceRecord(rng.choice(times), *(rng.choice(texts) for _ in range(4)),
                             rng.choice([-1, 0, 12, True, np.int64(5)]),
                             rng.choice(texts))
        assert _canonical_record(record) == _canonical(tuple(record)), record
        assert _canonical_record(tuple(record)[:5]) == _canonical(tuple(record)[:5])
