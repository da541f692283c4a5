"""status/ in Git tells the truth: it starts with the repo-level state (attempted vs applied
revision, validation with the blocked files' diagnostics, why a rollout is not done), reports an
invalid reconciler.yaml instead of skipping, and commits at most once per status.minInterval
during a rollout."""

from __future__ import annotations

import argparse
import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from multinic_sandbox.harness.fleet import prepare
from multinic_sandbox.harness.fleet import write_config_repo as write_repo
from multinic_sandbox.kube.node_model import fail
from multinic_sandbox.kube.server import KubeSandbox

from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.loop.metrics import Metrics
from reconciler.loop.runner import LoopSettings, Runner
from reconciler.loop.wiring import StatusReporter
from reconciler.source.git import GitSource

NAMESPACE = "multinic-system"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=User", "-c", "user.email=user@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


@dataclass
class World:
    sandbox: KubeSandbox
    runner: Runner
    remote: Path
    user: Path

    def cycle(self) -> bool:
        assert self.runner.elector.try_acquire_or_renew()
        return self.runner.cycle()

    def settle(self, seconds: float = 240.0) -> None:
        """Cycle until the rollout is over; bounded by time, not cycles (each Job runs the real
        agent in a pod, so how many cycles a batch takes depends on the machine's load)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.cycle():
                return
            time.sleep(0.2)
        raise AssertionError(f"rollout did not settle within {seconds:.0f}s")

    def push(self, message: str, edit: dict[str, str]) -> str:
        git("pull", "-q", str(self.remote), "main", cwd=self.user)
        for path, text in edit.items():
            (self.user / path).write_text(text)
        git("commit", "-q", "-am", message, cwd=self.user)
        git("push", "-q", str(self.remote), "HEAD:main", cwd=self.user)
        return git("rev-parse", "HEAD", cwd=self.user)

    def readme(self) -> str:
        return git("--git-dir", str(self.remote), "show", "main:status/README.md")

    def status_commits(self) -> int:
        log = git("--git-dir", str(self.remote), "log", "--format=%an", "main").splitlines()
        return sum(1 for author in log if author == "multinic-reconciler")


def make_world(tmp_path: Path, nodes: int, *, settings: str = "", max_parallel: int = 2,
               in_process: bool = False) -> Iterator[World]:
    remote, user = tmp_path / "remote.git", tmp_path / "user"
    git("init", "--bare", "-q", str(remote))
    write_repo(user, nodes, max_parallel=max_parallel)
    if settings:
        path = user / "reconciler.yaml"
        path.write_text(path.read_text() + settings)
    git("init", "-q", cwd=user)
    git("add", "-A", cwd=user)
    git("commit", "-q", "-m", "nodes", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    with KubeSandbox() as sb:
        prepare(sb, validate_repo(user).desired, namespace=NAMESPACE, in_process=in_process)
        yield World(sb, loop(sb, remote, tmp_path / "cache"), remote, user)


def loop(sb: KubeSandbox, remote: Path, cache: Path) -> Runner:
    """A reconciler process (its own cache directory, as a new pod has) with the status write-back."""
    source = GitSource(remote.as_uri(), branch="main", cache_dir=cache / "source")
    metrics = Metrics()
    args = argparse.Namespace(repo=remote.as_uri(), branch="main", status_branch=None,
                              status_author_name="multinic-reconciler", status_author_email="r@example.net",
                              cache_dir=str(cache))
    return Runner(source, lambda ns: Kube(sb.api_client(), ns),
                  LoopSettings(identity="status", lease_namespace=NAMESPACE), metrics=metrics,
                  after_cycle=[StatusReporter(args, source, metrics)])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, 3)


def test_the_readme_starts_with_the_repo_state_and_a_settled_commit_is_applied(world: World) -> None:
    world.settle()
    head = git("rev-parse", "HEAD", cwd=world.user)
    lines = world.readme().splitlines()
    assert lines[0] == "# Reconciler status"
    opening = [line for line in lines[:12] if line]
    assert opening[2] == f"Attempted revision: `{head}`"
    assert opening[3] == f"Applied revision: `{head}` (= attempted: fully applied)"
    assert opening[4] == "Validation: ok (4 files)"
    assert opening[5].startswith("Rollout: complete: 3 applied")


def test_an_invalid_node_file_is_blocked_in_the_readme_and_attempted_differs_from_applied(world: World) -> None:
    world.settle()
    good = git("rev-parse", "HEAD", cwd=world.user)
    path = world.user / "nodes" / "node-01.yaml"
    bad = world.push("node-01: MTU 90000", {"nodes/node-01.yaml": path.read_text().replace("mtu: 9000", "mtu: 90000")})
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "mtu: 90000" in text)
    world.cycle()

    readme = world.readme()
    assert f"Attempted revision: `{bad}`" in readme
    assert f"Applied revision: `{good}` (≠ attempted" in readme
    assert "Validation: failed: 1 error(s) in 1 file(s), blocked" in readme
    blocked = readme.split("## Blocked files", 1)[1].split("## Nodes", 1)[0]
    assert f"nodes/node-01.yaml:{line}:" in blocked and "mtu" in blocked
    # The README lists the node in its own group (it is Ready, but its file is blocked) ...
    group = readme.split("#### Ready, file blocked (1)", 1)[1].split("####", 1)[0]
    row = next(r for r in group.splitlines() if r.startswith("| [node-01]"))
    assert f"`{good[:12]}`" in row and "file blocked:" in row and f"nodes/node-01.yaml:{line}:" in row
    # ... and the full node table (paged) gives its phase as Ready (blocked).
    page = git("--git-dir", str(world.remote), "show", "main:status/nodes/README.md")
    full = next(r for r in page.splitlines() if r.startswith("| [node-01]"))
    assert "| Ready (blocked) |" in full and "file blocked:" in full
    cr = world.sandbox.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "node-01", namespace=NAMESPACE)
    assert cr["spec"]["interfaces"][0]["mtu"] == 9000  # the live spec is kept
    assert cr["status"]["appliedRevision"] == good


def test_a_restarted_reconciler_keeps_the_applied_revision_the_last_status_recorded(world: World,
                                                                                     tmp_path: Path) -> None:
    world.settle()
    good = git("rev-parse", "HEAD", cwd=world.user)
    assert f"Applied revision: `{good}` (= attempted" in world.readme()
    path = world.user / "nodes" / "node-02.yaml"
    bad = world.push("node-02: MTU 90000", {"nodes/node-02.yaml": path.read_text().replace("mtu: 9000", "mtu: 90000")})
    world.runner.close()
    world.runner = loop(world.sandbox, world.remote, tmp_path / "new-pod")  # nothing in memory, an empty cache
    world.cycle()
    readme = world.readme()
    assert f"Attempted revision: `{bad}`" in readme
    assert f"Applied revision: `{good}` (≠ attempted" in readme  # read back from the last status commit
    # The checkout it validated is the configuration only: the status the reconciler wrote is not its input.
    checkout = world.runner.source.checkout
    assert checkout is not None and checkout.revision == bad
    assert (checkout.path / "nodes" / "node-02.yaml").is_file() and not (checkout.path / "status").exists()


def test_the_blocked_list_is_capped_with_a_count(tmp_path: Path) -> None:
    for world in make_world(tmp_path, 30):
        world.settle()
        edits = {}
        for i in range(25):
            path = world.user / "nodes" / f"node-{i:02d}.yaml"
            edits[f"nodes/node-{i:02d}.yaml"] = path.read_text().replace("mtu: 9000", "mtu: 90000")
        world.push("25 bad files", edits)
        world.cycle()
        blocked = world.readme().split("## Blocked files", 1)[1].split("## Nodes", 1)[0]
        items = [line for line in blocked.splitlines() if line.startswith("- ")]
        assert len(items) == 21 and items[-1].startswith("- … and 5 more")
        assert "Validation: failed: 25 error(s) in 25 file(s)" in world.readme()


def test_an_invalid_reconciler_yaml_is_reported_not_skipped(world: World) -> None:
    world.settle()
    settings = (world.user / "reconciler.yaml").read_text()
    bad = world.push("break settings", {"reconciler.yaml": settings.replace("maxParallel: 2", "maxParallel: -1")})
    world.cycle()
    readme = world.readme()
    assert f"Attempted revision: `{bad}`" in readme
    assert "Validation: failed: reconciler.yaml is invalid, nothing is applied" in readme
    assert "reconciler.yaml:" in readme.split("## Blocked files", 1)[1]


def test_a_stalled_rollout_says_why(tmp_path: Path) -> None:
    for world in make_world(tmp_path, 4):
        world.sandbox.node_model.script("node-01", fail("agent failed"))
        text = (world.user / "reconciler.yaml").read_text()
        revision = world.push("one failure stalls",
                              {"reconciler.yaml": text.replace("maxFailures: 5", "maxFailures: 1")})
        # Until the rollout has stopped: stalled, and the Jobs already running have finished (while
        # any runs, status commits keep to minInterval, 60 s by default). Bounded by time: real
        # agent pods take longer on a loaded machine.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            world.cycle()
            rollout = world.runner.last_rollout
            if rollout and rollout.stalled and not rollout.in_flight:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the rollout did not stop within 180 s")
        world.cycle()
        readme = world.readme()
        # The stall names the rollout it belongs to (its revision): a new revision starts a new budget.
        assert (f"Rollout: stalled: rollout of revision {revision[:12]} stopped after 1 failed node(s) "
                "(maxFailures 1)") in readme
        assert "(≠ attempted" in readme or "Applied revision: none recorded yet" in readme


def test_status_commits_during_a_rollout_are_bounded_by_min_interval(tmp_path: Path) -> None:
    interval = 2
    for world in make_world(tmp_path, 16, settings=f"  status:\n    minInterval: {interval}s\n"):
        # Jobs run the real agent on fake roots (set by the world), each pod 0.5 s: 8 batches of 2.
        before = world.status_commits()
        started = time.monotonic()
        cycles = 0
        for _ in range(200):
            cycles += 1
            if not world.cycle():
                break
            time.sleep(0.1)
        duration = time.monotonic() - started
        commits = world.status_commits() - before
        assert duration > 2 * interval, duration  # a rollout long enough to need the bound
        assert 2 <= commits <= math.ceil(duration / interval) + 1, (commits, duration, cycles)
        assert commits < cycles / 2
        # The end of the rollout is always reported: every node Ready in Git.
        readme = world.readme()
        assert "Every node is Ready." in readme and "Rollout: complete: 16 applied" in readme
        page = git("--git-dir", str(world.remote), "show", "main:status/nodes/README.md")
        assert page.count("| Ready |") == 16


def test_a_200_node_rollout_with_max_parallel_5_is_bounded_by_min_interval(tmp_path: Path) -> None:
    """The issue's figure: 200 nodes, maxParallel 5, every Job the real agent on a fake root; the
    status commits of the whole rollout stay within ceil(duration / minInterval) + 1. The agent
    runs in-process (200 podrun starts would cost minutes; the Job spec is tested elsewhere)."""
    interval = 5
    for world in make_world(tmp_path, 200, max_parallel=5, in_process=True,
                            settings=f"  status:\n    minInterval: {interval}s\n"):
        before = world.status_commits()
        started = time.monotonic()
        cycles, peak = 0, 0
        deadline = started + 900
        while time.monotonic() < deadline:
            cycles += 1
            in_flight = world.cycle()
            rollout = world.runner.last_rollout
            peak = max(peak, rollout.running if rollout else 0)
            if not in_flight:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the 200-node rollout did not finish within 900 s")
        duration = time.monotonic() - started
        commits = world.status_commits() - before
        assert peak == 5  # the rollout used its slots and never more
        assert duration > 3 * interval, duration
        assert 2 <= commits <= math.ceil(duration / interval) + 1, (commits, duration, cycles)
        assert commits < cycles / 3, (commits, cycles)  # not one commit per cycle
        readme = world.readme()
        assert "Every node is Ready." in readme and "Rollout: complete: 200 applied" in readme
        page = git("--git-dir", str(world.remote), "show", "main:status/nodes/README.md")
        assert page.count("| Ready |") == 200
