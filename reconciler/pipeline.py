"""The one linear reconcile: source -> load/validate -> observe -> plan -> apply -> report.

Each stage is a function of the previous stage's value; this module only strings them together
and is what ``plan``, ``apply --once``, ``run`` and ``demo`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.config.validation import ValidationResult, validate_repo
from reconciler.plan.changeset import Action, ChangeSet
from reconciler.plan.planner import KINDS, LiveObject, plan
from reconciler.source.local import Checkout

if TYPE_CHECKING:
    from reconciler.apply.crs import Applied
    from reconciler.apply.rollout import RolloutReport
    from reconciler.kube.client import Kube
    from reconciler.kube.jobs import JobSettings

Connect = Callable[[str], "Kube"]  # namespace -> adapter; known only after reconciler.yaml is read


@dataclass
class Cycle:
    checkout: Checkout
    validation: ValidationResult
    changes: ChangeSet
    applied: list[Applied] = field(default_factory=list)
    rollout: RolloutReport | None = None
    status_writes: int = 0
    clusters: list[Any] = field(default_factory=list)  # registration outcomes (ClusterOutcome)
    nic_checks: dict[str, Any] = field(default_factory=dict)  # node -> NodeCheck (VM NIC cross-check)

    @property
    def failed(self) -> list[Applied]:
        return [a for a in self.applied if not a.ok]


def observe(kube: Kube | None) -> dict[str, list[LiveObject]]:
    """Live objects we own; ``None`` (offline) means an empty cluster."""
    if kube is None:
        return {}
    return {kind: [LiveObject.from_manifest(o) for o in kube.list_owned(kind)] for kind in KINDS}


Live = dict[str, list[LiveObject]]


def plan_checkout(checkout: Checkout, connect: Connect | None, *, check_nics: bool = False,
                  validation: ValidationResult | None = None) -> tuple[Cycle, Kube | None, Live]:
    """Validate (unless ``validation`` of this very checkout is given) and plan. With
    ``check_nics`` (and cluster access), nodes whose MACs are not on their Proxmox VM are named in
    the plan's notes, so a wrong MAC is caught before a Job runs."""
    validation = validation or validate_repo(checkout.path)
    kube = connect(validation.desired.settings.spec.namespace) if connect is not None else None
    live = observe(kube)
    changes = plan(validation.desired, live, revision=checkout.revision)
    cycle = Cycle(checkout, validation, changes)
    if check_nics and kube is not None and any(n.spec.proxmox for n in validation.desired.nodes.values()):
        from reconciler.apply.proxmox import crosscheck

        # The LIST the plan already made tells which clusters are verified: no second one.
        clusters = _freshest(KIND_CLUSTER, live, cycle)
        cycle.nic_checks = crosscheck.check_verified_nodes(kube, validation.desired, live=clusters)
        notes = [f"VM NIC check, {validation.desired.sources.get((KIND_NODE, name), name)}: {problem}"
                 for name, check in sorted(cycle.nic_checks.items()) for problem in check.mismatches]
        cycle.changes = replace(changes, notes=changes.notes + tuple(notes))
    return cycle, kube, live


def apply_once(checkout: Checkout, connect: Connect, *, job_settings: JobSettings | None = None,
               now: datetime | None = None, proxmox: bool = True, check_nics: bool = False,
               validation: ValidationResult | None = None, writers: int | None = None) -> Cycle:
    """One full cycle: CRs, cluster registration (when due), the VM NIC check (when asked), one
    rollout step, node status and Events. CR writes and status patches go through a pool of
    ``writers`` (default 8)."""
    from reconciler.apply import rollout
    from reconciler.apply.crs import WRITERS, apply_changes
    from reconciler.kube.jobs import JobSettings

    cycle, kube, live = plan_checkout(checkout, connect, validation=validation)
    assert kube is not None
    desired = cycle.validation.desired
    writers = writers or WRITERS
    cycle.applied = apply_changes(kube, cycle.changes, delete_kinds=(KIND_CLUSTER,), writers=writers)
    nic_patches: dict[str, dict[str, Any]] = {}
    if proxmox and not desired.settings_blocked and desired.clusters:
        nic_patches = _proxmox(kube, cycle, live, now, check_nics)
    nodes = {o.name: rollout.LiveNode(o.name, o.spec, o.generation, o.status, o.uid, o.annotations, o.labels)
             for o in live.get(KIND_NODE, [])}
    for done in cycle.applied:
        if done.ok and done.live is not None and done.change.kind == KIND_NODE:
            obj = done.live
            meta = obj.get("metadata") or {}
            nodes[done.change.name] = rollout.LiveNode(
                done.change.name, obj.get("spec") or {}, meta.get("generation"), obj.get("status") or {},
                meta.get("uid"), dict(meta.get("annotations") or {}), dict(meta.get("labels") or {}))
    for name, patch in nic_patches.items():  # the node status below must start from what was just written
        if name in nodes:
            merged = {k: v for k, v in {**nodes[name].status, **patch}.items() if v is not None}
            nodes[name] = replace(nodes[name], status=merged)
    failed_writes = {a.change.name for a in cycle.failed if a.change.kind == KIND_NODE}
    wanted = {n: m for n, m in desired.nodes.items() if n not in failed_writes}
    cycle.rollout = rollout.step(
        kube, wanted, nodes, cycle.changes.by_action(Action.DELETE),
        settings=desired.settings.spec.rollout, job_settings=job_settings or JobSettings(),
        revision=checkout.revision, now=now)
    cycle.status_writes = _report_nodes(kube, cycle, nodes, now, writers)
    return cycle


