"""Cross-check: are the MACs a node declares really on its Proxmox VM (and on the ``netN`` named)?

For every node with ``spec.proxmox.{cluster, vmid}`` whose cluster verified OK::

    with verified_clients(kube, desired) as clients:       # Secrets read as for registration
        checks = check_nodes(desired, clients)             # {node name: NodeCheck}

The checks reach ``status.proxmoxCheck`` and condition ``VMNicsMatch`` through the report stage
(``reconciler.report.status``), with everything else the cycle learned about each node: this
module writes no status. ``gate`` is what the reconcile uses: it reads the VM read cache
(``vmreads.VmReads``) and never waits for Proxmox; ``check_now`` is for one-shot commands.

Cost per call: one ``GET /cluster/resources?type=vm`` per cluster, then one
``GET /nodes/{node}/qemu/{vmid}/config`` per node whose VM exists. Clusters are checked in
parallel; nodes of one cluster one after the other (one connection).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

from reconciler.apply.proxmox import nicsync
from reconciler.apply.proxmox.client import ProxmoxClient
from reconciler.apply.proxmox.credentials import ClientFactory, SecretReader, client_for, read_credentials
from reconciler.apply.proxmox.errors import ProxmoxError
from reconciler.apply.proxmox.registration import MAX_PARALLEL, ClusterKube, ready_condition
from reconciler.apply.proxmox.vmnics import DesiredNic, nic_mismatches
from reconciler.apply.proxmox.vmreads import VmRead, VmReads
from reconciler.config.models import NodeConfig, ProxmoxCluster
from reconciler.config.repo import KIND_CLUSTER
from reconciler.config.validation import DesiredState

log = logging.getLogger(__name__)


# VMNicsMatch condition reasons
MATCH, MISMATCH = "NicsMatch", "NicsDiffer"
CLUSTER_NOT_VERIFIED, READ_PENDING, READ_FAILED = "ClusterNotVerified", "VMReadPending", "VMReadFailed"
UPDATING = "VMNicsUpdating"  # manageNics: the reconciler is making the VM's NICs match the file
PERMISSION_DENIED = "PermissionDenied"  # the credentials may not see or read the VM
CONDITION = "VMNicsMatch"
RECHECK_AFTER = 15.0  # seconds: a node held for a mismatch has its VM read again this often


@dataclass(frozen=True)
class NodeCheck:
    """The outcome for one node; ``checked`` is False when the check could not run (``error``)."""

    node: str
    cluster: str
    vmid: int
    checked: bool
    vm_node: str | None = None  # the Proxmox node the VM runs on
    vm_name: str | None = None
    mismatches: tuple[str, ...] = ()
    error: str | None = None
    reason: str = ""  # the VMNicsMatch reason (MATCH, MISMATCH, CLUSTER_NOT_VERIFIED, ...)
    enforce: bool = True  # spec.proxmox.nicCheck is enforce (the default)
    age: float | None = None  # seconds since the VM was read
    vm_changes: tuple[str, ...] = ()  # manageNics: what will be written to the VM (one line per slot)
    vm_values: tuple[tuple[str, str], ...] = ()  # manageNics: the netN values of that write
    vm_deletes: tuple[str, ...] = ()  # manageNics: the slots that write removes (spec.proxmox.absent)
    vm_undo: tuple[tuple[str, str], ...] = ()  # manageNics: the values that put the VM back
    vm_undo_delete: tuple[str, ...] = ()
    vm_digest: str | None = None  # the digest of the config the write was planned from
    vm_node_for_write: str | None = None
    vm_write: str | None = None  # manageNics: the last write made to the VM's NICs, and how it went

    @property
    def waiting(self) -> bool:
        """Held only until something else happens (a read, the VM NIC update), not until the file
        or the VM is fixed by someone."""
        return not self.checked or bool(self.vm_changes)

    @property
    def ok(self) -> bool:
        return self.checked and not self.mismatches and self.error is None

    @property
    def holds(self) -> bool:
        """Under enforce the node gets no Job until the check passes."""
        return self.enforce and not self.ok

    @property
    def summary(self) -> str:
        """One line for plan output."""
        where = f"VM {self.vmid} on {self.cluster}" + (f"/{self.vm_node}" if self.vm_node else "")
        if not self.checked:
            return f"{where}: not checked ({self.error})"
        if self.vm_changes:
            return f"{where}: updating the VM's NICs (spec.proxmox.manageNics): " + "; ".join(self.vm_changes)
        if not self.mismatches:
            return f"{where}: NICs match"
        return f"{where}: " + "; ".join(self.mismatches)

    @property
    def condition(self) -> tuple[Literal["True", "False", "Unknown"], str, str]:
        """The VMNicsMatch condition: (status, reason, message)."""
        if self.vm_changes:
            return "Unknown", UPDATING, self.summary
        if self.ok:
            return "True", self.reason or MATCH, self.summary
        if self.checked:
            return "False", self.reason or MISMATCH, self.summary
        return "Unknown", self.reason or READ_FAILED, self.summary

    @property
    def hold_message(self) -> str:
        """Why the node's Job is held (the rollout's message for it)."""
        if self.vm_changes:
            return f"waiting for the VM NIC update: {self.summary}"
        if self.checked:
            return f"held: the VM's NICs differ from the file (spec.proxmox.nicCheck: enforce): {self.summary}"
        return f"waiting for the VM NIC check (spec.proxmox.nicCheck: enforce): {self.summary}"


def desired_nics(node: NodeConfig) -> list[DesiredNic]:
    out = []
    for i in node.spec.interfaces:
        vm = i.proxmox
        out.append(
            DesiredNic(
                mac=i.mac_address,
                proxmox_net=i.slot,
                name=i.name,
                bridge=vm.bridge if vm else None,
                vlan=vm.vlan if vm else None,
                mtu=vm.mtu if vm else None,
                model=vm.model if vm else None,
                guest_mtu=i.mtu,
                firewall=vm.firewall if vm else None,
            )
        )
    return out


def _check_cluster(cluster: str, client: ProxmoxClient, nodes: list[NodeConfig]) -> list[NodeCheck]:
    refs = [(n, n.spec.proxmox) for n in nodes if n.spec.proxmox is not None]
    try:
        locations = client.vm_locations()
    except ProxmoxError as exc:
        return [NodeCheck(n.name, cluster, ref.vmid, False, error=exc.message) for n, ref in refs]
    out: list[NodeCheck] = []
    for node, ref in refs:
        where = locations.get(ref.vmid)
        if where is None:
            try:
                client.check_visible(ref.vmid)  # PVE hides the VMs a token may not see
            except ProxmoxError as exc:
                out.append(NodeCheck(node.name, cluster, ref.vmid, False, error=exc.message, reason=exc.reason))
                continue
            missing = (f"VM {ref.vmid} does not exist on {cluster}",)
            out.append(NodeCheck(node.name, cluster, ref.vmid, True, mismatches=missing))
            continue
        try:
            config = client.vm_config(where.node, ref.vmid)
        except ProxmoxError as exc:
            out.append(NodeCheck(node.name, cluster, ref.vmid, False, vm_node=where.node, error=exc.message))
            continue
        problems = nic_mismatches(ref.vmid, desired_nics(node), config.nics)
        out.append(
            NodeCheck(
                node.name,
                cluster,
                ref.vmid,
                True,
                vm_node=where.node,
                vm_name=where.name or None,
                mismatches=tuple(problems),
            )
        )
    return out


def check_nodes(desired: DesiredState, clients: Mapping[str, ProxmoxClient]) -> dict[str, NodeCheck]:
    """Check every node that names a Proxmox VM; nodes of a cluster without a client are not checked."""
    by_cluster: dict[str, list[NodeConfig]] = {}
    for name in sorted(desired.nodes):
        node = desired.nodes[name]
        if node.spec.proxmox is not None:
            by_cluster.setdefault(node.spec.proxmox.cluster, []).append(node)
    results: dict[str, NodeCheck] = {}
    work = [(c, clients[c], nodes) for c, nodes in sorted(by_cluster.items()) if c in clients]
    for cluster, nodes in sorted(by_cluster.items()):
        if cluster in clients:
            continue
        for node in nodes:
            assert node.spec.proxmox is not None
            error = f"Proxmox cluster {cluster} is not verified (see its ProxmoxCluster status)"
            results[node.name] = NodeCheck(node.name, cluster, node.spec.proxmox.vmid, False, error=error)
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(work)))) as pool:
        for checks in pool.map(lambda item: _check_cluster(*item), work):
            for check in checks:
                results[check.node] = check
    for check in results.values():
        if check.mismatches:
            log.warning("node %s: %s", check.node, "; ".join(check.mismatches))
    return dict(sorted(results.items()))


def _verified(cr: Mapping[str, Any]) -> bool:
    """Ready=True for the CR's current generation."""
    condition = ready_condition(cr.get("status") or {}) or {}
    generation = (cr.get("metadata") or {}).get("generation")
    return condition.get("status") == "True" and (
        generation is None or condition.get("observedGeneration") == generation
    )


