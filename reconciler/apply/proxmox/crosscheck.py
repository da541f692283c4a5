"""Cross-check: are the MACs a node declares really on its Proxmox VM (and on the ``netN`` named)?

For every node with ``spec.proxmox.{cluster, vmid}`` whose cluster verified OK::

    with verified_clients(kube, desired) as clients:       # Secrets read as for registration
        checks = check_nodes(desired, clients)             # {node name: NodeCheck}

The checks reach ``status.proxmoxCheck`` through the report stage (``reconciler.report.status``),
with everything else the cycle learned about each node: this module writes no status.

Cost per call: one ``GET /cluster/resources?type=vm`` per cluster, then one
``GET /nodes/{node}/qemu/{vmid}/config`` per node whose VM exists. Clusters are checked in
parallel; nodes of one cluster one after the other (one connection).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reconciler.apply.proxmox.client import ProxmoxClient
from reconciler.apply.proxmox.credentials import ClientFactory, client_for, read_credentials
from reconciler.apply.proxmox.errors import ProxmoxError
from reconciler.apply.proxmox.registration import MAX_PARALLEL, ClusterKube, ready_condition
from reconciler.apply.proxmox.vmnics import DesiredNic, nic_mismatches
from reconciler.config.models import NodeConfig
from reconciler.config.repo import KIND_CLUSTER
from reconciler.config.validation import DesiredState

log = logging.getLogger(__name__)


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

    @property
    def ok(self) -> bool:
        return self.checked and not self.mismatches and self.error is None

    @property
    def summary(self) -> str:
        """One line for plan output."""
        where = f"VM {self.vmid} on {self.cluster}" + (f"/{self.vm_node}" if self.vm_node else "")
        if not self.checked:
            return f"{where}: not checked ({self.error})"
        if not self.mismatches:
            return f"{where}: MACs match"
        return f"{where}: " + "; ".join(self.mismatches)


def desired_nics(node: NodeConfig) -> list[DesiredNic]:
    return [DesiredNic(mac=i.mac_address, proxmox_net=i.proxmox_net, name=i.name) for i in node.spec.interfaces]


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
    """``verified_clients`` + ``check_nodes`` in one call."""
    with verified_clients(kube, desired, live=live, **kwargs) as clients:
        return check_nodes(desired, clients)
