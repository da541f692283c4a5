"""metav1.Condition lists: Ready, Reconciling, Stalled.

``lastTransitionTime`` moves only when a condition's status flips, so recomputing the same
outcome every cycle produces an identical status and therefore no write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ORDER = ("Ready", "Reconciling", "Stalled")


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(previous: list[dict[str, Any]] | None, wanted: dict[str, tuple[str, str, str]], *,
          generation: int | None, now: datetime | None = None) -> list[dict[str, Any]]:
    """``wanted``: type -> (status, reason, message). Keeps transition times that did not change."""
    before = {c.get("type"): c for c in previous or []}
    out = []
    for kind in sorted(wanted, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k)):
        status, reason, message = wanted[kind]
        old = before.get(kind) or {}
        condition = {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == status
            else timestamp(now),
        }
        if condition["lastTransitionTime"] is None:
            condition["lastTransitionTime"] = timestamp(now)
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def get(conditions: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == kind), None)
