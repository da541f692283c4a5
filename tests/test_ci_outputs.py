"""The CI gate as a config-repo maintainer meets it: exit codes with one meaning, paths that
attach in a monorepo, --strict that every format agrees with, SARIF that passes the SARIF 2.1.0
schema, a Markdown plan that fits a GitHub comment, and annotations within GitHub's caps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml
from test_config_support import EXAMPLE, REPO, cluster, dump, make_repo, node, run_cli

from reconciler.config import formats
from reconciler.config.validation import validate_repo
from reconciler.plan import render
from reconciler.plan.planner import plan

SARIF_SCHEMA = REPO / "tests" / "data" / "schemas" / "sarif-schema-2.1.0.json"


def plan_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTINIC_") and k != "KUBECONFIG"}
    return subprocess.run([sys.executable, "-m", "reconciler", "plan", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd or REPO, env={**env, "PYTHONPATH": str(REPO)}, check=False)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "repo"))


# -- plan exit codes ----------------------------------------------------------------------------

def test_plan_with_one_invalid_file_exits_2_and_names_the_file(example: Path) -> None:
    (example / "nodes" / "worker-03.yaml").write_text("kind: [\n")

    done = plan_cli("--repo", example, "--offline")

    assert done.returncode == 2
    assert "No changes: the cluster matches Git." not in done.stdout
    assert "nodes/worker-03.yaml" in done.stderr.splitlines()[-1]


def test_plan_with_an_invalid_settings_file_exits_2(example: Path) -> None:
    (example / "reconciler.yaml").write_text((example / "reconciler.yaml").read_text() + "bogus: 1\n")

    done = plan_cli("--repo", example, "--offline")

    assert done.returncode == 2
    assert "reconciler.yaml" in done.stderr.splitlines()[-1]
    assert "0 to create" in done.stdout and "11 blocked" in done.stdout


def test_plan_of_an_emptied_repo_exits_2_because_the_prune_guard_refuses(env_for_empty: tuple[Path, Path]) -> None:
    repo, kubeconfig = env_for_empty

    done = plan_cli("--repo", repo, "--kubeconfig", kubeconfig)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "blocked" in done.stderr.splitlines()[-1]
    assert "No changes: the cluster matches Git." not in done.stdout


@pytest.fixture
def env_for_empty(tmp_path: Path) -> object:
    from support.reconcile import git_repo, start_env

    repo = git_repo(EXAMPLE, tmp_path / "repo")
    with start_env(repo, jobs="manual") as env:
        env.apply()
        for path in [*(repo / "nodes").glob("*.yaml"), *(repo / "clusters").glob("*.yaml")]:
            path.unlink()
        yield repo, env.sandbox.kubeconfig_path


def test_plan_output_to_an_unwritable_place_exits_2_with_a_message(example: Path) -> None:
    done = plan_cli("--repo", example, "--offline", "-o", "/proc/unwritable/x.md", "--format", "markdown")

    assert done.returncode == 2
    assert "cannot write /proc/unwritable/x.md" in done.stderr
    assert "Traceback" not in done.stderr


# -- validate: not a config repo, --strict, paths ----------------------------------------------

def test_validate_on_an_empty_folder_exits_2(tmp_path: Path) -> None:
    done = run_cli(tmp_path)
    assert done.returncode == 2
    assert "not a config repository" in done.stderr


def test_validate_on_the_nodes_folder_itself_exits_2_even_with_a_duplicate_mac(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"nodes/a.yaml": node("a", 1), "nodes/b.yaml": node("b", 1)})
    done = run_cli(root / "nodes")
    assert done.returncode == 2
    assert "not a config repository" in done.stderr


@pytest.fixture
def one_warning(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"clusters/pve-prod.yaml": cluster(tls={"insecureSkipVerify": True})})


@pytest.mark.parametrize("strict", [False, True])
def test_strict_makes_every_format_agree_with_the_exit_code(one_warning: Path, strict: bool) -> None:
    flags = ["--strict"] if strict else []
    text = run_cli(one_warning, *flags)
    body = json.loads(run_cli(one_warning, "--format", "json", *flags).stdout)
    suite = ET.fromstring(run_cli(one_warning, "--format", "junit", *flags).stdout).find("testsuite")
    github = run_cli(one_warning, "--format", "github", *flags).stdout
    sarif = json.loads(run_cli(one_warning, "--format", "sarif", *flags).stdout)

    assert text.returncode == (1 if strict else 0)
    assert text.stdout.splitlines()[-1].startswith("invalid" if strict else "valid")
    assert body["valid"] is (not strict)
    assert suite is not None and suite.get("failures") == ("1" if strict else "0")
    assert github.startswith("::error " if strict else "::warning ")
    assert sarif["runs"][0]["results"][0]["level"] == ("error" if strict else "warning")


def test_paths_are_relative_to_the_current_directory_in_a_monorepo(tmp_path: Path) -> None:
    make_repo(tmp_path / "gitops", {"nodes/a.yaml": node("a", 1), "nodes/b.yaml": node("b", 1)})

    github = run_cli("gitops/", "--format", "github", cwd=tmp_path).stdout
    prefixed = run_cli("gitops", "--format", "github", "--path-prefix", "infra/gitops", cwd=tmp_path).stdout
    absolute = run_cli(tmp_path / "gitops", "--format", "json", cwd=tmp_path).stdout

    assert "::error file=gitops/nodes/b.yaml," in github
    assert (tmp_path / "gitops" / "nodes" / "b.yaml").is_file()
    assert "::error file=infra/gitops/nodes/b.yaml," in prefixed
    assert json.loads(absolute)["diagnostics"][0]["file"] == "gitops/nodes/b.yaml"


def test_an_unquoted_qemu_mac_is_valid_with_a_quote_it_warning(tmp_path: Path) -> None:
    doc = dump(node("a", 1)).replace("02:00:00:00:00:01", "52:54:00:12:34:56")
    root = make_repo(tmp_path / "repo", {"nodes/a.yaml": doc})

    result = validate_repo(root)

    assert result.ok, result.errors
    assert result.desired.nodes["a"].spec.interfaces[0].mac_address == "52:54:00:12:34:56"
    [warning] = result.diagnostics
    assert warning.severity == "warning" and "quote it" in warning.message and warning.line == 8


@pytest.mark.parametrize(("text", "value"), [("vmid: 0311", 311), ("vmid: 0755", 755)])
def test_leading_zero_numbers_are_decimal_never_octal(tmp_path: Path, text: str, value: int) -> None:
    doc = dump(node("a", 1, proxmox={"cluster": "pve-prod", "vmid": 1})).replace("vmid: 1", text)
    root = make_repo(tmp_path / "repo", {"nodes/a.yaml": doc, "clusters/pve-prod.yaml": cluster()})
    result = validate_repo(root)
    assert result.ok, result.errors
    proxmox = result.desired.nodes["a"].spec.proxmox
    assert proxmox is not None and proxmox.vmid == value


@pytest.mark.parametrize("word", ["no", "on", "yes", "off"])
def test_yes_no_on_off_label_values_are_strings(tmp_path: Path, word: str) -> None:
    doc = dump(node("a", 1)).replace("name: a\n", f"name: a\n  labels:\n    flag: {word}\n", 1)
    result = validate_repo(make_repo(tmp_path / "repo", {"nodes/a.yaml": doc}))
    assert result.ok, result.errors
    assert result.desired.nodes["a"].metadata.labels == {"flag": word}
    assert any("quote it" in d.message for d in result.diagnostics)


# -- SARIF ----------------------------------------------------------------------------------------

def test_sarif_output_passes_the_sarif_2_1_0_schema(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {
        "nodes/a.yaml": node("a", 1),
        "nodes/b.yaml": node("b", 1),  # duplicate MAC and addresses: errors with lines
        "nodes/c d%.yaml": "kind: [\n",  # a name that must be percent-encoded in a URI
        "clusters/pve-prod.yaml": cluster(tls={"insecureSkipVerify": True}),  # a warning
    })
    done = run_cli(root, "--format", "sarif")
    assert done.returncode == 1
    log = json.loads(done.stdout)

    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validate(log, schema, cls=jsonschema.Draft4Validator, format_checker=jsonschema.FormatChecker())

    results = log["runs"][0]["results"]
    assert {r["level"] for r in results} == {"error", "warning"}
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert "nodes/c%20d%25.yaml" in uris
    mac = next(r for r in results if r["ruleId"] == "duplicate-mac")  # the other file, schema-checked above
    assert mac["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "nodes/a.yaml"
    rules = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in results)


def test_the_sarif_schema_test_can_fail() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.1.0", "runs": [{"results": []}]}, schema, cls=jsonschema.Draft4Validator)


# -- GitHub annotations and the Markdown plan -----------------------------------------------------

def test_github_annotations_beyond_the_caps_are_summarised(tmp_path: Path) -> None:
    files = {f"nodes/n{i:02d}.yaml": "kind: [\n" for i in range(25)}
    root = make_repo(tmp_path / "repo", files)

    out = formats.github(validate_repo(root)).splitlines()

    assert sum(line.startswith("::error ") for line in out) == formats.GITHUB_ANNOTATIONS_PER_LEVEL
    notice = next(line for line in out if line.startswith("::notice "))
    assert "15 more error(s)" in notice
    assert sum("nodes/n" in line and not line.startswith("::") for line in out) == 15


def test_the_markdown_plan_fits_a_github_comment_cut_between_objects(tmp_path: Path) -> None:
    files = {f"nodes/node-{i:04d}.yaml": node(f"node-{i:04d}", i) for i in range(312)}
    result = validate_repo(make_repo(tmp_path / "repo", files))
    changes = plan(result.desired, {})

    out = render.markdown(changes, result.diagnostics)

    assert len(out) <= render.MARKDOWN_LIMIT
    assert out.count("<details>") == out.count("</details>")
    shown = out.count("<summary>+ ")
    assert 0 < shown < 312
    assert f"{312 - shown} more object(s) are not shown ({312 - shown} create)" in out
    assert "reconciler plan --format json" in out


def test_a_blocked_entry_shows_its_diagnostics_and_the_table_shows_every_changed_field(tmp_path: Path) -> None:
    good = node("a", 1)
    changed = yaml.safe_load(dump(good))
    changed["spec"]["interfaces"][0]["proxmoxNet"] = "net7"
    changed["spec"]["interfaces"][0]["routes"][0]["metric"] = 50
    changed["spec"]["interfaces"][0]["routes"].append({"to": "10.121.0.0/16", "via": "10.20.0.1", "onLink": True})
    root = make_repo(tmp_path / "repo", {"nodes/a.yaml": changed, "nodes/b.yaml": node("b", 1)})
    result = validate_repo(root)
    from reconciler.kube import objects
    from reconciler.plan.planner import LiveObject

    live_a = objects.manifest(validate_repo(make_repo(tmp_path / "old", {"nodes/a.yaml": good})).desired.nodes["a"],
                              namespace="multinic-system", path="nodes/a.yaml", revision=None)
    changes = plan(result.desired, {"MultiNicNodeConfig": [LiveObject.from_manifest(live_a)]})

    out = render.markdown(changes, result.diagnostics)

    assert "proxmoxNet net1" in out and "proxmoxNet net7" in out
    assert "via 10.20.255.254 metric 50" in out
    assert "10.121.0.0/16 via 10.20.0.1 onlink" in out
    blocked = out[out.index("MultiNicNodeConfig/b</code>: blocked"):]
    assert "macAddress 02:00:00:00:00:01 is also used by nodes/a.yaml" in blocked.split("</details>")[0]


# -- pre-commit ---------------------------------------------------------------------------------

def test_the_pre_commit_hook_runs_on_delete_only_commits() -> None:
    """pre-commit skips a hook whose ``files`` match nothing staged (a deletion stages no file);
    ``always_run`` makes it run on every commit, deletions included."""
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["always_run"] is True
    assert hook["pass_filenames"] is False
    assert "files" not in hook or hook.get("always_run")
