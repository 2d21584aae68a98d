"""Real engines beside the simulations: etcd and Dask clusters on 127.0.0.1.

This is the one labkit module that starts processes and reads the wall clock
(DESIGN.md); nothing in the simulated layers imports it. Every process it
starts is stopped, and its temporary directory removed, when the `EtcdCluster`
context ends or its start fails or is interrupted (or, failing that, when the
interpreter exits). etcd members run in sessions of their own, so a Ctrl-C
meant for Python does not reach them: Python's exit path stops them.

`etcd_failover` kills the leader of a live etcd cluster and measures how long
until a new leader is elected and until a write succeeds again: the real-world
counterpart of `labkit.scenarios.raft_failover`. Debian and Ubuntu package etcd
as `etcd-server` (`sudo apt-get install etcd-server`).

`dask_wordcount` runs notebook 08's word count on a Dask LocalCluster of
worker processes and can SIGKILL one mid-job: the real-world counterpart of
`labkit.mapreduce.run` with a crash (`pip install 'dask[distributed]'`).
`dask_pagerank` runs notebook 10's PageRank the same way, with every
iteration's ranks persisted, and kills a worker between iterations: the
counterpart of `labkit.dataflow.run_pagerank` with a crash.

Run `python -m labkit.real --trials 20` to print measurements as CSV.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import ConfigError, Unavailable, require_int

#: How to get an etcd binary where none is installed.
INSTALL_HINT = ("no etcd binary found: install one with `sudo apt-get install "
                "etcd-server` (Debian/Ubuntu) or from github.com/etcd-io/etcd/releases")
#: etcd's own defaults (its election timeout is randomized in [T, 2T)).
ETCD_DEFAULTS = {"election_timeout_ms": 1000, "heartbeat_ms": 100}


def etcd_binary() -> str | None:
    """Path of the etcd executable on PATH, or None."""
    return shutil.which("etcd")


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (closed again before etcd binds them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _post(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class _ExitedWhileStarting(Exception):
    """A member exited before the cluster was up (`EtcdCluster.start` retries)."""


@dataclass
class Member:
    """One etcd process: its name, URLs and command line."""

    name: str
    client_url: str
    peer_url: str
    command: list[str]
    process: subprocess.Popen | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """A fresh etcd cluster of `members` processes on 127.0.0.1, in a temporary
    directory; use it as a context manager. Timeouts in milliseconds (None:
    etcd's defaults, 1000 and 100)."""

    def __init__(self, members: int = 3, *, election_timeout_ms: int | None = None,
                 heartbeat_ms: int | None = None, binary: str | None = None):
        self.size = require_int("members", members, minimum=1)
        self.binary = binary or etcd_binary()
        if self.binary is None:
            raise Unavailable(INSTALL_HINT)
        self.timing = []
        if election_timeout_ms is not None:
            self.timing += ["--election-timeout", str(require_int(
                "election_timeout_ms", election_timeout_ms, minimum=1))]
        if heartbeat_ms is not None:
            self.timing += ["--heartbeat-interval", str(require_int(
                "heartbeat_ms", heartbeat_ms, minimum=1))]
        self.directory: Path | None = None
        self.members: dict[str, Member] = {}
        self.names_by_id: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, ready_within: float = 30.0, attempts: int = 3) -> None:
        """Start every member and wait until one leads and accepts writes; if
        that fails or is interrupted, stop what was started and re-raise.

        `_free_ports` only finds ports that are free now: another process may
        bind one before etcd does, and that member exits at once. If a member
        exits while starting, the whole cluster starts again on fresh ports,
        up to `attempts` times."""
        attempts = require_int("attempts", attempts, minimum=1)
        for attempt in range(1, attempts + 1):
            self.directory = Path(tempfile.mkdtemp(prefix="labkit-etcd-"))
            atexit.register(self.stop)
            try:
                self._start(ready_within)
                return
            except _ExitedWhileStarting as exited:
                self.stop()
                if attempt == attempts:
                    raise Unavailable(f"etcd did not start in {attempts} tries; "
                                      f"the last time {exited}") from None
            except BaseException:
                self.stop()
                raise

    def _start(self, ready_within: float) -> None:
        self.members = {}
        ports = _free_ports(2 * self.size)
        names = [f"m{i}" for i in range(1, self.size + 1)]
        peers = {n: f"http://127.0.0.1:{ports[2 * i + 1]}" for i, n in enumerate(names)}
        initial = ",".join(f"{n}={url}" for n, url in peers.items())
        for i, name in enumerate(names):
            client = f"http://127.0.0.1:{ports[2 * i]}"
            command = [
                self.binary, "--name", name,
                "--data-dir", str(self.directory / name),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peers[name],
                "--initial-advertise-peer-urls", peers[name],
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "labkit", *self.timing]
            self.members[name] = Member(name, client, peers[name], command)
            self.restart(name)
        try:
            self.wait_for_writes(ready_within)
        except Unavailable:
            if all(m.alive for m in self.members.values()):
                raise
        # A majority may accept writes while a member that lost its port is gone.
        exited = [n for n, m in self.members.items() if not m.alive]
        if exited:
            log = (self.directory / f"{exited[0]}.log").read_text(errors="replace")
            raise _ExitedWhileStarting(f"{', '.join(exited)} exited while starting; "
                                       f"the end of {exited[0]}'s log: "
                                       f"{log.strip()[-300:]}")
        self.names_by_id = {self.status(n)["header"]["member_id"]: n
                            for n in self.members}

    def restart(self, name: str) -> None:
        """(Re)start a member from its data directory."""
        member = self._member(name)
        if member.alive:
            return
        log = open(self.directory / f"{name}.log", "ab")      # noqa: SIM115
        member.process = subprocess.Popen(member.command, stdout=log, stderr=log,
                                          stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        log.close()                                           # the child keeps it

    def kill(self, name: str) -> None:
        """SIGKILL one member (a crash: no goodbye to the others)."""
        member = self._member(name)
        if member.alive:
            member.process.kill()
            member.process.wait(timeout=10)

    def stop(self) -> None:
        """Kill every member this cluster started (its whole process group) and
        delete its directory. Every member is killed before any is waited for,
        so an interrupt during the waits leaves none running; atexit calls this
        again should an interrupt have cut it short."""
        running = [m.process for m in self.members.values() if m.alive]
        for process in running:
            os.killpg(process.pid, signal.SIGKILL)
        for process in running:
            process.wait(timeout=10)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        atexit.unregister(self.stop)

    def _member(self, name: str) -> Member:
        if name not in self.members:
            raise ConfigError(f"unknown member {name!r}; members are "
                              f"{list(self.members)}")
        return self.members[name]

    # -- talking to it -------------------------------------------------------------
    def status(self, name: str, timeout: float = 0.5) -> dict:
        """The member's /v3/maintenance/status answer (member id, leader id...)."""
        return _post(self._member(name).client_url + "/v3/maintenance/status", {},
                     timeout)

    def leader(self, timeout: float = 0.5) -> str | None:
        """The leader the first answering live member reports, by name, or None."""
        for name, member in self.members.items():
            if member.alive:
                try:
                    answer = self.status(name, timeout)
                except (OSError, ValueError):
                    continue
                leader = self.names_by_id.get(answer.get("leader"))
                if leader is not None:
                    return leader
        return None

    def wait_for_leader(self, within: float) -> str:
        """The leader's name, polling until one is reported (a loaded machine
        can delay an election well past its timeout). Raises Unavailable after
        `within` s."""
        start = time.monotonic()
        while (leader := self.leader()) is None:
            if time.monotonic() - start > within:
                raise Unavailable(f"the etcd cluster elected no leader within "
                                  f"{within:g} s; logs in {self.directory}")
            time.sleep(0.01)
        return leader

    def put(self, name: str, key: str, value: str, timeout: float = 1.0) -> None:
        """Write key=value through member `name` (raises OSError on failure)."""
        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        _post(self._member(name).client_url + "/v3/kv/put",
              {"key": b64(key), "value": b64(value)}, timeout)

    def wait_for_writes(self, within: float, via: str | None = None) -> float:
        """Retry a write (through `via`, or each live member in turn) until one
        succeeds; seconds it took. Raises Unavailable after `within` s."""
        start = time.monotonic()
        turn = 0
        while time.monotonic() - start < within:
            live = [n for n, m in self.members.items() if m.alive]
            if len(live) <= self.size // 2:
                raise Unavailable(f"etcd cannot accept a write: {len(live)} of its "
                                  f"{self.size} members run, and a write needs "
                                  f"{self.size // 2 + 1}")
            name = via or live[turn % len(live)]
            turn += 1
            try:
                self.put(name, "labkit", str(turn), timeout=0.2)
                return time.monotonic() - start
            except (OSError, ValueError):
                time.sleep(0.005)
        raise Unavailable(f"etcd accepted no write within {within:g} s; logs in "
                          f"{self.directory}")


def etcd_failover(trials: int = 5, *, election_timeout_ms: int | None = None,
                  heartbeat_ms: int | None = None, seed: int = 0,
                  settle: float = 2.0) -> list[dict]:
    """Start a 3-member etcd cluster; `trials` times, SIGKILL the leader at a
    random moment, measure the seconds until a surviving member reports a new
    leader ("to leader") and until a write through a survivor succeeds ("to
    write"), then restart the killed member and let it settle. Stops everything
    it started before returning."""
    trials = require_int("trials", trials, minimum=1)
    rng = random.Random(seed)
    rows = []
    with EtcdCluster(3, election_timeout_ms=election_timeout_ms,
                     heartbeat_ms=heartbeat_ms) as cluster:
        for trial in range(trials):
            time.sleep(settle + rng.uniform(0.0, 0.2))
            old = cluster.wait_for_leader(60.0)
            survivor = next(n for n in cluster.members if n != old)
            start = time.monotonic()
            cluster.kill(old)
            new = None
            while new in (None, old):
                time.sleep(0.002)
                new = cluster.leader(timeout=0.2)
                to_leader = time.monotonic() - start
                if to_leader > 60:
                    raise Unavailable("no new etcd leader within 60 s")
            to_write = to_leader + cluster.wait_for_writes(60.0, via=survivor)
            rows.append({"trial": trial, "old leader": old, "new leader": new,
                         "to leader (s)": round(to_leader, 4),
                         "to write (s)": round(to_write, 4)})
            cluster.restart(old)
    return rows


# -- Dask ----------------------------------------------------------------------
#: Dask's install command, for the skip message where it is missing.
DASK_HINT = "Dask is not installed: pip install 'dask[distributed]'"


def _distributed():
    """The `distributed` module, or Unavailable with the install hint."""
    try:
        import distributed
    except ImportError as error:
        raise Unavailable(DASK_HINT) from error
    return distributed


@contextlib.contextmanager
def _dask_client(workers: int, pids: set[int]):
    """A Client of a LocalCluster of `workers` single-threaded worker processes
    on 127.0.0.1, stopped with every process on exit. `pids` collects every
    worker process seen: at the start, and at the end once a nanny's fresh
    process (after a kill) has joined."""
    import logging

    import dask

    distributed = _distributed()
    # A worker fetching a result from a killed one gives up after 2 s (Dask's
    # default, 30 s, would dominate a run); silence_logs: the nanny's
    # "restarting worker" warnings are expected here.
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), \
            distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                     processes=True, host="127.0.0.1",
                                     dashboard_address=None,
                                     # the scheduler's own HTTP server on any free
                                     # port, not 8787 (another cluster may hold it)
                                     scheduler_kwargs={"dashboard_address":
                                                       "127.0.0.1:0"},
                                     silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as client:
        pids.update(client.run(os.getpid).values())
        try:
            yield client
        except BaseException:
            # Interrupted (or failed) mid-job: a worker busy with a task would
            # hold the cluster's shutdown for seconds; its result is not wanted.
            import psutil  # a dependency of distributed

            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    worker = psutil.Process(pid)
                    if worker.ppid() == os.getpid():   # still ours, not a reused pid
                        worker.kill()
            raise
        client.wait_for_workers(workers, timeout=120)
        pids.update(client.run(os.getpid).values())


