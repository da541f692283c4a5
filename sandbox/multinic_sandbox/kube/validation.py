"""Object validation as the apiserver does it on every write.

* unknown fields are pruned (``fieldValidation`` Ignore/Warn) or refused (Strict) for every kind;
* custom resources are checked against their CRD's ``openAPIV3Schema`` (types, required, enum,
  pattern, bounds, formats, list types, int-or-string, preserve-unknown-fields), with schema
  ``default``s applied and non-nullable ``null`` fields dropped first;
* built-in kinds are checked with the JSON schemas shipped by ``kubernetes-validate``;
* names and labels follow the apiserver's RFC 1123 / label rules.

``x-kubernetes-validations`` (CEL) rules are compiled and evaluated by ``cel`` (see there).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from multinic_sandbox.kube import formats
from multinic_sandbox.kube.errors import ApiError, Cause, bad_request, invalid
from multinic_sandbox.kube.resources import ResourceType
from multinic_sandbox.kube.schemas import (
    SchemaView,
    builtin_defs_document,
    builtin_root,
    builtin_view,
    crd_view,
    object_meta_view,
)

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def go_repr(value: Any) -> str:
    """A value the way Go's ``%v``/``%q`` prints it in apiserver messages (close enough)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _matches_type(value: Any, expected: str) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass
class Walk:
    """Findings of one validation pass."""

    causes: list[Cause] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    prune: bool = True  # False inside anyOf/oneOf/allOf/not: only look, never change

    def bad(self, path: str, message: str, reason: str = "FieldValueInvalid") -> None:
        self.causes.append(Cause(path, message, reason))


def prune_unknown(value: Any, view: SchemaView, path: str, walk: Walk) -> None:
    """Drop fields a schema does not declare (built-in kinds, object metadata)."""
    if isinstance(value, dict):
        if view.preserves_unknown:
            return
        for key in list(value):
            child = view.child(key)
            if child is None:
                walk.unknown.append(_join(path, key))
                del value[key]
            else:
                prune_unknown(value[key], child, _join(path, key), walk)
    elif isinstance(value, list):
        items = view.items()
        for i, item in enumerate(value):
            prune_unknown(item, items, f"{path}[{i}]", walk)


def check_custom(value: Any, view: SchemaView, path: str, walk: Walk) -> None:
    """Validate (and prune/default) ``value`` against a CRD schema node, in place."""
    node = view.node
    if "$builtin" in node or view.builtin:  # metadata: prune only, ObjectMeta rules apply
        prune_unknown(value, view, path, walk)
        return
    int_or_string = isinstance(value, str) or _matches_type(value, "integer")
    if node.get("x-kubernetes-int-or-string") and not int_or_string:
        actual = go_repr(_type_name(value))
        walk.bad(path, f"Invalid value: {actual}: {path} in body must be of type "
                 f"integer-or-string: {actual}", "FieldValueTypeInvalid")
        return
    expected = node.get("type")
    if expected and not _matches_type(value, expected):
        actual = _type_name(value)
        walk.bad(path, f'Invalid value: "{actual}": {path} in body must be of type {expected}: '
                 f'"{actual}"', "FieldValueTypeInvalid")
        return
    if "enum" in node and value not in node["enum"]:
        supported = ", ".join(go_repr(v) for v in node["enum"])
        walk.bad(path, f"Unsupported value: {go_repr(value)}: supported values: {supported}",
                 "FieldValueNotSupported")
    if isinstance(value, str):
        _check_string(value, node, path, walk)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, node, path, walk)
    elif isinstance(value, list):
        _check_array(value, view, path, walk)
    elif isinstance(value, dict):
        _check_object(value, view, path, walk)
    _check_junctors(value, node, path, walk)


def _check_string(value: str, node: dict[str, Any], path: str, walk: Walk) -> None:
    if "minLength" in node and len(value) < node["minLength"]:
        walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body should be at least "
                 f"{node['minLength']} chars long")
    if "maxLength" in node and len(value) > node["maxLength"]:
        walk.bad(path, f"Too long: may not be more than {node['maxLength']} bytes",
                 "FieldValueTooLong")
    pattern = node.get("pattern")
    if pattern and not re.search(pattern, value):
        walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body should match "
                 f"'{pattern}'")
    fmt = node.get("format")
    if fmt and not formats.check(fmt, value):
        walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body must be of type "
                 f"{fmt}: {go_repr(value)}")


def _check_number(value: float, node: dict[str, Any], path: str, walk: Walk) -> None:
    if "minimum" in node:
        low = node["minimum"]
        if value < low or (node.get("exclusiveMinimum") is True and value == low):
            op = "greater than" if node.get("exclusiveMinimum") is True else \
                "greater than or equal to"
            walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body should be {op} "
                     f"{go_repr(low)}")
    if "maximum" in node:
        high = node["maximum"]
        if value > high or (node.get("exclusiveMaximum") is True and value == high):
            op = "less than" if node.get("exclusiveMaximum") is True else "less than or equal to"
            walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body should be {op} "
                     f"{go_repr(high)}")
    step = node.get("multipleOf")
    if step and (value / step) != int(value / step):
        walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body should be a multiple "
                 f"of {go_repr(step)}")


