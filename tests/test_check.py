"""The linearizability checker on histories whose verdict is known: classic
small cases reasoned by hand, for the key-value and the compare-and-swap models
and a custom one; a brute-force second implementation on random small histories
(which also catches mutants of the checker); and the window it returns: it fails
on its own, it is minimal, and it never blames a read for a write it dropped."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import ConfigError
from labkit.check import KV, REGISTER, Model, Op, SearchTooLarge, linearizable


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
    "never-returned writes take effect in either order": [
        put("a", "x", 1, 0, None), put("b", "x", 2, 1, None), get("c", "x", 2, 2, 3),
        get("d", "x", 1, 4, 5)],
    "equal writes that returned are not interchangeable": [
        put("a", "x", 1, 0, 10), put("b", "x", 1, 1, 2), put("c", "x", 2, 2.5, 2.8),
        get("d", "x", 2, 3, 4), get("e", "x", 1, 6, 7)],
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
    whole = linearizable(history, minimize=False)
    assert len(whole.window) == 4 and not whole.minimal
    assert "operations admit no order (not minimal):" in whole.explain()
    assert linearizable(history).minimal


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

def brute_force(history: list[Op], model: Model = KV) -> bool:
    """Try every subset of never-returned writes and every order of the chosen
    operations that respects real time (a before b if a returned before b was
    called); linearizable iff one order replays correctly from the model."""
    done = [op for op in history if op.ret is not None]
    maybe = [op for op in history if op.ret is None and op.kind not in ("get", "read")]
    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            chosen = done + list(extra)
            for order in itertools.permutations(chosen):
                if _respects_time(order) and _replays(order, model):
                    return True
    return False


def _respects_time(order) -> bool:
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if b.ret is not None and b.ret < a.call:
                return False
    return True


def _replays(order, model: Model) -> bool:
    state: dict = {}
    for op in order:
        allowed, state[op.key] = model.step(state.get(op.key, model.init), op)
        if not allowed:
            return False
    return True


KINDS = {KV: ("get", "get", "put", "append"),
         REGISTER: ("read", "read", "write", "cas")}


def random_op(rng: random.Random, i: int, model: Model, lost: float = 0.15) -> Op:
    """One operation on key x or y with values from a tiny domain, so reads
    often match and writes repeat; with probability `lost` it never returns."""
    call = rng.randint(0, 8)
    ret = None if rng.random() < lost else call + rng.randint(0, 4)
    key, kind = rng.choice("xy"), rng.choice(KINDS[model])
    value = output = None
    if kind == "get":
        output = rng.choice([None, "1", "2", "a", "ab", "ba", "1a"])
    elif kind == "put":
        value = rng.choice("12")
    elif kind == "append":
        value = rng.choice("ab")
    elif kind == "read":
        output = rng.choice([None, 1, 2])
    elif kind == "write":
        value = rng.choice([1, 2])
    else:
        value = (rng.choice([None, 1, 2]), rng.choice([1, 2]))
    return Op(f"c{i}", kind, key, value, output, call, ret)


def random_history(rng: random.Random, n: int, model: Model = KV,
                   lost: float = 0.15) -> list[Op]:
    return [random_op(rng, i, model, lost) for i in range(n)]


def needed(read: Op, history: list[Op], model: Model) -> list[Op]:
    """The writes `read` may have taken its value from: it observes them, they
    were called before it returned, and no overwriting write it also observes
    surely ran between them (a window that keeps the read must keep these)."""
    def end(op):
        return float("inf") if op.ret is None else op.ret
    seen = [w for w in history if w is not read and w.key == read.key
            and w.call <= end(read) and model.observes(read, w)]
    return [w for w in seen if not any(
        v.kind in model.overwrites and w.ret is not None and w.ret < v.call
        and end(v) < read.call for v in seen)]


def check_against_brute_force(history: list[Op], model: Model, note: str) -> bool:
    result = linearizable(history, model=model)
    assert result.ok == brute_force(history, model), f"{note}: {history}"
    if not result.ok:
        window = list(result.window)
        assert result.minimal, note
        assert not brute_force(window, model), note          # impossible on its own
        for read in window:                                  # blames no dropped write
            assert set(needed(read, history, model)) <= set(window), note
        for op in window:                                    # and minimal
            rest = [o for o in window if o is not op]
            orphans = any(op in needed(r, history, model) for r in rest)
            assert orphans or brute_force(rest, model), f"{note}: drop {op}"
    return result.ok


@pytest.mark.parametrize("seed", range(200))
@pytest.mark.parametrize("model", [KV, REGISTER], ids=["kv", "register"])
def test_agrees_with_brute_force_on_small_random_histories(seed, model):
    rng = random.Random(seed)
    history = random_history(rng, rng.randint(1, 6), model)
    check_against_brute_force(history, model, f"seed {seed}")


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 7),
       model=st.sampled_from([KV, REGISTER]), lost=st.sampled_from([0.15, 0.5]))
def test_agrees_with_brute_force_hypothesis(seed, size, model, lost):
    # Half the examples lose half their answers: many never-returned writes of
    # the same few values, which the search treats as interchangeable.
    history = random_history(random.Random(seed), size, model, lost)
    check_against_brute_force(history, model, f"seed {seed}, size {size}, {lost}")


@pytest.mark.parametrize("model", [KV, REGISTER], ids=["kv", "register"])
def test_both_verdicts_occur_in_the_random_histories(model):
    verdicts = {linearizable(random_history(random.Random(s), 5, model),
                             model=model).ok for s in range(300)}
    assert verdicts == {True, False}


# -- mutants: wrong checkers that the brute-force comparison must catch ------------

class _Blurred:
    """A state that hides its value from the memo: every two compare equal."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Blurred)

    def __hash__(self):
        return 0


