"""labkit.real against a real etcd: a 3-member cluster on 127.0.0.1 elects a
new leader after its leader is killed, and every process it started is gone
afterwards, also after an interrupted start. Skips (saying how to install
etcd) where no etcd binary exists; CI installs Debian's etcd-server so this
path runs there."""

from __future__ import annotations

import socket

import pytest

from labkit import ConfigError, Unavailable, real, scenarios
from labkit.real import INSTALL_HINT, EtcdCluster, etcd_binary, etcd_failover

needs_etcd = pytest.mark.skipif(etcd_binary() is None, reason=INSTALL_HINT)


@needs_etcd
def test_killing_the_leader_elects_another_that_serves_writes():
    rows = etcd_failover(2, election_timeout_ms=300, heartbeat_ms=30, settle=1.0)
    assert len(rows) == 2
    for row in rows:
        assert row["new leader"] != row["old leader"]
        # A follower waits at least one election timeout (300 ms) without
        # heartbeats; the write comes after the election.
        assert 0.25 < row["to leader (s)"] <= row["to write (s)"] < 10.0


@needs_etcd
def test_every_process_and_file_is_cleaned_up():
    with EtcdCluster(3, election_timeout_ms=300, heartbeat_ms=30) as cluster:
        leader = cluster.leader()
        assert leader in cluster.members
        processes = [m.process for m in cluster.members.values()]
        directory = cluster.directory
        assert directory.exists()
    assert all(p.poll() is not None for p in processes)
    assert not directory.exists()


@needs_etcd
def test_an_interrupted_start_stops_what_it_started(monkeypatch):
    cluster, started = EtcdCluster(3), []

    def ctrl_c(within, via=None):  # while waiting for the first leader
        started.extend(m.process for m in cluster.members.values())
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster, "wait_for_writes", ctrl_c)
    with pytest.raises(KeyboardInterrupt), cluster:
        pass
    assert len(started) == 3 and all(p.poll() is not None for p in started)
    assert cluster.directory is None


def take_first_port(monkeypatch, port: int, times: int) -> list[int]:
    """Make the first `times` calls of `_free_ports` hand out `port` (which
    another process holds) as m1's client port; the calls' counts are listed."""
    fresh, calls = real._free_ports, []

    def first_port_taken(count: int) -> list[int]:
        calls.append(count)
        ports = fresh(count)
        return [port, *ports[1:]] if len(calls) <= times else ports

    monkeypatch.setattr(real, "_free_ports", first_port_taken)
    return calls


@needs_etcd
def test_a_member_whose_port_was_taken_makes_the_cluster_start_again(monkeypatch):
    # Someone binds a port between _free_ports and etcd: that member exits at
    # once while the other two elect a leader and accept writes. start() must
    # see the member gone and start the whole cluster again on fresh ports.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        calls = take_first_port(monkeypatch, port, times=1)
        with EtcdCluster(3, election_timeout_ms=300, heartbeat_ms=30) as cluster:
            assert calls == [6, 6]
            assert all(m.alive for m in cluster.members.values())
            assert f":{port}" not in " ".join(m.client_url + m.peer_url
                                              for m in cluster.members.values())
            assert set(cluster.names_by_id.values()) == {"m1", "m2", "m3"}


@needs_etcd
def test_a_port_taken_every_time_ends_in_a_clear_error(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        take_first_port(monkeypatch, taken.getsockname()[1], times=2)
        cluster = EtcdCluster(3, election_timeout_ms=300, heartbeat_ms=30)
        with pytest.raises(Unavailable, match=r"did not start in 2 tries; the "
                           r"last time m1 exited while starting(.|\n)*address "
                           r"already in use"):
            cluster.start(attempts=2)
    assert cluster.directory is None
    assert not any(m.alive for m in cluster.members.values())


@needs_etcd
def test_without_a_majority_a_write_is_refused_at_once():
    with EtcdCluster(3, election_timeout_ms=300, heartbeat_ms=30) as cluster:
        cluster.kill("m1")
        cluster.kill("m2")
        # At once: waiting would end in "accepted no write within 60 s".
        with pytest.raises(Unavailable, match="1 of its 3 members run, and a "
                                              "write needs 2"):
            cluster.wait_for_writes(60.0)


@needs_etcd
def test_unknown_member_is_refused():
    cluster = EtcdCluster(1)
    with pytest.raises(ConfigError, match="unknown member 'x'"):
        cluster.kill("x")


def test_recorded_measurements_sit_near_the_simulation():
    # The recorded files (data/etcd_failover_*.csv) against raft_failover with
    # etcd's timers. No follower times out sooner than one election timeout
    # after the last heartbeat it got, at most one heartbeat before the crash
    # (etcd counts in ticks of one heartbeat, so it may fire one tick early);
    # medians agree within a factor of 1.5 (its members share two CPU cores).
    for setting, (timeout, heartbeat) in scenarios.ETCD_SETTINGS.items():
        runs = scenarios.etcd_comparison(setting=setting, trials=100).data.runs
        measured, simulated = runs.values()
        assert measured.sorted()[0] >= timeout - 2 * heartbeat, (setting, measured)
        assert simulated.sorted()[0] >= timeout - heartbeat, (setting, simulated)
        ratio = measured.percentile(50) / simulated.percentile(50)
        assert 1 / 1.5 < ratio < 1.5, (setting, measured, simulated)
