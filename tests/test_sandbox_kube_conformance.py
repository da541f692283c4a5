"""The kubectl commands an operator of this product types, run with the real kubectl against the
kube sandbox: each test is one row of the conformance table in sandbox/README.md.

The sandbox must answer them the way a real apiserver does (output, exit code, stored object).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
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


@pytest.fixture
def cli_kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    """The real kubectl against `reconciler sandbox kube` started as an operator would."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "kube", "--kubeconfig-out",
         str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("http://127.0.0.1:")
        yield Kubectl(SimpleNamespace(kubeconfig_path=kubeconfig),  # type: ignore[arg-type]
                      tmp_path / "kubectl-home")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_install_section_of_the_readme_runs_unchanged(cli_kubectl: Kubectl, tmp_path: Path) -> None:
    """The README's Helm install commands against `reconciler sandbox kube`, the chart rendered
    by Helm's engine (helm install = its CRDs, then its templates, applied in Helm's order)."""
    from tests.test_chart_support import crds, render

    kubectl = cli_kubectl
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Install with Helm", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in section.strip().splitlines()]
    (tmp_path / "deploy-key").write_text("key\n")
    (tmp_path / "known_hosts").write_text("host key\n")
    kubectl.cwd = tmp_path
    outputs = []
    for command in commands:
        if command[0] == "kubectl":
            outputs.append(kubectl(*command[1:]))
        else:
            assert command[:2] == ["helm", "install"]
            sets = dict(arg.split("=", 1) for arg in command[command.index("--set"):]
                        if "=" in arg)
            values = {"git": {"url": sets["git.url"], "auth": {
                "method": sets["git.auth.method"], "existingSecret": sets["git.auth.existingSecret"]}}}
            release, namespace = command[2], command[command.index("--namespace") + 1]
            templates = [text for path, text in sorted(render(
                values, name=release, namespace=namespace).items()) if path.endswith(".yaml")]
            kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds()))
            applied = kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(templates))
            assert "deployment.apps/multinic-multinic-reconciler created" in applied.stdout
    assert outputs[0].stdout.strip() == f"namespace/{NS} created"
    assert outputs[1].stdout.strip() == "secret/multinic-git created"
    secret = json.loads(kubectl("-n", NS, "get", "secret", "multinic-git", "-o", "json").stdout)
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "ssh-privatekey": "key\n", "known_hosts": "host key\n"}
    assert f"No resources found in {NS} namespace." in outputs[-1].stderr


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
    assert [e["type"] for e in events] == ["ADDED"] * 4 + ["BOOKMARK"]
    assert [e["object"]["metadata"]["name"] for e in events[:4]] == [
        "c0", "c1", "c2", "kube-root-ca.crt"]
    bookmark = events[-1]["object"]
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(bookmark["metadata"]["resourceVersion"]) >= max(
        int(e["object"]["metadata"]["resourceVersion"]) for e in events[:4])
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


# -- tables: what `kubectl get` prints for built-in kinds --------------------------------------
def _columns(kubectl: Kubectl, *args: str) -> tuple[list[str], list[list[str]]]:
    lines = kubectl("get", *args).stdout.splitlines()
    return lines[0].split(), [line.split() for line in lines[1:]]


def _node(name: str, ready: str = "True", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Ubuntu 24.04 LTS",
                                    "kernelVersion": "6.8.0", "containerRuntimeVersion":
                                    "containerd://1.7.0", "machineID": "", "systemUUID": "",
                                    "bootID": "", "kubeProxyVersion": "", "operatingSystem":
                                    "linux", "architecture": "amd64"}}}


def test_get_nodes_and_wide(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    kube_sandbox.seed([_node("worker-01", **{"node-role.kubernetes.io/worker": ""}),
                       _node("worker-02", ready="False")])
    head, rows = _columns(kubectl, "nodes")
    assert head == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("worker-01", "Ready", "worker", "v1.32.0"), ("worker-02", "NotReady", "<none>", "v1.32.0")]
    head, rows = _columns(kubectl, "nodes", "-o", "wide")
    assert head == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
                    "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert rows[0][5:] == ["10.0.0.11", "<none>", "Ubuntu", "24.04", "LTS", "6.8.0",
                           "containerd://1.7.0"]


