"""End to end through Git: a merged commit is applied and reported back into the repo, a quiet
cycle commits nothing, and a remote that is unreachable for three cycles loses nothing."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest
from multinic_sandbox.harness.fleet import prepare
from multinic_sandbox.harness.fleet import write_config_repo as write_repo
from multinic_sandbox.kube.server import KubeSandbox
from test_loop_leader import NAMESPACE

from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.loop.metrics import Metrics
from reconciler.loop.runner import LoopSettings, Runner
from reconciler.loop.wiring import StatusReporter
from reconciler.source.git import GitSource

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=User", "-c", "user.email=user@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


@pytest.fixture
def world(tmp_path):
    remote, user = tmp_path / "remote.git", tmp_path / "user"
    git("init", "--bare", "-q", str(remote))
    write_repo(user, 3)
    git("init", "-q", cwd=user)
    git("add", "-A", cwd=user)
    git("commit", "-q", "-m", "three nodes", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    with KubeSandbox() as sb:
        prepare(sb, validate_repo(user).desired, namespace=NAMESPACE)
        source = GitSource(remote.as_uri(), branch="main", cache_dir=tmp_path / "cache" / "source")
        metrics = Metrics()
        args = argparse.Namespace(repo=remote.as_uri(), branch="main", status_branch=None,
                                  status_author_name="multinic-reconciler", status_author_email="r@example.net",
                                  cache_dir=str(tmp_path / "cache"))
        runner = Runner(source, lambda ns: Kube(sb.api_client(), ns),
                        LoopSettings(identity="e2e", lease_namespace=NAMESPACE),
                        metrics=metrics, after_cycle=[StatusReporter(args, source, metrics)])
        assert runner.elector.try_acquire_or_renew()
        yield sb, runner, remote, user


def cycle(runner: Runner) -> bool:
    """One cycle as the loop runs it: the leader renews its Lease, then reconciles."""
    assert runner.elector.try_acquire_or_renew()
    return runner.cycle()


def settle(sb: KubeSandbox, runner: Runner, seconds: float = 90.0) -> None:
    """Cycle until nothing is in flight; node Jobs run the real agent, which takes a moment each."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        in_flight = cycle(runner)
        if not in_flight:
            return
        time.sleep(0.3)
    last = runner.last_rollout
    states = {n: (s.state, s.message) for n, s in last.nodes.items()} if last is not None else {}
    raise AssertionError(f"rollout did not settle: {states}")


def remote_log(remote: Path) -> list[str]:
    return git("--git-dir", str(remote), "log", "--format=%an|%s", "main").splitlines()


def test_a_merged_commit_is_applied_and_reported_and_a_quiet_cycle_commits_nothing(world):
    sb, runner, remote, user = world
    settle(sb, runner)
    cycle(runner)  # the cycle after the rollout settled writes the final states
    log = remote_log(remote)
    assert log[0].startswith("multinic-reconciler|status: 3 ready") and log[0].endswith("[skip ci]")
    readme = git("--git-dir", str(remote), "show", "main:status/README.md")
    assert "Every node is Ready." in readme and "All 3 nodes: [nodes/README.md](nodes/README.md)" in readme
    table = git("--git-dir", str(remote), "show", "main:status/nodes/README.md")
    assert table.count("| Ready |") == 3
    before = remote_log(remote)
    requests_before = len(sb.request_log.records)
    cycle(runner)
    assert remote_log(remote) == before  # nothing changed: no commit
    quiet = sb.request_log.records[requests_before:]
    assert not [r for r in quiet if r.verb in ("create", "update", "patch", "delete") and r.resource != "leases"]

    node = user / "nodes" / "node-01.yaml"
    git("pull", "-q", str(remote), "main", cwd=user)
    node.write_text(node.read_text().replace("mtu: 9000", "mtu: 1500"))
    git("commit", "-q", "-am", "node-01: MTU 1500", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    settle(sb, runner)
    cycle(runner)
    cr = sb.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "node-01", namespace=NAMESPACE)
    assert cr["spec"]["interfaces"][0]["mtu"] == 1500
    user_commit = git("rev-parse", "HEAD", cwd=user)
    assert cr["status"]["appliedRevision"] == user_commit
    log = remote_log(remote)
    assert "User|node-01: MTU 1500" in log  # the user's commit is kept, ours on top
    assert log.index("User|node-01: MTU 1500") > 0 and log[0].startswith("multinic-reconciler|status:")


