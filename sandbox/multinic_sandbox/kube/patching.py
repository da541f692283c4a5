"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from multinic_sandbox.kube.errors import ApiError
from multinic_sandbox.kube.schemas import ANY, SchemaView

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


def _invalid_patch(message: str) -> ApiError:
    return ApiError(422, f"the server rejected our request due to an error in our request: "
                    f"{message}", reason="Invalid")


# -- RFC 6902 ---------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid_patch(f'invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _invalid_patch(f"doc is missing path: \"{path}\": missing value")
    return node


def _index(node: list[Any], part: str, path: str, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(node)
    if not part.isdigit():
        raise _invalid_patch(f'invalid index "{part}" in "{path}"')
    index = int(part)
    if index > len(node) or (index == len(node) and not allow_end):
        raise _invalid_patch(f"unable to access invalid index: {index}")
    return index


def _get(doc: Any, path: str) -> Any:
    return _container(doc, _pointer(path), path)


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise _invalid_patch("cannot remove the whole document")
    parent = _container(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _invalid_patch(f'unable to remove nonexistent key: {last}: missing value')
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    raise _invalid_patch(f'doc is missing path: "{path}"')


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _container(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _invalid_patch(f'doc is missing key: {path}: missing value')
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, path, allow_end=False)] = value
        else:
            parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise _invalid_patch(f'doc is missing path: "{path}": missing value')
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise ApiError(400, "json: cannot unmarshal object into Go value of type "
                       "jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict):
            raise _invalid_patch("invalid operation")
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "move":
            value = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _invalid_patch(f"testing value {path} failed: test failed")
        else:
            raise _invalid_patch(f"Unexpected kind: {kind}")
    return doc


# -- RFC 7386 ---------------------------------------------------------------------------------
def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- strategic merge patch (built-in kinds) -----------------------------------------------------
def strategic_merge_patch(doc: Any, patch: Any, view: SchemaView) -> Any:
    if not isinstance(patch, dict) or not isinstance(doc, dict) or view.atomic_map:
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(doc)
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$retainKeys", "$patch")):
            continue  # ordering/retention hints; not needed for the result we serve
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field) or [] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        child = view.child(key) or ANY
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            if value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(current, value, child)
        elif isinstance(value, list) and isinstance(current, list) and "merge" in \
                child.patch_strategy:
            out[key] = _merge_list(current, value, child)
        else:
            out[key] = _clean(value)
    return out


def _merge_list(current: list[Any], patch: list[Any], view: SchemaView) -> list[Any]:
    keys = view.map_keys
    if not keys:  # list of primitives merged as a set
        return list(current) + [v for v in patch if v not in current]
    key = keys[0]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_clean(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    out = list(current)
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next((n for n, c in enumerate(out)
                      if isinstance(c, dict) and c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(_clean(item))
        else:
            out[index] = strategic_merge_patch(out[index], item, view.items())
    return out


def _clean(value: Any) -> Any:
    """Drop strategic-merge directives from values copied verbatim."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
