"""Scenarios of notebook 05, Raft: elections from scratch and after a leader
crash (`raft_election`, `raft_failover`), Figure 16 of the Raft paper (in one
process, or as a sweep's grid, measure and summary: `figure_16_grid`,
`downtimes`, `figure_16_summary`), etcd's measured failovers
(data/etcd_failover_*.csv) beside the simulation, the timing rule
broadcastTime << electionTimeout, and the key-value store checked for
linearizability while its leader is cut off (`raft_kv`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from labkit import check, dist, raft
from labkit.dist import Distribution
from labkit.errors import (
    ConfigError,
    checked,
    require_int,
    require_items,
    require_number,
)
from labkit.metrics import Histogram, Metrics, Record, Result
from labkit.net import NetConfig

from .common import (
    ClusterRun,
    Runs,
    Table,
    _window,
    cluster_data,
    failover_size,
    with_data,
    with_progress,
)

#: Figure 16's network: 2-3 ms one way, plus a 10 ms disk write before every
#: answer (Raft persists term, vote and entries first), so a broadcast round trip
#: takes about 15 ms as in the paper. The one-way part is the window in which a
#: second node can time out before the first candidate's request reaches it.
FIG16_LATENCY = dist.uniform(0.002, 0.003)
FIG16_DISK = 0.010
#: The same median one-way delay with a tail (p99 15 ms), for the timing rule.
JITTERY_LATENCY = dist.lognormal(median=0.0025, p99=0.015)
#: Figure 16 of the Raft paper (FACTS.md): timeout range in ms -> (statistic,
#: milliseconds) as the paper reports them.
FIG16_PAPER: Mapping[tuple[int, int], tuple[tuple[str, float], ...]] = \
    MappingProxyType({
        (150, 150): (("min", 10_000.0),),          # "consistently over 10 s"
        (150, 155): (("median", 287.0),),
        (150, 200): (("max", 513.0),),             # worst of 1000 trials
        (12, 24): (("mean", 35.0), ("max", 152.0)),
    })
#: Figure 16's election-timeout ranges (ms): the top half (150 ms minimum),
#: then the bottom half (T, 2T).
FIG16_RANGES = ((150, 150), (150, 155), (150, 175), (150, 200), (150, 300),
                (12, 24), (25, 50), (50, 100), (100, 200))


@dataclass(frozen=True, kw_only=True)
class RaftRun(ClusterRun):
    """A Raft cluster's run: a `ClusterRun` with the role timeline (time, node,
    role, term), the elections won (time, node, term), each node's log as
    (index, term) pairs, its log_base (last index in its snapshot) and commit
    index, and the seconds without a leader."""

    roles: tuple[tuple[float, str, str, int], ...]
    elections: tuple[tuple[float, str, int], ...]
    logs: dict[str, list[tuple[int, int]]]
    log_base: dict[str, int]
    commit: dict[str, int]
    leaderless: float


@dataclass(frozen=True, kw_only=True)
class KVRun(RaftRun):
    """`raft_kv`'s data: a `RaftRun` with the clients' history, its
    linearizability verdict, and the reads and writes completed."""

    history: tuple
    verdict: check.CheckResult
    reads: int
    writes: int


@dataclass(frozen=True, kw_only=True)
class Failovers(Record):
    """`raft_failover`'s data: a headline (the downtimes are the histogram
    "downtime" of its metrics)."""

    headline: str


@dataclass(frozen=True, kw_only=True)
class Downtimes(Record):
    """`etcd_comparison`'s data: measured and simulated downtimes by label."""

    runs: dict[str, Histogram]


@checked
def raft_cluster(seed: int = 0, *, nodes: int = 5,
                 election_timeout: tuple[float, float] = (0.150, 0.300),
                 heartbeat: float = 0.050, latency: float | Distribution = 0.010,
                 loss: float = 0.0, **options: Any) -> raft.RaftCluster:
    """A RaftCluster n1..nN on a network of the given latency and loss (other
    keywords go to RaftCluster: pre_vote, disk_delay, snapshot_every, ...)."""
    return raft.RaftCluster(nodes, seed=seed, election_timeout=election_timeout,
                            heartbeat=heartbeat,
                            net=NetConfig(latency=latency, loss=loss), **options)


