"""The storage lab: write a Dynamo-style quorum client, run it in
`QuorumKV`, let the grader break it.

A student derives `MyQuorum` from `QuorumSkeleton` and fills in its methods:
`put` (write to a key's N replicas, return after W acks), `get` (ask the N
replicas, return the newest of R answers), `newest` (the answer with the
highest version) and `repair` (read repair: bring replicas that answered an
older version up to the newest). `lk.storage.QuorumKV(5, n=3, r=2, w=2,
seed=1, coordinator=MyQuorum)` runs it with the fault verbs. Grading:

  quorum  read_your_writes, concurrent_writes, replica_crashes,
          stale_owner_answers_first, partitioned_replica, write_all_read_one,
          unreliable_network, no_quorum, two_stale_owners

The referee trusts nothing the client claims: it watches every put on the
wire and every ack that reaches the client (see `Referee`). A write may
return only after W distinct replicas acked it; a repair must carry the
newest answer's version and value. The scenarios check that a read begun
after a write was acknowledged sees it or newer (R + W > N), that an
operation without a quorum fails with Unavailable (and one with a quorum
returns with its first W or R answers, not waiting for a replica that is
down), and that read repair brings every live replica to the newest version.

Where to read what: `base` (what an answer is given, and the referee),
`skeleton` (the methods to write), `reference` (the worked answer),
`scenarios` (the graded stories).
"""

from __future__ import annotations

from ..lab import Budget, Lab, Scenario
from . import scenarios as s
from .base import QuorumBase, Referee
from .reference import QuorumReference
from .skeleton import QuorumSkeleton

LAB = Lab(
    name="storage",
    title="Storage: Dynamo-style quorum reads and writes with read repair",
    parts=("quorum",),
    scenarios=tuple(Scenario(fn.__name__, "quorum", fn) for fn in (
        s.read_your_writes, s.concurrent_writes, s.replica_crashes,
        s.stale_owner_answers_first, s.partitioned_replica, s.write_all_read_one,
        s.unreliable_network, s.no_quorum, s.two_stale_owners)),
    skeleton=QuorumSkeleton,
    reference=QuorumReference,
    seeds=(1, 2, 3, 4, 5),
    budget=Budget(events=50_000, messages=50_000, cpu=5.0),
    window=0.2,
    hints={
        "write quorum": "Return from a write only after W distinct replicas "
        "acked it: with R + W > N every later read quorum then meets it",
        "read repair": "Send the newest answer's version and value together to "
        "the replicas that answered older versions",
        "versions": "Number every write with a new, higher version",
        "returned version": "Keep the version in a local variable: another put "
        "may move self.version on while this one waits for its acks",
    },
)

__all__ = ["LAB", "QuorumBase", "QuorumReference", "QuorumSkeleton", "Referee"]
