"""The linearizability checker on histories whose verdict is known: classic
small cases reasoned by hand, a brute-force second implementation on random
small histories, and the minimality of the window it returns."""

from __future__ import annotations

import itertools
import random

import pytest

from labkit import ConfigError
from labkit.check import KV, Op, linearizable


def put(client, key, value, call, ret):
    return Op(client, "put", key, value, None, call, ret)


def get(client, key, output, call, ret):
    return Op(client, "get", key, None, output, call, ret)


def append(client, key, value, call, ret):
    return Op(client, "append", key, value, None, call, ret)


# -- known verdicts -----------------------------------------------------------------

LINEARIZABLE = {
    "empty": [],
    "read of a missing key": [get("a", "x", None, 0, 1)],
    "sequential": [put("a", "x", 1, 0, 1), get("b", "x", 1, 2, 3),
                   put("a", "x", 2, 4, 5), get("b", "x", 2, 6, 7)],
    "read concurrent with a write sees the old value": [
        put("a", "x", 1, 0, 1), put("a", "x", 2, 2, 5), get("b", "x", 1, 3, 4)],
    "read concurrent with a write sees the new value": [
        put("a", "x", 1, 0, 1), put("a", "x", 2, 2, 5), get("b", "x", 2, 3, 4)],
    "two overlapping writes, reads agree on the later one": [
        put("a", "x", 1, 0, 3), put("b", "x", 2, 1, 4), get("c", "x", 1, 5, 6),
        get("c", "x", 1, 7, 8)],
    "a write that never returned took effect": [
        put("a", "x", 1, 0, None), get("b", "x", 1, 5, 6)],
    "a write that never returned never took effect": [
        put("a", "x", 1, 0, None), get("b", "x", None, 5, 6)],
    "a read that never returned is ignored": [get("a", "x", 7, 0, None)],
    "touching intervals count as concurrent": [
        put("a", "x", 1, 0, 1), get("b", "x", None, 1, 2)],
    "appends in either order": [
        append("a", "x", "p;", 0, 2), append("b", "x", "q;", 1, 3),
        get("c", "x", "q;p;", 4, 5)],
    "keys are independent": [
        put("a", "x", 1, 0, 1), put("a", "y", 2, 0, 1), get("b", "y", 2, 2, 3),
        get("b", "x", 1, 2, 3)],
}

#: history, and the window a minimal search must return (by call time).
NOT_LINEARIZABLE = {
    "stale read after a completed write": (
        [put("a", "x", 1, 0, 1), put("a", "x", 2, 2, 3), get("b", "x", 1, 4, 5),
         get("c", "x", 2, 4.5, 6)],
        [put("a", "x", 1, 0, 1), put("a", "x", 2, 2, 3), get("b", "x", 1, 4, 5)]),
    "value nobody wrote": (
        [put("a", "x", 1, 0, 1), get("b", "x", 9, 2, 3)],
        [get("b", "x", 9, 2, 3)]),
    "reads go back in time (new then old)": (
        [put("a", "x", 1, 0, 10), get("b", "x", 1, 1, 2), get("c", "x", None, 3, 4)],
        [put("a", "x", 1, 0, 10), get("b", "x", 1, 1, 2),
         get("c", "x", None, 3, 4)]),
    "an append applied twice": (
        [append("a", "x", "p;", 0, 1), get("b", "x", "p;p;", 2, 3)],
        [append("a", "x", "p;", 0, 1), get("b", "x", "p;p;", 2, 3)]),
    "the failing key is found among good ones": (
        [put("a", "y", 1, 0, 1), get("b", "y", 1, 2, 3), put("a", "x", 5, 0, 1),
         get("c", "x", None, 2, 3)],
        [put("a", "x", 5, 0, 1), get("c", "x", None, 2, 3)]),
}


@pytest.mark.parametrize("name", LINEARIZABLE)
def test_linearizable_histories_pass(name):
    result = linearizable(LINEARIZABLE[name])
    assert result.ok and bool(result), result.explain()
    assert result.window == ()


@pytest.mark.parametrize("name", NOT_LINEARIZABLE)
def test_non_linearizable_histories_fail_with_a_minimal_window(name):
    history, window = NOT_LINEARIZABLE[name]
    result = linearizable(history)
    assert not result.ok and not bool(result)
    assert result.key == window[0].key
    assert list(result.window) == window, result.explain()
    assert "NOT linearizable" in result.explain()


