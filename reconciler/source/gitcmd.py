"""Running the real ``git`` (through GitPython) for the Git source and the status write-back.

Credentials never reach an argument list, a URL stored in ``.git/config``, a log line or an error
message: an HTTPS token is handed to git through ``GIT_ASKPASS`` (a script that prints an
environment variable set only for the git process), an SSH key through ``GIT_SSH_COMMAND``, and
every message leaving this module goes through ``scrub``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import git

log = logging.getLogger(__name__)

TOKEN_ENV = "MULTINIC_GIT_TOKEN"
TOKEN_FILE_ENV = "MULTINIC_GIT_TOKEN_FILE"
USERNAME_ENV = "MULTINIC_GIT_USERNAME"
SSH_KEY_ENV = "MULTINIC_GIT_SSH_KEY"
KNOWN_HOSTS_ENV = "MULTINIC_GIT_KNOWN_HOSTS"

# Variables only our askpass script reads; set on the git child process, never on ours.
_ASKPASS_USER = "MULTINIC_ASKPASS_USERNAME"
_ASKPASS_TOKEN = "MULTINIC_ASKPASS_TOKEN"
_ASKPASS_SCRIPT = """#!/bin/sh
# Written by multinic-reconciler: answers git's credential prompts from the environment.
case "$1" in
  Username*) printf '%s\\n' "$MULTINIC_ASKPASS_USERNAME" ;;
  *) printf '%s\\n' "$MULTINIC_ASKPASS_TOKEN" ;;
esac
"""

NETWORK_TIMEOUT = 120.0  # seconds for one clone/fetch/push/ls-remote
LOCAL_TIMEOUT = 60.0

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_BOILERPLATE = {"Please make sure you have the correct access rights", "and the repository exists."}
_HEADER = re.compile(r"(?i)(authorization:\s*)(basic|bearer|token)?\s*\S+")


class GitError(Exception):
    """A failed git command; the message is already scrubbed of credentials."""


@dataclass(frozen=True)
class GitAuth:
    """Credentials for the remote. ``token`` is used for HTTPS, ``ssh_key`` for SSH remotes."""

    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"  # GitHub accepts any user name with a token; GitLab wants oauth2
    ssh_key: Path | None = None
    known_hosts: Path | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> GitAuth | None:
        """``MULTINIC_GIT_TOKEN`` (or ``_TOKEN_FILE``), ``_USERNAME``, ``_SSH_KEY``, ``_KNOWN_HOSTS``."""
        env = os.environ if environ is None else environ
        token = env.get(TOKEN_ENV) or None
        if token is None and env.get(TOKEN_FILE_ENV):
            token = Path(env[TOKEN_FILE_ENV]).read_text(encoding="utf-8").strip() or None
        ssh_key = Path(env[SSH_KEY_ENV]) if env.get(SSH_KEY_ENV) else None
        known_hosts = Path(env[KNOWN_HOSTS_ENV]) if env.get(KNOWN_HOSTS_ENV) else None
        if token is None and ssh_key is None and known_hosts is None:
            return None
        return cls(token=token, username=env.get(USERNAME_ENV) or cls.username, ssh_key=ssh_key,
                   known_hosts=known_hosts)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``https://user:token@host/x`` -> (``https://host/x``, user, token); other URLs unchanged.

    The remote is stored without its credentials; the token then travels through GIT_ASKPASS.
    """
    if "://" not in url:
        return url, None, None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, (unquote(password) if sep and password else None)


