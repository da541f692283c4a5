"""Every CI snippet in docs/ci.md is checked the way the platform would: GitHub workflow snippets
against SchemaStore's published github-workflow schema, GitLab snippets against GitLab's own
``ci.json`` (both vendored in tests/data/ci-schemas/, see its README), by the real
``check-jsonschema``; the pre-commit snippet by the real ``pre-commit validate-config``. A GitLab job
on a slim image installs every tool its commands use before the first use.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "ci.md"
SCHEMAS = REPO / "tests" / "data" / "ci-schemas"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Snippet:
    heading: str
    line: int
    text: str

    @property
    def platform(self) -> str:
        for name in ("GitHub", "GitLab", "pre-commit"):
            if name in self.heading:
                return name
        return ""

    @property
    def id(self) -> str:
        return f"{self.platform or 'unknown'}@docs/ci.md:{self.line}"


def snippets() -> list[Snippet]:
    out: list[Snippet] = []
    heading = ""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```yaml":
            end = lines.index("```", i + 1)
            out.append(Snippet(heading, i + 1, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return out


SNIPPETS = snippets()


def _as_file(snippet: Snippet) -> str:
    """The snippet as the whole file the platform reads: a lone GitHub job goes under ``jobs:``.
    The text is kept as written (a YAML 1.1 round trip would turn the ``on:`` key into ``true``)."""
    if snippet.platform == "GitHub" and "jobs" not in yaml.safe_load(snippet.text):
        assert snippet.text.startswith("  "), "a lone job is shown indented, as under jobs:"
        return "name: plan\non:\n  pull_request:\njobs:\n" + snippet.text
    return snippet.text


def check_jsonschema(schema: Path, path: Path) -> subprocess.CompletedProcess[str]:
    tool = BIN / "check-jsonschema"
    assert tool.exists(), "check-jsonschema is in the test extra"
    return subprocess.run(
        [str(tool), "--schemafile", str(schema), "--regex-variant", "nonunicode", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SCHEMA_OF = {"GitHub": SCHEMAS / "github-workflow.json", "GitLab": SCHEMAS / "gitlab-ci.json"}


def test_docs_ci_md_has_github_gitlab_and_pre_commit_snippets_and_no_other_yaml() -> None:
    platforms = [s.platform for s in SNIPPETS]
    assert platforms.count("GitHub") == 2 and platforms.count("GitLab") == 2 and platforms.count("pre-commit") == 1
    assert "" not in platforms, [s.id for s in SNIPPETS]


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.platform in SCHEMA_OF], ids=lambda s: s.id)
def test_every_ci_snippet_passes_the_platforms_published_schema(snippet: Snippet, tmp_path: Path) -> None:
    path = tmp_path / ("workflow.yaml" if snippet.platform == "GitHub" else ".gitlab-ci.yml")
    path.write_text(_as_file(snippet), encoding="utf-8")
    done = check_jsonschema(SCHEMA_OF[snippet.platform], path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("platform", "broken"),
    [
        ("GitHub", {"on": {"push": None}, "jobs": {"a": {"runs-on": "ubuntu-latest", "step": [{"run": "x"}]}}}),
        ("GitLab", {"validate": {"image": "python:3.11-slim", "scripts": ["x"]}}),
        ("GitLab", {"plan": {"script": ["x"], "artifacts": {"reports": {"junit": 5}}}}),
    ],
)
def test_the_same_check_refuses_a_broken_snippet(platform: str, broken: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ci.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert check_jsonschema(SCHEMA_OF[platform], path).returncode == 1


def _commands(job: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("before_script", "script"):
        value = job.get(key, [])
        out += [value] if isinstance(value, str) else list(value)
    return out


def _needs(command: str) -> set[str]:
    """Tools a command line runs that a slim image does not have."""
    needed = set()
    if "git+" in command or re.search(r"(^|[;&|]\s*)git\s", command):
        needed.add("git")  # pip install "pkg @ git+https://..." runs git
    if re.search(r"(^|[;&|]\s*)curl\s", command.strip()):
        needed.add("curl")
    return needed


def _installed(command: str) -> set[str]:
    match = re.search(r"apt-get install\b(.*)", command)
    return {w for w in match.group(1).split() if not w.startswith("-")} if match else set()


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.platform == "GitLab"], ids=lambda s: s.id)
def test_a_gitlab_job_on_a_slim_image_installs_the_tools_it_uses_before_using_them(snippet: Snippet) -> None:
    for name, job in yaml.safe_load(snippet.text).items():
        if not isinstance(job, dict) or "slim" not in str(job.get("image", "")):
            continue
        have: set[str] = set()
        for command in _commands(job):
            missing = _needs(command) - have - _installed(command)
            assert not missing, f"job {name}: {command!r} needs {sorted(missing)}, not installed before"
            have |= _installed(command)


def test_the_tool_check_catches_the_old_gitlab_plan_job() -> None:
    old = {
        "image": "python:3.12-slim",
        "script": ['pip install "multinic-reconciler @ git+https://example/x@v0.1.0"', "curl --fail -X POST x"],
    }
    assert _needs(_commands(old)[0]) == {"git"} and _needs(_commands(old)[1]) == {"curl"}


def test_the_pre_commit_snippet_is_a_valid_pre_commit_config(tmp_path: Path) -> None:
    tool = BIN / "pre-commit"
    assert tool.exists() or shutil.which("pre-commit"), "pre-commit is in the dev lock"
    (snippet,) = [s for s in SNIPPETS if s.platform == "pre-commit"]
    path = tmp_path / ".pre-commit-config.yaml"
    path.write_text(snippet.text, encoding="utf-8")
    done = subprocess.run(
        [str(tool), "validate-config", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(snippet.text.replace("rev:", "revision:"), encoding="utf-8")
    assert subprocess.run([str(tool), "validate-config", str(broken)], capture_output=True, check=False).returncode
