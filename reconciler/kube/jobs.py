"""The node Job: one per desired change of a node, pinned to that node, least privilege.

A Job's name is derived from its *identity*: the custom resource's uid and generation, the spec
hash, the ``multinic.io/retry`` request and the automatic attempt. A change back to an earlier
spec is a new generation, so it gets a new Job: an old Job's result never stands for the current
spec, and a restart still finds the Jobs it started (same identity, same name).

A verify Job (host drift, ``drift.interval``) is the apply Job with ``agent verify``: same
mounts and capabilities, named ``mnnc-vf-…``, its identity the node's drift period.

Pure: builds manifests and reads them back. The agent in the Job never talks to the Kubernetes
API (no service-account token); the node's document travels in the env var ``MULTINIC_CONFIG``
and the result comes back through the container's termination message.

Command line, environment and mounts come from the node-Job contract
(``reconciler.nodejob.container``): the mounts are derived from the renderer the one OS selection
(``reconciler.nodejob.renderers.select``) picks for the Node's ``osImage``, so every directory the
agent writes is a writable hostPath and the rest of the container is read-only. A failed agent is
never re-run (``backoffLimit: 0``): it has rolled the node back itself, and a second run would
disrupt the node a second time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.config.models import NodeConfig
from reconciler.kube import objects
from reconciler.nodejob import container as agent_container
from reconciler.nodejob.renderers import RendererName, select

JobType = Literal["apply", "remove", "verify"]  # verify: ``agent verify`` (drift), same mounts as apply
LABEL_TYPE = "multinic.io/job-type"
LABEL_NODE = "multinic.io/node"
LABEL_SPEC_HASH = "multinic.io/spec-hash"
LABEL_GENERATION = "multinic.io/generation"
LABEL_REVISION = "multinic.io/revision"
LABEL_OWNER_UID = "multinic.io/owner-uid"  # the custom resource the Job works for
ANNOTATION_NODE = "multinic.io/node-name"  # the full name (labels stop at 63 characters)
JOB_SELECTOR = f"{objects.OWNED_SELECTOR},{LABEL_TYPE}"

@dataclass(frozen=True)
class JobSettings:
    image: str = "ghcr.io/multinic/multinic-reconciler:0.1.0"
    service_account: str = "multinic-node-agent"
    tolerations: tuple[dict[str, Any], ...] = ({"operator": "Exists"},)
    backoff_limit: int = 0  # the agent rolls back itself; a re-run would disrupt the node twice
    active_deadline_seconds: int = 300
    ttl_seconds_after_finished: int = 3600
    # auto: the node's own stack (netplan / NetworkManager over the host's D-Bus socket), so live
    # state equals boot state; iproute2: explicit fallback, netlink only, behind the daemon's back
    activate: str = "auto"
    extra_labels: dict[str, str] = field(default_factory=dict)


def label_value(text: str) -> str:
    """A label-safe form of ``text``: kept when it fits, else a prefix plus a short hash."""
    if len(text) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9]+$", "", text[:50]) + "-" + digest


def job_name(job_type: JobType, node: str, identity: str) -> str:
    """Deterministic: the same node and identity always give the same name (so a restart never
    starts a duplicate), and it stays a DNS label of at most 63 characters."""
    prefix = {"apply": "mnnc", "remove": "mnnc-rm", "verify": "mnnc-vf"}[job_type]
    digest = hashlib.sha256(f"{job_type}/{node}/{identity}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]", "-", node.lower())[: 63 - len(prefix) - len(digest) - 2].strip("-")
    return f"{prefix}-{stem}-{digest}"


def renderer_for(os_image: str, os_family: str) -> RendererName | None:
    """Which files the agent will write, from the Node's ``status.nodeInfo.osImage``."""
    return select(os_image, os_family).renderer


def node_job(job_type: JobType, node: NodeConfig, *, namespace: str, identity: str, spec_hash: str,
             generation: int | None, revision: str | None, renderer: RendererName, settings: JobSettings,
             owner_uid: str | None = None) -> dict[str, Any]:
    name = job_name(job_type, node.spec.node_name, identity)
    labels = {
        **settings.extra_labels,
        objects.MANAGED_BY: objects.MANAGED_BY_VALUE,
        LABEL_TYPE: job_type,
        LABEL_NODE: label_value(node.spec.node_name),
        LABEL_SPEC_HASH: spec_hash,
    }
    if generation is not None:
        labels[LABEL_GENERATION] = str(generation)
    if revision:
        labels[LABEL_REVISION] = label_value(revision)
    if owner_uid:
        labels[LABEL_OWNER_UID] = label_value(owner_uid)
    document = {"apiVersion": node.api_version, "kind": node.kind,
                "metadata": {"name": node.name}, "spec": node.spec_dict()}
    mounts = agent_container.mounts(renderer, settings.activate)
    has_probes = any(i.probes for i in node.spec.interfaces)
    container = {
        "name": "agent",
        "image": settings.image,
        "command": list(agent_container.COMMAND),
        "args": agent_container.args(job_type, renderer, settings.activate),
        "env": [
            {"name": agent_container.ENV_NODE, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": agent_container.ENV_CONFIG, "value": json.dumps(document, separators=(",", ":"))},
        ],
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 0,  # writes root-owned files under /etc on the node
            # NET_ADMIN: rename NICs by MAC, read/set links; NET_RAW only when the node file has probes (ping)
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", *(["NET_RAW"] if has_probes else [])]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": agent_container.TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [
            {"name": m.name, "mountPath": m.path, **({"readOnly": True} if m.read_only else {})} for m in mounts
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
                    "volumes": [{"name": m.name, "hostPath": {"path": m.path, "type": m.host_type}} for m in mounts],
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
