"""The janitor: the background process that re-replicates chunks after a crash,
rebalances them when servers join or come back, and collects garbage.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial

from labkit.errors import Unavailable
from labkit.sim import Future, settled
from labkit.storage.gateway import Agent
from labkit.storage.metadata import Collect


class Janitor(Agent):
    """Keeps every referenced chunk on its `replication` preference-list servers.

    Every `repair_interval` it asks each chunk server for its inventory; a
    server that does not answer counts as down. A chunk whose target servers
    (the first `replication` live ones on its preference list) lack it is copied
    there from a holder: re-replication if it had fewer than `replication` live
    copies, rebalancing if it only sat on the wrong servers (a server joined or
    came back). Once every target holds it, copies elsewhere are dropped. Every
    `gc_interval` it collects garbage (see `FileSystem`).
    """

    def reset(self) -> None:
        self.spawn(self.loop())

    def loop(self) -> Generator:
        fs = self.fs
        last_gc = 0.0
        while True:
            yield fs.repair_interval
            yield from self.repair()
            if fs.gc_interval is not None and self.sim.now - last_gc >= fs.gc_interval:
                last_gc = self.sim.now
                yield from self.collect()

    def repair(self) -> Generator:
        fs = self.fs
        asked = {s: self.call(s, "inventory", fs.rpc_timeout) for s in fs.servers}
        yield settled(list(asked.values()))
        holding = {s: set(f.value.chunks) for s, f in asked.items() if not f.failed}
        live = [s for s in fs.servers if s in holding]
        metrics = self.sim.metrics
        # Fold in what the log applied since anyone last looked: an upload that
        # committed after its client gave up is otherwise never repaired (with
        # no garbage collection nor calls, nothing else catches `metadata` up).
        fs.catch_up()
        under = 0
        for chunk, size in fs.metadata.chunk_sizes(fs.chunk_size).items():
            holders = [s for s in live if chunk in holding[s]]
            under += len(holders) < fs.replication
            if not holders:
                continue                   # every copy is on a server that is down
            targets = fs.ring.owners(chunk, fs.replication, live)
            missing = [t for t in targets if chunk not in holding[t]]
            why = "repair" if len(holders) < fs.replication else "rebalance"
            for i, target in enumerate(missing):
                copy = self.call(holders[i % len(holders)], "copy",
                                 3 * fs.rpc_timeout, chunk=chunk, to=target,
                                 patience=fs.rpc_timeout)
                copy.add_done_callback(partial(self._copied, why, size))
            if not missing:
                for extra in holders:
                    if extra not in targets:
                        self.send(extra, "drop", chunk=chunk)
        metrics.series("under_replicated").add(self.sim.now, under)

    def _copied(self, why: str, size: int, copy: Future) -> None:
        if not copy.failed and copy.value.ok:
            self.sim.metrics.counter(f"bytes.{why}").inc(size)

    def collect(self) -> Generator:
        """Garbage collection in two steps. First a Collect command goes through
        the log: it starts epoch e and answers the chunks referenced at that
        point. Then every server deletes the chunks not in that set whose last
        write came before epoch e. An upload commits only in the epoch in which
        it wrote its chunks, so a chunk it still needs is either referenced by
        then or was written in epoch e or later."""
        fs = self.fs
        try:
            epoch, live = yield from self.commit(Collect(fs.new_op()),
                                                 self.sim.now + fs.timeout)
        except Unavailable:
            return                               # try again next time
        for server in fs.servers:
            self.send(server, "sweep", live=live, below=epoch)
        self.sim.metrics.counter("gc.rounds").inc()
