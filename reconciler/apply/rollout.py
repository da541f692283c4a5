"""Node rollout: one Job per desired change of a node, one Job per host at a time, scoped budgets.

One ``step`` per reconcile cycle, never blocking:
- every desired change has an identity (the custom resource's uid and generation, the spec hash,
  the ``multinic.io/retry`` request, the automatic attempt); the Job's name is derived from it, and
  a node is applied only when its status records the Job of its *current* identity as Ready. A
  change back to an earlier spec is a new generation, so it runs a new Job;
- a finished Job of the current identity is read once (its pod's termination message holds the
  agent's JSON result) and becomes the node's status; a Job that finished without a readable
  result is Failed, never Ready;
- one Job per host (Kubernetes node) at a time, apply and cleanup alike: a node whose host has a
  Job running waits for it;
- a rollout is identified by the config revision that started it: ``maxFailures`` counts the
  failures of this rollout only, a new revision starts a new budget. A failed node is retried when
  its spec changes, when its ``multinic.io/retry`` annotation gets a new value, and automatically
  with backoff when the failure was transient (deadline exceeded, eviction, image pull: the agent
  never reported), never when the agent itself failed or rolled back;
- ``rollout.suspend`` (repo-wide) and the annotation ``multinic.io/suspend: "true"`` (per node)
  pause new Jobs; the nodes that wait show Suspended. ``rollout.canary: N`` runs N nodes of a
  rollout first and the rest only once those are Ready;
- a removed node first gets a cleanup Job (``reconciler agent remove``) and its CR is deleted once
  that succeeded, unless its spec said ``onRemove: orphan``, the Kubernetes node is gone, or
  another node file now names the same host (a rename: the host is handed over, not wiped). A
  ``spec.nodeName`` change cleans the old host before the new one is configured;
- host drift (``drift.interval`` in ``reconciler.yaml``): a node applied at its current spec gets a
  verify Job (``reconciler agent verify``, the apply Job's spec and mounts) once per interval, at a
  stable per-node offset within it, after the apply Jobs in the same ``maxParallel`` slots and
  never while another Job runs on its host. Its result is read once: in sync (the time is
  recorded), or drifted: the node shows Drifted (``drift.policy: report``) or gets a new apply Job
  whose identity names the verify Job that found the drift (``repair``).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from reconciler.config.models import DriftSettings, NodeConfig, RolloutSettings
from reconciler.kube import jobs, objects
from reconciler.kube.client import Kube, KubeError
from reconciler.nodejob.renderers import RendererName, select
from reconciler.nodejob.result import AgentResult
from reconciler.plan.changeset import Change
from reconciler.status.states import NodeStateName as State  # the one vocabulary of states

log = logging.getLogger(__name__)

ANNOTATION_RETRY = "multinic.io/retry"  # any new value: run the node's Job again (like Flux's requestedAt)
ANNOTATION_SUSPEND = "multinic.io/suspend"  # "true": no new Jobs for this node
LABEL_CANARY = "multinic.io/canary"  # "true": chosen first for rollout.canary
READ_NODES_OFF_IMAGE = {"ubuntu": "Ubuntu", "rhel": "Red Hat Enterprise Linux 9"}  # rbac.readNodes: false
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(minutes=15)
# Why a pod never produced an agent result, when that is worth an automatic retry.
_TRANSIENT_JOB = {"DeadlineExceeded"}
_TRANSIENT_POD = {"Evicted", "Preempting", "DeletionByTaintManager", "TerminationByKubelet"}
_TRANSIENT_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                      "CreateContainerError", "CreateContainerConfigError"}


@dataclass(frozen=True)
class Hold:
    """A node the pipeline keeps from getting a new Job this cycle, and why (e.g. its Proxmox VM's
    NICs differ from the file). ``waiting``: the hold lifts by itself once an answer arrives (state
    ``waiting``); otherwise the file or the VM must change (state ``held``). A Job already running
    or a spec already applied is not affected."""

    message: str
    waiting: bool = False


@dataclass(frozen=True)
class DriftFound:
    """What a finished verify Job reported (read once, then recorded in ``status.drift``)."""

    job: str
    at: str  # when it checked (the Job's completion, RFC 3339)
    outcome: Literal["in-sync", "drifted", "failed"]
    message: str  # what differs (drifted) or why the check failed
    files: tuple[str, ...] = ()
    result: AgentResult | None = None


@dataclass
class NodeState:
    name: str  # CR name (= file stem)
    state: State
    spec_hash: str
    job: str | None = None
    revision: str | None = None  # the config commit the (last) Job carried
    result: AgentResult | None = None
    message: str = ""
    changed: bool = False  # moved to this state during this step (for Events)
    host: str | None = None  # the Kubernetes node this object's Jobs wrote to (status.nodeName)
    attempt: int = 0  # automatic retries of the current change so far
    next_retry: str | None = None  # when a transient failure is retried (RFC 3339)
    rollout: str | None = None  # the revision whose rollout this state belongs to
    drift: DriftFound | None = None  # a verify Job's result read in this step
    repair: str | None = None  # the verify Job whose drift this node's apply Job repairs (status.drift.repair)

    @property
    def transient(self) -> bool:
        return self.next_retry is not None


@dataclass
class RolloutReport:
    nodes: dict[str, NodeState] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)  # job names started in this step
    running: int = 0
    failures: int = 0  # failed nodes of this rollout
    stalled: bool = False
    suspended: bool = False  # rollout.suspend
    revision: str | None = None  # the rollout's identity
    notes: list[str] = field(default_factory=list)  # rollout-wide findings (e.g. Nodes not readable)

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
    uid: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def identity(cr: LiveNode, digest: str, attempt: int = 0, repair: str | None = None) -> str:
    """What makes a desired change distinct: the Job's name is derived from it. ``repair``: the
    verify Job whose drift this apply Job repairs (default: the one ``status.drift.repair`` names)."""
    retry = cr.annotations.get(ANNOTATION_RETRY, "")
    repair = _repair_of(cr) if repair is None else repair
    base = f"{cr.uid or cr.name}/{cr.generation}/{digest}/{retry}/{attempt}"
    return f"{base}/repair:{repair}" if repair else base


def _repair_of(cr: LiveNode) -> str:
    drift = cr.status.get("drift")
    return str(drift.get("repair") or "") if isinstance(drift, dict) else ""


@dataclass
class _Step:
    """Bookkeeping of one step."""

    kube: Kube
    settings: RolloutSettings
    job_settings: jobs.JobSettings
    revision: str | None
    now: datetime
    report: RolloutReport
    existing: dict[str, dict[str, Any]]
    busy: dict[str, str]  # host -> the Job running there
    cluster_nodes: dict[str, dict[str, Any]] | None = None  # None: not readable (rbac.readNodes: false)
    nodes_listed: bool = False

    def nodes(self) -> dict[str, dict[str, Any]] | None:
        if not self.nodes_listed:
            self.nodes_listed = True
            try:
                self.cluster_nodes = {n["metadata"]["name"]: n for n in self.kube.list_nodes()}
            except KubeError as exc:
                if exc.status != 403:
                    raise
                self.cluster_nodes = None
                self.report.notes.append("Kubernetes Nodes are not readable (rbac.readNodes: false): node files "
                                         "need an explicit spec.osFamily")
        return self.cluster_nodes

    def slot_free(self) -> bool:
        return self.report.running < self.settings.max_parallel

    def start(self, manifest: dict[str, Any], host: str) -> bool:
        """Create the Job; True when it exists afterwards (created now or found by name)."""
        name = manifest["metadata"]["name"]
        created = self.kube.create_job(manifest)
        if created is not None:
            self.report.started.append(name)
        self.report.running += 1
        self.busy[host] = name
        return created is not None


def step(kube: Kube, nodes: dict[str, NodeConfig], live: dict[str, LiveNode], removals: Iterable[Change], *,
         settings: RolloutSettings, job_settings: jobs.JobSettings, revision: str | None,
         now: datetime | None = None, held: Mapping[str, Hold] | None = None,
         drift: DriftSettings | None = None) -> RolloutReport:
    report = RolloutReport(revision=revision, suspended=settings.suspend)
    existing = {j["metadata"]["name"]: j for j in kube.list_jobs(jobs.JOB_SELECTOR)}
    busy: dict[str, str] = {}
    for job in existing.values():
        if jobs.job_state(job) == "running":
            report.running += 1
            host = (job["metadata"].get("annotations") or {}).get(jobs.ANNOTATION_NODE, "")
            busy[host] = job["metadata"]["name"]
    run = _Step(kube, settings, job_settings, revision, now or datetime.now(UTC), report, existing, busy)
    # Which desired object names each host (renames hand a host over instead of wiping it).
    claimed = {node.spec.node_name: name for name, node in nodes.items() if name in live}

    candidates, verify = _sort(run, nodes, live, held, drift)
    report.failures = sum(1 for s in report.nodes.values() if s.state == "failed" and s.rollout == revision)
    canaries = _canaries(settings, report, candidates, live)

    for candidate in candidates:
        report.nodes[candidate[0].name] = _advance(run, candidate, canaries, claimed, busy)

    if drift is not None and verify:
        _start_checks(run, drift, sorted(verify, key=lambda item: (item[0], item[1].name)))
    for change in removals:
        if change.kind == "MultiNicNodeConfig":
            report.nodes[change.name] = _remove(run, change, live.get(change.name), claimed)
    return report


def _sort(run: _Step, nodes: dict[str, NodeConfig], live: dict[str, LiveNode], held: Mapping[str, Hold] | None,
          drift: DriftSettings | None) -> tuple[list[Candidate], list[tuple[float, NodeConfig, LiveNode, str]]]:
    """Each node's state when it needs no Job (into the report), else a candidate for one; and the
    nodes due a drift check."""
    report, revision = run.report, run.revision
    checking = drift is not None and drift.interval_seconds is not None
    candidates: list[Candidate] = []
    verify: list[tuple[float, NodeConfig, LiveNode, str]] = []  # (last check, ...) of nodes due a drift check
    for name in sorted(nodes):
        node, cr = nodes[name], live.get(name)
        if cr is None:
            continue  # its CR could not be applied this cycle; nothing to roll out
        digest = objects.spec_hash(cr.spec)
        state, attempt, retry, repairing = _known_state(run, node, cr, digest)
        if state is not None and drift is not None and state.state in ("applied", "drifted") and not state.changed:
            found = _verified(run, node, cr, digest) if checking else None
            if found is not None:
                state = _after_check(state, found)
            if state.state == "drifted" and drift.policy == "repair":
                token = found.job if found is not None else str((cr.status.get("drift") or {}).get("job") or "")
                if token and token != _repair_of(cr) and not (held and name in held):
                    candidates.append((node, cr, digest, 0, True, token, found))
                    continue
            if checking and found is None:
                last = _due(drift, cr, run.now)
                if last is not None:
                    verify.append((last, node, cr, digest))
        if state is None and held and name in held:
            hold = held[name]
            report.nodes[name] = NodeState(name, "waiting" if hold.waiting else "held", digest, message=hold.message,
                                           rollout=revision)
        elif state is None:
            candidates.append((node, cr, digest, attempt, retry, _repair_of(cr) if repairing else None, None))
        else:
            report.nodes[name] = state
    return candidates, verify


def _advance(run: _Step, candidate: Candidate, canaries: Mapping[str, str], claimed: Mapping[str, str],
             busy: Mapping[str, str]) -> NodeState:
    """What happens to a node that needs a Job this cycle: held back (suspended, stalled, canary,
    a busy host, no slot, no renderer), its old host cleaned first, or its Job started."""
    kube, settings, job_settings, report, revision = run.kube, run.settings, run.job_settings, run.report, run.revision
    node, cr, digest, attempt, retry, repair, found = candidate
    name = node.name
    host = node.spec.node_name
    ident = identity(cr, digest, attempt, repair)
    job_name = jobs.job_name("apply", host, ident)
    kept_host = cr.status.get("nodeName") or None
    # A repair re-applies the spec the node already had: it keeps that rollout, its budget and canaries.
    node_rollout = (cr.status.get("appliedRevision") or revision) if repair else revision

    def waiting(state: State, message: str, *, job: str | None = None, changed: bool = False) -> NodeState:
        return NodeState(name, state, digest, job, message=message, changed=changed, host=kept_host,
                         attempt=attempt, rollout=node_rollout, drift=found, repair=repair)
    if settings.suspend or cr.annotations.get(ANNOTATION_SUSPEND, "").lower() == "true":
        why = ("rollout.suspend in reconciler.yaml" if settings.suspend
               else f"annotation {ANNOTATION_SUSPEND} on this node")
        return waiting("suspended", f"rollout suspended ({why})", changed=True)
    if not retry and report.failures >= max(1, settings.max_failures):  # 0: stop at the first failure
        report.stalled = True
        return waiting("stalled", (
            f"rollout of revision {_short(revision)} stopped after {report.failures} failed node(s) "
            f"(maxFailures {settings.max_failures})"))
    behind_canary = None if repair else canaries.get(name)
    if behind_canary is not None:
        state_name: State = "stalled" if behind_canary.startswith("canary") else "pending"
        report.stalled = report.stalled or state_name == "stalled"
        return waiting(state_name, behind_canary)
    # A nodeName change: the old host is cleaned first (unless another node file names it now).
    old_host = cr.status.get("nodeName")
    if old_host and old_host != host and claimed.get(old_host) in (None, name):
        moved = _move(run, node, cr, digest, old_host, attempt)
        if moved.state != "removed":
            return moved
        kept_host = None
    other = busy.get(host)
    if other is not None and other != job_name:
        return waiting("pending", f"waiting for the running Job {other} on node {host} to finish", job=other)
    if not run.slot_free():
        return waiting("pending", (
            f"waiting for a rollout slot ({report.running}/{settings.max_parallel} node Jobs running)"))
    renderer, problem = _renderer(run, node)
    if renderer is None:
        return waiting("unschedulable", problem, changed=True)
    job = jobs.node_job("apply", node, namespace=kube.namespace, identity=ident, spec_hash=digest,
                        generation=cr.generation, revision=node_rollout if repair else revision,
                        renderer=renderer, settings=job_settings, owner_uid=cr.uid)
    try:
        created = run.start(job, host)
    except KubeError as exc:
        return waiting("pending", f"could not create Job: {exc}")
    # The same words as a later cycle's "running": the status must not change just because a
    # cycle passed (that would be one needless status write per started Job).
    return NodeState(name, "running", digest, job_name, node_rollout, message=f"Job {job_name} running",
                     changed=created, host=host, attempt=attempt, rollout=node_rollout, drift=found, repair=repair)



def _short(revision: str | None) -> str:
    return revision[:12] if revision else "(working tree)"


def _known_state(run: _Step, node: NodeConfig, cr: LiveNode,
                 digest: str) -> tuple[NodeState | None, int, bool, bool]:
    """The node's state when no new Job is needed, else None with the attempt to run, whether it
    is a retry (a retry is not held back by the failure budget) and whether it is a drift repair
    (``status.drift.repair`` names a verify Job whose repair has not run yet)."""
    name = node.name
    status = cr.status
    host = node.spec.node_name
    attempt = int(status.get("attempt") or 0)
    if status.get("job") != jobs.job_name("apply", host, identity(cr, digest, attempt)):
        attempt = 0  # a new desired change (or a new retry request) starts from the first attempt
    ident = identity(cr, digest, attempt)
    job_name = jobs.job_name("apply", host, ident)
    recorded = status.get("job") == job_name
    on = status.get("nodeName") or host
    if recorded and status.get("phase") in ("Ready", "Failed", "Drifted"):
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        message = ready.get("message") or status.get("lastError") or ""
        if status["phase"] in ("Ready", "Drifted"):
            known: State = "applied" if status["phase"] == "Ready" else "drifted"
            return NodeState(name, known, digest, job_name, status.get("appliedRevision"), message=message,
                             rollout=status.get("attemptedRevision"), host=on, attempt=attempt), attempt, False, False
        next_retry = status.get("nextRetry")
        if next_retry and _parse(next_retry) <= run.now:
            return None, attempt + 1, True, False  # transient failure, backoff over: the next attempt
        return NodeState(name, "failed", digest, job_name, status.get("attemptedRevision"), message=message,
                         next_retry=next_retry, rollout=status.get("attemptedRevision"),
                         host=on, attempt=attempt), attempt, False, False
    job = run.existing.get(job_name)
    if job is not None:
        revision = (job["metadata"].get("labels") or {}).get(jobs.LABEL_REVISION)
        phase = jobs.job_state(job)
        if phase == "running":
            return NodeState(name, "running", digest, job_name, revision, message=f"Job {job_name} running",
                             rollout=revision, host=on, attempt=attempt), attempt, False, False
        result, problem, transient = _outcome(run.kube, job, job_name)
        if phase == "succeeded" and result is not None and result.outcome in ("applied", "unchanged"):
            message = f"applied at revision {revision[:12]}" if revision else "applied"
            return NodeState(name, "applied", digest, job_name, revision, result, message, changed=True,
                             rollout=revision, host=on, attempt=attempt), attempt, False, False
        message = problem or _failure_message(job, result)
        next_retry = None
        if transient and attempt < run.settings.retries:
            delay = min(RETRY_BASE * (2 ** attempt), RETRY_CAP)
            next_retry = (run.now + delay).strftime("%Y-%m-%dT%H:%M:%SZ")
            message += f" (transient; retry {attempt + 1}/{run.settings.retries} at {next_retry})"
        return NodeState(name, "failed", digest, job_name, revision, result, message, changed=True,
                         next_retry=next_retry, rollout=revision, host=on, attempt=attempt), attempt, False, False
    # No Job of the current identity: a candidate. A request on the retry annotation (or a
    # retried attempt) is a retry of a node that failed.
    retry = attempt > 0 or (status.get("phase") == "Failed" and status.get("specHash") == digest)
    # A repair decided in an earlier cycle whose Job has not started yet: same spec, same generation.
    repair = (bool(_repair_of(cr)) and status.get("specHash") == digest
              and status.get("observedGeneration") == cr.generation)
    return None, attempt, retry or repair, repair


# -- host drift ----------------------------------------------------------------------------------

def _offset(cr: LiveNode, interval: int) -> int:
    """The node's stable place within the drift interval (so a fleet's checks are spread over it)."""
    return int(hashlib.sha256((cr.uid or cr.name).encode()).hexdigest()[:12], 16) % interval


def _period(drift: DriftSettings, cr: LiveNode, now: datetime) -> tuple[int, float]:
    """(index, start) of the node's current drift period: periods start at its offset."""
    interval = drift.interval_seconds or 0
    offset = _offset(cr, interval)
    index = math.floor((now.timestamp() - offset) / interval)
    return index, index * interval + offset


