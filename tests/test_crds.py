"""The CRDs: generated from ``schemas/``, structural (so what installs here installs on a real
cluster), and usable with kubectl exactly as on a real cluster."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from multinic_sandbox.kube.pytest_plugin import Kubectl
from multinic_sandbox.kube.server import KubeSandbox
from support.reconcile import CRD_DIR, EXAMPLE_REPO, NAMESPACE, ROOT, git_repo, start_env, warn_on_vm_nics

from reconciler.config import schemas
from reconciler.kube import crds

KINDS = ("MultiNicNodeConfig", "ProxmoxCluster")
NODE_CRD = CRD_DIR / "multinicnodeconfigs.multinic.io.yaml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def openapi(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.fixture
def ns_kubectl(kubectl: Kubectl, kube_sandbox: KubeSandbox) -> Kubectl:
    # `kubectl create namespace` sends a protobuf body, which the sandbox answers with 415 (a
    # sandbox deviation, see the report); `kubectl apply` sends JSON.
    kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    return kubectl


@pytest.fixture
def crd_kubectl(ns_kubectl: Kubectl) -> Kubectl:
    ns_kubectl("apply", "-f", str(CRD_DIR))
    return ns_kubectl


def columns(table: str) -> list[dict[str, str]]:
    """kubectl's table output as one dict per row, cut at the header's column starts."""
    header, *lines = table.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    bounds = [*starts[1:], None]
    return [{n: line[a:b].strip() for n, a, b in zip(names, starts, bounds, strict=True)} for line in lines]


def node_cr(name: str = "worker-01") -> dict[str, Any]:
    doc = load(EXAMPLE_REPO / "nodes" / f"{name}.yaml")
    doc["metadata"]["namespace"] = NAMESPACE
    return doc


# -- generated from schemas/ ------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_crd_file_equals_the_generated_one(kind: str) -> None:
    committed = crds.crd_file(kind, CRD_DIR).read_text(encoding="utf-8")
    assert committed == crds.render(kind), (
        f"{crds.crd_file(kind, CRD_DIR).name} is stale: run `python -m reconciler.kube.crds`")


def test_python_m_reconciler_kube_crds_writes_exactly_the_committed_files(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler.kube.crds", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.yaml")}
    committed = {p.name: p.read_text() for p in CRD_DIR.glob("*.yaml")}
    assert generated == committed


@pytest.mark.parametrize("kind", KINDS)
def test_the_spec_schema_of_the_crd_covers_every_field_of_the_json_schema(kind: str) -> None:
    source = json.loads((ROOT / "schemas" / schemas.SCHEMA_FILES[kind]).read_text())
    crd_spec = openapi(load(crds.crd_file(kind, CRD_DIR)))["properties"]["spec"]
    json_spec = source["properties"]["spec"]
    if "$ref" in json_spec:
        json_spec = source["$defs"][json_spec["$ref"].rsplit("/", 1)[-1]]
    assert set(crd_spec["properties"]) == set(json_spec["properties"])
    assert set(crd_spec.get("required", [])) == set(json_spec.get("required", []))
    text = json.dumps(crd_spec)
    assert "$ref" not in text and '"additionalProperties": false' not in text and "$defs" not in text


# -- structural: installs here means installs on a real cluster --------------------------------

def test_our_crds_install_and_their_kinds_are_served(kube_sandbox: KubeSandbox) -> None:
    ext = client.ApiextensionsV1Api(kube_sandbox.api_client())
    for path in sorted(CRD_DIR.glob("*.yaml")):
        created = ext.create_custom_resource_definition(load(path))
        assert created.metadata.name == path.stem
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = ext.read_custom_resource_definition(path.stem)
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions.get("Established") == "True"
        assert conditions.get("NamesAccepted") == "True"
    served = client.ApisApi(kube_sandbox.api_client()).get_api_versions()
    assert "multinic.io" in [g.name for g in served.groups]


def _break_additional_properties(crd: dict[str, Any]) -> None:
    openapi(crd)["properties"]["spec"]["additionalProperties"] = False


def _break_ref(crd: dict[str, Any]) -> None:
    spec = openapi(crd)["properties"]["spec"]
    spec["properties"]["proxmox"] = {"$ref": "#/$defs/proxmox"}


def _break_missing_type(crd: dict[str, Any]) -> None:
    del openapi(crd)["properties"]["spec"]["properties"]["proxmox"]["type"]


BREAKAGES = {"additionalProperties-false": (_break_additional_properties, "additionalProperties"),
             "ref": (_break_ref, "$ref"),
             "missing-type": (_break_missing_type, "must not be empty for specified object fields")}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_hand_broken_copy_of_our_crd_is_refused_as_non_structural(kube_sandbox: KubeSandbox,
                                                                   breakage: str) -> None:
    crd = load(NODE_CRD)
    damage, words = BREAKAGES[breakage]
    damage(crd)
    ext = client.ApiextensionsV1Api(kube_sandbox.api_client())

    with pytest.raises(ApiException) as refused:
        ext.create_custom_resource_definition(crd)

    assert refused.value.status == 422
    body = json.loads(refused.value.body)
    assert body["reason"] == "Invalid"
    assert words in body["message"]
    assert kube_sandbox.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", NODE_CRD.stem) is None


def test_kubectl_refuses_a_crd_with_additional_properties_false(ns_kubectl: Kubectl, tmp_path: Path) -> None:
    crd = load(NODE_CRD)
    _break_additional_properties(crd)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(crd))

    result = ns_kubectl("apply", "-f", str(broken), check=False)

    assert result.returncode != 0
    assert f'The CustomResourceDefinition "{NODE_CRD.stem}" is invalid' in result.stderr
    assert "additionalProperties" in result.stderr
    assert "multinicnodeconfigs" not in ns_kubectl("api-resources").stdout


# -- kubectl against our CRDs ------------------------------------------------------------------

def test_kubectl_apply_of_the_crds_then_get_mnnc_shows_the_printer_columns(
        crd_kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    crd_kubectl("apply", "-f", "-", input=yaml.safe_dump(node_cr()))
    kube_sandbox.set_status("multinic.io/v1alpha1", "MultiNicNodeConfig", "worker-01",
                            {"phase": "Ready", "interfaceCount": 3, "appliedRevision": "0123abcd"},
                            namespace=NAMESPACE)

    table = columns(crd_kubectl("get", "mnnc", "-n", NAMESPACE).stdout)

    assert list(table[0]) == ["NAME", "NODE", "OS", "INTERFACES", "PHASE", "REVISION", "AGE"]
    # NODE is empty: nodeName is not in the file (the reconciler fills it in when it applies)
    assert {k: v for k, v in table[0].items() if k != "AGE"} == {
        "NAME": "worker-01", "NODE": "", "OS": "ubuntu", "INTERFACES": "3", "PHASE": "Ready",
        "REVISION": "0123abcd"}
    by_category = crd_kubectl("get", "multinic", "-n", NAMESPACE).stdout
    assert "multinicnodeconfig.multinic.io/worker-01" in by_category


def test_kubectl_get_mnnc_shows_what_the_reconciler_rolled_out(tmp_path: Path) -> None:
    from multinic_sandbox.kube.pytest_plugin import Kubectl

    with start_env(warn_on_vm_nics(git_repo(EXAMPLE_REPO, tmp_path / "repo"))) as env:
        for _ in range(20):
            cycle = env.apply()
            if all(s.state == "applied" for s in cycle.rollout.nodes.values()):  # type: ignore[union-attr]
                break
            env.sandbox.wait_until(lambda: not env.active_jobs(), timeout=60,
                                   message="agent Jobs still running after 60 s")
        env.apply()
        kubectl = Kubectl(env.sandbox, tmp_path / "kubectl-home")
        rows = columns(kubectl("get", "mnnc", "-n", NAMESPACE).stdout)

    assert len(rows) == 9
    revision = env.checkout().revision
    for row in rows:
        assert (row["NODE"], row["PHASE"], row["REVISION"]) == (row["NAME"], "Ready", revision), row
    assert {row["NAME"]: row["INTERFACES"] for row in rows}["worker-01"] == "3"
    assert {row["NAME"]: row["OS"] for row in rows}["gpu-01"] == "rhel"


def test_kubectl_server_side_apply_of_a_node_cr_then_get_yaml_and_delete(
        crd_kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    text = yaml.safe_dump(node_cr())

    applied = crd_kubectl("apply", "--server-side", "-f", "-", input=text)
    assert applied.stdout.strip() == "multinicnodeconfig.multinic.io/worker-01 serverside-applied"
    record = kube_sandbox.request_log.filter(verb="patch", resource="multinicnodeconfigs")[-1]
    assert (record.status, record.field_manager) == (201, "kubectl")
    again = crd_kubectl("apply", "--server-side", "-f", "-", input=text)
    assert again.stdout.strip() == "multinicnodeconfig.multinic.io/worker-01 serverside-applied"

    shown = yaml.safe_load(crd_kubectl("get", "mnnc", "worker-01", "-n", NAMESPACE, "-o", "yaml").stdout)
    assert shown["kind"] == "MultiNicNodeConfig" and shown["apiVersion"] == "multinic.io/v1alpha1"
    assert shown["metadata"]["generation"] == 1
    assert shown["spec"] == {**node_cr()["spec"], "onRemove": "cleanup"}  # the CRD's default, filled in
    assert [i["name"] for i in shown["spec"]["interfaces"]] == ["storage0", "tenant0", "backup0"]
    assert "managedFields" not in shown["metadata"]  # kubectl hides them unless --show-managed-fields
    stored = kube_sandbox.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "worker-01", NAMESPACE)
    assert stored is not None
    assert [(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]] == [("kubectl", "Apply")]

    deleted = crd_kubectl("delete", "mnnc", "worker-01", "-n", NAMESPACE)
    assert 'multinicnodeconfig.multinic.io "worker-01" deleted' in deleted.stdout
    missing = crd_kubectl("get", "mnnc", "worker-01", "-n", NAMESPACE, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_kubectl_refuses_a_node_cr_that_violates_the_crd_schema_with_422(
        crd_kubectl: Kubectl, kube_sandbox: KubeSandbox) -> None:
    bad = node_cr("worker-02")
    bad["spec"]["interfaces"][0]["mtu"] = 100000
    bad["spec"]["interfaces"][1]["macAddress"] = "not-a-mac"

    result = crd_kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(bad), check=False)

    assert result.returncode != 0
    assert 'The MultiNicNodeConfig "worker-02" is invalid' in result.stderr
    assert "spec.interfaces[0].mtu" in result.stderr
    assert "spec.interfaces[1].macAddress" in result.stderr
    refused = kube_sandbox.request_log.filter(verb="patch", resource="multinicnodeconfigs")
    assert [r.status for r in refused] == [422]
    assert kube_sandbox.get("multinic.io/v1alpha1", "MultiNicNodeConfig", "worker-02", NAMESPACE) is None


def test_the_reconciler_refuses_to_write_an_unknown_field(kube_sandbox: KubeSandbox) -> None:
    """fieldValidation=Strict: a field the CRD does not know is an error, not silently pruned."""
    from reconciler.kube.client import Kube, KubeError

    for path in sorted(CRD_DIR.glob("*.yaml")):
        kube_sandbox.seed(load(path))
    kube_sandbox.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    manifest = copy.deepcopy(node_cr())
    manifest["spec"]["colour"] = "red"

    with pytest.raises(KubeError) as refused:
        Kube(kube_sandbox.api_client(), NAMESPACE).apply(manifest)

    assert refused.value.status == 400 or refused.value.status == 422
    assert "colour" in str(refused.value)

