"""Real-node tier (marker ``realnode``): the agent, run from the Job spec the controller builds,
against real Linux network stacks booted from one cached Debian tree (scripts/realnode.sh).

Outside CI these skip with a reason when not root; under ``CI=true`` they must run (a missing
prerequisite is a failure, never a skip). The tree is built once per machine/CI run and cached
under .work/realnode/ keyed by a hash of its package list.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import NspawnNode

REPO = Path(__file__).resolve().parents[2]


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI runs as root, so the realnode tier must run there")
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def debian_tree() -> Path:
    """The cached Debian root (systemd, udev, D-Bus, NetworkManager, netplan, kernel)."""
    if os.geteuid() != 0:
        _skip_or_fail("real-node tests need root (network namespaces, nspawn, QEMU, debootstrap)")
    proc = subprocess.run(["bash", str(REPO / "scripts/realnode.sh")], capture_output=True, text=True,
                          timeout=1800, check=False)
    if proc.returncode != 0:
        pytest.fail(f"scripts/realnode.sh failed: {proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def nspawn_node(debian_tree: Path, tmp_path: Path) -> Iterator[NspawnNode]:
    node = NspawnNode(debian_tree, tmp_path)
    try:
        node.start()
        yield node
    finally:
        node.stop()
