"""The search behind `linearizable`: is one key's history linearizable?

Wing & Gong's backtracking search with Lowe's and Porcupine's memo. Entries
0..n-1 are calls, n..2n-1 the matching returns, in a doubly linked list sorted by
time (a call before a return at the same instant: such operations count as
concurrent). The search linearizes an operation whose call comes before the first
return still in the list, lifting both its entries out; when a return comes first
it backtracks. A configuration is (operations done, state): the done-set is an
int bitset and the state the model's own (hashable, so keep it cheap), and no
configuration is visited twice.

Two more cuts, sound for every model whose `step` looks only at an operation's
kind, value and output:
- a read (`Model.reads`: it changes no state) that is allowed now is linearized
  at once with no alternative tried. Any order that works from here still works
  with it moved to the front: everything that must precede it is done, and it
  changes nothing. (Not so for a write of the value already there: later on, it
  might be the write that a read needs.)
- of two identical operations that never returned, the later-called one is only
  linearized after the other (Jepsen histories hold many timed-out writes of the
  same few values). Swapping the two in any order keeps it valid.

When no order exists, the search also says how far it got: the return that no
configuration could get past. The operations called before that return are the
shortest failing prefix of the history (the failure window starts from it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable
from typing import NamedTuple

from labkit.check.models import Model, Op


class SearchTooLarge(RuntimeError):
    """The search visited `max_states` configurations without a verdict: many
    long-overlapping appends to one key can make it exponential (each order is a
    different string). Check a shorter history, or write with put."""


class Outcome(NamedTuple):
    """ok: a linearization exists. Otherwise `prefix` holds the operations called
    before the return nobody could get past (a failing history on its own) and
    `blocked` the operation whose return that is. `visited`: configurations."""

    ok: bool
    visited: int
    prefix: tuple[Op, ...] = ()
    blocked: Op | None = None


def search(ops: list[Op], model: Model, limit: int, key: Hashable = None
           ) -> Outcome:
    """Decide whether `ops` (one key's operations) can be linearized under
    `model`; raise SearchTooLarge after `limit` configurations."""
    n = len(ops)
    head, tail = 2 * n, 2 * n + 1
    times = [op.call for op in ops] + [math.inf if op.ret is None else op.ret
                                       for op in ops]
    order = sorted(range(2 * n), key=lambda e: (times[e], e >= n, e))
    rank = [0] * (2 * n)
    for position, e in enumerate(order):
        rank[e] = position
    nxt, prv = [0] * (2 * n + 2), [0] * (2 * n + 2)
    for a, b in itertools.pairwise([head, *order, tail]):
        nxt[a], prv[b] = b, a
    bits = [1 << i for i in range(n)]
    twin = _twins(ops)
    pure = [op.kind in model.reads for op in ops]

    step = model.step
    state, done, furthest = model.init, 0, -1
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable, bool]] = []     # (operation, state before, forced)
    entry = nxt[head]
    while entry != tail:
        if entry < n:                           # a call: try to linearize it now
            earlier = twin[entry]
            if earlier and not done & earlier:  # its earlier twin goes first
                entry = nxt[entry]
                continue
            allowed, after = step(state, ops[entry])
            if not allowed:
                entry = nxt[entry]
                continue
            config = (done | bits[entry], after)
            if config not in seen:
                seen.add(config)
                if len(seen) > limit:
                    raise SearchTooLarge(
                        f"key {key!r}: no verdict after {limit} configurations "
                        f"of {n} operations")
                stack.append((entry, state, pure[entry]))
                state, done = after, config[0]
                for x in (entry, entry + n):      # lift both entries out
                    nxt[prv[x]], prv[nxt[x]] = nxt[x], prv[x]
                entry = nxt[head]
                continue
            if not pure[entry]:
                entry = nxt[entry]
                continue
            # else: a read whose configuration failed before; so does this one
        elif times[entry] == math.inf:
            return Outcome(True, len(seen))     # only never-returned operations left
        else:                                   # a return: it came before its call
            furthest = max(furthest, rank[entry])
        while True:                             # undo choices until one has a sibling
            if not stack:
                return _failed(ops, order, furthest, n, len(seen))
            entry, state, forced = stack.pop()
            done &= ~bits[entry]
            for x in (entry + n, entry):        # put both entries back
                nxt[prv[x]] = prv[nxt[x]] = x
            if not forced:
                break
        entry = nxt[entry]
    return Outcome(True, len(seen))


def _twins(ops: list[Op]) -> list[int]:
    """For each never-returned operation, the bit of the latest earlier-called
    identical one (same kind, value and output), else 0."""
    latest: dict[tuple, int] = {}
    twin = [0] * len(ops)
    for i in sorted(range(len(ops)), key=lambda i: (ops[i].call, i)):
        op = ops[i]
        if op.ret is None:
            same = (op.kind, op.value, op.output)
            if same in latest:
                twin[i] = 1 << latest[same]
            latest[same] = i
    return twin


def _failed(ops: list[Op], order: list[int], furthest: int, n: int,
            visited: int) -> Outcome:
    blocked = order[furthest] - n
    prefix = tuple(ops[e] for e in order[:furthest] if e < n)
    return Outcome(False, visited, prefix, ops[blocked])
