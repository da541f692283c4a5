"""Node rollout: one Job per node per desired spec, kubernetes-nmstate-grade limits.

One ``step`` per reconcile cycle, never blocking:
- a node whose CR status already records its current spec hash as applied needs nothing;
- a Job for the current hash that finished is read once (its pod's termination message holds the
  agent's JSON result) and becomes the node's status;
- a node with any Job still running is not touched (a newer spec waits for it);
- new Jobs start only while fewer than ``maxParallel`` are running and fewer than
  ``maxFailures`` nodes have failed in this rollout (otherwise the rollout is Stalled);
- a node that failed keeps its failure until its spec changes (a newer commit supersedes it);
- a removed node first gets a cleanup Job (``reconciler agent remove``) and its CR is deleted once
  that succeeded, unless its spec said ``onRemove: orphan`` or the Kubernetes node is gone.

Job names are deterministic (node + spec hash), so a restart mid-rollout finds the Jobs it
started instead of starting them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from reconciler.config.models import NodeConfig, RolloutSettings
from reconciler.kube import jobs, objects
from reconciler.kube.client import Kube, KubeError
from reconciler.nodejob.renderers import RendererName, select
from reconciler.nodejob.result import AgentResult
from reconciler.plan.changeset import Change
from reconciler.status.states import NodeStateName as State  # the one vocabulary of states

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Hold:
    """A node the pipeline keeps from getting a new Job this cycle, and why (e.g. its Proxmox VM's
    NICs differ from the file). ``waiting``: the hold lifts by itself once an answer arrives (state
    ``waiting``); otherwise the file or the VM must change (state ``held``). A Job already running
    or a spec already applied is not affected."""

    message: str
    waiting: bool = False


@dataclass
class NodeState:
    name: str  # CR name (= file stem)
    state: State
    spec_hash: str
    job: str | None = None
    revision: str | None = None  # the commit the (last) Job carried
    result: AgentResult | None = None
    message: str = ""
    changed: bool = False  # moved to this state during this step (for Events)


@dataclass
class RolloutReport:
    nodes: dict[str, NodeState] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)  # job names started in this step
    running: int = 0
    failures: int = 0
    stalled: bool = False

    @property
    def in_flight(self) -> bool:
        return self.running > 0 or any(n.state in ("pending", "removing") for n in self.nodes.values())


@dataclass(frozen=True)
class LiveNode:
    """What the rollout needs to know of a node's custom resource."""

    name: str
    spec: dict[str, Any]
    generation: int | None
    status: dict[str, Any]


def step(kube: Kube, nodes: dict[str, NodeConfig], live: dict[str, LiveNode], removals: Iterable[Change], *,
         settings: RolloutSettings, job_settings: jobs.JobSettings, revision: str | None,
         held: Mapping[str, Hold] | None = None) -> RolloutReport:
    report = RolloutReport()
    existing = {j["metadata"]["name"]: j for j in kube.list_jobs(jobs.JOB_SELECTOR)}
    running_by_node: dict[str, str] = {}
    for job in existing.values():
        if jobs.job_state(job) == "running":
            report.running += 1
            node_label = (job["metadata"].get("annotations") or {}).get(jobs.ANNOTATION_NODE, "")
            running_by_node[node_label] = job["metadata"]["name"]

    candidates: list[tuple[NodeConfig, str, LiveNode]] = []
    for name in sorted(nodes):
        node, cr = nodes[name], live.get(name)
        if cr is None:
            continue  # its CR could not be applied this cycle; nothing to roll out
        digest = objects.spec_hash(cr.spec)
        state = _known_state(kube, node, cr, digest, existing, running_by_node)
        if state is None and held and name in held:
            hold = held[name]
            report.nodes[name] = NodeState(name, "waiting" if hold.waiting else "held", digest, message=hold.message)
        elif state is None:
            candidates.append((node, digest, cr))
        else:
            report.nodes[name] = state
    report.failures = sum(1 for s in report.nodes.values() if s.state == "failed")

    cluster_nodes: dict[str, dict[str, Any]] | None = None
    wanted_removals = [c for c in removals if c.kind == "MultiNicNodeConfig"]
    if candidates or wanted_removals:
        cluster_nodes = {n["metadata"]["name"]: n for n in kube.list_nodes()}

    for node, digest, cr in candidates:
        name = node.name
        if report.failures >= settings.max_failures:
            report.stalled = True
            report.nodes[name] = NodeState(name, "stalled", digest, message=(
                f"rollout stopped after {report.failures} failed node(s) (maxFailures {settings.max_failures})"))
            continue
        if report.running >= settings.max_parallel:
            report.nodes[name] = NodeState(name, "pending", digest, message=(
                f"waiting for a rollout slot ({report.running}/{settings.max_parallel} node Jobs running)"))
            continue
        renderer, problem = _renderer(node, cluster_nodes or {})
        if renderer is None:
            report.nodes[name] = NodeState(name, "unschedulable", digest, message=problem, changed=True)
            continue
        job = jobs.node_job("apply", node, namespace=kube.namespace, spec_hash=digest, generation=cr.generation,
                            revision=revision, renderer=renderer, settings=job_settings)
        job_name = job["metadata"]["name"]
        try:
            created = kube.create_job(job)
        except KubeError as exc:
            report.nodes[name] = NodeState(name, "pending", digest, message=f"could not create Job: {exc}")
            continue
        if created is not None:
            report.started.append(job_name)
        report.running += 1
        # The same words as a later cycle's "running": the status must not change just because a
        # cycle passed (that would be one needless status write per started Job).
        report.nodes[name] = NodeState(name, "running", digest, job_name, revision,
                                       message=f"Job {job_name} running", changed=created is not None)

    for change in wanted_removals:
        report.nodes[change.name] = _remove(kube, change, existing, cluster_nodes or {}, report,
                                            settings=settings, job_settings=job_settings)
    return report