def test_patch_node_status_with_a_partial_node_info(kubectl: Kubectl,
                                                    kube_sandbox: KubeSandbox) -> None:
    kube_sandbox.seed([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-03"}}])
    result = kubectl("patch", "node", "worker-03", "--subresource=status", "--type=merge", "-p",
                     '{"status":{"nodeInfo":{"osImage":"Rocky Linux 9.4"}}}')
    assert result.stdout.strip() == "node/worker-03 patched"
    node = kube_sandbox.get("v1", "Node", "worker-03")
    assert node is not None and node["status"]["nodeInfo"]["osImage"] == "Rocky Linux 9.4"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == ""


def test_get_pods_jobs_and_wide(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    kubectl("create", "job", "multinic-worker-01", "--image=busybox:1.36", "--", "true")
    kube_sandbox.wait_until(lambda: (kube_sandbox.get(
        "batch/v1", "Job", "multinic-worker-01", "default") or {}).get("status", {}).get(
        "succeeded") == 1)
    head, rows = _columns(kubectl, "jobs", "-o", "wide")
    assert head == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES",
                    "SELECTOR"]
    assert rows[0][:3] == ["multinic-worker-01", "Complete", "1/1"]
    assert rows[0][5:7] == ["multinic-worker-01", "busybox:1.36"]
    assert rows[0][7].startswith("batch.kubernetes.io/controller-uid=")
    head, rows = _columns(kubectl, "pods")
    assert head == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[0][1:4] == ["0/1", "Completed", "0"]
    head, rows = _columns(kubectl, "pods", "-o", "wide")
    assert head == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED",
                    "NODE", "READINESS", "GATES"]


def test_get_deployments_and_scale_to_zero(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    kubectl("create", "namespace", NS)
    kubectl("-n", NS, "create", "deployment", "multinic-multinic-reconciler",
            "--image=ghcr.io/example/multinic-reconciler:0.1.0")
    head, rows = _columns(kubectl, "-n", NS, "deploy", "-o", "wide")
    assert head == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                    "SELECTOR"]
    assert rows[0][:4] == ["multinic-multinic-reconciler", "0/1", "0", "0"]
    assert rows[0][6:] == ["ghcr.io/example/multinic-reconciler:0.1.0",
                           "app=multinic-multinic-reconciler"]
    scaled = kubectl("-n", NS, "scale", "deploy/multinic-multinic-reconciler", "--replicas=0")
    assert scaled.stdout.strip() == "deployment.apps/multinic-multinic-reconciler scaled"
    live = kube_sandbox.get("apps/v1", "Deployment", "multinic-multinic-reconciler", NS)
    assert live is not None and live["spec"]["replicas"] == 0
    scale = json.loads(kubectl("-n", NS, "get", "--raw", f"/apis/apps/v1/namespaces/{NS}/"
                               "deployments/multinic-multinic-reconciler/scale").stdout)
    assert (scale["kind"], scale["spec"]) == ("Scale", {"replicas": 0})
    assert scale["status"]["selector"] == "app=multinic-multinic-reconciler"


def test_get_namespaces_secrets_configmaps_serviceaccounts(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", NS)
    kubectl("-n", NS, "create", "secret", "generic", "multinic-webhook", "--from-literal=secret=x")
    head, rows = _columns(kubectl, "ns")
    assert head == ["NAME", "STATUS", "AGE"] and [NS, "Active"] in [r[:2] for r in rows]
    head, rows = _columns(kubectl, "-n", NS, "secrets")
    assert head == ["NAME", "TYPE", "DATA", "AGE"]
    assert rows[0][:3] == ["multinic-webhook", "Opaque", "1"]
    head, rows = _columns(kubectl, "-n", NS, "serviceaccounts")
    assert head == ["NAME", "SECRETS", "AGE"] and rows[0][:2] == ["default", "0"]
    head, rows = _columns(kubectl, "-n", NS, "configmaps")
    assert head == ["NAME", "DATA", "AGE"] and rows[0][:2] == ["kube-root-ca.crt", "1"]


def _product_event(name: str, node: dict[str, Any], reason: str, message: str,
                   type_: str = "Normal") -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig",
                               "name": node["metadata"]["name"], "namespace": NS,
                               "uid": node["metadata"]["uid"]},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "multinic-reconciler"},
            "reportingComponent": "multinic-reconciler", "reportingInstance": ""}


