"""``reconciler clusters list|get`` as a subprocess with the kube sandbox's kubeconfig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from multinic_sandbox.harness.kube_setup import apply_desired, cluster_secrets, cluster_yaml, put_secret
from multinic_sandbox.kube.server import KubeSandbox
from multinic_sandbox.proxmox import Topology
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

from reconciler.apply.proxmox.cli import age, table
from reconciler.apply.proxmox.registration import register_clusters
from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def registered(
    tmp_path: Path, pve_kube: Kube, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> dict[str, str]:
    sandboxes = {
        "pve-prod": pve_sandbox_factory(
            Topology.from_dict(
                {"cluster": "pve-prod", "version": "9.1", "nodes": [{"name": f"pve{i}"} for i in range(1, 5)]}
            )
        ),
        "pve-lab": pve_sandbox_factory(Topology.from_dict({"cluster": "pve-lab", "version": "7.4"})),
    }
    root = tmp_path / "config"
    (root / "clusters").mkdir(parents=True)
    urls = {}
    for name, sandbox in sandboxes.items():
        text = cluster_yaml(name, sandbox.url, credentials_secret=f"{name}-creds", ca_secret=f"{name}-ca")
        (root / "clusters" / f"{name}.yaml").write_text(text)
        urls[name] = sandbox.url
    desired = validate_repo(root).desired
    for name, sandbox in sandboxes.items():
        auth = "ticket" if name == "pve-lab" else "token"
        for secret, data in cluster_secrets(desired.clusters[name], sandbox, auth=auth).items():  # type: ignore[arg-type]
            put_secret(pve_kube.api, "multinic-system", secret, data)
    apply_desired(pve_kube, desired)
    assert all(o.ready for o in register_clusters(pve_kube, desired, now=T0))
    return urls


def reconciler(kube_sandbox: KubeSandbox, guard: SecretGuard, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "*", "KUBECONFIG": ""}
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "clusters", *args, "--kubeconfig", kube_sandbox.kubeconfig_path],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    guard.check_text(f"reconciler clusters {' '.join(args)} stdout", result.stdout)
    guard.check_text(f"reconciler clusters {' '.join(args)} stderr", result.stderr)
    return result


def test_clusters_list_shows_a_table_with_version_and_node_count_as_the_api_reports_them(
    registered: dict[str, str], kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    result = reconciler(kube_sandbox, pve_secret_guard, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ENDPOINT", "VERSION", "NODES", "HEALTH", "READY", "LAST-VERIFIED", "AGE"]
    rows = [line.split() for line in lines[1:]]
    assert [r[:6] for r in rows] == [
        ["pve-lab", registered["pve-lab"], "7.4-16", "2", "Healthy", "True"],
        ["pve-prod", registered["pve-prod"], "9.1.6", "4", "Healthy", "True"],
    ]


def test_clusters_list_as_json_and_yaml_carries_the_api_entries(
    registered: dict[str, str], kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    as_json = json.loads(reconciler(kube_sandbox, pve_secret_guard, "list", "-o", "json").stdout)
    as_yaml = yaml.safe_load(reconciler(kube_sandbox, pve_secret_guard, "list", "--output", "yaml").stdout)
    assert as_json == as_yaml
    assert as_json["total"] == 2
    assert [(c["name"], c["version"], c["nodeCount"], c["lastVerified"]) for c in as_json["clusters"]] == [
        ("pve-lab", "7.4-16", 2, "2025-03-01T12:00:00Z"),
        ("pve-prod", "9.1.6", 4, "2025-03-01T12:00:00Z"),
    ]


def test_clusters_get_shows_one_cluster_with_its_ready_condition(
    registered: dict[str, str], kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    result = reconciler(kube_sandbox, pve_secret_guard, "get", "pve-prod")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:4] == ["pve-prod", registered["pve-prod"], "9.1.6", "4"]
    assert "Ready:     True (Verified) Proxmox VE 9.1.6, cluster pve-prod, 4/4 nodes online, quorate" in result.stdout
    detail = json.loads(reconciler(kube_sandbox, pve_secret_guard, "get", "pve-prod", "-o", "json").stdout)
    assert detail["conditions"][0]["reason"] == "Verified"


def test_clusters_get_of_an_unknown_name_exits_1_with_a_message(
    registered: dict[str, str], kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    result = reconciler(kube_sandbox, pve_secret_guard, "get", "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: cluster nope not found in namespace multinic-system"


def test_clusters_list_with_nothing_registered_says_so(
    pve_kube: Kube, kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    result = reconciler(kube_sandbox, pve_secret_guard, "list")
    assert (result.returncode, result.stdout) == (0, "No clusters registered.\n")


def test_the_table_shows_never_for_a_cluster_not_yet_verified_and_kubectl_style_ages() -> None:
    now = T0 + timedelta(hours=3)
    text = table([{"name": "a", "endpoint": "https://x:8006", "createdAt": "2025-03-01T12:00:00Z"}], now)
    expected = ["a", "https://x:8006", "<none>", "<none>", "<none>", "Unknown", "<never>", "3h"]
    assert text.splitlines()[1].split() == expected
    ago = [timedelta(seconds=45), timedelta(minutes=5), timedelta(hours=1), timedelta(days=3)]
    assert [age(format(T0 - d, "%Y-%m-%dT%H:%M:%SZ"), T0) for d in ago] == ["45s", "5m", "60m", "3d"]
