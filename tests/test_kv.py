"""The key-value store on Raft: sessions make retried commands take effect at
most once, reads through the log or by read index are linearizable under
faults, and reads that skip both are caught by the checker."""

from __future__ import annotations

import pytest
from faults import random_faults

from labkit import ConfigError, NetConfig, dist
from labkit.raft import KVCluster, KVCommand, KVStore


def kv_cluster(seed: int = 1, **options) -> KVCluster:
    options.setdefault("net", NetConfig(latency=0.005))
    return KVCluster(5, seed=seed, **options)


# -- the state machine ------------------------------------------------------------

def test_a_duplicate_command_is_applied_once_and_answered_again():
    store = KVStore()
    first = KVCommand("c1", 1, "append", "x", "a;")
    assert store.apply(first) is None
    assert store.apply(first) is None              # the retry: no second "a;"
    assert store.apply(KVCommand("c1", 2, "get", "x")) == "a;"
    assert store.apply(KVCommand("c1", 2, "get", "x")) == "a;"   # cached answer
    store.apply(KVCommand("c2", 1, "put", "x", "b"))
    assert store.data == {"x": "b"}
    assert store.sessions == {"c1": (2, "a;"), "c2": (1, None)}


def test_snapshot_restores_data_and_sessions():
    store = KVStore()
    store.apply(KVCommand("c1", 1, "put", "x", "1"))
    copy = KVStore()
    copy.restore(store.snapshot())
    assert copy.data == store.data and copy.sessions == store.sessions
    copy.apply(KVCommand("c1", 1, "put", "x", "2"))   # a retry after the snapshot
    assert copy.data == {"x": "1"}


# -- clients ------------------------------------------------------------------------

def test_clients_read_their_writes():
    kv = kv_cluster()
    client = kv.client()
    steps = [client.put("x", "1")]
    kv.run(1.0)
    steps.append(client.append("x", "2"))
    kv.run(0.5)
    steps.append(client.get("x"))
    kv.run(0.5)
    assert [s.value for s in steps] == [None, None, "12"]
    assert all(kv.value(n, "x") == "12" for n in kv.names)
    assert kv.linearizable().ok and len(kv.history) == 3
    assert [op.kind for op in kv.history] == ["put", "append", "get"]


def test_retries_take_effect_at_most_once():
    # Lost and duplicated messages make clients retry appends whose first copy
    # was applied; the session table must swallow the second copy.
    kv = kv_cluster(seed=2, client_timeout=0.1,
                    net=NetConfig(latency=dist.uniform(0.002, 0.02), loss=0.2,
                                  duplicate=0.3))
    kv.workload(4, keys=["x"], reads=0.2, think=0.02, writes="append", until=20.0)
    kv.run(25.0)
    assert kv.leader() is not None
    final = kv.value(kv.leader(), "x") or ""
    tokens = final.split(";")[:-1]
    assert len(tokens) == len(set(tokens))          # nothing appended twice
    done = [op.value[:-1] for op in kv.history if op.kind == "append" and op.ret]
    assert set(done) <= set(tokens)                 # everything acknowledged is there
    assert len(done) > 100
    commands = [c for c in kv.applied(kv.leader()) if c.op == "append"]
    assert len(commands) > len(tokens)              # retries did reach the log
    kv.check()


def test_a_client_name_cannot_be_a_server_name():
    with pytest.raises(ConfigError, match="'n1' is a server's name"):
        kv_cluster().client("n1")


# -- linearizable reads, and the broken shortcut ---------------------------------------

def isolate_leader(read: str, seed: int = 1) -> KVCluster:
    """Read-heavy clients; after 1 s the leader is cut off from the other four
    servers for 2 s (clients still reach it), then the network heals."""
    kv = kv_cluster(seed=seed, read=read, client_timeout=0.2)
    kv.workload(4, think=0.05, reads=0.9)
    kv.run(1.0)
    old = kv.leader()
    kv.partition([old], [n for n in kv.names if n != old])
    kv.run(2.0)
    kv.heal()
    kv.run(1.0)
    kv.check()
    return kv


@pytest.mark.parametrize("read", ["log", "index"])
def test_reads_stay_linearizable_when_the_leader_is_cut_off(read):
    kv = isolate_leader(read)
    result = kv.linearizable()
    assert result.ok, result.explain()
    assert sum(op.kind == "get" for op in kv.history) > 100


def test_local_reads_from_a_deposed_leader_are_caught():
    kv = isolate_leader("local")
    result = kv.linearizable()
    assert not result.ok
    # The window: a read returns a value although a later write had finished
    # before the read began.
    stale = result.window[-1]
    assert stale.kind == "get", result.explain()
    seen = next(op for op in result.window if op.value == stale.output)
    newer = [op for op in result.window if op.kind == "put"
             and op.call > seen.ret and op.ret < stale.call]
    assert newer, result.explain()


