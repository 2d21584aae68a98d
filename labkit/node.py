"""Nodes (handlers, timers, RPC, a disk that survives crashes) and the Cluster
facade with the fault verbs every topic shares."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from functools import partial
from heapq import heappush
from typing import Any

from labkit.errors import (
    ConfigError,
    RequestTimeout,
    UnknownMessage,
    checked,
    require_int,
    require_number,
)
from labkit.metrics import Result
from labkit.net import Message, NetConfig, Network
from labkit.sim import Future, Process, Simulator

_INFINITY = float("inf")


class _Timer:
    """One armed timer: `due` when, `seq` its place among events due then, and
    `queued` the time of its entry on the agenda (earlier than `due` once
    re-armed later; `fn` None once disarmed)."""

    __slots__ = ("name", "due", "seq", "fn", "args", "queued")

    def __init__(self, name: str, due: float, fn: Callable, args: tuple):
        self.name, self.due, self.fn, self.args = name, due, fn, args
        self.queued, self.seq = due, -1


class Node:
    """One process on the simulated network.

    A message of kind `k` is handled by the method `on_k(msg)`; a kind with no
    handler is a loud error. `disk` survives `kill`/`restart`; everything else is
    volatile and rebuilt by `reset()`. A killed node receives nothing, and its
    timers, pending calls and processes never fire.
    """

    def __init__(self, name: str, net: Network):
        self.name, self.net, self.sim = name, net, net.sim
        self.disk: dict[str, Any] = {}
        self.alive = True
        self._epoch = 0          # bumped on every crash; stale callbacks check it
        self._timers: dict[str, _Timer] = {}
        self._calls: dict[int, Future] = {}
        self._next_call = 0
        self._handlers: dict[str, Callable[[Message], None]] = {}
        self._called: set[str] = set()      # kinds this node has `call`ed
        net.attach(name, self)
        self.reset()

    def reset(self) -> None:
        """Set up volatile state; runs at creation and after every restart.

        Subclasses override it (and may arm timers here); `disk` is already there.
        """

    @property
    def peers(self) -> list[str]:
        """Every other node on the network, in attachment order."""
        return [n for n in self.net.names if n != self.name]

    # -- messages ---------------------------------------------------------------
    def send(self, dst: str, kind: str, **body: Any) -> Message:
        """Send one message; the network may delay, drop or duplicate it."""
        return self.net.send(self.name, dst, kind, body)

    def reply(self, msg: Message, **body: Any) -> Message:
        """Answer `msg` with a `<kind>_ok` message (matched to the caller's `call`)."""
        return self.send(msg.src, msg.kind + "_ok", rpc=msg.__dict__.get("rpc"), **body)

    def call(self, dst: str, kind: str, timeout: float, **body: Any) -> Future:
        """Send a request and return a Future of the reply message; it fails with
        `RequestTimeout` if no reply arrives within `timeout` seconds (the request
        may still have been carried out)."""
        timeout = require_number("timeout", timeout, positive=True)
        if kind not in self._called:         # its replies now may answer a call
            self._called.add(kind)
            self._handlers.pop(kind + "_ok", None)
        rpc = self._next_call
        self._next_call += 1
        reply = self._calls[rpc] = Future()
        self.send(dst, kind, rpc=rpc, **body)
        self.sim.schedule(timeout, self._expire, rpc, self._epoch, dst, kind, timeout)
        return reply

    def _expire(self, rpc: int, epoch: int, dst: str, kind: str,
                timeout: float) -> None:
        pending = self._calls.pop(rpc, None)
        if pending is not None and epoch == self._epoch:
            pending.fail(RequestTimeout(
                f"{self.name}: no reply to {kind!r} from {dst} within {timeout:g}s"))

    def deliver(self, msg: Message) -> None:
        """Hand an arriving message to its handler (called by the network)."""
        handler = self._handlers.get(msg.kind)
        if handler is None:
            handler = self._handler(msg)
        handler(msg)

    def _handler(self, msg: Message) -> Callable[[Message], None]:
        """What `deliver` calls for messages of this kind, found once per kind:
        the method `on_<kind>`, or, for a `<kind>_ok` of a kind this node has
        `call`ed, a check for an answer to one of its calls first (so that
        requests, and the answers of protocols that match them by hand, as
        Raft's do, never pay for that check; `call` drops the cached handler
        of its answers the first time it calls a kind)."""
        kind = msg.kind
        handler = getattr(self, "on_" + kind, None)
        if kind.endswith("_ok") and kind[:-3] in self._called:
            handler = partial(self._answered, handler)
        elif handler is None:
            self._unknown(msg)
        self._handlers[kind] = handler
        return handler

    def _answered(self, handler: Callable[[Message], None] | None,
                  msg: Message) -> None:
        # A `<kind>_ok` carrying an rpc number answers one of our calls.
        rpc = msg.__dict__.get("rpc")   # the fields (faster than .body)
        if rpc is not None:
            pending = self._calls.pop(rpc, None)
            if pending is not None:
                pending.resolve(msg)
            return                       # a reply to a call that already timed out
        if handler is None:
            self._unknown(msg)
        handler(msg)

    def _unknown(self, msg: Message) -> None:
        raise UnknownMessage(
            f"{type(self).__name__} {self.name} got a {msg.kind!r} message from "
            f"{msg.src} but has no on_{msg.kind} handler")

    # -- time -------------------------------------------------------------------
    def set_timer(self, name: str, delay: float, fn: Callable, *args: Any) -> None:
        """Call fn(*args) after `delay` seconds, replacing any timer of that name."""
        sim = self.sim
        if not 0.0 <= delay < _INFINITY:
            raise ConfigError(f"delay must be finite and >= 0 seconds, got {delay}")
        due, timer = sim.now + delay, self._timers.get(name)
        if timer is not None and timer.queued < due:
            # Re-armed later (as an election timer is by every heartbeat): its
            # entry on the agenda pops first and re-queues itself under the key
            # a cancel and a fresh schedule would give, (due, seq), without
            # the heap work of a new entry per re-arm.
            sim._seq = seq = sim._seq + 1
            timer.due, timer.seq, timer.fn, timer.args = due, seq, fn, args
            return
        if timer is not None:
            timer.fn = None                  # its entry will pop as a no-op
        timer = self._timers[name] = _Timer(name, due, fn, args)
        timer.seq = sim.at(due, self._fire, timer, self._epoch)

    def cancel_timer(self, name: str) -> None:
        """Disarm the named timer if it is set."""
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.fn = None

    def has_timer(self, name: str) -> bool:
        return name in self._timers

    def _fire(self, timer: _Timer, epoch: int) -> None:
        sim = self.sim
        if timer.fn is not None and timer.due > sim.now:   # re-armed later
            timer.queued = timer.due
            heappush(sim._agenda, (timer.due, timer.seq, self._fire, (timer, epoch)))
            sim.events_processed -= 1        # a re-queue is no event
            return
        if self._timers.get(timer.name) is timer:
            del self._timers[timer.name]
        if timer.fn is None or epoch != self._epoch or not self.alive:
            sim.events_processed -= 1        # nor is a disarmed timer
            return
        if sim.tracing:                 # skip the call when there is no trace
            sim.record("timer", self.name, self.name, timer.name)
        timer.fn(*timer.args)

    def spawn(self, gen: Generator) -> Process:
        """Run a generator process that dies with this node (see Simulator.spawn)."""
        epoch = self._epoch
        return self.sim.spawn(gen, guard=lambda: self.alive and self._epoch == epoch)

    # -- faults -----------------------------------------------------------------
    def kill(self) -> None:
        """Crash: stop receiving, lose timers, calls and volatile state; keep disk."""
        if not self.alive:
            return
        self.alive = False
        self._epoch += 1
        for timer in self._timers.values():
            timer.fn = None
        self._timers.clear()
        self._calls.clear()
        self.sim.record("fault", self.name, self.name, "kill")

    def restart(self) -> None:
        """Recover from a crash: volatile state rebuilt by `reset()` from the disk."""
        if self.alive:
            return
        self.alive = True
        self.sim.record("fault", self.name, self.name, "restart")
        self.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {'up' if self.alive else 'down'})"


