"""The distributed file system as stories: the course text's three calls, chunks
and placement, faults, repair and rebalancing, garbage collection, bad input,
and random fault schedules over many seeds."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from faults import random_faults

import labkit as lk
from labkit import ConfigError, NetConfig, Unavailable, check
from labkit.storage import (
    MISSING,
    OK,
    STALE,
    Collect,
    FileEntry,
    HashRing,
    Lookup,
    Metadata,
    Put,
    Remove,
    chunk_id,
    modulo_owners,
    moved_share,
    split,
)

ROOT = Path(__file__).resolve().parents[1]


def fs(**options) -> lk.FileSystem:
    options.setdefault("seed", 7)
    return lk.FileSystem(**options)


def blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def owners_hold(system: lk.FileSystem, chunk: str) -> list[str]:
    """The chunk's holders among the live servers."""
    return [s for s in system.holders(chunk) if system.is_up(s)]


# -- the three calls ----------------------------------------------------------------

def test_upload_download_delete_like_the_course_text():
    system = fs()
    system.upload("test.txt", b"Hello, World!")
    assert system.download("test.txt") == b"Hello, World!"
    system.delete("test.txt")
    with pytest.raises(FileNotFoundError, match="test.txt"):
        system.download("test.txt")


def test_missing_file_raises_file_not_found_for_download_and_delete():
    system = fs()
    with pytest.raises(FileNotFoundError):
        system.download("nope")
    with pytest.raises(FileNotFoundError):
        system.delete("nope")


def test_a_second_upload_replaces_the_first_and_versions_grow():
    system = fs()
    first = system.upload("a", b"one")
    second = system.upload("a", b"two, longer")
    assert second > first
    assert system.download("a") == b"two, longer"


def test_empty_files_and_bytes_like_data_are_fine():
    system = fs()
    system.upload("empty", b"")
    system.upload("ba", bytearray(b"xyz"))
    system.upload("mv", memoryview(b"uvw"))
    assert (system.download("empty"), system.download("ba"),
            system.download("mv")) == (b"", b"xyz", b"uvw")


# -- chunks and placement ------------------------------------------------------------

def test_files_are_cut_into_content_addressed_chunks():
    data = blob(2500)
    pieces = split(data, 1024)
    assert [len(p) for p in pieces] == [1024, 1024, 452]
    assert b"".join(pieces) == data
    assert chunk_id(pieces[0]) == hashlib.sha256(pieces[0]).hexdigest()
    system = fs(chunk_size=1024)
    system.upload("f", data)
    entry = system.metadata.files["f"]
    assert entry.chunks == tuple(chunk_id(p) for p in pieces)
    assert entry.size == 2500


def slow_servers(system: lk.FileSystem, latency: float) -> None:
    """Make every gateway -> chunk server link slow (the metadata log stays fast,
    so a commit alone would be quick)."""
    for server in system.servers:
        system.network.set_link("gateway", server, latency=latency)


def test_upload_returns_only_once_w_servers_hold_every_chunk_on_disk():
    for w in (1, 2, 3):
        system = fs(write_quorum=w, chunk_size=256, rpc_timeout=0.2)
        system.run(0.5)
        slow_servers(system, 0.03)
        start = system.now
        system.upload("f", blob(2000))               # no extra time after it returns
        assert system.now - start > 0.03
        for chunk in system.metadata.files["f"].chunks:
            assert len(system.holders(chunk)) >= w, w


def test_replicas_land_on_the_first_servers_of_the_preference_list():
    system = fs(chunk_size=256)
    system.upload("f", blob(3000))
    system.run(0.2)                                # background writes finish
    for chunk in system.metadata.files["f"].chunks:
        assert system.holders(chunk) == sorted(system.ring.owners(chunk, 3))


def test_identical_chunks_are_stored_once():
    system = fs(chunk_size=100)
    system.upload("a", b"x" * 500)               # five equal chunks
    system.upload("b", b"x" * 100)               # the same chunk again
    system.run(0.2)
    assert len(set(system.metadata.files["a"].chunks)) == 1
    assert sum(system.stored_bytes().values()) == 3 * 100


