"""The fast fleet runs the agent exactly as its Job says: a mount the Job forgot fails here.

``AgentHosts`` runs the pod's command line, env and capabilities in a root that is read-only
except for the Job's hostPath mounts (``multinic_sandbox.harness.podrun``). These tests build the
Job with the controller's own code for a Rocky 9, an RHEL 8 and an Ubuntu node.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from multinic_sandbox.harness import fleet, podrun

from reconciler.agent import engine
from reconciler.config.models import NodeConfig
from reconciler.kube import jobs

pytestmark = pytest.mark.root

NODES = {"gpu-01": "keyfile", "legacy-01": "ifcfg", "worker-01": "netplan"}  # Rocky 9, RHEL 8, Ubuntu


@pytest.fixture(autouse=True)
def _podrun_works() -> None:
    why = podrun.available()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI runs as root, so this must run there")
        pytest.skip(why)


def node_config(name: str) -> NodeConfig:
    return NodeConfig.model_validate({
        "apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig", "metadata": {"name": name},
        "spec": {"nodeName": name, "interfaces": [
            {"name": "storage0", "macAddress": "bc:24:11:00:00:01", "addresses": ["10.1.0.5/24", "fd01::5/64"],
             "mtu": 9000, "routes": [{"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50},
                                     {"to": "fd08::/48", "via": "fd01::1"}]},
            {"name": "backup0", "macAddress": "bc:24:11:00:00:02", "addresses": ["10.2.0.5/24"]},
        ]}})


def pod_for(node: NodeConfig, job_type: str = "apply") -> dict[str, Any]:
    """The pod the Job controller makes from the Job the reconciler builds for this node's OS."""
    image = fleet.node_object(node)["status"]["nodeInfo"]["osImage"]
    renderer = jobs.renderer_for(image, node.spec.os_family)
    assert renderer == NODES[node.name]
    job = jobs.node_job(job_type, node, namespace="ns", identity="uid/1/h//0", spec_hash="h",
                        generation=1, revision="r",  # type: ignore[arg-type]
                        renderer=renderer, settings=jobs.JobSettings())
    template = job["spec"]["template"]
    meta = {"name": f"{job['metadata']['name']}-x", "namespace": "ns", "labels": template["metadata"]["labels"]}
    return {"metadata": meta, "spec": {**template["spec"], "nodeName": node.spec.node_name}}


@pytest.mark.parametrize("name", sorted(NODES))
def test_the_job_lets_the_agent_write_every_file_it_renders(tmp_path: Path, name: str) -> None:
    node = node_config(name)
    hosts = fleet.AgentHosts(tmp_path)
    assert not hosts.in_process
    pod = pod_for(node)
    dry = json.loads(json.dumps(pod))
    dry["spec"]["containers"][0]["args"].append("--dry-run")
    outcome = hosts(dry)
    assert outcome.kind == "succeed", hosts.runs[-1][1].stderr
    assert json.loads(outcome.message)["dry_run"] is True
    outcome = hosts(pod)
    assert outcome.kind == "succeed", (outcome.message, hosts.runs[-1][1].stderr)
    result = json.loads(outcome.message)
    assert result["outcome"] == "applied" and result["renderer"] == NODES[name]
    expected = engine.rendered_paths(node, NODES[name])
    assert sorted(result["files"]) == sorted(expected)
    root = tmp_path / name
    for path in expected:
        assert (root / path.lstrip("/")).is_file(), path
    # the Job's remove runs the same way and takes them all away again
    outcome = hosts(pod_for(node, "remove"))
    assert outcome.kind == "succeed" and json.loads(outcome.message)["outcome"] == "removed"
    assert not any((root / path.lstrip("/")).exists() for path in expected)


def test_a_job_missing_a_mount_fails_in_the_fast_fleet_and_changes_nothing(tmp_path: Path) -> None:
    # The Job as it was before issue 11: keyfiles mounted, the .link directory not.
    node = node_config("gpu-01")
    pod = pod_for(node)
    [agent] = pod["spec"]["containers"]
    agent["volumeMounts"] = [m for m in agent["volumeMounts"] if m["mountPath"] != "/etc/systemd/network"]
    hosts = fleet.AgentHosts(tmp_path)
    outcome = hosts(pod)
    assert outcome.kind == "fail"
    result = json.loads(outcome.message)
    assert result["outcome"] == "rolled-back" and result["step"] == "write"
    assert "Read-only file system" in result["error"]
    assert list((tmp_path / "gpu-01" / "etc/NetworkManager/system-connections").iterdir()) == []


def test_the_agent_runs_with_only_the_jobs_capabilities(tmp_path: Path) -> None:
    node = node_config("worker-01")
    pod = pod_for(node)
    [agent] = pod["spec"]["containers"]
    agent["command"], agent["args"] = ["sh"], ["-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status > /dev/termination-log"]
    run = podrun.run(pod, fleet.AgentHosts(tmp_path).root_for(node))
    assert run.exit_code == 0, run.stderr
    caps = {line.split(":")[0]: int(line.split()[1], 16) for line in run.message.splitlines()}
    assert caps == {"CapEff": 1 << 12, "CapBnd": 1 << 12}  # CAP_NET_ADMIN only


def test_a_generated_fleet_repo_of_300_nodes_is_valid(tmp_path: Path) -> None:
    """The fleets the tests and bench/ generate are valid config repos past 255 nodes (addresses
    and MACs carry into the next octet instead of producing 10.9.0.256)."""
    from reconciler.config.validation import validate_repo

    result = validate_repo(fleet.write_config_repo(tmp_path / "repo", 300))

    assert [d.message for d in result.diagnostics if d.severity == "error"] == []
    assert len(result.desired.nodes) == 300
