"""Throw-away network namespaces for tests that need a real kernel: a ``node`` namespace holding
one veth end with a given MAC, its peer end in a ``peer`` namespace (so the NIC has a carrier).
Neither end ever exists in the host's namespace; both namespaces are deleted on exit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def require_root_and_ip(ip: Path | None) -> Path:
    """``ip``, or skip (fail under CI, which runs as root: there these tests must run)."""
    if ip is None or os.geteuid() != 0:
        reason = "needs root and iproute2 to create network namespaces"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs as root, so this must run there")
        pytest.skip(reason)
    return ip


@contextmanager
def veth_pair(ip: Path, node: str, peer: str, dev: str, mac: str,
              peer_addresses: Sequence[str]) -> Iterator[None]:
    """Namespaces ``node`` and ``peer``; ``dev`` (MAC ``mac``) in ``node``, down; ``vp0`` in
    ``peer``, up, with ``peer_addresses`` (IPv6 ones without DAD)."""

    def sh(*argv: str) -> None:
        subprocess.run([str(ip), *argv], check=True, capture_output=True, text=True, timeout=30)

    try:
        sh("netns", "add", node)
        sh("netns", "add", peer)
        sh("-n", node, "link", "add", dev, "type", "veth", "peer", "name", "vp0", "netns", peer)
        sh("-n", node, "link", "set", "dev", dev, "address", mac)
        sh("-n", peer, "link", "set", "vp0", "up")
        for address in peer_addresses:
            sh("-n", peer, "addr", "add", address, "dev", "vp0", *(["nodad"] if ":" in address else []))
        yield
    finally:
        for name in (node, peer):
            subprocess.run([str(ip), "netns", "del", name], capture_output=True, check=False)
