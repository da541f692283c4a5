"""Helpers for the chart tests (no tests here): render the chart with Helm's own engine, split the
manifests, validate them, and let the kube sandbox serve the built-in kinds the chart uses."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "multinic-reconciler"
DATA = Path(__file__).resolve().parent / "data" / "chart"
RELEASE = "mnr"
NAMESPACE = "multinic-system"
# The minimum a user passes (README quickstart): everything else is the chart's default.
MINIMAL_VALUES: dict[str, Any] = {"git": {"url": "https://git.example.net/infra/multinic-config.git"}}

try:
    import helm_python as helm
except ImportError:  # skipped locally, a failure under CI=true (like a missing kubectl)
    if os.environ.get("CI", "").lower() == "true":
        raise
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (pip install -e '.[test]')")


def load_values(name: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((DATA / name).read_text())
    return values


@cache
def chart() -> Any:
    return helm.Chart.load(str(CHART))


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE,
           namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` / `helm install` would produce."""
    return chart().render(values or {}, name=name, namespace=namespace, is_install=True)  # type: ignore[no-any-return]


def manifests(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Every rendered object (NOTES.txt and empty documents dropped), in template order."""
    out: list[dict[str, Any]] = []
    for path, text in sorted(render(values, namespace=namespace).items()):
        if path.endswith("NOTES.txt"):
            continue
        out += [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def crds() -> list[dict[str, Any]]:
    """The chart's CRDs: the very files under crds/ (Helm installs them before the templates)."""
    return [yaml.safe_load(path.read_text()) for path in sorted((CHART / "crds").glob("*.yaml"))]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container_env(deployment: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or the valueFrom mapping) of the reconciler container."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
