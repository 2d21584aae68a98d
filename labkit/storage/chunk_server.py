"""The chunk servers s1, s2, ...: each keeps chunks on its disk, tagged with the
garbage-collection epoch of their latest write, and answers stores, fetches,
inventories, copies, drops and sweeps.
"""

from __future__ import annotations

from collections.abc import Generator

from labkit.errors import RequestTimeout
from labkit.net import Message
from labkit.node import Node
from labkit.storage.chunks import chunk_id


class ChunkServer(Node):
    """Keeps chunks on its disk: name -> (bytes, epoch of the latest write).

    The epoch tag lets garbage collection spare a chunk an upload has just
    written again (see `FileSystem`). Every request counts toward its load.
    """

    def reset(self) -> None:
        self.disk.setdefault("chunks", {})
        self.load = self.sim.metrics.counter(f"requests.{self.name}")

    def on_store(self, msg: Message) -> None:
        self.load.inc()
        ok = chunk_id(msg.data) == msg.chunk      # never store bytes under a wrong name
        if ok:
            chunks = self.disk["chunks"]
            old = chunks.get(msg.chunk)
            chunks[msg.chunk] = (msg.data, msg.tag if old is None
                                 else max(msg.tag, old[1]))
        self.reply(msg, ok=ok)

    def on_fetch(self, msg: Message) -> None:
        self.load.inc()
        entry = self.disk["chunks"].get(msg.chunk)
        self.reply(msg, data=None if entry is None else entry[0])

    def on_inventory(self, msg: Message) -> None:
        self.reply(msg, chunks=tuple(sorted(self.disk["chunks"])))

    def on_copy(self, msg: Message) -> None:
        """Send one of our chunks to another server; answer once it is stored."""
        self.spawn(self._copy(msg))

    def _copy(self, msg: Message) -> Generator:
        entry = self.disk["chunks"].get(msg.chunk)
        ok = False
        if entry is not None:
            try:
                answer = yield self.call(msg.to, "store", msg.patience, chunk=msg.chunk,
                                         data=entry[0], tag=entry[1])
                ok = answer.ok
            except RequestTimeout:
                pass
        self.reply(msg, ok=ok)

    def on_drop(self, msg: Message) -> None:
        self.disk["chunks"].pop(msg.chunk, None)

    def on_sweep(self, msg: Message) -> None:
        """Delete chunks no file references, unless written in epoch `below` or
        later (an upload in progress may be about to reference them)."""
        chunks = self.disk["chunks"]
        for name in [n for n, (_, tag) in chunks.items()
                     if tag < msg.below and n not in msg.live]:
            del chunks[name]
