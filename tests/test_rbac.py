"""Least privilege: the chart's Role and ClusterRole allow every request the reconciler makes and
nothing more. ``rbac_allows`` evaluates rules the way Kubernetes' RBAC authorizer does, so any
request log (this module's reconcile cycles, or an end-to-end run's) can be checked against the
rendered chart with ``assert_log_allowed``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.kube.request_log import RequestRecord
from multinic_sandbox.kube.server import KubeSandbox
from test_chart_support import MINIMAL_VALUES, NAMESPACE, by_kind, container_env, crds, manifests, one

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REPO = ROOT / "example-repo"
READ_VERBS = frozenset({"get", "list", "watch"})

# What reconciler/kube/client.py (its LISTs, watches and writes) and reconciler/loop/leader.py
# call: (verb, group, resource).
# Namespaced, in the release namespace, unless listed in CLUSTER_WIDE.
NAMESPACED_CALLS = {
    *((verb, "multinic.io", plural) for plural in ("multinicnodeconfigs", "proxmoxclusters")
      for verb in ("get", "list", "watch", "create", "patch", "delete")),
    ("patch", "multinic.io", "multinicnodeconfigs/status"),
    ("patch", "multinic.io", "proxmoxclusters/status"),
    ("list", "batch", "jobs"), ("watch", "batch", "jobs"), ("create", "batch", "jobs"), ("delete", "batch", "jobs"),
    ("list", "", "pods"),
    ("create", "", "events"),
    ("get", "coordination.k8s.io", "leases"), ("create", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
    ("get", "", "secrets"),
}
CLUSTER_WIDE = {("list", "", "nodes"), ("watch", "", "nodes")}
LEASE = "multinic-reconciler"


# --- the authorizer -------------------------------------------------------------------------

def _match(allowed: Iterable[str], value: str) -> bool:
    return "*" in allowed or value in allowed


def rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str = "") -> bool:
    """One PolicyRule, as rbac/v1 evaluates it. ``resource`` may carry a subresource
    (``jobs/status``); an empty resourceNames list allows every name, and requests without a
    name (list, create) only match rules without resourceNames."""
    if not (_match(rule.get("verbs", []), verb) and _match(rule.get("apiGroups", []), group)
            and _match(rule.get("resources", []), resource)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(name) and name in names)


def chart_rules(objects: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None for cluster-wide, rule) for every rule bound by the chart."""
    out: list[tuple[str | None, dict[str, Any]]] = []
    roles = {(r["kind"], r["metadata"]["name"]): r for r in objects if r["kind"] in ("Role", "ClusterRole")}
    for binding in by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding"):
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        out += [(scope, rule) for rule in role.get("rules", [])]
    return out


def rbac_allows(rules: list[tuple[str | None, dict[str, Any]]], verb: str, group: str, resource: str,
                namespace: str, name: str = "") -> bool:
    """Whether any rule bound in ``namespace`` ("" = a cluster-scoped request) or cluster-wide
    allows the request."""
    return any(rule_allows(rule, verb, group, resource, name) for scope, rule in rules
               if scope is None or (namespace and scope == namespace))


def record_resource(record: RequestRecord) -> str:
    return f"{record.resource}/{record.subresource}" if record.subresource else record.resource


def assert_log_allowed(rules: list[tuple[str | None, dict[str, Any]]], records: Iterable[RequestRecord]) -> set[
        tuple[str, str, str, str]]:
    """Every resource request in ``records`` is allowed; returns what was seen."""
    seen: set[tuple[str, str, str, str]] = set()
    denied = []
    for record in records:
        if not record.resource:
            continue  # discovery / OpenAPI: allowed to every authenticated user (system:discovery)
        resource = record_resource(record)
        seen.add((record.verb, record.group, resource, record.namespace))
        if not rbac_allows(rules, record.verb, record.group, resource, record.namespace, record.name):
            denied.append(f"{record.method} {record.path} ({record.verb} {record.group or 'core'}/{resource})")
    assert not denied, "the chart's RBAC would deny:\n" + "\n".join(sorted(set(denied)))
    return seen


# --- the rules themselves --------------------------------------------------------------------

@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return manifests(MINIMAL_VALUES)


