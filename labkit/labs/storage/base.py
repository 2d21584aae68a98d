"""What a quorum lab answer is given: `QuorumBase`, labkit's quorum client
with everything but the protocol, and the `Referee` that watches the wire.

The referee trusts nothing the client claims: it sees every put the client
sends and every ack that reaches it. From the puts it learns which value each
version of a key carries (one value per version); from the acks, which
replicas stored a version. A write may return only after W distinct replicas
acked it, and a read repair must carry the newest answer's version and value
together. It raises `InvariantViolation` at the message (or the return) that
broke a rule, so a failure points at its cause.
"""

from __future__ import annotations

from typing import Any

from labkit.errors import InvariantViolation
from labkit.net import Message
from labkit.storage import QuorumKV
from labkit.storage.quorum import Coordinator


class QuorumBase(Coordinator):
    """The client of a `QuorumKV` (named "client", never crashed): `self.kv`
    has n, r, w and timeout; `self.version` numbers writes; `owners(key)` is
    the key's N replicas; `call(replica, kind, timeout, **body)` sends a
    request and returns a Future of the reply (it fails on a timeout)."""

    def owners(self, key: str) -> list[str]:
        """The N replicas that hold `key` (its preference list)."""
        return self.kv.ring.owners(key, self.kv.n)


class Referee:
    """What the wire showed, for one store: per (key, version) the value the
    client wrote, the replicas whose ack reached the client, and every replica
    asked for a read. It survives every crash (it is the grader's, not a
    node's)."""

    def __init__(self, kv: QuorumKV):
        self.w = kv.w
        self.calls: dict[int, tuple[str, int]] = {}
        self.written: dict[tuple[str, int], Any] = {}
        self.acks: dict[tuple[str, int], set[str]] = {}
        self.asked: list[str] = []          # every replica asked for a get, in order

    def watch(self, kv: QuorumKV) -> None:
        """See every message the network carries and every one the client gets."""
        send, client = kv.network.send, kv.coordinator
        deliver = client.deliver

        def watched_send(src: str, dst: str, kind: str, body: dict) -> Message:
            if src == client.name and kind == "put":
                self.sent_put(dst, body)
            elif src == client.name and kind == "get":
                self.asked_for(dst)
            return send(src, dst, kind, body)

        def watched_deliver(msg: Message) -> None:
            rpc = msg.body.get("rpc")
            if msg.kind == "put_ok" and rpc in self.calls:
                self.acks.setdefault(self.calls[rpc], set()).add(msg.src)
            deliver(msg)

        kv.network.send, client.deliver = watched_send, watched_deliver

    def sent_put(self, dst: str, body: dict) -> None:
        key, version, value = body.get("key"), body.get("version"), body.get("value")
        if body.get("rpc") is None:                         # a read repair
            if (key, version) not in self.written:
                raise InvariantViolation(
                    f"read repair: the client repaired {dst} with version "
                    f"{version!r} of {key!r}, which no write sent; a repair sends "
                    "the newest answer's version and value together")
            if self.written[key, version] != value:
                raise InvariantViolation(
                    f"read repair: the client repaired {dst} with version {version} "
                    f"of {key!r} carrying {value!r}, but version {version} holds "
                    f"{self.written[key, version]!r}; a repair sends the newest "
                    "answer's version and value together")
            return
        if type(version) is not int or version <= 0:
            raise InvariantViolation(f"versions: the client sent {dst} a put of "
                                     f"{key!r} with version {version!r}; versions "
                                     "are positive ints")
        self.calls[body["rpc"]] = (key, version)
        if self.written.setdefault((key, version), value) != value:
            raise InvariantViolation(
                f"versions: two writes of {key!r} share version {version}; every "
                "write needs a new, higher version")

    def asked_for(self, dst: str) -> None:
        """The client sent `dst` a get."""
        self.asked.append(dst)

    def version_of(self, key: str, value: Any) -> int | None:
        """The newest version that wrote `value` under `key` (0 for None; None if
        no write carried it). A write tried again after a failure carries its
        value under a second version, and a read of it is as new as the retry."""
        if value is None:
            return 0
        return max((v for (k, v), x in self.written.items()
                    if k == key and x == value), default=None)

    def acknowledged(self, key: str, version: Any, value: Any) -> None:
        """A put of `value` returned `version`: check W replicas acked it."""
        if self.written.get((key, version)) != value:
            other = next((f"{k!r} = {x!r}" for (k, v), x in self.written.items()
                          if v == version and (k, x) != (key, value)), None)
            if other is not None:
                raise InvariantViolation(
                    f"returned version: the write of {value!r} under {key!r} "
                    f"returned version {version!r}, which another write sent "
                    f"({other}); return the version this put sent")
            raise InvariantViolation(
                f"versions: the write of {value!r} under {key!r} returned version "
                f"{version!r}, which it did not send to any replica")
        got = self.acks.get((key, version), set())
        if len(got) < self.w:
            raise InvariantViolation(
                f"write quorum: the write of {key!r} version {version} returned "
                f"with acks from {sorted(got) or 'no replica'} only; a write may "
                f"return only after W = {self.w} distinct replicas acked it")
