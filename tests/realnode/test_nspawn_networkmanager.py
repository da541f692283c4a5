"""nspawn tier: a booted node with a real NetworkManager, configured by the Job the controller
builds for a RHEL 9-family node (keyfiles + .link files), through the node's own D-Bus; and an
RHEL 8 node (ifcfg files read by NetworkManager's ifcfg-rh plugin, the tree's RHEL 8 layer).

Every test starts from a node where the operator's own profile ``pre-ens19`` is active on ens19
(10.1.0.9/24) and ens20 is unconfigured; a failure (a missing NIC, a NIC without carrier, a wrong
route, a failing probe) must leave exactly that: the same files, the same active connections, the
same names, MTUs, addresses and routes; the failures run end to end through the reconciler and
the kube sandbox and must be reported once, with one Job and no second run. The RHEL 8 node starts
from the installer's ``ifcfg-ens19`` active on ens19 and must come back to it the same way.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import ROCKY_8, NspawnNode
from support.reconcile import NAMESPACE, git_repo, settings_doc, start_env, write_doc

from reconciler.kube import jobs

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


def snapshot(node: NspawnNode, dirs: tuple[str, ...] = DIRS) -> tuple[dict[str, Any], dict[str, str],
                                                                      dict[str, bytes], list[str]]:
    """Everything a rollback must restore: live state, active connections, files, routing table."""
    return node.live(), node.active(), node.files(*dirs), node.routes()


def test_keyfiles_are_applied_by_networkmanager_verified_probed_and_a_rerun_changes_nothing(node: NspawnNode) -> None:
    code, result = node.run_job(doc(STORAGE, BACKUP))
    assert code == 0 and result["outcome"] == "applied", result
    assert result["renderer"] == "keyfile" and result["os"] == "rocky 9.4"
    live = node.live()
    assert live["bc:24:11:00:00:01"] == {
        "name": "storage0", "mtu": 9000, "up": True, "addresses": ["10.1.0.5/24", "fd01::5/64"],
        # installed by NetworkManager: 50 as specified; the IPv6 route without one gets the 100 its
        # keyfile states (what NM gives at boot), not the kernel's 1024 that `ip route add` would give
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


# -- failures, end to end: the controller's Job, run by the sandbox's Job controller on this node --
#
# Each case: the node file goes through the reconciler against the kube sandbox; the Job it builds
# runs here (``NspawnNode.kubelet``); the agent rolls back; the controller reports it once. More
# cycles later (past any backoff) there is still one Job, one pod, one Warning Event: the node is
# never disrupted a second time, and files, active connections and live state are as before.

GHOST = {"name": "tenant0", "macAddress": "bc:24:11:00:00:99", "addresses": ["10.3.0.5/24"]}
FAILURES: dict[str, tuple[list[dict[str, Any]], str, int, str]] = {
    # case: (interfaces, step, index of the NIC that names the error, what that error says)
    "missing-nic": ([STORAGE, BACKUP, GHOST], "match", 2, "bc:24:11:00:00:99"),
    "no-carrier": ([STORAGE, BACKUP], "verify", 1, "backup0: no carrier"),
    # the node already routes 10.8.0.0/16 at metric 50 (a blackhole): NetworkManager adds ours next
    # to it and the kernel keeps using the blackhole; the route is there but carries nothing
    "wrong-route": ([STORAGE, BACKUP], "verify", 0,
                     "route 10.8.0.0/16 via 10.1.0.1 metric 50 clashes with blackhole 10.8.0.0/16 metric 50"),
    "failing-probe": ([{**STORAGE, "probes": [{"ping": "10.1.0.77", "timeoutSeconds": 2}]}, BACKUP], "probe", 0,
                      "ping 10.1.0.77 failed"),
}


def config_repo(path: Path, interfaces: list[dict[str, Any]]) -> Path:
    write_doc(path / "reconciler.yaml", settings_doc(max_parallel=1, max_failures=1))
    node = doc(*interfaces)
    node["spec"]["osFamily"] = "rhel"  # the sandbox's Node then says Rocky Linux 9.4: keyfiles
    write_doc(path / "nodes" / "node-1.yaml", node)
    return git_repo(None, path)


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_failure_rolls_the_node_back_and_is_reported_once(node: NspawnNode, tmp_path: Path, case: str) -> None:
    interfaces, step, index, error = FAILURES[case]
    if case == "no-carrier":
        node.peer_link("ens20", "down")  # the cable of ens20 is pulled
    if case == "wrong-route":
        node.exec("ip", "route", "add", "blackhole", "10.8.0.0/16", "metric", "50")
    before = snapshot(node)
    assert before[1] == {"ens19": "pre-ens19"}
    with start_env(config_repo(tmp_path / "repo", interfaces), jobs="auto") as env:
        env.sandbox.node_model.set_default(node.kubelet())

        def failed() -> bool:
            env.apply()
            status = (env.cr("node-1") or {}).get("status") or {}
            return status.get("phase") == "Failed"

        env.sandbox.wait_until(failed, timeout=300, interval=0.5)
        for _ in range(5):  # later cycles, well past any retry backoff: nothing runs again
            env.sandbox.clock.advance(600)
            env.apply()
            time.sleep(0.2)
        env.sandbox.jobs.step()

        assert len(node.pod_runs) == 1
        result = json.loads(node.pod_runs[0].message)
        assert node.pod_runs[0].exit_code == 1
        assert result["outcome"] == "rolled-back" and result["step"] == step, result
        assert error in result["interfaces"][index]["error"]
        jobs_run = [j for j in env.jobs() if j["metadata"]["labels"][jobs.LABEL_TYPE] == "apply"]
        assert len(jobs_run) == 1 and jobs_run[0]["spec"]["backoffLimit"] == 0
        status = env.cr("node-1")["status"]  # type: ignore[index]
        assert status["phase"] == "Failed" and "nextRetry" not in status
        assert error in next(i["error"] for i in status["interfaces"] if i["name"] == interfaces[index]["name"])
        warnings = [e for e in env.sandbox.list("v1", "Event", NAMESPACE)
                    if e["involvedObject"]["name"] == "node-1" and e["type"] == "Warning"]
        assert [(e["reason"], e.get("count", 1)) for e in warnings] == [("ApplyFailed", 1)], warnings
    assert snapshot(node) == before


def test_an_off_link_gateway_is_refused_by_the_agent_before_anything_changes(node: NspawnNode) -> None:
    # The config repo refuses such a file (it never reaches a node through the controller); the
    # agent refuses it too: NetworkManager would "install" it by inventing a host route to the gateway.
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


# -- RHEL 8: ifcfg files, read by NetworkManager's ifcfg-rh plugin ------------------------------

IFCFG_DIRS = ("/etc/sysconfig/network-scripts", "/etc/NetworkManager/system-connections")
INSTALLER_IFCFG = ("# written by the installer\nTYPE=Ethernet\nBOOTPROTO=none\nNAME=ens19\nDEVICE=ens19\n"
                   "ONBOOT=yes\nIPADDR=10.1.0.9\nPREFIX=24\nIPV6INIT=no\n")


@pytest.fixture
def rhel8(debian_tree: Path, tmp_path: Path) -> Iterator[NspawnNode]:
    node = NspawnNode(debian_tree, tmp_path, release=ROCKY_8, rhel8=True)
    try:
        node.start()
        node.add_nic("ens19", "bc:24:11:00:00:01", ("10.1.0.1/24", "fd01::1/64"), peer_mtu=9000)
        node.add_nic("ens20", "bc:24:11:00:00:02", ("10.2.0.1/24",))
        (node.root / "etc/sysconfig/network-scripts/ifcfg-ens19").write_text(INSTALLER_IFCFG)
        node.boot()
        node.nmcli("connection", "up", "id", "ens19")
        yield node
    finally:
        node.stop()


def profile_files(node: NspawnNode) -> dict[str, str]:
    """connection id -> the file NetworkManager loaded it from (which plugin read it)."""
    out = {}
    for line in node.nmcli("-g", "NAME,FILENAME", "connection", "show").splitlines():
        name, _, filename = line.partition(":")
        out[name] = filename
    return out


def test_rhel8_ifcfg_files_are_read_by_ifcfg_rh_verified_probed_and_a_rerun_changes_nothing(rhel8: NspawnNode) -> None:
    assert rhel8.active() == {"ens19": "ens19"}
    code, result = rhel8.run_job(doc(STORAGE, BACKUP))
    assert code == 0 and result["outcome"] == "applied", result
    assert result["renderer"] == "ifcfg" and result["os"] == "rocky 8.10"
    live = rhel8.live()
    assert live["bc:24:11:00:00:01"] == {
        "name": "storage0", "mtu": 9000, "up": True, "addresses": ["10.1.0.5/24", "fd01::5/64"],
        # route-storage0 (METRIC0=50) and route6-storage0 (metric 100, as the renderer states it)
        "routes": sorted([("10.8.0.0/16", "10.1.0.1", 50), ("fd08::/48", "fd01::1", 100)], key=str),
    }
    assert live["bc:24:11:00:00:02"]["name"] == "backup0"
    assert live["bc:24:11:00:00:02"]["addresses"] == ["10.2.0.5/24"]
    assert rhel8.active() == {"storage0": "storage0", "backup0": "backup0"}
    # NetworkManager read them through ifcfg-rh (the keyfile plugin cannot read these files)
    files = profile_files(rhel8)
    assert files["storage0"] == "/etc/sysconfig/network-scripts/ifcfg-storage0"
    assert files["backup0"] == "/etc/sysconfig/network-scripts/ifcfg-backup0"
    written = rhel8.files(*IFCFG_DIRS)
    assert set(written) == {f"/etc/sysconfig/network-scripts/{f}" for f in
                            ("ifcfg-ens19", "ifcfg-storage0", "route-storage0", "route6-storage0", "ifcfg-backup0")}
    assert written["/etc/sysconfig/network-scripts/ifcfg-ens19"] == INSTALLER_IFCFG.encode()

    code, again = rhel8.run_job(doc(STORAGE, BACKUP))
    assert code == 0 and again["outcome"] == "unchanged", again
    assert rhel8.live() == live and rhel8.files(*IFCFG_DIRS) == written


def test_rhel8_a_missing_nic_rolls_back_to_the_installers_profile(rhel8: NspawnNode) -> None:
    before = snapshot(rhel8, IFCFG_DIRS)
    code, result = rhel8.run_job(doc(STORAGE, BACKUP, GHOST))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "match", result
    assert "bc:24:11:00:00:99" in result["interfaces"][2]["error"]
    assert snapshot(rhel8, IFCFG_DIRS) == before


def test_rhel8_a_failing_probe_after_activation_restores_the_node(rhel8: NspawnNode) -> None:
    before = snapshot(rhel8, IFCFG_DIRS)
    failing = {**STORAGE, "probes": [{"ping": "10.1.0.77", "timeoutSeconds": 2}]}
    code, result = rhel8.run_job(doc(failing, BACKUP))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "probe", result
    assert "ping 10.1.0.77 failed" in result["interfaces"][0]["error"]
    assert snapshot(rhel8, IFCFG_DIRS) == before


def test_rhel8_the_remove_job_takes_our_ifcfg_files_away_and_leaves_the_installers(rhel8: NspawnNode) -> None:
    assert rhel8.run_job(doc(STORAGE, BACKUP))[0] == 0
    code, result = rhel8.run_job(doc(STORAGE, BACKUP), "remove")
    assert code == 0 and result["outcome"] == "removed", result
    assert set(rhel8.files(*IFCFG_DIRS)) == {"/etc/sysconfig/network-scripts/ifcfg-ens19"}
    assert "storage0" not in rhel8.active().values() and "backup0" not in rhel8.active().values()