def test_read_index_does_not_grow_the_log():
    sizes = {}
    for read in ("log", "index"):
        kv = kv_cluster(read=read)
        kv.workload(3, reads=1.0, think=0.02, until=2.0)
        kv.run(2.5)
        gets = sum(op.kind == "get" and op.ret is not None for op in kv.history)
        sizes[read] = (kv.node(kv.leader()).last_index(), gets)
    (log_size, log_gets), (index_size, index_gets) = sizes["log"], sizes["index"]
    assert log_size >= log_gets                    # one entry per read
    assert index_size <= 2 and index_gets > 100    # only the leader's no-op


# -- random faults ------------------------------------------------------------------

@pytest.mark.parametrize("read", ["log", "index"])
@pytest.mark.parametrize("seed", range(150))
def test_linearizable_under_random_faults(seed, read):
    """Crashes, restarts, partitions, loss, duplication and reordering under a
    client workload; Raft's invariants and the history's linearizability are
    checked at the end (the failing seed is printed)."""
    kv = KVCluster(5, seed=seed, read=read, client_timeout=0.3,
                   pre_vote=seed % 2 == 0, snapshot_every=(None, 8, 30)[seed % 3],
                   net=NetConfig(latency=dist.uniform(0.001, 0.01), duplicate=0.05,
                                 reorder=0.05))
    kv.workload(3, think=0.03, keys=["x", "y"])
    try:
        random_faults(kv, 8.0, seed=seed)
        kv.heal()
        kv.network.update(loss=0.0)
        for name in kv.names:
            kv.restart(name)
        kv.run(2.0)
        kv.check()
        result = kv.linearizable()
        assert result.ok, result.explain()
        assert sum(op.ret is not None for op in kv.history) > 20
    except BaseException as exc:
        exc.add_note(f"replay: test_linearizable_under_random_faults[{seed}-{read}]")
        raise


@pytest.mark.parametrize("read", ["log", "index"])
def test_a_one_server_store_answers_every_operation_once(read):
    """With one server a write commits and applies inside the leader's append:
    the answer must still go out (it once never did, and the client's retries
    piled copies onto the log)."""
    kv = KVCluster(1, seed=1, read=read)
    kv.run(1.0)
    client = kv.client()
    put = client.put("x", "a")
    kv.run(1.0)
    get = client.get("x")
    kv.run(1.0)
    assert (put.value, get.value) == (None, "a")
    writes = [c for c in kv.applied("n1") if c.op == "put"]
    assert len(writes) == 1 and kv.linearizable().ok


def test_an_append_to_a_value_that_is_no_string_is_refused_alike_everywhere():
    kv = KVCluster(3, seed=1)
    kv.run(1.0)
    client = kv.client()
    client.put("k", 1)
    kv.run(0.5)
    client.append("k", "x")
    with pytest.raises(ConfigError, match="key 'k', which holds 1 of type int"):
        kv.run(0.5)
    kv.run(1.0)                                   # the cluster goes on
    assert {kv.value(n, "k") for n in kv.names} == {1}
    after = kv.client()
    after.put("k", "s")
    kv.run(0.5)
    assert {kv.value(n, "k") for n in kv.names} == {"s"}
    assert kv.history[1].kind == "append" and kv.history[1].ret is None  # no effect


@pytest.mark.parametrize("call, words", [
    (lambda c: c.put(["a", "list"], 1), "a key must be hashable"),
    (lambda c: c.append("k", 3), "append adds a string"),
])
def test_bad_operations_are_refused_at_the_call(call, words):
    kv = KVCluster(3, seed=1)
    with pytest.raises(ConfigError, match=words):
        call(kv.client())
    kv.run(1.0)                                   # nothing reached the cluster
    assert kv.history == []


def test_a_client_refuses_a_second_operation_while_one_is_in_flight():
    """Its sequence numbers tell retries apart: two at once made the store take
    the second for a retry of the first, and an acknowledged put was lost."""
    kv = KVCluster(3, seed=5, net=NetConfig(latency=0.002, reorder=0.5))
    kv.run(1.0)
    client = kv.client()
    client.put("x", "a")
    with pytest.raises(ConfigError, match="client c1 still waits for its put of 'x'"):
        client.put("y", "b")
    kv.run(1.0)
    client.put("y", "b")                          # once the first has returned
    kv.run(1.0)
    assert kv.value(kv.leader(), "x") == "a" and kv.value(kv.leader(), "y") == "b"


def test_a_kv_cluster_refuses_another_state_machine():
    with pytest.raises(ConfigError, match="use RaftCluster"):
        KVCluster(3, machine=KVStore)
