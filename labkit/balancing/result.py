"""What one load-balancing run returns: `BalancingResult`, a `Result` with
named views of its latency histogram and per-server data."""

from __future__ import annotations

import numpy as np

from labkit.metrics import Histogram, Result


class BalancingResult(Result):
    """One load-balancing run: its inputs, latency histogram and per-server data.

    Latencies (seconds from arrival to finish) count completed requests only;
    a request fails if its server is killed while holding it, or if no live
    server will take it.
    """

    @property
    def latency(self) -> Histogram:
        return self.metrics["latency"]

    @property
    def completed(self) -> int:
        return self.metrics["completed"].value

    @property
    def failed(self) -> int:
        failed = self.metrics["failed.killed"], self.metrics["failed.refused"]
        return sum(counter.value for counter in failed)

    @property
    def utilisation(self) -> np.ndarray:
        """Fraction of the run each server spent serving."""
        return self.data["utilisation"]

    @property
    def served(self) -> np.ndarray:
        """Requests each server completed."""
        return self.data["served"]

    @property
    def queue_lengths(self) -> np.ndarray:
        """Requests held by each server (columns) at each of `sample_times` (rows)."""
        return self.data["queue_lengths"]

    @property
    def sample_times(self) -> np.ndarray:
        return self.data["sample_times"]

    @property
    def offered_load(self) -> float:
        """Arrival rate over the fleet's capacity; >= 1 means overload."""
        return self.data["offered_load"]

    @property
    def overloaded(self) -> bool:
        return self.offered_load >= 1.0

    def row(self) -> dict[str, float]:
        """Latency summary (seconds), failures and the busiest server's
        utilisation: one run as one row of a table."""
        summary = self.latency.summary()
        return {"mean": summary["mean"], "p50": summary["p50"], "p99": summary["p99"],
                "p99.9": summary["p99.9"], "failed": self.failed,
                "max utilisation": float(self.utilisation.max())}

    def __repr__(self) -> str:
        return f"BalancingResult({self.data['headline']})"
