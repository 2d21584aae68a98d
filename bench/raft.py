"""Benchmark of labkit.raft: CPU per delivered message of a 5-node cluster that
runs 60 simulated seconds with 50 ms heartbeats and commits 1,000 commands.

Run: `.venv/bin/python bench/raft.py` (or `make bench`); `--repeat 3` on a busy
machine. The bare network's cost per message (bench/simcore.py's ping cluster)
is printed beside it, so the share that is Raft's own work is visible.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))      # bench/simcore.py

from simcore import arguments, ping_cost  # noqa: E402

from labkit import NetConfig  # noqa: E402
from labkit.raft import RaftCluster  # noqa: E402

NODES, SECONDS, HEARTBEAT, COMMANDS = 5, 60.0, 0.050, 1000
LATENCY = 0.005                                    # one way, constant
SEED = 1
TARGET_US, TARGET_CPU = 3.0, 2.0               # issue 20


def raft_run(trace: bool) -> tuple[RaftCluster, float]:
    """The benchmark cluster after its run, and the CPU seconds `run` took.
    Commands are submitted by events on the agenda, one every 60 ms from t = 1 s
    (after the first election), so only the simulation itself is timed."""
    raft = RaftCluster(NODES, seed=SEED, heartbeat=HEARTBEAT, trace=trace,
                       net=NetConfig(latency=LATENCY))
    gap = (SECONDS - 2.0) / COMMANDS
    for i in range(COMMANDS):
        raft.sim.at(1.0 + i * gap, raft.submit, i)
    start = time.process_time()
    raft.run(SECONDS)
    return raft, time.process_time() - start


def measure(trace: bool, repeat: int) -> dict:
    """The least-CPU run of `repeat`, checked: every command applied everywhere
    and Raft's invariants intact (the checks are not timed)."""
    best = math.inf
    for _ in range(repeat):
        raft, cpu = raft_run(trace)
        best = min(best, cpu)
    raft.check()
    applied = {tuple(raft.applied(n)) for n in raft.names}
    if applied != {tuple(range(COMMANDS))}:
        raise RuntimeError("not every node applied the 1,000 commands in order")
    delivered = raft.network.messages_delivered
    return {"cpu": best, "delivered": delivered, "us_per_msg": best / delivered * 1e6,
            "elections": len(raft.elections()), "counts": raft.network.counts()}


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv, __doc__)
    print(f"labkit Raft benchmark  (Python {platform.python_version()}, seed {SEED})")
    print(f"{NODES} nodes, {SECONDS:g} simulated s, heartbeat {HEARTBEAT * 1e3:g} ms, "
          f"{COMMANDS:,} commands, latency {LATENCY * 1e3:g} ms")
    print(f"{'tracing':<10}{'CPU s':>8}{'delivered':>11}{'CPU us/msg':>12}"
          f"{'elections':>11}")
    runs = {trace: measure(trace, args.repeat) for trace in (True, False)}
    for trace, r in runs.items():
        print(f"{'on' if trace else 'off':<10}{r['cpu']:>8.3f}{r['delivered']:>11,}"
              f"{r['us_per_msg']:>12.2f}{r['elections']:>11}")
    kinds = runs[False]["counts"]
    print("messages by kind (sent): " + ", ".join(
        f"{k} {v['sent']:,}" for k, v in kinds.items()))
    ping = ping_cost(runs[False]["delivered"], trace=False, repeat=args.repeat)
    off = runs[False]
    print(f"bare network (ping cluster, same message count): "
          f"{ping['us_per_msg']:.2f} us/msg; Raft's own work: "
          f"{off['us_per_msg'] - ping['us_per_msg']:.2f} us/msg")
    print(f"tracing off: whole run {off['cpu']:.3f} CPU s, goal < {TARGET_CPU:g} s: "
          f"{'met' if off['cpu'] < TARGET_CPU else 'NOT met'}; "
          f"{off['us_per_msg']:.2f} us per message, goal <= {TARGET_US:g} us: "
          f"{'met' if off['us_per_msg'] <= TARGET_US else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
