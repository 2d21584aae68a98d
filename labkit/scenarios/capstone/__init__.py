"""Scenarios of notebook 09, the capstone: one simulated day of a replicated
key-value service (five storage servers, a Raft metadata cluster, a load
balancer, users with a resilient client) under a schedule of faults, judged
against a service-level objective and tuned knob by knob.

Where to read what:
    service.py     the service: storage servers (labkit.storage's
                   `CoordinatingReplica` with a worker queue and metadata
                   calls), the load balancer, the users, the settings and
                   counters
    faults.py      the fault schedule (`CapstoneFault`, `CAPSTONE_FAULTS`) and
                   the operator who applies it (`FaultHit`: what a fault hit)
                   and samples the dashboard
    scenario.py    `capstone()` itself, its knobs (`CAPSTONE_START`,
                   `CAPSTONE_TUNED`) and how a run becomes a Result; its data
                   is a `CapstoneRun` record, one `Window` per window
    objectives.py  `SLO`, `scorecard`, `verdict` and the `TuningJournal` (one
                   `JournalEntry` per run)

`labkit.scenarios` re-exports every public name, so there `scenarios.capstone`
is the function, not this package.
"""

from .faults import (
    CAPSTONE_FAULT_KINDS,
    CAPSTONE_FAULTS,
    CapstoneFault,
    FaultHit,
    as_capstone_fault,
)
from .objectives import SLO, JournalEntry, TuningJournal, scorecard, slo_rows, verdict
from .scenario import (
    CAPSTONE_KNOBS,
    CAPSTONE_START,
    CAPSTONE_TUNED,
    CapstoneRun,
    Window,
    capstone,
)
from .service import CAPSTONE_COSTS, CAPSTONE_METADATA, CAPSTONE_SERVERS

__all__ = [
    "CAPSTONE_COSTS", "CAPSTONE_FAULTS", "CAPSTONE_FAULT_KINDS", "CAPSTONE_KNOBS",
    "CAPSTONE_METADATA", "CAPSTONE_SERVERS", "CAPSTONE_START", "CAPSTONE_TUNED",
    "SLO", "CapstoneFault", "CapstoneRun", "FaultHit", "JournalEntry",
    "TuningJournal", "Window", "as_capstone_fault", "capstone", "scorecard",
    "slo_rows", "verdict",
]