def test_get_events_and_describe_show_type_reason_and_message(product: Kubectl,
                                                               kube_sandbox: KubeSandbox) -> None:
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01")))
    node = kube_sandbox.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "worker-01", NS)
    assert node is not None
    kube_sandbox.seed([
        _product_event("worker-01.a", node, "RolloutStarted", "job multinic-worker-01 started"),
        _product_event("worker-01.b", node, "ApplyFailed", "MAC 52:54:00:00:00:01 not found",
                       "Warning")])
    head, rows = _columns(product, "-n", NS, "events")
    assert head == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert {tuple(r[1:5]) for r in rows} == {
        ("Normal", "RolloutStarted", "multinicnodeconfig/worker-01", "job"),
        ("Warning", "ApplyFailed", "multinicnodeconfig/worker-01", "MAC")}
    selected = product("-n", NS, "get", "events", "--field-selector",
                       "involvedObject.kind=MultiNicNodeConfig,type=Warning").stdout
    assert "ApplyFailed" in selected and "RolloutStarted" not in selected
    described = product("-n", NS, "describe", "mnnc", "worker-01").stdout
    events = described.split("Events:", 1)[1].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    rows = [line.split(None, 4) for line in events[3:] if line.strip()]
    assert {(r[0], r[1], r[3], r[4]) for r in rows} == {
        ("Normal", "RolloutStarted", "multinic-reconciler", "job multinic-worker-01 started"),
        ("Warning", "ApplyFailed", "multinic-reconciler", "MAC 52:54:00:00:00:01 not found")}


def test_delete_namespace_goes_through_terminating(kube_sandbox_manual: KubeSandbox,
                                                   tmp_path: Path) -> None:
    kubectl = Kubectl(kube_sandbox_manual, tmp_path / "manual-home")
    kubectl("create", "namespace", NS)
    kubectl("-n", NS, "create", "configmap", "left", "--from-literal=a=b")
    deleted = kubectl("delete", "namespace", NS, "--wait=false")
    assert deleted.stdout.strip() == f'namespace "{NS}" deleted'
    _, rows = _columns(kubectl, "ns", NS)
    assert rows[0][:2] == [NS, "Terminating"]
    refused = kubectl("-n", NS, "create", "configmap", "new", "--from-literal=a=b", check=False)
    assert refused.returncode == 1
    assert f"unable to create new content in namespace {NS} because it is being terminated" in \
        refused.stderr
    kube_sandbox_manual.jobs.step()  # the namespace controller empties it, then removes it
    gone = kubectl("get", "ns", NS, check=False)
    assert f'namespaces "{NS}" not found' in gone.stderr
    assert kube_sandbox_manual.get("v1", "ConfigMap", "left", NS) is None


def test_kubectl_delete_namespace_waits_until_it_is_gone(kubectl: Kubectl,
                                                         kube_sandbox: KubeSandbox) -> None:
    kubectl("create", "namespace", NS)
    kubectl("delete", "namespace", NS, timeout=20)
    assert kube_sandbox.get("v1", "Namespace", NS) is None


# -- CEL rules of the product's CRDs ------------------------------------------------------------
def test_a_node_config_breaking_a_cel_rule_is_refused_with_the_rules_message(
        product: Kubectl, kube_sandbox: KubeSandbox) -> None:
    twice = [{"name": "storage0", "macAddress": "52:54:00:00:00:01"},
             {"name": "storage0", "macAddress": "52:54:00:00:00:02"}]
    result = product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01", twice)),
                     check=False)
    assert result.returncode == 1
    assert 'The MultiNicNodeConfig "worker-01" is invalid: spec.interfaces: Invalid value: ' \
        '"array": interface names must be unique within the node' in result.stderr
    same_mac = [{"name": "storage0", "macAddress": "52:54:00:AB:00:01"},
                {"name": "storage1", "macAddress": "52:54:00:ab:00:01"}]
    result = product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01", same_mac)),
                     check=False)
    assert "MAC addresses must be unique within the node" in result.stderr  # lowerAscii()
    assert kube_sandbox.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "worker-01", NS) is None
    fine = [{"name": "storage0", "macAddress": "52:54:00:00:00:01"},
            {"name": "storage1", "macAddress": "52:54:00:00:00:02"}]
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01", fine)))
    patched = product("-n", NS, "patch", "mnnc", "worker-01", "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/interfaces/1/name", "value": "storage0"}]), check=False)
    assert "interface names must be unique within the node" in patched.stderr


