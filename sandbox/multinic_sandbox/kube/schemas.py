"""Navigable OpenAPI schemas: built-in kinds (from the ``kubernetes-validate`` package) and CRDs.

Both validation (pruning, unknown fields) and server-side apply (list types, atomic maps) walk
objects alongside their schema; ``SchemaView`` hides where a schema came from.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

# The sandbox answers /version with this minor; built-in schemas come from the matching release.
KUBE_MINOR = 32


class SchemaView:
    """One schema node. ``defs`` resolves ``$ref`` (built-ins); CRD schemas have none."""

    __slots__ = ("_children", "_items", "builtin", "defs", "node")

    def __init__(self, node: dict[str, Any], defs: dict[str, Any] | None = None) -> None:
        self.defs = defs
        self.builtin = defs is not None
        while defs is not None and "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        self.node = node
        self._children: dict[str, SchemaView | None] = {}  # views are cached: walks are hot
        self._items: SchemaView | None = None

    def _view(self, node: dict[str, Any]) -> SchemaView:
        if "$builtin" in node:  # a CRD's implicit metadata: the built-in ObjectMeta
            return object_meta_view()
        return SchemaView(node, self.defs)

    @property
    def types(self) -> set[str]:
        value = self.node.get("type")
        if value is None:
            return set()
        return {value} if isinstance(value, str) else set(value)

    @property
    def preserves_unknown(self) -> bool:
        node = self.node
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return True
        # built-in free-form objects (RawExtension, JSON) carry no properties at all
        return self.builtin and "properties" not in node and "additionalProperties" not in node

    def child(self, key: str) -> SchemaView | None:
        """Schema of field ``key``; None when the field is unknown (would be pruned)."""
        try:
            return self._children[key]
        except KeyError:
            found = self._children[key] = self._child(key)
            return found

    def _child(self, key: str) -> SchemaView | None:
        props = self.node.get("properties")
        if props and key in props:
            return self._view(props[key])
        extra = self.node.get("additionalProperties")
        if isinstance(extra, dict):
            return self._view(extra)
        if extra is True or self.preserves_unknown:
            return ANY
        return None

    def items(self) -> SchemaView:
        if self._items is None:
            items = self.node.get("items")
            self._items = self._view(items) if isinstance(items, dict) else ANY
        return self._items

    @property
    def list_type(self) -> str:
        """``map``, ``set`` or ``atomic``; built-ins fall back to their strategic-merge keys."""
        declared = self.node.get("x-kubernetes-list-type")
        if declared:
            return str(declared)
        if self.builtin and "merge" in str(self.node.get("x-kubernetes-patch-strategy", "")):
            return "map" if self.node.get("x-kubernetes-patch-merge-key") else "set"
        return "atomic"

    @property
    def map_keys(self) -> list[str]:
        keys = self.node.get("x-kubernetes-list-map-keys")
        if keys:
            return list(keys)
        merge_key = self.node.get("x-kubernetes-patch-merge-key")
        return [merge_key] if merge_key else []

    @property
    def patch_strategy(self) -> str:
        return str(self.node.get("x-kubernetes-patch-strategy", ""))

    @property
    def atomic_map(self) -> bool:
        return self.node.get("x-kubernetes-map-type") == "atomic"


ANY = SchemaView({"x-kubernetes-preserve-unknown-fields": True})


@functools.cache
def _schema_dir(strict: bool) -> str:
    from kubernetes_validate import utils

    versions = [v for v in utils.all_versions() if int(v.split(".")[1]) <= KUBE_MINOR]
    return f"kubernetes-json-schema/v{versions[-1]}-local" + ("-strict" if strict else "")


@functools.cache
def _load(relative: str) -> Any:
    from importlib import resources

    with resources.files("kubernetes_validate").joinpath(relative).open() as handle:
        return json.load(handle)


def builtin_defs_document(strict: bool = True) -> dict[str, Any]:
    return _load(f"{_schema_dir(strict)}/_definitions.json")


def builtin_defs(strict: bool = True) -> dict[str, Any]:
    return builtin_defs_document(strict)["$defs"]


def builtin_root(api_version: str, kind: str, strict: bool = True) -> dict[str, Any] | None:
    """The top-level schema document kubernetes-validate ships for a kind, or None."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        return _load(f"{_schema_dir(strict)}/{kind.lower()}-{api}.json")
    except FileNotFoundError:
        return None


@functools.cache
def builtin_view(api_version: str, kind: str) -> SchemaView | None:
    """Strict schema (additionalProperties: false everywhere) so unknown fields are detectable."""
    root = builtin_root(api_version, kind)
    return SchemaView(root, builtin_defs()) if root is not None else None


@functools.cache
def object_meta_view() -> SchemaView:
    return SchemaView(
        {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}, builtin_defs()
    )


_CRD_VIEWS: dict[int, tuple[Any, SchemaView]] = {}


def crd_view(schema: dict[str, Any] | None) -> SchemaView:
    """A CRD's openAPIV3Schema; the implicit apiVersion/kind/metadata are added here."""
    cached = _CRD_VIEWS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    view = _build_crd_view(schema)
    _CRD_VIEWS[id(schema)] = (schema, view)
    return view


def _build_crd_view(schema: dict[str, Any] | None) -> SchemaView:
    node = dict(schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    props = dict(node.get("properties") or {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"$builtin": "ObjectMeta"}
    node["properties"] = props
    return SchemaView(node)
