"""The Git source against real bare remotes (file:// and git daemon on 127.0.0.1); git is never mocked."""

from __future__ import annotations

import filecmp
import logging
from pathlib import Path

import pytest
from test_source_git_support import EXAMPLE, GitDaemon, GitLog, Remote, git

from reconciler.source.git import GitSource
from reconciler.source.opening import SourceSpec, one_checkout

pytest_plugins = ["test_source_git_support"]  # fixtures: remote, daemon, git_calls


def same_tree(checkout: Path, expected: Path) -> bool:
    compare = filecmp.dircmp(checkout, expected)

    def equal(c: filecmp.dircmp[str]) -> bool:
        if c.left_only or c.right_only or c.diff_files or c.funny_files:
            return False
        return all(equal(sub) for sub in c.subdirs.values())

    return equal(compare)


def test_the_first_poll_clones_and_hands_over_a_complete_checkout_of_the_branch_head(remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    result = source.poll()
    assert result.error is None and result.changed
    assert result.checkout is not None and result.checkout.revision == remote.head() == result.remote_head
    assert same_tree(result.checkout.path, EXAMPLE)
    assert not (result.checkout.path / ".git").exists()


def test_without_a_branch_the_remote_default_branch_is_followed(remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, cache_dir=tmp_path / "cache")
    result = source.poll()
    assert result.checkout is not None and result.checkout.revision == remote.head()
    assert source.branch == "main"


def test_a_poll_when_nothing_moved_runs_one_ls_remote_and_no_fetch(remote: Remote, tmp_path: Path,
                                                                     git_calls: GitLog):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    first = source.poll()
    assert "fetch" in git_calls.subcommands()
    git_calls.clear()
    for _ in range(3):
        again = source.poll()
        assert again.changed is False and again.error is None
        assert again.checkout == first.checkout
    assert git_calls.subcommands() == ["ls-remote"] * 3


def test_a_poll_when_nothing_moved_makes_one_request_to_the_git_daemon(daemon: GitDaemon, tmp_path: Path):
    source = GitSource(daemon.url(), branch="main", cache_dir=tmp_path / "cache")
    assert source.poll().changed
    assert daemon.requests() == 2  # ls-remote, fetch
    assert source.poll().changed is False
    assert daemon.requests() == 3  # one more: the ls-remote


def test_a_user_commit_is_fetched_and_its_tree_checked_out_while_the_old_checkout_stays_intact(
        remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    old = source.poll().checkout
    assert old is not None
    worker = (EXAMPLE / "nodes" / "worker-01.yaml").read_text().replace("mtu: 9000", "mtu: 8000")
    commit = remote.commit({"nodes/worker-01.yaml": worker, "nodes/gpu-02.yaml": None}, "worker-01: mtu 8000")
    result = source.poll()
    assert result.changed and result.error is None
    assert result.checkout is not None and result.checkout.revision == commit == result.remote_head
    assert (result.checkout.path / "nodes" / "worker-01.yaml").read_text() == worker
    assert not (result.checkout.path / "nodes" / "gpu-02.yaml").exists()
    assert same_tree(old.path, EXAMPLE)  # a checkout is never modified in place


def test_a_status_only_commit_is_not_a_config_change_and_is_not_fetched_again(remote: Remote, tmp_path: Path,
                                                                               git_calls: GitLog):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    config = source.poll().checkout
    status = remote.commit({"status/README.md": "# status\n", "status/nodes/worker-01.yaml": "phase: Ready\n"},
                           "status: 1 ready [skip ci]")
    result = source.poll()
    assert result.changed is False and result.error is None
    assert result.checkout == config  # still the config revision: appliedRevision does not churn
    assert result.remote_head == status
    git_calls.clear()
    assert source.poll().changed is False
    assert git_calls.subcommands() == ["ls-remote"]  # the status commit was fetched once, not again
    change = remote.commit({"reconciler.yaml": (EXAMPLE / "reconciler.yaml").read_text() + "# edited\n"}, "edit")
    result = source.poll()
    assert result.changed and result.checkout is not None and result.checkout.revision == change
    assert not (result.checkout.path / "status").exists()  # the configuration only: status/ is not input
    assert source.fetched_file("status/README.md") == "# status\n"  # what a restarted reporter reads back
    assert source.fetched_file("status/none.md") is None


def test_the_remote_unreachable_for_three_cycles_keeps_the_last_good_checkout_then_catches_up(
        remote: Remote, daemon: GitDaemon, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    source = GitSource(daemon.url(), branch="main", cache_dir=tmp_path / "cache")
    good = source.poll().checkout
    assert good is not None
    daemon.stop()
    commit = remote.commit({"nodes/worker-06.yaml": None}, "remove worker-06")  # pushed while we are cut off
    for _ in range(3):
        result = source.poll()
        assert result.checkout == good and result.changed is False
        assert result.error and "git ls-remote" in result.error and result.remote_head is None
    assert same_tree(good.path, EXAMPLE)
    daemon.start()  # same port
    result = source.poll()
    assert result.error is None and result.changed
    assert result.checkout is not None and result.checkout.revision == commit
    assert not (result.checkout.path / "nodes" / "worker-06.yaml").exists()
    assert (result.checkout.path / "nodes" / "worker-05.yaml").exists()


def test_a_branch_that_disappears_is_an_error_not_an_empty_config(remote: Remote, tmp_path: Path):
    git("push", "--quiet", "origin", "HEAD:refs/heads/feature", cwd=remote.clone)
    source = GitSource(remote.url, branch="feature", cache_dir=tmp_path / "cache")
    good = source.poll().checkout
    git("push", "--quiet", "origin", ":refs/heads/feature", cwd=remote.clone)
    result = source.poll()
    assert result.checkout == good and not result.changed
    assert result.error == "feature: no such ref on the remote"


def test_a_failed_fetch_keeps_the_last_good_checkout(remote: Remote, tmp_path: Path):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    good = source.poll().checkout
    moved = remote.commit({"README.md": "changed\n"}, "readme")
    # The head is advertised but its objects are gone: ls-remote works, the fetch fails.
    objects = remote.bare / "objects" / moved[:2]
    hidden = remote.bare.parent / "hidden-objects"
    objects.rename(hidden)
    result = source.poll()
    assert result.checkout == good and not result.changed
    assert result.error and result.error.startswith("git fetch:") and result.remote_head == moved
    hidden.rename(objects)
    result = source.poll()
    assert result.changed and result.checkout is not None and result.checkout.revision == moved


def test_pinning_an_annotated_tag_follows_the_tag_and_not_the_branch(remote: Remote, tmp_path: Path):
    tagged = remote.head()
    git("-c", "user.name=U", "-c", "user.email=u@example.com", "tag", "-a", "-m", "release", "v1", cwd=remote.clone)
    git("push", "--quiet", "origin", "refs/tags/v1", cwd=remote.clone)
    source = GitSource(remote.url, tag="v1", cache_dir=tmp_path / "cache")
    result = source.poll()
    assert result.checkout is not None and result.checkout.revision == tagged == result.remote_head
    remote.commit({"README.md": "later\n"}, "later")
    assert source.poll().changed is False


def test_pinning_a_commit_fetches_it_once_and_then_never_asks_the_remote(remote: Remote, tmp_path: Path,
                                                                          git_calls: GitLog):
    pinned = remote.head()
    remote.commit({"README.md": "later\n"}, "later")
    source = GitSource(remote.url, commit=pinned, cache_dir=tmp_path / "cache")
    result = source.poll()
    assert result.changed and result.checkout is not None and result.checkout.revision == pinned
    assert same_tree(result.checkout.path, EXAMPLE)
    git_calls.clear()
    assert source.poll().changed is False
    assert git_calls.lines() == []


def test_a_restart_on_the_same_cache_reports_the_cached_revision_without_fetching(remote: Remote, tmp_path: Path,
                                                                                 git_calls: GitLog):
    first = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache").poll()
    git_calls.clear()
    restarted = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache").poll()
    assert restarted.changed  # a new process reconciles once
    assert restarted.checkout == first.checkout
    assert "fetch" not in git_calls.subcommands()


def test_the_temporary_source_yields_a_checkout_and_removes_its_clone(remote: Remote):
    with one_checkout(SourceSpec(remote.url, branch="main")) as checkout:
        assert checkout.revision == remote.head()
        assert same_tree(checkout.path, EXAMPLE)
        where = checkout.path
    assert not where.exists()


def test_open_source_reads_a_git_url_through_the_temporary_source(remote: Remote):
    import argparse

    from reconciler.options import add_source_arguments, open_source

    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    with open_source(parser.parse_args(["--repo", remote.url])) as checkout:
        assert checkout.revision == remote.head()
        assert (checkout.path / "reconciler.yaml").exists()


def test_the_temporary_source_raises_a_readable_error_for_a_missing_branch(remote: Remote):
    with pytest.raises(RuntimeError, match="nope: no such ref on the remote"), \
            one_checkout(SourceSpec(remote.url, branch="nope")):
        pass


def test_a_status_only_commit_never_churns_the_log(remote: Remote, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    source = GitSource(remote.url, branch="main", cache_dir=tmp_path / "cache")
    source.poll()
    remote.commit({"status/README.md": "x\n"}, "status [skip ci]")
    with caplog.at_level(logging.INFO, logger="reconciler.source.git"):
        source.poll()
    assert not [r for r in caplog.records if "revision" in r.getMessage()]