def _known_state(kube: Kube, node: NodeConfig, cr: LiveNode, digest: str, existing: dict[str, dict[str, Any]],
                 running_by_node: dict[str, str]) -> NodeState | None:
    """The node's state when no new Job is needed; None when it is a candidate for one."""
    name = node.name
    status = cr.status
    if status.get("specHash") == digest and status.get("phase") in ("Ready", "Failed"):
        state: State = "applied" if status["phase"] == "Ready" else "failed"
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        return NodeState(name, state, digest, status.get("job"), status.get("appliedRevision"),
                         message=ready.get("message") or status.get("lastError") or "")
    job_name = jobs.job_name("apply", node.spec.node_name, digest)
    job = existing.get(job_name)
    if job is not None:
        revision = (job["metadata"].get("labels") or {}).get(jobs.LABEL_REVISION)
        phase = jobs.job_state(job)
        if phase == "running":
            return NodeState(name, "running", digest, job_name, revision, message=f"Job {job_name} running")
        result, problem = _result(kube, job_name)
        if phase == "succeeded" and (result is None or result.outcome in ("applied", "unchanged")):
            # The exit code is the contract; the result, when there is one, adds per-interface detail.
            message = f"applied at revision {revision[:12]}" if revision else "applied"
            return NodeState(name, "applied", digest, job_name, revision, result, message, changed=True)
        message = problem or _failure_message(job, result)
        return NodeState(name, "failed", digest, job_name, revision, result, message, changed=True)
    other = running_by_node.get(node.spec.node_name)
    if other is not None:
        return NodeState(name, "pending", digest, other, message=f"waiting for the running Job {other} to finish")
    return None


def _result(kube: Kube, job_name: str) -> tuple[AgentResult | None, str]:
    pods = kube.list_pods(f"job-name={job_name}")
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    for pod in reversed(pods):
        message = jobs.termination_message(pod)
        if message:
            try:
                return AgentResult.model_validate_json(message), ""
            except ValidationError:
                return None, f"unreadable agent result: {message[:200]}"
    return None, ""


def _failure_message(job: dict[str, Any], result: AgentResult | None) -> str:
    if result is not None:
        errors = [f"{i.name}: {i.error}" for i in result.interfaces if i.error]
        if result.error:
            errors.insert(0, result.error)
        return f"agent {result.outcome}: " + ("; ".join(errors) or "no details")
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed":
            return f"Job failed: {condition.get('reason', '')} {condition.get('message', '')}".strip()
    return "Job failed without a result"


def _renderer(node: NodeConfig, cluster_nodes: dict[str, dict[str, Any]]) -> tuple[RendererName | None, str]:
    k8s_node = cluster_nodes.get(node.spec.node_name)
    if k8s_node is None:
        return None, f"Kubernetes node {node.spec.node_name} not found"
    os_image = ((k8s_node.get("status") or {}).get("nodeInfo") or {}).get("osImage", "")
    selection = select(os_image, node.spec.os_family)
    if selection.renderer is None:
        return None, f"node {node.spec.node_name}: {selection.reason}"
    return selection.renderer, ""


def _remove(kube: Kube, change: Change, existing: dict[str, dict[str, Any]],
            cluster_nodes: dict[str, dict[str, Any]], report: RolloutReport, *,
            settings: RolloutSettings, job_settings: jobs.JobSettings) -> NodeState:
    from reconciler.apply.crs import remove

    spec = change.live or {}
    digest = objects.spec_hash(spec)
    try:
        node = NodeConfig.model_validate({"metadata": {"name": change.name}, "spec": spec})
    except ValidationError:
        node = None
    done = NodeState(change.name, "removed", digest)
    if node is None or node.spec.on_remove == "orphan" or node.spec.node_name not in cluster_nodes:
        why = ("onRemove: orphan" if node is not None and node.spec.on_remove == "orphan"
               else "the Kubernetes node is gone")
        applied = remove(kube, change)
        done.message = f"custom resource deleted ({why}; no cleanup Job)"
        if not applied.ok:
            return NodeState(change.name, "remove-failed", digest, message=applied.error or "", changed=True)
        done.changed = True  # one Event says the object went away and why
        return done
    job_name = jobs.job_name("remove", node.spec.node_name, digest)
    job = existing.get(job_name)
    if job is None:
        if report.running >= settings.max_parallel:
            return NodeState(change.name, "removing", digest, message="waiting for a rollout slot for cleanup")
        renderer, problem = _renderer(node, cluster_nodes)
        if renderer is None:
            return NodeState(change.name, "remove-failed", digest, message=problem)
        manifest = jobs.node_job("remove", node, namespace=kube.namespace, spec_hash=digest, generation=None,
                                 revision=None, renderer=renderer, settings=job_settings)
        if kube.create_job(manifest) is not None:
            report.started.append(job_name)
        report.running += 1
        return NodeState(change.name, "removing", digest, job_name, message=f"cleanup Job {job_name} running",
                         changed=True)
    phase = jobs.job_state(job)
    if phase == "running":
        return NodeState(change.name, "removing", digest, job_name, message=f"cleanup Job {job_name} running")
    result, problem = _result(kube, job_name)
    if phase == "succeeded":
        applied = remove(kube, change)
        if not applied.ok:
            return NodeState(change.name, "remove-failed", digest, job_name, message=applied.error or "")
        done.job, done.result, done.changed = job_name, result, True
        done.message = "node files removed by the cleanup Job; custom resource deleted"
        return done
    return NodeState(change.name, "remove-failed", digest, job_name, result=result,
                     message=problem or _failure_message(job, result), changed=True)
