"""This repo's ``.pre-commit-hooks.yaml`` run by the real ``pre-commit`` (from the dev lock) in a
real config repo, through ``git commit``: a bad commit is refused, a good one lands, and a commit
that only deletes a file runs the hook too (never "(no files to check)Skipped").

The hook is taken field by field from ``.pre-commit-hooks.yaml`` into a ``repo: local`` entry with
``language: system`` (the ``reconciler`` of this test run): ``language: python`` would make
pre-commit build a virtualenv and install this project and its dependencies from the package
index on every run. Everything that decides *when* the hook runs and *what* it is given (``entry``,
``pass_filenames``, ``always_run``, ``files``, ``types``...) is the shipped definition.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_config_support import cluster, dump, node

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def shipped_hook() -> dict[str, Any]:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    return dict(hook)


class ConfigRepo:
    def __init__(self, root: Path, hook: dict[str, Any]) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PRE_COMMIT_HOME": str(root.parent / "pre-commit-home"),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.net",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.net",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        local = {**hook, "language": "system"}
        config = {"repos": [{"repo": "local", "hooks": [local]}]}
        (root / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        done = self.run(str(BIN / "pre-commit"), "install")
        assert done.returncode == 0, done.stdout + done.stderr

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=180, check=False
        )

    def git(self, *args: str) -> str:
        done = self.run("git", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def write(self, rel: str, data: dict[str, Any]) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(data), encoding="utf-8")

    def commit(self, message: str) -> subprocess.CompletedProcess[str]:
        """``git commit`` as a person runs it: the installed hook runs pre-commit."""
        return self.run("git", "commit", "-q", "-m", message)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def config_repo(tmp_path: Path) -> ConfigRepo:
    repo = ConfigRepo(tmp_path / "config", shipped_hook())
    repo.write("clusters/pve-lab.yaml", cluster("pve-lab"))
    repo.write("nodes/worker-01.yaml", node("worker-01", 1, proxmox={"cluster": "pve-lab", "vmid": 101}))
    repo.write("nodes/worker-02.yaml", node("worker-02", 2, proxmox={"cluster": "pve-lab", "vmid": 102}))
    repo.git("add", "-A")
    first = repo.commit("a valid config repo")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "reconciler validate" in first.stdout + first.stderr and "Passed" in first.stdout + first.stderr
    return repo


def test_a_commit_that_only_deletes_a_cluster_file_runs_the_hook_and_is_refused(config_repo: ConfigRepo) -> None:
    before = config_repo.head()
    config_repo.git("rm", "-q", "clusters/pve-lab.yaml")
    done = config_repo.commit("delete the cluster")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "(no files to check)" not in out and "Skipped" not in out
    assert "reconciler validate" in out and "Failed" in out
    assert "cluster pve-lab does not exist (no clusters/pve-lab.yaml)" in out
    assert out.count("[cluster-ref]") == 2  # both nodes that refer to it
    assert config_repo.head() == before  # nothing was committed


def test_a_commit_that_breaks_a_node_is_refused_and_a_good_one_lands(config_repo: ConfigRepo) -> None:
    before = config_repo.head()
    bad = node("worker-02", 2, proxmox={"cluster": "pve-lab", "vmid": 102})
    bad["spec"]["interfaces"][0]["macAddress"] = "02:00:00:00:00:01"  # worker-01's
    config_repo.write("nodes/worker-02.yaml", bad)
    config_repo.git("add", "-A")
    refused = config_repo.commit("duplicate MAC")
    assert refused.returncode != 0 and "[duplicate-mac]" in refused.stdout + refused.stderr
    assert config_repo.head() == before

    good = node("worker-02", 2, proxmox={"cluster": "pve-lab", "vmid": 102})
    good["spec"]["interfaces"][0]["routes"][0]["metric"] = 20
    config_repo.write("nodes/worker-02.yaml", good)
    config_repo.git("add", "-A")
    landed = config_repo.commit("fix")
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert config_repo.head() != before


def test_the_hook_as_first_shipped_skipped_the_delete_only_commit(tmp_path: Path) -> None:
    """The same run with the first shipped definition (a ``files:`` filter, no ``always_run``)
    shows what the test above guards against."""
    old = {k: v for k, v in shipped_hook().items() if k != "always_run"}
    old["files"] = r"^(nodes/|clusters/|reconciler\.ya?ml$)"
    repo = ConfigRepo(tmp_path / "config", old)
    repo.write("clusters/pve-lab.yaml", cluster("pve-lab"))
    repo.write("nodes/worker-01.yaml", node("worker-01", 1, proxmox={"cluster": "pve-lab", "vmid": 101}))
    repo.git("add", "-A")
    assert repo.commit("valid").returncode == 0
    repo.git("rm", "-q", "clusters/pve-lab.yaml")
    done = repo.commit("delete the cluster")
    assert done.returncode == 0 and "(no files to check)Skipped" in done.stdout + done.stderr
