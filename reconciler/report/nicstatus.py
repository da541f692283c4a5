"""The VM NIC check in a node's status: ``proxmoxCheck`` and condition ``VMNicsMatch``, and the
Event when that condition turns (the node status writer calls these; the check itself is
``reconciler.apply.proxmox.crosscheck``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.apply.proxmox import crosscheck
from reconciler.report import conditions


def with_nic_check(wanted: Mapping[str, Any], previous: Mapping[str, Any], check: crosscheck.NodeCheck | None, *,
                   generation: int | None, now: Any = None) -> dict[str, Any]:
    """``wanted`` (a node status about to be written) with ``proxmoxCheck`` and the
    ``VMNicsMatch`` condition set from ``check``; both removed when ``check`` is None (the node
    names no VM, or its check is not known this cycle and nothing is claimed)."""
    out = dict(wanted)
    others = [c for c in out.get("conditions") or [] if c.get("type") != crosscheck.CONDITION]
    if check is None:
        out.pop("proxmoxCheck", None)
        out["conditions"] = others
        return out
    out["proxmoxCheck"] = {k: v for k, v in {
        "checked": check.checked,
        "vmNode": check.vm_node,
        "mismatches": list(check.mismatches),
        "error": check.error,
        "nicCheck": "enforce" if check.enforce else "warn",
    }.items() if v is not None}
    out["conditions"] = others + conditions.merge(previous.get("conditions"), {crosscheck.CONDITION: check.condition},
                                                  generation=generation, now=now)
    return out


def transition_event(previous: Mapping[str, Any], wanted: Mapping[str, Any]) -> tuple[str, str, bool] | None:
    """(reason, message, warning) of the Event for a ``VMNicsMatch`` change, None if no change
    worth one: turning False (a mismatch found) or turning True again after False."""
    def condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
        return next((c for c in status.get("conditions") or [] if c.get("type") == crosscheck.CONDITION), {})

    before, after = condition(previous), condition(wanted)
    if not after or (before.get("status"), before.get("message")) == (after.get("status"), after.get("message")):
        return None
    if after.get("status") == "False":
        return "VMNicsMismatch", str(after.get("message")), True
    if after.get("status") == "True" and before.get("status") == "False":
        return "VMNicsMatch", str(after.get("message")), False
    return None
