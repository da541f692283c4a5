"""The repository-level state that ``status/README.md`` starts with.

* **attempted revision**: the config commit the last reconcile read;
* **applied revision**: the last commit fully applied: valid, every CR written, and every node's
  rollout finished Ready (no Job in flight, nothing failed, stalled or suspended); it lags the
  attempted one while a commit is blocked, rolling out or failing, and says so;
* **validation**: ok, or how many files are blocked, with their diagnostics (file:line), capped;
* **rollout**: complete, in progress, paused (suspended) or stalled, and why.

``repo_state`` is pure; ``applied_from_readme`` reads the applied revision back from a previous
``status/README.md`` so a restarted reconciler does not forget it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.config.diagnostics import Diagnostic
from reconciler.config.formats import printable

if TYPE_CHECKING:
    from reconciler.apply.rollout import NodeState, RolloutReport
    from reconciler.config.validation import ValidationResult

_APPLIED = re.compile(r"^Applied revision: `([0-9a-f]{7,64})`", re.MULTILINE)


@dataclass(frozen=True)
class BlockedFile:
    path: str
    diagnostics: tuple[str, ...]  # "nodes/w1.yaml:12:7 spec.interfaces[0].mtu: ..." lines


@dataclass(frozen=True)
class RepoReport:
    attempted_revision: str | None
    applied_revision: str | None
    valid: bool
    files_checked: int = 0
    errors: int = 0
    blocked: tuple[BlockedFile, ...] = field(default=())
    settings_blocked: bool = False
    rollout: str = "complete"  # complete | in progress (...) | paused: ... | stalled: ... | failed: ...

    @property
    def fully_applied(self) -> bool:
        return self.attempted_revision is not None and self.applied_revision == self.attempted_revision


def _line(d: Diagnostic) -> str:
    return printable(f"{d.location} {d.field + ': ' if d.field else ''}{d.message}")


def blocked_files(diagnostics: Iterable[Diagnostic]) -> tuple[BlockedFile, ...]:
    by_path: dict[str, list[str]] = {}
    for d in diagnostics:
        if d.severity == "error":
            by_path.setdefault(d.path, []).append(_line(d))
    return tuple(BlockedFile(path, tuple(lines)) for path, lines in sorted(by_path.items()))


def rollout_summary(nodes: Mapping[str, NodeState], *, in_flight: bool) -> tuple[str, bool]:
    """(one line, whether every node is done and Ready)."""
    counts: Counter[str] = Counter(str(s.state) for s in nodes.values())
    stalled = next((s.message for s in nodes.values() if s.state == "stalled"), None)
    if stalled:
        return f"stalled: {stalled}; {_counts(counts)}", False
    suspended = counts.get("suspended", 0)
    if suspended:
        return f"paused: {suspended} node(s) suspended; {_counts(counts)}", False
    failed = sum(counts.get(k, 0) for k in ("failed", "unschedulable", "remove-failed"))
    if in_flight:
        return f"in progress: {_counts(counts)}", False
    if failed:
        return f"finished with failures: {_counts(counts)}", False
    return "complete" + (f": {_counts(counts)}" if counts else ""), True


def _counts(counts: Counter[str]) -> str:
    order = ("applied", "running", "pending", "removing", "failed", "unschedulable", "remove-failed", "stalled",
             "suspended", "removed")
    keys = sorted(counts, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def repo_state(revision: str | None, validation: ValidationResult, rollout: RolloutReport | None, *,
               failed_writes: int = 0, previous_applied: str | None = None) -> RepoReport:
    """The repo-level state after a cycle; the applied revision moves to ``revision`` only when
    this cycle finished applying all of it."""
    errors = validation.errors
    settings_blocked = validation.desired.settings_blocked
    if settings_blocked:
        summary, done = "stopped: reconciler.yaml is invalid, nothing is applied", False
    elif rollout is None:
        summary, done = "not run", False
    else:
        summary, done = rollout_summary(rollout.nodes, in_flight=rollout.in_flight)
    applied = previous_applied
    if revision is not None and done and not errors and failed_writes == 0:
        applied = revision
    return RepoReport(attempted_revision=revision, applied_revision=applied, valid=not errors,
                      files_checked=len(validation.files), errors=len(errors), blocked=blocked_files(errors),
                      settings_blocked=settings_blocked, rollout=summary)


def applied_from_readme(text: str | None) -> str | None:
    """The applied revision a previous ``status/README.md`` recorded (None when unknown)."""
    if not text:
        return None
    found = _APPLIED.search(text)
    return found.group(1) if found else None
