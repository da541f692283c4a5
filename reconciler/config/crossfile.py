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
    related: tuple[str, ...] = ()  # other files the message names


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
    try:
        findings.extend(_check_subnets(nodes))
    except Exception as exc:  # never stops the other rules
        findings.append(Finding(nodes[0][0], (), f"cannot compare subnets: {type(exc).__name__}", "internal"))
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
                doc, ("metadata", "name"), f"node {node.name} is also defined by {_where(*owner)}", "duplicate-name",
                related=(owner[0].path,),
            )
        )
    # The field that sets the node name: spec.nodeName, or metadata.name when it is defaulted.
    named_by: Pointer = ("spec", "nodeName") if "node_name" in node.spec.model_fields_set else ("metadata", "name")
    if (owner := node_names.claim(node.spec.node_name, doc, named_by)) is not None:
        found.append(
            Finding(
                doc,
                named_by,
                f"nodeName {node.spec.node_name} is also configured by {_where(*owner)}",
                "duplicate-node-name",
                related=(owner[0].path,),
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
                    related=(doc.path,),
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
                    related=(owner[0].path,),
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
                        related=(owner[0].path,),
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
                    related=(f"clusters/{proxmox.cluster}.yaml",),
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
                    related=(owner[0].path,),
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
            where = (*at, "routes", k)
            found.extend(_check_route(doc, where, prefixed(route.to), address(route.via), own, route.gateway_on_link))
    found.extend(_check_overlaps(doc, node))
    found.extend(_check_route_table(doc, node))
    return found


def _subnets(node: NodeConfig) -> list[tuple[int, int, Prefixed]]:
    """(interface, address index, prefix) of every address that stands for a subnet: not a host
    route (/32, /128), not link-local (scoped to its link), not a special address."""
    out: list[tuple[int, int, Prefixed]] = []
    for i, iface in enumerate(node.spec.interfaces):
        for j, text in enumerate(iface.addresses):
            p = prefixed(text)
            if p.prefixlen and not p.is_host_route and not p.address.is_link_local and not p.address.is_special:
                out.append((i, j, p))
    return out


def _check_overlaps(doc: Document, node: NodeConfig) -> list[Finding]:
    """Two interfaces of one node on overlapping subnets: the kernel routes the subnet through
    whichever it picks, and replies leave by the other NIC."""
    found: list[Finding] = []
    subnets = _subnets(node)
    flagged: set[int] = set()
    for n, (i, j, p) in enumerate(subnets):
        for i2, _j2, q in subnets[:n]:
            if i2 != i and i not in flagged and p.overlaps(q):
                flagged.add(i)
                name = node.spec.interfaces[i2].name
                found.append(
                    Finding(
                        doc,
                        ("spec", "interfaces", i, "addresses", j),
                        f"subnet {p.network_text()} overlaps {q.network_text()} of interfaces[{i2}] ({name}) "
                        "of this node; give each interface its own subnet",
                        "overlapping-subnets",
                    )
                )
                break
    return found


def _check_route_table(doc: Document, node: NodeConfig) -> list[Finding]:
    """The node's routes together: one route per destination and metric, one default route per
    IP family (a second one with another metric only backs up the first: a warning)."""
    found: list[Finding] = []
    seen: dict[tuple[int, int, int, int | None], str] = {}
    defaults: dict[int, tuple[str, int | None]] = {}
    for i, iface in enumerate(node.spec.interfaces):
        for k, route in enumerate(iface.routes):
            here = f"interfaces[{i}].routes[{k}]"
            at: Pointer = ("spec", "interfaces", i, "routes", k)
            dest = prefixed(route.to)
            metric = "the default metric" if route.metric is None else f"metric {route.metric}"
            key = (dest.version, dest.network, dest.prefixlen, route.metric)
            if key in seen:
                found.append(
                    Finding(
                        doc,
                        (*at, "to"),
                        f"route to {dest.network_text()} with {metric} is also {seen[key]} of this node; "
                        "the kernel keeps one of them",
                        "duplicate-route",
                    )
                )
                continue
            seen[key] = here
            if dest.prefixlen == 0:
                if dest.version in defaults:
                    first, first_metric = defaults[dest.version]
                    shown = "the default metric" if first_metric is None else f"metric {first_metric}"
                    found.append(
                        Finding(
                            doc,
                            (*at, "to"),
                            f"a second IPv{dest.version} default route (the first is {first}, {shown}); "
                            "only the one with the lower metric carries traffic",
                            "second-default-route",
                            "warning",
                        )
                    )
                else:
                    defaults[dest.version] = (here, route.metric)
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
    doc: Document, where: Pointer, destination: Prefixed, gateway: Address, own: list[Prefixed], on_link: bool
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
    holders = [mine for mine in own if mine.contains(gateway)]
    if on_link and not any(mine.version == gateway.version for mine in own):
        found.append(
            Finding(
                doc,
                (*where, "via"),
                f"route via {gateway.text()} needs an IPv{gateway.version} address on this interface "
                "to send from",
                "route",
            )
        )
    elif gateway.is_special:
        found.append(Finding(doc, (*where, "via"), f"gateway {gateway.text()} is not a unicast address", "route"))
    elif any(gateway == mine.address for mine in own):
        found.append(
            Finding(doc, (*where, "via"), f"route via {gateway.text()} points at the interface's own address", "route")
        )
    elif holders:
        for mine in holders:
            if mine.version != 4 or mine.prefixlen >= 31:
                continue
            if gateway.value in (mine.network, mine.broadcast):
                which = "network" if gateway.value == mine.network else "broadcast"
                found.append(
                    Finding(
                        doc,
                        (*where, "via"),
                        f"gateway {gateway.text()} is the {which} address of {mine.network_text()}, not a router",
                        "route",
                    )
                )
                break
    elif not on_link:
        prefixes = ", ".join(mine.network_text() for mine in own) or "none"
        found.append(
            Finding(
                doc,
                (*where, "via"),
                f"gateway {gateway.text()} is not reachable from this interface's prefixes ({prefixes}); "
                "set onLink: true if it is on the link anyway",
                "route",
            )
        )
    return found


def _check_subnets(nodes: list[tuple[Document, NodeConfig]]) -> list[Finding]:
    """One subnet means one prefix length (an error) and one MTU (a warning: an MTU change may roll
    out node by node) on every node. The first file in path order that declares a subnet sets it;
    a later one that disagrees gets the finding, naming it."""
    found: list[Finding] = []
    first: dict[tuple[int, int, int], tuple[int, Document, Pointer, int | None]] = {}  # (v, net, len) ->
    first_mtu: dict[tuple[int, int, int], tuple[int, Document, Pointer, int | None]] = {}
    lengths: dict[int, set[int]] = {4: set(), 6: set()}
    per_node = [(n, doc, node, _subnets(node)) for n, (doc, node) in enumerate(nodes)]
    for n, doc, node, subnets in per_node:
        for i, j, p in subnets:
            key = (p.version, p.network, p.prefixlen)
            claim = (n, doc, ("spec", "interfaces", i, "addresses", j), node.spec.interfaces[i].mtu)
            if key not in first:
                first[key] = claim
                lengths[p.version].add(p.prefixlen)
            if key not in first_mtu and claim[3] is not None:
                first_mtu[key] = claim  # the first file that gives an MTU on this subnet
    reported: set[tuple[str, str]] = set()
    mtu_reported: set[tuple[int, int]] = set()
    for n, doc, node, subnets in per_node:
        for i, j, p in subnets:
            at: Pointer = ("spec", "interfaces", i, "addresses", j)
            owner = first_mtu.get((p.version, p.network, p.prefixlen))
            mtu = node.spec.interfaces[i].mtu
            mtu_clash = owner is not None and owner[1] is not doc and mtu is not None and mtu != owner[3]
            if owner is not None and mtu_clash and (n, i) not in mtu_reported:  # once per interface
                mtu_reported.add((n, i))
                found.append(
                    Finding(
                        doc,
                        ("spec", "interfaces", i, "mtu"),
                        f"mtu {mtu} on subnet {p.network_text()} differs from mtu {owner[3]} of "
                        f"{_where(owner[1], owner[2])} on the same subnet; large frames would be dropped",
                        "subnet-mtu",
                        "warning",  # not blocking: an MTU change may roll out node by node (a canary first)
                        related=(owner[1].path,),
                    )
                )
            for length in sorted(lengths[p.version] - {p.prefixlen}):
                mask = ((1 << length) - 1) << (p.bits - length)
                other = first.get((p.version, p.value & mask, length))
                if other is None or other[1] is doc:
                    continue
                # Reported once per pair of files, on the later one, naming the earlier.
                if other[0] < n:
                    later, later_at, earlier, earlier_at = doc, at, other[1], other[2]
                else:
                    later, later_at, earlier, earlier_at = other[1], other[2], doc, at
                if (later.path, earlier.path) in reported:
                    continue
                reported.add((later.path, earlier.path))
                found.append(
                    Finding(
                        later,
                        later_at,
                        f"subnet {_network_at(later, later_at)} overlaps {_network_at(earlier, earlier_at)} of "
                        f"{_where(earlier, earlier_at)} with another prefix length; one subnet has one prefix "
                        "length on every node",
                        "subnet-prefix",
                        related=(earlier.path,),
                    )
                )
    return found


def _network_at(doc: Document, pointer: Pointer) -> str:
    value: Any = doc.data
    for part in pointer:
        value = value[part]
    return prefixed(str(value).lower()).network_text()


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
                    related=(owner[0].path,),
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
                    related=(owner[0].path,),
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
