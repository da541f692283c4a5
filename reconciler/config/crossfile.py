"""Rules that no single schema can express: uniqueness across files, address arithmetic,
route reachability and references between files.

Input is the schema-valid documents with their models; output is findings pointing at fields.
The later file (in path order) gets the error and names the earlier one, so an existing object
stays valid when a new file collides with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.config.diagnostics import Pointer, Severity
from reconciler.config.documents import Document
from reconciler.config.models import NodeConfig, ProxmoxCluster

_RESERVED_NAMES = {"lo", "all", "default", "bonding_masters"}


@dataclass(frozen=True, slots=True)
class Finding:
    doc: Document
    pointer: Pointer
    message: str
    rule: str
    severity: Severity = "error"


def _where(doc: Document, pointer: Pointer) -> str:
    line, _ = doc.locate(pointer)
    return f"{doc.path}:{line}" if line else doc.path


class _Registry:
    """First claim on a value wins; a later claim is reported against the first."""

    def __init__(self) -> None:
        self._owners: dict[Any, tuple[Document, Pointer]] = {}

    def claim(self, key: Any, doc: Document, pointer: Pointer) -> tuple[Document, Pointer] | None:
        owner = self._owners.get(key)
        if owner is None:
            self._owners[key] = (doc, pointer)
        return owner


def check_nodes(
    nodes: list[tuple[Document, NodeConfig]],
    cluster_names: set[str],
    blocked_clusters: set[str],
) -> list[Finding]:
    findings: list[Finding] = []
    names, node_names, macs, addresses, vms = (_Registry() for _ in range(5))
    for doc, node in nodes:
        found = _check_node(doc, node)
        if (owner := names.claim(node.name, doc, ("metadata", "name"))) is not None:
            found.append(
                Finding(
                    doc, ("metadata", "name"), f"node {node.name} is also defined by {_where(*owner)}", "duplicate-name"
                )
            )
        if (owner := node_names.claim(node.spec.node_name, doc, ("spec", "nodeName"))) is not None:
            found.append(
                Finding(
                    doc,
                    ("spec", "nodeName") if "nodeName" in doc.data["spec"] else ("metadata", "name"),
                    f"nodeName {node.spec.node_name} is also configured by {_where(*owner)}",
                    "duplicate-node-name",
                )
            )
        for i, iface in enumerate(node.spec.interfaces):
            at: Pointer = ("spec", "interfaces", i)
            owner = macs.claim(iface.mac_address, doc, (*at, "macAddress"))
            if owner is not None and owner[0] is not doc:
                found.append(
                    Finding(
                        doc,
                        (*at, "macAddress"),
                        f"macAddress {iface.mac_address} is also used by {_where(*owner)}",
                        "duplicate-mac",
                    )
                )
            for j, address in enumerate(iface.interfaces):
                owner = addresses.claim(address.ip, doc, (*at, "addresses", j))
                if owner is not None and owner[0] is not doc:
                    found.append(
                        Finding(
                            doc,
                            (*at, "addresses", j),
                            f"address {address.ip} is also used by {_where(*owner)}",
                            "duplicate-address",
                        )
                    )
        proxmox = node.spec.proxmox
        if proxmox is not None:
            at = ("spec", "proxmox", "cluster")
            if proxmox.cluster in blocked_clusters:
                found.append(
                    Finding(
                        doc,
                        at,
                        f"cluster {proxmox.cluster} is invalid; the VM NIC check is skipped",
                        "cluster-ref",
                        "warning",
                    )
                )
            elif proxmox.cluster not in cluster_names:
                found.append(
                    Finding(
                        doc,
                        at,
                        f"cluster {proxmox.cluster} does not exist (no clusters/{proxmox.cluster}.yaml)",
                        "cluster-ref",
                    )
                )
            owner = vms.claim((proxmox.cluster, proxmox.vmid), doc, ("spec", "proxmox", "vmid"))
            if owner is not None:
                found.append(
                    Finding(
                        doc,
                        ("spec", "proxmox", "vmid"),
                        f"VM {proxmox.vmid} on cluster {proxmox.cluster} is also claimed by {_where(*owner)}",
                        "duplicate-vm",
                    )
                )
        findings.extend(found)
    return findings


def _check_node(doc: Document, node: NodeConfig) -> list[Finding]:
    """Rules inside one node file."""
    found: list[Finding] = []
    seen: dict[str, dict[str, int]] = {"name": {}, "macAddress": {}, "proxmoxNet": {}, "address": {}}
    for i, iface in enumerate(node.spec.interfaces):
        at: Pointer = ("spec", "interfaces", i)
        for key, value in (("name", iface.name), ("macAddress", iface.mac_address), ("proxmoxNet", iface.proxmox_net)):
            if value is None:
                continue
            if value in seen[key]:
                found.append(
                    Finding(
                        doc,
                        (*at, key),
                        f"{key} {value} is also used by interfaces[{seen[key][value]}] of this node",
                        f"duplicate-{key.lower()}",
                    )
                )
            else:
                seen[key][value] = i
        if iface.name in _RESERVED_NAMES:
            found.append(Finding(doc, (*at, "name"), f"name {iface.name} is reserved by the kernel", "reserved-name"))
        networks = []
        for j, address in enumerate(iface.interfaces):
            where = (*at, "addresses", j)
            key = str(address.ip)
            if key in seen["address"]:
                found.append(
                    Finding(
                        doc,
                        where,
                        f"address {address.ip} is also used by interfaces[{seen['address'][key]}] of this node",
                        "duplicate-address",
                    )
                )
            seen["address"][key] = i
            found.extend(_check_host_address(doc, where, address))
            networks.append(address.network)
        for k, route in enumerate(iface.routes):
            found.extend(
                _check_route(doc, (*at, "routes", k), route.destination, route.gateway, networks, iface.interfaces)
            )
    return found


def _check_host_address(doc: Document, where: Pointer, address: Any) -> list[Finding]:
    network = address.network
    if address.version == 4 and network.prefixlen < 31:
        if address.ip == network.network_address:
            return [
                Finding(
                    doc,
                    where,
                    f"address {address} is the network address of {network}; use a host address",
                    "host-address",
                )
            ]
        if address.ip == network.broadcast_address:
            return [
                Finding(
                    doc,
                    where,
                    f"address {address} is the broadcast address of {network}; use a host address",
                    "host-address",
                )
            ]
    if address.version == 6 and network.prefixlen < 127 and address.ip == network.network_address:
        return [
            Finding(
                doc,
                where,
                f"address {address} is the subnet-router anycast address of {network}",
                "host-address",
                "warning",
            )
        ]
    if address.ip.is_multicast or address.ip.is_loopback or address.ip.is_unspecified:
        return [Finding(doc, where, f"address {address.ip} is not a unicast host address", "host-address")]
    return []


def _check_route(
    doc: Document, where: Pointer, destination: Any, gateway: Any, networks: list[Any], own: list[Any]
) -> list[Finding]:
    found: list[Finding] = []
    if destination.ip != destination.network.network_address:
        found.append(
            Finding(
                doc,
                (*where, "to"),
                f"route to {destination} has host bits set; did you mean {destination.network}?",
                "route",
            )
        )
    if destination.version != gateway.version:
        found.append(
            Finding(
                doc,
                (*where, "via"),
                f"route to {destination.network} (IPv{destination.version}) cannot go via IPv{gateway.version} address {gateway}",
                "route",
            )
        )
        return found
    if any(gateway == address.ip for address in own):
        found.append(
            Finding(doc, (*where, "via"), f"route via {gateway} points at the interface's own address", "route")
        )
    elif not any(gateway in network for network in networks if network.version == gateway.version):
        prefixes = ", ".join(str(n) for n in networks) or "none"
        found.append(
            Finding(
                doc,
                (*where, "via"),
                f"gateway {gateway} is not reachable from this interface's prefixes ({prefixes})",
                "route",
            )
        )
    return found


def check_clusters(clusters: list[tuple[Document, ProxmoxCluster]]) -> list[Finding]:
    findings: list[Finding] = []
    names, endpoints = _Registry(), _Registry()
    for doc, cluster in clusters:
        if (owner := names.claim(cluster.name, doc, ("metadata", "name"))) is not None:
            findings.append(
                Finding(
                    doc,
                    ("metadata", "name"),
                    f"cluster {cluster.name} is also defined by {_where(*owner)}",
                    "duplicate-name",
                )
            )
        owner = endpoints.claim(cluster.spec.endpoint_key, doc, ("spec", "apiEndpoint"))
        if owner is not None:
            findings.append(
                Finding(
                    doc,
                    ("spec", "apiEndpoint"),
                    f"apiEndpoint {cluster.spec.api_endpoint} is also registered by {_where(*owner)}",
                    "duplicate-endpoint",
                )
            )
        if cluster.spec.tls.insecure_skip_verify:
            findings.append(
                Finding(
                    doc,
                    ("spec", "tls", "insecureSkipVerify"),
                    "TLS verification is disabled for this cluster",
                    "insecure-tls",
                    "warning",
                )
            )
    return findings
