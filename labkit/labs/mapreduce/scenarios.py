"""The MapReduce lab's graded scenarios: a word count over 40 random lines on
5 workers (M = 10 map tasks, R = 5 reduce tasks; about 40 simulated s when
all goes well), while workers crash before, during and after their tasks,
restart with empty disks, drop off the network, run 5-10 times slower, and
the network loses heartbeats and duplicates and reorders what workers tell
the master.

Each runs the student's master in a `MapReduceCluster` with labkit's own
workers; the referee (see `base.Referee`) checks the master's messages
against what the workers and the file system really hold. A scenario adds
what the referee cannot see: the job finishes (else it says which task was
lost and how), its output is exactly the word count computed here from the
input (every word once, none missing), and with stragglers the job with
backup tasks stays within a bound of a straggler-free run of labkit's own
master. It raises `Failed` with the reason. Randomness comes from seeded
streams, so `lk.labs.replay` replays a run exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from functools import lru_cache

from labkit import mapreduce as mr
from labkit.net import Message

from ..lab import Failed, Trial
from .base import Referee

VOCAB = ("ant bee cat dog eel fox gnu hen ibis jay kiwi lark mole newt owl pig "
         "quail rat seal toad urchin vole wasp yak zebu").split()
WORKERS, SPLITS, PARTITIONS, RECORDS = 5, 10, 5, 40
HEARTBEAT, TIMEOUT = 1.0, 5.0
DEADLINE = 600.0            # simulated s; a healthy job takes about 40
CANCEL_GRACE = 0.5          # s: a cancel takes a few ms to reach its worker


def words(line: str) -> Iterator[tuple[str, int]]:
    """The mapper: (word, 1) for every word of a line."""
    for word in line.split():
        yield word, 1


def total(word: str, counts: list[int]) -> int:
    """The reducer: how often the word occurred."""
    return sum(counts)


def corpus(seed: int) -> list[str]:
    """RECORDS lines of 20 to 40 words, a few words much more common."""
    return list(_corpus(seed))


# What depends on the seed only, never on the master under test (the input,
# its splits, its word count and a straggler-free run of labkit's master), is
# computed once per seed and shared by every scenario and every answer graded
# in this process: the results are immutable (tuples, or copied out), and
# each is a pure function of its seed.

@lru_cache(maxsize=256)
def _corpus(seed: int) -> tuple[str, ...]:
    rng = random.Random(f"{seed}:lab.mapreduce.input")
    weights = [1 / (i + 1) for i in range(len(VOCAB))]
    return tuple(" ".join(rng.choices(VOCAB, weights, k=rng.randint(20, 40)))
                 for _ in range(RECORDS))


@lru_cache(maxsize=256)
def _splits(seed: int) -> tuple[mr.Split, ...]:
    names = [f"w{i}" for i in range(1, WORKERS + 1)]
    placement = random.Random(f"{seed}:lab.mapreduce.placement")
    return tuple(mr.make_splits(_corpus(seed), SPLITS, names, placement))


@lru_cache(maxsize=256)
def _truth(seed: int) -> dict[str, int]:
    return dict(Counter(w for line in _corpus(seed) for w in line.split()))


def make_job(seed: int, backups: bool, slow: dict[str, float]) -> mr.Job:
    names = [f"w{i}" for i in range(1, WORKERS + 1)]
    speeds = {n: 1 / slow.get(n, 1.0) for n in names}
    return mr.Job(words, total, None, mr.hash_partition, list(_splits(seed)),
                PARTITIONS, speeds, mr.Cost(), mr.Backups() if backups else None,
                True, HEARTBEAT, TIMEOUT)


@lru_cache(maxsize=256)
def calm_duration(seed: int) -> float:
    """How long labkit's own master takes on seed's input with backups on and
    no straggler (nor any fault): the yardstick of `Story.within_bound`."""
    calm = mr.MapReduceCluster(make_job(seed, True, {}),
                               [f"w{i}" for i in range(1, WORKERS + 1)], seed=seed)
    calm.sim.run(DEADLINE)
    return calm.sim.now


class Story:
    """The student's master running one word count with labkit's workers, its
    referee, and the answer computed here from the input."""

    def __init__(self, t: Trial, backups: bool = False,
                 slow: dict[str, float] | None = None):
        self.seed, self.backups = t.seed, backups
        job = make_job(t.seed, backups, slow or {})
        self.names = [f"w{i}" for i in range(1, WORKERS + 1)]
        self.cluster = t.watch(mr.MapReduceCluster(job, self.names, seed=t.seed,
                                                   trace=True, master=t.impl))
        self.job, self.sim = job, self.cluster.sim
        self.referee = Referee(self.cluster, backups=backups)
        self.referee.watch()
        self.truth = Counter(_truth(t.seed))
        self.rng = self.sim.rng("lab.mapreduce")

    # -- faults ------------------------------------------------------------------------
    def crash(self, name: str, at: float, back: float | None = None) -> None:
        """Crash `name` at `at`; it restarts (empty local disk) `back` s later."""
        self.sim.at(at, self.cluster.kill, name)
        if back is not None:
            self.sim.at(at + back, self.cluster.restart, name)

    def cut(self, name: str, at: float, seconds: float) -> None:
        """Cut `name` off the network at `at` for `seconds`."""
        self.sim.at(at, self.cluster.disconnect, name)
        self.sim.at(at + seconds, self.cluster.connect, name)

    def slow_down(self, name: str, at: float, factor: float) -> None:
        self.sim.at(at, self.job.speeds.__setitem__, name, 1 / factor)

    def on_delivery(self, fn: Callable[[Message], None]) -> None:
        """Call fn(msg) for every message that reaches the master."""
        self.referee.listeners.append(fn)

    def noisy_reports(self, loss: float, duplicate: float, reorder: float) -> None:
        """Heartbeats are lost with probability `loss`; what workers tell the
        master is duplicated with `duplicate`, and delayed up to 2 s (so later
        messages overtake it) with `reorder`."""
        network, rng = self.cluster.network, self.sim.rng("lab.mapreduce.net")
        for name in self.names:
            network.set_link(name, mr.MASTER, duplicate=duplicate, reorder=1.0)
        network.adversary = lambda msg: (rng.uniform(0.0, 2.0)
                                         if msg.dst == mr.MASTER
                                         and rng.random() < reorder else 0.0)
        send = network.send

        def lossy(src: str, dst: str, kind: str, body: dict) -> Message | None:
            if kind == "heartbeat" and rng.random() < loss:
                return None                 # lost before it reached the wire
            return send(src, dst, kind, body)

        network.send = lossy

    # -- the verdict -------------------------------------------------------------------
    def finish(self) -> float:
        """Run to the end of the job; check it finished with exactly the word
        count of the input. Returns the job's duration."""
        while not self.job.done:
            if self.sim.now >= DEADLINE:
                raise Failed(f"did not finish by t = {DEADLINE:.0f} s (a healthy job "
                             f"takes about 40 s): {self.stuck()}")
            self.cluster.run(min(10.0, DEADLINE - self.sim.now))
        self.exactly_once()
        return self.sim.now

    def stuck(self) -> str:
        """Why the job cannot finish, from what the workers and the wire show:
        a crash or a silence the master never acted on, a task lost with a
        crash, or reducers waiting for map output that never comes."""
        return (self._unnoticed() or self._lost() or self._waiting()
                or f"{len(self.job.output.files)} of {PARTITIONS} output "
                "partitions written, and the master hands out nothing more")

    def _unnoticed(self) -> str | None:
        """A crash, or a silence longer than the timeout, after which the
        master handed out none of the silent worker's tasks again."""
        ref, master = self.referee, self.cluster.master
        for worker, crash in sorted(ref.died.items(), key=lambda kv: kv[1]):
            state = getattr(master, "workers", {}).get(worker)
            if getattr(state, "alive", False):
                return (f"the master never declared {worker} dead: it crashed at "
                        f"t = {crash:.1f} s and has sent nothing since, far longer "
                        f"than the {TIMEOUT:g} s timeout; a worker silent for the "
                        "timeout is dead, and its work must run again")
        for worker, start, end in ref.gaps:
            had = {(a.phase, a.task) for when, event, w, a in ref.history
                   if event == "assign" and w == worker and when <= start}
            if not any(event == "assign" and w != worker and when > start
                       and (a.phase, a.task) in had
                       for when, event, w, a in ref.history):
                return (f"the master ran none of {worker}'s work again after "
                        f"its silence: no heartbeat reached the master from "
                        f"t = {start:.1f} s to t = {end:.1f} s, longer than the "
                        f"{TIMEOUT:g} s timeout; a silent worker is dead, and its "
                        "running task and completed map tasks must run again "
                        "elsewhere (reducers waiting on it wait for ever)")
        return None

    def _lost(self) -> str | None:
        """A task done nowhere and running nowhere, last seen on a worker that
        crashed."""
        ref = self.referee
        for phase, count in (("map", SPLITS), ("reduce", PARTITIONS)):
            for i in range(count):
                if self._alive(phase, i):
                    continue
                assigns = [(when, w) for when, event, w, a in ref.history
                           if event == "assign" and (a.phase, a.task) == (phase, i)]
                when, worker = assigns[-1] if assigns else (0.0, None)
                crash = next((t for t, event, w, _ in ref.history
                              if event == "crash" and w == worker and t >= when),
                             None)
                if crash is None:
                    continue
                if phase == "map" and i in ref.mapped:
                    return (f"map task {i}'s output was on {worker}'s local disk, "
                            f"lost when {worker} crashed at t = {crash:.1f} s, and "
                            "the master never ran it again: a dead worker's "
                            "completed map tasks must run again elsewhere")
                return (f"{phase} task {i} was running on {worker} when it crashed "
                        f"at t = {crash:.1f} s, and the master never handed it out "
                        "again: detect a silent worker after the timeout and put "
                        "its in-progress tasks back to idle")
        return None

    def _waiting(self) -> str | None:
        """A live reducer waiting for a piece of map output."""
        for name in self.names:
            node = self.cluster.nodes[name]
            attempt = node.attempt if node.alive else None
            if attempt is None or attempt.phase != "reduce":
                continue
            missing = [m for m in range(SPLITS) if m not in node.chunks]
            if missing:
                m = missing[0]
                where = node.fetching.get(m) or node.locations[m]
                source = (f"asked {where}, which never answered" if where
                          else "and the master has not said where it is")
                return (f"reduce task {attempt.task} on {name} still waits for map "
                        f"task {m}'s output ({source}); the master must re-run map "
                        "output it cannot reach and tell the reducers where it is")
        return None

    def _alive(self, phase: str, i: int) -> bool:
        """Is task i done (output on a live disk or in the file system), or
        running on a live worker?"""
        nodes = self.cluster.nodes
        if phase == "reduce" and i in self.job.output.files:
            return True
        cut = self.cluster.network.is_blocked
        if phase == "map" and any(nodes[w].alive and i in nodes[w].files
                                  and not cut(w, mr.MASTER) for w in self.names):
            return True
        return any(self.referee.runs(w, phase, i) for w in self.names)

    def exactly_once(self) -> None:
        files = self.job.output.files
        missing = [r for r in range(PARTITIONS) if r not in files]
        if missing:
            lost = sorted(w for w in self.truth
                          if mr.hash_partition(w, PARTITIONS) in missing)
            raise Failed(f"missing output: the master ended the job at t = "
                         f"{self.sim.now:.1f} s, but partition(s) {missing} were "
                         f"never written ({len(lost)} words missing, e.g. "
                         f"{lost[:3]}); a task completes once, by its first copy "
                         "the master counts on: count no completion twice")
        seen: dict[str, int] = {}
        for _, pairs in sorted(files.items()):
            for word, count in pairs:
                if word in seen:
                    raise Failed(f"not exactly once: {word!r} is in the output twice")
                seen[word] = count
        wrong = sorted(w for w in self.truth.keys() | seen.keys()
                       if seen.get(w) != self.truth.get(w))
        if wrong:
            w = wrong[0]
            raise Failed(f"wrong output: {w!r} counted {seen.get(w)}, but the input "
                         f"holds it {self.truth.get(w)} times ({len(wrong)} words "
                         "wrong)")

    def within_bound(self, duration: float, slower: float,
                     slack: float = 0.0) -> None:
        """The job took at most `slower` times a straggler-free run of labkit's
        own master on the same input (plus `slack` s for a crash)."""
        calm = calm_duration(self.seed)
        bound = slower * calm + slack
        if duration > bound:
            backups = self.cluster.master.backups_launched
            plus = f" + {slack:g} s" if slack else ""
            raise Failed(f"too slow: the job took {duration:.1f} s, more than "
                         f"{slower:g} × the {calm:.1f} s labkit's master "
                         f"takes without stragglers{plus} "
                         f"({backups['map']} map and {backups['reduce']} reduce "
                         "backups launched); near the end of a phase, back up the "
                         "tasks still in progress: the first copy to finish wins")

    def worker(self) -> str:
        return self.rng.choice(self.names)

    def local_first(self) -> None:
        """Every map task the master hands out (not as a backup) to a worker
        that stores the input of some map task never started yet must be one
        whose input that worker stores: pick prefers a local idle map task,
        and a task never started is idle."""
        network, send = self.cluster.network, self.cluster.network.send
        splits, started = self.job.splits, self.referee.started["map"]

        def watched(src: str, dst: str, kind: str, body: dict) -> Message | None:
            if src == mr.MASTER and kind == "assign":
                attempt = self.job.attempts[body["attempt"]]
                local = [i for i in range(SPLITS)
                         if dst in splits[i].replicas and i not in started]
                if attempt.phase == "map" and not attempt.backup and local \
                        and dst not in splits[attempt.task].replicas:
                    raise Failed(
                        f"no locality: at t = {self.sim.now:.1f} s the master gave "
                        f"{dst} map task {attempt.task}, whose input is on "
                        f"{', '.join(splits[attempt.task].replicas)} only, while "
                        f"map task {local[0]}, whose input {dst} stores, waited "
                        "to start; pick prefers an idle map task whose split has "
                        "the worker among its replicas (its input is read from "
                        "the local disk, not over the network)")
            return send(src, dst, kind, body)

        network.send = watched

    def losers_cancelled(self) -> None:
        """Once a copy of a task has finished and counted (no worker crashed,
        so the first copy to finish counts), every other copy still running is
        cancelled: none may run on to its end more than CANCEL_GRACE s later."""
        first: dict[tuple[str, int], object] = {}
        attempts = [a for a in self.job.attempts if a.end is not None]
        for a in sorted(attempts, key=lambda a: a.end):
            if a.outcome in ("completed", "unused"):
                first.setdefault((a.phase, a.task), a)
        for a in attempts:
            won = first.get((a.phase, a.task))
            if won is None or a is won or a.start > won.end \
                    or a.outcome not in ("completed", "unused") \
                    or a.end <= won.end + CANCEL_GRACE:
                continue
            raise Failed(
                f"copy not cancelled: {a.phase} task {a.task}'s copy on {won.worker} "
                f"finished at t = {won.end:.1f} s and completed the task, but its "
                f"copy on {a.worker} ran on to its end at t = {a.end:.1f} s, holding "
                f"{a.worker} for nothing; in finish, self.cancel every other copy "
                "still in the task's running list")

    def declared_dead_in_time(self, name: str, crash: float) -> None:
        """Once `name` (crashed at `crash`, for good) has been silent for the
        timeout plus a heartbeat interval since its last heartbeat reached the
        master, the master must count it dead: silent_workers names every
        worker silent for more than the timeout, and the master asks it once
        per heartbeat interval."""
        grace = TIMEOUT + HEARTBEAT

        def probe() -> None:
            last = self.referee.heard.get(name, 0.0)
            if self.sim.now <= last + grace:         # a heartbeat still in flight
                self.sim.at(last + grace + HEARTBEAT / 2, probe)
                return
            state = getattr(self.cluster.master, "workers", {}).get(name)
            if getattr(state, "alive", False):
                raise Failed(
                    f"slow failure detector: {name} crashed at t = {crash:.1f} s, "
                    f"its last heartbeat reached the master at t = {last:.1f} s, "
                    f"and at t = {self.sim.now:.1f} s the master still counted it "
                    f"alive; silent_workers must name a worker silent for more "
                    f"than self.job.timeout ({TIMEOUT:g} s) at the next check "
                    f"(once every {HEARTBEAT:g} s)")

        self.sim.at(crash + grace + HEARTBEAT / 2, probe)


