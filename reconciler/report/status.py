"""The one status writer: each object's status computed once per cycle, written with one patch.

``report`` runs last in a cycle. For every ``MultiNicNodeConfig`` and ``ProxmoxCluster`` it takes
the live status (the previous claim) and everything the cycle learned about the object (the
rollout state, the VM NIC check, the cluster verification, whether its file is valid) and computes
the whole new status as a typed model (``reconciler.status.models``) through the state table
(``reconciler.status.states``). One JSON merge patch turns the live status into it; an unchanged
outcome patches nothing. Events are recorded on transitions, with the object's uid, so
``kubectl describe`` lists them.

Pure parts (``node_status``, ``cluster_status``, ``merge_patch``) are functions of their inputs:
recomputing the same outcome gives the same status, so quiet cycles write nothing.
``observedGeneration`` and ``appliedRevision`` move only when a node is Ready (as Flux does).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from reconciler.config.diagnostics import Diagnostic
from reconciler.config.formats import printable
from reconciler.config.repo import FOLDERS, KIND_CLUSTER, KIND_NODE
from reconciler.report import events
from reconciler.status import conditions, states
from reconciler.status.models import (
    ClusterStatus,
    ConditionStatus,
    DriftCheck,
    InterfaceStatus,
    NodeStatus,
    ProxmoxCheck,
    parse,
)

if TYPE_CHECKING:
    from reconciler.apply.proxmox.crosscheck import NodeCheck
    from reconciler.apply.proxmox.registration import ClusterOutcome
    from reconciler.apply.rollout import NodeState
    from reconciler.config.validation import ValidationResult
    from reconciler.kube.client import Kube

log = logging.getLogger(__name__)

CONFIG_VALID = "ConfigValid"
MAX_DIAGNOSTICS = 10  # per object, in a condition message; the rest are counted


@dataclass(frozen=True)
class LiveCR:
    """A live custom resource as the report needs it (after this cycle's writes)."""

    kind: str
    name: str
    uid: str | None
    generation: int | None
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def from_manifest(cls, obj: Mapping[str, Any]) -> LiveCR:
        metadata = obj.get("metadata") or {}
        return cls(str(obj.get("kind") or ""), str(metadata.get("name") or ""), metadata.get("uid"),
                   metadata.get("generation"), dict(obj.get("spec") or {}), dict(obj.get("status") or {}))


@dataclass
class Reported:
    """What the report stage wrote, and each object's status after the cycle (for metrics)."""

    writes: int = 0
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, reason)
    nodes: dict[str, NodeStatus] = field(default_factory=dict)  # computed this cycle
    # Nodes whose status was not recomputed (``StatusMemo``: the same inputs as last cycle, so the
    # same status, which is the live one): name -> phase.
    unchanged: dict[str, str | None] = field(default_factory=dict)
    clusters: dict[str, ClusterStatus] = field(default_factory=dict)

    def phase_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        phases = ((KIND_NODE, [s.phase for s in self.nodes.values()]), (KIND_NODE, self.unchanged.values()),
                  (KIND_CLUSTER, [s.phase for s in self.clusters.values()]))
        for kind, among in phases:
            for phase in among:
                if phase is not None:
                    counts[(kind, phase)] = counts.get((kind, phase), 0) + 1
        return counts


# -- validity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validity:
    """Whether an object's file is valid: ConfigValid, with file:line diagnostics when it is not."""

    valid: bool
    path: str | None
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def condition(self) -> tuple[ConditionStatus, str, str]:
        if self.valid:
            return (*states.CONFIG_VALID, f"{self.path or 'the file'} is valid")
        return (*states.CONFIG_INVALID, blocked_message(self.diagnostics))


