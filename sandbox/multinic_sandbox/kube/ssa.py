"""Server-side apply and ``managedFields`` bookkeeping.

Field ownership is tracked as sets of paths in the ``fieldsV1`` token language
(``f:spec``, ``k:{"name":"eth1"}``, ``v:"x"``, ``.``), at the granularity of leaf fields, items
of associative lists (``x-kubernetes-list-type: map`` / strategic-merge keys for built-ins) and
set members; other lists are atomic. This follows sigs.k8s.io/structured-merge-diff closely
enough for conflicts, forced takeovers and "apply without a field removes it".
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from multinic_sandbox.kube.errors import ApiError
from multinic_sandbox.kube.schemas import ANY, SchemaView

Path = tuple[str, ...]
ManagerKey = tuple[str, str, str]  # (manager, operation, subresource)

# metadata fields that take part in ownership; the rest is server-owned
OWNED_METADATA = ("labels", "annotations", "ownerReferences", "finalizers")


def item_token(item: Any, keys: list[str]) -> str:
    if isinstance(item, dict):
        key = {k: item[k] for k in keys if k in item}
        return "k:" + json.dumps(key, separators=(",", ":"), sort_keys=True)
    return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)


def collect(value: Any, view: SchemaView, prefix: Path, out: set[Path]) -> None:
    """Add the leaf paths of ``value`` (typed by ``view``) to ``out``."""
    if isinstance(value, dict) and not view.atomic_map:
        if not value and prefix:
            out.add(prefix)
        for key, item in value.items():
            collect(item, view.child(key) or ANY, (*prefix, "f:" + key), out)
    elif isinstance(value, list) and view.list_type == "map" and view.map_keys:
        items = view.items()
        for item in value:
            token = item_token(item, view.map_keys)
            out.add((*prefix, token, "."))
            collect(item, items, (*prefix, token), out)
    elif isinstance(value, list) and view.list_type == "set":
        for item in value:
            out.add((*prefix, item_token(item, [])))
    elif prefix:
        out.add(prefix)


def owned_part(obj: dict[str, Any], subresource: str, status_subresource: bool) -> dict[str, Any]:
    """The part of an object that field managers can own for a write to ``subresource``."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    if status_subresource:
        out.pop("status", None)
    meta = obj.get("metadata") or {}
    owned_meta = {k: meta[k] for k in OWNED_METADATA if k in meta}
    if owned_meta:
        out["metadata"] = owned_meta
    return out


def fields_of(obj: dict[str, Any], view: SchemaView, subresource: str,
              status_subresource: bool) -> set[Path]:
    out: set[Path] = set()
    collect(owned_part(obj, subresource, status_subresource), view, (), out)
    return out


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for token in path:
        if token == ".":
            return node
        if token.startswith("f:"):
            if not isinstance(node, dict) or token[2:] not in node:
                return _MISSING
            node = node[token[2:]]
        elif token.startswith("k:"):
            if not isinstance(node, list):
                return _MISSING
            key = json.loads(token[2:])
            node = next((i for i in node if isinstance(i, dict)
                         and all(i.get(k) == v for k, v in key.items())), _MISSING)
            if node is _MISSING:
                return _MISSING
        elif token.startswith("v:"):
            wanted = json.loads(token[2:])
            if not isinstance(node, list) or wanted not in node:
                return _MISSING
            node = wanted
    return node


def remove_path(obj: dict[str, Any], path: Path, keep: set[Path]) -> None:
    """Remove the field at ``path``; containers it leaves empty go too (unless in ``keep``)."""
    if not path:
        return
    if path[-1] == ".":
        path = path[:-1]
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    token = path[-1]
    if parent is _MISSING:
        return
    if token.startswith("f:") and isinstance(parent, dict):
        parent.pop(token[2:], None)
    elif token.startswith("k:") and isinstance(parent, list):
        key = json.loads(token[2:])
        parent[:] = [i for i in parent if not (isinstance(i, dict)
                                                and all(i.get(k) == v for k, v in key.items()))]
    elif token.startswith("v:") and isinstance(parent, list):
        wanted = json.loads(token[2:])
        parent[:] = [i for i in parent if i != wanted]
    # tidy up containers that became empty, but never a top-level field (spec stays)
    if len(path) > 2 and parent in ({}, []) and path[:-1] not in keep:
        remove_path(obj, path[:-1], keep)


