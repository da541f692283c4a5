"""The kubectl commands an operator of this product types, run with the real kubectl against the
kube sandbox: each test is one row of the conformance table in sandbox/README.md.

The sandbox must answer them the way a real apiserver does (output, exit code, stored object).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
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


# -- watching a rollout -------------------------------------------------------------------------
def _mnnc(name: str, interfaces: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": name, "interfaces": interfaces if interfaces is not None else [
                {"name": "storage0", "macAddress": "52:54:00:00:00:01"}]}}


@pytest.fixture
def product(kubectl: Kubectl) -> Kubectl:
    """The product's CRDs installed and its namespace created, with the real kubectl."""
    kubectl("create", "namespace", NS)
    kubectl("apply", "--server-side", "-f", str(CRDS))
    return kubectl


def _set_ready(sandbox: KubeSandbox, name: str, status: str = "True") -> None:
    stamp = "2026-01-01T00:00:00Z"
    sandbox.set_status("multinic.io/v1alpha1", "MultiNicNodeConfig", name, {
        "phase": "Ready" if status == "True" else "Applying", "interfaceCount": 1,
        "conditions": [{"type": "Ready", "status": status, "reason": "Applied",
                        "message": "applied", "lastTransitionTime": stamp}]}, namespace=NS)


def _later(seconds: float, action: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kubectl_wait_for_condition_ready_returns_when_the_node_is_ready(
        product: Kubectl, kube_sandbox: KubeSandbox) -> None:
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01")))
    thread = _later(1.5, lambda: _set_ready(kube_sandbox, "worker-01"))
    started = time.monotonic()
    result = product("-n", NS, "wait", "--for=condition=Ready", "mnnc/worker-01",
                     "--timeout=20s", check=False)
    thread.join()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "multinicnodeconfig.multinic.io/worker-01 condition met"
    assert 1.0 < time.monotonic() - started < 15
    watches = kube_sandbox.request_log.filter(verb="watch", resource="multinicnodeconfigs")
    assert watches, "kubectl wait watched the object"


def test_kubectl_wait_on_an_already_ready_node_returns_at_once(product: Kubectl,
                                                               kube_sandbox: KubeSandbox) -> None:
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01")))
    _set_ready(kube_sandbox, "worker-01")
    result = product("-n", NS, "wait", "--for=condition=Ready", "mnnc/worker-01", "--timeout=5s")
    assert "condition met" in result.stdout
    not_ready = product("-n", NS, "wait", "--for=condition=Ready=False", "mnnc/worker-01",
                        "--timeout=2s", check=False)
    assert not_ready.returncode == 1 and "timed out" in not_ready.stderr


def test_watch_list_sends_initial_events_then_the_initial_events_end_bookmark(
        kube_sandbox: KubeSandbox) -> None:
    import urllib.request

    kube_sandbox.seed([{"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"c{i}", "namespace": "default"}} for i in range(3)])
    url = (f"{kube_sandbox.url}/api/v1/namespaces/default/configmaps?watch=true"
           "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
           "&timeoutSeconds=1")
    with urllib.request.urlopen(url, timeout=10) as response:
        events = [json.loads(line) for line in response.read().splitlines() if line]
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]
    bookmark = events[-1]["object"]
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(bookmark["metadata"]["resourceVersion"]) >= max(
        int(e["object"]["metadata"]["resourceVersion"]) for e in events[:3])
    bad = url.replace("&allowWatchBookmarks=true", "")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(bad, timeout=10)
    assert caught.value.code == 422


def test_a_watch_from_a_compacted_resource_version_gets_410_gone(
        kube_sandbox: KubeSandbox) -> None:
    import urllib.request

    kube_sandbox.seed([{"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "default"}}])
    old = kube_sandbox.resource_version
    kube_sandbox.seed([{"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "d", "namespace": "default"}}])
    kube_sandbox.compact()
    url = (f"{kube_sandbox.url}/api/v1/namespaces/default/configmaps?watch=true"
           f"&resourceVersion={old - 1}&timeoutSeconds=1")
    with urllib.request.urlopen(url, timeout=10) as response:
        events = [json.loads(line) for line in response.read().splitlines() if line]
    assert events[0]["type"] == "ERROR"
    assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")


def test_get_watch_rows_keep_the_printer_columns(product: Kubectl,
                                                 kube_sandbox: KubeSandbox) -> None:
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01")))
    threads = [_later(1.0, lambda: _set_ready(kube_sandbox, "worker-01", "False")),
               _later(2.0, lambda: _set_ready(kube_sandbox, "worker-01"))]
    result = product("-n", NS, "get", "mnnc", "-w", "--request-timeout=4s", check=False,
                     timeout=30)
    for thread in threads:
        thread.join()
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "NODE", "OS", "INTERFACES", "PHASE", "REVISION", "AGE"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 3, result.stdout
    assert [row[0] for row in rows] == ["worker-01"] * 3
    assert rows[1][3:5] == ["1", "Applying"] and rows[2][3:5] == ["1", "Ready"]
