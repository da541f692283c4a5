"""Field-level differences between two specs, keyed so a person can read them.

Lists of named objects (interfaces) are matched by name, so changing one interface's MTU reads
``spec.interfaces[storage0].mtu: 1500 -> 9000`` rather than a shifted list.
"""

from __future__ import annotations

from typing import Any

from reconciler.plan.changeset import FieldChange

_MISSING = object()


def diff(before: Any, after: Any, path: str = "spec") -> list[FieldChange]:
    if before is not _MISSING and before == after:
        return []  # the common case, an unchanged spec: one comparison, no walk
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldChange] = []
        for key in sorted(set(before) | set(after)):
            out.extend(diff(before.get(key, _MISSING), after.get(key, _MISSING), f"{path}.{key}"))
        return out
    if _named_list(before) and _named_list(after):
        old = {item["name"]: item for item in before}
        new = {item["name"]: item for item in after}
        out = []
        for name in sorted(set(old) | set(new), key=lambda n: _order(n, before, after)):
            out.extend(diff(old.get(name, _MISSING), new.get(name, _MISSING), f"{path}[{name}]"))
        if not out and [i["name"] for i in before] != [i["name"] for i in after]:
            out.append(FieldChange(f"{path}(order)", [i["name"] for i in before], [i["name"] for i in after]))
        return out
    if before == after:
        return []
    return [FieldChange(path, None if before is _MISSING else before, None if after is _MISSING else after)]


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)
        and len({i["name"] for i in value}) == len(value)
    )


def _order(name: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> int:
    for index, item in enumerate(after):
        if item["name"] == name:
            return index
    for index, item in enumerate(before):
        if item["name"] == name:
            return len(after) + index
    return 0