def scrub(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Removes URL user info, Authorization headers and the given secret values from ``text``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    return _HEADER.sub(r"\1***", text)


class GitRunner:
    """Runs git for one repository directory with a fixed, credential-bearing environment."""

    def __init__(self, repo_dir: Path, *, auth: GitAuth | None, private_dir: Path,
                 url_user: str | None = None, url_token: str | None = None) -> None:
        self.repo_dir = repo_dir
        token = (auth.token if auth else None) or url_token
        self._secrets = tuple(s for s in ((auth.secrets if auth else ()) + (url_token or "",)) if s)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MULTINIC_GIT_"))}
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", LANG="C")
        # Never prompt; an askpass answering nothing makes an unauthenticated remote fail at once.
        private_dir.mkdir(parents=True, exist_ok=True)
        askpass = private_dir / "askpass.sh"
        if not askpass.exists() or askpass.read_text(encoding="utf-8") != _ASKPASS_SCRIPT:
            askpass.write_text(_ASKPASS_SCRIPT, encoding="utf-8")
        askpass.chmod(stat.S_IRWXU)
        env.update(GIT_ASKPASS=str(askpass), SSH_ASKPASS=str(askpass))
        env[_ASKPASS_USER] = url_user or (auth.username if auth else "x-access-token")
        env[_ASKPASS_TOKEN] = token or ""
        ssh = ["ssh", "-o", "BatchMode=yes"]
        if auth and auth.ssh_key:
            ssh += ["-i", str(auth.ssh_key), "-o", "IdentitiesOnly=yes"]
        if auth and auth.known_hosts:
            ssh += ["-o", f"UserKnownHostsFile={auth.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        env["GIT_SSH_COMMAND"] = " ".join(_sh_quote(a) for a in ssh)
        self._env = env
        self._git = git.Git(str(repo_dir))

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def __call__(self, *args: str, network: bool = False, check: bool = True,
                 input_env: dict[str, str] | None = None, stdin: bytes | None = None) -> tuple[int, str, str]:
        """Runs ``git <config> <args>`` in the repository; returns (status, stdout, stderr).
        ``stdin``: what git reads on its standard input (a path list has no argv size limit there).

        Config: no credential helper (a ``store`` helper would write the token to disk), no hooks.
        """
        # GitPython starts from os.environ: inherited GIT_DIR, GIT_INDEX_FILE (set inside git hooks)
        # and the like would point our commands at another repository, so they are unset.
        inherited = sorted(k for k in os.environ if k.startswith(("GIT_", "MULTINIC_GIT_")) and k not in self._env)
        prefix = ["env", *(a for k in inherited for a in ("-u", k))] if inherited else []
        command = [*prefix, "git", "-c", "credential.helper=", "-c", "core.hooksPath=/dev/null",
                   "-c", "protocol.version=2", *args]
        env = self._env if input_env is None else {**self._env, **input_env}
        with contextlib.ExitStack() as stack:
            istream = None
            if stdin is not None:  # a file, not a pipe: nothing to feed while git runs
                istream = stack.enter_context(tempfile.TemporaryFile())
                istream.write(stdin)
                istream.seek(0)
            try:
                status, out, err = self._git.execute(
                    command, with_extended_output=True, with_exceptions=False, env=env, istream=istream,
                    kill_after_timeout=NETWORK_TIMEOUT if network else LOCAL_TIMEOUT, strip_newline_in_stdout=False,
                    stdout_as_string=True)
            except git.GitCommandError as exc:  # e.g. timeout
                raise GitError(self.scrub(f"git {subcommand(args)}: {exc.stderr or exc}".strip())) from None
            except OSError as exc:
                raise GitError(f"git {subcommand(args)}: cannot run git: {exc}") from None
        assert isinstance(out, str) and isinstance(err, str)
        if check and status != 0:
            raise GitError(self.describe(subcommand(args), err))
        return status, out, err

    def describe(self, subcommand: str, stderr: str) -> str:
        """A one-line, scrubbed reason from git's stderr."""
        lines = [ln.strip() for ln in stderr.splitlines()
                 if ln.strip() and not ln.startswith("hint:") and ln.strip() not in _BOILERPLATE]
        reason = "; ".join(lines[-3:]) or "failed"
        return self.scrub(f"git {subcommand}: {reason}")

    def out(self, *args: str, network: bool = False, input_env: dict[str, str] | None = None) -> str:
        return self(*args, network=network, input_env=input_env)[1].strip()


def config_fingerprint(git: GitRunner, commit: str, status_dir: str = "status") -> str:
    """Identity of ``commit``'s tree without ``status/``: equal fingerprints, equal configuration
    (the source tells config commits from status commits by it; the status writer tells whether
    the branch still holds the configuration a status describes)."""
    listing = git("ls-tree", "-z", "--full-tree", commit)[1]
    entries = sorted(e for e in listing.split("\0") if e and e.split("\t", 1)[-1] != status_dir)
    return hashlib.sha256("\0".join(entries).encode()).hexdigest()


def subcommand(args: tuple[str, ...] | list[str]) -> str:
    """``("-c", "x=y", "fetch", ...)`` -> ``fetch``."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-c", "-C"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "git"


def _sh_quote(arg: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./=:@%+-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"
