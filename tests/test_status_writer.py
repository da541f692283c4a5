"""One status owner: every object's status is computed once per cycle from everything the cycle
learned (rollout, VM NIC check, cluster verification, file validity) and written with one patch;
Events carry the object's uid, so the real ``kubectl describe`` lists them, clusters included."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from multinic_sandbox.harness.fleet import AgentHosts, nodes_for
from multinic_sandbox.harness.kube_setup import put_cluster_secrets
from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config
from multinic_sandbox.kube.pytest_plugin import Kubectl
from multinic_sandbox.kube.server import KubeSandbox
from multinic_sandbox.proxmox import ProxmoxSandbox
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory
from support.reconcile import commit, git

from reconciler import pipeline, resources
from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.source.local import open_directory
from reconciler.status import models, schema

NS = "multinic-system"
AUTH = {"pve-lab": "ticket", "pve-prod": "token"}
API = "multinic.io/v1alpha1"


@dataclass
class World:
    repo: Path
    kube: Kube
    sandbox: KubeSandbox
    pves: dict[str, ProxmoxSandbox]
    kubectl: Kubectl

    def cycle(self, *, check_nics: bool = True) -> pipeline.Cycle:
        return pipeline.apply_once(open_directory(self.repo), lambda ns: Kube(self.sandbox.api_client(), ns),
                                   check_nics=check_nics)

    def settle(self) -> pipeline.Cycle:
        for _ in range(60):
            cycle = self.cycle()
            if cycle.rollout is not None and not cycle.rollout.in_flight:
                return cycle
            time.sleep(0.3)
        raise AssertionError("the rollout did not settle")

    def cr(self, name: str, kind: str = "MultiNicNodeConfig") -> dict[str, Any]:
        obj = self.sandbox.get(API, kind, name, namespace=NS)
        assert obj is not None
        return obj

    def events(self, name: str, kind: str = "MultiNicNodeConfig") -> list[dict[str, Any]]:
        return [e for e in self.sandbox.list("v1", "Event", NS)
                if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == kind]

    def status_patches(self) -> Counter[tuple[str, str]]:
        return Counter((r.resource, r.name) for r in self.sandbox.request_log.records
                       if r.verb == "patch" and r.subresource == "status")


@pytest.fixture
def world(tmp_path: Path, kube_sandbox: KubeSandbox, pve_kube: Kube, pve_sandbox_factory: SandboxFactory,
          pve_secret_guard: SecretGuard) -> Iterator[World]:
    original = validate_repo(resources.example_repo_dir()).desired
    pves = {name: pve_sandbox_factory(t) for name, t in topologies_from_config(original).items()}
    repo = tmp_path / "repo"
    shutil.copytree(resources.example_repo_dir(), repo)
    point_repo_at(repo, {name: sb.url for name, sb in pves.items()})
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "example")
    desired = validate_repo(repo).desired
    put_cluster_secrets(pve_kube.api, NS, desired, pves, auth=AUTH)  # type: ignore[arg-type]
    kube_sandbox.seed(*nodes_for(desired))
    # Node Jobs run the real agent on fake node roots: a Job is Ready only on the agent's own result.
    kube_sandbox.node_model.set_default(AgentHosts(tmp_path / "hosts"))
    yield World(repo, pve_kube, kube_sandbox, pves, Kubectl(kube_sandbox, tmp_path / "kubectl-home"))


def test_a_cycle_that_verifies_checks_nics_and_rolls_out_patches_each_status_at_most_once(world: World) -> None:
    world.sandbox.request_log.clear()
    first = world.cycle()
    assert first.clusters and all(o.verified for o in first.clusters)
    assert first.nic_checks and first.rollout is not None and first.rollout.started
    patches = world.status_patches()
    assert patches and max(patches.values()) == 1, patches
    # Everything the cycle learned is in that one status: the rollout, the NIC check, the file.
    status = world.cr("worker-01")["status"]
    assert status["phase"] == "Pending"  # maxParallel 3: gpu-01, gpu-02 and infra-01 go first
    # The VM was read and matches; the check's mode (the file's default, enforce) is part of the claim.
    assert status["proxmoxCheck"] == {"checked": True, "vmNode": "pve1", "mismatches": [], "nicCheck": "enforce"}
    assert {c["type"]: c["status"] for c in status["conditions"]}["ConfigValid"] == "True"
    assert status["sourcePath"] == "nodes/worker-01.yaml"
    cluster = world.cr("pve-prod", "ProxmoxCluster")["status"]
    assert cluster["phase"] == "Ready" and cluster["sourcePath"] == "clusters/pve-prod.yaml"


def test_every_status_the_cycle_writes_is_the_typed_model_and_a_quiet_cycle_writes_nothing(world: World) -> None:
    world.settle()
    for kind, model in (("MultiNicNodeConfig", models.NodeStatus), ("ProxmoxCluster", models.ClusterStatus)):
        contract = Draft202012Validator(json.loads((resources.schemas_dir() / schema.SCHEMA_FILES[kind]).read_text()))
        for obj in world.sandbox.list(API, kind, NS):
            assert model.model_validate(obj["status"]).dump() == obj["status"], obj["metadata"]["name"]
            assert list(contract.iter_errors(obj["status"])) == [], obj["metadata"]["name"]
    world.sandbox.request_log.clear()
    quiet = world.cycle()
    assert quiet.status_writes == 0 and world.status_patches() == Counter()
    assert not [r for r in world.sandbox.request_log.records if r.verb == "create" and r.resource == "events"]


def test_an_invalid_node_file_keeps_the_live_spec_and_says_config_valid_false_with_file_and_line(
        world: World) -> None:
    world.settle()
    before = world.cr("worker-01")
    path = world.repo / "nodes" / "worker-01.yaml"
    good = path.read_text()
    path.write_text(good.replace("mtu: 9000", "mtu: 90000", 1))
    assert "mtu: 90000" in path.read_text()
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "mtu: 90000" in text)
    commit(world.repo, "bad mtu")

    world.cycle()
    after = world.cr("worker-01")
    assert after["spec"] == before["spec"]  # the live spec is kept
    conditions = {c["type"]: c for c in after["status"]["conditions"]}
    invalid = conditions["ConfigValid"]
    assert (invalid["status"], invalid["reason"]) == ("False", "ValidationFailed")
    assert f"nodes/worker-01.yaml:{line}:" in invalid["message"] and "mtu" in invalid["message"]
    assert conditions["Ready"]["status"] == "True"  # what is live is still applied
    assert after["status"]["phase"] == "Ready"
    warning = [e for e in world.events("worker-01") if e["reason"] == "ValidationFailed"]
    assert len(warning) == 1 and warning[0]["type"] == "Warning"
    assert warning[0]["involvedObject"]["uid"] == after["metadata"]["uid"]

    world.cycle()  # seen again: no second Event, no write
    assert len([e for e in world.events("worker-01") if e["reason"] == "ValidationFailed"]) == 1

    path.write_text(good)
    commit(world.repo, "fix mtu")
    world.cycle()
    fixed = {c["type"]: c for c in world.cr("worker-01")["status"]["conditions"]}["ConfigValid"]
    assert (fixed["status"], fixed["reason"]) == ("True", "Valid")
    assert sorted(e["reason"] for e in world.events("worker-01") if e["reason"].startswith("Validation")) == [
        "ValidationFailed", "ValidationPassed"]


def test_kubectl_describe_lists_the_node_events(world: World) -> None:
    world.settle()
    described = world.kubectl("describe", "mnnc", "worker-01", "-n", NS).stdout
    events = described.split("Events:", 1)[1]
    assert "RolloutStarted" in events and "Applied" in events, described


def test_clusters_get_events_and_kubectl_describe_lists_them(world: World) -> None:
    world.cycle()
    verified = world.events("pve-prod", "ProxmoxCluster")
    assert [(e["reason"], e["type"]) for e in verified] == [("Verified", "Normal")]
    uid = world.cr("pve-prod", "ProxmoxCluster")["metadata"]["uid"]
    assert verified[0]["involvedObject"]["uid"] == uid
    described = world.kubectl("describe", "pvec", "pve-prod", "-n", NS).stdout
    assert "Verified" in described.split("Events:", 1)[1], described


def test_a_cluster_whose_verification_starts_failing_gets_one_warning(world: World) -> None:
    world.cycle()
    world.pves["pve-prod"].stop()
    path = world.repo / "clusters" / "pve-prod.yaml"
    text = path.read_text()
    path.write_text(text.replace("verifyInterval: 5m", "verifyInterval: 10m"))
    assert path.read_text() != text
    commit(world.repo, "verify less often")  # a spec change: the cluster is due now
    world.cycle()
    world.cycle()
    status = world.cr("pve-prod", "ProxmoxCluster")["status"]
    assert status["phase"] == "Failed"
    reasons = sorted((e["reason"], e["type"]) for e in world.events("pve-prod", "ProxmoxCluster"))
    assert reasons == [("VerificationFailed", "Warning"), ("Verified", "Normal")]


def test_an_invalid_cluster_file_gets_config_valid_false_and_keeps_its_registration(world: World) -> None:
    world.cycle()
    path = world.repo / "clusters" / "pve-lab.yaml"
    text = path.read_text()
    path.write_text(text.replace("spec:\n", "spec:\n  verifyEvery: 5m\n", 1))
    commit(world.repo, "unknown key in a cluster file")
    world.cycle()
    cr = world.cr("pve-lab", "ProxmoxCluster")
    conditions = {c["type"]: c for c in cr["status"]["conditions"]}
    assert (conditions["ConfigValid"]["status"], conditions["ConfigValid"]["reason"]) == ("False", "ValidationFailed")
    assert "clusters/pve-lab.yaml:" in conditions["ConfigValid"]["message"]
    assert "verifyEvery" in conditions["ConfigValid"]["message"]
    assert conditions["Ready"]["status"] == "True" and cr["status"]["phase"] == "Ready"  # last verification stands
    events = [e for e in world.events("pve-lab", "ProxmoxCluster") if e["reason"] == "ValidationFailed"]
    assert len(events) == 1 and events[0]["involvedObject"]["uid"] == cr["metadata"]["uid"]
