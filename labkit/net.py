"""The simulated network: latency, loss, duplication, reordering, partitions.

Every message is journaled (sent, delivered, dropped and why), so a notebook
can count messages per operation and draw the space-time diagram, and tests
can check conservation: sent + duplicated = delivered + dropped + in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from heapq import heappush
from types import MappingProxyType
from typing import Any, Protocol

from labkit.dist import Constant, Distribution, as_distribution
from labkit.errors import ConfigError, require_probability
from labkit.sim import Simulator

_new_message = object.__new__
_INFINITY = float("inf")


class _Fields:
    """A message's storage: the header in slots and the body as the instance
    dict, so that reading a field (`msg.term`) is an ordinary attribute read,
    which costs a fortieth of a `__getattr__` fallback. A message is built as
    a `_Fields` and then becomes a `Message` (the same layout), whose
    `__setattr__` makes it read-only."""

    __slots__ = ("src", "dst", "kind", "id", "__dict__")


class Message(_Fields):
    """An immutable note from `src` to `dst`: a `kind` and a body of fields.

    Body fields read as attributes (`msg.term`); `body` is a read-only view of
    them all. Replies use the kind `<kind>_ok`. A message is read-only:
    setting a field raises AttributeError, and so does `msg.body["x"] = 1`
    (TypeError), so a handler cannot change what it received, nor, through a
    duplicate, what another delivery of the same message will see. Its values
    should be immutable too (numbers, strings, tuples) so that nodes never
    share objects through the network.
    """

    __slots__ = ()

    def __new__(cls, src: str, dst: str, kind: str, body: Mapping[str, Any], id: int):
        msg = _new_message(_Fields)
        msg.src, msg.dst, msg.kind, msg.id = src, dst, kind, id
        msg.__dict__ = dict(body)
        msg.__class__ = cls
        return msg

    @property
    def body(self) -> Mapping[str, Any]:
        """The fields, as a read-only view (no copy)."""
        return MappingProxyType(self.__dict__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a message is read-only: it cannot set {name!r}; "
                             f"send a new message instead")

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def __getattr__(self, field: str) -> Any:
        # Only for names that are neither attributes nor fields; also for every
        # name of a half-built message (copy and pickle probe `__setstate__`),
        # whose __dict__ is an empty one made on first reading and whose kind
        # is unset (read through the slot, or this would recurse).
        try:
            what = f"message {_Fields.kind.__get__(self)!r}"
        except AttributeError:
            what = "a message being built"
        raise AttributeError(f"{what} has no field {field!r}; it has "
                             f"{sorted(self.__dict__)}")

    def __reduce__(self):
        return Message, (self.src, self.dst, self.kind, self.__dict__, self.id)

    def __repr__(self) -> str:
        fields_ = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Message#{self.id}({self.src}->{self.dst} {self.kind}: {fields_})"


@dataclass(frozen=True)
class NetConfig:
    """How the network treats messages on a link.

    latency: seconds, a number (constant) or a `labkit.dist` distribution.
    loss: probability a message is lost.
    duplicate: probability a message is delivered twice (the copy gets its own
        latency draw).
    reorder: probability a message ignores the link's FIFO order and takes a
        second latency draw on top, so later messages may overtake it. With
        reorder = 0 a link is FIFO, like a TCP connection.
    """

    latency: float | Distribution = 0.001
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "latency", as_distribution(self.latency, "latency"))
        for name in ("loss", "duplicate", "reorder"):
            require_probability(name, getattr(self, name))

    def updated(self, **knobs: Any) -> NetConfig:
        """A copy with some knobs changed (same names as the fields)."""
        known = [f.name for f in fields(self)]
        for name in knobs:
            if name not in known:
                raise ConfigError(f"unknown network knob {name!r}; knobs are {known}")
        return replace(self, **knobs)


class Endpoint(Protocol):
    """What the network needs of a node: is it up, and where to hand messages."""

    alive: bool

    def deliver(self, msg: Message) -> None: ...


class _Link:
    """The settings in force on a link and a sampler bound to the net's stream.

    The probabilities are copied out of the config so the per-message path reads
    one attribute instead of two. `fixed` is the latency when it is a constant
    (else None): no draw to make, so no call. `plain`: no loss, duplicates or
    reordering, so a message on the link needs one latency and nothing else.
    """

    __slots__ = ("config", "latency", "loss", "duplicate", "reorder", "fixed",
                 "plain")

    def __init__(self, config: NetConfig, sample: Callable[[], float]):
        self.config, self.latency = config, sample
        self.loss, self.duplicate = config.loss, config.duplicate
        self.reorder = config.reorder
        latency = config.latency
        self.fixed = latency.value if isinstance(latency, Constant) else None
        self.plain = not (self.loss or self.duplicate or self.reorder)


class Network:
    """Carries messages between named endpoints under a `NetConfig`.

    Partitions are sets of blocked directed links: a message on a blocked link
    is dropped when sent, and also if the link is cut while it is in flight.
    A message to a node that is down when it arrives is dropped ("down").
    """

    def __init__(self, sim: Simulator, config: NetConfig | None = None):
        if config is not None and not isinstance(config, NetConfig):
            raise ConfigError(f"config must be a NetConfig, got {config!r}")
        self.sim = sim
        self._rng = sim.rng("net")
        self._endpoints: dict[str, Endpoint] = {}
        self._default = self._link(config or NetConfig())
        self._overrides: dict[tuple[str, str], _Link] = {}
        # The knobs each override sets, so `update` can rebuild it on a new default.
        self._override_knobs: dict[tuple[str, str], dict[str, Any]] = {}
        # FIFO links: the arrival time of the last message sent on each link, and
        # an upper bound of them all. Messages that took the fixed-latency fast
        # path are not entered (see `send`) until `_refresh` folds them in.
        self._fifo_clock: dict[tuple[str, str], float] = {}
        self._fifo_horizon = 0.0
        self._groups: list[list[str]] = []
        self._isolated: list[str] = []
        self._outside: list[str] = []      # endpoints partitions never cut
        self._blocked_pairs: list[tuple[str, str]] = []
        self._cut: set[tuple[str, str]] = set()
        self._last_id = -1                  # message ids: 0, 1, 2, ...
        self.sent: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.drop_reasons: dict[str, int] = {}
        self.duplicated = 0
        # Bound once: the agenda holds this per message, and creating a bound
        # method per send costs as much as a dict lookup. Deliveries go on the
        # agenda without `sim.at` (a meter that replaces `sim.at` counts the
        # events nodes schedule; `send` is where messages are counted).
        # `_arrive_fixed` is a second bound method of `_arrive`, told apart by
        # identity: it marks the deliveries that took the fixed-latency path.
        self._arrive_later = self._arrive
        self._arrive_fixed = self._arrive
        self._schedule_at = sim.at
        self._agenda = sim._agenda
        self._adversary: Callable[[Message], float] | None = None
        self._fast: _Link | None = None
        self._refresh()

    @property
    def adversary(self) -> Callable[[Message], float] | None:
        """An adversary that picks extra flight time per message (seconds >= 0):
        a function of the Message, or None. It lets a test or notebook build
        the schedules an asynchronous network allows (e.g. slow accepts)."""
        return self._adversary

    @adversary.setter
    def adversary(self, fn: Callable[[Message], float] | None) -> None:
        if fn is not None and not callable(fn):
            raise ConfigError(f"adversary must be a function of the message or "
                              f"None, got {fn!r}")
        self._adversary = fn
        self._refresh()

    def _refresh(self) -> None:
        """Decide whether every message takes `send`'s fast path: the default
        link is plain, and no partition, override or adversary is in force.
        Every method that changes one of those calls this."""
        self._fold_fixed()
        plain = not (self._cut or self._overrides or self._adversary is not None)
        self._fast = self._default if plain and self._default.plain else None

    def _fold_fixed(self) -> None:
        """Enter the messages in flight that took the fixed-latency path into
        the FIFO clocks, before the path may change. (Those that already
        arrived need no entry: a later message cannot arrive before now.)"""
        fixed, fifo, horizon = self._arrive_fixed, self._fifo_clock, self._fifo_horizon
        for time, _, fn, args in self._agenda:
            if fn is fixed:
                msg = args[0]
                pair = (msg.src, msg.dst)
                if fifo.get(pair, 0.0) < time:
                    fifo[pair] = time
                if time > horizon:
                    horizon = time
        self._fifo_horizon = horizon

    def _link(self, config: NetConfig) -> _Link:
        return _Link(config, config.latency.sampler(self._rng))

    # -- membership -------------------------------------------------------------
    def attach(self, name: str, endpoint: Endpoint) -> None:
        """Register an endpoint under a unique name."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"node name must be a non-empty str, got {name!r}")
        if name in self._endpoints:
            raise ConfigError(f"a node named {name!r} is already attached")
        self._endpoints[name] = endpoint

    def keep_outside_partitions(self, name: str) -> None:
        """Leave an endpoint (a client) out of the groups `partition` forms: it
        keeps its links to every group. `isolate` and `block` still apply to it."""
        if self._known(name) not in self._outside:
            self._outside.append(name)

    @property
    def names(self) -> list[str]:
        return list(self._endpoints)

    def _known(self, name: str) -> str:
        if not isinstance(name, str) or name not in self._endpoints:
            raise ConfigError(f"unknown node {name!r}; nodes are {self.names}")
        return name

    # -- configuration ----------------------------------------------------------
    @property
    def config(self) -> NetConfig:
        """The settings every link uses unless overridden."""
        return self._default.config

    def update(self, **knobs: Any) -> None:
        """Change default knobs mid-run, e.g. `update(loss=0.1, duplicate=0.05)`.
        Overridden links follow too, except in the knobs their override sets."""
        self._default = self._link(self.config.updated(**knobs))
        for pair, own in self._override_knobs.items():
            self._overrides[pair] = self._link(self.config.updated(**own))
        self._refresh()

    def set_link(self, src: str, dst: str, **knobs: Any) -> None:
        """Override knobs on the directed link src -> dst (others keep the default)."""
        pair = (self._known(src), self._known(dst))
        own = {**self._override_knobs.get(pair, {}), **knobs}
        self._overrides[pair] = self._link(self.config.updated(**own))
        self._override_knobs[pair] = own
        self._refresh()

    def clear_link(self, src: str, dst: str) -> None:
        """Drop the override on src -> dst."""
        pair = (self._known(src), self._known(dst))
        self._overrides.pop(pair, None)
        self._override_knobs.pop(pair, None)
        self._refresh()

    # -- partitions -------------------------------------------------------------
    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: nodes in different groups cannot talk. Nodes not
        named in any group form one more group together. Replaces any earlier
        partition (isolated nodes and blocked links stay as they are)."""
        cleaned: list[list[str]] = []
        seen: set[str] = set()
        for group in groups:
            if isinstance(group, str) or not isinstance(group, Iterable):
                raise ConfigError(f"each group must be a list of names, got {group!r}")
            if isinstance(group, set | frozenset):
                group = sorted(group, key=str)  # set order depends on the hash seed
            group = [self._known(n) for n in group]
            if not group:
                raise ConfigError("a partition group must name at least one node")
            for name in group:
                if name in seen:
                    raise ConfigError(f"node {name!r} is in two partition groups")
                seen.add(name)
            cleaned.append(group)
        if len(cleaned) < 1:
            raise ConfigError("partition needs at least one group of node names")
        rest = [n for n in self._endpoints if n not in seen and n not in self._outside]
        self._groups = cleaned + ([rest] if rest else [])
        self._recut()

    def isolate(self, name: str) -> None:
        """Cut every link to and from one node (it stays up, but alone)."""
        if self._known(name) not in self._isolated:
            self._isolated.append(name)
            self._recut()

    def rejoin(self, name: str) -> None:
        """Undo `isolate(name)`; partitions and blocked links stay."""
        if self._known(name) in self._isolated:
            self._isolated.remove(name)
            self._recut()

    def block(self, src: str, dst: str) -> None:
        """Cut one direction only: src can no longer reach dst (asymmetric faults)."""
        pair = (self._known(src), self._known(dst))
        if pair not in self._blocked_pairs:
            self._blocked_pairs.append(pair)
            self._recut()

    def heal(self) -> None:
        """Remove every partition, isolation and blocked link."""
        self._groups, self._isolated, self._blocked_pairs = [], [], []
        self._recut()

    def is_blocked(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cut

    def _recut(self) -> None:
        cut = set(self._blocked_pairs)
        for i, group in enumerate(self._groups):
            for other in self._groups[i + 1:]:
                for a in group:
                    for b in other:
                        cut.add((a, b))
                        cut.add((b, a))
        for name in self._isolated:
            for other in self._endpoints:
                if other != name:
                    cut.add((name, other))
                    cut.add((other, name))
        self._cut = cut
        self._refresh()

    def describe_cuts(self) -> str:
        """A one-line description of the partitions in force."""
        parts = []
        if self._groups:
            parts.append(" | ".join(",".join(g) for g in self._groups))
        if self._isolated:
            parts.append("isolated: " + ",".join(self._isolated))
        if self._blocked_pairs:
            links = ",".join(f"{a}->{b}" for a, b in self._blocked_pairs)
            parts.append("blocked: " + links)
        return "; ".join(parts) or "fully connected"

    # -- carrying messages ------------------------------------------------------
    def send(self, src: str, dst: str, kind: str, body: Mapping[str, Any]) -> Message:
        """Put a message on the wire; it arrives later, or is dropped. A dict
        `body` becomes the message's fields without a copy: the sender must not
        change it afterwards (Node.send passes a fresh one)."""
        endpoint = self._endpoints.get(dst)
        if endpoint is None:
            raise ConfigError(f"{src} sent {kind!r} to unknown node {dst!r}; "
                              f"nodes are {self.names}")
        sim = self.sim
        # Message(...) inlined, without copying the body, one statement per
        # field: this runs once per message, and a tuple swap would build and
        # unpack a tuple.
        msg = _new_message(_Fields)
        msg.src = src
        msg.dst = dst
        msg.kind = kind
        self._last_id = msg.id = self._last_id + 1
        msg.__dict__ = body if type(body) is dict else dict(body)
        msg.__class__ = Message
        sent = self.sent
        sent[kind] = sent.get(kind, 0) + 1
        if sim.tracing:
            sim.record("send", src, dst, kind, msg.id)
        link = self._fast
        if link is None:
            self._carry(msg, endpoint)
            return msg
        # The fast path: `_launch` and `sim.at` fused, with the same draw, the
        # same FIFO clamp and the same agenda key as the general path.
        now, fixed = sim.now, link.fixed
        if fixed is not None:
            arrival = now + fixed
            if self._fifo_horizon <= arrival:
                # A constant latency keeps a link FIFO by itself, and no message
                # still in flight is due later: nothing to clamp, nothing to
                # enter in the FIFO clocks (`_fold_fixed` does it if needed).
                sim._seq = seq = sim._seq + 1
                heappush(self._agenda, (arrival, seq, self._arrive_fixed,
                                        (msg, endpoint)))
                return msg
        else:
            arrival = now + link.latency()
        pair, fifo = (src, dst), self._fifo_clock
        last = fifo.get(pair, 0.0)
        if arrival < last:
            arrival = last
        if not now <= arrival < _INFINITY:       # the check `sim.at` makes
            raise ConfigError(f"time {arrival} is in the past or not finite "
                              f"(now is {now}): a latency draw must be >= 0")
        fifo[pair] = arrival
        if arrival > self._fifo_horizon:
            self._fifo_horizon = arrival
        sim._seq = seq = sim._seq + 1
        heappush(self._agenda, (arrival, seq, self._arrive_later, (msg, endpoint)))
        return msg

    def _carry(self, msg: Message, endpoint: Endpoint) -> None:
        """The general path of `send`: partitions, per-link overrides, loss,
        duplicates, reordering and the adversary."""
        src, dst, now = msg.src, msg.dst, self.sim.now
        if self._cut and (src, dst) in self._cut:
            self._drop(msg, "partition")
            return
        link = self._overrides.get((src, dst), self._default) if self._overrides \
            else self._default
        if link.loss and self._rng.random() < link.loss:
            self._drop(msg, "loss")
            return
        self._launch(msg, endpoint, link, now)
        if link.duplicate and self._rng.random() < link.duplicate:
            self.duplicated += 1
            self._launch(msg, endpoint, link, now)

    def _launch(self, msg: Message, endpoint: Endpoint, link: _Link,
                now: float) -> None:
        arrival = now + link.latency()
        if self._adversary is not None:
            arrival += self._adversary(msg)
        if link.reorder and self._rng.random() < link.reorder:
            arrival += link.latency()
        else:
            pair, fifo = (msg.src, msg.dst), self._fifo_clock
            last = fifo.get(pair, 0.0)
            if arrival < last:
                arrival = last
            fifo[pair] = arrival
            if arrival > self._fifo_horizon:
                self._fifo_horizon = arrival
        self._schedule_at(arrival, self._arrive_later, msg, endpoint)

    def _arrive(self, msg: Message, endpoint: Endpoint) -> None:
        if self._cut and (msg.src, msg.dst) in self._cut:
            self._drop(msg, "partition")
            return
        if not endpoint.alive:
            self._drop(msg, "down")
            return
        kind, delivered = msg.kind, self.delivered
        delivered[kind] = delivered.get(kind, 0) + 1
        if self.sim.tracing:
            self.sim.record("deliver", msg.src, msg.dst, kind, msg.id)
        endpoint.deliver(msg)

    def _drop(self, msg: Message, reason: str) -> None:
        self.dropped[msg.kind] = self.dropped.get(msg.kind, 0) + 1
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1
        self.sim.record("drop", msg.src, msg.dst, msg.kind, msg.id, reason)

    # -- journal ----------------------------------------------------------------
    @property
    def messages_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def messages_delivered(self) -> int:
        return sum(self.delivered.values())

    @property
    def messages_dropped(self) -> int:
        return sum(self.dropped.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """Per message kind: sent, delivered, dropped (kinds sorted by name)."""
        kinds = sorted(set(self.sent) | set(self.delivered) | set(self.dropped))
        return {k: {"sent": self.sent.get(k, 0), "delivered": self.delivered.get(k, 0),
                    "dropped": self.dropped.get(k, 0)} for k in kinds}

    def __repr__(self) -> str:
        return (f"Network({len(self._endpoints)} nodes, sent={self.messages_sent}, "
                f"delivered={self.messages_delivered}, "
                f"dropped={self.messages_dropped}, "
                f"{self.describe_cuts()})")
