"""Validate a checkout: layout -> safe YAML -> JSON Schema -> models -> cross-file rules.

Every stage reports and moves on, so one run lists every problem. A document that fails any
stage is *blocked*: it contributes nothing to the desired state, and its live object (named after
the file) is neither changed nor deleted by later stages. An invalid ``reconciler.yaml`` blocks
everything, since limits such as the prune guard would otherwise silently fall back to defaults.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import multiprocessing as mp
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler import redact
from reconciler.config import crossfile, documents, repo, schemas
from reconciler.config.diagnostics import Diagnostic, Pointer, Severity, field_path
from reconciler.config.documents import Document, LoadError
from reconciler.config.models import MODELS, NodeConfig, ProxmoxCluster, ReconcilerSettings


@dataclass(frozen=True)
class DesiredState:
    """What Git asks for, built from valid documents only."""

    settings: ReconcilerSettings
    nodes: dict[str, NodeConfig]
    clusters: dict[str, ProxmoxCluster]
    sources: dict[tuple[str, str], str]  # (kind, name) -> repo-relative path
    blocked: dict[str, frozenset[str]]  # kind -> names whose file is invalid
    # kind -> why no object of that kind may be deleted (a refused entry whose names are unknown)
    held: dict[str, str] = field(default_factory=dict)
    # (kind, name) -> the refused or invalid file(s) that block it, for messages
    blocked_by: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @property
    def settings_blocked(self) -> bool:
        return bool(self.blocked.get(repo.KIND_SETTINGS))


@dataclass
class ValidationResult:
    root: Path
    files: list[str]
    diagnostics: list[Diagnostic]
    desired: DesiredState
    documents: dict[str, Document] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


_PARALLEL_THRESHOLD = 400  # below this, starting workers costs more than it saves


class RepoUnreadable(Exception):
    """The path is not a readable directory: a usage error, not a validation failure."""


class _Collector:
    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        self.failed: set[str] = set()

    def at(
        self,
        doc: Document,
        pointer: Pointer,
        message: str,
        rule: str,
        severity: Severity = "error",
        related: tuple[str, ...] = (),
    ) -> None:
        line, column = doc.locate(pointer)
        self.add(Diagnostic(doc.path, message, rule, field_path(pointer), line, column, severity, related))

    def add(self, diagnostic: Diagnostic) -> None:
        if "@" in diagnostic.message:  # a value shown in a message may carry URL user info
            diagnostic = dataclasses.replace(diagnostic, message=redact.scrub(diagnostic.message))
        self.keep(diagnostic)

    def keep(self, diagnostic: Diagnostic) -> None:
        """A diagnostic already scrubbed (from this file's own check)."""
        self.diagnostics.append(diagnostic)
        if diagnostic.severity == "error":
            self.failed.add(diagnostic.path)


@dataclass(frozen=True)
class _Checked:
    """One file checked on its own: YAML, JSON Schema, model (the cross-file rules come after)."""

    doc: Document | None  # None: not readable as one YAML document
    diagnostics: tuple[Diagnostic, ...]
    model: BaseModel | None  # None: the file failed one of those stages


class FileMemo:
    """Each file's own check from the last validation, by path and content: a validation of the
    next commit parses and checks again only the files whose content changed, as a GitOps
    controller loads only the blobs that changed. The content is known by its Git blob id when the
    checkout comes with them (an exported commit: such a file is not even read), else by its bytes
    (read and hashed). The cross-file rules and the desired state are always computed from all
    files, so the result is exactly that of a fresh validation."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[tuple[str, str, bytes | str], _Checked]] = {}
        self.reused = 0  # files of the last validation whose check was reused
        self.read = 0  # files of the last validation read from disk

    def check_all(self, files: list[repo.RepoFile], blobs: Mapping[str, str] | None = None) -> list[_Checked]:
        """``blobs``: repo path -> Git blob id of the regular files of the checkout."""
        kept, self._files, self.reused, self.read = self._files, {}, 0, 0
        out = []
        for item in files:
            blob = blobs.get(item.path) if blobs is not None else None
            previous = kept.get(item.path)
            key: tuple[str, str, bytes | str] | None = None
            if blob is not None:
                key = (item.kind, "blob", blob)
            if key is None or previous is None or previous[0] != key:
                try:
                    raw = documents.read_bytes(item.absolute)
                except Exception as exc:
                    out.append(_checked(item, _unreadable(item, exc)))
                    continue
                self.read += 1
                if key is None:
                    key = (item.kind, "bytes", hashlib.blake2b(raw, digest_size=20).digest())
            if previous is not None and previous[0] == key:
                self.reused += 1
                checked = previous[1]
            else:
                checked = _checked(item, _load(item, raw))
            self._files[item.path] = (key, checked)
            out.append(checked)
        return out


def validate_repo(root: Path | str, *, jobs: int = 1, memo: FileMemo | None = None,
                  blobs: Mapping[str, str] | None = None) -> ValidationResult:
    """``memo``: carried from one validation to the next (the loop), so unchanged files are not
    parsed and checked again; ``blobs`` (with a memo): the checkout's Git blob id of each regular
    file, so a file whose blob was checked before is not even read."""
    # Validation allocates millions of small acyclic objects (YAML nodes, dicts, models) and keeps
    # many of them: the cyclic garbage collector would rescan them over and over (a third of the
    # run time on a 10,000-node repo) and find nothing to free. It is paused for the run.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _validate(root, jobs, memo, blobs)
    finally:
        if paused:
            gc.enable()


def _validate(root: Path | str, jobs: int, memo: FileMemo | None,
              blobs: Mapping[str, str] | None = None) -> ValidationResult:
    root = Path(root)
    if not root.is_dir():
        raise RepoUnreadable(f"{root}: not a directory")
    try:
        layout = repo.discover(root)
    except OSError as exc:
        raise RepoUnreadable(f"{root}: {exc.strerror or exc}") from None
    files = layout.files
    out = _Collector([])
    for problem in layout.problems:
        out.add(problem)

    loaded: dict[str, Document] = {}
    valid: dict[str, list[tuple[Document, Any]]] = {kind: [] for kind in schemas.SCHEMA_FILES}
    checked = memo.check_all(files, blobs) if memo is not None else [
        _checked(item, outcome) for item, outcome in zip(files, _read_all(files, jobs), strict=True)]
    for item, result in zip(files, checked, strict=True):
        for diagnostic in result.diagnostics:
            out.keep(diagnostic)
        if result.doc is not None:
            loaded[item.path] = result.doc
            if result.model is not None:
                valid[item.kind].append((result.doc, result.model))

    clusters: list[tuple[Document, ProxmoxCluster]] = valid[repo.KIND_CLUSTER]
    for finding in crossfile.check_clusters(clusters):
        out.at(finding.doc, finding.pointer, finding.message, finding.rule, finding.severity, finding.related)
    blocked_clusters = {f.stem for f in files if f.kind == repo.KIND_CLUSTER and f.path in out.failed}
    good_clusters = {c.name for d, c in clusters if d.path not in out.failed}
    for finding in crossfile.check_nodes(valid[repo.KIND_NODE], good_clusters, blocked_clusters):
        out.at(finding.doc, finding.pointer, finding.message, finding.rule, finding.severity, finding.related)

    out.diagnostics.sort(key=lambda d: (d.path, d.line or 0, d.column or 0, d.message))
    desired = _desired(files, valid, out.failed, loaded, layout.refusals)
    return ValidationResult(root, [f.path for f in files], out.diagnostics, desired, loaded)


_Loaded = tuple[str, Any, list[documents.Warning]] | Diagnostic


def _unreadable(item: repo.RepoFile, exc: Exception) -> Diagnostic:
    if isinstance(exc, LoadError):
        return Diagnostic(item.path, exc.message, "yaml", "", exc.line, exc.column)
    if isinstance(exc, OSError):
        return Diagnostic(item.path, f"cannot read file: {exc.strerror or exc}", "io")
    return Diagnostic(item.path, f"cannot read file: {type(exc).__name__}", "internal")  # never stop the others


def _read_one(item: repo.RepoFile) -> _Loaded:
    try:
        return documents.read(item.absolute)
    except Exception as exc:
        return _unreadable(item, exc)


def _load(item: repo.RepoFile, raw: bytes) -> _Loaded:
    try:
        return documents.load(raw)
    except Exception as exc:
        return _unreadable(item, exc)


def _checked(item: repo.RepoFile, outcome: _Loaded) -> _Checked:
    """The file's own stages after reading: its YAML 1.1 warnings, the schema, the model."""
    if isinstance(outcome, Diagnostic):
        own = _Collector([])
        own.add(outcome)
        return _Checked(None, tuple(own.diagnostics), None)
    text, data, warnings = outcome
    doc = Document(item.path, text, data)
    own = _Collector([])
    for line, column, message in warnings:
        own.add(Diagnostic(item.path, message, "yaml-1.1", "", line, column, "warning"))
    try:
        model = _model(item, doc, own)
    except Exception as exc:  # one file's surprise is that file's diagnostic
        own.add(Diagnostic(item.path, f"cannot check this file: {type(exc).__name__}", "internal"))
        model = None
    if model is not None:
        doc.release()  # the model holds what the data said; positions come from the text
    return _Checked(doc, tuple(own.diagnostics), model)


def _read_chunk(items: list[repo.RepoFile]) -> list[_Loaded]:
    return [_read_one(item) for item in items]


def _read_all(files: list[repo.RepoFile], jobs: int) -> list[_Loaded]:
    """Read and parse every file; with ``jobs`` > 1 large repos are split over forked workers.

    Only callers without threads of their own (the ``validate`` CLI) should ask for jobs > 1:
    forking a threaded process can deadlock.
    """
    if jobs <= 1 or len(files) < _PARALLEL_THRESHOLD or "fork" not in mp.get_all_start_methods():
        return _read_chunk(files)
    size = -(-len(files) // (jobs * 4))
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork")) as pool:
        return [loaded for part in pool.map(_read_chunk, chunks) for loaded in part]


def _model(item: repo.RepoFile, doc: Document, out: _Collector) -> BaseModel | None:
    problems = schemas.check(item.kind, doc.data)
    for pointer, message in problems:
        out.at(doc, pointer, message, "schema")
    if problems:
        return None
    name = doc.data["metadata"]["name"]
    if name != item.stem:
        out.at(doc, ("metadata", "name"), f"metadata.name {name} must equal the file name {item.stem}", "file-name")
        return None
    try:
        return MODELS[item.kind].model_validate(doc.data)
    except ValidationError as exc:  # the schema should have caught it: report, never crash
        for err in exc.errors():
            out.at(doc, tuple(err["loc"]), err["msg"], "model")
        return None


def _claimed_names(data: Any) -> tuple[str | None, str | None]:
    """(kind, metadata.name) as far as an invalid document still says them."""
    if not isinstance(data, dict):
        return None, None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return kind, name if isinstance(name, str) and name else None


def _peek(absolute: str) -> Any:
    """Data of a file refused by the layout, only to learn which object it names (or None)."""
    try:
        return documents.read(absolute)[1]
    except Exception:  # unreadable: only its stem is known
        return None


def _desired(
    files: list[repo.RepoFile],
    valid: dict[str, list[tuple[Document, Any]]],
    failed: set[str],
    loaded: dict[str, Document],
    refusals: list[repo.Refusal],
) -> DesiredState:
    ok = {kind: [(d, m) for d, m in pairs if d.path not in failed] for kind, pairs in valid.items()}
    good_paths = {d.path for pairs in ok.values() for d, _ in pairs}
    blocked: dict[str, set[str]] = {kind: set() for kind in schemas.SCHEMA_FILES}
    held: dict[str, str] = {}

    blocked_by: dict[tuple[str, str], list[str]] = {}

    def mark(kind: str, name: str, path: str) -> None:
        blocked[kind].add(name)
        paths = blocked_by.setdefault((kind, name), [])
        if path not in paths:
            paths.append(path)

    def block(kind: str, stem: str | None, data: Any, path: str) -> None:
        # The stem names the object (also lower-cased: Worker-01.yaml was worker-01.yaml);
        # the name and kind the file itself declares are blocked too, so that a file moved into
        # the wrong folder or renamed never lets its live object be deleted.
        if kind == repo.KIND_SETTINGS:
            mark(kind, "reconciler", path)
            return
        declared, name = _claimed_names(data)
        if stem:
            # Object names are lower case. Both kinds: a node file moved into clusters/ (or the
            # other way round) must block the object it was, even when it says nothing readable.
            for either in (kind, repo.KIND_NODE, repo.KIND_CLUSTER):
                mark(either, stem.lower(), path)
        if name:
            mark(kind, name, path)
            if declared in (repo.KIND_NODE, repo.KIND_CLUSTER):
                mark(declared, name, path)

    for item in files:
        if item.path not in good_paths:
            doc = loaded.get(item.path)
            block(item.kind, item.stem, doc.data if doc is not None else None, item.path)
    for refusal in refusals:
        if refusal.kind != repo.KIND_SETTINGS and refusal.name is None:
            held.setdefault(refusal.kind, f"{refusal.path} was refused; no {refusal.kind} is deleted until it is fixed")
            continue
        block(refusal.kind, refusal.name, _peek(refusal.absolute) if refusal.absolute else None, refusal.path)
    settings_list = ok[repo.KIND_SETTINGS]
    return DesiredState(
        settings=settings_list[0][1] if settings_list else ReconcilerSettings(),
        nodes={m.name: m for _, m in ok[repo.KIND_NODE]},
        clusters={m.name: m for _, m in ok[repo.KIND_CLUSTER]},
        sources={(kind, m.name): d.path for kind in (repo.KIND_NODE, repo.KIND_CLUSTER) for d, m in ok[kind]},
        blocked={k: frozenset(v) for k, v in blocked.items()},
        held=held,
        blocked_by={key: tuple(paths) for key, paths in blocked_by.items()},
    )
