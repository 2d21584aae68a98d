"""Test helpers: a seeded random fault schedule and a small ping cluster.

`random_faults(cluster, duration, seed)` drives any cluster facade that has the
shared fault verbs (kill/restart/disconnect/connect/partition/heal), `now`,
`names` and `network.update`, so protocol tests can reuse it. Every exception
raised while it runs carries a note with the seed and the faults applied so
far, so a failure can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from labkit import Cluster, NetConfig, Node
from labkit.errors import require_int, require_number

#: Loss rates a "loss" fault picks from (0 restores a lossless network).
LOSS_LEVELS = (0.0, 0.01, 0.05, 0.2, 0.5)


@dataclass
class FaultLog:
    """The faults `random_faults` applied: (time, verb, argument) in order."""

    seed: int
    events: list[tuple[float, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        steps = "; ".join(f"t={t:.4f} {verb} {arg}".rstrip()
                          for t, verb, arg in self.events)
        return f"random_faults(seed={self.seed}): {steps or 'no faults'}"


def random_faults(cluster, duration: float, seed: int, *, mean_gap: float = 0.5,
                  max_down: int | None = None) -> FaultLog:
    """Run `cluster` for `duration` seconds of its time, applying one random fault
    (kill, restart, disconnect, connect, partition, heal or a loss change) after
    each exponential gap of mean `mean_gap` seconds. `max_down` caps how many
    nodes are dead at once. The schedule is a pure function of `seed` and the
    cluster's node names."""
    duration = require_number("duration", duration, minimum=0.0)
    mean_gap = require_number("mean_gap", mean_gap, positive=True)
    rng = random.Random(f"faults:{require_int('seed', seed)}")
    log = FaultLog(seed)
    end = cluster.now + duration
    down: list[str] = [n for n in cluster.names if not cluster.is_up(n)]
    isolated: list[str] = []
    try:
        while True:
            at = min(end, cluster.now + rng.expovariate(1.0 / mean_gap))
            cluster.run(at - cluster.now)
            if at >= end:
                return log
            verb, arg = _pick(rng, cluster.names, down, isolated, max_down)
            _apply(cluster, verb, arg, down, isolated)
            log.events.append((cluster.now, verb, arg))
    except BaseException as exc:
        exc.add_note(str(log))
        raise


def _pick(rng: random.Random, names: list[str], down: list[str],
          isolated: list[str], max_down: int | None) -> tuple[str, str]:
    """Choose a fault that changes something, and its argument."""
    live = [n for n in names if n not in down]
    options = ["loss", "heal"]
    if live and (max_down is None or len(down) < max_down):
        options.append("kill")
    if down:
        options.append("restart")
    if len(names) > 1:
        options += ["disconnect", "partition"]
    if isolated:
        options.append("connect")
    verb = rng.choice(options)
    if verb == "kill":
        return verb, rng.choice(live)
    if verb == "restart":
        return verb, rng.choice(down)
    if verb == "disconnect":
        return verb, rng.choice(names)
    if verb == "connect":
        return verb, rng.choice(isolated)
    if verb == "partition":
        shuffled = list(names)
        rng.shuffle(shuffled)
        cut = rng.randint(1, len(shuffled) - 1)
        return verb, ",".join(shuffled[:cut]) + "|" + ",".join(shuffled[cut:])
    if verb == "loss":
        return verb, str(rng.choice(LOSS_LEVELS))
    return verb, ""


def _apply(cluster, verb: str, arg: str, down: list[str],
           isolated: list[str]) -> None:
    if verb == "kill":
        cluster.kill(arg)
        down.append(arg)
    elif verb == "restart":
        cluster.restart(arg)
        down.remove(arg)
    elif verb == "disconnect":
        cluster.disconnect(arg)
        if arg not in isolated:
            isolated.append(arg)
    elif verb == "connect":
        cluster.connect(arg)
        isolated.remove(arg)
    elif verb == "partition":
        cluster.partition(*(group.split(",") for group in arg.split("|")))
    elif verb == "loss":
        cluster.network.update(loss=float(arg))
    else:
        cluster.heal()              # also undoes every disconnect
        isolated.clear()


class PingNode(Node):
    """Pings a random peer every 10-50 ms, alternately by `send` and by `call`,
    and runs a process that calls a peer every 100 ms; counts the answers."""

    def reset(self) -> None:
        self.disk["boots"] = self.disk.get("boots", 0) + 1
        self.pongs = self.timeouts = self.ticks = 0
        self.rng = self.sim.rng(f"ping:{self.name}")
        self.set_timer("tick", self.rng.uniform(0.01, 0.05), self.tick)
        self.spawn(self.poller())

    def tick(self) -> None:
        self.ticks += 1
        peer = self.rng.choice(self.peers)
        if self.ticks % 2:
            self.send(peer, "ping", n=self.ticks)
        else:
            self.call(peer, "ping", 0.05, n=self.ticks).add_done_callback(self.answer)
        self.set_timer("tick", self.rng.uniform(0.01, 0.05), self.tick)

    def answer(self, reply) -> None:
        if reply.failed:
            self.timeouts += 1
        else:
            self.pongs += 1

    def poller(self):
        while True:
            yield 0.1
            try:
                yield self.call(self.rng.choice(self.peers), "ping", 0.05, n=-1)
                self.pongs += 1
            except TimeoutError:
                self.timeouts += 1

    def on_ping(self, msg) -> None:
        self.reply(msg, n=msg.n)

    def on_ping_ok(self, msg) -> None:     # replies to plain `send` pings
        self.pongs += 1


def ping_cluster(seed: int, size: int = 5, **net) -> Cluster:
    """A cluster of PingNodes on a network with the given NetConfig knobs."""
    return Cluster(size, seed=seed, net=NetConfig(**net), node_factory=PingNode)
