"""The proxmoxer-based client against the PVE sandbox over real TLS.

Every test that provokes an error hands the exception to ``pve_secret_guard``, which at the end
of the test scans it (str, repr, attributes, chain, traceback) and all captured log records for
passwords, token secrets, tickets and CSRF tokens.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from multinic_sandbox.proxmox import ApiToken, ProxmoxSandbox, Topology, User
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory
from multinic_sandbox.proxmox.topology import ROLES, default_nodes

from reconciler.apply.proxmox import errors
from reconciler.apply.proxmox.client import (
    ClusterInfo,
    NodeInfo,
    ProxmoxClient,
    parse_endpoint,
)

WRONG_SECRET = "00000000-dead-beef-0000-000000000000"
WRONG_PASSWORD = "not-the-password-at-all"


def token_client(sandbox: ProxmoxSandbox, **overrides: object) -> ProxmoxClient:
    kwargs: dict[str, object] = {
        "token_id": sandbox.token_id,
        "token_secret": sandbox.token_secret,
        "ca_bundle": sandbox.ca_file,
        "read_timeout": 5.0,
    }
    kwargs.update(overrides)
    return ProxmoxClient(str(kwargs.pop("endpoint", sandbox.url)), **kwargs)  # type: ignore[arg-type]


def expect(guard: SecretGuard, kind: type[errors.ProxmoxError], call: object) -> errors.ProxmoxError:
    with pytest.raises(kind) as caught:
        call()  # type: ignore[operator]
    guard.check_exception(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    return caught.value


# --- success paths -------------------------------------------------------------------------


def test_token_auth_reads_version_cluster_name_quorum_and_nodes(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    with token_client(pve_sandbox) as client:
        info = client.verify()
    assert info == ClusterInfo(
        version="8.0.3",
        release="8.0",
        repoid="bbf3993334bfa916",
        cluster_name="pve-sandbox",
        quorate=True,
        node_count=2,
        online_nodes=2,
        nodes=(NodeInfo("pve1", True), NodeInfo("pve2", True)),
        endpoint=pve_sandbox.url,
    )
    calls = [(r.method, r.path, r.auth) for r in pve_sandbox.request_log]
    assert calls == [
        ("GET", "/version", "token"),
        ("GET", "/cluster/status", "token"),
        ("GET", "/nodes", "token"),
    ]


def test_ticket_auth_with_username_and_password_verifies_the_cluster(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    client = ProxmoxClient(
        pve_sandbox.url,
        username=pve_sandbox.username,
        password=pve_sandbox.password,
        ca_bundle=pve_sandbox.ca_file,
    )
    assert client.verify().cluster_name == "pve-sandbox"
    log = pve_sandbox.request_log.records
    assert (log[0].method, log[0].path, log[0].status) == ("POST", "/access/ticket", 200)
    assert {r.auth for r in log[1:]} == {"ticket"}
    pve_secret_guard.check_text("client repr", repr(client))


def test_a_ca_bundle_given_as_pem_bytes_is_trusted(pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard) -> None:
    client = token_client(pve_sandbox, ca_bundle=pve_sandbox.ca_pem)
    assert client.verify().node_count == 2
    client.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_verify_connects_to_the_self_signed_sandbox(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    client = token_client(pve_sandbox, ca_bundle=None, insecure_skip_verify=True)
    assert client.verify().version == "8.0.3"


def test_find_vm_names_the_node_and_vm_config_parses_its_nics(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    client = token_client(pve_sandbox)
    where = client.find_vm(102)
    assert where is not None and (where.node, where.name, where.status) == (
        "pve2",
        "k8s-worker-2",
        "running",
    )
    config = client.vm_config(where.node, 102)
    assert [(n.slot, n.mac, n.bridge, n.tag, n.mtu) for n in config.nics] == [
        ("net0", "bc:24:11:00:00:02", "vmbr0", None, None),
        ("net1", "bc:24:11:00:01:02", "vmbr1", 20, 9000),
    ]
    assert config.digest and len(config.digest) == 40
    assert client.find_vm(999) is None
    assert client.vm_nics(101) is not None and client.vm_nics(999) is None


def test_a_standalone_node_has_no_cluster_name_and_counts_as_quorate(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory({"cluster": None, "nodes": [{"name": "solo"}], "version": "7.4"})
    info = token_client(sandbox).verify()
    assert (info.cluster_name, info.quorate, info.node_count, info.online_nodes) == (
        None,
        True,
        1,
        1,
    )
    assert (info.version, info.release, info.repoid) == ("7.4-16", "7.4", "0f39f621")


def test_offline_nodes_are_counted_and_quorum_follows_the_majority(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    nodes = [{"name": "a"}, {"name": "b", "online": False}, {"name": "c", "online": False}]
    info = token_client(pve_sandbox_factory({"cluster": "lab", "nodes": nodes})).verify()
    assert (info.quorate, info.node_count, info.online_nodes) == (False, 3, 1)
    assert info.nodes == (NodeInfo("a", True), NodeInfo("b", False), NodeInfo("c", False))


# --- classified failures -------------------------------------------------------------------


def test_a_wrong_token_secret_is_classified_as_authentication_failed(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    pve_secret_guard.add_secret(WRONG_SECRET)
    client = token_client(pve_sandbox, token_secret=WRONG_SECRET)
    exc = expect(pve_secret_guard, errors.AuthenticationFailed, client.verify)
    assert (exc.reason, exc.status, exc.reason_phrase) == (
        "AuthenticationFailed",
        401,
        "invalid token value!",
    )
    assert pve_sandbox.token_id in str(exc) and pve_sandbox.url in str(exc)


def test_an_unknown_token_is_classified_as_authentication_failed(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    client = token_client(pve_sandbox, token_id="reconciler@pve!nope")
    exc = expect(pve_secret_guard, errors.AuthenticationFailed, client.verify)
    assert exc.reason_phrase == "no such token 'nope' for user 'reconciler@pve'"


def test_a_wrong_password_is_classified_as_authentication_failed(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    pve_secret_guard.add_secret(WRONG_PASSWORD)
    client = ProxmoxClient(
        pve_sandbox.url,
        username=pve_sandbox.username,
        password=WRONG_PASSWORD,
        ca_bundle=pve_sandbox.ca_file,
    )
    exc = expect(pve_secret_guard, errors.AuthenticationFailed, client.verify)
    assert exc.status == 401
    assert pve_sandbox.username in str(exc)
    assert [(r.path, r.status) for r in pve_sandbox.request_log] == [("/access/ticket", 401)]


def test_a_ca_bundle_of_another_ca_is_classified_as_tls_failure(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard, pve_foreign_ca_pem: bytes
) -> None:
    client = token_client(pve_sandbox, ca_bundle=pve_foreign_ca_pem)
    exc = expect(pve_secret_guard, errors.TLSFailure, client.verify)
    assert "certificate not trusted" in str(exc) and exc.status is None
    assert len(pve_sandbox.request_log) == 0


def test_a_ticket_login_against_another_ca_is_classified_as_tls_failure(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard, pve_foreign_ca_pem: bytes
) -> None:
    client = ProxmoxClient(
        pve_sandbox.url,
        username=pve_sandbox.username,
        password=pve_sandbox.password,
        ca_bundle=pve_foreign_ca_pem,
    )
    expect(pve_secret_guard, errors.TLSFailure, client.verify)


def test_without_a_ca_bundle_the_self_signed_sandbox_is_not_trusted(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    expect(pve_secret_guard, errors.TLSFailure, token_client(pve_sandbox, ca_bundle=None).verify)


def test_a_host_name_the_certificate_does_not_name_is_a_tls_failure_that_names_the_host(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(hostnames=("pve1.example.net",))  # the CA is trusted, the name is not in the cert
    exc = expect(pve_secret_guard, errors.TLSFailure, token_client(sandbox).verify)
    assert "the certificate is not valid for the host name '127.0.0.1'" in exc.message
    assert "caBundle" not in exc.message


def test_a_tls_handshake_that_hangs_ends_at_the_connect_timeout_and_says_so(pve_secret_guard: SecretGuard) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # accepts TCP (the kernel does), never speaks TLS
    try:
        port = listener.getsockname()[1]
        for client in (
            ProxmoxClient(f"https://127.0.0.1:{port}", token_id="a@pve!t", token_secret="x",
                          connect_timeout=0.5, read_timeout=30),
            ProxmoxClient(f"https://127.0.0.1:{port}", username="a@pve", password=WRONG_PASSWORD,
                          connect_timeout=0.5, read_timeout=30),
        ):
            exc = expect(pve_secret_guard, errors.Timeout, client.verify)
            assert "within 0.5 s" in exc.message and "30 s" not in exc.message
        assert "POST /access/ticket" in exc.message  # the ticket login is what hung
    finally:
        listener.close()


def test_a_pinned_fingerprint_trusts_the_certificate_without_its_ca_and_another_is_refused(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(hostnames=("pve1.example.net",))  # neither CA nor name would pass
    pinned = token_client(sandbox, ca_bundle=None, fingerprint=sandbox.fingerprint)
    assert pinned.verify().node_count == 2
    assert pinned.find_vm(101) is not None
    other = pve_sandbox_factory()  # a different server (certificate) at another port
    wrong = token_client(other, ca_bundle=None, fingerprint=sandbox.fingerprint)
    exc = expect(pve_secret_guard, errors.TLSFailure, wrong.verify)
    assert "not the pinned one (spec.tls.fingerprint)" in exc.message
    assert len(other.request_log) == 0  # nothing (no token) was sent to it


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "a@pve", "password": "p", "fingerprint": "AB:" * 31 + "AB"}, "needs API token credentials"),
        ({"token_id": "a@pve!t", "token_secret": "s", "fingerprint": "AB:" * 31 + "AB", "insecure_skip_verify": True},
         "cannot be combined"),
        ({"token_id": "a@pve!t", "token_secret": "s", "fingerprint": "AB:CD"}, "must be a SHA-256 fingerprint"),
    ],
)
def test_unusable_fingerprint_settings_are_configuration_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=message):
        ProxmoxClient("https://pve.example", **kwargs)


def test_endpoints_are_tried_in_order_and_the_one_that_answered_is_kept(
    pve_sandbox: ProxmoxSandbox, pve_closed_port: int, pve_secret_guard: SecretGuard
) -> None:
    down = f"https://127.0.0.1:{pve_closed_port}"
    client = token_client(pve_sandbox, endpoint=down, fallbacks=[pve_sandbox.url])
    info = client.verify()
    assert info.endpoint == pve_sandbox.url
    assert info.skipped == (f"Proxmox VE API at {down}: connection refused (GET /version)",)
    assert client.find_vm(101) is not None and client.take_skipped() == ()  # no second try of the dead one
    everything_down = token_client(pve_sandbox, endpoint=down, fallbacks=[down.replace("127.0.0.1", "localhost")])
    exc = expect(pve_secret_guard, errors.Unreachable, everything_down.verify)
    assert "localhost" in exc.message  # the last endpoint tried is the one reported


def test_an_endpoint_that_answers_with_an_error_is_not_failed_over(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    first, second = pve_sandbox_factory(), pve_sandbox_factory()
    first.faults.error("/version", 500, "broken", times=None)
    client = token_client(first, fallbacks=[second.url])
    exc = expect(pve_secret_guard, errors.APIError, client.verify)
    assert exc.status == 500 and len(second.request_log) == 0


def test_a_closed_port_is_classified_as_unreachable(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard, pve_closed_port: int
) -> None:
    client = token_client(pve_sandbox, endpoint=f"https://127.0.0.1:{pve_closed_port}")
    exc = expect(pve_secret_guard, errors.Unreachable, client.verify)
    assert "connection refused" in str(exc) and exc.status is None


def test_an_answer_slower_than_the_read_timeout_is_classified_as_timeout(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    pve_sandbox.faults.slow("/cluster/status", delay=3.0, times=1)
    client = token_client(pve_sandbox, read_timeout=0.3)
    exc = expect(pve_secret_guard, errors.Timeout, client.verify)
    assert "GET /cluster/status" in str(exc) and "0.3 s" in str(exc)


def test_an_injected_596_is_classified_as_unreachable_with_status_and_reason_phrase(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    pve_sandbox.faults.error("/nodes", 596, "Connection timed out", times=1)
    client = token_client(pve_sandbox)
    exc = expect(pve_secret_guard, errors.Unreachable, client.verify)
    assert (exc.status, exc.reason_phrase) == (596, "Connection timed out")
    assert client.verify().node_count == 2  # times=1: the next call goes through


def test_a_596_on_the_ticket_login_is_not_an_authentication_failure(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    pve_sandbox.faults.error("/access/ticket", 596, "Connection timed out", method="POST")
    client = ProxmoxClient(
        pve_sandbox.url,
        username=pve_sandbox.username,
        password=pve_sandbox.password,
        ca_bundle=pve_sandbox.ca_file,
    )
    exc = expect(pve_secret_guard, errors.Unreachable, client.verify)
    assert exc.status == 596


def test_a_dropped_connection_is_classified_as_unreachable(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    pve_sandbox.faults.drop("/version", times=1)
    exc = expect(pve_secret_guard, errors.Unreachable, token_client(pve_sandbox).verify)
    assert "closed the connection" in str(exc)


def test_a_vm_on_an_offline_node_is_unreachable_with_pves_595(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    topology = Topology(nodes=default_nodes(), users=[_auditor()])
    topology.nodes[1].online = False
    sandbox = pve_sandbox_factory(topology)
    exc = expect(pve_secret_guard, errors.Unreachable, lambda: token_client(sandbox).vm_config("pve2", 102))
    assert (exc.status, exc.reason_phrase) == (595, "Connection timed out")


def test_a_vm_asked_on_the_wrong_node_is_an_api_error_with_pves_message(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    client = token_client(pve_sandbox)
    exc = expect(pve_secret_guard, errors.APIError, lambda: client.vm_config("pve1", 102))
    assert exc.status == 500
    assert exc.reason_phrase == "Configuration file 'nodes/pve1/qemu-server/102.conf' does not exist"


def test_a_token_without_sys_audit_is_classified_as_permission_denied(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    user = User(
        userid="reconciler@pve",
        privileges={"/": ROLES["PVEAuditor"]},
        tokens=[ApiToken("ci", privileges={"/vms": frozenset({"VM.Audit"})})],
    )
    sandbox = pve_sandbox_factory(Topology(nodes=default_nodes(), users=[user]))
    exc = expect(pve_secret_guard, errors.PermissionDenied, token_client(sandbox).verify)
    assert (exc.status, exc.reason_phrase) == (403, "Permission check failed (/, Sys.Audit)")
    assert "reconciler@pve!ci" in str(exc) and "GET /cluster/status" in str(exc)


def test_a_token_without_vm_audit_sees_no_vms_and_may_not_read_a_config(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    user = User(
        userid="reconciler@pve",
        privileges={"/": frozenset({"Sys.Audit"})},
        tokens=[ApiToken("ci")],
    )
    client = token_client(pve_sandbox_factory(Topology(nodes=default_nodes(), users=[user])))
    assert client.verify().node_count == 2
    assert client.vm_locations() == {}  # /cluster/resources filters by VM.Audit, like PVE
    # ... so a VM that is not listed is not "absent" unless the token may see it:
    hidden = expect(pve_secret_guard, errors.PermissionDenied, lambda: client.find_vm(101))
    assert "API token reconciler@pve!ci lacks VM.Audit on /vms/101 (to see VM 101)" in hidden.message
    assert hidden.missing == (("/vms/101", "VM.Audit"),)
    assert "does not exist" not in hidden.message
    exc = expect(pve_secret_guard, errors.PermissionDenied, lambda: client.vm_config("pve1", 101))
    assert exc.reason_phrase == "Permission check failed (/vms/101, VM.Audit)"


def test_a_vm_that_really_is_absent_is_none_when_the_token_may_see_it(pve_sandbox: ProxmoxSandbox) -> None:
    assert token_client(pve_sandbox).find_vm(999) is None


def test_verify_names_every_required_privilege_the_token_lacks(
    pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    from reconciler.apply.proxmox.client import Privilege

    user = User(
        userid="reconciler@pve",
        privileges={"/": ROLES["PVEAuditor"], "/vms/102": ROLES["PVEVMAdmin"]},
        tokens=[ApiToken("ci", privileges={"/": frozenset({"Sys.Audit"}), "/vms/102": ROLES["PVEVMAdmin"]})],
    )
    client = token_client(pve_sandbox_factory(Topology(nodes=default_nodes(), users=[user])))
    required = [
        Privilege("/vms/101", "VM.Audit", "read VM 101 of node w1"),
        Privilege("/vms/102", "VM.Audit", "read VM 102 of node w2"),
        Privilege("/vms/102", "VM.Config.Network", "manage the NICs of VM 102 of node w2"),
        Privilege("/vms/101", "VM.Config.Network", "manage the NICs of VM 101 of node w1"),
    ]
    exc = expect(pve_secret_guard, errors.PermissionDenied, lambda: client.verify(required))
    assert exc.message.endswith(
        "API token reconciler@pve!ci lacks VM.Audit on /vms/101 (to read VM 101 of node w1); "
        "VM.Config.Network on /vms/101 (to manage the NICs of VM 101 of node w1)"
    )
    assert exc.missing == (("/vms/101", "VM.Audit"), ("/vms/101", "VM.Config.Network"))
    assert client.verify(required[1:3]).node_count == 2


def test_an_injected_500_is_classified_as_api_error(pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard) -> None:
    pve_sandbox.faults.error("/version", 500, "cluster not ready - no quorum?")
    exc = expect(pve_secret_guard, errors.APIError, token_client(pve_sandbox).verify)
    assert (exc.status, exc.reason_phrase) == (500, "cluster not ready - no quorum?")


def test_a_reason_phrase_echoing_a_secret_is_scrubbed_from_the_error(
    pve_sandbox: ProxmoxSandbox, pve_secret_guard: SecretGuard
) -> None:
    # A misbehaving proxy could echo request data; we must not pass it on.
    pve_sandbox.faults.error("/version", 502, f"bad gateway {pve_sandbox.token_secret}")
    exc = expect(pve_secret_guard, errors.APIError, token_client(pve_sandbox).verify)
    assert exc.reason_phrase == "bad gateway ***"


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://pve.example", "https://pve.example:8006"),
        ("pve.example:443", "https://pve.example:443"),
        ("https://[fd00::1]:8007/", "https://[fd00::1]:8007"),
        ("https://proxy.example/pve/api2/json", "https://proxy.example:8006/pve"),
    ],
)
def test_endpoints_default_to_port_8006_and_keep_a_path_prefix(endpoint: str, url: str) -> None:
    assert parse_endpoint(endpoint).url == url


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_id": "reconciler@pve!ci"}, "without a tokenSecret"),
        ({"token_id": "reconciler-ci", "token_secret": "x" * 36}, "user@realm!tokenname"),
        ({"username": "root@pam"}, "without a password"),
        ({"username": "root", "password": "x" * 12}, "needs a realm"),
        ({}, "no credentials"),
        ({"token_id": "a@b!c", "token_secret": "s" * 36, "ca_bundle": b"junk"}, "PEM"),
        ({"token_id": "a@b!c", "token_secret": "s" * 36, "ca_bundle": "/nonexistent.pem"}, "exist"),
    ],
)
def test_unusable_settings_are_configuration_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=message):
        ProxmoxClient("https://pve.example", **kwargs)


@pytest.mark.parametrize("endpoint", ["http://pve.example", "https://root:pw@pve.example"])
def test_endpoints_without_https_or_with_credentials_are_rejected(endpoint: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        parse_endpoint(endpoint)


def test_a_pem_ca_bundle_temp_file_is_removed_on_close(pve_sandbox: ProxmoxSandbox) -> None:
    client = token_client(pve_sandbox, ca_bundle=pve_sandbox.ca_pem.decode())
    ca_path = Path(str(client._verify))
    assert ca_path.is_file()
    client.close()
    assert not ca_path.exists()


# --- the leak scan itself ----------------------------------------------------------------


def test_the_secret_guard_finds_a_secret_in_a_log_record_and_in_an_exception(
    pve_sandbox: ProxmoxSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    guard = SecretGuard(secret_sources=[pve_sandbox.secret_values])
    secret = pve_sandbox.token_secret
    assert secret is not None
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("oops %s", secret)
    guard.check_exception(RuntimeError("wrapped", ValueError(secret)))
    leaks = guard.leaks(caplog.records)
    assert any("log record" in leak for leak in leaks)
    assert any("RuntimeError" in leak for leak in leaks)
    assert all(secret not in leak for leak in leaks)


def _auditor() -> User:
    return User(
        userid="reconciler@pve",
        privileges={"/": ROLES["PVEAuditor"]},
        tokens=[ApiToken("reconciler")],
    )
