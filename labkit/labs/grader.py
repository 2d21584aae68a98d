"""Run a lab's scenarios over seeds against an implementation, and survive it.

Student code cannot break the grader:
- an exception raised by the student's code ends that run only, and is
  reported with its scenario, seed and the method and line it came from;
- a handler that loops through the simulator (timers, messages) is stopped by
  the run's event and message budgets (`Trial.watch`); one that loops without
  ever returning is stopped by a CPU budget, a profiling timer (SIGPROF)
  armed around each run where the platform allows it (Unix, main thread);
- the first seed of every scenario is run twice and the two runs'
  fingerprints compared: a difference means the code reads the wall clock or
  the global random generator, which breaks replay.

The grader measures CPU seconds with `time.process_time` for the report only;
nothing in a simulation ever reads it.
"""

from __future__ import annotations

import re
import signal
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from labkit.errors import InvariantViolation
from labkit.metrics import Result

from .lab import BudgetExceeded, Failed, Lab, Scenario, Trial
from .report import Failure, Report, Run

LABKIT = Path(__file__).resolve().parents[1]   # frames here are not the student's

NONDETERMINISM = ("your code reads the wall clock or global random: two runs with "
                  "seed {seed} differ, which breaks replay. Take time and chance "
                  "only from what the lab gives you (sim.now, self.rng, view.rng), "
                  "and keep no state in class or module variables between runs "
                  "({detail})")
CPU = ("stopped after {seconds:g} s of CPU in one run: a handler loops without end "
       "(or does far too much work per message)")

Progress = Callable[..., Iterable]


SKIPPED = ("not run: seed {seed} of this scenario ran out of its budget, and this "
           "one would too")


@dataclass
class Attempt:
    """One run as the grader saw it: the Run row, plus what a report may keep."""

    run: Run
    result: Result | None
    signature: tuple | None = None
    spent: bool = False             # stopped by a budget


def grade_lab(lab: Lab, impl: type, scenarios: Sequence[Scenario],
              seeds: Sequence[int], progress: Progress | None = None,
              keep: bool = False) -> Report:
    """Run every scenario on every seed (the first seed twice); the Report.
    It keeps the first failed run's Result, or with `keep` the first run's."""
    jobs = [(s, seed) for s in scenarios for seed in seeds]
    parts = tuple(dict.fromkeys(s.part for s in scenarios))
    if progress is not None:
        jobs = progress(jobs, total=len(jobs),
                        description=f"{lab.name}: {', '.join(parts)}")
    runs, failures, first, kept = [], [], None, None
    spent: dict[str, int] = {}       # scenario -> the seed that ran out of budget
    for scenario, seed in jobs:
        if scenario.name in spent:   # a looping answer loops on every seed
            why = SKIPPED.format(seed=spent[scenario.name])
            attempt = Attempt(Run(scenario.name, scenario.part, seed, False, 0.0, 0,
                                  0.0, why), None)
        else:
            attempt = _attempt(lab, scenario, impl, seed,
                               signed=seed == seeds[0])
        if attempt.spent:
            spent[scenario.name] = seed
        elif attempt.signature is not None:
            again = _attempt(lab, scenario, impl, seed, signed=True)
            if again.signature != attempt.signature:
                attempt = _nondeterministic(attempt, again, seed)
            attempt.run = replace(attempt.run, cpu=attempt.run.cpu + again.run.cpu)
        runs.append(attempt.run)
        if keep and kept is None:
            kept = attempt
        if not attempt.run.passed:
            failures.append(_failure(lab, impl, attempt.run))
            if first is None:
                first = attempt
    result = window = None
    if first is None and kept is not None:
        result = kept.result
    elif first is not None and first.result is not None:
        result = first.result
        end = first.run.at if first.run.at is not None else result.end_time
        window = (max(0.0, end - lab.window), end)
    return Report(lab.name, impl.__name__, parts, tuple(runs), tuple(failures),
                  result, window)


def _failure(lab: Lab, impl: type, run: Run) -> Failure:
    replay = (f'lk.labs.replay("{lab.name}", {impl.__name__}, "{run.scenario}", '
              f"seed={run.seed})")
    return Failure(run.scenario, run.part, run.seed, run.why, replay, run.at)


