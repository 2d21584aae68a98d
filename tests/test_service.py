"""The service model: FIFO order, server limits, load generators, stalls,
argument checks, determinism, and the notebook-01 scenarios built on them."""

from __future__ import annotations

import math

import pytest

from labkit import dist, queueing, scenarios
from labkit.errors import ConfigError
from labkit.scenarios.performance import omission_p99
from labkit.service import ClosedLoop, OpenLoop, Station
from labkit.sim import Simulator


def arrivals_at(sim: Simulator, station: Station, times, done=None) -> None:
    """Schedule one request per time; `done(i)` is told when request i leaves."""
    for i, t in enumerate(times):
        sim.at(t, station.arrive, done, i)


# -- queueing discipline --------------------------------------------------------------

def test_one_server_serves_in_arrival_order_whatever_the_service_times():
    sim = Simulator(seed=3)
    station = Station(sim, 1, dist.lognormal(0.01, 0.5))
    left = []
    arrivals_at(sim, station, [0.001 * i for i in range(200)], left.append)
    sim.run()
    assert left == list(range(200))


def test_several_servers_take_waiting_requests_first_come_first_served():
    # With equal, constant service times, starting in arrival order means
    # finishing in arrival order.
    sim = Simulator(seed=3)
    station = Station(sim, 3, dist.constant(1.0))
    left = []
    arrivals_at(sim, station, [0.01 * i for i in range(30)], left.append)
    sim.run()
    assert left == list(range(30))


def test_latency_is_waiting_plus_service():
    # Three requests at t=0, two servers, service 1 s: the third waits 1 s.
    sim = Simulator()
    station = Station(sim, 2, 1.0)
    arrivals_at(sim, station, [0.0, 0.0, 0.0])
    sim.run()
    assert sorted(station.latency.values) == [1.0, 1.0, 2.0]


def test_never_more_than_c_requests_in_service():
    sim = Simulator(seed=5)
    station = Station(sim, 4, dist.exponential(1.0), sample_every=0.5)
    OpenLoop(sim, station, rate=6.0, requests=20_000)   # overloaded: 1.5x capacity
    sim.run()
    assert station.busy.maximum == 4            # all four were used...
    series = sim.metrics
    in_service = [n - q for n, q in zip(series["service.series.in_system"].values,
                                        series["service.series.queue"].values,
                                        strict=True)]
    assert max(in_service) <= 4                 # ...and never a fifth
    assert station.queue.maximum > 100          # the overload queued up


def test_faster_server_is_preferred_and_serves_faster():
    sim = Simulator()
    station = Station(sim, 2, 1.0, speeds=[1.0, 4.0])
    arrivals_at(sim, station, [0.0, 10.0])
    sim.run()
    assert list(station.latency.values) == [0.25, 0.25]


# -- load generators ----------------------------------------------------------------

def test_open_loop_sends_at_its_rate_and_excludes_the_warmup():
    sim = Simulator(seed=8)
    station = Station(sim, 1, dist.exponential(0.001), measure=False)
    client = OpenLoop(sim, station, rate=100.0, requests=5000, warmup=500)
    sim.run()
    assert client.sent == 5500
    assert station.arrivals.value == station.latency.count == 5000
    # 5000 Poisson gaps: the rate's relative SE is 1/sqrt(5000) = 1.4 %.
    assert station.stats()["arrival_rate"] == pytest.approx(100.0, rel=0.06)


def test_closed_loop_keeps_at_most_one_request_per_user_outstanding():
    sim = Simulator(seed=9)
    station = Station(sim, 1, dist.exponential(1.0))
    users = ClosedLoop(sim, station, users=5, think=0.0)
    sim.run(2000.0)
    assert users.outstanding.maximum == 5
    assert station.in_system.maximum == 5
    # A closed system of 5 users and no think time keeps the server busy.
    assert station.stats()["utilisation"] == pytest.approx(1.0, abs=0.01)


def test_closed_loop_obeys_the_interactive_response_time_law():
    # N users, think Z, response R: throughput X = N / (R + Z), exactly in
    # the long run (Little's law applied to the users).
    sim = Simulator(seed=10)
    station = Station(sim, 1, dist.exponential(1.0))
    ClosedLoop(sim, station, users=3, think=dist.exponential(2.0))
    sim.run(50_000.0)
    stats = station.stats()
    assert stats["throughput"] == pytest.approx(
        3 / (stats["mean_latency"] + 2.0), rel=0.02)


