"""Which files of a checkout are desired state.

    clusters/**/<name>.yaml   ProxmoxCluster
    nodes/**/<name>.yaml      MultiNicNodeConfig
    reconciler.yaml           ReconcilerSettings (optional)
    status/                   written by the reconciler, never read here

Symlinks that leave the repository are refused; YAML files elsewhere are reported as warnings
(they are probably misplaced config), except in dot-folders such as ``.github``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.config.diagnostics import Diagnostic

KIND_NODE = "MultiNicNodeConfig"
KIND_CLUSTER = "ProxmoxCluster"
KIND_SETTINGS = "ReconcilerSettings"

FOLDERS = {"nodes": KIND_NODE, "clusters": KIND_CLUSTER}
SETTINGS_FILES = ("reconciler.yaml", "reconciler.yml")
STATUS_FOLDER = "status"
_YAML_SUFFIXES = (".yaml", ".yml")
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class RepoFile:
    path: str  # repo-relative, POSIX
    absolute: str
    kind: str  # the kind its folder holds

    @property
    def stem(self) -> str:
        name = self.path.rsplit("/", 1)[-1]
        return name.rsplit(".", 1)[0]


def discover(root: Path) -> tuple[list[RepoFile], list[Diagnostic]]:
    """List the desired-state files under ``root`` (sorted) and what is wrong with the layout."""
    root = root.resolve()
    found: list[RepoFile] = []
    problems: list[Diagnostic] = []
    with os.scandir(root) as top:
        entries = sorted(top, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or entry.name == STATUS_FOLDER:
            continue
        if entry.name in FOLDERS:
            if _inside(root, entry, entry.name, problems) and entry.is_dir():
                _walk(root, Path(entry.path), entry.name, FOLDERS[entry.name], found, problems, 1)
        elif entry.name in SETTINGS_FILES:
            if _inside(root, entry, entry.name, problems) and entry.is_file():
                found.append(RepoFile(entry.name, entry.path, KIND_SETTINGS))
        elif entry.name.endswith(_YAML_SUFFIXES) or entry.is_dir(follow_symlinks=False):
            _stray(root, Path(entry.path), entry.name, problems, 1)
    settings = [f for f in found if f.kind == KIND_SETTINGS]
    for extra in settings[1:]:
        problems.append(
            Diagnostic(extra.path, f"only one settings file is allowed; {settings[0].path} is used", "layout")
        )
        found.remove(extra)
    return found, problems


def _inside(root: Path, entry: os.DirEntry[str], rel: str, problems: list[Diagnostic]) -> bool:
    """False (with an error) for a symlink that resolves outside the repository, into status/ or
    a dot-folder such as .git, or nowhere."""
    if not entry.is_symlink():
        return True
    target = Path(entry.path).resolve()
    if target != root and root not in target.parents:
        problems.append(Diagnostic(rel, "symlink points outside the repository; refused", "symlink"))
        return False
    parent = Path(entry.path).parent.resolve()
    if target == parent or target in parent.parents:
        problems.append(Diagnostic(rel, "symlink points at a folder that contains it (a loop); refused", "symlink"))
        return False
    first = target.relative_to(root).parts[:1]
    if first and (first[0] == STATUS_FOLDER or first[0].startswith(".")):
        problems.append(Diagnostic(rel, f"symlink points into {first[0]}/, which is never read; refused", "symlink"))
        return False
    if not target.exists():
        problems.append(Diagnostic(rel, "symlink target does not exist", "symlink"))
        return False
    return True


def _walk(
    root: Path, folder: Path, rel: str, kind: str, found: list[RepoFile], problems: list[Diagnostic], depth: int
) -> None:
    if depth > _MAX_DEPTH:
        problems.append(Diagnostic(rel, f"folders nested deeper than {_MAX_DEPTH} levels are not read", "layout"))
        return
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child = f"{rel}/{entry.name}"
        if entry.name.startswith("."):
            continue
        if not _inside(root, entry, child, problems):
            continue
        if entry.is_dir():
            _walk(root, Path(entry.path), child, kind, found, problems, depth + 1)
        elif entry.name.endswith(_YAML_SUFFIXES):
            if entry.is_file():
                found.append(RepoFile(child, entry.path, kind))
            else:
                problems.append(Diagnostic(child, "not a regular file; ignored", "layout", severity="warning"))
        elif entry.name.lower().endswith(_YAML_SUFFIXES):
            problems.append(
                Diagnostic(
                    child, "only .yaml and .yml (lower case) are read; file ignored", "layout", severity="warning"
                )
            )


def _stray(root: Path, path: Path, rel: str, problems: list[Diagnostic], depth: int) -> None:
    if path.is_file() or path.is_symlink():
        problems.append(
            Diagnostic(rel, "YAML file outside clusters/ and nodes/ is ignored", "layout", severity="warning")
        )
        return
    if depth > 3:
        return
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir() or entry.name.endswith(_YAML_SUFFIXES):
            _stray(root, Path(entry.path), f"{rel}/{entry.name}", problems, depth + 1)
