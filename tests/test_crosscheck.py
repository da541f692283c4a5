"""VM NIC cross-check on ``example-repo``: sandboxes built from the original repo, a copy mutated.

The copy's clusters point at the sandboxes; credentials come from Secrets in the kube sandbox;
the clusters are registered first (the check runs only for verified clusters).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multinic_sandbox.harness.kube_setup import apply_desired, put_cluster_secrets, put_secret
from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config
from multinic_sandbox.proxmox import ProxmoxSandbox
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

from reconciler import resources
from reconciler.apply.proxmox.crosscheck import (
    NodeCheck,
    check_nodes,
    check_verified_nodes,
    verified_clients,
)
from reconciler.apply.proxmox.registration import register_clusters
from reconciler.config.validation import DesiredState, validate_repo
from reconciler.kube.client import Kube
from reconciler.report.status import LiveCR, merge_patch, node_status

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NS = "multinic-system"
AUTH = {"pve-lab": "ticket", "pve-prod": "token"}  # as the example files' comments say


@dataclass
class Example:
    root: Path
    kube: Kube
    sandboxes: dict[str, ProxmoxSandbox]

    def desired(self) -> DesiredState:
        result = validate_repo(self.root)
        assert result.ok, [d.message for d in result.errors]
        return result.desired

    def register(self) -> DesiredState:
        desired = self.desired()
        apply_desired(self.kube, desired)
        outcomes = register_clusters(self.kube, desired, now=T0)
        assert all(o.ready for o in outcomes), [(o.name, o.reason, o.message) for o in outcomes]
        return desired

    def set_mac(self, node: str, old: str, new: str) -> None:
        path = self.root / "nodes" / f"{node}.yaml"
        text = path.read_text()
        assert text.count(old) == 1
        path.write_text(text.replace(old, new))


@pytest.fixture
def example(
    tmp_path: Path, pve_kube: Kube, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> Iterator[Example]:
    original = validate_repo(resources.example_repo_dir()).desired
    sandboxes = {name: pve_sandbox_factory(t) for name, t in topologies_from_config(original).items()}
    root = tmp_path / "example-repo"
    shutil.copytree(resources.example_repo_dir(), root)
    point_repo_at(root, {name: sb.url for name, sb in sandboxes.items()})
    put_cluster_secrets(pve_kube.api, NS, validate_repo(root).desired, sandboxes, auth=AUTH)  # type: ignore[arg-type]
    yield Example(root, pve_kube, sandboxes)


def test_every_node_of_the_unchanged_example_repo_matches_its_vm(example: Example) -> None:
    desired = example.register()
    checks = check_verified_nodes(example.kube, desired)
    proxmox_nodes = sorted(n for n, cfg in desired.nodes.items() if cfg.spec.proxmox)
    assert sorted(checks) == proxmox_nodes  # infra-01 names no VM: not checked at all
    assert all(c.ok for c in checks.values()), [c.summary for c in checks.values() if not c.ok]
    assert checks["worker-01"].vm_node == "pve1" and checks["worker-01"].vm_name == "worker-01"


def test_a_mac_changed_in_the_copy_is_flagged_on_that_node_only(example: Example) -> None:
    example.set_mac("worker-03", "BC:24:11:20:00:0D", "BC:24:11:20:00:99")
    desired = example.register()

    checks = check_verified_nodes(example.kube, desired)

    bad = checks["worker-03"]
    assert bad.checked and bad.error is None
    assert bad.mismatches == (
        "macAddress bc:24:11:20:00:99 (storage0) is not on VM 203 (net0 bc:24:11:fe:00:cb, "
        "net1 bc:24:11:20:00:0d, net2 bc:24:11:30:00:0d, net3 bc:24:11:40:00:0d)",
    )
    assert [n for n, c in checks.items() if not c.ok] == ["worker-03"]


def test_a_mac_on_another_slot_than_proxmox_net_is_flagged(example: Example) -> None:
    path = example.root / "nodes" / "gpu-01.yaml"
    path.write_text(path.read_text().replace("proxmoxNet: net1", "proxmoxNet: net9"))
    desired = example.register()
    checks = check_verified_nodes(example.kube, desired)
    assert checks["gpu-01"].mismatches == (
        "macAddress bc:24:11:20:00:15 (storage0) is on net1, not on proxmoxNet net9 (VM 301 has no net9)",
    )


def test_the_planted_wrong_mac_of_the_demo_is_found(
    tmp_path: Path, pve_kube: Kube, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    original = validate_repo(resources.example_repo_dir()).desired
    topologies = topologies_from_config(original, wrong_mac="worker-02")
    sandbox = pve_sandbox_factory(topologies["pve-prod"])
    checks = check_nodes(original, {"pve-prod": _client(sandbox)})
    assert [n for n, c in checks.items() if c.mismatches] == ["worker-02"]
    assert "macAddress bc:24:11:20:00:0c (storage0) is not on VM 202" in checks["worker-02"].mismatches[0]
    assert not checks["gpu-01"].checked  # pve-lab has no client here
    assert checks["gpu-01"].error == "Proxmox cluster pve-lab is not verified (see its ProxmoxCluster status)"


def _client(sandbox: ProxmoxSandbox) -> object:
    from reconciler.apply.proxmox.client import ProxmoxClient

    return ProxmoxClient(
        sandbox.url, token_id=sandbox.token_id, token_secret=sandbox.token_secret, ca_bundle=sandbox.ca_file
    )


def test_the_check_costs_one_resources_call_per_cluster_and_one_config_per_node(example: Example) -> None:
    desired = example.register()
    for sandbox in example.sandboxes.values():
        sandbox.request_log.clear()

    check_verified_nodes(example.kube, desired)

    prod = [p for p in example.sandboxes["pve-prod"].request_log.paths() if p != "/access/ticket"]
    lab = [p for p in example.sandboxes["pve-lab"].request_log.paths() if p != "/access/ticket"]
    assert prod.count("/cluster/resources") == 1 and lab.count("/cluster/resources") == 1
    assert sorted(p for p in prod if p.endswith("/config")) == sorted(
        f"/nodes/{n}/qemu/{v}/config"
        for n, v in [("pve1", 201), ("pve2", 202), ("pve3", 203), ("pve4", 204), ("pve1", 205), ("pve2", 206)]
    )
    assert len(prod) == 7 and len(lab) == 3


def test_a_vm_missing_from_the_cluster_is_a_mismatch(example: Example) -> None:
    path = example.root / "nodes" / "worker-06.yaml"
    path.write_text(path.read_text().replace("vmid: 206", "vmid: 299"))
    desired = example.register()
    checks = check_verified_nodes(example.kube, desired)
    assert checks["worker-06"].checked
    assert checks["worker-06"].mismatches == ("VM 299 does not exist on pve-prod",)


def test_nodes_of_a_cluster_that_failed_verification_are_not_checked(example: Example) -> None:
    put_secret(example.kube.api, NS, "pve-lab-login", {"username": "reconciler@pve", "password": "wrong-password-1"})
    desired = example.desired()
    apply_desired(example.kube, desired)
    outcomes = {o.name: o for o in register_clusters(example.kube, desired, now=T0)}
    assert outcomes["pve-lab"].reason == "AuthenticationFailed" and outcomes["pve-prod"].ready
    example.sandboxes["pve-lab"].request_log.clear()

    with verified_clients(example.kube, desired) as clients:
        assert sorted(clients) == ["pve-prod"]
        checks = check_nodes(desired, clients)

    assert len(example.sandboxes["pve-lab"].request_log) == 0
    assert [(n, c.checked) for n, c in checks.items() if n.startswith("gpu")] == [("gpu-01", False), ("gpu-02", False)]
    assert all(c.ok for n, c in checks.items() if n.startswith("worker"))


def test_a_vm_config_the_api_refuses_is_an_error_not_a_mismatch(example: Example) -> None:
    desired = example.register()
    example.sandboxes["pve-prod"].faults.error("/nodes/pve3/qemu/203/config", 500, "storage not ready")
    checks = check_verified_nodes(example.kube, desired)
    assert not checks["worker-03"].checked and checks["worker-03"].vm_node == "pve3"
    assert "storage not ready" in (checks["worker-03"].error or "")
    assert checks["worker-04"].ok


def _with_check(status: dict[str, Any] | None, check: NodeCheck) -> dict[str, Any]:
    """The node status the one writer computes from the check alone (no rollout state this cycle)."""
    cr = LiveCR("MultiNicNodeConfig", check.node, None, 1, {}, status or {})
    return node_status(cr, state=None, check=check, validity=None).dump()


def test_the_node_status_fragment_fits_the_crd_and_is_written_only_when_it_changes(example: Example) -> None:
    example.set_mac("worker-03", "BC:24:11:20:00:0D", "BC:24:11:20:00:99")
    desired = example.register()
    checks = check_verified_nodes(example.kube, desired)
    for name, check in checks.items():
        current = (example.kube.get("MultiNicNodeConfig", name) or {}).get("status") or {}
        patch = merge_patch(current, _with_check(current, check))
        assert patch
        example.kube.patch_status("MultiNicNodeConfig", name, patch)

    live = example.kube.get("MultiNicNodeConfig", "worker-03") or {}
    assert live["status"]["proxmoxCheck"] == {
        "checked": True,
        "vmNode": "pve3",
        "mismatches": [checks["worker-03"].mismatches[0]],
        "nicCheck": "enforce",
    }
    condition = next(c for c in live["status"]["conditions"] if c["type"] == "VMNicsMatch")
    assert (condition["status"], condition["reason"]) == ("False", "NicsDiffer")
    again = check_verified_nodes(example.kube, desired)
    for n, c in again.items():
        current = (example.kube.get("MultiNicNodeConfig", n) or {}).get("status") or {}
        assert merge_patch(current, _with_check(current, c)) is None


def test_the_node_status_drops_a_stale_error_and_a_vm_node_it_no_longer_knows() -> None:
    failed = NodeCheck("w", "pve", 1, False, vm_node="pve2", error="Proxmox cluster pve is not verified")
    before = _with_check(None, failed)
    assert before["proxmoxCheck"] == {"checked": False, "vmNode": "pve2", "mismatches": [],
                                      "error": failed.error, "nicCheck": "enforce"}
    ok = NodeCheck("w", "pve", 1, True)
    assert merge_patch(before, _with_check(before, ok))["proxmoxCheck"] == {  # type: ignore[index]
        "checked": True, "vmNode": None, "error": None}
    assert ok.summary == "VM 1 on pve: NICs match"
