"""NetworkManager keyfiles (RHEL/Rocky/Alma 9 and later, Fedora).

``/etc/NetworkManager/system-connections/<name>.nmconnection`` (mode 0600: NetworkManager ignores
keyfiles others can read), one per NIC:

* ``[connection]`` id=<name>, uuid (uuid5 of node and name, so a re-render is byte-identical and
  the profile keeps its identity), type=ethernet, interface-name=<name> (autoconnect is on by default);
* ``[ethernet]`` mac-address, mtu (when set);
* ``[ipv4]``/``[ipv6]`` method=manual with addressN=<cidr>, route-metric=100 and
  routeN=<to>,<via>,<metric> (the spec's metric, else 100; ``routeN_options=onlink=true`` for an
  ``onLink`` route); without addresses of a family: ipv4 method=disabled, ipv6 method=ignore (the
  kernel keeps its link-local address, as with netplan).
  The metric is always explicit: left to NetworkManager, a route without one gets a per-device
  metric reserved at activation (101 on the second NIC activated live, 100 after a boot), so the
  live state would differ from the boot state.

The profile is bound to the *name*; the NIC gets that name from a systemd ``.link`` file
(``/etc/systemd/network/70-multinic-<name>.link``, applied by udev when the NIC appears) and, on
activation, from the nmcli activator, which renames a live NIC found by MAC.
"""

from __future__ import annotations

import uuid

from reconciler.agent import MARKER
from reconciler.config.models import Interface
from reconciler.nodejob.renderers import NM_ROUTE_METRIC

DIR = "etc/NetworkManager/system-connections"
LINK_DIR = "etc/systemd/network"
MODE = 0o600
LINK_MODE = 0o644
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://multinic.io/agent/keyfile")


def connection_uuid(node: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{node}/{name}"))



def _header(node: str) -> str:
    return f"{MARKER} (node {node}); do not edit, the next apply overwrites this file\n"


def _ip_section(iface: Interface, version: int) -> list[str]:
    addrs = [a for a in iface.interfaces if a.version == version]
    routes = [r for r in iface.routes if r.destination.version == version]
    if not addrs:
        return ["method=disabled" if version == 4 else "method=ignore"]
    lines = [f"address{n}={a}" for n, a in enumerate(addrs, start=1)]
    lines.append(f"route-metric={NM_ROUTE_METRIC}")
    for n, route in enumerate(routes, start=1):
        metric = route.metric if route.metric is not None else NM_ROUTE_METRIC
        lines.append(f"route{n}={route.to},{route.via},{metric}")
        if route.on_link:
            lines.append(f"route{n}_options=onlink=true")
    return ["method=manual", *lines]


def render(node: str, iface: Interface) -> dict[str, str]:
    """relative path -> content for the NIC's keyfile and its rename ``.link`` file."""
    lines = [
        _header(node).rstrip("\n"),
        "[connection]",
        f"id={iface.name}",
        f"uuid={connection_uuid(node, iface.name)}",
        "type=ethernet",
        f"interface-name={iface.name}",
        "",
        "[ethernet]",
        f"mac-address={iface.mac_address.upper()}",
    ]
    if iface.mtu is not None:
        lines.append(f"mtu={iface.mtu}")
    lines += ["", "[ipv4]", *_ip_section(iface, 4), "", "[ipv6]", *_ip_section(iface, 6)]
    link = [
        _header(node).rstrip("\n"),
        "[Match]",
        f"MACAddress={iface.mac_address}",
        "",
        "[Link]",
        f"Name={iface.name}",
    ]
    return {
        f"{DIR}/{iface.name}.nmconnection": "\n".join(lines) + "\n",
        f"{LINK_DIR}/70-multinic-{iface.name}.link": "\n".join(link) + "\n",
    }