def _check_array(value: list[Any], view: SchemaView, path: str, walk: Walk) -> None:
    node = view.node
    if "minItems" in node and len(value) < node["minItems"]:
        walk.bad(path, f"Invalid value: {len(value)}: {path} in body should have at least "
                 f"{node['minItems']} items")
    if "maxItems" in node and len(value) > node["maxItems"]:
        walk.bad(path, f"Too many: {len(value)}: must have at most {node['maxItems']} items",
                 "FieldValueTooMany")
    items = view.items()
    for i, item in enumerate(value):
        check_custom(item, items, f"{path}[{i}]", walk)
    list_type = node.get("x-kubernetes-list-type")
    seen: set[str] = set()
    for i, item in enumerate(value):
        if list_type == "map" and isinstance(item, dict):
            key = {k: item.get(k) for k in node.get("x-kubernetes-list-map-keys") or ()}
        elif list_type == "set":
            key = item
        else:
            continue
        encoded = json.dumps(key, sort_keys=True)
        if encoded in seen:
            walk.bad(f"{path}[{i}]", f"Duplicate value: {go_repr(key)}", "FieldValueDuplicate")
        seen.add(encoded)


def _check_object(value: dict[str, Any], view: SchemaView, path: str, walk: Walk) -> None:
    node = view.node
    props: dict[str, Any] = node.get("properties") or {}
    if walk.prune:
        for key in list(value):
            sub = props.get(key)
            if value[key] is None and not (sub or {}).get("nullable"):
                del value[key]  # non-nullable nulls are pruned before defaulting
            elif view.child(key) is None:
                walk.unknown.append(_join(path, key))
                del value[key]
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
    for key in node.get("required") or ():
        if key not in value:
            walk.bad(_join(path, key), "Required value", "FieldValueRequired")
    if "minProperties" in node and len(value) < node["minProperties"]:
        walk.bad(path, f"Invalid value: {len(value)}: {path} in body should have at least "
                 f"{node['minProperties']} properties")
    if "maxProperties" in node and len(value) > node["maxProperties"]:
        walk.bad(path, f"Too many: {len(value)}: must have at most {node['maxProperties']} "
                 "items", "FieldValueTooMany")
    for key, item in value.items():
        child = view.child(key)
        if child is not None:
            check_custom(item, child, _join(path, key), walk)


def _passes(value: Any, node: dict[str, Any], path: str) -> bool:
    probe = Walk(prune=False)
    check_custom(value, SchemaView(node), path, probe)
    return not probe.causes


def _check_junctors(value: Any, node: dict[str, Any], path: str, walk: Walk) -> None:
    if node.get("x-kubernetes-int-or-string") and "type" not in node:
        return  # the anyOf integer|string pattern is implied
    for sub in node.get("allOf") or ():
        probe = Walk(prune=False)
        check_custom(value, SchemaView(sub), path, probe)
        walk.causes.extend(probe.causes)
    if node.get("anyOf") and not any(_passes(value, s, path) for s in node["anyOf"]):
        walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body must validate at "
                 "least one schema (anyOf)")
    if node.get("oneOf"):
        passing = sum(_passes(value, s, path) for s in node["oneOf"])
        if passing != 1:
            walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body must validate one "
                     "and only one schema (oneOf)")
    if isinstance(node.get("not"), dict) and _passes(value, node["not"], path):
        walk.bad(path, f"Invalid value: {go_repr(value)}: {path} in body must not validate "
                 "the schema (not)")


@functools.cache
def _builtin_validator(api_version: str, kind: str) -> Any:
    import jsonschema
    from referencing import Registry, Resource

    root = builtin_root(api_version, kind, strict=False)
    if root is None:
        return None
    registry = Resource.from_contents(root) @ Registry()
    registry = Resource.from_contents(builtin_defs_document(strict=False)) @ registry
    return jsonschema.Draft202012Validator(root, registry=registry)


ZERO_VALUES = {"string": "", "integer": 0, "number": 0, "boolean": False}


def _zero_fill(obj: dict[str, Any], error: Any) -> bool:
    """A status field the schema marks required but Go decodes as a zero value: fill it in.

    The apiserver decodes built-ins into Go structs, so a missing non-pointer scalar (say a
    partial ``status.nodeInfo``) is just its zero value there; only hand-written validation can
    refuse it, and status has little of that. Returns True when the error was resolved.
    """
    path = list(error.absolute_path)
    missing = re.findall(r"'([^']+)' is a required property", error.message)
    if not path or path[0] != "status" or not missing or not isinstance(error.instance, dict):
        return False
    prop = (error.schema.get("properties") or {}).get(missing[0]) or {}
    while "$ref" in prop:
        prop = builtin_defs_document(strict=False)["$defs"].get(prop["$ref"].rsplit("/", 1)[-1], {})
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind not in ZERO_VALUES:
        return False
    error.instance[missing[0]] = ZERO_VALUES[kind]
    return True


