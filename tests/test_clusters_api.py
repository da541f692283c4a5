"""The read API's pure handler against CRs in the kube sandbox, registered from PVE sandboxes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from multinic_sandbox.harness.kube_setup import apply_desired, cluster_secrets, cluster_yaml, put_secret
from multinic_sandbox.kube.server import KubeSandbox
from multinic_sandbox.proxmox import ProxmoxSandbox, Topology
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

from reconciler.apply.proxmox.api import handle
from reconciler.apply.proxmox.crosscheck import check_verified_nodes
from reconciler.apply.proxmox.registration import register_clusters
from reconciler.config.validation import DesiredState, validate_repo
from reconciler.kube.client import Kube
from reconciler.report.status import LiveCR, merge_patch, node_status

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NODE = """
apiVersion: multinic.io/v1alpha1
kind: MultiNicNodeConfig
metadata: {name: worker-1}
spec:
  nodeName: k8s-worker-1
  proxmox: {cluster: pve-prod, vmid: 101}
  interfaces:
    - {name: storage0, macAddress: "BC:24:11:00:01:01", addresses: [10.20.0.11/24], proxmoxNet: net1}
"""


def register(root: Path, kube: Kube, sandboxes: dict[str, ProxmoxSandbox], **expected: int) -> DesiredState:
    (root / "clusters").mkdir(parents=True)
    (root / "nodes").mkdir()
    (root / "nodes" / "worker-1.yaml").write_text(NODE)
    for name, sandbox in sandboxes.items():
        text = cluster_yaml(
            name,
            sandbox.url,
            credentials_secret=f"{name}-creds",
            ca_secret=f"{name}-ca",
            expected_node_count=expected.get(name.replace("-", "_")),
        )
        (root / "clusters" / f"{name}.yaml").write_text(text)
    desired = validate_repo(root).desired
    for name, sandbox in sandboxes.items():
        for secret, data in cluster_secrets(desired.clusters[name], sandbox).items():
            put_secret(kube.api, "multinic-system", secret, data)
    apply_desired(kube, desired)
    register_clusters(kube, desired, now=T0)
    return desired


@pytest.fixture
def registered(
    tmp_path: Path, pve_kube: Kube, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> Kube:
    prod = pve_sandbox_factory(Topology.from_dict({"cluster": "pve-prod", "version": "8.0"}))
    lab = pve_sandbox_factory(
        Topology.from_dict(
            {"cluster": "pve-lab", "version": "7.4", "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
        )
    )
    register(tmp_path / "config", pve_kube, {"pve-prod": prod, "pve-lab": lab}, pve_lab=4)
    return pve_kube


def call(kube: Kube, guard: SecretGuard, method: str, path: str) -> tuple[int, dict]:
    status, body = handle(method, path, kube)
    guard.check_text(f"API {method} {path}", json.dumps(body))
    return status, body


def test_get_clusters_lists_every_registered_cluster_with_version_and_node_count_from_the_api(
    registered: Kube, pve_secret_guard: SecretGuard
) -> None:
    status, body = call(registered, pve_secret_guard, "GET", "/api/v1/clusters")
    assert status == 200 and body["total"] == 2
    summary = [
        (c["name"], c["version"], c["release"], c["nodeCount"], c["onlineNodes"], c["health"], c["ready"])
        for c in body["clusters"]
    ]
    assert summary == [
        ("pve-lab", "7.4-16", "7.4", 3, 3, "Degraded", True),
        ("pve-prod", "8.0.3", "8.0", 2, 2, "Healthy", True),
    ]
    prod = body["clusters"][1]
    assert prod["clusterName"] == "pve-prod" and prod["quorate"] is True
    assert prod["lastVerified"] == "2025-03-01T12:00:00Z"
    assert prod["sourcePath"] == "clusters/pve-prod.yaml"
    assert prod["endpoint"].startswith("https://127.0.0.1:")
    assert body["clusters"][0]["warnings"] == ["expected 4 nodes (spec.expectedNodeCount), the cluster reports 3"]


def test_get_one_cluster_adds_its_conditions(registered: Kube, pve_secret_guard: SecretGuard) -> None:
    status, body = call(registered, pve_secret_guard, "GET", "/api/v1/clusters/pve-prod")
    assert status == 200
    assert body["name"] == "pve-prod" and body["version"] == "8.0.3"
    assert [(c["type"], c["status"], c["reason"]) for c in body["conditions"]] == [("Ready", "True", "Verified")]
    assert body["observedGeneration"] == body["generation"] == 1


def test_an_unknown_cluster_is_a_404_json_error(registered: Kube, pve_secret_guard: SecretGuard) -> None:
    assert call(registered, pve_secret_guard, "GET", "/api/v1/clusters/nope") == (
        404,
        {"error": "cluster nope not found", "code": 404},
    )


def test_writes_are_refused_because_registration_goes_through_git(
    registered: Kube, pve_secret_guard: SecretGuard, kube_sandbox: KubeSandbox
) -> None:
    kube_sandbox.request_log.clear()
    for method, path in (("POST", "/api/v1/clusters"), ("DELETE", "/api/v1/clusters/pve-prod")):
        status, body = call(registered, pve_secret_guard, method, path)
        assert status == 405 and body["code"] == 405
    assert kube_sandbox.request_log.writes() == []


def test_unknown_paths_are_404(registered: Kube, pve_secret_guard: SecretGuard) -> None:
    for path in ("/api/v2/clusters", "/api/v1/secrets", "/api/v1/clusters/a/b", "/"):
        assert call(registered, pve_secret_guard, "GET", path)[0] == 404


def test_a_query_string_and_a_trailing_slash_are_ignored(registered: Kube, pve_secret_guard: SecretGuard) -> None:
    status, body = call(registered, pve_secret_guard, "GET", "/api/v1/clusters/?pretty=1")
    assert status == 200 and body["total"] == 2


def test_get_nodes_lists_node_configs_with_interfaces_and_the_vm_check(
    registered: Kube, pve_secret_guard: SecretGuard
) -> None:
    status, body = call(registered, pve_secret_guard, "GET", "/api/v1/nodes")
    assert status == 200 and body["total"] == 1
    node = body["nodes"][0]
    assert (node["name"], node["nodeName"], node["phase"], node["appliedRevision"]) == (
        "worker-1",
        "k8s-worker-1",
        None,
        None,
    )
    assert node["interfaces"] == [
        {
            "name": "storage0",
            "macAddress": "bc:24:11:00:01:01",
            "addresses": ["10.20.0.11/24"],
            "proxmoxNet": "net1",
            "state": None,
            "device": None,
            "error": None,
        }
    ]
    assert node["proxmox"] == {"cluster": "pve-prod", "vmid": 101}


def test_the_node_entry_shows_the_proxmox_check_once_written(
    tmp_path: Path, pve_kube: Kube, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    prod = pve_sandbox_factory(Topology.from_dict({"cluster": "pve-prod"}))
    desired = register(tmp_path / "config", pve_kube, {"pve-prod": prod})
    for name, check in check_verified_nodes(pve_kube, desired).items():
        cr = LiveCR.from_manifest(pve_kube.get("MultiNicNodeConfig", name) or {})
        wanted = node_status(cr, state=None, check=check, validity=None).dump()
        pve_kube.patch_status("MultiNicNodeConfig", name, merge_patch(cr.status, wanted) or {})
    status, body = call(pve_kube, pve_secret_guard, "GET", "/api/v1/nodes/worker-1")
    assert status == 200
    assert body["proxmoxCheck"] == {"checked": True, "vmNode": "pve1", "mismatches": [], "nicCheck": "enforce"}


def test_a_kubernetes_failure_is_a_502_json_error(
    registered: Kube, pve_secret_guard: SecretGuard, kube_sandbox: KubeSandbox
) -> None:
    kube_sandbox.faults.inject(verb="list", resource="proxmoxclusters", status=403, message="forbidden by policy")
    status, body = call(registered, pve_secret_guard, "GET", "/api/v1/clusters")
    assert status == 502 and body["code"] == 502
    assert "403" in body["error"]
