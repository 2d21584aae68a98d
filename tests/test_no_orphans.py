"""An interrupted test run leaves no process running. A child pytest run, in a
session of its own with one pytest-xdist worker per hold_* function below,
holds what the process-starting tests start: the browser test's JupyterLab
server (its `lab` fixture) with a kernel, an etcd cluster, and a Dask cluster
of worker processes (labkit.real). Once all of them run, the child gets Ctrl-C
(SIGINT to its whole process group, as a terminal sends it), SIGTERM to the
group (as a CI runner may send it), or SIGTERM to the pytest process alone (as
`kill` sends it: the workers hear of it only through xdist). It must exit as
interrupted (conftest.py), leaving nothing: every process of the run
inherits LABKIT_TEST_TOKEN=<uuid> in its environment, which finds them all,
also those in sessions of their own (etcd, JupyterLab, its kernels).

The child collects only the hold_* functions (python_functions=hold_*); a plain
run of this file collects only the test. Skips without Chromium or etcd."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from test_browser import alive, lab, require_browser  # noqa: F401 (lab: a fixture)

from labkit import scenarios
from labkit.real import INSTALL_HINT, EtcdCluster, dask_wordcount, etcd_binary

REPO = Path(__file__).resolve().parents[1]
TOKEN = "LABKIT_TEST_TOKEN"
HOLD = 300  # seconds a hold_* function waits for the signal


def hold_lab(lab):  # noqa: F811 (the fixture imported above)
    lab.api("POST", "/api/kernels")
    time.sleep(HOLD)


def hold_etcd():
    with EtcdCluster(3):
        time.sleep(HOLD)


def hold_dask():  # 40 maps of 10 s each on 2 workers: still running at the signal
    dask_wordcount(scenarios.corpus(), workers=2, pause=10, kill_one=False)


#: What shows, in the command lines of the run's processes, that each holds.
HOLDING = {
    "hold_lab": lambda lines: any("ipykernel_launcher" in line for line in lines),
    "hold_etcd": lambda lines: sum(line.startswith(f"{etcd_binary()} ")
                                   for line in lines) == 3,
    "hold_dask": lambda lines: sum("spawn_main" in line for line in lines) >= 2,
}


def started(token: str) -> list[psutil.Process]:
    """Every live process whose environment carries the token."""
    return [p for p in psutil.process_iter(["environ", "cmdline"])
            if (p.info["environ"] or {}).get(TOKEN) == token and alive(p)]


def describe(processes: list[psutil.Process]) -> str:
    return "\n".join(f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:160]}"
                     for p in processes)


def wait_until(condition, timeout: float, interval: float = 0.2):
    """Poll until condition() is true or timeout s pass; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


@pytest.mark.slow
@pytest.mark.parametrize("signum, whole_group", [(signal.SIGINT, True),
                                                 (signal.SIGTERM, True),
                                                 (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigterm to the group", "sigterm to pytest"])
def test_an_interrupted_run_leaves_no_process(signum, whole_group, tmp_path):
    require_browser()
    if etcd_binary() is None:
        pytest.skip(INSTALL_HINT)
    holders = [h for h in HOLDING
               if h != "hold_dask" or importlib.util.find_spec("distributed")]
    token, log = uuid.uuid4().hex, tmp_path / "child.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-n", str(len(holders)), "--dist", "load", "-o", "python_functions=hold_*",
             f"--basetemp={tmp_path / 'child'}",
             *(f"tests/{Path(__file__).name}::{h}" for h in holders)],
            cwd=REPO, env=dict(os.environ, **{TOKEN: token}), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def holding() -> bool:
            assert child.poll() is None, f"the child run ended:\n{log.read_text()}"
            lines = [" ".join(p.info["cmdline"] or []) for p in started(token)]
            return all(HOLDING[h](lines) for h in holders)

        assert wait_until(holding, 180), (
            f"not all of {holders} hold:\n{describe(started(token))}\n"
            f"{log.read_text()}")
        seen = started(token)
        (os.killpg if whole_group else os.kill)(child.pid, signum)
        interrupted = time.monotonic()
        assert child.wait(timeout=120) == pytest.ExitCode.INTERRUPTED, log.read_text()
        exited = time.monotonic()
        gone = wait_until(lambda: not (started(token) or any(map(alive, seen))), 30)
        print(f"{len(seen)} processes; pytest exited {exited - interrupted:.1f} s "
              f"after the signal, the last process {time.monotonic() - exited:.1f} "
              "s later")
        assert gone, (f"left running:\n{describe(started(token))}\n"
                      f"{describe([p for p in seen if alive(p)])}\n{log.read_text()}")
    finally:  # after a failure: leave nothing behind either
        for process in started(token):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
