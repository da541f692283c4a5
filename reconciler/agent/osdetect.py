"""Which OS family and release the node runs, from ``<root>/etc/os-release``, and its renderer."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Family = Literal["ubuntu", "rhel"]
Renderer = Literal["netplan", "ifcfg", "keyfile"]

# os-release ID / ID_LIKE values per family (netplan on Debian-likes, ifcfg/keyfiles on RHEL-likes).
_DEBIAN_IDS = {"ubuntu", "debian"}
_RHEL_IDS = {"rhel", "rocky", "almalinux", "centos", "fedora", "ol", "redhat"}


class UnknownOSError(Exception):
    """The node's OS is none we can render for; the message names it."""


@dataclass(frozen=True, slots=True)
class OSInfo:
    id: str  # os-release ID, e.g. "ubuntu", "rocky"
    version_id: str  # e.g. "24.04", "9.3"; "" when absent
    family: Family
    renderer: Renderer

    @property
    def label(self) -> str:
        """``"ubuntu 24.04"``: what the result's ``os`` field shows."""
        return f"{self.id} {self.version_id}".strip()


def read_os_release(root: Path) -> dict[str, str]:
    """``<root>/etc/os-release`` (falling back to ``usr/lib/os-release``) as a dict; {} if absent."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        path = root / rel
        if path.is_file():
            values: dict[str, str] = {}
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                key, sep, raw = line.partition("=")
                if not sep or key.strip().startswith("#"):
                    continue
                try:
                    parts = shlex.split(raw)
                except ValueError:
                    parts = [raw.strip("\"'")]
                values[key.strip()] = parts[0] if parts else ""
            return values
    return {}


def _major(version_id: str) -> int | None:
    head = version_id.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def detect(root: Path, override: str = "auto") -> OSInfo:
    """Family from os-release (or ``override`` ubuntu|rhel); RHEL release picks ifcfg vs keyfile."""
    release = read_os_release(root)
    os_id = release.get("ID", "").lower()
    version_id = release.get("VERSION_ID", "")
    like = set(release.get("ID_LIKE", "").lower().split())
    shown = release.get("PRETTY_NAME") or f"{os_id} {version_id}".strip() or "no os-release"

    family: Family | None
    if override in ("ubuntu", "rhel"):
        family = override  # type: ignore[assignment]
    elif os_id in _DEBIAN_IDS or (os_id not in _RHEL_IDS and like & _DEBIAN_IDS):
        family = "ubuntu"
    elif os_id in _RHEL_IDS or like & _RHEL_IDS:
        family = "rhel"
    else:
        family = None
    if family is None:
        raise UnknownOSError(
            f"unsupported OS {shown!r} (ID={os_id or '?'}): expected Ubuntu/Debian (netplan) or "
            "RHEL/Rocky/Alma/CentOS/Fedora/Oracle (ifcfg or NetworkManager keyfiles)"
        )
    if family == "ubuntu":
        return OSInfo(os_id or "ubuntu", version_id, family, "netplan")
    major = _major(version_id)
    if major is None:
        raise UnknownOSError(
            f"cannot tell the release of {shown!r} (VERSION_ID={version_id or '?'}): "
            "RHEL-family needs it to choose ifcfg (< 9) or NetworkManager keyfiles (>= 9)"
        )
    # Fedora's numbering is not RHEL's: every Fedora we can meet (>= 33) is keyfile-era.
    renderer: Renderer = "keyfile" if major >= 9 else "ifcfg"
    return OSInfo(os_id or "rhel", version_id, family, renderer)