def _blurred_step(state, op):
    allowed, after = KV.step(state.value, op)
    return allowed, _Blurred(after)


MUTANTS = {
    # forgets real time: every operation overlaps every other
    "ignores real-time order": lambda h: linearizable(
        [op._replace(call=0, ret=None if op.ret is None else 100) for op in h]).ok,
    # a timed-out write did not happen (a timed-out write that *must* have
    # happened is no mutant: it can always take effect after everything else)
    "never-returned writes never took effect": lambda h: linearizable(
        [op for op in h if op.ret is not None]).ok,
    # memoises on the done-set only, as if every state were the same
    "memo ignores the state": lambda h: linearizable(h, model=KV._replace(
        init=_Blurred(None), step=_blurred_step)).ok,
    # checks key x and forgets y
    "checks one key": lambda h: linearizable([op for op in h if op.key == "x"]).ok,
}


@pytest.mark.parametrize("name", MUTANTS)
def test_the_known_and_random_histories_catch_mutant(name):
    mutant = MUTANTS[name]
    known = [*LINEARIZABLE.values(), *(h for h, _ in NOT_LINEARIZABLE.values())]
    histories = known + [random_history(random.Random(s), 5) for s in range(300)]
    assert any(mutant(h) != brute_force(h) for h in histories), name


def test_the_window_check_catches_a_window_that_drops_what_a_read_saw():
    # A mutant window: only the reads of the real one (a read of "a value nobody
    # wrote" is always impossible). The rule in check_against_brute_force rejects it.
    caught = 0
    for s in range(300):
        history = random_history(random.Random(s), 5)
        result = linearizable(history)
        reads = [op for op in result.window if op.kind == "get"]
        caught += any(not set(needed(r, history, KV)) <= set(reads) for r in reads)
    assert caught > 0


# -- models ----------------------------------------------------------------------

def read(client, key, output, call, ret):
    return Op(client, "read", key, None, output, call, ret)


def write(client, key, value, call, ret):
    return Op(client, "write", key, value, None, call, ret)


def cas(client, key, expected, new, call, ret):
    return Op(client, "cas", key, (expected, new), None, call, ret)


@pytest.mark.parametrize("history,ok", [
    ([write("a", "x", 1, 0, 1), cas("b", "x", 1, 2, 2, 3), read("c", "x", 2, 4, 5)],
     True),
    # a cas from the wrong value cannot have happened
    ([write("a", "x", 1, 0, 1), cas("b", "x", 3, 2, 2, 3)], False),
    # two cas from the same value: only one can win
    ([write("a", "x", 0, 0, 1), cas("b", "x", 0, 1, 2, 5), cas("c", "x", 0, 2, 2, 5)],
     False),
    # ... unless the other wrote that value back
    ([write("a", "x", 0, 0, 1), cas("b", "x", 0, 0, 2, 5), cas("c", "x", 0, 2, 2, 5),
      read("d", "x", 2, 6, 7)], True),
    # a cas that never returned may have happened
    ([write("a", "x", 0, 0, 1), cas("b", "x", 0, 5, 2, None), read("c", "x", 5, 6, 7)],
     True),
])
def test_register_with_compare_and_swap(history, ok):
    assert linearizable(history, model=REGISTER).ok == ok
    assert linearizable(history, model=REGISTER).ok == brute_force(history, REGISTER)


