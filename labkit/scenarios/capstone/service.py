"""The service the capstone (notebook 09) runs: storage servers that
replicate keys over a hash ring with quorum reads and writes and read repair
(`_StorageServer`: `labkit.storage.CoordinatingReplica` with a worker queue
and metadata calls), the client-side load balancer with health checks
(`_Balancer`), the users whose requests follow one day (`_Users`), and
`_Service`, the settings every node reads and the counts the run keeps.
"""

from __future__ import annotations

import math
from bisect import bisect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from labkit import balancing, dist, resilience, storage
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


class _StorageServer(storage.CoordinatingReplica):
    """One storage server: a replica of the keys it owns on the hash ring, and
    the coordinator of the client operations the balancer sends it (the quorum
    reads and writes, read repair and versions of `storage.CoordinatingReplica`;
    a metadata operation goes to the Raft leader).

    What the capstone adds is load: one worker does all of a server's work,
    coordinating and replica reads and writes alike, first come first served
    (Lindley's recursion on `free_at`), and work that would wait behind more
    than `backlog` seconds is shed. A restarted server pulls the keys it owns
    from its peers. A quorum that does not form within the internal timeout
    is answered as an error, even by a server that crashed meanwhile (the
    balancer sees its connection drop).
    """

    def __init__(self, name: str, net: Network, service: _Service):
        self.service = service
        rng = net.sim.rng(f"capstone.{name}.service")
        self.cost = {kind: dist.exponential(mean).sampler(rng)
                     for kind, mean in CAPSTONE_COSTS.items()}
        super().__init__(name, net, index=service.servers.index(name), r=service.r,
                         w=service.w, timeout=service.rpc_timeout)

    def reset(self) -> None:
        super().reset()
        self.free_at, self.slow = self.sim.now, 1.0
        self.leader_hint = self.service.metadata[0]
        if self.incarnation > 1:
            self.pull(self.service.servers)

    def owners(self, key: str) -> tuple[str, ...]:
        return self.service.owners[key]

    # -- one worker, first come first served -------------------------------------
    def work(self, kind: str, then: Callable, *args: Any) -> bool:
        """Queue one piece of `kind` work, then call then(*args); False (and
        nothing queued) if the backlog is already too long."""
        now, service, free_at = self.sim.now, self.service, self.free_at
        start = free_at if free_at > now else now      # max(), without the call
        if start - now > service.backlog:
            service.shed += 1
            return False
        cost = self.cost[kind]() * self.slow * service.slowdown
        self.free_at = start + cost
        self.sim.schedule(self.free_at - now, self._done, self.incarnation, start,
                          then, args)
        return True

    def _done(self, incarnation: int, start: float, then: Callable,
              args: tuple) -> None:
        if self.alive and incarnation == self.incarnation:   # not lost in a crash
            self.service.credit(self.index, start, self.sim.now)
            then(*args)

    def serve(self, msg: Message) -> None:
        """A replica read or write waits for the worker."""
        self.work(msg.kind, self.carry_out, msg)

    # -- coordinator ----------------------------------------------------------------
    def on_op(self, msg: Message) -> None:
        if not self.work("coordinate", self.coordinate, msg):
            self.respond(msg, resilience.OVERLOADED)

    def respond(self, request: Message, outcome: str, version: int = 0) -> None:
        """Tell the balancer how a client operation ended."""
        self.send(request.src, "answer", job=request.job, outcome=outcome,
                  version=version)

    def coordinate(self, msg: Message) -> None:
        if msg.op == "meta":
            self.spawn(self.metadata_call(msg))
        else:
            self.start_quorum(msg, msg.op, msg.key, msg.value,
                              latest=self.service.acked.get(msg.key, 0))

    def reached(self, quorum: storage.Quorum, version: int) -> None:
        if quorum.op == "get":
            self.service.read_done(stale=version < quorum.latest)
        self.respond(quorum.request, resilience.OK, version)

    def missed(self, quorum: storage.Quorum) -> None:
        self.respond(quorum.request, resilience.ERROR)      # no quorum in time

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
                self.respond(msg, resilience.OK, msg.value)
                return
            hint = None if reply is None else reply.leader
            if hint is None or hint == self.leader_hint:
                hint = members[(members.index(self.leader_hint) + 1) % len(members)]
            self.leader_hint = hint
        self.respond(msg, resilience.ERROR)

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
        # rng.choices(self.keys, cum_weights=self.cumulative)[0], the same draw
        # without building its argument checks and list for one key.
        key = self.keys[bisect(self.cumulative, rng.random() * self.cumulative[-1], 0,
                               len(self.keys) - 1)]
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
        if 0 <= k < len(windows) and start < end <= self.t0 + (k + 1) * w:
            windows[k] += end - start             # most work fits in one window
            return
        while start < end and k < len(windows):
            edge = self.t0 + (k + 1) * w
            if k >= 0:
                windows[k] += min(end, edge) - start
            start, k = edge, k + 1
