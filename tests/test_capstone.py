"""The capstone (notebook 09): the service under its fault schedule, the SLO
scorecard, the tuning journal and the control panel's callbacks.

A run takes most of a second, so runs are shared by module-scoped fixtures.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest

from labkit import plot, scenarios, widgets
from labkit.errors import ConfigError
from labkit.metrics import Metrics, Result, record_items
from labkit.scenarios import (
    CAPSTONE_FAULTS,
    CAPSTONE_START,
    CAPSTONE_TUNED,
    SLO,
    CapstoneFault,
    TuningJournal,
    capstone,
    scorecard,
    verdict,
)
from labkit.scenarios.capstone import CapstoneRun
from labkit.scenarios.capstone.objectives import percentile_interval, share_interval

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def start() -> Result:
    return capstone(1, **CAPSTONE_START)


@pytest.fixture(scope="module")
def tuned() -> Result:
    return capstone(1, **CAPSTONE_TUNED)


def summary_result(p99_ms: float, availability: float, lost: int,
                   **params) -> Result:
    """A stand-in capstone Result carrying only the numbers a scorecard reads."""
    return Result("capstone", {**CAPSTONE_START, "kill": (), **params}, seed=0,
                  metrics=Metrics(), data=CapstoneRun(
                      windows=[], load={}, roles={}, faults=[], operations={},
                      headline="", summary={"p99 (ms)": p99_ms,
                                            "availability": availability,
                                            "lost acked writes": lost}))


# -- scorecard ---------------------------------------------------------------------

def test_scorecard_marks_each_objective_met_or_missed():
    slo = SLO(p99_ms=400, availability=0.999, lost_writes=0)
    card = scorecard(summary_result(400.0, 0.999, 0), slo)      # exactly on target
    assert list(card.index) == ["p99 latency (ms)", "availability (%)",
                                "lost acknowledged writes"]
    assert card["met"].all()
    card = scorecard(summary_result(400.1, 0.9989, 1), slo)
    assert not card["met"].any()
    assert card.loc["availability (%)", "measured"] == pytest.approx(99.89)


def test_verdict_names_exactly_the_missed_objectives():
    slo = SLO(p99_ms=400, availability=0.99, lost_writes=0)
    assert verdict(summary_result(120.0, 0.995, 0), slo) == "meets the SLO"
    said = verdict(summary_result(120.0, 0.98, 3), slo)
    assert said.startswith("misses ") and "p99" not in said
    assert "availability (%) 98" in said and "lost acknowledged writes 3" in said


def binomial_below(n: int, p: float, k: int) -> float:
    """P(Binomial(n, p) < k), summed term by term (in logs: no overflow)."""
    return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * math.log(p) + (n - i) * math.log(1 - p))
               for i in range(k))


@pytest.mark.parametrize("n", [500, 2000])
def test_percentile_interval_covers_the_percentile_95_times_in_100(n):
    # Between the order statistics x(lo) and x(hi) (0-based ranks) lies the
    # true p-quantile exactly when lo < #draws below it <= hi: a binomial count.
    values = list(range(n))                   # ranks are values
    low, high = percentile_interval(values, 99)
    lo, hi = int(low), int(high)
    covered = binomial_below(n, 0.99, hi + 1) - binomial_below(n, 0.99, lo + 1)
    assert 0.93 < covered < 0.975
    assert lo < 0.99 * n < hi


def test_percentile_interval_of_a_shuffled_sample_is_that_of_the_sorted_one():
    import random
    values = [random.Random(3).expovariate(1.0) for _ in range(1000)]
    assert percentile_interval(values, 99) == percentile_interval(sorted(values), 99)
    with pytest.raises(ConfigError, match="0 < q < 100"):
        percentile_interval(values, 100)
    with pytest.raises(ConfigError, match="needs values"):
        percentile_interval([], 50)


def test_share_interval_is_wilsons():
    # Textbook values: 0 of 10 gives [0, 0.2775]; 10 of 10 gives [0.7225, 1].
    assert share_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert share_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    # 995 of 1000: Wilson's closed form, written out here.
    z, n, p = 1.959964, 1000, 0.995
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert share_interval(995, 1000) == pytest.approx((centre - half, centre + half))
    with pytest.raises(ConfigError, match="successes"):
        share_interval(11, 10)


def test_scorecard_interval_brackets_the_measured_figures(start):
    card = scorecard(start, interval=True)
    assert list(card.columns) == ["objective", "measured", "95 % interval", "met"]
    for metric in ("p99 latency (ms)", "availability (%)"):
        low, high = map(float, card.loc[metric, "95 % interval"].split(" – "))
        assert low <= card.loc[metric, "measured"] <= high
    assert card.loc["lost acknowledged writes", "95 % interval"] == ""
    assert card.drop(columns="95 % interval").equals(scorecard(start))


def test_the_walk_through_starts_out_of_the_slo_and_ends_inside_it(start, tuned):
    assert not scorecard(start)["met"].any()      # every objective missed
    assert scorecard(tuned)["met"].all(), scorecard(tuned)


@pytest.mark.parametrize("bad, message", [
    ({"p99_ms": 0}, "p99_ms must be > 0"),
    ({"availability": 1.5}, "availability must be a probability"),
    ({"lost_writes": -1}, "lost_writes must be >= 0"),
])
def test_slo_rejects_impossible_objectives(bad, message):
    with pytest.raises(ConfigError, match=message):
        SLO(**bad)


@pytest.mark.parametrize("other", [
    Result("ping", {}, seed=0, metrics=Metrics()),
    Result("capstone", {}, seed=0, metrics=Metrics(),      # an untyped look-alike
           data={"summary": {"p99 (ms)": 1.0, "availability": 1.0,
                             "lost acked writes": 0}}),
])
def test_scorecard_needs_a_capstone_result(other):
    with pytest.raises(ConfigError, match="scenarios.capstone result"):
        scorecard(other)


# -- journal -----------------------------------------------------------------------

def test_journal_records_runs_and_names_the_knob_that_changed():
    journal = TuningJournal(SLO(p99_ms=400, availability=0.99))
    journal.record(summary_result(900.0, 0.995, 2), note="start")
    journal.record(summary_result(300.0, 0.995, 2, policy="least_outstanding"))
    journal.record(summary_result(300.0, 0.995, 0, policy="least_outstanding",
                                  w=2, r=2))
    table = journal.table()
    assert list(table.index) == [1, 2, 3] and len(journal) == 3
    assert list(table["changed"]) == ["first run",
                                      "policy round_robin→least_outstanding",
                                      "r 1→2, w 1→2"]
    assert list(table["meets SLO"]) == [False, False, True]
    assert list(table["misses"]) == [
        "p99 latency (ms), lost acknowledged writes", "lost acknowledged writes", ""]
    assert table.loc[1, "note"] == "start" and table.loc[3, "policy"] == \
        "least_outstanding"
    assert repr(journal) == "TuningJournal(3 runs, 1 meet the SLO)"


def test_journal_says_when_nothing_changed():
    journal = TuningJournal()
    journal.record(summary_result(100.0, 1.0, 0))
    entry = journal.record(summary_result(100.0, 1.0, 0))
    assert entry.changed == "nothing" and entry.run == 2 and entry.meets_slo


# -- the service -------------------------------------------------------------------

def test_same_seed_same_run_and_another_seed_another(start):
    again = capstone(1, **CAPSTONE_START)
    assert again.fingerprint == start.fingerprint
    assert again.data.windows == start.data.windows
    assert capstone(2, **CAPSTONE_START).fingerprint != start.fingerprint


def test_same_run_under_another_hash_seed(start):
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    code = ("from labkit.scenarios import capstone, CAPSTONE_START; "
            "print(capstone(1, **CAPSTONE_START).fingerprint)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == start.fingerprint


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tuned_config_loses_no_acknowledged_write_under_the_faults(seed, tuned):
    run = tuned if seed == 1 else capstone(seed, **CAPSTONE_TUNED)
    assert run.data.summary["lost acked writes"] == 0, f"seed {seed}"
    assert all(w.lost_writes == 0 for w in run.data.windows), f"seed {seed}"


def test_w_1_loses_writes_acknowledged_by_a_server_cut_off_and_then_replaced(start):
    # s4 is partitioned from 34 s and its disk is lost at 38 s: with W = 1 it
    # acknowledged writes no other replica got.
    assert start.params["w"] == 1
    rows = {w.t: w.lost_writes for w in start.data.windows}
    assert rows[34.0] == 0 < rows[38.0]
    assert start.data.summary["lost acked writes"] >= rows[38.0]


@pytest.mark.parametrize("r, w, stale", [(2, 2, False), (1, 1, True)])
def test_reads_are_stale_only_when_read_and_write_quorums_may_miss(r, w, stale):
    # Without disk loss, R + W > N makes every read quorum meet the last
    # acknowledged write's quorum.
    faults = [f for f in CAPSTONE_FAULTS if f.kind != "replace"]
    run = capstone(1, **{**CAPSTONE_TUNED, "r": r, "w": w}, faults=faults)
    assert (run.data.summary["stale reads"] > 0) is stale


def test_traffic_follows_the_day(start):
    # The rate rises from 0.2 to 1 of the peak and back: its mean is 0.6 peak.
    p = start.params
    expected = 0.6 * p["peak_rate"] * p["duration"]
    requests = start.data.summary["requests"]
    assert abs(requests - expected) < 4 * math.sqrt(expected)
    shares = {op: n / requests for op, n in start.data.operations.items()}
    assert shares["get"] == pytest.approx(p["reads"], abs=0.02)
    assert shares["meta"] == pytest.approx(p["meta"], abs=0.02)
    windows = start.data.windows
    assert len(windows) == math.ceil(p["duration"] / p["window"])
    assert sum(w.request_rate * p["window"] for w in windows) == \
        pytest.approx(requests)
    peak = max(windows, key=lambda w: w.request_rate).t
    assert p["duration"] / 3 < peak < 2 * p["duration"] / 3


@pytest.mark.parametrize("skew", [0.0, 1.0, 2.5])
def test_keys_are_drawn_as_random_choices_draws_them(skew):
    # The same stream, the same keys: the service's draw is the standard
    # library's weighted choice (Zipf weights 1 / k**skew), one key at a time.
    import random

    from labkit.scenarios.capstone.service import _Service
    knobs = {**CAPSTONE_START, "window": 2.0, "duration": 60.0, "peak_rate": 200.0,
             "reads": 0.75, "meta": 0.1, "backlog": 1.0, "keys": 50, "skew": skew}
    service = _Service(0.0, knobs)
    weights = [1 / k ** skew for k in range(1, 51)]
    ours, theirs = random.Random(7), random.Random(7)
    for rid in range(2000):
        _, key, _ = service.draw_request(rid, ours)
        theirs.random()                                   # the operation's roll
        assert key == theirs.choices(service.keys, weights)[0]


def test_busy_share_follows_the_utilisation_law():
    # U = lambda * E[S] / servers (no faults, so no retries or repairs): E[S] is
    # one coordination plus one replica read or write on each of N servers.
    run = capstone(1, **CAPSTONE_TUNED, faults=())
    p, cost = run.params, scenarios.CAPSTONE_COSTS
    writes = 1 - p["reads"] - p["meta"]
    work = cost["coordinate"] + p["replication"] * (p["reads"] * cost["get"]
                                                    + writes * cost["put"])
    served = run.data.summary["requests"]
    busy = sum(sum(server) for server in run.data.load.values()) * p["window"]
    assert busy == pytest.approx(served * work, rel=0.05)


def test_dashboard_shows_each_fault_where_it_struck(start):
    assert [(f.fault, f.start, f.end) for f in start.data.faults] == [
        (f.kind, f.at, f.at + f.duration) for f in CAPSTONE_FAULTS]
    load, rows = start.data.load, start.data.windows
    during = [i for i, w in enumerate(rows) if 8 <= w.t < 14]
    # s2 runs 4x slower from 6 s to 16 s: the busiest server there.
    for i in during:
        assert load["s2"][i] == max(server[i] for server in load.values())
    # s4 is down (replaced) from 38 s to 44 s: no work, roles show the crash.
    assert all(load["s4"][i] == 0 for i, w in enumerate(rows) if 38 <= w.t < 44)
    leader_at_start = rows[0].leader
    assert start.data.roles[leader_at_start][10] == "down"      # t = 22 s
    assert all(0 <= x <= 1.0 + 1e-9 for server in load.values() for x in server)


def test_the_record_keeps_the_keys_fingerprints_and_sweeps_read(start):
    # A record is fingerprinted as the dict of its keys, and a sweep's row names
    # its columns by them ("summary.p99 (ms)"): these are the keys the run's
    # data had when it was a dict, so a renamed key would show here.
    data = start.data
    assert list(record_items(data)) == ["windows", "load", "roles", "summary",
                                        "faults", "operations", "headline"]
    assert set(record_items(data.windows[0])) == {
        "t (s)", "requests/s", "attempts/s", "errors", "p50 (ms)", "p99 (ms)",
        "leader", "leaderless (s)", "elections", "under-replicated keys",
        "lost acked writes"}
    assert set(record_items(data.faults[0])) == {"fault", "target", "from (s)",
                                                 "to (s)"}
    assert {"p99 (ms)", "availability", "lost acked writes"} <= set(data.summary)
    with pytest.raises(AttributeError):
        data.window                                          # noqa: B018 (a typo)
    with pytest.raises(AttributeError):
        data.windows[0].p99                                  # noqa: B018


def test_dashboard_figure(start):
    fig = plot.capstone_dashboard(start, p99_ms=400)
    names = {t.name for t in fig.data}
    assert {"requests/s", "attempts/s", "p99", "s1", "s5", "lost acked writes",
            "under-replicated keys"} <= names
    shaded = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(shaded) == 6 * len(CAPSTONE_FAULTS)     # every panel, every fault
    assert any(s.type == "line" and s.y0 == 400 for s in fig.layout.shapes)


def test_dashboard_shading_is_what_plotly_add_vrect_draws():
    # The dashboard writes its shapes in one list; plotly's add_hline and
    # add_vrect(row="all", col="all") on the same grid must give the same ones.
    run = capstone(1, duration=12.0, faults=[("slow", 2.0, 3.0, "s2", 2.0),
                                             ("crash", 6.0, 30.0, "s1")])
    fig = plot.capstone_dashboard(run, p99_ms=250)
    again = go.Figure(fig)
    again.layout.shapes = ()
    again.add_hline(y=250, row=2, col=1,
                    line={"color": fig.layout.shapes[0].line.color, "dash": "dash",
                          "width": 1})
    for fault in run.data.faults:
        again.add_vrect(x0=fault.start, x1=min(fault.end, 12.0), row="all",
                        col="all", fillcolor=fig.layout.shapes[1].fillcolor,
                        opacity=0.07, line_width=0)
    assert fig.layout.shapes == again.layout.shapes


# -- bad knobs ---------------------------------------------------------------------

@pytest.mark.parametrize("knobs, message", [
    ({"policy": "fastest"}, "unknown policy 'fastest'"),
    ({"r": 4}, "r must be between 1 and replication = 3"),
    ({"replication": 6}, "replication must be at most 5"),
    ({"timeout": 0}, "timeout must be > 0"),
    ({"attempts": 0}, "attempts must be >= 1"),
    ({"jitter": "lots"}, "jitter must be one of"),
    ({"breaker": "fuse"}, "breaker must be 'none' or one of"),
    ({"budget": "yes"}, "budget must be True or False"),
    ({"reads": 0.95}, "reads \\+ meta must be at most 1"),
    ({"skew": 1e9}, "skew must be between 0 and 10"),   # was a numpy overflow
    ({"kill": "s1"}, "kill must be a list of node names"),
    ({"kill": ["s9"]}, "kill must be a list of node names"),
    ({"faults": [("explode", 1, 2, "s1")]}, "fault kind must be one of"),
    ({"faults": [("crash", 1, 2, "s9")]}, "needs a target from"),
    ({"faults": [("crash", 1, 0, "s1")]}, "fault duration must be > 0"),
    ({"faults": [("slow", 1, 2, "n1", 3.0)]}, "targets a storage server"),
    ({"faults": [("slow", 1, 2, "s1", 0.5)]}, "slow severity"),
    ({"faults": [("brownout", 1, 2, "", 1.0)]}, "brownout severity must be below 1"),
    ({"faults": [("crash", 1)]}, "a capstone fault is"),
    ({"faults": CapstoneFault("crash", 1, 2, "s1")}, "faults must be a list"),
])
def test_bad_knobs_are_refused_with_a_reason(knobs, message):
    with pytest.raises(ConfigError, match=message):
        capstone(1, **knobs)


# -- the control panel -------------------------------------------------------------

def test_panel_kill_button_and_slider_rerun_and_redraw():
    panel = widgets.capstone_panel(seed=1)
    assert len(panel.journal) == 1 and "run 1: misses" in panel.status.value
    before = panel.figure.to_dict()["data"]
    kill = panel.switches.rows["s"].buttons[2]
    assert kill.description == "kill s3"
    kill.value = True
    assert kill.description == "restart s3"
    assert panel.result.params["kill"] == ("s3",)
    assert len(panel.journal) == 2 and "run 2:" in panel.status.value
    assert panel.figure.to_dict()["data"] != before
    assert panel.journal.table().loc[2, "changed"] == "kill none→s3"
    panel.controls["w"].value, panel.controls["r"].value = 2, 2
    assert panel.result.params["w"] == 2 and panel.result.params["r"] == 2
    assert "lost acknowledged writes" not in panel.status.value
    assert "<table" in panel.scores.value


def test_panel_runs_a_quick_day_with_the_faults_scaled_to_it():
    panel = widgets.capstone_panel(seed=1)
    params = panel.result.params
    assert params["duration"] == 30.0 and params["kill_at"] == 10.0
    assert [(f.kind, f.at, f.duration) for f in params["faults"]] == [
        (f.kind, f.at / 2, f.duration / 2) for f in CAPSTONE_FAULTS]
    assert "quick day of 30 s" in panel.scores.value
    assert "95 % interval" in panel.scores.value
    full = widgets.capstone_panel(seed=1, duration=60)
    assert full.result.fingerprint == capstone(1, **CAPSTONE_START).fingerprint
    with pytest.raises(ConfigError, match="duration"):
        widgets.capstone_panel(duration=0)


def drawing(panel) -> dict:
    """What the panel's figure shows (its traces without their widget ids)."""
    shown = panel.explorer.figure.to_dict()
    return {"layout": shown["layout"],
            "data": [{k: v for k, v in t.items() if k != "uid"} for t in shown["data"]]}


