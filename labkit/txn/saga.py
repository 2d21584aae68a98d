"""Sagas (Garcia-Molina & Salem, 1987), a flexible transaction (柔性事务).

One local transaction per leg, in order; if a step fails, the done steps are
compensated in reverse order. `SagaNode` is participant and orchestrator; the
orchestrator keeps a `Saga` record per saga it runs.
"""

from __future__ import annotations

from collections.abc import Callable

from labkit.net import Message
from labkit.txn.base import ABORTED, COMMITTED, PENDING, TxnNode


class Saga:
    """An orchestrator's record of one saga: the next step to do, or, after a
    step failed, the next step to compensate."""

    def __init__(self, txn: str, legs: tuple, client: str):
        self.txn, self.legs, self.client = txn, legs, client
        self.next = 0
        self.failed_at: int | None = None
        self.undo = -1


class SagaNode(TxnNode):
    """A saga (Garcia-Molina & Salem 1987): each leg is a local transaction,
    committed at once and visible to everyone. The orchestrator runs the steps
    in order and retries each until it gets an answer (forward recovery); if a
    step fails it compensates the done steps in reverse order (backward
    recovery). Participants remember what they did per (saga, step), so a
    retried or duplicated request is answered, not applied twice."""

    def recover(self) -> None:
        self.disk.setdefault("done", {})    # (txn, step, "do"/"undo") -> result
        self.sagas: dict[str, Saga] = {}
        self.ended = {r[1]: r[2] for r in self.records("saga_end")}
        for _, txn, legs, client in self.records("saga"):
            if txn not in self.ended:
                self.sagas[txn] = Saga(txn, legs, client)
        for kind, txn, step in self.records("saga_step", "saga_failed",
                                            "saga_undone"):
            s = self.sagas.get(txn)
            if s is None:
                continue
            if kind == "saga_step":
                s.next = step + 1
            elif kind == "saga_failed":
                s.failed_at, s.undo = step, step - 1
            else:
                s.undo = step - 1
        for txn in self.sagas:      # lazy progress records may be behind: redo is safe
            self.step(txn)

    # -- participant ------------------------------------------------------------
    def local(self, msg: Message, kind: str, delta: int,
              check: Callable[[], str]) -> None:
        """Run one local step: answer a remembered result, "busy" if the row is
        held, else force the step and apply it if `check()` says "ok"."""
        done, key = self.disk["done"], (msg.txn, msg.step, kind)
        if self.config.idempotent and key in done:
            self.answer(msg, txn=msg.txn, step=msg.step, result=done[key])
            return
        if not self.is_free([msg.account], msg.txn):
            self.answer(msg, txn=msg.txn, step=msg.step, result="busy")
            return
        if key in self.inflight:
            return
        result = check()
        self.lock([msg.account], msg.txn, self.sim.now)

        def applied() -> None:
            if result == "ok":
                self.apply(((msg.account, delta),))
            done[key] = result
            self.unlock(msg.txn)
            self.answer(msg, txn=msg.txn, step=msg.step, result=result)
            if kind == "do":
                self.crash_point("participant.after_vote", msg.txn)
        self.force_once(key, "saga_" + kind, msg.txn, msg.step, result, then=applied)

    def on_saga_do(self, msg: Message) -> None:
        if (msg.txn, msg.step, "do") not in self.disk["done"] \
                and self.crash_point("participant.before_vote", msg.txn):
            return

        def check() -> str:
            fails = msg.step == self.config.fail_step or \
                self.balances[msg.account] + msg.delta < 0
            return "failed" if fails else "ok"
        self.local(msg, "do", msg.delta, check)

    def on_saga_undo(self, msg: Message) -> None:
        def check() -> str:     # a compensation must not fail; it may overdraw
            if self.balances[msg.account] - msg.delta < 0:
                self.sim.metrics.counter("saga.overdrafts").inc()
            return "ok"
        self.local(msg, "undo", -msg.delta, check)

    # -- orchestrator -----------------------------------------------------------
    def on_begin(self, msg: Message) -> None:
        txn = msg.txn
        if txn in self.sagas or txn in self.ended \
                or self.crash_point("coordinator.before_prepare", txn):
            return
        self.sagas[txn] = Saga(txn, msg.legs, msg.src)
        self.force("saga", txn, msg.legs, msg.src, then=lambda: self.step(txn))

    def step(self, txn: str) -> None:
        """Send the saga's current request (again, after a timeout)."""
        s = self.sagas[txn]
        if s.failed_at is None and s.next == len(s.legs):
            self.finish(s, True)
            return
        if s.failed_at is not None and s.undo < 0:
            self.finish(s, False)
            return
        i, kind = (s.next, "saga_do") if s.failed_at is None else (s.undo, "saga_undo")
        account, delta = s.legs[i]
        self.tell(self.world.owners[account], kind, txn=txn, step=i, account=account,
                  delta=delta)
        self.set_timer(f"saga:{txn}", self.config.timeout, self.step, txn)

    def on_saga_do_ok(self, msg: Message) -> None:
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is not None or msg.step != s.next:
            return                      # a duplicate or a late answer
        if msg.result == "busy":
            self.set_timer(f"saga:{s.txn}", self.backoff(), self.step, s.txn)
            return
        if msg.result == "ok":
            s.next += 1
            self.log("saga_step", s.txn, msg.step)
            if self.crash_point("coordinator.after_votes", s.txn):
                return
        else:
            s.failed_at, s.undo = msg.step, msg.step - 1
            self.log("saga_failed", s.txn, msg.step)
        self.step(s.txn)

    def on_saga_undo_ok(self, msg: Message) -> None:
        s = self.sagas.get(msg.txn)
        if s is None or s.failed_at is None or msg.step != s.undo:
            return
        if msg.result == "busy":
            self.set_timer(f"saga:{s.txn}", self.backoff(), self.step, s.txn)
            return
        s.undo -= 1
        self.log("saga_undone", s.txn, msg.step)
        self.step(s.txn)

    def decision(self, txn: str) -> str | None:
        """Ended once its "saga_end" record is forced; running (or finishing)
        until then."""
        end = self.last_record(txn, "saga_end")
        if end is not None:
            return COMMITTED if end[2] else ABORTED
        return PENDING if txn in self.sagas or txn in self.ended else None

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """End a saga that never began as aborted: `on_begin` now ignores it."""
        self.ended[txn] = False
        self.force("saga_end", txn, False, then=then)

    def finish(self, s: Saga, completed: bool) -> None:
        self.cancel_timer(f"saga:{s.txn}")
        del self.sagas[s.txn]
        self.ended[s.txn] = completed

        def logged() -> None:
            if not self.crash_point("coordinator.after_decision", s.txn):
                self.tell(s.client, "outcome", txn=s.txn, committed=completed)
        self.force("saga_end", s.txn, completed, then=logged)
