"""What goes wrong in a capstone run (notebook 09): the fault schedule
(`CapstoneFault`, `CAPSTONE_FAULTS`, checked by `as_capstone_fault`) and
`_Operator`, who applies it to the service, notes what each fault hit (a
`FaultHit`, part of the run's record) and samples the dashboard at the end of
every window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from labkit import raft
from labkit.errors import ConfigError, checked, require_number, require_probability
from labkit.metrics import Record, keyed

from .service import CAPSTONE_METADATA, CAPSTONE_SERVERS, _Service, _StorageServer

#: The kinds of fault a CapstoneFault may name.
CAPSTONE_FAULT_KINDS = ("crash", "replace", "slow", "partition", "brownout")


class CapstoneFault(NamedTuple):
    """One entry of the capstone's fault schedule: from `at` for `duration`
    seconds (math.inf: to the end), counted from the start of the workload.

    "crash": `target` stops, and restarts `duration` s later with its disk.
    "replace": storage server `target` dies with its disk; an empty machine
    takes its place `duration` s later and pulls its keys from its peers.
    "slow": storage server `target` works `severity` times slower.
    "partition": the nodes in `target` ("s1,n1") are cut off from the other
    servers (the load balancer still reaches all); a later one replaces it.
    "brownout": every storage server runs at (1 - severity) of its speed.
    The target "leader" is the metadata leader at that moment.
    """

    kind: str
    at: float
    duration: float
    target: str = ""
    severity: float = 1.0


#: The schedule the tuning lab is graded against: each kind of fault once.
CAPSTONE_FAULTS = (
    CapstoneFault("slow", 6.0, 10.0, "s2", 4.0),
    CapstoneFault("crash", 20.0, 6.0, "leader"),
    CapstoneFault("brownout", 26.0, 4.0, "", 0.3),
    CapstoneFault("partition", 34.0, 6.0, "s4"),
    CapstoneFault("replace", 38.0, 6.0, "s4"),
)


@dataclass(frozen=True, kw_only=True)
class FaultHit(Record):
    """What one scheduled fault struck: its kind, the node names it hit ("all"
    for a brownout, "nobody" if its target was gone) and the seconds from the
    start of the workload it began and was to end (math.inf: never)."""

    fault: str
    target: str
    start: float = keyed("from (s)")
    end: float = keyed("to (s)")


class _Sample(NamedTuple):
    """The operator's dashboard at the end of one window: keys whose newest
    version some live owner lacks, acknowledged writes lost so far, the
    metadata leader ("none") and each metadata node's role."""

    under_replicated: int
    lost_writes: int
    leader: str
    roles: dict[str, str]


@checked
def as_capstone_fault(value: CapstoneFault | Sequence) -> CapstoneFault:
    """A checked CapstoneFault from one, or from a (kind, at, duration[, target[,
    severity]]) tuple."""
    if not isinstance(value, tuple | list) or not 3 <= len(value) <= 5:
        raise ConfigError(f"a capstone fault is (kind, at, duration[, target[, "
                          f"severity]]), got {value!r}")
    fault = CapstoneFault(*value)
    if fault.kind not in CAPSTONE_FAULT_KINDS:
        raise ConfigError(f"fault kind must be one of {CAPSTONE_FAULT_KINDS}, got "
                          f"{fault.kind!r}")
    require_number("fault at", fault.at, minimum=0.0)
    if isinstance(fault.duration, bool) or not isinstance(
            fault.duration, int | float) or not fault.duration > 0:
        raise ConfigError(f"fault duration must be > 0 seconds (math.inf: to the "
                          f"end of the run), got {fault.duration!r}")
    if fault.kind == "brownout":
        if require_probability("brownout severity", fault.severity) == 1.0:
            raise ConfigError("brownout severity must be below 1 (1 stops every "
                              "server: use crash faults for that)")
        return fault
    names = _capstone_targets(fault)
    if fault.kind in ("replace", "slow") and names[0] not in CAPSTONE_SERVERS:
        raise ConfigError(f"a {fault.kind} fault targets a storage server "
                          f"{CAPSTONE_SERVERS}, got {fault.target!r}")
    if fault.kind == "slow":
        require_number("slow severity (a factor)", fault.severity, minimum=1.0)
    return fault


