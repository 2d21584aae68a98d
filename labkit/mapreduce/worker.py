"""A MapReduce worker node: runs a map task on its split and keeps the output
on its local disk, serves those pieces to reducers, fetches its partition from
every map task for a reduce task (the shuffle) and commits the reduce output;
it heartbeats the master throughout (Dean & Ghemawat §3.1, §3.3). Its
heartbeats carry its account of its work (among it the fetches it waits for
and those it has queued to serve), so the master can repair what a lost
message left wrong, a lost fetch request or answer included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.net import Message, Network
from labkit.node import Node

from .job import Job, _Attempt, pairs_size
from .master import MASTER

#: Fetches a reduce task keeps in flight (Hadoop's shuffle.parallelcopies).
COPIES = 5

#: A fetch with no answer after this many failure-detection timeouts
#: (`Job.timeout`) is asked again by the reducer itself: a last resort, for a
#: master that does not chase fetches (a subclass that handles heartbeats its
#: own way). labkit's master has a lost request or answer asked again about a
#: timeout and two heartbeats after the loss (`Master.chase_fetches`). A
#: timer alone cannot tell a loss from a slow answer: a worker sends one
#: piece at a time, so a request may wait behind every other reducer's, at
#: the speed of a straggler's disk: up to 44 timeouts in notebook 08's runs,
#: 144 in the test suite's, 120 in a lab run that waits for a crashed worker.
#: Should it fire on a slow answer, the worker serves the request once.
FETCH_TIMEOUTS = 150


class Worker(Node):
    """A worker: runs one task attempt at a time, keeps the output of its map
    tasks on its local disk and serves it to reducers, heartbeats the master.

    Its outgoing link sends one fetched piece at a time (first come, first
    served), so reducers fetching from the same worker queue behind each
    other; its incoming link caps how fast its own fetches arrive.
    """

    def __init__(self, name: str, net: Network, job: Job):
        self.job = job              # set first: Node.__init__ calls reset()
        super().__init__(name, net)

    def reset(self) -> None:
        self.disk["incarnation"] = self.disk.get("incarnation", 0) + 1
        # A crashed worker's intermediate files are out of reach and the master
        # runs those map tasks again, so a restarted worker starts with none.
        self.files: dict[int, tuple[tuple[tuple[Any, Any], ...], ...]] = {}
        self.file_bytes: dict[int, tuple[int, ...]] = {}
        self.attempt: _Attempt | None = None
        self.assigned = -1              # the newest attempt the master gave it
        self.finished: int | None = None    # the last attempt it finished
        self.version = 0                # of the map output locations it heard
        self.busy = (self.sim.now, self.sim.now)    # current stage's start, end
        self.stage = (0.0, 1.0)                     # its share of the progress
        self.locations: list[str | None] = []
        self.order: list[int] = []                 # the order to fetch pieces in
        self.chunks: dict[int, tuple[tuple[Any, Any], ...]] = {}
        self.fetching: dict[int, str] = {}      # map task -> worker asked for it
        self.asked: dict[int, str] = {}         # those with no answer yet
        # The fetches this worker has queued to serve: (reduce attempt, map task).
        self.serving: set[tuple[int, int]] = set()
        self.outgoing = self.incoming = self.sim.now   # when each link is free
        self.heartbeat()

    @property
    def speed(self) -> float:
        return self.job.speeds[self.name]

    def kill(self) -> None:
        if self.alive and self.attempt is not None:
            self.attempt.close(self.sim.now, "failed")
        super().kill()

    def progress(self) -> float:
        """Share of the current attempt done (Hadoop's convention for reduces:
        a third copying, two thirds sorting and reducing)."""
        (start, end), (base, share) = self.busy, self.stage
        if self.attempt is None:
            return 0.0
        if self.attempt.phase == "reduce" and self.attempt.shuffle_end is None:
            return len(self.chunks) / max(1, len(self.locations)) / 3
        return base + share * min(1.0, (self.sim.now - start) / max(end - start,
                                                                      1e-12))

    def heartbeat(self) -> None:
        """Tell the master this process is alive, and how its work stands: the
        attempt it runs, the last it finished, the version of the map output
        locations it holds, the fetches it has had no answer to and those it
        has queued to serve (so a lost message is found out)."""
        running = None if self.attempt is None else self.attempt.id
        self.send(MASTER, "heartbeat", incarnation=self.disk["incarnation"],
                  progress=self.progress(), running=running,
                  finished=self.finished, version=self.version,
                  waiting=tuple(self.asked.items()),
                  serving=frozenset(self.serving))
        self.set_timer("heartbeat", self.job.heartbeat, self.heartbeat)

    def work(self, seconds: float, then: Callable, *args: Any,
             stage: tuple[float, float] = (0.0, 1.0)) -> None:
        self.busy, self.stage = (self.sim.now, self.sim.now + seconds), stage
        self.set_timer("task", seconds, then, *args)

    def on_assign(self, msg: Message) -> None:
        if msg.incarnation != self.disk["incarnation"]:
            return                  # meant for the process that crashed
        if msg.attempt <= self.assigned:
            return                  # a duplicate, or overtaken by a newer one
        self.assigned = msg.attempt
        if self.attempt is not None:    # the master gave it up (its cancel lost)
            self.attempt.close(self.sim.now, "cancelled")
        self.attempt = attempt = self.job.attempts[msg.attempt]
        self.asked = {}
        if attempt.phase == "map":
            self.run_map(attempt)
        else:
            self.locations, self.chunks = list(msg.locations), {}
            self.version = msg.version
            self.fetching = {}
            count = len(self.locations)
            first = attempt.task * count // self.job.partitions
            self.order = [*range(first, count), *range(first)]
            self.work(self.job.cost.startup, self.fetch_next)

    # -- map --------------------------------------------------------------------
    def run_map(self, attempt: _Attempt) -> None:
        job, cost, speed = self.job, self.job.cost, self.speed
        split = job.splits[attempt.task]
        pieces = job.map_split(attempt)
        sizes = tuple(map(pairs_size, pieces))
        attempt.bytes_in, attempt.bytes_out = split.nbytes, sum(sizes)
        read = cost.disk * speed if self.name in split.replicas else min(
            cost.network, cost.disk)
        seconds = (cost.startup + cost.seconds(split.nbytes, read)
                   + cost.seconds(split.nbytes, cost.cpu * speed)
                   + cost.seconds(attempt.bytes_out, cost.disk * speed))
        self.work(seconds, self.finish_map, attempt, pieces, sizes)

    def finish_map(self, attempt: _Attempt, pieces: tuple, sizes: tuple) -> None:
        self.files[attempt.task], self.file_bytes[attempt.task] = pieces, sizes
        # The worker's word on its own attempt wins over a master that gave it
        # up for dead (the master then ignores the result).
        attempt.end, attempt.outcome = self.sim.now, "completed"
        self.attempt, self.finished = None, attempt.id
        self.send(MASTER, "map_done", attempt=attempt.id)

    def on_fetch(self, msg: Message) -> None:
        """Serve piece `partition` of map task `map`'s output, after the
        transfers queued before it (or say it is missing). A request already
        queued (asked again, or copied by the network) is served once."""
        pieces = self.files.get(msg.map)
        if pieces is None:
            self.reply(msg, map=msg.map, attempt=msg.attempt, pairs=None, nbytes=0)
            return
        if (msg.attempt, msg.map) in self.serving:
            return
        self.serving.add((msg.attempt, msg.map))
        pairs = pieces[msg.partition]
        nbytes = self.file_bytes[msg.map][msg.partition]
        cost = self.job.cost
        rate = min(cost.network, cost.disk * self.speed)
        self.outgoing = max(self.outgoing, self.sim.now) + cost.seconds(nbytes, rate)
        self.set_timer(f"fetch {msg.id}", self.outgoing - self.sim.now, self.serve,
                       msg, pairs, nbytes)

    def serve(self, msg: Message, pairs: tuple, nbytes: int) -> None:
        self.serving.discard((msg.attempt, msg.map))
        self.reply(msg, map=msg.map, attempt=msg.attempt, pairs=pairs, nbytes=nbytes)

    # -- reduce -----------------------------------------------------------------
    def on_locations(self, msg: Message) -> None:
        """The master says where each map task's output is now (None: it is
        being produced again); drop a fetch from a place that no longer has it."""
        if self.attempt is None or self.attempt.id != msg.attempt:
            return
        self.locations, self.version = list(msg.locations), msg.version
        self.fetching = {m: where for m, where in self.fetching.items()
                         if self.locations[m] == where}
        self.asked = {m: where for m, where in self.asked.items()
                      if self.locations[m] == where}
        if not self.has_timer("task"):
            self.fetch_next()

    def fetch_next(self) -> None:
        """Keep COPIES fetches of missing pieces with known locations in flight;
        once all M are here, reduce. Reduce task r starts at map task r·M/R
        and goes round, so reducers do not all queue at one map worker."""
        attempt, count = self.attempt, len(self.locations)
        if len(self.chunks) == count:
            self.run_reduce(attempt)
            return
        for m in self.order:
            if len(self.fetching) >= COPIES:
                return
            where = self.locations[m]
            if m not in self.chunks and m not in self.fetching and where is not None:
                self.fetching[m] = where
                self.ask(m)

    def ask(self, m: int) -> None:
        """Ask for piece m of the reduce task's partition where it lives, and
        again after FETCH_TIMEOUTS timeouts with no answer."""
        attempt, where = self.attempt, self.fetching[m]
        self.asked[m] = where
        self.send(where, "fetch", map=m, partition=attempt.task, attempt=attempt.id)
        self.set_timer(f"ask {m}", FETCH_TIMEOUTS * self.job.timeout,
                       self.ask_again, attempt.id, m, where)

    def ask_again(self, attempt: int, m: int, where: str) -> None:
        if self.is_fetching(attempt, m, where):
            self.ask(m)

    def on_ask_again(self, msg: Message) -> None:
        """The master sees from the heartbeats that `where` never got this
        reducer's request for piece `map`, or answered it and the answer was
        lost: ask again, unless the answer has come since."""
        if msg.map in self.asked:
            self.ask_again(msg.attempt, msg.map, msg.where)

    def on_fetch_ok(self, msg: Message) -> None:
        if not self.is_fetching(msg.attempt, msg.map, msg.src):
            return                  # for an attempt or a fetch given up on
        self.cancel_timer(f"ask {msg.map}")     # answered
        self.asked.pop(msg.map, None)
        if msg.pairs is None:       # that worker restarted: wait for the master
            del self.fetching[msg.map]
            self.locations[msg.map] = None
            self.fetch_next()
            return
        # The piece has fully arrived once the sender has sent it and this
        # worker's incoming link has had time for it after earlier pieces.
        self.incoming = max(self.sim.now, self.incoming + self.job.cost.seconds(
            msg.nbytes, self.job.cost.network))
        self.set_timer(f"receive {msg.id}", self.incoming - self.sim.now,
                       self.receive, msg)

    def is_fetching(self, attempt: int, m: int, src: str) -> bool:
        return (self.attempt is not None and self.attempt.id == attempt
                and self.fetching.get(m) == src)

    def receive(self, msg: Message) -> None:
        if not self.is_fetching(msg.attempt, msg.map, msg.src):
            return
        del self.fetching[msg.map]
        # (It may have been asked for again since this answer came, if its
        # output moved and came back: that fetch is done too.)
        self.asked.pop(msg.map, None)
        self.chunks[msg.map] = msg.pairs
        self.attempt.bytes_in += msg.nbytes
        self.sim.metrics.counter("bytes.shuffled").inc(msg.nbytes)
        self.fetch_next()

    def run_reduce(self, attempt: _Attempt) -> None:
        attempt.shuffle_end = self.sim.now
        pairs = self.job.reduce_piece(
            attempt, [self.chunks[m] for m in range(len(self.locations))])
        attempt.bytes_out = pairs_size(pairs)
        cost, speed = self.job.cost, self.speed
        seconds = (cost.seconds(attempt.bytes_in, cost.cpu * speed)
                   + cost.seconds(attempt.bytes_out,
                                  min(cost.network, cost.disk * speed)))
        self.work(seconds, self.finish_reduce, attempt, pairs, stage=(1 / 3, 2 / 3))

    def finish_reduce(self, attempt: _Attempt, pairs: tuple) -> None:
        committed = self.job.output.commit(attempt.task, attempt.id, pairs)
        attempt.end = self.sim.now
        attempt.outcome = "completed" if committed else "unused"
        self.attempt, self.chunks, self.finished = None, {}, attempt.id
        self.send(MASTER, "reduce_done", attempt=attempt.id)

    def on_cancel(self, msg: Message) -> None:
        """Another copy of this task finished first (outcome "cancelled"), or
        the master preempted this reduce ("preempted"): stop and become idle."""
        if self.attempt is not None and self.attempt.id == msg.attempt:
            self.cancel_timer("task")
            self.attempt.close(self.sim.now, msg.outcome)
            self.attempt, self.fetching, self.chunks = None, {}, {}
            self.asked = {}
