"""Generate ``docs/config-reference.md`` from the JSON Schemas (the one source of truth).

    python -m reconciler.config.reference > docs/config-reference.md

A test checks that the committed file equals this output, so the reference cannot drift.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from reconciler.config import schemas
from reconciler.config.repo import KIND_CLUSTER, KIND_NODE, KIND_SETTINGS

_FILES = {
    KIND_CLUSTER: "clusters/<name>.yaml",
    KIND_NODE: "nodes/<name>.yaml",
    KIND_SETTINGS: "reconciler.yaml",
}
_ORDER = (KIND_NODE, KIND_CLUSTER, KIND_SETTINGS)

# Rules no schema can express (reconciler/config/crossfile.py and validation.py), by rule id.
CROSS_FILE_RULES: list[tuple[str, str, str]] = [
    (
        "file-name",
        "error",
        "`metadata.name` equals the file name without `.yaml` (`reconciler` for the settings file).",
    ),
    ("duplicate-name", "error", "No two node files (or cluster files) share a `metadata.name` (e.g. in sub-folders)."),
    ("duplicate-node-name", "error", "No two node files configure the same Kubernetes node (`spec.nodeName`)."),
    ("duplicate-mac", "error", "A `macAddress` is used once in the whole repository (compared case-insensitively)."),
    ("duplicate-address", "error", "An address (without its prefix length) is used once in the whole repository."),
    ("duplicate-interface-name", "error", "Interface names are unique within a node."),
    ("duplicate-proxmox-net", "error", "`proxmoxNet` slots are unique within a node."),
    ("proxmox-net-conflict", "error", "An interface giving both `proxmoxNet` and `proxmox.net` gives one slot."),
    ("duplicate-vm", "error", "A Proxmox VM (`cluster` + `vmid`) is claimed by one node file only."),
    (
        "reserved-name",
        "error",
        "Interface names `lo`, `all`, `default` and `bonding_masters` are reserved by the kernel.",
    ),
    (
        "host-address",
        "error",
        "An address is a unicast host address: not the network or broadcast address of its IPv4 prefix "
        "(/31 and /32 excepted), not loopback, multicast, unspecified, `0.0.0.0/8`, reserved "
        "(`240.0.0.0/4`) or `255.255.255.255`. The IPv6 subnet-router anycast address (host bits all zero) "
        "is a warning.",
    ),
    (
        "route",
        "error",
        "A route's `to` has no host bits set; its `via` is of the same IP family, is not the interface's own "
        "address nor the network or broadcast address of its IPv4 prefix, and lies inside one of the "
        "interface's own prefixes, unless the route sets `onLink: true` (a /32 or /128 address with the "
        "provider's gateway) or the gateway is IPv6 link-local (`fe80::/10`, on-link by definition).",
    ),
    (
        "duplicate-route",
        "error",
        "A node has one route per destination and metric, across all its interfaces.",
    ),
    (
        "second-default-route",
        "warning",
        "A node has one default route per IP family; a second one (another metric) only backs up the first.",
    ),
    (
        "overlapping-subnets",
        "error",
        "Two interfaces of one node are on separate subnets (host routes /32, /128 and link-local excepted).",
    ),
    (
        "subnet-prefix",
        "error",
        "One subnet has one prefix length on every node: an address inside another node's subnet uses that "
        "subnet's prefix length. The message names both files and lines.",
    ),
    (
        "subnet-mtu",
        "warning",
        "Interfaces on one subnet that give an `mtu` give the same one on every node (an MTU left out is "
        "not compared). A warning, not an error, so that an MTU change can roll out node by node; "
        "`--strict` makes it fail CI. The message names both files and lines.",
    ),
    (
        "cluster-ref",
        "error",
        "`spec.proxmox.cluster` names a file in `clusters/`. If that cluster file is itself invalid, the node "
        "gets a warning instead and its VM NIC check is skipped.",
    ),
    ("duplicate-endpoint", "error", "No two clusters register the same API endpoint (host and port, default 8006)."),
    ("insecure-tls", "warning", "`spec.tls.insecureSkipVerify: true` is reported."),
    ("yaml", "error", "Safe YAML only (see *Files* above)."),
    ("symlink", "error", "Symlinks must stay inside the repository and not point into `status/` or dot-folders."),
    (
        "layout",
        "warning / error",
        "YAML files outside `clusters/` and `nodes/`, special files and upper-case suffixes are ignored with a "
        "warning; a second settings file and folders nested deeper than 8 levels are errors.",
    ),
    ("io", "error", "The file can be read."),
    ("schema", "error", "The document matches its kind's JSON Schema (the tables above)."),
]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Merge a ``$ref`` (to ``#/$defs/...``) with the keywords written beside it."""
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = schema
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    merged = dict(_resolve(schema, target))
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _type(node: dict[str, Any]) -> str:
    if "const" in node:
        return "string"
    if "anyOf" in node:
        return "string"
    kind = node.get("type", "")
    if kind == "array":
        items = node.get("items", {})
        inner = items.get("$ref", "").rsplit("/", 1)[-1] or items.get("type", "")
        return f"array of {inner}" if inner else "array"
    if kind == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        return "map of string"
    return str(kind)