@contextlib.contextmanager
def verified_clients(
    kube: ClusterKube,
    desired: DesiredState,
    *,
    live: Iterable[Mapping[str, Any]] | None = None,
    client_factory: ClientFactory = ProxmoxClient,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> Iterator[dict[str, ProxmoxClient]]:
    """Clients for the clusters whose CR says Ready for its current spec; closed on exit.

    A cluster whose Secret cannot be read now is left out (its nodes report "not verified").
    """
    crs = live if live is not None else kube.list_owned(KIND_CLUSTER)
    ready = {str((cr.get("metadata") or {}).get("name")) for cr in crs if _verified(cr)}
    clients: dict[str, ProxmoxClient] = {}
    try:
        for name in sorted(ready & set(desired.clusters)):
            cluster = desired.clusters[name]
            try:
                credentials = read_credentials(kube.read_secret, cluster)
                clients[name] = client_for(
                    cluster,
                    credentials,
                    client_factory=client_factory,
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                )
            except ProxmoxError as exc:
                log.warning("ProxmoxCluster %s: no client for the VM check: %s", name, exc.message)
        yield clients
    finally:
        for client in clients.values():
            client.close()


def check_verified_nodes(
    kube: ClusterKube, desired: DesiredState, *, live: Iterable[Mapping[str, Any]] | None = None, **kwargs: Any
) -> dict[str, NodeCheck]:
    """``check_now`` with the cluster CRs (listed when ``live`` is omitted) and Secrets of ``kube``."""
    clusters = list(live if live is not None else kube.list_owned(KIND_CLUSTER))
    return check_now(desired, clusters, kube.read_secret, **kwargs)


def check_now(
    desired: DesiredState,
    clusters: Iterable[Mapping[str, Any]],
    read_secret: SecretReader,
    *,
    client_factory: ClientFactory = ProxmoxClient,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    manage: bool = False,
) -> dict[str, NodeCheck]:
    """For one-shot commands (``plan``, ``apply --once``): ``gate`` with fresh reads, waiting for
    them up to twice the longest per-request timeout (a VM still not answered is "not read yet").
    ``manage`` (``apply``, never ``plan``): one round of manageNics writes is made and waited for;
    the checks then describe the VM after it (a NIC attached link-down is brought up next call)."""
    crs = list(clusters)
    longest = max([connect_timeout + read_timeout] + [
        (c.spec.connect_timeout_seconds or connect_timeout) + (c.spec.read_timeout_seconds or read_timeout)
        for c in desired.clusters.values()])
    with VmReads(client_factory=client_factory, connect_timeout=connect_timeout, read_timeout=read_timeout) as reads:
        checks = gate(desired, crs, reads, read_secret)
        if any(c.reason == READ_PENDING for c in checks.values()):
            reads.wait(2 * longest + 1)
            checks = gate(desired, crs, reads, read_secret)
        if manage and any(c.vm_changes for c in checks.values()):
            gate(desired, crs, reads, read_secret, manage=True)  # queues the writes (and re-reads)
            reads.wait(2 * longest + 1)
            checks = gate(desired, crs, reads, read_secret)
    for check in checks.values():
        if check.mismatches:
            log.warning("node %s: %s", check.node, "; ".join(check.mismatches))
    return checks


def restore_failed(desired: DesiredState, reads: VmReads, read_secret: SecretReader,
                   failed: Iterable[str]) -> list[str]:
    """manageNics: for each node whose Job just failed, put its VM's NICs back as they were before
    the reconciler's last change to them (the guest side did not work with it). Returns the nodes
    whose VM is being restored."""
    out = []
    for name in sorted(set(failed)):
        node = desired.nodes.get(name)
        ref = node.spec.proxmox if node is not None else None
        if ref is None or ref.cluster not in desired.clusters:
            continue
        cluster = desired.clusters[ref.cluster]
        if not ref.manages_nics(cluster.spec.manage_nics):
            continue
        try:
            credentials = read_credentials(read_secret, cluster)
        except ProxmoxError as exc:
            log.warning("node %s: cannot restore VM %s's NICs: %s", name, ref.vmid, exc.message)
            continue
        if reads.restore_last(cluster, credentials, ref.vmid, f"the Job of node {name} failed"):
            log.warning("node %s: its Job failed; restoring the NICs of VM %s", name, ref.vmid)
            out.append(name)
    return out


# --- the gate: checks from the VM read cache, every cycle, without waiting for Proxmox -----------


def _cluster_state(cr: Mapping[str, Any] | None, cluster: str) -> str | None:
    """None when the cluster is verified for its current spec, else why not."""
    if cr is None:
        return f"Proxmox cluster {cluster} is not registered yet"
    if _verified(cr):
        return None
    condition = ready_condition(cr.get("status") or {}) or {}
    if not condition:
        return f"Proxmox cluster {cluster} is not verified yet"
    if condition.get("status") == "True":
        return f"Proxmox cluster {cluster} is not verified for its current spec yet"
    return f"Proxmox cluster {cluster} is not verified ({condition.get('reason')}: {condition.get('message')})"


def _from_read(node: NodeConfig, entry: VmRead, now: float, *, cluster_manages: bool | None = None) -> NodeCheck:
    ref = node.spec.proxmox
    assert ref is not None
    enforce, age = ref.enforce, entry.age(now)
    if entry.error is not None:
        vm_node = entry.location.node if entry.location else None
        reason = PERMISSION_DENIED if entry.error.reason == PERMISSION_DENIED else READ_FAILED
        return NodeCheck(node.name, ref.cluster, ref.vmid, False, vm_node=vm_node, error=entry.error.message,
                         reason=reason, enforce=enforce, age=age)
    if entry.config is None or entry.location is None:
        missing = (f"VM {ref.vmid} does not exist on {ref.cluster}",)
        return NodeCheck(node.name, ref.cluster, ref.vmid, True, mismatches=missing, reason=MISMATCH,
                         enforce=enforce, age=age)
    wanted = desired_nics(node)
    problems = tuple(nic_mismatches(ref.vmid, wanted, entry.config.nics))
    check = NodeCheck(node.name, ref.cluster, ref.vmid, True, vm_node=entry.location.node,
                      vm_name=entry.location.name or None, mismatches=problems,
                      reason=MISMATCH if problems else MATCH, enforce=enforce, age=age)
    if not ref.manages_nics(cluster_manages):
        return check
    plan = nicsync.plan_nics(ref.vmid, wanted, entry.config.nics, ref.absent or ())
    if plan.refused:  # bad input: nothing is written, the node is held until the file or the VM is fixed
        return replace(check, mismatches=problems + plan.refused, reason=MISMATCH)
    return replace(check, vm_changes=plan.summaries, vm_values=tuple(sorted(plan.values.items())),
                   vm_deletes=plan.deletes, vm_undo=plan.undo, vm_undo_delete=plan.undo_delete,
                   vm_digest=entry.config.digest, vm_node_for_write=entry.location.node)


def _checks_from_reads(desired: DesiredState, cluster: str, nodes: list[NodeConfig], reads: VmReads, now: float,
                       recheck_after: float) -> tuple[dict[str, NodeCheck], list[int], list[NodeCheck]]:
    """The checks of one verified cluster's nodes from what ``reads`` holds; the VM ids to read
    again (held for a mismatch or a failed read) and the checks with a VM NIC change to write."""
    results: dict[str, NodeCheck] = {}
    retry: list[int] = []
    writes: list[NodeCheck] = []
    for node in nodes:
        ref = node.spec.proxmox
        assert ref is not None
        entry = reads.get(cluster, ref.vmid)
        if entry is None:
            # no age in the message: the status must not change just because a cycle passed
            results[node.name] = NodeCheck(node.name, cluster, ref.vmid, False,
                                           error=f"VM {ref.vmid} has not been read yet",
                                           reason=READ_PENDING, enforce=ref.enforce)
            continue
        check = _from_read(node, entry, now, cluster_manages=desired.clusters[cluster].spec.manage_nics)
        written = reads.last_write(cluster, ref.vmid)
        if written is not None:
            check = replace(check, vm_write=written.message)
        undone = reads.failed_change(cluster, ref.vmid)
        if check.vm_changes and undone == "; ".join(check.vm_changes):
            # The node's Job failed with exactly this change and it was undone: not made again
            # until the file (or the VM) changes; the node is held, saying so.
            why = f"the node's Job failed after this VM NIC change, so it was undone: {undone}; fix the file"
            check = replace(check, vm_changes=(), vm_values=(), vm_deletes=(), reason=MISMATCH,
                            mismatches=(*check.mismatches, why))
        results[node.name] = check
        if check.vm_changes:
            refused_lately = written is not None and written.error is not None and now - written.at < recheck_after
            if not refused_lately:  # a write PVE refused is tried again after recheck_after
                writes.append(check)
        elif not check.ok:
            retry.append(ref.vmid)
    return results, retry, writes


def _dispatch(cluster: ProxmoxCluster, nodes: list[NodeConfig], results: dict[str, NodeCheck], reads: VmReads,
              read_secret: SecretReader, due: set[int], writes: list[NodeCheck]) -> None:
    """Queues the reads that are due and the VM NIC writes (manageNics: one PUT per VM, then a
    fresh read of it) on ``reads``. Without credentials nothing is queued and the nodes still
    waiting for a first read say why (in ``results``)."""
    try:
        credentials = read_credentials(read_secret, cluster)
    except ProxmoxError as exc:
        for node in nodes:
            if results[node.name].reason == READ_PENDING:
                ref = node.spec.proxmox
                assert ref is not None
                results[node.name] = NodeCheck(node.name, results[node.name].cluster, ref.vmid, False,
                                               error=exc.message, reason=exc.reason, enforce=ref.enforce)
        return
    reads.request(cluster, credentials, due - {c.vmid for c in writes})
    for check in writes:
        assert check.vm_node_for_write is not None
        reads.write(cluster, credentials, check.vmid, node=check.vm_node_for_write,
                    values=dict(check.vm_values), delete=check.vm_deletes, digest=check.vm_digest,
                    undo=check.vm_undo, undo_delete=check.vm_undo_delete, summary="; ".join(check.vm_changes))


def gate(
    desired: DesiredState,
    clusters: Iterable[Mapping[str, Any]],
    reads: VmReads,
    read_secret: SecretReader,
    *,
    recheck_after: float = RECHECK_AFTER,
    manage: bool = False,
) -> dict[str, NodeCheck]:
    """The VM NIC check of every node that names a VM, from what ``reads`` knows now.

    Never waits for Proxmox: VMs whose read is missing or stale are queued on ``reads`` (and a
    node held for a mismatch or a failed read is re-read every ``recheck_after`` seconds, so a
    fixed VM is noticed soon). A node whose cluster is not verified is not checked; its reason
    says why. Clusters that are no longer verified (or whose file is gone) are dropped from
    ``reads``.
    """
    crs = {str((cr.get("metadata") or {}).get("name")): cr for cr in clusters}
    by_cluster: dict[str, list[NodeConfig]] = {}
    for name in sorted(desired.nodes):
        node = desired.nodes[name]
        if node.spec.proxmox is not None:
            by_cluster.setdefault(node.spec.proxmox.cluster, []).append(node)
    results: dict[str, NodeCheck] = {}
    verified: list[str] = []
    now = time.time()
    for cluster, nodes in sorted(by_cluster.items()):
        why = _cluster_state(crs.get(cluster), cluster) if cluster in desired.clusters else (
            f"Proxmox cluster {cluster} has no file in clusters/")
        if why is not None:
            for node in nodes:
                ref = node.spec.proxmox
                assert ref is not None
                results[node.name] = NodeCheck(node.name, cluster, ref.vmid, False, error=why,
                                               reason=CLUSTER_NOT_VERIFIED, enforce=ref.enforce)
            continue
        verified.append(cluster)
        checks, retry, writes = _checks_from_reads(desired, cluster, nodes, reads, now, recheck_after)
        results.update(checks)
        due = set(reads.due(cluster, [n.spec.proxmox.vmid for n in nodes if n.spec.proxmox]))
        due |= set(reads.due(cluster, retry, refresh_after=recheck_after))
        writes = writes if manage else []
        if due or writes:
            _dispatch(desired.clusters[cluster], nodes, results, reads, read_secret, due, writes)
    reads.retain(verified)
    return dict(sorted(results.items()))
