"""Measurements in simulated time: counters, gauges, histograms, time series.

Percentiles are exact (nearest rank over every recorded value), never
estimated, so a notebook can compare them with theory without a sketch's error
bars in the way. `Result` freezes one run: its inputs, its metrics, its trace.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, NamedTuple

import numpy as np

from labkit.errors import ConfigError, require_number

#: The percentiles a histogram summary reports, in this order.
SUMMARY_PERCENTILES = (50, 90, 99, 99.9)


class Counter:
    """A number that only goes up (requests served, messages dropped)."""

    __slots__ = ("name", "value")

    def __init__(self, name: str):
        self.name, self.value = name, 0

    def inc(self, amount: int | float = 1) -> None:
        if not amount >= 0:             # negative, or NaN
            raise ConfigError(f"counter {self.name!r} only goes up, got inc({amount})")
        self.value += amount

    def __repr__(self) -> str:
        return f"Counter({self.name!r}, {self.value})"


class StoppedClock:
    """A clock that stays at `now`: what a registry keeps of its simulator's
    clock once copied or pickled, so a Result can leave the process that ran it
    (the live clock is a closure over the Simulator)."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def __getstate__(self) -> float:
        return self.now

    def __setstate__(self, now: float) -> None:
        self.now = now


class Gauge:
    """A level that moves up and down (queue length), with its time average.

    The time average weights each level by how long it was held, which is the
    L in Little's law L = lambda * W.
    """

    __slots__ = ("name", "value", "_clock", "_since", "_area", "_start", "maximum")

    def __init__(self, name: str, clock: Callable[[], float]):
        self.name, self._clock = name, clock
        self.value = self.maximum = 0.0
        self._start = self._since = clock()
        self._area = 0.0

    def set(self, value: float) -> None:
        if type(value) is not float and type(value) is not int or value != value:
            value = self._checked(value)
        now = self._clock()
        self._area += self.value * (now - self._since)
        self.value, self._since = value, now
        if value > self.maximum:
            self.maximum = value

    def _checked(self, value: Any) -> float:
        """A level that is no plain int or float: another real number (numpy's,
        a Fraction) as a float; NaN, None, a bool or a string is refused, since
        it would make the time average NaN or raise far from its cause."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or value != value:
            raise ConfigError(f"gauge {self.name!r} holds a level, a real number "
                              f"that is not NaN, got {value!r}")
        return float(value)

    def add(self, delta: float) -> None:
        self.set(self.value + delta)

    def time_average(self) -> float:
        """Mean level over simulated time since the gauge was created."""
        now = self._clock()
        span = now - self._start
        if span <= 0:
            return self.value
        return (self._area + self.value * (now - self._since)) / span

    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in self.__slots__}
        state["_clock"] = StoppedClock(self._clock())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Gauge({self.name!r}, {self.value})"


def nearest_rank(sorted_values: np.ndarray, p: float) -> float:
    """The p-th percentile by nearest rank: the smallest value with at least p%
    of the values at or below it (p in (0, 100]; p=100 is the maximum)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    # round() keeps 99.9% of 1000 at rank 999 despite binary floating point.
    rank = max(1, math.ceil(round(p * n / 100.0, 9)))
    return float(sorted_values[rank - 1])


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class Histogram:
    """Every recorded value of one quantity (latencies), with exact percentiles."""

    __slots__ = ("name", "_values", "_sorted")

    def __init__(self, name: str, values: Iterable[float] = ()):
        self.name = name
        self._values: list[float] = list(values)
        self._sorted: np.ndarray | None = None

    def add(self, value: float) -> None:
        self._values.append(value)
        self._sorted = None

    def extend(self, values: Iterable[float]) -> None:
        self._values.extend(values)
        self._sorted = None

    @property
    def count(self) -> int:
        return len(self._values)

    @property
    def values(self) -> np.ndarray:
        """The recorded values in order of recording. `add` takes any value (it
        is on every simulation's hot path); a value that is no number, or NaN,
        is refused here, naming the histogram and the sample."""
        try:
            values = np.asarray(self._values, dtype=float)
        except (TypeError, ValueError):
            bad = next(v for v in self._values if not _is_number(v))
            raise ConfigError(f"histogram {self.name!r} holds {bad!r}: every value "
                              "must be a number") from None
        nan = np.flatnonzero(np.isnan(values))
        if len(nan):
            raise ConfigError(f"histogram {self.name!r} holds NaN or None (value "
                              f"{nan[0]} of {len(values)}): a percentile of it "
                              "means nothing")
        return values

    def sorted(self) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(self.values)
        return self._sorted

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self._values else math.nan

    @property
    def max(self) -> float:
        return self.percentile(100)

    def percentile(self, p: float) -> float:
        """Nearest-rank p-th percentile, p in (0, 100]."""
        p = require_number("percentile", p)
        if not 0 < p <= 100:
            raise ConfigError(f"percentile must be in (0, 100], got {p}")
        return nearest_rank(self.sorted(), p)

    def fraction_above(self, threshold: float) -> float:
        """Share of values strictly greater than `threshold`."""
        if not self._values:
            return math.nan
        s = self.sorted()
        return float(len(s) - np.searchsorted(s, threshold, side="right")) / len(s)

    def summary(self) -> dict[str, float]:
        """count, mean, p50, p90, p99, p99.9 and max, for tables and fingerprints."""
        out = {"count": self.count, "mean": self.mean}
        for p in SUMMARY_PERCENTILES:
            out[f"p{p:g}"] = self.percentile(p) if self._values else math.nan
        out["max"] = self.max if self._values else math.nan
        return out

    @classmethod
    def merged(cls, name: str, parts: Iterable[Histogram]) -> Histogram:
        """One histogram of all values of `parts` (how per-node percentiles combine:
        merge the values, never average the percentiles)."""
        merged = cls(name)
        for part in parts:
            merged.extend(part._values)
        return merged

    def __repr__(self) -> str:
        if not self._values:
            return f"Histogram({self.name!r}, empty)"
        s = self.summary()
        return (f"Histogram({self.name!r}, n={s['count']}, mean={s['mean']:.4g}, "
                f"p50={s['p50']:.4g}, p99={s['p99']:.4g}, max={s['max']:.4g})")