def test_ring_walk_lists_every_server_once_and_is_stable():
    ring = HashRing([f"s{i}" for i in range(1, 8)], vnodes=16)
    for key in ("a", "b", "chunk-42"):
        walk = ring.walk(key)
        assert sorted(walk) == sorted(ring.servers)
        assert ring.walk(key) == walk
        assert ring.owners(key, 3) == walk[:3]
        alive = walk[1:]
        assert ring.walk(key, alive) == walk[1:]


def test_ring_shares_sum_to_one_and_even_out_with_more_virtual_nodes():
    servers = [f"s{i}" for i in range(1, 11)]
    spread = {}
    for vnodes in (1, 256):
        shares = HashRing(servers, vnodes=vnodes).shares()
        assert abs(sum(shares.values()) - 1.0) < 1e-9
        spread[vnodes] = max(shares.values()) * len(servers)
    # One point per server: the largest arc is ~ (ln N + 1)/N of the circle, 3x the
    # fair share here; 256 points: each share is a sum of 256 gaps, so its
    # relative spread is about 1/sqrt(256) = 6 %.
    assert spread[1] > 1.8
    assert spread[256] < 1.25


def test_a_joining_server_moves_about_a_share_of_one_over_n_plus_one():
    servers = [f"s{i}" for i in range(1, 11)]
    keys = [f"k{i}" for i in range(4000)]
    before, after = HashRing(servers, vnodes=256), HashRing(servers, vnodes=256)
    after.add("s11")
    ring_moved = moved_share(keys, lambda k: before.owners(k, 3),
                             lambda k: after.owners(k, 3))
    modulo_moved = moved_share(keys, lambda k: modulo_owners(k, servers, 3),
                               lambda k: modulo_owners(k, [*servers, "s11"], 3))
    assert abs(ring_moved - 1 / 11) < 0.03         # the newcomer's fair share
    # Modulo: h mod 110 fixes both h mod 10 and h mod 11, so average the
    # placements that change over the 110 equally likely residues.
    theory = sum(len({(r % 11 + k) % 11 for k in range(3)}
                     - {(r % 10 + k) % 10 for k in range(3)})
                 for r in range(110)) / (3 * 110)
    assert theory > 0.7                            # most of the data moves
    assert abs(modulo_moved - theory) < 0.03


# -- faults ----------------------------------------------------------------------------

def test_upload_and_download_survive_a_dead_chunk_server():
    system = fs(chunk_size=256)
    data = blob(3000)
    system.upload("f", data)
    first = system.ring.owners(system.metadata.files["f"].chunks[0], 1)[0]
    system.kill(first)
    assert system.download("f") == data
    system.upload("g", blob(1000, seed=1))
    assert system.download("g") == blob(1000, seed=1)


def test_a_chunk_server_killed_mid_upload_does_not_fail_it():
    system = fs(chunk_size=256)
    system.run(1.0)
    data = blob(5000)
    target = system.ring.owners(chunk_id(split(data, 256)[0]), 1)[0]
    system.sim.schedule(0.0015, system.kill, target)  # as the first stores arrive
    system.upload("f", data)
    assert not system.is_up(target)
    assert system.download("f") == data


def test_a_chunk_server_killed_mid_download_costs_one_timeout():
    system = fs(chunk_size=256)
    data = blob(2000)
    system.upload("f", data)
    system.run(0.5)
    start = system.now
    system.sim.schedule(0.003, system.kill, system.ring.owners(
        system.metadata.files["f"].chunks[0], 1)[0])
    assert system.download("f") == data
    assert system.now - start >= system.rpc_timeout


def test_killing_the_metadata_leader_costs_about_an_election():
    system = fs()
    system.upload("f", b"data")
    system.run(1.0)
    leader = system.log.leader()
    system.kill(leader)
    start = system.now
    assert system.download("f") == b"data"
    took = system.now - start
    assert 0.15 <= took < 1.0                     # an election timeout, 150-300 ms
    assert system.log.leader() not in (None, leader)


def test_without_a_metadata_quorum_calls_fail_and_nothing_half_written_shows():
    system = fs(timeout=1.0)
    system.upload("f", b"old")
    system.run(0.5)
    followers = [n for n in system.metadata_nodes if n != system.log.leader()]
    for name in followers:
        system.kill(name)
    with pytest.raises(Unavailable, match="metadata"):
        system.upload("f", b"new")
    with pytest.raises(Unavailable):
        system.download("f")
    for name in followers:
        system.restart(name)
    system.run(2.0)
    # The refused upload was in the leader's log: it may commit now, but whole.
    assert system.download("f") in (b"old", b"new")


