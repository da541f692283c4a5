"""Cluster registration through Git: verify each ``ProxmoxCluster`` and keep its CR status true.

The pipeline applies the CRs, then calls ``register_clusters`` once per cycle::

    outcomes = register_clusters(kube, desired, now=datetime.now(UTC))

A cluster is verified (``/version``, ``/cluster/status``, ``/nodes``) only when it is *due*:

* its spec changed since the last verification (``metadata.generation`` differs from the Ready
  condition's ``observedGeneration``), or it was never verified;
* ``lastVerified`` is older than ``spec.verifyInterval`` (a failed verification is retried after
  ``min(verifyInterval, FAILURE_RETRY)`` so that a fixed Secret is picked up soon);
* ``force`` is set.

Otherwise nothing is read from Proxmox, no Secret is read and no status is written. When a cluster
is verified, the status is patched only with the fields whose value changed; ``lastVerified``
(the time of the last verification, whatever its outcome: ``Ready`` says how it went) moves on
every verification, condition ``lastTransitionTime`` only when the condition's status flips.

Deregistration is the planner's business: a removed file is a delete (under the prune guard).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from reconciler.apply.proxmox.client import ClusterInfo, Privilege, ProxmoxClient
from reconciler.apply.proxmox.credentials import (
    ClientFactory,
    ClusterCredentials,
    client_for,
    read_credentials,
    scrubbed,
)
from reconciler.apply.proxmox.errors import ProxmoxError
from reconciler.config.models import ProxmoxCluster
from reconciler.config.repo import KIND_CLUSTER
from reconciler.config.validation import DesiredState
from reconciler.status import conditions
from reconciler.status.models import ConditionStatus

log = logging.getLogger(__name__)

READY = "Ready"
VERIFIED = "Verified"
FAILURE_RETRY = timedelta(minutes=1)
MAX_PARALLEL = 8

HEALTHY, DEGRADED, UNREACHABLE = "Healthy", "Degraded", "Unreachable"
# A failed verification's health names the kind of failure (the error's reason).
FAILURE_HEALTH = ("AuthenticationFailed", "TLSFailure", "CredentialsMissing", "Unreachable", "PermissionDenied",
                  "Timeout", "APIError", "InvalidConfiguration")
PHASE_READY, PHASE_FAILED = "Ready", "Failed"

# Status fields this module owns; every other status field (written by others) is left alone.
FACT_FIELDS = ("version", "release", "clusterName", "quorate", "nodeCount", "onlineNodes", "nodeNames")
OWNED_FIELDS = (
    *FACT_FIELDS,
    "health",
    "lastVerified",
    "tlsInsecure",
    "warnings",
    "conditions",
    "observedGeneration",
    "phase",
    "lastError",
)


SharedClients = Callable[[ProxmoxCluster, ClusterCredentials], ProxmoxClient]


class ClusterKube(Protocol):
    """What registration needs of ``reconciler.kube.client.Kube``."""

    def list_owned(self, kind: str) -> list[dict[str, Any]]: ...

    def read_secret(self, name: str) -> dict[str, bytes] | None: ...

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ClusterOutcome:
    """What one cycle did for one cluster."""

    name: str
    verified: bool  # Proxmox was asked this cycle
    due_reason: str | None  # why it was verified ("spec changed", "interval passed", ...); None: not due
    ready: bool | None  # None: not verified this cycle and no status yet (or no CR)
    reason: str | None  # Ready condition reason
    message: str | None
    status_written: bool
    status: dict[str, Any] | None  # the status after this cycle (owned fields)
    info: ClusterInfo | None = None
    write_error: str | None = None  # the status patch failed (e.g. the CR was deleted meanwhile)


# --- time (the one status helper's; kept under these names for callers) ----------------------


def format_time(moment: datetime) -> str:
    return conditions.timestamp(moment)


parse_time = conditions.parse_time


# --- when to verify ---------------------------------------------------------------------------


def ready_condition(status: Mapping[str, Any]) -> dict[str, Any] | None:
    found = conditions.get(status.get("conditions"), READY)
    return found.dump() if found is not None else None


def due_reason(cr: Mapping[str, Any], cluster: ProxmoxCluster, *, now: datetime, force: bool = False) -> str | None:
    """Why ``cluster`` must be verified now, or None when its status is still current."""
    if force:
        return "forced"
    status = cr.get("status") or {}
    generation = (cr.get("metadata") or {}).get("generation")
    condition = ready_condition(status)
    if condition is None:
        return "never verified"
    if generation is not None and condition.get("observedGeneration") != generation:
        return "spec changed"
    last = parse_time(status.get("lastVerified"))
    if last is None:
        return "never verified"
    interval = timedelta(seconds=max(cluster.spec.verify_interval_seconds, 1))
    if condition.get("status") != "True":
        interval = min(interval, FAILURE_RETRY)
    if now - last >= interval:
        return "interval passed" if condition.get("status") == "True" else "retrying after failure"
    return None


# --- status -----------------------------------------------------------------------------------


def health_and_warnings(cluster: ProxmoxCluster, info: ClusterInfo) -> tuple[str, list[str]]:
    warnings: list[str] = []
    degraded = False
    expected = cluster.spec.expected_node_count
    if expected is not None and info.node_count != expected:
        degraded = True
        warnings.append(f"expected {expected} nodes (spec.expectedNodeCount), the cluster reports {info.node_count}")
    if not info.quorate:
        degraded = True
        warnings.append("the cluster is not quorate")
    offline = [n.name for n in info.nodes if not n.online]
    if offline:
        degraded = True
        warnings.append(f"{len(offline)} of {info.node_count} nodes offline: {', '.join(offline)}")
    if info.skipped:
        degraded = True
        warnings += [f"{why}; verified through {info.endpoint}" for why in info.skipped]
    if cluster.spec.tls.insecure_skip_verify:
        warnings.append("TLS certificate verification is disabled (spec.tls.insecureSkipVerify)")
    return (DEGRADED if degraded else HEALTHY), warnings


def _with_ready(previous: Mapping[str, Any], *, status: ConditionStatus, reason: str, message: str,
                generation: int | None, now: datetime) -> list[dict[str, Any]]:
    """The conditions list with Ready set (one helper for both kinds); conditions set by others are kept."""
    return conditions.merge_raw(previous.get("conditions"), {READY: (status, reason, message)},
                                generation=generation, now=now)


def verified_status(
    previous: Mapping[str, Any],
    cluster: ProxmoxCluster,
    info: ClusterInfo,
    *,
    generation: int | None,
    now: datetime,
    also_registered_by: Iterable[str] = (),
) -> dict[str, Any]:
    """The owned status fields after a successful verification (``None`` means: remove).
    ``also_registered_by``: other cluster files that reach the same cluster (``duplicates``)."""
    health, warnings = health_and_warnings(cluster, info)
    others = sorted(also_registered_by)
    if others:
        health = DEGRADED
        files = ", ".join(f"clusters/{o}.yaml" for o in others)
        warnings.append(f"the same Proxmox cluster ({info.cluster_name}: {', '.join(n.name for n in info.nodes)}) "
                        f"is registered by {files} too; keep one file per cluster")
    name = f"cluster {info.cluster_name}" if info.cluster_name else "standalone node"
    message = f"Proxmox VE {info.version}, {name}, {info.online_nodes}/{info.node_count} nodes online" + (
        ", quorate" if info.quorate else ", not quorate"
    )
    if warnings:
        message += "; " + "; ".join(warnings)
    return {
        "version": info.version,
        "release": info.release,
        "clusterName": info.cluster_name,
        "quorate": info.quorate,
        "nodeCount": info.node_count,
        "onlineNodes": info.online_nodes,
        "nodeNames": [n.name for n in info.nodes],
        "health": health,
        "lastVerified": format_time(now),
        "tlsInsecure": True if cluster.spec.tls.insecure_skip_verify else None,
        "warnings": warnings or None,
        "conditions": _with_ready(previous, status="True", reason=VERIFIED, message=message, generation=generation,
                                  now=now),
        "observedGeneration": generation,
        "phase": PHASE_READY,
        "lastError": None,
    }


def failed_status(
    previous: Mapping[str, Any],
    cluster: ProxmoxCluster,
    error: ProxmoxError,
    *,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The owned status fields after a failed verification.

    Facts from the last success are kept (last known) if they describe the same spec generation;
    after a spec change they are dropped, since they may describe another cluster.
    """
    previous_condition = ready_condition(previous) or {}
    same_spec = previous_condition.get("observedGeneration") == generation
    status: dict[str, Any] = {key: previous.get(key) if same_spec else None for key in FACT_FIELDS}
    warnings = (
        ["TLS certificate verification is disabled (spec.tls.insecureSkipVerify)"]
        if cluster.spec.tls.insecure_skip_verify
        else None
    )
    status.update(
        health=error.reason if error.reason in FAILURE_HEALTH else UNREACHABLE,
        lastVerified=format_time(now),
        tlsInsecure=True if cluster.spec.tls.insecure_skip_verify else None,
        warnings=warnings,
        conditions=_with_ready(previous, status="False", reason=error.reason, message=error.message,
                               generation=generation, now=now),
        observedGeneration=generation,
        phase=PHASE_FAILED,
        lastError=error.message,
    )
    return status


