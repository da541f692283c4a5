"""The agent against a real kernel: a veth pair in two throw-away network namespaces.

Layout: namespace ``node`` holds one veth end carrying the spec's MAC (named ``vn<id>``); namespace
``peer`` holds the other end with 10.77.0.1/24 and fd77::1/64. The agent runs inside ``node`` via
``ip netns exec`` (which remounts /sys for that namespace, so ``--root /`` sees only its devices)
with ``--activate iproute2`` and ``--config-root <tmp>`` so no file of the host is written. Nothing
outside the two namespaces is touched; both are deleted in the fixture's finalizer.

The forced verification failure is real: the spec asks for fd77::1/64, which the peer already
owns, so IPv6 duplicate address detection fails in the kernel and the agent must roll back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.netns import require_root_and_ip, veth_pair
from test_agent_support import IP, REPO, node_doc, write_doc

pytestmark = pytest.mark.root

MAC = "52:54:00:77:00:01"
NIC: dict[str, Any] = {
    "name": "multinic0",
    "macAddress": MAC,
    "addresses": ["10.77.0.2/24", "fd77::2/64"],
    "mtu": 9000,
    "routes": [{"to": "10.88.0.0/16", "via": "10.77.0.1", "metric": 100}, {"to": "fd88::/48", "via": "fd77::1"}],
}


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


class Netns:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.peer, self.dev = f"mnic-node-{tag}", f"mnic-peer-{tag}", f"vn{tag}"

    def ip(self, *args: str) -> str:
        return sh(str(IP), "-n", self.node, *args)

    def link(self) -> dict[str, Any]:
        links = json.loads(self.ip("-j", "addr", "show"))
        return next(link for link in links if link.get("address") == MAC)

    def state(self) -> tuple[str, int, set[str], set[str]]:
        """(name, MTU, global addresses, gateway routes) of the NIC with our MAC."""
        link = self.link()
        addrs = {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") == "global"}
        routes = set()
        for family in ("-4", "-6"):
            for r in json.loads(self.ip("-j", family, "route", "show", "dev", link["ifname"])):
                if "gateway" in r:
                    routes.add(f"{r['dst']} via {r['gateway']}")
        return link["ifname"], link["mtu"], addrs, routes

    def agent(self, config: Path, config_root: Path) -> tuple[int, dict[str, Any]]:
        return self.run("apply", "--config", str(config), "--config-root", str(config_root))

    def run(self, action: str, *args: str) -> tuple[int, dict[str, Any]]:
        """``reconciler agent <action>`` inside the node namespace (root /, iproute2)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "NODE_NAME": "worker-1",
            "PYTHONPATH": str(REPO),
        }
        argv = [str(IP), "netns", "exec", self.node, sys.executable, "-m", "reconciler", "agent"]
        argv += [action, "--root", "/", "--activate", "iproute2", "--verify-timeout", "8", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO, env=env, check=False)
        assert proc.stdout.strip(), proc.stderr
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def netns() -> Iterator[Netns]:
    ip = require_root_and_ip(IP)
    ns = Netns()
    with veth_pair(ip, ns.node, ns.peer, ns.dev, MAC, ["10.77.0.1/24", "fd77::1/64"]):
        # The "before" state the agent finds (and a rollback must bring back).
        ns.ip("link", "set", "dev", ns.dev, "up")
        ns.ip("addr", "add", "10.99.0.2/24", "dev", ns.dev)
        yield ns


def test_apply_in_a_namespace_renames_sets_mtu_addresses_and_routes_then_changes_nothing(
    netns: Netns, tmp_path: Path
) -> None:
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 0, result
    assert result["outcome"] == "applied"
    assert result["interfaces"][0]["device"] == netns.dev
    name, mtu, addrs, routes = netns.state()
    assert (name, mtu) == ("multinic0", 9000)
    assert addrs == {"10.77.0.2/24", "fd77::2/64"}  # 10.99.0.2/24 was not in the spec: gone
    assert routes == {"10.88.0.0/16 via 10.77.0.1", "fd88::/48 via fd77::1"}
    assert (tmp_path / "etc-root/etc/netplan/90-multinic.yaml").is_file()

    code, again = netns.agent(config, tmp_path / "etc-root")
    assert code == 0 and again["outcome"] == "unchanged"
    assert again["interfaces"][0] == {**result["interfaces"][0], "device": "multinic0", "state": "unchanged"}
    assert netns.state() == (name, mtu, addrs, routes)


