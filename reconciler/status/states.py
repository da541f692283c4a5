"""The one vocabulary: each state an object can be in, and what every surface says about it.

One row per state gives its phase (``status.phase``, the ``phase`` label of ``multinic_objects``,
the status/ files), its conditions (kstatus: Ready, Reconciling, Stalled), the Event reason
recorded when an object moves into it, and whether that Event is a Warning. Nothing else names
states: the rollout produces ``NodeStateName`` values, the report stage reads this table.

``ConfigValid`` is orthogonal to the state: a node or cluster whose file is invalid keeps its live
spec, its state and phase, and gets ``ConfigValid=False`` (reason ``ValidationFailed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from reconciler.status.models import ClusterPhase, ConditionStatus, NodePhase

KIND_NODE = "MultiNicNodeConfig"
KIND_CLUSTER = "ProxmoxCluster"

NodeStateName = Literal["applied", "running", "pending", "failed", "stalled", "unschedulable", "removing",
                        "removed", "remove-failed", "suspended", "held", "waiting", "drifted"]
ClusterStateName = Literal["pending", "verified", "degraded", "failed"]

Condition = tuple[ConditionStatus, str]  # (status, reason)


@dataclass(frozen=True)
class Row:
    phase: str | None  # None: the object is gone (no status, no series)
    ready: Condition
    reconciling: Condition | None  # None: the kind has no such condition (clusters)
    stalled: Condition | None
    event: str | None  # Event reason on a transition into this state (None: no Event)
    warning: bool = False  # the Event's type, and whether status.lastError is set

    @property
    def metric_phase(self) -> str | None:
        """The ``phase`` label of ``multinic_objects``: the phase itself, as alerts match it."""
        return self.phase


NODE_STATES: dict[NodeStateName, Row] = {
    "applied": Row("Ready", ("True", "Applied"), ("False", "Applied"), ("False", "Applied"), "Applied"),
    "running": Row("Applying", ("False", "Progressing"), ("True", "JobRunning"), ("False", "Progressing"),
                   "RolloutStarted"),
    "pending": Row("Pending", ("False", "RolloutPending"), ("True", "Waiting"), ("False", "Progressing"), None),
    "suspended": Row("Suspended", ("False", "Suspended"), ("False", "Suspended"), ("False", "Suspended"),
                     "Suspended"),
    "stalled": Row("Stalled", ("False", "RolloutStalled"), ("False", "RolloutStalled"), ("True", "RolloutStalled"),
                   "RolloutStalled", warning=True),
    "failed": Row("Failed", ("False", "ApplyFailed"), ("False", "ApplyFailed"), ("True", "ApplyFailed"),
                  "ApplyFailed", warning=True),
    "unschedulable": Row("Failed", ("False", "Unschedulable"), ("False", "Unschedulable"), ("True", "Unschedulable"),
                         "Unschedulable", warning=True),
    "removing": Row("Removing", ("False", "Removing"), ("True", "CleanupJobRunning"), ("False", "Removing"),
                    "CleanupStarted"),
    "remove-failed": Row("Failed", ("False", "CleanupFailed"), ("False", "CleanupFailed"), ("True", "CleanupFailed"),
                         "CleanupFailed", warning=True),
    "removed": Row(None, ("False", "Removed"), None, None, "Removed"),
    # Held back before a Job by spec.proxmox.nicCheck: enforce. The VMNicsMatch condition (and its
    # Event, VM_NICS_EVENTS) says what differs; these rows only keep the Job from starting.
    "held": Row("Held", ("False", "VMNicsMismatch"), ("False", "VMNicsMismatch"), ("True", "VMNicsMismatch"), None),
    "waiting": Row("Pending", ("False", "WaitingForVMNicCheck"), ("True", "WaitingForVMNicCheck"),
                   ("False", "WaitingForVMNicCheck"), None),
    # Applied, but the last drift check found the node's files or live state differing (drift.policy:
    # report leaves it so; repair starts an apply Job instead). The Drifted condition (and its
    # Events, below) says what differs.
    "drifted": Row("Drifted", ("False", "DriftDetected"), ("False", "DriftDetected"), ("False", "DriftDetected"),
                   None, warning=True),
}

# Condition Drifted (spec.drift in reconciler.yaml): what the last verify Job found, and the Events
# on its transitions.
DRIFTED = "Drifted"
DRIFT_FOUND: Condition = ("True", "DriftDetected")
IN_SYNC: Condition = ("False", "InSync")
DRIFT_REPAIRED: Condition = ("False", "Repaired")  # an apply Job re-activated the spec after drift was found
VERIFY_FAILED: Condition = ("Unknown", "VerificationFailed")
EVENT_DRIFT_DETECTED = "DriftDetected"  # Warning, when Drifted turns True (or what differs changes)
EVENT_DRIFT_REPAIRED = "DriftRepaired"  # Normal, when an apply Job repaired it
EVENT_DRIFT_RESOLVED = "DriftResolved"  # Normal, when a check finds it in sync again without a repair

# Condition VMNicsMatch (nodes naming a Proxmox VM): its reasons, and the Events on its transitions.
VM_NICS_MATCH = "VMNicsMatch"
EVENT_VM_NICS_DIFFER = "VMNicsMismatch"  # Warning, when the condition turns False (both nicCheck modes)
EVENT_VM_NICS_MATCH = "VMNicsMatch"  # Normal, when it turns True after False
EVENT_VM_NICS_UPDATED = "VMNicsUpdated"  # Normal, manageNics wrote the VM's netN devices
EVENT_VM_NICS_UPDATE_FAILED = "VMNicsUpdateFailed"  # Warning, PVE refused that write
EVENT_VM_NICS_RESTORED = "VMNicsRestored"  # Warning, the node's Job failed after a change: it was undone

# A failed verification's Ready reason is the error's class (Unreachable, AuthFailed, TLSError, ...):
# the row's reason is the fallback.
CLUSTER_STATES: dict[ClusterStateName, Row] = {
    "pending": Row("Pending", ("Unknown", "NotVerified"), None, None, None),
    "verified": Row("Ready", ("True", "Verified"), None, None, "Verified"),
    "degraded": Row("Ready", ("True", "Verified"), None, None, "Degraded", warning=True),
    "failed": Row("Failed", ("False", "VerificationFailed"), None, None, "VerificationFailed", warning=True),
}

# ConfigValid, for both kinds.
CONFIG_VALID: Condition = ("True", "Valid")
CONFIG_INVALID: Condition = ("False", "ValidationFailed")
EVENT_INVALID = "ValidationFailed"
EVENT_VALID = "ValidationPassed"  # the file is valid again after it was not

NODE_PHASES: tuple[str, ...] = get_args(NodePhase)
CLUSTER_PHASES: tuple[str, ...] = get_args(ClusterPhase)


def node_row(state: str) -> Row:
    return NODE_STATES[state]  # type: ignore[index]


def cluster_row(state: str) -> Row:
    return CLUSTER_STATES[state]  # type: ignore[index]


def metric_phases(kind: str) -> set[str]:
    """Every ``phase`` label value the code can emit for ``kind`` (for the alert check)."""
    rows = NODE_STATES.values() if kind == KIND_NODE else CLUSTER_STATES.values()
    return {r.metric_phase for r in rows if r.metric_phase is not None}
