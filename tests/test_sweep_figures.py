"""The notebooks' heavy figures on `lk.sweep` (05's Figure 16, 07's staleness
table and t-visibility curves, 08's Figure 3) are the figures the scenarios
compute in one process: same rows, same downtimes, same plot, on two Dask
workers or here. The paper columns and statistics are recomputed in this file
from the runs' raw numbers (nearest-rank percentiles, means), and the helpers
refuse what is not theirs.

One module-wide LocalCluster of 2 worker processes serves the Dask tests."""

from __future__ import annotations

import math

import pytest

from labkit import plot, scenarios
from labkit.errors import ConfigError
from labkit.scenarios import mapreduce as mr_scenarios
from labkit.scenarios import raft as raft_scenarios
from labkit.scenarios import storage as storage_scenarios
from labkit.sweeps import local_client, sweep

pytest.importorskip("distributed")

RANGES = ((150, 150), (150, 155), (12, 24))


@pytest.fixture(scope="module")
def client():
    with local_client(2) as c:
        yield c


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


# -- Figure 16 (notebook 05) ---------------------------------------------------

def test_figure_16_grid_is_one_failover_per_range():
    grid = raft_scenarios.figure_16_grid(trials=40, ranges=RANGES, capped_trials=2)
    assert grid == [{"election_timeout": (0.150, 0.150), "trials": 2},
                    {"election_timeout": (0.150, 0.155), "trials": 40},
                    {"election_timeout": (0.012, 0.024), "trials": 40}]


@pytest.mark.parametrize("batch", [1, None])
def test_figure_16_on_a_sweep_is_figure_16(client, batch):
    whole = scenarios.figure_16(seed=2, trials=25, ranges=RANGES, capped_trials=1)
    table = sweep(scenarios.raft_failover,
                  raft_scenarios.figure_16_grid(trials=25, ranges=RANGES,
                                                capped_trials=1),
                  [2], client=client, batch=batch,
                  measure=raft_scenarios.downtimes, progress=False)
    summary = raft_scenarios.figure_16_summary(table)
    assert list(summary.runs) == list(whole.data.runs) == [
        "150-150 ms", "150-155 ms", "12-24 ms"]
    for label, run in whole.data.runs.items():
        assert list(summary.runs[label].values) == list(run.metrics["downtime"].values)
    assert summary.rows == whole.data.rows
    # the simulated column, from the raw downtimes
    fast = table["downtimes"].iloc[2]
    simulated = {(r["timeout (ms)"], r["statistic"]): r["simulated (ms)"]
                 for r in summary.rows}
    assert simulated["150-155", "median"] == 1e3 * nearest_rank(
        table["downtimes"].iloc[1], 50)
    assert math.isclose(simulated["12-24", "mean"], 1e3 * sum(fast) / len(fast))
    assert simulated["12-24", "max"] == 1e3 * max(fast)
    assert simulated["150-150", "min"] == 1e3 * 10.0     # the cap: no election
    assert [r["trials"] for r in summary.rows] == [1, 25, 25, 25]


def test_figure_16_summary_takes_dict_rows_and_refuses_others():
    rows = [{"election_timeout": (0.012, 0.024), "downtimes": (0.030, 0.050)}]
    summary = raft_scenarios.figure_16_summary(rows)
    assert summary.runs["12-24 ms"].count == 2
    assert [r["statistic"] for r in summary.rows] == ["mean", "max"]
    with pytest.raises(ConfigError, match="downtimes"):
        raft_scenarios.figure_16_summary([{"election_timeout": (0.1, 0.2)}])
    with pytest.raises(ConfigError, match="two rows for 12-24 ms"):
        raft_scenarios.figure_16_summary(rows * 2)


@pytest.mark.parametrize("ranges", [((150,),), ((155, 150),), ((0.15, 0.3),),
                                    ((0, 10),)])
def test_figure_16_grid_refuses_bad_ranges(ranges):
    with pytest.raises(ConfigError, match="whole milliseconds"):
        raft_scenarios.figure_16_grid(ranges=ranges)


# -- staleness (notebook 07) ---------------------------------------------------

