"""Read-only HTTP API over the registered clusters and nodes (the custom resources).

A pure handler the HTTP server of ``reconciler run`` mounts::

    status, body = handle("GET", "/api/v1/clusters", kube)

* ``GET /api/v1/clusters``        -> ``{"clusters": [entry, ...], "total": N}``
* ``GET /api/v1/clusters/{name}`` -> entry plus ``conditions``, ``lastError`` (404 if absent)
* ``GET /api/v1/nodes``           -> ``{"nodes": [entry, ...], "total": N}``
* ``GET /api/v1/nodes/{name}``    -> node entry (404 if absent)

Errors are ``{"error": "...", "code": N}``. Registration and deregistration happen through Git
only, so there is no POST or DELETE (405). Nothing here reads a Secret: entries carry the Secret's
*name* at most, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.kube import objects

PREFIX = "/api/v1"


class ReadKube(Protocol):
    """What the API needs of ``reconciler.kube.client.Kube``."""

    def list_owned(self, kind: str) -> list[dict[str, Any]]: ...

    def get(self, kind: str, name: str) -> dict[str, Any] | None: ...


def _ready(status: Mapping[str, Any]) -> dict[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return dict(condition)
    return {}


def _source_path(obj: Mapping[str, Any]) -> str | None:
    status = obj.get("status") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return status.get("sourcePath") or annotations.get(objects.SOURCE_PATH)


def cluster_entry(obj: Mapping[str, Any], *, detail: bool = False) -> dict[str, Any]:
    """One ``ProxmoxCluster`` CR as the API and the CLI show it (no secret values)."""
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ready = _ready(status)
    entry: dict[str, Any] = {
        "name": metadata.get("name"),
        "endpoint": spec.get("apiEndpoint"),
        "version": status.get("version"),
        "release": status.get("release"),
        "clusterName": status.get("clusterName"),
        "nodeCount": status.get("nodeCount"),
        "onlineNodes": status.get("onlineNodes"),
        "expectedNodeCount": spec.get("expectedNodeCount"),
        "quorate": status.get("quorate"),
        "health": status.get("health"),
        "ready": ready.get("status") == "True",
        "reason": ready.get("reason"),
        "message": ready.get("message"),
        "phase": status.get("phase"),
        "lastVerified": status.get("lastVerified"),
        "tlsInsecure": bool(status.get("tlsInsecure", False)),
        "warnings": list(status.get("warnings") or []),
        "credentialsSecret": (spec.get("credentialsSecretRef") or {}).get("name"),
        "sourcePath": _source_path(obj),
        "createdAt": metadata.get("creationTimestamp"),
    }
    if detail:
        entry.update(
            verifyInterval=spec.get("verifyInterval", "5m"),
            observedGeneration=status.get("observedGeneration"),
            generation=metadata.get("generation"),
            conditions=list(status.get("conditions") or []),
            lastError=status.get("lastError"),
        )
    return entry


def node_entry(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One ``MultiNicNodeConfig`` CR: spec interfaces merged with their reported outcome."""
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    reported = {i.get("name"): i for i in status.get("interfaces") or [] if isinstance(i, Mapping)}
    interfaces = []
    for interface in spec.get("interfaces") or []:
        outcome = reported.get(interface.get("name")) or {}
        interfaces.append(
            {
                "name": interface.get("name"),
                "macAddress": interface.get("macAddress"),
                "addresses": list(interface.get("addresses") or []),
                "proxmoxNet": interface.get("proxmoxNet"),
                "state": outcome.get("state"),
                "device": outcome.get("device"),
                "error": outcome.get("error"),
            }
        )
    return {
        "name": metadata.get("name"),
        "nodeName": spec.get("nodeName") or metadata.get("name"),
        "phase": status.get("phase"),
        "appliedRevision": status.get("appliedRevision"),
        "ready": _ready(status).get("status") == "True",
        "proxmox": spec.get("proxmox"),
        "proxmoxCheck": status.get("proxmoxCheck"),
        "interfaces": interfaces,
        "sourcePath": _source_path(obj),
    }


def _error(code: int, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": message, "code": code}


def handle(method: str, path: str, kube: ReadKube) -> tuple[int, dict[str, Any]]:
    """Answer one request: ``(HTTP status, JSON body)``. Never raises for a Kubernetes failure."""
    route = urlsplit(path).path.rstrip("/")
    if route != PREFIX and not route.startswith(PREFIX + "/"):
        return _error(404, f"no such endpoint: {route or '/'}")
    parts = [unquote(p) for p in route[len(PREFIX) :].split("/") if p]
    if not parts or parts[0] not in ("clusters", "nodes") or len(parts) > 2:
        return _error(404, f"no such endpoint: {route}")
    if method.upper() not in ("GET", "HEAD"):
        return _error(405, f"{method.upper()} is not allowed: clusters and nodes are registered through Git")
    kind = KIND_CLUSTER if parts[0] == "clusters" else KIND_NODE
    try:
        if len(parts) == 1:
            items = sorted(kube.list_owned(kind), key=lambda o: str((o.get("metadata") or {}).get("name")))
            if kind == KIND_CLUSTER:
                return 200, {"clusters": [cluster_entry(o) for o in items], "total": len(items)}
            return 200, {"nodes": [node_entry(o) for o in items], "total": len(items)}
        name = parts[1]
        obj = kube.get(kind, name)
    except Exception as exc:  # KubeError and transport errors: the API stays up
        return _error(502, f"Kubernetes API: {exc}")
    if obj is None or not objects.is_owned(obj):
        what = "cluster" if kind == KIND_CLUSTER else "node"
        return _error(404, f"{what} {name} not found")
    return 200, (cluster_entry(obj, detail=True) if kind == KIND_CLUSTER else node_entry(obj))
