"""What a history is made of (`Op`) and what it is checked against (`Model`).

A model is the sequential specification of one object (one key): the state it
starts in, which operation kinds it knows, `step` (may this operation happen in
this state, and what state follows), and `observes` (does a read show that a
given write took effect; the failure window never drops such a write while it
keeps the read, so a window is impossible for a reason the history really has).

Two models come with labkit: `KV` (get, put, append on a string register, as the
key-value stores of the course) and `REGISTER` (read, write, compare-and-swap, as
Jepsen's register tests). A custom model is a `Model(init, step, observes, kinds)`;
states must be hashable, and the cheaper they are to hash and compare the faster
the search (the checker interns each distinct state once and memoises `step`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

from labkit.errors import ConfigError

KINDS = ("get", "put", "append")


class Op(NamedTuple):
    """One client operation on one key, as the client saw it.

    kind: one of the model's kinds. With `KV`: "get" (reads `output`), "put" (sets
    the key to `value`) or "append" (adds the string `value` to the end; a missing
    key counts as ""). With `REGISTER`: "read" (reads `output`), "write" (sets
    `value`), "cas" (`value` is `(expected, new)`: sets new if the register holds
    expected, else must not have happened).
    call, ret: times of the call and of the answer, finite numbers; ret None (and
    nothing else: not inf) means no answer ever came (the operation may or may
    not have taken effect). A missing key reads as None. key, value and output
    must be hashable, and compare as Python compares them: 1, 1.0 and True are
    one value here (and the EDN reader's 1/2 is 0.5), where Jepsen's Clojure
    tells them apart; give values of one type when the difference matters.
    """

    client: str
    kind: str
    key: Hashable
    value: Any = None
    output: Any = None
    call: float = 0.0
    ret: float | None = None

    def __str__(self) -> str:
        end = "never returned" if self.ret is None else f"{self.ret:.4f}"
        return f"{self.client}: {self._what()}  [{self.call:.4f}, {end}]"

    def _what(self) -> str:
        k = self.key
        if self.kind in ("get", "read"):
            return f"{self.kind} {k} -> {self.output!r}"
        if self.kind in ("put", "write"):
            return f"{self.kind} {k} = {self.value!r}"
        if self.kind == "append":
            return f"append {k} += {self.value!r}"
        if self.kind == "cas" and isinstance(self.value, tuple) and \
                len(self.value) == 2:
            return f"cas {k} {self.value[0]!r} -> {self.value[1]!r}"
        return f"{self.kind} {k} {self.value!r} -> {self.output!r}"


class Model(NamedTuple):
    """A sequential specification for one key's operations.

    init: the state before any operation (hashable).
    step(state, op) -> (allowed, next state): whether `op`, with its recorded
    output, could happen in `state`, and the state after it. It must be a pure
    function of its arguments (the search calls it again and again).
    observes(read, write) -> bool: whether `read`'s recorded output may show that
    `write` took effect. Say True when in doubt: the failure window then keeps
    more, but never blames a read for a value that a dropped write gave it.
    kinds: the operation kinds `step` understands; others are refused up front.
    overwrites: the kinds whose state afterwards does not depend on the state
    before (a put, a write, a compare-and-swap that happened). A window may leave
    out a write that such an operation surely overwrote before a read was called.
    reads: the kinds that never change the state. The search linearizes such an
    operation as soon as it is allowed, and drops one that never returned.
    validate(init, ops) -> None, or (position in `ops`, what is wrong): a look
    at the whole history before any search, for values `step` cannot handle
    (e.g. KV: an append of something other than a str, or onto a key a put
    gives an int).

    `step` must look only at the operation's kind, value and output (the search
    treats operations that agree on those as interchangeable).
    """

    init: Hashable
    step: Callable[[Hashable, Op], tuple[bool, Hashable]]
    observes: Callable[[Op, Op], bool]
    kinds: tuple[str, ...] = KINDS
    overwrites: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    validate: Callable[[Hashable, Sequence[Op]], tuple[int, str] | None] | None = None

    def starting(self, init: Hashable) -> Model:
        """The same model with another initial state (e.g. "" or 0)."""
        return self._replace(init=init)


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
    if isinstance(read.output, str) and isinstance(write.value, str):
        return read.output.startswith(write.value)     # appends may follow a put
    return read.output == write.value


def _kv_validate(init: Hashable, ops: Sequence[Op]) -> tuple[int, str] | None:
    """An append adds a str to a str: its value must be a str, and so must the
    value of every put on a key that is appended to (or None: missing), and
    the state the model starts in."""
    appended: dict[Hashable, int] = {}
    for i, op in enumerate(ops):
        if op.kind == "append":
            if not isinstance(op.value, str):
                return i, f"an append's value must be a str, got {op.value!r}"
            appended.setdefault(op.key, i)
            if not isinstance(init, str | None):
                return i, (f"an append adds a str onto a str, but the model starts "
                           f"every key at {init!r}")
    for i, op in enumerate(ops):
        if op.kind == "put" and op.key in appended and \
                not isinstance(op.value, str | None):
            j = appended[op.key]
            return i, (f"value must be a str (or None) on key {op.key!r}, which "
                       f"operation {j} (client {ops[j].client!r}) appends to, got "
                       f"{op.value!r}")
    return None


#: Registers with put/get/append, one register per key, all starting missing.
KV = Model(init=None, step=_kv_step, observes=_kv_observes, overwrites=("put",),
           reads=("get",), validate=_kv_validate)


def _register_step(state: Any, op: Op) -> tuple[bool, Any]:
    if op.kind == "read":
        return op.output == state, state
    if op.kind == "write":
        return True, op.value
    if not (isinstance(op.value, tuple) and len(op.value) == 2):
        raise ConfigError(f"a cas needs value=(expected, new), got {op.value!r}")
    expected, new = op.value
    return state == expected, new


def _register_validate(init: Hashable, ops: Sequence[Op]) -> tuple[int, str] | None:
    for i, op in enumerate(ops):
        if op.kind == "cas" and not (isinstance(op.value, tuple)
                                     and len(op.value) == 2):
            return i, f"a cas needs value=(expected, new), got {op.value!r}"
    return None


def _register_observes(read: Op, write: Op) -> bool:
    if read.kind == "read":
        seen = read.output
    elif read.kind == "cas":
        seen = read.value[0]
    else:
        return False
    if write.kind == "write":
        return write.value == seen
    return write.kind == "cas" and write.value[1] == seen


#: A register with read, write and compare-and-swap per key, starting at None
#: (`REGISTER.starting(0)` for one that starts at 0, as Jepsen's do).
REGISTER = Model(init=None, step=_register_step, observes=_register_observes,
                 kinds=("read", "write", "cas"), overwrites=("write", "cas"),
                 reads=("read",), validate=_register_validate)
