"""CustomResourceDefinitions generated from ``schemas/`` (the one contract).

A real kube-apiserver only accepts *structural* schemas (KEP-2335), so the JSON Schemas are
translated: ``$ref`` inlined, ``$id``/``$schema``/``$defs`` dropped, ``const`` -> one-value
``enum``, ``additionalProperties: false`` dropped (the apiserver prunes unknown fields, and we
write with ``fieldValidation=Strict`` so they are refused instead), ``anyOf`` of string patterns
merged into one pattern, ``uniqueItems`` -> ``x-kubernetes-list-type: set``, ``propertyNames``
dropped, and CEL rules added for what the schema said with ``uniqueItems`` on objects.

``status`` comes the same way from ``schemas/*-status.schema.json``, which are generated from the
typed models in ``reconciler.status.models``. ``python -m reconciler.kube.crds`` rewrites those
status schemas and ``charts/multinic-reconciler/crds/``; a test checks the committed files equal
the generated ones.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from reconciler import resources
from reconciler.config import schemas
from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.status import schema as status_schema

GROUP = "multinic.io"
VERSION = "v1alpha1"

_DROP = {"$schema", "$id", "$defs", "title", "propertyNames"}

# What JSON Schema cannot say about metav1.Conditions: a list keyed by type (server-side apply
# merges entries by type, like every built-in kind's conditions).
_CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}

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


def load_status_schema(kind: str) -> dict[str, Any]:
    """The committed ``schemas/*-status.schema.json`` (generated from ``reconciler.status.models``)."""
    path = resources.schemas_dir() / status_schema.SCHEMA_FILES[kind]
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def status_crd_schema(kind: str) -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of ``status`` for ``kind``, from ``schemas/``."""
    source = load_status_schema(kind)
    status: dict[str, Any] = _translate(copy.deepcopy(source), source.get("$defs", {}))
    status["properties"]["conditions"].update(_CONDITIONS_LIST)
    return status


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
                                "status": status_crd_schema(kind),
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
    if not argv:  # the status schemas first: the CRDs' status is translated from them
        for kind, name in status_schema.SCHEMA_FILES.items():
            target = resources.schemas_dir() / name
            target.write_text(status_schema.render(kind), encoding="utf-8")
            print(target)
    for kind in NAMES:
        crd_file(kind, directory).write_text(render(kind), encoding="utf-8")
        print(crd_file(kind, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
