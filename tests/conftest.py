"""Shared fixtures. Sandbox fixtures come from the sandboxes' own pytest plugins."""

from __future__ import annotations

pytest_plugins: list[str] = ["reconciler.sandbox.proxmox.pytest_plugin", "reconciler.sandbox.kube.pytest_plugin"]
