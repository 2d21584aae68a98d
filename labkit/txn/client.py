"""The system's users. `TxnClient` submits transfers and learns their outcomes
(asking its coordinator for one it missed), keeping a `TxnRecord` of each; the
`Auditor` reads every balance under short leases, to see the money in flight.
`commit_rate` turns records into commits per second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from labkit.errors import ConfigError, require_number
from labkit.metrics import TimeSeries
from labkit.net import Message, Network
from labkit.node import Node
from labkit.txn.base import ABORTED, COMMITTED, PENDING, World


@dataclasses.dataclass
class TxnRecord:
    """What a client knows of one transaction it submitted."""

    txn: str
    legs: tuple
    submitted: float
    outcome: str | None = None          # committed / aborted, once told
    finished: float | None = None


class TxnClient(Node):
    """Submits transactions and learns their outcomes (it never crashes). The
    coordinator tells it once; that message may be lost, or never sent by a
    coordinator that crashed, so until it knows, the client asks the
    coordinator by transaction id every `ask_every` seconds."""

    def __init__(self, name: str, net: Network, ask_every: float):
        self.ask_every = ask_every      # set first: Node.__init__ calls reset()
        super().__init__(name, net)

    def reset(self) -> None:
        self.records: dict[str, TxnRecord] = {}

    def submit(self, legs: tuple, entry: str, coordinator: str) -> str:
        """Send `begin` to `entry`; ask `coordinator` later if not told."""
        txn = f"t{len(self.records) + 1}"
        self.records[txn] = TxnRecord(txn, legs, self.sim.now)
        self.sim.metrics.counter("txn.submitted").inc()
        self.send(entry, "begin", txn=txn, legs=legs)
        self.set_timer(f"ask:{txn}", self.ask_every, self.ask, txn, coordinator)
        return txn

    def ask(self, txn: str, coordinator: str) -> None:
        self.sim.metrics.counter("txn.asks").inc()
        self.send(coordinator, "ask", txn=txn)
        self.set_timer(f"ask:{txn}", self.ask_every, self.ask, txn, coordinator)

    def on_outcome(self, msg: Message) -> None:
        self.learn(msg.txn, COMMITTED if msg.committed else ABORTED)

    def on_ask_ok(self, msg: Message) -> None:
        if msg.outcome != PENDING:          # still running: the timer asks again
            self.learn(msg.txn, msg.outcome)

    def learn(self, txn: str, outcome: str) -> None:
        record = self.records.get(txn)
        if record is None or record.outcome is not None:
            return                                  # told twice: the first wins
        self.cancel_timer(f"ask:{txn}")
        record.outcome, record.finished = outcome, self.sim.now
        self.sim.metrics.counter(f"txn.{outcome}").inc()
        if outcome == COMMITTED:
            self.sim.metrics.histogram("txn.latency").add(self.sim.now -
                                                          record.submitted)


class Auditor(Node):
    """Every `every` seconds, reads every participant's balances under a short
    shared lease and records the total it saw, as any client could. It keeps a
    read only if all the leases overlapped (every answer came back within one
    lease), so what it saw is one consistent moment of the committed state."""

    def __init__(self, name: str, net: Network, world: World, every: float,
                 expected: int):
        self.world, self.every, self.expected = world, every, expected
        super().__init__(name, net)

    def reset(self) -> None:
        self.round, self.started, self.failed = 0, 0.0, False
        self.replies: dict[str, int] = {}
        self.set_timer("audit", self.every, self.audit)

    def audit(self) -> None:
        self.round += 1
        self.started, self.failed, self.replies = self.sim.now, False, {}
        for p in self.world.participants:
            self.send(p, "read", round=self.round)
        self.set_timer("audit", self.every, self.audit)

    def on_read_ok(self, msg: Message) -> None:
        if msg.round != self.round or self.failed:
            return
        metrics = self.sim.metrics
        if msg.total is None:
            self.failed = True
            metrics.counter("audit.busy").inc()
            return
        self.replies[msg.src] = msg.total
        if len(self.replies) < len(self.world.participants):
            return
        if self.sim.now - self.started >= self.world.config.read_lease:
            metrics.counter("audit.late").inc()     # leases may not have overlapped
            return
        total = sum(self.replies.values())
        metrics.series("audit.total").add(self.sim.now, total)
        metrics.counter("audit.reads").inc()
        if total != self.expected:
            metrics.counter("audit.anomalies").inc()


def commit_rate(records: Iterable[tuple], *, end: float, width: float = 0.25,
                touching: str | None = None, avoiding: str | None = None):
    """Commits per second in consecutive bins `width` seconds wide up to `end`, by
    when the client heard of them, as a TimeSeries stamped at each bin's start;
    only transactions with a leg on account `touching` / none on `avoiding`.
    `records` are TxnRecords or their tuples (as in a Result's data)."""
    width = require_number("width", width, positive=True)
    bins = [0] * max(1, round(require_number("end", end, positive=True) / width))
    if isinstance(records, str | bytes) or not isinstance(records, Iterable):
        raise ConfigError(f"records must be a list of TxnRecords (or their "
                          f"tuples), got {records!r}"[:200])
    for record in records:
        if isinstance(record, TxnRecord):
            record = dataclasses.astuple(record)
        if not isinstance(record, tuple | list) or len(record) != 5:
            raise ConfigError(f"each record must be a TxnRecord or its 5-tuple "
                              f"(txn, legs, started, outcome, finished), got "
                              f"{record!r}"[:200])
        _, legs, _, outcome, finished = record
        accounts = [a for a, _ in legs]
        if outcome != COMMITTED or finished >= len(bins) * width \
                or (touching is not None and touching not in accounts) \
                or (avoiding is not None and avoiding in accounts):
            continue
        bins[int(finished / width)] += 1
    series = TimeSeries("commits per second")
    for i, n in enumerate(bins):
        series.add(round(i * width, 9), n / width)
    return series
