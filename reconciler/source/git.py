"""A config repo behind a Git remote: a cached bare clone, cheap polls, one exported tree per revision.

Layout of ``cache_dir``::

    repo.git/              bare, usually shallow; refs/multinic/fetched = last fetched head,
                           refs/multinic/config = the revision handed to the pipeline
    checkouts/<commit>/    the commit's configuration: its tree without ``status/`` (no .git),
                           renamed into place only once written; unchanged files are hard links
                           to the previous checkout's (``export``)
    private/               askpass script, temporary index

A poll asks the remote for the pinned ref (``git ls-remote``); only when that moved does it fetch
(``--depth=1`` where the transport allows). A commit that changes nothing outside ``status/`` is
fetched but is not a config change: the checkout stays on the last config revision, so status
commits written back by the reconciler never trigger a reconcile (nor churn ``appliedRevision``).
Any failure keeps the last good checkout and reports a scrubbed error; nothing half-fetched is
ever exposed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.source import export
from reconciler.source.gitcmd import GitAuth, GitError, GitRunner, config_fingerprint, split_credentials
from reconciler.source.local import Checkout

__all__ = ["GitAuth", "GitError", "GitSource", "PollResult"]

log = logging.getLogger(__name__)

STATUS_DIR = "status"
FETCHED_REF = "refs/multinic/fetched"
CONFIG_REF = "refs/multinic/config"
KEEP_CHECKOUTS = 2  # the current one and its predecessor (a caller may still be reading it)


@dataclass(frozen=True)
class PollResult:
    checkout: Checkout | None  # the last good config revision (None until one was fetched)
    changed: bool  # a new config revision (paths outside status/) since the previous poll
    error: str | None  # why this poll could not fetch/verify (scrubbed); the checkout is then the last good one
    remote_head: str | None  # the commit the remote's ref points at (None when it could not be asked)


class GitSource:
    """Follows one branch, tag or commit of a remote config repo."""

    def __init__(self, url: str, *, branch: str | None = None, tag: str | None = None, commit: str | None = None,
                 cache_dir: Path | str, auth: GitAuth | None = None, shallow: bool = True,
                 verify: Literal["none", "head"] = "none", allowed_signers: Path | None = None,
                 gpg_home: Path | None = None) -> None:
        if sum(x is not None for x in (branch, tag, commit)) > 1:
            raise ValueError("pin by one of branch, tag or commit")
        if verify == "head" and allowed_signers is None and gpg_home is None:
            raise ValueError("verify='head' needs allowed_signers (SSH) or gpg_home (GnuPG keyring)")
        self.url, url_user, url_token = split_credentials(url)
        self.branch, self.tag, self.commit = branch, tag, commit.lower() if commit else None
        self.cache_dir = Path(cache_dir)
        self.shallow = shallow
        self.verify, self.allowed_signers, self.gpg_home = verify, allowed_signers, gpg_home
        self._repo = self.cache_dir / "repo.git"
        self._checkouts = self.cache_dir / "checkouts"
        self.git = GitRunner(self._repo, auth=auth, private_dir=self.cache_dir / "private",
                             url_user=url_user, url_token=url_token)
        self._checkout: Checkout | None = None
        self._config_key: str | None = None  # fingerprint of the checkout's non-status tree
        self._fetched: str | None = None  # last fetched head (any commit, status-only included)
        self._rejected: tuple[str, str] | None = None  # (head, reason) that failed verification
        self._ready = False  # cache repository set up by this process
        self._entries: tuple[str, dict[str, export.Entry]] | None = None  # (commit, listing) of the checkout

    # -- public -----------------------------------------------------------------------------------

    @property
    def checkout(self) -> Checkout | None:
        return self._checkout

    @property
    def ref(self) -> str:
        """The remote ref followed (``HEAD`` until the default branch is known)."""
        if self.tag is not None:
            return f"refs/tags/{self.tag}"
        return f"refs/heads/{self.branch}" if self.branch else "HEAD"

    def poll(self) -> PollResult:
        """One cheap look at the remote; fetches and exports only when the pinned ref moved."""
        try:
            self._ensure_repo()
            head = self._remote_head()
        except GitError as exc:
            log.warning("config repo %s: %s", self.url, exc)
            return PollResult(self._checkout, False, str(exc), None)
        if head == self._fetched and self._checkout is not None:
            rejected = self._rejected[1] if self._rejected and self._rejected[0] == head else None
            return PollResult(self._checkout, False, rejected, head)
        try:
            fetched = self._fetch(head)
            return self._advance(fetched, head)
        except GitError as exc:
            log.warning("config repo %s: %s", self.url, exc)
            return PollResult(self._checkout, False, str(exc), head)
        except OSError as exc:
            error = self.git.scrub(f"cannot write the checkout: {exc}")
            return PollResult(self._checkout, False, error, head)

    # -- steps ------------------------------------------------------------------------------------

    def _ensure_repo(self) -> None:
        if self._ready:
            return
        if not (self._repo / "HEAD").exists():
            self._repo.mkdir(parents=True, exist_ok=True)
            self.git("init", "--quiet", "--bare", str(self._repo))
            self.git("config", "remote.origin.url", self.url)
            self.git("config", "gc.auto", "256")
        elif self.git.out("config", "remote.origin.url") != self.url:
            self.git("config", "remote.origin.url", self.url)
        self._checkouts.mkdir(parents=True, exist_ok=True)
        for leftover in self._checkouts.glob(".tmp-*"):  # an export interrupted by a crash
            shutil.rmtree(leftover, ignore_errors=True)
        self._restore()
        self._ready = True

    def _restore(self) -> None:
        """After a restart: reuse the cached revision (the first poll still reports it as changed)."""
        status, out, _ = self.git("rev-parse", "--verify", "-q", FETCHED_REF + "^{commit}", check=False)
        if status == 0:
            self._fetched = out.strip()

    def _remote_head(self) -> str:
        if self.commit is not None:
            return self.commit  # immutable: no need to ask the remote
        if self.ref == "HEAD":
            out = self.git.out("ls-remote", "--symref", "origin", "HEAD", network=True)
            for line in out.splitlines():
                if line.startswith("ref: ") and line.endswith("\tHEAD"):
                    self.branch = line[5:].split("\t")[0].removeprefix("refs/heads/")
        else:
            out = self.git.out("ls-remote", "origin", self.ref, self.ref + "^{}", network=True)
        heads: dict[str, str] = {}
        for line in out.splitlines():
            if "\t" in line and not line.startswith("ref: "):
                sha, name = line.split("\t", 1)
                heads[name] = sha
        head = heads.get(self.ref + "^{}") or heads.get(self.ref) or heads.get("HEAD")
        if not head:
            raise GitError(f"{self.ref.removeprefix('refs/heads/')}: no such ref on the remote")
        return head

    def _fetch(self, head: str) -> str:
        """Fetches ``head`` into FETCHED_REF; returns the commit actually fetched."""
        if self._has_commit(head):
            self.git("update-ref", FETCHED_REF, head)
            return head
        sources = [head] if self.commit is not None else [f"+{self.ref}:{FETCHED_REF}"]
        depth = ["--depth=1"] if self.shallow else []
        status, _, err = self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", *depth, "origin", *sources,
                                  network=True, check=False)
        if status != 0 and depth and "shallow" in err.lower():
            depth = []  # e.g. the dumb HTTP transport: fall back to a full fetch
            status, _, err = self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "origin", *sources,
                                      network=True, check=False)
        if status != 0 and self.commit is not None:
            # The server refuses to serve a commit by id: fetch every branch and look for it.
            status, _, err = self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "origin",
                                      "+refs/heads/*:refs/multinic/all/*", network=True, check=False)
        if status != 0:
            raise GitError(self.git.describe("fetch", err))
        if self.commit is not None:
            if not self._has_commit(self.commit):
                raise GitError(f"commit {self.commit} not found on the remote")
            self.git("update-ref", FETCHED_REF, self.commit)
            return self.commit
        return self.git.out("rev-parse", "--verify", FETCHED_REF + "^{commit}")

    def _advance(self, fetched: str, head: str) -> PollResult:
        key = self._config_fingerprint(fetched)
        self._fetched = fetched
        if self._checkout is not None and key == self._config_key:
            # Only status/ (or nothing) changed: remember the head so we do not fetch it again.
            return PollResult(self._checkout, False, None, head)
        if self.verify == "head":
            reason = self._verify(fetched)
            if reason is not None:
                self._rejected = (head, reason)
                log.warning("config repo %s: %s", self.url, reason)
                return PollResult(self._checkout, False, reason, head)
        self._checkout = self._export(fetched)
        self._config_key = key
        self._rejected = None
        self.git("update-ref", CONFIG_REF, fetched)
        self._prune(keep=fetched)
        log.info("config repo %s: revision %s", self.url, fetched[:12])
        return PollResult(self._checkout, True, None, head)

    def _config_fingerprint(self, commit: str) -> str:
        """Identity of the commit's tree without ``status/``: equal trees, equal configuration."""
        return config_fingerprint(self.git, commit, STATUS_DIR)

    def fetched_file(self, path: str) -> str | None:
        """``path`` as the last fetched head holds it (status commits included; None when it has no
        such file). The checkout leaves ``status/`` out: this is how the last status is read back."""
        if self._fetched is None:
            return None
        status, out, _ = self.git("cat-file", "blob", f"{self._fetched}:{path}", check=False)
        return out if status == 0 else None

    def config_fingerprint(self, revision: str) -> str | None:
        """The fingerprint of a fetched config revision (None when it is not here)."""
        if self.git("cat-file", "-e", revision + "^{commit}", check=False)[0] != 0:
            return None
        return self._config_fingerprint(revision)

    def _export(self, commit: str) -> Checkout:
        """Writes the commit's tree, without ``status/``, into ``checkouts/<commit>`` (atomically: a rename).

        From the previous checkout when there is one (only the changed files are written; it is
        left as it is, a caller may still be reading it), else, or when that is not possible, in full."""
        final = self._checkouts / commit
        entries = export.listing(self.git, commit, without=STATUS_DIR)
        if final.is_dir():
            return self._checkout_of(final, commit, entries)
        index = self.cache_dir / "private" / "export.index"
        base = self._checkout
        tmp = self._tmp()
        try:
            try:
                if base is None or self._entries is None or self._entries[0] != base.revision:
                    raise export.Unexpected("no previous checkout")
                written = export.incremental(self.git, commit, tmp, index, base=base.path,
                                             base_entries=self._entries[1], entries=entries)
                log.debug("checkout %s: %d of %d files written, the rest linked from %s", commit[:12], written,
                          len(entries), base.revision[:12])
            except export.Unexpected as exc:
                if base is not None:
                    log.info("checkout %s: full export (%s)", commit[:12], exc)
                shutil.rmtree(tmp, ignore_errors=True)
                tmp = self._tmp()
                export.full(self.git, commit, tmp, index, entries)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self._checkout_of(final, commit, entries)

    def _tmp(self) -> Path:
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._checkouts))
        tmp.chmod(0o755)  # mkdtemp makes it private; the tree is not secret
        return tmp

    def _checkout_of(self, path: Path, commit: str, entries: dict[str, export.Entry]) -> Checkout:
        self._entries = (commit, entries)
        return Checkout(path, commit, blobs=export.blobs(entries))

    def _prune(self, keep: str) -> None:
        checkouts = [p for p in self._checkouts.iterdir() if not p.name.startswith(".")]
        checkouts.sort(key=lambda p: (p.name == keep, p.stat().st_mtime))
        for old in checkouts[:-KEEP_CHECKOUTS]:
            shutil.rmtree(old, ignore_errors=True)

    def _verify(self, commit: str) -> str | None:
        """None when the commit carries a good signature from an allowed key, else the reason."""
        config = ["-c", f"gpg.ssh.allowedSignersFile={self.allowed_signers}"] if self.allowed_signers else []
        env = {"GNUPGHOME": str(self.gpg_home)} if self.gpg_home else None
        status, _, err = self.git(*config, "verify-commit", commit, check=False, input_env=env)
        if status == 0:
            return None
        if not err.strip():
            return f"commit {commit[:12]} is not signed by an allowed key: it carries no signature"
        return self.git.describe("verify-commit", err).replace(
            "git verify-commit:", f"commit {commit[:12]} is not signed by an allowed key:", 1)

    def _has_commit(self, commit: str) -> bool:
        return self.git("cat-file", "-e", commit + "^{commit}", check=False)[0] == 0

