"""The status contract: typed models -> schemas/*-status.schema.json -> the CRDs' status schema,
kept equal by these tests, and one state table every surface reads."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import pytest
import yaml
from jsonschema import Draft202012Validator
from kubernetes.client.exceptions import ApiException
from multinic_sandbox.kube.server import KubeSandbox
from support.reconcile import CRD_DIR, NAMESPACE, ROOT, install_crds

from reconciler.kube import crds
from reconciler.kube.client import Kube
from reconciler.status import models, schema, states

KINDS = ("MultiNicNodeConfig", "ProxmoxCluster")


def committed_schema(kind: str) -> dict[str, Any]:
    return json.loads((ROOT / "schemas" / schema.SCHEMA_FILES[kind]).read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_status_schema_equals_the_one_generated_from_the_model(kind: str) -> None:
    committed = (ROOT / "schemas" / schema.SCHEMA_FILES[kind]).read_text(encoding="utf-8")
    assert committed == schema.render(kind), (
        f"schemas/{schema.SCHEMA_FILES[kind]} is stale: run `python -m reconciler.kube.crds`")


def _properties(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            found.append((f"{where}.{name}", prop))
            found += _properties(prop, f"{where}.{name}")
        for key in ("items", "$defs"):
            value = node.get(key)
            if isinstance(value, dict):
                children = value.values() if key == "$defs" else [value]
                for child in children:
                    found += _properties(child, f"{where}[]")
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_every_status_property_is_described_and_the_schema_is_2020_12(kind: str) -> None:
    source = committed_schema(kind)
    assert source["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(source)
    props = _properties(source)
    assert len(props) > 10
    undescribed = [path for path, prop in props if not prop.get("description") and "$ref" not in prop]
    assert undescribed == []


@pytest.mark.parametrize("kind", KINDS)
def test_the_crd_status_schema_is_translated_from_the_status_schema(kind: str) -> None:
    crd = yaml.safe_load(crds.crd_file(kind, CRD_DIR).read_text(encoding="utf-8"))
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    source = committed_schema(kind)
    assert set(status["properties"]) == set(source["properties"])
    assert status["description"] == source["description"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    assert "$ref" not in json.dumps(status)


def test_the_table_names_every_phase_the_models_allow_and_nothing_else() -> None:
    assert {r.phase for r in states.NODE_STATES.values()} - {None} == set(get_args(models.NodePhase))
    assert {r.phase for r in states.CLUSTER_STATES.values()} == set(get_args(models.ClusterPhase))
    assert set(states.NODE_STATES) == set(get_args(states.NodeStateName))
    assert set(states.CLUSTER_STATES) == set(get_args(states.ClusterStateName))


def test_every_reason_in_the_table_is_a_valid_condition_reason() -> None:
    pattern = re.compile(models.REASON_PATTERN)
    rows = [*states.NODE_STATES.values(), *states.CLUSTER_STATES.values()]
    reasons = {reason for row in rows for cond in (row.ready, row.reconciling, row.stalled) if cond
               for reason in [cond[1]]}
    reasons |= {row.event for row in rows if row.event}
    reasons |= {states.CONFIG_INVALID[1], states.CONFIG_VALID[1], states.EVENT_INVALID, states.EVENT_VALID}
    assert all(pattern.fullmatch(r) for r in reasons), reasons


def test_a_stalled_or_failed_node_is_stalled_in_kstatus_terms_and_a_warning() -> None:
    for name, row in states.NODE_STATES.items():
        if row.phase in ("Failed", "Stalled"):
            assert row.stalled == ("True", row.stalled[1]) and row.warning, name  # type: ignore[index]
        elif row.phase == "Held":  # needs a person (the file or the VM), reported by the NIC check's Event
            assert row.stalled == ("True", row.stalled[1]), name  # type: ignore[index]
        else:
            assert row.stalled is None or row.stalled[0] == "False", name


# -- the apiserver enforces the generated status schema ---------------------------------------------


@pytest.fixture
def kube(kube_sandbox: KubeSandbox) -> Kube:
    install_crds(kube_sandbox)
    return Kube(kube_sandbox.api_client(), NAMESPACE)


def _node(kube_sandbox: KubeSandbox) -> None:
    kube_sandbox.seed({"apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig",
                       "metadata": {"name": "worker-01", "namespace": NAMESPACE},
                       "spec": {"nodeName": "worker-01", "interfaces": [
                           {"name": "storage", "macAddress": "52:54:00:00:00:01"}]}})


def test_a_status_built_from_the_model_is_stored_as_is(kube: Kube, kube_sandbox: KubeSandbox) -> None:
    _node(kube_sandbox)
    wanted = models.NodeStatus(
        phase="Failed", spec_hash="abc", job="multinic-apply-worker-01-abc", interface_count=1,
        last_error="agent failed: storage: no device has MAC 52:54:00:00:00:01",
        conditions=(models.Condition(type="Ready", status="False", reason="ApplyFailed", message="x",
                                     last_transition_time="2026-01-01T00:00:00Z", observed_generation=1),),
        interfaces=(models.InterfaceStatus(name="storage", mac_address="52:54:00:00:00:01", state="error",
                                           error="no device has MAC 52:54:00:00:00:01"),),
        proxmox_check=models.ProxmoxCheck(checked=True, vm_node="pve1", mismatches=()))
    stored = kube.patch_status("MultiNicNodeConfig", "worker-01", wanted.dump())
    assert stored["status"] == wanted.dump()
    assert models.parse(models.NodeStatus, stored["status"]) == wanted


def test_a_phase_outside_the_table_is_refused_by_the_apiserver(kube: Kube, kube_sandbox: KubeSandbox) -> None:
    _node(kube_sandbox)
    with pytest.raises(Exception) as refused:
        kube.patch_status("MultiNicNodeConfig", "worker-01", {"phase": "failed"})
    cause = refused.value.__cause__ or refused.value
    text = str(cause) + (cause.body if isinstance(cause, ApiException) and cause.body else "")
    assert "phase" in text and ("Unsupported value" in text or "422" in text), text


def test_an_old_or_hand_edited_status_parses_leniently() -> None:
    parsed = models.parse(models.NodeStatus, {"phase": "Ready", "somethingOld": 1, "interfaceCount": 2})
    assert parsed.phase == "Ready" and parsed.interface_count == 2
    broken = models.parse(models.NodeStatus, {"phase": "nonsense", "conditions": [
        {"type": "Ready", "status": "True", "reason": "Applied", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
    assert broken.phase is None and broken.conditions[0].reason == "Applied"


def test_the_state_table_in_the_operations_guide_is_the_code_table() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Status: what each surface says", 1)[1].split("A `ProxmoxCluster`", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        documented[cells[0].strip("`")] = (cells[1].strip("`"), cells[3].split(" ")[0].strip("`"))
    expected = {name: (row.phase, row.event or "none") for name, row in states.NODE_STATES.items()
                if row.phase is not None}
    assert documented == expected


def test_statuses_built_alike_share_one_fields_set_and_a_copy_never_changes_the_original():
    """Frozen models built with the same fields share their fields set (memory at 10,000 nodes);
    what each one says was set stays its own, also after an updating copy."""
    first = models.Condition(type="Ready", status="True", reason="Applied", message="",
                             last_transition_time="2026-01-01T00:00:00Z")
    second = models.Condition.model_validate({"type": "Drifted", "status": "False", "reason": "InSync",
                                              "message": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"})
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    copied = first.model_copy(update={"observed_generation": 3})
    assert copied.model_fields_set == first.model_fields_set | {"observed_generation"}
    assert "observed_generation" not in first.model_fields_set and "observed_generation" not in second.model_fields_set
    assert copied.dump()["observedGeneration"] == 3 and "observedGeneration" not in first.dump()
