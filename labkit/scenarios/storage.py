"""Scenarios of notebook 07, distributed storage: the file system with its
metadata on a Raft log (`FileSystem`, also `lk.FileSystem`), what one crash
costs with and without redundancy, a tour of calls under faults, consistent
hashing (balance, keys moved on a join, the rebalance), partial quorums
(staleness against Bailis et al.'s closed form, t-visibility with
`visibility_summary` to join runs of a sweep, latency costs),
how a stale replica converges, durability under random crash schedules, and
the playground. The stores themselves are `labkit.storage`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit import check, dist, raft, storage
from labkit.dist import Distribution
from labkit.errors import ConfigError, require_int, require_number
from labkit.metrics import Metrics, Record, Result, TimeSeries, keyed
from labkit.net import NetConfig
from labkit.sim import Simulator

from .common import Table, with_progress


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


def _contents(seed: int, files: int, size: int) -> dict[str, bytes]:
    rng = Simulator(seed).rng("storage.contents")
    return {f"file{i:02d}.bin": rng.randbytes(size) for i in range(files)}


def single_points(seed: int = 7, *, files: int = 20, size: int = 2000) -> Result:
    """What one crash costs with and without redundancy: `files` files on five
    chunk servers; then one chunk server, or the metadata leader, is killed and
    every file is downloaded again. Rows: setup, crash, files still readable."""
    files = require_int("files", files, minimum=1)
    contents = _contents(seed, files, require_int("size", size, minimum=1))
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


def ring_balance(seed: int = 0, *, servers: int = 10,
                 vnodes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
                 ) -> Result:
    """How evenly a consistent-hash ring splits the key space, by number of
    virtual nodes: the largest share times N (1 is perfect) and the relative
    spread (std / mean) of the shares, beside 1/sqrt(vnodes), the spread of a sum
    of vnodes independent gaps. Server names carry the seed."""
    servers = require_int("servers", servers, minimum=2)
    largest, spread = {}, {}
    for v in vnodes:
        shares = np.array(list(storage.HashRing(
            [f"seed{seed}-s{i}" for i in range(servers)], vnodes=v).shares().values()))
        largest[v] = float(shares.max() * servers)
        spread[v] = float(shares.std() / shares.mean())
    return Result("ring_balance", {"servers": servers, "vnodes": list(vnodes)}, seed,
                  Metrics(), data=RingBalance(
                      largest=largest, spread=spread,
                      theory={v: 1 / math.sqrt(v) for v in vnodes}))


def join_moves(seed: int = 0, *, sizes: Sequence[int] = (3, 4, 5, 6, 8, 10, 12, 16,
                                                          20),
               keys: int = 3000, replicas: int = 3, vnodes: int = 128) -> Result:
    """Share of replica placements that move when one server joins N servers:
    consistent hashing against 1/(N+1) (the newcomer's fair share), modulo
    hashing against its exact average over residues."""
    names = [f"seed{seed}-k{i}" for i in range(require_int("keys", keys, minimum=1))]
    ring, modulo, fair, exact = {}, {}, {}, {}
    for n in sizes:
        servers = [f"s{i}" for i in range(1, n + 1)]
        bigger = [*servers, f"s{n + 1}"]
        before = storage.HashRing(servers, vnodes=vnodes)
        after = storage.HashRing(bigger, vnodes=vnodes)
        ring[n] = storage.moved_share(names, lambda k, b=before: b.owners(k, replicas),
                                      lambda k, a=after: a.owners(k, replicas))
        modulo[n] = storage.moved_share(
            names, lambda k, s=servers: storage.modulo_owners(k, s, replicas),
            lambda k, s=bigger: storage.modulo_owners(k, s, replicas))
        fair[n] = 1 / (n + 1)
        exact[n] = _modulo_theory(n, replicas)
    return Result("join_moves", {"sizes": list(sizes), "keys": keys,
                                 "replicas": replicas, "vnodes": vnodes}, seed,
                  Metrics(), data=JoinMoves(ring=ring, modulo=modulo, fair=fair,
                                            modulo_theory=exact))


def _modulo_theory(n: int, replicas: int) -> float:
    """Expected share of placements that move under modulo hashing from n to n+1
    servers: h mod n(n+1) fixes both residues, so average over all of them."""
    moved = 0
    for h in range(n * (n + 1)):
        old = {(h % n + k) % n for k in range(min(replicas, n))}
        new = [(h % (n + 1) + k) % (n + 1) for k in range(min(replicas, n + 1))]
        moved += sum(s not in old for s in new)
    return moved / (n * (n + 1) * min(replicas, n + 1))


def rebalance(seed: int = 7, *, nodes: int = 5, files: int = 40,
              size: int = 1000) -> Result:
    """Measured on the file system: `files` files on `nodes` servers, then one
    more server joins and the janitor moves what now belongs to it. Data: total
    bytes stored, bytes moved, what the ring predicts and the 1/(N+1) share."""
    fs = FileSystem(nodes, 3, seed=seed, chunk_size=128, repair_interval=0.2,
                    trace=False)
    for name, data in _contents(seed, files, size).items():
        fs.upload(name, data)
    fs.run(1.0)
    chunks = fs.metadata.chunk_sizes(fs.chunk_size)
    before = {c: fs.ring.owners(c, 3) for c in chunks}
    total = sum(fs.stored_bytes().values())
    fs.add_server()
    fs.run(2.0)
    predicted = sum(size * sum(s not in before[c] for s in fs.ring.owners(c, 3))
                    for c, size in chunks.items())
    moved = fs.sim.metrics["bytes.rebalance"].value
    return Result("rebalance", {"nodes": nodes, "files": files, "size": size}, seed,
                  fs.sim.metrics, data=Rebalance(stored=total, moved=moved,
                                                 predicted=predicted,
                                                 fair=total / (nodes + 1),
                                                 after=fs.stored_bytes()))


#: (N, R, W) combinations the staleness table measures.
QUORUMS = ((3, 1, 1), (3, 1, 2), (3, 2, 1), (3, 2, 2), (5, 1, 1), (5, 2, 2),
           (5, 1, 3), (5, 3, 3))


def staleness(seed: int = 1, *, quorums: Sequence[tuple[int, int, int]] = QUORUMS,
              trials: int = 2000,
              progress: Callable[..., Iterable] | None = None) -> Result:
    """Random partial quorums measured against Bailis et al.'s closed form: each
    trial writes a fresh key to W random replicas of N and reads R random
    replicas at once. Rows: N, R, W, measured and predicted stale share, and
    four standard errors of the measurement. `progress`: a wrapper that shows
    a bar while it yields the quorums, called as progress(items, total=,
    description=), e.g. labkit.widgets.progress."""
    trials = require_int("trials", trials, minimum=1)
    rows = []
    for n, r, w in with_progress(list(quorums), progress, "staleness: quorums"):
        measured = _stale_share(seed, n, r, w, trials)
        p = storage.stale_probability(n, r, w)
        rows.append({"N": n, "R": r, "W": w, "R + W > N": r + w > n,
                     "stale (measured)": measured, "C(N−W,R)/C(N,R)": p,
                     "± 4 s.e.": 4 * math.sqrt(max(p * (1 - p), 1e-12) / trials)})
    return Result("staleness", {"quorums": list(quorums), "trials": trials}, seed,
                  Metrics(), data=Table(rows=rows))


#: Bailis et al.'s synthetic example: write mean, {t: share consistent} from the
#: paper, and the times at which the simulation is run.
PBS_PAPER = {
    "fast writes, Exp(0.25 ms)": (0.00025, {0.0: 0.94, 0.001: 0.999},
                                  (0.0, 0.0005, 0.001, 0.002)),
    "slow writes, Exp(10 ms)": (0.010, {0.0: 0.41, 0.065: 0.999},
                                (0.0, 0.01, 0.02, 0.04, 0.065)),
}


def t_visibility(seed: int = 1, *, trials: int = 1000, points: int = 25,
                 writes: Sequence[str] = tuple(PBS_PAPER),
                 progress: Callable[..., Iterable] | None = None) -> Result:
    """t-visibility for N = 3, R = W = 1 in the WARS model (acks, reads and
    responses ~ Exp(1 ms)), for the write delays of the paper's synthetic
    example named in `writes` (keys of PBS_PAPER; both by default, one per run
    in a sweep: `visibility_summary` joins them): the share of reads started t
    seconds after a write returned that see it. Simulated on QuorumKV at a few
    times; computed by `storage.wars_consistency` at `points` times (the
    curve). `progress`: a wrapper that shows a bar while it yields the write
    delays, called as progress(items, total=, description=), e.g.
    labkit.widgets.progress."""
    trials = require_int("trials", trials, minimum=1)
    points = require_int("points", points, minimum=2)
    if isinstance(writes, str) or not writes or any(
            w not in PBS_PAPER for w in writes) or len(set(writes)) != len(writes):
        raise ConfigError(f"writes must be a list of distinct write delays of "
                          f"{list(PBS_PAPER)}, got {writes!r}")
    simulated, model = {}, {}
    chosen = [(w, PBS_PAPER[w]) for w in writes]
    for label, (mean, paper, times) in with_progress(chosen, progress,
                                                     "t_visibility: write delays"):
        delays = storage.WARS(dist.exponential(mean), *[dist.exponential(0.001)] * 3)
        simulated[label] = _visibility(seed, delays, times, trials)
        grid = np.linspace(0.0, 1.25 * max(times), points)
        model[label] = {round(float(t), 6): storage.wars_consistency(
            3, 1, 1, delays, float(t), trials, seed) for t in sorted({*grid, *paper})}
    rows = [{"write delay": label, "t (ms)": 1e3 * t, "paper": share,
             "WARS model": model[label][t], "simulated": simulated[label][t]}
            for label in writes for t, share in PBS_PAPER[label][1].items()]
    params = {"trials": trials, "points": points}
    if list(writes) != list(PBS_PAPER):      # the default's fingerprint unchanged
        params["writes"] = list(writes)
    return Result("t_visibility", params, seed, Metrics(),
                  data=Visibility(simulated=simulated, model=model, rows=rows))


def visibility_summary(parts: Iterable[Visibility]) -> Visibility:
    """One `Visibility` from those of several `t_visibility` runs (e.g. a
    sweep's, one write delay each), in the order given: what one run over all
    their write delays gives."""
    simulated, model, rows = {}, {}, []
    for part in parts:
        if not isinstance(part, Visibility):
            raise TypeError(f"expected the data of t_visibility runs (Visibility), "
                            f"got {part!r}")
        if twice := sorted(set(part.simulated) & set(simulated)):
            raise ConfigError(f"write delays {twice} come twice; give each once")
        simulated.update(part.simulated)
        model.update(part.model)
        rows += part.rows
    return Visibility(simulated=simulated, model=model, rows=rows)


def _visibility(seed: int, delays: storage.WARS, times: Sequence[float],
                trials: int) -> dict[float, float]:
    """Run every (t, trial) at once on one store, each on its own key."""
    kv = storage.QuorumKV(3, n=3, r=1, w=1, seed=seed, delays=delays,
                          net=NetConfig(latency=0.0), trace=False, timeout=10.0)
    client = kv.coordinator
    fresh = dict.fromkeys(times, 0)

    def trial(t: float, key: str):
        yield from client.put(key, 1)
        yield t
        seen = yield from client.get(key)     # before `fresh[t] +=`: others run
        fresh[t] += seen == 1

    for t in times:
        for i in range(trials):
            client.spawn(trial(t, f"{t}:{i}"))
    kv.run(10.0)
    return {t: fresh[t] / trials for t in times}


#: The network of `quorum_costs`: median 1 ms, a long tail (p99 10 ms).
QUORUM_LATENCY = dist.lognormal(median=0.001, p99=0.010)


def quorum_costs(seed: int = 1, *, n: int = 3, ops: int = 600,
                 combos: Sequence[tuple[int, int]] = ((1, 1), (1, 2), (2, 1),
                                                     (2, 2), (1, 3), (3, 1), (3, 3)),
                 latency: Distribution = QUORUM_LATENCY) -> Result:
    """Latency against freshness in the Dynamo mode (writes to all N, reads from
    all N, answer after W / R): a key is written and read right back, `ops`
    times, over a lognormal network whose messages may overtake each other (as
    if writer and reader used different connections). Rows: R, W, p50/p99 of
    puts and gets (ms), and the share of reads that missed the write just
    acknowledged."""
    rows = []
    for r, w in combos:
        kv = storage.QuorumKV(n, n=n, r=r, w=w, seed=seed, read_repair=False,
                              net=NetConfig(latency=latency, reorder=1.0),
                              trace=False)
        for i in range(require_int("ops", ops, minimum=1)):
            kv.put(f"k{i}", i)
            kv.get(f"k{i}")
        m = kv.sim.metrics
        puts, gets = m["put.latency"], m["get.latency"]
        rows.append({"R": r, "W": w, "R + W > N": r + w > n,
                     "put p50 (ms)": 1e3 * puts.percentile(50),
                     "put p99 (ms)": 1e3 * puts.percentile(99),
                     "get p50 (ms)": 1e3 * gets.percentile(50),
                     "get p99 (ms)": 1e3 * gets.percentile(99),
                     "stale reads": m["reads.stale"].value / ops})
    return Result("quorum_costs", {"n": n, "ops": ops, "combos": list(combos)}, seed,
                  Metrics(), data=Table(rows=rows))


def convergence(seed: int = 1, *, keys: int = 300, duration: float = 4.0) -> Result:
    """How a replica that missed writes catches up. N = 3, W = 1: r3 is down
    while `keys` keys are written, then restarts. Three stores: no repair at all;
    read repair (a client reads each key once, 10 per second); anti-entropy
    (Merkle-tree exchange with a random peer every 0.5 s). Series: keys on r3
    older than the newest version, over time; data: Merkle hashes compared and
    entries shipped. Time counts from r3's restart."""
    keys = require_int("keys", keys, minimum=1)
    series, shipped = {}, {}
    for label, options in [("no repair", {"read_repair": False}),
                           ("read repair", {"read_repair": True}),
                           ("anti-entropy", {"read_repair": False,
                                             "anti_entropy": 0.5})]:
        kv = storage.QuorumKV(3, n=3, r=1, w=1, seed=seed, trace=False, **options)
        kv.kill("r3")
        for i in range(keys):
            kv.put(f"k{i}", i)
        kv.restart("r3")
        line = series[label] = TimeSeries(label)
        step, start = 0.1, kv.now
        for tick in range(round(duration / step) + 1):
            if tick:
                if label == "read repair":
                    kv.get(f"k{(tick - 1) % keys}")
                kv.run(start + tick * step - kv.now)   # a read took a few ms
            line.add(round(tick * step, 6), sum(
                kv.versions(f"k{i}")["r3"] < kv.coordinator.acked[f"k{i}"]
                for i in range(keys)))
        m = kv.sim.metrics
        shipped[label] = {"hashes compared": _value(m, "entropy.hashes"),
                          "entries shipped": _value(m, "entropy.entries"),
                          "read repairs": _value(m, "read_repairs")}
    return Result("convergence", {"keys": keys, "duration": duration}, seed,
                  Metrics(), data=Convergence(series=series, shipped=shipped))


def _value(metrics: Metrics, name: str) -> int:
    return metrics[name].value if name in metrics else 0




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
    fs = FileSystem(nodes, replication, seed=seed, write_quorum=write_quorum,
                    chunk_size=chunk_size, timeout=0.5, repair_interval=0.25,
                    trace=False)
    victims = [fs.servers[require_int("down", i, minimum=0)] for i in down
               if i < len(fs.servers)]
    n, r, w = replication, r, w
    kv_stale = _stale_share(seed, n, r, w, trials=400)
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
    calls = {what: {outcome: _value(m, f"{what}.{outcome}") for outcome in
                    ("ok", "Unavailable")} for what in ("upload", "download")}
    loads = {"KB stored": {s: b / 1e3 for s, b in fs.stored_bytes().items()},
             "requests": {s: _value(m, f"requests.{s}") for s in fs.servers}}
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


def _stale_share(seed: int, n: int, r: int, w: int, trials: int) -> float:
    """Measured stale-read share of random partial quorums (fresh key per trial)."""
    kv = storage.QuorumKV(n, n=n, r=r, w=w, fanout="quorum", seed=seed, trace=False)
    for i in range(trials):
        kv.put(f"k{i}", i)
        kv.get(f"k{i}")
    return kv.sim.metrics["reads.stale"].value / trials


# -- the records of this module's scenarios (see labkit.metrics.Record) -----------

@dataclass(frozen=True, kw_only=True)
class RingBalance(Record):
    """`ring_balance`'s data, each {vnodes: value}: the largest share times N,
    the spread (std / mean) of the shares, and 1/sqrt(vnodes)."""

    largest: dict[int, float]
    spread: dict[int, float]
    theory: dict[int, float]


@dataclass(frozen=True, kw_only=True)
class JoinMoves(Record):
    """`join_moves`' data, each {N: share of placements moved}: consistent
    hashing, modulo hashing, the fair 1/(N+1) and modulo's exact average."""

    ring: dict[int, float]
    modulo: dict[int, float]
    fair: dict[int, float]
    modulo_theory: dict[int, float] = keyed("modulo theory")


@dataclass(frozen=True, kw_only=True)
class Rebalance(Record):
    """`rebalance`'s data: bytes stored before the join, moved by the janitor,
    predicted by the ring, the newcomer's fair share, and bytes per server
    after."""

    stored: int
    moved: int
    predicted: int
    fair: float
    after: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class Visibility(Table):
    """`t_visibility`'s data, by write delay: simulated {t: share} and the WARS
    model's curve {t: share}; rows: paper, model and simulation side by side."""

    simulated: dict[str, dict[float, float]]
    model: dict[str, dict[float, float]]


@dataclass(frozen=True, kw_only=True)
class Convergence(Record):
    """`convergence`'s data by store: keys on r3 older than the newest version
    over time ("series"), and hashes compared and entries shipped."""

    series: dict[str, TimeSeries]
    shipped: dict[str, dict[str, int]]


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
