"""Load balancing (负载均衡): a balancer spreading requests over FIFO servers.

Requests arrive as a Poisson stream; a policy picks one live server for each;
every server serves its queue first come first served at its own speed. A
policy is a small class with one decision method, `choose(view)`, so an
exercise can plug in its own. `simulate` runs one experiment and returns a
`BalancingResult` (latency histogram, per-server utilisation and queue-length
samples, failed requests).

Two engines give the same answer on the same seed. The general one puts every
arrival, departure, fault and load report on a `Simulator` agenda. The fast
one, for pure queueing runs (no faults, fresh load information), skips the
agenda: with FIFO servers a request's finish time is known when it arrives
(Lindley's recursion), so only departures need a small heap.

Where each part lives: `policies` (the `View` a policy reads, `Policy` and
the built-in policies), `ring` (the balancer's hash ring, key movement and
imbalance), `engines` (the event engine and the fast engine), `result`
(`BalancingResult`) and `simulation` (`simulate`: check the inputs, pick an
engine).
"""

from .policies import (
    POLICIES,
    ConsistentHash,
    LeastLoadedStale,
    LeastOutstanding,
    Policy,
    PowerOfD,
    Random,
    RoundRobin,
    View,
    WeightedRandom,
    WeightedRoundRobin,
    make_policy,
)
from .result import BalancingResult
from .ring import HashRing, imbalance, key_movement
from .simulation import simulate

__all__ = [
    "POLICIES", "BalancingResult", "ConsistentHash", "HashRing", "LeastLoadedStale",
    "LeastOutstanding", "Policy", "PowerOfD", "Random", "RoundRobin", "View",
    "WeightedRandom", "WeightedRoundRobin", "imbalance", "key_movement",
    "make_policy", "simulate",
]