def test_a_crd_with_a_rule_that_cannot_be_evaluated_is_refused(kubectl: Kubectl) -> None:
    crd = yaml.safe_load((CRDS / "multinicnodeconfigs.multinic.io.yaml").read_text())
    interfaces = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["interfaces"]
    interfaces["x-kubernetes-validations"] = [
        {"rule": "self.all(a, a.name.matches('^[a-z]'))", "message": "lower-case names"},
        {"rule": "self.all(a, url(a.name).getHost() != '')", "message": "urls"},
        {"rule": "self.all(a, a.name.nonsense())"},
        {"rule": "self.all(a,"}]
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(crd), check=False)
    assert result.returncode == 1
    base = ("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[interfaces]"
            ".x-kubernetes-validations")
    assert f"{base}[0]" not in result.stderr
    assert f"{base}[1].rule" in result.stderr and "cannot evaluate 'url'" in result.stderr
    assert f"{base}[2].rule" in result.stderr and "undeclared reference to 'nonsense'" in \
        result.stderr
    assert f"{base}[3].rule" in result.stderr and "Syntax error" in result.stderr
    assert "multinicnodeconfigs" not in kubectl("api-resources").stdout


# -- explain, auth can-i ----------------------------------------------------------------------
def test_kubectl_explain_built_in_and_custom_kinds(product: Kubectl) -> None:
    replicas = product("explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in replicas and "Number of desired pods" in replicas
    interfaces = product("explain", "multinicnodeconfigs.spec.interfaces").stdout
    assert "KIND:       MultiNicNodeConfig" in interfaces
    assert "FIELD: interfaces <[]Object>" in interfaces
    for field in ("macAddress", "name", "mtu", "routes"):
        assert f"  {field}\t<" in interfaces, interfaces
    metadata = product("explain", "mnnc.metadata.labels").stdout
    assert "FIELD: labels <map[string]string>" in metadata


def test_kubectl_auth_can_i_evaluates_the_charts_roles(product: Kubectl) -> None:
    from tests.test_chart_support import MINIMAL_VALUES, manifests

    product("apply", "-n", NS, "-f", "-", input=yaml.safe_dump_all(manifests(MINIMAL_VALUES)))
    assert product("auth", "can-i", "create", "namespaces").stdout.strip() == "yes"  # admin
    sa = f"--as=system:serviceaccount:{NS}:mnr-multinic-reconciler"
    for args, expected in [
            (("create", "multinicnodeconfigs.multinic.io"), "yes"),
            (("patch", "mnnc", "--subresource=status"), "yes"),
            (("update", "mnnc", "--subresource=status"), "no"),
            (("create", "jobs.batch"), "yes"),
            (("delete", "secrets"), "no"),
            (("get", "secrets"), "yes"),
            (("create", "mnnc", "-n", "default"), "no")]:
        result = product("auth", "can-i", *args, "-n", NS, sa, check=False) if "-n" not in args \
            else product("auth", "can-i", *args, sa, check=False)
        assert result.stdout.strip() == expected, (args, result.stdout, result.stderr)
        assert result.returncode == (0 if expected == "yes" else 1)
    agent = f"--as=system:serviceaccount:{NS}:multinic-node-agent"
    assert product("auth", "can-i", "list", "pods", "-n", NS, agent,
                   check=False).stdout.strip() == "no"


# -- operations.md: checking, troubleshooting, uninstalling -------------------------------------
def test_get_lease_names_the_leader(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    kubectl("create", "namespace", NS)
    kube_sandbox.seed([{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": "multinic-reconciler", "namespace": NS},
                        "spec": {"holderIdentity": "multinic-7d9f-abcde",
                                 "leaseDurationSeconds": 15}}])
    head, rows = _columns(kubectl, "-n", NS, "lease", "multinic-reconciler")
    assert head == ["NAME", "HOLDER", "AGE"]
    assert rows[0][:2] == ["multinic-reconciler", "multinic-7d9f-abcde"]
    lease = yaml.safe_load(kubectl("-n", NS, "get", "lease", "multinic-reconciler", "-o",
                                   "yaml").stdout)
    assert lease["spec"]["holderIdentity"] == "multinic-7d9f-abcde"


def test_get_mnnc_and_pvec_show_the_printer_columns(product: Kubectl,
                                                    kube_sandbox: KubeSandbox) -> None:
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01")))
    _set_ready(kube_sandbox, "worker-01")
    head, rows = _columns(product, "-n", NS, "mnnc")
    assert head == ["NAME", "NODE", "OS", "INTERFACES", "PHASE", "REVISION", "AGE"]
    assert rows[0][:5] == ["worker-01", "worker-01", "auto", "1", "Ready"]
    empty = product("-n", NS, "get", "pvec")
    assert f"No resources found in {NS} namespace." in empty.stderr


def test_get_jobs_and_pods_by_node_label_and_the_termination_message(
        kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    from multinic_sandbox.kube.node_model import fail

    kube_sandbox.node_model.script("worker-02", fail("MAC 52:54:00:00:00:09 not found"))
    kubectl("create", "namespace", NS)
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "multinic-worker-02-1a2b", "namespace": NS,
                        "labels": {"multinic.io/node": "worker-02"}},
           "spec": {"backoffLimit": 0, "template": {
               "metadata": {"labels": {"multinic.io/node": "worker-02"}},
               "spec": {"restartPolicy": "Never", "nodeName": "worker-02", "containers": [
                   {"name": "agent", "image": "multinic-reconciler:dev"}]}}}}
    kubectl("apply", "-f", "-", input=json.dumps(job))
    kube_sandbox.wait_until(lambda: (kube_sandbox.get("batch/v1", "Job", job["metadata"]["name"],
                                                      NS) or {}).get("status", {}).get("failed"))
    out = kubectl("-n", NS, "get", "jobs,pods", "-l", "multinic.io/node=worker-02").stdout
    blocks = [b.splitlines() for b in out.strip().split("\n\n")]
    assert blocks[0][0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert blocks[0][1].split()[:3] == ["job.batch/multinic-worker-02-1a2b", "Failed", "0/1"]
    assert blocks[1][0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    pod = blocks[1][1].split()[0]
    assert blocks[1][1].split()[1:3] == ["0/1", "Error"]
    message = kubectl("-n", NS, "get", pod, "-o",
                      "jsonpath={.status.containerStatuses[0].state.terminated.message}").stdout
    assert message == "MAC 52:54:00:00:00:09 not found"
    logs = kubectl("-n", NS, "logs", pod).stdout
    assert "MAC 52:54:00:00:00:09 not found" in logs
    described = kubectl("-n", NS, "describe", pod).stdout
    assert re.search(r"^Status:\s+Failed$", described, re.M), described
    assert re.search(r"^Node:\s+worker-02", described, re.M), described


def test_delete_the_crds_deletes_every_custom_resource(product: Kubectl,
                                                       kube_sandbox: KubeSandbox) -> None:
    product("apply", "-f", "-", input=json.dumps(_mnnc("worker-01")))
    result = product("delete", "-f", str(CRDS))
    assert 'customresourcedefinition.apiextensions.k8s.io "multinicnodeconfigs.multinic.io" ' \
        'deleted' in result.stdout
    assert kube_sandbox.list("apiextensions.k8s.io/v1", "CustomResourceDefinition") == []
    gone = product("-n", NS, "get", "multinicnodeconfigs", check=False)
    # kubectl's discovery cache still names the kind: the list is answered 404 like a real server
    assert gone.returncode == 1
    assert "the server could not find the requested resource" in gone.stderr or \
        "the server doesn't have a resource type" in gone.stderr


def test_the_conformance_table_lists_every_test_of_this_file() -> None:
    table = (REPO / "sandbox" / "README.md").read_text().split("## Kube sandbox", 1)[1]
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", table))
    here = {name for name in globals() if name.startswith("test_")}
    here.discard("test_the_conformance_table_lists_every_test_of_this_file")
    assert named - here == set(), "the table names tests that do not exist"
    assert here - named == set(), "tests missing from the table in sandbox/README.md"
