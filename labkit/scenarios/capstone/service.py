"""The service the capstone (notebook 09) runs: storage servers that
replicate keys over a hash ring with quorum reads and writes and read repair
(`_StorageServer`, `_Quorum`), the client-side load balancer with health
checks (`_Balancer`), the users whose requests follow one day
(`_Users`), and `_Service`, the settings every node reads and the counts
the run keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from labkit import balancing, resilience, storage
from labkit.errors import RequestTimeout
from labkit.net import Message, Network
from labkit.node import Node

#: The capstone's storage servers and metadata (Raft) nodes.
CAPSTONE_SERVERS = tuple(f"s{i}" for i in range(1, 6))
CAPSTONE_METADATA = tuple(f"n{i}" for i in range(1, 4))
#: Mean service time (seconds, exponential) of each piece of work a storage
#: server does: coordinate one client operation, or read or write one replica.
CAPSTONE_COSTS: Mapping[str, float] = MappingProxyType(
    {"coordinate": 0.002, "get": 0.004, "put": 0.006})


class _Quorum:
    """What a coordinator knows about one replicated read or write in flight."""

    __slots__ = ("request", "needed", "waiting", "version", "latest", "answers",
                 "answered")

    def __init__(self, request: Message, needed: int, waiting: int, version: int,
                 latest: int):
        self.request, self.needed, self.waiting = request, needed, waiting
        self.version, self.latest = version, latest
        self.answers: list[tuple[str, int, Any]] = []
        self.answered = False


class _StorageServer(Node):
    """One storage server: a replica of the keys it owns on the hash ring, and
    the coordinator of the client operations the balancer sends it.

    One worker does its work first come first served (Lindley's recursion on
    `free_at`); work that would wait behind more than `backlog` seconds is
    shed. A write's version is (time in microseconds, server): last writer
    wins, as with synchronised clocks. A read returns the newest of the first R
    answers and repairs replicas that answer an older one (read repair). A
    restarted server pulls the keys it owns from its peers.
    """

    def __init__(self, name: str, net: Network, service: _Service):
        self.service, self.incarnation = service, 0
        self.index = service.servers.index(name)
        self.draw = net.sim.rng(f"capstone.{name}.service").expovariate
        super().__init__(name, net)

    def reset(self) -> None:
        self.disk.setdefault("data", {})
        self.incarnation += 1
        self.free_at, self.slow = self.sim.now, 1.0
        self.quorums: dict[int, _Quorum] = {}
        self.last_quorum = self.last_version = 0
        self.leader_hint = self.service.metadata[0]
        if self.incarnation > 1:
            for peer in self.service.servers:
                if peer != self.name:
                    self.send(peer, "pull")

    def version(self, key: str) -> int:
        """The version of `key` on this server's disk (0: none, or no disk)."""
        return self.disk.get("data", {}).get(key, (0, None))[0]

    # -- one worker, first come first served -------------------------------------
    def work(self, kind: str, then: Callable, *args: Any) -> bool:
        """Queue one piece of `kind` work, then call then(*args); False (and
        nothing queued) if the backlog is already too long."""
        now, service = self.sim.now, self.service
        start = max(now, self.free_at)
        if start - now > service.backlog:
            service.shed += 1
            return False
        cost = self.draw(1.0 / CAPSTONE_COSTS[kind]) * self.slow * service.slowdown
        self.free_at = start + cost
        self.sim.schedule(self.free_at - now, self._done, self.incarnation, start,
                          then, args)
        return True

    def _done(self, incarnation: int, start: float, then: Callable,
              args: tuple) -> None:
        if self.alive and incarnation == self.incarnation:   # not lost in a crash
            self.service.credit(self.index, start, self.sim.now)
            then(*args)

    # -- coordinator ----------------------------------------------------------------
    def on_op(self, msg: Message) -> None:
        if not self.work("coordinate", self.coordinate, msg):
            self.answer(msg, resilience.OVERLOADED)

    def answer(self, request: Message, outcome: str, version: int = 0) -> None:
        self.send(request.src, "answer", job=request.job, outcome=outcome,
                  version=version)

    def coordinate(self, msg: Message) -> None:
        service = self.service
        if msg.op == "meta":
            self.spawn(self.metadata_call(msg))
            return
        owners = service.owners[msg.key]
        self.last_quorum += 1
        version, needed = 0, service.r
        if msg.op == "put":
            version = self.last_version = max(
                self.last_version + 1, int(self.sim.now * 1e6) * 8 + self.index)
            needed = service.w
        self.quorums[self.last_quorum] = _Quorum(msg, needed, len(owners), version,
                                                 service.acked.get(msg.key, 0))
        for owner in owners:
            self.send(owner, msg.op, quorum=self.last_quorum, key=msg.key,
                      version=version, value=msg.value)
        self.sim.schedule(service.rpc_timeout, self.give_up, self.incarnation,
                          self.last_quorum)

    def give_up(self, incarnation: int, number: int) -> None:
        if incarnation != self.incarnation:
            return
        quorum = self.quorums.pop(number, None)
        if quorum is not None and not quorum.answered:
            self.answer(quorum.request, resilience.ERROR)   # no quorum in time

    def on_got(self, msg: Message) -> None:
        self._collect(msg, (msg.src, msg.version, msg.value))

    def on_stored(self, msg: Message) -> None:
        self._collect(msg, (msg.src, msg.version, None))

    def _collect(self, msg: Message, answer: tuple[str, int, Any]) -> None:
        quorum = self.quorums.get(msg.quorum)
        if quorum is None:
            return                                   # given up, or long done
        quorum.answers.append(answer)
        quorum.waiting -= 1
        request = quorum.request
        if not quorum.answered and len(quorum.answers) == quorum.needed:
            quorum.answered = True
            version = quorum.version
            if request.op == "get":
                version = max(v for _, v, _ in quorum.answers)
                self.service.read_done(stale=version < quorum.latest)
            self.answer(request, resilience.OK, version)
        if request.op == "get" and quorum.answered:
            self.repair(request.key, quorum)
        if quorum.waiting == 0:
            del self.quorums[msg.quorum]

    def repair(self, key: str, quorum: _Quorum) -> None:
        """Read repair: send the newest version seen to the replicas that
        answered an older one."""
        _, version, value = max(quorum.answers, key=lambda a: a[1])
        for i, (owner, seen, _) in enumerate(quorum.answers):
            if seen < version:
                self.send(owner, "put", quorum=-1, key=key, version=version,
                          value=value)
                quorum.answers[i] = (owner, version, value)

    def metadata_call(self, msg: Message):
        """A metadata operation is a command the Raft leader commits: ask the
        member believed to lead, then the one it names (or the next one)."""
        members = self.service.metadata
        for _ in members:
            try:
                reply = yield self.call(self.leader_hint, "request",
                                        self.service.rpc_timeout,
                                        command=("meta", msg.value))
            except RequestTimeout:
                reply = None
            if reply is not None and reply.ok:
                self.answer(msg, resilience.OK, msg.value)
                return
            hint = None if reply is None else reply.leader
            if hint is None or hint == self.leader_hint:
                hint = members[(members.index(self.leader_hint) + 1) % len(members)]
            self.leader_hint = hint
        self.answer(msg, resilience.ERROR)

    # -- replica --------------------------------------------------------------------
    def on_get(self, msg: Message) -> None:
        self.work("get", self.read_local, msg)

    def read_local(self, msg: Message) -> None:
        version, value = self.disk["data"].get(msg.key, (0, None))
        self.send(msg.src, "got", quorum=msg.quorum, version=version, value=value)

    def on_put(self, msg: Message) -> None:
        self.work("put", self.write_local, msg)

    def write_local(self, msg: Message) -> None:
        self.store(msg.key, msg.version, msg.value)
        if msg.quorum >= 0:                  # not a read repair
            self.send(msg.src, "stored", quorum=msg.quorum, version=msg.version)

    def store(self, key: str, version: int, value: Any) -> None:
        data = self.disk["data"]
        if version > data.get(key, (0, None))[0]:
            data[key] = (version, value)

    def on_pull(self, msg: Message) -> None:
        """A restarted peer asks for the keys we both own."""
        owners = self.service.owners
        entries = tuple((k, v, x) for k, (v, x) in self.disk["data"].items()
                        if msg.src in owners[k])
        self.send(msg.src, "entries", entries=entries)

    def on_entries(self, msg: Message) -> None:
        for key, version, value in msg.entries:
            self.store(key, version, value)

    def on_ping(self, msg: Message) -> None:
        self.reply(msg)


