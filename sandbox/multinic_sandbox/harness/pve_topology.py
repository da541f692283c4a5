"""PVE sandbox topologies that match a config repo, for ``reconciler demo`` and tests.

One ``Topology`` per ``ProxmoxCluster`` file: nodes ``pve1..pveN`` (``spec.expectedNodeCount``,
else 2), and for each ``MultiNicNodeConfig`` that names the cluster in ``spec.proxmox`` a VM with
that vmid whose ``netN`` devices carry the node's MACs in the ``proxmoxNet`` slots named, with
the bridge, VLAN tag, MTU and model the interface's ``proxmox`` gives (interfaces without a slot
take the next free one; ``net0`` is a management NIC unless taken).
VMs are spread over the nodes round-robin. Versions differ per cluster (8.0, 9.1, 7.4, ...)::

    desired = validate_repo("example-repo").desired
    topologies = topologies_from_config(desired, wrong_mac="worker-02")   # plant one bad MAC
    sandboxes = {name: ProxmoxSandbox(t).start() for name, t in topologies.items()}
    point_repo_at(checkout, {name: sb.url for name, sb in sandboxes.items()})
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from multinic_sandbox.proxmox.topology import Node, PveVersion, Topology, Vm, default_user
from reconciler.apply.proxmox.vmnics import normalize_mac
from reconciler.config.models import NodeConfig, ProxmoxCluster
from reconciler.config.validation import DesiredState

VERSION_ORDER = ("8.0", "9.1", "7.4")  # assigned to clusters in name order, then repeated
DEFAULT_NODE_COUNT = 2


def management_mac(vmid: int) -> str:
    """A stable MAC for ``net0`` (not one any node declares: BC:24:11:FE:xx:xx)."""
    return f"BC:24:11:FE:{(vmid >> 8) & 0xFF:02X}:{vmid & 0xFF:02X}"


def wrong_mac_for(mac: str) -> str:
    """``mac`` with the top bit of its last octet flipped: clearly wrong, still well-formed."""
    parts = normalize_mac(mac).upper().split(":")
    parts[-1] = f"{int(parts[-1], 16) ^ 0x80:02X}"
    return ":".join(parts)


def vm_net(node: NodeConfig, *, wrong_interface: str | None = None) -> dict[str, str]:
    """The ``netN`` devices of ``node``'s VM (``wrong_interface``: that interface gets a wrong MAC)."""
    interfaces = list(node.spec.interfaces)
    taken = {i.proxmox_net for i in interfaces if i.proxmox_net}
    slots: dict[str, str] = {}
    vmid = node.spec.proxmox.vmid if node.spec.proxmox else 0
    if "net0" not in taken:
        slots["net0"] = f"virtio={management_mac(vmid)},bridge=vmbr0,firewall=1"
    free = (f"net{n}" for n in range(1, 32) if f"net{n}" not in taken)
    for interface in interfaces:
        slot = interface.proxmox_net or next(free)
        mac = normalize_mac(interface.mac_address).upper()
        if interface.name == wrong_interface:
            mac = wrong_mac_for(mac)
        vm = interface.proxmox
        model = (vm.model if vm else None) or "virtio"
        value = f"{model}={mac},bridge={(vm.bridge if vm else None) or 'vmbr' + slot.removeprefix('net')}"
        if vm is not None and vm.vlan is not None:
            value += f",tag={vm.vlan}"
        mtu = (vm.mtu if vm else None) or interface.mtu
        if mtu:
            value += f",mtu={mtu}"
        slots[slot] = value
    return dict(sorted(slots.items(), key=lambda item: int(item[0].removeprefix("net"))))


def topology_for(
    cluster: ProxmoxCluster,
    nodes: list[NodeConfig],
    *,
    version: str | PveVersion = "8.0",
    wrong_mac: tuple[str, str] | None = None,
) -> Topology:
    """The topology of one cluster; ``nodes`` are the node configs whose ``spec.proxmox`` names it."""
    count = cluster.spec.expected_node_count or DEFAULT_NODE_COUNT
    pve_nodes = [Node(name=f"pve{i + 1}", ip=f"10.0.0.{11 + i}") for i in range(count)]
    for index, node in enumerate(sorted(nodes, key=lambda n: n.spec.proxmox.vmid if n.spec.proxmox else 0)):
        assert node.spec.proxmox is not None
        wrong = wrong_mac[1] if wrong_mac and wrong_mac[0] == node.name else None
        vm = Vm(vmid=node.spec.proxmox.vmid, name=node.spec.node_name, net=vm_net(node, wrong_interface=wrong))
        pve_nodes[index % count].vms.append(vm)
    topology = Topology(
        cluster=cluster.name, version=PveVersion.from_value(version), nodes=pve_nodes, users=[default_user()]
    )
    topology.validate()
    return topology


def topologies_from_config(
    desired: DesiredState,
    *,
    versions: Mapping[str, str | PveVersion] | None = None,
    wrong_mac: str | tuple[str, str] | None = None,
) -> dict[str, Topology]:
    """One topology per cluster file, by cluster name.

    ``versions``: PVE version (preset name or ``PveVersion``) per cluster; the rest follow
    ``VERSION_ORDER``. ``wrong_mac``: a node name (its first interface with a ``proxmoxNet``,
    else its first interface) or ``(node, interface)`` whose MAC the VM gets wrong.
    """
    planted = _wrong_mac_target(desired, wrong_mac)
    out: dict[str, Topology] = {}
    for index, name in enumerate(sorted(desired.clusters)):
        members = [n for n in desired.nodes.values() if n.spec.proxmox is not None and n.spec.proxmox.cluster == name]
        version = (versions or {}).get(name, VERSION_ORDER[index % len(VERSION_ORDER)])
        out[name] = topology_for(desired.clusters[name], members, version=version, wrong_mac=planted)
    return out


def _wrong_mac_target(desired: DesiredState, wrong_mac: str | tuple[str, str] | None) -> tuple[str, str] | None:
    if wrong_mac is None:
        return None
    if isinstance(wrong_mac, tuple):
        return wrong_mac
    node = desired.nodes.get(wrong_mac)
    if node is None or node.spec.proxmox is None:
        raise ValueError(f"node {wrong_mac} is not in the config or names no Proxmox VM")
    interfaces = node.spec.interfaces
    chosen = next((i for i in interfaces if i.proxmox_net), interfaces[0])
    return (node.name, chosen.name)


_ENDPOINT_LINE = re.compile(r"^(?P<indent>\s*)apiEndpoint:\s*\S+(?P<comment>\s+#.*)?$", re.MULTILINE)


def point_repo_at(repo_dir: Path | str, urls: Mapping[str, str]) -> None:
    """Rewrite ``spec.apiEndpoint`` of ``clusters/<name>.yaml`` to the sandbox URLs (comments kept)."""
    for name, url in urls.items():
        path = Path(repo_dir) / "clusters" / f"{name}.yaml"
        text = path.read_text(encoding="utf-8")
        new, count = _ENDPOINT_LINE.subn(
            lambda m, url=url: f"{m['indent']}apiEndpoint: {url}{m['comment'] or ''}", text
        )
        if count != 1:
            raise ValueError(f"{path}: expected one apiEndpoint line, found {count}")
        path.write_text(new, encoding="utf-8")
