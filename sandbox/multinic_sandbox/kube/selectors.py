"""Label and field selectors as the apiserver parses them from ``?labelSelector=`` / ``?fieldSelector=``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from multinic_sandbox.kube.errors import ApiError

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_OP_RE = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|!=|=|>|<)\s*([A-Za-z0-9._-]*)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``(...)``."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _requirement(text: str) -> Callable[[dict[str, str]], bool]:
    match = _OP_RE.match(text)
    if match:
        key, op, value = match.groups()
        if op in ("=", "=="):
            return lambda labels: labels.get(key) == value
        if op == "!=":
            return lambda labels: labels.get(key) != value
        try:
            bound = int(value)
        except ValueError:
            raise ApiError(
                400, f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must "
                f"be an integer: {text.strip()}"
            ) from None
        if op == ">":
            return lambda labels: key in labels and labels[key].isdigit() and int(labels[key]) > bound
        return lambda labels: key in labels and labels[key].isdigit() and int(labels[key]) < bound
    match = _SET_RE.match(text)
    if not match:
        raise ApiError(400, f"unable to parse requirement: found '{text.strip()}', expected: "
                       "identifier or operator")
    negate, key, op, values_text = match.groups()
    if op is None:
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    if negate:
        raise ApiError(400, f"unable to parse requirement: {text.strip()}")
    values = {v.strip() for v in values_text.split(",") if v.strip()}
    if op == "in":
        return lambda labels: labels.get(key) in values
    return lambda labels: labels.get(key) not in values


def label_selector(text: str | None) -> Predicate | None:
    """Compile ``?labelSelector=`` into a predicate over objects (None when empty)."""
    if not text or not text.strip():
        return None
    requirements = [_requirement(part) for part in _split_top_level(text)]

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in requirements)

    return matches


def match_labels_selector(selector: dict[str, Any]) -> Predicate:
    """A ``metav1.LabelSelector`` object (matchLabels + matchExpressions) as a predicate."""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append("!" + key)
    return label_selector(",".join(parts)) or (lambda obj: True)


def field_value(obj: dict[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_selector(text: str | None, supported: frozenset[str]) -> Predicate | None:
    """Compile ``?fieldSelector=``; unsupported field labels are a 400 like on a real server."""
    if not text or not text.strip():
        return None
    checks: list[tuple[str, bool, str]] = []
    for part in _split_top_level(text):
        match = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not match:
            raise ApiError(400, f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = match.groups()
        if path not in supported:
            raise ApiError(400, f'field label not supported: {path}')
        checks.append((path, op != "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, p) == v) == want for p, want, v in checks)

    return matches
