"""Wire-level Kubernetes API sandbox: a small apiserver for tests, demos and benchmarks.

Contract
--------
* ``KubeSandbox`` (``multinic_sandbox.kube.server``) serves the Kubernetes REST API over real
  HTTP(S) on localhost: discovery, OpenAPI v3 (with schemas, for ``kubectl explain``), core/v1
  (namespaces, configmaps, secrets, events, serviceaccounts, pods, nodes, services), batch/v1
  jobs, apps/v1 deployments (with ``scale``), coordination.k8s.io/v1 leases, RBAC,
  SelfSubjectAccessReview, events.k8s.io/v1 events, apiextensions.k8s.io/v1 CRDs and the custom
  resources of any installed CRD. The official ``kubernetes`` Python client and the real
  ``kubectl`` work against it unchanged, using the kubeconfig it writes; sandbox/README.md has
  the conformance table of the kubectl commands an operator uses.
* Apiserver semantics that client code depends on are reproduced: resourceVersion, generation,
  uid, managedFields and server-side apply (with conflicts), 404/409/422 ``Status`` errors,
  protobuf request bodies, schema validation and pruning, CEL rules, structural-schema checks
  for CRDs, selectors, pagination, watches (watch-list, bookmarks, 410 Gone), status
  subresources, Table output, owner-reference cascades, namespace lifecycle.
* A simulated Job controller runs each Job's pods on a scriptable ``NodeModel``; ``Faults``
  injects errors, delays and dropped connections; ``RequestLog`` records every request.
* Entry points: ``KubeSandbox(...)`` (context manager), the pytest fixtures in
  ``multinic_sandbox.kube.pytest_plugin`` and ``reconciler sandbox kube`` (``cli``).

Nothing here talks to a real cluster. Heavy imports (kubernetes, trustme, jsonschema) happen
lazily, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multinic_sandbox.kube.node_model import NodeModel, fail, hang, succeed
    from multinic_sandbox.kube.server import KubeSandbox

__all__ = ["KubeSandbox", "NodeModel", "fail", "hang", "succeed"]


def __getattr__(name: str) -> Any:
    if name == "KubeSandbox":
        from multinic_sandbox.kube.server import KubeSandbox

        return KubeSandbox
    if name in ("NodeModel", "fail", "hang", "succeed"):
        from multinic_sandbox.kube import node_model

        return getattr(node_model, name)
    raise AttributeError(name)
