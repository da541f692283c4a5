"""The apiserver's object semantics, independent of HTTP.

``Cluster`` implements create/get/list/update/patch/apply/delete for every resource type in the
registry: resourceVersion/generation/uid bookkeeping, preconditions (409), validation (400/422),
status-subresource rules, managedFields, owner-reference cascades and CRD installation. The
HTTP layer (``routes``) and the in-process job controller both go through it.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import functools
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import yaml

from multinic_sandbox.kube import cel, patching, protobuf, ssa, structural
from multinic_sandbox.kube.clock import Clock
from multinic_sandbox.kube.defaults import apply_defaults, initial_status
from multinic_sandbox.kube.errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    success_status,
)
from multinic_sandbox.kube.resources import Registry, ResourceType, crd_resource_types
from multinic_sandbox.kube.schemas import ANY, SchemaView, builtin_view, crd_view
from multinic_sandbox.kube.selectors import Predicate
from multinic_sandbox.kube.store import Store, Stored, encode
from multinic_sandbox.kube.validation import go_repr, validate

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


P = ParamSpec("P")
R = TypeVar("R")


def _serialized(method: Callable[P, R]) -> Callable[P, R]:
    """Writes are read-modify-write sequences: run them one at a time under the store lock."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        cluster = args[0]
        with cluster.store.lock:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return wrapper


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    warnings: list[str] = field(default_factory=list)
    changed: bool = True


@dataclass
class ListPage:
    items: list[Stored]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


@dataclass
class WriteOptions:
    manager: str = ""
    field_validation: str = "Warn"
    dry_run: bool = False
    force: bool = False


def load_body(body: bytes | dict[str, Any], content_type: str = "") -> Any:
    if isinstance(body, dict | list):
        return body
    if "protobuf" in content_type:
        # kubectl's typed generators and `auth can-i` send built-in kinds as protobuf
        return protobuf.decode(body)
    if "cbor" in content_type:
        raise ApiError(415, f'the body of the request was in an unknown format - accepted media '
                       f'types include: application/json, application/yaml ("{content_type}")')
    try:
        if "yaml" in content_type:
            return yaml.safe_load(body.decode() or "null")
        return json.loads(body or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request was in an unknown format - accepted media "
                          f"types include: application/json, application/yaml: {exc}") from None