# -- part 1: reassignment (no backup tasks) ------------------------------------------

def healthy(t: Trial) -> None:
    """No failures: the job finishes and its output is the word count of the
    input, every word exactly once; a map task goes to a worker that stores its
    input whenever one such task waits to start."""
    s = Story(t)
    s.local_first()
    s.finish()


def crash_at_start(t: Trial) -> None:
    """Two workers crash before any task reaches them; one comes back at
    t = 20 s as a new process and joins the job."""
    s = Story(t)
    first, second = s.rng.sample(s.names, 2)
    s.crash(first, 0.0, back=20.0)
    s.crash(second, 0.0)
    s.finish()


def crash_during_maps(t: Trial) -> None:
    """A worker crashes in the middle of the map phase and never comes back:
    the master declares it dead within the timeout (plus one heartbeat
    interval, how often it checks) of its last heartbeat, and its running map
    task and its finished ones run again elsewhere."""
    s = Story(t)
    victim, at = s.worker(), s.rng.uniform(1.0, 10.0)
    s.crash(victim, at)
    s.declared_dead_in_time(victim, at)
    s.finish()


def crash_after_maps(t: Trial) -> None:
    """A worker crashes in the reduce phase, after its map tasks completed, and
    never comes back: reducers still need its map output, which died with its
    local disk."""
    s = Story(t)
    s.crash(s.worker(), s.rng.uniform(16.0, 26.0))
    s.finish()