def test_register_starting_at_zero():
    history = [read("a", "x", 0, 0, 1)]
    assert not linearizable(history, model=REGISTER).ok
    assert linearizable(history, model=REGISTER.starting(0)).ok
    assert str(cas("b", "x", 0, 1, 2, 3)) == "b: cas x 0 -> 1  [2.0000, 3.0000]"


def test_a_custom_model():
    # A counter: "inc" adds one, "read" returns it. Two increments overlap a read
    # that saw 1: fine; a read of 3 is not.
    def step(state, op):
        if op.kind == "inc":
            return True, state + 1
        return op.output == state, state

    counter = Model(init=0, step=step, observes=lambda r, w: False,
                    kinds=("inc", "read"))
    history = [Op("a", "inc", "n", call=0, ret=4), Op("b", "inc", "n", call=0, ret=4),
               Op("c", "read", "n", output=1, call=1, ret=2)]
    assert linearizable(history, model=counter).ok
    late = Op("c", "read", "n", output=3, call=5, ret=6)
    result = linearizable(history + [late], model=counter)
    assert not result.ok and late in result.window
    with pytest.raises(ConfigError, match=r"one of \('inc', 'read'\), got 'put'"):
        linearizable([Op("a", "put", "n", 1)], model=counter)


def test_undecided_only_when_no_key_fails():
    # Six overlapping appends and a read of their reversed order: thousands of
    # configurations on key "x"; key "y" fails at once.
    slow = [append(f"c{i}", "x", f"{i};", 0, 10) for i in range(6)] + \
        [get("r", "x", "".join(f"{i};" for i in reversed(range(6))), 11, 12),
         get("s", "x", "nope", 13, 14)]
    bad = [put("a", "y", 1, 0, 1), get("b", "y", 2, 2, 3)]
    assert linearizable(slow + bad, max_states=50).key == "y"
    with pytest.raises(SearchTooLarge, match="undecided: no key failed, but 1 of 1"):
        linearizable(slow, max_states=50)
    assert not linearizable(slow).ok


# -- input ------------------------------------------------------------------------

def test_mappings_are_accepted():
    history = [{"client": "a", "kind": "put", "key": "x", "value": 1, "call": 0,
                "ret": 1},
               {"client": "b", "kind": "get", "key": "x", "output": 1, "call": 2,
                "ret": 3}]
    assert linearizable(history).ok


@pytest.mark.parametrize("bad,error,message", [
    (Op("a", "cas", "x", 1, None, 0, 1), ConfigError, "kind must be one of"),
    (Op("a", "put", "x", 1, None, 0, 1), TypeError, "model must be a labkit.check"),
    (Op("a", "put", "x", 1, None, 2, 1), ConfigError, "returns before it was called"),
    (("a", "put", "x"), TypeError, "holds labkit.check.Op values"),
])
def test_bad_operations_are_refused(bad, error, message):
    model = None if error is TypeError and "model" in message else KV
    with pytest.raises(error, match=message):
        linearizable([bad], model=model)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("history, message", [
    # the times: a finite number each; only ret=None means "never returned"
    ([get("a", "x", None, None, 1)], r"operation 0 \(client 'a', get\): call must "
                                     r"be a finite number .* got None"),
    ([get("a", "x", None, "0", "1")], r"operation 0 .*call must be a finite .*'0'"),
    ([put("b", "x", 1, 0, 1), put("a", "x", 1, NAN, None)],
     r"operation 1 \(client 'a', put\): call must be a finite number.*nan"),
    ([get("a", "x", None, -INF, 0)], "operation 0 .*call must be a finite.*-inf"),
    ([get("a", "x", None, False, True)], "operation 0 .*call must be a finite"),
    # A read of a value nobody wrote, "returned" at inf, was silently ignored.
    ([get("a", "x", 5, 0, INF)], r"operation 0 \(client 'a', get\): ret must be a "
                                 r"finite number .*or None if no answer came, got inf"),
    ([put("a", "x", 1, 0, "1")], "operation 0 .*ret must be a finite number"),
    # values the model must hash or add up
    ([get("a", ["x"], None, 0, 1)], r"operation 0 .*key must be hashable.*\['x'\]"),
    ([put("a", "x", [1], 0, None)], r"operation 0 .*value must be hashable"),
    ([get("a", "x", {1}, 0, 1)], r"operation 0 .*output must be hashable"),
    ([put("a", "x", 1, 0, 1), append("b", "x", "a", 2, 3)],
     r"operation 0 \(client 'a', put\): value must be a str \(or None\) on key "
     r"'x', which operation 1 \(client 'b'\) appends to, got 1"),
    ([append("b", "x", None, 2, 3)],
     r"operation 0 \(client 'b', append\): an append's value must be a str"),
    ([{"client": "a", "kind": "get", "key": "x", "foo": 1}],
     "operation 0: .*'foo'; an Op has the fields client, kind, key"),
])
def test_bad_fields_are_refused_naming_the_operation_and_field(history, message):
    with pytest.raises((ConfigError, TypeError), match=message):
        linearizable(history)


