"""CustomResourceDefinition checks, including the structural-schema rules of KEP-2335.

Messages and field paths follow the apiserver's, e.g.
``spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be
empty for specified object fields``.
"""

from __future__ import annotations

import re
from typing import Any

from multinic_sandbox.kube.errors import Cause
from multinic_sandbox.kube.formats import SUPPORTED as SUPPORTED_FORMATS
from multinic_sandbox.kube.validation import DNS1123_LABEL, go_repr

ROOT, ITEM, FIELD = "root", "item", "field"
_JUNCTORS = ("allOf", "anyOf", "oneOf")


def _forbidden(path: str, message: str) -> Cause:
    return Cause(path, f"Forbidden: {message}", "FieldValueForbidden")


def _required(path: str, message: str) -> Cause:
    return Cause(path, f"Required value: {message}", "FieldValueRequired")


def _invalid(path: str, value: Any, message: str) -> Cause:
    return Cause(path, f"Invalid value: {go_repr(value)}: {message}")


def _openapi_rules(node: dict[str, Any], path: str, causes: list[Cause]) -> None:
    """Keywords an apiserver refuses anywhere in a CRD schema."""
    for key, label in (("$ref", "$ref"), ("$schema", "$schema"), ("id", "id"),
                       ("$id", "$id"), ("definitions", "definitions"),
                       ("patternProperties", "patternProperties"),
                       ("dependencies", "dependencies"), ("additionalItems", "additionalItems")):
        if key in node:
            causes.append(_forbidden(f"{path}.{key}", f"{label} is not supported"))
    if node.get("uniqueItems") is True:
        causes.append(_forbidden(f"{path}.uniqueItems", "uniqueItems cannot be set to true since "
                                 "the runtime complexity becomes quadratic"))
    extra = node.get("additionalProperties")
    if extra is False:
        causes.append(_forbidden(f"{path}.additionalProperties",
                                 "additionalProperties cannot be set to false"))
    if extra is not None and node.get("properties"):
        causes.append(_forbidden(f"{path}.additionalProperties",
                                 "additionalProperties and properties are mutual exclusive"))
    if node.get("type") == "null":
        causes.append(_forbidden(f"{path}.type", "type cannot be set to null"))
    if isinstance(node.get("items"), list):
        causes.append(_forbidden(f"{path}.items", "items must be a schema object and not an "
                                 "array"))
    fmt = node.get("format")
    if fmt and fmt not in SUPPORTED_FORMATS:
        supported = ", ".join(go_repr(f) for f in sorted(SUPPORTED_FORMATS))
        causes.append(Cause(f"{path}.format", f"Unsupported value: {go_repr(fmt)}: supported "
                            f"values: {supported}", "FieldValueNotSupported"))
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            causes.append(_invalid(f"{path}.pattern", pattern, "must be a valid regular "
                                   f"expression, but isn't: {exc}"))