def status_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch with the owned fields whose value differs (``None`` removes a field)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if value is None:
            if key in previous:
                patch[key] = None
        elif previous.get(key) != value:
            patch[key] = value
    return patch


def _merged(previous: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(previous)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# --- the cycle --------------------------------------------------------------------------------


@dataclass
class _Job:
    cluster: ProxmoxCluster
    cr: dict[str, Any]
    due: str
    credentials: ClusterCredentials | None = None
    result: ClusterInfo | ProxmoxError | None = None
    required: tuple[Privilege, ...] = ()


def required_privileges(desired: DesiredState, cluster: str) -> tuple[Privilege, ...]:
    """What the cluster's credentials must hold for the nodes that name one of its VMs: VM.Audit
    on each ``/vms/<vmid>`` (to find and read it) and, where the node manages its VM's NICs,
    VM.Config.Network there too. Sys.Audit on ``/`` is checked by reading ``/cluster/status``."""
    out: list[Privilege] = []
    for name in sorted(desired.nodes):
        ref = desired.nodes[name].spec.proxmox
        if ref is None or ref.cluster != cluster:
            continue
        out.append(Privilege(f"/vms/{ref.vmid}", "VM.Audit", f"read VM {ref.vmid} of node {name}"))
        spec = desired.clusters[cluster].spec if cluster in desired.clusters else None
        if ref.manages_nics(spec.manage_nics if spec else None):
            out.append(Privilege(f"/vms/{ref.vmid}", "VM.Config.Network",
                                 f"manage the NICs of VM {ref.vmid} of node {name}"))
    return tuple(out)


def verify_cluster(
    cluster: ProxmoxCluster,
    credentials: ClusterCredentials,
    *,
    client_factory: ClientFactory = ProxmoxClient,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    required: tuple[Privilege, ...] = (),
    shared: SharedClients | None = None,
) -> ClusterInfo | ProxmoxError:
    """One verification; a classified error is returned, not raised. The cluster's
    ``spec.timeouts`` win over the defaults given here; ``required``: privileges the credentials
    must hold (``required_privileges``), else ``PermissionDenied`` naming what is missing."""
    spec = cluster.spec
    try:
        if shared is not None:  # the loop's client for this cluster: its ticket is reused, not closed here
            return shared(cluster, credentials).verify(required)
        with client_for(
            cluster,
            credentials,
            client_factory=client_factory,
            connect_timeout=spec.connect_timeout_seconds or connect_timeout,
            read_timeout=spec.read_timeout_seconds or read_timeout,
        ) as client:
            return client.verify(required)
    except ProxmoxError as exc:
        return scrubbed(exc, credentials.secrets)  # what goes to status, logs and Git


def register_clusters(
    kube: ClusterKube,
    desired: DesiredState,
    *,
    now: datetime | None = None,
    force: bool = False,
    client_factory: ClientFactory = ProxmoxClient,
    live: Iterable[Mapping[str, Any]] | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    write: bool = True,
    shared: SharedClients | None = None,
) -> list[ClusterOutcome]:
    """Verify the clusters that are due and write their status; see the module docstring.

    ``write=False`` (the pipeline): nothing is written; each outcome's ``status`` is the status the
    verification calls for, which the report stage writes with everything else the cycle learned
    (one status patch per object per cycle).

    ``shared``: where the loop keeps one client per cluster (``VmReads.client``): a ticket login
    is then made once and reused by every verification and VM read, not once per verification.

    ``live``: the ``ProxmoxCluster`` CRs as they are *after* this cycle's apply (e.g. the objects
    the applies returned; saves a LIST); read when omitted. A list from before the apply would
    carry the old ``metadata.generation`` and delay noticing a spec change by one cycle.
    Clusters without a CR (not applied yet, or blocked) are skipped; so is everything while
    ``reconciler.yaml`` is invalid (the planner blocks everything then too).
    """
    if desired.settings_blocked:
        return []
    now = now or datetime.now(UTC)
    crs = {
        str((obj.get("metadata") or {}).get("name")): dict(obj)
        for obj in (live if live is not None else kube.list_owned(KIND_CLUSTER))
    }
    outcomes: dict[str, ClusterOutcome] = {}
    jobs: list[_Job] = []
    for name in sorted(desired.clusters):
        cluster, cr = desired.clusters[name], crs.get(name)
        if cr is None:
            outcomes[name] = ClusterOutcome(name, False, None, None, None, "no ProxmoxCluster object yet", False, None)
            continue
        reason = due_reason(cr, cluster, now=now, force=force)
        if reason is None:
            status = dict(cr.get("status") or {})
            condition = ready_condition(status) or {}
            outcomes[name] = ClusterOutcome(
                name,
                False,
                None,
                condition.get("status") == "True" if condition else None,
                condition.get("reason"),
                condition.get("message"),
                False,
                status,
            )
            continue
        job = _Job(cluster, cr, reason, required=required_privileges(desired, name))
        try:  # Secrets are read on this thread; only Proxmox calls run in parallel
            job.credentials = read_credentials(kube.read_secret, cluster)
        except ProxmoxError as exc:
            job.result = exc
        jobs.append(job)

    def run(job: _Job) -> None:
        if job.credentials is not None:
            job.result = verify_cluster(
                job.cluster,
                job.credentials,
                client_factory=client_factory,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                required=job.required,
                shared=shared,
            )

    pending = [j for j in jobs if j.result is None]
    if len(pending) > 1:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pending))) as pool:
            list(pool.map(run, pending))
    else:
        for job in pending:
            run(job)

    twins = duplicates(jobs, {n: cr for n, cr in crs.items() if n in desired.clusters})
    for job in jobs:
        outcomes[job.cluster.name] = _write(kube, job, now, write=write, twins=twins.get(job.cluster.name, ()))
    return [outcomes[name] for name in sorted(outcomes)]


