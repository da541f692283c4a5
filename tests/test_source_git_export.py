"""The checkout of a new commit is built from the previous one plus what changed: it must equal a
full export of that commit, byte for byte and mode for mode, whatever the commits did (real git)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from test_source_git_support import Remote, git

from reconciler.config.validation import FileMemo, ValidationResult, validate_repo
from reconciler.source.git import GitSource

pytest_plugins = ["test_source_git_support"]  # fixtures: remote


def tree(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under ``root``: (type, permission bits, content or symlink target)."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.fsencode(os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


def push(remote: Remote, change: Callable[[Path], None], message: str) -> str:
    """Runs ``change`` on the user's clone (any file operation), commits everything, pushes."""
    clone = remote.clone
    git("fetch", "--quiet", "origin", cwd=clone)
    git("checkout", "--quiet", "--force", "-B", "main", "origin/main", cwd=clone)
    change(clone)
    git("add", "--all", cwd=clone)
    git("-c", "user.name=Config User", "-c", "user.email=user@example.com", "-c", "commit.gpgSign=false",
        "commit", "--quiet", "--allow-empty", "-m", message, cwd=clone)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone)


def full_export(remote: Remote, commit: str, cache: Path) -> dict[str, tuple[str, int, bytes]]:
    """The tree a fresh cache (nothing to start from: the full export) writes for ``commit``."""
    fresh = GitSource(remote.url, commit=commit, cache_dir=cache)
    result = fresh.poll()
    assert result.checkout is not None and result.checkout.revision == commit
    return tree(result.checkout.path)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _modify(clone: Path) -> None:
    path = clone / "nodes" / "worker-01.yaml"
    path.write_text(path.read_text().replace("mtu: 9000", "mtu: 8000"))


def _rename(clone: Path) -> None:
    (clone / "nodes" / "gpu-02.yaml").rename(clone / "nodes" / "rack-a" / "gpu-02.yaml")


def _symlink(clone: Path) -> None:
    target = clone / "nodes" / "rack-a" / "new-01.yaml"
    target.unlink()
    target.symlink_to("../worker-01.yaml")


def _executable(clone: Path) -> None:
    (clone / "scripts").mkdir()
    write(clone / "scripts" / "check.sh", "#!/bin/sh\nexit 0\n")
    (clone / "scripts" / "check.sh").chmod(0o755)
    write(clone / "docs" / "a b ü -x.md", "an odd name\n")


def _file_into_folder(clone: Path) -> None:
    (clone / "docs" / "a b ü -x.md").unlink()
    write(clone / "docs" / "a b ü -x.md" / "inner.md", "now a folder\n")
    (clone / "scripts" / "check.sh").chmod(0o644)
    target = clone / "nodes" / "rack-a" / "new-01.yaml"
    target.unlink()
    write(target, "apiVersion: multinic.io/v1alpha1\nkind: MultiNicNodeConfig\n")  # a symlink into a file again


