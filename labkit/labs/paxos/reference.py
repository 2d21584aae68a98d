"""The Paxos lab's worked answer: single-decree Paxos as in "Paxos Made
Simple" §2.2, in the skeleton's methods."""

from __future__ import annotations

from collections.abc import Hashable

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
