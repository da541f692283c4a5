"""Custom-resource status of nodes, computed in one place from the rollout's outcome.

A status is a pure function of (rollout state, previous status): recomputing the same outcome
gives the same dict, and ``patch_for`` returns nothing to write. ``observedGeneration`` and
``appliedRevision`` move only when the node is Ready (as Flux does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.apply.rollout import LiveNode, NodeState
from reconciler.report import conditions

# state -> (phase, Ready, Reconciling, Stalled) as (status, reason)
_TABLE: dict[str, tuple[str, tuple[str, str], tuple[str, str], tuple[str, str]]] = {
    "applied": ("Ready", ("True", "Applied"), ("False", "Applied"), ("False", "Applied")),
    "running": ("Applying", ("False", "Progressing"), ("True", "JobRunning"), ("False", "Progressing")),
    "pending": ("Pending", ("False", "RolloutPending"), ("True", "Waiting"), ("False", "Progressing")),
    "stalled": ("Stalled", ("False", "RolloutStalled"), ("False", "RolloutStalled"), ("True", "RolloutStalled")),
    "failed": ("Failed", ("False", "ApplyFailed"), ("False", "ApplyFailed"), ("True", "ApplyFailed")),
    "unschedulable": ("Failed", ("False", "Unschedulable"), ("False", "Unschedulable"), ("True", "Unschedulable")),
    "removing": ("Removing", ("False", "Removing"), ("True", "CleanupJobRunning"), ("False", "Removing")),
    "remove-failed": ("Failed", ("False", "CleanupFailed"), ("False", "CleanupFailed"), ("True", "CleanupFailed")),
    "suspended": ("Suspended", ("False", "Suspended"), ("False", "Suspended"), ("False", "Suspended")),
}


def node_status(state: NodeState, cr: LiveNode, *, source_path: str | None,
                now: datetime | None = None) -> dict[str, Any]:
    previous = cr.status
    phase, ready, reconciling, stalled = _TABLE[state.state]
    message = state.message or phase
    status: dict[str, Any] = {
        "phase": phase,
        "interfaceCount": len(cr.spec.get("interfaces") or []),
        "conditions": conditions.merge(previous.get("conditions"), {
            "Ready": (*ready, message), "Reconciling": (*reconciling, message), "Stalled": (*stalled, message),
        }, generation=cr.generation, now=now),
    }
    if source_path:
        status["sourcePath"] = source_path
    for key in ("observedGeneration", "appliedRevision", "interfaces", "proxmoxCheck", "attemptedRevision"):
        if key in previous:
            status[key] = previous[key]
    if state.job:
        status["job"] = state.job
    # The host this object's Jobs wrote to (a nodeName change cleans it up first).
    host = state.host if state.host is not None else previous.get("nodeName")
    if host and state.state not in ("removed",):
        status["nodeName"] = host
    if state.state in ("applied", "running", "failed") and state.rollout:
        status["attemptedRevision"] = state.rollout
    if state.attempt:
        status["attempt"] = state.attempt
    if state.next_retry:
        status["nextRetry"] = state.next_retry
    if state.state in ("applied", "failed"):
        status["specHash"] = state.spec_hash  # recorded: this spec is not rolled out again
    elif "specHash" in previous:
        status["specHash"] = previous["specHash"]
    if state.state == "applied":
        status["observedGeneration"] = cr.generation
        if state.revision:
            status["appliedRevision"] = state.revision
    if state.result is not None:
        status["interfaces"] = [
            {k: v for k, v in {"name": i.name, "macAddress": i.mac, "device": i.device, "state": i.state,
                               "error": i.error}.items() if v is not None}
            for i in state.result.interfaces
        ]
    if state.state in ("failed", "unschedulable", "remove-failed", "stalled"):
        status["lastError"] = message
    return status


def patch_for(previous: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning ``previous`` into ``wanted`` (None when they are equal)."""
    if previous == wanted:
        return None
    patch: dict[str, Any] = {k: v for k, v in wanted.items() if previous.get(k) != v}
    patch.update({k: None for k in previous if k not in wanted})
    return patch
