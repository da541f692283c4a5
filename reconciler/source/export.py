"""Writing one commit's configuration to a new directory: in full, or from the previous checkout plus what changed.

What is written is the commit's listing (``listing``), which may leave a top-level folder out (the
source leaves ``status/`` out: what the reconciler writes back is never its input, and 10,000 status
files written for every config change only cost time). A full export is ``read-tree`` +
``checkout-index`` of every listed path. An incremental one starts from the previous checkout, which
is never modified: each entry whose mode and blob id are unchanged is hard-linked from it (a symlink
is made again), and only the entries that changed are written, by the same ``checkout-index``, so
both ways give the same files, bytes and modes. When anything is unexpected (a submodule, nearly
every entry changed, a file of the previous checkout missing or not what its listing says) the
caller falls back to the full export.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.source.gitcmd import GitRunner

MAX_CHANGED_SHARE = 0.9  # a larger share of the entries changed: the full export (one git process)

REGULAR, EXECUTABLE, SYMLINK = "100644", "100755", "120000"


@dataclass(frozen=True, slots=True)
class Entry:
    mode: str  # 100644, 100755, 120000 (160000: a submodule)
    blob: str
    size: int  # -1 for a submodule


Listing = Mapping[str, Entry]  # repo-relative path -> entry, every file of the tree


class Unexpected(Exception):
    """The incremental export cannot be trusted here: use the full export."""


def listing(git: GitRunner, commit: str, *, without: str | None = None) -> dict[str, Entry]:
    """Every file of ``commit``'s tree (``ls-tree -r -l``), by path; ``without``: a top-level entry left out."""
    out = git("ls-tree", "-r", "-l", "-z", "--full-tree", commit)[1]
    skip = None if without is None else without + "/"
    entries: dict[str, Entry] = {}
    for record in out.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        if skip is not None and (path.startswith(skip) or path == without):
            continue
        mode, _kind, blob, size = meta.split()
        entries[path] = Entry(mode, blob, int(size) if size != "-" else -1)
    return entries


def blobs(entries: Listing) -> dict[str, str]:
    """Path -> blob id of the regular files (what a symlink's blob holds is its target, not content)."""
    return {path: e.blob for path, e in entries.items() if e.mode in (REGULAR, EXECUTABLE)}


def full(git: GitRunner, commit: str, dest: Path, index: Path, entries: Listing) -> None:
    """Every file of ``commit``'s listing ``entries`` into the empty directory ``dest``."""
    _checkout_index(git, commit, dest, index, list(entries))


def incremental(git: GitRunner, commit: str, dest: Path, index: Path, *, base: Path, base_entries: Listing,
                entries: Listing) -> int:
    """``commit`` (whose listing is ``entries``) into the empty directory ``dest``, from ``base``: the
    checkout of the tree listed by ``base_entries``. Returns how many entries were written; raises
    ``Unexpected`` (``dest`` then holds a partial tree for the caller to remove)."""
    changed: list[str] = []
    unchanged: list[str] = []
    for path, entry in entries.items():
        if entry.mode not in (REGULAR, EXECUTABLE, SYMLINK):
            raise Unexpected(f"{path}: mode {entry.mode}")
        (unchanged if base_entries.get(path) == entry else changed).append(path)
    if len(changed) > MAX_CHANGED_SHARE * len(entries):
        raise Unexpected(f"{len(changed)} of {len(entries)} entries changed")
    source_root, target_root = os.fspath(base.absolute()), os.fspath(dest.absolute())
    made: set[str] = set()
    for path in unchanged:
        parent = path.rpartition("/")[0]
        if parent and parent not in made:
            os.makedirs(os.path.join(target_root, parent), exist_ok=True)
            made.add(parent)
        _link(os.path.join(source_root, path), os.path.join(target_root, path), path, entries[path])
    if changed:
        _checkout_index(git, commit, dest, index, changed)
    return len(changed)


def _link(source: str, target: str, path: str, entry: Entry) -> None:
    try:
        st = os.lstat(source)
        if entry.mode == SYMLINK:
            link = os.readlink(source)
            if not stat.S_ISLNK(st.st_mode) or len(os.fsencode(link)) != entry.size:
                raise Unexpected(f"{path}: not the symlink its listing says")
            os.symlink(link, target)
            return
        executable = bool(st.st_mode & stat.S_IXUSR)
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size or executable != (entry.mode == EXECUTABLE):
            raise Unexpected(f"{path}: not the file its listing says")
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        raise Unexpected(f"{path}: {exc}") from None


def _checkout_index(git: GitRunner, commit: str, dest: Path, index: Path, paths: list[str]) -> None:
    dest, index = dest.absolute(), index.absolute()
    try:
        index.unlink(missing_ok=True)
        env = {"GIT_INDEX_FILE": str(index)}
        git("read-tree", commit, input_env=env)
        # checkout-index names files relative to the current directory: run it from the work tree.
        # The paths go on stdin: any number of them, whatever they are called.
        git(f"--git-dir={git.repo_dir.absolute()}", f"--work-tree={dest}", "-C", str(dest),
            "checkout-index", "--force", "-z", "--stdin", input_env=env,
            stdin=b"".join(os.fsencode(p) + b"\0" for p in paths))
    finally:
        index.unlink(missing_ok=True)
