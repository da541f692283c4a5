"""initscripts ifcfg files (RHEL/CentOS/Alma/Rocky 7 and 8, read by NetworkManager's ifcfg-rh).

Per NIC ``<name>``, under ``/etc/sysconfig/network-scripts/``:

* ``ifcfg-<name>``: DEVICE, NAME (the NM connection id), HWADDR (udev's rename_device renames the
  NIC with this MAC to DEVICE), TYPE=Ethernet, BOOTPROTO=none, ONBOOT=yes; the first IPv4 address
  as IPADDR/PREFIX, several as IPADDR0/PREFIX0, IPADDR1/PREFIX1, ...; IPv6 as IPV6INIT=yes,
  IPV6_AUTOCONF=no, IPV6ADDR (first) and IPV6ADDR_SECONDARIES (the rest, space separated);
  IPV6INIT=no without IPv6 addresses; MTU when set; IPV4_ROUTE_METRIC=100 / IPV6_ROUTE_METRIC=100
  for a family with addresses.
* ``route-<name>`` (IPv4 routes) in the key=value format: ADDRESSn, NETMASKn (dotted quad),
  GATEWAYn, METRICn (the spec's metric, else 100), OPTIONSn=onlink for an ``onLink`` route, n from 0.
* ``route6-<name>`` (IPv6 routes) in the ``ip route`` argument format, one route a line
  (``<to> via <via> metric <n> dev <name> [onlink]``): initscripts has no key=value form for IPv6.

Metrics are always explicit, as in the keyfile renderer: NetworkManager's implicit per-device
metric differs between a live activation and a boot.

Files are only written when they have content; values are plain tokens (quoted when they hold a
space), so the files are valid shell as initscripts requires.
"""

from __future__ import annotations

import ipaddress

from reconciler.agent import MARKER
from reconciler.config.models import Interface
from reconciler.nodejob.renderers import NM_ROUTE_METRIC

DIR = "etc/sysconfig/network-scripts"
MODE = 0o644



def _header(node: str) -> str:
    return f"{MARKER} (node {node}); do not edit, the next apply overwrites this file\n"


def _value(text: str) -> str:
    return f'"{text}"' if " " in text else text


def render(node: str, iface: Interface) -> dict[str, str]:
    """relative path -> content for the NIC's ifcfg and route files."""
    v4 = [a for a in iface.interfaces if a.version == 4]
    v6 = [a for a in iface.interfaces if a.version == 6]
    fields: list[tuple[str, str]] = [
        ("DEVICE", iface.name),
        ("NAME", iface.name),
        ("HWADDR", iface.mac_address),
        ("TYPE", "Ethernet"),
        ("BOOTPROTO", "none"),
        ("ONBOOT", "yes"),
    ]
    if len(v4) == 1:
        fields += [("IPADDR", str(v4[0].ip)), ("PREFIX", str(v4[0].network.prefixlen))]
    else:
        for n, addr in enumerate(v4):
            fields += [(f"IPADDR{n}", str(addr.ip)), (f"PREFIX{n}", str(addr.network.prefixlen))]
    if v4:
        fields.append(("IPV4_ROUTE_METRIC", str(NM_ROUTE_METRIC)))
    if v6:
        fields += [("IPV6INIT", "yes"), ("IPV6_AUTOCONF", "no"), ("IPV6ADDR", str(v6[0]))]
        if len(v6) > 1:
            fields.append(("IPV6ADDR_SECONDARIES", " ".join(str(a) for a in v6[1:])))
        fields.append(("IPV6_ROUTE_METRIC", str(NM_ROUTE_METRIC)))
    else:
        fields.append(("IPV6INIT", "no"))
    if iface.mtu is not None:
        fields.append(("MTU", str(iface.mtu)))
    files = {f"{DIR}/ifcfg-{iface.name}": _header(node) + "".join(f"{k}={_value(v)}\n" for k, v in fields)}

    routes4 = [r for r in iface.routes if r.destination.version == 4]
    routes6 = [r for r in iface.routes if r.destination.version == 6]
    if routes4:
        lines = []
        for n, route in enumerate(routes4):
            net = ipaddress.ip_network(route.to, strict=False)
            lines += [f"ADDRESS{n}={net.network_address}", f"NETMASK{n}={net.netmask}"]
            lines.append(f"GATEWAY{n}={route.via}")
            lines.append(f"METRIC{n}={route.metric if route.metric is not None else NM_ROUTE_METRIC}")
            if route.on_link:
                lines.append(f"OPTIONS{n}=onlink")
        files[f"{DIR}/route-{iface.name}"] = _header(node) + "".join(f"{x}\n" for x in lines)
    if routes6:
        lines = []
        for route in routes6:
            net = ipaddress.ip_network(route.to, strict=False)
            metric = route.metric if route.metric is not None else NM_ROUTE_METRIC
            onlink = " onlink" if route.on_link else ""
            lines.append(f"{net} via {route.via} metric {metric} dev {iface.name}{onlink}")
        files[f"{DIR}/route6-{iface.name}"] = _header(node) + "".join(f"{x}\n" for x in lines)
    return files
