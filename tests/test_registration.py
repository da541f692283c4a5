"""Registration end to end: cluster files in Git -> CRs in the kube sandbox -> real proxmoxer over
TLS against PVE sandboxes, credentials read from Secrets -> CR status.

Every test ends with a leak scan (``pve_kube`` + ``pve_secret_guard``): log records at DEBUG and
every CR (status included) must not contain a password, token secret, ticket or CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.harness.kube_setup import apply_desired, cluster_secrets, cluster_yaml, put_secret
from multinic_sandbox.kube.server import KubeSandbox
from multinic_sandbox.proxmox import ProxmoxSandbox, Topology
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

from reconciler.apply.proxmox.registration import ClusterOutcome, ready_condition, register_clusters
from reconciler.config.validation import DesiredState, validate_repo
from reconciler.kube.client import Kube
from reconciler.plan.changeset import Action

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NS = "multinic-system"
WRONG_SECRET = "00000000-dead-beef-0000-000000000000"


class Repo:
    """A config repo in tmp_path, plus the pipeline steps registration runs after."""

    def __init__(self, root: Path, kube: Kube) -> None:
        self.root = root
        self.kube = kube
        (root / "clusters").mkdir(parents=True)
        (root / "nodes").mkdir()

    def add_cluster(
        self,
        name: str,
        sandbox: ProxmoxSandbox | None,
        *,
        endpoint: str | None = None,
        auth: str = "token",
        secrets: bool = True,
        **spec: Any,
    ) -> None:
        url = endpoint or (sandbox.url if sandbox else "")
        spec.setdefault("ca_secret", f"{name}-ca")
        text = cluster_yaml(name, url, credentials_secret=f"{name}-creds", **spec)
        (self.root / "clusters" / f"{name}.yaml").write_text(text)
        if secrets and sandbox is not None:
            desired = self.desired()
            for secret, data in cluster_secrets(desired.clusters[name], sandbox, auth=auth).items():  # type: ignore[arg-type]
                put_secret(self.kube.api, NS, secret, data)

    def desired(self) -> DesiredState:
        result = validate_repo(self.root)
        assert result.ok, [d.message for d in result.errors]
        return result.desired

    def cycle(self, now: datetime, **kwargs: Any) -> dict[str, ClusterOutcome]:
        desired = self.desired()
        apply_desired(self.kube, desired)
        return {o.name: o for o in register_clusters(self.kube, desired, now=now, **kwargs)}

    def status(self, name: str) -> dict[str, Any]:
        obj = self.kube.get("ProxmoxCluster", name)
        assert obj is not None
        return dict(obj.get("status") or {})


@pytest.fixture
def repo(tmp_path: Path, pve_kube: Kube) -> Repo:
    return Repo(tmp_path / "config", pve_kube)


def status_writes(kube_sandbox: KubeSandbox) -> int:
    return len([r for r in kube_sandbox.request_log.writes() if r.subresource == "status"])


def three_node_topology() -> Topology:
    return Topology.from_dict(
        {"cluster": "pve-prod", "version": "8.0", "nodes": [{"name": "pve1"}, {"name": "pve2"}, {"name": "pve3"}]}
    )


# --- success ----------------------------------------------------------------------------------


def test_adding_a_cluster_file_registers_it_with_version_and_node_count_from_the_api(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(three_node_topology())
    repo.add_cluster("pve-prod", sandbox, expected_node_count=3)
    outcome = repo.cycle(T0)["pve-prod"]
    assert outcome.verified and outcome.ready and outcome.status_written
    status = repo.status("pve-prod")
    assert (status["version"], status["release"], status["clusterName"]) == ("8.0.3", "8.0", "pve-prod")
    assert (status["nodeCount"], status["onlineNodes"], status["quorate"]) == (3, 3, True)
    assert (status["health"], status["phase"], status["lastVerified"]) == ("Healthy", "Ready", "2025-03-01T12:00:00Z")
    condition = ready_condition(status)
    assert condition is not None and (condition["status"], condition["reason"]) == ("True", "Verified")
    assert condition["observedGeneration"] == status["observedGeneration"] == 1
    calls = [(r.method, r.path, r.auth, r.status) for r in sandbox.request_log]
    assert calls == [
        ("GET", "/version", "token", 200),
        ("GET", "/cluster/status", "token", 200),
        ("GET", "/nodes", "token", 200),
    ]


def test_ticket_auth_with_username_and_password_from_the_secret_registers_the_cluster(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(Topology.from_dict({"cluster": "pve-lab", "version": "9.1"}))
    repo.add_cluster("pve-lab", sandbox, auth="ticket", expected_node_count=2)
    assert repo.cycle(T0)["pve-lab"].ready
    status = repo.status("pve-lab")
    assert (status["version"], status["nodeCount"], status["health"]) == ("9.1.6", 2, "Healthy")
    assert sandbox.request_log.records[0].path == "/access/ticket"
    assert {r.auth for r in sandbox.request_log.records[1:]} == {"ticket"}


def test_a_second_cycle_within_the_interval_makes_no_proxmox_request_and_no_status_write(
    repo: Repo, pve_sandbox_factory: SandboxFactory, kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    prod = pve_sandbox_factory(three_node_topology())
    lab = pve_sandbox_factory(Topology.from_dict({"cluster": "pve-lab", "version": "9.1"}))
    repo.add_cluster("pve-prod", prod, expected_node_count=3)
    repo.add_cluster("pve-lab", lab, auth="ticket", verify_interval="10m")
    assert all(o.ready for o in repo.cycle(T0).values())
    prod.request_log.clear()
    lab.request_log.clear()
    kube_sandbox.request_log.clear()

    outcomes = repo.cycle(T0 + timedelta(minutes=4, seconds=59))

    assert len(prod.request_log) == 0 and len(lab.request_log) == 0
    assert kube_sandbox.request_log.writes() == []  # no apply (unchanged), no status write
    assert kube_sandbox.request_log.count(verb="get", resource="secrets") == 0
    assert all(not o.verified and not o.status_written and o.ready for o in outcomes.values())


def test_after_the_interval_it_re_verifies_and_moves_only_last_verified(
    repo: Repo, pve_sandbox_factory: SandboxFactory, kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    prod = pve_sandbox_factory(three_node_topology())
    lab = pve_sandbox_factory(Topology.from_dict({"cluster": "pve-lab", "version": "9.1"}))
    repo.add_cluster("pve-prod", prod)  # default interval: 5m
    repo.add_cluster("pve-lab", lab, verify_interval="10m")
    repo.cycle(T0)
    before = repo.status("pve-prod")
    kube_sandbox.request_log.clear()
    prod.request_log.clear()
    lab.request_log.clear()

    outcomes = repo.cycle(T0 + timedelta(minutes=5))

    assert outcomes["pve-prod"].verified and outcomes["pve-prod"].due_reason == "interval passed"
    assert not outcomes["pve-lab"].verified  # its interval is 10m
    assert prod.request_log.paths() == ["/version", "/cluster/status", "/nodes"]
    assert len(lab.request_log) == 0
    after = repo.status("pve-prod")
    assert after["lastVerified"] == "2025-03-01T12:05:00Z"
    assert {k: v for k, v in after.items() if k != "lastVerified"} == {
        k: v for k, v in before.items() if k != "lastVerified"
    }
    assert status_writes(kube_sandbox) == 1


def test_changing_the_file_updates_the_cr_and_re_verifies_at_once(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(three_node_topology())
    repo.add_cluster("pve-prod", sandbox, expected_node_count=3)
    repo.cycle(T0)
    assert repo.status("pve-prod")["health"] == "Healthy"
    repo.add_cluster("pve-prod", sandbox, expected_node_count=4, secrets=False)
    sandbox.request_log.clear()

    outcome = repo.cycle(T0 + timedelta(seconds=30))["pve-prod"]

    assert outcome.due_reason == "spec changed" and outcome.verified
    assert len(sandbox.request_log) == 3
    status = repo.status("pve-prod")
    assert status["health"] == "Degraded"
    assert status["warnings"] == ["expected 4 nodes (spec.expectedNodeCount), the cluster reports 3"]
    assert status["observedGeneration"] == 2
    condition = ready_condition(status)
    assert condition is not None and condition["status"] == "True" and condition["observedGeneration"] == 2
    assert condition["lastTransitionTime"] == "2025-03-01T12:00:00Z"  # still Ready: no transition


def test_force_verifies_even_within_the_interval(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox)
    repo.cycle(T0)
    sandbox.request_log.clear()
    assert repo.cycle(T0 + timedelta(seconds=1), force=True)["pve-sandbox"].verified
    assert len(sandbox.request_log) == 3


def test_a_quorum_loss_shows_as_degraded_with_warnings(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    topology = Topology.from_dict(
        {
            "cluster": "pve-prod",
            "nodes": [{"name": "pve1"}, {"name": "pve2", "online": False}, {"name": "pve3", "online": False}],
        }
    )
    sandbox = pve_sandbox_factory(topology)
    repo.add_cluster("pve-prod", sandbox, expected_node_count=3)
    repo.cycle(T0)
    status = repo.status("pve-prod")
    assert (status["health"], status["quorate"], status["onlineNodes"]) == ("Degraded", False, 1)
    assert "the cluster is not quorate" in status["warnings"]


def test_insecure_skip_verify_from_the_file_connects_and_says_so_in_the_status(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox, insecure_skip_verify=True)
    assert repo.cycle(T0)["pve-sandbox"].ready
    status = repo.status("pve-sandbox")
    assert status["tlsInsecure"] is True
    assert status["warnings"] == ["TLS certificate verification is disabled (spec.tls.insecureSkipVerify)"]


def test_a_cluster_file_pinning_the_certificate_fingerprint_registers_without_a_ca_bundle(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(hostnames=("pve1.example.net",))  # the name in the URL is not in the cert
    repo.add_cluster("pve-sandbox", sandbox, ca_secret=None, fingerprint=sandbox.fingerprint)
    outcome = repo.cycle(T0)["pve-sandbox"]
    assert (outcome.ready, outcome.reason) == (True, "Verified"), outcome.message
    assert repo.status("pve-sandbox")["health"] == "Healthy"


def test_with_several_api_endpoints_a_node_that_is_down_is_passed_over_in_order(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard, pve_closed_port: int
) -> None:
    sandbox = pve_sandbox_factory(three_node_topology())
    down = f"https://127.0.0.1:{pve_closed_port}"
    repo.add_cluster("pve-prod", sandbox, endpoint=down)
    path = repo.root / "clusters" / "pve-prod.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["apiEndpoints"] = [sandbox.url]
    path.write_text(yaml.safe_dump(doc))
    outcome = repo.cycle(T0)["pve-prod"]
    assert (outcome.ready, outcome.reason) == (True, "Verified"), outcome.message
    status = repo.status("pve-prod")
    assert (status["health"], status["nodeCount"]) == ("Degraded", 3)
    assert status["warnings"] == [f"Proxmox VE API at {down}: connection refused (GET /version); "
                                  f"verified through {sandbox.url}"]


def test_the_same_cluster_registered_under_two_host_spellings_is_reported_on_both_files(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(three_node_topology())
    repo.add_cluster("prod-a", sandbox, endpoint=sandbox.url)
    repo.add_cluster("prod-b", sandbox, endpoint=sandbox.url.replace("127.0.0.1", "localhost"))
    other = pve_sandbox_factory()  # another cluster, not a twin
    repo.add_cluster("lab", other)
    outcomes = repo.cycle(T0)
    assert all(o.ready for o in outcomes.values())
    for name, twin in (("prod-a", "prod-b"), ("prod-b", "prod-a")):
        status = repo.status(name)
        assert status["health"] == "Degraded"
        assert status["warnings"] == [f"the same Proxmox cluster (pve-prod: pve1, pve2, pve3) is registered by "
                                      f"clusters/{twin}.yaml too; keep one file per cluster"]
    assert repo.status("lab")["health"] == "Healthy"

    (repo.root / "clusters" / "prod-b.yaml").unlink()  # one file per cluster again
    outcomes = repo.cycle(T0 + timedelta(minutes=6))
    assert repo.status("prod-a")["health"] == "Healthy" and "warnings" not in repo.status("prod-a")


# --- failures: the Ready condition's reason -----------------------------------------------------


def assert_failed(repo: Repo, name: str, reason: str, *message_parts: str) -> dict[str, Any]:
    status = repo.status(name)
    condition = ready_condition(status)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", reason), condition
    assert (status["phase"], status["health"]) == ("Failed", reason)  # health names what failed
    for part in message_parts:
        assert part in condition["message"], condition["message"]
    assert status["lastError"] == condition["message"]
    return status


def test_a_wrong_token_secret_gives_authentication_failed(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox)
    put_secret(repo.kube.api, NS, "pve-sandbox-creds", {"tokenId": sandbox.token_id or "", "tokenSecret": WRONG_SECRET})
    pve_secret_guard.add_secret(WRONG_SECRET)
    repo.cycle(T0)
    assert_failed(repo, "pve-sandbox", "AuthenticationFailed", "rejected API token reconciler@pve!reconciler")


def test_a_wrong_ca_gives_tls_failure(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard, pve_foreign_ca_pem: bytes
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox)
    put_secret(repo.kube.api, NS, "pve-sandbox-ca", {"ca.crt": pve_foreign_ca_pem})
    repo.cycle(T0)
    assert_failed(repo, "pve-sandbox", "TLSFailure", "certificate not trusted")
    assert len(sandbox.request_log) == 0


def test_an_unreachable_endpoint_gives_unreachable(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard, pve_closed_port: int
) -> None:
    sandbox = pve_sandbox_factory()  # for the Secrets; the file points at a closed port
    repo.add_cluster("pve-sandbox", sandbox, endpoint=f"https://127.0.0.1:{pve_closed_port}")
    repo.cycle(T0)
    assert_failed(repo, "pve-sandbox", "Unreachable", "connection refused")


def test_an_api_that_does_not_answer_in_time_gives_timeout(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    sandbox.faults.slow("/version", delay=2.0)
    repo.add_cluster("pve-sandbox", sandbox)
    repo.cycle(T0, read_timeout=0.3)
    assert_failed(repo, "pve-sandbox", "Timeout", "within 0.3 s")


def test_a_token_without_sys_audit_gives_permission_denied(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory(
        Topology.from_dict({"users": [{"userid": "nobody@pve", "privileges": {}, "tokens": [{"name": "t"}]}]})
    )
    repo.add_cluster("pve-sandbox", sandbox)
    repo.cycle(T0)
    assert_failed(repo, "pve-sandbox", "PermissionDenied", "nobody@pve!t")


def test_a_missing_secret_gives_credentials_missing_without_calling_proxmox(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox, secrets=False)
    outcome = repo.cycle(T0)["pve-sandbox"]
    assert not outcome.verified and outcome.reason == "CredentialsMissing"
    assert_failed(repo, "pve-sandbox", "CredentialsMissing", "Secret pve-sandbox-creds", "tokenId + tokenSecret")
    assert len(sandbox.request_log) == 0


def test_a_failed_cluster_recovers_within_a_minute_once_the_secret_is_fixed(
    repo: Repo, pve_sandbox_factory: SandboxFactory, kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox, secrets=False)
    repo.cycle(T0)
    failed_at = ready_condition(repo.status("pve-sandbox"))
    kube_sandbox.request_log.clear()
    repo.cycle(T0 + timedelta(seconds=30))  # not yet due: failures retry after a minute
    assert kube_sandbox.request_log.writes() == []
    repo.add_cluster("pve-sandbox", sandbox)  # now with Secrets

    assert repo.cycle(T0 + timedelta(minutes=1))["pve-sandbox"].ready

    condition = ready_condition(repo.status("pve-sandbox"))
    assert condition is not None and failed_at is not None
    assert condition["lastTransitionTime"] == "2025-03-01T12:01:00Z" != failed_at["lastTransitionTime"]
    assert repo.status("pve-sandbox").get("lastError") is None


def test_one_failing_cluster_does_not_hold_up_the_others(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard, pve_closed_port: int
) -> None:
    good = pve_sandbox_factory()
    repo.add_cluster("good", good)
    repo.add_cluster("down", good, endpoint=f"https://127.0.0.1:{pve_closed_port}")
    outcomes = repo.cycle(T0)
    assert outcomes["good"].ready and outcomes["down"].ready is False
    assert outcomes["down"].reason == "Unreachable"


# --- deregistration ---------------------------------------------------------------------------


def test_removing_the_cluster_file_makes_the_plan_delete_its_cr(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    from reconciler.plan.planner import LiveObject, plan

    for name in ("pve-a", "pve-b", "pve-c", "pve-d", "pve-e"):
        repo.add_cluster(name, pve_sandbox_factory())
    repo.cycle(T0)
    (repo.root / "clusters" / "pve-e.yaml").unlink()

    live = {"ProxmoxCluster": [LiveObject.from_manifest(o) for o in repo.kube.list_owned("ProxmoxCluster")]}
    changes = plan(repo.desired(), live)

    deletes = changes.by_action(Action.DELETE)
    assert [(c.kind, c.name, c.reason) for c in deletes] == [
        ("ProxmoxCluster", "pve-e", "file removed (clusters/pve-e.yaml)")
    ]
    apply_desired(repo.kube, repo.desired())
    assert repo.kube.get("ProxmoxCluster", "pve-e") is None
    assert {o.name for o in register_clusters(repo.kube, repo.desired(), now=T0)} == {
        "pve-a",
        "pve-b",
        "pve-c",
        "pve-d",
    }


def test_a_failed_status_write_for_one_cluster_does_not_stop_the_others(
    repo: Repo, pve_sandbox_factory: SandboxFactory, kube_sandbox: KubeSandbox, pve_secret_guard: SecretGuard
) -> None:
    repo.add_cluster("pve-a", pve_sandbox_factory())
    repo.add_cluster("pve-b", pve_sandbox_factory())
    kube_sandbox.faults.inject(
        verb="patch",
        resource="proxmoxclusters",
        subresource="status",
        name="pve-a",
        status=403,
        message="denied by policy",
    )
    outcomes = repo.cycle(T0)
    assert outcomes["pve-a"].ready and not outcomes["pve-a"].status_written
    assert "403" in (outcomes["pve-a"].write_error or "")
    assert outcomes["pve-b"].status_written and repo.status("pve-b")["version"] == "8.0.3"
    assert repo.status("pve-a") == {}


def test_an_invalid_reconciler_yaml_blocks_registration_too(
    repo: Repo, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard
) -> None:
    sandbox = pve_sandbox_factory()
    repo.add_cluster("pve-sandbox", sandbox)
    repo.cycle(T0)
    sandbox.request_log.clear()
    (repo.root / "reconciler.yaml").write_text("apiVersion: multinic.io/v1alpha1\nkind: ReconcilerSettings\nspec: 3\n")
    desired = validate_repo(repo.root).desired
    assert desired.settings_blocked
    assert register_clusters(repo.kube, desired, now=T0 + timedelta(hours=1)) == []
    assert len(sandbox.request_log) == 0
