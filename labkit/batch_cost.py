"""How long batch work takes: the cost model that MapReduce (`labkit.mapreduce`)
and the dataflow engine (`labkit.dataflow`, which adds a memory rate) share,
so that notebook 10 can put the two engines side by side on equal terms."""

from __future__ import annotations

from dataclasses import dataclass

from labkit.errors import require_number


@dataclass(frozen=True)
class Cost:
    """How long work takes. Every byte of the real data counts as `scale`
    bytes, moved at these rates in bytes per second per worker (2004-era
    disks and a 100 Mbit/s network by default); a MapReduce straggler divides
    its disk and CPU rates by its slowdown. A task also pays `startup` seconds."""

    scale: float = 1e5
    disk: float = 30e6
    network: float = 12.5e6
    cpu: float = 40e6
    startup: float = 1.0

    def __post_init__(self):
        for name in ("scale", "disk", "network", "cpu"):
            require_number(name, getattr(self, name), positive=True)
        require_number("startup", self.startup, minimum=0.0)

    def seconds(self, nbytes: int, rate: float) -> float:
        """Time to move or process `nbytes` real bytes at `rate` scaled bytes/s."""
        return nbytes * self.scale / rate
