"""The observer behind `RaftCluster.check()`: Raft's safety properties.

`Audit` watches every node of a cluster as a test harness would (nodes report
role changes, elections, commits, applied entries and installed snapshots to
it) and records whatever election safety, log matching, leader completeness or
state machine safety forbids; `check` raises `InvariantViolation` naming the
first broken rule. Kept apart from the node so the algorithm reads without its
referee, and the referee can be read as a list of the rules.
"""

from __future__ import annotations

from typing import Any

from labkit.errors import InvariantViolation
from labkit.node import Cluster
from labkit.raft.node import FOLLOWER, RaftNode


class Audit:
    """Watches every node of a cluster (as a test harness would) and records what
    Raft's safety properties forbid; `check` raises the first one found.

    roles: (time, node, role, term) each time a role changes, for timelines.
    committed: (term, command) of every index known committed, in order;
    committed_in: the term of the leader that committed each of them.
    """

    def __init__(self, cluster: Cluster):   # a RaftCluster
        self.cluster = cluster
        self.roles: list[tuple[float, str, str, int]] = []
        self.leaders: dict[int, str] = {}
        self.elections: list[tuple[float, str, int]] = []
        self.committed: list[tuple[int, Any]] = []
        self.committed_in: list[int] = []
        self.applied_by: dict[str, list[tuple[int, Any]]] = {}
        self.problems: list[str] = []

    @property
    def sim(self):
        return self.cluster.sim

    def problem(self, rule: str, text: str) -> None:
        self.problems.append(f"{rule}: {text} (t = {self.sim.now:.4f} s)")

    def role(self, name: str, role: str, term: int) -> None:
        self.roles.append((self.sim.now, name, role, term))
        if self.sim.tracing:
            self.sim.record("role", name, name, role, note=f"term {term}")

    def event(self, node: RaftNode, what: str, index: int) -> None:
        if self.sim.tracing:
            self.sim.record(what, node.name, node.name, what, note=f"index {index}")

    def restarted(self, node: RaftNode) -> None:
        applied = self.applied_by.setdefault(node.name, [])
        del applied[node.last_applied:]        # it will apply the rest again
        self.role(node.name, FOLLOWER, node.disk["current_term"])

    def became_leader(self, node: RaftNode) -> None:
        """Election safety and leader completeness, checked as the leader starts."""
        term = node.disk["current_term"]
        other = self.leaders.setdefault(term, node.name)
        if other != node.name:
            self.problem("election safety", f"{other} and {node.name} were both "
                         f"elected leader in term {term}")
        self.elections.append((self.sim.now, node.name, term))
        # Leader completeness: what leaders of earlier terms committed is in its
        # log. (With Pre-Vote, a candidate's late votes can still elect it in an
        # older term than one that has committed since: nothing it must hold.)
        # Indices base + 1 .. end, up to the first committed in this term or a
        # later one, compared as lists of terms (a leader is elected once per
        # trial of a long experiment, and its log grows by one entry a trial).
        base, log, since = node.disk["log_base"], node.disk["log"], self.committed_in
        end = next((i for i in range(base, len(since)) if since[i] >= term),
                   len(since))
        theirs = [entry[0] for entry in self.committed[base:end]]
        mine = [entry[0] for entry in log[1:max(end - base, 0) + 1]]
        if mine != theirs:
            mine.append(None)           # shorter than theirs: lacks the next one
            first = next(k for k, t in enumerate(theirs) if mine[k] != t)
            self.problem("leader completeness", f"{node.name}, leader of term "
                         f"{term}, lacks committed index {base + 1 + first}")

    def commit(self, node: RaftNode, old: int, new: int) -> None:
        log, base = node.disk["log"], node.disk["log_base"]
        for index in range(old + 1, new + 1):
            self._commit(node, index, log[index - base])

    def _commit(self, node: RaftNode, index: int, entry: tuple[int, Any]) -> None:
        known = self.committed
        if index <= len(known):
            if known[index - 1] != entry:
                self.problem("state machine safety", f"{node.name} has {entry} at "
                             f"committed index {index}, which holds "
                             f"{known[index - 1]}")
        elif index == len(known) + 1:
            known.append(entry)
            self.committed_in.append(node.disk["current_term"])
        else:
            self.problem("log matching", f"{node.name} committed index {index} "
                         f"before index {len(known) + 1}")

    def applied(self, node: RaftNode, index: int, term: int, command: Any) -> None:
        entry, known = (term, command), self.committed
        # A restarted node applies its whole log again: the common case, an
        # index already committed with this entry, is checked inline.
        if index > len(known) or known[index - 1] != entry:
            self._commit(node, index, entry)
        self.applied_by[node.name].append(entry)

    def installed(self, node: RaftNode, index: int) -> None:
        if index > len(self.committed):
            self.problem("state machine safety", f"{node.name} installed a snapshot "
                         f"up to index {index}, beyond anything committed")
        self.applied_by[node.name] = list(self.committed[:index])
        self.event(node, "install", index)

    def check(self) -> None:
        """Raise InvariantViolation for the first problem seen so far, or for a
        pair of logs that break log matching now."""
        if self.problems:
            more = len(self.problems) - 1
            raise InvariantViolation(self.problems[0] + (f" [and {more} more]"
                                                         if more else ""))
        nodes = list(self.cluster.nodes.values())
        for i, a in enumerate(nodes):
            for b in nodes[i + 1:]:
                _check_log_matching(a, b)
        for node in nodes:
            applied = self.applied_by[node.name]
            if applied != self.committed[:len(applied)]:
                first = next(i for i, (x, y) in enumerate(
                    zip(applied, self.committed, strict=False)) if x != y)
                raise InvariantViolation(
                    f"state machine safety: {node.name} applied {applied[first]} at "
                    f"index {first + 1}, committed there is {self.committed[first]}")


def _check_log_matching(a: RaftNode, b: RaftNode) -> None:
    """If two logs hold an entry with the same index and term, they hold the same
    entries up to it (§5.3). Compared over the indexes both still store."""
    la, lb = a.disk["log"], b.disk["log"]
    ba, bb = a.disk["log_base"], b.disk["log_base"]
    low, high = max(ba, bb) + 1, min(a.last_index(), b.last_index())
    matched = False
    for index in range(high, low - 1, -1):
        ea, eb = la[index - ba], lb[index - bb]
        matched = matched or ea[0] == eb[0]
        if matched and ea != eb:
            raise InvariantViolation(
                f"log matching: {a.name} and {b.name} hold entries of one term at "
                f"or after index {index} but differ there: {ea} vs {eb}")
