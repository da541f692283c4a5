"""CRD admission: structural-schema rules (KEP-2335) and the other checks a real apiserver makes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from multinic_sandbox.kube.server import KubeSandbox

DATA = Path(__file__).parent / "sandbox_kube_data"
ROOT = "spec.versions[0].schema.openAPIV3Schema"
PROJECT_CRDS = Path(__file__).parent.parent / "charts" / "multinic-reconciler" / "crds"


def crd_with(spec_schema: dict[str, Any], root_extra: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    crd = yaml.safe_load((DATA / "widgets-crd.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = spec_schema
    schema.update(root_extra or {})
    return crd


def refusal(sandbox: KubeSandbox, crd: dict[str, Any]) -> dict[str, Any]:
    api = client.ApiextensionsV1Api(sandbox.api_client())
    with pytest.raises(ApiException) as exc:
        api.create_custom_resource_definition(crd)
    assert exc.value.status == 422
    body = json.loads(exc.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "CustomResourceDefinition"
    return body


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "object", "properties": {"size": {"description": "no type"}}},
     f"{ROOT}.properties[spec].properties[size].type: Required value: must not be empty for "
     "specified object fields"),
    ({"type": "array", "items": {"properties": {}}},
     f"{ROOT}.properties[spec].items.type: Required value: must not be empty for specified "
     "array items"),
    ({"type": "object", "additionalProperties": False},
     f"{ROOT}.properties[spec].additionalProperties: Forbidden: additionalProperties cannot be "
     "set to false"),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "additionalProperties": {"type": "string"}},
     f"{ROOT}.properties[spec].additionalProperties: Forbidden: additionalProperties and "
     "properties are mutual exclusive"),
    ({"type": "object", "properties": {"a": {"$ref": "#/definitions/a"}}},
     f"{ROOT}.properties[spec].properties[a].$ref: Forbidden: $ref is not supported"),
    ({"type": "array", "uniqueItems": True, "items": {"type": "string"}},
     f"{ROOT}.properties[spec].uniqueItems: Forbidden: uniqueItems cannot be set to true since "
     "the runtime complexity becomes quadratic"),
    ({"type": "string", "format": "ip-address"},
     f'{ROOT}.properties[spec].format: Unsupported value: "ip-address"'),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "anyOf": [{"type": "object"}]},
     f"{ROOT}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"),
    ({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object",
                                                                 "properties": {}}},
     f"{ROOT}.properties[spec].x-kubernetes-list-map-keys: Required value"),
])
def test_a_non_structural_or_unsupported_schema_is_refused_as_the_apiserver_words_it(
        kube_sandbox: KubeSandbox, schema: dict[str, Any], expected: str) -> None:
    body = refusal(kube_sandbox, crd_with(schema))
    assert expected in body["message"], body["message"]


def test_apply_of_a_crd_with_additional_properties_false_is_refused_as_non_structural(
        kube_sandbox: KubeSandbox) -> None:
    crd = yaml.safe_load((DATA / "nonstructural-crd.yaml").read_text())
    causes = refusal(kube_sandbox, crd)["details"]["causes"]
    assert {c["field"] for c in causes} == {
        f"{ROOT}.properties[spec].additionalProperties", f"{ROOT}.properties[spec].type"}


def test_root_metadata_may_only_restrict_name_and_generate_name(
        kube_sandbox: KubeSandbox) -> None:
    allowed = crd_with({"type": "object"}, {"properties": {
        **crd_with({"type": "object"})["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
            "properties"],
        "metadata": {"type": "object", "properties": {"name": {"type": "string",
                                                               "maxLength": 20}}}}})
    client.ApiextensionsV1Api(kube_sandbox.api_client()).create_custom_resource_definition(
        allowed)
    refused = copy.deepcopy(allowed)
    refused["metadata"]["name"] = "gizmos.sandbox.example.io"
    refused["spec"]["names"] = {"plural": "gizmos", "kind": "Gizmo"}
    refused["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"][
        "properties"]["labels"] = {"type": "object"}
    body = refusal(kube_sandbox, refused)
    assert (f"{ROOT}.properties[metadata]: Forbidden: must not specify anything other than name "
            "and generateName") in body["message"]


def test_crd_names_must_match_group_and_plural_and_have_one_storage_version(
        kube_sandbox: KubeSandbox) -> None:
    crd = crd_with({"type": "object"})
    crd["metadata"]["name"] = "wrong.sandbox.example.io"
    crd["spec"]["versions"][0]["storage"] = False
    body = refusal(kube_sandbox, crd)
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {"metadata.name", "spec.versions"} <= fields


def test_int_or_string_and_preserve_unknown_fields_nodes_need_no_type(
        kube_sandbox: KubeSandbox) -> None:
    crd = crd_with({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "blob": {"x-kubernetes-preserve-unknown-fields": True},
        "port2": {"x-kubernetes-int-or-string": True,
                  "anyOf": [{"type": "integer"}, {"type": "string"}]}}})
    created = client.ApiextensionsV1Api(kube_sandbox.api_client()) \
        .create_custom_resource_definition(crd)
    assert created.metadata.name == "widgets.sandbox.example.io"


def test_a_schema_change_takes_effect_for_new_writes(kube_sandbox: KubeSandbox) -> None:
    kube_sandbox.seed(yaml.safe_load((DATA / "namespace.yaml").read_text()),
                      yaml.safe_load((DATA / "widgets-crd.yaml").read_text()))
    crd = kube_sandbox.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                           "widgets.sandbox.example.io")
    assert crd is not None
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "mtu"]["maximum"] = 1500
    client.ApiextensionsV1Api(kube_sandbox.api_client()).replace_custom_resource_definition(
        crd["metadata"]["name"], crd)
    custom = client.CustomObjectsApi(kube_sandbox.api_client())
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            "sandbox.example.io", "v1alpha1", "multinic-system", "widgets",
            {"apiVersion": "sandbox.example.io/v1alpha1", "kind": "Widget",
             "metadata": {"name": "w"}, "spec": {"nodeName": "w", "mtu": 9000}})
    assert exc.value.status == 422


@pytest.mark.skipif(not any(PROJECT_CRDS.glob("*.yaml")), reason="no generated CRDs yet")
@pytest.mark.parametrize("path", sorted(PROJECT_CRDS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_projects_generated_crds_are_accepted_with_strict_field_validation(
        kube_sandbox: KubeSandbox, path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    api = client.ApiextensionsV1Api(kube_sandbox.api_client())
    created = api.create_custom_resource_definition(crd, field_validation="Strict")
    group = created.spec.group
    served = client.CustomObjectsApi(kube_sandbox.api_client()).get_api_resources(
        group, created.spec.versions[0].name)
    assert created.spec.names.plural in [r.name for r in served.resources]


# -- CEL rules (x-kubernetes-validations) ----------------------------------------------------------
def _widget(spec: dict[str, Any], name: str = "w1") -> dict[str, Any]:
    return {"apiVersion": "sandbox.example.io/v1alpha1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.fixture
def ruled(kube_sandbox: KubeSandbox) -> client.CustomObjectsApi:
    sandbox = kube_sandbox
    crd = crd_with({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "messageExpression":
             "'min ' + string(self.min) + ' exceeds max ' + string(self.max)"},
            {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable",
             "reason": "FieldValueForbidden", "fieldPath": ".mode"}],
        "properties": {
            "min": {"type": "integer"}, "max": {"type": "integer"},
            "mode": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self.lowerAscii() == self", "message": "tags are lower case"}]}}}})
    client.ApiextensionsV1Api(sandbox.api_client()).create_custom_resource_definition(crd)
    return client.CustomObjectsApi(sandbox.api_client())


def _create(api: client.CustomObjectsApi, body: dict[str, Any]) -> Any:
    return api.create_namespaced_custom_object("sandbox.example.io", "v1alpha1", "default",
                                               "widgets", body)


def _invalid(call: Any) -> list[dict[str, str]]:
    with pytest.raises(ApiException) as exc:
        call()
    assert exc.value.status == 422
    causes: list[dict[str, str]] = json.loads(exc.value.body)["details"]["causes"]
    return causes


def test_cel_rules_are_evaluated_with_message_expression_and_item_paths(
        ruled: client.CustomObjectsApi) -> None:
    causes = _invalid(lambda: _create(ruled, _widget({"min": 5, "max": 1, "tags": ["ok", "Bad"]})))
    assert {(c["field"], c["message"]) for c in causes} == {
        ("spec", 'Invalid value: "object": min 5 exceeds max 1'),
        ("spec.tags[1]", 'Invalid value: "string": tags are lower case')}
    _create(ruled, _widget({"min": 1, "max": 5, "mode": "a"}))


def test_cel_transition_rules_run_on_update_only(ruled: client.CustomObjectsApi) -> None:
    _create(ruled, _widget({"min": 1, "max": 5, "mode": "a"}))
    causes = _invalid(lambda: ruled.patch_namespaced_custom_object(
        "sandbox.example.io", "v1alpha1", "default", "widgets", "w1", {"spec": {"mode": "b"}}))
    assert [(c["field"], c["message"], c["reason"]) for c in causes] == [
        ("spec.mode", "Forbidden: mode is immutable", "FieldValueForbidden")]


@pytest.mark.parametrize("rule", [
    "'a,b'.split(',') == ['a', 'b']", "'Hello'.lowerAscii() == 'hello'",
    "'HeLLo'.upperAscii() == 'HELLO'", "'abc'.substring(1) == 'bc'", "'abc'.indexOf('c') == 2",
    "'abca'.lastIndexOf('a') == 3", "'abc'.charAt(1) == 'b'", "' x '.trim() == 'x'",
    "'aaa'.replace('a', 'b', 1) == 'baa'", "['a', 'b'].join('-') == 'a-b'",
    "[1, 2, 3].isSorted() && ![2, 1].isSorted()", "[1, 2].sum() == 3", "[3, 1].max() == 3",
    "[1, 2, 3].indexOf(2) == 1", "'a1b2'.findAll('[0-9]') == ['1', '2']",
    "'a1b2'.find('[0-9]') == '1'", "isIP('10.0.0.1') && !isIP('10.0.0.256')",
    "isCIDR('10.0.0.0/24') && !isCIDR('10.0.0.1')", "[[1], [2]].flatten() == [1, 2]",
    "self.all(x, x.exists_one(y, y == 'a')) || true"])
def test_kubernetes_cel_library_functions(rule: str) -> None:
    from multinic_sandbox.kube import cel

    compiled = cel.compile_rule({"rule": rule})
    assert cel._run(compiled.program, [["a"]], cel._MISSING, False) is not False
    assert bool(cel._run(compiled.program, [["a"]], cel._MISSING, False))
