"""The Paxos lab's skeleton, the class a student derives from: an acceptor's
two handlers and a proposer's six methods, each raising NotImplementedError
that says what it must do."""

from __future__ import annotations

from .base import PaxosBase


class PaxosSkeleton(PaxosBase):
    """Your Paxos node: an acceptor's two handlers and a proposer's six methods
    (Paxos Made Simple, §2.2)."""

    # -- acceptor --------------------------------------------------------------
    def on_prepare(self, msg) -> None:
        """Phase 1b: answer a prepare(ballot)."""
        raise NotImplementedError(
            "not yet implemented: on_prepare: if msg.ballot is below "
            "disk['promised'], send msg.src a 'nack' (ballot=msg.ballot, "
            "promised=disk['promised']); else promise it: disk['promised'] = "
            "msg.ballot, persist(), then send a 'promise' (ballot, accepted_ballot, "
            "accepted_value from disk['accepted'])")

    def on_accept(self, msg) -> None:
        """Phase 2b: answer an accept(ballot, value)."""
        raise NotImplementedError(
            "not yet implemented: on_accept: if msg.ballot is below "
            "disk['promised'], send a 'nack' (ballot, promised); else set "
            "disk['promised'] = msg.ballot and disk['accepted'] = (msg.ballot, "
            "msg.value), persist(), then send an 'accepted' (ballot, value)")

    # -- proposer --------------------------------------------------------------
    def new_ballot(self) -> int:
        """A ballot for this proposer's next attempt."""
        raise NotImplementedError(
            "not yet implemented: new_ballot: the smallest ballot above "
            "self.highest that belongs to this proposer alone: proposer self.index "
            "of len(self.proposers) owns index, index + n, index + 2n, ...")

    def prepare(self) -> None:
        """Phase 1a: start a new ballot."""
        raise NotImplementedError(
            "not yet implemented: prepare: ballot = new_ballot(); set self.ballot, "
            "self.highest and disk['ballot'] to it and persist(); phase 'prepare', "
            "empty promises and accepts; send 'prepare' (ballot) to every acceptor; "
            "arm_timeout()")

    def on_promise(self, msg) -> None:
        """Phase 1b arrives: count promises for the current ballot."""
        raise NotImplementedError(
            "not yet implemented: on_promise: ignore it unless phase is 'prepare' "
            "and msg.ballot is self.ballot; store (accepted_ballot, accepted_value) "
            "in self.promises[msg.src]; at a majority, proposal = choose_value(), "
            "phase 'accept', send 'accept' (ballot, value) to every acceptor")

    def choose_value(self) -> object:
        """The value phase 2 must propose, from self.promises."""
        raise NotImplementedError(
            "not yet implemented: choose_value: the value of the highest "
            "accepted_ballot among the promises if any is above 0, else "
            "self.value (the client's)")

    def on_accepted(self, msg) -> None:
        """Phase 2b arrives: count acceptances of the current ballot."""
        raise NotImplementedError(
            "not yet implemented: on_accepted: ignore it unless phase is 'accept' "
            "and msg.ballot is self.ballot; add msg.src to self.accepts once; at a "
            "majority, decide(self.proposal)")

    def on_nack(self, msg) -> None:
        """An acceptor refused a ballot because it promised a higher one."""
        raise NotImplementedError(
            "not yet implemented: on_nack: raise self.highest to msg.promised; if "
            "msg.ballot is the current ballot and phase is 'prepare' or 'accept', "
            "retry_later()")
