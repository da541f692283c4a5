"""How desired state looks as Kubernetes objects: names, ownership labels, source annotations.

Ownership is two marks: the label ``app.kubernetes.io/managed-by: multinic-reconciler`` (for a
cheap label-selected LIST) and the annotation ``multinic.io/source-path`` (which file it came
from). Only objects carrying both are ever updated or deleted by us.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

from reconciler.config.models import NodeConfig, ProxmoxCluster
from reconciler.kube.crds import GROUP, VERSION

API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "multinic-reconciler"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "multinic-reconciler"
OWNED_SELECTOR = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
SOURCE_PATH = "multinic.io/source-path"
SOURCE_REVISION = "multinic.io/source-revision"
SPEC_HASH = "multinic.io/spec-hash"  # hash of the spec as we last applied it: tells drift from change


def spec_hash(spec: dict[str, Any]) -> str:
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# id(model) -> (weak reference to it, its spec as we apply it, that spec's hash). Models are frozen
# and live as long as their validation, which the loop keeps while the revision stays: every cycle
# of a revision plans from the same models, and their specs are dumped and hashed once.
_SPECS: dict[int, tuple[weakref.ref[Any], dict[str, Any], str]] = {}
_BY_HASH: dict[str, dict[str, Any]] = {}  # spec hash -> one of those specs (``shared_spec``)


def _applied_spec(model: NodeConfig | ProxmoxCluster) -> tuple[dict[str, Any], str]:
    """The model's spec (shared: read it, never change it) and its hash, computed once per model."""
    key = id(model)
    kept = _SPECS.get(key)
    if kept is not None and kept[0]() is model:
        return kept[1], kept[2]
    spec = model.spec_dict()
    digest = spec_hash(spec)
    def forget(_: object) -> None:  # the entry goes with the model (its id may then be reused)
        _SPECS.pop(key, None)
        if _BY_HASH.get(digest) is spec:
            del _BY_HASH[digest]

    _SPECS[key] = (weakref.ref(model, forget), spec, digest)
    _BY_HASH[digest] = spec
    return spec, digest


def shared_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec we apply that equals ``spec``, if a current model has one, else ``spec``: the watch
    cache then holds a converged object's spec once, not a second equal copy (read it, never
    change it)."""
    kept = _BY_HASH.get(spec_hash(spec))
    return kept if kept is not None and kept == spec else spec


def manifest(model: NodeConfig | ProxmoxCluster, *, namespace: str, path: str, revision: str | None) -> dict[str, Any]:
    """The object we apply for one valid document (its ``spec`` is shared between calls for the
    same model: read it, never change it)."""
    labels = {**model.metadata.labels, MANAGED_BY: MANAGED_BY_VALUE}
    spec, digest = _applied_spec(model)
    annotations = {**model.metadata.annotations, SOURCE_PATH: path, SPEC_HASH: digest}
    if revision:
        annotations[SOURCE_REVISION] = revision
    return {
        "apiVersion": API_VERSION,
        "kind": model.kind,
        "metadata": {"name": model.name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": spec,
    }


def is_owned(obj: dict[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    return (metadata.get("labels") or {}).get(MANAGED_BY) == MANAGED_BY_VALUE and SOURCE_PATH in (
        metadata.get("annotations") or {}
    )