def test_an_unreachable_remote_for_three_cycles_keeps_everything_and_then_recovers(world, tmp_path):
    sb, runner, remote, user = world
    settle(sb, runner)
    hidden = tmp_path / "hidden.git"
    remote.rename(hidden)
    for _ in range(3):
        cycle(runner)  # never raises, never treats "cannot read" as "everything deleted"
    assert len(sb.list("multinic.io/v1alpha1", "MultiNicNodeConfig", NAMESPACE)) == 3
    assert runner.metrics.errors.labels("git")._value.get() >= 3
    hidden.rename(remote)
    node = user / "nodes" / "node-02.yaml"
    git("pull", "-q", str(remote), "main", cwd=user)
    node.write_text(node.read_text().replace("mtu: 9000", "mtu: 4000"))
    git("commit", "-q", "-am", "node-02: MTU 4000", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    settle(sb, runner)
    cr = sb.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "node-02", namespace=NAMESPACE)
    assert cr["spec"]["interfaces"][0]["mtu"] == 4000


def test_the_demo_runs_the_whole_flow_and_leaves_the_remote_for_inspection(tmp_path):
    done = subprocess.run([sys.executable, "-m", "reconciler", "demo", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for expected in ("Plan for revision", "cycle  1", "worker-03: failed", "VM NIC check, worker-02",
                     "cluster pve-prod: Ready", "webhook POST /hooks/git -> 202", "[6/6]"):
        assert expected in out, expected
    log = remote_log(tmp_path / "remote.git")
    assert any(line.startswith("Demo User|worker-01: storage MTU 8000") for line in log)
    readme = git("--git-dir", str(tmp_path / "remote.git"), "show", "main:status/README.md")
    worker_02 = next(line for line in readme.splitlines() if line.startswith("| [worker-02]"))
    assert "VM NIC check: macAddress" in worker_02  # the wrong MAC on the VM reaches Git
    assert log[0].startswith("multinic-reconciler|status:")


_OPENED: list[str] = []
_WATCHING: list[bool] = [False]


def _audit(event: str, args: tuple) -> None:
    path = args[0] if args and isinstance(args[0], str) else ""
    if _WATCHING[0] and event == "open" and "/nodes/" in path and "/status/" not in path:
        _OPENED.append(path)


sys.addaudithook(_audit)  # observes opens (cannot be removed; inert unless a test is watching)


def test_a_quiet_cycle_reuses_the_validation_of_an_unchanged_commit_and_a_new_commit_is_read_again(world):
    sb, runner, remote, user = world
    settle(sb, runner)
    _OPENED.clear()
    _WATCHING[0] = True
    try:
        cycle(runner)
        quiet = list(_OPENED)
        node = user / "nodes" / "node-00.yaml"
        git("pull", "-q", str(remote), "main", cwd=user)
        node.write_text(node.read_text().replace("mtu: 9000", "mtu: 7000"))
        git("commit", "-q", "-am", "node-00: MTU 7000", cwd=user)
        git("push", "-q", str(remote), "HEAD:main", cwd=user)
        _OPENED.clear()
        cycle(runner)
        changed = list(_OPENED)
    finally:
        _WATCHING[0] = False
    assert quiet == []  # same commit: no config file read again
    assert any(path.endswith("node-00.yaml") for path in changed)
    cr = sb.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "node-00", namespace=NAMESPACE)
    assert cr["spec"]["interfaces"][0]["mtu"] == 7000


def test_a_quiet_cycle_renders_and_asks_git_nothing_and_a_resync_restores_a_hand_edited_report(world):
    sb, runner, remote, user = world
    settle(sb, runner)
    cycle(runner)
    reporter = runner.after_cycle[0]
    skipped, head = reporter.skipped, git("--git-dir", str(remote), "rev-parse", "main")
    cycle(runner)
    assert reporter.skipped == skipped + 1  # same objects, same revision: no render, no fetch
    assert git("--git-dir", str(remote), "rev-parse", "main") == head

    # Someone edits one report on the remote; the periodic resync writes it back, and only it.
    git("pull", "-q", str(remote), "main", cwd=user)
    report = user / "status" / "nodes" / "node-01.yaml"
    original = report.read_text()
    report.write_text(original.replace("phase: Ready", "phase: Failed"))
    git("commit", "-q", "-am", "hand edit", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    reporter.resync = 0.0
    cycle(runner)
    assert git("--git-dir", str(remote), "show", "main:status/nodes/node-01.yaml") + "\n" == original
    touched = git("--git-dir", str(remote), "diff-tree", "--no-commit-id", "--name-only", "-r", "main~1", "main")
    assert touched.splitlines() == ["status/nodes/node-01.yaml"]
