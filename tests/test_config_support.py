"""Helpers for the config/validate tests (no tests here): minimal valid documents, repos in tmp_path."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from reconciler.config.diagnostics import Diagnostic
from reconciler.config.validation import ValidationResult, validate_repo

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example-repo"
SCHEMAS = REPO / "schemas"
DATA = REPO / "tests" / "data" / "config"
RECONCILER = Path(sys.executable).parent / "reconciler"

DELETE = object()  # sentinel for ``set_at``: remove the key


def node(name: str = "worker-01", index: int = 1, **spec: Any) -> dict[str, Any]:
    """A minimal valid MultiNicNodeConfig; ``index`` keeps MACs and addresses unique across nodes."""
    doc: dict[str, Any] = {
        "apiVersion": "multinic.io/v1alpha1",
        "kind": "MultiNicNodeConfig",
        "metadata": {"name": name},
        "spec": {
            "interfaces": [
                {
                    "name": "storage0",
                    "macAddress": f"02:00:00:00:{index // 256:02x}:{index % 256:02x}",
                    "addresses": [f"10.20.{(index + 1) // 256}.{(index + 1) % 256}/16", f"fd00:20::{index + 1:x}/64"],
                    "mtu": 9000,
                    "routes": [{"to": "10.120.0.0/16", "via": "10.20.255.254"}],
                    "proxmoxNet": "net1",
                }
            ]
        },
    }
    doc["spec"].update(spec)
    return doc


def cluster(name: str = "pve-prod", endpoint: str | None = None, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "multinic.io/v1alpha1",
        "kind": "ProxmoxCluster",
        "metadata": {"name": name},
        "spec": {
            "apiEndpoint": endpoint or f"https://{name}.example.net:8006",
            "credentialsSecretRef": {"name": f"{name}-token"},
        },
    }
    doc["spec"].update(spec)
    return doc


def settings(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "multinic.io/v1alpha1",
        "kind": "ReconcilerSettings",
        "metadata": {"name": "reconciler"},
        "spec": {"namespace": "multinic-system", **spec},
    }


def parse_path(path: str) -> list[str | int]:
    """``spec.interfaces[0].mtu`` -> ``["spec", "interfaces", 0, "mtu"]``."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def set_at(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` with the field at ``path`` set (or removed with ``DELETE``)."""
    out = copy.deepcopy(doc)
    parts = parse_path(path)
    target: Any = out
    for part in parts[:-1]:
        if isinstance(part, str) and part not in target:
            target[part] = {}
        target = target[part]
    if value is DELETE:
        if isinstance(target, dict):
            target.pop(parts[-1], None)
        else:
            del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return out


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=1000)


def write(root: Path, rel: str | bytes, content: str | bytes | Mapping[str, Any]) -> Path:
    path = root / (os.fsdecode(rel) if isinstance(rel, bytes) else rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Mapping):
        content = dump(content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def make_repo(root: Path, files: Mapping[str, str | bytes | Mapping[str, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        write(root, rel, content)
    return root


def errors(result: ValidationResult, rule: str | None = None, path: str | None = None) -> list[Diagnostic]:
    return [
        d
        for d in result.diagnostics
        if d.severity == "error" and (rule is None or d.rule == rule) and (path is None or d.path == path)
    ]


def warnings(result: ValidationResult, rule: str | None = None) -> list[Diagnostic]:
    return [d for d in result.diagnostics if d.severity == "warning" and (rule is None or d.rule == rule)]


def only(found: list[Diagnostic]) -> Diagnostic:
    assert len(found) == 1, found
    return found[0]


def text_at(root: Path, diagnostic: Diagnostic) -> str:
    """The file's text from the reported line and column on: what the position points at."""
    assert diagnostic.line is not None and diagnostic.column is not None, diagnostic
    lines = (root / diagnostic.path).read_text(encoding="utf-8").splitlines()
    return lines[diagnostic.line - 1][diagnostic.column - 1 :]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the ``occurrence``-th ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in text")


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        cwd=cwd,
        timeout=120,
    )


def validate(root: Path) -> ValidationResult:
    return validate_repo(root)
