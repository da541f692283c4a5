"""The renderer registry and the one OS selection, shared by the controller and the agent.

A *renderer* is a file format the agent writes. Each entry declares what the rest of the system
must know about it without rendering anything: the OS family it serves, every node directory it
writes (the Job mounts exactly these, writable), the files it owns there (glob + how a file name
maps to its NIC) and the node's own tool that reads those files and activates them.

``select(os_image, os_family)`` is the only OS decision. The controller calls it with the Node's
``status.nodeInfo.osImage``; the agent calls it with the same text read from the node's
``/etc/os-release`` (``PRETTY_NAME``, which is what the kubelet reports as ``osImage``), and the
Job passes the controller's choice explicitly (``--renderer``), so both sides always agree and
the agent never writes into a directory its Job did not mount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Family = Literal["ubuntu", "rhel"]
RendererName = Literal["netplan", "ifcfg", "keyfile"]
Activation = Literal["netplan", "nmcli"]


@dataclass(frozen=True, slots=True)
class OwnedFiles:
    """Files of ours: ``<dir>/<prefix>*<suffix>``; the NIC name is what the ``*`` matched
    (``per_nic`` False: one file holds every NIC, as netplan's does)."""

    dir: str  # relative to the node's root, no leading slash
    prefix: str
    suffix: str
    per_nic: bool = True

    @property
    def pattern(self) -> str:
        return f"{self.dir}/{self.prefix}*{self.suffix}" if self.per_nic else f"{self.dir}/{self.prefix}{self.suffix}"

    def owner(self, file_name: str) -> str | None:
        if not self.per_nic:
            return None
        return file_name.removeprefix(self.prefix).removesuffix(self.suffix) or None


@dataclass(frozen=True, slots=True)
class Renderer:
    name: RendererName
    family: Family
    description: str
    writes: tuple[str, ...]  # node directories (absolute) the agent writes; the Job mounts them writable
    owned: tuple[OwnedFiles, ...]
    activation: Activation  # the node's own stack that reads these files
    validator: str  # how the node's tool checks the files before anything is activated
    # The metric every route (and the NIC's prefix routes) gets when the spec sets none, written
    # into the files so a live activation and a boot give the same one; None: the stack's own
    # default is already the same live and at boot (networkd: the kernel's 0 / 1024).
    route_metric: int | None = None


# NetworkManager's default for Ethernet devices. Left implicit (ipv4.route-metric=-1) NM reserves
# a distinct metric per device at activation time, so a profile activated live on the second NIC
# gets 101 while the same profile gets 100 after a boot: the files always say 100, explicitly.
NM_ROUTE_METRIC = 100


NETPLAN_DIR = "etc/netplan"
IFCFG_DIR = "etc/sysconfig/network-scripts"
KEYFILE_DIR = "etc/NetworkManager/system-connections"
LINK_DIR = "etc/systemd/network"

REGISTRY: dict[RendererName, Renderer] = {
    "netplan": Renderer(
        "netplan", "ubuntu", "one netplan file with every NIC (Ubuntu, Debian with netplan)",
        ("/" + NETPLAN_DIR,),
        (OwnedFiles(NETPLAN_DIR, "90-multinic", ".yaml", per_nic=False),),
        "netplan", "netplan generate (through netplan's D-Bus service on the node)",
    ),
    "ifcfg": Renderer(
        "ifcfg", "rhel", "initscripts ifcfg + route files read by NetworkManager's ifcfg-rh (RHEL 7/8)",
        ("/" + IFCFG_DIR,),
        (OwnedFiles(IFCFG_DIR, "ifcfg-", ""), OwnedFiles(IFCFG_DIR, "route-", ""),
         OwnedFiles(IFCFG_DIR, "route6-", "")),
        "nmcli", "nmcli connection load (NetworkManager parses each file)", NM_ROUTE_METRIC,
    ),
    "keyfile": Renderer(
        "keyfile", "rhel", "NetworkManager keyfiles + systemd .link rename files (RHEL 9+, Fedora)",
        ("/" + KEYFILE_DIR, "/" + LINK_DIR),
        (OwnedFiles(KEYFILE_DIR, "", ".nmconnection"), OwnedFiles(LINK_DIR, "70-multinic-", ".link")),
        "nmcli", "nmcli connection load (NetworkManager parses each file)", NM_ROUTE_METRIC,
    ),
}


def owned_files() -> list[OwnedFiles]:
    """Every file pattern of every renderer (removal and stale-file checks look at all of them)."""
    return [owned for renderer in REGISTRY.values() for owned in renderer.owned]


@dataclass(frozen=True, slots=True)
class Selection:
    family: Family | None
    renderer: RendererName | None
    reason: str  # why there is no renderer ("" when there is one)


_DEBIAN_WORDS = ("ubuntu", "debian")
_RHEL_WORDS = ("red hat", "rhel", "rocky", "alma", "centos", "fedora", "oracle")


def _rhel_major(text: str) -> int | None:
    match = re.search(r"\b(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    major = int(match.group(1))
    if "coreos" in text and major >= 100 and match.group(2):
        # RHCOS "415.92.2024..." is OpenShift 4.15 on RHEL 9.2: the RHEL major is the minor's first digit
        return int(match.group(2)[0])
    return major


def select(os_image: str, os_family: str = "auto") -> Selection:
    """The renderer for a node whose OS calls itself ``os_image`` (``PRETTY_NAME``/``osImage``),
    with ``os_family`` (the node file's ``spec.osFamily``: auto|ubuntu|rhel) as an override."""
    text = os_image.strip().lower()
    family: Family | None
    if os_family in ("ubuntu", "rhel"):
        family = os_family  # type: ignore[assignment]
    elif any(word in text for word in _DEBIAN_WORDS):
        family = "ubuntu"
    elif any(word in text for word in _RHEL_WORDS):
        family = "rhel"
    else:
        return Selection(None, None, f"unsupported OS {os_image!r}: expected Ubuntu/Debian (netplan) or "
                                     "RHEL/Rocky/Alma/CentOS/Fedora/Oracle (ifcfg or NetworkManager keyfiles); "
                                     "set spec.osFamily")
    if family == "ubuntu":
        return Selection(family, "netplan", "")
    if "fedora" in text and "coreos" not in text:
        return Selection(family, "keyfile", "")  # every Fedora we can meet (>= 33) is keyfile-era
    major = _rhel_major(text)
    if major is None:
        return Selection(family, None, f"cannot tell the release of {os_image or 'this OS'!r} (no VERSION_ID): "
                                       "RHEL-family needs it to choose ifcfg (< 9) or NetworkManager keyfiles (>= 9)")
    return Selection(family, "keyfile" if major >= 9 else "ifcfg", "")


def os_image_from_release(release: dict[str, str]) -> str:
    """What the kubelet would report as ``osImage`` for this os-release: ``PRETTY_NAME``, else
    ``NAME VERSION_ID`` (so a file without PRETTY_NAME still selects by name and release)."""
    pretty = release.get("PRETTY_NAME", "").strip()
    if pretty:
        return pretty
    return f"{release.get('NAME', release.get('ID', ''))} {release.get('VERSION_ID', '')}".strip()
