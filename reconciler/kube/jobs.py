"""The node Job: one per desired change of a node, pinned to that node, least privilege.

A Job's name is derived from its *identity*: the custom resource's uid and generation, the spec
hash, the ``multinic.io/retry`` request and the automatic attempt. A change back to an earlier
spec is a new generation, so it gets a new Job: an old Job's result never stands for the current
spec, and a restart still finds the Jobs it started (same identity, same name).

Pure: builds manifests and reads them back. The agent in the Job never talks to the Kubernetes
API (no service-account token); the node's document travels in the env var ``MULTINIC_CONFIG``
and the result comes back through the container's termination message.

Mounts are exactly what the agent needs on that node's OS: the one config directory it writes
(``/etc/netplan``, ``/etc/sysconfig/network-scripts`` or
``/etc/NetworkManager/system-connections``), plus ``/sys/class/net`` and ``/etc/os-release``
read-only (MAC lookup and OS detection).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.config.models import NodeConfig
from reconciler.kube import objects

JobType = Literal["apply", "remove"]
LABEL_TYPE = "multinic.io/job-type"
LABEL_NODE = "multinic.io/node"
LABEL_SPEC_HASH = "multinic.io/spec-hash"
LABEL_GENERATION = "multinic.io/generation"
LABEL_REVISION = "multinic.io/revision"
LABEL_OWNER_UID = "multinic.io/owner-uid"  # the custom resource the Job works for
ANNOTATION_NODE = "multinic.io/node-name"  # the full name (labels stop at 63 characters)
JOB_SELECTOR = f"{objects.OWNED_SELECTOR},{LABEL_TYPE}"

CONFIG_DIRS = {
    "netplan": "/etc/netplan",
    "ifcfg": "/etc/sysconfig/network-scripts",
    "keyfile": "/etc/NetworkManager/system-connections",
}


@dataclass(frozen=True)
class JobSettings:
    image: str = "ghcr.io/multinic/multinic-reconciler:0.1.0"
    service_account: str = "multinic-node-agent"
    tolerations: tuple[dict[str, Any], ...] = ({"operator": "Exists"},)
    backoff_limit: int = 1  # the agent rolls back itself; one retry covers a lost pod
    active_deadline_seconds: int = 300
    ttl_seconds_after_finished: int = 3600
    activate: str = "iproute2"  # live changes over netlink (NET_ADMIN); files keep them across reboots
    extra_labels: dict[str, str] = field(default_factory=dict)


def _label_value(text: str) -> str:
    """A label-safe form of ``text``: kept when it fits, else a prefix plus a short hash."""
    if len(text) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9]+$", "", text[:50]) + "-" + digest


def job_name(job_type: JobType, node: str, identity: str) -> str:
    """Deterministic: the same node and identity always give the same name (so a restart never
    starts a duplicate), and it stays a DNS label of at most 63 characters."""
    prefix = "mnnc" if job_type == "apply" else "mnnc-rm"
    digest = hashlib.sha256(f"{job_type}/{node}/{identity}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]", "-", node.lower())[: 63 - len(prefix) - len(digest) - 2].strip("-")
    return f"{prefix}-{stem}-{digest}"


def renderer_for(os_image: str, os_family: str) -> str | None:
    """Which files the agent will write, from the Node's ``status.nodeInfo.osImage``."""
    text = os_image.lower()
    family = os_family
    if family == "auto":
        if any(word in text for word in ("ubuntu", "debian")):
            family = "ubuntu"
        elif any(word in text for word in ("red hat", "rhel", "rocky", "alma", "centos", "fedora", "oracle")):
            family = "rhel"
        else:
            return None
    if family == "ubuntu":
        return "netplan"
    match = re.search(r"\b(\d+)(\.\d+)?\b", text)
    major = int(match.group(1)) if match else 9
    if "fedora" in text:
        return "keyfile"
    return "ifcfg" if major < 9 else "keyfile"


def node_job(job_type: JobType, node: NodeConfig, *, namespace: str, identity: str, spec_hash: str,
             generation: int | None, revision: str | None, renderer: str, settings: JobSettings,
             owner_uid: str | None = None) -> dict[str, Any]:
    name = job_name(job_type, node.spec.node_name, identity)
    labels = {
        **settings.extra_labels,
        objects.MANAGED_BY: objects.MANAGED_BY_VALUE,
        LABEL_TYPE: job_type,
        LABEL_NODE: _label_value(node.spec.node_name),
        LABEL_SPEC_HASH: spec_hash,
    }
    if generation is not None:
        labels[LABEL_GENERATION] = str(generation)
    if revision:
        labels[LABEL_REVISION] = _label_value(revision)
    if owner_uid:
        labels[LABEL_OWNER_UID] = _label_value(owner_uid)
    document = {"apiVersion": node.api_version, "kind": node.kind,
                "metadata": {"name": node.name}, "spec": node.spec_dict()}
    config_dir = CONFIG_DIRS[renderer]
    args = ["agent", job_type, "--activate", settings.activate]  # the document comes in MULTINIC_CONFIG
    container = {
        "name": "agent",
        "image": settings.image,
        "command": ["reconciler"],
        "args": args,
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MULTINIC_CONFIG", "value": json.dumps(document, separators=(",", ":"))},
        ],
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 0,  # writes root-owned files under /etc on the node
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": config_dir},
            {"name": "sys-class-net", "mountPath": "/sys/class/net", "readOnly": True},
            {"name": "os-release", "mountPath": "/etc/os-release", "readOnly": True},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": {ANNOTATION_NODE: node.spec.node_name}},
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"kubernetes.io/hostname": node.spec.node_name},
                    "tolerations": [dict(t) for t in settings.tolerations],
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "serviceAccountName": settings.service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "hostPath": {"path": config_dir, "type": "DirectoryOrCreate"}},
                        {"name": "sys-class-net", "hostPath": {"path": "/sys/class/net", "type": "Directory"}},
                        {"name": "os-release", "hostPath": {"path": "/etc/os-release", "type": "File"}},
                    ],
                },
            },
        },
    }


def job_state(job: dict[str, Any]) -> Literal["running", "succeeded", "failed"]:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if condition.get("status") == "True" and condition.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return "running"


def termination_message(pod: dict[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"])
    return None
