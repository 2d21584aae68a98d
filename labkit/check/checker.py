"""`linearizable`: split a history by key, search each key smallest first, and
explain the first key that fails."""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.check.models import KV, Model, Op
from labkit.check.search import SearchTooLarge, search
from labkit.check.window import by_call, failure_window
from labkit.errors import ConfigError, require_int

#: The window's searches may visit as many configurations as the key's search
#: did, and never fewer than this (small searches make windows cheap anyway).
_WINDOW_FLOOR = 50_000


@dataclass(frozen=True)
class CheckResult:
    """What `linearizable` found. `ok` is the verdict; if it is False, `key` is a
    key whose operations cannot be linearized and `window` a small set of its
    operations (by call time) that on its own cannot be either, and that keeps
    every write its reads may have seen (labkit.check.window). If `minimal`,
    dropping any one of them (but such a write) lets the rest be ordered. It is
    not if the check ran with `minimize=False` (the window is then every
    operation of the key) or the window search ran out of budget (the window is
    then the smallest failing set it had found)."""

    ok: bool
    operations: int
    keys: int
    key: Hashable = None
    window: tuple[Op, ...] = ()
    minimal: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        """The verdict, and the window one operation per line."""
        if self.ok:
            return (f"linearizable: {self.operations} operations on "
                    f"{self.keys} keys")
        note = "" if self.minimal else " (not minimal)"
        lines = [f"NOT linearizable: key {self.key!r}; these "
                 f"{len(self.window)} operations admit no order{note}:"]
        return "\n".join(lines + [f"  {op}" for op in self.window])

    def __repr__(self) -> str:
        if self.ok:
            return f"CheckResult(ok, {self.operations} ops, {self.keys} keys)"
        return (f"CheckResult(NOT linearizable, key={self.key!r}, "
                f"window of {len(self.window)} ops)")


def linearizable(history: Iterable[Op | Mapping[str, Any]], *, model: Model = KV,
                 minimize: bool = True, max_states: int = 1_000_000) -> CheckResult:
    """Check a history of operations (Op values, or mappings with Op's fields)
    against `model`, key by key, smallest key first. With `minimize` a failure
    comes with a small window; without it, the window is every operation of the
    failing key. Raises SearchTooLarge ("undecided") only if no key fails and
    some key's search visited `max_states` configurations without a verdict."""
    require_int("max_states", max_states, minimum=1)
    if not isinstance(model, Model):
        raise TypeError(f"model must be a labkit.check.Model, got {model!r}")
    if not isinstance(minimize, bool):
        raise ConfigError(f"minimize must be True or False, got {minimize!r}")
    if isinstance(history, str | bytes | Mapping) or not isinstance(history, Iterable):
        raise TypeError(f"history must be a list of labkit.check.Op values (or "
                        f"mappings with Op's fields), got {history!r}"[:200])
    ops = [_validated(i, op, model) for i, op in enumerate(history)]
    if model.validate is not None:
        wrong = model.validate(model.init, ops)
        if wrong is not None:
            i, what = wrong
            raise ConfigError(f"{_where(i, ops[i])}: {what}")
    by_key: dict[Hashable, list[Op]] = {}
    for op in ops:
        if op.ret is None and op.kind in model.reads:
            continue                     # a read that never answered changed nothing
        by_key.setdefault(op.key, []).append(op)
    too_large: list[str] = []
    for key, part in sorted(by_key.items(), key=lambda item: len(item[1])):
        try:
            outcome = search(part, model, max_states, key)
        except SearchTooLarge as exc:
            too_large.append(str(exc))
            continue
        if outcome.ok:
            continue
        window, minimal = list(part), False
        if minimize:
            window, minimal = failure_window(
                part, outcome.prefix, outcome.blocked, model, key,
                max(_WINDOW_FLOOR, outcome.visited))
        return CheckResult(False, len(ops), len(by_key), key,
                           tuple(sorted(window, key=by_call)), minimal)
    if too_large:
        raise SearchTooLarge(f"undecided: no key failed, but {len(too_large)} of "
                             f"{len(by_key)} had no verdict: " + "; ".join(too_large))
    return CheckResult(True, len(ops), len(by_key))


def _where(i: int, op: Op) -> str:
    return f"operation {i} (client {op.client!r}, {op.kind})"


def _validated(i: int, op: Op | Mapping[str, Any], model: Model) -> Op:
    """`op` as an Op, refused with a message naming its position, client and
    the field that is wrong. ret None is the one way to say "never returned"."""
    if isinstance(op, Mapping):
        try:
            op = Op(**op)
        except TypeError as error:
            raise TypeError(f"operation {i}: {error}; an Op has the fields "
                            f"{', '.join(Op._fields)}") from None
    if not isinstance(op, Op):
        raise TypeError(f"a history holds labkit.check.Op values, got {op!r} "
                        f"(operation {i})")
    if op.kind not in model.kinds:
        raise ConfigError(f"{_where(i, op)}: kind must be one of {model.kinds}, "
                          f"got {op.kind!r}")
    if not _finite(op.call):
        raise ConfigError(f"{_where(i, op)}: call must be a finite number (the time "
                          f"of the call), got {op.call!r}")
    if op.ret is not None and not _finite(op.ret):
        raise ConfigError(f"{_where(i, op)}: ret must be a finite number (the time "
                          f"of the answer), or None if no answer came, got "
                          f"{op.ret!r}")
    if op.ret is not None and not op.call <= op.ret:
        raise ConfigError(f"{_where(i, op)}: returns before it was called: {op}")
    for field in ("key", "value", "output"):
        try:
            hash(getattr(op, field))
        except TypeError:
            raise ConfigError(f"{_where(i, op)}: {field} must be hashable (a str, "
                              f"number, tuple or None), got "
                              f"{getattr(op, field)!r}") from None
    return op


def _finite(t: Any) -> bool:
    """A time: a real number (not a bool), neither infinite nor NaN."""
    return isinstance(t, numbers.Real) and not isinstance(t, bool) and \
        math.isfinite(t)