def test_without_w_live_chunk_servers_an_upload_fails_and_never_appears():
    system = fs(timeout=0.5)
    system.run(0.5)
    for name in system.servers[1:]:
        system.kill(name)                         # one server left, W = 2
    with pytest.raises(Unavailable, match="needed stored chunk"):
        system.upload("f", b"data")
    for name in system.servers:
        system.restart(name)
    system.run(1.0)
    with pytest.raises(FileNotFoundError):
        system.download("f")


def test_a_partitioned_minority_metadata_leader_cannot_serve():
    system = fs(timeout=1.0)
    system.upload("f", b"data")
    system.run(0.5)
    old = system.log.leader()
    rest = [n for n in system.metadata_nodes if n != old]
    system.partition([old], rest)
    assert system.download("f") == b"data"         # the majority elects anew
    assert system.log.leader() in rest


def test_download_skips_a_corrupted_replica_and_fails_if_all_are_corrupt():
    system = fs(timeout=0.5)
    system.upload("f", b"precious bytes")
    system.run(0.3)
    chunk = system.metadata.files["f"].chunks[0]
    holders = system.holders(chunk)
    bad = (b"rotten bytes!!", 0)
    system.nodes[holders[0]].disk["chunks"][chunk] = bad
    assert system.download("f") == b"precious bytes"
    for name in holders:
        system.nodes[name].disk["chunks"][chunk] = bad
    with pytest.raises(Unavailable, match="chunk"):
        system.download("f")


# -- repair, rebalancing, garbage collection -------------------------------------------

def test_a_dead_servers_chunks_are_re_replicated_and_placement_restored_on_return():
    system = fs(chunk_size=256, repair_interval=0.2)
    for i in range(5):
        system.upload(f"f{i}", blob(1500, seed=i))
    system.run(0.5)
    victim = "s2"
    lost = [c for c in system.metadata.live_chunks() if victim in system.holders(c)]
    assert lost
    system.kill(victim)
    assert system.under_replicated() == len(lost)
    system.run(1.0)
    assert system.under_replicated() == 0
    assert system.sim.metrics["bytes.repair"].value > 0
    system.restart(victim)
    system.run(1.0)
    for chunk in system.metadata.live_chunks():   # back home, extras dropped
        assert system.holders(chunk) == sorted(system.ring.owners(chunk, 3))


def test_an_upload_that_commits_after_its_client_gave_up_is_re_replicated():
    # With no garbage collection and no calls, nothing caught the janitor's view
    # of the metadata up: it never saw this file, so it never re-replicated
    # the chunk that a crash left on two servers.
    system = fs(timeout=1.0, repair_interval=0.2, gc_interval=None)
    system.run(0.5)
    followers = [n for n in system.metadata_nodes if n != system.log.leader()]
    for name in followers:
        system.kill(name)
    data = blob(600)                              # one chunk
    with pytest.raises(Unavailable, match="metadata"):
        system.upload("f", data)
    system.kill(system.holders(chunk_id(data))[0])
    for name in followers:
        system.restart(name)
    system.run(2.0)                               # the refused upload commits now
    assert system.under_replicated() == 0
    assert system.download("f") == data


def test_under_replicated_chunks_are_counted_over_time():
    system = fs(chunk_size=256, repair_interval=0.2)
    system.upload("f", blob(3000))
    system.run(0.5)
    system.kill("s1")
    system.run(1.0)
    series = system.sim.metrics["under_replicated"]
    assert max(series.values) > 0 and series.values[-1] == 0


def test_a_joining_server_receives_its_share_and_nothing_else_moves():
    system = fs(chunk_size=128, repair_interval=0.2)
    for i in range(30):
        system.upload(f"f{i}", blob(1000, seed=i))
    system.run(1.0)
    chunks = system.metadata.chunk_sizes(system.chunk_size)
    before = {c: system.ring.owners(c, 3) for c in chunks}
    total = sum(system.stored_bytes().values())
    new = system.add_server()
    system.run(1.5)
    after = {c: system.ring.owners(c, 3) for c in chunks}
    expected = sum(size * sum(s not in before[c] for s in after[c])
                   for c, size in chunks.items())
    moved = system.sim.metrics["bytes.rebalance"].value
    assert moved == expected                        # one copy per new placement
    assert system.stored_bytes()[new] == expected   # ...all of it to the newcomer
    assert abs(moved / total - 1 / 6) < 0.08        # about 1/(N+1) of the bytes
    for chunk in chunks:
        assert system.holders(chunk) == sorted(after[chunk])


