"""nspawn tier: a booted node with a real NetworkManager, configured by the Job the controller
builds for a RHEL 9-family node (keyfiles + .link files), through the node's own D-Bus.

Every test starts from a node where the operator's own profile ``pre-ens19`` is active on ens19
(10.1.0.9/24) and ens20 is unconfigured; a failure must leave exactly that: the same files, the
same active connections, the same names, MTUs, addresses and routes. (Debian's NetworkManager has
no ifcfg-rh plugin, so ifcfg is covered by the fast suites only.)
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from nodes import NspawnNode

DIRS = ("/etc/NetworkManager/system-connections", "/etc/systemd/network")
STORAGE: dict[str, Any] = {
    "name": "storage0", "macAddress": "bc:24:11:00:00:01", "addresses": ["10.1.0.5/24", "fd01::5/64"], "mtu": 9000,
    "routes": [{"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50}, {"to": "fd08::/48", "via": "fd01::1"}],
    "probes": [{"ping": "10.1.0.1", "mtu": True}],
}
BACKUP: dict[str, Any] = {"name": "backup0", "macAddress": "bc:24:11:00:00:02", "addresses": ["10.2.0.5/24"]}
PRE = ("# written by the operator\n[connection]\nid=pre-ens19\nuuid=6b1f4c1e-0000-4000-8000-000000000001\n"
       "type=ethernet\ninterface-name=ens19\n\n[ipv4]\nmethod=manual\naddress1=10.1.0.9/24\n\n[ipv6]\nmethod=ignore\n")


def doc(*interfaces: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig", "metadata": {"name": "node-1"},
            "spec": {"nodeName": "node-1", "interfaces": list(interfaces)}}


@pytest.fixture
def node(nspawn_node: NspawnNode) -> NspawnNode:
    nspawn_node.add_nic("ens19", "bc:24:11:00:00:01", ("10.1.0.1/24", "fd01::1/64"), peer_mtu=9000)
    nspawn_node.add_nic("ens20", "bc:24:11:00:00:02", ("10.2.0.1/24",))
    pre = nspawn_node.root / "etc/NetworkManager/system-connections/pre-ens19.nmconnection"
    pre.write_text(PRE)
    os.chmod(pre, 0o600)
    nspawn_node.boot()
    nspawn_node.nmcli("connection", "up", "id", "pre-ens19")
    return nspawn_node


def snapshot(node: NspawnNode) -> tuple[dict[str, Any], dict[str, str], dict[str, bytes]]:
    return node.live(), node.active(), node.files(*DIRS)


def test_keyfiles_are_applied_by_networkmanager_verified_probed_and_a_rerun_changes_nothing(node: NspawnNode) -> None:
    code, result = node.run_job(doc(STORAGE, BACKUP))
    assert code == 0 and result["outcome"] == "applied", result
    assert result["renderer"] == "keyfile" and result["os"] == "rocky 9.4"
    live = node.live()
    assert live["bc:24:11:00:00:01"] == {
        "name": "storage0", "mtu": 9000, "up": True, "addresses": ["10.1.0.5/24", "fd01::5/64"],
        # NetworkManager's own metrics: 50 as specified; the IPv6 route without one gets NM's
        # default for the device (100), not the kernel's 1024 that `ip route add` would give
        "routes": sorted([("10.8.0.0/16", "10.1.0.1", 50), ("fd08::/48", "fd01::1", 100)], key=str),
    }
    assert live["bc:24:11:00:00:02"]["name"] == "backup0"
    assert live["bc:24:11:00:00:02"]["addresses"] == ["10.2.0.5/24"]
    assert node.active() == {"storage0": "storage0", "backup0": "backup0"}  # ours replaced pre-ens19
    written = node.files(*DIRS)
    assert {"/etc/NetworkManager/system-connections/storage0.nmconnection",
            "/etc/systemd/network/70-multinic-storage0.link"} <= set(written)

    code, again = node.run_job(doc(STORAGE, BACKUP))
    assert code == 0 and again["outcome"] == "unchanged", again
    assert node.live() == live and node.files(*DIRS) == written


def test_a_failing_probe_restores_the_previous_files_connections_and_live_state(node: NspawnNode) -> None:
    before = snapshot(node)
    assert before[1] == {"ens19": "pre-ens19"}
    unreachable = {**STORAGE, "probes": [{"ping": "10.1.0.77", "timeoutSeconds": 2}]}
    code, result = node.run_job(doc(unreachable, BACKUP))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "probe", result
    assert "ping 10.1.0.77 failed" in result["interfaces"][0]["error"]
    assert snapshot(node) == before


def test_a_missing_nic_changes_nothing(node: NspawnNode) -> None:
    before = snapshot(node)
    ghost = {"name": "tenant0", "macAddress": "bc:24:11:00:00:99", "addresses": ["10.3.0.5/24"]}
    code, result = node.run_job(doc(STORAGE, BACKUP, ghost))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "match", result
    assert "bc:24:11:00:00:99" in result["interfaces"][2]["error"]
    assert snapshot(node) == before


def test_a_nic_without_carrier_is_rolled_back_with_the_others(node: NspawnNode) -> None:
    node.peer_link("ens20", "down")  # the cable of ens20 is pulled
    before = snapshot(node)
    code, result = node.run_job(doc(STORAGE, BACKUP))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "verify", result
    assert "no carrier" in result["interfaces"][1]["error"]
    assert snapshot(node) == before


def test_a_wrong_route_is_refused_before_anything_changes(node: NspawnNode) -> None:
    # NetworkManager would "install" it by inventing a host route to the gateway; the agent refuses
    before = snapshot(node)
    wrong = {**STORAGE, "routes": [{"to": "10.8.0.0/16", "via": "10.66.0.1", "metric": 50}], "probes": []}
    code, result = node.run_job(doc(wrong, BACKUP))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "plan", result
    assert "10.66.0.1: the gateway is not inside any of storage0's prefixes" in result["interfaces"][0]["error"]
    assert snapshot(node) == before


def test_the_remove_job_takes_our_profiles_away_and_leaves_the_operators(node: NspawnNode) -> None:
    assert node.run_job(doc(STORAGE, BACKUP))[0] == 0
    code, result = node.run_job(doc(STORAGE, BACKUP), "remove")
    assert code == 0 and result["outcome"] == "removed", result
    assert set(node.files(*DIRS)) == {"/etc/NetworkManager/system-connections/pre-ens19.nmconnection"}
    assert "storage0" not in node.active().values() and "backup0" not in node.active().values()
    assert node.live()["bc:24:11:00:00:02"]["addresses"] == []