@checked
def raft_result(cluster: raft.RaftCluster, scenario: str, **params: Any) -> Result:
    """The cluster's Result with a `RaftRun` as its data, whose headline says:
    time, leader and term, elections, leaderless time, messages."""
    result = cluster.result(scenario, **params)
    data = cluster_data(cluster, result)
    leader = cluster.leader()
    who = f"leader {leader} (term {cluster.term(leader)})" if leader else "no leader"
    headline = (f"t = {cluster.now:.2f} s · {who} · {len(cluster.elections())} "
                f"election{'s' if len(cluster.elections()) != 1 else ''} · "
                f"leaderless {data['leaderless']:.3f} s · "
                f"{cluster.messages_sent} messages")
    return with_data(result, RaftRun(**{**data, "headline": headline}))


@checked
def raft_election(seed: int = 1, *, nodes: int = 5,
                  election_timeout: tuple[float, float] = (0.150, 0.300),
                  heartbeat: float = 0.050, latency: float | Distribution = 0.010,
                  loss: float = 0.0, duration: float = 1.0,
                  crash_leader_at: float | None = None) -> Result:
    """A cluster starting from scratch for `duration` s: the first election, then
    heartbeats; with crash_leader_at the leader of that moment crashes then."""
    c = raft_cluster(seed, nodes=nodes, election_timeout=election_timeout,
                     heartbeat=heartbeat, latency=latency, loss=loss)
    duration = require_number("duration", duration, positive=True)
    if crash_leader_at is not None:
        at = require_number("crash_leader_at", crash_leader_at, minimum=0.0)
        c.sim.at(at, lambda: c.leader() and c.kill(c.leader()))
    c.run(duration)
    return raft_result(c, "raft_election", nodes=nodes, heartbeat=heartbeat,
                       election_timeout=election_timeout, latency=latency,
                       loss=loss, duration=duration, crash_leader_at=crash_leader_at)


def _await_leader(c: raft.RaftCluster, timeout: tuple[float, float]) -> str:
    """Elect a leader with timeouts (lo, 2 lo) (identical timeouts may never
    elect one), let it settle, then switch to `timeout`; its name. Timeouts
    below the broadcast time lose leaders while settling: then elect again."""
    c.configure(election_timeout=(timeout[0], 2 * timeout[0]))
    while True:
        while c.leader() is None:
            c.run(0.05)
        c.run(0.5)
        if c.leader() is not None:
            break
    c.configure(election_timeout=timeout)
    return c.leader()


