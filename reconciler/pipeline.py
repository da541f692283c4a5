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
    from reconciler.apply.proxmox.vmreads import VmReads
    from reconciler.apply.rollout import RolloutReport
    from reconciler.kube.client import Kube
    from reconciler.kube.jobs import JobSettings
    from reconciler.report.status import Reported, StatusMemo

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
    ``check_nics`` (and cluster access), every node's VM NICs are read from Proxmox and what
    differs is named in the plan's notes, so a wrong MAC, slot or bridge is caught before a Job runs."""
    validation = validation or validate_repo(checkout.path)
    kube = connect(validation.desired.settings.spec.namespace) if connect is not None else None
    live = observe(kube)
    changes = plan(validation.desired, live, revision=checkout.revision,
                   namespace=kube.namespace if kube is not None else None)
    cycle = Cycle(checkout, validation, changes)
    if check_nics and kube is not None and any(n.spec.proxmox for n in validation.desired.nodes.values()):
        from reconciler.apply.proxmox import crosscheck

        # The LIST the plan already made tells which clusters are verified: no second one.
        clusters = _freshest(KIND_CLUSTER, live, cycle)
        cycle.nic_checks = crosscheck.check_now(validation.desired, clusters, kube.read_secret)
        cycle.changes = replace(changes, notes=changes.notes + _nic_notes(cycle))
    return cycle, kube, live


def _nic_notes(cycle: Cycle) -> tuple[str, ...]:
    sources = cycle.validation.desired.sources
    notes = []
    for name, check in sorted(cycle.nic_checks.items()):
        where = sources.get((KIND_NODE, name), name)
        effect = " (nicCheck: enforce, no Job until fixed)" if check.enforce else " (nicCheck: warn)"
        notes += [f"VM NIC check, {where}: {problem}{effect}" for problem in check.mismatches]
        notes += [f"VM NIC change, {where}: VM {check.vmid} {change} (spec.proxmox.manageNics)"
                  for change in check.vm_changes]
        if not check.checked:
            notes.append(f"VM NIC check, {where}: not checked: {check.error}")
    return tuple(notes)


def apply_once(checkout: Checkout, connect: Connect, *, job_settings: JobSettings | None = None,
               now: datetime | None = None, proxmox: bool = True, check_nics: bool = True,
               validation: ValidationResult | None = None, writers: int | None = None,
               vm_reads: VmReads | None = None, status_memo: StatusMemo | None = None) -> Cycle:
    """One full cycle: CRs, cluster registration (when due), the VM NIC check, one rollout step
    (nodes whose VM NICs differ are held under ``nicCheck: enforce``), then every object's status,
    computed once from all of that and written with one patch (through a pool of ``writers``,
    default 8), and its Events.

    ``vm_reads``: the loop's long-lived VM read cache; the check then never waits for Proxmox.
    Without it (one-shot ``apply --once``) VMs are read now, waiting up to their timeouts.
    ``status_memo``: the loop's memo of last cycle's statuses (unchanged nodes are not recomputed).
    ``check_nics=False`` skips the check: nodes with ``nicCheck: enforce`` then wait."""
    from reconciler.apply import rollout
    from reconciler.apply.crs import WRITERS, apply_changes
    from reconciler.kube.jobs import JobSettings

    cycle, kube, live = plan_checkout(checkout, connect, validation=validation)
    assert kube is not None
    desired = cycle.validation.desired
    writers = writers or WRITERS
    cycle.applied = apply_changes(kube, cycle.changes, delete_kinds=(KIND_CLUSTER,), writers=writers)
    clusters = _freshest(KIND_CLUSTER, live, cycle)
    if proxmox and not desired.settings_blocked and desired.clusters:
        from reconciler.apply.proxmox import registration

        cycle.clusters = registration.register_clusters(kube, desired, now=now, live=clusters, write=False,
                                                        shared=vm_reads.client if vm_reads is not None else None)
        # Registration may just have verified a cluster: its outcome is what the check trusts.
        verified = {o.name: o.status for o in cycle.clusters if o.status is not None}
        clusters = [{**c, "status": verified.get(c["metadata"]["name"], c.get("status"))} for c in clusters]
    held: dict[str, rollout.Hold] = {}
    if not desired.settings_blocked and any(n.spec.proxmox for n in desired.nodes.values()):
        held = _check_nics(kube, cycle, clusters, vm_reads, run=check_nics)
    nodes = {o["metadata"]["name"]: rollout.LiveNode(
        o["metadata"]["name"], o.get("spec") or {}, o["metadata"].get("generation"), o.get("status") or {},
        o["metadata"].get("uid"), dict(o["metadata"].get("annotations") or {}), dict(o["metadata"].get("labels") or {}))
        for o in _freshest(KIND_NODE, live, cycle)}
    failed_writes = {a.change.name for a in cycle.failed if a.change.kind == KIND_NODE}
    # An invalid reconciler.yaml blocks everything: no node Job starts (its holds, e.g. the VM NIC
    # check, are not even computed then, so the rollout must not run on defaults).
    wanted = {} if desired.settings_blocked else {n: m for n, m in desired.nodes.items() if n not in failed_writes}
    cycle.rollout = rollout.step(
        kube, wanted, nodes, cycle.changes.by_action(Action.DELETE),
        settings=desired.settings.spec.rollout, job_settings=job_settings or JobSettings(),
        revision=checkout.revision, now=now, held=held, drift=desired.settings.spec.drift)
    if vm_reads is not None and cycle.nic_checks:
        from reconciler.apply.proxmox import crosscheck

        just_failed = [n for n, s in cycle.rollout.nodes.items() if s.state == "failed" and s.changed]
        crosscheck.restore_failed(desired, vm_reads, kube.read_secret, just_failed)
    _report(kube, cycle, live, now, writers, status_memo)
    return cycle


def _check_nics(kube: Kube, cycle: Cycle, clusters: list[dict[str, Any]], vm_reads: VmReads | None, *,
                run: bool) -> dict[str, Any]:
    """The VM NIC check (from the loop's cache, or read now) and the nodes it holds (node -> Hold)."""
    from reconciler.apply import rollout
    from reconciler.apply.proxmox import crosscheck

    desired = cycle.validation.desired
    if not run:
        checks = {}
        for name, node in desired.nodes.items():
            if node.spec.proxmox is not None:
                checks[name] = crosscheck.NodeCheck(name, node.spec.proxmox.cluster, node.spec.proxmox.vmid, False,
                                                    error="the VM NIC check was not run",
                                                    reason=crosscheck.READ_PENDING,
                                                    enforce=node.spec.proxmox.enforce)
    elif vm_reads is None:
        checks = crosscheck.check_now(desired, clusters, kube.read_secret, manage=True)
    else:
        checks = crosscheck.gate(desired, clusters, vm_reads, kube.read_secret, manage=True)
    cycle.nic_checks = checks
    return {name: rollout.Hold(check.hold_message, waiting=check.waiting)
            for name, check in checks.items() if check.holds}


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


def _report(kube: Kube, cycle: Cycle, live: Live, now: datetime | None, writers: int,
            memo: StatusMemo | None = None) -> None:
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
                                   writers=writers, memo=memo)
    cycle.status_writes = cycle.reported.writes
