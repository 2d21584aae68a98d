"""The checker against the published test histories of two other checkers
(data/peer-histories: Porcupine's key-value logs, Knossos' register histories):
every verdict their suites expect, a small window for each failure, and the
EDN reader that turns them into operations."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from labkit.check import KV, REGISTER, Model, Op, SearchTooLarge, linearizable
from labkit.check.jepsen import (
    Keyword,
    events,
    pair,
    read_edn,
    read_knossos,
    read_porcupine,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "peer-histories"
EXPECTED = json.loads((DATA / "expected.json").read_text())["verdicts"]


def text(path: str) -> str:
    return gzip.decompress((DATA / f"{path}.gz").read_bytes()).decode()


# -- Knossos' multi-register: a custom model (transactions over two registers) -------

def _txn_step(state: tuple, op: Op) -> tuple[bool, tuple]:
    values = dict(state)
    for f, register, value in op.value:
        if f == "read":
            if value is not None and values[register] != value:
                return False, state
        else:
            values[register] = value
    return True, tuple(sorted(values.items()))


def _txn_observes(read: Op, write: Op) -> bool:
    wrote = {(r, v) for f, r, v in write.value if f == "write"}
    return any(f == "read" and (r, v) in wrote for f, r, v in read.value)


MULTI = Model(init=(("x", 0), ("y", 0)), step=_txn_step, observes=_txn_observes,
              kinds=("txn",))


def read_multi(history: str) -> list[Op]:
    """Each transaction with the values its completion reports (reads of nil when
    it never completed, which constrain nothing)."""
    def make(call, done, start, end):
        micro = (done or call)[Keyword("value")]
        return Op(str(call[Keyword("process")]), "txn", "xy",
                  tuple((str(f), str(r), v) for f, r, v in micro), None, start, end)
    return pair(history, make)


def history(path: str) -> tuple[list[Op], Model]:
    if path.startswith("porcupine/"):
        return read_porcupine(text(path)), KV.starting("")
    if path.startswith("knossos/multi-register/"):
        return read_multi(text(path)), MULTI
    return read_knossos(text(path)), REGISTER.starting(0)


# -- every published verdict ---------------------------------------------------------

def test_all_published_histories_are_here():
    assert len(EXPECTED) == 127
    assert sorted(p.relative_to(DATA).as_posix()[:-3] for p in DATA.rglob("*.gz")) \
        == sorted(EXPECTED)
    assert sum(not ok for ok in EXPECTED.values()) == 10


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_the_published_verdict(path):
    ops, model = history(path)
    result = linearizable(ops, model=model)
    assert result.ok == EXPECTED[path], result.explain()
    if not result.ok:
        # A failure comes with a small window that fails on its own...
        assert result.minimal and 1 <= len(result.window) <= 12, result.explain()
        assert not linearizable(result.window, model=model, minimize=False).ok
        # ...made of operations of the history, of the key it names.
        assert set(result.window) <= set(ops)
        assert {op.key for op in result.window} == {result.key}


def test_a_failing_key_is_found_behind_an_undecidable_one():
    # Porcupine answers c50-bad by checking keys in parallel. In c50-bad, key "7"
    # (196 operations) takes millions of configurations and key "3" (206) fails
    # within a few thousand: labkit tries "7" first (smaller), gives up on it, and
    # must still reach "3".
    ops, model = history("porcupine/c50-bad.txt")
    both = [op for op in ops if op.key in ("7", "3")]
    result = linearizable(both, model=model, max_states=20_000)
    assert not result.ok and result.key == "3"
    with pytest.raises(SearchTooLarge, match=r"undecided: .* 1 of 1 .*key '7'"):
        linearizable([op for op in ops if op.key == "7"], model=model,
                     max_states=20_000)


def test_the_stale_read_in_rethink_fail_minimal_is_the_window():
    # The file's own comment: value 0, concurrent write 4 and read 3: "could
    # have been 0 or 4 but not 3". No one ever writes 3.
    ops, model = history("knossos/cas-register/bad/rethink-fail-minimal.edn")
    result = linearizable(ops, model=model)
    assert [(op.kind, op.output) for op in result.window] == [("read", 3)]


# -- the reader ------------------------------------------------------------------------

def test_edn_values():
    forms = read_edn('{:a 1, :b [2 -3.5 "x\\"y é"], :c nil} ; a comment\n(true :k)')
    assert forms == [{"a": 1, "b": [2, -3.5, 'x"y é'], "c": None}, [True, "k"]]
    assert all(isinstance(k, Keyword) for k in forms[0])
    assert not isinstance(forms[0]["b"][2], Keyword)


# Numbers as the EDN spec (and Clojure's reader, for N, M and ratios) writes them;
# each expected value is the spec's reading of the token, written out by hand.
@pytest.mark.parametrize("token,value,kind", [
    ("1", 1, int), ("-7", -7, int), ("+5", 5, int), ("0", 0, int), ("-0", 0, int),
    ("1N", 1, int), ("-12345678901234567890N", -12345678901234567890, int),
    ("1.0", 1.0, float), ("-3.5", -3.5, float), ("+2.25", 2.25, float),
    ("1e3", 1000.0, float), ("1E3", 1000.0, float), ("1e+3", 1000.0, float),
    ("1E-3", 0.001, float), ("1.5e-3", 0.0015, float),
    ("-2.5e+10", -25000000000.0, float), ("1.", 1.0, float),
    ("1.5M", Decimal("1.5"), Decimal), ("-0.1M", Decimal("-0.1"), Decimal),
    ("1M", Decimal(1), Decimal), ("2.5e-3M", Decimal("0.0025"), Decimal),
    ("1/2", Fraction(1, 2), Fraction), ("-3/4", Fraction(-3, 4), Fraction),
    ("+2/6", Fraction(1, 3), Fraction),
    ("4/2", 2, int), ("-9/3", -3, int), ("0/5", 0, int),  # Clojure: 4/2 is 2
])
def test_edn_numbers(token, value, kind):
    # Alone, in a vector (followed by a delimiter), and before a comment.
    for text, pick in ((token, lambda f: f[0]), (f"[{token}]", lambda f: f[0][0]),
                       (f"{token};c", lambda f: f[0])):
        read = pick(read_edn(text))
        assert read == value and type(read) is kind, (text, read)
    assert hash(read) == hash(value)


def test_an_exact_decimal_keeps_its_digits():
    # 0.1M is one tenth exactly, not the double nearest to it.
    assert read_edn("0.1M") == [Decimal("0.1")]
    assert read_edn("0.1M")[0] != 0.1 and read_edn("0.1M")[0] == Fraction(1, 10)


@pytest.mark.parametrize("token", ["-", "+", "->", "-foo", "+x", "-a1", "a1", "x/y",
                                   "foo/bar", "+-"])
def test_symbols_that_are_not_numbers_stay_symbols(token):
    assert read_edn(token) == [token] and not isinstance(read_edn(token)[0], Keyword)


@pytest.mark.parametrize("token", [
    "1.5N",             # N marks an integer only
    "1e3N", "1/2N", "1/2M",
    "1/0",              # Clojure: divide by zero
    "017", "0x1F",      # EDN: no integer but 0 starts with 0 (Clojure: octal, hex)
    "00.5",
    "1abc", "-1x", "1e", "1.2.3", "1/2/3",
])
def test_a_token_that_starts_like_a_number_must_be_one(token):
    with pytest.raises(ValueError, match=r"line 2: invalid number '.*'"):
        read_edn(f"[0\n {token}]")


def test_a_history_with_numbers_written_in_other_forms():
    # 1e1, 10, 10N, 10.0M and 20/2 are all ten: a register written 1e1 and read
    # as 10 (and so on) is linearizable, as it is for the peer (Clojure's =).
    log = """[{:process 0, :type :invoke, :f :write, :value 1e1}
              {:process 0, :type :ok, :f :write, :value 1e1}
              {:process 1, :type :invoke, :f :read, :value nil}
              {:process 1, :type :ok, :f :read, :value 10}
              {:process 2, :type :invoke, :f :cas, :value [10N +2e1]}
              {:process 2, :type :ok, :f :cas, :value [10N +2e1]}
              {:process 0, :type :invoke, :f :read, :value nil}
              {:process 0, :type :ok, :f :read, :value 20.0M}
              {:process 1, :type :invoke, :f :write, :value 1/2}
              {:process 1, :type :ok, :f :write, :value 1/2}
              {:process 2, :type :invoke, :f :read, :value nil}
              {:process 2, :type :ok, :f :read, :value 5e-1}]"""
    ops = read_knossos(log)
    assert [op.value if op.kind != "read" else op.output for op in ops] == [
        10, 10, (10, 20), 20, Fraction(1, 2), 0.5]
    assert linearizable(ops, model=REGISTER.starting(0)).ok
    # ...and the same history reading back a value nobody wrote is not.
    stale = log.replace(":value 20.0M", ":value 2e2")
    assert not linearizable(read_knossos(stale), model=REGISTER.starting(0)).ok


@pytest.mark.parametrize("bad,message", [
    ("[1 2", "unclosed"), ("[1 2)", "unbalanced"),
    ("{:a}", "line 1: a map needs a value after every key"),
    ("[{:a 1}\n {:b 2 :c}]", r"line 2: a map needs a value after every key.*:c"),
])
def test_edn_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        read_edn(bad)


def test_events_are_paired_by_process():
    log = """[{:process 0, :type :invoke, :f :write, :value 1}
              {:process 1, :type :invoke, :f :read, :value nil}
              {:process :nemesis, :type :info, :f :start}
              {:process 0, :type :ok, :f :write, :value 1}
              {:process 2, :type :invoke, :f :cas, :value [1 2]}
              {:process 1, :type :ok, :f :read, :value 1}
              {:process 3, :type :invoke, :f :write, :value 3}
              {:process 3, :type :fail, :f :write, :value 3}
              {:process 4, :type :invoke, :f :read, :value nil}
              {:process 4, :type :ok, :f :read, :value nil}
              {:process 5, :type :invoke, :f :write, :value 5}
              {:process 5, :type :info, :f :write, :value 5}]"""
    assert len(events(log)) == 12
    assert read_knossos(log) == [
        Op("0", "write", "r", 1, None, 0, 3),
        Op("1", "read", "r", None, 1, 1, 5),
        Op("2", "cas", "r", (1, 2), None, 4, None),     # no completion: never returned
        Op("5", "write", "r", 5, None, 10, None)]       # :info: never returned


def test_porcupine_logs_have_keys():
    log = ('{:process 0, :type :invoke, :f :append, :key "1", :value "a"}\n'
           '{:process 1, :type :invoke, :f :get, :key "1", :value nil}\n'
           '{:process 1, :type :ok, :f :get, :key "1", :value "a"}\n'
           '{:process 0, :type :ok, :f :append, :key "1", :value "a"}\n')
    assert read_porcupine(log) == [Op("0", "append", "1", "a", None, 0, 3),
                                   Op("1", "get", "1", None, "a", 1, 2)]


@pytest.mark.parametrize("bad,message", [
    ('{:process 0, :type :ok, :f :read, :value 1}', "no call"),
    ('{:process 0, :type :invoke, :f :incr, :value 1}', "unknown register"),
    ('[1 2]', "sequence of EDN maps"),
    # A process calls one operation at a time: a second call before the first
    # completes would silently drop the first (and change the verdict).
    ('{:process 0, :type :invoke, :f :write, :value 1}\n'
     '{:process 1, :type :invoke, :f :read, :value nil}\n'
     '{:process 0, :type :invoke, :f :write, :value 2}',
     r"line 3 \(event 2\): process 0 invokes again, but its call at line 1 "
     r"\(event 0\) has not completed"),
    # A completion that is none of :ok, :fail, :info is not read as :info.
    ('{:process 0, :type :invoke, :f :write, :value 1}\n'
     '{:process 0, :type :okay, :f :write, :value 1}',
     r"line 2 \(event 1\): process 0 has :type :okay; an event is :invoke, :ok, "
     r":fail or :info"),
    ('{:process 0, :f :write, :value 1}', r"process 0 has :type None"),
])
def test_malformed_histories_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        read_knossos(bad)
