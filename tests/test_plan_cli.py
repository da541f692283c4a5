"""``reconciler plan`` and ``reconciler apply --once`` as a user runs them: exit codes, the three
plan formats, and what apply prints, against the kube sandbox through a real kubeconfig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.reconcile import API_VERSION, EXAMPLE_REPO, NODE_KIND, ROOT, ReconcileEnv, git_repo, start_env

from reconciler.plan import render

NODES = sorted(p.stem for p in (EXAMPLE_REPO / "nodes").glob("*.yaml"))


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MULTINIC_") and k != "KUBECONFIG"},
           "HOME": str(cwd or ROOT), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd or ROOT, check=False)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ReconcileEnv]:
    with start_env(git_repo(EXAMPLE_REPO, tmp_path / "repo"), jobs="manual") as env:
        yield env


def kube_args(env: ReconcileEnv) -> list[str]:
    return ["--repo", str(env.repo), "--kubeconfig", str(env.sandbox.kubeconfig_path)]


def change_mtu(env: ReconcileEnv, name: str, mtu: int) -> None:
    path = env.repo / "nodes" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["interfaces"][0]["mtu"] = mtu
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# -- exit codes --------------------------------------------------------------------------------

def test_plan_offline_of_the_example_repo_lists_every_object_to_create_and_exits_1(tmp_path: Path) -> None:
    repo = git_repo(EXAMPLE_REPO, tmp_path / "repo")

    done = cli("plan", "--repo", str(repo), "--offline")

    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Plan for revision ")
    assert "11 to create, 0 to update, 0 to delete, 0 unchanged, 0 blocked" in lines[0]
    for name in NODES:
        assert f"+ MultiNicNodeConfig/{name}  (create: new file)" in lines
    assert "+ ProxmoxCluster/pve-prod  (create: new file)" in lines


def test_plan_against_a_cluster_that_matches_git_exits_0(env: ReconcileEnv) -> None:
    env.apply()
    env.sandbox.request_log.clear()

    done = cli("plan", *kube_args(env))

    assert done.returncode == 0, done.stderr
    assert "No changes: the cluster matches Git." in done.stdout
    assert env.writes() == []
    assert {verb for verb, _ in env.sandbox.request_log.counts()} <= {"list", "get"}


def test_plan_never_writes_to_the_cluster(env: ReconcileEnv) -> None:
    env.sandbox.request_log.clear()

    done = cli("plan", *kube_args(env))

    assert done.returncode == 1
    assert env.writes() == []
    assert env.crs() == {}


def test_plan_of_an_unreadable_repo_exits_2(tmp_path: Path) -> None:
    missing = cli("plan", "--repo", str(tmp_path / "nowhere"), "--offline")
    assert missing.returncode == 2
    assert "not a directory" in missing.stderr
    a_file = tmp_path / "file.yaml"
    a_file.write_text("x: 1\n")
    assert cli("plan", "--repo", str(a_file), "--offline").returncode == 2


def test_plan_against_an_unreachable_cluster_exits_2(env: ReconcileEnv, tmp_path: Path) -> None:
    config = yaml.safe_load(env.sandbox.kubeconfig_path.read_text())
    with socket_closed() as port:
        config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
        broken = tmp_path / "kubeconfig"
        broken.write_text(yaml.safe_dump(config))

        done = cli("plan", "--repo", str(env.repo), "--kubeconfig", str(broken))

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("reconciler plan: list proxmoxclusters: ")
    assert "Connection refused" in done.stderr.splitlines()[-1]


class socket_closed:
    """A localhost port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        return None


# -- formats -----------------------------------------------------------------------------------

def test_plan_markdown_has_a_details_block_per_changed_object_and_an_interface_table(env: ReconcileEnv) -> None:
    env.apply()
    change_mtu(env, "worker-02", 8000)
    change_mtu(env, "worker-05", 1400)
    (env.repo / "nodes" / "worker-06.yaml").unlink()
    env.commit("two changes and a removal")

    done = cli("plan", *kube_args(env), "--format", "markdown")

    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert out.startswith(f"### multinic-reconciler plan for `{env.checkout().revision}`")
    assert "| 0 | 2 | 1 | 8 | 0 |" in out
    assert out.count("<details>") == out.count("</details>") == 3
    assert "<summary>~ <code>MultiNicNodeConfig/worker-02</code>: update</summary>" in out
    assert "<summary>- <code>MultiNicNodeConfig/worker-06</code>: delete</summary>" in out
    block = out[out.index("MultiNicNodeConfig/worker-02"):].split("</details>")[0]
    assert "Source: `nodes/worker-02.yaml`" in block
    assert "| interface | before | after |" in block
    row = next(line for line in block.splitlines() if line.startswith("| `storage0`"))
    assert "mtu 9000" in row.split("|")[2] and "mtu 8000" in row.split("|")[3]
    assert "| `spec.interfaces[storage0].mtu` | `9000` | `8000` |" in block
    assert "tenant0" not in block  # unchanged interfaces are left out


def test_plan_json_is_machine_readable(env: ReconcileEnv) -> None:
    env.apply()
    change_mtu(env, "worker-01", 8000)
    env.commit("mtu")

    done = cli("plan", *kube_args(env), "--format", "json")

    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["hasChanges"] is True
    assert body["revision"] == env.checkout().revision
    assert body["summary"] == {"create": 0, "update": 1, "delete": 0, "unchanged": 10, "blocked": 0}
    [update] = [c for c in body["changes"] if c["action"] == "update"]
    assert update["name"] == "worker-01" and update["source"] == "nodes/worker-01.yaml"
    assert {"path": "spec.interfaces[storage0].mtu", "before": 9000, "after": 8000} in update["fields"]


