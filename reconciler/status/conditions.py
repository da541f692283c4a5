"""metav1.Condition lists for both kinds, and the status timestamps.

``lastTransitionTime`` moves only when a condition's status flips, so recomputing the same outcome
every cycle produces an identical status and therefore no write. Conditions of types a caller does
not set are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.status.models import Condition, ConditionStatus

# Display order: the summary first (kstatus), then the abnormal-true ones, then the rest by name.
ORDER = ("Ready", "Reconciling", "Stalled", "ConfigValid")


def timestamp(now: datetime | None = None) -> str:
    """RFC 3339, seconds, UTC: the form metav1.Time takes."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def merge(previous: Iterable[Condition] | None, wanted: Mapping[str, tuple[ConditionStatus, str, str]], *,
          generation: int | None, now: datetime | None = None) -> tuple[Condition, ...]:
    """``wanted``: type -> (status, reason, message). Keeps the transition times of conditions whose
    status did not change, and the conditions of other types as they were."""
    before = {c.type: c for c in previous or ()}
    out: dict[str, Condition] = {t: c for t, c in before.items() if t not in wanted}
    for kind, (status, reason, message) in wanted.items():
        old = before.get(kind)
        out[kind] = Condition(
            type=kind, status=status, reason=reason, message=message[:32768],
            last_transition_time=old.last_transition_time if old is not None and old.status == status
            else timestamp(now),
            observed_generation=generation)
    return tuple(out[k] for k in sorted(out, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k)))


def get(conditions: Iterable[Condition] | Iterable[Mapping[str, Any]] | None, kind: str) -> Condition | None:
    """The condition of type ``kind`` (from models or from raw status dicts), or None."""
    for condition in conditions or ():
        if isinstance(condition, Condition):
            if condition.type == kind:
                return condition
        elif isinstance(condition, Mapping) and condition.get("type") == kind:
            try:
                return Condition.model_validate(condition)
            except ValueError:
                return None
    return None


def merge_raw(previous: Iterable[Mapping[str, Any]] | None, wanted: Mapping[str, tuple[ConditionStatus, str, str]],
              *, generation: int | None, now: datetime | None = None) -> list[dict[str, Any]]:
    """``merge`` on conditions as the apiserver stores them (plain dicts); unreadable ones are dropped."""
    parsed: list[Condition] = []
    for raw in previous or ():
        try:
            parsed.append(Condition.model_validate(raw))
        except ValueError:
            continue
    return [c.dump() for c in merge(parsed, wanted, generation=generation, now=now)]