def blocked_message(diagnostics: Iterable[Diagnostic], limit: int = MAX_DIAGNOSTICS) -> str:
    """``nodes/w1.yaml:12:7 spec.interfaces[0].mtu: must be at most 9216; ...`` (capped, counted)."""
    found = list(diagnostics)
    lines = [printable(f"{d.location} {d.field + ': ' if d.field else ''}{d.message}") for d in found[:limit]]
    if len(found) > limit:
        lines.append(f"and {len(found) - limit} more")
    return "invalid, the live spec is kept: " + "; ".join(lines) if lines else "invalid, the live spec is kept"


def validity(validation: ValidationResult, kind: str) -> dict[str, Validity]:
    """Name -> validity for every object of ``kind`` that has a file (valid or blocked)."""
    desired = validation.desired
    out = {name: Validity(True, path) for (k, name), path in desired.sources.items() if k == kind}
    blocked = desired.blocked.get(kind) or frozenset()
    if blocked:
        folder = next(f for f, k in FOLDERS.items() if k == kind)
        by_name: dict[str, list[Diagnostic]] = {}
        for d in validation.errors:
            path = PurePosixPath(d.path)
            if path.parts and path.parts[0] == folder and path.stem in blocked:
                by_name.setdefault(path.stem, []).append(d)
        for name in blocked:
            found = by_name.get(name, [])
            out[name] = Validity(False, found[0].path if found else None, tuple(found))
    return out


# -- nodes --------------------------------------------------------------------------------------


def node_status(cr: LiveCR, *, state: NodeState | None, check: NodeCheck | None, validity: Validity | None,
                now: datetime | None = None, cluster_files: frozenset[str] | None = None) -> NodeStatus:
    """The node's whole status after this cycle; without a rollout state the previous one is kept
    (a blocked file: the live spec and its outcome stay), with what else was learned."""
    previous = parse(NodeStatus, cr.status)
    wanted: dict[str, tuple[ConditionStatus, str, str]] = {}
    update: dict[str, Any] = {}
    if state is not None and state.state != "removed":
        row = states.node_row(state.state)
        message = state.message or row.phase or state.state
        for kind, condition in (("Ready", row.ready), ("Reconciling", row.reconciling), ("Stalled", row.stalled)):
            if condition is not None:
                wanted[kind] = (*condition, message)
        update.update(phase=row.phase, interface_count=len(cr.spec.get("interfaces") or []),
                      job=state.job, last_error=message if row.warning else None)
        # The host this object's Jobs wrote to (a nodeName change cleans it first), the rollout the
        # last Job belongs to, and the automatic retries of a transient failure.
        update.update(node_name=state.host if state.host is not None else previous.node_name,
                      attempt=state.attempt or None, next_retry=state.next_retry)
        if state.state in ("applied", "running", "failed") and state.rollout:
            update["attempted_revision"] = state.rollout
        if state.state in ("applied", "failed"):
            update["spec_hash"] = state.spec_hash  # recorded: this spec is not rolled out again
        if state.state == "applied":
            update["observed_generation"] = cr.generation
            if state.revision:
                update["applied_revision"] = state.revision
        if state.result is not None:
            update["interfaces"] = tuple(
                InterfaceStatus(name=i.name, mac_address=i.mac, device=i.device, state=i.state, error=i.error)
                for i in state.result.interfaces)
        _drift(previous, state, update, wanted)
    if check is not None:
        update["proxmox_check"] = ProxmoxCheck(checked=check.checked, vm_node=check.vm_node,
                                               mismatches=tuple(check.mismatches), error=check.error,
                                               nic_check="enforce" if check.enforce else "warn",
                                               vm_changes=tuple(check.vm_changes) or None,
                                               vm_write=check.vm_write or previous_write(previous))
        wanted[states.VM_NICS_MATCH] = check.condition
    drop: tuple[str, ...] = ()
    named = (cr.spec.get("proxmox") or {}).get("cluster")
    gone = cluster_files is not None and named is not None and named not in cluster_files
    if check is None and (not named or gone):
        # Names no VM (any more), or its cluster file is gone (the node file is blocked for it): a
        # check made against that cluster is not true any more, nothing is claimed about the VM.
        update["proxmox_check"] = None
        drop = (states.VM_NICS_MATCH,)
    if validity is not None:
        wanted[CONFIG_VALID] = validity.condition
        if validity.path:
            update["source_path"] = validity.path
    kept = tuple(c for c in previous.conditions if c.type not in drop)
    update["conditions"] = conditions.merge(kept, wanted, generation=cr.generation, now=now)
    return previous.model_copy(update=update)


