"""Find each NIC by MAC in ``<root>/sys/class/net/*/address``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DeviceError(Exception):
    """A MAC that names no device, or more than one; the message names the MAC."""


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    mac: str
    mtu: int | None
    operstate: str


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _is_upper(path: Path) -> bool:
    """VLANs, macvlans, bridges and bonds copy a member's MAC; only the NIC itself may match."""
    if (path / "bridge").exists() or (path / "bonding").exists():
        return True
    try:
        return any(child.name.startswith("lower_") for child in path.iterdir())
    except OSError:
        return False


def scan(root: Path) -> list[Device]:
    """Every network device in ``<root>/sys/class/net`` (sorted by name)."""
    base = root / "sys/class/net"
    found: list[Device] = []
    if not base.is_dir():
        return found
    for entry in sorted(base.iterdir(), key=lambda p: p.name):
        mac = _read(entry / "address").lower()
        if not mac or _is_upper(entry):
            continue
        mtu_text = _read(entry / "mtu")
        found.append(
            Device(
                name=entry.name,
                mac=mac,
                mtu=int(mtu_text) if mtu_text.isdigit() else None,
                operstate=_read(entry / "operstate") or "unknown",
            )
        )
    return found


def match(devices: list[Device], mac: str) -> Device:
    """The one device with ``mac``; ``DeviceError`` naming the MAC when there are none or several."""
    mac = mac.lower()
    hits = [d for d in devices if d.mac == mac]
    if not hits:
        raise DeviceError(f"no network device has MAC {mac}")
    if len(hits) > 1:
        names = ", ".join(d.name for d in hits)
        raise DeviceError(f"MAC {mac} matches several devices ({names}); refusing to guess")
    return hits[0]
