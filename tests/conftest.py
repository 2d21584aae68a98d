"""Two things every test run shares.

A SIGTERM stops a test run the way Ctrl-C does: pytest tears the fixtures
down, stopping every process the tests started, instead of dying at once and
leaving them running. This holds in the main pytest process and in each
pytest-xdist worker (tests/test_no_orphans.py checks it).

How `make test` (`-n 2 --dist loadfile`) shares the work between its two
workers. Each test file and each notebook is one unit of work, run on one
worker in order (nbval needs a notebook's cells in one kernel; a file's module
fixtures start once), except the browser test, whose notebooks are units of
their own, so that the two workers share the slowest file (each worker starts
its own JupyterLab and Chromium). Workers take units in the order collected,
one at a time as they finish, so the units are put longest first: a long unit
started last would leave one worker running it alone. The browser's units
alternate with the notebooks', so that while one worker drives Chromium the
other most often runs a kernel. (pytest-xdist's own `--dist loadgroup` would
do the grouping, but it renames node ids, which pytest 9.2 no longer lets it
do: with it every test was a unit of its own and notebooks broke up.)"""

from __future__ import annotations

import gc
import signal

import pytest


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so that pytest ends
    the run through its usual interrupt path: fixture teardown, atexit, exit 2."""


def _raise_terminated(signum, frame):
    raise Terminated(f"received signal {signum}")


_frozen_at: list = [None]       # the file whose first test last froze the heap


def pytest_runtest_setup(item):
    """As each test file or notebook starts, collect, then take what is still
    alive (the test modules, labkit and its libraries, the collected items,
    what earlier files kept: 100,000 to 300,000 objects) out of the cyclic
    garbage collector's sight (`gc.freeze`). Simulations allocate fast enough
    to set off a full collection every few seconds, and each one walked all of
    that: on the resilience lab's and the KV store's tests, 23 s of 62 s went
    to collections, 7.5 s with a freeze after collection. (Nothing may call
    `gc.unfreeze`: it would hand all of it back, as a test once did.)"""
    if item.path != _frozen_at[0]:
        _frozen_at[0] = item.path
        gc.collect()
        gc.freeze()


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _raise_terminated)
    # SIGINT interrupts even a run started with it ignored (a background job of
    # a shell script): pytest-xdist relies on it to stop a worker in mid-test.
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: Files whose tests are units of work each (see the module docstring).
PER_TEST = ("tests/test_browser.py",)


def _unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or itself in PER_TEST."""
    path = nodeid.split("::")[0]
    return nodeid if path in PER_TEST else path


def _kind(item: pytest.Item) -> int:
    """The item's kind, longest first: a browser test (JupyterLab and Chromium,
    10-60 s a notebook), a notebook's cells (nbval runs a whole notebook, up to
    a minute), a test marked slow, any other test."""
    if item.get_closest_marker("browser"):
        return 0
    if item.path.suffix == ".ipynb":
        return 1
    return 2 if item.get_closest_marker("slow") else 3


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """In an xdist worker, put the units of work in the order the module
    docstring says, keeping the collected order within each unit (every worker
    collects the same order: xdist checks it)."""
    if not hasattr(config, "workerinput"):
        return
    kind: dict[str, int] = {}
    for item in items:
        unit = _unit(item.nodeid)
        kind[unit] = min(kind.get(unit, 3), _kind(item))
    place = {}  # browser and notebook units alternate
    for unit, k in kind.items():
        place[unit] = (0 if k <= 1 else k, sum(kind[u] == k for u in place), k)
    items.sort(key=lambda item: place[_unit(item.nodeid)])


def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadfile`, a file is a unit of work except in PER_TEST,
    and the units go out in the collected order (conftest's, not xdist's
    most-tests-first). Other modes are xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Units(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False
    return Units(config, log)
