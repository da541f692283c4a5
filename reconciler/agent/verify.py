"""After activation: does the live state match the spec?

``live`` reads ``ip -j addr`` (the real kernel state of the agent's network namespace) and checks,
for each NIC found by MAC: its name, its MTU and that every address is configured and usable
(IPv6 duplicate address detection finished and did not fail). It polls until ``timeout`` because
networkd and NetworkManager configure addresses asynchronously. ``sysfs`` is the check for roots
that are not the running system (image builds, tests): MAC and MTU from ``<root>/sys/class/net``.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.agent import devices
from reconciler.agent.activate import ActivationError, Target, ip_json


def _check_link(target: Target, link: dict[str, Any]) -> tuple[str | None, bool]:
    """(error or None, final): a DAD failure is final, a tentative address is worth waiting for."""
    if link.get("ifname") != target.name:
        return f"device with MAC {target.mac} is named {link.get('ifname')}, not {target.name}", False
    if target.mtu is not None and link.get("mtu") != target.mtu:
        return f"{target.name}: MTU is {link.get('mtu')}, expected {target.mtu}", False
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
        else:
            results[target.name] = None
    return results