def crash_after_commit(t: Trial) -> None:
    """The first worker to commit a reduce task crashes right after the master
    hears of it and restarts 5 s later: its reduce output is safe in the file
    system, its map output is not."""
    s = Story(t)
    armed = [True]

    def crash_the_first(msg: Message) -> None:
        if armed[0] and msg.kind == "reduce_done":
            armed[0] = False
            s.crash(msg.src, s.sim.now + 0.5, back=5.0)

    s.on_delivery(crash_the_first)
    s.finish()


def late_completion(t: Trial) -> None:
    """A worker finishes a map task and crashes 0.1 s later; its completion
    message is delayed 4 s and arrives after the worker restarted with an
    empty disk (and the master heard so): it must be ignored."""
    s = Story(t)
    victim, network, armed = s.worker(), s.cluster.network, [True]
    network.set_link(victim, mr.MASTER, reorder=1.0)      # no FIFO: may overtake

    def delay_and_crash(msg: Message) -> float:
        if armed[0] and msg.kind == "map_done" and msg.src == victim:
            armed[0] = False
            s.crash(victim, s.sim.now + 0.1, back=0.5)
            return 4.0
        return 0.0

    network.adversary = delay_and_crash
    s.finish()


def partitioned_worker(t: Trial) -> None:
    """A worker is cut off from everyone for three timeouts, then reconnects:
    the master declares it dead and runs its work again; its late messages
    change nothing."""
    s = Story(t)
    s.cut(s.worker(), s.rng.uniform(2.0, 20.0), 3 * TIMEOUT)
    s.finish()


