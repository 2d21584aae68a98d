"""What a txn lab answer is given: `TxnLabBase`, a node of a `TxnCluster` with
everything but the commit protocols, and the `Referee` that watches it.

One class plays every role, as in labkit's own nodes: in a 2PC cluster each
node is a participant and coordinates the transactions whose first leg it
owns; in a saga cluster it runs steps and orchestrates its sagas. The base
keeps the plumbing: the write-ahead log (`log`, `force`), row locks, the
balances, the client's `ask`, resending a commit until acknowledged, and the
crash points `TxnCluster.crash_at` places by name (plus one of the lab's own,
"participant.after_ack", that a scenario arms by hand). It also hands each
message and each durable record to the referee.

The referee trusts nothing a node claims about itself: it reads what a node
sends, what it is told, what reaches its disk and how its balances move. It
raises `InvariantViolation` at the step that broke a rule (a yes vote with no
forced prepared record, a commit without every yes vote or before the
decision is durable, a second round for a transaction already announced, a
participant deciding alone, a recovery that forgot a prepared transaction or
a commit it acknowledged, a compensation out of order, a step applied
twice), so a failure points at its cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from labkit.errors import ConfigError, InvariantViolation
from labkit.net import Message, Network
from labkit.txn.base import (
    ABORTED,
    COMMITTED,
    PENDING,
    PREPARED,
    TxnNode,
    World,
    nodes_of,
)
from labkit.txn.resource import Prepared
from labkit.txn.saga import Saga, SagaNode
from labkit.txn.two_phase import CommitRounds, Round

DECIDED = "decided"   # the coordinator's record (2PC); "end" is CommitRounds'
SAGA, SAGA_END = "saga", "saga_end"      # the orchestrator's records


class Referee:
    """What the grader saw of one cluster: each transaction's legs (from the
    client's begin), the votes on the wire, the durable decisions, who was told
    what, and for sagas which steps were done and undone and how often each
    moved money. It survives every crash (it is the grader's, not a node's)."""

    def __init__(self, world: World):
        self.world = world
        self.legs: dict[str, tuple] = {}
        self.votes: dict[str, dict[str, bool]] = {}
        self.decided: set[str] = set()           # durable commit decisions
        self.told: dict[tuple[str, str], str] = {}   # (node, txn) -> commit/abort
        self.acked: dict[tuple[str, str], float] = {}  # (node, txn) -> when
        self.client: dict[str, bool] = {}            # txn -> committed, as told
        self.done: dict[tuple[str, int, str], int] = {}   # saga (txn, step, kind)
        self.ended: dict[str, bool] = {}

    def participants(self, txn: str) -> tuple:
        return nodes_of(self.legs.get(txn, ()), self.world.owners)

    def coordinator(self, txn: str) -> str | None:
        legs = self.legs.get(txn)
        return self.world.owners[legs[0][0]] if legs else None

    # -- messages -----------------------------------------------------------------
    def delivered(self, node: TxnNode, msg: Message) -> None:
        txn = msg.body.get("txn")
        if msg.kind == "begin":
            self.legs.setdefault(txn, tuple(msg.legs))
        elif msg.kind in ("commit", "abort"):
            self.told.setdefault((node.name, txn), msg.kind)

    def sent(self, node: TxnNode, dst: str, kind: str, body: dict) -> None:
        """Check one message `node` sends; raise InvariantViolation if it
        breaks a rule."""
        txn = body.get("txn")
        if kind == "vote":
            self._vote(node, txn, body.get("yes"))
        elif kind == "prepare":
            self._one_round(node, txn)
        elif kind == "ack":
            self.acked.setdefault((node.name, txn), node.sim.now)
        elif kind == "commit" or (kind == "outcome" and body.get("committed")
                                  and node.config.protocol == "2pc"):
            if node.last_record(txn, DECIDED) is None:
                whom = "told the client" if kind == "outcome" else f"sent {dst} commit"
                raise InvariantViolation(
                    f"durable decision: {node.name} {whom} of {txn} before its "
                    "commit decision was forced to its log; a crash now would leave "
                    "a commit the coordinator does not remember (force, then send)")
            if kind == "outcome":
                self.client.setdefault(txn, True)
        elif kind == "abort" and txn in self.decided:
            raise InvariantViolation(
                f"atomicity: {node.name} sent {dst} abort of {txn}, which it had "
                "decided to commit; a decision on disk is final (answer from the log)")
        elif kind == "outcome" and not body.get("committed"):
            if txn in self.decided:
                raise InvariantViolation(
                    f"atomicity: {node.name} told the client {txn} aborted, but it "
                    "had decided to commit it")
            self.client.setdefault(txn, False)
        elif kind == "saga_undo":
            self._undo_order(node, txn, body.get("step"))

    def _one_round(self, node: TxnNode, txn: str) -> None:
        """A prepare after the client heard the outcome is a second round."""
        if txn in self.client:
            told = "committed" if self.client[txn] else "aborted"
            raise InvariantViolation(
                f"one round: {node.name} sent prepare for {txn}, whose client was "
                f"already told it {told}: a duplicate or late begin started a second "
                "round. A coordinator runs one round per transaction; after a crash "
                "it knows an abort only if it forced the abort before announcing it")

    def _vote(self, node: TxnNode, txn: str, yes: Any) -> None:
        if yes and node.last_record(txn, PREPARED) is None:
            raise InvariantViolation(
                f"force before vote: {node.name} voted yes for {txn} before its "
                "prepared record was forced to its log; a crash would forget a "
                "promise the coordinator counts on (force the record, then vote)")
        self.votes.setdefault(txn, {}).setdefault(node.name, bool(yes))

    # -- what reaches the disk, and the locks ---------------------------------------
    def written(self, node: TxnNode, record: tuple) -> None:
        """`node` writes a record to its log (lazily or forced): it says what
        the node did, so the rules apply now."""
        kind, txn = record[0], record[1] if len(record) > 1 else None
        if kind == DECIDED:
            self._decided(node, txn)
        elif kind == COMMITTED and txn not in self.decided:
            raise InvariantViolation(
                f"atomicity: {node.name} committed {txn}, which its coordinator "
                "never decided to commit; commit only when told commit")
        elif kind == ABORTED:
            self._alone(node, txn, "aborted")
            if txn in self.decided:
                raise InvariantViolation(
                    f"atomicity: {node.name} aborted {txn}, which its coordinator "
                    "had decided to commit")
        elif kind == SAGA_END:
            self._saga_end(node, txn, record[2])

    def durable(self, records: list[tuple]) -> None:
        """Records reached a disk (a forced write saves every record written
        before it): a commit decision or a saga's end is now final."""
        for record in records:
            if record[0] == DECIDED:
                self.decided.add(record[1])
            elif record[0] == SAGA_END:
                self.ended.setdefault(record[1], bool(record[2]))

    def _decided(self, node: TxnNode, txn: str) -> None:
        votes = self.votes.get(txn, {})
        missing = [p for p in self.participants(txn) if votes.get(p) is not True]
        if missing:
            said = {p: {True: "yes", False: "no"}.get(votes.get(p), "no vote")
                    for p in self.participants(txn)}
            raise InvariantViolation(
                f"commit without every yes: {node.name} decided to commit {txn} "
                f"with votes {said}; commit needs a yes from every participant "
                "(one no, or a vote that never came, means abort)")
        if self.client.get(txn) is False:
            raise InvariantViolation(f"atomicity: {node.name} decided to commit "
                                     f"{txn} after the client was told it aborted")

    def unlocked(self, node: TxnNode, txn: str) -> None:
        if node.config.protocol == "2pc":
            self._alone(node, txn, "released its rows")

    def _alone(self, node: TxnNode, txn: str, did: str) -> None:
        """A participant that voted yes ends `txn` only as it is told."""
        if self.votes.get(txn, {}).get(node.name) is True \
                and node.name != self.coordinator(txn) \
                and (node.name, txn) not in self.told:
            raise InvariantViolation(
                f"in doubt: {node.name} voted yes for {txn} and then {did} on its "
                "own, before anyone told it the decision; a participant that voted "
                "yes must wait for the coordinator (and ask it), however long")

    def recovered(self, node: TxnNode) -> None:
        """After a restart: every transaction the log shows prepared and not
        ended must hold its rows again."""
        if node.config.protocol != "2pc":
            return
        self._acked_commits(node)
        ended = {r[1] for r in node.records(COMMITTED, ABORTED)}
        for record in node.records(PREPARED):
            txn, info = record[1], record[2]
            if txn in ended or not isinstance(info, Prepared):
                continue
            free = [a for a, _ in info.legs if node.locks.get(a) != txn]
            if free:
                raise InvariantViolation(
                    f"recovery: {node.name}'s log says it prepared {txn} with no "
                    f"outcome, but after its restart it does not hold {free}; a "
                    "prepared participant locks its rows again and asks the "
                    "coordinator")

    def _acked_commits(self, node: TxnNode) -> None:
        """Every commit this node acknowledged before its crash is in its log."""
        committed = {r[1] for r in node.records(COMMITTED)}
        lost = [txn for name, txn in self.acked
                if name == node.name and txn not in committed]
        if lost:
            raise InvariantViolation(
                f"force before ack: {node.name} acknowledged the commit of "
                f"{lost[0]}, but after its crash its log holds no commit record for "
                "it: the ack left before the record was forced. The ack lets the "
                "coordinator forget the transaction (presumed abort), so if this "
                "participant now asks, it hears abort (force the record, then ack)")

    # -- sagas --------------------------------------------------------------------
    def moved(self, node: TxnNode, kind: str, txn: str, step: int,
              before: dict) -> None:
        """Handling a saga request (`kind` "saga_do" or "saga_undo"), or forcing
        its record, moved money at `node`: count it per (txn, step, kind)."""
        if kind not in ("saga_do", "saga_undo") or node.balances == before:
            return
        key = (txn, step, kind[5:])
        self.done[key] = self.done.get(key, 0) + 1
        if self.done[key] > 1:
            what = "step" if key[2] == "do" else "compensation of step"
            raise InvariantViolation(
                f"idempotence: {node.name} applied {what} {step} of {txn} a "
                "second time (a retried or duplicated request); remember what "
                "each (saga, step) did and answer a repeat from memory")
        if key[2] == "undo" and (txn, step, "do") not in self.done:
            raise InvariantViolation(
                f"compensation: {node.name} compensated step {step} of {txn}, "
                "which it never did")

    def _undo_order(self, node: TxnNode, txn: str, step: int) -> None:
        later = [k[1] for k in self.done if k[0] == txn and k[2] == "do"
                 and k[1] > step and (txn, k[1], "undo") not in self.done]
        if later:
            raise InvariantViolation(
                f"compensation order: {node.name} compensated step {step} of {txn} "
                f"while step {min(later)} was still done; compensations run in "
                "reverse order, the newest step first")

    def _saga_end(self, node: TxnNode, txn: str, completed: bool) -> None:
        steps = len(self.legs.get(txn, ()))
        net = [(txn, i, "do") in self.done and (txn, i, "undo") not in self.done
               for i in range(steps)]
        if completed and not all(net):
            raise InvariantViolation(
                f"saga atomicity: {node.name} ended {txn} as done, but steps "
                f"{[i for i, n in enumerate(net) if not n]} are not in effect")
        if not completed and any(net):
            raise InvariantViolation(
                f"saga atomicity: {node.name} ended {txn} as compensated, but steps "
                f"{[i for i, n in enumerate(net) if n]} are still in effect; every "
                "done step before the failed one must be compensated")