def test_without_minimize_the_window_is_the_whole_key():
    history, _ = NOT_LINEARIZABLE["stale read after a completed write"]
    assert len(linearizable(history, minimize=False).window) == 4


def test_a_long_sequential_history_is_quick():
    # Memoisation keeps this linear: 3000 operations, one configuration each.
    history, t = [], 0.0
    for i in range(1000):
        history += [put("a", "x", i, t, t + 0.5), get("b", "x", i, t + 1, t + 1.5),
                    append("c", "y", f"{i};", t, t + 1.5)]
        t += 2
    history.append(get("d", "y", "".join(f"{i};" for i in range(1000)), t, t + 1))
    assert linearizable(history).ok


# -- a second implementation: brute force over every order --------------------------

def brute_force(history: list[Op]) -> bool:
    """Try every subset of never-returned writes and every order of the chosen
    operations that respects real time (a before b if a returned before b was
    called); linearizable iff one order replays correctly from the model."""
    done = [op for op in history if op.ret is not None]
    maybe = [op for op in history if op.ret is None and op.kind != "get"]
    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            chosen = done + list(extra)
            for order in itertools.permutations(chosen):
                if _respects_time(order) and _replays(order):
                    return True
    return False


def _respects_time(order) -> bool:
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if b.ret is not None and b.ret < a.call:
                return False
    return True


def _replays(order) -> bool:
    state: dict = {}
    for op in order:
        allowed, state[op.key] = KV.step(state.get(op.key, KV.init), op)
        if not allowed:
            return False
    return True


def random_history(rng: random.Random, n: int) -> list[Op]:
    ops = []
    for i in range(n):
        call = rng.randint(0, 8)
        ret = None if rng.random() < 0.15 else call + rng.randint(0, 4)
        key = rng.choice("xy")
        kind = rng.choice(["get", "get", "put", "append"])
        if kind == "get":
            output = rng.choice([None, "1", "2", "a", "ab", "ba", "1a"])
            ops.append(Op(f"c{i}", kind, key, None, output, call, ret))
        elif kind == "put":
            ops.append(Op(f"c{i}", kind, key, rng.choice("12"), None, call, ret))
        else:
            ops.append(Op(f"c{i}", kind, key, rng.choice("ab"), None, call, ret))
    return ops


@pytest.mark.parametrize("seed", range(300))
def test_agrees_with_brute_force_on_small_random_histories(seed):
    rng = random.Random(seed)
    history = random_history(rng, rng.randint(1, 6))
    result = linearizable(history)
    assert result.ok == brute_force(history), f"seed {seed}: {history}"
    if not result.ok:                      # the window is itself impossible...
        window = list(result.window)
        assert not brute_force(window), f"seed {seed}"
        for op in window:                  # ...and minimal
            rest = [o for o in window if o is not op]
            orphans = any(KV.observes(r, op) for r in rest)
            assert orphans or brute_force(rest), f"seed {seed}: drop {op}"


def test_both_verdicts_occur_in_the_random_histories():
    verdicts = {linearizable(random_history(random.Random(s), 5)).ok
                for s in range(300)}
    assert verdicts == {True, False}


# -- input ------------------------------------------------------------------------

def test_mappings_are_accepted():
    history = [{"client": "a", "kind": "put", "key": "x", "value": 1, "call": 0,
                "ret": 1},
               {"client": "b", "kind": "get", "key": "x", "output": 1, "call": 2,
                "ret": 3}]
    assert linearizable(history).ok


@pytest.mark.parametrize("bad,error,message", [
    (Op("a", "cas", "x", 1, None, 0, 1), ConfigError, "kind must be one of"),
    (Op("a", "put", "x", 1, None, 2, 1), ConfigError, "returns before it was called"),
    (("a", "put", "x"), TypeError, "holds labkit.check.Op values"),
])
def test_bad_operations_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        linearizable([bad])


def test_results_print_plainly():
    ok = linearizable(LINEARIZABLE["sequential"])
    assert repr(ok) == "CheckResult(ok, 4 ops, 1 keys)"
    bad = linearizable(NOT_LINEARIZABLE["value nobody wrote"][0])
    assert repr(bad) == "CheckResult(NOT linearizable, key='x', window of 1 ops)"
    assert str(bad.window[0]) == "b: get x -> 9  [2.0000, 3.0000]"
