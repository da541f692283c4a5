"""Invalid input is blocked, never acted on: every layout refusal, a refused ``reconciler.yaml``,
a duplicate ``nodeName``, an explicit YAML tag, YAML 1.1 numbers. Each case is applied with
``apply_once`` against the kube sandbox after the example repo was applied once, and must leave
every live object (spec, labels, annotations) as it was, delete nothing and start no Job."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.kube.node_model import succeed
from support.reconcile import (
    CLUSTER_KIND,
    EXAMPLE_REPO,
    NODE_KIND,
    ReconcileEnv,
    git,
    git_repo,
    start_env,
)

from reconciler.plan.changeset import Action


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReconcileEnv]:
    repo = git_repo(EXAMPLE_REPO, tmp_path_factory.mktemp("never-acts") / "repo")
    with start_env(repo, jobs="manual") as env:
        _settle(env)
        yield env


def _settle(env: ReconcileEnv) -> None:
    """Apply until the rollout of the example repo is complete (every node Job succeeded)."""
    env.sandbox.node_model.set_default(succeed())
    jobs: set[str] = set()
    for _ in range(30):
        cycle = env.apply()
        assert cycle.validation.ok and not cycle.failed
        now = {j["metadata"]["name"] for j in env.jobs()}
        if now == jobs and not env.active_jobs():
            return
        jobs = now
        env.sandbox.clock.advance(10.0)
        env.sandbox.jobs.step()
    raise AssertionError("the example repo never settled")


def _live(env: ReconcileEnv) -> dict[tuple[str, str], Any]:
    out = {}
    for kind in (NODE_KIND, CLUSTER_KIND):
        for name, obj in env.crs(kind).items():
            meta = obj["metadata"]
            out[(kind, name)] = (obj["spec"], meta.get("labels"), meta.get("annotations"))
    return out


@pytest.fixture
def repo(env: ReconcileEnv) -> Iterator[Path]:
    yield env.repo
    git(env.repo, "checkout", "-q", "--", ".")
    git(env.repo, "clean", "-q", "-fdx")  # removes what a case added: dirs, symlinks, FIFOs
    for leftover in env.repo.glob("*"):
        if leftover.is_symlink():
            leftover.unlink()


def _untouched(env: ReconcileEnv, change: Callable[[Path], None]) -> Any:
    before, jobs_before = _live(env), {j["metadata"]["name"] for j in env.jobs()}
    env.sandbox.request_log.clear()
    change(env.repo)
    cycle = env.apply()
    deletes = [w for w in env.writes() if w[0] == "delete"]
    assert deletes == [], deletes
    assert _live(env) == before
    assert {j["metadata"]["name"] for j in env.jobs()} == jobs_before
    assert not cycle.changes.by_action(Action.DELETE)
    return cycle


def _move(rel: str, to: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / to).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / rel, root / to)
    return change


def _replace_with(rel: str, how: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / rel
        content = path.read_bytes()
        path.unlink()
        if how == "dir":
            path.mkdir()
        elif how == "fifo":
            os.mkfifo(path)
        elif how == "symlink-status":
            (root / "status").mkdir(exist_ok=True)
            (root / "status" / path.name).write_bytes(content)
            path.symlink_to(Path("..") / "status" / path.name)
        elif how == "symlink-outside":
            outside = root.parent / f"outside-{path.name}"
            outside.write_bytes(content)
            path.symlink_to(outside)
    return change


def _behind_folder_symlink(root: Path) -> None:
    (root / "shared").mkdir()
    os.rename(root / "nodes" / "worker-01.yaml", root / "shared" / "worker-01.yaml")
    (root / "nodes" / "team").symlink_to(Path("..") / "shared")


LAYOUT_CASES = {
    "node renamed with capitals": _move("nodes/worker-01.yaml", "nodes/Worker-01.yaml"),
    "node moved into clusters/": _move("nodes/worker-01.yaml", "clusters/worker-01.yaml"),
    "node replaced by a symlink into status/": _replace_with("nodes/worker-01.yaml", "symlink-status"),
    "node replaced by a directory": _replace_with("nodes/worker-01.yaml", "dir"),
    "node replaced by a FIFO": _replace_with("nodes/worker-01.yaml", "fifo"),
    "node with an upper-case suffix": _move("nodes/worker-01.yaml", "nodes/worker-01.YAML"),
    "cluster renamed away from its name": _move("clusters/pve-lab.yaml", "clusters/pve-lab-old.yaml"),
    "node moved behind a folder symlink": _behind_folder_symlink,
}


@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_a_layout_refusal_blocks_its_object_and_leaves_everything_live_untouched(
    env: ReconcileEnv, repo: Path, case: str
) -> None:
    cycle = _untouched(env, LAYOUT_CASES[case])
    assert not cycle.validation.ok, "a refusal is an error, not a warning"
    blocked = {c.name for c in cycle.changes.by_action(Action.BLOCKED)}
    assert blocked, cycle.changes


SETTINGS_CASES = {
    "a directory": _replace_with("reconciler.yaml", "dir"),
    "renamed Reconciler.yaml": _move("reconciler.yaml", "Reconciler.yaml"),
    "a symlink out of the repo": _replace_with("reconciler.yaml", "symlink-outside"),
}


@pytest.mark.parametrize("case", sorted(SETTINGS_CASES))
def test_a_refused_settings_file_blocks_everything_instead_of_falling_back_to_defaults(
    env: ReconcileEnv, repo: Path, case: str
) -> None:
    settings = yaml.safe_load((repo / "reconciler.yaml").read_text())
    settings["spec"]["prune"]["enabled"] = False
    (repo / "reconciler.yaml").write_text(yaml.safe_dump(settings))

    def change(root: Path) -> None:
        (root / "nodes" / "worker-06.yaml").unlink()  # removed in the same commit
        SETTINGS_CASES[case](root)

    cycle = _untouched(env, change)
    assert cycle.validation.desired.settings_blocked
    assert not cycle.changes.by_action(Action.UPDATE) and not cycle.changes.by_action(Action.CREATE)


def test_a_node_name_typo_blocks_both_files_and_no_job_carries_the_other_files_interfaces(
    env: ReconcileEnv, repo: Path
) -> None:
    path = repo / "nodes" / "worker-01.yaml"
    path.write_text(path.read_text().replace("spec:\n", "spec:\n  nodeName: worker-02\n", 1))

    cycle = _untouched(env, lambda root: None)
    blocked = {c.name for c in cycle.changes.by_action(Action.BLOCKED)}
    assert {"worker-01", "worker-02"} <= blocked


@pytest.mark.parametrize("tag", ["!!int abc", "!!map abc", "!!seq abc", "!!str {a: 1}", "!!bool maybe",
                                 "!!float x"])
def test_an_explicit_yaml_tag_is_a_diagnostic_on_its_file_while_the_other_files_apply(
    env: ReconcileEnv, repo: Path, tag: str
) -> None:
    bad = repo / "nodes" / "worker-01.yaml"
    bad.write_text(bad.read_text().replace("osFamily: ubuntu", f"osFamily: {tag}"))
    good = repo / "nodes" / "worker-02.yaml"
    good.write_text(good.read_text().replace("rack: rack-a", "rack: rack-z", 1))
    before = _live(env)[(NODE_KIND, "worker-01")]

    cycle = env.apply()

    errors = cycle.validation.errors
    assert {d.path for d in errors} == {"nodes/worker-01.yaml"}
    assert "tag" in errors[0].message and errors[0].line is not None
    assert _live(env)[(NODE_KIND, "worker-01")] == before
    assert (env.cr("worker-02") or {})["metadata"]["labels"]["rack"] == "rack-z"
    good.write_text(good.read_text().replace("rack: rack-z", "rack: rack-a", 1))
    env.apply()


@pytest.mark.parametrize(("written", "expected"), [("01500", 1500), ("2:30:00", None)])
def test_yaml_11_numbers_are_never_applied_with_another_value(
    env: ReconcileEnv, repo: Path, written: str, expected: int | None
) -> None:
    path = repo / "nodes" / "worker-03.yaml"
    text = path.read_text()
    assert "mtu: 9000" in text
    path.write_text(text.replace("mtu: 9000", f"mtu: {written}", 1))

    cycle = env.plan()

    change = next(c for c in cycle.changes.changes if c.name == "worker-03")
    if expected is None:
        assert change.action is Action.BLOCKED
        assert any(d.rule == "schema" for d in cycle.validation.errors)
    else:
        assert change.action is Action.UPDATE
        assert {f.after for f in change.fields} == {expected}
    assert any(d.rule == "yaml-1.1" and "quote it" in d.message for d in cycle.validation.diagnostics)


def test_a_symlink_loop_in_nodes_is_a_diagnostic_not_a_crash(env: ReconcileEnv, repo: Path) -> None:
    def change(root: Path) -> None:
        (root / "nodes" / "loop-a.yaml").symlink_to("loop-b.yaml")
        (root / "nodes" / "loop-b.yaml").symlink_to("loop-a.yaml")
        (root / "nodes" / "self").symlink_to(".")

    cycle = _untouched(env, change)
    assert {d.path for d in cycle.validation.errors} >= {"nodes/loop-a.yaml", "nodes/loop-b.yaml", "nodes/self"}


def test_directory_symlinks_both_ways_are_not_followed(tmp_path: Path) -> None:
    from reconciler.config.validation import validate_repo

    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, root)
    for i in range(4):
        (root / "nodes" / f"to-clusters-{i}").symlink_to(Path("..") / "clusters")
        (root / "clusters" / f"to-nodes-{i}").symlink_to(Path("..") / "nodes")

    result = validate_repo(root)

    assert len(result.files) == 12  # the real files only, no multiplication
    assert sum(d.rule == "symlink" for d in result.errors) == 8
    assert set(result.desired.held) == {NODE_KIND, CLUSTER_KIND}


def test_max_delete_percent_zero_deletes_nothing(tmp_path: Path) -> None:
    repo = git_repo(EXAMPLE_REPO, tmp_path / "repo")
    with start_env(repo, jobs="manual") as env:
        _settle(env)
        settings = yaml.safe_load((repo / "reconciler.yaml").read_text())
        settings["spec"]["prune"]["maxDeletePercent"] = 0
        (repo / "reconciler.yaml").write_text(yaml.safe_dump(settings))
        cycle = _untouched(env, lambda root: (root / "nodes" / "worker-06.yaml").unlink())
        assert [c.name for c in cycle.changes.by_action(Action.BLOCKED)] == ["worker-06"]


def test_apply_once_on_an_invalid_repo_exits_2(env: ReconcileEnv, repo: Path) -> None:
    import sys

    from support.reconcile import ROOT

    (repo / "nodes" / "worker-01.yaml").write_text("osFamily: !!int abc\n")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--once", "--repo", str(repo),
         "--kubeconfig", str(env.sandbox.kubeconfig_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MULTINIC_")}, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "nodes/worker-01.yaml" in done.stderr
    assert "Traceback" not in done.stderr
