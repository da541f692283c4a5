"""The Dockerfile, checked statically (no container engine runs here): multi-stage, base images
pinned by tag, a non-root USER in the final stage, the console script as ENTRYPOINT, and every
file the wheel build needs inside the build context."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(step)
    return out


def global_args(steps: list[tuple[str, str]]) -> dict[str, str]:
    args = {}
    for word, rest in steps:
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def base_image(from_args: str, args: dict[str, str]) -> str:
    image = next(w for w in from_args.split() if not w.startswith("--"))
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


def test_it_is_multi_stage_with_named_stages(steps: list[tuple[str, str]]) -> None:
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) >= 2
    assert all(re.search(r"\sAS\s+\w+", f, re.IGNORECASE) for f in froms)


def test_every_base_image_is_pinned_by_tag_not_latest(steps: list[tuple[str, str]]) -> None:
    args = global_args(steps)
    stage_names = {f.split()[-1] for word, f in steps if word == "FROM" and " AS " in f.upper()}
    for word, rest in steps:
        if word != "FROM":
            continue
        image = base_image(rest, args)
        if image in stage_names:
            continue
        assert "$" not in image, f"unresolved base image {image}"
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{image}: pin a versioned tag"


def test_the_final_stage_runs_as_a_non_root_user(steps: list[tuple[str, str]]) -> None:
    final = stages(steps)[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert user.isdigit(), "a numeric USER lets runAsNonRoot verify it without /etc/passwd"
    last_user = max(i for i, (word, _) in enumerate(final) if word == "USER")
    assert all(word != "RUN" for word, _ in final[last_user:]), "no RUN after dropping root"


def test_the_entrypoint_is_the_console_script(steps: list[tuple[str, str]]) -> None:
    final = stages(steps)[-1]
    entrypoint = json.loads([rest for word, rest in final if word == "ENTRYPOINT"][-1])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["reconciler"] and "reconciler" in scripts
    assert json.loads([rest for word, rest in final if word == "CMD"][-1]) == ["run"]


def test_the_chart_and_the_node_jobs_start_the_same_image_the_same_way() -> None:
    from reconciler.kube.jobs import JobSettings

    values = yaml.safe_load((ROOT / "charts/multinic-reconciler/values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "charts/multinic-reconciler/Chart.yaml").read_text())
    default_image = f"{values['image']['repository']}:{chart['appVersion']}"
    assert JobSettings().image == default_image
    template = (ROOT / "charts/multinic-reconciler/templates/deployment.yaml").read_text()
    assert 'command: ["reconciler"]' in template and 'args: ["run"]' in template


def ignored(path: str, patterns: list[str]) -> bool:
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        hit = any(fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, pattern.removeprefix("**/"))
                  for candidate in [path, *[path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)]])
        if hit:
            excluded = not negate
    return excluded


def test_every_copied_path_exists_and_is_in_the_build_context(steps: list[tuple[str, str]]) -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = []
    for word, rest in steps:
        if word == "COPY" and "--from=" not in rest:
            *sources, _dest = rest.split()
            copied += sources
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
    # The wheel force-includes these (pyproject.toml); the build stage must have them.
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    for needed in [*include["force-include"], "pyproject.toml", "README.md", *include["packages"]]:
        assert any(needed == c or needed.startswith(c.rstrip("/") + "/") for c in copied), needed
    for private in (".git", ".venv", "tests"):
        assert ignored(private, patterns), f".dockerignore should exclude {private}"


def test_the_readme_says_how_to_build_the_image() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docker build" in readme and "Dockerfile" in readme
