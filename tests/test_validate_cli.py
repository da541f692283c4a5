"""``reconciler validate`` as CI runs it: exit codes 0/1/2 and every output format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_config_support import EXAMPLE, RECONCILER, cluster, make_repo, node, run_cli, set_at

BAD_MAC = set_at(node("worker-02", 2), "spec.interfaces[0].macAddress", "02:00:00:00:00:01")


@pytest.fixture
def broken_repo(tmp_path: Path) -> Path:
    """Two errors in two files, one warning, one valid file."""
    return make_repo(
        tmp_path / "repo",
        {
            "nodes/worker-01.yaml": node("worker-01", 1),
            "nodes/worker-02.yaml": BAD_MAC,
            "nodes/worker-03.yaml": "apiVersion: multinic.io/v1alpha1\nkind: [\n",
            "clusters/pve-prod.yaml": cluster(tls={"insecureSkipVerify": True}),
        },
    )


def test_the_example_repo_validates_with_exit_code_zero() -> None:
    done = run_cli(EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("valid: 0 error(s), 0 warning(s)")


def test_the_installed_console_script_validates_the_example_repo() -> None:
    import subprocess

    done = subprocess.run([str(RECONCILER), "validate", str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_current_directory_is_the_default_path() -> None:
    assert run_cli(cwd=EXAMPLE).returncode == 0


def test_an_invalid_repo_exits_one_and_lists_every_error_grouped_by_file(broken_repo: Path) -> None:
    done = run_cli(broken_repo)
    assert done.returncode == 1
    out = done.stdout
    assert "nodes/worker-02.yaml\n" in out and "nodes/worker-03.yaml\n" in out
    assert "macAddress 02:00:00:00:00:01 is also used by nodes/worker-01.yaml:8  [duplicate-mac]" in out
    assert "spec.interfaces[0].macAddress" in out
    assert "  8:5      error" in out
    assert "warning" in out and "[insecure-tls]" in out
    assert out.rstrip().endswith("invalid: 2 error(s), 1 warning(s) in 2 file(s); 4 file(s) checked")


@pytest.mark.parametrize("path", ["does-not-exist", "file.yaml"])
def test_a_path_that_is_not_a_directory_exits_two_with_a_message(tmp_path: Path, path: str) -> None:
    (tmp_path / "file.yaml").write_text("a: 1\n")
    done = run_cli(tmp_path / path)
    assert done.returncode == 2
    assert "not a directory" in done.stderr and done.stdout == ""


def test_an_unknown_format_is_a_usage_error() -> None:
    done = run_cli(EXAMPLE, "--format", "yaml")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_warnings_fail_the_run_only_with_strict(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"clusters/pve-prod.yaml": cluster(tls={"insecureSkipVerify": True})})
    assert run_cli(root).returncode == 0
    assert run_cli(root, "--strict").returncode == 1


def test_json_output_lists_every_diagnostic_with_file_line_column_field_rule_and_message(broken_repo: Path) -> None:
    done = run_cli(broken_repo, "--format", "json")
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert (body["valid"], body["filesChecked"], body["errors"], body["warnings"]) == (False, 4, 2, 1)
    by_file = {d["file"]: d for d in body["diagnostics"]}
    mac = by_file["nodes/worker-02.yaml"]
    assert mac == {
        "file": "nodes/worker-02.yaml",
        "line": 8,
        "column": 5,
        "field": "spec.interfaces[0].macAddress",
        "severity": "error",
        "rule": "duplicate-mac",
        "message": "macAddress 02:00:00:00:00:01 is also used by nodes/worker-01.yaml:8",
        "related": ["nodes/worker-01.yaml"],
    }
    assert by_file["nodes/worker-03.yaml"]["rule"] == "yaml" and by_file["nodes/worker-03.yaml"]["line"] == 3
    assert by_file["clusters/pve-prod.yaml"]["severity"] == "warning"


def test_junit_output_has_one_testcase_per_file_and_a_failure_per_bad_file(broken_repo: Path) -> None:
    done = run_cli(broken_repo, "--format", "junit")
    assert done.returncode == 1
    root = ET.fromstring(done.stdout)
    suite = root.find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert set(cases) == {
        "clusters/pve-prod.yaml",
        "nodes/worker-01.yaml",
        "nodes/worker-02.yaml",
        "nodes/worker-03.yaml",
    }
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    failure = cases["nodes/worker-02.yaml"].find("failure")
    assert failure is not None and failure.get("type") == "duplicate-mac"
    assert "nodes/worker-02.yaml:8:5 spec.interfaces[0].macAddress macAddress" in (failure.text or "")
    assert cases["nodes/worker-01.yaml"].find("failure") is None
    out = cases["clusters/pve-prod.yaml"].find("system-out")
    assert out is not None and "TLS verification is disabled" in (out.text or "")


def test_github_output_is_one_annotation_per_diagnostic(broken_repo: Path) -> None:
    done = run_cli(broken_repo, "--format", "github")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("invalid: 2 error(s)")
    annotations = lines[:-1]
    assert len(annotations) == 3
    assert (
        "::error file=nodes/worker-02.yaml,line=8,col=5,title=duplicate-mac spec.interfaces[0].macAddress::"
        "macAddress 02:00:00:00:00:01 is also used by nodes/worker-01.yaml:8"
    ) in annotations
    assert any(a.startswith("::error file=nodes/worker-03.yaml,line=3,col=") for a in annotations)
    assert any(a.startswith("::warning file=clusters/pve-prod.yaml,line=10,col=5,") for a in annotations)


def test_output_goes_to_a_file_with_a_text_summary_on_stdout(broken_repo: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    done = run_cli(broken_repo, "--format", "junit", "--output", report)
    assert done.returncode == 1
    assert ET.parse(report).getroot().tag == "testsuites"
    assert "nodes/worker-02.yaml" in done.stdout and done.stdout.rstrip().endswith("4 file(s) checked")


def test_an_output_file_that_cannot_be_written_exits_two(broken_repo: Path, tmp_path: Path) -> None:
    done = run_cli(broken_repo, "--output", tmp_path / "no" / "such" / "dir" / "report.json", "--format", "json")
    assert done.returncode == 2 and "cannot write" in done.stderr


def test_hostile_names_and_values_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": set_at(node(), "spec.interfaces[0].name", "eth\x1b[2J0")})
    (root / "nodes" / "x\x1b]0;pwned\x07.yaml").write_text("{{{")
    for fmt in ["text", "json", "junit", "github"]:
        done = run_cli(root, "--format", fmt)
        assert done.returncode == 1
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout, fmt


def test_a_non_utf8_file_name_does_not_crash_any_format_or_the_output_file(tmp_path: Path) -> None:
    import os

    root = make_repo(tmp_path / "repo", {"nodes/worker-01.yaml": node()})
    (root / "nodes" / os.fsdecode(b"w\xfe.yaml")).write_text("a: 1\n")
    for fmt in ["text", "json", "junit", "github"]:
        done = run_cli(root, "--format", fmt, "--output", tmp_path / f"out.{fmt}")
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        written = (tmp_path / f"out.{fmt}").read_text(encoding="utf-8")
        assert "\\xfe" in written
    ET.parse(tmp_path / "out.junit")
    json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))


def test_jobs_flag_gives_the_same_report(tmp_path: Path) -> None:
    files = {f"nodes/worker-{i:03d}.yaml": node(f"worker-{i:03d}", i) for i in range(420)}
    files["nodes/worker-100.yaml"] = BAD_MAC | {"metadata": {"name": "worker-100"}}
    root = make_repo(tmp_path, files)
    one = run_cli(root, "--jobs", "1", "--format", "json")
    two = run_cli(root, "--jobs", "2", "--format", "json")
    assert one.returncode == two.returncode == 1
    assert json.loads(one.stdout) == json.loads(two.stdout)
