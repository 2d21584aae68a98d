"""What the scenarios of several notebooks share, and nothing else: the
service-time shapes and the load grid of the queueing-theory curves
(notebooks 01 and 02), the check of a (start, end) window of time (00, 03,
05), a cluster's Result with its node names and a network headline (00, 05),
the progress bar a long scenario shows (02, 05, 07, 08),
and the records (typed `Result.data`) of shapes several families share: a
table, a table with a headline, runs with a table, a cluster's run.
Everything used by one notebook only lives in that notebook's module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit import dist
from labkit.dist import Distribution
from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Record, Result
from labkit.node import Cluster

#: Service-time shapes `service_time` builds, each scaled to a requested mean.
SERVICE_SHAPES = ("exponential", "deterministic", "lognormal", "bimodal")
#: Utilisations at which theory curves are evaluated: 0.02, 0.04, ..., 0.96.
THEORY_LOADS = tuple(round(0.02 * k, 2) for k in range(1, 49))


def with_progress(items: Sequence, progress: Callable[..., Iterable] | None,
                  description: str) -> Iterable:
    """`items` as a long scenario's loop goes through them: through `progress`
    (a bar like labkit.widgets.progress, called as progress(items, total=,
    description=)) when one is given, else as they are."""
    if progress is None:
        return items
    if not callable(progress):
        raise TypeError(f"progress must be a function like labkit.widgets.progress, "
                        f"got {progress!r}")
    return progress(items, total=len(items), description=description)


def service_time(shape: str, mean: float) -> Distribution:
    """A service-time distribution of the named shape with the given mean.

    lognormal: the p99 is 10x the median (so the mean is 1.64x the median);
    bimodal: 95 % of requests take `fast`, 5 % take 10x as long (think cache
    misses), so the mean is 1.45x `fast`.
    """
    mean = require_number("mean_service", mean, positive=True)
    if shape == "exponential":
        return dist.exponential(mean)
    if shape == "deterministic":
        return dist.constant(mean)
    if shape == "lognormal":
        median = mean / math.exp(dist.lognormal(1.0, 10.0).sigma ** 2 / 2)
        return dist.lognormal(median, 10 * median)
    if shape == "bimodal":
        fast = mean / (0.95 + 0.05 * 10)
        return dist.bimodal(fast, 10 * fast, 0.05)
    raise ConfigError(f"service must be one of {list(SERVICE_SHAPES)}, got {shape!r}")


def failover_size(name: str, size: int) -> int:
    """A cluster size at which killing the leader leaves a majority to elect
    another (with fewer than 3 nodes, the survivors never can)."""
    if require_int(name, size) < 3:
        raise ConfigError(f"{name} must be at least 3, got {size}: without its "
                          f"leader a cluster of {size} has no majority left to "
                          "elect another")
    return size


def _window(name: str, value: Any) -> tuple[float, float]:
    """`value` checked as a window of time named `name`: (start, end) with
    0 <= start <= end."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ConfigError(f"{name} must be a (start, end) pair of times, got {value!r}")
    start = require_number(f"{name} start", value[0], minimum=0.0)
    end = require_number(f"{name} end", value[1], minimum=start)
    return start, end


def with_data(result: Result, data: Record) -> Result:
    """`result` with `data` as its data (a Result is frozen: this is a copy)."""
    return dataclasses.replace(result, data=data)


@dataclass(frozen=True, kw_only=True)
class Table(Record):
    """A scenario that answers with a table: one dict per row."""

    rows: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Report(Table):
    """A table with a one-line headline."""

    headline: str


@dataclass(frozen=True, kw_only=True)
class Runs(Record):
    """Several runs by name, and a table comparing them (one dict per row)."""

    runs: dict[str, Any]
    rows: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class ClusterRun(Record):
    """A cluster's run: message counts by kind, the nodes up and the cuts at the
    end, node names, drop reasons and a one-line headline."""

    messages: dict[str, dict[str, int]]
    up: list[str]
    cuts: str
    names: list[str]
    drop_reasons: dict[str, int]
    headline: str


def cluster_data(cluster: Cluster, result: Result) -> dict[str, Any]:
    """The cluster's result data with node names, drop reasons and a one-line
    headline ("delivered N · dropped M") added: what a family's record holds."""
    net = cluster.network
    return {**result.data, "names": cluster.names,
            "drop_reasons": dict(sorted(net.drop_reasons.items())),
            "headline": f"delivered {net.messages_delivered} · "
                        f"dropped {net.messages_dropped}"}


def cluster_result(cluster: Cluster, scenario: str, **params: Any) -> Result:
    """The cluster's Result with a `ClusterRun` as its data."""
    result = cluster.result(scenario, **params)
    return with_data(result, ClusterRun(**cluster_data(cluster, result)))