def _freshest(kind: str, live: Live, cycle: Cycle) -> list[dict[str, Any]]:
    """Live objects of ``kind`` as they are after this cycle's writes (no extra LIST)."""
    objects = {o.name: {"metadata": {"name": o.name, "generation": o.generation,
                                     "annotations": o.annotations, "labels": o.labels},
                        "spec": o.spec, "status": o.status} for o in live.get(kind, [])}
    for done in cycle.applied:
        if done.ok and done.live is not None and done.change.kind == kind:
            objects[done.change.name] = done.live
    return list(objects.values())


def _proxmox(kube: Kube, cycle: Cycle, live: Live, now: datetime | None,
             check_nics: bool) -> dict[str, dict[str, Any]]:
    """Registration, then (when asked) the VM NIC check; returns the node status patches written."""
    from reconciler.apply.proxmox import crosscheck, registration

    desired = cycle.validation.desired
    clusters = _freshest(KIND_CLUSTER, live, cycle)
    cycle.clusters = registration.register_clusters(kube, desired, now=now, live=clusters)
    written: dict[str, dict[str, Any]] = {}
    if check_nics and any(n.spec.proxmox for n in desired.nodes.values()):
        fresh = kube.list_owned(KIND_CLUSTER)  # registration may just have verified a cluster
        cycle.nic_checks = crosscheck.check_verified_nodes(kube, desired, live=fresh)
        current = {o["metadata"]["name"]: o.get("status") for o in _freshest(KIND_NODE, live, cycle)}
        for name, check in cycle.nic_checks.items():
            patch = crosscheck.node_status_patch(check, current.get(name))
            if patch:
                kube.patch_status(KIND_NODE, name, patch)
                cycle.status_writes += 1
                written[name] = patch
    return written


def _report_nodes(kube: Kube, cycle: Cycle, nodes: Mapping[str, object], now: datetime | None,
                  writers: int = 1) -> int:
    from reconciler.apply.crs import in_parallel
    from reconciler.kube.client import KubeError
    from reconciler.report import events, status

    assert cycle.rollout is not None
    namespace = kube.namespace
    sources = cycle.validation.desired.sources
    patches: list[tuple[str, dict[str, Any]]] = []
    transitions: list[Any] = []
    for name, state in sorted(cycle.rollout.nodes.items()):
        cr = nodes.get(name)
        transition = True
        if state.state != "removed" and cr is not None:  # a removed node has no status left to write
            wanted = status.node_status(state, cr, source_path=sources.get((KIND_NODE, name)), now=now)  # type: ignore[arg-type]
            patch = status.patch_for(cr.status, wanted)  # type: ignore[attr-defined]
            # A state the status already shows (an unschedulable node, a failed cleanup, seen again
            # each cycle) is no transition: no Event for it.
            transition = patch is not None
            if patch is not None:
                patches.append((name, patch))
        if state.changed and transition:
            transitions.append((name, state))

    def write(item: tuple[str, dict[str, Any]]) -> bool:
        try:
            kube.patch_status(KIND_NODE, item[0], item[1])
            return True
        except KubeError:
            return False  # the object may be gone; the next cycle recomputes

    writes = sum(in_parallel(write, patches, writers))
    for name, state in transitions:
        warning = state.state in ("failed", "unschedulable", "remove-failed", "stalled")
        reason = {"applied": "Applied", "running": "RolloutStarted", "failed": "ApplyFailed",
                  "unschedulable": "Unschedulable", "removing": "CleanupStarted",
                  "remove-failed": "CleanupFailed"}.get(state.state, state.state.capitalize())
        kube.create_event(events.event(KIND_NODE, name, namespace, reason=reason,
                                       message=state.message, warning=warning, now=now))
    return writes
