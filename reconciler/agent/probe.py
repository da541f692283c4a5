"""Per-interface probes from the node file, run after verification (any failure rolls back).

``ping``: one echo reply from the address, out of that interface (``ping -I <name>``), within
``timeoutSeconds`` (ping resends every second until the deadline). With ``mtu: true`` a second
ping carries a payload filling the interface's MTU with don't-fragment set (``-M do``), so a
path that cannot carry full-size frames fails here instead of in production. The Job adds the
``NET_RAW`` capability only for nodes that declare probes.
"""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
from collections.abc import Sequence

from reconciler.config.models import Interface, Probe

ICMP_OVERHEAD = {4: 28, 6: 48}  # IP + ICMP headers


def _ping(argv: list[str], timeout: int) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{shlex.join(argv)}: {exc}"
    if proc.returncode == 0:
        return None
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:]) or "no reply"
    return f"{shlex.join(argv)} exited {proc.returncode}: {tail}"


def check(iface: Interface, probe: Probe) -> str | None:
    """None when the probe passes, else what failed (the command and its output)."""
    version = ipaddress.ip_address(probe.ping).version
    base = ["ping", f"-{version}", "-n", "-q", "-c", "1", "-w", str(probe.timeout_seconds), "-I", iface.name]
    error = _ping([*base, probe.ping], probe.timeout_seconds)
    if error is not None:
        return f"{iface.name}: ping {probe.ping} failed: {error}"
    if probe.mtu:
        mtu = iface.mtu or 1500
        size = mtu - ICMP_OVERHEAD[version]
        error = _ping([*base, "-M", "do", "-s", str(size), probe.ping], probe.timeout_seconds)
        if error is not None:
            return f"{iface.name}: {mtu}-byte don't-fragment ping to {probe.ping} failed: {error}"
    return None


def run(interfaces: Sequence[Interface]) -> dict[str, str | None]:
    """name -> first failing probe (None: all passed) for every interface that declares probes."""
    results: dict[str, str | None] = {}
    for iface in interfaces:
        if not iface.probes:
            continue
        results[iface.name] = None
        for probe in iface.probes:
            error = check(iface, probe)
            if error is not None:
                results[iface.name] = error
                break
    return results
