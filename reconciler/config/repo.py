"""Which files of a checkout are desired state.

    clusters/**/<name>.yaml   ProxmoxCluster
    nodes/**/<name>.yaml      MultiNicNodeConfig
    reconciler.yaml           ReconcilerSettings (optional)
    status/                   written by the reconciler, never read here

Symlinks that leave the repository are refused; YAML files elsewhere are reported as warnings
(they are probably misplaced config), except in dot-folders such as ``.github``.

Anything refused where a config file should be is an error *and* a ``Refusal`` naming what it
blocks: the object its file stem names (the validator adds the ``metadata.name`` it can read), or,
when no name can be known (a folder symlink, a loop, an unreadable folder), every deletion of that
kind. A refused ``reconciler.yaml`` (a folder, ``Reconciler.yaml``, a symlink out of the repo)
blocks everything: its limits must never silently fall back to the defaults. Folder symlinks are
never followed (a tree of them can multiply a small repo into millions of files).
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


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a refused layout entry blocks: the object ``name`` of ``kind`` (``name`` None: every
    deletion of ``kind``); ``absolute`` is set when the file may be read for its metadata.name."""

    path: str
    kind: str
    name: str | None
    absolute: str | None = None


@dataclass
class Layout:
    files: list[RepoFile]
    problems: list[Diagnostic]
    refusals: list[Refusal]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def discover(root: Path) -> Layout:
    """List the desired-state files under ``root`` (sorted) and what is wrong with the layout."""
    root = root.resolve()
    out = Layout([], [], [])
    with os.scandir(root) as top:
        entries = sorted(top, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or entry.name == STATUS_FOLDER:
            continue
        if entry.name in FOLDERS:
            kind = FOLDERS[entry.name]
            if not _inside(root, entry, entry.name, out.problems):
                out.refusals.append(Refusal(entry.name, kind, None))
            elif _is_dir(entry):
                _walk(root, Path(entry.path), entry.name, kind, out, 1)
            else:
                _refuse(out, entry.name, kind, None, f"{entry.name} must be a folder")
        elif entry.name in SETTINGS_FILES:
            if not _inside(root, entry, entry.name, out.problems):
                out.refusals.append(Refusal(entry.name, KIND_SETTINGS, None))
            elif _is_file(entry):
                out.files.append(RepoFile(entry.name, entry.path, KIND_SETTINGS))
            else:
                _refuse(out, entry.name, KIND_SETTINGS, None, "reconciler.yaml is not a regular file")
        elif _stem(entry.name).lower() == "reconciler" and entry.name.lower().endswith(_YAML_SUFFIXES):
            _refuse(
                out, entry.name, KIND_SETTINGS, None,
                f"settings file must be named reconciler.yaml exactly (lower case), not {entry.name}",
            )
        elif entry.name.lower() in FOLDERS:
            kind = FOLDERS[entry.name.lower()]
            _refuse(
                out, entry.name, kind, None,
                f"folder must be named {entry.name.lower()}/ exactly (lower case); {entry.name}/ is not read",
            )
        elif entry.name.endswith(_YAML_SUFFIXES) or entry.is_dir(follow_symlinks=False):
            _stray(root, Path(entry.path), entry.name, out.problems, 1)
    settings = [f for f in out.files if f.kind == KIND_SETTINGS]
    for extra in settings[1:]:
        out.problems.append(
            Diagnostic(
                extra.path,
                f"only one settings file is allowed; {settings[0].path} is used",
                "layout",
                related=(settings[0].path,),
            )
        )
        out.files.remove(extra)
    return out


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _refuse(out: Layout, rel: str, kind: str, name: str | None, message: str,
            absolute: str | None = None, rule: str = "layout") -> None:
    out.problems.append(Diagnostic(rel, message, rule))
    out.refusals.append(Refusal(rel, kind, name, absolute))


def _resolve(path: str) -> Path | None:
    """The target of a symlink, or None for a loop (``RuntimeError`` before Python 3.13)."""
    try:
        return Path(path).resolve(strict=False)
    except (RuntimeError, OSError):
        return None


def _inside(root: Path, entry: os.DirEntry[str], rel: str, problems: list[Diagnostic]) -> bool:
    """False (with an error) for a symlink that resolves outside the repository, into status/ or
    a dot-folder such as .git, nowhere, or round in a loop."""
    if not entry.is_symlink():
        return True
    target = _resolve(entry.path)
    if target is None:
        problems.append(Diagnostic(rel, "symlink loop; refused", "symlink"))
        return False
    if target != root and root not in target.parents:
        problems.append(Diagnostic(rel, "symlink points outside the repository; refused", "symlink"))
        return False
    parent = _resolve(str(Path(entry.path).parent)) or root
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


def _walk(root: Path, folder: Path, rel: str, kind: str, out: Layout, depth: int) -> None:
    if depth > _MAX_DEPTH:
        _refuse(out, rel, kind, None, f"folders nested deeper than {_MAX_DEPTH} levels are not read")
        return
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        _refuse(out, rel, kind, None, f"cannot read folder: {exc.strerror or exc}", rule="io")
        return
    for entry in entries:
        child = f"{rel}/{entry.name}"
        if entry.name.startswith("."):
            continue
        yaml_name = entry.name.lower().endswith(_YAML_SUFFIXES)
        stem = _stem(entry.name) if yaml_name else None
        if not _inside(root, entry, child, out.problems):
            out.refusals.append(Refusal(child, kind, stem))
            continue
        if entry.is_symlink() and _is_dir(entry):
            _refuse(  # what the folder holds is unknown: no deletion of this kind is safe
                out, child, kind, None,
                "folder symlinks are not followed; move the files here or link each file", rule="symlink",
            )
            continue
        if _is_dir(entry):
            if yaml_name:
                _refuse(out, child, kind, stem, "a folder where a config file is expected; it is not a file")
            _walk(root, Path(entry.path), child, kind, out, depth + 1)
        elif entry.name.endswith(_YAML_SUFFIXES):
            if _is_file(entry):
                out.files.append(RepoFile(child, entry.path, kind))
            else:
                _refuse(out, child, kind, stem, "not a regular file (a FIFO, socket or device); not read")
        elif yaml_name:
            _refuse(
                out, child, kind, stem,
                "only .yaml and .yml (lower case) are read; rename the file", absolute=entry.path,
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
