"""Typed ``status`` of ``MultiNicNodeConfig`` and ``ProxmoxCluster``: the one model per kind.

The reconciler is the only writer, so these models are the source of the status contract: the
JSON Schemas in ``schemas/*-status.schema.json`` are generated from them (``reconciler.status.schema``)
and the CRDs' status schemas from those. Field docstrings are the schema descriptions.

Reading is lenient (``extra="ignore"``: a field an older release wrote is dropped, not fatal);
``dump()`` is the JSON the apiserver stores, without absent fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from reconciler.frozen import FrozenModel

ConditionStatus = Literal["True", "False", "Unknown"]
NodePhase = Literal["Pending", "Applying", "Ready", "Failed", "Stalled", "Removing", "Suspended", "Held", "Drifted"]
ClusterPhase = Literal["Pending", "Ready", "Failed"]
Health = Literal["Healthy", "Degraded", "Unreachable", "AuthenticationFailed", "TLSFailure", "CredentialsMissing",
                 "PermissionDenied", "Timeout", "APIError", "InvalidConfiguration"]

REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
DATE_TIME = {"format": "date-time"}
INT64 = {"format": "int64"}


class _Status(FrozenModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore",
                              use_attribute_docstrings=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(_Status):
    """A metav1.Condition. Nodes: Ready, Reconciling, Stalled, ConfigValid, VMNicsMatch, Drifted; clusters:
    Ready, ConfigValid."""

    type: Annotated[str, Field(max_length=316)]
    """Condition type: Ready, Reconciling, Stalled, ConfigValid, VMNicsMatch or Drifted."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: Annotated[int | None, Field(ge=0, json_schema_extra=INT64)] = None
    """metadata.generation the condition was computed for."""
    last_transition_time: Annotated[str, Field(json_schema_extra=DATE_TIME)]
    """When the status last changed (not when the condition was last computed)."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
    """CamelCase reason from the state table (e.g. Applied, ApplyFailed, ValidationFailed)."""
    message: Annotated[str, Field(max_length=32768)]
    """Human-readable details (for ConfigValid=False: file:line and the diagnostics)."""


class InterfaceStatus(_Status):
    """The node agent's outcome for one interface."""

    name: str
    """Interface name from the spec."""
    mac_address: str | None = None
    """MAC address from the spec."""
    device: str | None = None
    """Device the MAC was found on."""
    state: str | None = None
    """What the agent did: applied, unchanged, removed or error."""
    error: str | None = None
    """Why the interface failed."""


class ProxmoxCheck(_Status):
    """The VM NIC check: do the node's interfaces match its Proxmox VM's netN devices (MAC, slot,
    bridge, VLAN tag, MTU, model, link)? Condition VMNicsMatch summarises it."""

    checked: bool | None = None
    """Whether the check ran (false: see error)."""
    vm_node: str | None = None
    """Proxmox node the VM runs on."""
    mismatches: tuple[str, ...] | None = None
    """What differs: a MAC not on the VM, on another slot, another bridge, VLAN tag, MTU or model."""
    error: str | None = None
    """Why the check could not run."""
    nic_check: Literal["enforce", "warn"] | None = None
    """spec.proxmox.nicCheck in effect: enforce (a difference holds the node's Job) or warn."""
    vm_changes: tuple[str, ...] | None = None
    """spec.proxmox.manageNics: the changes to the VM's netN devices being made now, one per slot."""
    vm_write: str | None = None
    """spec.proxmox.manageNics: the last change the reconciler made to the VM's NICs, and its outcome."""


class DriftCheck(_Status):
    """The last host drift check (spec.drift in reconciler.yaml): a verify-only node Job compared the
    node's files and live state with its spec. Condition Drifted says what it found."""

    last_verified: Annotated[str | None, Field(json_schema_extra=DATE_TIME)] = None
    """When the last verify Job checked the node (the Drifted condition says what it found)."""
    job: str | None = None
    """Name of the last verify Job whose result is recorded here."""
    files: tuple[str, ...] | None = None
    """Node files that differed from the spec at the last check."""
    repair: str | None = None
    """The verify Job whose drift the node's current apply Job repairs (drift.policy: repair); part of
    that Job's identity."""