def _rules(node: dict[str, Any]) -> str:
    out: list[str] = []
    if "const" in node:
        out.append(f"`{node['const']}`")
    if "enum" in node:
        out.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if node.get("title") and node.get("type") != "object":
        out.append(node["title"])
    elif "pattern" in node:
        out.append(f"pattern `{node['pattern']}`")
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None or high is not None:
        out.append(f"{low if low is not None else '…'}–{high if high is not None else '…'}")
    if node.get("minLength", 0) > 1 or "maxLength" in node:
        out.append(f"length {node.get('minLength', 0)}–{node.get('maxLength', '…')}")
    if "minItems" in node or "maxItems" in node:
        out.append(f"{node.get('minItems', 0)}–{node.get('maxItems', '…')} items")
    if node.get("uniqueItems"):
        out.append("no duplicates")
    if "maxProperties" in node:
        out.append(f"at most {node['maxProperties']} entries")
    names = node.get("propertyNames")
    if isinstance(names, dict) and "pattern" in names:
        out.append(f"keys: pattern `{names['pattern']}`, at most {names.get('maxLength', '…')} characters")
    values = node.get("additionalProperties")
    if isinstance(values, dict) and ("pattern" in values or "maxLength" in values):
        rule = f"pattern `{values['pattern']}`, " if "pattern" in values else ""
        out.append(f"values: {rule}at most {values.get('maxLength', '…')} characters")
    if "not" in node and "pattern" in node["not"]:
        out.append(f"must not match `{node['not']['pattern']}`")
    return "; ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(schema: dict[str, Any], node: dict[str, Any], prefix: str, out: list[str]) -> None:
    node = _resolve(schema, node)
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        child = _resolve(schema, child)
        path = f"{prefix}{name}"
        default = f"`{json.dumps(child['default'])}`" if "default" in child else ""
        out.append(
            f"| `{path}` | {_type(child)} | {'yes' if name in required else ''} | {default} | "
            f"{_cell(_rules(child))} | {_cell(child.get('description', ''))} |"
        )
        if child.get("type") == "object" and "properties" in child:
            _rows(schema, child, f"{path}.", out)
        elif child.get("type") == "array":
            items = _resolve(schema, child.get("items", {}))
            if items.get("type") == "object":
                _rows(schema, items, f"{path}[].", out)


def render() -> str:
    out = [
        "# Config repository reference",
        "",
        "<!-- Generated by `python -m reconciler.config.reference > docs/config-reference.md` from",
        "     schemas/*.schema.json; a test fails when this file and the schemas disagree. Do not edit. -->",
        "",
        "A config repository holds desired state for `multinic-reconciler`. `reconciler validate PATH` checks it",
        "(exit 0 valid, 1 invalid, 2 usage error) and reports every problem with file, line, column, the JSON path",
        "of the field and a one-line reason.",
        "",
        "## Files",
        "",
        "| Path | Kind | Schema |",
        "| --- | --- | --- |",
    ]
    for kind in _ORDER:
        schema = schemas.load_schema(kind)
        out.append(f"| `{_FILES[kind]}` | `{kind}` | `schemas/{schemas.SCHEMA_FILES[kind]}` (`{schema['$id']}`) |")
    out += [
        "",
        "- `clusters/` and `nodes/` may have sub-folders (up to 8 levels); files end in `.yaml` or `.yml`.",
        "- `status/` is written by the reconciler and never read. Dot-folders (`.git`, `.github`) are skipped.",
        "- YAML files anywhere else are reported as warnings and ignored.",
        "- One plain YAML document per file, UTF-8, at most 256 KiB, nested at most 64 levels. Refused: duplicate",
        "  keys, anchors and aliases (`&a`/`*a`), merge keys (`<<`), tags (`!!python/...`, `!Ref`), non-string",
        "  keys. Unquoted dates stay strings.",
        "- Credentials never go in Git: a cluster file names a Kubernetes Secret (`credentialsSecretRef`); keys",
        "  such as `password` or `tokenSecret` are refused with that explanation.",
        "- A file with any error is *blocked*: it contributes nothing and its live object is neither changed nor",
        "  deleted. An invalid `reconciler.yaml` blocks the whole repository.",
        "",
    ]
    for kind in _ORDER:
        schema = schemas.load_schema(kind)
        out += [
            f"## {schema['title']} (`{_FILES[kind]}`)",
            "",
            schema["description"],
            "",
            "| Field | Type | Required | Default | Rules | Description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        _rows(schema, schema, "", out)
        out.append("")
    out += [
        "## Rules across fields and files",
        "",
        "Checked after the schemas, on the files that passed them. When two files collide, the later one in path",
        "order gets the error and names the earlier one with its line, so an existing object stays valid.",
        "",
        "| Rule | Severity | Check |",
        "| --- | --- | --- |",
    ]
    out += [f"| `{rule}` | {severity} | {text} |" for rule, severity, text in CROSS_FILE_RULES]
    out.append("")
    return "\n".join(out)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
