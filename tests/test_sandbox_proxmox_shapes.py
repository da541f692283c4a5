"""The sandbox answers with the keys, types and wire details of recorded PVE answers.

Recordings: ``tests/data/pve/`` (copied from ``../shared/reference/pve/``; see README there).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from multinic_sandbox.proxmox import ProxmoxSandbox, Topology
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

DATA = Path(__file__).parent / "data" / "pve"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "pve"


def recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def get(sandbox: ProxmoxSandbox, path: str, **params: str) -> requests.Response:
    return requests.get(
        f"{sandbox.url}/api2/json{path}",
        params=params,
        headers={"Authorization": f"PVEAPIToken={sandbox.token_id}={sandbox.token_secret}"},
        verify=sandbox.ca_file,
        timeout=5,
    )


def kind(value: Any) -> str:
    """JSON type, with int and float both "number" (PVE prints 0 for a zero float)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_same_shape(actual: dict[str, Any], recordings: list[dict[str, Any]], what: str) -> None:
    """Keys all recordings share must be there; every key must be known; types must agree."""
    required = set.intersection(*(set(r) for r in recordings))
    known: dict[str, set[str]] = {}
    for rec in recordings:
        for key, value in rec.items():
            known.setdefault(key, set()).add(kind(value))
    assert required <= set(actual), f"{what}: missing {sorted(required - set(actual))}"
    unknown = set(actual) - set(known)
    assert not unknown, f"{what}: keys no recording has: {sorted(unknown)}"
    for key, value in actual.items():
        assert kind(value) in known[key], f"{what}.{key}: {kind(value)} not {known[key]}"


@pytest.fixture
def pve72(pve_sandbox_factory: SandboxFactory) -> ProxmoxSandbox:
    return pve_sandbox_factory({"version": "7.2"})


def test_the_copied_recordings_match_the_shared_reference_when_it_is_there() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside this checkout")
    for source in SHARED.glob("*.json"):
        assert json.loads(source.read_text()) == recorded(source.name), source.name


def test_version_is_the_recorded_answer_for_the_same_release(pve72: ProxmoxSandbox) -> None:
    response = get(pve72, "/version")
    assert response.json() == recorded("GET_version.json")


def test_node_version_is_the_recorded_answer_for_pve_7_4(pve_sandbox_factory: SandboxFactory) -> None:
    sandbox = pve_sandbox_factory({"version": "7.4"})
    assert get(sandbox, "/nodes/pve1/version").json() == recorded("GET_node_version_pve74.json")


def test_every_version_preset_follows_the_observed_pveversion_formats() -> None:
    observed = [o["pveversion"] for o in recorded("pve_versions.json")["observed"]]
    from multinic_sandbox.proxmox import VERSION_PRESETS

    for name, v in VERSION_PRESETS.items():
        string = f"pve-manager/{v.version}/{v.repoid}"
        if v.major <= 7:
            assert re.fullmatch(r"\d+\.\d+-\d+", v.version) and len(v.repoid) == 8, name
        else:
            assert re.fullmatch(r"\d+\.\d+\.\d+", v.version) and len(v.repoid) == 16, name
        assert v.version.startswith(v.release), name
        assert string in observed, f"{name}: {string} was never observed"


def test_cluster_status_entries_have_the_recorded_shapes(pve_sandbox: ProxmoxSandbox) -> None:
    data = get(pve_sandbox, "/cluster/status").json()["data"]
    recordings = recorded("GET_cluster_status.json")["data"] + recorded("GET_cluster_status_pve62.json")["data"]
    for entry_type in ("cluster", "node"):
        recs = [r for r in recordings if r["type"] == entry_type]
        entries = [e for e in data if e["type"] == entry_type]
        assert entries, entry_type
        for entry in entries:
            assert_same_shape(entry, recs, f"/cluster/status {entry_type}")


def test_nodes_entries_have_the_recorded_shape(pve_sandbox: ProxmoxSandbox) -> None:
    recs = recorded("GET_nodes.json")["data"]
    for entry in get(pve_sandbox, "/nodes").json()["data"]:
        assert_same_shape(entry, recs, "/nodes")


def test_cluster_resources_vm_entries_have_the_recorded_shape(pve_sandbox: ProxmoxSandbox) -> None:
    recs = [r for r in recorded("GET_cluster_resources_vm.json")["data"] if r["type"] == "qemu"]
    data = get(pve_sandbox, "/cluster/resources", type="vm").json()["data"]
    assert {e["vmid"] for e in data} == {101, 102}
    for entry in data:
        assert_same_shape(entry, recs, "/cluster/resources?type=vm")


def test_node_qemu_entries_have_the_recorded_shape(pve_sandbox: ProxmoxSandbox) -> None:
    recs = recorded("GET_node_qemu.json")["data"]
    for entry in get(pve_sandbox, "/nodes/pve1/qemu").json()["data"]:
        assert_same_shape(entry, recs, "/nodes/{node}/qemu")


