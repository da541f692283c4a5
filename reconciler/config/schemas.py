"""The JSON Schema contract in ``schemas/``: load, compile once, explain failures in words.

Validation runs on jsonschema-rs (a compiled validator for the same 2020-12 schemas that
check-jsonschema, editors and the Python ``jsonschema`` package read).
"""

from __future__ import annotations

import json
import re
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
    """Every schema violation of ``data`` as (pointer to the field, one-line reason).

    One reason per field: a wrong type hides the other complaints about the same value, and a
    length limit hides the pattern that the same value also fails.
    """
    validator = _validator(kind)
    if validator.is_valid(data):
        return []
    schema = load_schema(kind)
    by_field: dict[Pointer, list[tuple[int, str]]] = {}
    for error in validator.iter_errors(data):
        pointer: Pointer = tuple(error.instance_path)
        kind_name = type(error.kind).__name__
        unexpected = list(getattr(error.kind, "unexpected", None) or [])
        if kind_name == "AdditionalProperties" and unexpected:
            # Point at the unknown key itself: that is the line to fix.
            for key in unexpected:
                by_field.setdefault((*pointer, key), []).append((0, _explain(error, pointer, schema, data, key)))
            continue
        if kind_name == "PropertyNames":
            inner = getattr(error.kind, "error", None)
            key = str(getattr(inner, "instance", ""))
            by_field.setdefault((*pointer, key), []).append((0, _explain_key(schema, list(error.schema_path), key)))
            continue
        rank = _RANK.get(kind_name, 2)
        by_field.setdefault(pointer, []).append((rank, _explain(error, pointer, schema, data)))
    found: list[tuple[Pointer, str]] = []
    for pointer, reasons in by_field.items():
        best = min(rank for rank, _ in reasons)
        seen: set[str] = set()
        for rank, message in reasons:
            if rank == best and message not in seen:
                seen.add(message)
                found.append((pointer, message))
    found.sort(key=lambda item: [str(p) for p in item[0]])
    return found


# Lower ranks win when one field fails several keywords.
_RANK = {"Type": 0, "Required": 1, "MinLength": 1, "MaxLength": 1}

# Patterns that have no ``title`` in the schema, described in words.
_PATTERN_WORDS = {
    "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$": (
        "label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
    ),
    "^[-._a-zA-Z0-9]+$": "Secret key (letters, digits, '-', '_' and '.')",
    "^([0-9]+(s|m|h))+$": "duration (numbers with the units s, m or h, e.g. 30s, 5m, 1h30m)",
    "^[A-Za-z0-9][-A-Za-z0-9._/]*$": "Git branch name (letters, digits, '-', '_', '.', '/')",
    "(\\.\\.|//|\\.lock$|/$|\\.$|/\\.)": (
        "Git branch name (no '..', '//', '/.', and no '/', '.' or '.lock' at the end)"
    ),
}


def _explain_key(schema: dict[str, Any], spath: list[str | int], key: str) -> str:
    names = _schema_at(schema, spath[:-1]) if spath and spath[-1] == "propertyNames" else None
    limit = names.get("maxLength") if isinstance(names, dict) else None
    what = "label key ([prefix/]name: the name at most 63 letters, digits, '-', '_' or '.'; the prefix a DNS name)"
    if limit is not None and len(key) > limit:
        return f"key {_show(key)} is longer than {limit} characters"
    return f"key {_show(key)} is not a valid {what}"


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


def _pattern_words(schema: dict[str, Any], spath: list[str | int]) -> str | None:
    for end in range(len(spath), 0, -1):
        node = _schema_at(schema, spath[:end])
        if isinstance(node, dict) and node.get("pattern") in _PATTERN_WORDS:
            return _PATTERN_WORDS[node["pattern"]]
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        # Plain words stay unquoted (the common case); empty, spaced or odd strings are quoted.
        text = value if value and _PLAIN.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


_PLAIN = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.:/@\[\]]*")


def _original(data: Any, pointer: Pointer) -> Any:
    """The value as written: jsonschema-rs reports NaN and infinity as null."""
    node = data
    for part in pointer:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _leaf(pointer: Pointer) -> str:
    """The name a person sees in the file: ``mtu``, ``addresses[1]``; ``document`` for the root."""
    if not pointer:
        return "document"
    if isinstance(pointer[-1], str):
        return pointer[-1]
    return field_path(pointer[-2:]) if len(pointer) > 1 else field_path(pointer)


def _explain(error: Any, pointer: Pointer, schema: dict[str, Any], data: Any, key: str = "") -> str:
    kind = type(error.kind).__name__
    where = field_path(pointer) or "document"
    leaf = _leaf(pointer)
    value = error.instance
    if value is None:
        value = _original(data, pointer)
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
        title = _title(schema, spath) or _pattern_words(schema, spath)
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
    if kind in {"MinProperties", "MaxProperties"}:
        limit = getattr(error.kind, "limit", None)
        word = "at least" if kind == "MinProperties" else "at most"
        return f"{leaf} must have {word} {limit} properties, has {len(value)}"
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