def merge(live: Any, config: Any, view: SchemaView) -> Any:
    """Merge an apply configuration into the live object (maps deep, associative lists by key)."""
    if isinstance(config, dict) and isinstance(live, dict) and not view.atomic_map:
        out = dict(live)
        for key, value in config.items():
            child = view.child(key) or ANY
            out[key] = merge(live[key], value, child) if key in live else copy.deepcopy(value)
        return out
    if isinstance(config, list) and isinstance(live, list):
        if view.list_type == "map" and view.map_keys:
            keys, items = view.map_keys, view.items()
            out_list = list(live)
            index = {item_token(item, keys): i for i, item in enumerate(out_list)}
            for item in config:
                token = item_token(item, keys)
                if token in index:
                    out_list[index[token]] = merge(out_list[index[token]], item, items)
                else:
                    out_list.append(copy.deepcopy(item))
            return out_list
        if view.list_type == "set":
            return list(live) + [copy.deepcopy(i) for i in config if i not in live]
    return copy.deepcopy(config)


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


# -- managedFields encoding -------------------------------------------------------------------
def encode_fields(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for token in path:
            node = node.setdefault(token, {})
    return tree


def decode_fields(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for token, sub in tree.items():
        path = (*prefix, token)
        if isinstance(sub, dict) and sub:
            out |= decode_fields(sub, path)
        else:
            out.add(path)
    return out


@dataclass
class Entry:
    api_version: str
    time: str
    fields: set[Path]


def read_managers(obj: dict[str, Any] | None) -> dict[ManagerKey, Entry]:
    managers: dict[ManagerKey, Entry] = {}
    for raw in ((obj or {}).get("metadata") or {}).get("managedFields") or ():
        key = (raw.get("manager", ""), raw.get("operation", "Update"), raw.get("subresource", ""))
        managers[key] = Entry(raw.get("apiVersion", ""), raw.get("time", ""),
                              decode_fields(raw.get("fieldsV1") or {}))
    return managers


def write_managers(obj: dict[str, Any], managers: dict[ManagerKey, Entry]) -> None:
    entries = []
    for (manager, operation, sub), entry in managers.items():
        if not entry.fields:
            continue
        raw: dict[str, Any] = {"manager": manager, "operation": operation,
                               "apiVersion": entry.api_version, "time": entry.time,
                               "fieldsType": "FieldsV1", "fieldsV1": encode_fields(entry.fields)}
        if sub:
            raw["subresource"] = sub
        entries.append(raw)
    if entries:
        obj["metadata"]["managedFields"] = entries
    else:
        obj["metadata"].pop("managedFields", None)


def format_path(path: Path) -> str:
    """``.spec.interfaces[name="eth1"].mac``: how apply conflicts name a field."""
    out = ""
    for token in path:
        if token.startswith("f:"):
            out += "." + token[2:]
        elif token.startswith("k:"):
            key = json.loads(token[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        elif token.startswith("v:"):
            out += "[=" + token[2:] + "]"
    return out


@dataclass
class Change:
    """Ownership context of one write."""

    manager: str
    subresource: str
    api_version: str
    time: str
    view: SchemaView
    status_subresource: bool


def record_update(old: dict[str, Any] | None, new: dict[str, Any], change: Change) -> None:
    """Non-apply write: the writer takes over every field it changed; removed fields vanish."""
    managers = read_managers(old)
    old_fields = fields_of(old, change.view, change.subresource, change.status_subresource) \
        if old else set()
    new_fields = fields_of(new, change.view, change.subresource, change.status_subresource)
    changed = {p for p in new_fields
               if p not in old_fields or value_at(old, p) != value_at(new, p)}
    removed = old_fields - new_fields
    if old is not None and change.subresource == "" and change.status_subresource:
        removed = {p for p in removed if p[:1] != ("f:status",)}
    for entry in managers.values():
        entry.fields -= changed | removed
    key = (change.manager, "Update", change.subresource)
    mine = managers.get(key)
    if mine is None:
        if changed:
            managers[key] = Entry(change.api_version, change.time, changed)
    elif changed:
        mine.fields |= changed
        mine.time, mine.api_version = change.time, change.api_version
    write_managers(new, managers)


def apply(live: dict[str, Any] | None, config: dict[str, Any], change: Change,
          force: bool) -> dict[str, Any]:
    """Server-side apply ``config`` onto ``live`` (None: create); returns the merged object."""
    config = strip_nulls(config)
    managers = read_managers(live)
    key = (change.manager, "Apply", change.subresource)
    applied = fields_of(config, change.view, change.subresource, change.status_subresource)
    if live is not None:
        conflicts: dict[ManagerKey, list[Path]] = {}
        for other, entry in managers.items():
            if other == key:
                continue
            for path in sorted(applied & entry.fields):
                if path[-1] != "." and value_at(live, path) != value_at(config, path):
                    conflicts.setdefault(other, []).append(path)
        if conflicts and not force:
            raise _conflict_error(conflicts, managers)
        for other, paths in conflicts.items():
            managers[other].fields -= set(paths)
    base = copy.deepcopy(live) if live is not None else {}
    merged = merge(base, _applicable(config, change), change.view)
    previous = managers.get(key)
    if previous is not None:
        others: set[Path] = set()
        for other, entry in managers.items():
            if other != key:
                others |= entry.fields
        # whole list items first (their keys locate them), then leaves of what remains
        dropped = sorted(previous.fields - applied - others, key=lambda p: (p[-1] != ".", len(p)))
        for path in dropped:
            remove_path(merged, path, others | applied)
    # everything the applier set now belongs to it; other Update managers keep the rest
    for other, entry in managers.items():
        if other != key and other[1] == "Update":
            entry.fields -= {p for p in applied if value_at(live, p) != value_at(config, p)}
    managers[key] = Entry(change.api_version, change.time, applied)
    merged.setdefault("metadata", {})
    write_managers(merged, managers)
    return merged


def _applicable(config: dict[str, Any], change: Change) -> dict[str, Any]:
    """Drop what this endpoint may not change (status on the main resource, spec on /status)."""
    if change.subresource == "status":
        return {k: v for k, v in config.items() if k in ("status", "metadata", "apiVersion", "kind")}
    if change.status_subresource:
        return {k: v for k, v in config.items() if k != "status"}
    return config


def _conflict_error(conflicts: dict[ManagerKey, list[Path]],
                    managers: dict[ManagerKey, Entry]) -> ApiError:
    count = sum(len(p) for p in conflicts.values())
    causes = []
    lines = []
    for key, paths in conflicts.items():
        manager = key[0]
        version = managers[key].api_version
        for path in paths:
            causes.append({"type": "FieldManagerConflict",
                           "message": f'conflict with "{manager}" using {version}',
                           "field": format_path(path)})
    if count == 1:
        only = causes[0]
        detail = f"{only['message']}: {only['field']}"
    else:
        for key, paths in conflicts.items():
            lines.append(f'conflicts with "{key[0]}" using {managers[key].api_version}:')
            lines.extend(f"- {format_path(p)}" for p in paths)
        detail = "\n".join(lines)
    plural = "conflict" if count == 1 else "conflicts"
    return ApiError(409, f"Apply failed with {count} {plural}: {detail}", reason="Conflict",
                    details={"causes": causes})
