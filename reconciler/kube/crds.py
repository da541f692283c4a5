"""CustomResourceDefinitions generated from ``schemas/`` (the one contract).

A real kube-apiserver only accepts *structural* schemas (KEP-2335), so the JSON Schemas are
translated: ``$ref`` inlined, ``$id``/``$schema``/``$defs`` dropped, ``const`` -> one-value
``enum``, ``additionalProperties: false`` dropped (the apiserver prunes unknown fields, and we
write with ``fieldValidation=Strict`` so they are refused instead), ``anyOf`` of string patterns
merged into one pattern, ``uniqueItems`` -> ``x-kubernetes-list-type: set``, ``propertyNames``
dropped, and CEL rules added for what the schema said with ``uniqueItems`` on objects.

``python -m reconciler.kube.crds`` rewrites ``charts/multinic-reconciler/crds/``; a test checks
the committed files equal the generated ones.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from reconciler import resources
from reconciler.config import schemas
from reconciler.config.repo import KIND_CLUSTER, KIND_NODE

GROUP = "multinic.io"
VERSION = "v1alpha1"

_DROP = {"$schema", "$id", "$defs", "title", "propertyNames"}

_CONDITION = {
    "type": "object",
    "description": "A metav1.Condition: Ready, Reconciling or Stalled.",
    "required": ["type", "status", "lastTransitionTime", "reason", "message"],
    "properties": {
        "type": {"type": "string", "maxLength": 316, "description": "Ready, Reconciling or Stalled."},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"], "description": "Condition status."},
        "observedGeneration": {
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "description": "metadata.generation the condition was set for.",
        },
        "lastTransitionTime": {"type": "string", "format": "date-time", "description": "When the status last changed."},
        "reason": {
            "type": "string",
            "maxLength": 1024,
            "minLength": 1,
            "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            "description": "CamelCase reason.",
        },
        "message": {"type": "string", "maxLength": 32768, "description": "Human-readable details."},
    },
}

_CONDITIONS = {
    "type": "array",
    "description": "Ready, Reconciling and Stalled conditions.",
    "maxItems": 8,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": _CONDITION,
}

_COMMON_STATUS = {
    "observedGeneration": {
        "type": "integer",
        "format": "int64",
        "description": "metadata.generation last reconciled to Ready.",
    },
    "conditions": _CONDITIONS,
    "phase": {"type": "string", "description": "Summary: Pending, Applying, Ready, Failed or Stalled."},
    "appliedRevision": {"type": "string", "description": "Git commit whose spec is live."},
    "sourcePath": {"type": "string", "description": "File in the config repo this object comes from."},
    "lastError": {"type": "string", "description": "Last error, if any."},
}

NODE_STATUS: dict[str, Any] = {
    "type": "object",
    "description": "Written by the reconciler only (never by the node agent).",
    "properties": {
        **_COMMON_STATUS,
        "specHash": {"type": "string", "description": "Hash of the spec the last node Job applied."},
        "job": {"type": "string", "description": "Name of the last node Job."},
        "nodeName": {"type": "string", "description": "Kubernetes node this object's node Jobs wrote to (a "
                     "spec.nodeName change cleans it up before the new node is configured)."},
        "attemptedRevision": {"type": "string", "description": "Config commit of the last node Job started "
                              "(appliedRevision once it succeeded)."},
        "attempt": {"type": "integer", "description": "Automatic retries of the current change so far (transient "
                    "failures: deadline exceeded, eviction, image pull)."},
        "nextRetry": {"type": "string", "format": "date-time", "description": "When a node Job that failed for a "
                      "transient reason is retried."},
        "interfaceCount": {"type": "integer", "description": "Number of interfaces in the spec."},
        "interfaces": {
            "type": "array",
            "description": "Per-interface outcome reported by the node agent.",
            "maxItems": 16,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "Interface name from the spec."},
                    "macAddress": {"type": "string", "description": "MAC address from the spec."},
                    "device": {"type": "string", "description": "Device the MAC was found on."},
                    "state": {"type": "string", "description": "applied, unchanged or error."},
                    "error": {"type": "string", "description": "Why the interface failed."},
                },
            },
        },
        "proxmoxCheck": {
            "type": "object",
            "description": "Result of checking the interfaces' MACs against the Proxmox VM.",
            "properties": {
                "checked": {"type": "boolean", "description": "Whether the check ran."},
                "vmNode": {"type": "string", "description": "Proxmox node the VM runs on."},
                "mismatches": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Interfaces whose MAC is not on the VM (or not on the slot named).",
                },
                "error": {"type": "string", "description": "Why the check could not run."},
            },
        },
    },
}

CLUSTER_STATUS: dict[str, Any] = {
    "type": "object",
    "description": "What the reconciler verified against the Proxmox VE API.",
    "properties": {
        **_COMMON_STATUS,
        "version": {"type": "string", "description": "Proxmox VE version, e.g. 8.2.4."},
        "release": {"type": "string", "description": "Proxmox VE release, e.g. 8.2."},
        "clusterName": {"type": "string", "description": "Cluster name from /cluster/status."},
        "quorate": {"type": "boolean", "description": "Whether the cluster has quorum."},
        "nodeCount": {"type": "integer", "description": "Number of Proxmox nodes."},
        "onlineNodes": {"type": "integer", "description": "Number of Proxmox nodes online."},
        "health": {"type": "string", "description": "Healthy, Degraded or Unreachable."},
        "lastVerified": {"type": "string", "format": "date-time",
                         "description": "Last verification (the Ready condition says whether it succeeded)."},
        "tlsInsecure": {"type": "boolean", "description": "TLS verification is disabled for this cluster."},
        "warnings": {"type": "array", "items": {"type": "string"}, "description": "Non-fatal findings."},
    },
}

PRINTER_COLUMNS = {
    KIND_NODE: [
        {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
        {"name": "OS", "type": "string", "jsonPath": ".spec.osFamily"},
        {"name": "Interfaces", "type": "integer", "jsonPath": ".status.interfaceCount"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Revision", "type": "string", "jsonPath": ".status.appliedRevision"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    KIND_CLUSTER: [
        {"name": "Endpoint", "type": "string", "jsonPath": ".spec.apiEndpoint"},
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodeCount"},
        {"name": "Health", "type": "string", "jsonPath": ".status.health"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}

NAMES = {
    KIND_NODE: {
        "plural": "multinicnodeconfigs",
        "singular": "multinicnodeconfig",
        "kind": KIND_NODE,
        "listKind": f"{KIND_NODE}List",
        "shortNames": ["mnnc"],
        "categories": ["multinic"],
    },
    KIND_CLUSTER: {
        "plural": "proxmoxclusters",
        "singular": "proxmoxcluster",
        "kind": KIND_CLUSTER,
        "listKind": f"{KIND_CLUSTER}List",
        "shortNames": ["pvec"],
        "categories": ["multinic"],
    },
}
STATUS = {KIND_NODE: NODE_STATUS, KIND_CLUSTER: CLUSTER_STATUS}

# CEL for what ``uniqueItems`` cannot say about lists of objects (kept atomic so that an apply
# replaces the whole list and a hand-added interface is reverted).
_INTERFACE_RULES = [
    {
        "rule": "self.all(a, self.exists_one(b, b.name == a.name))",
        "message": "interface names must be unique within the node",
    },
    {
        "rule": "self.all(a, self.exists_one(b, b.macAddress.lowerAscii() == a.macAddress.lowerAscii()))",
        "message": "MAC addresses must be unique within the node",
    },
]


def plural(kind: str) -> str:
    return str(NAMES[kind]["plural"])


def _translate(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_translate(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _translate(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
            out.setdefault("type", _json_type(value))
        elif key == "additionalProperties" and value is False:
            continue
        elif key == "uniqueItems":
            if value:
                out["x-kubernetes-list-type"] = "set"
        elif key == "properties":
            out[key] = {name: _translate(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _translate(value, defs)
    if "anyOf" in out:
        branches = out.pop("anyOf")
        if all(set(b) <= {"type", "pattern", "description"} and b.get("type") == "string" for b in branches):
            out["type"] = "string"
            out["pattern"] = "|".join(f"(?:{b['pattern']})" for b in branches)
        else:
            raise ValueError(f"cannot make anyOf structural: {branches}")
    return out


def _json_type(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer"}[type(value)]


def spec_schema(kind: str) -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of ``spec`` for ``kind``, from ``schemas/``."""
    source = copy.deepcopy(schemas.load_schema(kind))
    spec = _translate(source["properties"]["spec"], source.get("$defs", {}))
    if kind == KIND_NODE:
        spec["properties"]["interfaces"]["x-kubernetes-validations"] = _INTERFACE_RULES
    return spec  # type: ignore[no-any-return]


def crd(kind: str) -> dict[str, Any]:
    names = NAMES[kind]
    description = schemas.load_schema(kind)["description"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{names['plural']}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "multinic-reconciler",
                "app.kubernetes.io/part-of": "multinic-reconciler",
            },
            "annotations": {"multinic.io/generated-from": f"schemas/{schemas.SCHEMA_FILES[kind]}"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": names,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(kind),
                                "status": STATUS[kind],
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: str) -> str:
    header = (
        f"# Generated by `python -m reconciler.kube.crds` from schemas/{schemas.SCHEMA_FILES[kind]}.\n"
        "# Do not edit: change the schema and regenerate.\n"
    )
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=1000)


def crd_file(kind: str, directory: Path | None = None) -> Path:
    return (directory or resources.crds_dir()) / f"{plural(kind)}.{GROUP}.yaml"


def main(argv: list[str] | None = None) -> int:
    directory = Path(argv[0]) if argv else resources.crds_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for kind in NAMES:
        crd_file(kind, directory).write_text(render(kind), encoding="utf-8")
        print(crd_file(kind, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