class Cluster:
    """Named nodes on one network, with the fault verbs every topic shares.

    `node_factory(name, network)` builds each node; subclasses (RaftCluster, ...)
    pass their own. Verbs validate names and are idempotent (killing a dead node
    does nothing), so a widget can press any button in any order.
    """

    @checked
    def __init__(self, size: int | None = 3, *, seed: int = 0,
                 net: NetConfig | None = None, names: Sequence[str] | None = None,
                 node_factory: Callable[[str, Network], Node] = Node,
                 trace: bool = True):
        if net is not None and not isinstance(net, NetConfig):
            raise ConfigError(f"net must be a NetConfig, got {net!r}")
        self.sim = Simulator(seed, trace=trace)
        self.network = Network(self.sim, net)
        if names is None:
            size = require_int("size", size, minimum=1)
            names = [f"n{i}" for i in range(1, size + 1)]
        elif isinstance(names, str) or not names:
            raise ConfigError(f"names must be a non-empty list of str, got {names!r}")
        self.nodes: dict[str, Node] = {}
        for name in names:
            self.nodes[name] = node_factory(name, self.network)

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    @property
    def now(self) -> float:
        return self.sim.now

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown node {name!r}; nodes are {self.names}") from None

    def is_up(self, name: str) -> bool:
        return self.node(name).alive

    def up(self) -> list[str]:
        """Names of the nodes that are running."""
        return [n for n, node in self.nodes.items() if node.alive]

    def run(self, seconds: float) -> None:
        """Advance simulated time by `seconds`."""
        self.sim.run(require_number("seconds", seconds, minimum=0.0))

    def kill(self, name: str) -> None:
        """Crash a node (its disk survives)."""
        self.node(name).kill()

    def restart(self, name: str) -> None:
        """Bring a crashed node back; it rebuilds volatile state from its disk."""
        self.node(name).restart()

    def disconnect(self, name: str) -> None:
        """Isolate a node (up or down) from every other node."""
        self.network.isolate(self.node(name).name)
        self.sim.record("fault", name, name, "disconnect")

    def connect(self, name: str) -> None:
        """Undo `disconnect(name)`."""
        self.network.rejoin(self.node(name).name)
        self.sim.record("fault", name, name, "connect")

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the nodes into groups that cannot talk to each other."""
        self.network.partition(*groups)
        self.sim.record("fault", "*", "*", "partition",
                        note=self.network.describe_cuts())

    def heal(self) -> None:
        """Remove every partition and disconnection."""
        self.network.heal()
        self.sim.record("fault", "*", "*", "heal")

    @property
    def messages_sent(self) -> int:
        return self.network.messages_sent

    def result(self, scenario: str | None = None, **params: Any) -> Result:
        """Freeze the run so far: metrics, message counts and the trace."""
        data = {"messages": self.network.counts(), "up": self.up(),
                "cuts": self.network.describe_cuts()}
        return self.sim.result(scenario or type(self).__name__, params, data)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.nodes)} nodes, up={self.up()}, "
                f"t={self.now:g}s, {self.network.describe_cuts()})")
