"""The cost of commit: Gray & Lamport's normal-case counts of messages and
message delays (`gray_lamport`), and the same measured from one failure-free
commit on the simulated network (`normal_case`).
"""

from __future__ import annotations

from labkit.errors import ConfigError, checked, require_int, require_number
from labkit.net import NetConfig
from labkit.txn.base import (
    COMMITTED,
    account_name,
    require_acceptors,
    require_coordinator,
)
from labkit.txn.cluster import TxnCluster

#: Message kinds Gray & Lamport count (acknowledgements that only let a
#: coordinator forget are off the critical path and not counted).
COUNTED_KINDS = {"2pc": ("begin_commit", "prepare", "vote", "commit", "abort"),
                 "paxos_commit": ("prepare", "phase2a", "phase2b", "commit",
                                  "abort")}


def gray_lamport(protocol: str, participants: int, *, coordinator: str = "colocated",
                 failures: int = 1) -> dict[str, int]:
    """Normal-case cost of committing one transaction of N participants, from
    Gray & Lamport, "Consensus on Transaction Commit" (2006): messages and
    message delays. 2PC: 3N - 1 messages and 4 delays with a separate
    coordinator, 3N - 3 and 3 co-located. Paxos Commit, co-located (its
    normal-case pattern: prepare to N - 1, phase 2a from N - 1 to F + 1
    acceptors, one bundled phase 2b from each of F remote acceptors, commit to
    N - 1): N(F + 3) - 3 messages (17 at N = 5, F = 1) and one delay more;
    with F = 0 its one acceptor sits on the leader's node, and it is 2PC
    co-located: 3N - 3 messages and 3 delays."""
    if not isinstance(protocol, str) or protocol not in COUNTED_KINDS:
        raise ConfigError(f"Gray & Lamport's counts cover {tuple(COUNTED_KINDS)}, "
                          f"got {protocol!r}")
    require_coordinator(protocol, coordinator)
    n = require_int("participants", participants, minimum=2)
    f = require_int("failures", failures, minimum=0)
    require_acceptors(protocol, n, f)
    if protocol == "paxos_commit":
        return {"messages": n * (f + 3) - 3, "delays": 4 if f else 3}
    if coordinator == "separate":
        return {"messages": 3 * n - 1, "delays": 4}
    return {"messages": 3 * n - 3, "delays": 3}


@checked
def normal_case(protocol: str = "2pc", participants: int = 5, *,
                coordinator: str = "colocated", failures: int = 1,
                latency: float = 0.010, fsync: float = 0.005,
                seed: int = 0) -> dict[str, float]:
    """Measure one failure-free commit across `participants` nodes (one leg on
    each) from the network journal: messages of the kinds Gray & Lamport count,
    acknowledgements, message delays and forced-write delays on the path to
    the decision, forced writes before the decision and in all.

    Runs the commit twice on a constant-latency network: without disk time
    (the decision's arrival at the last participant / latency = message
    delays) and with `fsync` seconds per forced write (the extra time / fsync
    = write delays)."""
    if protocol not in COUNTED_KINDS:
        raise ConfigError(f"normal_case measures {tuple(COUNTED_KINDS)}, got "
                          f"{protocol!r}")
    latency = require_number("latency", latency, positive=True)
    fsync = require_number("fsync", fsync, positive=True)
    runs = [_one_commit(protocol, participants, coordinator, failures, latency,
                        disk, seed) for disk in (0.0, fsync)]
    (plain, sent, _, _), (slow, _, forced, before) = runs     # disk time orders writes
    delays = plain / latency
    return {"messages": sum(sent.get(k, 0) for k in COUNTED_KINDS[protocol]),
            "acks": sent.get("ack", 0),
            "delays": round(delays, 6),
            "write delays": round((slow - plain) / fsync, 6),
            "forced writes before decision": before,
            "forced writes": forced}


def _one_commit(protocol: str, participants: int, coordinator: str, failures: int,
                latency: float, fsync: float, seed: int) -> tuple:
    """(seconds from the coordinator's start to the decision reaching the last
    participant, messages sent by kind, forced writes, forced writes before
    the first decision message). The protocol's timeouts, and the client's
    wait before it asks for the outcome (which a coordinator that has not yet
    heard of the transaction answers by aborting it), are set far beyond the
    commit's own time (a few message delays and forced writes), so that none
    fires in a failure-free run, whatever the latency and fsync."""
    patience = 1.0 + 100 * (latency + fsync)
    c = TxnCluster(protocol, participants, seed=seed, coordinator=coordinator,
                   failures=failures, fsync=fsync, timeout=patience,
                   ask_every=patience, net=NetConfig(latency=latency))
    legs = [(account_name("n1", 0), 1 - participants)] + \
        [(account_name(f"n{i}", 0), 1) for i in range(2, participants + 1)]
    txn = c.submit(legs)
    c.run(patience)
    if c.outcome(txn) != COMMITTED:
        raise RuntimeError(f"the failure-free commit did not commit: "
                           f"{c.outcome(txn)}")
    trace = c.sim.trace
    start = next(r.time for r in trace if r.event == "deliver" and r.kind == "begin")
    decided = [r.time for r in trace if r.kind == "commit"]
    logs = [r.time for r in trace if r.event == "log"]
    return (max(decided) - start, dict(c.network.sent), len(logs),
            sum(t <= min(decided) for t in logs))
