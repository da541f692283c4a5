"""Discovery documents: ``/version``, ``/api``, ``/apis``, resource lists and ``/openapi/v3``."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from typing import Any

from multinic_sandbox.kube.resources import Registry, ResourceType
from multinic_sandbox.kube.schemas import KUBE_MINOR

VERSION = {
    "major": "1",
    "minor": str(KUBE_MINOR),
    "gitVersion": f"v1.{KUBE_MINOR}.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in registry.groups()]}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    for group, versions in registry.groups():
        if group == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}
    return None


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular_name(),
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "storageVersionHash": hashlib.sha256(rt.key.encode()).hexdigest()[:11],
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        resources.append(_resource_entry(rt))
        if rt.status_subresource:
            resources.append({"name": f"{rt.plural}/status", "singularName": "",
                              "namespaced": rt.namespaced, "kind": rt.kind,
                              "verbs": ["get", "patch", "update"]})
        if rt.scale_subresource:
            resources.append({"name": f"{rt.plural}/scale", "singularName": "",
                              "namespaced": rt.namespaced, "group": "autoscaling",
                              "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
        if rt.log_subresource:
            resources.append({"name": f"{rt.plural}/log", "singularName": "",
                              "namespaced": rt.namespaced, "kind": rt.kind, "verbs": ["get"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


# -- OpenAPI v3 -------------------------------------------------------------------------------
def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(rt: ResourceType, verb: str, with_field_validation: bool) -> dict[str, Any]:
    params = [{"name": "dryRun", "in": "query", "schema": {"type": "string"}},
              {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]
    if with_field_validation:
        params.append({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}})
    return {
        "operationId": f"{verb}{rt.kind}",
        "parameters": params,
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version,
                                            "kind": rt.kind},
        "responses": {"200": {"description": "OK"}},
    }


_DOCS: dict[tuple[int, str, str], tuple[dict[str, Any] | None, str]] = {}
_DOCS_LOCK = threading.Lock()
REF_PREFIX = "#/components/schemas/"


def openapi_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version: paths plus the kinds' schemas."""
    return _cached_document(registry, group, version)[0]


def _cached_document(registry: Registry, group: str, version: str
                     ) -> tuple[dict[str, Any] | None, str]:
    key = (registry.generation, group, version)
    with _DOCS_LOCK:
        found = _DOCS.get(key)
    if found is None:
        doc = _build_document(registry, group, version)
        digest = "" if doc is None else hashlib.sha512(
            json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
        found = (doc, digest)
        with _DOCS_LOCK:
            _DOCS[key] = found
    return found


def _build_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    base = "/" + _gv_path(group, version)
    for rt in types:
        scope = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
        item = f"{scope}/{rt.plural}/{{name}}"
        paths[f"{scope}/{rt.plural}"] = {"get": _operation(rt, "list", False),
                                         "post": _operation(rt, "post", True)}
        paths[item] = {"get": _operation(rt, "get", False), "put": _operation(rt, "put", True),
                       "patch": _operation(rt, "patch", True),
                       "delete": _operation(rt, "delete", False)}
        if rt.status_subresource:
            paths[f"{item}/status"] = {"get": _operation(rt, "get", False),
                                       "put": _operation(rt, "put", True),
                                       "patch": _operation(rt, "patch", True)}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": _schemas(types)}}


def openapi_index(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in registry.groups() for v in vs]
    for group, version in gvs:
        _, digest = _cached_document(registry, group, version)
        key = _gv_path(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


# -- schemas (what `kubectl explain` reads) ---------------------------------------------------
def _schemas(types: list[ResourceType]) -> dict[str, Any]:
    """Component schemas for the kinds of one group-version and everything they reference."""
    from multinic_sandbox.kube.schemas import builtin_defs

    defs = builtin_defs(strict=False)
    out: dict[str, Any] = {}
    wanted: list[str] = []
    for rt in types:
        if rt.is_custom:
            name = _crd_schema_name(rt)
            out[name] = _crd_schema(rt)
            wanted.append("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        else:
            name = _gvk_index().get((rt.group, rt.version, rt.kind), "")
            if name:
                wanted.append(name)
    while wanted:
        name = wanted.pop()
        if name in out or name not in defs:
            continue
        refs: list[str] = []
        out[name] = _openapi3(defs[name], refs)
        wanted.extend(refs)
    return out


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    from multinic_sandbox.kube.schemas import builtin_defs

    index: dict[tuple[str, str, str], str] = {}
    for name, node in builtin_defs(strict=False).items():
        for gvk in node.get("x-kubernetes-group-version-kind") or ():
            index[(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))] = name
    return index


def _openapi3(node: Any, refs: list[str]) -> Any:
    """kubernetes-validate's JSON Schema back into the apiserver's OpenAPI 3.0 dialect."""
    if isinstance(node, list):
        return [_openapi3(item, refs) for item in node]
    if not isinstance(node, dict):
        return node
    one_of = node.get("oneOf")
    if one_of and all(isinstance(o, dict) and set(o) == {"type"} for o in one_of):
        kinds = [_single_type(o["type"]) for o in one_of]
        rest = {k: v for k, v in node.items() if k != "oneOf"}
        if sorted(kinds) == ["integer", "string"]:
            return {**rest, "type": "string", "format": "int-or-string",
                    "x-kubernetes-int-or-string": True}
        return {**rest, "type": "string"}  # Quantity
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            name = str(value).rsplit("/", 1)[-1]
            refs.append(name)
            out[key] = REF_PREFIX + name
        elif key == "type":
            out[key] = _single_type(value)
        elif key in ("properties", "patternProperties"):
            out[key] = {k: _openapi3(v, refs) for k, v in value.items()}
        elif key == "enum" and node.get("type") and _single_type(node["type"]) == "string" and \
                len(value) == 1:
            continue  # apiVersion/kind pins added by kubernetes-validate, not in the real docs
        else:
            out[key] = _openapi3(value, refs)
    if "$ref" in out and len(out) > 1:  # siblings of a $ref: the apiserver's allOf wrapping
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def _single_type(value: Any) -> Any:
    if isinstance(value, list):
        return next((v for v in value if v != "null"), "object")
    return value


def _crd_schema_name(rt: ResourceType) -> str:
    return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"


def _crd_schema(rt: ResourceType) -> dict[str, Any]:
    schema = json.loads(json.dumps(rt.schema or {"type": "object",
                                                 "x-kubernetes-preserve-unknown-fields": True}))
    props = schema.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string", "description": "APIVersion defines the "
                                    "versioned schema of this representation of an object."})
    props.setdefault("kind", {"type": "string", "description": "Kind is a string value "
                              "representing the REST resource this object represents."})
    props["metadata"] = {"allOf": [{"$ref": REF_PREFIX +
                                    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
                         "description": "Standard object's metadata. More info: https://git.k8s"
                         ".io/community/contributors/devel/sig-architecture/api-conventions.md"
                         "#metadata"}
    schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "version": rt.version,
                                                  "kind": rt.kind}]
    return schema