class Cluster:
    """All objects of one sandbox plus the rules for changing them."""

    def __init__(self, clock: Clock | None = None, seed: int | None = None,
                 root_ca_pem: bytes | None = None) -> None:
        self.clock = clock or Clock()
        # what the root-ca publisher puts into every namespace's kube-root-ca.crt ConfigMap
        self.root_ca_pem = (root_ca_pem or _process_ca_pem()).decode()
        self.store = Store()
        self.registry = Registry()
        self.random = random.Random(seed)
        self.write_hooks: list[Callable[[ResourceType, dict[str, Any]], None]] = []
        for ns in SYSTEM_NAMESPACES:
            self.ensure_namespace(ns)

    # -- lookups ---------------------------------------------------------------------------
    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.lookup(group, version, plural)
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource",
                           details={"group": group, "kind": plural})
        return rt

    def view(self, rt: ResourceType) -> SchemaView:
        if rt.is_custom:
            return crd_view(rt.schema)
        return builtin_view(rt.api_version, rt.kind) or ANY

    def _convert(self, rt: ResourceType, stored: Stored) -> Stored:
        """Custom resources served in several versions: rewrite apiVersion (strategy None)."""
        if stored.obj.get("apiVersion") == rt.api_version:
            return stored
        obj = stored.copy()
        obj["apiVersion"] = rt.api_version
        return Stored(obj, encode(obj))

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if stored is None:
            raise not_found(rt.plural, rt.group, name)
        return self._convert(rt, stored)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Stored | None:
        stored = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        return self._convert(rt, stored) if stored else None

    def list(self, rt: ResourceType, namespace: str | None, predicate: Predicate | None = None,
             limit: int = 0, continue_token: str = "") -> ListPage:
        rv = self.store.resource_version
        after = None
        if continue_token:
            rv, after = self._decode_continue(continue_token)
        namespace = namespace if rt.namespaced else None
        items: list[Stored] = []
        remaining = 0
        more = False
        for stored in self.store.scan(rt.key, namespace, after):
            if predicate is not None and not predicate(stored.obj):
                continue
            if limit and len(items) >= limit:
                more = True
                remaining += 1
                continue
            items.append(self._convert(rt, stored))
        page = ListPage(items, str(rv))
        if more:
            last = items[-1].obj["metadata"]
            page.continue_token = self._encode_continue(rv, last.get("namespace", ""), last["name"])
            page.remaining = remaining if predicate is None else None
        return page

    @staticmethod
    def _encode_continue(rv: int, namespace: str, name: str) -> str:
        token = {"v": "meta.k8s.io/v1", "rv": rv, "start": [namespace, name]}
        return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
            raise bad_request("continue key is not valid: incorrect encoded start "
                              "resourceVersion (version meta.k8s.io/v1)") from None

    # -- writes ----------------------------------------------------------------------------
    @_serialized
    def create(self, rt: ResourceType, namespace: str, body: bytes | dict[str, Any],
               opts: WriteOptions | None = None, content_type: str = "") -> WriteResult:
        opts = opts or WriteOptions()
        obj = load_body(body, content_type)
        self._check_body(rt, obj, namespace, None)
        return self._write(rt, namespace, None, obj, opts, "Update")

    @_serialized
    def update(self, rt: ResourceType, namespace: str, name: str, body: bytes | dict[str, Any],
               opts: WriteOptions | None = None, subresource: str = "",
               content_type: str = "") -> WriteResult:
        opts = opts or WriteOptions()
        obj = load_body(body, content_type)
        self._check_body(rt, obj, namespace, name)
        old = self.get(rt, namespace, name)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            if rv != old.obj["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name)
        elif not rt.unconditional_update:
            raise invalid(rt.kind, rt.group, name, [Cause(
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update")])
        return self._write(rt, namespace, old, obj, opts, "Update", subresource)

    @_serialized
    def patch(self, rt: ResourceType, namespace: str, name: str, body: bytes,
              content_type: str, opts: WriteOptions | None = None,
              subresource: str = "") -> WriteResult:
        opts = opts or WriteOptions()
        media = content_type.split(";")[0].strip().lower()
        if media in (patching.APPLY_PATCH, patching.APPLY_PATCH_CBOR):
            return self.apply(rt, namespace, name, body, opts, subresource)
        if media == patching.STRATEGIC_PATCH and rt.is_custom:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted "
                           f"media types include: {patching.JSON_PATCH}, {patching.MERGE_PATCH}, "
                           f"{patching.APPLY_PATCH}, {patching.APPLY_PATCH_CBOR}")
        if media not in (patching.JSON_PATCH, patching.MERGE_PATCH, patching.STRATEGIC_PATCH):
            raise ApiError(415, f"the body of the request was in an unknown format - accepted "
                           f"media types include: {patching.JSON_PATCH}, {patching.MERGE_PATCH}, "
                           f"{patching.APPLY_PATCH}, {patching.STRATEGIC_PATCH}")
        old = self.get(rt, namespace, name)
        patch = load_body(body)
        current = old.copy()
        if media == patching.JSON_PATCH:
            patched = patching.json_patch(current, patch)
        elif media == patching.MERGE_PATCH:
            if not isinstance(patch, dict):
                raise bad_request("json: cannot unmarshal array into Go value of type "
                                  "map[string]interface {}")
            patched = patching.merge_patch(current, patch)
        else:
            patched = patching.strategic_merge_patch(current, patch, self.view(rt))
        if not isinstance(patched, dict):
            raise bad_request("the patch did not result in an object")
        meta: dict[str, Any] = patched["metadata"] if isinstance(patched.get("metadata"), dict) \
            else {}
        if meta.get("resourceVersion", old.obj["metadata"]["resourceVersion"]) != \
                old.obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        self._check_body(rt, patched, namespace, name)
        return self._write(rt, namespace, old, patched, opts, "Update", subresource)

    def apply(self, rt: ResourceType, namespace: str, name: str, body: bytes | dict[str, Any],
              opts: WriteOptions, subresource: str = "") -> WriteResult:
        if not opts.manager:
            raise bad_request("PATCH requests with apply content type require the fieldManager "
                              "query parameter (fieldManager is required for apply patch)")
        config = load_body(body, "yaml")
        if not isinstance(config, dict):
            raise bad_request("apply patch must be an object")
        for key in ("apiVersion", "kind"):
            if not config.get(key):
                raise bad_request(f"invalid object type: {key} must be set in an apply "
                                  "configuration")
        self._check_body(rt, config, namespace, name)
        old = self.find(rt, namespace, name)
        rv = (config.get("metadata") or {}).get("resourceVersion")
        if rv and (old is None or rv != old.obj["metadata"]["resourceVersion"]):
            raise conflict(rt.plural, rt.group, name)
        if old is None and subresource:
            raise not_found(rt.plural, rt.group, name)
        config.setdefault("metadata", {})["name"] = name
        change = self._change(rt, opts.manager, subresource)
        merged = ssa.apply(old.copy() if old else None, config, change, opts.force)
        return self._write(rt, namespace, old, merged, opts, "Apply", subresource)

    def _change(self, rt: ResourceType, manager: str, subresource: str) -> ssa.Change:
        return ssa.Change(manager, subresource, rt.api_version, self.clock.stamp(), self.view(rt),
                          rt.status_subresource)

    def _check_body(self, rt: ResourceType, obj: Any, namespace: str, name: str | None) -> None:
        if not isinstance(obj, dict):
            raise bad_request(f"the body of the request did not decode to a {rt.kind} object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                              f"({rt.kind})")
        if api_version and api_version != rt.api_version and not (
                rt.is_custom and api_version.split("/")[0] == rt.group):
            raise bad_request(f"the API version in the data ({api_version}) does not match the "
                              f"expected API version ({rt.api_version})")
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        meta = meta or {}
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if name is not None and meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name "
                              f"on the URL ({name})")

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        while True:
            name = prefix[:58] + "".join(self.random.choice(NAME_ALPHABET) for _ in range(5))
            if self.store.get(rt.key, namespace, name) is None:
                return name

    def _write(self, rt: ResourceType, namespace: str, old: Stored | None, new: dict[str, Any],
               opts: WriteOptions, operation: str, subresource: str = "") -> WriteResult:
        """Common tail of every write: server fields, validation, generation, storage."""
        namespace = namespace if rt.namespaced else ""
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new.setdefault("metadata", {})
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        applied_fields = meta.get("managedFields") if operation == "Apply" else None
        if old is None:
            self._prepare_create(rt, namespace, new)
        else:
            new = self._prepare_update(rt, old.obj, new, subresource)
        meta = new["metadata"]
        if applied_fields is not None:
            meta["managedFields"] = applied_fields
        apply_defaults(rt, new)
        warnings = validate(new, rt, opts.field_validation)
        self._semantic_checks(rt, old.obj if old else None, new)
        if rt.is_custom:
            rule_failures = cel.rule_causes(new, rt.schema, old.obj if old else None)
            if rule_failures:
                raise invalid(rt.kind, rt.group, meta.get("name", ""), rule_failures)
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            new["status"] = structural.crd_status(new, self.clock.stamp())
        if old is not None and rt.tracks_generation:
            meta["generation"] = old.obj["metadata"].get("generation", 1)
            if _spec_part(old.obj, rt) != _spec_part(new, rt):
                meta["generation"] += 1
        if operation != "Apply":
            ssa.record_update(old.obj if old else None, new,
                              self._change(rt, opts.manager or "unknown", subresource))
        if old is not None and _same(old.obj, new):
            return WriteResult(old.obj, warnings=warnings, changed=False)
        if opts.dry_run:
            return WriteResult(new, created=old is None, warnings=warnings)
        if old is not None and meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rt, old.obj, "Background")
            return WriteResult(new, warnings=warnings)
        stored = self.store.put(rt.key, new)
        self._after_write(rt, stored.obj)
        if old is None and rt.plural == "namespaces" and rt.group == "":
            self._namespace_content(stored.obj["metadata"]["name"])
        return WriteResult(stored.obj, created=old is None, warnings=warnings)

    def _namespace_content(self, namespace: str) -> None:
        """What kube-controller-manager adds to each new namespace: the ``default``
        ServiceAccount and the ``kube-root-ca.crt`` ConfigMap."""
        opts = WriteOptions(manager="kube-controller-manager")
        sa = self.resource("", "v1", "serviceaccounts")
        if self.store.get(sa.key, namespace, "default") is None:
            self._write(sa, namespace, None, {"metadata": {"name": "default"}}, opts, "Update")
        cm = self.resource("", "v1", "configmaps")
        if self.store.get(cm.key, namespace, "kube-root-ca.crt") is None:
            self._write(cm, namespace, None, {
                "metadata": {"name": "kube-root-ca.crt", "annotations": {
                    "kubernetes.io/description": "Contains a CA bundle that can be used to "
                    "verify the kube-apiserver when using internal endpoints such as the "
                    "internal service IP or kubernetes.default.svc. No other usage is "
                    "guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": self.root_ca_pem}}, opts, "Update")

    def _prepare_create(self, rt: ResourceType, namespace: str, new: dict[str, Any]) -> None:
        meta = new["metadata"]
        if rt.namespaced:
            ns = self.store.get("namespaces", "", namespace)
            if ns is None:
                raise not_found("namespaces", "", namespace)
            if ns.obj["metadata"].get("deletionTimestamp"):
                raise ApiError(403, f"{rt.plural}{'.' + rt.group if rt.group else ''} "
                               f"\"{meta.get('name') or meta.get('generateName', '')}\" is "
                               f"forbidden: unable to create new content in namespace "
                               f"{namespace} because it is being terminated",
                               reason="Forbidden", details={
                                   "name": meta.get("name", ""), "group": rt.group,
                                   "kind": rt.plural,
                                   "causes": [{"reason": "NamespaceTerminating",
                                               "message": f"namespace {namespace} is being "
                                               "terminated", "field": "metadata.namespace"}]})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rt, namespace, meta["generateName"])
        name = meta.get("name", "")
        if name and self.store.get(rt.key, namespace, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        for server_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                             "selfLink"):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        meta["creationTimestamp"] = self.clock.stamp()
        if rt.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rt.status_subresource and rt.plural != "nodes":  # kubelets register nodes with status
            status = initial_status(rt)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status

    def _prepare_update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                        subresource: str) -> dict[str, Any]:
        old_meta = old["metadata"]
        if subresource == "status":
            status = new.get("status")
            new = json.loads(encode(old))
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status_subresource:
            if "status" in old:
                new["status"] = json.loads(encode(old["status"]))
            else:
                new.pop("status", None)
        meta = new["metadata"]
        for carried in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "managedFields"):
            if carried in old_meta:
                meta[carried] = old_meta[carried]
            else:
                meta.pop(carried, None)
        meta["name"] = old_meta["name"]
        return new

    def _semantic_checks(self, rt: ResourceType, old: dict[str, Any] | None,
                         new: dict[str, Any]) -> None:
        causes: list[Cause] = []
        name = new["metadata"].get("name", "")
        if rt.plural == "customresourcedefinitions":
            causes = structural.crd_causes(new) + cel.crd_rule_causes(new)
            if old is not None and old["spec"].get("scope") != new["spec"].get("scope"):
                causes.append(Cause("spec.scope", f"Invalid value: {go_repr(new['spec'].get('scope'))}"
                                    ": field is immutable"))
        elif rt.group == "batch" and rt.plural == "jobs" and old is not None:
            for path in ("selector", "template", "completions", "completionMode"):
                before, after = old["spec"].get(path), new["spec"].get(path)
                if before != after and not (path == "completions" and after is None):
                    causes.append(Cause(f"spec.{path}", f"Invalid value: {go_repr(after)}: "
                                        "field is immutable"))
        if causes:
            raise invalid(rt.kind, rt.group, name, causes)

    def _after_write(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            self.registry.set_crd(obj["metadata"]["name"], crd_resource_types(obj))
        for hook in self.write_hooks:
            hook(rt, obj)

    # -- scale subresource -----------------------------------------------------------------
    def scale_of(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The autoscaling/v1 Scale view of a Deployment."""
        from multinic_sandbox.kube.tables import selector_string

        meta = obj["metadata"]
        scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                           "creationTimestamp") if k in meta}
        selector = (obj.get("spec") or {}).get("selector")
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": "" if selector is None else selector_string(selector)}}

    @_serialized
    def write_scale(self, rt: ResourceType, namespace: str, name: str, body: bytes,
                    content_type: str, opts: WriteOptions, verb: str) -> dict[str, Any]:
        """PUT or PATCH of ``<resource>/scale``: only spec.replicas reaches the object."""
        old = self.get(rt, namespace, name)
        current = self.scale_of(rt, old.obj)
        media = content_type.split(";")[0].strip().lower()
        if verb == "update":
            scale = load_body(body, content_type)
        elif media == patching.JSON_PATCH:
            scale = patching.json_patch(current, load_body(body))
        elif media in (patching.MERGE_PATCH, patching.STRATEGIC_PATCH):
            patch = load_body(body)
            if not isinstance(patch, dict):
                raise bad_request("the patch must be an object")
            scale = patching.merge_patch(current, patch)
        else:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted "
                           f"media types include: {patching.JSON_PATCH}, "
                           f"{patching.MERGE_PATCH}, {patching.STRATEGIC_PATCH}")
        replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid("Scale", "autoscaling", name, [Cause(
                "spec.replicas", f"Invalid value: {go_repr(replicas)}: must be greater than or "
                "equal to 0")])
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old.obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        new = old.copy()
        new.setdefault("spec", {})["replicas"] = replicas
        result = self._write(rt, namespace, old, new, opts, "Update", "scale")
        return self.scale_of(rt, result.obj)

    # -- delete ----------------------------------------------------------------------------
    @_serialized
    def delete(self, rt: ResourceType, namespace: str, name: str,
               options: dict[str, Any] | None = None, dry_run: bool = False
               ) -> dict[str, Any]:
        options = options or {}
        stored = self.get(rt, namespace, name)
        obj = stored.obj
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise ApiError(409, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                           f"object meta: {obj['metadata']['uid']}", reason="Conflict")
        if pre.get("resourceVersion") and pre["resourceVersion"] != \
                obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Precondition failed: ResourceVersion in precondition: "
                           f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                           f"{obj['metadata']['resourceVersion']}", reason="Conflict")
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else rt.default_propagation)
        if dry_run:
            return self._delete_response(rt, obj)
        if rt.plural == "namespaces" and rt.group == "":
            return self._terminate_namespace(rt, stored)
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                marked = stored.copy()
                marked["metadata"]["deletionTimestamp"] = self.clock.stamp()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                return self.store.put(rt.key, marked).obj
            return obj
        last = self._remove(rt, obj, policy)
        return self._delete_response(rt, last)

    def _terminate_namespace(self, rt: ResourceType, stored: Stored) -> dict[str, Any]:
        """DELETE of a namespace: ``Terminating`` until ``finalize_namespaces`` empties it."""
        if stored.obj["metadata"].get("deletionTimestamp"):
            return stored.obj
        marked = stored.copy()
        marked["metadata"]["deletionTimestamp"] = self.clock.stamp()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked.setdefault("status", {})["phase"] = "Terminating"
        obj = self.store.put(rt.key, marked).obj
        self._after_write(rt, obj)
        return obj

    @_serialized
    def finalize_namespaces(self) -> int:
        """The namespace controller: delete the content of Terminating namespaces, then them."""
        done = 0
        for stored in list(self.store.scan("namespaces")):
            meta = stored.obj["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            self._remove(self.resource("", "v1", "namespaces"), stored.obj, "Background")
            done += 1
        return done

    def _delete_response(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if rt.is_custom:
            meta = obj["metadata"]
            return success_status(meta["name"], rt.group, rt.plural, meta["uid"])
        return obj

    def _remove(self, rt: ResourceType, obj: dict[str, Any], policy: str) -> dict[str, Any]:
        meta = obj["metadata"]
        removed = self.store.remove(rt.key, meta.get("namespace", ""), meta["name"])
        last = removed.obj if removed else obj
        self._cascade(meta["uid"], policy)
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            self._uninstall_crd(obj)
        if rt.plural == "namespaces" and rt.group == "":
            self._empty_namespace(meta["name"])
        return last

    def _cascade(self, owner_uid: str, policy: str) -> None:
        """Garbage-collect (or orphan) the dependents of a deleted object."""
        for bucket in self.store.all_buckets():
            types = self.registry.for_key(bucket)
            for stored in list(self.store.scan(bucket)):
                refs = stored.obj["metadata"].get("ownerReferences") or ()
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                dep_meta = stored.obj["metadata"]
                if policy == "Orphan":
                    orphan = stored.copy()
                    orphan["metadata"]["ownerReferences"] = [
                        r for r in refs if r.get("uid") != owner_uid]
                    if not orphan["metadata"]["ownerReferences"]:
                        del orphan["metadata"]["ownerReferences"]
                    self.store.put(bucket, orphan)
                elif types:
                    self._remove(types[0], stored.obj, "Background")
                else:
                    self.store.remove(bucket, dep_meta.get("namespace", ""), dep_meta["name"])

    def _uninstall_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        bucket = f"{spec.get('names', {}).get('plural')}.{spec.get('group')}"
        for stored in list(self.store.scan(bucket)):
            meta = stored.obj["metadata"]
            self.store.remove(bucket, meta.get("namespace", ""), meta["name"])
        self.store.drop_bucket(bucket)
        self.registry.remove_crd(crd["metadata"]["name"])

    def _empty_namespace(self, namespace: str) -> None:
        for rt in self.registry.all():
            if not rt.namespaced:
                continue
            for stored in list(self.store.scan(rt.key, namespace)):
                if self.store.get(rt.key, namespace, stored.obj["metadata"]["name"]):
                    self._remove(rt, stored.obj, "Background")

    @_serialized
    def delete_collection(self, rt: ResourceType, namespace: str | None,
                          predicate: Predicate | None, options: dict[str, Any] | None = None,
                          dry_run: bool = False) -> builtins.list[dict[str, Any]]:
        deleted = []
        for stored in self.list(rt, namespace, predicate).items:
            meta = stored.obj["metadata"]
            if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is None:
                continue
            self.delete(rt, meta.get("namespace", ""), meta["name"], options, dry_run)
            deleted.append(stored.obj)
        return deleted

    # -- conveniences for tests and controllers ---------------------------------------------
    def ensure_namespace(self, name: str) -> None:
        rt = self.resource("", "v1", "namespaces")
        if self.store.get("namespaces", "", name) is None:
            self.create(rt, "", {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": name}},
                        WriteOptions(manager="sandbox"))

    def type_for(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise ApiError(404, f'no matches for kind "{kind}" in version "{api_version}"')
        return rt


@functools.cache
def _process_ca_pem() -> bytes:
    """One throw-away CA per process for plain-HTTP sandboxes (TLS ones pass their own)."""
    import trustme

    return trustme.CA().cert_pem.bytes()


def _spec_part(obj: dict[str, Any], rt: ResourceType) -> dict[str, Any]:
    """What a generation bump looks at: everything but metadata (and status, if separate)."""
    skip = {"metadata", "status"} if rt.status_subresource or not rt.is_custom else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """No-op write detection: equal apart from resourceVersion and managedFields timestamps."""
    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        meta = dict(obj["metadata"])
        meta.pop("resourceVersion", None)
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"}
                                 for e in meta.get("managedFields") or ()]
        return {**obj, "metadata": meta}
    return strip(old) == strip(new)