def test_panel_answers_a_knob_moved_back_from_its_cache(monkeypatch):
    drawn = []                                     # the run of each dashboard drawn
    draw = plot.capstone_dashboard
    monkeypatch.setattr(plot, "capstone_dashboard",
                        lambda run, **kw: drawn.append(run) or draw(run, **kw))
    panel, calls = widgets.capstone_panel(seed=1), []
    run = panel.explorer.scenario
    panel.explorer.scenario = lambda **params: calls.append(params) or run(**params)
    first, figure = panel.result, drawing(panel)
    for name, there in [("timeout", 1.05), ("policy", "p2c")]:
        back = panel.controls[name].value
        panel.controls[name].value = there
        panel.controls[name].value = back
        assert panel.result is first               # the very first run, again
        assert drawing(panel) == figure            # and its dashboard
    panel.switches.rows["n"].buttons[0].value = True
    panel.switches.rows["n"].buttons[0].value = False
    assert panel.result is first
    assert len(calls) == 3 and len(panel.journal) == 7
    assert len(drawn) == 4 and drawn[0] is first   # each run drawn once


def test_panel_reports_a_bad_combination_and_keeps_the_last_run():
    panel = widgets.capstone_panel(seed=1)
    first = panel.result
    panel.controls["r"].value = 5                      # more than 3 replicas
    assert "labkit-warning" in panel.explorer.status._dom_classes
    assert "r must be between 1 and replication" in panel.explorer.status.value
    assert panel.result is first and len(panel.journal) == 1


