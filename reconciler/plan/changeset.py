"""The one currency between plan, apply and report."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    BLOCKED = "blocked"  # invalid file or a guard: the live object is left exactly as it is


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str  # e.g. spec.interfaces[storage0].mtu
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Action
    source: str | None = None  # file in the config repo
    reason: str = ""  # why (for blocked, delete, drift)
    fields: tuple[FieldChange, ...] = ()
    desired: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # manifest to apply
    live: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # spec as it is live
    live_version: str | None = None  # resourceVersion the plan saw: deletes are conditional on it
    drifted: bool = False  # the live spec had been edited outside Git: this update overwrites that edit

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


@dataclass(frozen=True)
class ChangeSet:
    changes: tuple[Change, ...]
    revision: str | None = None
    notes: tuple[str, ...] = ()  # plan-wide findings, e.g. the prune guard tripping

    def by_action(self, action: Action) -> list[Change]:
        return [c for c in self.changes if c.action is action]

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return any(c.action in (Action.CREATE, Action.UPDATE, Action.DELETE) for c in self.changes)