def test_plan_text_shows_each_field_change_and_blocked_files(env: ReconcileEnv) -> None:
    env.apply()
    change_mtu(env, "worker-01", 8000)
    path = env.repo / "nodes" / "worker-04.yaml"
    path.write_text(path.read_text().replace("bc:24:11:30:00:0e", "nonsense"))
    env.commit("one change, one broken file")

    done = cli("plan", *kube_args(env), "--output", str(env.repo.parent / "plan.txt"))

    # A blocked file is never a green "changes" run: exit 2, and the last line says which file.
    assert done.returncode == 2
    assert "~ MultiNicNodeConfig/worker-01  (update: changed in Git)" in done.stdout
    assert "    spec.interfaces[storage0].mtu: 9000 -> 8000" in done.stdout
    assert "! MultiNicNodeConfig/worker-04  (blocked: file is invalid; the live object is left unchanged)" \
        in done.stdout
    assert "nodes/worker-04.yaml" in done.stderr  # the validation report
    assert done.stderr.splitlines()[-1].startswith("reconciler plan: 1 error(s) in nodes/worker-04.yaml")
    # The blocked entry shows its error under it.
    blocked_at = done.stdout.index("! MultiNicNodeConfig/worker-04")
    assert "macAddress" in done.stdout[blocked_at:].splitlines()[1]
    assert (env.repo.parent / "plan.txt").read_text() == done.stdout


def test_plan_markdown_warns_when_the_prune_guard_trips(env: ReconcileEnv) -> None:
    env.apply()
    for name in NODES[:4]:
        (env.repo / "nodes" / f"{name}.yaml").unlink()
    env.commit("mass removal")

    cycle = env.plan()
    out = render.markdown(cycle.changes)

    assert "> [!WARNING]\n> prune guard: deleting 4 of 9 MultiNicNodeConfig objects (44%)" in out
    assert out.count("<summary>! <code>MultiNicNodeConfig/") == 4
    assert not cycle.changes.has_changes


# -- apply --once ------------------------------------------------------------------------------

def test_apply_once_prints_what_it_did_then_nothing_to_apply(env: ReconcileEnv) -> None:
    first = cli("apply", "--once", *kube_args(env))

    assert first.returncode == 0, first.stderr
    for name in NODES:
        assert f"MultiNicNodeConfig/{name} created" in first.stdout.splitlines()
    assert "ProxmoxCluster/pve-lab created" in first.stdout.splitlines()
    assert sorted(env.crs()) == NODES
    # No PVE answers here: the nodes that name a VM wait for their NIC check (nicCheck: enforce),
    # saying why; infra-01 names no VM and rolls out.
    assert [j["metadata"]["annotations"]["multinic.io/node-name"] for j in env.jobs()] == ["infra-01"]
    waiting = env.cr("worker-01")["status"]  # type: ignore[index]
    assert waiting["phase"] == "Pending"
    nics = next(c for c in waiting["conditions"] if c["type"] == "VMNicsMatch")
    assert (nics["status"], nics["reason"]) == ("Unknown", "ClusterNotVerified")
    assert "Secret pve-prod-api-token (spec.credentialsSecretRef) does not exist" in nics["message"]

    change_mtu(env, "worker-03", 8000)
    env.commit("mtu")
    second = cli("apply", "--once", *kube_args(env))
    assert second.returncode == 0
    assert "MultiNicNodeConfig/worker-03 updated" in second.stdout.splitlines()
    assert env.cr("worker-03")["spec"]["interfaces"][0]["mtu"] == 8000  # type: ignore[index]

    env.sandbox.request_log.clear()
    third = cli("apply", "--once", *kube_args(env))
    assert third.returncode == 0
    assert "Nothing to apply." in third.stdout
    assert [r for r in env.sandbox.request_log.writes()
            if r.resource in ("multinicnodeconfigs", "proxmoxclusters") and r.subresource != "status"] == []


def test_apply_once_with_namespace_writes_every_object_in_that_namespace(env: ReconcileEnv) -> None:
    """``--namespace`` overrides reconciler.yaml's namespace for every object written, not only
    for the requests (a CR naming one namespace sent to another is refused by the apiserver)."""
    env.sandbox.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "netops"}})

    done = cli("apply", "--once", "--namespace", "netops", *kube_args(env))

    assert done.returncode == 0, done.stdout + done.stderr
    moved = {o["metadata"]["name"] for o in env.sandbox.list(API_VERSION, NODE_KIND, "netops")}
    assert moved == set(NODES)
    assert env.crs() == {}  # nothing in reconciler.yaml's namespace
    jobs = env.sandbox.list("batch/v1", "Job", "netops")
    assert [j["metadata"]["annotations"]["multinic.io/node-name"] for j in jobs] == ["infra-01"]

    again = cli("plan", "--namespace", "netops", *kube_args(env))
    assert again.returncode == 0, again.stdout + again.stderr


def test_apply_once_exits_1_when_an_object_could_not_be_written(env: ReconcileEnv) -> None:
    env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", name="worker-02", status=422,
                              message="refused for the test", times=None)

    done = cli("apply", "--once", *kube_args(env))

    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if line.startswith("MultiNicNodeConfig/worker-02"))
    assert line.startswith("MultiNicNodeConfig/worker-02 FAILED: apply MultiNicNodeConfig/worker-02: 422")
    assert "MultiNicNodeConfig/worker-01 created" in done.stdout