def test_delete_hides_at_once_and_chunks_are_collected_later():
    system = fs(chunk_size=100, gc_interval=1.0, repair_interval=0.25)
    system.upload("a", b"a" * 250)
    system.upload("b", b"a" * 100)                  # shares a chunk with "a"
    system.run(0.3)
    chunks = system.metadata.files["a"].chunks
    system.delete("a")
    with pytest.raises(FileNotFoundError):
        system.download("a")
    assert all(system.holders(c) for c in chunks)   # not collected yet
    system.run(2.5)
    shared, own = chunks[0], chunks[-1]
    assert system.holders(own) == []
    assert len(system.holders(shared)) == 3         # "b" still needs it
    assert system.download("b") == b"a" * 100


def test_uploads_racing_frequent_garbage_collection_lose_nothing():
    system = fs(chunk_size=100, gc_interval=0.01, repair_interval=0.01,
                rpc_timeout=0.2)
    system.run(0.5)
    for server in system.servers:                  # sweeps arrive after new chunks
        system.network.set_link("janitor", server, latency=0.02)
    for i in range(20):
        system.upload(f"f{i}", blob(450, seed=i))
    assert system.sim.metrics["gc.rounds"].value > 20
    system.run(1.0)
    for i in range(20):
        assert system.download(f"f{i}") == blob(450, seed=i), i


def test_garbage_collection_spares_chunks_written_in_the_current_epoch():
    system = fs(chunk_size=100)
    server = system.nodes["s1"]
    server.disk["chunks"].update({"old": (b"x", 0), "new": (b"y", 1),
                                  "kept": (b"z", 0)})
    server.on_sweep(lk.Message("janitor", "s1", "sweep",
                               {"live": frozenset({"kept"}), "below": 1}, 0))
    assert sorted(server.disk["chunks"]) == ["kept", "new"]


# -- the metadata state machine -------------------------------------------------------

def test_metadata_rejects_stale_versions_and_keeps_tombstones():
    meta = Metadata()
    meta.apply(Put(1, "f", 5, 3, ("c",), 0))
    meta.apply(Put(2, "f", 4, 3, ("d",), 0))          # older version: rejected
    meta.apply(Remove(3, "f", 6))
    meta.apply(Put(4, "f", 5, 3, ("c",), 0))          # older than the delete
    meta.apply(Lookup(5, "f"))
    meta.apply(Remove(6, "f", 7))
    assert [meta.outcomes[i] for i in (1, 2, 3, 4, 5, 6)] == [
        OK, STALE, OK, STALE, None, MISSING]
    assert meta.files["f"] == FileEntry(6, 0, (), True)


def test_metadata_applies_a_resubmitted_command_once_and_checks_gc_epochs():
    meta = Metadata()
    meta.apply(Collect(1))
    meta.apply(Collect(1))                            # the same command twice
    assert meta.epoch == 1
    meta.apply(Put(2, "f", 1, 1, ("c",), 0))          # chunks from before epoch 1
    assert meta.outcomes[2] == ("epoch", 1)
    meta.apply(Put(3, "f", 1, 1, ("c",), 1))
    meta.apply(Collect(4))
    assert meta.outcomes[3] == OK and meta.outcomes[4] == (2, frozenset({"c"}))


# -- bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("", "1 to 255 characters"), ("x" * 256, "1 to 255 characters"),
    ("../etc/passwd", "relative path"), ("/abs", "relative path"),
    ("a//b", "relative path"), ("a/./b", "relative path"), ("a/", "relative path"),
    ("a\\b", "backslash"), ("a\x00b", "control"),
])
def test_bad_file_names_are_refused_with_a_reason(name, message):
    system = fs()
    for call in (lambda: system.upload(name, b"x"), lambda: system.download(name),
                 lambda: system.delete(name)):
        with pytest.raises(ConfigError, match=message):
            call()


