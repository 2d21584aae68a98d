"""The labs framework: grade() refuses bad arguments clearly, student code
cannot break the grader (exceptions, loops, floods, the wall clock and the
global random generator are each reported with their scenario and seed), and
the report, replay, skeleton source and failure diagram say what they should.
The mutants of each lab are in tests/test_labs_<lab>.py."""

from __future__ import annotations

import ast
import dataclasses
import random
import time

import pytest

import labkit
import labkit.labs as labs
from labkit import NetConfig, plot
from labkit.labs import Report, grader
from labkit.raft import RaftCluster

Raft = labs.reference("raft")
Policy = labs.reference("balancing")


def assert_caught(lab: str, mutant: type, scenario: str, reasons: list[str],
                  part: str | None = None) -> None:
    """`mutant` fails grading at the default seeds, in `scenario` among others,
    and every failure gives one of `reasons` (the right reason, never another).
    With `part`, only that part's scenarios are graded."""
    report = labs.grade(lab, mutant, part=part)
    assert not report.passed, f"{mutant.__name__} passed:\n{report!r}"
    assert scenario in {f.scenario for f in report.failures}, repr(report)
    for failure in report.failures:
        assert any(r in failure.why for r in reasons), str(failure)


def changed(impl: type) -> set[str]:
    """What a subclass of the worked answer defines itself (methods, attributes):
    a mutant that changes only methods one part of a lab calls may be graded on
    that part alone."""
    return set(vars(impl)) - set(vars(type("Empty", (), {})))


#: How many seeds (0, 1, ...: they hold the default seeds 1-5 students are
#: graded on) the worked answer must pass, per part: 100, or 30 where one seed
#: costs 0.2-0.5 s of CPU (the statistical latency and availability checks of
#: balancing and the breaker, multi-Paxos's long runs). Each seed is another
#: run with other random faults; what the seeds beyond the default ones catch
#: is a check too tight for a correct answer (a tolerance, a budget) or a rare
#: interleaving the answer gets wrong. A flaw that fails 10 % of seeds passes
#: 30 seeds unseen with probability 0.9**30 = 4 %, 100 seeds with 0.003 %.
SEEDS = {("balancing", "least_outstanding"): 30, ("balancing", "power_of_d"): 30,
         ("resilience", "breaker"): 30, ("paxos", "multi"): 30}


def assert_reference_passes(lab: str, part: str) -> None:
    """The worked answer passes every scenario of `part` on its SEEDS seeds."""
    seeds = range(SEEDS.get((lab, part), 100))
    report = labs.grade(lab, labs.reference(lab), part=part, seeds=seeds)
    assert report.passed, "\n".join(str(f) for f in report.failures[:5])


def grade_one(impl, scenario="initial_election", seeds=(1,), **budget) -> Report:
    """Grade one Raft scenario, with a smaller budget if given."""
    lab = labs.lab("raft")
    if budget:
        lab = dataclasses.replace(lab, budget=dataclasses.replace(lab.budget,
                                                                  **budget))
    return grader.grade_lab(lab, impl, (lab.scenario(scenario),), tuple(seeds))


# -- bad arguments --------------------------------------------------------------

@pytest.mark.parametrize("args,kwargs,error,words", [
    (("nosuchlab", Raft), {}, ValueError, "unknown lab 'nosuchlab'; labs are"),
    ((5, Raft), {}, TypeError, "a lab is named by a string"),
    (("raft", object.__new__(Raft)), {}, TypeError,
     "needs your class, derived from lk.labs.skeleton(\"raft\") (RaftSkeleton), "
     "not an instance of RaftReference"),
    (("raft", Policy), {}, TypeError, 'must derive from lk.labs.skeleton("raft")'),
    (("raft", "MyRaft"), {}, TypeError, "needs your class"),
    (("raft", Raft), {"part": "elections"}, ValueError,
     "no part 'elections'; its parts are ['election'"),
    (("raft", Raft), {"part": ["election", 3]}, ValueError, "no part 3"),
    (("raft", Raft), {"seeds": 5}, TypeError, "seeds must be a list of ints"),
    (("raft", Raft), {"seeds": []}, ValueError, "seeds is empty"),
    (("raft", Raft), {"seeds": [1, "2"]}, TypeError, "every seed must be an int"),
    (("raft", Raft), {"seeds": [1.0]}, TypeError, "every seed must be an int"),
    (("raft", Raft), {"progress": "yes"}, TypeError, "progress must be a function"),
])
def test_grade_refuses_bad_arguments(args, kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(
            ")", r"\)").replace("[", r"\[")):
        labs.grade(*args, **kwargs)


