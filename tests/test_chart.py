"""The Helm chart, rendered by Helm's own engine (helm-python-sdk bundles Helm's Go library):
default and every-option values render, every manifest passes kubernetes-validate --strict for
Kubernetes 1.30 and the newest release it ships, values that break values.schema.json are refused
with the offending keys named, and the rendered manifests apply cleanly with the real kubectl."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv
from test_chart_support import (
    CHART,
    DATA,
    MINIMAL_VALUES,
    NAMESPACE,
    RELEASE,
    ROOT,
    by_kind,
    chart,
    container_env,
    crds,
    helm,
    load_values,
    manifests,
    one,
    render,
)

from reconciler import resources
from reconciler.kube import crds as crd_module

VALUE_SETS = {"defaults": MINIMAL_VALUES, "values-all": load_values("values-all.yaml")}
KUBE_VERSIONS = ["1.30", kv.major_minor(kv.latest_version())]
SERVICE_MONITOR_CRD = yaml.safe_load((DATA / "servicemonitor-crd.yaml").read_text())


def rendered(values_name: str) -> list[dict[str, Any]]:
    return manifests(VALUE_SETS[values_name])


# --- rendering -----------------------------------------------------------------------------

def test_default_values_render_the_reconciler_its_rbac_and_the_node_agent_service_account() -> None:
    objects = rendered("defaults")
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Role",
                     "RoleBinding", "Service", "ServiceAccount", "ServiceAccount"]
    assert all(obj["metadata"].get("namespace") == NAMESPACE for obj in objects
               if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"))


def test_values_all_renders_every_template_including_the_optional_ones() -> None:
    kinds = {obj["kind"] for obj in rendered("values-all")}
    assert {"ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    templates = {path.rsplit("/", 1)[-1] for path, text in render(VALUE_SETS["values-all"]).items()
                 if text.strip() and not path.endswith("NOTES.txt")}
    assert templates == {p.name for p in (CHART / "templates").glob("*.yaml")}


def test_values_all_sets_a_non_default_for_every_chart_value() -> None:
    """values-all.yaml is the every-option file: each leaf of values.yaml is set there, differently."""
    def leaves(tree: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
        if isinstance(tree, dict) and tree:
            out: dict[tuple[str, ...], Any] = {}
            for key, value in tree.items():
                out.update(leaves(value, (*prefix, key)))
            return out
        return {prefix: tree}

    def at(tree: Any, path: tuple[str, ...]) -> Any:
        for key in path:
            tree = tree[key]
        return tree

    every = VALUE_SETS["values-all"]
    # Booleans that values-all must keep on to render every template.
    kept_on = {("serviceAccount", "create"), ("rbac", "create"), ("rbac", "readNodes"),
               ("agent", "serviceAccount", "create"), ("podDisruptionBudget", "enabled"),
               # alternatives to git.branch (one ref at a time): rendered by their own test
               ("git", "tag"), ("git", "commit")}
    for path, default in leaves(chart().values).items():
        try:
            value = at(every, path)
        except (KeyError, TypeError):
            pytest.fail(f"values-all.yaml does not set {'.'.join(path)}")
        if path not in kept_on and not (path[0].endswith("ecurityContext")):
            assert value != default, f"values-all.yaml keeps the default of {'.'.join(path)}"
    assert chart().merge_values(every) == chart().merge_values(chart().merge_values(every))


def test_a_missing_repo_url_fails_with_a_message_saying_what_to_set() -> None:
    with pytest.raises(helm.HelmError, match=r"git\.url is required"):
        render({})


def test_ssh_or_token_auth_without_a_secret_is_refused() -> None:
    for method in ("ssh", "token"):
        values = {"git": {**MINIMAL_VALUES["git"], "auth": {"method": method}}}
        with pytest.raises(helm.HelmError, match=r"/git/auth"):
            render(values)


def test_helm_lint_strict_passes_for_both_value_sets() -> None:
    for values in VALUE_SETS.values():
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, problems


# --- the Deployment ------------------------------------------------------------------------

@pytest.mark.parametrize("values_name", VALUE_SETS)
def test_the_reconciler_pod_is_hardened(values_name: str) -> None:
    deployment = one(rendered(values_name), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 1
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["command"] == ["reconciler"] and container["args"] == ["run"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    # The only writable path is an emptyDir.
    writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all("emptyDir" in volumes[m["name"]] for m in writable)


def test_default_env_configures_run_through_multinic_variables() -> None:
    env = container_env(one(rendered("defaults"), "Deployment"))
    assert env["MULTINIC_REPO"] == MINIMAL_VALUES["git"]["url"]
    assert env["MULTINIC_INTERVAL"] == "30s"
    assert env["MULTINIC_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MULTINIC_LOG_FORMAT"] == "json"
    assert env["MULTINIC_AGENT_IMAGE"] == "ghcr.io/multinic/multinic-reconciler:0.1.0"
    assert env["MULTINIC_NODE_JOB_SERVICE_ACCOUNT"] == "multinic-node-agent"
    assert json.loads(env["MULTINIC_NODE_TOLERATIONS"]) == [{"operator": "Exists"}]
    assert env["MULTINIC_STATUS_AUTHOR_NAME"] == "multinic-reconciler"
    # Unset options stay unset: the reconciler's own defaults apply.
    for name in ("MULTINIC_BRANCH", "MULTINIC_STATUS_BRANCH", "MULTINIC_WEBHOOK_SECRET", "MULTINIC_GIT_TOKEN",
                 "MULTINIC_GIT_SSH_KEY", "MULTINIC_GIT_KNOWN_HOSTS"):
        assert name not in env


def test_every_multinic_variable_the_chart_sets_is_read_by_the_code() -> None:
    """The chart configures `reconciler run` through env only; a name the code never reads is a
    silently ignored setting."""
    source = "\n".join(p.read_text() for p in (ROOT / "reconciler").rglob("*.py") if "sandbox" not in p.parts)
    names = set()
    for values in VALUE_SETS.values():
        names |= {n for n in container_env(one(manifests(values), "Deployment")) if n.startswith("MULTINIC_")}
    names |= {"MULTINIC_GIT_TOKEN"}
    unread = sorted(n for n in names if f'"{n}"' not in source
                    and f'env_default("{n.removeprefix("MULTINIC_")}"' not in source)
    assert not unread, f"the chart sets {unread} but reconciler/ never reads them"


def test_values_all_env_and_mounts_follow_the_values() -> None:
    values = VALUE_SETS["values-all"]
    objects = rendered("values-all")
    deployment = one(objects, "Deployment")
    env = container_env(deployment)
    assert env["MULTINIC_REPO"] == values["git"]["url"]
    assert env["MULTINIC_BRANCH"] == "production"
    assert env["MULTINIC_INTERVAL"] == "2m"
    assert env["MULTINIC_STATUS_BRANCH"] == "multinic-status"
    assert env["MULTINIC_STATUS_AUTHOR_EMAIL"] == "multinic-bot@example.net"
    assert env["MULTINIC_AGENT_IMAGE"] == "registry.example.net/platform/multinic-agent-tools:0.1.0-rc1"
    assert env["MULTINIC_NODE_JOB_SERVICE_ACCOUNT"] == "multinic-agent"
    assert json.loads(env["MULTINIC_NODE_TOLERATIONS"]) == values["agent"]["tolerations"]
    assert env["MULTINIC_WEBHOOK_SECRET"] == {"secretKeyRef": {"name": "multinic-webhook", "key": "hmac"}}
    assert env["MULTINIC_GIT_SSH_KEY"] == "/etc/multinic/git/ssh-privatekey"
    assert env["MULTINIC_GIT_KNOWN_HOSTS"] == "/etc/multinic/git/known_hosts"
    assert env["HTTPS_PROXY"] == "http://proxy.example.net:3128"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].endswith("@" + values["image"]["digest"])
    (git_volume,) = [v for v in pod["volumes"] if v["name"] == "git-ssh"]
    assert git_volume["secret"]["secretName"] == "multinic-git"
    assert {i["key"] for i in git_volume["secret"]["items"]} == {"identity", "hosts"}
    assert pod["serviceAccountName"] == "multinic-controller"
    assert one(objects, "Service")["spec"]["ports"][0]["port"] == 9080
    token = render({"git": {**MINIMAL_VALUES["git"], "auth": {"method": "token", "existingSecret": "git-token"}}})
    token_env = container_env(yaml.safe_load(next(t for p, t in token.items() if p.endswith("deployment.yaml"))))
    assert token_env["MULTINIC_GIT_TOKEN"] == {"secretKeyRef": {"name": "git-token", "key": "token"}}


@pytest.mark.parametrize("values_name", VALUE_SETS)
def test_the_node_agent_service_account_has_no_token_and_no_binding(values_name: str) -> None:
    objects = rendered(values_name)
    agent_name = container_env(one(objects, "Deployment"))["MULTINIC_NODE_JOB_SERVICE_ACCOUNT"]
    (agent,) = [sa for sa in by_kind(objects, "ServiceAccount") if sa["metadata"]["name"] == agent_name]
    assert agent["automountServiceAccountToken"] is False
    bound = [s["name"] for b in by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding")
             for s in b["subjects"]]
    assert agent_name not in bound


# --- CRDs: one copy -------------------------------------------------------------------------

def test_the_chart_ships_the_crds_the_code_generates_and_uses() -> None:
    assert resources.crds_dir().resolve() == (CHART / "crds").resolve()
    shipped = {c["name"] for c in chart().crds}  # what `helm install` would create first
    assert shipped == {f"crds/{p.name}" for p in (CHART / "crds").glob("*.yaml")}
    for kind in crd_module.NAMES:
        path = crd_module.crd_file(kind)
        assert path.read_text(encoding="utf-8") == crd_module.render(kind), f"{path.name} is stale: regenerate"
    assert not list((CHART / "templates").glob("*crd*")), "CRDs live in crds/ only"


# --- kubernetes-validate --strict -----------------------------------------------------------

@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_name", VALUE_SETS)
def test_every_manifest_passes_kubernetes_validate_strict(values_name: str, kube_version: str) -> None:
    objects = crds() + rendered(values_name)
    checked = 0
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            # Not a Kubernetes kind: checked against (a trimmed copy of) the operator's CRD.
            schema = SERVICE_MONITOR_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            jsonschema.validate(obj, schema)
            continue
        try:
            kv.validate(obj, kube_version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{name} is invalid for Kubernetes {kube_version}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 9


def test_kubernetes_validate_strict_would_catch_an_unknown_field() -> None:
    deployment = one(rendered("defaults"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, "1.30", strict=True)


# --- values.schema.json ---------------------------------------------------------------------

def test_a_values_file_violating_the_schema_is_refused_naming_each_key() -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(load_values("values-bad.yaml"))
    message = str(caught.value)
    for key in ("/replicaCount", "/git/interval", "/securityContext/readOnlyRootFilesystem"):
        assert key in message, message
    with pytest.raises(helm.HelmValuesError):
        chart().validate_schema(load_values("values-bad.yaml"))


@pytest.mark.parametrize(("values", "where"), [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"gitt": {}}, "gitt"),
    ({"git": {"url": "not a url"}}, "/git/url"),
    ({"git": {"url": "https://git.example.net/r.git", "interval": "30"}}, "/git/interval"),
    ({"git": {"url": "https://git.example.net/r.git", "auth": {"method": "password"}}}, "/git/auth/method"),
    ({"git": {"url": "https://git.example.net/r.git", "status": {"authorEmail": "nobody"}}},
     "/git/status/authorEmail"),
    ({"rbac": {"secretNames": ["Not_A_Name"]}}, "/rbac/secretNames/0"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"agent": {"tolerations": [{"operator": "Maybe"}]}}, "/agent/tolerations/0/operator"),
    ({"securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": True,
                          "capabilities": {"drop": ["ALL"]}}}, "/securityContext/allowPrivilegeEscalation"),
    ({"securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                          "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}}, "/securityContext/capabilities"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ({"service": {"port": 70000}}, "/service/port"),
])
def test_schema_violations_are_refused_at_install_time(values: dict[str, Any], where: str) -> None:
    values = {**values, "git": {**MINIMAL_VALUES["git"], **values.get("git", {})}}
    with pytest.raises(helm.HelmValuesError, match=where):
        render(values)


# --- kubectl apply against the kube sandbox -------------------------------------------------

@pytest.mark.parametrize("values_name", VALUE_SETS)
def test_rendered_manifests_apply_cleanly_with_kubectl(values_name: str, kube_sandbox: Any, kubectl: Any) -> None:
    objects = rendered(values_name)
    # Helm's order: CRDs first (crds/, plus the operator's CRD the ServiceMonitor needs), then
    # the namespace (`helm install --create-namespace`), then the templates.
    extra = [SERVICE_MONITOR_CRD] if by_kind(objects, "ServiceMonitor") else []
    out = kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds() + extra)).stdout
    assert out.count("created") == len(crds()) + len(extra), out
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    documents = yaml.safe_dump_all(objects)
    out = kubectl("apply", "-f", "-", input=documents).stdout
    assert out.count(" created") == len(objects), out
    # Applying the same release again changes nothing that matters (an upgrade with no changes).
    again = kubectl("apply", "-f", "-", input=documents).stdout
    assert "created" not in again, again
    deployment = one(objects, "Deployment")
    live = kube_sandbox.get("apps/v1", "Deployment", deployment["metadata"]["name"], namespace=NAMESPACE)
    assert live["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    got = kubectl("get", "serviceaccounts", "-n", NAMESPACE, "-o", "name").stdout.split()
    assert f"serviceaccount/{container_env(deployment)['MULTINIC_NODE_JOB_SERVICE_ACCOUNT']}" in got


def test_kubectl_apply_against_the_sandbox_refuses_a_misspelt_field(kube_sandbox: Any, kubectl: Any) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    deployment = one(rendered("defaults"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(deployment), check=False)
    assert result.returncode != 0 and "readinesProbe" in result.stderr, result.stderr


def test_release_name_and_namespace_flow_into_every_object() -> None:
    objects = manifests(MINIMAL_VALUES, namespace="netops")
    assert {o["metadata"].get("namespace") for o in objects if not o["kind"].startswith("Cluster")} == {"netops"}
    names = {o["metadata"]["name"] for o in objects}
    assert f"{RELEASE}-multinic-reconciler" in names
