"""Status write-back against real bare remotes (file:// and git daemon); force pushes are refused by the remote."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_source_git_support import EXAMPLE, GitDaemon, GitLog, Remote, git

from reconciler.report import gitstatus
from reconciler.report.gitstatus import ClusterReport, InterfaceReport, NodeReport
from reconciler.report.writeback import StatusWriter
from reconciler.source.git import GitSource

pytest_plugins = ["test_source_git_support"]  # fixtures: remote, daemon, git_calls

FILES = {
    "status/README.md": "# Reconciler status\n",
    "status/nodes/worker-01.yaml": "phase: Ready\n",
    "status/nodes/worker-02.yaml": "phase: Failed\n",
}


def writer(remote_url: str, tmp_path: Path, **options: object) -> StatusWriter:
    options.setdefault("branch", "main")
    return StatusWriter(remote_url, work_dir=tmp_path / "writer", author_name="Status Bot",
                        author_email="bot@example.com", backoff=0.01, **options)  # type: ignore[arg-type]


def parents(line: str) -> list[str]:
    return line.split("|")[0].split()[1:]


def test_the_first_write_commits_the_status_tree_on_top_of_the_branch_and_pushes(remote: Remote, tmp_path: Path):
    before = remote.head()
    result = writer(remote.url, tmp_path).write(FILES, "status: 1 ready, 1 failed")
    assert result.committed and result.pushed and result.attempts == 1 and result.error is None
    assert remote.head() == result.commit
    newest = remote.log()[0]
    assert parents(newest) == [before]
    assert newest.split("|")[1:] == ["Status Bot <bot@example.com>", "status: 1 ready, 1 failed [skip ci]"]
    assert sorted(remote.files("status")) == sorted(FILES)
    assert remote.show("status/nodes/worker-02.yaml") == "phase: Failed\n"
    changed = git("diff", "--name-only", before, remote.head(), cwd=remote.bare).splitlines()
    assert sorted(changed) == sorted(FILES)  # nothing outside status/ is touched


def test_an_identical_second_write_makes_no_commit_and_no_push(remote: Remote, tmp_path: Path, git_calls: GitLog):
    status = writer(remote.url, tmp_path)
    first = status.write(FILES, "status: x [skip ci]")
    git_calls.clear()
    again = status.write(FILES, "status: x [skip ci]")
    assert (again.committed, again.pushed, again.commit, again.error) == (False, False, None, None)
    assert remote.head() == first.commit
    assert "push" not in git_calls.subcommands()
    # A fresh writer (a restarted reconciler) compares with the remote, not with its memory.
    assert writer(remote.url, tmp_path / "other").write(FILES, "status: x").committed is False


def test_a_stale_node_report_is_removed_when_the_node_disappears(remote: Remote, tmp_path: Path):
    status = writer(remote.url, tmp_path)
    status.write(FILES, "status: two nodes")
    fewer = {k: v for k, v in FILES.items() if "worker-02" not in k}
    result = status.write(fewer, "status: one node")
    assert result.committed and result.pushed
    assert sorted(remote.files("status")) == sorted(fewer)
    assert remote.show("nodes/worker-02.yaml") is not None  # the config file is not ours to touch


def test_a_user_config_commit_pushed_between_our_fetch_and_our_push_is_kept_and_our_status_lands_on_top(
        remote: Remote, tmp_path: Path):
    seed = remote.head()
    user_commits: list[str] = []

    class RacingWriter(StatusWriter):
        def _push(self, commit: str) -> None:
            if not user_commits:  # the user wins the race once, after our fetch
                edited = (EXAMPLE / "nodes" / "worker-03.yaml").read_text() + "# moved to rack-c\n"
                user_commits.append(remote.commit({"nodes/worker-03.yaml": edited}, "worker-03: rack-c"))
            super()._push(commit)

    result = RacingWriter(remote.url, branch="main", work_dir=tmp_path / "writer", backoff=0.01).write(
        FILES, "status: racing")
    assert result.pushed and result.committed and result.attempts == 2 and result.error is None
    log = remote.log()
    assert [line.split()[0] for line in log[:3]] == [result.commit, user_commits[0], seed]
    assert parents(log[0]) == [user_commits[0]]  # linear: no merge commit
    assert git("rev-list", "--merges", "refs/heads/main", cwd=remote.bare) == ""
    assert (remote.show("nodes/worker-03.yaml") or "").endswith("# moved to rack-c\n")
    assert sorted(remote.files("status")) == sorted(FILES)


def test_a_branch_that_keeps_moving_gives_up_after_the_bound_and_loses_no_user_commit(remote: Remote, tmp_path: Path):
    user_commits: list[str] = []

    class AlwaysLate(StatusWriter):
        def _push(self, commit: str) -> None:
            user_commits.append(remote.commit({"README.md": f"edit {len(user_commits)}\n"}, "readme"))
            super()._push(commit)

    result = AlwaysLate(remote.url, branch="main", work_dir=tmp_path / "writer", max_attempts=3,
                        backoff=0.01).write(FILES, "status: never lands")
    assert (result.pushed, result.attempts) == (False, 3)
    assert result.error and "rejected 3 times" in result.error
    assert remote.head() == user_commits[-1]
    assert remote.files("status") == []
    assert [line.split()[0] for line in remote.log()[:3]] == user_commits[::-1]


def test_a_separate_status_branch_is_created_from_the_watched_branch_and_then_maintained(remote: Remote,
                                                                                           tmp_path: Path):
    main = remote.head()
    status = writer(remote.url, tmp_path, status_branch="reconciler-status")
    first = status.write(FILES, "status: first")
    assert first.committed and first.pushed
    assert remote.head() == main  # the watched branch is left alone
    assert parents(remote.log("reconciler-status")[0]) == [main]
    second = status.write({"status/README.md": "# only\n"}, "status: second")
    assert second.committed and second.pushed
    assert parents(remote.log("reconciler-status")[0]) == [first.commit]
    assert remote.files("status", branch="reconciler-status") == ["status/README.md"]
    assert status.write({"status/README.md": "# only\n"}, "status: second").committed is False


def test_paths_outside_status_are_refused(remote: Remote, tmp_path: Path):
    status = writer(remote.url, tmp_path)
    for bad in ("nodes/worker-01.yaml", "status/../nodes/x.yaml", "/status/x", "status", "status//x",
                "status/./x", "status/.git/config"):
        with pytest.raises(ValueError, match="under status/"):
            status.write({bad: "x"}, "status: bad")
    assert remote.files("status") == []


def test_an_unreachable_remote_is_an_error_result_not_an_exception(tmp_path: Path):
    result = writer("git://127.0.0.1:1/config.git", tmp_path).write(FILES, "status: x")
    assert (result.committed, result.pushed) == (False, False)
    assert result.error and result.error.startswith("git fetch:")


def test_a_full_cycle_over_git_daemon_applies_a_merged_commit_reports_it_and_then_stays_quiet(
        remote: Remote, daemon: GitDaemon, tmp_path: Path):
    """Poll -> (pipeline) -> render -> write back -> poll: the status commit is not a config change."""
    source = GitSource(daemon.url(), branch="main", cache_dir=tmp_path / "cache")
    status = StatusWriter(daemon.url(), branch="main", work_dir=tmp_path / "writer", author_name="Status Bot",
                          author_email="bot@example.com")

    def cycle() -> tuple[bool, str | None]:
        polled = source.poll()
        assert polled.checkout is not None and polled.error is None
        nodes = [NodeReport(p.stem, phase="Ready", applied_revision=polled.checkout.revision,
                            interfaces=(InterfaceReport("storage0", state="configured"),),
                            source_path=f"nodes/{p.name}")
                 for p in sorted((polled.checkout.path / "nodes").glob("*.yaml"))]
        clusters = [ClusterReport(p.stem, health="Healthy", ready=True)
                    for p in sorted((polled.checkout.path / "clusters").glob("*.yaml"))]
        files = gitstatus.render(nodes, clusters, revision=polled.checkout.revision)
        result = status.write(files, gitstatus.summary(nodes, clusters))
        assert result.error is None
        return polled.changed, result.commit

    changed, commit = cycle()
    assert changed and commit == remote.head()
    assert remote.log()[0].endswith("status: 9 ready, 2 clusters healthy [skip ci]")
    assert len([f for f in remote.files("status/nodes") if f.endswith(".yaml")]) == 9

    # A second cycle: the status commit is fetched but is no config change; nothing new to write.
    changed, commit = cycle()
    assert (changed, commit) == (False, None)

    # A merged config commit is applied and reported; the removed node's report goes away.
    merged = remote.commit({"nodes/worker-06.yaml": None}, "Merge: retire worker-06")
    changed, commit = cycle()
    assert changed and commit == remote.head()
    assert parents(remote.log()[0]) == [merged]
    assert len([f for f in remote.files("status/nodes") if f.endswith(".yaml")]) == 8
    assert f"`{merged[:12]}`" in (remote.show("status/README.md") or "")
    assert cycle() == (False, None)


def test_the_remote_unreachable_for_three_cycles_then_back_loses_nothing(remote: Remote, daemon: GitDaemon,
                                                                         tmp_path: Path):
    source = GitSource(daemon.url(), branch="main", cache_dir=tmp_path / "cache")
    status = StatusWriter(daemon.url(), branch="main", work_dir=tmp_path / "writer", backoff=0.01)
    good = source.poll().checkout
    assert status.write(FILES, "status: before").pushed
    daemon.stop()
    user = remote.commit({"nodes/worker-05.yaml": None}, "retire worker-05")  # lands through file:// meanwhile
    for n in range(3):
        polled = source.poll()
        assert polled.checkout == good and polled.error
        written = status.write({**FILES, "status/README.md": f"# cut off {n}\n"}, "status: cut off")
        assert not written.pushed and written.error
    daemon.start()
    polled = source.poll()
    assert polled.changed and polled.checkout is not None and polled.checkout.revision == user
    written = status.write({**FILES, "status/README.md": "# back\n"}, "status: back")
    assert written.pushed and written.attempts == 1
    assert parents(remote.log()[0]) == [user]
    assert remote.show("nodes/worker-05.yaml") is None and remote.show("status/README.md") == "# back\n"