def test_replay_refuses_an_unknown_scenario():
    with pytest.raises(ValueError, match="no scenario 'figure9'"):
        labs.replay("raft", Raft, "figure9", seed=1)


# -- student code cannot break the grader ----------------------------------------

class Raises(Raft):
    def on_request_vote(self, msg):
        return {}[msg.candidate_id]


class Spins(Raft):
    def on_heartbeat_timeout(self):
        self.set_timer("spin", 0.0, self.on_heartbeat_timeout)


class Floods(Raft):
    def on_append_entries(self, msg):
        while True:
            self.send(msg.src, "append_entries_ok", term=0, success=False,
                      match_index=0)


class SwallowsEverything(Floods):
    def on_append_entries(self, msg):
        try:
            super().on_append_entries(msg)
        except BaseException:   # noqa: BLE001 - the bug under test
            pass


class Loops(Raft):
    def on_request_vote(self, msg):
        while True:
            pass


class ReadsTheClock(Raft):
    def reset_election_timer(self):
        lo, hi = self.config.election_timeout
        jitter = time.perf_counter_ns() % 1000 / 1000
        self.set_timer("election", lo + jitter * (hi - lo), self.on_election_timeout)


class UsesGlobalRandom(Raft):
    def reset_election_timer(self):
        self.set_timer("election", random.uniform(*self.config.election_timeout),
                       self.on_election_timeout)


def test_a_handler_that_raises_is_reported_with_scenario_and_seed():
    report = labs.grade("raft", Raises, part="election", seeds=[3, 4])
    assert not report.passed and len(report.failures) == len(report.runs)
    first = report.failures[0]
    assert (first.scenario, first.seed, first.part) == ("initial_election", 3,
                                                        "election")
    assert first.why.startswith("KeyError: 'n")
    assert "in Raises.on_request_vote, line" in first.why
    assert first.replay == ('lk.labs.replay("raft", Raises, "initial_election", '
                            "seed=3)")


def test_a_timer_loop_is_stopped_by_the_event_budget():
    report = grade_one(Spins, seeds=(1, 2))
    first, second = report.failures
    assert first.why.startswith("stopped after 50,000 events by t = ")
    assert "re-arms itself with no delay" in first.why
    assert second.why.startswith("not run: seed 1 of this scenario ran out")


@pytest.mark.parametrize("impl", [Floods, SwallowsEverything])
def test_a_flood_is_stopped_by_the_message_budget(impl):
    report = grade_one(impl, messages=5_000)
    why = report.failures[0].why
    assert "5,000 messages" in why and "flood the network" in why


def test_a_loop_that_never_returns_is_stopped_by_the_cpu_budget():
    start = time.process_time()
    report = grade_one(Loops, cpu=0.5)
    assert time.process_time() - start < 5
    why = report.failures[0].why
    assert why.startswith("stopped after 0.5 s of CPU in one run")
    assert "in Loops.on_request_vote, line" in why


@pytest.mark.parametrize("impl", [ReadsTheClock, UsesGlobalRandom])
def test_wall_clock_and_global_random_are_caught(impl):
    report = grade_one(impl, seeds=(7, 8))
    assert [f.seed for f in report.failures] == [7]       # the seed run twice
    why = report.failures[0].why
    assert why.startswith("your code reads the wall clock or global random: two "
                          "runs with seed 7 differ, which breaks replay")
    assert "fingerprints" in why


def test_the_kernel_survives_and_the_grader_is_reusable():
    for impl in (Raises, Spins, Floods):
        grade_one(impl, messages=2_000, events=2_000)
    assert grade_one(Raft, seeds=(1, 2)).passed


# -- the report ---------------------------------------------------------------------

class CommitsEarly(Raft):
    """Commits by counting replicas: the Figure 8 bug."""

    def advance_commit_index(self):
        stored = sorted([self.last_index(), *self.match_index.values()])
        self.commit_index = max(self.commit_index, stored[-self.majority])


@pytest.fixture(scope="module")
def failed() -> Report:
    return labs.grade("raft", CommitsEarly, part="replication", seeds=[1, 2])