@pytest.fixture(scope="module")
def rules(objects: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    return chart_rules(objects)


def test_the_role_allows_each_call_the_reconciler_makes_in_its_namespace(rules: Any) -> None:
    for verb, group, resource in sorted(NAMESPACED_CALLS):
        name = LEASE if resource == "leases" and verb != "create" else "anything"
        assert rbac_allows(rules, verb, group, resource, NAMESPACE, name), (verb, group, resource)
        assert not rbac_allows(rules, verb, group, resource, "kube-system", name), (verb, group, resource)


def test_the_cluster_role_allows_listing_and_watching_nodes_and_nothing_else(objects: Any, rules: Any) -> None:
    for verb, group, resource in CLUSTER_WIDE:
        assert rbac_allows(rules, verb, group, resource, "")
    cluster_rules = [rule for scope, rule in rules if scope is None]
    for rule in cluster_rules:
        assert set(rule["verbs"]) <= READ_VERBS, rule
        assert rule["resources"] == ["nodes"] and rule["apiGroups"] == [""], rule
    (cluster_role,) = by_kind(objects, "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]


def test_no_rule_grants_more_than_the_calls_need(rules: Any) -> None:
    granted = set()
    for _scope, rule in rules:
        for field in ("verbs", "apiGroups", "resources", "resourceNames"):
            assert "*" not in rule.get(field, []), rule
        granted |= {(v, g, r) for v in rule["verbs"] for g in rule["apiGroups"] for r in rule["resources"]}
        assert not rule.get("nonResourceURLs"), rule
    assert granted == NAMESPACED_CALLS | CLUSTER_WIDE
    for verb in ("watch", "update", "deletecollection", "escalate", "bind", "impersonate"):
        assert not any(rule_allows(r, verb, "", "secrets", "x") for _, r in rules)
    assert not rbac_allows(rules, "create", "", "pods", NAMESPACE)
    assert not rbac_allows(rules, "create", "", "pods/exec", NAMESPACE)
    assert not rbac_allows(rules, "get", "", "nodes", "", "worker-01")  # list only


def test_the_chart_s_names_are_the_code_s_defaults(objects: Any) -> None:
    from reconciler.kube.jobs import JobSettings
    from reconciler.loop.leader import LeaderElector

    assert LeaderElector.__dataclass_fields__["name"].default == LEASE
    agent = container_env(one(objects, "Deployment"))["MULTINIC_NODE_JOB_SERVICE_ACCOUNT"]
    assert agent == JobSettings().service_account


def test_leases_are_renewed_only_under_the_reconciler_s_own_name(rules: Any) -> None:
    assert rbac_allows(rules, "update", "coordination.k8s.io", "leases", NAMESPACE, LEASE)
    assert not rbac_allows(rules, "update", "coordination.k8s.io", "leases", NAMESPACE, "kube-controller-manager")
    assert not rbac_allows(rules, "get", "coordination.k8s.io", "leases", NAMESPACE, "other")


def test_secret_names_narrow_secret_reads_to_those_names() -> None:
    narrowed = chart_rules(manifests({**MINIMAL_VALUES, "rbac": {"secretNames": ["pve-lab-login", "pve-lab-ca"]}}))
    assert rbac_allows(narrowed, "get", "", "secrets", NAMESPACE, "pve-lab-login")
    assert not rbac_allows(narrowed, "get", "", "secrets", NAMESPACE, "git-credentials")
    assert not rbac_allows(narrowed, "list", "", "secrets", NAMESPACE)


def test_rbac_off_renders_no_role_and_read_nodes_off_renders_nothing_cluster_wide() -> None:
    off = manifests({**MINIMAL_VALUES, "rbac": {"create": False}})
    assert not [o for o in off if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]
    local = manifests({**MINIMAL_VALUES, "rbac": {"readNodes": False}})
    assert not [o for o in local if o["kind"].startswith("Cluster")]


def test_the_authorizer_matches_subresources_and_names_exactly() -> None:
    rule = {"apiGroups": ["multinic.io"], "resources": ["proxmoxclusters"], "verbs": ["patch"]}
    assert rule_allows(rule, "patch", "multinic.io", "proxmoxclusters")
    assert not rule_allows(rule, "patch", "multinic.io", "proxmoxclusters/status")
    assert not rule_allows(rule, "patch", "", "proxmoxclusters")
    named = {**rule, "resourceNames": ["a"]}
    assert rule_allows(named, "patch", "multinic.io", "proxmoxclusters", "a")
    assert not rule_allows(named, "patch", "multinic.io", "proxmoxclusters", "")


# --- a real reconcile cycle against the sandbox -------------------------------------------

def reconcile_against_sandbox(sandbox: KubeSandbox, cycles: int = 4) -> None:
    """What the reconciler does in its namespace: leader election, apply cycles (CRs, Jobs,
    pods, status, Events), credential reads for the ProxmoxCluster files."""
    from multinic_sandbox.harness.fleet import AgentHosts, nodes_for

    from reconciler import pipeline
    from reconciler.apply.proxmox.credentials import CredentialsMissing, read_credentials
    from reconciler.config.validation import validate_repo
    from reconciler.kube.client import Kube
    from reconciler.loop.leader import LeaderElector
    from reconciler.source.local import open_directory

    sandbox.seed(*crds())
    sandbox.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    desired = validate_repo(str(EXAMPLE_REPO)).desired
    sandbox.seed(*nodes_for(desired))
    sandbox.node_model.set_default(AgentHosts())
    kube = Kube(sandbox.api_client(), NAMESPACE)
    elector = LeaderElector(kube, identity="mnr-0")
    assert elector.try_acquire_or_renew()
    checkout = open_directory(str(EXAMPLE_REPO))
    for _ in range(cycles):
        assert elector.try_acquire_or_renew()
        pipeline.apply_once(checkout, lambda namespace: Kube(sandbox.api_client(), NAMESPACE))
        time.sleep(1.0)
    for cluster in desired.clusters.values():
        # The example's Secrets are not in the sandbox; the read is what counts here.
        with contextlib.suppress(CredentialsMissing):
            read_credentials(kube.read_secret, cluster)
    elector.release()


def test_every_request_of_a_reconcile_cycle_is_allowed_by_the_chart(rules: Any, objects: Any) -> None:
    with KubeSandbox() as sandbox:
        reconcile_against_sandbox(sandbox)
        seen = assert_log_allowed(rules, sandbox.request_log.records)
        jobs = sandbox.list("batch/v1", "Job", namespace=NAMESPACE)
        pods = sandbox.list("v1", "Pod", namespace=NAMESPACE)
    # The cycle exercised the interesting calls (so the check above is not vacuous).
    for call in [("patch", "multinic.io", "multinicnodeconfigs", NAMESPACE),
                 ("patch", "multinic.io", "multinicnodeconfigs/status", NAMESPACE),
                 ("create", "batch", "jobs", NAMESPACE), ("list", "", "pods", NAMESPACE),
                 ("list", "", "nodes", ""), ("get", "", "secrets", NAMESPACE),
                 ("update", "coordination.k8s.io", "leases", NAMESPACE)]:
        assert call in seen, (call, sorted(seen))
    # Node Jobs run as the chart's token-less agent ServiceAccount.
    agent = container_env(one(objects, "Deployment"))["MULTINIC_NODE_JOB_SERVICE_ACCOUNT"]
    assert jobs and pods
    for pod_spec in [j["spec"]["template"]["spec"] for j in jobs] + [p["spec"] for p in pods]:
        assert pod_spec["serviceAccountName"] == agent
        assert pod_spec["automountServiceAccountToken"] is False
        mounts = [m for c in pod_spec["containers"] for m in c.get("volumeMounts", [])]
        assert not [m for m in mounts if "serviceaccount" in m["mountPath"]]


def test_a_request_outside_the_rules_is_reported() -> None:
    rules = chart_rules(manifests(MINIMAL_VALUES))
    bad = RequestRecord("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/x", "delete", "", "v1", "secrets", "",
                        NAMESPACE, "x", 200, "", "", "", False, 0.0)
    with pytest.raises(AssertionError, match="delete core/secrets"):
        assert_log_allowed(rules, [bad])


def test_the_rendered_rbac_is_plain_yaml_a_reviewer_can_read() -> None:
    text = yaml.safe_dump_all([o for o in manifests(MINIMAL_VALUES) if "Role" in o["kind"]])
    assert "'*'" not in text and '"*"' not in text