def _capstone_targets(fault: CapstoneFault) -> list[str]:
    """The node names a fault's target lists (checked)."""
    known = (*CAPSTONE_SERVERS, *CAPSTONE_METADATA, "leader")
    names = [n.strip() for n in str(fault.target).split(",") if n.strip()]
    if not names or any(n not in known for n in names):
        raise ConfigError(f"a {fault.kind} fault needs a target from {known}, got "
                          f"{fault.target!r}")
    if fault.kind != "partition" and len(names) > 1:
        raise ConfigError(f"a {fault.kind} fault targets one node, got "
                          f"{fault.target!r}")
    return names


class _Operator:
    """The operator's side of a run: applies the fault schedule and samples
    the dashboard at the end of every window."""

    def __init__(self, metadata: raft.RaftCluster,
                 servers: Mapping[str, _StorageServer], service: _Service):
        self.sim, self.t0 = metadata.sim, service.t0
        self.metadata, self.servers, self.service = metadata, servers, service
        self.events: list[FaultHit] = []
        self.samples: list[_Sample] = []

    def schedule(self, fault: CapstoneFault) -> None:
        self.sim.at(self.t0 + fault.at, self.begin, fault)

    def begin(self, fault: CapstoneFault) -> None:
        kind, names = fault.kind, []
        if kind == "brownout":
            self.service.slowdown = 1.0 / (1.0 - fault.severity)
        else:
            names = [self.metadata.leader() if n == "leader" else n
                     for n in _capstone_targets(fault)]
            names = [n for n in names if n is not None]
        for name in names:
            if kind in ("crash", "replace"):
                self._node(name, "kill")
            if kind == "replace":
                self.servers[name].disk.clear()          # a new, empty machine
                self.check_losses()
            elif kind == "slow":
                self.servers[name].slow = fault.severity
        if kind == "partition" and names:
            self.metadata.partition(names)
        hit = ",".join(names) or ("all" if kind == "brownout" else "nobody")
        self.events.append(FaultHit(fault=kind, target=hit, start=fault.at,
                                    end=fault.at + fault.duration))
        if fault.duration != math.inf:
            self.sim.schedule(fault.duration, self.end, kind, names)

    def end(self, kind: str, names: list[str]) -> None:
        if kind == "brownout":
            self.service.slowdown = 1.0
        elif kind == "partition":
            self.metadata.heal()
        for name in names:
            if kind in ("crash", "replace"):
                self._node(name, "restart")
            elif kind == "slow":
                self.servers[name].slow = 1.0

    def _node(self, name: str, verb: str) -> None:
        if name in self.servers:
            getattr(self.servers[name], verb)()
        else:
            getattr(self.metadata, verb)(name)

    def _disks(self) -> dict[str, dict]:
        """Each storage server's data, key -> (version, value) (empty: lost)."""
        return {name: server.disk.get("data", {})
                for name, server in self.servers.items()}

    def check_losses(self) -> None:
        """Note each key whose newest acknowledged version no disk holds."""
        service, disks, none = self.service, self._disks(), (0, None)
        for key, version in service.acked.items():
            if max(disks[o].get(key, none)[0] for o in service.owners[key]) < version:
                service.lost.add((key, version))

    def sample_every_window(self) -> None:
        w = self.service.window
        for k in range(1, math.ceil(self.service.duration / w)):
            self.sim.at(self.t0 + k * w, self.sample)

    def sample(self) -> None:
        """What the operator's dashboard shows at the end of a window."""
        disks, none, under = self._disks(), (0, None), 0
        down = {name for name, server in self.servers.items() if not server.alive}
        owners_of = self.service.owners
        for key in set().union(*disks.values()):  # a key on no disk is unwritten
            owners = owners_of[key]
            versions = [disks[o].get(key, none)[0] for o in owners]
            newest = max(versions)
            if newest and (down.intersection(owners) or min(versions) < newest):
                under += 1      # some owner is down or lacks the newest version
        self.check_losses()
        metadata = self.metadata
        self.samples.append(_Sample(
            under_replicated=under, lost_writes=len(self.service.lost),
            leader=metadata.leader() or "none",
            roles={n: metadata.role(n) for n in metadata.names}))
