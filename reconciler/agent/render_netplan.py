"""netplan (Ubuntu/Debian): all our NICs in one file, ``/etc/netplan/90-multinic.yaml``.

Each NIC is matched by MAC and renamed with ``set-name``. Scalars are written as JSON strings
(valid YAML double-quoted scalars) so a MAC like ``52:54:00:12:34:56`` or a name like ``true``
can never be read back as a number or boolean. Output depends only on the spec: same spec,
byte-identical file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from reconciler.agent import MARKER
from reconciler.config.models import Interface

PATH = "etc/netplan/90-multinic.yaml"
MODE = 0o600  # netplan warns about (and newer releases refuse) group/world-readable files


def header(node: str) -> str:
    return f"{MARKER} (node {node}); do not edit, the next apply overwrites this file\n"


def stanza(iface: Interface) -> list[str]:
    """The lines of one ``ethernets.<name>`` entry, indented for its place in the file."""
    q = json.dumps
    lines = [
        f"    {q(iface.name)}:",
        "      match:",
        f"        macaddress: {q(iface.mac_address)}",
        f"      set-name: {q(iface.name)}",
    ]
    if iface.addresses:
        lines.append("      addresses:")
        lines += [f"        - {q(a)}" for a in iface.addresses]
    if iface.mtu is not None:
        lines.append(f"      mtu: {iface.mtu}")
    if iface.routes:
        lines.append("      routes:")
        for route in iface.routes:
            lines.append(f"        - to: {q(route.to)}")
            lines.append(f"          via: {q(route.via)}")
            if route.metric is not None:
                lines.append(f"          metric: {route.metric}")
            if route.on_link:
                lines.append("          on-link: true")
    return lines


def render(node: str, interfaces: Sequence[Interface | str]) -> str:
    """The whole file, entries in spec order; ``""`` when there is nothing to configure.

    A ``str`` entry is a stanza kept verbatim from the previous file (a NIC that is in the spec
    but could not be matched this time keeps the config it had).
    """
    if not interfaces:
        return ""
    lines = [header(node).rstrip("\n"), "network:", "  version: 2", "  ethernets:"]
    for entry in interfaces:
        lines += entry.rstrip("\n").split("\n") if isinstance(entry, str) else stanza(entry)
    return "\n".join(lines) + "\n"
