"""Notebook 07's file system: `FileSystem` (labkit.storage's, with its
metadata on a Raft log), what one crash costs with and without redundancy
(`single_points`), a tour of calls under faults, durability under random crash
schedules, and the playground."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit import check, raft, storage
from labkit.errors import ConfigError, checked, require_int, require_number
from labkit.metrics import Metrics, Record, Result, keyed
from labkit.net import NetConfig
from labkit.sim import Simulator

from ..common import Table
from .quorums import count_of, stale_share


@checked
def raft_log(size: int, seed: int, net: NetConfig | None,
             trace: bool) -> raft.RaftCluster:
    """The file system's metadata log: a Raft cluster of `size` nodes."""
    return raft.RaftCluster(size, seed=seed, net=net, trace=trace)


class FileSystem(storage.FileSystem):
    """`labkit.storage.FileSystem` with its metadata on a Raft log (see there)."""

    def __init__(self, nodes: int = 5, replication: int = 3, *, seed: int = 0,
                 log: storage.LogFactory = raft_log, **options: Any):
        super().__init__(nodes, replication, seed=seed, log=log, **options)


def _downloadable(fs: storage.FileSystem, names: Iterable[str],
                  contents: Mapping[str, bytes]) -> int:
    """How many of `names` download with exactly their expected bytes."""
    good = 0
    for name in names:
        try:
            good += fs.download(name) == contents[name]
        except (storage.Unavailable, FileNotFoundError):
            pass
    return good


#: The largest file (bytes) a scenario writes: the bytes live in this process.
MAX_FILE_BYTES = 1_000_000


def file_contents(seed: int, files: int, size: int) -> dict[str, bytes]:
    """`files` files of `size` random bytes each, named file00.bin on."""
    files = require_int("files", files, minimum=1)
    size = require_int("size", size, minimum=1, maximum=MAX_FILE_BYTES)
    rng = Simulator(seed).rng("storage.contents")
    return {f"file{i:02d}.bin": rng.randbytes(size) for i in range(files)}


@checked
def single_points(seed: int = 7, *, files: int = 20, size: int = 2000) -> Result:
    """What one crash costs with and without redundancy: `files` files on five
    chunk servers; then one chunk server, or the metadata leader, is killed and
    every file is downloaded again. Rows: setup, crash, files still readable."""
    contents = file_contents(seed, files, size)
    rows = []
    for setup, options, victim in [
            ("1 copy of each chunk", {"replication": 1}, "chunk server s1"),
            ("3 copies of each chunk", {"replication": 3}, "chunk server s1"),
            ("metadata on 1 node", {"metadata": 1}, "the metadata node"),
            ("metadata on 3 nodes (Raft)", {"metadata": 3}, "the metadata leader")]:
        fs = FileSystem(5, options.get("replication", 3), seed=seed, timeout=1.0,
                        trace=False, metadata=options.get("metadata", 3))
        for name, data in contents.items():
            fs.upload(name, data)
        fs.run(0.5)
        fs.kill("s1" if victim.startswith("chunk") else fs.log.leader())
        start = fs.now
        good = _downloadable(fs, contents, contents)
        rows.append({"setup": setup, "crash": victim, "files readable": good,
                     "of": files, "time to read all (s)": round(fs.now - start, 3)})
    return Result("single_points", {"files": files, "size": size}, seed, Metrics(),
                  data=Table(rows=rows))