@checked
def raft_failover(seed: int = 1, *,
                  election_timeout: tuple[float, float] = (0.150, 0.300),
                  trials: int = 100, latency: float | Distribution = FIG16_LATENCY,
                  disk_delay: float = FIG16_DISK, cap: float = 10.0,
                  unequal_logs: bool = True, nodes: int = 5,
                  heartbeat: float | None = None) -> Result:
    """Figure 16's experiment: five servers, heartbeat = half the minimum election
    timeout (unless given); `trials` times, the leader crashes at a uniformly
    random point of its heartbeat interval, just after a heartbeat round reset
    every follower's timer. With unequal_logs, two random followers miss the last
    entry, so they cannot win. Metric "downtime": crash to new leader (at most
    `cap` s)."""
    trials = require_int("trials", trials, minimum=1)
    cap = require_number("cap", cap, positive=True)
    nodes = failover_size("nodes", nodes)
    lo, hi = election_timeout
    beat = lo / 2 if heartbeat is None else heartbeat
    c = raft_cluster(seed, nodes=nodes, election_timeout=election_timeout,
                     heartbeat=beat, latency=latency, disk_delay=disk_delay,
                     trace=False)
    rng, downtime = c.sim.rng("failover"), c.sim.metrics.histogram("downtime")
    for _ in range(trials):
        leader = c.leader() or _await_leader(c, (lo, hi))
        c.run(c.node(leader).last_broadcast + beat - c.now + 1e-9)
        if unequal_logs:            # the next entry reaches two followers only
            for name in rng.sample([n for n in c.names if n != leader], 2):
                c.network.block(leader, name)
            c.submit("x")
            c.network.heal()
        c.run(rng.uniform(0.0, beat))
        c.kill(leader)
        crashed, before = c.now, len(c.audit.elections)
        while len(c.audit.elections) == before and c.now - crashed < cap:
            c.run(min(0.01, lo))
        elected = c.audit.elections[before:]
        downtime.add(elected[0][0] - crashed if elected else cap)
        c.restart(leader)
        c.run(max(0.1, 2 * hi))        # it catches up; the new leader settles
    h = downtime
    return Result("raft_failover", {"election_timeout": tuple(election_timeout),
                                    "trials": trials, "latency": latency,
                                    "disk_delay": disk_delay, "cap": cap,
                                    "unequal_logs": unequal_logs, "nodes": nodes,
                                    "heartbeat": beat}, seed, c.sim.metrics,
                  data=Failovers(headline=f"{1e3 * lo:g}-{1e3 * hi:g} ms: median "
                                          f"{1e3 * h.percentile(50):.0f} ms, max "
                                          f"{1e3 * h.max:.0f} ms over {trials} "
                                          "crashes"))


@checked
def figure_16(seed: int = 1, *, trials: int = 100,
              ranges: Sequence[tuple[int, int]] = FIG16_RANGES,
              capped_trials: int = 3,
              progress: Callable[..., Iterable] | None = None) -> Result:
    """`raft_failover` for each timeout range (ms), as in the paper's Figure 16;
    ranges without randomness run only `capped_trials` trials (each lasts the
    10 s cap). data.runs: {"150-155 ms": Result}; data.rows: the paper's
    numbers beside the simulated ones. `progress` (e.g.
    labkit.widgets.progress) wraps the ranges, called as
    progress(ranges, total=, description=). The same runs, one per Dask task:
    `lk.sweep(raft_failover, figure_16_grid(...), [seed], measure=downtimes)`,
    then `figure_16_summary` of its rows."""
    points = figure_16_grid(trials=trials, ranges=ranges, capped_trials=capped_trials)
    grid = dict(zip((tuple(r) for r in ranges), points, strict=True))
    runs = {}
    for lo, hi in with_progress(list(ranges), progress,
                                f"Figure 16: {trials} trials per range"):
        runs[f"{lo}-{hi} ms"] = raft_failover(seed, **grid[lo, hi])
    rows = _figure_16_rows({label: run.metrics["downtime"]
                            for label, run in runs.items()})
    return Result("figure_16", {"trials": trials, "ranges": tuple(ranges),
                                "capped_trials": capped_trials}, seed, Metrics(),
                  data=Runs(runs=runs, rows=rows))


@checked
def figure_16_grid(*, trials: int = 100,
                   ranges: Sequence[tuple[int, int]] = FIG16_RANGES,
                   capped_trials: int = 3) -> list[dict[str, Any]]:
    """Figure 16's runs as `raft_failover` params, one per timeout range (lo, hi)
    in ms: {"election_timeout": (lo, hi) in s, "trials": n}, with n =
    `capped_trials` for a range without randomness (lo == hi)."""
    trials = require_int("trials", trials, minimum=1)
    capped_trials = require_int("capped_trials", capped_trials, minimum=1)
    grid = []
    for pair in require_items("ranges", ranges, "timeout range"):
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
                and 0 < pair[0] <= pair[1]):
            raise ConfigError(f"ranges must hold (low, high) whole milliseconds with "
                              f"0 < low <= high, got {pair!r}")
        lo, hi = pair
        grid.append({"election_timeout": (lo / 1e3, hi / 1e3),
                     "trials": capped_trials if lo == hi else trials})
    return grid


