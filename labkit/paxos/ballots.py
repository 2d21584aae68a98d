"""Ballots and quorums: what single-decree Paxos and Multi-Paxos share.

A majority quorum and its intersection property (`majority`), ballot numbers
no two proposers share (`next_ballot`), the checks on what may be proposed and
on (low, high) time ranges, the oracle that reads acceptors' ghost histories to
say which values were chosen (a majority accepted them in one ballot), and
`count_messages`, which measures what a run spent on each message kind.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from labkit.errors import (
    ConfigError,
    InvariantViolation,
    require_int,
    require_items,
    require_number,
)
from labkit.metrics import Result


def majority(n: int) -> int:
    """The size of a majority quorum of n acceptors; any two majorities of the same
    n acceptors share at least one (quorum intersection)."""
    return require_int("n", n, minimum=1) // 2 + 1


def next_ballot(index: int, count: int, above: int) -> int:
    """The smallest ballot of proposer `index` (1..count) above `above`. Proposer
    i owns the ballots i, i + count, i + 2·count, ..., so no two proposers ever
    use the same ballot."""
    count = require_int("count", count, minimum=1)
    index = require_int("index", index, minimum=1, maximum=count)
    above = require_int("above", above, minimum=0)
    return index + max(0, (above - index) // count + 1) * count


def _range(name: str, value: Any, *, positive: bool = False) -> tuple[float, float]:
    """A (low, high) pair of seconds with 0 <= low <= high (low > 0 if positive)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ConfigError(f"{name} must be a (low, high) pair of seconds, "
                          f"got {value!r}")
    low = require_number(f"{name} low", value[0], minimum=0.0, positive=positive)
    high = require_number(f"{name} high", value[1], minimum=low)
    return low, high


def _value(value: Any) -> Hashable:
    """A proposable value: not None (None means "nothing chosen"), hashable and
    equal to itself (not NaN), so that acceptors and the checker can compare
    it."""
    if value is None:
        raise ConfigError("cannot propose None: it means 'nothing chosen'")
    try:
        hash(value)
    except TypeError:
        raise ConfigError(f"a proposed value must be immutable (hashable), got "
                          f"{value!r}") from None
    if value != value:
        raise ConfigError(f"a proposed value must equal itself, which {value!r} "
                          "does not: no checker could tell whether two servers "
                          "agree on it")
    return value


def _chosen_by_ballot(histories: Mapping[str, Iterable[tuple]], n: int,
                      key: Callable[[tuple], Hashable]) -> dict:
    """From acceptors' ghost histories of (time, *key fields, value) acceptances:
    {key: (time it was chosen, value)} for every key (a ballot, or a (slot,
    ballot)) that a majority accepted. Raises if one key carried two values."""
    seen: dict[Hashable, tuple[Any, dict[str, float]]] = {}
    for name, history in histories.items():
        for record in history:
            k, value, time = key(record), record[-1], record[0]
            known, firsts = seen.setdefault(k, (value, {}))
            if known != value:
                raise InvariantViolation(
                    f"{k} carried two values, {known!r} and {value!r}: a proposer "
                    "reused a ballot")
            firsts.setdefault(name, time)
    need = majority(n)
    return {k: (sorted(firsts.values())[need - 1], value)
            for k, (value, firsts) in seen.items() if len(firsts) >= need}


def count_messages(result: Result, kinds: Sequence[str], *,
                   since: float = 0.0) -> int:
    """Messages of these kinds sent at or after `since`, read from the journal."""
    if not isinstance(result, Result):
        raise TypeError(f"result must be a labkit Result, got {result!r}")
    wanted = set(require_items("kinds", kinds, "message kind"))
    return sum(1 for r in result.trace
               if r.event == "send" and r.kind in wanted and r.time >= since)
