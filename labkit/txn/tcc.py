"""Try-confirm-cancel (TCC), a flexible transaction (柔性事务).

The debit's funds are reserved (frozen) first, then confirmed or cancelled; a
reservation expires on its own. `TccNode` is participant and orchestrator (with
a `Tcc` record per transaction it runs) and guards against the classic TCC
hazards: duplicate confirms and cancels, an empty rollback, a hanging try.
"""

from __future__ import annotations

from collections.abc import Callable

from labkit.net import Message
from labkit.txn.base import ABORTED, COMMITTED, PENDING, TxnNode

#: The request a TCC orchestrator sends to each leg in each phase.
TCC_REQUESTS = {"trying": "tcc_try", "confirming": "tcc_confirm",
                "cancelling": "tcc_cancel"}


class Tcc:
    """An orchestrator's record of one TCC transaction."""

    def __init__(self, txn: str, legs: tuple, client: str):
        self.txn, self.legs, self.client = txn, legs, client
        self.phase = "trying"           # then deciding, confirming or cancelling
        self.done: list[str] = []       # accounts whose current op is answered


class TccNode(TxnNode):
    """Try-confirm-cancel. Try reserves: the debit's funds are frozen (still in
    the balance, no longer available) for `ttl` seconds; a credit is recorded
    as pending. Confirm makes a reservation real, cancel releases it. The
    orchestrator confirms the debit first, so if that reservation has expired it
    can still cancel the credits. Participants guard against the classic TCC
    hazards: idempotent confirm/cancel, an "empty rollback" (cancel before try)
    and a "hanging" try (a try that arrives after its cancel is refused)."""

    def recover(self) -> None:
        disk = self.disk
        for field in ("tcc", "held", "frozen"):
            disk.setdefault(field, {})
        for key, (delta, expires) in disk["held"].items():
            if delta < 0:
                self.set_timer(f"expire:{key}", max(0.0, expires - self.sim.now),
                               self.expire, key)
        self.tccs: dict[str, Tcc] = {}
        self.ended = {r[1]: r[2] for r in self.records("tcc_end")}
        decided = {r[1]: r[2] for r in self.records("tcc_decision")}
        for _, txn, legs, client in self.records("tcc"):
            if txn in self.ended:
                continue
            t = self.tccs[txn] = Tcc(txn, legs, client)
            if txn in decided:
                t.phase = "confirming" if decided[txn] else "cancelling"
                self.send_ops(t)
            else:
                self.decide(t, False)   # presumed abort: undecided means cancel

    def available(self, account: str) -> int:
        return self.balances[account] - self.disk["frozen"].get(account, 0)

    # -- participant ------------------------------------------------------------
    def respond(self, msg: Message, result: str) -> None:
        self.answer(msg, txn=msg.txn, account=msg.account, result=result)

    def leg_state(self, key: tuple) -> str | None:
        """A leg's state as a try must see it: the durable one, or "cancelled"
        from the moment a cancel is accepted, while its record is still being
        forced. The anti-hanging rule: once a cancel has been seen, every try
        for that leg is refused, one whose own write is in flight included."""
        state = self.disk["tcc"].get(key)
        return "cancelled" if state is None and ("cancel", key) in self.inflight \
            else state

    def on_tcc_try(self, msg: Message) -> None:
        key = (msg.txn, msg.account)
        state = self.leg_state(key)
        if state is not None:       # a duplicate, or a try hanging after its cancel
            self.respond(msg, "ok" if state in ("reserved", "confirmed") else "refused")
            return
        if self.crash_point("participant.before_vote", msg.txn):
            return
        if not self.is_free([msg.account], msg.txn):
            self.respond(msg, "busy")
            return
        if ("try", key) in self.inflight:
            return
        if msg.delta < 0 and self.available(msg.account) + msg.delta < 0:
            self.respond(msg, "refused")
            return
        self.lock([msg.account], msg.txn, self.sim.now)

        def reserved() -> None:
            self.unlock(msg.txn)
            if self.leg_state(key) is not None:     # its cancel came while forcing
                self.respond(msg, "refused")
                return
            self.disk["tcc"][key] = "reserved"
            self.disk["held"][key] = (msg.delta, self.sim.now + self.config.ttl)
            if msg.delta < 0:
                frozen = self.disk["frozen"]
                frozen[msg.account] = frozen.get(msg.account, 0) - msg.delta
                self.set_timer(f"expire:{key}", self.config.ttl, self.expire, key)
            self.respond(msg, "ok")
            self.crash_point("participant.after_vote", msg.txn)
        self.force_once(("try", key), "tcc_try", msg.txn, msg.account, msg.delta,
                        then=reserved)

    def release(self, key: tuple, state: str) -> None:
        """End a reservation: unfreeze its funds and record how it ended."""
        delta, _ = self.disk["held"].pop(key)
        if delta < 0:
            self.disk["frozen"][key[1]] += delta
        self.disk["tcc"][key] = state
        self.cancel_timer(f"expire:{key}")

    def expire(self, key: tuple) -> None:
        def expired() -> None:
            if self.disk["tcc"].get(key) == "reserved":
                self.release(key, "expired")
                self.sim.metrics.counter("tcc.expired").inc()
        self.force_once(("expire", key), "tcc_expire", key[0], key[1], then=expired)

    def on_tcc_confirm(self, msg: Message) -> None:
        key = (msg.txn, msg.account)
        if self.disk["tcc"].get(key) != "reserved":
            self.respond(msg, "ok" if self.disk["tcc"].get(key) == "confirmed"
                        else "expired")
            return
        if not self.is_free([msg.account], msg.txn):
            self.respond(msg, "busy")
            return

        def confirmed() -> None:
            if self.disk["tcc"].get(key) != "reserved":     # expired meanwhile
                self.respond(msg, "ok" if self.disk["tcc"].get(key) == "confirmed"
                             else "expired")
                return
            delta = self.disk["held"][key][0]
            self.release(key, "confirmed")
            self.apply(((msg.account, delta),))
            self.respond(msg, "ok")
        self.force_once(("confirm", key), "tcc_confirm", msg.txn, msg.account,
                        then=confirmed)

    def on_tcc_cancel(self, msg: Message) -> None:
        key = (msg.txn, msg.account)
        if self.disk["tcc"].get(key) in ("cancelled", "expired", "confirmed"):
            self.respond(msg, "ok")
            return
        if not self.is_free([msg.account], msg.txn):
            self.respond(msg, "busy")
            return

        def cancelled() -> None:
            state = self.disk["tcc"].get(key)
            if state == "reserved":
                self.release(key, "cancelled")
            elif state is None:         # empty rollback: the try never got here
                self.disk["tcc"][key] = "cancelled"
                self.sim.metrics.counter("tcc.empty_rollbacks").inc()
            self.respond(msg, "ok")
        self.force_once(("cancel", key), "tcc_cancel", msg.txn, msg.account,
                        then=cancelled)

    # -- orchestrator -----------------------------------------------------------
    def on_begin(self, msg: Message) -> None:
        txn = msg.txn
        if txn in self.tccs or txn in self.ended \
                or self.crash_point("coordinator.before_prepare", txn):
            return
        t = self.tccs[txn] = Tcc(txn, msg.legs, msg.src)
        self.force("tcc", txn, msg.legs, msg.src, then=lambda: self.send_ops(t))

    def send_ops(self, t: Tcc) -> None:
        """Send the current phase's request to every leg not yet answered (in
        the confirm phase: the debit first, the credits once it is confirmed)."""
        legs = [leg for leg in t.legs if leg[0] not in t.done]
        kind = TCC_REQUESTS[t.phase]
        if t.phase == "confirming" and any(d < 0 for _, d in legs):
            legs = [leg for leg in legs if leg[1] < 0]
        for account, delta in legs:
            self.tell(self.world.owners[account], kind, txn=t.txn, account=account,
                      delta=delta)
        # Tries get one deadline, then the transaction is cancelled; confirms
        # and cancels are resent until every leg has answered.
        if t.phase == "trying":
            self.set_timer(f"tcc:{t.txn}", self.config.timeout, self.decide, t, False)
        else:
            self.set_timer(f"tcc:{t.txn}", self.config.timeout, self.send_ops, t)

    def resend(self, t: Tcc, account: str) -> None:
        """Ask one leg again after it answered "busy" (if still pending)."""
        delta = dict(t.legs)[account]
        kind = TCC_REQUESTS.get(t.phase)
        if kind is not None and account not in t.done:
            self.tell(self.world.owners[account], kind, txn=t.txn, account=account,
                      delta=delta)

    def on_tcc_try_ok(self, msg: Message) -> None:
        t = self.tccs.get(msg.txn)
        if t is None or t.phase != "trying" or msg.account in t.done:
            return
        if msg.result == "busy":
            self.set_timer(f"again:{t.txn}:{msg.account}", self.backoff(),
                           self.resend, t, msg.account)
        elif msg.result == "refused":
            self.decide(t, False)
        else:
            t.done.append(msg.account)
            if len(t.done) == len(t.legs) \
                    and not self.crash_point("coordinator.after_votes", t.txn):
                self.decide(t, True)

    def decide(self, t: Tcc, confirm: bool) -> None:
        t.phase = "deciding"
        self.cancel_timer(f"tcc:{t.txn}")
        for account, _ in t.legs:   # a retry of the old phase must not fire in the new
            self.cancel_timer(f"again:{t.txn}:{account}")

        def decided() -> None:
            t.phase, t.done = ("confirming" if confirm else "cancelling"), []
            if not self.crash_point("coordinator.after_decision", t.txn):
                self.send_ops(t)
        self.force("tcc_decision", t.txn, confirm, then=decided)

    def on_tcc_confirm_ok(self, msg: Message) -> None:
        t = self.tccs.get(msg.txn)
        if t is None or t.phase != "confirming" or msg.account in t.done:
            return
        if msg.result == "busy":
            self.set_timer(f"again:{t.txn}:{msg.account}", self.backoff(),
                           self.resend, t, msg.account)
        elif msg.result == "expired":   # only the debit can expire: cancel the rest
            self.decide(t, False)
        else:
            t.done.append(msg.account)
            if len(t.done) == len(t.legs):
                self.finish(t, True)
            elif dict(t.legs)[msg.account] < 0:     # the debit is in: the credits
                self.send_ops(t)

    def on_tcc_cancel_ok(self, msg: Message) -> None:
        t = self.tccs.get(msg.txn)
        if t is None or t.phase != "cancelling" or msg.account in t.done:
            return
        if msg.result == "busy":
            self.set_timer(f"again:{t.txn}:{msg.account}", self.backoff(),
                           self.resend, t, msg.account)
            return
        t.done.append(msg.account)
        if len(t.done) == len(t.legs):
            self.finish(t, False)

    def decision(self, txn: str) -> str | None:
        """The "tcc_end" record is lazy, but it follows a forced decision, and
        redoing that decision's confirms or cancels ends the same way."""
        if txn in self.tccs:
            return PENDING
        if txn not in self.ended:
            return None
        last = self.last_record(txn, "tcc_decision", "tcc_end")
        if last is None:                # its refusal is being forced
            return PENDING
        return COMMITTED if last[2] else ABORTED

    def refuse(self, txn: str, then: Callable[[], None]) -> None:
        """End a TCC transaction that never began as cancelled: `on_begin` now
        ignores it."""
        self.ended[txn] = False
        self.force("tcc_end", txn, False, then=then)

    def finish(self, t: Tcc, confirmed: bool) -> None:
        self.cancel_timer(f"tcc:{t.txn}")
        del self.tccs[t.txn]
        self.ended[t.txn] = confirmed
        self.log("tcc_end", t.txn, confirmed)   # lazy: if lost, the ops are resent
        self.tell(t.client, "outcome", txn=t.txn, committed=confirmed)
