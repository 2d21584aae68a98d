"""`TxnCluster`, the facade tests and notebooks drive: participants running one
protocol, a client and optionally an auditor, with the shared fault verbs, crash
points placed by name (`crash_at`), a random `workload`, `settle`, what happened
(`outcome`, `views`, `unsettled`, `stats`, `result`) and `check`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from labkit.errors import ConfigError, require_int, require_number, require_probability
from labkit.net import NetConfig
from labkit.node import Cluster
from labkit.txn.base import (
    ABORTED,
    AUDITOR,
    BLOCKED,
    CLIENT,
    CLIENT_KINDS,
    COMMITTED,
    CRASH_POINTS,
    PENDING,
    PREPARED,
    TM,
    Trap,
    TxnConfig,
    TxnNode,
    World,
    nodes_of,
    require_acceptors,
)
from labkit.txn.client import Auditor, TxnClient, TxnRecord
from labkit.txn.invariants import (
    check_atomicity,
    check_conservation,
    check_no_hanging_tries,
    check_no_lost_commits,
)
from labkit.txn.paxos_commit import PaxosCommitNode
from labkit.txn.saga import SagaNode
from labkit.txn.tcc import TccNode
from labkit.txn.two_phase import TwoPhaseNode

NODE_TYPES: dict[str, type[TxnNode]] = {"2pc": TwoPhaseNode,
                                        "paxos_commit": PaxosCommitNode,
                                        "saga": SagaNode, "tcc": TccNode}


class TxnCluster(Cluster):
    """Participants n1..nN, each holding `accounts` accounts ("n1.0", "n1.1", ...)
    of `balance` each, running one protocol; plus "tm" when the coordinator is
    separate, a client that submits transfers (and asks the coordinator for
    an outcome it has not heard every `ask_every` seconds) and, with
    `audit_every`, an auditor. Client and auditor stay outside partitions and
    never crash.

    Other knobs are TxnConfig's. `node`: a class to run on every node instead
    of the protocol's own (a lab answer, see `labkit.labs`), derived from
    TxnNode and built as node(name, network, world). `crash_at` places a crash
    at a named point; `settle` stops the faults and lets everything finish;
    `check` runs the invariants.
    """

    def __init__(self, protocol: str = "2pc", participants: int = 3, *, seed: int = 0,
                 net: NetConfig | None = None, coordinator: str = "colocated",
                 accounts: int = 2, balance: int = 100, fsync: float = 0.0,
                 timeout: float = 0.1, failures: int = 1, ttl: float = 1.0,
                 idempotent: bool = True, fail_step: int | None = None,
                 read_lease: float = 0.05, audit_every: float | None = None,
                 ask_every: float = 0.5, trace: bool = True,
                 node: type[TxnNode] | None = None):
        config = TxnConfig(protocol, coordinator, accounts, balance, fsync, timeout,
                           failures, ttl, idempotent, fail_step, read_lease)
        size = require_int("participants", participants, minimum=1)
        require_acceptors(protocol, size, failures)
        names = [f"n{i}" for i in range(1, size + 1)]
        self.world = World(config, names)
        self.config, self.protocol = config, protocol
        kind = NODE_TYPES[protocol] if node is None else _node_class(node)
        super().__init__(names=names + ([TM] if coordinator == "separate" else []),
                         seed=seed, net=net, trace=trace,
                         node_factory=lambda name, network: kind(name, network,
                                                                 self.world))
        self.client = TxnClient(CLIENT, self.network,
                                require_number("ask_every", ask_every, positive=True))
        self.network.keep_outside_partitions(CLIENT)
        self.initial_total = balance * len(self.world.owners)
        self.auditor: Auditor | None = None
        if audit_every is not None:
            every = require_number("audit_every", audit_every, positive=True)
            self.auditor = Auditor(AUDITOR, self.network, self.world, every,
                                   self.initial_total)
            self.network.keep_outside_partitions(AUDITOR)

    # -- what there is ------------------------------------------------------------
    @property
    def participants(self) -> list[str]:
        return list(self.world.participants)

    @property
    def accounts(self) -> list[str]:
        return list(self.world.owners)

    def owner(self, account: str) -> str:
        try:
            return self.world.owners[account]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown account {account!r}; accounts are "
                              f"{self.accounts}") from None

    def coordinator_of(self, txn: str) -> str:
        """The node that coordinates (or orchestrates) a submitted transaction."""
        legs = self.record(txn).legs
        return TM if self.config.coordinator == "separate" else self.owner(legs[0][0])

    def record(self, txn: str) -> TxnRecord:
        try:
            return self.client.records[txn]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown transaction {txn!r}") from None

    def balances(self) -> dict[str, int]:
        """Every account's durable balance (a crashed node's disk included)."""
        return {a: self.nodes[owner].balances[a]
                for a, owner in self.world.owners.items()}

    def total(self) -> int:
        return sum(self.balances().values())

    # -- what the client does -------------------------------------------------------
    def submit(self, legs: Iterable[tuple[str, int]]) -> str:
        """Start a transaction of legs (account, delta) that sum to zero; returns
        its id ("t1", "t2", ...). The first leg's node coordinates (co-located),
        or, for 2PC with a separate coordinator, prepares first and hands over."""
        legs = self.check_legs(legs)
        first = self.owner(legs[0][0])
        coordinator = TM if self.config.coordinator == "separate" else first
        entry = first if self.protocol == "2pc" else coordinator
        return self.client.submit(legs, entry, coordinator)

    def transfer(self, src: str, dst: str, amount: int) -> str:
        """Move `amount` from account `src` to account `dst`."""
        amount = require_int("amount", amount, minimum=1)
        return self.submit(((src, -amount), (dst, amount)))

    def check_legs(self, legs: Iterable[tuple[str, int]]) -> tuple:
        try:
            legs = tuple((account, delta) for account, delta in legs)
        except (TypeError, ValueError):
            raise ConfigError(f"legs must be (account, delta) pairs, got {legs!r}") \
                from None
        if len(legs) < 2:
            raise ConfigError(f"a transaction needs at least two legs, got {legs}")
        for account, delta in legs:
            self.owner(account)
            if require_int(f"delta of {account}", delta) == 0:
                raise ConfigError(f"leg {account}: delta must not be 0")
        if len({a for a, _ in legs}) < len(legs):
            raise ConfigError(f"each account may appear in one leg only, got {legs}")
        if sum(d for _, d in legs) != 0:
            raise ConfigError(f"legs must sum to 0 (money moves, it is never made), "
                              f"got {legs}")
        if self.protocol == "tcc" and sum(d < 0 for _, d in legs) != 1:
            raise ConfigError(f"a TCC transfer has exactly one debit leg, got {legs}")
        return legs

    def workload(self, rate: float, duration: float, *, contention: float = 0.0,
                 amount: int = 5) -> None:
        """Submit random transfers as a Poisson stream of `rate` per second for the
        next `duration` seconds, each 1..`amount` between accounts on different
        nodes; with probability `contention` the credit goes to the one hot
        account (the first, "n1.0"), so such transfers compete for its row."""
        rate = require_number("rate", rate, positive=True)
        end = self.now + require_number("duration", duration, minimum=0.0)
        contention = require_probability("contention", contention)
        amount = require_int("amount", amount, minimum=1)
        if len(self.participants) < 2:
            raise ConfigError("a workload moves money between nodes: it needs at "
                              "least 2 participants")
        rng, owners = self.sim.rng("workload"), self.world.owners
        accounts = self.accounts

        def arrive() -> None:
            if self.now >= end:
                return
            dst = accounts[0] if rng.random() < contention else rng.choice(accounts)
            src = rng.choice([a for a in accounts if owners[a] != owners[dst]])
            self.transfer(src, dst, rng.randint(1, amount))
            self.sim.schedule(rng.expovariate(rate), arrive)
        self.sim.schedule(rng.expovariate(rate), arrive)

    # -- faults ---------------------------------------------------------------------
    def crash_at(self, point: str, node: str | None = None, txn: str | None = None,
                 restart_after: float | None = None) -> None:
        """Arm a crash: the first time `node` (any node if None) reaches `point`
        (one of CRASH_POINTS) for `txn` (any transaction if None), it crashes;
        it restarts `restart_after` seconds later, or stays down if None.

        coordinator.before_prepare: it has the transaction, nothing sent yet.
        coordinator.after_votes: every vote is yes (saga: a step is done;
            TCC: every try succeeded), no decision yet.
        coordinator.after_decision: the decision is logged (Paxos Commit:
            known), nothing sent yet.
        participant.before_vote: a prepare (saga step, TCC try) has arrived.
        participant.after_vote: it forced its record and voted yes.
        """
        if point not in CRASH_POINTS:
            raise ConfigError(f"point must be one of {CRASH_POINTS}, got {point!r}")
        if node is not None:
            self.node(node)
        if txn is not None and not isinstance(txn, str):
            raise ConfigError(f"txn must be a transaction id like 't1', got {txn!r}")
        if restart_after is not None:
            restart_after = require_number("restart_after", restart_after,
                                           minimum=0.0)
        self.world.traps.append(Trap(point, node, txn, restart_after))

    def settle(self, seconds: float = 5.0) -> list[str]:
        """Stop the faults (heal, no loss, restart every node, no armed crash)
        and run `seconds`; returns what is still unsettled (see `unsettled`)."""
        self.world.traps.clear()
        self.heal()
        self.network.update(loss=0.0)
        for name in self.names:
            self.restart(name)
        self.run(seconds)
        return self.unsettled()

    # -- what happened --------------------------------------------------------------
    def outcome(self, txn: str) -> str:
        """committed, aborted, blocked (2PC / Paxos Commit: a live participant is
        prepared, holds its rows and does not know the decision) or pending
        (still running, or waiting for a crashed node's log). A transaction no
        one remembers is aborted: the presumption of presumed abort."""
        legs = self.record(txn).legs
        coordinator = self.nodes[self.coordinator_of(txn)]
        if self.protocol in ("2pc", "paxos_commit"):
            views = {p: self.nodes[p].outcomes().get(txn)
                     for p in nodes_of(legs, self.world.owners)}
            for state in (COMMITTED, ABORTED):
                if state in views.values():
                    return state
            if any(v in (PREPARED, "committing") and self.is_up(p)
                   for p, v in views.items()):
                return BLOCKED
            running = coordinator.rounds if self.protocol == "2pc" \
                else coordinator.leading
            return PENDING if PREPARED in views.values() or (
                coordinator.alive and txn in running) else ABORTED
        ended = {r[1]: r[2] for r in coordinator.records("saga_end", "tcc_end")}
        if coordinator.alive:
            ended.update(coordinator.ended)
        if txn in ended:
            return COMMITTED if ended[txn] else ABORTED
        started = any(r[1] == txn for r in coordinator.records("saga", "tcc"))
        return PENDING if started or txn in getattr(coordinator, "sagas", {}) \
            or txn in getattr(coordinator, "tccs", {}) else ABORTED

    def outcomes(self) -> dict[str, str]:
        return {txn: self.outcome(txn) for txn in self.client.records}

    def outcome_known(self) -> float:
        """The share of submitted transactions whose outcome the client knows
        (told, or answered when it asked); 1.0 if none were submitted."""
        records = self.client.records.values()
        if not records:
            return 1.0
        return sum(r.outcome is not None for r in records) / len(records)

    def views(self, txn: str) -> dict[str, str]:
        """What each participant of `txn` knows of it now, in words, from its
        disk and (while it is up) its memory; "(down)" marks a crashed node. A
        saga's or TCC's node with two legs of `txn` answers for each, keyed
        "node (account)": each leg is its own step there."""
        legs, out = self.record(txn).legs, {}
        owners = [self.owner(account) for account, _ in legs]
        per_leg = self.protocol in ("saga", "tcc")
        for step, (account, _) in enumerate(legs):
            name = self.owner(account)
            node = self.nodes[name]
            key = f"{name} ({account})" if per_leg and owners.count(name) > 1 \
                else name
            if self.protocol in ("2pc", "paxos_commit"):
                view = node.outcomes().get(txn, "knows nothing")
            elif self.protocol == "saga":
                done = node.disk["done"]
                view = {"ok": "did its step", "failed": "refused its step"}.get(
                    done.get((txn, step, "do")), "nothing yet")
                if done.get((txn, step, "undo")) == "ok":
                    view = "did and undid its step"
            else:
                view = node.disk["tcc"].get((txn, account), "nothing yet")
            out[key] = view if node.alive else f"{view} (down)"
        return out

    def in_doubt(self) -> list[tuple[str, str]]:
        """(txn, node) for every live participant that is prepared and does not
        know the decision: it holds its rows locked until it learns it."""
        return [(txn, name) for name in self.participants
                if self.nodes[name].alive
                for txn in getattr(self.nodes[name], "doubt", {})]

    def unsettled(self) -> list[str]:
        """Everything that keeps the system from quiescence, as sentences: rows
        locked, participants in doubt, funds frozen, sagas or TCC transactions
        still running, nodes down. Empty means settled."""
        out = [f"{name} is down" for name in self.names if not self.is_up(name)]
        for name in self.names:
            node = self.nodes[name]
            out += [f"{name} holds {account} for {txn}"
                    for account, txn in node.locks.items()]
            out += [f"{txn} in doubt at {name}" for txn in getattr(node, "doubt", {})]
            out += [f"{amount} frozen at {account}"
                    for account, amount in node.disk.get("frozen", {}).items()
                    if amount]
            out += [f"saga {txn} running at {name}" for txn in getattr(node, "sagas",
                                                                        {})]
            out += [f"tcc {txn} running at {name}" for txn in getattr(node, "tccs", {})]
        return out

    def stats(self) -> dict[str, float]:
        """Per-run numbers: counts, abort rate, latency, protocol messages and
        forced log writes per submitted transaction, lock hold time."""
        m, records = self.sim.metrics, list(self.client.records.values())
        submitted = len(records)
        committed = sum(r.outcome == COMMITTED for r in records)
        aborted = sum(r.outcome == ABORTED for r in records)
        latency = m.histogram("txn.latency")
        hold = m.histogram("lock.hold")
        per = max(submitted, 1)
        return {
            "submitted": submitted, "committed": committed, "aborted": aborted,
            "unanswered": submitted - committed - aborted,
            "outcome known": self.outcome_known(),
            "abort rate": aborted / max(committed + aborted, 1),
            "mean latency (ms)": latency.mean * 1e3 if latency.count else 0.0,
            "p99 latency (ms)": latency.percentile(99) * 1e3 if latency.count
            else 0.0,
            "messages per txn": protocol_messages(self.network.sent) / per,
            "forced writes per txn": m.counter("log.forced").value / per,
            "mean lock hold (ms)": hold.mean * 1e3 if hold.count else 0.0,
            "max lock hold (ms)": float(max(hold.values)) * 1e3 if hold.count else 0.0,
        }

    def result(self, scenario: str | None = None, *,
               data: dict[str, Any] | None = None, **params: Any):
        """Freeze the run: metrics, trace, and in `data` the names, each
        transaction's record and outcome, balances, stats and message counts,
        plus whatever `data` adds."""
        records = [dataclasses.astuple(r) for r in self.client.records.values()]
        data = {"names": self.names, "protocol": self.protocol,
                "records": records, "outcomes": self.outcomes(),
                "balances": self.balances(), "stats": self.stats(),
                "messages": self.network.counts(), "up": self.up(),
                "in_doubt": self.in_doubt(), "unsettled": self.unsettled(),
                **(data or {})}
        return self.sim.result(scenario or f"txn:{self.protocol}", params, data)

    def check(self) -> None:
        """Every invariant, as far as it is defined at this moment, so it may be
        called at any time, during faults too: atomicity and no hanging tries
        always; no lost commits (a told commit is never aborted; once settled,
        it is committed everywhere and in the balances) and conservation once
        settled (see `unsettled`)."""
        check_atomicity(self)
        check_no_lost_commits(self)
        check_no_hanging_tries(self)
        if not self.unsettled():
            check_conservation(self)


def _node_class(node: object) -> type[TxnNode]:
    if not (isinstance(node, type) and issubclass(node, TxnNode)):
        raise ConfigError(f"node must be a class derived from TxnNode (e.g. a lab "
                          f"answer), got {node!r}")
    return node


def protocol_messages(sent: dict[str, int]) -> int:
    """Messages of the commit protocol itself: every kind but the client's and
    the auditor's."""
    return sum(n for kind, n in sent.items() if kind not in CLIENT_KINDS)
