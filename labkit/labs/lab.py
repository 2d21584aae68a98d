"""The vocabulary a lab is written in: `Lab` (its parts, scenarios, worked
answer and skeleton), `Scenario` (one graded situation), `Budget` (what one
run may spend), `Trial` (what a scenario function receives) and the two
exceptions a run can end with, `Failed` and `BudgetExceeded`.

A scenario is a plain function of a `Trial`: it builds a cluster from
`trial.impl` (the student's class) and `trial.seed`, hands it to
`trial.watch` so the run's event and message budgets apply and the report can
show its trace, drives it with the fault verbs, and raises `Failed("why, in
plain words")` when the implementation misbehaves. Safety violations found
by a topic's own referee (`InvariantViolation`) and exceptions raised by the
student's code need no handling: the grader reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import ConfigError


class Failed(Exception):
    """A scenario's verdict: the implementation misbehaved. The message says
    what went wrong in plain words, and what rule it breaks."""


class BudgetExceeded(BaseException):
    """A run spent its event, message or CPU budget: a handler loops or floods.

    A BaseException, like KeyboardInterrupt, so a student's `except Exception`
    cannot swallow it and keep the run going."""


@dataclass(frozen=True)
class Budget:
    """What one run (one scenario on one seed) may spend before it is stopped.

    events: timers and callbacks scheduled; messages: messages sent; cpu:
    seconds of processor time, a last resort against a handler that loops
    without sending or scheduling anything (enforced where the platform
    allows, see `grader`)."""

    events: int = 50_000
    messages: int = 50_000
    cpu: float = 5.0


@dataclass(frozen=True)
class Scenario:
    """One graded situation: `run(trial)` drives it and raises on failure.
    `about` is a one-line description (default: the first line of run's
    docstring)."""

    name: str
    part: str
    run: Callable[[Trial], Any]
    about: str = ""

    def __post_init__(self):
        if not self.about:
            doc = (self.run.__doc__ or self.name).strip()
            object.__setattr__(self, "about", " ".join(doc.split("\n\n")[0].split()))


@dataclass(frozen=True)
class Lab:
    """A lab: a skeleton to fill in, a worked answer, and the scenarios that
    grade an answer, grouped in parts (in the order a student does them).

    skeleton: the class a student derives from (its methods to write raise
    NotImplementedError("not yet implemented: ...")); reference: the worked
    answer, derived from the skeleton. seeds: the default seeds of every
    scenario. window: seconds of trace shown before a failure. hints: plain
    words added to an InvariantViolation whose message starts with the key
    (a rule's name), saying what the rule means and what usually breaks it.
    """

    name: str
    title: str
    parts: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    skeleton: type
    reference: type
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    budget: Budget = Budget()
    window: float = 0.5
    hints: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for s in self.scenarios:
            if s.part not in self.parts:
                raise ConfigError(f"lab {self.name}: scenario {s.name} is in part "
                                  f"{s.part!r}, not one of {self.parts}")
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ConfigError(f"lab {self.name}: scenario names repeat: {names}")
        if not issubclass(self.reference, self.skeleton):
            raise ConfigError(f"lab {self.name}: the reference must derive from "
                              "the skeleton")

    def hint(self, message: str) -> str:
        """The hint for an InvariantViolation's message, or ""."""
        return next((text for rule, text in self.hints.items()
                     if message.startswith(rule)), "")

    def scenario(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise ValueError(f"lab {self.name!r} has no scenario {name!r}; its "
                         f"scenarios are {[s.name for s in self.scenarios]}")

    def selected(self, part: str | Sequence[str] | None) -> tuple[Scenario, ...]:
        """The scenarios of `part` (a name, several, or None for every part)."""
        if part is None:
            return self.scenarios
        wanted = [part] if isinstance(part, str) else list(part)
        for p in wanted:
            if not isinstance(p, str) or p not in self.parts:
                raise ValueError(f"lab {self.name!r} has no part {p!r}; its parts "
                                 f"are {list(self.parts)}")
        return tuple(s for s in self.scenarios if s.part in wanted)


class Trial:
    """One run of one scenario on one seed, as the scenario sees it.

    impl: the class under test; seed: the run's seed. `watch(cluster)` puts
    the budget on a cluster (anything with `sim`, `network` and `result()`)
    and remembers it; `record(result)` remembers a run that has no cluster,
    and such a run keeps `time` (simulated seconds reached) up to date, so a
    failure says when it happened.
    """

    def __init__(self, impl: type, seed: int, budget: Budget):
        self.impl, self.seed, self.budget = impl, seed, budget
        self.cluster: Any = None
        self.recorded = None
        self.time: float | None = None
        self.spent: str | None = None      # the budget that ran out, if any

    def watch(self, cluster: Any) -> Any:
        """Meter `cluster`: every event scheduled and every message sent counts,
        and the run stops with BudgetExceeded when either budget is spent.
        Returns the cluster."""
        sim, network = cluster.sim, cluster.network
        schedule, at, send = sim.schedule, sim.at, network.send
        budget, used = self.budget, [0, 0]

        def spend(kind: int, text: str) -> None:
            used[kind] += 1
            limit = (budget.events, budget.messages)[kind]
            if used[kind] > limit:
                self.spent = ("events", "messages")[kind]
                sim.stop()
                raise BudgetExceeded(text.format(limit=f"{limit:,}", now=sim.now))

        def metered_schedule(delay, fn, *args):
            spend(0, EVENTS)
            return schedule(delay, fn, *args)

        def metered_at(time, fn, *args):
            spend(0, EVENTS)
            return at(time, fn, *args)

        def metered_send(src, dst, kind, body):
            spend(1, MESSAGES)
            return send(src, dst, kind, body)

        sim.schedule, sim.at, network.send = metered_schedule, metered_at, metered_send
        self.cluster = cluster
        return cluster

    def record(self, result: Any) -> Any:
        """Remember the Result of a run that has no cluster; returns it."""
        self.recorded = result
        return result


EVENTS = ("stopped after {limit} events by t = {now:.3f} s: something schedules "
          "timers or callbacks without end (a timer that re-arms itself with no "
          "delay, or a storm of work in every handler)")
MESSAGES = ("stopped after {limit} messages by t = {now:.3f} s: the nodes flood "
            "the network (a handler that sends in a loop, or answers each message "
            "with several that are answered in turn)")
