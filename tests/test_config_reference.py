"""The contract documents itself: schemas are complete 2020-12 schemas, and the reference in
docs/ is generated from them (a drift fails here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from test_config_support import REPO, SCHEMAS

from reconciler.config import reference

# The config repo's kinds; the status schemas (*-status.schema.json, written by the reconciler,
# generated from reconciler.status.models) have their own tests in test_status_model.py.
SCHEMA_FILES = sorted(p for p in SCHEMAS.glob("*.schema.json") if not p.name.endswith("-status.schema.json"))


def _objects(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every sub-schema that declares properties, with its location."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _objects(value, f"{path}/{i}")
    return found


def test_there_is_one_schema_per_kind() -> None:
    assert [p.name for p in SCHEMA_FILES] == [
        "multinicnodeconfig.schema.json",
        "proxmoxcluster.schema.json",
        "reconcilersettings.schema.json",
    ]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_each_schema_is_a_valid_2020_12_schema_with_id_title_and_description(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://multinic.io/schemas/v1alpha1/")
    assert schema["title"] and schema["description"]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_object_refuses_unknown_keys_and_every_property_is_described(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    for where, node in _objects(schema):
        assert node.get("additionalProperties") is False, where
        for name, prop in node["properties"].items():
            assert prop.get("description"), f"{where}/properties/{name} has no description"


def test_the_committed_reference_equals_the_generated_one() -> None:
    committed = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == reference.render(), "run: python -m reconciler.config.reference > docs/config-reference.md"


def test_the_reference_generator_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.config.reference"], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == reference.render()


def test_every_schema_field_appears_in_the_reference() -> None:
    text = reference.render()
    for path in SCHEMA_FILES:
        schema = json.loads(path.read_text(encoding="utf-8"))
        for _, node in _objects(schema):
            for name in node["properties"]:
                assert f"{name}` |" in text or f".{name}`" in text, name


def test_every_rule_id_the_validator_can_emit_is_documented() -> None:
    import re

    sources = "".join(p.read_text() for p in (REPO / "reconciler" / "config").glob("*.py"))
    emitted = set(re.findall(r'"((?:duplicate|reserved|host|cluster|insecure|file)-[a-z-]+)"', sources))
    documented = {rule for rule, _, _ in reference.CROSS_FILE_RULES}
    assert emitted <= documented, emitted - documented


def test_the_pre_commit_hook_runs_the_validator_on_the_whole_repo() -> None:
    import yaml

    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "reconciler-validate"
    assert hook["entry"].split()[:2] == ["reconciler", "validate"]
    assert hook["language"] == "python" and hook["pass_filenames"] is False


def test_the_ci_doc_shows_pre_commit_github_gitlab_and_the_next_step() -> None:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    for needle in [
        "reconciler validate --format github",
        "--format junit",
        "junit:",
        "reconciler-validate",
        "reconciler plan --repo . --offline --format markdown",
    ]:
        assert needle in text, needle
