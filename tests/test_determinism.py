"""Same seed, same run: in one process, and across processes with different hash
seeds (so no set or dict-of-hash order leaks into behaviour or output)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from faults import ping_cluster, random_faults

from labkit import dist

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def fingerprint(seed: int) -> str:
    """A ping cluster under random faults and a lossy, reordering network,
    including verbs given sets (whose order follows the hash seed)."""
    c = ping_cluster(seed, size=5, latency=dist.lognormal(0.005, 0.05), loss=0.05,
                     duplicate=0.05, reorder=0.1)
    random_faults(c, 2.0, seed)
    c.partition({"n1", "n2", "n4"}, {"n3", "n5"})
    random_faults(c, 2.0, seed + 1)
    res = c.result("ping", tags={"faults", "ping", "lossy"}, seed_note=seed)
    return f"{res.fingerprint} {len(res.trace)}"


def test_same_seed_twice_in_one_process_gives_the_same_fingerprint():
    assert fingerprint(7) == fingerprint(7)


def test_different_seeds_give_different_runs():
    assert fingerprint(7) != fingerprint(8)


def run_elsewhere(hash_seed: str, seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    code = f"from test_determinism import fingerprint; print(fingerprint({seed}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("seed", [3, 11])
def test_fingerprint_is_the_same_under_different_hash_seeds(seed):
    here = fingerprint(seed)
    assert run_elsewhere("0", seed) == here
    assert run_elsewhere("12345", seed) == here