def _structural(node: dict[str, Any], level: str, path: str, causes: list[Cause]) -> None:
    """Structural invariants: every specified node has a type, metadata is restricted, ..."""
    _openapi_rules(node, path, causes)
    node_type = node.get("type", "")
    int_or_string = bool(node.get("x-kubernetes-int-or-string"))
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(node.get("x-kubernetes-embedded-resource"))
    if node_type == "array" and "items" not in node:
        causes.append(_required(f"{path}.items", "must be specified"))
    if isinstance(node.get("items"), dict):
        _structural(node["items"], ITEM, f"{path}.items", causes)
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _structural(sub, FIELD, f"{path}.properties[{key}]", causes)
    extra = node.get("additionalProperties")
    if extra is not None and level == ROOT:
        causes.append(_forbidden(f"{path}.additionalProperties", "must not be used at the root"))
    if isinstance(extra, dict):
        _structural(extra, FIELD, f"{path}.additionalProperties", causes)
    if int_or_string and preserve:
        causes.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", True,
                               "must be false if x-kubernetes-int-or-string is true"))
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        causes.append(_invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False,
                               "must be true or undefined"))
    if embedded and node_type != "object":
        if node_type:
            causes.append(_invalid(f"{path}.type", node_type,
                                   "must be object if x-kubernetes-embedded-resource is true"))
        else:
            causes.append(_required(f"{path}.type",
                                    "must be object if x-kubernetes-embedded-resource is true"))
    elif not node_type and not int_or_string and not preserve:
        detail = {ROOT: "must not be empty at the root",
                  ITEM: "must not be empty for specified array items",
                  FIELD: "must not be empty for specified object fields"}[level]
        causes.append(_required(f"{path}.type", detail))
    if level == ROOT and node_type and node_type != "object":
        causes.append(_invalid(f"{path}.type", node_type, "must be object at the root"))
    props = node.get("properties") or {}
    if level == ROOT and isinstance(props.get("metadata"), dict):
        meta = props["metadata"]
        allowed = {"type", "properties", "description"}
        names = set(meta.get("properties") or {})
        if set(meta) - allowed or names - {"name", "generateName"}:
            causes.append(_forbidden(f"{path}.properties[metadata]", "must not specify anything "
                                     "other than name and generateName, but metadata is "
                                     "implicitly specified"))
    for junctor in _JUNCTORS:
        for i, sub in enumerate(node.get(junctor) or ()):
            if isinstance(sub, dict):
                _value_validation(sub, f"{path}.{junctor}[{i}]", causes,
                                  int_or_string and junctor == "anyOf")
    if isinstance(node.get("not"), dict):
        _value_validation(node["not"], f"{path}.not", causes, False)


def _value_validation(node: dict[str, Any], path: str, causes: list[Cause],
                      int_or_string_pattern: bool) -> None:
    """Inside anyOf/allOf/oneOf/not only value validations are allowed."""
    _openapi_rules(node, path, causes)
    if "type" in node and not int_or_string_pattern:
        causes.append(_forbidden(f"{path}.type", "must be empty to be structural"))
    for key, message in (("additionalProperties", "must be undefined to be structural"),
                         ("default", "must be undefined to be structural"),
                         ("title", "must be empty to be structural"),
                         ("description", "must be empty to be structural"),
                         ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
                         ("x-kubernetes-embedded-resource", "must be false to be structural"),
                         ("x-kubernetes-int-or-string", "must be false to be structural"),
                         ("x-kubernetes-list-map-keys", "must be empty to be structural"),
                         ("x-kubernetes-list-type", "must be undefined to be structural")):
        if key in node:
            causes.append(_forbidden(f"{path}.{key}", message))
    if node.get("nullable"):
        causes.append(_forbidden(f"{path}.nullable", "must be false to be structural"))
    if "metadata" in (node.get("properties") or {}):
        causes.append(_forbidden(f"{path}.properties[metadata]",
                                 "must not be specified in a nested context"))
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _value_validation(sub, f"{path}.properties[{key}]", causes, False)
    if isinstance(node.get("items"), dict):
        _value_validation(node["items"], f"{path}.items", causes, False)