@checked
def downtimes(run: Result) -> dict[str, tuple[float, ...]]:
    """What Figure 16 keeps of a `raft_failover` run (a sweep's `measure`): its
    downtimes in seconds, in the order of the crashes."""
    return {"downtimes": tuple(run.metrics["downtime"].values.tolist())}


@checked
def figure_16_summary(rows) -> Runs:
    """Figure 16 from a sweep's table (or its rows as dicts), each row with the
    run's "election_timeout" in s and its "downtimes" (see `downtimes`): runs,
    {"150-155 ms": Histogram of the downtimes}, and rows, the paper's numbers
    beside the simulated ones (the same as `figure_16`'s)."""
    if hasattr(rows, "to_dict"):                          # a pandas DataFrame
        rows = rows.to_dict("records")
    runs = {}
    for row in rows:
        if not isinstance(row, Mapping) or not {"election_timeout",
                                                "downtimes"} <= set(row):
            raise ConfigError(f"each row must hold the run's election_timeout and "
                              f"downtimes (a sweep with measure=downtimes), got "
                              f"{row!r}")
        label = _range_label(row["election_timeout"])
        if label in runs:
            raise ConfigError(f"two rows for {label}: Figure 16 takes one run per "
                              f"range (sweep one seed)")
        runs[label] = Histogram("downtime", row["downtimes"])
    return Runs(runs=runs, rows=_figure_16_rows(runs))


def _range_label(election_timeout: tuple[float, float]) -> str:
    """(0.150, 0.155) s -> "150-155 ms"."""
    lo, hi = (round(1e3 * t) for t in election_timeout)
    return f"{lo}-{hi} ms"


def _figure_16_rows(downtimes: Mapping[str, Histogram]) -> list[dict[str, Any]]:
    """The paper's numbers (FIG16_PAPER) beside the simulated ones, for the
    downtimes of each range labelled "lo-hi ms"."""
    rows = []
    for label, h in downtimes.items():
        lo, hi = (int(v) for v in label.removesuffix(" ms").split("-"))
        stats = {"min": h.percentile(0.001), "median": h.percentile(50),
                 "mean": h.mean, "max": h.max}
        for stat, paper in FIG16_PAPER.get((lo, hi), ()):
            rows.append({"timeout (ms)": f"{lo}-{hi}", "statistic": stat,
                         "paper (ms)": paper, "simulated (ms)": 1e3 * stats[stat],
                         "trials": h.count})
    return rows


#: etcd settings compared with the simulation: name -> (election timeout T,
#: heartbeat) in seconds, and the file `labkit.real` measurements are kept in.
ETCD_SETTINGS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "default": (1.0, 0.1), "300ms": (0.3, 0.03)})
ETCD_DATA = Path(__file__).resolve().parents[2] / "data"