# -- the course as static pages -----------------------------------------------------

def test_static_html_keeps_every_stored_figure_and_ships_plotly_js():
    import importlib.util

    import nbformat
    from nbconvert import HTMLExporter

    spec = importlib.util.spec_from_file_location(
        "html_figures", ROOT / "tools" / "html_figures.py")
    html = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(html)
    path = ROOT / "notebooks" / "00_simulator_tour.ipynb"
    nb = nbformat.read(path, as_version=4)
    stored = sum(html.PLOTLY_MIME in o.get("data", {})
                 for cell in nb.cells for o in cell.get("outputs", ()))
    exporter = HTMLExporter()
    exporter.register_preprocessor(html.html_figures, enabled=True)
    page, resources = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": path.stem}})
    assert stored > 0 and page.count("Plotly.newPlot(") == stored
    assert page.count(f'src="{html.PLOTLY_JS}"') == 1         # loaded once
    assert resources["outputs"][html.PLOTLY_JS].startswith(b"/**")


def test_progress_through_the_day_changes_nothing_but_shows_every_step():
    shown = []

    def bar(items, total, description):
        assert total == len(items) and "day" in description
        for item in items:
            shown.append(item)
            yield item

    plain = scenarios.capstone(seed=2, duration=20.0)
    stepped = scenarios.capstone(seed=2, duration=20.0, progress=bar)
    assert shown == list(range(1, 21))
    assert stepped.fingerprint == plain.fingerprint
    with pytest.raises(TypeError, match="progress"):
        scenarios.capstone(seed=2, duration=20.0, progress="bar")
