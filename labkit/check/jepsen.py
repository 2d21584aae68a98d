"""Read the histories that other checkers publish as test data, as labkit `Op`s.

Jepsen writes histories as EDN: one map per event, `{:process 3, :type :invoke,
:f :write, :value 2}`, then `:ok` (it happened), `:fail` (it did not) or `:info`
(unknown: it may have happened at any time after its call) for the same process.
Knossos' register histories and Porcupine's key-value logs both use this form,
so one small EDN reader serves both; the event's position in the file is its time.

    read_knossos(text)    -> ops on one register ("read", "write", "cas")
    read_porcupine(text)  -> key-value ops ("get", "put", "append"), keys from ":key"

An `:ok` read whose value is nil tells nothing (Knossos' rule) and is left out; so
are operations that `:fail`ed. A call with no completion never returned. Events of
a process that is not a number (Jepsen's `:nemesis`, injecting faults) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from labkit.check.models import Op

_TOKEN = re.compile(r"""
    (?P<space>[\s,]+|;[^\n]*)
  | (?P<open>[\[({])
  | (?P<close>[\])}])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<keyword>:[^\s,\[\](){}";]+)
  | (?P<number>[+-]?\d[^\s,\[\](){}";]*)
  | (?P<symbol>[^\s,\[\](){}";]+)
""", re.VERBOSE)

# What a token that starts like a number (a digit, or + or - and a digit) must
# be: EDN's integers and floats, with Clojure's ratios (and its `1.` for 1.0).
# Decimal only: EDN has no octal, hex or radix, and allows no integer (or integer
# part of a float) but 0 to start with 0.
_NUMBER = re.compile(r"""
    (?P<sign>[+-]?)
    (?: (?P<int>0|[1-9]\d*) (?P<big>N)?                      # 7, -7, +7, 7N
      | (?P<numerator>\d+) / (?P<denominator>\d+)             # 1/2, -4/2
      | (?P<float>(?:0|[1-9]\d*) (?=[.eEM])                    # 1.5, 1e3, 1.5M, 1M
                  (?:\.\d*)? (?:[eE][+-]?\d+)?) (?P<exact>M)?
    )""", re.VERBOSE)
_CLOSERS = {"[": "]", "(": ")", "{": "}"}
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


class Keyword(str):
    """An EDN keyword such as `:ok`, kept apart from strings (its name, no colon)."""


class EdnMap(dict):
    """An EDN map, as a dict that also knows the `line` (from 1) it opens on."""

    line: int = 0


def read_edn(text: str) -> list[Any]:
    """Every top-level EDN form in `text`: maps become dicts, vectors and lists
    become lists, keywords `Keyword`, nil None, strings str. Numbers: `7`,
    `+7`, `7N` int; `1.5`, `1e3`, `-2.5E+10` float; `1.5M` (exact) Decimal;
    the ratio `1/2` Fraction (`4/2` is the int 2). A token that starts with a
    digit, or with + or - and a digit, and is none of these is refused
    (ValueError naming the line); `-`, `+`, `->`, `-foo` are symbols (str)."""
    stack: list[tuple[str, list, int, int]] = [("", [], 0, 0)]
    line, counted = 1, 0                  # the line of text[counted]
    for match in _TOKEN.finditer(text):
        kind, token = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind == "open":
            line += text.count("\n", counted, match.start())
            counted = match.start()
            stack.append((token, [], line, match.start()))
            continue
        if kind == "close":
            opener, items, opened, offset = stack.pop()
            if not opener or _CLOSERS[opener] != token:
                raise ValueError(f"unbalanced {token!r} at offset {match.start()}")
            if opener == "{":
                if len(items) % 2:
                    raise ValueError(f"line {opened}: a map needs a value after "
                                     f"every key, but this one holds {len(items)} "
                                     f"forms: {text[offset:match.end()][:80]!r}")
                value = EdnMap(zip(items[::2], items[1::2], strict=True))
                value.line = opened
            else:
                value = items
        elif kind == "string":
            value = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)),
                                token[1:-1])
        elif kind == "keyword":
            value = Keyword(token[1:])
        elif kind == "number":
            value = _number(token, line + text.count("\n", counted, match.start()))
        else:
            value = {"nil": None, "true": True, "false": False}.get(token, token)
        stack[-1][1].append(value)
    if len(stack) != 1:
        raise ValueError(f"unclosed {stack[-1][0]!r} at the end of the text")
    return stack[0][1]


def _number(token: str, line: int) -> int | float | Decimal | Fraction:
    """The value of a number token: an int (with or without N, EDN's arbitrary
    precision, which Python's int already is), a float (a fraction and/or an
    exponent), a Decimal (M), or a Fraction (a ratio; an int when the
    denominator divides the numerator, as Clojure reads 4/2 as 2)."""
    number = _NUMBER.fullmatch(token)
    if number is None or number["denominator"] and int(number["denominator"]) == 0:
        raise ValueError(f"line {line}: invalid number {token!r}")
    sign = number["sign"]
    if number["int"] is not None:
        return int(sign + number["int"])
    if number["denominator"] is not None:
        ratio = Fraction(int(sign + number["numerator"]), int(number["denominator"]))
        return ratio.numerator if ratio.denominator == 1 else ratio
    if number["exact"]:
        # M asks for exact precision (Clojure's BigDecimal). Decimal rather than
        # Fraction: it is BigDecimal's own kind (digits and an exponent), keeps
        # the digits as written, and stays small for 1e999999M, which as a
        # Fraction would be a million-digit int. It is hashable and compares
        # (and hashes) equal to the int, float or Fraction of the same value,
        # which is all a checker does with a value; arithmetic mixing it with a
        # float would raise TypeError, but the reader does none.
        return Decimal(sign + number["float"])
    return float(sign + number["float"])


def events(text: str) -> list[dict]:
    """The event maps of a history file: a single vector or list of maps, or maps
    one after another."""
    forms = read_edn(text)
    if len(forms) == 1 and isinstance(forms[0], list):
        forms = forms[0]
    if not all(isinstance(form, dict) for form in forms):
        raise ValueError("a history is a sequence of EDN maps")
    return forms


_TYPES = ("invoke", "ok", "fail", "info")


def _at(time: int, event: dict) -> str:
    """Where an event is: its line, if the reader knows it, and its number."""
    line = getattr(event, "line", 0)
    return f"line {line} (event {time})" if line else f"event {time}"


def pair(text: str, make: Callable[[dict, dict | None, int, int | None], Op | None]
         ) -> list[Op]:
    """Match each completion to its process's open call and build one Op per
    pair with `make(call_event, completion_or_None, call_time, return_time)`
    (None to leave it out). `:fail` pairs are left out, `:info` never returned.
    A process calls one operation at a time: a second `:invoke` before the
    first completes, a completion with no call, or a `:type` other than
    :invoke, :ok, :fail and :info is refused (ValueError naming the line)."""
    open_calls: dict[Any, tuple[int, dict]] = {}
    ops: list[tuple[int, Op]] = []
    for time, event in enumerate(events(text)):
        process, kind = event.get(Keyword("process")), event.get(Keyword("type"))
        if not isinstance(process, int):
            continue                            # the nemesis, injecting faults
        if kind not in _TYPES:
            shown = f":{kind}" if isinstance(kind, Keyword) else repr(kind)
            raise ValueError(f"{_at(time, event)}: process {process} has :type "
                             f"{shown}; an event is :invoke, :ok, :fail or :info")
        if kind == "invoke":
            if process in open_calls:
                start, call = open_calls[process]
                raise ValueError(f"{_at(time, event)}: process {process} invokes "
                                 f"again, but its call at {_at(start, call)} has "
                                 "not completed (no :ok, :fail or :info)")
            open_calls[process] = (time, event)
            continue
        if process not in open_calls:
            raise ValueError(f"{_at(time, event)}: a :{kind} for process {process} "
                             "with no call")
        start, call = open_calls.pop(process)
        if kind == "fail":
            continue
        op = make(call, event if kind == "ok" else None, start,
                  time if kind == "ok" else None)
        if op is not None:
            ops.append((start, op))
    for start, call in open_calls.values():
        op = make(call, None, start, None)
        if op is not None:
            ops.append((start, op))
    return [op for _, op in sorted(ops, key=lambda pair: pair[0])]


def _field(event: dict, name: str) -> Any:
    return event.get(Keyword(name))


def read_knossos(text: str, key: str = "r") -> list[Op]:
    """Knossos' compare-and-swap register histories: `:read`, `:write` and
    `:cas` (value `[from to]`) on one register, named `key`."""
    def make(call: dict, done: dict | None, start: int, end: int | None) -> Op | None:
        f, client = _field(call, "f"), str(_field(call, "process"))
        if f == "read":
            output = None if done is None else _field(done, "value")
            if output is None:                  # unknown value: constrains nothing
                return None
            return Op(client, "read", key, None, output, start, end)
        if f == "write":
            return Op(client, "write", key, _field(call, "value"), None, start, end)
        if f == "cas":
            return Op(client, "cas", key, tuple(_field(call, "value")), None, start,
                      end)
        raise ValueError(f"event {start}: unknown register operation {f!r}")
    return pair(text, make)


def read_porcupine(text: str) -> list[Op]:
    """Porcupine's key-value logs: `:get`, `:put` and `:append` with a `:key`;
    every key starts as "" (check them with `KV.starting("")`)."""
    def make(call: dict, done: dict | None, start: int, end: int | None) -> Op | None:
        f, client = _field(call, "f"), str(_field(call, "process"))
        key = _field(call, "key")
        if f == "get":
            if done is None:
                return None
            return Op(client, "get", key, None, _field(done, "value"), start, end)
        if f in ("put", "append"):
            return Op(client, f, key, _field(call, "value"), None, start, end)
        raise ValueError(f"event {start}: unknown key-value operation {f!r}")
    return pair(text, make)