def unreliable_network(t: Trial) -> None:
    """A fifth of heartbeats are lost, a fifth of completions and heartbeats
    duplicated and a fifth delayed past later ones; one worker crashes in the
    map phase and restarts, another crashes in the reduce phase for good."""
    s = Story(t)
    s.noisy_reports(loss=0.2, duplicate=0.2, reorder=0.2)
    first, second = s.rng.sample(s.names, 2)
    s.crash(first, s.rng.uniform(1.0, 10.0), back=3.0)
    s.crash(second, s.rng.uniform(16.0, 26.0))
    s.finish()


# -- part 2: stragglers (backup tasks on) ---------------------------------------------

def slow_mapper(t: Trial) -> None:
    """A worker is 20 times slower from the start (a bad disk): backups near
    the end of each phase keep the job within a bound of a straggler-free one,
    and once a copy finishes a task the other copy is cancelled, not left to
    run on."""
    s = Story(t, backups=True, slow={f"w{1 + t.seed % WORKERS}": 20.0})
    s.within_bound(s.finish(), 2.0)
    s.losers_cancelled()


def slowing_down(t: Trial) -> None:
    """A worker becomes 20 times slower in the middle of the map phase (its
    disk starts to fail), with its map task half done."""
    s = Story(t, backups=True)
    s.slow_down(s.worker(), s.rng.uniform(2.0, 5.0), 20.0)
    s.within_bound(s.finish(), 3.7)     # its finished maps are served slowly too


