"""Two `reconciler run` processes against one API server: exactly one acts at any time, the
other takes over when the leader dies, and a restart mid-rollout starts no duplicate Job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from multinic_sandbox.harness.fleet import AgentHosts, nodes_for, prepare
from multinic_sandbox.harness.fleet import write_config_repo as write_repo
from multinic_sandbox.kube.server import KubeSandbox

from reconciler.config.validation import validate_repo

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "multinic-system"


@pytest.fixture
def sandbox(tmp_path):
    with KubeSandbox() as sb:
        prepare(sb, namespace=NAMESPACE)
        yield sb


def start(sb: KubeSandbox, repo: Path, identity: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = open(tmp_path / f"{identity}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(repo), "--kubeconfig", str(sb.kubeconfig_path),
         "--listen", "127.0.0.1:0", "--identity", identity, "--interval", "1s", "--lease-duration", "6s",
         "--lease-namespace", NAMESPACE],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MULTINIC_NO_STATUS": "true"})


def holder(sb: KubeSandbox) -> str | None:
    lease = sb.get("coordination.k8s.io/v1", "Lease", "multinic-reconciler", namespace=NAMESPACE)
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def writers(sb: KubeSandbox) -> list[str]:
    """Identities of the replicas that wrote anything but the Lease, in request order."""
    out = []
    for record in sb.request_log.records:
        if record.verb in ("create", "update", "patch", "delete") and record.resource != "leases":
            identity = record.user_agent.rsplit("(", 1)[-1].rstrip(")")
            out.append(identity)
    return out


def test_two_replicas_never_both_act_and_the_standby_takes_over_when_the_leader_is_killed(sandbox, tmp_path):
    repo = write_repo(tmp_path / "repo", 6)
    sandbox.seed(*nodes_for(validate_repo(repo).desired))
    hosts = AgentHosts(tmp_path / "hosts")  # the real agent on fake roots, each pod running 1.5 s
    sandbox.node_model.set_default(lambda pod: replace(hosts(pod), delay=1.5))
    procs = {name: start(sandbox, repo, name, tmp_path) for name in ("alpha", "beta")}
    try:
        sandbox.wait_until(lambda: holder(sandbox) is not None and sandbox.request_log.count("create", "jobs") >= 2,
                           timeout=60)
        first = holder(sandbox)
        assert first in procs
        second = next(name for name in procs if name != first)
        procs[first].send_signal(signal.SIGKILL)  # mid-rollout: 2 of 6 nodes have Jobs
        procs[first].wait(10)
        sandbox.wait_until(lambda: holder(sandbox) == second, timeout=30)
        sandbox.wait_until(
            lambda: all((n.get("status") or {}).get("phase") == "Ready"
                        for n in sandbox.list("multinic.io/v1alpha1", "MultiNicNodeConfig", NAMESPACE)),
            timeout=90)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    order = writers(sandbox)
    assert set(order) == {first, second}
    switches = sum(1 for a, b in pairwise(order) if a != b)
    assert switches == 1, f"writes interleaved between replicas: {order}"
    jobs = sandbox.list("batch/v1", "Job", NAMESPACE)
    per_node = Counter(job["metadata"]["annotations"]["multinic.io/node-name"] for job in jobs)
    assert len(per_node) == 6 and set(per_node.values()) == {1}, f"duplicate Jobs: {per_node}"


def test_sigterm_finishes_the_cycle_exits_zero_and_hands_the_lease_over(sandbox, tmp_path):
    repo = write_repo(tmp_path / "repo", 2)
    sandbox.seed(*nodes_for(validate_repo(repo).desired))
    proc = start(sandbox, repo, "solo", tmp_path)
    try:
        sandbox.wait_until(lambda: len(sandbox.list("multinic.io/v1alpha1", "MultiNicNodeConfig", NAMESPACE)) == 2,
                           timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert holder(sandbox) is None  # released: a standby takes over at once instead of waiting
    log = (tmp_path / "solo.log").read_text()
    assert "revision=" in log and "object=MultiNicNodeConfig/node-00" in log
