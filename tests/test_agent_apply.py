"""``reconciler agent apply|remove`` on fake node roots: ownership, idempotence, backups, results."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_agent_support import add_nic, agent, make_root, node_doc, write_doc

NETPLAN_FILE = "etc/netplan/90-multinic.yaml"
KEYFILE_DIR = "etc/NetworkManager/system-connections"
IFCFG_DIR = "etc/sysconfig/network-scripts"

NIC0 = {
    "name": "multinic0",
    "macAddress": "52:54:00:aa:00:01",
    "addresses": ["10.10.0.5/24"],
    "mtu": 9000,
    "routes": [{"to": "10.20.0.0/16", "via": "10.10.0.1", "metric": 100}],
}
NIC1 = {"name": "multinic1", "macAddress": "52:54:00:aa:00:02", "addresses": ["fd00:1::5/64"]}


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root", "ubuntu-24.04", {"ens19": "52:54:00:aa:00:01", "ens20": "52:54:00:aa:00:02"})


def config(tmp_path: Path, *ifaces: dict[str, Any], **spec: Any) -> str:
    return str(write_doc(tmp_path / "node.yaml", node_doc(list(ifaces), **spec)))


def apply(capsys: pytest.CaptureFixture[str], root: Path, cfg: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    return agent(capsys, "apply", "--config", cfg, "--root", str(root), *extra)


def test_apply_writes_a_0600_netplan_file_and_reports_applied(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0, NIC1))
    assert code == 0
    assert result["outcome"] == "applied" and result["renderer"] == "netplan"
    assert result["os"] == "ubuntu 24.04" and result["node"] == "worker-1"
    assert result["files"] == ["/" + NETPLAN_FILE]
    assert [(i["name"], i["device"], i["state"]) for i in result["interfaces"]] == [
        ("multinic0", "ens19", "applied"),
        ("multinic1", "ens20", "applied"),
    ]
    assert (node / NETPLAN_FILE).stat().st_mode & 0o777 == 0o600


def test_a_second_apply_with_the_same_spec_writes_nothing(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, NIC0, NIC1)
    apply(capsys, node, cfg)
    before = os.stat(node / NETPLAN_FILE)
    code, result, _ = apply(capsys, node, cfg)
    after = os.stat(node / NETPLAN_FILE)
    assert code == 0 and result["outcome"] == "unchanged" and result["files"] == []
    assert {i["state"] for i in result["interfaces"]} == {"unchanged"}
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_changing_one_interface_marks_only_that_interface_applied(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply(capsys, node, config(tmp_path, NIC0, NIC1))
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0, {**NIC1, "mtu": 1400}))
    assert code == 0 and result["outcome"] == "applied"
    assert [i["state"] for i in result["interfaces"]] == ["unchanged", "applied"]


def test_a_foreign_file_at_our_path_is_left_untouched_and_reported(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = node / NETPLAN_FILE
    foreign.parent.mkdir(parents=True)
    foreign.write_text("network:\n  version: 2\n  # hand-written by an operator\n")
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "plan"
    assert "not managed by multinic-reconciler" in result["interfaces"][0]["error"]
    assert foreign.read_text() == "network:\n  version: 2\n  # hand-written by an operator\n"


def test_a_missing_mac_changes_nothing_on_the_node_and_names_the_mac(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply(capsys, node, config(tmp_path, NIC0))
    before = (node / NETPLAN_FILE).read_bytes()
    missing = {"name": "multinic2", "macAddress": "52:54:00:AA:00:99"}
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}, missing))
    # All or nothing: the NIC that is there is not changed either.
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "match"
    by_name = {i["name"]: i for i in result["interfaces"]}
    assert by_name["multinic0"]["state"] == "error" and "not applied" in by_name["multinic0"]["error"]
    assert by_name["multinic2"]["state"] == "error" and by_name["multinic2"]["device"] is None
    assert "52:54:00:aa:00:99" in by_name["multinic2"]["error"]
    assert (node / NETPLAN_FILE).read_bytes() == before and result["files"] == []


def test_a_mac_on_two_devices_is_an_error_naming_the_mac_and_both_devices(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_nic(node, "ens21", "52:54:00:aa:00:01")
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0, NIC1))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "match"
    assert not (node / NETPLAN_FILE).exists()
    error = result["interfaces"][0]["error"]
    assert "52:54:00:aa:00:01" in error and "ens19" in error and "ens21" in error


def test_a_vlan_sharing_its_parents_mac_does_not_count_as_a_duplicate(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_nic(node, "ens19.100", "52:54:00:aa:00:01")
    (node / "sys/class/net/ens19.100/lower_ens19").mkdir()
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0))
    assert code == 0 and result["interfaces"][0]["device"] == "ens19"


def test_an_unknown_os_is_an_error_naming_the_os_for_every_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path / "root", "arch", {"ens19": "52:54:00:aa:00:01"})
    code, result, _ = apply(capsys, root, config(tmp_path, NIC0))
    assert code == 1 and result["outcome"] == "failed" and result["renderer"] is None
    assert "Arch Linux" in result["interfaces"][0]["error"]
    assert not (root / "etc/netplan").exists()


def test_dry_run_writes_nothing_and_prints_a_unified_diff(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply(capsys, node, config(tmp_path, NIC0))
    before = (node / NETPLAN_FILE).read_bytes()
    code, result, out = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}), "--dry-run")
    assert code == 0 and result["dry_run"] is True
    assert (node / NETPLAN_FILE).read_bytes() == before
    assert f"--- /{NETPLAN_FILE}\n+++ /{NETPLAN_FILE}\n" in out
    assert "-      mtu: 9000\n+      mtu: 1500\n" in out


def test_dry_run_on_an_empty_root_creates_no_directories(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, out = apply(capsys, node, config(tmp_path, NIC0), "--dry-run")
    assert code == 0 and "+++ /etc/netplan/90-multinic.yaml" in out
    assert not (node / "etc/netplan").exists()


def test_a_failed_activation_restores_the_previous_files(
    node: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply(capsys, node, config(tmp_path, NIC0))
    before = (node / NETPLAN_FILE).read_bytes()
    monkeypatch.setenv("NODE_NAME", "worker-1")
    # The real netplan activator, chrooted into a root that has no netplan: its validation fails.
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}, NIC1), "--activate", "netplan")
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "validate"
    assert "rejected the files" in result["error"] and "netplan generate" in result["error"]
    assert (node / NETPLAN_FILE).read_bytes() == before
    assert all(i["state"] == "error" for i in result["interfaces"])


def test_a_failed_activation_removes_files_that_did_not_exist_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_root(tmp_path / "root", "rocky-9", {"ens19": "52:54:00:aa:00:01"})
    monkeypatch.setenv("NODE_NAME", "worker-1")
    code, result, _ = apply(capsys, root, config(tmp_path, NIC0), "--activate-command", "false")
    assert code == 1 and result["outcome"] == "rolled-back"
    assert list((root / KEYFILE_DIR).iterdir()) == []


ACTIVATE_SETS_MTU = 'sh -c \'for d in "$MULTINIC_ROOT"/sys/class/net/*; do echo {mtu} > "$d/mtu"; done\''


def test_an_activation_command_that_does_its_job_passes_verification(
    node: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-1")
    code, result, _ = apply(
        capsys, node, config(tmp_path, NIC0), "--activate-command", ACTIVATE_SETS_MTU.format(mtu=9000)
    )
    assert code == 0 and result["outcome"] == "applied"


def test_a_failed_verification_restores_the_previous_files_and_reactivates(
    node: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-1")
    apply(capsys, node, config(tmp_path, NIC0))
    before = (node / NETPLAN_FILE).read_bytes()
    log = tmp_path / "phases"
    # The command "activates" MTU 1400 although the spec asks for 1500: verification must fail.
    command = f"sh -c 'echo $MULTINIC_PHASE >> {log}; echo 1400 > $MULTINIC_ROOT/sys/class/net/ens19/mtu'"
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}), "--activate-command", command)
    assert code == 1 and result["outcome"] == "rolled-back"
    assert "MTU is 1400, expected 1500" in result["interfaces"][0]["error"]
    assert (node / NETPLAN_FILE).read_bytes() == before
    assert log.read_text().split() == ["activate", "rollback"]


def test_an_interface_dropped_from_the_spec_loses_its_files_but_foreign_files_stay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path / "root", "rocky-9", {"ens19": "52:54:00:aa:00:01", "ens20": "52:54:00:aa:00:02"})
    apply(capsys, root, config(tmp_path, NIC0, NIC1))
    foreign = root / KEYFILE_DIR / "eth0.nmconnection"
    foreign.write_text("[connection]\nid=eth0\ntype=ethernet\n")
    assert (root / KEYFILE_DIR / "multinic1.nmconnection").exists()
    code, result, _ = apply(capsys, root, config(tmp_path, NIC0))
    assert code == 0 and result["outcome"] == "applied"
    assert sorted(p.name for p in (root / KEYFILE_DIR).iterdir()) == ["eth0.nmconnection", "multinic0.nmconnection"]
    assert not (root / "etc/systemd/network/70-multinic-multinic1.link").exists()


def test_a_rhel_8_node_gets_ifcfg_and_route_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_root(tmp_path / "root", "alma-8", {"ens19": "52:54:00:aa:00:01"})
    code, result, _ = apply(capsys, root, config(tmp_path, NIC0))
    assert code == 0 and result["renderer"] == "ifcfg" and result["os"] == "almalinux 8.10"
    assert sorted(result["files"]) == [f"/{IFCFG_DIR}/ifcfg-multinic0", f"/{IFCFG_DIR}/route-multinic0"]


def test_os_family_in_the_spec_overrides_detection(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (node / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="9.1"\n')
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0, osFamily="rhel"))
    assert code == 0 and result["renderer"] == "keyfile"


def test_remove_deletes_only_our_files_and_a_second_remove_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path / "root", "rhel-8", {"ens19": "52:54:00:aa:00:01"})
    apply(capsys, root, config(tmp_path, NIC0))
    ours_netplan = root / NETPLAN_FILE  # left over from an earlier Ubuntu life: also ours
    ours_netplan.parent.mkdir(parents=True)
    ours_netplan.write_text("# managed by multinic-reconciler (node x)\nnetwork: {version: 2}\n")
    foreign = root / IFCFG_DIR / "ifcfg-eth0"
    foreign.write_text("DEVICE=eth0\nONBOOT=yes\n")
    other = root / "etc/netplan/50-cloud-init.yaml"
    other.write_text("network: {version: 2}\n")
    code, result, _ = agent(capsys, "remove", "--root", str(root))
    assert code == 0 and result["outcome"] == "removed"
    assert sorted(result["files"]) == [
        f"/{NETPLAN_FILE}",
        f"/{IFCFG_DIR}/ifcfg-multinic0",
        f"/{IFCFG_DIR}/route-multinic0",
    ]
    assert {(i["name"], i["mac"], i["state"]) for i in result["interfaces"]} == {
        ("multinic0", "52:54:00:aa:00:01", "removed")
    }
    assert sorted(p.name for p in (root / IFCFG_DIR).iterdir()) == ["ifcfg-eth0"]
    assert other.exists() and not ours_netplan.exists()
    code, result, _ = agent(capsys, "remove", "--root", str(root))
    assert code == 0 and result["outcome"] == "unchanged"


def test_remove_dry_run_deletes_nothing(node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apply(capsys, node, config(tmp_path, NIC0))
    code, result, out = agent(capsys, "remove", "--root", str(node), "--dry-run")
    assert code == 0 and result["dry_run"] is True
    assert (node / NETPLAN_FILE).exists() and "+++ /dev/null" in out


# --- input handling --------------------------------------------------------------------------


def test_a_config_for_another_node_is_refused_with_exit_2(
    node: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-2")
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0), "--activate-command", "true")
    assert code == 2 and "worker-1" in result["error"] and "worker-2" in result["error"]
    assert not (node / "etc/netplan").exists()


def test_a_schema_violation_is_exit_2_and_names_the_field(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 20}))
    assert code == 2 and "spec.interfaces[0].mtu" in result["error"]
    assert "not a valid MultiNicNodeConfig" in capsys.readouterr().err + result["error"]


def test_unparseable_yaml_is_exit_2(node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    code, result, _ = apply(capsys, node, str(bad))
    assert code == 2 and "not a YAML/JSON document" in result["error"]


def test_the_config_can_come_as_json_from_the_environment_or_stdin(
    node: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.dumps(node_doc([NIC0]))
    monkeypatch.setenv("MULTINIC_CONFIG", doc)
    code, result, _ = agent(capsys, "apply", "--root", str(node), "--dry-run")
    assert code == 0 and result["interfaces"][0]["name"] == "multinic0"
    monkeypatch.delenv("MULTINIC_CONFIG")
    monkeypatch.setattr("sys.stdin", io.StringIO(doc))
    code, result, _ = agent(capsys, "apply", "--config", "-", "--root", str(node))
    assert code == 0 and result["outcome"] == "applied"


def test_the_result_also_goes_to_the_result_file(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "termination-log"
    code, result, _ = apply(capsys, node, config(tmp_path, NIC0), "--result-file", str(target))
    assert code == 0 and json.loads(target.read_text()) == result


def test_a_nic_that_vanishes_keeps_the_whole_node_as_it_was(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, NIC0, NIC1)
    apply(capsys, node, cfg)
    before = (node / NETPLAN_FILE).read_text()
    (node / "sys/class/net/ens20/address").write_text("52:54:00:aa:00:77\n")  # NIC1 is gone
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}, NIC1))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "match"
    assert [i["state"] for i in result["interfaces"]] == ["error", "error"]
    assert (node / NETPLAN_FILE).read_text() == before
    # ... and once the NIC is back, the change goes through.
    (node / "sys/class/net/ens20/address").write_text("52:54:00:aa:00:02\n")
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}, NIC1))
    assert code == 0 and "mtu: 1500" in (node / NETPLAN_FILE).read_text()


def test_a_nic_without_carrier_is_rolled_back(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-1")
    apply(capsys, node, config(tmp_path, NIC0))
    before = (node / NETPLAN_FILE).read_bytes()
    (node / "sys/class/net/ens19/operstate").write_text("down\n")  # NO-CARRIER ... state DOWN
    code, result, _ = apply(capsys, node, config(tmp_path, {**NIC0, "mtu": 1500}), "--activate-command", "true")
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "verify"
    assert "no carrier (operstate down)" in result["interfaces"][0]["error"]
    assert (node / NETPLAN_FILE).read_bytes() == before


def test_a_route_whose_gateway_is_off_link_is_refused_and_nothing_changes(
    node: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = {**NIC0, "routes": [{"to": "10.20.0.0/16", "via": "10.66.0.1"}]}
    code, result, _ = apply(capsys, node, config(tmp_path, wrong, NIC1))
    assert code == 1 and result["outcome"] == "rolled-back" and result["step"] == "plan"
    assert "the gateway is not inside any of multinic0's prefixes" in result["interfaces"][0]["error"]
    assert not (node / NETPLAN_FILE).exists()
