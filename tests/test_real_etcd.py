"""labkit.real against a real etcd: a 3-member cluster on 127.0.0.1 elects a
new leader after its leader is killed, and every process it started is gone
afterwards, also after an interrupted start. Skips (saying how to install
etcd) where no etcd binary exists; CI installs Debian's etcd-server so this
path runs there."""

from __future__ import annotations

import pytest

from labkit import ConfigError, scenarios
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