class TimeSeries:
    """(time, value) samples in simulated time, e.g. a queue length every 10 ms."""

    __slots__ = ("name", "times", "values")

    def __init__(self, name: str):
        self.name = name
        self.times: list[float] = []
        self.values: list[float] = []

    def add(self, time: float, value: float) -> None:
        self.times.append(time)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.times)

    def __repr__(self) -> str:
        return f"TimeSeries({self.name!r}, {len(self)} points)"


def _gauge_numbers(gauge: Gauge) -> dict[str, float]:
    """A gauge's numbers: its value, time average so far and maximum."""
    return {"value": gauge.value, "time_average": gauge.time_average(),
            "max": gauge.maximum}


class Metrics:
    """A named registry of counters, gauges, histograms and series for one run."""

    def __init__(self, clock: Callable[[], float] | None = None):
        self._clock = StoppedClock() if clock is None else clock
        self._items: dict[str, Counter | Gauge | Histogram | TimeSeries] = {}

    def __getstate__(self) -> dict[str, Any]:
        # A copy keeps the time its run had reached, not the run's live clock.
        return {**self.__dict__, "_clock": StoppedClock(self._clock())}

    def _get(self, name: str, kind: type, *args):
        item = self._items.get(name)
        if item is None:
            item = self._items[name] = kind(name, *args)
        elif not isinstance(item, kind):
            raise ConfigError(f"metric {name!r} is a {type(item).__name__}, "
                              f"not a {kind.__name__}")
        return item

    def counter(self, name: str) -> Counter:
        return self._get(name, Counter)

    def gauge(self, name: str) -> Gauge:
        return self._get(name, Gauge, self._clock)

    def histogram(self, name: str) -> Histogram:
        return self._get(name, Histogram)

    def series(self, name: str) -> TimeSeries:
        return self._get(name, TimeSeries)

    def __getitem__(self, name: str):
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no metric {name!r}; have {sorted(self._items)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def snapshot(self) -> dict[str, Any]:
        """Plain numbers for every metric, sorted by name (stable across runs)."""
        out: dict[str, Any] = {}
        for name in sorted(self._items):
            item = self._items[name]
            if isinstance(item, Counter):
                out[name] = item.value
            elif isinstance(item, Gauge):
                out[name] = _gauge_numbers(item)
            elif isinstance(item, Histogram):
                out[name] = item.summary()
            else:
                out[name] = {"points": len(item)}
        return out

    def digest(self) -> str:
        """Every metric in full, as canonical text: counters and gauges by their
        numbers, histograms and series by all their values. What a fingerprint
        hashes, so that two runs differing in one recorded value differ."""
        items = {}
        for name in sorted(self._items):
            item = self._items[name]
            items[name] = (item.value if isinstance(item, Counter) else
                           _gauge_numbers(item) if isinstance(item, Gauge) else item)
        return _canonical(items)

    def __repr__(self) -> str:
        return f"Metrics({', '.join(self.names())})"


class TraceRecord(NamedTuple):
    """One thing that happened: a message sent/delivered/dropped, a timer, a fault.

    `msg` numbers a message so its send, deliveries and drops can be matched;
    `note` says why a message was dropped or what a fault did.
    """

    time: float
    event: str      # "send", "deliver", "drop", "timer", "fault", or a custom tag
    src: str
    dst: str
    kind: str       # message kind, timer name, or fault verb
    msg: int = -1
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of a scenario family's typed `Result.data`: a frozen dataclass, so a
    view reads attributes and a misspelt name is an AttributeError.

    A record is fingerprinted exactly as the dict of its fields would be, each
    field under its `key` (its name unless `keyed` gave it another), so a
    scenario that moved from a dict to a record kept its fingerprints."""


def keyed(key: str, **options: Any) -> Any:
    """A record field fingerprinted under `key` instead of its name, for the
    keys that are not identifiers ("hot hold (s)"); `options` go to `field`."""
    return field(metadata={"key": key}, **options)


def record_items(record: Record) -> dict[str, Any]:
    """The record as the dict it is fingerprinted as: {key: value} per field."""
    return {f.metadata.get("key", f.name): getattr(record, f.name)
            for f in fields(record)}


#: The field types of a trace record as `Simulator.record` makes it.
_PLAIN_RECORD = (float, str, str, str, str, int, str)


def _canonical_record(record: tuple) -> str:
    """`_canonical(tuple(record))`, written directly for a plain trace record:
    a fingerprint hashes every record of a trace, often hundreds of thousands."""
    if tuple(map(type, record)) == _PLAIN_RECORD:
        time, event, src, dst, kind, msg, note = record
        return f"[{time!r},{event!r},{src!r},{dst!r},{kind!r},{msg!r},{note!r}]"
    return _canonical(tuple(record))


def _canonical(value: Any) -> str:
    """A text form of nested plain data that is identical in every process.

    Covers what results hold: numbers, strings, containers, numpy arrays and
    scalars, records (as the dict of their fields), other dataclasses (by type
    name and fields) and named tuples, metrics, nested Results (by their
    fingerprint) and functions (by qualified name). Anything else must have a
    repr without a memory address, or it is refused: an address would make the
    fingerprint differ between two identical runs."""
    if isinstance(value, float):     # numpy's float64 too: by value, as np.float32
        return "nan" if value != value else repr(float(value))
    if isinstance(value, str | int | bool | None):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_canonical(k)}:{_canonical(value[k])}"
                              for k in sorted(value, key=str)) + "}"
    if isinstance(value, list | tuple):
        named = "" if type(value) in (list, tuple) else type(value).__name__
        return named + "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, set | frozenset):     # iteration order follows the hash seed
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return "array" + _canonical(value.tolist())
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"array({value.dtype.str},{value.shape},{digest})"
    if isinstance(value, Result):
        return f"Result({value.fingerprint})"
    if isinstance(value, Histogram):
        return f"Histogram({value.name!r},{_canonical(value.values)})"
    if isinstance(value, TimeSeries):
        return (f"TimeSeries({value.name!r},{_canonical(np.asarray(value.times))},"
                f"{_canonical(np.asarray(value.values, dtype=float))})")
    if isinstance(value, Metrics):
        return "Metrics" + value.digest()
    if isinstance(value, Record):
        return _canonical(record_items(value))
    if is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__ + _canonical(
            {f.name: getattr(value, f.name) for f in fields(value)})
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:
        raise TypeError(f"cannot fingerprint {type(value).__qualname__}: its repr "
                        f"holds a memory address; store plain data in Result.data")
    return text


@dataclass(frozen=True, repr=False)
class Result:
    """A frozen record of one run: what was asked, what was measured, what happened.

    Same scenario, params and seed give the same fingerprint, in any process.
    `data` holds what is specific to the run: a `Record` of the scenario's
    family (read its attributes), or a plain dict where a topic package made it.
    """

    scenario: str
    params: Mapping[str, Any]
    seed: int
    metrics: Metrics
    trace: tuple[TraceRecord, ...] = ()
    end_time: float = 0.0
    data: Record | Mapping[str, Any] = field(default_factory=dict)
    _snapshot: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # `metrics` is the live registry and gauges average up to the clock's now:
        # freeze its numbers here so the fingerprint never moves as the run goes on.
        object.__setattr__(self, "_snapshot", self.metrics.digest())

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of a SHA-256 over everything the run asked and
        produced: scenario, params, seed, end time, metrics (as they were when the
        Result was made), `data` (as it is now) and trace. Two runs with equal
        fingerprints asked the same and produced the same."""
        h = hashlib.sha256()
        h.update(_canonical([self.scenario, self.params, self.seed, self.end_time,
                             self._snapshot, self.data]).encode())
        h.update("".join(map(_canonical_record, self.trace)).encode())
        return h.hexdigest()[:16]

    def trace_frame(self):
        """The trace as a pandas DataFrame, one row per record."""
        import pandas as pd  # imported here: only students' analysis cells need it

        return pd.DataFrame(self.trace, columns=TraceRecord._fields)

    def __repr__(self) -> str:
        return (f"Result({self.scenario!r}, seed={self.seed}, t={self.end_time:g}s, "
                f"{len(self.trace)} trace records, fingerprint={self.fingerprint})")
