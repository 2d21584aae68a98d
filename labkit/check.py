"""Linearizability: could a recorded history of key-value operations have come
from one copy of the data, each operation taking effect at one instant between
its call and its return?

`linearizable(history)` answers with Wing & Gong's search, memoised as in
Lowe's and Porcupine's checkers: linearize an operation whose call is pending,
backtrack when some operation returns before it was linearized, and never visit
the same (set of operations done, state) twice. The history is split by key
first (a history is linearizable iff each key's sub-history is), which keeps
every search small. On failure the result names the key and a minimal window:
a few operations of that key that on their own are already impossible.

An operation that never returned (`ret=None`, e.g. its client timed out) may
have taken effect at any moment after its call, or never; a `get` that never
returned is ignored.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from labkit.errors import ConfigError, require_int

KINDS = ("get", "put", "append")


class SearchTooLarge(RuntimeError):
    """The search visited `max_states` configurations without a verdict: many
    long-overlapping appends to one key can make it exponential (each order is a
    different string). Check a shorter history, or write with put."""


class Op(NamedTuple):
    """One client operation on one key, as the client saw it.

    kind: "get" (reads `output`), "put" (sets the key to `value`) or "append"
    (adds the string `value` to the end; a missing key counts as "").
    call, ret: simulated times of the call and of the answer; ret None means no
    answer ever came (the operation may or may not have taken effect).
    A missing key reads as None.
    """

    client: str
    kind: str
    key: Hashable
    value: Any = None
    output: Any = None
    call: float = 0.0
    ret: float | None = None

    def __str__(self) -> str:
        what = {"get": f"get {self.key} -> {self.output!r}",
                "put": f"put {self.key} = {self.value!r}",
                "append": f"append {self.key} += {self.value!r}"}[self.kind]
        end = "never returned" if self.ret is None else f"{self.ret:.4f}"
        return f"{self.client}: {what}  [{self.call:.4f}, {end}]"


class Model(NamedTuple):
    """A sequential specification for one key's operations.

    init: the state before any operation. step(state, op) -> (allowed, next
    state). observes(read, write): whether `read`'s output shows `write` took
    effect (a minimal window never drops such a write while keeping the read).
    """

    init: Hashable
    step: Callable[[Hashable, Op], tuple[bool, Hashable]]
    observes: Callable[[Op, Op], bool]


def _kv_step(state: Any, op: Op) -> tuple[bool, Any]:
    if op.kind == "get":
        return op.output == state, state
    if op.kind == "put":
        return True, op.value
    return True, (state or "") + op.value


def _kv_observes(read: Op, write: Op) -> bool:
    if read.kind != "get" or write.kind == "get" or read.output is None:
        return False
    if write.kind == "append":
        return isinstance(read.output, str) and write.value in read.output
    return read.output == write.value


#: Registers with put/get/append, one register per key, all starting missing.
KV = Model(init=None, step=_kv_step, observes=_kv_observes)


@dataclass(frozen=True)
class CheckResult:
    """What `linearizable` found. `ok` is the verdict; if it is False, `key` is a
    key whose operations cannot be linearized and `window` a minimal set of its
    operations (by call time) that on its own cannot be either: drop any one and
    the rest can (an operation a kept read observed is never dropped alone)."""

    ok: bool
    operations: int
    keys: int
    key: Hashable = None
    window: tuple[Op, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        """The verdict, and the window one operation per line."""
        if self.ok:
            return (f"linearizable: {self.operations} operations on "
                    f"{self.keys} keys")
        lines = [f"NOT linearizable: key {self.key!r}; these "
                 f"{len(self.window)} operations admit no order:"]
        return "\n".join(lines + [f"  {op}" for op in self.window])

    def __repr__(self) -> str:
        if self.ok:
            return f"CheckResult(ok, {self.operations} ops, {self.keys} keys)"
        return (f"CheckResult(NOT linearizable, key={self.key!r}, "
                f"window of {len(self.window)} ops)")


def linearizable(history: Iterable[Op | Mapping[str, Any]], *, model: Model = KV,
                 minimize: bool = True, max_states: int = 1_000_000) -> CheckResult:
    """Check a history of operations (Op values, or mappings with Op's fields)
    against `model`, key by key. With `minimize` a failure comes with a minimal
    window; without it, the window is every operation of the failing key.
    Raises SearchTooLarge after visiting `max_states` configurations of a key."""
    require_int("max_states", max_states, minimum=1)
    ops = [_validated(op) for op in history]
    by_key: dict[Hashable, list[Op]] = {}
    for op in ops:
        if op.kind == "get" and op.ret is None:
            continue                     # a read that never answered changed nothing
        by_key.setdefault(op.key, []).append(op)
    for key, part in by_key.items():
        search = functools.partial(_search, model=model, key=key, limit=max_states)
        if not search(part):
            window = _minimal(part, search, model) if minimize else part
            return CheckResult(False, len(ops), len(by_key), key,
                               tuple(sorted(window, key=_by_call)))
    return CheckResult(True, len(ops), len(by_key))


def _validated(op: Op | Mapping[str, Any]) -> Op:
    if isinstance(op, Mapping):
        op = Op(**op)
    if not isinstance(op, Op):
        raise TypeError(f"a history holds labkit.check.Op values, got {op!r}")
    if op.kind not in KINDS:
        raise ConfigError(f"operation kind must be one of {KINDS}, got {op.kind!r}")
    if op.ret is not None and not op.call <= op.ret:
        raise ConfigError(f"operation returns before it was called: {op}")
    return op


def _by_call(op: Op) -> tuple:
    return (op.call, math.inf if op.ret is None else op.ret, op.client)


def _search(ops: list[Op], *, model: Model, key: Hashable, limit: int) -> bool:
    """Wing & Gong's backtracking search with a cache of visited configurations.

    Entries 0..n-1 are calls, n..2n-1 the matching returns, in a doubly linked
    list sorted by time (a call before a return at the same instant: such
    operations count as concurrent). Linearizing an operation lifts both its
    entries out of the list; backtracking puts them back.
    """
    n = len(ops)
    head, tail = 2 * n, 2 * n + 1
    times = [op.call for op in ops] + [math.inf if op.ret is None else op.ret
                                       for op in ops]
    order = sorted(range(2 * n), key=lambda e: (times[e], e >= n, e))
    nxt, prv = [0] * (2 * n + 2), [0] * (2 * n + 2)
    chain = [head, *order, tail]
    for a, b in itertools.pairwise(chain):
        nxt[a], prv[b] = b, a

    def lift(e: int) -> None:
        for x in (e, e + n):
            nxt[prv[x]], prv[nxt[x]] = nxt[x], prv[x]

    def unlift(e: int) -> None:
        for x in (e + n, e):
            nxt[prv[x]] = prv[nxt[x]] = x

    step, state, done = model.step, model.init, 0
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable]] = []
    entry = nxt[head]
    while entry != tail:
        if entry < n:                            # a call: try to linearize it now
            allowed, after = step(state, ops[entry])
            if allowed and (done | 1 << entry, after) not in seen:
                seen.add((done | 1 << entry, after))
                if len(seen) > limit:
                    raise SearchTooLarge(f"key {key!r}: no verdict after {limit} "
                                         f"configurations of {n} operations")
                stack.append((entry, state))
                state, done = after, done | 1 << entry
                lift(entry)
                entry = nxt[head]
            else:
                entry = nxt[entry]
        elif times[entry] == math.inf:
            return True                          # only never-returned operations left
        elif not stack:
            return False                         # it returned before any order fits
        else:                                    # undo the latest choice, try the next
            entry, state = stack.pop()
            done &= ~(1 << entry)
            unlift(entry)
            entry = nxt[entry]
    return True


def _minimal(ops: list[Op], search: Callable[[list[Op]], bool],
             model: Model) -> list[Op]:
    """A small failing sub-history: the shortest failing prefix (operations
    called up to the first return at which no order fits), then delta debugging:
    drop chunks of operations, halving the chunk size, while the rest still
    fails and no kept read loses a write it observed."""
    ends = sorted({op.ret for op in ops if op.ret is not None})
    lo, hi = 0, len(ends) - 1                    # the full history fails at ends[-1]
    while lo < hi:
        mid = (lo + hi) // 2
        if search([op for op in ops if op.call <= ends[mid]]):
            lo = mid + 1
        else:
            hi = mid
    kept = sorted((op for op in ops if op.call <= ends[lo]), key=_by_call)
    size = max(1, len(kept) // 2)
    while True:
        start, shrunk = 0, False
        while start < len(kept):
            chunk, rest = kept[start:start + size], kept[:start] + kept[start + size:]
            if not _orphans(chunk, rest, model) and not search(rest):
                kept, shrunk = rest, True
            else:
                start += size
        if not shrunk:
            if size == 1:
                return kept
            size //= 2


def _orphans(chunk: list[Op], rest: list[Op], model: Model) -> bool:
    """Whether dropping `chunk` would leave a read in `rest` without a write it
    observed."""
    return any(model.observes(read, write) for write in chunk for read in rest)
