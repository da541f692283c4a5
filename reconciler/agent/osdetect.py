"""Which OS family and release the node runs, from ``<root>/etc/os-release``, and its renderer.

The decision itself is ``reconciler.nodejob.renderers.select``, the same function the controller
applies to the Node's ``osImage`` (the kubelet's copy of ``PRETTY_NAME``), so agent and Job agree.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from reconciler.nodejob.renderers import Family, os_image_from_release, select
from reconciler.nodejob.renderers import RendererName as Renderer


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


def detect(root: Path, override: str = "auto") -> OSInfo:
    """Family and renderer from os-release (``override`` ubuntu|rhel forces the family)."""
    release = read_os_release(root)
    os_id = release.get("ID", "").lower()
    version_id = release.get("VERSION_ID", "")
    image = os_image_from_release(release)
    selection = select(image, override)
    if selection.family is None or selection.renderer is None:
        raise UnknownOSError(selection.reason if image else f"no os-release: {selection.reason}")
    return OSInfo(os_id or selection.family, version_id, selection.family, selection.renderer)