class _Common(_Status):
    observed_generation: Annotated[int | None, Field(ge=0, json_schema_extra=INT64)] = None
    """metadata.generation last reconciled to Ready."""
    conditions: Annotated[tuple[Condition, ...], Field(max_length=8)] = ()
    """metav1.Conditions, one per type (Ready first)."""
    applied_revision: str | None = None
    """Git commit of the config repo whose spec is live."""
    source_path: str | None = None
    """File in the config repo this object comes from."""
    last_error: str | None = None
    """Last error, if any (also in the conditions' messages)."""

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        if not out.get("conditions"):
            out.pop("conditions", None)  # no conditions yet: absent, as the apiserver would show it
        return out


class NodeStatus(_Common):
    """Status of a MultiNicNodeConfig, written by the reconciler only (never by the node agent)."""

    phase: NodePhase | None = None
    """Summary: Pending, Applying, Ready, Failed, Stalled, Removing, Suspended, Held (no Job: the VM's NICs
    differ from the file under spec.proxmox.nicCheck: enforce) or Drifted (the last drift check found the
    node's files or live state differing from the applied spec)."""
    spec_hash: str | None = None
    """Hash of the spec the last node Job applied (or failed to apply)."""
    job: str | None = None
    """Name of the last node Job (derived from the change's identity: uid, generation, spec, retry, attempt)."""
    node_name: str | None = None
    """Kubernetes node this object's node Jobs wrote to (a spec.nodeName change cleans it before the new one)."""
    attempted_revision: str | None = None
    """Config commit of the last node Job started: the rollout it belongs to (appliedRevision once Ready)."""
    attempt: Annotated[int | None, Field(ge=0)] = None
    """Automatic retries of the current change so far (transient failures: deadline, eviction, image pull)."""
    next_retry: Annotated[str | None, Field(json_schema_extra=DATE_TIME)] = None
    """When a node Job that failed for a transient reason is retried."""
    interface_count: Annotated[int | None, Field(ge=0)] = None
    """Number of interfaces in the spec."""
    interfaces: Annotated[tuple[InterfaceStatus, ...] | None, Field(max_length=16)] = None
    """Per-interface outcome reported by the node agent."""
    proxmox_check: ProxmoxCheck | None = None
    """Result of checking the interfaces against the Proxmox VM's netN devices."""
    drift: DriftCheck | None = None
    """The last host drift check (spec.drift in reconciler.yaml)."""


class ClusterStatus(_Common):
    """Status of a ProxmoxCluster: what the reconciler verified against the Proxmox VE API."""

    phase: ClusterPhase | None = None
    """Summary: Pending (not verified yet), Ready (verified) or Failed (verification failed)."""
    version: str | None = None
    """Proxmox VE version, e.g. 8.2.4."""
    release: str | None = None
    """Proxmox VE release, e.g. 8.2."""
    cluster_name: str | None = None
    """Cluster name from /cluster/status (absent on a standalone node)."""
    quorate: bool | None = None
    """Whether the cluster has quorum."""
    node_count: Annotated[int | None, Field(ge=0)] = None
    """Number of Proxmox nodes."""
    online_nodes: Annotated[int | None, Field(ge=0)] = None
    """Number of Proxmox nodes online."""
    node_names: tuple[str, ...] | None = None
    """Names of the Proxmox nodes (with clusterName: what tells the same cluster registered twice)."""
    health: Health | None = None
    """Healthy or Degraded when verified; else what failed: Unreachable, AuthenticationFailed,
    TLSFailure, CredentialsMissing, PermissionDenied, Timeout, APIError or InvalidConfiguration."""
    last_verified: Annotated[str | None, Field(json_schema_extra=DATE_TIME)] = None
    """Last verification (the Ready condition says whether it succeeded)."""
    tls_insecure: bool | None = None
    """TLS verification is disabled for this cluster."""
    warnings: tuple[str, ...] | None = None
    """Non-fatal findings (node count, quorum, offline nodes, insecure TLS)."""


S = TypeVar("S", NodeStatus, ClusterStatus)


def parse(model: type[S], raw: Any) -> S:
    """The live status as a model; a status that does not parse (hand-edited) counts as empty."""
    if not isinstance(raw, dict):
        return model()
    try:
        return model.model_validate(raw)
    except ValueError:
        # Keep the conditions (transition times) if they alone are fine.
        try:
            return model.model_validate({"conditions": raw.get("conditions") or []})
        except ValueError:
            return model()
