"""The kubectl commands an operator of this product types, run with the real kubectl against the
kube sandbox: each test is one row of the conformance table in sandbox/README.md.

The sandbox must answer them the way a real apiserver does (output, exit code, stored object).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from multinic_sandbox.kube.pytest_plugin import Kubectl
from multinic_sandbox.kube.server import KubeSandbox

REPO = Path(__file__).parent.parent
CRDS = REPO / "charts" / "multinic-reconciler" / "crds"
NS = "multinic-system"


def _secret_data(sandbox: KubeSandbox, name: str, namespace: str = NS) -> dict[str, str]:
    secret = sandbox.get("v1", "Secret", name, namespace)
    assert secret is not None, f"secret {name} missing"
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


# -- README / operations.md install section -----------------------------------------------------
def test_create_namespace(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    result = kubectl("create", "namespace", NS)
    assert result.stdout.strip() == f"namespace/{NS} created"
    assert kubectl("get", "ns", NS, "-o", "jsonpath={.status.phase}").stdout == "Active"
    again = kubectl("create", "namespace", NS, check=False)
    assert again.returncode == 1
    assert f'namespaces "{NS}" already exists' in again.stderr


def test_create_secret_generic_from_files(kubectl: Kubectl, kube_sandbox: KubeSandbox,
                                          tmp_path: Path) -> None:
    (tmp_path / "deploy-key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    (tmp_path / "known_hosts").write_text("git.example.net ssh-ed25519 AAAAC3Nza\n")
    kubectl("create", "namespace", NS)
    result = kubectl("-n", NS, "create", "secret", "generic", "multinic-git",
                     f"--from-file=ssh-privatekey={tmp_path / 'deploy-key'}",
                     f"--from-file=known_hosts={tmp_path / 'known_hosts'}")
    assert result.stdout.strip() == "secret/multinic-git created"
    assert _secret_data(kube_sandbox, "multinic-git") == {
        "ssh-privatekey": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        "known_hosts": "git.example.net ssh-ed25519 AAAAC3Nza\n"}
    table = kubectl("-n", NS, "get", "secret", "multinic-git").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table[1].split()[:3] == ["multinic-git", "Opaque", "2"]


def test_create_secret_generic_from_literal(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    kubectl("create", "namespace", NS)
    kubectl("-n", NS, "create", "secret", "generic", "multinic-git", "--from-literal=token=s3cr3t")
    assert _secret_data(kube_sandbox, "multinic-git") == {"token": "s3cr3t"}
    missing = kubectl("-n", "nowhere", "create", "secret", "generic", "x", "--from-literal=a=b",
                      check=False)
    assert missing.returncode == 1 and 'namespaces "nowhere" not found' in missing.stderr


def test_secret_string_data_is_merged_into_data(kubectl: Kubectl,
                                                kube_sandbox: KubeSandbox) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pve-prod-api-token"},
              "data": {"tokenId": base64.b64encode(b"old").decode()},
              "stringData": {"tokenId": "root@pam!ro", "tokenSecret": "x-y-z"}}
    kubectl("apply", "-f", "-", input=json.dumps(secret))
    stored = kube_sandbox.get("v1", "Secret", "pve-prod-api-token", "default")
    assert stored is not None and "stringData" not in stored
    assert _secret_data(kube_sandbox, "pve-prod-api-token", "default") == {
        "tokenId": "root@pam!ro", "tokenSecret": "x-y-z"}


def test_create_configmap_serviceaccount_and_job_generators(kubectl: Kubectl,
                                                            kube_sandbox: KubeSandbox) -> None:
    kubectl("create", "configmap", "settings", "--from-literal=interval=30s")
    assert kube_sandbox.get("v1", "ConfigMap", "settings", "default")["data"] == {  # type: ignore[index]
        "interval": "30s"}
    kubectl("create", "serviceaccount", "agent")
    assert kube_sandbox.get("v1", "ServiceAccount", "agent", "default") is not None
    kubectl("create", "job", "hello", "--image=busybox:1.36", "--", "true")
    job = kube_sandbox.get("batch/v1", "Job", "hello", "default")
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"], container["command"]) == (
        "hello", "busybox:1.36", ["true"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_install_section_of_the_readme_runs_unchanged(kubectl: Kubectl, kube_sandbox: KubeSandbox,
                                                      tmp_path: Path, monkeypatch: Any) -> None:
    """The README's Helm install commands, with the chart rendered by Helm's engine."""
    from tests.test_chart_support import crds, manifests

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Install with Helm", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in section.strip().splitlines()]
    (tmp_path / "deploy-key").write_text("key\n")
    (tmp_path / "known_hosts").write_text("host key\n")
    monkeypatch.chdir(tmp_path)
    kubectl.cwd = tmp_path
    for command in commands:
        if command[0] == "kubectl":
            kubectl(*command[1:])
        else:  # helm install: CRDs first, then the templates (Helm's order)
            assert command[:2] == ["helm", "install"]
            values = {"git": {"url": command[command.index("--set") + 1].split("=", 1)[1],
                              "auth": {"method": "ssh", "existingSecret": "multinic-git"}}}
            kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds()))
            kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all(manifests(values)))
    assert _secret_data(kube_sandbox, "multinic-git") == {"ssh-privatekey": "key\n",
                                                         "known_hosts": "host key\n"}
    last = kubectl(*commands[-1][1:])
    assert "No resources found" in last.stdout + last.stderr
