"""``spec.proxmox.nicCheck``: under ``enforce`` (the default) a node whose VM NICs differ from its
file gets no Job, and says why in its CR status, the plan (exit 2), ``status/`` and an Event;
under ``warn`` it rolls out and the difference is still reported.

Real parts: the example repo as a Git repo, one PVE sandbox per cluster file (built from the
*unchanged* repo, then the files are edited so that they no longer match their VMs), the kube
sandbox, the real proxmoxer and the ``reconciler plan`` CLI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.harness.kube_setup import put_cluster_secrets
from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config
from multinic_sandbox.proxmox import ProxmoxSandbox
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory
from support.reconcile import EXAMPLE_REPO, NAMESPACE, ReconcileEnv, commit, git_repo, start_env
from test_plan_cli import cli, kube_args

from reconciler import pipeline
from reconciler.config.validation import validate_repo
from reconciler.report.gitstatus import NodeReport, render

AUTH = {"pve-lab": "ticket", "pve-prod": "token"}


@dataclass
class Fleet:
    env: ReconcileEnv
    sandboxes: dict[str, ProxmoxSandbox]

    def edit(self, node: str, change: Any) -> None:
        path = self.env.repo / "nodes" / f"{node}.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc["spec"])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def settle(self, done: Any, cycles: int = 40) -> pipeline.Cycle:
        for _ in range(cycles):
            cycle = self.env.apply()
            if done(cycle):
                return cycle
            self.env.sandbox.clock.advance(10)
            self.env.sandbox.jobs.step()
        pytest.fail(f"not settled after {cycles} cycles")

    def job_nodes(self) -> set[str]:
        return {j["metadata"]["annotations"]["multinic.io/node-name"] for j in self.env.jobs()}

    def job_names(self) -> set[str]:
        return {j["metadata"]["name"] for j in self.env.jobs()}

    def condition(self, node: str, kind: str = "VMNicsMatch") -> dict[str, Any]:
        status = (self.env.cr(node) or {}).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})

    def events(self, node: str) -> list[tuple[str, str, str]]:
        return [(e["reason"], e["type"], e["message"]) for e in self.env.sandbox.list("v1", "Event", NAMESPACE)
                if e["involvedObject"]["name"] == node]


@pytest.fixture
def fleet(tmp_path: Path, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard) -> Iterator[Fleet]:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, repo)
    original = validate_repo(repo).desired
    sandboxes = {name: pve_sandbox_factory(t) for name, t in topologies_from_config(original).items()}
    point_repo_at(repo, {name: sb.url for name, sb in sandboxes.items()})
    git_repo(None, repo)
    with start_env(repo, jobs="auto") as env:
        put_cluster_secrets(env.kube().api, NAMESPACE, validate_repo(repo).desired, sandboxes, auth=AUTH)
        yield Fleet(env, sandboxes)


def _first(spec: dict[str, Any], **fields: Any) -> None:
    spec["interfaces"][0].update(fields)


MISMATCHED = {
    # node: (how its file is changed, what its status must say)
    "worker-01": (lambda s: _first(s, macAddress="BC:24:11:20:00:99"),
                  "macAddress bc:24:11:20:00:99 (storage0) is not on VM 201"),
    "worker-02": (lambda s: _first(s, proxmoxNet="net7"),
                  "macAddress bc:24:11:20:00:0c (storage0) is on net1, not on proxmoxNet net7 (VM 202 has no net7)"),
    "worker-03": (lambda s: _first(s, proxmox={"bridge": "vmbr9"}),
                  "VM 203 net1 (storage0): bridge is vmbr1, the file says vmbr9"),
    "worker-04": (lambda s: _first(s, proxmox={"vlan": 30}),
                  "VM 204 net1 (storage0): VLAN tag is none (untagged), the file says 30"),
    "worker-06": (lambda s: s["proxmox"].update(vmid=299), "VM 299 does not exist on pve-prod"),
}


def test_each_mismatch_holds_its_node_and_is_shown_in_status_plan_status_dir_and_events(fleet: Fleet) -> None:
    fleet.settle(lambda c: all(s.state == "applied" for s in c.rollout.nodes.values()))  # the repo as it was
    before = fleet.job_names()
    for node, (change, _) in MISMATCHED.items():
        fleet.edit(node, change)
    fleet.edit("gpu-01", lambda s: (_first(s, macAddress="BC:24:11:20:00:98"), s["proxmox"].update(nicCheck="warn")))
    commit(fleet.env.repo, "files that no longer match their VMs")

    plan = cli("plan", *kube_args(fleet.env))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    for node, (_, says) in MISMATCHED.items():
        assert f"VM NIC check, nodes/{node}.yaml: {says}" in plan.stdout
        assert "(nicCheck: enforce, no Job until fixed)" in plan.stdout
    assert "VM NIC check, nodes/gpu-01.yaml: macAddress bc:24:11:20:00:98 (storage0) is not on VM 301" in plan.stdout
    assert "(nicCheck: warn)" in plan.stdout

    held = set(MISMATCHED)
    fleet.settle(lambda c: all(s.state in ("applied", "held") for s in c.rollout.nodes.values()))

    new_jobs = fleet.job_names() - before
    assert {n.rsplit("-", 1)[0].removeprefix("mnnc-") for n in new_jobs} == {"gpu-01"}  # none for a held node
    for node, (_, says) in MISMATCHED.items():
        status = fleet.env.cr(node)["status"]  # type: ignore[index]
        assert status["phase"] == "Held"
        nics = fleet.condition(node)
        assert (nics["status"], nics["reason"]) == ("False", "NicsDiffer") and says in nics["message"]
        assert fleet.condition(node, "Ready")["reason"] == "VMNicsMismatch"
        assert [says in m for m in status["proxmoxCheck"]["mismatches"]] == [True]
        assert [(r, t) for r, t, m in fleet.events(node) if says in m] == [("VMNicsMismatch", "Warning")]
    # warn: rolled out, the difference still reported (status, Event)
    gpu = fleet.env.cr("gpu-01")["status"]  # type: ignore[index]
    assert gpu["phase"] == "Ready" and fleet.condition("gpu-01")["status"] == "False"
    assert ("VMNicsMismatch", "Warning") in [(r, t) for r, t, _ in fleet.events("gpu-01")]
    assert fleet.condition("worker-05")["status"] == "True"

    files = render([NodeReport.from_resource(n, o["spec"], o["status"]) for n, o in fleet.env.crs().items()], [],
                   revision=None)
    worker_03 = yaml.safe_load(files["status/nodes/worker-03.yaml"])
    assert worker_03["phase"] == "Held"
    assert worker_03["vmNicMismatches"] == [MISMATCHED["worker-03"][1]]
    assert held <= {n for n in fleet.env.crs() if "Held" in files[f"status/nodes/{n}.yaml"]}

    fleet.env.sandbox.request_log.clear()
    quiet = fleet.env.apply()  # nothing changed: no status write, no new Event
    assert [w for w in fleet.env.writes()] == []
    assert quiet.status_writes == 0


def test_fixing_the_file_releases_the_node(fleet: Fleet) -> None:
    fleet.edit("worker-03", MISMATCHED["worker-03"][0])
    commit(fleet.env.repo, "wrong bridge")
    fleet.settle(lambda c: c.rollout.nodes["worker-03"].state == "held")
    assert "worker-03" not in fleet.job_nodes()

    fleet.edit("worker-03", lambda s: _first(s, proxmox={"bridge": "vmbr1", "net": "net1"}))
    commit(fleet.env.repo, "right bridge")
    fleet.settle(lambda c: c.rollout.nodes["worker-03"].state == "applied")
    assert fleet.condition("worker-03")["status"] == "True"
    assert [r for r, _, _ in fleet.events("worker-03")].count("VMNicsMatch") == 1


def test_nodes_of_a_cluster_that_is_not_verified_wait_with_the_reason(fleet: Fleet) -> None:
    from multinic_sandbox.harness.kube_setup import put_secret

    put_secret(fleet.env.kube().api, NAMESPACE, "pve-lab-login", {"username": "reconciler@pve", "password": "nope"})
    fleet.settle(lambda c: all(s.state in ("applied", "waiting") for s in c.rollout.nodes.values()))
    assert {"gpu-01", "gpu-02"}.isdisjoint(fleet.job_nodes())
    for node in ("gpu-01", "gpu-02"):
        nics = fleet.condition(node)
        assert (nics["status"], nics["reason"]) == ("Unknown", "ClusterNotVerified")
        assert "Proxmox cluster pve-lab is not verified (AuthenticationFailed" in nics["message"]
        assert fleet.condition(node, "Ready")["reason"] == "WaitingForVMNicCheck"
    assert "worker-01" in fleet.job_nodes()


def test_a_token_lacking_vm_audit_gives_permission_denied_naming_the_privilege_not_vm_does_not_exist(
        fleet: Fleet) -> None:
    fleet.settle(lambda c: all(s.state == "applied" for s in c.rollout.nodes.values()))
    # An ACL change on the PVE side after the cluster was verified: the token no longer sees VM 201.
    prod = fleet.sandboxes["pve-prod"].topology.default_user
    prod.privileges["/vms/201"] = frozenset()  # NoAccess, as an admin would set it
    fleet.edit("worker-01", lambda s: _first(s, mtu=8900))
    commit(fleet.env.repo, "worker-01 storage MTU")
    jobs = fleet.job_names()
    fleet.settle(lambda c: c.rollout.nodes["worker-01"].state == "waiting")
    assert fleet.job_names() == jobs  # no Job for the new spec: the VM could not be read
    nics = fleet.condition("worker-01")
    assert (nics["status"], nics["reason"]) == ("Unknown", "PermissionDenied")
    assert "API token reconciler@pve!reconciler lacks VM.Audit on /vms/201" in nics["message"]
    assert "does not exist" not in nics["message"]

    # At its next verification the cluster itself says so, naming the privilege and what needs it.
    fleet.env.sandbox.clock.advance(600)
    cycle = fleet.env.apply()
    prod_outcome = next(o for o in cycle.clusters if o.name == "pve-prod")
    assert (prod_outcome.ready, prod_outcome.reason) == (False, "PermissionDenied")
    assert "lacks VM.Audit on /vms/201 (to read VM 201 of node worker-01)" in (prod_outcome.message or "")
    status = fleet.env.cr("pve-prod", "ProxmoxCluster")["status"]  # type: ignore[index]
    assert status["health"] == "PermissionDenied"


def test_removing_a_cluster_file_clears_the_nic_checks_of_nodes_that_still_name_it(fleet: Fleet) -> None:
    fleet.settle(lambda c: all(s.state == "applied" for s in c.rollout.nodes.values()))
    assert fleet.env.cr("gpu-01")["status"]["proxmoxCheck"]["checked"] is True  # type: ignore[index]
    (fleet.env.repo / "clusters" / "pve-lab.yaml").unlink()
    commit(fleet.env.repo, "pve-lab is gone")
    fleet.settle(lambda c: "gpu-01" in c.validation.desired.blocked.get("MultiNicNodeConfig", frozenset()))
    fleet.env.apply()
    for node in ("gpu-01", "gpu-02"):
        status = fleet.env.cr(node)["status"]  # type: ignore[index]
        assert "proxmoxCheck" not in status  # no claim about a VM of a cluster that has no file
        assert fleet.condition(node) == {}
        assert fleet.condition(node, "ConfigValid")["status"] == "False"  # why: the file names pve-lab
    assert fleet.env.cr("worker-01")["status"]["proxmoxCheck"]["checked"] is True  # type: ignore[index]
