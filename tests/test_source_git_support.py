"""Helpers for the Git source and write-back tests (no tests here): a real bare remote seeded from
example-repo, a "user" with their own clone, ``git daemon`` on 127.0.0.1, and a ``git`` wrapper on
PATH that logs every invocation. Everything lives in tmp_path; nothing touches the project's repo.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example-repo"
REAL_GIT = shutil.which("git") or "git"

# A clean git environment: no inherited GIT_DIR/GIT_INDEX_FILE (e.g. under a hook), no user config.
_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
_ENV.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0", LC_ALL="C")


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    result = subprocess.run([REAL_GIT, *args], cwd=cwd, env=_ENV, capture_output=True, text=True, timeout=60,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Remote:
    """A bare repository (``bare``) and a user's clone of it (``clone``) on branch ``main``."""

    bare: Path
    clone: Path
    branch: str = "main"

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def head(self, branch: str | None = None) -> str:
        return git("rev-parse", f"refs/heads/{branch or self.branch}", cwd=self.bare)

    def commit(self, files: dict[str, str | None], message: str, *, branch: str | None = None,
               author: str = "Config User <user@example.com>", sign_key: Path | None = None) -> str:
        """Commits ``files`` (None deletes) on top of the remote's branch as the user, pushes; returns the commit."""
        branch = branch or self.branch
        git("fetch", "--quiet", "origin", cwd=self.clone)
        git("checkout", "--quiet", "--force", "-B", branch, f"origin/{branch}", cwd=self.clone)
        for path, content in files.items():
            target = self.clone / path
            if content is None:
                git("rm", "--quiet", "-r", "--", path, cwd=self.clone)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
                git("add", "--", path, cwd=self.clone)
        name, _, email = author.partition(" <")
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingKey={sign_key}", "-c", "commit.gpgSign=true"] \
            if sign_key else ["-c", "commit.gpgSign=false"]
        git("-c", f"user.name={name}", "-c", f"user.email={email.rstrip('>')}", *sign, "commit", "--quiet",
            "--allow-empty", "-m", message, cwd=self.clone)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone)

    def log(self, branch: str | None = None) -> list[str]:
        """``<commit> <parents> | <author name> <email> | <subject>`` lines, newest first."""
        return git("log", "--format=%H %P|%an <%ae>|%s", f"refs/heads/{branch or self.branch}",
                   cwd=self.bare).splitlines()

    def show(self, path: str, branch: str | None = None) -> str | None:
        out = subprocess.run([REAL_GIT, "show", f"refs/heads/{branch or self.branch}:{path}"], cwd=self.bare,
                             env=_ENV, capture_output=True, text=True, check=False)
        return out.stdout if out.returncode == 0 else None

    def files(self, folder: str, branch: str | None = None) -> list[str]:
        return git("ls-tree", "-r", "--name-only", f"refs/heads/{branch or self.branch}", "--", folder,
                   cwd=self.bare).splitlines()


def make_remote(root: Path) -> Remote:
    """A bare remote on ``main`` seeded with example-repo by a user; force pushes are refused."""
    bare = root / "served" / "config.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git("config", "receive.denyNonFastForwards", "true", cwd=bare)
    git("config", "receive.denyDeletes", "false", cwd=bare)
    clone = root / "user"
    git("init", "--quiet", "--initial-branch=main", str(clone))
    git("remote", "add", "origin", bare.as_uri(), cwd=clone)
    shutil.copytree(EXAMPLE, clone, dirs_exist_ok=True)
    git("add", "--all", cwd=clone)
    git("-c", "user.name=Config User", "-c", "user.email=user@example.com", "commit", "--quiet", "-m",
        "Seed from example-repo", cwd=clone)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone)
    return Remote(bare, clone)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GitDaemon:
    """``git daemon`` serving ``base`` on 127.0.0.1:``port``; ``requests`` counts upload-pack requests."""

    base: Path
    log_file: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, name: str = "config.git") -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [REAL_GIT, "daemon", "--reuseaddr", f"--base-path={self.base}", "--export-all", "--enable=receive-pack",
             f"--port={self.port}", "--listen=127.0.0.1", "--verbose", "--informative-errors", str(self.base)],
            stdout=log, stderr=log, env=_ENV)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise AssertionError(f"git daemon exited: {self.log_file.read_text(errors='replace')}") from None
                time.sleep(0.05)
        raise AssertionError("git daemon did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def requests(self, service: str = "upload-pack") -> int:
        time.sleep(0.1)  # the daemon's child logs the request asynchronously
        return self.log_file.read_text(errors="replace").count(f"Request {service} for")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path)


@pytest.fixture
def daemon(remote: Remote, tmp_path: Path) -> Iterator[GitDaemon]:
    server = GitDaemon(remote.bare.parent, tmp_path / "daemon.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class GitLog:
    """Every ``git`` run through PATH, one line of arguments each (the wrapper below writes them)."""

    path: Path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def subcommands(self) -> list[str]:
        from reconciler.source.gitcmd import subcommand

        return [subcommand(line.split(" ")) for line in self.lines()]


@pytest.fixture
def git_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitLog:
    """Puts a logging wrapper named ``git`` first on PATH; it runs the real git."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = GitLog(tmp_path / "git-invocations.log")
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log.path}"\nexec "{REAL_GIT}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log
