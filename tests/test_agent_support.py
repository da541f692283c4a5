"""Helpers for the agent tests (no tests here): fake node roots, node documents, running the CLI."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent

OS_RELEASES: dict[str, str] = {
    "ubuntu-22.04": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n',
    "ubuntu-24.04": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n',
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "rhel-8": 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n',
    "rhel-9": 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n',
    "rocky-9": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n',
    "alma-8": 'NAME="AlmaLinux"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.10"\n',
    "centos-7": 'NAME="CentOS Linux"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n',
    "fedora-40": 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n',
    "arch": 'NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\n',
}


def make_root(root: Path, os_key: str, nics: Mapping[str, str] | Iterable[tuple[str, str]], mtu: int = 1500) -> Path:
    """A fake node: ``etc/os-release`` and ``sys/class/net/<dev>/{address,mtu,operstate}``."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(OS_RELEASES[os_key])
    items = nics.items() if isinstance(nics, Mapping) else nics
    for dev, mac in items:
        add_nic(root, dev, mac, mtu)
    return root


def add_nic(root: Path, dev: str, mac: str, mtu: int = 1500) -> None:
    path = root / "sys/class/net" / dev
    path.mkdir(parents=True, exist_ok=True)
    (path / "address").write_text(mac + "\n")
    (path / "mtu").write_text(f"{mtu}\n")
    (path / "operstate").write_text("up\n")


def node_doc(interfaces: list[dict[str, Any]], name: str = "worker-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "multinic.io/v1alpha1",
        "kind": "MultiNicNodeConfig",
        "metadata": {"name": name},
        "spec": {**spec, "interfaces": interfaces},
    }


def write_doc(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def agent(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """Run ``reconciler agent ...`` in-process: (exit code, result JSON, everything on stdout)."""
    code = main(["agent", *argv])
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1] if out.strip() else "{}"
    return code, json.loads(last), out


def tool(name: str, *fallbacks: Path) -> str | None:
    """A real tool on PATH or at a known place; None when missing."""
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


NETPLAN = tool("netplan", Path("/usr/sbin/netplan"))
NMCLI = tool("nmcli", REPO / ".tools/bin/nmcli")
IP = tool("ip", Path("/usr/sbin/ip"), Path("/sbin/ip"))


def need(path: str | None, what: str) -> str:
    """The tool, or skip (fail under CI=true: CI installs every tool)."""
    if path is None:
        message = f"{what} not installed (run scripts/setup.sh --with-test-tools)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