def test_an_append_needs_a_str_to_start_from():
    with pytest.raises(ConfigError, match="the model starts every key at 5"):
        linearizable([append("a", "x", "p", 0, 1)], model=KV.starting(5))
    assert linearizable([append("a", "x", "p", 0, 1), get("b", "x", "p", 2, 3)],
                        model=KV.starting("")).ok


@pytest.mark.parametrize("history, options, error, message", [
    ([], {"minimize": "no"}, ConfigError, "minimize must be True or False, got 'no'"),
    (5, {}, TypeError, "history must be a list of labkit.check.Op values"),
    (None, {}, TypeError, "history must be a list of labkit.check.Op values"),
    ("abc", {}, TypeError, "history must be a list of labkit.check.Op values"),
])
def test_bad_arguments_are_refused(history, options, error, message):
    with pytest.raises(error, match=message):
        linearizable(history, **options)


def test_a_cas_needs_two_values():
    with pytest.raises(ConfigError, match="cas needs value=\\(expected, new\\)"):
        linearizable([Op("a", "cas", "x", 1, None, 0, 1)], model=REGISTER)
    with pytest.raises(ConfigError, match=r"operation 1 \(client 'b', cas\): a cas "
                                          r"needs value=\(expected, new\)"):
        linearizable([Op("a", "write", "x", 1, None, 0, 1),
                      Op("b", "cas", "x", 1, None, 2, None)], model=REGISTER)


def test_results_print_plainly():
    ok = linearizable(LINEARIZABLE["sequential"])
    assert repr(ok) == "CheckResult(ok, 4 ops, 1 keys)"
    bad = linearizable(NOT_LINEARIZABLE["value nobody wrote"][0])
    assert repr(bad) == "CheckResult(NOT linearizable, key='x', window of 1 ops)"
    assert str(bad.window[0]) == "b: get x -> 9  [2.0000, 3.0000]"


def test_a_window_search_out_of_budget_says_so(monkeypatch):
    # Seven overlapping appends, a put, then a read of the appends in reverse
    # order: stale. Proving each append needed costs a search over their orders;
    # with no budget beyond the key's own search, the window stays unproven.
    from labkit.check import checker
    history = [append(f"a{i}", "x", f"{i};", 0, 10) for i in range(7)] + \
        [put("p", "x", "z", 13, 14),
         get("r", "x", "".join(f"{i};" for i in reversed(range(7))), 15, 16)]
    monkeypatch.setattr(checker, "_WINDOW_FLOOR", 0)
    result = linearizable(history)
    assert not result.ok and not result.minimal, result.explain()
    assert "(not minimal)" in result.explain()
    assert not brute_force(list(result.window))
    assert all(set(needed(r, history, KV)) <= set(result.window)
               for r in result.window)
    monkeypatch.undo()
    assert linearizable(history).minimal


# -- histories of labkit's own key-value store with a bug -----------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stale_local_reads_of_the_raft_store_give_a_three_op_window(seed):
    # read="local" answers from the leader's own copy: a deposed leader, cut off
    # from the others, serves stale values. The window is the textbook stale
    # read: a write, a later write that finished, then a read of the first.
    from labkit import NetConfig
    from labkit.raft import KVCluster
    kv = KVCluster(5, seed=seed, read="local", client_timeout=0.2,
                   net=NetConfig(latency=0.005))
    kv.workload(4, think=0.05, reads=0.9)
    kv.run(1.0)
    old = kv.leader()
    kv.partition([old], [n for n in kv.names if n != old])
    kv.run(2.0)
    result = kv.linearizable()
    assert not result.ok and result.minimal, f"seed {seed}"
    first, second, stale = result.window
    assert (first.kind, second.kind, stale.kind) == ("put", "put", "get")
    assert stale.output == first.value and first.ret < second.call
    assert second.ret < stale.call, result.explain()
    assert not brute_force(list(result.window))