class _BalancerNode(Node):
    """Where the load balancer sits on the network: outside every partition,
    never crashed."""

    def __init__(self, name: str, net: Network, balancer: _Balancer):
        self.balancer = balancer
        super().__init__(name, net)
        net.keep_outside_partitions(name)

    def on_answer(self, msg: Message) -> None:
        self.balancer.answered(msg)


class _Balancer:
    """A client-side load balancer: each attempt goes to the storage server a
    labkit.balancing policy picks among those its health checks find up. To
    the users' resilience.Client it is the backend (`servers`, `send`)."""

    def __init__(self, net: Network, service: _Service, policy: balancing.Policy,
                 health_interval: float):
        self.service, self.policy, self.sim = service, policy, net.sim
        self.servers = len(service.servers)
        self.view = balancing.View(self.servers, rng=net.sim.rng("capstone.policy"))
        policy.start(self.view)
        self.jobs: dict[int, tuple[Any, int]] = {}
        self.last_job = 0
        self.health_interval = health_interval
        self.node = _BalancerNode("lb", net, self)
        self.node.set_timer("health", health_interval, self.check_health)

    def send(self, job: Any, avoid: int = -1) -> None:
        """Route one copy of an attempt; a hedge (`avoid`: the server of the
        first copy) goes to another server."""
        view = self.view
        op, key, value = self.service.requests[job.attempt.rid]
        view.now, view.key = self.sim.now, key
        choice = self.policy.choose(view) if view.live else None
        if choice is None:                           # nobody is up: fail fast
            self.sim.schedule(0.0, job.reply, job, resilience.ERROR)
            return
        if choice == avoid and len(view.live) > 1:
            live = view.live
            choice = live[(live.index(choice) + 1) % len(live)]
        job.replica = choice
        view.outstanding[choice] += 1
        self.last_job += 1
        self.jobs[self.last_job] = (job, choice)
        self.node.send(self.service.servers[choice], "op", job=self.last_job, op=op,
                       key=key, value=value)

    def answered(self, msg: Message) -> None:
        entry = self.jobs.pop(msg.job, None)
        if entry is None:
            return
        job, server = entry
        self.view.outstanding[server] -= 1
        # The user's request is acknowledged if this answer settles its attempt
        # (the client ignores a late answer, or a hedge's twin).
        settled_before = job.attempt.done.done
        job.reply(job, msg.outcome)
        if not settled_before and msg.outcome == resilience.OK:
            self.service.acknowledge(job.attempt.rid, msg.version)

    def check_health(self) -> None:
        for i, name in enumerate(self.service.servers):
            self.node.call(name, "ping", self.health_interval).add_done_callback(
                lambda reply, i=i: self._health(i, reply))
        self.node.set_timer("health", self.health_interval, self.check_health)

    def _health(self, server: int, reply: Any) -> None:
        view, up = self.view, not reply.failed
        if up == view.alive[server]:
            return
        view.set_alive(server, up)
        if up:              # back from a crash: what it held is gone
            view.outstanding[server] = 0
            self.jobs = {n: e for n, e in self.jobs.items() if e[1] != server}


