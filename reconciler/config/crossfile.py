"""Rules that no single schema can express: uniqueness across files, address arithmetic,
route reachability and references between files.

Input is the schema-valid documents with their models; output is findings pointing at fields.
The later file (in path order) gets the error and names the earlier one, so an existing object
stays valid when a new file collides with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.config.addresses import Address, Prefixed, address, prefixed
from reconciler.config.diagnostics import Pointer, Severity
from reconciler.config.documents import Document
from reconciler.config.models import NodeConfig, ProxmoxCluster

_RESERVED_NAMES = {"lo", "all", "default", "bonding_masters"}
_WITHIN_NODE_RULES = {
    "name": "duplicate-interface-name",
    "macAddress": "duplicate-mac",
    "proxmoxNet": "duplicate-proxmox-net",
}


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
    flagged_node_names: set[str] = set()
    names, node_names, macs, addresses, vms = (_Registry() for _ in range(5))
    for doc, node in nodes:
        try:
            findings.extend(_check_one(doc, node, cluster_names, blocked_clusters, flagged_node_names,
                                       names, node_names, macs, addresses, vms, findings))
        except Exception as exc:  # a surprise in one file is that file's diagnostic
            findings.append(Finding(doc, (), f"cannot check this file: {type(exc).__name__}", "internal"))
    return findings


def _check_one(
    doc: Document,
    node: NodeConfig,
    cluster_names: set[str],
    blocked_clusters: set[str],
    flagged_node_names: set[str],
    names: _Registry,
    node_names: _Registry,
    macs: _Registry,
    addresses: _Registry,
    vms: _Registry,
    findings: list[Finding],
) -> list[Finding]:
    found = _check_node(doc, node)
    if (owner := names.claim(node.name, doc, ("metadata", "name"))) is not None:
        found.append(
            Finding(
                doc, ("metadata", "name"), f"node {node.name} is also defined by {_where(*owner)}", "duplicate-name"
            )
        )
    # The field that sets the node name: spec.nodeName, or metadata.name when it is defaulted.
    named_by: Pointer = ("spec", "nodeName") if "nodeName" in doc.data["spec"] else ("metadata", "name")
    if (owner := node_names.claim(node.spec.node_name, doc, named_by)) is not None:
        found.append(
            Finding(
                doc,
                named_by,
                f"nodeName {node.spec.node_name} is also configured by {_where(*owner)}",
                "duplicate-node-name",
            )
        )
        # Both files are blocked: which of them is the typo cannot be known, and a Job for
        # that host must never carry the other file's interfaces.
        if owner[0].path not in flagged_node_names:
            flagged_node_names.add(owner[0].path)
            findings.append(
                Finding(
                    owner[0],
                    owner[1],
                    f"nodeName {node.spec.node_name} is also configured by {_where(doc, named_by)}",
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
        for j, text in enumerate(iface.addresses):
            ip = prefixed(text).address
            owner = addresses.claim(ip, doc, (*at, "addresses", j))
            if owner is not None and owner[0] is not doc:
                found.append(
                    Finding(
                        doc,
                        (*at, "addresses", j),
                        f"address {ip.text()} is also used by {_where(*owner)}",
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
    return found


def _check_node(doc: Document, node: NodeConfig) -> list[Finding]:
    """Rules inside one node file."""
    found: list[Finding] = []
    seen: dict[str, dict[str, int]] = {"name": {}, "macAddress": {}, "proxmoxNet": {}}
    seen_addresses: dict[Address, int] = {}
    for i, iface in enumerate(node.spec.interfaces):
        at: Pointer = ("spec", "interfaces", i)
        if iface.proxmox is not None and iface.proxmox.net not in (None, iface.proxmox_net):
            found.append(
                Finding(
                    doc,
                    (*at, "proxmox", "net"),
                    f"proxmox.net {iface.proxmox.net} contradicts proxmoxNet {iface.proxmox_net} (give one of them)",
                    "proxmox-net-conflict",
                )
            )
        for key, value in (("name", iface.name), ("macAddress", iface.mac_address), ("proxmoxNet", iface.slot)):
            if value is None:
                continue
            if value in seen[key]:
                found.append(
                    Finding(
                        doc,
                        (*at, key),
                        f"{key} {value} is also used by interfaces[{seen[key][value]}] of this node",
                        _WITHIN_NODE_RULES[key],
                    )
                )
            else:
                seen[key][value] = i
        if iface.name in _RESERVED_NAMES:
            found.append(Finding(doc, (*at, "name"), f"name {iface.name} is reserved by the kernel", "reserved-name"))
        own: list[Prefixed] = []
        for j, text in enumerate(iface.addresses):
            where = (*at, "addresses", j)
            parsed = prefixed(text)
            if parsed.address in seen_addresses:
                found.append(
                    Finding(
                        doc,
                        where,
                        f"address {parsed.address.text()} is also used by "
                        f"interfaces[{seen_addresses[parsed.address]}] of this node",
                        "duplicate-address",
                    )
                )
            seen_addresses[parsed.address] = i
            found.extend(_check_host_address(doc, where, parsed))
            own.append(parsed)
        for k, route in enumerate(iface.routes):
            found.extend(_check_route(doc, (*at, "routes", k), prefixed(route.to), address(route.via), own))
    return found


def _check_host_address(doc: Document, where: Pointer, parsed: Prefixed) -> list[Finding]:
    if parsed.address.is_special:
        return [Finding(doc, where, f"address {parsed.address.text()} is not a unicast host address", "host-address")]
    if not parsed.host_bits_set and parsed.prefixlen < parsed.bits - 1:
        if parsed.version == 4:
            return [
                Finding(
                    doc,
                    where,
                    f"address {parsed.text()} is the network address of {parsed.network_text()}; use a host address",
                    "host-address",
                )
            ]
        return [
            Finding(
                doc,
                where,
                f"address {parsed.text()} is the subnet-router anycast address of {parsed.network_text()}",
                "host-address",
                "warning",
            )
        ]
    if parsed.version == 4 and parsed.prefixlen < 31 and parsed.value | parsed.mask == (1 << 32) - 1:
        return [
            Finding(
                doc,
                where,
                f"address {parsed.text()} is the broadcast address of {parsed.network_text()}; use a host address",
                "host-address",
            )
        ]
    return []


def _check_route(
    doc: Document, where: Pointer, destination: Prefixed, gateway: Address, own: list[Prefixed]
) -> list[Finding]:
    found: list[Finding] = []
    if destination.host_bits_set:
        found.append(
            Finding(
                doc,
                (*where, "to"),
                f"route to {destination.text()} has host bits set; did you mean {destination.network_text()}?",
                "route",
            )
        )
    if destination.version != gateway.version:
        found.append(
            Finding(
                doc,
                (*where, "via"),
                f"route to {destination.network_text()} "
                f"(IPv{destination.version}) cannot go via IPv{gateway.version} address "
                f"{gateway.text()}",
                "route",
            )
        )
        return found
    if any(gateway == mine.address for mine in own):
        found.append(
            Finding(doc, (*where, "via"), f"route via {gateway.text()} points at the interface's own address", "route")
        )
    elif not any(mine.contains(gateway) for mine in own):
        prefixes = ", ".join(mine.network_text() for mine in own) or "none"
        found.append(
            Finding(
                doc,
                (*where, "via"),
                f"gateway {gateway.text()} is not reachable from this interface's prefixes ({prefixes})",
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
