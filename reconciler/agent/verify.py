"""After activation: does the live state match the spec?

``live`` reads ``ip -j addr`` and ``ip -j route`` (the real kernel state of the agent's network
namespace) and checks, for each NIC found by MAC: its name, its MTU, that it is up with a carrier
(administratively UP, no ``NO-CARRIER``, operstate UP), that every address is configured and
usable (IPv6 duplicate address detection finished and did not fail) and that every route of the
spec is in the main table through that NIC with that gateway and, when the spec sets one, that
metric, and that no other route of the main table has the same destination and metric (a
blackhole, or the same prefix through another NIC or gateway): the kernel then uses only one of
them, whichever came first, so the route would be there and carry nothing, or carry traffic only
until the next boot changes the order. It polls until ``timeout`` because networkd and
NetworkManager configure asynchronously.
``sysfs`` is the check for roots that are not the running system (image builds, tests): MAC, MTU
and operstate from ``<root>/sys/class/net``.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.agent import devices
from reconciler.agent.activate import ActivationError, Target, ip_json
from reconciler.config.models import Route

UP_STATES = ("UP", "UNKNOWN")  # UNKNOWN: drivers that never report operstate (dummy, some virtio)


def _carrier(target: Target, link: dict[str, Any]) -> str | None:
    flags = link.get("flags", [])
    if "UP" not in flags:
        return f"{target.name}: link is administratively down"
    if "NO-CARRIER" in flags or str(link.get("operstate", "UNKNOWN")).upper() not in UP_STATES:
        return f"{target.name}: no carrier (operstate {link.get('operstate')})"
    return None


def _destination(route: Route, live: dict[str, Any]) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    dst = str(live.get("dst", "default"))
    if dst == "default":
        dst = "::/0" if route.destination.version == 6 else "0.0.0.0/0"
    elif "/" not in dst:
        dst += "/128" if ":" in dst else "/32"
    return ipaddress.ip_network(dst, strict=False)


def _route_matches(route: Route, dev: str, live: dict[str, Any]) -> bool:
    if live.get("dev") != dev or live.get("type", "unicast") != "unicast":
        return False
    if _destination(route, live) != ipaddress.ip_network(route.to, strict=False):
        return False
    if str(live.get("gateway", "")).lower() != route.via:
        return False
    if route.on_link and "onlink" not in live.get("flags", []):
        return False  # without the flag the kernel would not have taken the off-prefix gateway
    return route.metric is None or live.get("metric", 0) == route.metric


def _describe(live: dict[str, Any]) -> str:
    kind = live.get("type", "unicast")
    parts = [] if kind == "unicast" else [str(kind)]
    parts.append(str(live.get("dst", "default")))
    if live.get("gateway"):
        parts += ["via", str(live["gateway"])]
    if live.get("dev"):
        parts += ["dev", str(live["dev"])]
    return " ".join([*parts, "metric", str(live.get("metric", 0))])


def _check_routes(target: Target, table: list[dict[str, Any]]) -> str | None:
    for route in target.routes:
        metric = f" metric {route.metric}" if route.metric is not None else ""
        metric += " onlink" if route.on_link else ""
        ours = next((live for live in table if _route_matches(route, target.name, live)), None)
        if ours is None:
            return f"{target.name}: route {route.to} via {route.via}{metric} is not in the main table"
        want = ipaddress.ip_network(route.to, strict=False)
        for other in table:
            if other is ours or other.get("metric", 0) != ours.get("metric", 0):
                continue
            if _destination(route, other) == want:
                return (f"{target.name}: route {route.to} via {route.via}{metric} clashes with {_describe(other)} "
                        "(same destination and metric: the kernel uses only one of them)")
    return None


def _main_table() -> list[dict[str, Any]]:
    """Every route of the main table, both families (with their device, where they have one)."""
    routes: list[dict[str, Any]] = []
    for family in ("-4", "-6"):
        routes += ip_json(family, "route", "show", "table", "main")
    return routes


def _check_link(target: Target, link: dict[str, Any]) -> tuple[str | None, bool]:
    """(error or None, final): a DAD failure is final, a tentative address is worth waiting for."""
    if link.get("ifname") != target.name:
        return f"device with MAC {target.mac} is named {link.get('ifname')}, not {target.name}", False
    if target.mtu is not None and link.get("mtu") != target.mtu:
        return f"{target.name}: MTU is {link.get('mtu')}, expected {target.mtu}", False
    carrier = _carrier(target, link)  # before addresses: without a carrier IPv6 DAD never finishes
    if carrier is not None:
        return carrier, False
    live: dict[tuple[str, int], dict[str, Any]] = {}
    for info in link.get("addr_info", []):
        if "local" in info:
            ip = ipaddress.ip_address(info["local"])
            live[(str(ip), int(info.get("prefixlen", 0)))] = info
    for cidr in target.addresses:
        iface = ipaddress.ip_interface(cidr)
        info = live.get((str(iface.ip), iface.network.prefixlen))
        if info is None:
            return f"{target.name}: address {cidr} is not configured", False
        if info.get("dadfailed"):
            return f"{target.name}: address {cidr} failed duplicate address detection", True
        if info.get("tentative"):
            return f"{target.name}: address {cidr} is still tentative (DAD)", False
    if target.routes:
        try:
            routes = _main_table()
        except ActivationError as exc:
            return f"{target.name}: cannot read routes: {exc}", False
        missing = _check_routes(target, routes)
        if missing is not None:
            return missing, False
    return None, True


def live(targets: Sequence[Target], timeout: float = 15.0) -> dict[str, str | None]:
    """name -> error (None when the NIC is as specified), waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            links = ip_json("addr", "show")
        except ActivationError as exc:
            return {t.name: f"cannot read live state: {exc}" for t in targets}
        by_mac = {str(link.get("address", "")).lower(): link for link in links}
        results: dict[str, str | None] = {}
        settled = True
        for target in targets:
            link = by_mac.get(target.mac)
            if link is None:
                results[target.name] = f"no live device has MAC {target.mac}"
                settled = False
                continue
            error, final = _check_link(target, link)
            results[target.name] = error
            settled = settled and (error is None or final)
        if settled or time.monotonic() >= deadline:
            return results
        time.sleep(0.25)


def sysfs(root: Path, targets: Sequence[Target]) -> dict[str, str | None]:
    """name -> error, from ``<root>/sys/class/net`` (MAC present once, MTU as specified)."""
    found = devices.scan(root)
    results: dict[str, str | None] = {}
    for target in targets:
        try:
            dev = devices.match(found, target.mac)
        except devices.DeviceError as exc:
            results[target.name] = str(exc)
            continue
        if target.mtu is not None and dev.mtu != target.mtu:
            results[target.name] = f"{target.name}: MTU is {dev.mtu}, expected {target.mtu}"
        elif dev.operstate.upper() not in UP_STATES:
            results[target.name] = f"{target.name}: no carrier (operstate {dev.operstate})"
        else:
            results[target.name] = None
    return results
