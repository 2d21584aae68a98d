"""Labs (动手实验): build a protocol yourself, then let the grader break it.

A student derives a class from a lab's skeleton, whose methods raise
NotImplementedError("not yet implemented: <what this method must do>"), and
fills them in. The class plugs into the topic's own facade (for Raft,
`RaftCluster(5, seed=1, node=MyRaft)`) with the same fault verbs, checks,
playground and diagrams as labkit's implementation. Then

    rep = lk.labs.grade("raft", MyRaft, part="election")

runs the lab's scenarios (course-style situations with crashes, restarts,
partitions, loss, duplication and reordering) over several seeds each, checks
the topic's invariants, and returns a `Report`: a table (scenario, seeds
passed, simulated time, messages, CPU seconds), `.passed`, `.failures` (each
with scenario, seed, part, `why` in plain words and a one-line `replay` call),
and for the first failure the run's trace, which `labkit.plot.lab_failure`
draws as a space-time diagram. `reference(lab)` is the worked answer and
`skeleton(lab)` the empty one.

Adding a lab. Write `labkit/labs/<name>.py` (or a package `<name>/`) that
defines `LAB`, a `lab.Lab` with
- `skeleton`: the class students derive from. Put what is given (plumbing,
  helpers) in a base class and only the methods to write in the skeleton,
  each raising NotImplementedError("not yet implemented: ...") and with a
  docstring saying what it must do; annotate them with builtins only, since
  `skeleton_source` pastes them into a notebook cell;
- `reference`: the worked answer, a subclass of the skeleton;
- `parts`: names, in the order a student does them;
- `scenarios`: `lab.Scenario(name, part, run)`, where `run(trial)` builds the
  topic's facade from `trial.impl` and `trial.seed`, passes it to
  `trial.watch` (budgets, trace), drives it, and raises `lab.Failed("why")`
  on misbehaviour; invariant checkers may raise InvariantViolation;
- optionally `seeds`, `budget` (events, messages, CPU per run) and `window`.
Then add the name to `LABS` below, write mutants of the reference in
`tests/test_labs*.py` (each must fail for the right reason), a notebook in
`notebooks/labs/` and a row in bench/labs.py. A lab imports its topic and the
core, and `lab` (never `grader` or another lab); it never imports plot or
widgets.

Where things are: `lab` (the vocabulary above), `grader` (running runs:
budgets, exceptions, the determinism check), `report` (`Report`, `Run`,
`Failure`), and one module or package per lab (`raft`, `balancing`).
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from collections.abc import Callable, Iterable, Sequence

from .grader import grade_lab
from .lab import Budget, BudgetExceeded, Failed, Lab, Scenario, Trial
from .report import Failure, Report, Run

#: Every lab, by name: each is the module labkit.labs.<name>, which defines LAB.
LABS = ("raft", "balancing", "paxos", "storage", "resilience", "txn", "mapreduce")


def lab(name: str) -> Lab:
    """The Lab called `name` (see LABS)."""
    if not isinstance(name, str):
        raise TypeError(f"a lab is named by a string, one of {list(LABS)}; "
                        f"got {name!r}")
    if name not in LABS:
        raise ValueError(f"unknown lab {name!r}; labs are {list(LABS)}")
    return importlib.import_module(f"labkit.labs.{name}").LAB


def parts(name: str) -> list[str]:
    """The parts of a lab, in the order a student does them."""
    return list(lab(name).parts)


def scenarios(name: str, part: str | None = None) -> list[Scenario]:
    """The scenarios of a lab (of one part), in grading order."""
    return list(lab(name).selected(part))


def reference(name: str) -> type:
    """The worked answer of a lab: a class derived from its skeleton."""
    return lab(name).reference


def skeleton(name: str) -> type:
    """The class a student derives from; its methods to write raise
    NotImplementedError saying what they must do."""
    return lab(name).skeleton


def source(name: str, which: str = "reference") -> str:
    """The source code of a lab's reference (or skeleton), to read."""
    if which not in ("reference", "skeleton"):
        raise ValueError(f"which must be 'reference' or 'skeleton', got {which!r}")
    return inspect.getsource(getattr(lab(name), which))


def skeleton_source(name: str, cls: str = "MyAnswer") -> str:
    """The skeleton as a notebook cell: `class <cls>(lk.labs.skeleton(name)):`
    followed by the skeleton's docstring and methods, ready to fill in."""
    if not cls.isidentifier():
        raise ValueError(f"cls must be a class name, got {cls!r}")
    code = inspect.getsource(skeleton(name))
    header, body = code.split("\n", 1)
    if not header.startswith("class "):
        raise ValueError(f"the skeleton of {name!r} must be a plain class")
    return f'class {cls}(lk.labs.skeleton("{name}")):\n{body}'


def grade(name: str, impl: type, *, part: str | Sequence[str] | None = None,
          seeds: Iterable[int] | None = None,
          progress: Callable[..., Iterable] | None = None) -> Report:
    """Grade `impl` (a class derived from `skeleton(name)`) on the lab's
    scenarios of `part` (a name, several, or None for all) over `seeds`
    (default: the lab's). `progress`: a wrapper that shows a progress bar
    while it yields the runs, called as progress(runs, total=, description=),
    e.g. labkit.widgets.progress."""
    the_lab = lab(name)
    _check_impl(the_lab, impl)
    chosen = the_lab.selected(part)
    seeds = the_lab.seeds if seeds is None else _seeds(seeds)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function like labkit.widgets.progress, "
                        f"got {progress!r}")
    return grade_lab(the_lab, impl, chosen, tuple(seeds), progress)


def replay(name: str, impl: type, scenario: str, seed: int) -> Report:
    """Run one scenario on one seed exactly as grading did; the Report keeps
    the run's Result (`.result`) whether it failed or not."""
    the_lab = lab(name)
    _check_impl(the_lab, impl)
    return grade_lab(the_lab, impl, (the_lab.scenario(scenario),), _seeds([seed]),
                     keep=True)


def _check_impl(the_lab: Lab, impl: object) -> None:
    base = the_lab.skeleton
    hint = f'lk.labs.skeleton("{the_lab.name}") ({base.__name__})'
    if not isinstance(impl, type):
        what = (f"an instance of {type(impl).__name__}" if isinstance(impl, base)
                else repr(impl))
        raise TypeError(f"grade() needs your class, derived from {hint}, not "
                        f"{textwrap.shorten(what, 80)}")
    if not issubclass(impl, base):
        raise TypeError(f"{impl.__name__} must derive from {hint}")


def _seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    if isinstance(seeds, int | str) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a list of ints, e.g. range(5); got {seeds!r}")
    out = tuple(seeds)
    if not out:
        raise ValueError("seeds is empty: give at least one seed")
    for s in out:
        if type(s) is not int:
            raise TypeError(f"every seed must be an int, got {s!r}")
    return out


__all__ = [
    "LABS", "Budget", "BudgetExceeded", "Failed", "Failure", "Lab", "Report", "Run",
    "Scenario", "Trial", "grade", "lab", "parts", "reference", "replay", "scenarios",
    "skeleton", "skeleton_source", "source",
]
