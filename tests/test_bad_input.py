"""Every public constructor and verb of the core rejects bad values with a
ConfigError whose message names the argument (and says what is allowed); so
does every public scenario given an argument of the wrong type, a sweep over
nothing, or a setting it cannot measure."""

import inspect
import math
import re
from collections.abc import Sequence

import numpy as np
import pytest

from labkit import (
    Cluster,
    ConfigError,
    Histogram,
    NetConfig,
    Network,
    Simulator,
    check,
    dist,
    paxos,
    resilience,
    scenarios,
    storage,
    txn,
    widgets,
)
from labkit import queueing as q
from labkit.errors import checked


def cluster():
    return Cluster(3, seed=1)


def net():
    return cluster().network


def node():
    return cluster().node("n1")


CASES = [
    # Simulator
    ("Simulator seed float", lambda: Simulator(1.5), "seed must be an int"),
    ("Simulator seed bool", lambda: Simulator(True), "seed must be an int"),
    ("Simulator trace", lambda: Simulator(trace="no"), "trace must be True or False"),
    ("schedule negative", lambda: Simulator().schedule(-1, print), "delay must be"),
    ("schedule nan", lambda: Simulator().schedule(math.nan, print), "delay must be"),
    ("at past", lambda: Simulator().at(-1, print), "time -1 is in the past"),
    ("run negative", lambda: Simulator().run(-2), "duration must be >= 0"),
    ("run str", lambda: Simulator().run("1"), "duration must be a number"),
    ("rng name", lambda: Simulator().rng(""), "stream name must be a non-empty str"),
    # NetConfig and Network
    ("latency negative", lambda: NetConfig(latency=-0.1), "latency must be >= 0"),
    ("latency str", lambda: NetConfig(latency="fast"), "latency must be a number"),
    ("loss > 1", lambda: NetConfig(loss=1.5), "loss must be a probability"),
    ("loss str", lambda: NetConfig(loss="0.1"), "loss must be a number"),
    ("duplicate < 0", lambda: NetConfig(duplicate=-0.1), "duplicate must be a prob"),
    ("reorder nan", lambda: NetConfig(reorder=math.nan), "reorder must be finite"),
    ("Network config", lambda: Network(Simulator(), 0.01), "config must be a NetConf"),
    ("update unknown", lambda: net().update(jitter=1), "unknown network knob 'jitter'"),
    ("update loss", lambda: net().update(loss=2), "loss must be a probability"),
    ("set_link knob", lambda: net().set_link("n1", "n2", lag=1), "knob 'lag'"),
    ("set_link value", lambda: net().set_link("n1", "n2", reorder=3), "reorder must"),
    ("set_link node", lambda: net().set_link("n1", "x", loss=0), "unknown node 'x'"),
    ("partition none", lambda: net().partition(), "at least one group"),
    ("partition empty", lambda: net().partition([]), "at least one node"),
    ("partition str", lambda: net().partition("n1"), "each group must be a list"),
    # a TypeError from inside: "'int' object is not iterable", "unhashable type"
    ("partition int", lambda: net().partition(5), "each group must be a list"),
    ("partition nested", lambda: net().partition([["n1"]]), "unknown node"),
    ("partition twice", lambda: net().partition(["n1"], ["n1"]), "'n1' is in two"),
    ("block unknown", lambda: net().block("x", "n1"), "unknown node 'x'"),
    # Cluster and Node
    ("Cluster size 0", lambda: Cluster(0), "size must be >= 1"),
    ("Cluster size float", lambda: Cluster(2.5), "size must be an int"),
    ("Cluster names str", lambda: Cluster(names="abc"), "names must be a non-empty"),
    ("Cluster names empty", lambda: Cluster(names=[]), "names must be a non-empty"),
    ("Cluster names twice", lambda: Cluster(names=["a", "a"]), "'a' is already"),
    ("Cluster net", lambda: Cluster(net=0.01), "net must be a NetConfig"),
    ("Cluster seed", lambda: Cluster(seed="7"), "seed must be an int"),
    ("Cluster run", lambda: cluster().run(-1), "seconds must be >= 0"),
    ("Cluster run nan", lambda: cluster().run(math.nan), "seconds must be finite"),
    ("Cluster kill", lambda: cluster().kill("n7"), "unknown node 'n7'"),
    ("Cluster restart", lambda: cluster().restart(None), "unknown node None"),
    ("Cluster disconnect", lambda: cluster().disconnect("x"), "unknown node 'x'"),
    ("Cluster connect", lambda: cluster().connect(["n1"]), r"unknown node \['n1'\]"),
    ("Cluster partition", lambda: cluster().partition(["n1", "x"]), "unknown node"),
    ("call timeout", lambda: node().call("n2", "ping", 0), "timeout must be > 0"),
    ("call timeout str", lambda: node().call("n2", "ping", "1"), "timeout must be a"),
    ("set_timer delay", lambda: node().set_timer("t", -1, print), "delay must be"),
    ("send unknown", lambda: node().send("n9", "ping"), "unknown node 'n9'"),
    # distributions
    ("constant", lambda: dist.constant(-1), "constant duration must be >= 0"),
    ("constant nan", lambda: dist.constant(math.nan), "constant duration must be fin"),
    ("uniform low", lambda: dist.uniform(-1, 1), "low must be >= 0"),
    ("uniform order", lambda: dist.uniform(2, 1), "low <= high"),
    ("uniform high", lambda: dist.uniform(0, "x"), "high must be a number"),
    ("exponential", lambda: dist.exponential(0), "mean must be > 0"),
    ("exponential inf", lambda: dist.exponential(math.inf), "mean must be finite"),
    ("lognormal median", lambda: dist.lognormal(0, 1), "median must be > 0"),
    ("lognormal p99", lambda: dist.lognormal(1, -1), "p99 must be > 0"),
    ("lognormal order", lambda: dist.lognormal(2, 1), "p99 >= median"),
    ("bimodal fraction", lambda: dist.bimodal(0.1, 1.0, 1.5), "slow_fraction must"),
    ("bimodal fast", lambda: dist.bimodal("x", 1.0, 0.1), "fast must be a number"),
    ("bimodal slow", lambda: dist.bimodal(0.1, None, 0.1), "slow must be a number"),
    ("Bimodal fast", lambda: dist.Bimodal(0.1, dist.constant(1), 0.1),
     "fast must be a Distribution"),
    ("scaled", lambda: dist.exponential(1).scaled(0), "factor must be > 0"),
    ("as_distribution", lambda: dist.as_distribution(True, "service"),
     "service must be a number"),
    # Histogram
    ("percentile 0", lambda: Histogram("h", [1]).percentile(0), "percentile must be"),
    ("percentile 101", lambda: Histogram("h", [1]).percentile(101), "percentile must"),
    ("percentile nan", lambda: Histogram("h", [1]).percentile(math.nan), "percentile"),
    ("percentile str", lambda: Histogram("h", [1]).percentile("99"), "percentile must"),
    # storage: Merkle trees, read repair, placement, the quorum store
    ("merkle depth", lambda: storage.merkle({"a": (1, 1)}, 30), "depth must be >= 0 "
     "and <= 16"),
    ("merkle depths", lambda: storage.merkle_diff(storage.merkle({}, 2),
                                                  storage.merkle({}, 3)),
     "same depth, got depths 2 and 3"),
    ("QuorumKV depth", lambda: storage.QuorumKV(depth=70), "depth must be >= 1 and"),
    ("WARS number", lambda: storage.QuorumKV(delays=storage.WARS(None, 0, 0, 0)),
     "delays.write must be a number of seconds or a labkit.dist distribution"),
    ("read_repair short", lambda: storage.read_repair([("r1",)]), "answer 0 must be"),
    ("key_hash int", lambda: storage.key_hash(5), "key must be a str, got 5"),
    ("ring owners of an int key", lambda: storage.HashRing(["a", "b"]).owners(5, 1),
     "key must be a str, got 5"),
    ("modulo_owners", lambda: storage.modulo_owners("x", 0, 1), "servers must be"),
    ("versions key", lambda: storage.QuorumKV().versions(5), "key must be a non-emp"),
    ("QuorumKV coordinator", lambda: storage.QuorumKV(coordinator=int),
     "coordinator must be a class"),
    # linearizability
    ("linearizable minimize", lambda: check.linearizable([], minimize="no"),
     "minimize must be True or False"),
    ("linearizable ret inf", lambda: check.linearizable(
        [check.Op("c", "get", "x", None, 5, 0, math.inf)]),
     r"operation 0 \(client 'c', get\): ret must be a finite number"),
    # queueing
    ("mm1 rate", lambda: q.mm1(-1, 1), "arrival_rate must be >= 0"),
    ("mm1 unstable", lambda: q.mm1(2, 1), "arrival_rate 2.0 >= service_rate 1.0"),
    ("mmc servers", lambda: q.mmc(1, 1, 0), "servers must be >= 1"),
    ("mmc servers float", lambda: q.mmc(1, 1, 2.0), "servers must be an int"),
    ("mmc unstable", lambda: q.mmc(5, 1, 2), "arrival_rate 5.0 >= servers"),
    ("md1 rate", lambda: q.md1(1, -1), "service_rate must be > 0"),
    ("mg1 moment", lambda: q.mg1(1, 0.5, 0.1), "second_moment 0.1 < mean_service"),
    ("mg1 unstable", lambda: q.mg1(3, 0.5, 1), "arrival_rate\\*mean_service"),
    ("erlang_b servers", lambda: q.erlang_b(0, 1), "servers must be >= 1"),
    ("erlang_b load", lambda: q.erlang_b(2, -1), "offered_load must be >= 0"),
    ("erlang_c unstable", lambda: q.erlang_c(2, 3), "offered_load 3.0 >= servers 2"),
    ("littles_law count", lambda: q.littles_law(1), "needs exactly two"),
    ("littles_law W", lambda: q.littles_law(1, mean_time=-1), "mean_time must be"),
    ("power_of_d load", lambda: q.power_of_d(1.0, 2), "load 1.0 >= 1"),
    ("power_of_d d", lambda: q.power_of_d(0.5, 0), "d must be >= 1"),
    ("power_of_d servers", lambda: q.power_of_d(0.5, 3, 2), "d 3 > servers 2"),
    ("power_of_d_tail i", lambda: q.power_of_d_tail(0.5, 2, -1), "i must be >= 0"),
    ("response_percentile", lambda: q.mm1(0.5, 1).response_percentile(100), "p must"),
    ("response_survival", lambda: q.mm1(0.5, 1).response_survival(-1), "t must be"),
    ("survival of M/D/1", lambda: q.md1(0.5, 1).response_survival(1),
     "needs exponential service"),
    # resilience
    ("Backoff none attempt 0", lambda: resilience.Backoff("none").delay(0, None),
     "attempt must be >= 1, got 0"),
    ("Backoff decorrelated attempt -3",
     lambda: resilience.Backoff("decorrelated").delay(-3, None),
     "attempt must be >= 1, got -3"),
    ("Backoff decorrelated previous < 0",
     lambda: resilience.Backoff("decorrelated").delay(1, None, previous=-1.0),
     r"previous sleep must be >= 0.005, got -1.0"),
    ("Backoff decorrelated previous < base",   # would sleep less than base
     lambda: resilience.Backoff("decorrelated", base=0.01).delay(1, None,
                                                               previous=0.001),
     r"previous sleep must be >= 0.01, got 0.001"),
    ("Backoff decorrelated previous nan",
     lambda: resilience.Backoff("decorrelated").delay(1, None, previous=math.nan),
     "previous sleep must be finite, got nan"),
    ("fanout threshold nan", lambda: resilience.fanout(threshold=math.nan),
     "threshold must be finite, got nan"),
    ("state_at empty", lambda: resilience.state_at([], 1.0),
     r"history must list at least the breaker's first state"),
    ("Policy breaker=hystrix", lambda: resilience.Policy(breaker=resilience.hystrix),
     r"call it, breaker=hystrix\(\)"),
    ("Policy breaker=resilience4j",
     lambda: resilience.Policy(breaker=resilience.resilience4j),
     r"call it, breaker=resilience4j\(\)"),
    ("Policy backoff=Backoff", lambda: resilience.Policy(backoff=resilience.Backoff),
     r"backoff must be a Backoff \(e.g. Backoff\('full'\)\), got <class"),
    ("Client on another simulator",
     lambda: resilience.Client(Simulator(), resilience.Backend(Simulator())),
     "the backend runs on another Simulator than the client"),
    ("first_entry misspelt state", lambda: resilience.first_entry([(0.0, "closed")],
                                                                  "halfopen"),
     r"state must be one of \('closed', 'half_open', 'open'\), got 'halfopen'"),
    ("breaker clock not callable",
     lambda: resilience.CircuitBreaker(resilience.hystrix(), 0.0),
     "clock must be a function returning the time"),
    ("throttle clock not callable", lambda: resilience.AdaptiveThrottle(None),
     "clock must be a function returning the time"),
    ("preset unknown override", lambda: resilience.resilience4j(bogus=1),
     r"a breaker has no setting \['bogus'\]"),
    ("summarize not a result", lambda: resilience.summarize(None),
     "summarize takes the Result of resilience.simulate"),
    ("fault after the users stop",
     lambda: resilience.simulate(faults=[("errors", 5.0, 6.0, 0.5)], duration=2.0),
     "a fault would start after the users stop at 2 s"),
]


