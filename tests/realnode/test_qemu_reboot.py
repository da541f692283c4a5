"""QEMU tier: three VMs (software emulation), NICs like a Proxmox VM's (virtio-net, bc:24:11:… MACs),
each configured by the Job the controller builds, then rebooted: live state after the boot must
equal live state after the apply (names, MTUs, addresses, routes with their metrics).

Before that apply, each VM first runs a Job whose probe fails after activation: the agent must
roll back to exactly the state before it (names, MTU, operstate, addresses, routes). Unlike the
nspawn nodes these run udev, which gives a renamed NIC its old name as an alternative name; the
kernel refuses to rename a NIC to a name still held, so a rollback that does not drop it leaves
the NICs renamed and down until the next boot.

* ``netplan``: an Ubuntu-style node (netplan + systemd-networkd, NetworkManager off); the agent
  validates and applies through netplan's own D-Bus service (Generate, Apply).
* ``keyfile``: a RHEL 9-style node (NetworkManager + keyfiles, networkd off); the agent loads the
  keyfiles into NetworkManager over D-Bus and activates them; the ``.link`` files rename at boot.
  backup0's route has no metric in the spec: its keyfile says 100, live and after the boot (left
  to NetworkManager it would be 101 live on the second NIC and 100 after the boot).
* ``ifcfg``: an RHEL 8-style node (the tree's RHEL 8 layer laid over it: NetworkManager with
  ifcfg-rh, ``plugins=ifcfg-rh,keyfile``, networkd off); NetworkManager reads the ifcfg and route
  files; at boot udev renames each NIC to the DEVICE of the ifcfg file with its HWADDR, as
  initscripts' ``60-net.rules`` does on RHEL 8.

The VMs boot twice each (apply, then reboot) and run side by side: about a minute per boot on an idle
2-core machine, so this module adds about two to three minutes to CI (5 min 48 s measured with a
load average of 10-15 from other work on 2 cores, including the one-off disk image).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from nodes import ROCKY_8, job_pod
from vm import ROCKY, UBUNTU, QemuNode, available

NICS: list[dict[str, Any]] = [
    {"name": "storage0", "macAddress": "bc:24:11:00:00:01", "addresses": ["10.1.0.5/24", "10.1.1.5/24"], "mtu": 9000,
     "routes": [{"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50}]},
    {"name": "backup0", "macAddress": "bc:24:11:00:00:02", "addresses": ["10.2.0.5/24"],
     "routes": [{"to": "10.9.0.0/16", "via": "10.2.0.1"}]},
]
DOC = {"apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig", "metadata": {"name": "node-1"},
       "spec": {"nodeName": "node-1", "interfaces": NICS}}
WANT = {i["macAddress"]: {"name": i["name"], "addresses": i["addresses"]} for i in NICS}
# The same node, but storage0's probe (a peer that never answers) fails once everything is active.
FAILING = {**DOC, "spec": {**DOC["spec"], "interfaces": [
    {**NICS[0], "probes": [{"ping": "10.1.0.77", "timeoutSeconds": 2}]}, NICS[1]]}}

STACKS = {
    "netplan": ("Ubuntu 24.04.1 LTS", UBUNTU,
                "systemctl disable --now NetworkManager.service\n"
                "systemctl is-active systemd-networkd.service\n"),
    "keyfile": ("Rocky Linux 9.4 (Blue Onyx)", ROCKY,
                "systemctl disable --now systemd-networkd.service systemd-networkd.socket\n"
                "nm-online -s -q -t 60\n"),
    "ifcfg": ("Rocky Linux 8.10 (Green Obsidian)", ROCKY_8,
              "systemctl disable --now systemd-networkd.service systemd-networkd.socket\n"
              # NetworkManager with ifcfg-rh, the udev rename of RHEL 8 (the daemon stopped first:
              # a running executable cannot be overwritten)
              "systemctl stop NetworkManager.service\n"
              "cp -a /opt/rhel8/. / || exit 1\n"
              "udevadm control --reload\n"
              "systemctl start NetworkManager.service\n"
              "nm-online -s -q -t 60\n"),
}


def _exercise(node: QemuNode, stack: str, results: dict[str, Any]) -> None:
    try:
        os_image, os_release, prepare = STACKS[stack]
        script = (prepare + node.set_os(os_release) + node.capture("before.json", {})
                  + node.run_pod(job_pod(FAILING, os_image=os_image), "failing.json")
                  + node.capture("after-rollback.json", {})
                  + node.run_pod(job_pod(DOC, os_image=os_image), "apply.json")
                  + node.capture("after-apply.json", WANT))
        node.boot(script)
        node.boot(node.capture("after-boot.json", WANT))  # the reboot: no agent, persisted files only
        results[stack] = {name: node.read(f"{name}.json") for name in
                          ("before", "failing", "after-rollback", "apply", "after-apply", "after-boot")}
    except Exception as exc:  # reported by the tests below
        results[stack] = {"error": f"{type(exc).__name__}: {exc}"}


@pytest.fixture(scope="module")
def vms(debian_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    why = available()
    if why is not None:
        pytest.fail(f"the QEMU tier cannot run: {why}")
    macs = [i["macAddress"] for i in NICS]
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=_exercise, args=(QemuNode(debian_tree, tmp_path_factory.mktemp(s), macs),
                                                        s, results)) for s in STACKS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _result(vms: dict[str, Any], stack: str) -> dict[str, Any]:
    run = vms[stack]
    assert "error" not in run, run.get("error")
    return run


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_a_probe_failing_after_activation_leaves_the_vm_exactly_as_before(vms: dict[str, Any], stack: str) -> None:
    run = _result(vms, stack)
    import json

    assert run["failing"]["exit_code"] == 1, run["failing"]["stderr"][-2000:]
    result = json.loads(run["failing"]["message"])
    assert result["outcome"] == "rolled-back" and result["step"] == "probe", result
    assert result["error"] == "rolled back: probe failed for storage0", result["error"]  # the rollback itself worked
    assert run["after-rollback"] == run["before"]
    assert [s["name"] for s in run["before"].values()] == ["ens6", "ens7"]  # what udev named them at boot


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_job_configures_the_vm_through_its_own_stack(vms: dict[str, Any], stack: str) -> None:
    run = _result(vms, stack)
    import json

    assert run["apply"]["exit_code"] == 0, run["apply"]["stderr"][-2000:]
    result = json.loads(run["apply"]["message"])
    assert result["outcome"] == "applied" and result["renderer"] == stack, result
    live = run["after-apply"]
    for nic in NICS:
        state = live[nic["macAddress"]]
        assert state["name"] == nic["name"] and state["operstate"] == "UP"
        assert state["addresses"] == sorted(nic["addresses"])
        assert state["mtu"] == nic.get("mtu", 1500)
        for route in nic["routes"]:
            # keyfile, ifcfg: a route without a metric gets the 100 its file states (on every NIC)
            metric = route.get("metric", 100 if stack in ("keyfile", "ifcfg") else None)
            assert any(r[0] == route["to"] and r[1] == route["via"] and (metric is None or r[2] == metric)
                       for r in state["routes"]), (route, state["routes"])


# For keyfile and ifcfg this holds because the files state every metric: a route without one would get
# NetworkManager's per-device default, reserved at activation (101 live on the second NIC, 100 at boot).
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_after_a_reboot_the_live_state_equals_the_state_after_apply(vms: dict[str, Any], stack: str) -> None:
    run = _result(vms, stack)
    assert run["after-boot"] == run["after-apply"]
