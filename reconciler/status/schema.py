"""JSON Schemas (2020-12) of the status models, the public contract in ``schemas/``.

Generated, never edited: ``python -m reconciler.kube.crds`` rewrites the status schemas and the
CRDs (whose ``status`` is translated from them like ``spec``); a test keeps all three equal.
Pydantic's output is made plain: no titles, no defaults (absent means unknown), ``X | None`` is
just ``X`` (the reconciler omits unknown fields instead of writing null), and every object is
closed (``additionalProperties: false``: exactly what the reconciler writes).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from reconciler.status.models import ClusterStatus, NodeStatus
from reconciler.status.states import KIND_CLUSTER, KIND_NODE

SCHEMA_FILES = {
    KIND_NODE: "multinicnodeconfig-status.schema.json",
    KIND_CLUSTER: "proxmoxcluster-status.schema.json",
}
MODELS: dict[str, type[BaseModel]] = {KIND_NODE: NodeStatus, KIND_CLUSTER: ClusterStatus}
_IDS = {KIND_NODE: "multinicnodeconfig-status", KIND_CLUSTER: "proxmoxcluster-status"}


_FIRST = {key: i for i, key in enumerate(("description", "type", "properties", "required", "items", "$defs"))}


def _plain(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if not isinstance(node, dict):
        return node
    branches = node.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _plain({**kept[0], **rest})
    out: dict[str, Any] = {}
    for key, value in sorted(node.items(), key=lambda kv: _FIRST.get(kv[0], len(_FIRST))):
        if key in ("title", "default"):
            continue
        if key == "properties":
            out[key] = {name: _plain(prop) for name, prop in value.items()}
        else:
            out[key] = _plain(value)
    if "properties" in out:
        out["additionalProperties"] = False  # exactly what the reconciler writes (reading stays lenient)
    return out


def status_schema(kind: str) -> dict[str, Any]:
    generated = MODELS[kind].model_json_schema(by_alias=True, mode="serialization")
    body = _plain(generated)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://multinic.io/schemas/v1alpha1/{_IDS[kind]}.json",
        "title": f"{kind} status",
    }
    schema.update(body)
    return {key: schema[key] for key in sorted(schema, key=lambda k: k == "$defs")}  # definitions last


def schema_file(kind: str) -> str:
    return SCHEMA_FILES[kind]


def render(kind: str) -> str:
    return json.dumps(status_schema(kind), indent=2, ensure_ascii=False) + "\n"