def straggler_and_crash(t: Trial) -> None:
    """A 20 times slower worker, and another that crashes in the map phase and
    restarts: re-execution and backups together."""
    slow = f"w{1 + t.seed % WORKERS}"
    s = Story(t, backups=True, slow={slow: 20.0})
    victim = s.rng.choice([n for n in s.names if n != slow])
    s.crash(victim, s.rng.uniform(1.0, 10.0), back=2.0)
    s.within_bound(s.finish(), 2.0, slack=2 * TIMEOUT)


def straggler_dies(t: Trial) -> None:
    """A 20 times slower worker's task gets a backup copy near the end of its
    phase, and 1 s later the slow worker crashes for good: the task still has
    a running copy, so the master keeps counting on the backup, which
    finishes it; it neither cancels the backup nor starts the task over."""
    slow = f"w{1 + t.seed % WORKERS}"
    s = Story(t, backups=True, slow={slow: 20.0})
    network, send = s.cluster.network, s.cluster.network.send
    copy: list = []         # [the backup attempt, the original attempt]
    crashed: list[float] = []
    original_done: list[bool] = []

    def watched(src: str, dst: str, kind: str, body: dict) -> Message | None:
        if src == mr.MASTER and kind == "assign":
            attempt = s.job.attempts[body["attempt"]]
            key = (attempt.phase, attempt.task)
            if not copy and s.referee.runs(slow, *key):
                copy[:] = [attempt, s.cluster.nodes[slow].attempt]
                crashed.append(s.sim.now + 1.0)
                s.crash(slow, crashed[0])
            elif copy and crashed and s.sim.now >= crashed[0] \
                    and key == (copy[0].phase, copy[0].task):
                raise Failed(
                    f"started over: at t = {s.sim.now:.1f} s the master handed out "
                    f"{key[0]} task {key[1]} again, although its backup on "
                    f"{copy[0].worker} (started at t = {copy[0].start:.1f} s) was "
                    f"still running when {slow}, running the original copy, "
                    f"crashed at t = {crashed[0]:.1f} s; in reassign, a task with a "
                    "copy still running stays running: drop only the dead "
                    "worker's attempts")
        if src == mr.MASTER and kind == "cancel" and copy and not original_done \
                and body.get("attempt") == copy[0].id:
            raise Failed(
                f"healthy copy cancelled: at t = {s.sim.now:.1f} s the master "
                f"cancelled the backup of {copy[0].phase} task {copy[0].task} on "
                f"{copy[0].worker}, the only copy left running after {slow} (the "
                f"original's worker) crashed at t = {crashed[0]:.1f} s, before "
                "either copy finished; in reassign, a task with a copy still "
                "running stays running: drop only the dead worker's attempts")
        return send(src, dst, kind, body)

    def original_finished(msg: Message) -> None:
        if copy and msg.kind in ("map_done", "reduce_done") \
                and msg.attempt == copy[1].id:
            original_done.append(True)

    network.send = watched
    s.on_delivery(original_finished)
    s.within_bound(s.finish(), 2.0, slack=2 * TIMEOUT)


def backups_are_cheap(t: Trial) -> None:
    """No stragglers, backups on: the job is as fast as labkit's, and no backup
    starts before the end of its phase or twice for one task."""
    s = Story(t, backups=True)
    s.within_bound(s.finish(), 1.05)