@checked
def storage_tour(seed: int = 7) -> Result:
    """One call per line under one fault each, on a 5-server file system with
    Raft metadata: what the call returned and how long it took."""
    fs = FileSystem(5, 3, seed=seed, timeout=1.0, chunk_size=512, trace=False)
    data = Simulator(seed).rng("tour").randbytes(4000)
    fs.run(1.0)
    rows = []

    def step(event: str, call: Any, *fault: Any) -> None:
        if fault:
            fs.sim.schedule(*fault)
        start = fs.now
        try:
            value = call()
            outcome = f"{len(value)} bytes" if isinstance(value, bytes) else "ok"
        except (storage.Unavailable, FileNotFoundError) as exc:
            outcome = type(exc).__name__
        rows.append({"event": event, "outcome": outcome,
                     "latency (ms)": round(1e3 * (fs.now - start), 1)})

    first = fs.ring.owners(storage.chunk_id(data[:512]), 1)[0]
    step("upload, no fault", lambda: fs.upload("a.bin", data))
    step("download, no fault", lambda: fs.download("a.bin"))
    step(f"upload, {first} killed mid-upload",
         lambda: fs.upload("b.bin", data), 0.0015, fs.kill, first)
    step("download, its first replica down", lambda: fs.download("b.bin"))
    fs.restart(first)
    second = fs.ring.owners(storage.chunk_id(data[:512]), 2)[1]
    step(f"download, {second} killed mid-download",
         lambda: fs.download("a.bin"), 0.0025, fs.kill, second)
    fs.restart(second)
    fs.run(1.0)
    step("download, metadata leader killed", lambda: fs.download("a.bin"), 0.0,
         fs.kill, fs.log.leader())
    fs.run(1.0)
    for name in fs.metadata_nodes:
        fs.restart(name)
    fs.run(1.0)
    leader = fs.log.leader()
    others = [n for n in fs.metadata_nodes if n != leader]
    fs.partition([leader], others)
    step("download, metadata leader cut off", lambda: fs.download("a.bin"))
    fs.heal()
    fs.kill(others[0])
    fs.kill(others[1])
    step("delete, 2 of 3 metadata nodes down", lambda: fs.delete("a.bin"))
    fs.restart(others[0])
    fs.restart(others[1])
    fs.run(1.0)
    step("delete, after they restart", lambda: fs.delete("a.bin"))
    step("download the deleted file", lambda: fs.download("a.bin"))
    return Result("storage_tour", {}, seed, fs.sim.metrics, data=Table(rows=rows))


@checked
def durability(seed: int = 0, *, schedules: int = 20, steps: int = 20) -> Result:
    """Random crash/restart schedules against the file system's promise. Each
    schedule crashes and restarts random chunk servers and metadata nodes
    between random uploads, downloads and deletes of three names; then every
    node restarts and each name is read once more. Counts: acknowledged writes,
    refused calls, reads that returned bytes never acknowledged or overwritten,
    acknowledged writes lost, and histories that labkit.check finds
    linearizable."""
    schedules = require_int("schedules", schedules, minimum=1)
    counts = dict.fromkeys(["schedules", "crashes", "uploads acknowledged",
                            "deletes acknowledged", "calls refused (Unavailable)",
                            "reads checked", "wrong reads", "acknowledged writes lost",
                            "linearizable histories"], 0)
    for s in range(schedules):
        fs = FileSystem(5, 3, seed=seed * 1000 + s, chunk_size=300, timeout=1.0,
                        repair_interval=0.3, gc_interval=0.7, trace=False)
        _crash_schedule(fs, Simulator(seed * 1000 + s).rng("durability"), steps,
                        counts)
        verdict = check.linearizable(fs.history)
        counts["schedules"] += 1
        counts["linearizable histories"] += verdict.ok
    return Result("durability", {"schedules": schedules, "steps": steps}, seed,
                  Metrics(), data=Durability(counts=counts))


def _crash_schedule(fs: storage.FileSystem, rng: Any, steps: int,
                    counts: dict[str, int]) -> None:
    names = ("a", "b", "c")
    acked: dict[str, str | None] = dict.fromkeys(names)
    maybe: dict[str, set] = {n: set() for n in names}

    def read(name: str) -> str | None:
        try:
            return storage.chunk_id(fs.download(name))
        except FileNotFoundError:
            return None

    for _ in range(require_int("steps", steps, minimum=1)):
        victim = rng.choice(fs.names)
        if fs.is_up(victim) and rng.random() < 0.6:
            fs.kill(victim)
            counts["crashes"] += 1
        else:
            fs.restart(victim)
        fs.run(rng.uniform(0.0, 0.3))
        name, roll = rng.choice(names), rng.random()
        try:
            if roll < 0.45:
                data = rng.randbytes(rng.randrange(1500))
                maybe[name].add(storage.chunk_id(data))
                fs.upload(name, data)
                acked[name], maybe[name] = storage.chunk_id(data), set()
                counts["uploads acknowledged"] += 1
            elif roll < 0.85:
                counts["wrong reads"] += read(name) not in {acked[name], *maybe[name]}
                counts["reads checked"] += 1
            else:
                maybe[name].add(None)
                fs.delete(name)
                acked[name], maybe[name] = None, set()
                counts["deletes acknowledged"] += 1
        except storage.Unavailable:
            counts["calls refused (Unavailable)"] += 1
        except FileNotFoundError:
            pass                            # a delete of a missing file
    for node in fs.names:
        fs.restart(node)
    fs.run(3.0)
    for name in names:
        counts["acknowledged writes lost"] += read(name) not in {acked[name],
                                                                 *maybe[name]}


#: Partitions the playground offers: label -> (groups of names) for a file system.
STORAGE_PARTITIONS = ("none", "metadata leader cut off", "chunk servers split")