def test_a_verification_failure_in_the_kernel_restores_the_previous_live_state_and_files(
    netns: Netns, tmp_path: Path
) -> None:
    good = write_doc(tmp_path / "good.yaml", node_doc([NIC], osFamily="ubuntu"))
    assert netns.agent(good, tmp_path / "etc-root")[0] == 0
    before_state = netns.state()
    netplan_file = tmp_path / "etc-root/etc/netplan/90-multinic.yaml"
    before_file = netplan_file.read_bytes()

    # fd77::1 belongs to the peer: the kernel's duplicate address detection fails it.
    clash = {
        **NIC,
        "addresses": ["10.77.0.3/24", "fd77::1/64"],
        "mtu": 1400,
        "routes": [{"to": "10.88.0.0/16", "via": "10.77.0.1", "metric": 100}],
    }
    bad = write_doc(tmp_path / "bad.yaml", node_doc([clash], osFamily="ubuntu"))
    code, result = netns.agent(bad, tmp_path / "etc-root")
    assert code == 1 and result["outcome"] == "rolled-back", result
    assert "fd77::1/64 failed duplicate address detection" in result["interfaces"][0]["error"]
    assert netns.state() == before_state
    assert netplan_file.read_bytes() == before_file


def test_a_rollback_brings_back_the_original_name_mtu_and_addresses(netns: Netns, tmp_path: Path) -> None:
    before = netns.state()
    assert before == (netns.dev, 1500, {"10.99.0.2/24"}, set())
    clash = {**NIC, "addresses": ["fd77::1/64"], "routes": []}
    bad = write_doc(tmp_path / "bad.yaml", node_doc([clash], osFamily="ubuntu"))
    code, result = netns.agent(bad, tmp_path / "etc-root")
    assert code == 1 and result["outcome"] == "rolled-back", result
    assert netns.state() == before
    assert not (tmp_path / "etc-root/etc/netplan/90-multinic.yaml").exists()


def test_a_nic_is_renamed_to_a_name_it_holds_as_an_alternative_name(netns: Netns, tmp_path: Path) -> None:
    # udev gives a NIC its other predictable names as altnames (ens6 also answers to enp0s6), and
    # after a rename its old name too; the kernel refuses a name any NIC holds, its own altnames
    # included. A spec naming the NIC by one of them, and every rollback after a rename on a node
    # with udev, needs that altname dropped first.
    netns.ip("link", "property", "add", "dev", netns.dev, "altname", "multinic0")
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 0 and result["outcome"] == "applied", result
    assert netns.link()["ifname"] == "multinic0" and "multinic0" not in netns.link().get("altnames", [])


def test_a_name_another_nic_holds_as_an_altname_is_refused_and_rolled_back(netns: Netns, tmp_path: Path) -> None:
    netns.ip("link", "add", "other0", "type", "veth", "peer", "name", "other1")
    netns.ip("link", "property", "add", "dev", "other0", "altname", "multinic0")
    before = netns.state()
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 1 and result["outcome"] == "rolled-back", result
    assert "File exists" in result["error"], result["error"]
    assert netns.state() == before
    assert "multinic0" in json.loads(netns.ip("-j", "link", "show", "dev", "other0"))[0]["altnames"]


def test_remove_deletes_our_file_and_flushes_the_addresses_it_gave(netns: Netns, tmp_path: Path) -> None:
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    assert netns.agent(config, tmp_path / "etc-root")[0] == 0
    code, result = netns.run("remove", "--config-root", str(tmp_path / "etc-root"))
    assert code == 0 and result["outcome"] == "removed", result
    assert result["interfaces"] == [
        {"name": "multinic0", "mac": MAC, "device": None, "state": "removed", "error": None}
    ]
    assert not (tmp_path / "etc-root/etc/netplan/90-multinic.yaml").exists()
    assert netns.state()[2] == set()


