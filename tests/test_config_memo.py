"""validate_repo with a FileMemo (the loop's): a new commit re-checks only the files whose bytes
changed, and the result is exactly that of a fresh validation."""

from __future__ import annotations

from pathlib import Path

from reconciler.config.validation import FileMemo, ValidationResult, validate_repo
from tests.test_config_support import make_repo, node, set_at, write


def _same(a: ValidationResult, b: ValidationResult) -> None:
    assert a.diagnostics == b.diagnostics
    assert a.desired == b.desired
    assert a.files == b.files
    assert sorted(a.documents) == sorted(b.documents)


def test_a_second_commit_rechecks_only_changed_files_and_validates_exactly_as_a_fresh_run(tmp_path: Path) -> None:
    files = {f"nodes/worker-{i:02d}.yaml": node(f"worker-{i:02d}", index=i) for i in range(1, 9)}
    files["nodes/worker-03.yaml"] = set_at(node("worker-03", index=3), "spec.interfaces[0].mtu", 99999)
    first = make_repo(tmp_path / "first", files)
    memo = FileMemo()
    _same(validate_repo(first, memo=memo), validate_repo(first))
    assert memo.reused == 0

    # The next commit, exported elsewhere: one file fixed, one broken, one MAC now shared (a
    # cross-file error on an unchanged file), one removed, one added.
    files["nodes/worker-03.yaml"] = node("worker-03", index=3)
    files["nodes/worker-05.yaml"] = set_at(node("worker-05", index=5), "spec.interfaces[0].addresses", "nope")
    files["nodes/worker-07.yaml"] = set_at(node("worker-07", index=7), "spec.interfaces[0].macAddress",
                                           "02:00:00:00:00:01")
    del files["nodes/worker-08.yaml"]
    files["nodes/worker-09.yaml"] = node("worker-09", index=9)
    second = make_repo(tmp_path / "second", files)
    remembered = validate_repo(second, memo=memo)
    fresh = validate_repo(second)
    _same(remembered, fresh)
    assert memo.reused == 4  # worker-01, -02, -04, -06: unchanged bytes
    assert {d.path for d in remembered.errors} >= {"nodes/worker-05.yaml", "nodes/worker-07.yaml"}
    assert "worker-03" in remembered.desired.nodes and "worker-05" not in remembered.desired.nodes
    assert "worker-08" not in remembered.desired.nodes and "worker-09" in remembered.desired.nodes


def test_a_file_that_became_unreadable_is_reported_not_served_from_the_memo(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"nodes/worker-01.yaml": node("worker-01", index=1)})
    memo = FileMemo()
    assert "worker-01" in validate_repo(root, memo=memo).desired.nodes
    write(root, "nodes/worker-01.yaml", b"\xff\xfe not UTF-8")
    remembered = validate_repo(root, memo=memo)
    _same(remembered, validate_repo(root))
    assert memo.reused == 0
    assert "worker-01" not in remembered.desired.nodes
    assert remembered.desired.blocked["MultiNicNodeConfig"] >= {"worker-01"}