def _storage_partition(fs: storage.FileSystem, preset: str) -> None:
    if preset == "metadata leader cut off" and fs.log.leader() is not None:
        leader = fs.log.leader()
        fs.partition([leader], [n for n in fs.names if n != leader])
    elif preset == "chunk servers split":
        half = len(fs.servers) // 2
        fs.partition(fs.servers[:half], [*fs.servers[half:], *fs.metadata_nodes])


@checked
def storage_playground(seed: int = 1, *, nodes: int = 5, replication: int = 3,
                       write_quorum: int = 2, chunk_size: int = 1024, r: int = 1,
                       w: int = 1, reads: float = 0.5, partition: str = "none",
                       down: Sequence[int] = (), kill_leader: bool = False,
                       duration: float = 3.0) -> Result:
    """The notebook's playground. A file system with these knobs serves a random
    mix of uploads (1-4 chunks) and downloads (share `reads`) for `duration`
    simulated seconds; at t = 1 s the chunk servers numbered in `down` crash (0
    is s1; numbers past the last server are ignored), so does the metadata
    leader if `kill_leader`, and the partition preset starts. Beside it, a
    quorum store with N = replication, R = r, W = w measures the stale-read
    share of random partial quorums (400 trials)."""
    if partition not in STORAGE_PARTITIONS:
        raise ConfigError(f"partition must be one of {STORAGE_PARTITIONS}, got "
                          f"{partition!r}")
    reads = require_number("reads", reads)
    if not 0.0 <= reads <= 1.0:
        raise ConfigError(f"reads must be a share in [0, 1], got {reads}")
    # a file is 1-4 chunks
    require_int("chunk_size", chunk_size, minimum=1, maximum=MAX_FILE_BYTES // 4)
    fs = FileSystem(nodes, replication, seed=seed, write_quorum=write_quorum,
                    chunk_size=chunk_size, timeout=0.5, repair_interval=0.25,
                    trace=False)
    victims = [fs.servers[require_int("down", i, minimum=0)] for i in down
               if i < len(fs.servers)]
    n, r, w = replication, r, w
    kv_stale = stale_share(seed, n, r, w, trials=400)
    rng = fs.sim.rng("playground")
    written: list[str] = []
    struck = False
    while fs.now < duration:
        if not struck and fs.now >= 1.0:
            if kill_leader and fs.log.leader() is not None:
                victims.append(fs.log.leader())
            for name in victims:
                fs.kill(name)
            _storage_partition(fs, partition)
            struck = True
        try:
            if written and rng.random() < reads:
                fs.download(rng.choice(written))
            else:
                name = f"f{len(written) % 20}"
                fs.upload(name, rng.randbytes(rng.randint(1, 4 * chunk_size)))
                written.append(name)
        except (storage.Unavailable, FileNotFoundError):
            pass
        fs.run(0.02)
    m = fs.sim.metrics
    calls = {what: {outcome: count_of(m, f"{what}.{outcome}") for outcome in
                    ("ok", "Unavailable")} for what in ("upload", "download")}
    loads = {"KB stored": {s: b / 1e3 for s, b in fs.stored_bytes().items()},
             "requests": {s: count_of(m, f"requests.{s}") for s in fs.servers}}
    refused = sum(c["Unavailable"] for c in calls.values())
    total = refused + sum(c["ok"] for c in calls.values())
    headline = (f"{total} calls, {refused} refused · stale reads at R={r}, W={w} of "
                f"N={n}: {kv_stale:.2f} (theory "
                f"{storage.stale_probability(n, r, w):.2f})")
    return Result("storage_playground", {
        "nodes": nodes, "replication": replication, "write_quorum": write_quorum,
        "chunk_size": chunk_size, "r": r, "w": w, "reads": reads,
        "partition": partition, "down": tuple(down), "kill_leader": kill_leader,
        "duration": duration}, seed, m,
        data=StoragePlayground(calls=calls, loads=loads, stale=kv_stale,
                               stale_theory=storage.stale_probability(n, r, w),
                               headline=headline))


# -- the records of this module's scenarios (see labkit.metrics.Record) -----------

@dataclass(frozen=True, kw_only=True)
class Durability(Record):
    """`durability`'s data: the counts of the docstring there, by name."""

    counts: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class StoragePlayground(Record):
    """The storage playground's data: upload and download calls by outcome,
    KB stored and requests per server ("loads"), the quorum store's measured
    stale-read share and its closed form, and a headline."""

    calls: dict[str, dict[str, int]]
    loads: dict[str, dict[str, float]]
    stale: float
    stale_theory: float = keyed("stale theory")
    headline: str
