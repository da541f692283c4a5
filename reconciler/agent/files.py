"""Our files on disk: the ownership marker, atomic writes with modes, and backups for rollback.

A file is *ours* when one of its first lines starts with ``MARKER``; anything else is foreign and
is never written over or removed. Every change goes through ``Transaction``, which records the
previous bytes and mode of each path (or that it did not exist) before touching it, so that a
failed activation or verification can put every file back exactly as it was.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.agent import MARKER

_MARKER_LINES = 5  # the marker sits on the first line; a few lines of slack for editors' headers


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def is_ours(content: bytes | None) -> bool:
    if content is None:
        return False
    head = content[:4096].decode("utf-8", errors="replace").splitlines()[:_MARKER_LINES]
    return any(line.lstrip().startswith(MARKER) for line in head)


def atomic_write(path: Path, content: bytes, mode: int) -> None:
    """Write via a temp file in the same directory + fsync + rename: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # before any byte is written: a 0600 file is never briefly 0644
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class Change:
    """One path's transition: ``new`` None means remove it."""

    rel: str  # relative to the config root, e.g. "etc/netplan/90-multinic.yaml"
    old: bytes | None
    new: bytes | None
    mode: int

    @property
    def node_path(self) -> str:
        return "/" + self.rel

    def diff(self) -> str:
        old = (self.old or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
        new = (self.new or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
        before = self.node_path if self.old is not None else "/dev/null"
        after = self.node_path if self.new is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile=before, tofile=after))


@dataclass
class Transaction:
    """Applies ``Change``s under ``root``, keeping what was there so ``restore`` can undo them."""

    root: Path
    _backups: list[tuple[Path, bytes | None, int | None]] = field(default_factory=list)

    def apply(self, change: Change) -> None:
        path = self.root / change.rel
        old = read_bytes(path)
        old_mode = path.stat().st_mode & 0o7777 if old is not None else None
        self._backups.append((path, old, old_mode))
        if change.new is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            atomic_write(path, change.new, change.mode)

    def restore(self) -> list[str]:
        """Put every touched path back (newest first); returns errors, never raises."""
        errors: list[str] = []
        for path, old, mode in reversed(self._backups):
            try:
                if old is None:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                else:
                    atomic_write(path, old, mode if mode is not None else 0o600)
            except OSError as exc:
                errors.append(f"restoring {path}: {exc}")
        self._backups.clear()
        return errors
