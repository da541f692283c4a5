"""No secret in any output, ever: marker strings are planted in every credential field, in every
malformed shape (the single-string ``user@realm!name=secret`` token, swapped tokenId/tokenSecret,
CR/LF inside a value, a wrong token secret, a wrong password, URL user info in apiEndpoint), then
validate, plan, apply --once and the loop with status write-back run for real (kube sandbox,
Proxmox sandboxes, a Git remote), and every output is scanned: CLI stdout/stderr, logs, the
custom resources and their status, Events, the read API, ``reconciler clusters``, and the Git
history the reconciler wrote."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from multinic_sandbox.harness.fleet import prepare
from multinic_sandbox.harness.kube_setup import cluster_yaml, put_secret
from multinic_sandbox.kube.server import KubeSandbox
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory

from reconciler import redact
from reconciler.apply.proxmox.api import handle
from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.loop.metrics import Metrics
from reconciler.loop.runner import LoopSettings, Runner
from reconciler.loop.wiring import StatusReporter
from reconciler.source.git import GitSource

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "multinic-system"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=User", "-c", "user.email=user@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def marker(n: int) -> str:
    return f"PLANTED{n}x{secrets.token_hex(6)}"


class World:
    def __init__(self, tmp_path: Path, sandboxes: SandboxFactory, kube: KubeSandbox) -> None:
        self.tmp = tmp_path
        self.kube_sandbox = kube
        self.markers: list[str] = []
        self.remote, self.user = tmp_path / "remote.git", tmp_path / "user"
        shapes: dict[str, Any] = {}

        def plant(n: int) -> str:
            value = marker(n)
            self.markers.append(value)
            return value

        m = [plant(i) for i in range(8)]
        shapes["single-string"] = {"tokenId": f"reconciler@pve!ci={m[0]}"}
        shapes["single-string-both"] = {"tokenId": f"reconciler@pve!ci={m[1]}", "tokenSecret": m[1]}
        shapes["swapped"] = {"tokenId": f"{m[2]}-4b1c-9d2e-{m[2][-8:]}", "tokenSecret": "reconciler@pve!ci"}
        shapes["crlf"] = {"tokenId": f"reconciler@pve!ci\r\n{m[3]}", "tokenSecret": m[4]}
        shapes["wrong-secret"] = None  # a valid token id of the sandbox, a wrong secret: the server says 401
        shapes["wrong-password"] = {"username": "root@pam", "password": f"{m[5]}\r\n"}
        (self.user / "clusters").mkdir(parents=True)
        (self.user / "nodes").mkdir()
        self.pves = {}
        for name, data in shapes.items():
            pve = sandboxes({"cluster": name, "nodes": [{"name": f"{name}-n1"}]})
            self.pves[name] = pve
            if data is None:
                data = {"tokenId": pve.token_id, "tokenSecret": m[6]}
            self.__dict__.setdefault("secret_data", {})[f"{name}-creds"] = data
            (self.user / "clusters" / f"{name}.yaml").write_text(
                cluster_yaml(name, pve.url, credentials_secret=f"{name}-creds", insecure_skip_verify=True))
        # URL user info in Git (the user committed it, and it is refused): never echoed further.
        (self.user / "clusters" / "userinfo.yaml").write_text(cluster_yaml(
            "userinfo", f"https://root%40pam:{m[7]}@pve-userinfo.example.net:8006", credentials_secret="x"))
        (self.user / "nodes" / "node-01.yaml").write_text(
            "apiVersion: multinic.io/v1alpha1\nkind: MultiNicNodeConfig\nmetadata:\n  name: node-01\n"
            "spec:\n  osFamily: ubuntu\n  interfaces:\n    - name: storage0\n"
            "      macAddress: \"02:00:00:00:00:01\"\n      addresses: [10.9.0.1/16]\n")
        git("init", "--bare", "-q", str(self.remote))
        git("init", "-q", cwd=self.user)
        git("add", "-A", cwd=self.user)
        git("commit", "-q", "-m", "clusters with bad credentials", cwd=self.user)
        git("push", "-q", str(self.remote), "HEAD:main", cwd=self.user)
        self.user_commits = set(git("rev-list", "HEAD", cwd=self.user).splitlines())
        prepare(kube, validate_repo(self.user).desired, namespace=NAMESPACE)
        api = kube.api_client()
        for secret, data in self.secret_data.items():
            put_secret(api, NAMESPACE, secret, data)
        self.outputs: dict[str, str] = {}

    def kube(self) -> Kube:
        return Kube(self.kube_sandbox.api_client(), NAMESPACE)

    def cli(self, label: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MULTINIC_")},
               "KUBECONFIG": "", "NO_PROXY": "*", "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                              timeout=180, env=env, cwd=self.tmp, check=False)
        self.outputs[f"{label} stdout"] = done.stdout
        self.outputs[f"{label} stderr"] = done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def leaks(self) -> list[str]:
        found = []
        for label, text in self.outputs.items():
            for value in self.markers:
                if any(form in text for form in redact.forms(value) | {value}):
                    found.append(f"{label}: {value}")
        return found


@pytest.fixture
def world(tmp_path: Path, pve_sandbox_factory: SandboxFactory) -> Iterator[World]:
    with KubeSandbox() as kube:
        yield World(tmp_path, pve_sandbox_factory, kube)


def test_planted_credentials_never_reach_any_output_or_the_git_history(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kubeconfig = str(world.kube_sandbox.kubeconfig_path)

    for fmt in ("text", "json", "junit", "github", "sarif"):
        done = world.cli(f"validate {fmt}", "validate", str(world.user), "--format", fmt)
        assert done.returncode == 1  # the user-info endpoint is refused
    world.cli("plan text", "plan", "--repo", str(world.user), "--kubeconfig", kubeconfig)
    world.cli("plan markdown", "plan", "--repo", str(world.user), "--kubeconfig", kubeconfig, "--format", "markdown")
    world.cli("plan json", "plan", "--repo", str(world.user), "--kubeconfig", kubeconfig, "--format", "json")
    world.cli("apply", "apply", "--once", "--repo", str(world.user), "--kubeconfig", kubeconfig)

    source = GitSource(world.remote.as_uri(), branch="main", cache_dir=world.tmp / "cache" / "source")
    metrics = Metrics()
    args = argparse.Namespace(repo=world.remote.as_uri(), branch="main", status_branch=None,
                              status_author_name="multinic-reconciler", status_author_email="r@example.net",
                              cache_dir=str(world.tmp / "cache"))
    runner = Runner(source, lambda ns: Kube(world.kube_sandbox.api_client(), ns),
                    LoopSettings(identity="markers", lease_namespace=NAMESPACE),
                    metrics=metrics, after_cycle=[StatusReporter(args, source, metrics)])
    for _ in range(3):
        assert runner.elector.try_acquire_or_renew()
        runner.cycle()

    kube = world.kube()
    clusters = kube.list_owned("ProxmoxCluster")
    failed = {c["metadata"]["name"] for c in clusters if c.get("status", {}).get("lastError")}
    assert failed == set(world.pves), "every planted shape was read and refused"
    world.outputs["custom resources"] = json.dumps(clusters + kube.list_owned("MultiNicNodeConfig"))
    world.outputs["events"] = json.dumps(world.kube_sandbox.list("v1", "Event", NAMESPACE))
    world.outputs["read API list"] = json.dumps(handle("GET", "/api/v1/clusters", kube))
    for name in world.pves:
        world.outputs[f"read API {name}"] = json.dumps(handle("GET", f"/api/v1/clusters/{name}", kube))
        world.cli(f"clusters get {name}", "clusters", "get", name, "--kubeconfig", kubeconfig)
    world.cli("clusters list", "clusters", "list", "--kubeconfig", kubeconfig)
    world.outputs["logs"] = "\n".join(r.getMessage() for r in caplog.records)

    ours = [c for c in git("--git-dir", str(world.remote), "rev-list", "main").splitlines()
            if c not in world.user_commits]
    assert ours, "the loop wrote status back to Git"
    for commit in ours:
        world.outputs[f"git {commit[:8]}"] = git("--git-dir", str(world.remote), "show", "--format=%B", commit)
    status_files = git("--git-dir", str(world.remote), "ls-tree", "-r", "--name-only", "main", "status/")
    assert "status/clusters/" in status_files

    assert world.leaks() == []
    # The messages still say what is wrong, in words.
    by_name = {c["metadata"]["name"]: c["status"]["lastError"] for c in clusters}
    assert "single-string form" in by_name["single-string"]
    assert "swapped" in by_name["swapped"]
    assert "line break" in by_name["crlf"]


def test_the_scan_would_see_a_planted_secret(world: World) -> None:
    """The scanner itself can fail: a value that is echoed is found."""
    world.outputs["echo"] = f"tokenId {world.markers[0]} is wrong"
    assert world.leaks() == [f"echo: {world.markers[0]}"]