class _Users(resilience.Client):
    """Users whose request rate follows one day over the run; each request is a
    read, a write or a metadata operation on a key drawn with Zipf skew."""

    def start_day(self, service: _Service) -> None:
        sim, peak, until = self.sim, service.peak, service.duration
        arrivals, workload = sim.rng("capstone.arrivals"), sim.rng("capstone.workload")
        t0 = sim.now

        def arrive() -> None:                    # thinning: keep rate(t) / peak
            now = sim.now - t0
            if arrivals.random() * peak < service.rate(now):
                service.requests.append(service.draw_request(len(self.starts),
                                                             workload))
                sim.spawn(self._request(len(self.starts)))
            gap = arrivals.expovariate(peak)
            if now + gap < until:
                sim.schedule(gap, arrive)

        sim.schedule(arrivals.expovariate(peak), arrive)


class _Service:
    """The settings every node of one capstone run reads, and what it counts."""

    def __init__(self, t0: float, knobs: Mapping[str, Any]):
        self.t0, self.window = t0, knobs["window"]
        self.duration, self.peak = knobs["duration"], knobs["peak_rate"]
        self.servers, self.metadata = CAPSTONE_SERVERS, CAPSTONE_METADATA
        self.r, self.w = knobs["r"], knobs["w"]
        self.reads, self.meta = knobs["reads"], knobs["meta"]
        # Internal calls (quorums, Raft) give up no later than the client does.
        self.rpc_timeout = min(knobs["timeout"], 0.5)
        self.backlog = knobs["backlog"]
        self.keys = tuple(f"k{i:04d}" for i in range(knobs["keys"]))
        self.cumulative = np.cumsum(
            1.0 / np.arange(1, len(self.keys) + 1) ** knobs["skew"]).tolist()
        ring = storage.HashRing(self.servers)
        self.owners = {k: tuple(ring.owners(k, knobs["replication"]))
                       for k in self.keys}
        self.slowdown = 1.0                          # a brown-out's factor
        self.requests: list[tuple[str, str, Any]] = []
        self.acked: dict[str, int] = {}      # key -> newest acknowledged version
        self.acked_meta: list[int] = []
        self.lost: set[tuple[str, int]] = set()  # (key, version) no disk held
        self.busy = [[0.0] * math.ceil(self.duration / self.window)
                     for _ in self.servers]
        self.shed = self.reads_done = self.stale = 0

    def rate(self, t: float) -> float:
        """Requests per second t seconds in: one day over the run, from a fifth
        of the peak at night (start and end) to the peak at midday."""
        day = 0.5 - 0.5 * math.cos(2 * math.pi * t / self.duration)
        return self.peak * (0.2 + 0.8 * day)

    def draw_request(self, rid: int, rng: Any) -> tuple[str, str, Any]:
        """(operation, key, value) of request `rid`; the value is the id."""
        roll = rng.random()
        key = rng.choices(self.keys, cum_weights=self.cumulative)[0]
        if roll < self.meta:
            return "meta", key, rid
        return ("get" if roll < self.meta + self.reads else "put"), key, rid

    def acknowledge(self, rid: int, version: int) -> None:
        op, key, _ = self.requests[rid]
        if op == "put":
            self.acked[key] = max(self.acked.get(key, 0), version)
        elif op == "meta":
            self.acked_meta.append(rid)

    def read_done(self, stale: bool) -> None:
        self.reads_done += 1
        self.stale += stale

    def credit(self, server: int, start: float, end: float) -> None:
        """Count [start, end) as busy time of `server`, window by window."""
        windows, w = self.busy[server], self.window
        k = int((start - self.t0) // w)
        while start < end and k < len(windows):
            edge = self.t0 + (k + 1) * w
            if k >= 0:
                windows[k] += min(end, edge) - start
            start, k = edge, k + 1
