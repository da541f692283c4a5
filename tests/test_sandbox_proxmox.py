"""Wire behaviour of the PVE sandbox itself: auth rules, errors, faults, topology, log."""

from __future__ import annotations

import logging
import time

import pytest
import requests
from multinic_sandbox.proxmox import ProxmoxSandbox, PveVersion, Topology
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory
from proxmoxer import ProxmoxAPI, ResourceException


def api(sandbox: ProxmoxSandbox, **auth: str) -> ProxmoxAPI:
    if not auth:
        user, name = str(sandbox.token_id).split("!")
        auth = {"user": user, "token_name": name, "token_value": str(sandbox.token_secret)}
    return ProxmoxAPI(sandbox.url.removeprefix("https://"), verify_ssl=sandbox.ca_file, timeout=5, **auth)


def raw(sandbox: ProxmoxSandbox, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(method, f"{sandbox.url}/api2/json{path}", verify=sandbox.ca_file, timeout=5, **kwargs)


def test_a_request_without_credentials_gets_401_no_ticket(pve_sandbox: ProxmoxSandbox) -> None:
    response = raw(pve_sandbox, "GET", "/version")
    assert (response.status_code, response.reason, response.text) == (401, "No ticket", "")
    assert pve_sandbox.request_log.records[-1].auth == "none"


def test_unknown_paths_get_pves_501_after_authentication(pve_sandbox: ProxmoxSandbox) -> None:
    with pytest.raises(ResourceException) as caught:
        api(pve_sandbox).foo.get()
    assert (caught.value.status_code, caught.value.content) == (
        501,
        "Method 'GET /foo' not implemented",
    )
    assert raw(pve_sandbox, "GET", "/foo").status_code == 401  # auth comes first, as in PVE


def test_a_ticket_works_as_cookie_and_writes_need_the_csrf_token(
    pve_sandbox: ProxmoxSandbox,
) -> None:
    login = raw(
        pve_sandbox,
        "POST",
        "/access/ticket",
        data={"username": pve_sandbox.username, "password": pve_sandbox.password},
    ).json()["data"]
    cookies = {"PVEAuthCookie": login["ticket"]}
    assert raw(pve_sandbox, "GET", "/nodes", cookies=cookies).status_code == 200
    no_csrf = raw(pve_sandbox, "PUT", "/nodes/pve1/qemu/101/config", cookies=cookies)
    assert (no_csrf.status_code, no_csrf.reason) == (401, "Permission denied - invalid csrf token")
    with_csrf = raw(
        pve_sandbox,
        "PUT",
        "/nodes/pve1/qemu/101/config",
        cookies=cookies,
        headers={"CSRFPreventionToken": login["CSRFPreventionToken"]},
    )
    assert (with_csrf.status_code, with_csrf.reason) == (400, "no options specified")  # authenticated
    renewed = raw(
        pve_sandbox,
        "POST",
        "/access/ticket",
        data={"username": pve_sandbox.username, "password": login["ticket"]},
    )
    assert renewed.status_code == 200  # PVE accepts a valid ticket as password (renewal)


def test_proxmoxer_ticket_auth_sends_the_csrf_token_on_writes(pve_sandbox: ProxmoxSandbox) -> None:
    pve_sandbox.topology.default_user.privileges["/vms"] = frozenset({"VM.Audit", "VM.Config.Network"})
    client = api(pve_sandbox, user=pve_sandbox.username, password=pve_sandbox.password)
    client.nodes("pve1").qemu(101).config.put(net3="virtio=BC:24:11:00:03:01,bridge=vmbr3")
    assert client.nodes("pve1").qemu(101).config.get()["net3"] == "virtio=BC:24:11:00:03:01,bridge=vmbr3"
    assert pve_sandbox.request_log.records[-2].auth == "ticket"


def test_config_writes_follow_qemu_server_privilege_digest_hotplug_and_delete_rules(
    pve_sandbox: ProxmoxSandbox,
) -> None:
    client = api(pve_sandbox)  # the default token: PVEAuditor, no VM.Config.Network
    vm = client.nodes("pve1").qemu(101)
    with pytest.raises(ResourceException) as caught:
        vm.config.put(net3="virtio,bridge=vmbr3")
    assert (caught.value.status_code, caught.value.content) == (
        403, "Permission check failed (/vms/101, VM.Config.Network)")

    pve_sandbox.topology.default_user.privileges["/vms/101"] = frozenset({"VM.Audit", "VM.Config.Network"})
    before = vm.config.get()
    with pytest.raises(ResourceException) as caught:
        vm.config.put(net3="virtio,bridge=vmbr3,tag=0")
    assert caught.value.status_code == 400 and "net3" in caught.value.errors
    with pytest.raises(ResourceException) as caught:
        vm.config.put(net3="virtio,bridge=vmbr3", digest="0" * 40)
    assert (caught.value.status_code, caught.value.content) == (
        500, "detected modified configuration - file changed by other user? Try again.")
    assert vm.config.get() == before  # a refused write changes nothing

    vm.config.put(net3="virtio,bridge=vmbr3,link_down=1", digest=before["digest"])
    after = vm.config.get()
    assert after["net3"].startswith("virtio=BC:24:11:") and after["net3"].endswith(",bridge=vmbr3,link_down=1")
    assert after["digest"] != before["digest"] and after["net1"] == before["net1"]  # other slots untouched
    upid = vm.config.post(delete="net3")
    assert upid.startswith("UPID:pve1:00000065:") and "net3" not in vm.config.get()

    # without network hot-plug a running VM keeps the change pending until it reboots
    pve_sandbox.topology.nodes[0].vms[0].extra_config["hotplug"] = "disk,usb"
    vm.config.put(net2="virtio=BC:24:11:00:02:01,bridge=vmbr2")
    assert vm.config.get()["net2"] == "virtio=BC:24:11:00:02:01,bridge=vmbr2"  # pending values shown by default
    assert "net2" not in vm.config.get(current=1)


def test_401_answers_are_delayed_like_pve(pve_sandbox_factory: SandboxFactory) -> None:
    sandbox = pve_sandbox_factory(auth_failure_delay=0.4)
    started = time.monotonic()
    assert raw(sandbox, "GET", "/version").status_code == 401
    assert time.monotonic() - started >= 0.4


def test_a_vm_asked_on_an_unknown_node_gets_pves_hostname_lookup_error(
    pve_sandbox: ProxmoxSandbox,
) -> None:
    with pytest.raises(ResourceException) as caught:
        api(pve_sandbox).nodes("ghost").qemu(101).config.get()
    assert caught.value.status_code == 500
    assert caught.value.content.startswith("hostname lookup 'ghost' failed")


def test_error_bodies_carry_a_message_from_pve_8_3_on(pve_sandbox_factory: SandboxFactory) -> None:
    old = pve_sandbox_factory({"version": "7.4"})
    new = pve_sandbox_factory({"version": {"version": "8.3.0", "release": "8.3", "repoid": "c1689ccb1065a83b"}})
    headers = {}
    for sandbox, has_message in ((old, False), (new, True)):
        headers = {"Authorization": f"PVEAPIToken={sandbox.token_id}={sandbox.token_secret}"}
        body = raw(sandbox, "GET", "/nodes/pve1/qemu/999/config", headers=headers).json()
        assert body["data"] is None
        assert ("message" in body) is has_message
    assert PveVersion.preset("9").major == 9


def test_cluster_resources_filters_by_type(pve_sandbox: ProxmoxSandbox) -> None:
    client = api(pve_sandbox)
    assert {r["type"] for r in client.cluster.resources.get()} == {"qemu", "node", "storage"}
    assert {r["type"] for r in client.cluster.resources.get(type="node")} == {"node"}
    assert {r["type"] for r in client.cluster.resources.get(type="storage")} == {"storage"}


def test_an_offline_node_shows_as_offline_everywhere(pve_sandbox_factory: SandboxFactory) -> None:
    sandbox = pve_sandbox_factory({"cluster": "lab", "nodes": [{"name": "a"}, {"name": "b", "online": False}]})
    client = api(sandbox)
    status = {e["name"]: e for e in client.cluster.status.get() if e["type"] == "node"}
    assert (status["a"]["online"], status["b"]["online"], status["a"]["local"]) == (1, 0, 1)
    assert {n["node"]: n["status"] for n in client.nodes.get()} == {"a": "online", "b": "offline"}


def test_a_standalone_node_has_only_a_node_entry_in_cluster_status(pve_sandbox_factory: SandboxFactory) -> None:
    sandbox = pve_sandbox_factory({"cluster": None, "nodes": [{"name": "solo", "ip": "10.1.1.1"}]})
    assert api(sandbox).cluster.status.get() == [
        {
            "type": "node",
            "id": "node/solo",
            "name": "solo",
            "ip": "10.1.1.1",
            "level": "",
            "local": 1,
            "nodeid": 0,
            "online": 1,
        }
    ]


def test_nodes_without_sys_audit_are_listed_without_stats(pve_sandbox_factory: SandboxFactory) -> None:
    sandbox = pve_sandbox_factory(
        {"users": [{"userid": "vmonly@pve", "privileges": {"/vms": ["VM.Audit"]}, "tokens": [{"name": "t"}]}]}
    )
    nodes = api(sandbox).nodes.get()
    assert [n["node"] for n in nodes] == ["pve1", "pve2"]
    assert all("maxmem" not in n for n in nodes)
    with pytest.raises(ResourceException) as caught:
        api(sandbox).cluster.status.get()
    assert (caught.value.status_code, caught.value.content) == (
        403,
        "Permission check failed (/, Sys.Audit)",
    )


def test_a_more_specific_acl_path_overrides_the_root_entry(pve_sandbox_factory: SandboxFactory) -> None:
    sandbox = pve_sandbox_factory(
        {
            "users": [
                {
                    "userid": "ops@pve",
                    "privileges": {"/": ["PVEAuditor"], "/vms/102": ["NoAccess"]},
                    "tokens": [{"name": "t"}],
                }
            ]
        }
    )
    vmids = {r["vmid"] for r in api(sandbox).cluster.resources.get(type="vm")}
    assert vmids == {101}


def test_access_permissions_answers_effective_privileges_per_path_like_pve(
    pve_sandbox_factory: SandboxFactory,
) -> None:
    # pve-access-control: {path: {privilege: propagate}}; a token with privilege separation gets
    # the intersection of its own ACL and its user's; ?path= dumps that path only ({} if nothing).
    sandbox = pve_sandbox_factory(
        {
            "users": [
                {
                    "userid": "ops@pve",
                    "privileges": {"/": ["PVEAuditor"], "/vms/102": ["NoAccess"]},
                    "tokens": [{"name": "t", "privileges": {"/": ["Sys.Audit"], "/vms": ["VM.Audit"],
                                                            "/access": ["NoAccess"]}}],
                },
                {"userid": "other@pve", "privileges": {"/": ["PVEAuditor"]}},
            ]
        }
    )
    client = api(sandbox)
    dump = client.access.permissions.get()
    assert dump["/"] == {"Sys.Audit": 1}
    assert dump["/vms"] == {"VM.Audit": 1}
    assert "/vms/102" not in dump  # nothing granted there: left out, as PVE does
    assert client.access.permissions.get(path="/vms/101") == {"/vms/101": {"VM.Audit": 1}}
    assert client.access.permissions.get(path="/vms/102") == {}
    # the user's Datastore.Audit is not the token's: only Sys.Audit (from /) reaches /storage/local
    assert client.access.permissions.get(path="/storage/local") == {"/storage/local": {"Sys.Audit": 1}}
    with pytest.raises(ResourceException) as caught:  # someone else's needs Sys.Audit on /access
        client.access.permissions.get(userid="other@pve")
    assert (caught.value.status_code, caught.value.content) == (403, "Permission check failed (/access, Sys.Audit)")


def test_faults_fire_the_given_number_of_times_and_match_method_and_prefix(
    pve_sandbox: ProxmoxSandbox,
) -> None:
    rule = pve_sandbox.faults.error("/nodes", 596, "Connection timed out", times=2)
    client = api(pve_sandbox)
    for _ in range(2):
        with pytest.raises(ResourceException) as caught:
            client.nodes("pve1").qemu.get()
        assert (caught.value.status_code, caught.value.content) == (596, "Connection timed out")
    assert client.nodes("pve1").qemu.get()
    assert rule.hits == 2 and rule.times == 0
    pve_sandbox.faults.error("/version", 500, "boom", method="POST")
    assert client.version.get()["release"] == "8.0"  # GET does not match a POST rule
    pve_sandbox.faults.clear()
    faults = [r.fault for r in pve_sandbox.request_log]
    assert faults.count("error") == 2


def test_a_slow_fault_delays_the_real_answer(pve_sandbox: ProxmoxSandbox) -> None:
    pve_sandbox.faults.slow("/version", delay=0.3, times=1)
    started = time.monotonic()
    assert api(pve_sandbox).version.get()["version"] == "8.0.3"
    assert time.monotonic() - started >= 0.3


def test_a_dropped_connection_gives_no_answer(pve_sandbox: ProxmoxSandbox) -> None:
    pve_sandbox.faults.drop("/", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        raw(pve_sandbox, "GET", "/version")
    assert pve_sandbox.request_log.records[-1].status == 0


def test_several_sandboxes_run_side_by_side_with_their_own_ca(pve_sandbox_factory: SandboxFactory) -> None:
    one = pve_sandbox_factory({"cluster": "one"})
    two = pve_sandbox_factory({"cluster": "two", "version": "9.1"})
    assert one.port != two.port
    assert api(one).cluster.status.get()[0]["name"] == "one"
    assert api(two).version.get()["release"] == "9.1"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{one.url}/api2/json/version", verify=two.ca_file, timeout=5)


def test_a_context_manager_sandbox_frees_its_port_and_ca_file() -> None:
    with ProxmoxSandbox(auth_failure_delay=0) as sandbox:
        ca_file, url = sandbox.ca_file, sandbox.url
        assert raw(sandbox, "GET", "/version").status_code == 401
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/api2/json/version", verify=False, timeout=2)
    import os

    assert not os.path.exists(ca_file)


def test_the_request_log_and_sandbox_logs_hold_no_secret(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard, caplog: pytest.LogCaptureFixture
) -> None:
    api(pve_sandbox).nodes.get()
    api(pve_sandbox, user=pve_sandbox.username, password=pve_sandbox.password).nodes.get()
    wrong = "a-wrong-token-secret-value"
    pve_secret_guard.add_secret(wrong)
    raw(pve_sandbox, "GET", "/nodes", headers={"Authorization": f"PVEAPIToken={pve_sandbox.token_id}={wrong}"})
    pve_secret_guard.check_text("request log", repr(pve_sandbox.request_log.records))
    assert [r.auth for r in pve_sandbox.request_log] == ["token", "none", "ticket", "token"]
    assert any(r.name == "multinic_sandbox.proxmox" for r in caplog.records)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # scanned at DEBUG


def test_topology_from_dict_fills_defaults_and_rejects_nonsense() -> None:
    topology = Topology.from_dict({"nodes": [{"name": "x", "vms": [{"vmid": 5}]}]})
    assert topology.cluster == "pve-sandbox" and topology.nodes[0].vms[0].name == "vm5"
    assert topology.users[0].tokens[0].secret != Topology.from_dict({}).users[0].tokens[0].secret
    with pytest.raises(ValueError, match="twice"):
        Topology.from_dict({"nodes": [{"name": "a", "vms": [{"vmid": 1}]}, {"name": "b", "vms": [{"vmid": 1}]}]})
    with pytest.raises(ValueError, match="standalone"):
        Topology.from_dict({"cluster": None, "nodes": [{"name": "a"}, {"name": "b"}]})
    with pytest.raises(ValueError, match="preset"):
        Topology.from_dict({"version": "5.4"})
