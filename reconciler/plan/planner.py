"""Desired vs live -> ``ChangeSet``, with the prune guard.

Rules, in the order they apply:
- an invalid ``reconciler.yaml`` blocks everything (its limits would otherwise fall back to defaults);
- a file that failed validation blocks its object: never created, changed or deleted;
- an object whose file is gone is deleted only if we own it, prune is enabled, and the guard allows;
- the guard refuses, per kind, to delete more than ``maxDeletePercent`` of the owned objects in one
  cycle (one deletion is always allowed), and always refuses to empty a kind completely when the
  repository holds nothing at all (an empty checkout looks exactly like that);
- a live spec that differs from Git is an update; when it also differs from what we last applied,
  the reason says it was edited by hand (drift) and apply reverts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.config.models import NodeConfig, ProxmoxCluster
from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.config.validation import DesiredState
from reconciler.kube import objects
from reconciler.plan.changeset import Action, Change, ChangeSet, FieldChange
from reconciler.plan.diff import diff

KINDS = (KIND_CLUSTER, KIND_NODE)  # clusters first: nodes refer to them


@dataclass(frozen=True)
class LiveObject:
    kind: str
    name: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generation: int | None = None
    resource_version: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    uid: str | None = None  # for Events (kubectl describe matches them by uid)

    @classmethod
    def from_manifest(cls, obj: Mapping[str, Any]) -> LiveObject:
        metadata = obj.get("metadata") or {}
        return cls(
            kind=obj.get("kind", ""),
            name=metadata.get("name", ""),
            spec=obj.get("spec") or {},
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            generation=metadata.get("generation"),
            resource_version=metadata.get("resourceVersion"),
            status=obj.get("status") or {},
            uid=metadata.get("uid"),
        )

    @property
    def owned(self) -> bool:
        return (
            self.labels.get(objects.MANAGED_BY) == objects.MANAGED_BY_VALUE and objects.SOURCE_PATH in self.annotations
        )


def plan(desired: DesiredState, live: Mapping[str, Iterable[LiveObject]], *, revision: str | None = None) -> ChangeSet:
    namespace = desired.settings.spec.namespace
    by_kind = {kind: {o.name: o for o in live.get(kind, ()) if o.owned} for kind in KINDS}
    changes: list[Change] = []
    notes: list[str] = []
    if desired.settings_blocked:
        notes.append("reconciler.yaml is invalid: nothing is applied until it is fixed")
        for kind in KINDS:
            names = set(by_kind[kind]) | set(_models(desired, kind)) | set(desired.blocked.get(kind, ()))
            changes += [
                Change(kind, n, Action.BLOCKED, desired.sources.get((kind, n)), "reconciler.yaml is invalid")
                for n in sorted(names)
            ]
        return ChangeSet(tuple(changes), revision, tuple(notes))

    repo_empty = not any(_models(desired, k) or desired.blocked.get(k) for k in KINDS)
    for kind in KINDS:
        current = by_kind[kind]
        models = _models(desired, kind)
        blocked = desired.blocked.get(kind, frozenset())
        for name in sorted(set(models) | blocked):
            source = desired.sources.get((kind, name))
            if name in blocked:
                reason = (
                    "file is invalid; the live object is left unchanged"
                    if name in current
                    else "file is invalid; not created"
                )
                changes.append(Change(kind, name, Action.BLOCKED, source, reason))
                continue
            wanted = objects.manifest(models[name], namespace=namespace, path=source or "", revision=revision)
            changes.append(_compare(kind, name, source, wanted, current.get(name)))
        gone = [current[n] for n in sorted(set(current) - set(models) - blocked)]
        changes += _prune(kind, gone, len(current), desired, repo_empty, notes)
    return ChangeSet(tuple(changes), revision, tuple(notes))


def _models(desired: DesiredState, kind: str) -> Mapping[str, NodeConfig | ProxmoxCluster]:
    return desired.nodes if kind == KIND_NODE else desired.clusters


def _compare(kind: str, name: str, source: str | None, wanted: dict[str, Any], current: LiveObject | None) -> Change:
    if current is None:
        return Change(kind, name, Action.CREATE, source, "new file", desired=wanted)
    fields = diff(current.spec, wanted["spec"])
    meta = wanted["metadata"]
    for label, value in sorted(meta["labels"].items()):
        if current.labels.get(label) != value:
            fields.append(FieldChange(f"metadata.labels.{label}", current.labels.get(label), value))
    for key in (objects.SOURCE_PATH,):
        if current.annotations.get(key) != meta["annotations"][key]:
            fields.append(
                FieldChange(f"metadata.annotations.{key}", current.annotations.get(key), meta["annotations"][key])
            )
    if not fields:
        return Change(kind, name, Action.UNCHANGED, source, desired=wanted, live=current.spec,
                      live_version=current.resource_version)
    applied_hash = current.annotations.get(objects.SPEC_HASH)
    drifted = applied_hash is not None and applied_hash != objects.spec_hash(current.spec)
    git_changed = applied_hash != meta["annotations"][objects.SPEC_HASH]
    if drifted and not git_changed:
        reason = "drift: the live spec was edited outside Git; reverting"
    elif drifted:
        reason = "changed in Git (the live spec had also been edited by hand)"
    else:
        reason = "changed in Git"
    return Change(kind, name, Action.UPDATE, source, reason, tuple(fields), desired=wanted, live=current.spec,
                  live_version=current.resource_version)


def _prune(
    kind: str, gone: list[LiveObject], owned: int, desired: DesiredState, repo_empty: bool, notes: list[str]
) -> list[Change]:
    if not gone:
        return []
    prune = desired.settings.spec.prune
    was = [o.annotations.get(objects.SOURCE_PATH) for o in gone]
    if not prune.enabled:
        return [
            Change(
                kind, o.name, Action.BLOCKED, path, "file removed, but prune is disabled (spec.prune.enabled: false)"
            )
            for o, path in zip(gone, was, strict=True)
        ]
    percent = 100 * len(gone) / owned if owned else 100.0
    reason = ""
    if repo_empty:
        reason = (
            f"the repository holds no objects at all; refusing to delete all {len(gone)} "
            f"{kind} objects (an empty or wrong checkout looks the same)"
        )
    elif len(gone) > 1 and percent > prune.max_delete_percent:
        reason = (
            f"prune guard: deleting {len(gone)} of {owned} {kind} objects ({percent:.0f}%) exceeds "
            f"maxDeletePercent {prune.max_delete_percent}"
        )
    if reason:
        notes.append(reason)
        return [Change(kind, o.name, Action.BLOCKED, path, reason) for o, path in zip(gone, was, strict=True)]
    return [
        Change(kind, o.name, Action.DELETE, path, f"file removed ({path})", live=o.spec)
        for o, path in zip(gone, was, strict=True)
    ]