def _builtin_causes(obj: dict[str, Any], rt: ResourceType) -> list[Cause]:
    validator = _builtin_validator(rt.api_version, rt.kind)
    if validator is None:
        return []
    causes: list[Cause] = []
    for error in validator.iter_errors(obj):
        if error.validator == "required" and _zero_fill(obj, error):
            continue
        path = ""
        for part in error.absolute_path:
            path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
        if error.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", error.message)
            causes.append(Cause(_join(path, missing[0] if missing else "?"), "Required value",
                                "FieldValueRequired"))
        elif error.validator == "enum":
            supported = ", ".join(go_repr(v) for v in error.validator_value)
            causes.append(Cause(path, f"Unsupported value: {go_repr(error.instance)}: "
                                f"supported values: {supported}", "FieldValueNotSupported"))
        else:
            causes.append(Cause(path, f"Invalid value: {go_repr(error.instance)}: "
                                f"{error.message}"))
    return causes


def _metadata_causes(obj: dict[str, Any], rt: ResourceType) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    name = meta.get("name", "")
    if not name:
        causes.append(Cause("metadata.name", "Required value: name or generateName is required",
                            "FieldValueRequired"))
    elif rt.plural == "namespaces":
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            causes.append(Cause("metadata.name", f"Invalid value: {go_repr(name)}: {LABEL_MSG}"))
    elif rt.plural in ("configmaps", "secrets", "events", "leases") or rt.group == "events.k8s.io":
        pass  # these accept any path-segment-safe name
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        causes.append(Cause("metadata.name", f"Invalid value: {go_repr(name)}: {SUBDOMAIN_MSG}"))
    if name in (".", "..") or "/" in name or "%" in name:
        causes.append(Cause("metadata.name", f"Invalid value: {go_repr(name)}: may not contain "
                            "'/' or '%' and may not be '.' or '..'"))
    for key, value in (meta.get("labels") or {}).items():
        label_name = key.rsplit("/", 1)[-1]
        if len(label_name) > 63 or not LABEL_NAME.match(label_name):
            causes.append(Cause("metadata.labels", f"Invalid value: {go_repr(key)}: name part "
                                "must consist of alphanumeric characters, '-', '_' or '.', and "
                                "must start and end with an alphanumeric character"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(Cause("metadata.labels", f"Invalid value: {go_repr(value)}: "
                                f"{LABEL_VALUE_MSG}"))
    return causes


def _semantic_causes(obj: dict[str, Any], rt: ResourceType) -> list[Cause]:
    """Rules a real apiserver enforces in Go code rather than in the schema."""
    causes: list[Cause] = []
    if rt.group == "batch" and rt.plural == "jobs":
        pod_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        if pod_spec.get("restartPolicy") not in ("OnFailure", "Never"):
            causes.append(Cause("spec.template.spec.restartPolicy",
                                'Required value: valid values: "OnFailure", "Never"',
                                "FieldValueRequired"))
    return causes


def validate(
    obj: dict[str, Any], rt: ResourceType, field_validation: str, *, check_metadata: bool = True
) -> list[str]:
    """Prune/default ``obj`` in place and validate it; returns warnings, raises 400/422.

    ``field_validation`` is the request's ``fieldValidation`` (Strict, Warn or Ignore).
    """
    walk = Walk()
    if rt.is_custom:
        check_custom(obj, crd_view(rt.schema), "", walk)
    else:
        view = builtin_view(rt.api_version, rt.kind)
        if view is not None:
            prune_unknown(obj, view, "", walk)
        else:
            prune_unknown(obj.get("metadata") or {}, object_meta_view(), "metadata", walk)
        walk.causes.extend(_builtin_causes(obj, rt))
        walk.causes.extend(_semantic_causes(obj, rt))
    if check_metadata:
        walk.causes[:0] = _metadata_causes(obj, rt)
    warnings: list[str] = []
    if walk.unknown:
        if field_validation == "Strict":
            unknown = ", ".join(f'unknown field "{p}"' for p in walk.unknown)
            raise bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {unknown}"
            )
        if field_validation == "Warn":
            warnings = [f'unknown field "{p}"' for p in walk.unknown]
    if walk.causes:
        raise invalid(rt.kind, rt.group, (obj.get("metadata") or {}).get("name", ""),
                      walk.causes)
    return warnings


def check_field_validation(value: str | None) -> str:
    if value in (None, ""):
        return "Warn"  # the apiserver's default since server-side field validation went GA
    if value not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, f'fieldValidation parameter "{value}" is not supported: must be '
                       'one of "Ignore", "Warn" or "Strict"')
    return value