def test_arrivals_and_service_draw_from_separate_streams():
    # With enough servers nobody waits, so latency = service time. Constant gaps
    # draw nothing and Poisson gaps one number each: a shared stream would
    # shift every service draw, separate streams leave them alone.
    def service_draws(gaps):
        sim = Simulator(seed=4)
        station = Station(sim, 10_000, dist.exponential(1.0), keep_requests=True)
        OpenLoop(sim, station, interarrival=gaps, requests=500)
        sim.run()
        series = station.requests
        return [v for _, v in sorted(zip(series.times, series.values, strict=True))]

    # Equal up to rounding: latency = departure - arrival, at different times.
    assert service_draws(dist.constant(0.02)) == pytest.approx(
        service_draws(dist.exponential(1.0)), rel=1e-9)


def test_sampled_series_stop_when_the_run_is_over():
    sim = Simulator(seed=2)
    station = Station(sim, 2, dist.exponential(0.01), sample_every=1.0)
    OpenLoop(sim, station, rate=150.0, requests=30_000)
    sim.run()                                   # returns: the sampler stops too
    throughput = sim.metrics["service.series.throughput"].values
    assert sum(throughput) == station.departed == 30_000
    assert len(throughput) == pytest.approx(30_000 / 150, rel=0.05)


# -- stalls and coordinated omission ------------------------------------------------

def test_a_stall_freezes_work_in_progress_and_new_starts():
    sim = Simulator()
    station = Station(sim, 1, 1.0)
    arrivals_at(sim, station, [0.0, 0.6])
    sim.at(0.5, station.stall, 2.0)
    sim.run()
    # First: 0.5 s served, frozen 2 s, 0.5 s more -> leaves at 3.0. Second:
    # starts at 3.0, leaves at 4.0, having arrived at 0.6.
    assert list(station.latency.values) == [3.0, pytest.approx(3.4)]


def test_overlapping_stalls_merge():
    sim = Simulator()
    station = Station(sim, 1, 1.0)
    arrivals_at(sim, station, [0.0])
    sim.at(0.2, station.stall, 1.0)     # frozen 0.2 .. 1.2
    sim.at(1.0, station.stall, 1.0)     # extends it to 2.0
    sim.run()
    assert list(station.latency.values) == [pytest.approx(2.8)]


def test_closed_loop_hides_the_stall_that_open_loop_sees():
    result = scenarios.coordinated_omission(seed=1)
    open_p99, closed_p99 = result.data.open["p99"], result.data.closed["p99"]
    # Open loop: a request arriving t into a 1 s stall is delayed 1 - 0.9 t (the
    # backlog drains at 1 - rho = 0.9), so 1 % are delayed over 1 - 0.09 = 0.91 s.
    # Closed loop: one stalled request per stall among ~900 sent, so p99 is the
    # healthy service's (~4.6 ms for 1 ms Exp).
    assert open_p99 == pytest.approx(result.data.open_p99_estimate, rel=0.1)
    assert closed_p99 < 0.010
    assert open_p99 > 50 * closed_p99
    # Both saw the stalls: the worst request waited about the whole stall.
    assert result.data.closed["max"] == pytest.approx(1.0, abs=0.05)


def test_open_loop_measures_every_request_it_sent_even_in_the_last_stall():
    # Stalls at 9-10, ..., 59-60 s: the run drains past 60 s, so the requests
    # stuck in the last stall are answered and measured like the others.
    result = scenarios.coordinated_omission(seed=1)
    assert result.data.open["count"] == result.metrics["open.arrivals"].value
    series = result.metrics["open.requests"]
    last = [lat for t, lat in zip(series.times, series.values, strict=True)
            if 59.0 <= t < 60.0]
    assert len(last) > 50                        # ~100 sent in that stall
    assert max(last) == pytest.approx(1.0, abs=0.05)
    assert max(series.times) < 60.0 <= result.end_time


