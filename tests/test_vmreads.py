"""VM reads run off the reconcile path: two VMs that do not answer hold neither the cycle nor the
rollout of another cluster's nodes (nor of their own cluster's other VMs) by more than one cycle.

The loop's path exactly: ``pipeline.apply_once`` with a long-lived ``VmReads``; the PVE
sandboxes of the example repo, two VM config reads on pve-prod made to hang past the cluster's
``spec.timeouts.read``; the real proxmoxer.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from multinic_sandbox.harness.kube_setup import put_cluster_secrets
from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config
from multinic_sandbox.proxmox import ProxmoxSandbox
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory
from support.reconcile import EXAMPLE_REPO, NAMESPACE, ReconcileEnv, git_repo, start_env

from reconciler import pipeline
from reconciler.apply.proxmox.vmreads import VmReads
from reconciler.config.validation import validate_repo

HUNG = {201: "pve1", 202: "pve2"}  # worker-01, worker-02 on pve-prod


@pytest.fixture
def env(tmp_path: Path, pve_sandbox_factory: SandboxFactory,
        pve_secret_guard: SecretGuard) -> Iterator[tuple[ReconcileEnv, dict[str, ProxmoxSandbox]]]:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, repo)
    sandboxes = {name: pve_sandbox_factory(t)
                 for name, t in topologies_from_config(validate_repo(repo).desired).items()}
    point_repo_at(repo, {name: sb.url for name, sb in sandboxes.items()})
    settings = yaml.safe_load((repo / "reconciler.yaml").read_text())
    settings["spec"]["rollout"]["maxParallel"] = 20  # the rollout limit is not what is tested here
    (repo / "reconciler.yaml").write_text(yaml.safe_dump(settings))
    prod = yaml.safe_load((repo / "clusters" / "pve-prod.yaml").read_text())
    prod["spec"]["timeouts"] = {"read": "3s"}
    (repo / "clusters" / "pve-prod.yaml").write_text(yaml.safe_dump(prod))
    git_repo(None, repo)
    with start_env(repo, jobs="manual") as env:
        put_cluster_secrets(env.kube().api, NAMESPACE, validate_repo(repo).desired, sandboxes,
                            auth={"pve-lab": "ticket", "pve-prod": "token"})
        yield env, sandboxes


def _until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_two_hung_vms_delay_another_clusters_rollout_by_at_most_one_cycle(
        env: tuple[ReconcileEnv, dict[str, ProxmoxSandbox]]) -> None:
    kube_env, sandboxes = env
    for vmid, node in HUNG.items():
        sandboxes["pve-prod"].faults.slow(f"/nodes/{node}/qemu/{vmid}/config", delay=4.0)
    with VmReads() as reads:
        first = pipeline.apply_once(kube_env.checkout(), kube_env.connect, vm_reads=reads)
        # The cycle returned with the hung reads still in flight: it did not wait for them.
        assert all(reads.reading_since("pve-prod", vmid) is not None for vmid in HUNG)
        assert first.rollout is not None and first.rollout.nodes["worker-01"].state == "waiting"

        # The other VMs of both clusters answer while the two hang (a worker per cluster, several
        # reads at once within one).
        others = [("pve-lab", 301), ("pve-lab", 302), *(("pve-prod", v) for v in (203, 204, 205, 206))]
        _until(lambda: all(reads.get(c, v) is not None for c, v in others))
        assert all(reads.reading_since("pve-prod", vmid) is not None for vmid in HUNG)

        second = pipeline.apply_once(kube_env.checkout(), kube_env.connect, vm_reads=reads)
        assert second.rollout is not None
        started = {name: s.state for name, s in second.rollout.nodes.items()}
        for node in ("gpu-01", "gpu-02", "worker-03", "worker-04", "worker-05", "worker-06"):
            assert started[node] == "running", (node, second.rollout.nodes[node].message)
        assert started["worker-01"] == started["worker-02"] == "waiting"

        # The hung reads end at the cluster's read timeout (spec.timeouts.read: 3s), not the default 30 s.
        _until(lambda: all(reads.get("pve-prod", vmid) is not None for vmid in HUNG), timeout=20)
        third = pipeline.apply_once(kube_env.checkout(), kube_env.connect, vm_reads=reads)
        check = third.nic_checks["worker-01"]
        assert not check.checked and "no answer to GET /nodes/pve1/qemu/201/config within 3 s" in (check.error or "")
        assert third.rollout is not None and third.rollout.nodes["worker-01"].state == "waiting"


def test_the_loop_logs_in_once_per_cluster_for_verifications_and_vm_reads_alike(
        env: tuple[ReconcileEnv, dict[str, ProxmoxSandbox]]) -> None:
    kube_env, sandboxes = env  # pve-lab: username/password, i.e. a PVE ticket
    lab = sandboxes["pve-lab"]

    def logins() -> int:
        return sum(1 for r in lab.request_log.records if (r.method, r.path) == ("POST", "/access/ticket"))

    with VmReads(max_age=1) as reads:
        for _ in range(3):
            pipeline.apply_once(kube_env.checkout(), kube_env.connect, vm_reads=reads,
                                now=kube_env.sandbox.clock.now())
            assert reads.wait(20)
            time.sleep(1.1)  # the VM reads are due again
            kube_env.sandbox.clock.advance(600)  # and so is the verification (verifyInterval 5m)
        verifications = sum(1 for r in lab.request_log.records if r.path == "/cluster/status")
        reads_made = sum(1 for r in lab.request_log.records if r.path.endswith("/config"))
    assert verifications >= 3 and reads_made >= 4
    assert logins() == 1  # one ticket, reused (proxmoxer renews it before it expires)