_REFEREES: WeakKeyDictionary[Network, Referee] = WeakKeyDictionary()


def referee_of(network: Network) -> Referee | None:
    """The referee watching a cluster's network (None before any lab node)."""
    return _REFEREES.get(network)


class TxnLabBase(CommitRounds, TxnNode):
    """One node of the lab: everything but the commit protocols.

    Given to every node: `self.world.owners` (account -> node),
    `participants_of(legs)`, `mine(legs)` (the legs on this node),
    `self.balances`, `is_free(accounts, txn)`, `lock(accounts, txn, since)`,
    `unlock(txn)`, `install(txn, legs)` (apply a committed transaction's legs,
    once), `log(*record)` (lazy), `force(*record, then=fn)` (durable, then
    fn()), `records(*kinds)`, `last_record(txn, *kinds)`, `tell(dst, kind,
    **body)` (send; to itself without the network), `answer(msg, **body)`,
    `set_timer(name, delay, fn, *args)`, `cancel_timer(name)`, `backoff()`,
    `decision(txn)` (as coordinator: "committed", "pending" or None),
    `refuse(txn, then=fn)` (abort for good: forced, then fn()),
    `self.config.timeout`, `self.config.fail_step`.

    2PC state, emptied on every boot; on a restart `recover_participant` and
    then `recover_coordinator` rebuild it from the log: `status` ({txn:
    "prepared", "committing", "committed" or "aborted"}: this participant's
    view), `doubt` ({txn:
    Prepared}: voted yes, decision unknown), `preparing` (txns whose prepared
    record is being forced), `rounds` ({txn: Round}: transactions this node
    coordinates, with participants, client, phase "voting", "logging" or
    "committing", votes and acks). Log records: participant "prepared" (txn,
    Prepared), "committed", "aborted"; coordinator "decided" (txn,
    participants, client) and "end".

    Saga state: `sagas` ({txn: Saga}: running, with legs, client, next,
    failed_at, undo), `ended`, and `disk["done"]` ({(txn, step, "do" or
    "undo"): result}, the participant's memory of what it did).
    """

    Prepared, Round = Prepared, Round      # so an answer cell needs no imports

    def __init__(self, name: str, net: Network, world: World):
        if world.config.protocol not in ("2pc", "saga") \
                or world.config.coordinator != "colocated":
            raise ConfigError("a txn lab answer runs TxnCluster('2pc') or "
                              "TxnCluster('saga') with a co-located coordinator, "
                              f"not {world.config.protocol!r} with a "
                              f"{world.config.coordinator} one")
        self.referee = _REFEREES.setdefault(net, Referee(world))
        self._baseline: dict[str, int] = {}     # balances a handler started from
        super().__init__(name, net, world)

    def reset(self) -> None:
        super().reset()
        self.referee.recovered(self)

    def recover(self) -> None:
        disk = self.disk
        disk.setdefault("applied", set())
        disk.setdefault("done", {})
        self.status: dict[str, str] = {}
        self.doubt: dict[str, Prepared] = {}
        self.preparing: list[str] = []
        self.rounds: dict[str, Round] = {}
        self.sagas: dict[str, Saga] = {}
        self.ended = {r[1]: r[2] for r in self.records(SAGA_END)}
        if self.config.protocol == "saga":
            self.recover_sagas()
        elif disk["boots"] > 1:     # a restart: the log may hold unfinished work
            self.recover_participant()
            self.recover_coordinator()

    def recover_participant(self) -> None:
        """After a crash: rebuild the participant's state from its log."""

    def recover_coordinator(self) -> None:
        """After a crash: rebuild the coordinator's state from its log."""

    def participants_of(self, legs: tuple) -> tuple:
        """The nodes a transaction touches, in the order its legs name them."""
        return nodes_of(legs, self.world.owners)

    # -- what every message and record goes through ---------------------------------
    def deliver(self, msg: Message) -> None:
        self.referee.delivered(self, msg)
        if msg.kind == "saga_do_ok" and msg.body.get("result") == "ok" \
                and self.crash_point("coordinator.after_votes", msg.txn):
            return                  # a step is done, the orchestrator never hears
        self._baseline = dict(self.balances)
        super().deliver(msg)
        self.referee.moved(self, msg.kind, msg.body.get("txn"), msg.body.get("step"),
                           self._baseline)

    def tell(self, dst: str, kind: str, **body: Any) -> None:
        if dst != self.name:
            self.send(dst, kind, **body)
        elif self.alive:            # to itself: no network, but the referee sees it
            self.referee.sent(self, dst, kind, body)
            super().tell(dst, kind, **body)
            self._after_send(kind, body)

    def send(self, dst: str, kind: str, **body: Any) -> Message | None:
        if not self.alive:          # crashed in mid-handler: nothing more leaves
            return None
        self.referee.sent(self, dst, kind, body)
        msg = super().send(dst, kind, **body)
        self._after_send(kind, body)
        return msg

    def _after_send(self, kind: str, body: dict) -> None:
        if (kind == "vote" and body.get("yes")) or kind == "saga_do_ok":
            self.crash_point("participant.after_vote", body.get("txn"))
        elif kind == "ack":         # armed by hand: not one of TxnCluster's points
            self.crash_point("participant.after_ack", body.get("txn"))

    def set_timer(self, name: str, delay: float, fn: Callable, *args: Any) -> None:
        if self.alive:
            super().set_timer(name, delay, fn, *args)

    def log(self, *record: Any) -> None:
        if self.alive:
            self.referee.written(self, record)
            super().log(*record)

    def _forced(self, incarnation: int, record: tuple, then) -> None:
        if self.alive and incarnation == self.incarnation:
            self.referee.durable(list(self.tail))
        super()._forced(incarnation, record, then)

    def force(self, *record: Any, then: Callable[[], None] | None = None) -> None:
        if not self.alive:
            return
        txn = record[1] if len(record) > 1 else None
        if record[0] == DECIDED and self.crash_point("coordinator.after_votes", txn):
            return                  # every vote in, nothing decided
        self.referee.written(self, record)

        def durable() -> None:
            if record[0] in (DECIDED, SAGA_END) \
                    and self.crash_point("coordinator.after_decision", txn):
                return              # decided on disk, nothing sent
            if then is None:
                return
            before = dict(self.balances)
            then()
            if record[0] in ("saga_do", "saga_undo"):
                self.referee.moved(self, record[0], txn, record[2], before)
            self._baseline = dict(self.balances)    # counted: not again by deliver
        super().force(*record, then=durable)

    def install(self, txn: str, legs: tuple) -> None:
        """Apply a committed transaction's legs to the balances, once: the
        balances and the mark that they hold `txn` (disk["applied"]) change
        together, so a redo after a crash can tell whether they already do."""
        if txn not in self.disk["applied"]:
            self.apply(legs)
            self.disk["applied"].add(txn)

    def unlock(self, txn: str) -> None:
        if any(holder == txn for holder in self.locks.values()):
            self.referee.unlocked(self, txn)
        super().unlock(txn)

    # -- the client, the coordinator's given duties -------------------------------
    def on_begin(self, msg: Message) -> None:
        """A client's transaction arrives at its coordinator (orchestrator): start
        it once, unless it is known already (a duplicate or a late begin): a
        round or saga running or ended, a decision on disk, or this node's own
        vote on it. After a crash that knowledge is only what was forced: an
        abort announced but never forced is forgotten, and a late begin would
        run a second round (so `decide` forces the abort first, with `refuse`)."""
        txn = msg.txn
        if txn in self.rounds or txn in self.sagas or txn in self.ended \
                or self.status.get(txn) is not None or txn in self.preparing \
                or self.last_record(txn, DECIDED, SAGA) is not None \
                or self.crash_point("coordinator.before_prepare", txn):
            return
        if self.config.protocol == "saga":
            self.sagas[txn] = Saga(txn, msg.legs, msg.src)
            self.force(SAGA, txn, msg.legs, msg.src, then=lambda: self.step(txn))
        else:
            self.coordinate(txn, msg.legs, msg.src)

    def coordinate(self, txn: str, legs: tuple, client: str) -> None:
        """Run two-phase commit for a new transaction (the student's)."""
        raise NotImplementedError

    def step(self, txn: str) -> None:
        """Send a saga's current request (the student's)."""
        raise NotImplementedError

    def decision(self, txn: str) -> str | None:
        """As coordinator: committed once the decision is on disk, pending while
        a round or saga runs, None if there is no trace (presumed abort)."""
        if self.last_record(txn, DECIDED) is not None:
            return COMMITTED
        end = self.last_record(txn, SAGA_END)
        if end is not None:
            return COMMITTED if end[2] else ABORTED
        if txn in self.rounds or txn in self.sagas or txn in self.ended:
            return PENDING
        return None

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """Abort for good a transaction this coordinator has no trace of, forced
        (a late begin is then ignored)."""
        if self.config.protocol == "saga":
            self.ended[txn] = False
            self.force(SAGA_END, txn, False, then=then)
            return
        self.abort(txn)
        self.force(ABORTED, txn, then=then)

    def abort(self, txn: str) -> None:
        """Abort `txn` at this participant: out of doubt, rows released, status
        "aborted" (a late prepare is then refused)."""
        if self.doubt.pop(txn, None) is not None:
            self.cancel_timer(f"doubt:{txn}")
        self.unlock(txn)
        self.status[txn] = ABORTED

    def outcomes(self) -> dict[str, str]:
        """This participant's view of each transaction (as labkit's `Resource`):
        its durable log, overridden by `status` while it is up."""
        durable = {r[1]: r[0] for r in self.records(PREPARED, COMMITTED, ABORTED)}
        return {**durable, **self.status} if self.alive else durable

    def vote(self, txn: str, yes: bool, coordinator: str) -> None:
        """Send this participant's vote on `txn` to its coordinator."""
        self.tell(coordinator, "vote", txn=txn, yes=yes)

    def on_prepare(self, msg: Message) -> None:
        if not self.crash_point("participant.before_vote", msg.txn):
            self.prepare(msg)

    def prepare(self, msg: Message) -> None:
        """Phase one at this participant (the student's)."""
        raise NotImplementedError

    # -- sagas: what is given --------------------------------------------------------
    def recover_sagas(self) -> None:
        """Rebuild the running sagas from the log and resend each one's current
        request (lazy progress records may be behind: a repeat is answered).
        The state is labkit's `SagaNode`'s, and so is the rebuild."""
        SagaNode.recover(self)

    def finish(self, s: Saga, completed: bool) -> None:
        """End a saga: force its end record, then tell the client."""
        self.cancel_timer(f"saga:{s.txn}")
        del self.sagas[s.txn]
        self.ended[s.txn] = completed
        self.force(SAGA_END, s.txn, completed,
                   then=lambda: self.tell(s.client, "outcome", txn=s.txn,
                                          committed=completed))

    def on_saga_do(self, msg: Message) -> None:
        if (msg.txn, msg.step, "do") in self.disk["done"] \
                or not self.crash_point("participant.before_vote", msg.txn):
            self.do_step(msg)

    def on_saga_undo(self, msg: Message) -> None:
        self.undo_step(msg)

    def do_step(self, msg: Message) -> None:
        """Run one saga step here (the student's)."""
        raise NotImplementedError

    def undo_step(self, msg: Message) -> None:
        """Compensate one saga step here (the student's)."""
        raise NotImplementedError

    def run_step(self, msg: Message, kind: str, delta: int, result: str) -> None:
        """Carry out a saga request at this participant: if the row is held,
        answer "busy"; else lock it, force the step, add `delta` to the account
        (if `result` is "ok"), remember the result in disk["done"][(txn, step,
        kind)], release the row and answer `result`. A repeat that arrives
        while the first is being forced is dropped (the first answers)."""
        key = (msg.txn, msg.step, kind)
        if not self.is_free([msg.account], msg.txn):
            self.answer(msg, txn=msg.txn, step=msg.step, result="busy")
            return
        self.lock([msg.account], msg.txn, self.sim.now)

        def applied() -> None:
            if result == "ok":
                self.apply(((msg.account, delta),))
            self.disk["done"][key] = result
            self.unlock(msg.txn)
            self.answer(msg, txn=msg.txn, step=msg.step, result=result)
        self.force_once(key, "saga_" + kind, msg.txn, msg.step, result, then=applied)