def _list_type_rules(node: dict[str, Any], path: str, causes: list[Cause]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    if list_type is not None:
        if list_type not in ("atomic", "set", "map"):
            causes.append(Cause(f"{path}.x-kubernetes-list-type", f"Unsupported value: "
                                f"{go_repr(list_type)}: supported values: \"atomic\", \"map\", "
                                "\"set\"", "FieldValueNotSupported"))
        if node.get("type") != "array":
            causes.append(_invalid(f"{path}.type", node.get("type", ""),
                                   "must be array if x-kubernetes-list-type is specified"))
        keys = node.get("x-kubernetes-list-map-keys") or []
        if list_type == "map":
            items: dict[str, Any] = node["items"] if isinstance(node.get("items"), dict) else {}
            if not keys:
                causes.append(_required(f"{path}.x-kubernetes-list-map-keys", "must not be "
                                        "empty if x-kubernetes-list-type is map"))
            for key in keys:
                if key not in (items.get("properties") or {}):
                    causes.append(_required(f"{path}.items.properties[{key}]", "entries "
                                            "specified in x-kubernetes-list-map-keys must be "
                                            "properties"))
        elif keys:
            causes.append(_forbidden(f"{path}.x-kubernetes-list-map-keys",
                                     "must be empty if x-kubernetes-list-type is not map"))
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _list_type_rules(sub, f"{path}.properties[{key}]", causes)
    if isinstance(node.get("items"), dict):
        _list_type_rules(node["items"], f"{path}.items", causes)
    if isinstance(node.get("additionalProperties"), dict):
        _list_type_rules(node["additionalProperties"], f"{path}.additionalProperties", causes)


def schema_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    _structural(schema, ROOT, path, causes)
    _list_type_rules(schema, path, causes)
    return sorted(causes, key=lambda c: c.render())


def crd_causes(crd: dict[str, Any]) -> list[Cause]:
    """Everything a real apiserver checks when a CRD is created or updated (the gist of it)."""
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    plural = names.get("plural", "")
    name = (crd.get("metadata") or {}).get("name", "")
    if name != f"{plural}.{group}":
        causes.append(_invalid("metadata.name", name,
                               'must be spec.names.plural+"."+spec.group'))
    if not group:
        causes.append(_required("spec.group", ""))
    elif "." not in group:
        causes.append(_invalid("spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        causes.append(_required("spec.names.plural", ""))
    elif not DNS1123_LABEL.match(plural):
        causes.append(_invalid("spec.names.plural", plural, "a lowercase RFC 1123 label must "
                               "consist of lower case alphanumeric characters or '-'"))
    if not names.get("kind"):
        causes.append(_required("spec.names.kind", ""))
    if names.get("listKind") and names.get("listKind") == names.get("kind"):
        causes.append(_invalid("spec.names.listKind", names["listKind"],
                               "kind and listKind may not be the same"))
    for i, short in enumerate(names.get("shortNames") or ()):
        if not DNS1123_LABEL.match(short):
            causes.append(_invalid(f"spec.names.shortNames[{i}]", short,
                                   "a DNS-1035 label must consist of lower case alphanumeric "
                                   "characters or '-'"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(Cause("spec.scope", f"Unsupported value: {go_repr(spec.get('scope', ''))}"
                            ': supported values: "Cluster", "Namespaced"',
                            "FieldValueNotSupported"))
    if spec.get("preserveUnknownFields"):
        causes.append(_invalid("spec.preserveUnknownFields", True, "must be false"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(_required("spec.versions", "must have exactly one version marked as "
                                "storage version"))
    elif sum(bool(v.get("storage")) for v in versions) != 1:
        causes.append(_invalid("spec.versions", [v.get("name") for v in versions],
                               "must have exactly one version marked as storage version"))
    seen: set[str] = set()
    for i, version in enumerate(versions):
        base = f"spec.versions[{i}]"
        vname = version.get("name", "")
        if vname in seen:
            causes.append(Cause(f"{base}.name", f"Duplicate value: {go_repr(vname)}",
                                "FieldValueDuplicate"))
        seen.add(vname)
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            causes.append(_required(f"{base}.schema.openAPIV3Schema", "schemas are required"))
            continue
        causes.extend(schema_causes(schema, f"{base}.schema.openAPIV3Schema"))
        status = ((version.get("subresources") or {}).get("scale"))
        if status is not None and not status.get("specReplicasPath"):
            causes.append(_required(f"{base}.subresources.scale.specReplicasPath", ""))
    return causes


def crd_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """The status a real apiserver reports once the names are accepted and the CRD served."""
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    storage = [v["name"] for v in spec["versions"] if v.get("storage")]
    previous = (crd.get("status") or {}).get("storedVersions") or []
    return {
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": sorted(set(previous) | set(storage)),
    }
