"""Desired vs live -> ``ChangeSet``, with the prune guard.

Rules, in the order they apply:
- an invalid ``reconciler.yaml`` blocks everything (its limits would otherwise fall back to defaults);
- a file that failed validation blocks its object: never created, changed or deleted;
- an object whose file is gone is deleted only if we own it, prune is enabled, and the guard allows;
- no object of a kind is deleted while a refused layout entry might hold its file (``held``);
- the guard refuses, per kind, to delete more than ``maxDeletePercent`` of the owned objects in one
  cycle (one deletion is allowed unless it is 0), and always refuses to empty a kind completely when
  the repository holds nothing at all (an empty checkout looks exactly like that);
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
    # Label and annotation keys our field manager applied (from managedFields): only these are
    # ever removed when Git drops them; keys set by others are left alone.
    applied_labels: frozenset[str] = frozenset()
    applied_annotations: frozenset[str] = frozenset()

    @classmethod
    def from_manifest(cls, obj: Mapping[str, Any]) -> LiveObject:
        metadata = obj.get("metadata") or {}
        labels, annotations = _applied_metadata(metadata.get("managedFields") or ())
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
            applied_labels=labels,
            applied_annotations=annotations,
        )

    @property
    def owned(self) -> bool:
        return (
            self.labels.get(objects.MANAGED_BY) == objects.MANAGED_BY_VALUE and objects.SOURCE_PATH in self.annotations
        )


def plan(desired: DesiredState, live: Mapping[str, Iterable[LiveObject]], *, revision: str | None = None,
         namespace: str | None = None) -> ChangeSet:
    """``namespace``: where the live objects are (``--namespace``); by default reconciler.yaml's."""
    namespace = namespace or desired.settings.spec.namespace
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
                paths = desired.blocked_by.get((kind, name), ())
                folder = "nodes/" if kind == KIND_NODE else "clusters/"
                if name not in current and name not in models and paths and not any(
                    p.startswith(folder) for p in paths
                ):
                    continue  # blocked only in case it was the other kind: nothing live, nothing to say
                source = source or next(iter(paths), None)
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


def _applied_metadata(managed: Iterable[Any]) -> tuple[frozenset[str], frozenset[str]]:
    labels: set[str] = set()
    annotations: set[str] = set()
    for entry in managed:
        if not isinstance(entry, Mapping) or entry.get("manager") != objects.FIELD_MANAGER:
            continue
        if entry.get("operation") != "Apply":
            continue
        meta = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
        labels |= {k[2:] for k in (meta.get("f:labels") or {}) if k.startswith("f:")}
        annotations |= {k[2:] for k in (meta.get("f:annotations") or {}) if k.startswith("f:")}
    return frozenset(labels), frozenset(annotations)


# Annotations that change with every commit or are derived from the spec: never a change by themselves.
_DERIVED = {objects.SPEC_HASH, objects.SOURCE_REVISION}


def _metadata_changes(wanted: dict[str, Any], current: LiveObject) -> list[FieldChange]:
    """Labels and annotations from Git that differ live, and the ones we applied that Git dropped."""
    meta = wanted["metadata"]
    out: list[FieldChange] = []
    for part, live, applied in (
        ("labels", current.labels, current.applied_labels),
        ("annotations", current.annotations, current.applied_annotations),
    ):
        want = {k: v for k, v in meta[part].items() if k not in _DERIVED}
        for key in sorted(set(want) | (set(applied) - _DERIVED)):
            if key in want and live.get(key) != want[key]:
                out.append(FieldChange(f"metadata.{part}.{key}", live.get(key), want[key]))
            elif key not in want and key in live:
                out.append(FieldChange(f"metadata.{part}.{key}", live[key], None))
    return out


def _models(desired: DesiredState, kind: str) -> Mapping[str, NodeConfig | ProxmoxCluster]:
    return desired.nodes if kind == KIND_NODE else desired.clusters


def _compare(kind: str, name: str, source: str | None, wanted: dict[str, Any], current: LiveObject | None) -> Change:
    if current is None:
        return Change(kind, name, Action.CREATE, source, "new file", desired=wanted)
    fields = diff(current.spec, wanted["spec"])
    meta = wanted["metadata"]
    fields += _metadata_changes(wanted, current)
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
                  live_version=current.resource_version, drifted=drifted)


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
    if kind in desired.held:
        reason = desired.held[kind]
    elif repo_empty:
        reason = (
            f"the repository holds no objects at all; refusing to delete all {len(gone)} "
            f"{kind} objects (an empty or wrong checkout looks the same)"
        )
    elif prune.max_delete_percent == 0:
        reason = f"prune guard: maxDeletePercent is 0; {len(gone)} {kind} object(s) kept"
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