def _due(drift: DriftSettings, cr: LiveNode, now: datetime) -> float | None:
    """When the node was last checked (verified, or applied: an apply verifies too), if that is
    before the start of its current drift period (a check is due); else None."""
    last = None
    recorded = cr.status.get("drift")
    if isinstance(recorded, dict) and recorded.get("lastVerified"):
        last = _parse(str(recorded["lastVerified"])).timestamp()
    ready: dict[str, Any] = next((c for c in cr.status.get("conditions") or [] if c.get("type") == "Ready"), {})
    if ready.get("lastTransitionTime"):
        applied = _parse(str(ready["lastTransitionTime"])).timestamp()
        last = applied if last is None else max(last, applied)
    _, start = _period(drift, cr, now)
    if last is not None and last >= start:
        return None
    return last if last is not None else 0.0


def _verify_identity(drift: DriftSettings, cr: LiveNode, digest: str, now: datetime) -> str:
    index, _ = _period(drift, cr, now)
    return f"{cr.uid or cr.name}/verify/{cr.generation}/{digest}/{drift.interval_seconds}/{index}"


def _verified(run: _Step, node: NodeConfig, cr: LiveNode, digest: str) -> DriftFound | None:
    """The result of this node's newest verify Job (for its current spec) if it finished and its
    result is not recorded yet; read once."""
    host = node.spec.node_name
    owner = jobs.label_value(cr.uid or cr.name)
    mine = [j for j in run.existing.values()
            if (j["metadata"].get("labels") or {}).get(jobs.LABEL_TYPE) == "verify"
            and (j["metadata"].get("annotations") or {}).get(jobs.ANNOTATION_NODE) == host
            and (j["metadata"].get("labels") or {}).get(jobs.LABEL_OWNER_UID) == owner
            and (j["metadata"].get("labels") or {}).get(jobs.LABEL_SPEC_HASH) == digest
            and (j["metadata"].get("labels") or {}).get(jobs.LABEL_GENERATION) == str(cr.generation)]
    if not mine:
        return None
    job = max(mine, key=lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"]))
    name = job["metadata"]["name"]
    recorded = cr.status.get("drift")
    if (isinstance(recorded, dict) and recorded.get("job") == name) or jobs.job_state(job) == "running":
        return None
    status = job.get("status") or {}
    at = status.get("completionTime") or next(
        (c.get("lastTransitionTime") for c in status.get("conditions") or []
         if c.get("type") in ("Complete", "Failed") and c.get("status") == "True" and c.get("lastTransitionTime")),
        None) or run.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    result, problem, _ = _outcome(run.kube, job, name)
    if jobs.job_state(job) == "succeeded" and result is not None and result.outcome in ("unchanged", "drifted"):
        if result.outcome == "unchanged":
            return DriftFound(name, at, "in-sync", "in sync with its spec", result=result)
        differs = [f"{i.name}: {i.error or 'differs'}" for i in result.interfaces if i.state == "drifted"]
        if result.files:
            differs.insert(0, "files differ: " + ", ".join(result.files))
        # No Job name or time in the words: a drift that persists reads the same at every check.
        message = "drift found: " + ("; ".join(differs) or "no details")
        return DriftFound(name, at, "drifted", message, tuple(result.files), result)
    why = problem or _failure_message(job, result)
    return DriftFound(name, at, "failed", f"the drift check could not run: {why}", result=result)


def _after_check(state: NodeState, found: DriftFound) -> NodeState:
    """The node's state once a verify Job's result is read: Drifted, or applied (in sync again)."""
    if found.outcome == "drifted":
        return NodeState(state.name, "drifted", state.spec_hash, state.job, state.revision, message=found.message,
                         changed=state.state != "drifted", host=state.host, attempt=state.attempt,
                         rollout=state.rollout, drift=found)
    if found.outcome == "in-sync":
        message = f"applied at revision {state.revision[:12]}" if state.revision else "applied"
        return NodeState(state.name, "applied", state.spec_hash, state.job, state.revision, message=message,
                         changed=False, host=state.host, attempt=state.attempt, rollout=state.rollout, drift=found)
    return NodeState(state.name, state.state, state.spec_hash, state.job, state.revision, message=state.message,
                     host=state.host, attempt=state.attempt, rollout=state.rollout, drift=found)


def _start_checks(run: _Step, drift: DriftSettings, due: list[tuple[float, NodeConfig, LiveNode, str]]) -> None:
    """Verify Jobs for the nodes due a drift check (longest unchecked first), in the slots the
    apply Jobs left, never on a host with a Job running, never while suspended."""
    if run.settings.suspend:
        return
    for _, node, cr, digest in due:
        if not run.slot_free():
            return
        host = node.spec.node_name
        if host in run.busy or cr.annotations.get(ANNOTATION_SUSPEND, "").lower() == "true":
            continue
        if (cr.status.get("nodeName") or host) != host:
            continue  # a nodeName move is under way
        renderer, _ = _renderer(run, node)
        if renderer is None:
            continue
        ident = _verify_identity(drift, cr, digest, run.now)
        if jobs.job_name("verify", host, ident) in run.existing:
            continue  # this period's check ran already (its result was read)
        manifest = jobs.node_job("verify", node, namespace=run.kube.namespace, identity=ident, spec_hash=digest,
                                 generation=cr.generation, revision=cr.status.get("appliedRevision"),
                                 renderer=renderer, settings=run.job_settings, owner_uid=cr.uid or cr.name)
        try:
            run.start(manifest, host)
        except KubeError as exc:
            log.warning("%s: could not create the verify Job: %s", node.name, exc)


def _parse(stamp: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# node, CR, spec hash, attempt, is a retry, the verify Job whose drift it repairs, that Job's result
Candidate = tuple[NodeConfig, LiveNode, str, int, bool, str | None, DriftFound | None]


def _canaries(settings: RolloutSettings, report: RolloutReport, candidates: list[Candidate],
              live: dict[str, LiveNode]) -> dict[str, str]:
    """Candidates held back by ``rollout.canary`` -> why. The canaries of a rollout are the first
    N of its nodes (labelled ``multinic.io/canary: "true"`` first, then by name); the others wait
    until every canary is Ready in this rollout, and stall when one failed."""
    if settings.canary <= 0 or not candidates:
        return {}
    revision = report.revision
    members = {c[0].name for c in candidates if not c[5]}  # a drift repair is no member of a rollout
    members |= {name for name, s in report.nodes.items()
                if s.rollout == revision and s.state in ("applied", "running", "failed")}

    def order(name: str) -> tuple[bool, str]:
        cr = live.get(name)
        return (not (cr is not None and cr.labels.get(LABEL_CANARY, "").lower() == "true"), name)

    canaries = sorted(members, key=order)[: settings.canary]
    states = {name: report.nodes.get(name) for name in canaries}
    failed = [n for n, s in states.items() if s is not None and s.state == "failed"]
    waiting = [n for n, s in states.items() if s is None or s.state != "applied"]
    if failed:
        why = f"canary node(s) {', '.join(failed)} failed; the rollout of the other nodes is stopped"
    elif waiting:
        why = f"waiting for the canary node(s) {', '.join(waiting)} to be Ready"
    else:
        return {}
    return {c[0].name: why for c in candidates if c[0].name not in canaries}


def _outcome(kube: Kube, job: dict[str, Any], job_name: str) -> tuple[AgentResult | None, str, bool]:
    """The agent's result, why there is none, and whether the failure is transient (the agent
    never reported: deadline exceeded, evicted pod, image not pulled)."""
    pods = kube.list_pods(f"job-name={job_name}")
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    transient = any(c.get("type") == "Failed" and c.get("status") == "True" and c.get("reason") in _TRANSIENT_JOB
                    for c in (job.get("status") or {}).get("conditions") or [])
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("reason") in _TRANSIENT_POD:
            transient = True
        for container in status.get("containerStatuses") or []:
            if ((container.get("state") or {}).get("waiting") or {}).get("reason") in _TRANSIENT_WAITING:
                transient = True
    for pod in reversed(pods):
        message = jobs.termination_message(pod)
        if message:
            try:
                return AgentResult.model_validate_json(message), "", False
            except ValidationError:
                return None, f"unreadable agent result: {message[:200]}", transient
    return None, "" if transient or jobs.job_state(job) == "failed" else "the Job finished without an agent result", \
        transient


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


def _renderer(run: _Step, node: NodeConfig) -> tuple[RendererName | None, str]:
    cluster_nodes = run.nodes()
    if cluster_nodes is None:  # rbac.readNodes: false: the file must say which OS the node runs
        if node.spec.os_family == "auto":
            return None, (f"set spec.osFamily for node {node.spec.node_name}: the reconciler may not read "
                          "Kubernetes Nodes (rbac.readNodes: false), so it cannot detect the OS")
        # Without the Node's osImage the release is unknown: rhel means a current one (9+, keyfiles).
        return select(READ_NODES_OFF_IMAGE[node.spec.os_family], node.spec.os_family).renderer, ""
    k8s_node = cluster_nodes.get(node.spec.node_name)
    if k8s_node is None:
        return None, f"Kubernetes node {node.spec.node_name} not found"
    os_image = ((k8s_node.get("status") or {}).get("nodeInfo") or {}).get("osImage", "")
    selection = select(os_image, node.spec.os_family)
    if selection.renderer is None:
        return None, f"node {node.spec.node_name}: {selection.reason}"
    return selection.renderer, ""


def _on_host(node: NodeConfig, host: str) -> NodeConfig:
    """``node`` as it was on ``host`` (the cleanup Job of a nodeName change runs there)."""
    return NodeConfig.model_validate({"metadata": {"name": node.name}, "spec": {**node.spec_dict(), "nodeName": host}})


def _cleanup(run: _Step, name: str, node: NodeConfig, ident: str, digest: str, *,
             kind: Literal["removing", "pending"]) -> tuple[NodeState | None, AgentResult | None, str]:
    """Drive the cleanup Job of ``node`` (on its nodeName). Returns the state while it is not done
    (None once it succeeded), with the result and the Job's name."""
    host = node.spec.node_name
    job_name = jobs.job_name("remove", host, ident)
    job = run.existing.get(job_name)
    if job is None:
        other = run.busy.get(host)
        if other is not None:
            return NodeState(name, kind, digest, other, host=host, message=(
                f"cleanup waits for the running Job {other} on node {host}")), None, job_name
        if run.settings.suspend:
            return NodeState(name, "suspended", digest, host=host, message=(
                "rollout suspended (rollout.suspend in reconciler.yaml): cleanup waits")), None, job_name
        if not run.slot_free():
            return NodeState(name, kind, digest, host=host,
                             message="waiting for a rollout slot for cleanup"), None, job_name
        renderer, problem = _renderer(run, node)
        if renderer is None:
            return NodeState(name, "remove-failed", digest, host=host, message=problem), None, job_name
        manifest = jobs.node_job("remove", node, namespace=run.kube.namespace, identity=ident, spec_hash=digest,
                                 generation=None, revision=run.revision, renderer=renderer,
                                 settings=run.job_settings)
        run.start(manifest, host)
        return NodeState(name, kind, digest, job_name, host=host, changed=True,
                         message=f"cleanup Job {job_name} running on node {host}"), None, job_name
    phase = jobs.job_state(job)
    if phase == "running":
        return NodeState(name, kind, digest, job_name, host=host,
                         message=f"cleanup Job {job_name} running on node {host}"), None, job_name
    result, problem, _ = _outcome(run.kube, job, job_name)
    if phase == "succeeded" and result is not None and result.outcome in ("removed", "unchanged"):
        return None, result, job_name
    return NodeState(name, "remove-failed", digest, job_name, result=result, host=host, changed=True,
                     message=problem or _failure_message(job, result)), result, job_name


def _move(run: _Step, node: NodeConfig, cr: LiveNode, digest: str, old_host: str, attempt: int) -> NodeState:
    """A nodeName change: clean the old host first. ``removed`` once that is done (or when the
    old Kubernetes node is gone: nothing left to clean)."""
    cluster_nodes = run.nodes()
    if cluster_nodes is not None and old_host not in cluster_nodes:
        return NodeState(node.name, "removed", digest)
    old = _on_host(node, old_host)
    state, result, job_name = _cleanup(run, node.name, old, f"{cr.uid or cr.name}/move/{cr.generation}", digest,
                                       kind="pending")
    if state is None:
        return NodeState(node.name, "removed", digest, job_name, result=result)
    if state.state == "remove-failed":
        state.state = "failed"
        state.message = f"cleanup of the old node {old_host} failed: {state.message}"
        state.rollout = run.revision
    elif state.state == "pending":
        state.message = f"node moved from {old_host} to {node.spec.node_name}: {state.message}"
    state.host = old_host
    state.attempt = attempt
    return state


def _remove(run: _Step, change: Change, cr: LiveNode | None, claimed: dict[str, str]) -> NodeState:
    from reconciler.apply.crs import remove

    spec = change.live or {}
    digest = objects.spec_hash(spec)
    try:
        node = NodeConfig.model_validate({"metadata": {"name": change.name}, "spec": spec})
    except ValidationError:
        node = None
    done = NodeState(change.name, "removed", digest)
    # The host the files are on: where this object's last Job ran (its nodeName may have moved).
    host = ((cr.status.get("nodeName") if cr is not None else None) or (node.spec.node_name if node else None))
    if node is not None and host and host != node.spec.node_name:
        node = _on_host(node, host)
    heir = claimed.get(host or "")
    cluster_nodes = run.nodes() if node is not None and node.spec.on_remove != "orphan" and heir is None else {}
    gone = cluster_nodes is not None and node is not None and host not in cluster_nodes
    if node is None or node.spec.on_remove == "orphan" or heir is not None or gone:
        why = ("onRemove: orphan" if node is not None and node.spec.on_remove == "orphan"
               else f"node {host} handed over to {heir}" if heir is not None
               else "the Kubernetes node is gone")
        applied = remove(run.kube, change)
        done.message = f"custom resource deleted ({why}; no cleanup Job)"
        if not applied.ok:
            return NodeState(change.name, "remove-failed", digest, message=applied.error or "", changed=True)
        done.changed = True  # one Event says the object went away and why
        return done
    ident = f"{cr.uid if cr is not None and cr.uid else change.name}/remove/{digest}"
    state, result, job_name = _cleanup(run, change.name, node, ident, digest, kind="removing")
    if state is not None:
        return state
    applied = remove(run.kube, change)
    if not applied.ok:
        return NodeState(change.name, "remove-failed", digest, job_name, message=applied.error or "")
    done.job, done.result, done.changed = job_name, result, True
    done.message = "node files removed by the cleanup Job; custom resource deleted"
    return done
