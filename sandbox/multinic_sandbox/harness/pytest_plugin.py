"""pytest fixtures that join the product to the sandboxes (enable with ``pytest_plugins``).

* ``pve_kube`` - the product's ``Kube`` adapter on the kube sandbox, CRDs and namespace installed;
  every ProxmoxCluster and MultiNicNodeConfig is leak-scanned when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from multinic_sandbox.proxmox.leak_scan import SecretGuard


@pytest.fixture
def pve_kube(kube_sandbox: Any, pve_secret_guard: SecretGuard) -> Iterator[Any]:
    """A ``reconciler.kube.client.Kube`` on the kube sandbox (CRDs and namespace installed).

    When the test ends, every ProxmoxCluster and MultiNicNodeConfig object (status included) is
    handed to ``pve_secret_guard`` for the leak scan. Needs the kube sandbox plugin too.
    """
    import json

    from multinic_sandbox.harness.kube_setup import ensure_namespace, install_crds
    from reconciler.config.models import DEFAULT_NAMESPACE
    from reconciler.kube.client import Kube

    api = kube_sandbox.api_client()
    install_crds(api)
    ensure_namespace(api, DEFAULT_NAMESPACE)
    kube = Kube(api, DEFAULT_NAMESPACE)
    yield kube
    for kind in ("ProxmoxCluster", "MultiNicNodeConfig"):
        for obj in kube.list_owned(kind):
            pve_secret_guard.check_text(f"{kind}/{obj['metadata']['name']}", json.dumps(obj))
