"""The Paxos lab's skeleton, the class a student derives from: part
`single_decree`, an acceptor's two handlers and a proposer's six methods;
part `multi`, a Multi-Paxos replica's nine. Each raises NotImplementedError
that says what it must do."""

from __future__ import annotations

from .base import PaxosBase


class PaxosSkeleton(PaxosBase):
    """Your Paxos node. Parts, in order:
      single_decree  an acceptor's on_prepare, on_accept and a proposer's
                     new_ballot, prepare, on_promise, choose_value, on_accepted,
                     on_nack (Paxos Made Simple, §2.2), in PaxosCluster
      multi          a Multi-Paxos replica (§3) in MultiPaxosCluster: acceptor
                     (on_p1a, on_p2a), leader (on_election_timeout, on_p1b,
                     become_leader, submit, on_p2b), follower (on_heartbeat)
                     and apply_chosen; it reuses new_ballot from part 1
    Multi-Paxos messages (send to every server in self.members, yourself too):
      p1a        ballot, slot: phase 1 for every slot from `slot` on
      p1b        ballot, promised (your promise after it: == ballot means
                 promised), accepted (a tuple of (slot, ballot, value) for
                 every slot >= the p1a's slot you accepted a value in)
      p2a        ballot, slot, value (sent for you by propose_at)
      p2b        ballot, slot, promised (== ballot means accepted)
      heartbeat  ballot, chosen (sent for you by beat(): (slot, value) pairs)
      heartbeat_ok  ballot, frontier (your frontier())
    """

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

    # -- multi: acceptor -----------------------------------------------------------
    def on_p1a(self, msg) -> None:
        """Phase 1b for every slot from msg.slot on."""
        raise NotImplementedError(
            "not yet implemented: on_p1a: if msg.ballot >= disk['promised'], promise "
            "it (disk['promised'] = msg.ballot, persist()) and, if msg.ballot > "
            "self.ballot, follow(msg.ballot); either way answer a 'p1b' (ballot, "
            "promised=disk['promised'], accepted=((slot, ballot, value) for each "
            "slot >= msg.slot in disk['accepted'], in slot order))")

    def on_p2a(self, msg) -> None:
        """Phase 2b for one slot."""
        raise NotImplementedError(
            "not yet implemented: on_p2a: if msg.ballot >= disk['promised'], set "
            "disk['promised'] = msg.ballot and disk['accepted'][msg.slot] = "
            "(msg.ballot, msg.value), persist(), and if msg.ballot > self.ballot "
            "follow(msg.ballot); either way answer a 'p2b' (ballot, slot, "
            "promised=disk['promised'])")

    # -- multi: leader -------------------------------------------------------------
    def on_election_timeout(self) -> None:
        """No leader was heard for an election timeout: run phase 1."""
        raise NotImplementedError(
            "not yet implemented: on_election_timeout: unless leader, raise "
            "self.highest to disk['promised'], take ballot = new_ballot(), set "
            "self.ballot and disk['ballot'] to it and persist(); role 'candidate', "
            "empty promises; send 'p1a' (ballot, slot=frontier()) to every member; "
            "reset_election_timer() (to retry if no majority answers)")

    def on_p1b(self, msg) -> None:
        """An answer to your p1a."""
        raise NotImplementedError(
            "not yet implemented: on_p1b: if msg.promised > self.ballot, someone "
            "runs a higher ballot: follow(msg.promised); else as candidate of "
            "msg.ballot store msg.accepted in self.promises[msg.src], and at a "
            "majority become_leader()")

    def become_leader(self) -> None:
        """A majority promised your ballot."""
        raise NotImplementedError(
            "not yet implemented: become_leader: role 'leader', cancel_timer("
            "'election'); per slot, the value of the highest ballot the promises "
            "report; for every slot from frontier() to the highest slot reported or "
            "known chosen that is not known chosen, propose_at(slot, that value, or "
            "NOOP if none); next_slot = that highest slot + 1; beat()")

    def submit(self, command) -> int | None:
        """A client's command: its slot, or None if you do not lead."""
        raise NotImplementedError(
            "not yet implemented: submit: if leader, take slot = next_slot, advance "
            "next_slot, propose_at(slot, command) and return slot; else None")

    def on_p2b(self, msg) -> None:
        """An answer to your p2a."""
        raise NotImplementedError(
            "not yet implemented: on_p2b: if msg.promised > self.ballot, you are "
            "superseded: follow(msg.promised); else as leader of msg.ballot add "
            "msg.src to self.proposals[msg.slot].acks once, and at a majority the "
            "value is chosen: drop the proposal and learn(slot, value)")

    # -- multi: follower and state machine -------------------------------------------
    def on_heartbeat(self, msg) -> None:
        """A leader's heartbeat."""
        raise NotImplementedError(
            "not yet implemented: on_heartbeat: ignore it if msg.ballot is below "
            "disk['promised'] (a deposed leader); else follow(msg.ballot) (which "
            "re-arms the election timer), learn(slot, value) for each pair in "
            "msg.chosen, and answer 'heartbeat_ok' (ballot, frontier=frontier())")

    def apply_chosen(self) -> None:
        """Runs after every message and timer: apply what is newly chosen."""
        raise NotImplementedError(
            "not yet implemented: apply_chosen: while slot applied_slot + 1 is in "
            "disk['chosen'], apply(slot, its value); stop at the first slot not "
            "known chosen")
