"""A SIGTERM stops a test run the way Ctrl-C does: pytest tears the fixtures
down, stopping every process the tests started, instead of dying at once and
leaving them running. This holds in the main pytest process and in each
pytest-xdist worker (tests/test_no_orphans.py checks it)."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that pytest ends
    the run through its usual interrupt path: fixture teardown, atexit, exit 2."""


def _raise_terminated(signum, frame):
    raise Terminated(f"received signal {signum}")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _raise_terminated)
    # SIGINT interrupts even a run started with it ignored (a background job of
    # a shell script): pytest-xdist relies on it to stop a worker in mid-test.
    signal.signal(signal.SIGINT, signal.default_int_handler)