@pytest.mark.parametrize("data, message", [
    ("text", "encode it first"), (42, "got int"), (None, "got NoneType"),
    ([1, 2], "got list"),
])
def test_non_bytes_data_is_refused(data, message):
    with pytest.raises(TypeError, match=message):
        fs().upload("f", data)


def test_non_str_names_are_refused():
    with pytest.raises(TypeError, match="file_name must be a str"):
        fs().download(b"f")


@pytest.mark.parametrize("options, message", [
    ({"nodes": 0}, "nodes must be >= 1"),
    ({"nodes": 2, "replication": 3}, "cannot exceed"),
    ({"replication": 0}, "replication must be >= 1"),
    ({"write_quorum": 4}, "write_quorum must be between"),
    ({"write_quorum": 0}, "write_quorum must be >= 1"),
    ({"chunk_size": 0}, "chunk_size must be >= 1"),
    ({"timeout": 0}, "timeout must be > 0"),
    ({"rpc_timeout": -1}, "rpc_timeout must be > 0"),
    ({"vnodes": 0}, "vnodes must be >= 1"),
    ({"metadata": 0}, "metadata must be >= 1"),
    ({"gc_interval": 0}, "gc_interval must be > 0"),
    ({"net": 0.01}, "net must be a NetConfig"),
    ({"log": "raft"}, "log must build the metadata log"),
    ({"seed": 1.5}, "seed must be an int"),
])
def test_bad_configuration_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        fs(**options)