def test_omission_p99_follows_the_fluid_model():
    # Delays fall linearly from T to 0 over T/(1 - rho) after each stall, plus
    # the healthy M/M/1 latency (mean W = E[S]/(1 - rho)):
    # p99 = T + W - 0.01 * every * (1 - rho) while the stalls dominate.
    assert omission_p99(1.0, 10.0, 0.1, 0.001) == pytest.approx(
        1.0 + 0.001 / 0.9 - 0.09, rel=1e-6)
    assert omission_p99(2.0, 50.0, 0.6, 0.006) == pytest.approx(
        2.0 + 0.015 - 0.2, rel=1e-6)
    # Stalls too short to delay 1 % of requests: the healthy p99, ln(100) W.
    assert omission_p99(0.001, 10.0, 0.1, 0.001) == pytest.approx(
        math.log(100) * 0.001 / 0.9, rel=0.01)


def test_open_loop_p99_matches_the_fluid_model_away_from_the_notebook():
    # rho = 0.6, a 2 s stall every 50 s: model p99 2 + 0.015 - 0.2 = 1.815 s
    # (the old stall * (1 - 0.01 * every / stall) said 1.5 s).
    result = scenarios.coordinated_omission(seed=3, duration=500.0, stall=2.0,
                                            every=50.0, mean_service=0.006)
    assert result.data.open_p99_estimate == pytest.approx(1.815, rel=1e-3)
    assert result.data.open["p99"] == pytest.approx(1.815, rel=0.05)


# -- argument checks ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    ({"servers": 0}, "servers must be >= 1"),
    ({"servers": 2.5}, "servers must be an int"),
    ({"service": "fast"}, "service must be a number of seconds"),
    ({"service": 0.0}, "mean > 0"),
    ({"servers": 2, "speeds": [1.0]}, "one entry per server"),
    ({"servers": 2, "speeds": [1.0, -1.0]}, "speed must be > 0"),
    ({"sample_every": 0}, "sample_every must be > 0"),
    ({"name": ""}, "non-empty str"),
])
def test_station_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Station(Simulator(), **{"service": 1.0, **kwargs})


@pytest.mark.parametrize("kwargs,message", [
    ({}, "exactly one of rate"),
    ({"rate": 1.0, "interarrival": 1.0}, "exactly one of rate"),
    ({"rate": -1.0}, "rate must be > 0"),
    ({"interarrival": 0.0}, "mean > 0"),
    ({"rate": 1.0, "requests": 0}, "requests must be >= 1"),
    ({"rate": 1.0, "warmup": 10}, "measure=False"),
])
def test_open_loop_rejects_bad_arguments(kwargs, message):
    sim = Simulator()
    with pytest.raises(ConfigError, match=message):
        OpenLoop(sim, Station(sim, 1, 1.0), **kwargs)


def test_other_bad_arguments():
    sim = Simulator()
    station = Station(sim, 1, 1.0, measure=False)
    with pytest.raises(ConfigError, match="users must be >= 1"):
        ClosedLoop(sim, station, users=0)
    with pytest.raises(ConfigError, match="think must be >= 0"):
        ClosedLoop(sim, station, users=1, think=-1.0)
    with pytest.raises(TypeError, match="Simulator"):
        Station("sim", 1, 1.0)
    with pytest.raises(TypeError, match="Station"):
        OpenLoop(sim, "station", rate=1.0)
    with pytest.raises(ConfigError, match="measured no time"):
        station.stats()
    station.start_measuring()
    with pytest.raises(ConfigError, match="called once"):
        station.start_measuring()