def test_staleness_one_quorum_per_run_is_the_whole_table(client):
    quorums = ((3, 1, 1), (3, 2, 2), (5, 1, 3))
    whole = scenarios.staleness(seed=3, quorums=quorums, trials=150)
    table = sweep(scenarios.staleness, {"quorums": [[q] for q in quorums],
                                        "trials": [150]}, [3], client=client,
                  measure=lambda run: {"row": run.data.rows[0]}, progress=False)
    assert list(table["row"]) == whole.data.rows


def test_t_visibility_one_write_delay_per_run_is_the_whole_curve(client):
    writes = list(scenarios.PBS_PAPER)
    whole = scenarios.t_visibility(seed=2, trials=120, points=3)
    table = sweep(scenarios.t_visibility, {"writes": [[w] for w in writes],
                                           "trials": [120], "points": [3]}, [2],
                  client=client, measure=lambda run: {"visibility": run.data},
                  progress=False)
    joined = storage_scenarios.visibility_summary(table["visibility"])
    assert joined == whole.data and list(joined.model) == writes
    # each part is the run of its write delay alone
    alone = scenarios.t_visibility(seed=2, trials=120, points=3, writes=writes[1:])
    assert alone.data.rows == [r for r in whole.data.rows
                               if r["write delay"] == writes[1]]
    assert "writes" not in whole.params and alone.params["writes"] == writes[1:]


def test_t_visibility_refuses_unknown_or_repeated_write_delays():
    for writes in (["fast"], [], "fast writes, Exp(0.25 ms)",
                   [next(iter(scenarios.PBS_PAPER))] * 2):
        with pytest.raises(ConfigError, match="writes must be"):
            scenarios.t_visibility(trials=10, points=2, writes=writes)
    part = scenarios.t_visibility(trials=10, points=2,
                                  writes=[next(iter(scenarios.PBS_PAPER))]).data
    with pytest.raises(ConfigError, match="come twice"):
        storage_scenarios.visibility_summary([part, part])
    with pytest.raises(TypeError, match="Visibility"):
        storage_scenarios.visibility_summary([{"rows": []}])


# -- Figure 3 (notebook 08) ----------------------------------------------------

@pytest.mark.slow
def test_figure3_on_a_sweep_is_figure3(client):
    whole = scenarios.figure3(seed=1)
    table = sweep(mr_scenarios.figure3_run,
                  {"execution": list(mr_scenarios.FIGURE3_EXECUTIONS)}, [1],
                  client=client, measure=mr_scenarios.figure3_measure,
                  progress=False)
    summary = mr_scenarios.figure3_summary(table)
    assert summary.rows == whole.data.rows
    for name, run in whole.data.runs.items():
        assert summary.runs[name].timeline == run.timeline
        assert summary.runs[name].duration == run.duration
    normal = whole.data.runs["normal"].duration
    for row in summary.rows:                  # the change against normal, here
        assert row["simulated vs normal"] == row["simulated (s)"] / normal - 1
    assert (plot.data_rates(summary.runs).to_json()
            == plot.data_rates(whole.data.runs).to_json())
    assert "output" not in table.columns and "timeline" in table.columns


def test_figure3_run_leaves_the_sorted_output_behind():
    run = mr_scenarios.figure3_run(1, execution="no backup tasks")
    assert set(run.data) == {"timeline", "headline"}
    assert run.backups == 0 and run.duration > 0
    with pytest.raises(ConfigError, match="execution must be one of"):
        mr_scenarios.figure3_run(1, execution="fast")


def test_figure3_summary_needs_the_three_executions_in_order():
    row = {"seed": 1, "timeline": (), "cost": None, "simulated (s)": 1.0,
           "re-executed tasks": 0, "backup tasks": 0, "extra work": 0.0}
    names = list(mr_scenarios.FIGURE3_EXECUTIONS)
    with pytest.raises(ConfigError, match="one row per execution"):
        mr_scenarios.figure3_summary([{**row, "execution": n} for n in names[:2]])
    with pytest.raises(ConfigError, match="one row per execution"):
        mr_scenarios.figure3_summary([{**row, "execution": n} for n in names[::-1]])
    with pytest.raises(ConfigError, match="figure3_measure"):
        mr_scenarios.figure3_summary([{"execution": "normal"}])
