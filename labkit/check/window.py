"""The failure window: a few operations of the failing key that on their own
already admit no order, so a person can see why.

A window must keep, for each of its reads, the writes the read may have seen;
otherwise dropping one would leave a read of a value nobody wrote, a failure
the history does not have. A write counts as seen if the read observes it
(`Model.observes`), it was called before the read returned, and no other write
the read observes surely came between them (an overwriting one, `Model.overwrites`,
called after the write returned and returned before the read was called). With
that rule a failing window proves the whole history fails: a linearization of
the history, restricted to the window, would be one of the window.

How it is found, cheaply. The search already gives the shortest failing prefix
and the operation whose return it could not get past. Growing from that
operation, it adds the other operations of the prefix latest-called first,
doubling how many (1, 2, 4, ...) until the window fails; then it drops chunks,
halving the chunk size (one by one in a small window), while the rest still
fails (delta debugging). Every
search here runs on a few operations, and all of them together may visit no more
configurations than `budget`; if that runs out the window returned is the
smallest failing one found so far, and says it is not minimal.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from labkit.check.models import Model, Op
from labkit.check.search import SearchTooLarge, search

#: Windows up to this size are shrunk one operation at a time.
_ONE_BY_ONE = 16


def by_call(op: Op) -> tuple:
    """Sort key: call time, then return time (never returned last), client."""
    return (op.call, _end(op), op.client)


def _end(op: Op) -> float:
    return math.inf if op.ret is None else op.ret


class _Needs:
    """For an operation (by position in `ops`), the positions of the writes a
    window that keeps it must keep too; computed when first asked."""

    def __init__(self, ops: list[Op], model: Model):
        self.ops, self.model = ops, model
        self.cache: dict[int, frozenset[int]] = {}

    def __call__(self, i: int) -> frozenset[int]:
        if i not in self.cache:
            ops, read, model = self.ops, self.ops[i], self.model
            seen = [j for j, write in enumerate(ops) if j != i
                    and write.call <= _end(read) and model.observes(read, write)]
            latest = max((ops[k].call for k in seen if ops[k].kind in model.overwrites
                          and _end(ops[k]) < read.call), default=-math.inf)
            self.cache[i] = frozenset(j for j in seen if not _end(ops[j]) < latest)
        return self.cache[i]


class _Budget:
    """Configurations the window's searches may still visit."""

    def __init__(self, left: int):
        self.left = left

    def fails(self, ops: list[Op], model: Model, key: Hashable) -> bool:
        """Whether `ops` admit no order; SearchTooLarge once the budget is spent."""
        if self.left <= 0:
            raise SearchTooLarge("the window's budget is spent")
        outcome = search(ops, model, self.left, key)
        self.left -= outcome.visited
        return not outcome.ok


def failure_window(ops: list[Op], prefix: tuple[Op, ...], blocked: Op,
                   model: Model, key: Hashable, budget: int) -> tuple[list[Op], bool]:
    """A failing window among one key's `ops`, grown from the failing `prefix`
    (where `blocked`'s return is where every order got stuck), and whether it is
    minimal: dropping any chunk of it either leaves a read without a write it
    needs or lets the rest be ordered."""
    pool = sorted(ops, key=by_call)
    needs = _Needs(pool, model)
    position = {id(op): i for i, op in enumerate(pool)}
    near = sorted((position[id(op)] for op in prefix), key=lambda i: (
        pool[i] is not blocked, -pool[i].call, -_end(pool[i]), pool[i].client))
    spend = _Budget(budget)
    kept = list(range(len(pool)))
    try:
        size = 1
        while size < 2 * len(near):
            trial = _closed(near[:size], needs)
            if len(trial) < len(kept) and spend.fails([pool[i] for i in trial],
                                                      model, key):
                kept = trial
                break
            size *= 2
        kept = _shrink(kept, pool, needs, model, key, spend)
        return [pool[i] for i in kept], True
    except SearchTooLarge:
        return [pool[i] for i in kept], False


def _closed(chosen: list[int], needs: _Needs) -> list[int]:
    """`chosen` plus the writes its reads need, and theirs, in call order."""
    kept, todo = set(chosen), list(chosen)
    while todo:
        for j in needs(todo.pop()) - kept:
            kept.add(j)
            todo.append(j)
    return sorted(kept)


def _shrink(kept: list[int], pool: list[Op], needs: _Needs, model: Model,
            key: Hashable, spend: _Budget) -> list[int]:
    """Delta debugging: drop chunks, halving the chunk size, while the rest still
    fails and no kept read loses a write it needs. A small window goes one
    operation at a time from the start, so it keeps the operations closest to
    where the history failed."""
    size = 1 if len(kept) <= _ONE_BY_ONE else len(kept) // 2
    while True:
        start, shrunk = 0, False
        while start < len(kept):
            chunk, rest = kept[start:start + size], kept[:start] + kept[start + size:]
            dropped = frozenset(chunk)
            orphans = any(needs(i) & dropped for i in rest)
            if not orphans and spend.fails([pool[i] for i in rest], model, key):
                kept, shrunk = rest, True
            else:
                start += size
        if not shrunk:
            if size == 1:
                return kept
            size //= 2