def test_qemu_config_has_the_recorded_shape(pve_sandbox: ProxmoxSandbox) -> None:
    recs = [
        recorded(name)["data"]
        for name in (
            "GET_node_qemu_config.json",
            "GET_node_qemu_config_102.json",
            "GET_node_qemu_config_firewall.json",
        )
    ]
    config = get(pve_sandbox, "/nodes/pve1/qemu/101/config").json()["data"]
    assert_same_shape(config, recs, "/nodes/{node}/qemu/{vmid}/config")


def test_node_status_has_the_recorded_keys(pve_sandbox: ProxmoxSandbox) -> None:
    rec = recorded("GET_node_status.json")["data"]
    data = get(pve_sandbox, "/nodes/pve1/status").json()["data"]
    assert set(data) == set(rec)
    assert {k: kind(v) for k, v in data.items()} == {k: kind(v) for k, v in rec.items()}


def test_the_ticket_answer_has_the_recorded_keys_and_formats(pve_sandbox: ProxmoxSandbox) -> None:
    rec = recorded("POST_access_ticket.json")["data"]
    response = requests.post(
        f"{pve_sandbox.url}/api2/json/access/ticket",
        data={"username": pve_sandbox.username, "password": pve_sandbox.password},
        verify=pve_sandbox.ca_file,
        timeout=5,
    )
    data = response.json()["data"]
    assert set(data) == set(rec)
    assert set(data["cap"]) <= set(rec["cap"]) | {"mapping"}
    assert data["cap"]["dc"]["Sys.Audit"] == 1
    ticket_format = r"PVE:[^:]+@[^:]+:[0-9A-F]{8}::[A-Za-z0-9+/=]+"
    assert re.fullmatch(ticket_format, rec["ticket"])
    assert re.fullmatch(ticket_format, data["ticket"])
    csrf_format = r"[0-9A-F]{8}:[A-Za-z0-9+/]{43}"
    assert re.fullmatch(csrf_format, rec["CSRFPreventionToken"])
    assert re.fullmatch(csrf_format, data["CSRFPreventionToken"])
    assert data["username"] == pve_sandbox.username
    assert data["clustername"] == "pve-sandbox"


def test_a_failed_login_looks_like_the_recorded_401(pve_sandbox: ProxmoxSandbox) -> None:
    rec = recorded("error_401.json")
    response = requests.post(
        f"{pve_sandbox.url}/api2/json/access/ticket",
        data={"username": "root@pam", "password": "wrong-password-123"},
        verify=pve_sandbox.ca_file,
        timeout=5,
    )
    assert (response.status_code, response.reason) == (rec["status"], rec["reason_phrase"])
    assert response.json() == rec["body"]
    for header in ("Server", "Cache-Control", "Pragma", "Content-Type", "Connection"):
        assert response.headers[header] == rec["headers"][header], header
    assert response.headers["Expires"] and response.headers["Date"]


def test_an_invalid_ticket_looks_like_the_recorded_401(pve_sandbox: ProxmoxSandbox) -> None:
    rec = recorded("error_401_invalid_ticket.json")
    response = requests.get(
        f"{pve_sandbox.url}/api2/json/nodes/pve1/status",
        cookies={"PVEAuthCookie": "PVE:root@pam:64E10CBA::Zm9yZ2Vk"},
        verify=pve_sandbox.ca_file,
        timeout=5,
    )
    assert (response.status_code, response.reason) == (rec["status"], rec["reason_phrase"])
    assert response.text == rec["body_raw"]


def test_a_proxied_request_to_an_offline_node_looks_like_the_recorded_595(
    pve_sandbox_factory: SandboxFactory,
) -> None:
    rec = recorded("error_595.json")
    topology = Topology.from_dict({"nodes": [{"name": "pve1"}, {"name": "pve2", "online": False}]})
    response = get(pve_sandbox_factory(topology), "/nodes/pve2/qemu")
    assert (response.status_code, response.reason) == (rec["status"], rec["reason_phrase"])
    assert response.text == rec["body_raw"]


def test_parameter_errors_carry_errors_like_the_recorded_400(pve_sandbox: ProxmoxSandbox) -> None:
    rec = recorded("error_400_nextid.json")
    response = get(pve_sandbox, "/cluster/resources", type="bogus")
    assert response.status_code == rec["status"]
    assert response.reason == "Parameter verification failed."
    body = response.json()
    assert set(rec["body"]) <= set(body) and body["data"] is None
    assert "type" in body["errors"]


def test_successful_answers_carry_pveproxy_headers(pve_sandbox: ProxmoxSandbox) -> None:
    response = get(pve_sandbox, "/version")
    assert response.headers["Server"] == "pve-api-daemon/3.0"
    assert response.headers["Cache-Control"] == "max-age=0"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert "Expires" in response.headers