def _kill_busiest(client, futures) -> None:
    """SIGKILL the worker process holding the most of these finished results."""
    _distributed().wait(futures)
    holders = Counter(a for where in client.who_has(futures).values() for a in where)
    victim = client.run(os.getpid, workers=[holders.most_common(1)[0][0]])
    os.kill(next(iter(victim.values())), signal.SIGKILL)


@dataclass(frozen=True)
class DaskRun:
    """One word count on a local Dask cluster: its output and what it survived."""

    output: dict[str, int]       # word -> count, words sorted
    maps: int                    # map tasks in the graph
    executions: int              # map tasks that finished, re-executions included
    killed: bool                 # whether a worker process was SIGKILLed mid-job
    worker_pids: tuple[int, ...]  # every worker process seen (restarts included)
    seconds: float               # wall clock from the first submit to the result

    @property
    def recomputed(self) -> int:
        """Finished map results lost with the killed worker and computed again."""
        return self.executions - self.maps


def _count_split(texts: tuple[str, ...], pause: float) -> dict[str, int]:
    """A map task plus its combiner: the word counts of one split of documents.
    The pause stands for real work, so the job is still running at the kill."""
    time.sleep(pause)
    counts: dict[str, int] = {}
    for text in texts:
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def _merge(*parts: dict[str, int]) -> dict[str, int]:
    """The reduce task: the sum of the splits' counts, words sorted."""
    total: dict[str, int] = {}
    for part in parts:
        for word, n in part.items():
            total[word] = total.get(word, 0) + n
    return dict(sorted(total.items()))


