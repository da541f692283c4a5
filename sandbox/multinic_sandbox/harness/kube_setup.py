"""Prepare a Kubernetes API (the kube sandbox, or a kind cluster) for registering PVE sandboxes.

Used by tests and by ``reconciler demo``::

    install_crds(api)                                   # our CRDs from charts/.../crds
    ensure_namespace(api, "multinic-system")
    for name, data in cluster_secrets(cluster, sandbox, auth="token").items():
        put_secret(api, "multinic-system", name, data)

Secret values go to the API only; nothing here logs them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal

import yaml

from multinic_sandbox.proxmox.server import ProxmoxSandbox
from reconciler import resources
from reconciler.config.models import ProxmoxCluster


def install_crds(api: Any) -> None:
    """Create (or leave in place) the ``MultiNicNodeConfig`` and ``ProxmoxCluster`` CRDs."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    ext = k8s.ApiextensionsV1Api(api)
    for path in sorted(resources.crds_dir().glob("*.yaml")):
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise


def ensure_namespace(api: Any, namespace: str) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        k8s.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    except ApiException as exc:
        if exc.status != 409:
            raise


def put_secret(api: Any, namespace: str, name: str, data: Mapping[str, str | bytes]) -> None:
    """Create or replace an Opaque Secret."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in data.items()}
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name}, "data": encoded}
    core = k8s.CoreV1Api(api)
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(name, namespace, body)


def cluster_secrets(
    cluster: ProxmoxCluster, sandbox: ProxmoxSandbox, *, auth: Literal["token", "ticket"] = "token"
) -> dict[str, dict[str, str | bytes]]:
    """The Secrets ``cluster`` names, filled with ``sandbox``'s default user (token or password)."""
    out: dict[str, dict[str, str | bytes]] = {}
    if auth == "token":
        if not sandbox.token_id or not sandbox.token_secret:
            raise ValueError(f"sandbox {sandbox.name} has no API token")
        out[cluster.spec.credentials_secret_ref.name] = {
            "tokenId": sandbox.token_id,
            "tokenSecret": sandbox.token_secret,
        }
    else:
        out[cluster.spec.credentials_secret_ref.name] = {"username": sandbox.username, "password": sandbox.password}
    ref = cluster.spec.tls.ca_bundle_secret_ref
    if ref is not None:
        out.setdefault(ref.name, {})[ref.key] = sandbox.ca_pem
    return out


def cluster_yaml(
    name: str,
    endpoint: str,
    *,
    credentials_secret: str,
    ca_secret: str | None = None,
    ca_key: str | None = None,
    insecure_skip_verify: bool = False,
    expected_node_count: int | None = None,
    verify_interval: str | None = None,
    fingerprint: str | None = None,
) -> str:
    """The text of ``clusters/<name>.yaml`` for a cluster at ``endpoint``."""
    spec: dict[str, Any] = {"apiEndpoint": endpoint, "credentialsSecretRef": {"name": credentials_secret}}
    tls: dict[str, Any] = {}
    if insecure_skip_verify:
        tls["insecureSkipVerify"] = True
    if fingerprint:
        tls["fingerprint"] = fingerprint
    if ca_secret:
        tls["caBundleSecretRef"] = {"name": ca_secret, **({"key": ca_key} if ca_key else {})}
    if tls:
        spec["tls"] = tls
    if expected_node_count is not None:
        spec["expectedNodeCount"] = expected_node_count
    if verify_interval is not None:
        spec["verifyInterval"] = verify_interval
    document = {
        "apiVersion": "multinic.io/v1alpha1",
        "kind": "ProxmoxCluster",
        "metadata": {"name": name},
        "spec": spec,
    }
    return yaml.safe_dump(document, sort_keys=False)


def apply_desired(kube: Any, desired: Any, *, revision: str | None = None) -> Any:
    """Plan ``desired`` against the live CRs and write it with the product's own apply stage
    (deletions included); returns the ``ChangeSet``."""
    from reconciler.apply.crs import apply_changes
    from reconciler.plan.planner import KINDS, LiveObject, plan

    live = {kind: [LiveObject.from_manifest(o) for o in kube.list_owned(kind)] for kind in KINDS}
    changes = plan(desired, live, revision=revision)
    failed = [a for a in apply_changes(kube, changes) if not a.ok]
    if failed:
        raise RuntimeError(f"apply failed: {[a.error for a in failed]}")
    return changes


def put_cluster_secrets(
    api: Any,
    namespace: str,
    desired: Any,
    sandboxes: Mapping[str, ProxmoxSandbox],
    *,
    auth: Mapping[str, Literal["token", "ticket"]] | None = None,
) -> None:
    """The Secrets of every cluster in ``desired`` that has a sandbox (token auth unless ``auth`` says)."""
    for name, sandbox in sandboxes.items():
        cluster = desired.clusters[name]
        for secret, data in cluster_secrets(cluster, sandbox, auth=(auth or {}).get(name, "token")).items():
            put_secret(api, namespace, secret, data)