def _drift(previous: NodeStatus, state: NodeState, update: dict[str, Any],
           wanted: dict[str, tuple[ConditionStatus, str, str]]) -> None:
    """status.drift and condition Drifted: what a verify Job found this cycle, the repair it
    started, or that an apply Job repaired the drift the last check found."""
    recorded = previous.drift or DriftCheck()
    found = state.drift
    if found is not None:
        recorded = recorded.model_copy(update={"last_verified": found.at, "job": found.job,
                                               "files": found.files or None})
        if found.outcome == "drifted":
            wanted[states.DRIFTED] = (*states.DRIFT_FOUND, found.message)
        elif found.outcome == "in-sync":
            wanted[states.DRIFTED] = (*states.IN_SYNC, "the node's files and live state match its spec")
        else:
            wanted[states.DRIFTED] = (*states.VERIFY_FAILED, found.message)
        if found.result is not None and found.outcome != "failed":
            update["interfaces"] = tuple(
                InterfaceStatus(name=i.name, mac_address=i.mac, device=i.device, state=i.state, error=i.error)
                for i in found.result.interfaces)
    if state.repair and state.repair != recorded.repair:
        recorded = recorded.model_copy(update={"repair": state.repair})
    if found is not None or recorded != (previous.drift or DriftCheck()):
        update["drift"] = recorded
    before = conditions.get(previous.conditions, states.DRIFTED)
    if state.state == "applied" and state.changed and before is not None and before.status == "True":
        wanted[states.DRIFTED] = (*states.DRIFT_REPAIRED, f"repaired by apply Job {state.job}")


# -- clusters -----------------------------------------------------------------------------------


def cluster_state(status: ClusterStatus) -> states.ClusterStateName:
    if status.phase == "Failed":
        return "failed"
    if status.phase == "Ready":
        return "degraded" if status.health == "Degraded" else "verified"
    return "pending"


def cluster_status(cr: LiveCR, *, outcome: ClusterOutcome | None, validity: Validity | None,
                   now: datetime | None = None) -> ClusterStatus:
    """The cluster's whole status: the verification's fields when it ran this cycle, else the
    previous ones; ConfigValid and sourcePath from the file."""
    previous = parse(ClusterStatus, cr.status)
    base = previous
    if outcome is not None and outcome.due_reason is not None and outcome.status is not None:
        base = parse(ClusterStatus, outcome.status)  # verified (or failed to) this cycle
    wanted: dict[str, tuple[ConditionStatus, str, str]] = {}
    update: dict[str, Any] = {}
    if validity is not None:
        wanted[CONFIG_VALID] = validity.condition
        if validity.path:
            update["source_path"] = validity.path
    if conditions.get(base.conditions, "Ready") is None:
        row = states.CLUSTER_STATES["pending"]
        wanted["Ready"] = (*row.ready, "not verified yet")
        update["phase"] = row.phase
    update["conditions"] = conditions.merge(base.conditions, wanted, generation=cr.generation, now=now)
    return base.model_copy(update=update)


# -- memo -----------------------------------------------------------------------------------------


