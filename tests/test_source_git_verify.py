"""verify='head': only config revisions whose head commit is signed by an allowed SSH key are applied."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_source_git_support import EXAMPLE, GitLog, Remote

from reconciler.source.git import GitSource

pytest_plugins = ["test_source_git_support"]  # fixtures: remote, git_calls

# scripts/setup.sh installs openssh-client; under CI a missing ssh-keygen fails instead of skipping.
pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None and os.environ.get("CI") != "true",
                                reason="needs ssh-keygen for SSH signatures (apt-get install openssh-client)")


def keypair(directory: Path, name: str) -> Path:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True,
                   capture_output=True)
    return key


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(allowed key, foreign key, allowed_signers file)."""
    allowed, foreign = keypair(tmp_path, "allowed"), keypair(tmp_path, "foreign")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"user@example.com {allowed.with_suffix('.pub').read_text()}")
    return allowed, foreign, signers


def edit(n: int) -> dict[str, str | None]:
    return {"reconciler.yaml": (EXAMPLE / "reconciler.yaml").read_text() + f"# edit {n}\n"}


def test_only_a_head_signed_by_an_allowed_key_is_applied(remote: Remote, tmp_path: Path,
                                                         keys: tuple[Path, Path, Path], git_calls: GitLog):
    allowed, foreign, signers = keys
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache", verify="head",
                       allowed_signers=signers)
    unsigned = source.poll()  # the seed commit is not signed
    assert unsigned.checkout is None and not unsigned.changed
    assert unsigned.error and "is not signed by an allowed key" in unsigned.error

    signed = remote.commit(edit(1), "signed edit", sign_key=allowed)
    result = source.poll()
    assert result.changed and result.error is None
    assert result.checkout is not None and result.checkout.revision == signed

    remote.commit(edit(2), "foreign edit", sign_key=foreign)
    rejected = source.poll()
    assert rejected.checkout == result.checkout and not rejected.changed and rejected.error
    git_calls.clear()
    again = source.poll()  # the rejection is remembered: reported again, not fetched again
    assert again.error == rejected.error and git_calls.subcommands() == ["ls-remote"]

    remote.commit(edit(3), "unsigned edit")
    assert "not signed by an allowed key" in (source.poll().error or "")


def test_unsigned_status_commits_on_top_of_a_signed_config_are_no_change_and_no_error(
        remote: Remote, tmp_path: Path, keys: tuple[Path, Path, Path]):
    allowed, _, signers = keys
    signed = remote.commit(edit(1), "signed edit", sign_key=allowed)
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache", verify="head",
                       allowed_signers=signers)
    assert source.poll().changed
    remote.commit({"status/README.md": "ok\n"}, "status: ok [skip ci]", author="Status Bot <bot@example.com>")
    result = source.poll()
    assert (result.changed, result.error) == (False, None)
    assert result.checkout is not None and result.checkout.revision == signed


def test_verify_head_without_allowed_keys_is_a_configuration_error(tmp_path: Path):
    with pytest.raises(ValueError, match="allowed_signers"):
        GitSource("file:///nowhere", cache_dir=tmp_path, verify="head")
