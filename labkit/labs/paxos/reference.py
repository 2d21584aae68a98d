"""The Paxos lab's worked answer: single-decree Paxos as in "Paxos Made
Simple" §2.2, and Multi-Paxos with a stable leader as in §3, in the
skeleton's methods."""

from __future__ import annotations

from collections.abc import Hashable

from labkit.paxos import NOOP

from .skeleton import PaxosSkeleton


class PaxosReference(PaxosSkeleton):
    """The worked answer."""

    def on_prepare(self, msg) -> None:
        disk = self.disk
        if msg.ballot < disk["promised"]:
            self.send(msg.src, "nack", ballot=msg.ballot, promised=disk["promised"])
            return
        disk["promised"] = msg.ballot
        self.persist()
        ballot, value = disk["accepted"]
        self.send(msg.src, "promise", ballot=msg.ballot, accepted_ballot=ballot,
                  accepted_value=value)

    def on_accept(self, msg) -> None:
        disk = self.disk
        if msg.ballot < disk["promised"]:
            self.send(msg.src, "nack", ballot=msg.ballot, promised=disk["promised"])
            return
        disk["promised"], disk["accepted"] = msg.ballot, (msg.ballot, msg.value)
        self.persist()
        self.send(msg.src, "accepted", ballot=msg.ballot, value=msg.value)

    def new_ballot(self) -> int:
        n, i = len(self.proposers), self.index
        return i + max(0, (self.highest - i) // n + 1) * n

    def prepare(self) -> None:
        self.ballot = self.highest = self.disk["ballot"] = self.new_ballot()
        self.persist()
        self.phase, self.promises, self.accepts = "prepare", {}, []
        for a in self.acceptors:
            self.send(a, "prepare", ballot=self.ballot)
        self.arm_timeout()

    def on_promise(self, msg) -> None:
        if self.phase != "prepare" or msg.ballot != self.ballot:
            return                              # late or duplicated
        self.promises[msg.src] = (msg.accepted_ballot, msg.accepted_value)
        if len(self.promises) >= self.majority:
            self.proposal, self.phase = self.choose_value(), "accept"
            for a in self.acceptors:
                self.send(a, "accept", ballot=self.ballot, value=self.proposal)

    def choose_value(self) -> Hashable:
        ballot, value = max(self.promises.values(), key=lambda bv: bv[0])
        return value if ballot > 0 else self.value

    def on_accepted(self, msg) -> None:
        if self.phase != "accept" or msg.ballot != self.ballot \
                or msg.src in self.accepts:
            return
        self.accepts.append(msg.src)
        if len(self.accepts) >= self.majority:
            self.decide(self.proposal)

    def on_nack(self, msg) -> None:
        self.highest = max(self.highest, msg.promised)
        if msg.ballot == self.ballot and self.phase in ("prepare", "accept"):
            self.retry_later()

    # -- multi: acceptor -------------------------------------------------------------
    def on_p1a(self, msg) -> None:
        disk = self.disk
        if msg.ballot >= disk["promised"]:
            disk["promised"] = msg.ballot
            self.persist()
            if msg.ballot > self.ballot:
                self.follow(msg.ballot)
        accepted = tuple((slot, ballot, value) for slot, (ballot, value)
                         in sorted(disk["accepted"].items()) if slot >= msg.slot)
        self.send(msg.src, "p1b", ballot=msg.ballot, promised=disk["promised"],
                  accepted=accepted)

    def on_p2a(self, msg) -> None:
        disk = self.disk
        if msg.ballot >= disk["promised"]:
            disk["promised"] = msg.ballot
            disk["accepted"][msg.slot] = (msg.ballot, msg.value)
            self.persist()
            if msg.ballot > self.ballot:
                self.follow(msg.ballot)
        self.send(msg.src, "p2b", ballot=msg.ballot, slot=msg.slot,
                  promised=disk["promised"])

    # -- multi: leader ----------------------------------------------------------------
    def on_election_timeout(self) -> None:
        if self.role == "leader":
            return
        self.highest = max(self.highest, self.disk["promised"])
        self.ballot = self.disk["ballot"] = self.new_ballot()
        self.persist()
        self.role, self.promises = "candidate", {}
        for name in self.members:
            self.send(name, "p1a", ballot=self.ballot, slot=self.frontier())
        self.reset_election_timer()

    def on_p1b(self, msg) -> None:
        if msg.promised > self.ballot:
            self.follow(msg.promised)
            return
        if self.role != "candidate" or msg.ballot != self.ballot:
            return
        self.promises[msg.src] = msg.accepted
        if len(self.promises) >= self.majority:
            self.become_leader()

    def become_leader(self) -> None:
        self.role = "leader"
        self.cancel_timer("election")
        best: dict[int, tuple[int, object]] = {}
        for accepted in self.promises.values():
            for slot, ballot, value in accepted:
                if slot not in best or ballot > best[slot][0]:
                    best[slot] = (ballot, value)
        chosen, start = self.disk["chosen"], self.frontier()
        top = max([start - 1, *best, *chosen])
        for slot in range(start, top + 1):
            if slot not in chosen:
                self.propose_at(slot, best.get(slot, (0, NOOP))[1])
        self.next_slot = top + 1
        self.beat()

    def submit(self, command) -> int | None:
        if self.role != "leader":
            return None
        slot, self.next_slot = self.next_slot, self.next_slot + 1
        self.propose_at(slot, command)
        return slot

    def on_p2b(self, msg) -> None:
        if msg.promised > self.ballot:
            self.follow(msg.promised)
            return
        proposal = self.proposals.get(msg.slot)
        if self.role != "leader" or msg.ballot != self.ballot or proposal is None \
                or msg.src in proposal.acks:
            return
        proposal.acks.append(msg.src)
        if len(proposal.acks) >= self.majority:
            del self.proposals[msg.slot]
            self.learn(msg.slot, proposal.value)

    # -- multi: follower and state machine ---------------------------------------------
    def on_heartbeat(self, msg) -> None:
        if msg.ballot < self.disk["promised"]:
            return
        self.follow(msg.ballot)
        for slot, value in msg.chosen:
            self.learn(slot, value)
        self.send(msg.src, "heartbeat_ok", ballot=msg.ballot, frontier=self.frontier())

    def apply_chosen(self) -> None:
        chosen = self.disk["chosen"]
        while self.applied_slot + 1 in chosen:
            self.apply(self.applied_slot + 1, chosen[self.applied_slot + 1])