def _delete_folder(clone: Path) -> None:
    for path in sorted((clone / "docs").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (clone / "docs").rmdir()


def _status_only(clone: Path) -> None:
    write(clone / "status" / "README.md", "# status\n")
    write(clone / "status" / "nodes" / "worker-01.yaml", "phase: Ready\n")


def _config_after_status(clone: Path) -> None:
    write(clone / "nodes" / "worker-09.yaml", "apiVersion: multinic.io/v1alpha1\n")


STEPS: list[tuple[str, Callable[[Path], None]]] = [
    ("add files in a new folder", lambda c: (write(c / "nodes" / "rack-a" / "new-01.yaml", "a: 1\n"),
                                             write(c / "nodes" / "rack-a" / "new-02.yaml", "b: 2\n"))),
    ("modify a file", _modify),
    ("rename a file into a folder", _rename),
    ("turn a file into a symlink", _symlink),
    ("add an executable and an odd name", _executable),
    ("turn a file into a folder, a symlink back into a file, drop the executable bit", _file_into_folder),
    ("delete a folder", _delete_folder),
    ("status only", _status_only),
    ("config after status", _config_after_status),
]


def test_after_adds_edits_renames_deletes_and_type_changes_each_checkout_equals_a_full_export(
        remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    previous = source.poll().checkout
    assert previous is not None
    for step, (message, change) in enumerate(STEPS):
        commit = push(remote, change, message)
        before = tree(previous.path)
        result = source.poll()
        assert result.error is None, message
        checkout = result.checkout
        assert checkout is not None
        if message == "status only":
            assert not result.changed and checkout == previous  # no new checkout for a status commit
            continue
        assert result.changed and checkout.revision == commit, message
        assert tree(checkout.path) == full_export(remote, commit, tmp_path / f"fresh-{step}"), message
        # Configuration only: what the reconciler writes back under status/ is never its input.
        assert "status" not in tree(checkout.path) and checkout.blobs is not None, message
        assert not [p for p in checkout.blobs if p.startswith("status/")], message
        assert tree(previous.path) == before, f"{message}: the previous checkout was modified"
        previous = checkout


def test_unchanged_files_are_not_written_again(remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    old = source.poll().checkout
    assert old is not None
    push(remote, _modify, "worker-01: mtu 8000")
    new = source.poll().checkout
    assert new is not None and new.path != old.path
    unchanged, changed = Path("nodes/gpu-02.yaml"), Path("nodes/worker-01.yaml")
    assert os.stat(new.path / unchanged).st_ino == os.stat(old.path / unchanged).st_ino  # shared, not copied
    assert os.stat(new.path / changed).st_ino != os.stat(old.path / changed).st_ino
    assert (old.path / changed).read_text() != (new.path / changed).read_text()


def test_a_previous_checkout_missing_a_file_falls_back_to_a_complete_full_export(remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    old = source.poll().checkout
    assert old is not None
    (old.path / "nodes" / "gpu-02.yaml").unlink()  # someone tampered with the cache
    (old.path / "reconciler.yaml").write_text("truncated")
    commit = push(remote, _modify, "worker-01: mtu 8000")
    result = source.poll()
    assert result.error is None and result.checkout is not None and result.checkout.revision == commit
    assert tree(result.checkout.path) == full_export(remote, commit, tmp_path / "fresh")


def test_the_checkout_names_the_blob_of_each_regular_file_and_no_symlink(remote: Remote, tmp_path: Path):
    commit = push(remote, lambda c: (c / "nodes" / "link.yaml").symlink_to("worker-01.yaml"), "a link")
    checkout = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache").poll().checkout
    assert checkout is not None and checkout.revision == commit and checkout.blobs is not None
    assert checkout.blobs["nodes/worker-01.yaml"] == git("rev-parse", f"{commit}:nodes/worker-01.yaml",
                                                         cwd=remote.bare)
    assert "nodes/link.yaml" not in checkout.blobs
    assert set(checkout.blobs) == {p for p in git("ls-tree", "-r", "--name-only", commit, cwd=remote.bare).split("\n")
                                   if p != "nodes/link.yaml"}


def _fresh(path: Path) -> tuple[list[object], object]:
    result = validate_repo(path)
    return list(result.diagnostics), result.desired


def test_validating_each_exported_commit_reads_only_changed_files_and_still_sees_a_symlink_target_change(
        remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    memo = FileMemo()

    def validate() -> ValidationResult:
        checkout = source.poll().checkout
        assert checkout is not None
        result = validate_repo(checkout.path, memo=memo, blobs=checkout.blobs)
        assert (list(result.diagnostics), result.desired) == _fresh(checkout.path)  # as a fresh validation
        return result

    first = validate()
    assert first.ok and memo.read == len(first.files)

    def link(clone: Path) -> None:  # worker-02 moves out of nodes/ and is linked back; worker-01 edited
        (clone / "shared").mkdir()
        (clone / "nodes" / "worker-02.yaml").rename(clone / "shared" / "worker-02.yaml")
        (clone / "nodes" / "worker-02.yaml").symlink_to("../shared/worker-02.yaml")
        _modify(clone)
    push(remote, link, "worker-02 linked, worker-01 mtu 8000")
    second = validate()
    assert second.ok and second.desired.nodes["worker-01"].spec.interfaces[0].mtu == 8000
    assert memo.read == 2  # worker-01 (a new blob) and the symlink (read through every time)

    def break_target(clone: Path) -> None:  # only the link's target changes: the link's own blob does not
        path = clone / "shared" / "worker-02.yaml"
        path.write_text(path.read_text().replace("mtu: 9000", "mtu: 99999", 1))
    push(remote, break_target, "worker-02: bad MTU")
    third = validate()
    errors = [d for d in third.errors if d.path == "nodes/worker-02.yaml"]
    assert errors and errors[0].line is not None and "mtu" in errors[0].field
    assert "worker-02" not in third.desired.nodes and "worker-02" in third.desired.blocked["MultiNicNodeConfig"]
    assert memo.read == 1
