"""Server-side defaulting for built-in kinds (what a real apiserver fills in on every write)."""

from __future__ import annotations

import base64
from typing import Any

from multinic_sandbox.kube.resources import ResourceType


def _container_defaults(containers: list[Any]) -> None:
    for container in containers:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
        pull = "Always" if image.endswith(":latest") or tagless else "IfNotPresent"
        container.setdefault("imagePullPolicy", pull)
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def pod_spec_defaults(spec: dict[str, Any], restart_policy: str | None = "Always") -> None:
    if restart_policy:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    _container_defaults(spec.get("containers") or [])
    _container_defaults(spec.get("initContainers") or [])


def _merge_string_data(secret: dict[str, Any]) -> None:
    """``stringData`` is write-only: merged into ``data`` (winning over it), never stored."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data")
        if not isinstance(data, dict):
            data = secret["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    if rt.group == "batch" and rt.plural == "jobs":
        spec = obj.setdefault("spec", {})
        uid = meta.get("uid", "")
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        if not spec.get("manualSelector"):
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
            template = spec.setdefault("template", {})
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            labels.setdefault("controller-uid", uid)
            labels.setdefault("batch.kubernetes.io/controller-uid", uid)
            labels.setdefault("job-name", meta["name"])
            labels.setdefault("batch.kubernetes.io/job-name", meta["name"])
        pod_spec = (spec.get("template") or {}).get("spec")
        if isinstance(pod_spec, dict):
            pod_spec_defaults(pod_spec, restart_policy=None)
    elif rt.group == "apps" and rt.plural == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        pod_spec = (spec.get("template") or {}).get("spec")
        if isinstance(pod_spec, dict):
            pod_spec_defaults(pod_spec)
    elif rt.group == "" and rt.plural == "pods":
        if isinstance(obj.get("spec"), dict):
            pod_spec_defaults(obj["spec"])
    elif rt.group == "" and rt.plural == "namespaces":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif rt.group == "" and rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
        _merge_string_data(obj)
    elif rt.plural == "customresourcedefinitions":
        spec = obj.setdefault("spec", {})
        spec.setdefault("conversion", {"strategy": "None"})
        names = spec.get("names")
        if isinstance(names, dict) and names.get("kind"):
            names.setdefault("singular", str(names["kind"]).lower())
            names.setdefault("listKind", f"{names['kind']}List")


def initial_status(rt: ResourceType) -> dict[str, Any] | None:
    """Status a freshly created object starts with (None: no status field)."""
    if rt.group == "batch" and rt.plural == "jobs":
        return {}
    if rt.group == "" and rt.plural == "pods":
        return {"phase": "Pending", "qosClass": "BestEffort"}
    if rt.group == "" and rt.plural == "namespaces":
        return {"phase": "Active"}
    return None
