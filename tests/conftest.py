"""Shared fixtures. Sandbox fixtures come from the sandboxes' own pytest plugins."""

from __future__ import annotations

pytest_plugins: list[str] = ["multinic_sandbox.proxmox.pytest_plugin", "multinic_sandbox.kube.pytest_plugin",
                              "multinic_sandbox.harness.pytest_plugin"]
