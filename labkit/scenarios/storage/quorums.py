"""Notebook 07's partial quorums: stale reads against Bailis et al.'s closed
form (`staleness`), t-visibility (`t_visibility`, and `visibility_summary` to
join the runs of a sweep), what a quorum costs in latency (`quorum_costs`), and
how a stale replica converges by read repair and anti-entropy
(`convergence`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from labkit import dist, storage
from labkit.dist import Distribution
from labkit.errors import ConfigError, checked, require_int, require_items
from labkit.metrics import Metrics, Record, Result, TimeSeries
from labkit.net import NetConfig

from ..common import Table, with_progress

#: (N, R, W) combinations the staleness table measures.
QUORUMS = ((3, 1, 1), (3, 1, 2), (3, 2, 1), (3, 2, 2), (5, 1, 1), (5, 2, 2),
           (5, 1, 3), (5, 3, 3))


@checked
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
    quorums = require_items("quorums", quorums, "(N, R, W) triple")
    rows = []
    for n, r, w in with_progress(list(quorums), progress, "staleness: quorums"):
        measured = stale_share(seed, n, r, w, trials)
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


@checked
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


@checked
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


@checked
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
    combos = require_items("combos", combos, "(R, W) pair")
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


@checked
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
        shipped[label] = {"hashes compared": count_of(m, "entropy.hashes"),
                          "entries shipped": count_of(m, "entropy.entries"),
                          "read repairs": count_of(m, "read_repairs")}
    return Result("convergence", {"keys": keys, "duration": duration}, seed,
                  Metrics(), data=Convergence(series=series, shipped=shipped))


def count_of(metrics: Metrics, name: str) -> int:
    """The counter `name` of `metrics`, 0 if nothing was ever counted."""
    return metrics[name].value if name in metrics else 0


def stale_share(seed: int, n: int, r: int, w: int, trials: int) -> float:
    """Measured stale-read share of random partial quorums (fresh key per trial)."""
    kv = storage.QuorumKV(n, n=n, r=r, w=w, fanout="quorum", seed=seed, trace=False)
    for i in range(trials):
        kv.put(f"k{i}", i)
        kv.get(f"k{i}")
    return kv.sim.metrics["reads.stale"].value / trials


# -- the records of this module's scenarios (see labkit.metrics.Record) -----------

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