def _identity(cluster_name: object, nodes: Iterable[object]) -> tuple[str, tuple[str, ...]] | None:
    """What tells one PVE cluster: its name and node set (a standalone node has no name: None)."""
    if not cluster_name:
        return None
    return str(cluster_name), tuple(sorted(str(n) for n in nodes))


def duplicates(jobs: Iterable[_Job], crs: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Cluster file -> the other files that reach the same cluster (same ``clusterName`` and node
    set), from this cycle's verifications and the last known facts of the others, e.g. one file
    naming ``https://localhost:8006`` and another ``https://127.0.0.1:8006``."""
    known: dict[str, tuple[str, tuple[str, ...]] | None] = {}
    for name, cr in crs.items():
        status = cr.get("status") or {}
        known[name] = _identity(status.get("clusterName"), status.get("nodeNames") or ())
    verified: set[str] = set()
    for job in jobs:
        if isinstance(job.result, ClusterInfo):
            known[job.cluster.name] = _identity(job.result.cluster_name, (n.name for n in job.result.nodes))
            verified.add(job.cluster.name)
        else:
            known[job.cluster.name] = None
    out: dict[str, tuple[str, ...]] = {}
    for name in verified:
        mine = known[name]
        twins = tuple(sorted(o for o, ident in known.items() if o != name and ident is not None and ident == mine))
        if twins:
            out[name] = twins
    return out


def _write(kube: ClusterKube, job: _Job, now: datetime, *, write: bool = True,
           twins: tuple[str, ...] = ()) -> ClusterOutcome:
    name = job.cluster.name
    previous = dict(job.cr.get("status") or {})
    generation = (job.cr.get("metadata") or {}).get("generation")
    result = job.result
    assert result is not None
    if isinstance(result, ClusterInfo):
        new = verified_status(previous, job.cluster, result, generation=generation, now=now, also_registered_by=twins)
        info: ClusterInfo | None = result
        log.info(
            "ProxmoxCluster %s verified (%s): Proxmox VE %s, %d nodes", name, job.due, result.version, result.node_count
        )
    else:
        new = failed_status(previous, job.cluster, result, generation=generation, now=now)
        info = None
        log.warning("ProxmoxCluster %s verification failed (%s): %s", name, result.reason, result.message)
    patch = status_patch(previous, new)
    written, write_error = False, None
    if patch and write:
        try:
            kube.patch_status(KIND_CLUSTER, name, patch)
            written = True
        except Exception as exc:  # KubeError: one cluster's failed write must not stop the others
            write_error = str(exc)
            log.warning("ProxmoxCluster %s: status not written: %s", name, exc)
    condition = ready_condition(new) or {}
    return ClusterOutcome(
        name=name,
        verified=job.credentials is not None,
        due_reason=job.due,
        ready=condition.get("status") == "True",
        reason=condition.get("reason"),
        message=condition.get("message"),
        status_written=written,
        status=_merged(previous, patch) if written or not patch or not write else previous,
        info=info,
        write_error=write_error,
    )