@pytest.mark.parametrize("call,message", [
    (lambda: scenarios.mmc_queue(service="weird"), "service must be one of"),
    (lambda: scenarios.mmc_queue(load=0), "load must be > 0"),
    (lambda: scenarios.mmc_queue(load=2.0), r"load must be in \(0, 1.5\]"),
    (lambda: scenarios.load_sweep(loads=()), "at least one"),
    (lambda: scenarios.coordinated_omission(stall=10.0), "shorter than every"),
    (lambda: scenarios.coordinated_omission(rate=2000.0), "cannot send"),
    (lambda: scenarios.coordinated_omission(stall=5.0, mean_service=0.006),
     "must be below 1 - stall/every"),
    (lambda: scenarios.merged_percentiles(loads=(0.5, 1.0)), "must be < 1"),
    (lambda: scenarios.fan_out(fanouts=(0,)), "fanout must be >= 1"),
    # 1e9 requests x 100 leaves was a MemoryError asking for 745 GiB
    (lambda: scenarios.fan_out(requests=10**9), "must be at most 20,000,000 leaf"),
])
def test_scenarios_reject_bad_arguments(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# -- determinism and the scenarios' theory -------------------------------------------

def test_same_seed_same_fingerprint_and_another_seed_differs():
    runs = [scenarios.mmc_queue(seed, customers=3000, warmup=300)
            for seed in (7, 7, 8)]
    assert runs[0].fingerprint == runs[1].fingerprint
    assert runs[0].fingerprint != runs[2].fingerprint
    co = [scenarios.coordinated_omission(seed=3, duration=20.0) for _ in range(2)]
    assert co[0].fingerprint == co[1].fingerprint


def test_scenario_theory_matches_the_closed_forms_it_names():
    def theory(**kw):
        return scenarios.mmc_queue(customers=100, warmup=0, **kw).data.theory

    assert theory(servers=3, load=0.5).mean_response == pytest.approx(
        queueing.mmc(150.0, 100.0, 3).mean_response)
    assert theory(service="deterministic").mean_wait == pytest.approx(
        queueing.md1(80.0, 100.0).mean_wait)
    bimodal = scenarios.service_time("bimodal", 0.010)
    assert bimodal.mean == pytest.approx(0.010)
    assert theory(service="bimodal").mean_wait == pytest.approx(
        queueing.mg1(80.0, 0.010, bimodal.second_moment).mean_wait)
    assert theory(servers=2, service="lognormal") is None     # no closed form
    assert scenarios.service_time("lognormal", 0.010).mean == pytest.approx(0.010)


def test_fan_out_reproduces_the_tail_at_scale():
    rows = scenarios.fan_out(seed=2, requests=20_000).data.rows
    for row in rows:
        # Binomial share: SE = sqrt(p(1-p)/n) <= 0.0036 at n = 20000; 4 SE.
        assert row["slow_share"] == pytest.approx(row["theory"], abs=0.015), row
    assert rows[-1]["theory"] == pytest.approx(0.634, abs=0.001)   # FACTS: 63 %


def test_merging_percentiles_needs_the_values_not_the_average():
    data = scenarios.merged_percentiles(seed=4).data
    # The p99 of all requests is mostly the rho = 0.9 node's tail, which moves
    # slowly (relaxation time ~ 1/(mu (1 - sqrt(rho))^2) = 3.8 s): over 2400 s
    # its relative SE is about 6 %, so 20 % is over 3 SE.
    assert data.merged_p99 == pytest.approx(data.theory_p99, rel=0.2)
    assert data.mean_p99 < 0.6 * data.merged_p99       # averaging misleads


def test_playground_redraws_when_a_control_moves():
    from labkit import plot
    from labkit.widgets import explore

    ex = explore(scenarios.mmc_queue, plot.percentiles_vs_load,
                 load=(0.05, 0.95, 0.05, 0.8), servers=[1, 2, 4, 10],
                 service=list(scenarios.SERVICE_SHAPES), seed=(0, 9, 1, 0),
                 customers=5_000, warmup=500)

    def simulated_utilisation():
        marks = [t for t in ex.figure.data if t.mode == "markers"]
        assert [t.name for t in marks] == [
            "mean (simulated)", "p50 (simulated)", "p99 (simulated)"]
        return marks[0].x[0]

    assert simulated_utilisation() == pytest.approx(0.8, abs=0.05)
    ex.controls["load"].value = 0.3
    assert simulated_utilisation() == pytest.approx(0.3, abs=0.05)
    ex.controls["servers"].value = 4
    theory = [t for t in ex.figure.data if t.name == "p99 (theory)"][0]
    expected = queueing.mmc(0.3 * 4 / 0.010, 100.0, 4).response_percentile(99)
    at = list(theory.x).index(0.3)
    assert theory.y[at] == pytest.approx(expected * 1000, rel=1e-3)
    ex.controls["service"].value = "lognormal"      # c = 4: no closed form
    assert not [t for t in ex.figure.data if "theory" in t.name]
    assert "M/G/4" in ex.status.value