@pytest.mark.parametrize("make,match", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_value_raises_config_error_naming_it(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# -- arguments of the wrong type, judged by the annotations (errors.checked) -------

@pytest.mark.parametrize("call, message", [
    # each was a TypeError or ValueError from deep inside the model
    (lambda: scenarios.storage_playground(duration="x"), "duration must be a number"),
    (lambda: scenarios.raft_failover(election_timeout="x"),
     r"election_timeout must be a tuple of 2: \(a number, a number\)"),
    (lambda: scenarios.staleness(quorums="x"),
     r"quorums must be a list, one \(N, R, W\) triple per item"),
    (lambda: scenarios.mapreduce_playground(down=None), "down must be a list"),
    (lambda: scenarios.leader_failover(seed="1"), "seed must be an int"),
    (lambda: scenarios.capstone(faults=None), "faults must be a list of"),
    (lambda: scenarios.fan_out(fanouts=5), "fanouts must be a list"),
    (lambda: scenarios.fan_out(zzz=1), "unexpected keyword argument 'zzz'"),
    # the playgrounds and other public functions (a KeyError, TypeErrors)
    (lambda: widgets.balancer_playground(max_servers="x"), "max_servers must be an"),
    (lambda: widgets.storage_playground(down=0), "down must be a list"),
    (lambda: widgets.capstone_panel(faults=None), "faults must be a list"),
    (lambda: storage.HashRing(servers=None), "servers must be a list"),
    (lambda: resilience.fanout(threshold=None), "threshold must be a number"),
    (lambda: txn.normal_case(protocol=["2pc"]), "protocol must be a str"),
    (lambda: Cluster(3, node_factory="Node"), "node_factory must be a function or"),
    (lambda: paxos.PaxosCluster(node=3), "node must be a class or None"),
    (lambda: storage.QuorumKV(coordinator=None), "coordinator must be a class"),
])
def test_a_scenario_names_the_argument_of_the_wrong_type(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_checked_leaves_good_calls_and_the_functions_own_errors_alone():
    seen = []

    @checked
    def f(seed: int = 0, *, loads: Sequence[float] = (0.5,), name: str | None = None):
        loads = list(loads)
        seen.append((seed, loads, name))
        if seed < 0:
            raise ConfigError("seed must be >= 0, my own words")
        return sum(loads) * len(name or "")       # a TypeError for a bad name

    assert f(np.int64(2), loads=(x for x in [0.5, 1.0]), name="ab") == 3.0
    assert seen == [(2, [0.5, 1.0], "ab")]        # the generator was not used up
    with pytest.raises(ConfigError, match="my own words"):
        f(-1)
    with pytest.raises(ConfigError, match="name must be a str or None, got 3"):
        f(name=3)
    with pytest.raises(ConfigError, match="loads must be a list, each item a "
                                          "number, got 'ab'"):
        f(loads="ab")


#: Public functions of labkit.scenarios that are not scenarios: per record, or
#: building blocks.
HELPERS = {"first", "positions", "postings", "total", "words", "doc_list", "skew",
           "cluster_result", "service_time"}


def public_scenarios() -> list[str]:
    return [name for name in scenarios.__all__
            if inspect.isfunction(getattr(scenarios, name)) and name not in HELPERS]


def test_every_public_scenario_is_checked():
    public = public_scenarios()
    assert len(public) > 60
    unchecked = [n for n in public if not hasattr(getattr(scenarios, n), "__wrapped__")]
    assert unchecked == []


def _keywords_of_public_scenarios():
    """(scenario name, keyword) for every keyword with a default of every
    public scenario, except those annotated Any."""
    for name in public_scenarios():
        fn = getattr(scenarios, name)
        for p in inspect.signature(inspect.unwrap(fn)).parameters.values():
            if (p.default is not inspect.Parameter.empty
                    and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                    and "Any" not in str(p.annotation)):
                yield name, p.name


def test_no_scenario_fails_from_inside_when_an_argument_is_nonsense():
    # A probe, one keyword at a time, with a value no annotation allows: the
    # scenario refuses it with a ConfigError, or a TypeError or ValueError that
    # names the keyword, or (a flag read for its truth, a knob unused by the
    # defaults) runs; it never fails from inside (an AttributeError, KeyError,
    # IndexError, "'<' not supported..."), which is what the probe found in 13
    # scenarios before errors.checked. A seed never reaches a name as an
    # object's repr, which would change from run to run.
    keywords = list(_keywords_of_public_scenarios())
    assert len(keywords) > 300
    crashes = []
    for name, keyword in keywords:
        try:
            getattr(scenarios, name)(**{keyword: object()})
        except ConfigError:
            continue
        except (TypeError, ValueError) as error:
            if keyword not in str(error):
                crashes.append(f"{name}({keyword}=...): {error!r}")
        except Exception as error:  # noqa: BLE001 (the probe reports every kind)
            crashes.append(f"{name}({keyword}=...): {error!r}")
        else:
            if keyword == "seed":
                crashes.append(f"{name} accepted an object as its seed")
    assert crashes == []


#: Keywords whose default lists something but for which nothing is a fair
#: request: a capstone day without faults.
MAY_BE_EMPTY = {("capstone", "faults")}


def test_no_scenario_sweeps_over_nothing():
    # A sweep over no values would return an empty table (or fail on an empty
    # max()), which reads as a result; every keyword whose default lists
    # values refuses an empty list, naming itself.
    swept, quiet = 0, []
    for name in public_scenarios():
        fn = getattr(scenarios, name)
        for p in inspect.signature(inspect.unwrap(fn)).parameters.values():
            if not (isinstance(p.default, tuple | list) and p.default) or \
                    (name, p.name) in MAY_BE_EMPTY:
                continue
            swept += 1
            try:
                fn(**{p.name: []})
            except ConfigError as error:
                if p.name in str(error) or "missing a required argument" in str(error):
                    continue
                quiet.append(f"{name}({p.name}=[]): {error}")
            else:
                quiet.append(f"{name}({p.name}=[]) ran")
    assert swept > 20
    assert quiet == []


@pytest.mark.parametrize("call, message", [
    # each ran, and measured something that could not happen
    (lambda: scenarios.leader_failover(size=2, trials=1),
     "size must be at least 3, got 2: without its leader"),
    (lambda: scenarios.log_comparison(size=1), "size must be at least 3"),
    # an internal "Sample larger than population"
    (lambda: scenarios.raft_failover(nodes=2, trials=1), "nodes must be at least 3"),
    (lambda: scenarios.txn_story(protocol="saga", fail_step=99),
     "fail_step must be <= 2"),
    (lambda: scenarios.txn_story(protocol="2pc", fail_step=1),
     "fail_step applies to protocol='saga' only"),
    (lambda: scenarios.fault_playground(window=(5, 50), duration=2),
     "starts after the run ends"),
])
def test_a_scenario_refuses_a_setting_it_cannot_measure(call, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        call()
