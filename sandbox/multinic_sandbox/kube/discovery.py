"""Discovery documents: ``/version``, ``/api``, ``/apis``, resource lists and ``/openapi/v3``."""

from __future__ import annotations

import hashlib
import json
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


def openapi_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
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
            "paths": paths, "components": {"schemas": {}}}


def openapi_index(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in registry.groups() for v in vs]
    for group, version in gvs:
        doc = openapi_document(registry, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64]
        key = _gv_path(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest.upper()}"}
    return {"paths": paths}
