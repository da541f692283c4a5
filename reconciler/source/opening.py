"""The one way to open a config repo from what the user typed: a local directory or a Git URL.

``SourceSpec`` is the source as the flags, ``MULTINIC_*`` env or chart values describe it (URL,
pin, signature policy). ``open_source(spec, cache_dir)`` returns the ``Source`` the loop polls;
``one_checkout(spec)`` is the single-shot form ``plan`` and ``apply --once`` use. Both dispatch on
``is_remote`` here, and nowhere else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from reconciler.source.local import Checkout, open_directory

Verify = Literal["none", "head"]


class SourceError(RuntimeError):
    """The config repo cannot be opened (message is scrubbed of credentials)."""


def is_remote(repo: str) -> bool:
    """A Git URL (https://, ssh://, git://, file://, git@host:path) rather than a local directory."""
    return "://" in repo or repo.startswith("git@")


@dataclass(frozen=True)
class SourceSpec:
    url: str  # a local directory or a Git URL
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    verify: Verify = "none"  # "head": the followed commit must carry a trusted signature
    allowed_signers: Path | None = None  # SSH allowed-signers file (git's gpg.ssh.allowedSignersFile)
    gpg_home: Path | None = None  # GnuPG home holding the trusted keys

    @property
    def remote(self) -> bool:
        return is_remote(self.url)

    def check(self) -> None:
        """Refuse contradictory pins and options that only make sense for a Git URL."""
        pins = [name for name, value in (("branch", self.branch), ("tag", self.tag), ("commit", self.commit))
                if value]
        if len(pins) > 1:
            raise SourceError(f"pin the config repo by one of branch, tag or commit, not {' and '.join(pins)}")
        if self.verify == "head" and self.allowed_signers is None and self.gpg_home is None:
            raise SourceError("signature verification needs --allowed-signers (SSH) or --gpg-home (GnuPG)")
        if not self.remote and (pins or self.verify != "none"):
            raise SourceError(f"--{pins[0] if pins else 'verify-signatures'} applies to a Git URL; "
                              f"{self.url} is a local directory (check it out as you need instead)")


class PollResultLike(Protocol):
    @property
    def checkout(self) -> Checkout | None: ...
    @property
    def changed(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


class Source(Protocol):
    """What the loop polls: each poll names the checkout to reconcile and whether it is new."""

    def poll(self) -> PollResultLike: ...


@dataclass(frozen=True)
class LocalPoll:
    checkout: Checkout | None
    changed: bool
    error: str | None = None


class LocalSource:
    """A directory on disk (a checkout kept up to date by something else)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last: str | None = None

    def poll(self) -> LocalPoll:
        if not os.path.isdir(self.path):
            return LocalPoll(None, False, f"{self.path}: not a directory")
        checkout = open_directory(self.path)
        key = f"{checkout.revision}:{checkout.dirty}"
        changed, self._last = key != self._last, key
        return LocalPoll(checkout, changed)


def open_source(spec: SourceSpec, cache_dir: Path) -> Source:
    """The loop's source: a Git remote followed through a cache in ``cache_dir``, or a directory."""
    spec.check()
    if not spec.remote:
        return LocalSource(spec.url)
    from reconciler.source.git import GitSource
    from reconciler.source.gitcmd import GitAuth

    return GitSource(spec.url, branch=spec.branch, tag=spec.tag, commit=spec.commit, cache_dir=cache_dir,
                     auth=GitAuth.from_env(), verify=spec.verify, allowed_signers=spec.allowed_signers,
                     gpg_home=spec.gpg_home)


@contextmanager
def one_checkout(spec: SourceSpec) -> Iterator[Checkout]:
    """One revision for ``plan`` / ``apply --once``; a remote is cloned to a temporary cache."""
    spec.check()
    if not spec.remote:
        if not os.path.isdir(spec.url):
            raise SourceError(f"{spec.url}: not a directory")
        yield open_directory(spec.url)
        return
    with tempfile.TemporaryDirectory(prefix="multinic-source-") as tmp:
        source = open_source(spec, Path(tmp))
        result = source.poll()
        if result.checkout is None:
            from reconciler.source.gitcmd import scrub

            raise SourceError(f"cannot read config repo {scrub(spec.url)}: {result.error}")
        yield result.checkout
