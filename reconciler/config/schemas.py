"""The JSON Schema contract in ``schemas/``: load, compile once, explain failures in words.

Validation runs on jsonschema-rs (a compiled validator for the same 2020-12 schemas that
check-jsonschema, editors and the Python ``jsonschema`` package read).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from reconciler import resources
from reconciler.config.diagnostics import Pointer, field_path
from reconciler.config.repo import KIND_CLUSTER, KIND_NODE, KIND_SETTINGS

API_VERSION = "multinic.io/v1alpha1"
SCHEMA_FILES = {
    KIND_NODE: "multinicnodeconfig.schema.json",
    KIND_CLUSTER: "proxmoxcluster.schema.json",
    KIND_SETTINGS: "reconcilersettings.schema.json",
}
# Keys that would put a credential into Git; a file that has one gets a pointed explanation.
_SECRET_KEYS = {"password", "token", "tokensecret", "secret", "apitoken", "apikey", "privatekey"}


def schema_path(kind: str) -> Path:
    return resources.schemas_dir() / SCHEMA_FILES[kind]


@cache
def load_schema(kind: str) -> dict[str, Any]:
    with schema_path(kind).open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def _validator(kind: str) -> Any:
    return jsonschema_rs.validator_for(load_schema(kind))


def check(kind: str, data: Any) -> list[tuple[Pointer, str]]:
    """Every schema violation of ``data`` as (pointer to the field, one-line reason)."""
    validator = _validator(kind)
    if validator.is_valid(data):
        return []
    schema = load_schema(kind)
    found: list[tuple[Pointer, str]] = []
    for error in validator.iter_errors(data):
        pointer: Pointer = tuple(error.instance_path)
        unexpected = list(getattr(error.kind, "unexpected", None) or [])
        if type(error.kind).__name__ == "AdditionalProperties" and unexpected:
            # Point at the unknown key itself: that is the line to fix.
            for key in unexpected:
                found.append(((*pointer, key), _explain(error, pointer, schema, key)))
            continue
        found.append((pointer, _explain(error, pointer, schema)))
    found.sort(key=lambda item: [str(p) for p in item[0]])
    return found


def _schema_at(schema: dict[str, Any], path: list[str | int]) -> Any:
    node: Any = schema
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _title(schema: dict[str, Any], schema_path: list[str | int]) -> str | None:
    """The nearest ``title`` above the failing keyword, e.g. "unicast MAC address (...)"."""
    for end in range(len(schema_path) - 1, 0, -1):
        node = _schema_at(schema, schema_path[:end])
        if isinstance(node, dict) and "title" in node and end > 0:
            return str(node["title"])
    return None


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(error: Any, pointer: Pointer, schema: dict[str, Any], key: str = "") -> str:
    kind = type(error.kind).__name__
    where = field_path(pointer) or "document"
    leaf = str(pointer[-1]) if pointer and isinstance(pointer[-1], str) else where
    value = error.instance
    spath = list(error.schema_path)
    if kind == "AdditionalProperties":
        if key.replace("_", "").replace("-", "").lower() in _SECRET_KEYS:
            return (
                f"{key!r} looks like a credential; credentials never go in Git: "
                "put them in the Kubernetes Secret named by credentialsSecretRef"
            )
        allowed = _schema_at(schema, [*spath[:-1], "properties"])
        hint = f" (allowed here: {', '.join(sorted(allowed))})" if isinstance(allowed, dict) else ""
        return f"unknown field {key!r}{hint}"
    if kind == "Required":
        missing = getattr(error.kind, "property", None)
        return f"required field {missing!r} is missing" if missing else error.message
    if kind == "Type":
        expected = getattr(error.kind, "types", None) or _schema_at(schema, spath)
        return f"{leaf} must be of type {_types(expected)}, not {_json_type(value)} ({_show(value)})"
    if kind == "Constant":
        return f"{leaf} must be {_show(getattr(error.kind, 'expected_value', ''))}, not {_show(value)}"
    if kind == "Enum":
        options = getattr(error.kind, "options", None)
        return f"{leaf} {_show(value)} is not one of {_show(options)}"
    if kind in {"Pattern", "AnyOf", "OneOf", "Not", "Format"}:
        title = _title(schema, spath)
        if title:
            return f"{leaf} {_show(value)} is not a valid {title}"
        return f"{leaf} {_show(value)} has the wrong format"
    if kind in {"Minimum", "Maximum", "ExclusiveMinimum", "ExclusiveMaximum"}:
        node = _schema_at(schema, spath[:-1]) or {}
        low, high = node.get("minimum"), node.get("maximum")
        bounds = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else (f"at least {low}" if low is not None else f"at most {high}")
        )
        return f"{leaf} must be {bounds}, not {_show(value)}"
    if kind in {"MinItems", "MaxItems"}:
        limit = getattr(error.kind, "limit", None)
        word = "at least" if kind == "MinItems" else "at most"
        return f"{leaf} must have {word} {limit} item(s), has {len(value)}"
    if kind in {"MinLength", "MaxLength"}:
        limit = getattr(error.kind, "limit", None)
        word = "at least" if kind == "MinLength" else "at most"
        return f"{leaf} must be {word} {limit} character(s) long, is {len(value)}"
    if kind == "UniqueItems":
        return f"{leaf} lists the same value twice"
    return f"{where}: {error.message}"


_JSON_TYPES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _types(expected: Any) -> str:
    if isinstance(expected, dict):
        expected = expected.get("type", "?")
    if isinstance(expected, list | tuple):
        return " or ".join(str(t) for t in expected)
    return str(expected)