@pytest.mark.parametrize("call, message", [
    # were a ZeroDivisionError, a KeyError and OverflowErrors
    (lambda: lk.scenarios.join_moves(replicas=0), "replicas must be >= 1"),
    (lambda: lk.scenarios.rebalance(files=0), "files must be >= 1"),
    (lambda: lk.scenarios.rebalance(size=0), "size must be >= 1"),
    (lambda: lk.scenarios.single_points(size=10**9), "size must be <= 1,000,000"),
    (lambda: lk.scenarios.storage_playground(chunk_size=10**9),
     "chunk_size must be <= 250,000"),
])
def test_storage_scenarios_refuse_bad_arguments(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_unknown_node_names_are_refused_by_the_fault_verbs():
    with pytest.raises(ConfigError, match="unknown node"):
        fs().kill("s9")


# -- determinism ----------------------------------------------------------------------

def scripted(seed: int) -> str:
    system = lk.FileSystem(5, 3, seed=seed, chunk_size=200,
                           net=NetConfig(latency=lk.dist.exponential(0.002),
                                         loss=0.02))
    for i in range(6):
        system.upload(f"f{i}", blob(700, seed=i))
    system.kill("s2")
    system.kill(system.log.leader())
    for i in range(6):
        system.download(f"f{i}")
    system.delete("f1")
    system.add_server()
    system.run(3.0)
    return system.result("storage").fingerprint


def test_same_seed_same_run_and_another_seed_another():
    assert scripted(3) == scripted(3)
    assert scripted(3) != scripted(4)


def test_same_run_under_another_hash_seed():
    env = {**os.environ, "PYTHONHASHSEED": "4242",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    code = "from test_storage import scripted; print(scripted(3))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == scripted(3)


# -- random faults over many seeds ----------------------------------------------------

NAMES = ("a", "b", "c")


def random_workload(seed: int, steps: int = 25) -> tuple[lk.FileSystem, dict, dict]:
    """Random uploads, downloads and deletes of three names, between random
    faults (crashes, restarts, partitions, loss). Returns the file system, the
    digest of each name's last acknowledged write (None: deleted or never
    written) and the digests of writes that failed since (they may or may not
    have taken effect)."""
    system = lk.FileSystem(5, 3, seed=seed, chunk_size=300, timeout=1.0,
                           repair_interval=0.3, gc_interval=0.7, trace=False)
    rng = random.Random(f"workload:{seed}")
    acked: dict[str, str | None] = dict.fromkeys(NAMES)
    maybe: dict[str, set] = {n: set() for n in NAMES}
    for step in range(steps):
        random_faults(system, 0.3, seed * 1000 + step, mean_gap=0.15)
        name, roll = rng.choice(NAMES), rng.random()
        if roll < 0.45:
            data = blob(rng.randrange(0, 1500), seed=seed * 1000 + step)
            try:
                system.upload(name, data)
                acked[name], maybe[name] = chunk_id(data), set()
            except Unavailable:
                maybe[name].add(chunk_id(data))
        elif roll < 0.85:
            try:
                got = chunk_id(system.download(name))
            except FileNotFoundError:
                got = None
            except Unavailable:
                continue
            assert got in {acked[name], *maybe[name]}, (
                f"seed={seed}: step {step} read a version of {name!r} that was "
                f"never written or was overwritten")
        else:
            try:
                system.delete(name)
                acked[name], maybe[name] = None, set()
            except FileNotFoundError:
                pass
            except Unavailable:
                maybe[name].add(None)
    return system, acked, maybe


@pytest.mark.parametrize("seed", range(40))
def test_no_acknowledged_upload_is_lost_under_random_faults(seed):
    system, acked, maybe = random_workload(seed)
    system.heal()
    system.network.update(loss=0.0)
    for name in system.names:
        system.restart(name)
    system.run(3.0)
    for name in NAMES:
        try:
            got = chunk_id(system.download(name))
        except FileNotFoundError:
            got = None
        assert got in {acked[name], *maybe[name]}, (
            f"seed={seed}: {name!r} lost its last acknowledged write")
    assert system.under_replicated() == 0, f"seed={seed}"
    verdict = check.linearizable(system.history)
    assert verdict.ok, f"seed={seed}: {verdict.explain()}"
    system.log.check()


# -- the notebook's playground ---------------------------------------------------------

def test_the_playground_redraws_on_a_kill_and_reports_impossible_settings():
    from labkit import widgets

    playground = widgets.storage_playground(nodes=5)
    explorer = playground.explorer
    assert explorer.result.params["down"] == ()
    playground.switches.buttons[0].value = True       # kill s1 at t = 1 s
    assert explorer.result.params["down"] == (0,)
    assert max(explorer.result.metrics["under_replicated"].values) > 0
    assert len(playground.figure.data) == 6
    explorer.controls["r"].value = 4                  # more than N = 3 replicas
    assert "r and w must be between 1 and n" in explorer.status.value
    assert explorer.result.params["r"] == 1           # the last good run stays
    explorer.controls["nodes"].value = 4
    assert len(playground.switches.buttons) == 4


def test_the_playground_can_start_with_named_servers_down_on_a_log_latency_axis():
    from labkit import widgets

    playground = widgets.storage_playground(nodes=5, down=["s1"])
    assert playground.result.params["down"] == (0,)            # s1 is index 0
    assert playground.switches.buttons[0].description == "restart s1"
    axis = playground.figure.layout.xaxis
    assert axis.type == "log" and "log" in axis.title.text
    downloads = playground.result.metrics["download.latency"].sorted()
    # Reads whose first copy was on s1 pay one 50 ms rpc_timeout: a second step.
    assert downloads.min() < 0.010 and 0.050 < downloads.max() < 0.070
    with pytest.raises(ConfigError, match="servers are s1, s2, s3, s4, s5"):
        widgets.storage_playground(nodes=5, down=["s0"])


def test_t_visibility_shows_each_write_delay_once_and_the_same_numbers():
    from labkit import scenarios

    seen = []

    def bar(items, total, description):
        assert total == 2 and description == "t_visibility: write delays"
        for item in items:
            seen.append(item[0])
            yield item

    shown = scenarios.t_visibility(seed=3, trials=30, points=2, progress=bar)
    assert seen == list(scenarios.storage.PBS_PAPER)
    plain = scenarios.t_visibility(seed=3, trials=30, points=2)
    assert shown.fingerprint == plain.fingerprint
    with pytest.raises(TypeError, match="progress must be a function"):
        scenarios.t_visibility(trials=30, points=2, progress="yes")


def test_staleness_shows_each_quorum_once_and_the_same_numbers():
    from labkit import scenarios

    quorums, seen = [(3, 1, 1), (3, 2, 2), (5, 1, 3)], []

    def bar(items, total, description):
        assert total == 3 and description == "staleness: quorums"
        for item in items:
            seen.append(item)
            yield item

    shown = scenarios.staleness(seed=2, quorums=quorums, trials=50, progress=bar)
    assert seen == quorums
    assert shown.fingerprint == scenarios.staleness(
        seed=2, quorums=quorums, trials=50).fingerprint
    with pytest.raises(TypeError, match="progress must be a function"):
        scenarios.staleness(quorums=quorums, trials=50, progress=3)
