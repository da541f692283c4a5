"""Labels and annotations from Git are part of the plan's diff and reach the live object; the ones
Git drops are removed from what we applied, and what others set on the object is left alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.reconcile import API_VERSION, EXAMPLE_REPO, NAMESPACE, NODE_KIND, ReconcileEnv, git_repo, start_env

from reconciler.plan.changeset import Action


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ReconcileEnv]:
    with start_env(git_repo(EXAMPLE_REPO, tmp_path / "repo"), jobs="manual") as env:
        env.apply()
        yield env


def edit(env: ReconcileEnv, old: str, new: str) -> None:
    path = env.repo / "nodes" / "worker-01.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_an_added_annotation_is_an_update_and_is_applied(env: ReconcileEnv) -> None:
    edit(env, "    rack: rack-a\n", "    rack: rack-a\n  annotations:\n    team.example.com/owner: storage\n")

    change = next(c for c in env.plan().changes.changes if c.name == "worker-01")
    assert change.action is Action.UPDATE
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("metadata.annotations.team.example.com/owner", None, "storage")]

    env.apply()
    live = env.cr("worker-01") or {}
    assert live["metadata"]["annotations"]["team.example.com/owner"] == "storage"
    assert next(c for c in env.plan().changes.changes if c.name == "worker-01").action is Action.UNCHANGED


def test_a_removed_label_is_removed_but_a_label_set_by_someone_else_stays(env: ReconcileEnv) -> None:
    live = env.cr("worker-01") or {}
    theirs = {**live, "metadata": {"name": "worker-01", "namespace": NAMESPACE,
                                   "labels": {"monitoring.example.com/scrape": "true"}}}
    theirs.pop("spec", None)
    theirs.pop("status", None)
    env.sandbox.apply({**theirs, "apiVersion": API_VERSION, "kind": NODE_KIND}, manager="kubectl-label")
    edit(env, "  labels:\n    rack: rack-a\n", "")

    change = next(c for c in env.plan().changes.changes if c.name == "worker-01")
    assert change.action is Action.UPDATE
    assert [(f.path, f.before, f.after) for f in change.fields] == [("metadata.labels.rack", "rack-a", None)]

    env.apply()
    labels = (env.cr("worker-01") or {})["metadata"]["labels"]
    assert "rack" not in labels
    assert labels["monitoring.example.com/scrape"] == "true"
    assert next(c for c in env.plan().changes.changes if c.name == "worker-01").action is Action.UNCHANGED
