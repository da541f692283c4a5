"""The resource catalogue: built-in kinds the sandbox serves plus kinds added by installed CRDs."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
BASE_FIELD_LABELS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (``group``/``version``/``plural``) and how the server treats it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    log_subresource: bool = False
    scale_subresource: bool = False  # autoscaling/v1 Scale over spec.replicas
    # metadata.generation is maintained (bumped on changes outside status/metadata)
    tracks_generation: bool = False
    field_labels: frozenset[str] = BASE_FIELD_LABELS
    # ``orphan`` for batch/v1 Jobs (a real apiserver's default for them), else ``background``
    default_propagation: str = "Background"
    # custom resources only
    crd_name: str = ""
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    # built-ins: PUT without metadata.resourceVersion is allowed (not for custom resources)
    unconditional_update: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def is_custom(self) -> bool:
        return bool(self.crd_name)

    @property
    def key(self) -> str:
        """Storage key: one bucket per group+plural, shared by all versions of a CRD."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


def _core(plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, **kw)


POD_FIELDS = BASE_FIELD_LABELS | {
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}
EVENT_FIELDS = BASE_FIELD_LABELS | {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}

BUILTINS: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        status_subresource=True,
        field_labels=BASE_FIELD_LABELS | {"status.phase"},
    ),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret", field_labels=BASE_FIELD_LABELS | {"type"}),
    _core("events", "Event", short_names=("ev",), field_labels=EVENT_FIELDS),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        log_subresource=True,
        field_labels=POD_FIELDS,
    ),
    _core(
        "nodes",
        "Node",
        namespaced=False,
        short_names=("no",),
        status_subresource=True,
        field_labels=BASE_FIELD_LABELS | {"spec.unschedulable"},
    ),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "Job",
        True,
        categories=("all",),
        status_subresource=True,
        tracks_generation=True,
        field_labels=BASE_FIELD_LABELS | {"status.successful"},
        default_propagation="Orphan",
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    # What the Helm chart installs (validated against Kubernetes' own schemas like every built-in).
    ResourceType("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",), categories=("all",),
                 status_subresource=True, scale_subresource=True, tracks_generation=True),
    _core("services", "Service", short_names=("svc",), categories=("all",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # kubectl auth can-i: answered from the stored RBAC objects, never stored (see rbac.py)
    ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                 "SelfSubjectAccessReview", False, verbs=("create",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",),
                 status_subresource=True, tracks_generation=True),
    ResourceType(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        True,
        short_names=("ev",),
        field_labels=EVENT_FIELDS,
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status_subresource=True,
        tracks_generation=True,
    ),
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int]:
    """Sort key giving Kubernetes' version order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > foo."""
    match = _VERSION_RE.match(version)
    if not match:
        return (0, 0, 0)
    major, stage, minor = match.groups()
    rank = {"alpha": 1, "beta": 2, None: 3}[stage]
    return (rank, int(major), int(minor or 0))


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types one (validated) CRD serves: one per served version."""
    spec = crd["spec"]
    names = spec["names"]
    out: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        columns = version.get("additionalPrinterColumns")
        selectable = {
            s.get("jsonPath", "").lstrip(".") for s in version.get("selectableFields") or []
        }
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                tracks_generation=True,
                field_labels=BASE_FIELD_LABELS | selectable,
                crd_name=crd["metadata"]["name"],
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(columns) if columns is not None else (),
                unconditional_update=False,
            )
        )
    return out


@dataclass
class Registry:
    """Thread-safe lookup of resource types; CRD kinds come and go at runtime."""

    _builtin: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _crds: dict[str, list[ResourceType]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    generation: int = 0  # bumped on every CRD change (discovery/openapi caches key on it)

    def __post_init__(self) -> None:
        for rt in BUILTINS:
            self._builtin[(rt.group, rt.version, rt.plural)] = rt

    def set_crd(self, name: str, types: list[ResourceType]) -> None:
        with self._lock:
            self._crds[name] = types
            self.generation += 1

    def remove_crd(self, name: str) -> None:
        with self._lock:
            self._crds.pop(name, None)
            self.generation += 1

    def all(self) -> list[ResourceType]:
        with self._lock:
            crd_types = [rt for types in self._crds.values() for rt in types]
        return list(self._builtin.values()) + crd_types

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        found = self._builtin.get((group, version, plural))
        if found:
            return found
        for rt in self.all():
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self.all():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        return None

    def for_key(self, key: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.key == key]

    def groups(self) -> list[tuple[str, list[str]]]:
        """(group, versions by priority) in discovery order: built-ins first, then CRD groups."""
        order: list[str] = []
        versions: dict[str, list[str]] = {}
        for rt in self.all():
            if rt.group not in versions:
                order.append(rt.group)
                versions[rt.group] = []
            if rt.version not in versions[rt.group]:
                versions[rt.group].append(rt.version)
        return [
            (g, sorted(versions[g], key=version_priority, reverse=True)) for g in order if g
        ]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.group == group and rt.version == version]


def owners_uids(obj: dict[str, Any]) -> Iterable[str]:
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        uid = ref.get("uid")
        if uid:
            yield uid