class StatusMemo:
    """Each node's status from the last cycle, with everything it was computed from.

    A node whose inputs all equal the last cycle's (its live status, generation and the spec facts
    the status records, its rollout state, VM NIC check and file validity) and whose status then
    needed no patch gets the same status again without recomputing it: no model is validated, no
    condition rebuilt, no merge patch diffed. So a quiet cycle validates nothing, and only the
    nodes that changed pay. Equal inputs give an equal status (``node_status`` is a function of
    them; the clock matters only when a condition's status flips, and a flip needs a patch, which is
    never remembered), so the outcome is exactly what recomputing would give.

    Only the inputs and the phase are kept, not the status model: a status that needed no patch
    is the live one, already in the watch cache (the models were 25 MB at 10,000 nodes).
    """

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[tuple[Any, ...], str | None]] = {}
        self._next: dict[str, tuple[tuple[Any, ...], str | None]] = {}
        self.hits = 0  # nodes served from the memo in the last report

    def begin(self) -> None:
        self._next, self.hits = {}, 0

    def get(self, name: str, inputs: tuple[Any, ...]) -> tuple[str | None] | None:
        """``(phase,)`` of the node's status when its inputs are the last cycle's, else None."""
        kept = self._nodes.get(name)
        if kept is not None and kept[0] == inputs:
            self._next[name] = kept
            self.hits += 1
            return (kept[1],)
        return None

    def put(self, name: str, inputs: tuple[Any, ...], status: NodeStatus) -> None:
        self._next[name] = (inputs, status.phase)

    def end(self) -> None:
        self._nodes, self._next = self._next, {}  # nodes gone from the cycle are forgotten


def _node_inputs(cr: LiveCR, state: NodeState | None, check: NodeCheck | None,
                 validity: Validity | None, cluster_files: frozenset[str]) -> tuple[Any, ...]:
    """Everything ``node_status`` reads (but the clock)."""
    proxmox = cr.spec.get("proxmox") or {}
    return (cr.status, cr.generation, len(cr.spec.get("interfaces") or []), bool(proxmox), proxmox.get("cluster"),
            state, check, validity, cluster_files)


# -- writing --------------------------------------------------------------------------------------


