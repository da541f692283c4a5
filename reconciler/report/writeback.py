"""Commits the rendered ``status/`` tree back to the config repo and pushes it, never forcing.

Each attempt builds the status commit from scratch on top of the remote's current head, with
plumbing and a private index: the head's tree is read, ``status/`` is replaced by exactly the given
files, every other path stays byte-for-byte the head's. Blob ids are computed in memory and
compared with the head's ``status/`` listing, so only the files whose content changed are written
as objects and only those index entries change: a 10,000-node status with one changed report
writes one blob, not 10,000 files. A push rejected because someone pushed
meanwhile (non-fast-forward) is therefore retried by fetching the new head and rebuilding on it:
the config commit that arrived is kept, the history stays linear, nothing is ever force-pushed.

Fenced like the Kubernetes writes: ``fence`` (the leader check) is called right before every push
attempt, so a replica that lost its Lease while inside the write-back (frozen, partitioned) never
pushes once replaced. And a status describes one configuration (``describes``: the config
fingerprint of its revision, as the source computes it): when the status branch is the config
branch and the head it would be built on holds another configuration, the status is stale and is
not pushed (``superseded``); the writer that read the newer commit writes its own.

The writer keeps its own bare, shallow clone in ``work_dir``; it never touches the source's
checkouts.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reconciler.kube.client import NotLeader
from reconciler.source.gitcmd import GitAuth, GitError, GitRunner, config_fingerprint, split_credentials

log = logging.getLogger(__name__)

STATUS_DIR = "status"
SKIP_CI = "[skip ci]"
# Lost races: the branch moved after our fetch, or another push held the ref's lock at that instant.
_REJECTED = re.compile(r"^!\t\S+\t(\[rejected\] \((non-fast-forward|fetch first)\)"
                       r"|\[remote rejected\] \((cannot lock ref|failed to update ref)[^)]*\))", re.MULTILINE)
_MISSING_REF = ("couldn't find remote ref", "could not find remote ref")


@dataclass(frozen=True)
class WriteResult:
    committed: bool  # a status commit was created (False: the remote already holds these files)
    pushed: bool  # the remote branch now holds our commit (or was created)
    commit: str | None  # our status commit, when one was made
    attempts: int  # push attempts (1 without contention)
    error: str | None  # scrubbed reason when the status could not be pushed
    superseded: bool = False  # not pushed: the branch holds a newer configuration than the status describes


class _Rejected(Exception):
    """The push lost a race: the remote branch moved after our fetch."""


class StatusWriter:
    def __init__(self, repo_url: str, *, branch: str, status_branch: str | None = None,
                 author_name: str = "multinic-reconciler", author_email: str = "multinic-reconciler@localhost",
                 work_dir: Path | str, auth: GitAuth | None = None, max_attempts: int = 5,
                 backoff: float = 0.2, shallow: bool = True) -> None:
        self.url, url_user, url_token = split_credentials(repo_url)
        self.branch = branch
        self.status_branch = status_branch or branch
        self.author_name, self.author_email = author_name, author_email
        self.work_dir = Path(work_dir)
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.shallow = shallow
        self._repo = self.work_dir / "repo.git"
        self.git = GitRunner(self._repo, auth=auth, private_dir=self.work_dir / "private",
                             url_user=url_user, url_token=url_token)
        self._format: str | None = None  # the repository's object format (sha1 or sha256)

    def write(self, files: dict[str, str], message: str, *, fence: Callable[[], None] | None = None,
              describes: str | None = None) -> WriteResult:
        """Makes ``status/`` on the status branch hold exactly ``files``; commits only on change.

        ``fence`` raises ``NotLeader`` when this replica may no longer write: checked right before
        each push. ``describes``: the config fingerprint of the revision ``files`` describe."""
        files = _checked(files)
        if SKIP_CI not in message:
            message = f"{message.rstrip()} {SKIP_CI}"
        attempt = 0
        try:
            self._ensure_repo()
            while True:
                attempt += 1
                base, exists = self._fetch_base()
                if describes is not None and self.status_branch == self.branch and exists \
                        and config_fingerprint(self.git, base) != describes:
                    log.info("status for an older configuration not pushed: %s holds a newer config commit",
                             self.status_branch)
                    return WriteResult(False, False, None, attempt, None, superseded=True)
                tree = self._tree_with(base, files)
                unchanged = tree == self.git.out("rev-parse", base + "^{tree}")
                if unchanged and exists:
                    return WriteResult(False, False, None, attempt, None)  # nothing to commit: not an error
                # Unchanged but absent: the new status branch is created at the watched head.
                commit = base if unchanged else self._commit(tree, base, message)
                try:
                    if fence is not None:
                        fence()  # leadership, checked right before the push (as every Kubernetes write)
                    self._push(commit)
                except _Rejected:
                    if attempt >= self.max_attempts:
                        return WriteResult(False, False, None, attempt,
                                           f"push to {self.status_branch} rejected {attempt} times: the branch keeps "
                                           "moving; the next cycle tries again")
                    log.info("status push to %s rejected (the branch moved); rebuilding on the new head",
                             self.status_branch)
                    time.sleep(self.backoff * attempt * (1 + random.random()))
                    continue
                log.info("status commit %s pushed to %s", commit[:12], self.status_branch)
                return WriteResult(commit != base, True, commit if commit != base else None, attempt, None)
        except NotLeader as exc:
            log.warning("status push refused: %s", exc)
            return WriteResult(False, False, None, attempt, f"status push refused: {exc}")
        except GitError as exc:
            log.warning("status write-back to %s: %s", self.url, exc)
            return WriteResult(False, False, None, attempt, str(exc))
        except OSError as exc:
            return WriteResult(False, False, None, attempt, self.git.scrub(f"status write-back: {exc}"))

    # -- steps ------------------------------------------------------------------------------------

    def _ensure_repo(self) -> None:
        if not (self._repo / "HEAD").exists():
            self._repo.mkdir(parents=True, exist_ok=True)
            self.git("init", "--quiet", "--bare", str(self._repo))
            self.git("config", "gc.auto", "256")
        self.git("config", "remote.origin.url", self.url)

    def _fetch(self, branch: str) -> tuple[int, str]:
        depth = ["--depth=1"] if self.shallow else []
        status, _, err = self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", *depth, "origin",
                                  f"+refs/heads/{branch}:refs/remotes/origin/{branch}", network=True, check=False)
        if status != 0 and depth and "shallow" in err.lower() and not any(m in err for m in _MISSING_REF):
            self.shallow = False
            return self._fetch(branch)
        return status, err

    def _fetch_base(self) -> tuple[str, bool]:
        """The remote head to build on, and whether the status branch exists already."""
        status, err = self._fetch(self.status_branch)
        if status == 0:
            return self.git.out("rev-parse", f"refs/remotes/origin/{self.status_branch}^{{commit}}"), True
        if self.status_branch == self.branch or not any(m in err for m in _MISSING_REF):
            raise GitError(self.git.describe("fetch", err))
        # A separate status branch that does not exist yet starts at the watched branch.
        status, err = self._fetch(self.branch)
        if status != 0:
            raise GitError(self.git.describe("fetch", err))
        return self.git.out("rev-parse", f"refs/remotes/origin/{self.branch}^{{commit}}"), False

    def _tree_with(self, base: str, files: dict[str, str]) -> str:
        """The tree of ``base`` with ``status/`` replaced by ``files`` (a private index, no work tree)."""
        if self._format is None:
            self._format = self.git.out("rev-parse", "--show-object-format") or "sha1"
        listing = self.git("ls-tree", "-r", "-z", "--full-tree", base, "--", STATUS_DIR)[1]
        current: dict[str, tuple[str, str]] = {}
        for entry in listing.split("\0"):
            if entry:
                meta, path = entry.split("\t", 1)
                mode, _, object_id = meta.split(" ")
                current[path] = (mode, object_id)
        data = {path: content.encode("utf-8") for path, content in files.items()}
        wanted = {path: _blob_id(self._format, raw) for path, raw in data.items()}
        changed = [p for p, object_id in wanted.items() if current.get(p) != ("100644", object_id)]
        removed = [p for p in current if p not in wanted]
        if not changed and not removed:
            return self.git.out("rev-parse", base + "^{tree}")
        private = self.work_dir / "private"
        index = private / "status.index"
        scratch = Path(tempfile.mkdtemp(prefix="status-", dir=private))
        try:
            self._write_blobs(scratch, {p: data[p] for p in changed}, wanted)
            index.unlink(missing_ok=True)
            env = {"GIT_INDEX_FILE": str(index)}
            self.git("read-tree", base, input_env=env)
            # update-index wants a work tree even for index-only edits: an empty one (the scratch dir's).
            empty = scratch / "empty"
            empty.mkdir()
            for chunk in _chunks(removed):
                self.git(f"--work-tree={empty}", "update-index", "--force-remove", "--", *chunk, input_env=env)
            for chunk in _chunks(changed):
                entries = [a for p in chunk for a in ("--cacheinfo", f"100644,{wanted[p]},{p}")]
                self.git(f"--work-tree={empty}", "update-index", "--add", *entries, input_env=env)
            return self.git.out("write-tree", input_env=env)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            index.unlink(missing_ok=True)

    def _write_blobs(self, scratch: Path, blobs: dict[str, bytes], wanted: dict[str, str]) -> None:
        """Stores the changed files as blobs (``hash-object -w``, no filters: the bytes as given)."""
        names = {}
        for number, (path, raw) in enumerate(blobs.items()):
            name = scratch / f"{number}"
            name.write_bytes(raw)
            names[path] = str(name)
        paths = list(names)
        for chunk in _chunks(paths):
            ids = self.git.out("hash-object", "-w", "--no-filters", "--", *(names[p] for p in chunk)).split()
            if ids != [wanted[p] for p in chunk]:
                raise GitError("git hash-object: stored blob ids differ from the computed ones")

    def _commit(self, tree: str, parent: str, message: str) -> str:
        env = {"GIT_AUTHOR_NAME": self.author_name, "GIT_AUTHOR_EMAIL": self.author_email,
               "GIT_COMMITTER_NAME": self.author_name, "GIT_COMMITTER_EMAIL": self.author_email}
        return self.git.out("-c", "commit.gpgSign=false", "commit-tree", tree, "-p", parent, "-m", message,
                            input_env=env)

    def _push(self, commit: str) -> None:
        """A plain (fast-forward only) push; raises _Rejected when the branch moved since our fetch."""
        status, out, err = self.git("push", "--porcelain", "--quiet", "origin",
                                    f"{commit}:refs/heads/{self.status_branch}", network=True, check=False)
        if status == 0:
            return
        if _REJECTED.search(out):
            raise _Rejected
        raise GitError(self.git.describe("push", "\n".join(x for x in (err, _porcelain_reason(out)) if x)))


def _blob_id(object_format: str, raw: bytes) -> str:
    """The id Git gives a blob of these bytes (``git hash-object``), without running Git."""
    return hashlib.new(object_format, b"blob %d\0" % len(raw) + raw).hexdigest()


def _chunks(items: list[str], size: int = 1000) -> list[list[str]]:
    """Bounded argument lists (the command line has a size limit)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def _porcelain_reason(out: str) -> str:
    return "; ".join(line.split("\t")[-1] for line in out.splitlines() if line.startswith("!"))


def _checked(files: dict[str, str]) -> dict[str, str]:
    """Every path must be a plain relative path inside status/ (we never write anything else)."""
    checked: dict[str, str] = {}
    for path, content in files.items():
        pure = PurePosixPath(path)
        parts = pure.parts
        if (pure.is_absolute() or len(parts) < 2 or parts[0] != STATUS_DIR or any(p in ("", ".", "..") for p in parts)
                or "\\" in path or str(pure) != path or any(p == ".git" for p in parts)):
            raise ValueError(f"{path!r}: status files must be relative paths under {STATUS_DIR}/")
        checked[path] = content
    return checked