def test_report_table_and_failures(failed):
    assert not failed.passed
    rows = {r["scenario"]: r for r in failed.rows()}
    assert rows["figure8"]["seeds passed"] == "0/2"
    assert rows["basic_agreement"]["seeds passed"] == "2/2"
    assert list(failed.frame(cpu=False).columns) == [
        "part", "seeds passed", "simulated s", "messages"]
    assert "CPU s" in failed.frame().columns
    text = repr(failed)
    runs = 2 * sum(s.part == "replication" for s in labs.scenarios("raft"))
    assert text.startswith(f"raft lab, CommitsEarly (replication): FAILED, "
                           f"{runs - 2}/{runs} runs")   # figure8 fails both seeds
    assert 'lk.labs.replay("raft", CommitsEarly, "figure8", seed=1)' in text
    assert "<table>" in failed._repr_html_() and "figure8" in failed._repr_html_()
    first = failed.failures[0]
    assert "leader completeness" in first.why and "Figure 8" in first.why
    assert first.at is not None and failed.window == (first.at - 1.0, first.at)


def test_the_first_failure_replays_exactly_and_draws(failed):
    first = failed.failures[0]
    replayed = eval(first.replay, {"lk": labkit, "CommitsEarly": CommitsEarly})
    assert replayed.failures[0].why == first.why
    assert replayed.result.fingerprint == failed.result.fingerprint
    fig = plot.lab_failure(replayed)
    assert "figure8, seed 1" in fig.layout.title.text
    start, end = replayed.window
    assert list(fig.layout.xaxis.range) == [round(start, 6), round(end, 6)]


def test_a_passing_replay_keeps_its_result_and_draws_a_note():
    report = labs.replay("raft", Raft, "basic_agreement", seed=2)
    assert report.passed and report.result is not None and report.window is None
    fig = plot.lab_failure(report)
    assert fig.layout.annotations[0].text == "no failure to draw: every run passed"


def test_progress_wraps_the_runs():
    seen = []

    def progress(runs, total, description):
        seen.append((total, description))
        yield from runs

    labs.grade("balancing", Policy, part="least_outstanding", seeds=[1],
               progress=progress)
    assert seen == [(4, "balancing: least_outstanding")]


# -- skeletons and sources ----------------------------------------------------------

@pytest.mark.parametrize("lab", labs.LABS)
def test_skeleton_source_is_a_cell_that_defines_the_class(lab):
    source = labs.skeleton_source(lab, "MyAnswer")
    tree = ast.parse(source)
    (cls,) = tree.body
    assert cls.name == "MyAnswer"
    assert ast.unparse(cls.bases[0]) == f"lk.labs.skeleton('{lab}')"
    methods = [f for f in cls.body if isinstance(f, ast.FunctionDef)]
    assert methods and all("NotImplementedError" in ast.unparse(f) for f in methods)
    namespace = {"lk": labkit}
    exec(compile(source, "<cell>", "exec"), namespace)      # builtins only
    assert issubclass(namespace["MyAnswer"], labs.skeleton(lab))


@pytest.mark.parametrize("lab", labs.LABS)
def test_the_skeleton_fails_every_run_saying_what_to_write(lab):
    report = labs.grade(lab, labs.skeleton(lab), seeds=[1])
    assert len(report.failures) == len(report.runs)
    assert all("not yet implemented: " in f.why for f in report.failures)


@pytest.mark.parametrize("lab", labs.LABS)
def test_reference_derives_from_skeleton_and_source_is_readable(lab):
    assert issubclass(labs.reference(lab), labs.skeleton(lab))
    assert f"class {labs.reference(lab).__name__}(" in labs.source(lab)
    assert "NotImplementedError" in labs.source(lab, "skeleton")
    assert labs.parts(lab) == list(labs.lab(lab).parts)
    assert {s.part for s in labs.scenarios(lab)} == set(labs.parts(lab))
    assert all(s.about for s in labs.scenarios(lab))


def test_the_answer_runs_in_the_cluster_facade():
    raft = RaftCluster(5, seed=1, node=Raft, net=NetConfig(latency=0.010))
    raft.run(1.0)
    old = raft.leader()
    raft.kill(old)
    raft.run(1.0)
    assert raft.leader() not in (None, old)
    assert [raft.submit(c) for c in "xyz"] == [1, 2, 3]
    raft.run(0.5)
    assert all(raft.applied(n) == list("xyz") for n in raft.names if n != old)
    raft.restart(old)
    raft.run(0.5)
    assert raft.applied(old) == list("xyz")
    raft.check()
    assert len(plot.roles(raft.result()).data) > 0


def test_the_playground_drives_the_answer():
    from labkit.widgets import RaftPlayground

    playground = RaftPlayground(RaftCluster(5, seed=1, node=Raft, trace=False))
    playground.advance()
    playground.advance()
    cluster = playground.cluster
    assert cluster.leader() is not None and playground.committed() > 0
    cluster.check()