def dask_wordcount(docs, *, workers: int = 2, splits: int = 40, pause: float = 0.05,
                   kill_one: bool = True) -> DaskRun:
    """Count the words of (doc id, text) records on a Dask LocalCluster of
    `workers` single-threaded worker processes on 127.0.0.1: `splits` map tasks
    then one reduce. With kill_one, SIGKILL the worker process holding the most
    finished map results once the first third of the maps are done, before the
    rest are submitted; its nanny starts a fresh process and the scheduler
    recomputes the lost results. The cluster and every worker process are
    stopped before this returns. Raises Unavailable if Dask is not installed."""
    workers = require_int("workers", workers, minimum=2 if kill_one else 1)
    splits = require_int("splits", splits, minimum=1)
    if not isinstance(pause, int | float) or not 0 <= pause <= 10:
        raise ConfigError(f"pause must be a number of seconds in [0, 10], got "
                          f"{pause!r}")
    distributed = _distributed()
    texts = [text for _, text in docs]
    size = -(-len(texts) // splits)                     # ceiling division
    chunks = [tuple(texts[i:i + size]) for i in range(0, len(texts), size)]
    pids: set[int] = set()
    with _dask_client(workers, pids) as client:
        start = time.monotonic()
        with distributed.get_task_stream(client) as stream:
            # With kill_one the maps go in two waves and the kill falls between
            # them, so the lost results are always still needed by the reduce,
            # however slowly a loaded machine runs the first wave.
            first = max(1, len(chunks) // 3) if kill_one else len(chunks)
            maps = [client.submit(_count_split, chunk, pause, key=f"map-{i}")
                    for i, chunk in enumerate(chunks[:first])]
            if kill_one:
                _kill_busiest(client, maps)
            maps += [client.submit(_count_split, chunk, pause, key=f"map-{first + i}")
                     for i, chunk in enumerate(chunks[first:])]
            output = client.submit(_merge, *maps, key="reduce").result(timeout=120)
            seconds = time.monotonic() - start
        executions = sum(1 for task in stream.data if task["key"].startswith("map-"))
    return DaskRun(output, len(maps), executions, kill_one, tuple(sorted(pids)),
                   seconds)


@dataclass(frozen=True)
class DaskPageRank:
    """PageRank on a local Dask cluster: the ranks and what it survived."""

    ranks: dict[int, float]      # page -> rank, pages sorted
    tasks: int                   # tasks in the graph
    executions: int              # tasks that finished, re-executions included
    killed: bool                 # whether a worker process was SIGKILLed
    worker_pids: tuple[int, ...]  # every worker process seen (restarts included)
    seconds: float               # wall clock from the first submit to the result

    @property
    def recomputed(self) -> int:
        """Finished results lost with the killed worker and computed again."""
        return self.executions - self.tasks


def _links_part(edges: tuple[tuple[int, int], ...]) -> dict[int, tuple[int, ...]]:
    """One partition of the link lists: page -> its out-links."""
    out: dict[int, tuple[int, ...]] = {}
    for a, b in edges:
        out[a] = out.get(a, ()) + (b,)
    return out


def _first_ranks(links: dict[int, tuple[int, ...]]) -> dict[int, float]:
    return dict.fromkeys(links, 1.0)


def _spread_part(links: dict, ranks: dict, partitions: int) -> list[dict]:
    """A partition's rank contributions, bucketed by the destination's
    partition and summed per destination (Spark's map-side combine)."""
    from labkit.dataflow import partition_of

    buckets: list[dict[int, float]] = [{} for _ in range(partitions)]
    for page, targets in links.items():
        share = ranks[page] / len(targets)
        for dst in targets:
            bucket = buckets[partition_of(dst, partitions)]
            bucket[dst] = bucket.get(dst, 0.0) + share
    return buckets


def _sum_part(q: int, *spreads: list[dict]) -> dict[int, float]:
    """Partition q of the next ranks: its buckets from every partition, summed."""
    from labkit.dataflow import DAMPING

    total: dict[int, float] = {}
    for buckets in spreads:
        for dst, share in buckets[q].items():
            total[dst] = total.get(dst, 0.0) + share
    return {dst: (1 - DAMPING) + DAMPING * s for dst, s in total.items()}


def dask_pagerank(edges, *, iterations: int = 10, workers: int = 2,
                  partitions: int = 8, kill_at: int | None = 5) -> DaskPageRank:
    """PageRank of (src, dst) edges on a Dask LocalCluster of `workers`
    single-threaded worker processes on 127.0.0.1, written like Spark's: the
    link lists hash-partitioned once, every iteration's ranks kept (persisted)
    in worker memory as futures. With kill_at=k, once iteration k - 1 is
    computed the worker holding most of its ranks is SIGKILLed before
    iteration k is submitted; its nanny starts a fresh process, and the
    scheduler recomputes the lost results from the task graph (Dask's
    lineage). Everything is stopped before this returns."""
    iterations = require_int("iterations", iterations, minimum=1)
    workers = require_int("workers", workers, minimum=1 if kill_at is None else 2)
    partitions = require_int("partitions", partitions, minimum=1)
    if kill_at is not None and not (isinstance(kill_at, int) and
                                    1 <= kill_at <= iterations):
        raise ConfigError(f"kill_at must be None or an iteration in 1..{iterations}, "
                          f"got {kill_at!r}")
    distributed = _distributed()
    from labkit.dataflow import partition_of

    parts: list[list[tuple[int, int]]] = [[] for _ in range(partitions)]
    for a, b in edges:
        parts[partition_of(a, partitions)].append((a, b))
    pids: set[int] = set()
    with _dask_client(workers, pids) as client:
        start = time.monotonic()
        with distributed.get_task_stream(client) as stream:
            links = [client.submit(_links_part, tuple(part), key=f"links-{p}")
                     for p, part in enumerate(parts)]
            ranks = [client.submit(_first_ranks, lk, key=f"ranks-0-{p}")
                     for p, lk in enumerate(links)]
            kept = [*links, *ranks]          # every future held: persisted
            for i in range(1, iterations + 1):
                if i == kill_at:
                    _kill_busiest(client, ranks)
                spreads = [client.submit(_spread_part, links[p], ranks[p], partitions,
                                         key=f"spread-{i}-{p}")
                           for p in range(partitions)]
                ranks = [client.submit(_sum_part, q, *spreads, key=f"ranks-{i}-{q}")
                         for q in range(partitions)]
                kept += [*spreads, *ranks]
            merged = {k: v for part in client.gather(ranks) for k, v in part.items()}
            seconds = time.monotonic() - start
        executions = len(stream.data)
    return DaskPageRank(dict(sorted(merged.items())), len(kept), executions,
                        kill_at is not None, tuple(sorted(pids)), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure etcd leader failover")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--election-timeout", type=int, default=None,
                        help="ms (etcd's default: 1000)")
    parser.add_argument("--heartbeat-interval", type=int, default=None,
                        help="ms (etcd's default: 100)")
    args = parser.parse_args(argv)
    if etcd_binary() is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    # SIGTERM exits like Ctrl-C does, through the `with` that stops etcd.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    rows = etcd_failover(args.trials, election_timeout_ms=args.election_timeout,
                         heartbeat_ms=args.heartbeat_interval)
    version = subprocess.run([etcd_binary(), "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    print(f"# {version}; produced by: python -m labkit.real "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    print(",".join(rows[0]))
    for row in rows:
        print(",".join(str(v) for v in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
