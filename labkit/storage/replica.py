"""The replicated key-value service every quorum store here is built from: the
replica that keeps key -> (version, value) and answers "put" and "get"
(`Replica`), read repair's plan (`read_repair`), and a replica that also
coordinates the client operations sent to it (`CoordinatingReplica`, with one
`Quorum` per operation in flight).

Two stores use it, and coordinate in the two ways Dynamo describes (§4.5).
`QuorumKV` (quorum.py) coordinates in the client library: its `Coordinator`
`call`s each replica and waits on futures, and repairs once every answer is in.
The capstone's storage servers (notebook 09) coordinate on the server a load
balancer picked (`CoordinatingReplica`): answers come back tagged with a quorum
number and are counted as they arrive, and a read repairs each replica that
answers older, as it answers.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Generator, Iterable, Sequence
from operator import itemgetter
from typing import Any

from labkit.errors import ConfigError, require_int, require_number
from labkit.net import Message, Network
from labkit.node import Node
from labkit.storage.staleness import WARS, check_wars

#: How many coordinators a write version tells apart (see CoordinatingReplica).
VERSION_SLOTS = 8
_REPAIR = -1                 # the quorum number of a read repair's put: no answer
#: The newest write version any CoordinatingReplica gave, per simulation: the
#: synchronised clock that never reads the same twice.
_ISSUED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class Replica(Node):
    """One replica of a versioned key-value store: key -> (version, value) on
    its disk (which survives a crash); a store keeps the newest version.

    A "put" (key, version, value) or "get" (key) request gets its turn in
    `serve`: a process of its own, which with `delays` (a WARS tuple) waits W
    then A around a write and R then S around a read. A subclass may queue it
    instead and call `carry_out` when its turn comes. `answer` replies with
    put_ok, or get_ok carrying version and value (0 and None: no such key).

    `owners(key)` (a subclass says) names the replicas that hold a key; `shared`
    and `absorb` let two replicas exchange what they both hold, as a restarted
    replica does when it `pull`s from its peers ("pull" -> "entries").
    """

    def __init__(self, name: str, net: Network, delays: WARS | None = None):
        if delays is not None and not isinstance(delays, WARS):
            raise ConfigError(f"delays must be a storage.WARS tuple, got {delays!r}")
        self.delays = None if delays is None else check_wars(delays)
        self.incarnation = 0                 # bumped by every start and restart
        super().__init__(name, net)

    def reset(self) -> None:
        self.disk.setdefault("data", {})
        self.incarnation += 1
        if self.delays is not None:
            rng = self.sim.rng(f"wars.{self.name}")
            self.wait = {k: d.sampler(rng) for k, d in self.delays._asdict().items()}

    def owners(self, key: str) -> Sequence[str]:
        """The replicas that hold `key`."""
        raise NotImplementedError(f"{type(self).__name__} must say who owns a key")

    # -- the data ---------------------------------------------------------------------
    def lookup(self, key: str) -> tuple[int, Any]:
        """(version, value) of `key` here; (0, None) if this replica has none."""
        return self.disk["data"].get(key, (0, None))

    def version(self, key: str) -> int:
        """The version of `key` on this disk (0: none, or the disk was lost)."""
        return self.disk.get("data", {}).get(key, (0, None))[0]

    def store(self, key: str, version: int, value: Any) -> None:
        """Keep (version, value) if it is newer than what this replica holds."""
        data = self.disk["data"]
        if version > data.get(key, (0, None))[0]:
            data[key] = (version, value)

    # -- requests ---------------------------------------------------------------------
    def on_put(self, msg: Message) -> None:
        self.serve(msg)

    def on_get(self, msg: Message) -> None:
        self.serve(msg)

    def serve(self, msg: Message) -> None:
        """Give a request its turn: a process of its own (see the class)."""
        self.spawn(self._serve(msg))

    def _serve(self, msg: Message) -> Generator:
        put = msg.kind == "put"
        if self.delays is not None:
            yield self.wait["write" if put else "read"]()
        body = self.apply(msg)
        if self.delays is not None:
            yield self.wait["ack" if put else "response"]()
        self.answer(msg, **body)

    def carry_out(self, msg: Message) -> None:
        """Apply a request and answer it at once."""
        self.answer(msg, **self.apply(msg))

    def apply(self, msg: Message) -> dict[str, Any]:
        """Store a put or look up a get; returns the body of the answer."""
        if msg.kind == "put":
            self.store(msg.key, msg.version, msg.value)
            return {}
        version, value = self.lookup(msg.key)
        return {"version": version, "value": value}

    def answer(self, msg: Message, **body: Any) -> None:
        """Reply to the caller (a `call` of the client library)."""
        self.reply(msg, **body)

    # -- exchanging what two replicas both hold ----------------------------------------
    def shared(self, peer: str) -> dict[str, tuple[int, Any]]:
        """Our entries for the keys both we and `peer` replicate."""
        return {k: v for k, v in self.disk["data"].items() if peer in self.owners(k)}

    def absorb(self, entries: Iterable[tuple[str, int, Any]]) -> None:
        """Store each (key, version, value) that is newer than ours."""
        for key, version, value in entries:
            self.store(key, version, value)

    def pull(self, peers: Iterable[str]) -> None:
        """Ask every other replica in `peers` for the entries we share."""
        for peer in peers:
            if peer != self.name:
                self.send(peer, "pull")

    def on_pull(self, msg: Message) -> None:
        entries = tuple((k, *v) for k, v in self.shared(msg.src).items())
        self.send(msg.src, "entries", entries=entries)

    def on_entries(self, msg: Message) -> None:
        self.absorb(msg.entries)


def read_repair(answers: Sequence[tuple[str, int, Any]]) -> tuple[int, Any, list[str]]:
    """Read repair's plan from a read's answers, (replica, version, value) each:
    the newest version and its value (the first to arrive among equals), and
    the replicas that answered an older version, in answer order."""
    if isinstance(answers, str | bytes) or not isinstance(answers, Sequence):
        raise ConfigError(f"answers must be a list of (replica, version, value), got "
                          f"{answers!r}")
    if not answers:
        raise ConfigError("read repair needs at least one answer")
    for i, answer in enumerate(answers):
        if not isinstance(answer, tuple | list) or len(answer) != 3:
            raise ConfigError(f"answer {i} must be a (replica, version, value) "
                              f"triple, got {answer!r}")
        if isinstance(answer[1], bool) or not isinstance(answer[1], numbers.Integral):
            raise ConfigError(f"answer {i} ({answer[0]!r}): version must be an int "
                              f"(0: no such key), got {answer[1]!r}")
    return _repair_plan(answers)


def _repair_plan(answers: Sequence[tuple[str, int, Any]]) -> tuple[int, Any, list[str]]:
    """`read_repair` without its checks, for coordinators whose answers came
    from their own replicas (a capstone read takes this path)."""
    _, version, value = max(answers, key=itemgetter(1))
    return version, value, [replica for replica, seen, _ in answers if seen < version]


class Quorum:
    """What a coordinator knows about one read or write in flight: the client's
    `request` (handed back to the hooks), the `op` ("put" or "get") and `key`,
    how many answers it `needed`, how many replicas are still `waiting` to
    answer, the write's `version`, the newest version acknowledged when it began
    (`latest`, to tell a stale read), and the `answers` so far as (replica,
    version, value) in arrival order."""

    __slots__ = ("request", "op", "key", "needed", "waiting", "version", "latest",
                 "answers", "answered")

    def __init__(self, request: Any, op: str, key: str, needed: int, waiting: int,
                 version: int, latest: int):
        self.request, self.op, self.key = request, op, key
        self.needed, self.waiting = needed, waiting
        self.version, self.latest = version, latest
        self.answers: list[tuple[str, int, Any]] = []
        self.answered = False


class CoordinatingReplica(Replica):
    """A replica that also coordinates the client operations sent to it
    (Dynamo's coordinator node).

    `start_quorum` sends a put (with a new version) or a get to the key's
    owners, tagged with a quorum number, and counts their put_ok / get_ok
    answers as they arrive. Once `w` (writes) or `r` (reads) have answered,
    `reached(quorum, version)` runs, with the write's version or the newest one
    read; a read then repairs each replica that answered an older version, also
    those whose answers come later (a repair is not answered). If the quorum has
    not formed `timeout` seconds after it began, `missed(quorum)` runs: even if
    this replica crashed meanwhile, unless it restarted (a restart forgets every
    quorum in flight).

    A write's version is the clock in microseconds times VERSION_SLOTS plus
    this replica's `index`, and above every version any coordinator of the
    simulation gave before it: last writer wins, as with perfectly
    synchronised clocks. (Two writes within one microsecond would otherwise be
    ordered by index, and a write started after another had returned could
    lose to it; the second one gets the next number instead.)
    """

    def __init__(self, name: str, net: Network, *, index: int, r: int, w: int,
                 timeout: float, delays: WARS | None = None):
        self.index = require_int("index", index, minimum=0)
        if index >= VERSION_SLOTS:
            raise ConfigError(f"index must be below {VERSION_SLOTS} (the coordinators "
                              f"a version tells apart), got {index}")
        self.r, self.w = require_int("r", r, minimum=1), require_int("w", w, minimum=1)
        self.timeout = require_number("timeout", timeout, positive=True)
        super().__init__(name, net, delays)

    def reset(self) -> None:
        super().reset()
        self.quorums: dict[int, Quorum] = {}
        self.last_quorum = self.last_version = 0

    def reached(self, quorum: Quorum, version: int) -> None:
        """Runs once, when `quorum` has the answers it needed."""
        raise NotImplementedError(f"{type(self).__name__} must say what a quorum "
                                  "that formed does")

    def missed(self, quorum: Quorum) -> None:
        """Runs when `quorum` did not form within `timeout`."""
        raise NotImplementedError(f"{type(self).__name__} must say what a quorum "
                                  "that did not form does")

    def next_version(self) -> int:
        """A new write version (see the class): above every earlier one."""
        issued = _ISSUED.get(self.sim, 0)
        self.last_version = max(self.last_version + 1, issued + 1,
                                int(self.sim.now * 1e6) * VERSION_SLOTS + self.index)
        _ISSUED[self.sim] = self.last_version
        return self.last_version

    def start_quorum(self, request: Any, op: str, key: str, value: Any = None,
                     latest: int = 0) -> None:
        """Begin a put of `value` or a get of `key` on behalf of `request`."""
        if op not in ("put", "get"):
            raise ConfigError(f"op must be 'put' or 'get', got {op!r}")
        owners = self.owners(key)
        self.last_quorum += 1
        number = self.last_quorum
        put = op == "put"
        quorum = self.quorums[number] = Quorum(
            request, op, key, self.w if put else self.r, len(owners),
            self.next_version() if put else 0, latest)
        for owner in owners:
            if put:
                self.send(owner, "put", quorum=number, key=key, version=quorum.version,
                          value=value)
            else:
                self.send(owner, "get", quorum=number, key=key)
        self.sim.schedule(self.timeout, self.give_up, self.incarnation, number)

    def give_up(self, incarnation: int, number: int) -> None:
        if incarnation != self.incarnation:
            return                               # restarted: the quorum is gone
        quorum = self.quorums.pop(number, None)
        if quorum is not None and not quorum.answered:
            self.missed(quorum)

    def answer(self, msg: Message, **body: Any) -> None:
        """Answer the coordinating replica, tagged with its quorum number."""
        if msg.quorum == _REPAIR:
            return
        if msg.kind == "put":
            body = {"version": msg.version}
        self.send(msg.src, f"{msg.kind}_ok", quorum=msg.quorum, **body)

    def on_put_ok(self, msg: Message) -> None:
        self.collect(msg, None)

    def on_get_ok(self, msg: Message) -> None:
        self.collect(msg, msg.value)

    def collect(self, msg: Message, value: Any) -> None:
        quorum = self.quorums.get(msg.quorum)
        if quorum is None:
            return                               # given up, or long done
        quorum.answers.append((msg.src, msg.version, value))
        quorum.waiting -= 1
        read = quorum.op == "get"
        if not quorum.answered and len(quorum.answers) == quorum.needed:
            quorum.answered = True
            self.reached(quorum, max(v for _, v, _ in quorum.answers) if read
                         else quorum.version)
        if read and quorum.answered:
            self.repair(quorum)
        if quorum.waiting == 0:
            del self.quorums[msg.quorum]

    def repair(self, quorum: Quorum) -> None:
        """Read repair: send the newest version seen to the replicas that
        answered an older one, and count them as up to date."""
        version, value, behind = _repair_plan(quorum.answers)
        if not behind:
            return
        for owner in behind:
            self.send(owner, "put", quorum=_REPAIR, key=quorum.key, version=version,
                      value=value)
        quorum.answers = [(o, version, value) if seen < version else (o, seen, x)
                          for o, seen, x in quorum.answers]
