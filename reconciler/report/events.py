"""Kubernetes Events on transitions (never every cycle), like a controller's recorder."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from reconciler.kube import crds, objects
from reconciler.status.conditions import timestamp


def event(kind: str, name: str, namespace: str, *, reason: str, message: str, warning: bool = False,
          uid: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    stamp = timestamp(now)
    digest = hashlib.sha256(f"{kind}/{name}/{reason}/{message}/{stamp}".encode()).hexdigest()[:10]
    involved = {"apiVersion": objects.API_VERSION, "kind": kind, "name": name, "namespace": namespace}
    if uid:
        involved["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name[:200]}.{digest}", "namespace": namespace,
                     "labels": {objects.MANAGED_BY: objects.MANAGED_BY_VALUE}},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": objects.FIELD_MANAGER},
        "reportingComponent": f"{crds.GROUP}/{objects.FIELD_MANAGER}",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
