"""Pinning the followed ref (tag, commit) and commit-signature verification, reached the way users
reach them: `reconciler plan` flags, `MULTINIC_*` env, `reconciler run`'s source and chart values."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_chart_support import MINIMAL_VALUES, container_env, manifests, one, render
from test_source_git_support import EXAMPLE, Remote, git

from reconciler.loop import cli as loop_cli
from reconciler.loop.wiring import build_source

pytest_plugins = ["test_source_git_support"]  # fixture: remote

NEW_NODE = "nodes/worker-99.yaml"


def plan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "plan", "--offline", "--format", "json", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL, check=False)


def planned_nodes(done: subprocess.CompletedProcess[str]) -> tuple[str, set[str]]:
    assert done.returncode in (0, 1), done.stderr
    out = json.loads(done.stdout)
    return out["revision"], {c["name"] for c in out["changes"] if c["kind"] == "MultiNicNodeConfig"}


@pytest.fixture
def tagged(remote: Remote) -> tuple[str, str]:
    """(v1 = the seed commit, tagged; main = one node more)."""
    v1 = remote.head()
    git("tag", "v1", v1, cwd=remote.clone)
    git("push", "--quiet", "origin", "refs/tags/v1", cwd=remote.clone)
    text = (EXAMPLE / "nodes" / "worker-01.yaml").read_text()
    node = yaml.safe_load(text)
    node["metadata"]["name"] = "worker-99"
    node["spec"]["nodeName"] = "worker-99"
    for index, iface in enumerate(node["spec"]["interfaces"]):
        iface["macAddress"] = f"02:99:00:00:00:{index:02x}"
        iface["addresses"] = [f"10.199.{index}.9/24"]
        iface.pop("routes", None)
    node["spec"].pop("proxmox", None)
    main = remote.commit({NEW_NODE: yaml.safe_dump(node, sort_keys=False)}, "Add worker-99")
    return v1, main


def test_plan_follows_the_branch_head_by_default(remote: Remote, tagged: tuple[str, str]) -> None:
    revision, nodes = planned_nodes(plan("--repo", remote.url))
    assert revision == tagged[1] and "worker-99" in nodes


def test_plan_by_tag_flag_or_env_reads_the_tagged_revision(remote: Remote, tagged: tuple[str, str]) -> None:
    for done in (plan("--repo", remote.url, "--tag", "v1"),
                 plan("--repo", remote.url, env={"MULTINIC_TAG": "v1"})):
        revision, nodes = planned_nodes(done)
        assert revision == tagged[0] and "worker-99" not in nodes and nodes


def test_plan_by_commit_reads_that_commit(remote: Remote, tagged: tuple[str, str]) -> None:
    revision, nodes = planned_nodes(plan("--repo", remote.url, "--commit", tagged[0]))
    assert revision == tagged[0] and "worker-99" not in nodes


def test_two_pins_or_a_pin_on_a_directory_are_refused_with_exit_2(remote: Remote, tmp_path: Path) -> None:
    both = plan("--repo", remote.url, "--tag", "v1", "--branch", "main")
    assert both.returncode == 2 and "one of branch, tag or commit" in both.stderr
    local = plan("--repo", str(EXAMPLE), "--tag", "v1")
    assert local.returncode == 2 and "applies to a Git URL" in local.stderr


def test_verify_signatures_refuses_an_unsigned_head_and_accepts_a_signed_one(remote: Remote, tmp_path: Path) -> None:
    key = tmp_path / "allowed"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(key)], check=True)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"ops@example.com {key.with_suffix('.pub').read_text()}")
    unsigned = plan("--repo", remote.url, "--verify-signatures", "head", "--allowed-signers", str(signers))
    assert unsigned.returncode == 2 and "is not signed by an allowed key" in unsigned.stderr
    signed = remote.commit({"reconciler.yaml": (EXAMPLE / "reconciler.yaml").read_text() + "# signed\n"},
                           "Signed change", sign_key=key)
    by_env = plan("--repo", remote.url, env={"MULTINIC_VERIFY_SIGNATURES": "head",
                                             "MULTINIC_ALLOWED_SIGNERS": str(signers)})
    assert planned_nodes(by_env)[0] == signed
    no_keys = plan("--repo", remote.url, "--verify-signatures", "head")
    assert no_keys.returncode == 2 and "--allowed-signers" in no_keys.stderr


def test_run_follows_the_tag_it_is_given(remote: Remote, tagged: tuple[str, str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    loop_cli.add_arguments(parser)
    args = parser.parse_args(["--repo", remote.url, "--tag", "v1", "--cache-dir", str(tmp_path / "cache")])
    result = build_source(args).poll()
    assert result.error is None and result.checkout is not None
    assert result.checkout.revision == tagged[0]
    assert not (result.checkout.path / NEW_NODE).exists()


def test_chart_values_reach_the_pins_and_the_signature_check() -> None:
    def env_of(git_values: dict[str, object]) -> dict[str, object]:
        return container_env(one(manifests({"git": {**MINIMAL_VALUES["git"], **git_values}}), "Deployment"))

    assert env_of({"tag": "v1.2.0"})["MULTINIC_TAG"] == "v1.2.0"
    assert env_of({"commit": "0123abcd"})["MULTINIC_COMMIT"] == "0123abcd"
    verified = manifests({"git": {**MINIMAL_VALUES["git"], "verify": {"mode": "head",
                                                                     "allowedSignersConfigMap": "signers"}}})
    deployment = one(verified, "Deployment")
    env = container_env(deployment)
    assert env["MULTINIC_VERIFY_SIGNATURES"] == "head"
    mounted = {m["mountPath"] for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert str(Path(str(env["MULTINIC_ALLOWED_SIGNERS"])).parent) in mounted
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "git-signers"]
    assert volume["configMap"]["name"] == "signers"


def test_chart_refuses_two_pins_and_head_without_signers() -> None:
    from test_chart_support import helm

    with pytest.raises(helm.HelmError, match=r"at most one of git\.branch, git\.tag and git\.commit"):
        render({"git": {**MINIMAL_VALUES["git"], "branch": "main", "tag": "v1"}})
    with pytest.raises(helm.HelmError, match="allowedSignersConfigMap is required"):
        render({"git": {**MINIMAL_VALUES["git"], "verify": {"mode": "head"}}})