def _attempt(lab: Lab, scenario: Scenario, impl: type, seed: int,
             signed: bool = False) -> Attempt:
    """Run one scenario on one seed; never raises (but for KeyboardInterrupt)."""
    trial = Trial(impl, seed, lab.budget)
    why, spent = "", False
    start = time.process_time()
    try:
        with _cpu_limit(lab.budget.cpu):
            scenario.run(trial)
    except KeyboardInterrupt:
        raise
    except BudgetExceeded as exc:
        why, spent = (str(exc) if trial.spent else f"{exc} ({_where(exc, impl)})",
                      True)
    except BaseException as exc:     # noqa: BLE001 - student code may raise anything
        why = _explain(exc, impl)
        if isinstance(exc, InvariantViolation) and lab.hint(str(exc)):
            why = f"{why}. {lab.hint(str(exc))}"
    cpu = time.process_time() - start
    if trial.spent and not spent:   # the answer caught BudgetExceeded and went on
        why, spent = f"{trial.spent} budget spent, and then: {why}", True
    cluster = trial.cluster
    result = _result(trial) if why or signed or cluster is None else None
    if cluster is not None:
        sim_time = at = cluster.sim.now
    else:
        at = trial.time
        sim_time = result.end_time if result is not None else at or 0.0
    messages = cluster.network.messages_sent if cluster is not None else 0
    at = at if why else None
    run = Run(scenario.name, scenario.part, seed, not why, sim_time, messages, cpu,
              why, at)
    signature = (why, _fingerprint(result)) if signed and not spent else None
    return Attempt(run, result, signature, spent)


def _nondeterministic(first: Attempt, second: Attempt, seed: int) -> Attempt:
    one, two = first.signature[1], second.signature[1]
    if one is not None and two is not None and one != two:
        detail = f"fingerprints {one} and {two}"
    else:                              # the verdicts differ
        detail = "; ".join(f"{name}: {textwrap.shorten(a.run.why or 'passed', 90)}"
                           for name, a in (("first run", first),
                                           ("second run", second)))
    why = NONDETERMINISM.format(seed=seed, detail=detail)
    run = replace(first.run, passed=False, why=why, at=None)
    return Attempt(run, first.result, first.signature)


def _result(trial: Trial) -> Result | None:
    """The run's Result as far as it got (None if it cannot be made)."""
    if trial.recorded is not None:
        return trial.recorded
    if trial.cluster is None:
        return None
    try:
        return trial.cluster.result()
    except Exception:       # noqa: BLE001 - a broken node may break the summary
        return None


def _fingerprint(result: Result | None) -> str | None:
    if result is None:
        return None
    try:
        return result.fingerprint
    except Exception:       # noqa: BLE001 - e.g. a repr with a memory address
        return None


def _explain(exc: BaseException, impl: type | None = None) -> str:
    """Why a run ended with `exc`, in plain words, with where it came from."""
    if isinstance(exc, Failed):
        return str(exc)
    if isinstance(exc, InvariantViolation):
        return f"safety broken: {exc}"
    where = _where(exc, impl)
    if isinstance(exc, NotImplementedError):
        text = str(exc) or "not yet implemented"
        return f"{text} ({where})"
    text = str(exc)
    return f"{type(exc).__name__}{': ' + text if text else ''} ({where})"


def _where(exc: BaseException, impl: type | None = None) -> str:
    """The innermost frame of the traceback outside labkit (the student's
    code), as "in Class.method, line n". An exception raised inside labkit
    because of the student's code is traced back through its cause (a
    StopIteration that became a RuntimeError), or named by the student's
    method its message starts with (a call with the wrong arguments); failing
    both, the innermost frame at all."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen and len(chain) < 5:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for link in chain:
        frames = _frames(link)
        outside = [f for f in frames if not _in_labkit(f.tb_frame.f_code.co_filename)]
        if outside:
            return _frame_name(outside[-1])
    named = re.match(r"(\w+)\.(\w+)\(\)", str(chain[0]))
    if impl is not None and named and named[1] in {c.__name__ for c in impl.__mro__}:
        return f"in {named[1]}.{named[2]}, as labkit called it"
    frames = _frames(chain[0])
    return _frame_name(frames[-1]) if frames else "raised before any code ran"


def _frames(exc: BaseException) -> list:
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames


def _frame_name(tb) -> str:
    code = tb.tb_frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"in {name}, line {tb.tb_lineno}"


def _in_labkit(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(LABKIT)
    except (OSError, ValueError):
        return False


@contextmanager
def _cpu_limit(seconds: float) -> Iterator[None]:
    """Raise BudgetExceeded in whatever runs once `seconds` of CPU are spent.
    Does nothing where SIGPROF is unavailable (Windows) or cannot be handled
    (not the main thread)."""
    try:
        previous = signal.signal(signal.SIGPROF, partial(_out_of_cpu, seconds))
        armed = True
    except (AttributeError, ValueError):
        armed = False
    if armed:
        signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)


def _out_of_cpu(seconds: float, signum, frame) -> None:
    raise BudgetExceeded(CPU.format(seconds=seconds))
