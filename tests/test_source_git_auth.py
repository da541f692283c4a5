"""Credentials: tokens reach the server through GIT_ASKPASS and never an error, a log line, a URL or a file."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from test_source_git_support import Remote

from reconciler.report.writeback import StatusWriter
from reconciler.source.git import GitSource
from reconciler.source.gitcmd import GitAuth, GitRunner, scrub, split_credentials
from reconciler.source.opening import SourceSpec, one_checkout

pytest_plugins = ["test_source_git_support"]  # fixtures: remote

SECRET = "SECRETghp_0123456789abcdef"


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


class AuthServer(BaseHTTPRequestHandler):
    """Asks for Basic credentials, records what came back, then says 'not found'."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        header = self.headers.get("Authorization")
        if header is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        self.seen.append(header)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def auth_server() -> Iterator[tuple[str, list[str]]]:
    seen: ClassVar[list[str]] = []
    handler = type("Handler", (AuthServer,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/config.git", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_in_the_url_never_appears_in_errors_logs_exceptions_or_the_cache(tmp_path: Path,
                                                                                 caplog: pytest.LogCaptureFixture):
    url = f"https://user:{SECRET}@127.0.0.1:1/x.git"
    with caplog.at_level(logging.DEBUG):
        result = GitSource(url, branch="main", cache_dir=tmp_path / "cache").poll()
        with pytest.raises(RuntimeError) as raised, one_checkout(SourceSpec(url, branch="main")):
            pass
        written = StatusWriter(url, branch="main", work_dir=tmp_path / "writer").write({"status/a": "x"}, "status")
    assert result.checkout is None and result.error and result.remote_head is None
    for text in (result.error, str(raised.value), written.error or "", caplog.text):
        assert SECRET not in text
        assert "127.0.0.1:1" in text or text == caplog.text
    assert files_containing(tmp_path, SECRET) == []


def test_a_token_from_the_environment_never_appears_in_errors_logs_or_the_cache(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MULTINIC_GIT_TOKEN", SECRET)
    auth = GitAuth.from_env()
    assert auth is not None and auth.token == SECRET and SECRET not in repr(auth)
    with caplog.at_level(logging.DEBUG):
        result = GitSource("https://127.0.0.1:1/x.git", branch="main", cache_dir=tmp_path / "cache",
                           auth=auth).poll()
    assert result.error and SECRET not in result.error and SECRET not in caplog.text
    assert files_containing(tmp_path, SECRET) == []


def test_the_token_reaches_an_https_server_through_askpass_and_is_not_stored(
        tmp_path: Path, auth_server: tuple[str, list[str]], caplog: pytest.LogCaptureFixture):
    url, seen = auth_server
    source = GitSource(url, branch="main", cache_dir=tmp_path / "cache",
                       auth=GitAuth(token=SECRET, username="x-access-token"))
    with caplog.at_level(logging.DEBUG):
        result = source.poll()
    expected = "Basic " + base64.b64encode(f"x-access-token:{SECRET}".encode()).decode()
    assert seen and set(seen) == {expected}
    assert result.error and SECRET not in result.error and SECRET not in caplog.text
    assert files_containing(tmp_path, SECRET) == []


def test_credentials_in_a_url_are_moved_out_of_the_remote_and_used_through_askpass(
        tmp_path: Path, auth_server: tuple[str, list[str]]):
    url, seen = auth_server
    with_credentials = url.replace("http://", f"http://deploy:{SECRET}@")
    source = GitSource(with_credentials, branch="main", cache_dir=tmp_path / "cache")
    result = source.poll()
    assert seen and seen[0] == "Basic " + base64.b64encode(f"deploy:{SECRET}".encode()).decode()
    assert source.url == url
    assert result.error and SECRET not in result.error
    assert files_containing(tmp_path, SECRET) == []


def test_scrub_removes_url_credentials_authorization_headers_and_known_secrets():
    text = (f"fatal: unable to access 'https://u:{SECRET}@github.com/x.git/': 403; "
            f"http.extraHeader=Authorization: Basic {SECRET}; askpass said {SECRET}")
    clean = scrub(text, [SECRET])
    assert SECRET not in clean and "https://***@github.com/x.git/" in clean
    assert scrub(f"https://{SECRET}@host/x") == "https://***@host/x"  # unknown token alone as user


def test_split_credentials_leaves_ssh_and_file_urls_alone():
    assert split_credentials("https://a:b@h/x.git") == ("https://h/x.git", "a", "b")
    assert split_credentials("https://h/x.git") == ("https://h/x.git", None, None)
    assert split_credentials("ssh://git@h/x.git") == ("ssh://git@h/x.git", None, None)
    assert split_credentials("git@github.com:o/r.git") == ("git@github.com:o/r.git", None, None)


def test_an_ssh_key_and_known_hosts_are_used_strictly_and_a_failure_is_reported(tmp_path: Path):
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    key.write_text("not a real key\n")
    known.write_text("")
    auth = GitAuth(ssh_key=key, known_hosts=known)
    runner = GitRunner(tmp_path, auth=auth, private_dir=tmp_path / "private")
    ssh = runner._env["GIT_SSH_COMMAND"]
    assert f"-i {key}" in ssh and f"UserKnownHostsFile={known}" in ssh and "StrictHostKeyChecking=yes" in ssh
    assert "BatchMode=yes" in ssh
    result = GitSource("ssh://git@127.0.0.1:1/config.git", branch="main", cache_dir=tmp_path / "cache",
                       auth=auth).poll()
    assert result.checkout is None and result.error and result.error.startswith("git ls-remote:")


def test_auth_from_the_environment_reads_a_token_file_and_ssh_settings(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    env = {"MULTINIC_GIT_TOKEN_FILE": str(token), "MULTINIC_GIT_USERNAME": "oauth2",
           "MULTINIC_GIT_SSH_KEY": "/keys/id", "MULTINIC_GIT_KNOWN_HOSTS": "/keys/known_hosts"}
    auth = GitAuth.from_env(env)
    assert auth == GitAuth(token=SECRET, username="oauth2", ssh_key=Path("/keys/id"),
                           known_hosts=Path("/keys/known_hosts"))
    assert GitAuth.from_env({}) is None


def test_a_status_push_with_a_token_in_the_url_works_over_file_and_keeps_the_url_clean(remote: Remote,
                                                                                      tmp_path: Path):
    # file:// ignores credentials; the point is that the stored remote never holds the token.
    status = StatusWriter(remote.url, branch="main", work_dir=tmp_path / "writer", auth=GitAuth(token=SECRET))
    assert status.write({"status/README.md": "ok\n"}, "status: ok").pushed
    assert files_containing(tmp_path / "writer", SECRET) == []
