"""Sandbox topologies built from a config repo (``example-repo``), as ``reconciler demo`` uses them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config, wrong_mac_for
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

from reconciler import resources
from reconciler.apply.proxmox.client import ProxmoxClient
from reconciler.apply.proxmox.vmnics import nics_from_config
from reconciler.config.validation import DesiredState, validate_repo


@pytest.fixture(scope="module")
def example() -> DesiredState:
    return validate_repo(resources.example_repo_dir()).desired


def test_there_is_one_topology_per_cluster_file_with_its_expected_node_count(example: DesiredState) -> None:
    topologies = topologies_from_config(example)
    assert sorted(topologies) == ["pve-lab", "pve-prod"]
    assert [n.name for n in topologies["pve-prod"].nodes] == ["pve1", "pve2", "pve3", "pve4"]
    assert [n.name for n in topologies["pve-lab"].nodes] == ["pve1", "pve2"]
    assert topologies["pve-prod"].cluster == "pve-prod"


def test_the_clusters_run_different_pve_versions_unless_told_otherwise(example: DesiredState) -> None:
    default = topologies_from_config(example)
    assert {t.version.release for t in default.values()} == {"8.0", "9.1"}
    pinned = topologies_from_config(example, versions={"pve-prod": "7.4"})
    assert pinned["pve-prod"].version.release == "7.4"


def test_every_node_with_a_proxmox_ref_gets_a_vm_carrying_its_macs_in_the_slots_named(example: DesiredState) -> None:
    topologies = topologies_from_config(example)
    for name, node in example.nodes.items():
        if node.spec.proxmox is None:
            assert all(vm.name != name for t in topologies.values() for n in t.nodes for vm in n.vms)
            continue
        found = topologies[node.spec.proxmox.cluster].find_vm(node.spec.proxmox.vmid)
        assert found is not None, name
        nics = {n.slot: n for n in nics_from_config(found[1].net)}
        for interface in node.spec.interfaces:
            assert interface.proxmox_net is not None
            assert nics[interface.proxmox_net].mac == interface.mac_address
            assert nics[interface.proxmox_net].mtu == interface.mtu
        assert nics["net0"].bridge == "vmbr0"  # management NIC


def test_vms_are_spread_over_the_nodes(example: DesiredState) -> None:
    prod = topologies_from_config(example)["pve-prod"]
    assert [[vm.vmid for vm in n.vms] for n in prod.nodes] == [[201, 205], [202, 206], [203], [204]]


def test_a_planted_wrong_mac_changes_exactly_one_nic(example: DesiredState) -> None:
    good = topologies_from_config(example)["pve-prod"]
    bad = topologies_from_config(example, wrong_mac="worker-02")["pve-prod"]
    good_vm, bad_vm = good.find_vm(202), bad.find_vm(202)
    assert good_vm is not None and bad_vm is not None
    changed = {slot for slot in good_vm[1].net if good_vm[1].net[slot] != bad_vm[1].net[slot]}
    assert changed == {"net1"}
    assert wrong_mac_for("BC:24:11:20:00:0C") in bad_vm[1].net["net1"]
    other = topologies_from_config(example, wrong_mac=("worker-02", "tenant0"))["pve-prod"].find_vm(202)
    assert other is not None and "BC:24:11:30:00:8C" in other[1].net["net2"]


def test_a_wrong_mac_for_a_node_without_a_vm_is_refused(example: DesiredState) -> None:
    with pytest.raises(ValueError, match="infra-01"):
        topologies_from_config(example, wrong_mac="infra-01")


def test_point_repo_at_rewrites_only_the_endpoint_and_keeps_comments(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(resources.example_repo_dir(), root)
    before = (root / "clusters" / "pve-prod.yaml").read_text()
    point_repo_at(root, {"pve-prod": "https://127.0.0.1:18006"})
    after = (root / "clusters" / "pve-prod.yaml").read_text()
    assert after == before.replace("https://pve-prod.infra.example.net:8006", "https://127.0.0.1:18006")
    assert validate_repo(root).desired.clusters["pve-prod"].spec.api_endpoint == "https://127.0.0.1:18006"


def test_sandboxes_started_from_the_topologies_answer_like_the_config_expects(
    example: DesiredState, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    for name, topology in topologies_from_config(example).items():
        sandbox = pve_sandbox_factory(topology)
        with ProxmoxClient(
            sandbox.url, token_id=sandbox.token_id, token_secret=sandbox.token_secret, ca_bundle=sandbox.ca_pem
        ) as client:
            info = client.verify()
            assert (info.cluster_name, info.node_count) == (name, example.clusters[name].spec.expected_node_count)
            assert sorted(client.vm_locations()) == sorted(
                n.spec.proxmox.vmid for n in example.nodes.values() if n.spec.proxmox and n.spec.proxmox.cluster == name
            )
