"""The alerts docs/operations.md suggests can fire: every label value they match is one the code
emits, checked against the series of a real loop whose rollout has a failed and a stalled node."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from multinic_sandbox.harness.fleet import prepare, write_config_repo
from multinic_sandbox.kube.node_model import fail
from multinic_sandbox.kube.server import KubeSandbox
from prometheus_client.parser import text_string_to_metric_families

from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.loop.runner import LoopSettings, Runner
from reconciler.source.opening import LocalSource
from reconciler.status.states import CLUSTER_PHASES, NODE_PHASES

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "multinic-system"
_SELECTOR = re.compile(r"([a-z_:][a-z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def documented_alerts() -> list[dict[str, str]]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("Suggested alerts", 1)[1]
    block = section.split("```yaml", 1)[1].split("```", 1)[0]
    rules = yaml.safe_load(block)
    assert rules and all("expr" in r for r in rules)
    return rules  # type: ignore[no-any-return]


def matchers(expr: str) -> list[tuple[str, str, list[str]]]:
    """(metric, label, values) for every ``=`` or ``=~`` matcher in a PromQL expression."""
    found = []
    for metric, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            if op in ("=", "=~"):
                found.append((metric, label, value.split("|") if op == "=~" else [value]))
    return found


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    """The exposition of a loop after node-01 failed (maxFailures 1), so node-02 is stalled."""
    repo = write_config_repo(tmp_path_factory.mktemp("repo") / "repo", 3, max_parallel=2, max_failures=1)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    with KubeSandbox() as sandbox:
        prepare(sandbox, validate_repo(repo).desired, namespace=NAMESPACE)
        sandbox.node_model.script("node-01", fail("agent failed", delay=0.1))
        runner = Runner(LocalSource(str(repo)), lambda ns: Kube(sandbox.api_client(), ns),
                        LoopSettings(identity="alerts", lease_namespace=NAMESPACE))
        for _ in range(40):
            assert runner.elector.try_acquire_or_renew()
            runner.cycle()
            rollout = runner.last_rollout
            if rollout and {s.state for s in rollout.nodes.values()} >= {"failed", "stalled"}:
                break
            time.sleep(0.3)
        text = runner.metrics.exposition().decode()
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append({**sample.labels, "__value__": repr(sample.value)})
    return out


def test_the_docs_suggest_alerts_on_objects_and_cycles() -> None:
    metrics = {m for rule in documented_alerts() for m, _, _ in matchers(rule["expr"])}
    assert {"multinic_objects", "multinic_reconcile_cycles_total"} <= metrics


@pytest.mark.parametrize("alert", [r["alert"] for r in documented_alerts()])
def test_every_label_value_a_documented_alert_matches_is_emitted(
        alert: str, series: dict[str, list[dict[str, str]]]) -> None:
    rule = next(r for r in documented_alerts() if r["alert"] == alert)
    for metric, label, values in matchers(rule["expr"]):
        emitted = {s.get(label) for s in series.get(metric, [])}
        for value in values:
            assert value in emitted, f"{alert}: {metric}{{{label}={value!r}}} is never emitted (emitted: {emitted})"


def test_the_node_failed_alert_expression_is_above_zero(series: dict[str, list[dict[str, str]]]) -> None:
    # sum(multinic_objects{kind="MultiNicNodeConfig",phase=~"Failed|Stalled"}) > 0, evaluated by hand
    nodes = {s["phase"]: float(s["__value__"]) for s in series["multinic_objects"] if s["kind"] == "MultiNicNodeConfig"}
    assert nodes["Failed"] == 1 and nodes["Stalled"] == 1  # node-01 failed, node-02 stalled behind it
    assert not any(p.islower() for p in nodes)  # never the rollout's internal names


def test_every_phase_is_a_series_from_the_start_so_a_sum_alert_sees_zero(
        series: dict[str, list[dict[str, str]]]) -> None:
    nodes = {s["phase"]: float(s["__value__"]) for s in series["multinic_objects"] if s["kind"] == "MultiNicNodeConfig"}
    assert set(nodes) == set(NODE_PHASES) and nodes["Drifted"] == 0 and sum(nodes.values()) == 3
    clusters = {s["phase"] for s in series["multinic_objects"] if s["kind"] == "ProxmoxCluster"}
    assert clusters == set(CLUSTER_PHASES)
    reverted = {s["kind"]: s["__value__"] for s in series["multinic_live_edits_reverted_total"]}
    assert reverted == {"MultiNicNodeConfig": "0.0", "ProxmoxCluster": "0.0"}  # no hand edit in this loop