@checked
def etcd_measured(setting: str = "default") -> Histogram:
    """Seconds from SIGKILL of the etcd leader to a new leader, as `labkit.real`
    measured them on a 3-member cluster (data/etcd_failover_<setting>.csv)."""
    if setting not in ETCD_SETTINGS:
        raise ConfigError(f"setting must be one of {list(ETCD_SETTINGS)}, got "
                          f"{setting!r}")
    lines = (ETCD_DATA / f"etcd_failover_{setting}.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines if not line.startswith("#")]
    column = rows[0].index("to leader (s)")
    return Histogram(f"etcd {setting}", (float(r[column]) for r in rows[1:]))


@checked
def etcd_comparison(seed: int = 1, *, setting: str = "default",
                    trials: int = 300) -> Result:
    """etcd's measured failovers (`etcd_measured`) beside `raft_failover` with
    etcd's setup: 3 servers, election timeout drawn from [T, 2T), etcd's
    heartbeat, a loopback network (0.1-0.3 ms) and a 1 ms disk write, the leader
    killed at a random moment with equal logs. data.runs: two Histograms."""
    measured = etcd_measured(setting)
    timeout, heartbeat = ETCD_SETTINGS[setting]
    simulated = raft_failover(seed, election_timeout=(timeout, 2 * timeout),
                              trials=trials, nodes=3, heartbeat=heartbeat,
                              latency=dist.uniform(0.0001, 0.0003), disk_delay=0.001,
                              unequal_logs=False).metrics["downtime"]
    runs = {f"etcd {setting} (measured, n={measured.count})": measured,
            f"simulated (n={simulated.count})": simulated}
    return Result("etcd_comparison", {"setting": setting, "trials": trials}, seed,
                  Metrics(), data=Downtimes(runs=runs))


@checked
def timing_rule(seed: int = 1, *,
                minimums: Sequence[float] = (0.300, 0.150, 0.075, 0.040, 0.020,
                                             0.015, 0.010),
                duration: float = 20.0,
                latency: float | Distribution = JITTERY_LATENCY,
                disk_delay: float = FIG16_DISK) -> Result:
    """broadcastTime << electionTimeout: a healthy cluster (no faults) for
    `duration` s with election timeout (T, 2T) and heartbeat T/2 for each T in
    `minimums`. data.rows: elections beyond the first and leaderless share."""
    duration = require_number("duration", duration, positive=True)
    minimums = require_items("minimums", minimums, "minimum election timeout")
    rows = []
    for low in minimums:
        c = raft_cluster(seed, election_timeout=(low, 2 * low), heartbeat=low / 2,
                         latency=latency, disk_delay=disk_delay, trace=False)
        c.run(duration)
        rows.append({"election timeout (ms)": f"{1e3 * low:g}-{2e3 * low:g}",
                     "minimum (ms)": 1e3 * low,
                     "spurious elections": max(0, len(c.elections()) - 1),
                     "leaderless share": raft.leaderless(c.audit.roles, c.now)
                     / duration})
    return Result("timing_rule", {"minimums": tuple(minimums), "duration": duration,
                                  "latency": latency, "disk_delay": disk_delay},
                  seed, Metrics(), data=Table(rows=rows))


@checked
def raft_kv(seed: int = 1, *, read: str = "log", clients: int = 4,
            reads: float = 0.9, think: float = 0.05, loss: float = 0.0,
            isolate_leader: tuple[float, float] | None = (1.0, 3.0),
            duration: float = 4.0, client_timeout: float = 0.2) -> Result:
    """Clients on a 5-node KVCluster (5 ms network) for `duration` s; during
    `isolate_leader` (start, end) the leader of that moment is cut off from the
    other servers (clients still reach it). data, a `KVRun`: history, verdict
    (the linearizability CheckResult), reads and writes completed."""
    kv = raft.KVCluster(5, seed=seed, read=read, client_timeout=client_timeout,
                        net=NetConfig(latency=0.005, loss=loss))
    kv.workload(clients, think=think, reads=reads)
    duration = require_number("duration", duration, positive=True)
    if isolate_leader is not None:
        start, end = _window("isolate_leader", isolate_leader)
        kv.sim.at(start, lambda: kv.partition([kv.leader()], [
            n for n in kv.names if n != kv.leader()]))
        kv.sim.at(end, kv.heal)
    kv.run(duration)
    kv.check()
    verdict = kv.linearizable()
    done = [op for op in kv.history if op.ret is not None]
    result = raft_result(kv, "raft_kv", read=read, clients=clients, reads=reads,
                         think=think, loss=loss, isolate_leader=isolate_leader,
                         duration=duration, client_timeout=client_timeout)
    word = "linearizable" if verdict.ok else \
        f"NOT linearizable (window of {len(verdict.window)} ops)"
    fields = {**vars(result.data), "history": tuple(kv.history), "verdict": verdict,
              "reads": sum(op.kind == "get" for op in done),
              "writes": sum(op.kind != "get" for op in done),
              "headline": f"read={read}: {len(done)} operations, {word}"}
    return with_data(result, KVRun(**fields))
