"""The one linear reconcile: source -> load/validate -> observe -> plan -> apply -> report.

Each stage is a function of the previous stage's value; this module only strings them together
and is what ``plan``, ``apply --once``, ``run`` and ``demo`` call.
"""

from __future__ import annotations

from collections.abc import Callable
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
    from reconciler.report.status import Reported

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
    reported: Reported | None = None  # every object's status after the cycle, and the Events recorded

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
    rollout step, then every object's status, computed once from all of that and written with one
    patch (through a pool of ``writers``, default 8), and its Events."""
    from reconciler.apply import rollout
    from reconciler.apply.crs import WRITERS, apply_changes
    from reconciler.kube.jobs import JobSettings

    cycle, kube, live = plan_checkout(checkout, connect, validation=validation)
    assert kube is not None
    desired = cycle.validation.desired
    writers = writers or WRITERS
    cycle.applied = apply_changes(kube, cycle.changes, delete_kinds=(KIND_CLUSTER,), writers=writers)
    if proxmox and not desired.settings_blocked and desired.clusters:
        _proxmox(kube, cycle, live, now, check_nics)
    nodes = {o["metadata"]["name"]: rollout.LiveNode(
        o["metadata"]["name"], o.get("spec") or {}, o["metadata"].get("generation"), o.get("status") or {},
        o["metadata"].get("uid"), dict(o["metadata"].get("annotations") or {}), dict(o["metadata"].get("labels") or {}))
        for o in _freshest(KIND_NODE, live, cycle)}
    failed_writes = {a.change.name for a in cycle.failed if a.change.kind == KIND_NODE}
    wanted = {n: m for n, m in desired.nodes.items() if n not in failed_writes}
    cycle.rollout = rollout.step(
        kube, wanted, nodes, cycle.changes.by_action(Action.DELETE),
        settings=desired.settings.spec.rollout, job_settings=job_settings or JobSettings(),
        revision=checkout.revision, now=now)
    _report(kube, cycle, live, now, writers)
    return cycle


def _freshest(kind: str, live: Live, cycle: Cycle) -> list[dict[str, Any]]:
    """Live objects of ``kind`` as they are after this cycle's writes (no extra LIST); objects this
    cycle deleted are left out."""
    objects = {o.name: {"kind": kind,
                        "metadata": {"name": o.name, "generation": o.generation, "uid": o.uid,
                                     "annotations": o.annotations, "labels": o.labels},
                        "spec": o.spec, "status": o.status} for o in live.get(kind, [])}
    for done in cycle.applied:
        if done.ok and done.change.kind == kind:
            if done.change.action == Action.DELETE:
                objects.pop(done.change.name, None)
            elif done.live is not None:
                objects[done.change.name] = {"kind": kind, **done.live}
    return list(objects.values())


def _proxmox(kube: Kube, cycle: Cycle, live: Live, now: datetime | None, check_nics: bool) -> None:
    """Registration, then (when asked) the VM NIC check; what they learn is reported with the rest."""
    from reconciler.apply.proxmox import crosscheck, registration

    desired = cycle.validation.desired
    clusters = _freshest(KIND_CLUSTER, live, cycle)
    cycle.clusters = registration.register_clusters(kube, desired, now=now, live=clusters, write=False)
    if check_nics and any(n.spec.proxmox for n in desired.nodes.values()):
        # Registration may just have verified a cluster: its outcome is what the check trusts.
        verified = {o.name: o.status for o in cycle.clusters if o.status is not None}
        fresh = [{**c, "status": verified.get(c["metadata"]["name"], c.get("status"))} for c in clusters]
        cycle.nic_checks = crosscheck.check_verified_nodes(kube, desired, live=fresh)


def _report(kube: Kube, cycle: Cycle, live: Live, now: datetime | None, writers: int) -> None:
    from reconciler.report import status

    assert cycle.rollout is not None
    removed_names = {n for n, s in cycle.rollout.nodes.items() if s.state == "removed"}
    crs: dict[str, list[status.LiveCR]] = {}
    removed: list[status.LiveCR] = []
    for kind in (KIND_NODE, KIND_CLUSTER):
        for obj in _freshest(kind, live, cycle):
            cr = status.LiveCR.from_manifest(obj)
            if kind == KIND_NODE and cr.name in removed_names:
                removed.append(cr)
            else:
                crs.setdefault(kind, []).append(cr)
    cycle.reported = status.report(kube, cycle.validation, crs, rollout=cycle.rollout.nodes,
                                   nic_checks=cycle.nic_checks, clusters=cycle.clusters, removed=removed, now=now,
                                   writers=writers)
    cycle.status_writes = cycle.reported.writes
