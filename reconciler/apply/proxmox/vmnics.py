"""The ``netN`` entries of a Proxmox VE VM config, and how they differ from what a node declares.

PVE's format (qemu-server ``net`` property string)::

    [model=]<model>[,macaddr=<mac>] ... or  <model>=<mac>,bridge=<br>,tag=<vlan>,mtu=<n>,
    firewall=<0|1>,link_down=<0|1>,queues=<n>,rate=<MB/s>,trunks=<vlan;vlan>
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# qemu-server's nic_model_list
NIC_MODELS = frozenset(
    {
        "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551",
        "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3",
    }
)  # fmt: skip

_SLOT = re.compile(r"net(\d+)")
_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}", re.IGNORECASE)


class NicParseError(ValueError):
    """A ``netN`` value that is not a PVE network device string."""


@dataclass(frozen=True)
class VmNic:
    slot: str  # "net1"
    model: str  # "virtio"
    mac: str | None  # lower-case, colon-separated; None if the config has none (never on PVE)
    bridge: str | None = None
    tag: int | None = None
    mtu: int | None = None
    firewall: bool = False
    link_down: bool = False
    queues: int | None = None
    rate: float | None = None
    trunks: tuple[int, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())  # options we do not model

    @property
    def index(self) -> int:
        return slot_index(self.slot)


def slot_index(slot: str) -> int:
    match = _SLOT.fullmatch(slot)
    if match is None:
        raise NicParseError(f"{slot!r} is not a network device slot (net0, net1, ...)")
    return int(match.group(1))


def normalize_mac(value: str) -> str:
    """``BC-24-11-AA-BB-CC`` / ``bc:24:11:aa:bb:cc`` -> ``bc:24:11:aa:bb:cc``; else ValueError."""
    text = value.strip()
    if not _MAC.fullmatch(text):
        raise ValueError(f"{value!r} is not a MAC address")
    return text.replace("-", ":").lower()


def _int(slot: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NicParseError(f"{slot}: {key}={value!r} is not an integer") from None


def _flag(slot: str, key: str, value: str) -> bool:
    if value not in ("0", "1"):
        raise NicParseError(f"{slot}: {key}={value!r} is not 0 or 1")
    return value == "1"


def parse_net(slot: str, value: str) -> VmNic:
    """Parse one ``netN`` value, e.g. ``virtio=BC:24:11:AA:BB:CC,bridge=vmbr1,tag=20``."""
    slot_index(slot)
    model: str | None = None
    mac: str | None = None
    options: dict[str, str] = {}
    for position, part in enumerate(p.strip() for p in value.split(",")):
        if not part:
            continue
        key, sep, val = part.partition("=")
        key = key.strip().lower()
        if key in NIC_MODELS:  # "<model>=<mac>" or bare "<model>"
            if model is not None:
                raise NicParseError(f"{slot}: two NIC models in {value!r}")
            model = key
            if sep:
                mac = _mac(slot, val)
        elif key == "model":
            if val.lower() not in NIC_MODELS:
                raise NicParseError(f"{slot}: unknown NIC model {val!r}")
            model = val.lower()
        elif key == "macaddr":
            mac = _mac(slot, val)
        elif not sep:
            what = "unknown NIC model" if position == 0 else "option without a value"
            raise NicParseError(f"{slot}: {what} {part!r}")
        else:
            options[key] = val.strip()
    if model is None:
        raise NicParseError(f"{slot}: no NIC model in {value!r}")

    trunks: tuple[int, ...] = ()
    if "trunks" in options:
        trunks = tuple(_int(slot, "trunks", t) for t in options.pop("trunks").split(";") if t)
    rate: float | None = None
    if "rate" in options:
        try:
            rate = float(options.pop("rate"))
        except ValueError:
            raise NicParseError(f"{slot}: rate is not a number") from None
    tag = options.pop("tag", None)
    mtu = options.pop("mtu", None)
    queues = options.pop("queues", None)
    return VmNic(
        slot=slot,
        model=model,
        mac=mac,
        bridge=options.pop("bridge", None),
        tag=None if tag is None else _int(slot, "tag", tag),
        mtu=None if mtu is None else _int(slot, "mtu", mtu),
        firewall=_flag(slot, "firewall", options.pop("firewall", "0")),
        link_down=_flag(slot, "link_down", options.pop("link_down", "0")),
        queues=None if queues is None else _int(slot, "queues", queues),
        rate=rate,
        trunks=trunks,
        extra=tuple(sorted(options.items())),
    )


def _mac(slot: str, value: str) -> str:
    try:
        return normalize_mac(value)
    except ValueError:
        raise NicParseError(f"{slot}: {value!r} is not a MAC address") from None


def nics_from_config(config: Mapping[str, Any]) -> tuple[VmNic, ...]:
    """Every ``netN`` of a ``GET .../qemu/{vmid}/config`` answer, ordered by slot number."""
    nics = [parse_net(k, str(v)) for k, v in config.items() if _SLOT.fullmatch(k)]
    return tuple(sorted(nics, key=lambda n: n.index))


@dataclass(frozen=True)
class DesiredNic:
    """One interface a node declares: its MAC and, optionally, what its VM device must be."""

    mac: str
    proxmox_net: str | None = None  # "net1"
    name: str | None = None  # the interface name in the node config, for messages
    bridge: str | None = None
    vlan: int | None = None
    mtu: int | None = None  # the VM device's mtu= (1: the bridge's)
    model: str | None = None
    guest_mtu: int | None = None  # the interface's MTU inside the guest
    firewall: bool | None = None  # the VM device's firewall= flag (written under manageNics, not compared)


def nic_mismatches(vmid: int | str, desired: Iterable[DesiredNic], nics: Sequence[VmNic]) -> list[str]:
    """Human-readable differences between declared interfaces and the VM's NICs (empty: OK).

    The VM device is found by MAC; then its slot, bridge, VLAN tag, MTU and model are compared
    with what the file gives (a field the file leaves out is not compared), and a device whose
    link is down (``link_down=1``) is reported, since the guest cannot use it.
    """
    problems: list[str] = []
    by_mac: dict[str, VmNic] = {n.mac: n for n in nics if n.mac}
    by_slot = {n.slot: n for n in nics}
    for want in desired:
        label = f" ({want.name})" if want.name else ""
        try:
            mac = normalize_mac(want.mac)
        except ValueError:
            problems.append(f"macAddress {want.mac!r}{label} is not a MAC address")
            continue
        nic = by_mac.get(mac)
        if nic is None:
            present = ", ".join(f"{n.slot} {n.mac or 'no MAC'}" for n in nics) or "no NICs"
            problems.append(f"macAddress {mac}{label} is not on VM {vmid} ({present})")
            continue
        if want.proxmox_net is not None and nic.slot != want.proxmox_net:
            other = by_slot.get(want.proxmox_net)
            where = (
                f"{want.proxmox_net} has {other.mac or 'no MAC'}"
                if other is not None
                else f"VM {vmid} has no {want.proxmox_net}"
            )
            problems.append(f"macAddress {mac}{label} is on {nic.slot}, not on proxmoxNet {want.proxmox_net} ({where})")
        problems.extend(_device_mismatches(vmid, want, nic, label))
    return problems


def _shown(value: object, absent: str) -> str:
    return absent if value is None else str(value)


def _device_mismatches(vmid: int | str, want: DesiredNic, nic: VmNic, label: str) -> list[str]:
    on = f"VM {vmid} {nic.slot}{label}"
    out: list[str] = []
    if want.bridge is not None and nic.bridge != want.bridge:
        out.append(f"{on}: bridge is {_shown(nic.bridge, 'none')}, the file says {want.bridge}")
    if want.vlan is not None and nic.tag != want.vlan:
        out.append(f"{on}: VLAN tag is {_shown(nic.tag, 'none (untagged)')}, the file says {want.vlan}")
    if want.mtu is not None and (nic.mtu or 1) != want.mtu:
        out.append(f"{on}: mtu is {_shown(nic.mtu, 'not set (the bridge MTU)')}, the file says {want.mtu}")
    if want.model is not None and nic.model != want.model:
        out.append(f"{on}: model is {nic.model}, the file says {want.model}")
    if want.guest_mtu is not None and nic.mtu not in (None, 1) and nic.mtu < want.guest_mtu:
        out.append(f"{on}: mtu={nic.mtu} on the VM is below the interface's mtu {want.guest_mtu}")
    if nic.link_down:
        out.append(f"{on}: the link is down on the VM (link_down=1)")
    return out
