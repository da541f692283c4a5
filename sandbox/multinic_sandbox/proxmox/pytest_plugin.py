"""pytest fixtures for the PVE sandbox (enable with ``pytest_plugins``).

* ``pve_topology`` - the default topology; override it in a test module to script another.
* ``pve_sandbox`` - a started ``ProxmoxSandbox`` on a free port (401 delay 10 ms).
* ``pve_sandbox_factory`` - ``factory(topology=None, **kwargs)`` starts more (one per cluster).
* ``pve_secret_guard`` - a ``SecretGuard`` that knows every secret of the sandboxes above and
  scans registered exceptions and all log records (captured at DEBUG) when the test ends.
* ``pve_foreign_ca_pem`` - PEM of an unrelated CA (for "wrong CA" tests).
* ``pve_closed_port`` - a TCP port on 127.0.0.1 nothing listens on.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.server import ProxmoxSandbox
from multinic_sandbox.proxmox.topology import Topology, default_topology

TEST_AUTH_FAILURE_DELAY = 0.01

SandboxFactory = Callable[..., ProxmoxSandbox]


@pytest.fixture
def pve_topology() -> Topology:
    return default_topology()


@pytest.fixture
def pve_sandbox_factory() -> Iterator[SandboxFactory]:
    started: list[ProxmoxSandbox] = []

    def factory(topology: Topology | dict[str, Any] | None = None, **kwargs: Any) -> ProxmoxSandbox:
        kwargs.setdefault("auth_failure_delay", TEST_AUTH_FAILURE_DELAY)
        sandbox = ProxmoxSandbox(topology, **kwargs).start()
        started.append(sandbox)
        return sandbox

    factory.started = started  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for sandbox in reversed(started):
            sandbox.stop()


@pytest.fixture
def pve_sandbox(pve_sandbox_factory: SandboxFactory, pve_topology: Topology) -> ProxmoxSandbox:
    return pve_sandbox_factory(pve_topology)


@pytest.fixture
def pve_secret_guard(pve_sandbox_factory: SandboxFactory, caplog: pytest.LogCaptureFixture) -> Iterator[SecretGuard]:
    caplog.set_level(logging.DEBUG)
    started: list[ProxmoxSandbox] = pve_sandbox_factory.started  # type: ignore[attr-defined]
    guard = SecretGuard(secret_sources=[lambda: [v for sb in started for v in sb.secret_values()]])
    yield guard
    guard.assert_clean(caplog.records)


@pytest.fixture
def pve_foreign_ca_pem() -> bytes:
    import trustme

    return trustme.CA().cert_pem.bytes()


@pytest.fixture
def pve_closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