def merge_patch(previous: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning ``previous`` into ``wanted`` (None when they are equal). The
    server merges nested objects (RFC 7386), so a key a nested object lost is sent as null."""
    if dict(previous) == dict(wanted):
        return None
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        before = previous.get(key)
        if before != value:
            nested = isinstance(before, Mapping) and isinstance(value, Mapping)
            patch[key] = merge_patch(before, value) if nested else value  # type: ignore[arg-type]
    patch.update({k: None for k in previous if k not in wanted})
    return patch


def report(kube: Kube, validation: ValidationResult, crs: Mapping[str, Iterable[LiveCR]], *,
           rollout: Mapping[str, NodeState], nic_checks: Mapping[str, NodeCheck],
           clusters: Iterable[ClusterOutcome], removed: Iterable[LiveCR] = (),
           now: datetime | None = None, writers: int = 1, memo: StatusMemo | None = None) -> Reported:
    """Compute every object's status, write each with one patch (``writers`` at a time), then
    record Events on transitions.

    ``crs``: kind -> live objects after this cycle's writes (deleted ones left out);
    ``removed``: node objects deleted this cycle (an Event says why, no status is left to write);
    ``memo``: carried from one cycle to the next, so unchanged nodes are not recomputed.
    """
    from reconciler.apply.crs import in_parallel

    done = Reported()
    pending: list[tuple[LiveCR, dict[str, Any]]] = []  # (object, merge patch)
    node_events: list[tuple[LiveCR, NodeState | None, NodeStatus]] = []  # looked at once the writes are done
    cluster_events: list[tuple[LiveCR, ClusterOutcome | None, ClusterStatus]] = []
    node_validity = validity(validation, KIND_NODE)
    # Clusters that still have a file (valid or blocked): a check against any other one is stale.
    cluster_files = (frozenset(validation.desired.clusters)
                     | (validation.desired.blocked.get(KIND_CLUSTER) or frozenset()))
    if memo is not None:
        memo.begin()
    for cr in sorted(crs.get(KIND_NODE, ()), key=lambda c: c.name):
        state, check, valid = rollout.get(cr.name), nic_checks.get(cr.name), node_validity.get(cr.name)
        inputs = _node_inputs(cr, state, check, valid, cluster_files) if memo is not None else ()
        kept = memo.get(cr.name, inputs) if memo is not None else None
        if kept is not None:
            # The same status as last cycle, which equalled the live one: no patch, no transition,
            # so no Event either (each event below needs a written patch or a changed condition).
            done.unchanged[cr.name] = kept[0]
            continue
        wanted = node_status(cr, state=state, check=check, validity=valid, now=now, cluster_files=cluster_files)
        done.nodes[cr.name] = wanted
        patch = merge_patch(cr.status, wanted.dump())
        if patch is not None:
            pending.append((cr, patch))
        elif memo is not None:
            memo.put(cr.name, inputs, wanted)
        node_events.append((cr, state, wanted))
    if memo is not None:
        memo.end()
    cluster_validity = validity(validation, KIND_CLUSTER)
    outcomes = {o.name: o for o in clusters}
    for cr in sorted(crs.get(KIND_CLUSTER, ()), key=lambda c: c.name):
        outcome = outcomes.get(cr.name)
        wanted_cluster = cluster_status(cr, outcome=outcome, validity=cluster_validity.get(cr.name), now=now)
        done.clusters[cr.name] = wanted_cluster
        patch = merge_patch(cr.status, wanted_cluster.dump())
        if patch is not None:
            pending.append((cr, patch))
        cluster_events.append((cr, outcome, wanted_cluster))

    results = in_parallel(lambda item: _write(kube, *item), pending, writers)
    written = {(cr.kind, cr.name) for (cr, _), ok in zip(pending, results, strict=True) if ok}
    done.writes = len(written)
    _events(kube, node_events, cluster_events, removed, rollout, written, now, done)
    return done


def _events(kube: Kube, node_events: list[tuple[LiveCR, NodeState | None, NodeStatus]],
            cluster_events: list[tuple[LiveCR, ClusterOutcome | None, ClusterStatus]], removed: Iterable[LiveCR],
            rollout: Mapping[str, NodeState], written: set[tuple[str, str]], now: datetime | None,
            done: Reported) -> None:
    """The Events of this cycle's transitions, once the status writes are done (``written``)."""
    for cr, state, node in node_events:
        # A state the status already shows (an unschedulable node seen again) is no transition.
        if state is not None and state.changed and (cr.kind, cr.name) in written:
            _state_event(kube, cr, state, now, done)
        _validity_event(kube, cr, node.conditions, now, done)
        if (cr.kind, cr.name) in written:
            _vm_nics_event(kube, cr, node.conditions, now, done)
            _vm_write_event(kube, cr, node, now, done)
            _drift_event(kube, cr, node.conditions, now, done)
    for cr, outcome, cluster in cluster_events:
        if outcome is not None and outcome.due_reason is not None:  # verified (or tried) this cycle
            _cluster_event(kube, cr, parse(ClusterStatus, cr.status), cluster, now, done)
        _validity_event(kube, cr, cluster.conditions, now, done)
    for cr in removed:
        state = rollout.get(cr.name)
        if state is not None and state.changed:
            _state_event(kube, cr, state, now, done)


def _write(kube: Kube, cr: LiveCR, patch: dict[str, Any]) -> bool:
    """One status patch; False when it failed (the object may be gone: the next cycle recomputes)."""
    from reconciler.kube.client import KubeError

    try:
        kube.patch_status(cr.kind, cr.name, patch)
    except KubeError as exc:
        log.warning("%s/%s: status not written: %s", cr.kind, cr.name, exc)
        return False
    return True


def _state_event(kube: Kube, cr: LiveCR, state: NodeState, now: datetime | None, done: Reported) -> None:
    row = states.node_row(state.state)
    if row.event:
        _event(kube, cr, row.event, state.message or row.event, row.warning, now, done)


def _event(kube: Kube, cr: LiveCR, reason: str, message: str, warning: bool, now: datetime | None,
           done: Reported) -> None:
    kube.create_event(events.event(cr.kind, cr.name, kube.namespace, reason=reason, message=message,
                                   warning=warning, uid=cr.uid, now=now))
    done.events.append((cr.kind, cr.name, reason))


def _validity_event(kube: Kube, cr: LiveCR, after: Iterable[Any], now: datetime | None, done: Reported) -> None:
    old = conditions.get(cr.status.get("conditions"), CONFIG_VALID)
    new = conditions.get(after, CONFIG_VALID)
    if new is None or (old is not None and old.status == new.status):
        return
    if new.status == "False":
        _event(kube, cr, states.EVENT_INVALID, new.message, True, now, done)
    elif old is not None:  # valid again (a first "valid" is no news)
        _event(kube, cr, states.EVENT_VALID, new.message, False, now, done)


def previous_write(previous: NodeStatus) -> str | None:
    """The last VM NIC write recorded (kept when this run of the reconciler made none yet)."""
    return previous.proxmox_check.vm_write if previous.proxmox_check is not None else None


def _vm_write_event(kube: Kube, cr: LiveCR, after: NodeStatus, now: datetime | None, done: Reported) -> None:
    """manageNics: a new write to the VM's NICs (Normal) or a refused one (Warning)."""
    before = (cr.status.get("proxmoxCheck") or {}).get("vmWrite")
    written = after.proxmox_check.vm_write if after.proxmox_check is not None else None
    if written and written != before:
        if written.startswith("updated "):  # VmWrite.message
            _event(kube, cr, states.EVENT_VM_NICS_UPDATED, written, False, now, done)
        elif written.startswith("restored "):
            _event(kube, cr, states.EVENT_VM_NICS_RESTORED, written, True, now, done)
        else:
            _event(kube, cr, states.EVENT_VM_NICS_UPDATE_FAILED, written, True, now, done)


def _vm_nics_event(kube: Kube, cr: LiveCR, after: Iterable[Any], now: datetime | None, done: Reported) -> None:
    """VMNicsMatch turned False (what differs, a Warning, under enforce and warn alike) or True again."""
    old = conditions.get(cr.status.get("conditions"), states.VM_NICS_MATCH)
    new = conditions.get(after, states.VM_NICS_MATCH)
    if new is None or (old is not None and (old.status, old.message) == (new.status, new.message)):
        return
    if new.status == "False":
        _event(kube, cr, states.EVENT_VM_NICS_DIFFER, new.message, True, now, done)
    elif new.status == "True" and old is not None and old.status == "False":
        _event(kube, cr, states.EVENT_VM_NICS_MATCH, new.message, False, now, done)


def _drift_event(kube: Kube, cr: LiveCR, after: Iterable[Any], now: datetime | None, done: Reported) -> None:
    """Drifted turned True (what differs, a Warning; again when that changes), or False after True:
    repaired by an apply Job, or found in sync by a later check."""
    old = conditions.get(cr.status.get("conditions"), states.DRIFTED)
    new = conditions.get(after, states.DRIFTED)
    if new is None or (old is not None and (old.status, old.message) == (new.status, new.message)):
        return
    if new.status == "True":
        _event(kube, cr, states.EVENT_DRIFT_DETECTED, new.message, True, now, done)
    elif new.status == "False" and old is not None and old.status == "True":
        reason = states.EVENT_DRIFT_REPAIRED if new.reason == states.DRIFT_REPAIRED[1] else states.EVENT_DRIFT_RESOLVED
        _event(kube, cr, reason, new.message, False, now, done)


def _cluster_event(kube: Kube, cr: LiveCR, before: ClusterStatus, after: ClusterStatus, now: datetime | None,
                   done: Reported) -> None:
    """On a verification that changed the cluster's state (or the reason it failed)."""
    old, new = conditions.get(before.conditions, "Ready"), conditions.get(after.conditions, "Ready")
    was, now_state = cluster_state(before), cluster_state(after)
    if was == now_state and (old.reason if old else None) == (new.reason if new else None):
        return
    row = states.cluster_row(now_state)
    if row.event:
        _event(kube, cr, row.event, new.message if new else row.event, row.warning, now, done)