def test_a_nic_without_carrier_is_rolled_back_not_reported_applied(netns: Netns, tmp_path: Path) -> None:
    sh(str(IP), "-n", netns.peer, "link", "set", "vp0", "down")  # the cable is pulled: NO-CARRIER
    before = netns.state()
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    code, result = netns.run("apply", "--config", str(config), "--config-root", str(tmp_path / "etc-root"),
                             "--verify-timeout", "2")
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "verify", result
    assert "no carrier" in result["interfaces"][0]["error"]
    assert netns.state() == before
    assert not (tmp_path / "etc-root/etc/netplan/90-multinic.yaml").exists()


def test_a_missing_nic_leaves_the_nic_that_is_there_untouched(netns: Netns, tmp_path: Path) -> None:
    before = netns.state()
    ghost = {"name": "multinic1", "macAddress": "52:54:00:77:00:99", "addresses": ["10.78.0.2/24"]}
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC, ghost], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "match", result
    assert netns.state() == before
    assert not (tmp_path / "etc-root/etc/netplan").exists()


def test_a_route_the_kernel_refuses_rolls_back_addresses_and_mtu_too(netns: Netns, tmp_path: Path) -> None:
    good = write_doc(tmp_path / "good.yaml", node_doc([NIC], osFamily="ubuntu"))
    assert netns.agent(good, tmp_path / "etc-root")[0] == 0
    before = netns.state()
    # on-link, but the kernel refuses a second route to the same prefix with a multicast gateway
    wrong = {**NIC, "mtu": 1400, "addresses": ["10.77.0.2/24", "fd77::2/64"],
             "routes": [{"to": "10.88.0.0/16", "via": "10.77.0.255"}]}
    config = write_doc(tmp_path / "node.yaml", node_doc([wrong], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "activate", result
    assert netns.state() == before


@pytest.mark.parametrize(("peer_mtu", "ok"), [(9000, True), (1500, False)])
def test_probes_ping_the_peer_and_check_the_mtu_with_dont_fragment(netns: Netns, tmp_path: Path,
                                                                    peer_mtu: int, ok: bool) -> None:
    sh(str(IP), "-n", netns.peer, "link", "set", "vp0", "mtu", str(peer_mtu))
    before = netns.state()
    probed = {**NIC, "probes": [{"ping": "10.77.0.1", "mtu": True, "timeoutSeconds": 2}]}
    config = write_doc(tmp_path / "node.yaml", node_doc([probed], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    if ok:
        assert code == 0 and result["outcome"] == "applied", result
        assert netns.state()[:2] == ("multinic0", 9000)
    else:
        assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "probe", result
        assert "9000-byte don't-fragment ping to 10.77.0.1 failed" in result["interfaces"][0]["error"]
        assert netns.state() == before


def test_a_probe_to_an_address_nobody_answers_rolls_back(netns: Netns, tmp_path: Path) -> None:
    before = netns.state()
    probed = {**NIC, "probes": [{"ping": "10.77.0.99", "timeoutSeconds": 1}]}
    config = write_doc(tmp_path / "node.yaml", node_doc([probed], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "probe", result
    assert "ping 10.77.0.99 failed" in result["interfaces"][0]["error"]
    assert netns.state() == before


def test_unchanged_files_with_a_drifted_live_state_are_activated_again_not_reported_unchanged(
    netns: Netns, tmp_path: Path
) -> None:
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    assert netns.agent(config, tmp_path / "etc-root")[0] == 0
    applied = netns.state()
    netns.ip("addr", "del", "10.77.0.2/24", "dev", "multinic0")  # as if the agent had been killed mid-way
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 0 and result["outcome"] == "applied" and result["files"] == [], result
    assert netns.state() == applied


def test_an_on_link_route_for_a_host_address_and_a_link_local_gateway_are_set_and_verified(
    netns: Netns, tmp_path: Path
) -> None:
    # A provider's /32 and /128: the gateways are on the link but in no prefix of the NIC.
    nic = {
        **NIC,
        "addresses": ["203.0.113.7/32", "2001:db8:7::7/128"],
        "routes": [
            {"to": "10.88.0.0/16", "via": "10.77.0.1", "metric": 100, "onLink": True},
            {"to": "fd88::/48", "via": "fe80::1"},
        ],
    }
    config = write_doc(tmp_path / "node.yaml", node_doc([nic], osFamily="ubuntu"))
    code, result = netns.agent(config, tmp_path / "etc-root")
    assert code == 0 and result["outcome"] == "applied", result
    name, _mtu, addrs, routes = netns.state()
    assert addrs == {"203.0.113.7/32", "2001:db8:7::7/128"}
    assert routes == {"10.88.0.0/16 via 10.77.0.1", "fd88::/48 via fe80::1"}
    live = json.loads(netns.ip("-j", "-4", "route", "show", "10.88.0.0/16", "dev", name))
    assert live[0]["flags"] == ["onlink"]
    assert "on-link: true" in (tmp_path / "etc-root/etc/netplan/90-multinic.yaml").read_text()

    code, again = netns.agent(config, tmp_path / "etc-root")
    assert code == 0 and again["outcome"] == "unchanged", again


def test_verify_reports_a_hand_ip_addr_flush_as_drift_changes_nothing_and_apply_repairs_it(
    netns: Netns, tmp_path: Path
) -> None:
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    root = str(tmp_path / "etc-root")
    assert netns.agent(config, tmp_path / "etc-root")[0] == 0
    code, clean = netns.run("verify", "--config", str(config), "--config-root", root, "--verify-timeout", "2")
    assert code == 0 and clean["outcome"] == "unchanged", clean
    applied = netns.state()
    netplan_file = tmp_path / "etc-root/etc/netplan/90-multinic.yaml"
    files_before = netplan_file.read_bytes()

    netns.ip("addr", "flush", "dev", "multinic0")  # by hand, on the node: the files still match
    flushed = netns.state()
    assert flushed[2] == set()
    code, drift = netns.run("verify", "--config", str(config), "--config-root", root, "--verify-timeout", "2")
    assert code == 0 and drift["outcome"] == "drifted", drift
    assert drift["files"] == []  # the files are right: only the live state differs
    nic = drift["interfaces"][0]
    assert nic["state"] == "drifted" and "10.77.0.2/24" in nic["error"] and nic["error"].startswith("live: ")
    assert netns.state() == flushed and netplan_file.read_bytes() == files_before  # verify changed nothing

    code, repaired = netns.agent(config, tmp_path / "etc-root")  # the repair: an apply from the same files
    assert code == 0 and repaired["outcome"] == "applied", repaired
    assert netns.state() == applied
    code, clean = netns.run("verify", "--config", str(config), "--config-root", root, "--verify-timeout", "2")
    assert code == 0 and clean["outcome"] == "unchanged", clean


def test_verify_names_the_files_that_differ_from_the_spec(netns: Netns, tmp_path: Path) -> None:
    config = write_doc(tmp_path / "node.yaml", node_doc([NIC], osFamily="ubuntu"))
    root = str(tmp_path / "etc-root")
    assert netns.agent(config, tmp_path / "etc-root")[0] == 0
    netplan_file = tmp_path / "etc-root/etc/netplan/90-multinic.yaml"
    edited = netplan_file.read_text().replace("mtu: 9000", "mtu: 1500")
    assert edited != netplan_file.read_text()
    netplan_file.write_text(edited)
    code, drift = netns.run("verify", "--config", str(config), "--config-root", root, "--verify-timeout", "2")
    assert code == 0 and drift["outcome"] == "drifted", drift
    assert drift["files"] == ["/etc/netplan/90-multinic.yaml"]
    assert drift["interfaces"][0]["error"] == "files differ from the spec"  # the live state still matches
    assert netplan_file.read_text() == edited  # nothing written back
