"""The official kubernetes Python client against the sandbox, over real HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException
from multinic_sandbox.kube.server import KubeSandbox

DATA = Path(__file__).parent / "sandbox_kube_data"
GROUP, VERSION, PLURAL, NS = "sandbox.example.io", "v1alpha1", "widgets", "multinic-system"


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget",
            "metadata": {"name": name, "namespace": NS}, "spec": {"nodeName": name, **spec}}


@pytest.fixture
def sandbox(kube_sandbox: KubeSandbox) -> KubeSandbox:
    kube_sandbox.seed(load("namespace.yaml"), load("widgets-crd.yaml"))
    return kube_sandbox


@pytest.fixture
def custom(sandbox: KubeSandbox) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(sandbox.api_client())


@pytest.fixture
def core(sandbox: KubeSandbox) -> client.CoreV1Api:
    return client.CoreV1Api(sandbox.api_client())


def status_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def raw(sandbox: KubeSandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A plain HTTP request, for wire details the typed client hides."""
    session = requests.Session()
    session.trust_env = False
    return session.request(method, sandbox.url + path, timeout=10, **kwargs)


def test_discovery_shows_a_new_crd_group_right_after_the_crd_is_created(
        kube_sandbox: KubeSandbox) -> None:
    api = kube_sandbox.api_client()
    groups = client.ApisApi(api).get_api_versions()
    assert GROUP not in [g.name for g in groups.groups]
    assert {"batch", "apiextensions.k8s.io", "coordination.k8s.io"} <= {g.name for g in groups.groups}
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(load("widgets-crd.yaml"))
    assert GROUP in [g.name for g in client.ApisApi(api).get_api_versions().groups]
    resources = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION).resources
    names = {r.name: r for r in resources}
    assert names["widgets"].short_names == ["wdg"]
    assert names["widgets"].singular_name == "widget"
    assert "widgets/status" in names
    jobs = {r.name for r in client.BatchV1Api(api).get_api_resources().resources}
    assert {"jobs", "jobs/status"} <= jobs
    crd = ext.read_custom_resource_definition("widgets.sandbox.example.io")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd.status.accepted_names.kind == "Widget"


def test_configmap_create_read_replace_delete_round_trip(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(
        NS, {"metadata": {"name": "cm", "labels": {"a": "b"}}, "data": {"k": "v"}})
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert int(created.metadata.resource_version) > 0
    created.data["k"] = "w"
    replaced = core.replace_namespaced_config_map("cm", NS, created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert core.read_namespaced_config_map("cm", NS).data == {"k": "w"}
    core.delete_namespaced_config_map("cm", NS)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("cm", NS)
    assert missing.value.status == 404
    assert status_body(missing.value)["reason"] == "NotFound"
    assert status_body(missing.value)["message"] == 'configmaps "cm" not found'


def test_create_of_an_existing_name_is_409_already_exists(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    assert exc.value.status == 409
    assert status_body(exc.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as elsewhere:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("w2"))
    assert elsewhere.value.status == 400  # body namespace differs from the URL's


def test_replace_with_a_stale_resource_version_is_409_conflict(
        custom: client.CustomObjectsApi) -> None:
    first = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    first["spec"]["mtu"] = 1400
    custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1", first)
    first["spec"]["mtu"] = 1300  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1", first)
    assert exc.value.status == 409
    body = status_body(exc.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    stale_patch = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]},
                   "spec": {"mtu": 1200}}
    with pytest.raises(ApiException) as patched:
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1", stale_patch)
    assert patched.value.status == 409


def test_schema_violation_is_422_invalid_naming_each_field(custom: client.CustomObjectsApi) -> None:
    bad = widget("w1", mtu=10, mode="bridge", tags=["ok", "NOT"],
                 interfaces=[{"name": "eth1", "mac": "zz:zz", "gateway": "300.1.1.1"}])
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bad)
    assert exc.value.status == 422
    body = status_body(exc.value)
    assert body["reason"] == "Invalid"
    fields = {c["field"]: c for c in body["details"]["causes"]}
    assert set(fields) == {"spec.mtu", "spec.mode", "spec.tags[1]", "spec.interfaces[0].mac",
                           "spec.interfaces[0].gateway"}
    assert fields["spec.mode"]["reason"] == "FieldValueNotSupported"
    assert "must be of type mac" in fields["spec.interfaces[0].mac"]["message"]
    assert body["message"].startswith('Widget.sandbox.example.io "w1" is invalid: [')


def test_missing_required_fields_and_wrong_types_are_422(custom: client.CustomObjectsApi) -> None:
    bad = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget",
           "metadata": {"name": "w1"}, "spec": {"mtu": "big", "interfaces": [{"name": "a"}]}}
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bad)
    causes = {c["field"]: c["reason"] for c in status_body(exc.value)["details"]["causes"]}
    assert causes == {"spec.nodeName": "FieldValueRequired", "spec.mtu": "FieldValueTypeInvalid",
                      "spec.interfaces[0].mac": "FieldValueRequired"}


def test_duplicate_keys_in_a_map_list_are_422(custom: client.CustomObjectsApi) -> None:
    bad = widget("w1", interfaces=[{"name": "eth1", "mac": "52:54:00:00:00:01"},
                                   {"name": "eth1", "mac": "52:54:00:00:00:02"}])
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bad)
    assert status_body(exc.value)["details"]["causes"][0]["reason"] == "FieldValueDuplicate"


def test_int_or_string_preserve_unknown_fields_and_defaults(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, widget("w1", port="http", extra={"free": {"form": [1]}}))
    assert created["spec"]["mode"] == "static"  # schema default
    assert created["spec"]["extra"] == {"free": {"form": [1]}}
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w2", port=8080))
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w3", port=1.5))
    assert exc.value.status == 422


def test_unknown_fields_are_pruned_unless_field_validation_is_strict(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    body = widget("w1", foo="bar")
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body,
                                                     field_validation="Ignore")
    assert "foo" not in created["spec"]
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w2", foo=1),
                                               field_validation="Strict")
    assert exc.value.status == 400  # a real apiserver answers strict decoding errors with 400
    assert 'unknown field "spec.foo"' in status_body(exc.value)["message"]
    answer = raw(sandbox, "POST", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}",
                 params={"fieldValidation": "Warn"}, json=widget("w3", bar=2))
    assert answer.status_code == 201
    assert answer.headers["Warning"] == '299 - "unknown field \\"spec.bar\\""'
    assert "bar" not in answer.json()["spec"]


def test_generation_bumps_on_spec_changes_only(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    assert created["metadata"]["generation"] == 1
    labelled = custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    with_status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "w1", {"status": {"phase": "Ready"}})
    assert with_status["metadata"]["generation"] == 1
    assert with_status["status"] == {"phase": "Ready"}
    changed = custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"mtu": 1500}})
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_ignores_spec_and_main_resource_ignores_status(
        custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, {**widget("w1"), "status": {"phase": "Lies"}})
    assert "status" not in created  # status is dropped on create
    current = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    current["status"] = {"phase": "Applied"}
    current["spec"]["mtu"] = 9000
    after = custom.replace_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "w1",
                                                           current)
    assert after["status"] == {"phase": "Applied"}
    assert "mtu" not in after["spec"]
    after["status"] = {"phase": "Overwritten"}
    main = custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1", after)
    assert main["status"] == {"phase": "Applied"}


def test_json_patch_and_merge_patch(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1", tags=["a"]))
    json_patch = "application/json-patch+json"
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1",
        [{"op": "add", "path": "/spec/tags/-", "value": "b"},
         {"op": "add", "path": "/spec/mtu", "value": 1400}], _content_type=json_patch)
    assert patched["spec"]["tags"] == ["a", "b"]
    merged = custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"tags": None, "mtu": 1450}})
    assert "tags" not in merged["spec"] and merged["spec"]["mtu"] == 1450
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "w1", [{"op": "test", "path": "/spec/mtu", "value": 1}],
            _content_type=json_patch)
    assert exc.value.status == 422
    with pytest.raises(ApiException) as as_merge:  # a list is not a merge patch
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "w1", [{"op": "remove", "path": "/spec/mtu"}])
    assert as_merge.value.status == 400


def test_strategic_merge_patch_is_415_for_custom_resources_but_works_for_built_ins(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi, core: client.CoreV1Api) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"mtu": 1400}},
            _content_type="application/strategic-merge-patch+json")
    assert exc.value.status == 415
    core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "busybox:1"}, {"name": "b", "image": "busybox:1"}]}})
    pod = core.patch_namespaced_pod("p", NS, {"spec": {"containers": [
        {"name": "b", "image": "busybox:2"}]}})
    assert [(c.name, c.image) for c in pod.spec.containers] == [("a", "busybox:1"),
                                                                 ("b", "busybox:2")]


def test_dry_run_validates_without_storing(sandbox: KubeSandbox,
                                           custom: client.CustomObjectsApi) -> None:
    rv = sandbox.resource_version
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"),
                                                     dry_run="All")
    assert created["metadata"]["name"] == "w1"
    assert sandbox.get(f"{GROUP}/{VERSION}", "Widget", "w1", NS) is None
    assert sandbox.resource_version == rv
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1", mtu=1),
                                               dry_run="All")
    assert exc.value.status == 422
    assert sandbox.request_log.writes() == []
    assert len(sandbox.request_log.writes(include_dry_run=True)) == 2


def test_put_without_resource_version_is_refused_for_custom_resources(
        custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    with pytest.raises(ApiException) as exc:
        custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1",
                                                widget("w1", mtu=1400))
    assert exc.value.status == 422
    assert "metadata.resourceVersion" in exc.value.body


def test_create_in_a_missing_namespace_is_404(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as exc:
        body = widget("w1")
        del body["metadata"]["namespace"]
        custom.create_namespaced_custom_object(GROUP, VERSION, "nope", PLURAL, body)
    assert exc.value.status == 404
    assert status_body(exc.value)["message"] == 'namespaces "nope" not found'


def test_list_paginates_with_continue_tokens_and_the_request_log_counts_each_page(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    sandbox.seed([widget(f"w{i:02d}") for i in range(25)])
    sandbox.request_log.clear()
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, limit=10,
                                                    _continue=token)
        pages += 1
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if pages == 1:
            assert page["metadata"]["remainingItemCount"] == 15
        if not token:
            break
    assert pages == 3
    assert names == [f"w{i:02d}" for i in range(25)]
    assert sandbox.request_log.count("list", "widgets") == 3
    assert sandbox.request_log.counts()[("list", "widgets")] == 3
    assert sandbox.request_log.writes() == []
    assert all(r.status == 200 for r in sandbox.request_log.filter(resource="widgets"))


def test_label_and_field_selectors_filter_lists(sandbox: KubeSandbox,
                                                custom: client.CustomObjectsApi) -> None:
    for i, (env, tier) in enumerate([("prod", "a"), ("prod", "b"), ("dev", "a"), ("qa", None)]):
        obj = widget(f"w{i}")
        obj["metadata"]["labels"] = {"env": env, **({"tier": tier} if tier else {})}
        sandbox.seed(obj)

    def names(**kwargs: Any) -> list[str]:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, **kwargs)
        return [i["metadata"]["name"] for i in items["items"]]

    assert names(label_selector="env=prod") == ["w0", "w1"]
    assert names(label_selector="env==prod,tier!=b") == ["w0"]
    assert names(label_selector="env in (dev,qa)") == ["w2", "w3"]
    assert names(label_selector="env notin (dev,qa)") == ["w0", "w1"]
    assert names(label_selector="tier") == ["w0", "w1", "w2"]
    assert names(label_selector="!tier") == ["w3"]
    assert names(field_selector="metadata.name=w2") == ["w2"]
    assert names(field_selector="metadata.name!=w2,metadata.namespace=multinic-system") == [
        "w0", "w1", "w3"]
    with pytest.raises(ApiException) as exc:
        names(field_selector="spec.nodeName=w1")
    assert exc.value.status == 400


def test_pods_field_selectors_on_node_name_and_phase(core: client.CoreV1Api) -> None:
    for name, node in (("a", "worker-01"), ("b", "worker-02")):
        core.create_namespaced_pod(NS, {"metadata": {"name": name}, "spec": {
            "nodeName": node, "containers": [{"name": "c", "image": "busybox:1"}]}})
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-02")
    assert [p.metadata.name for p in pods.items] == ["b"]
    pending = core.list_namespaced_pod(NS, field_selector="status.phase=Pending")
    assert len(pending.items) == 2


def test_server_side_apply_creates_then_updates_and_tracks_managed_fields(
        sandbox: KubeSandbox) -> None:
    dyn = dynamic.DynamicClient(sandbox.api_client())
    widgets = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Widget")
    body = widget("w1", mtu=1500, interfaces=[{"name": "eth1", "mac": "52:54:00:00:00:01"}])
    created = dyn.server_side_apply(widgets, body=body, namespace=NS, field_manager="reconciler")
    assert created.metadata.generation == 1
    entries = created.to_dict()["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"]) for e in entries] == [("reconciler", "Apply")]
    fields = entries[0]["fieldsV1"]
    assert 'k:{"name":"eth1"}' in fields["f:spec"]["f:interfaces"]
    assert "f:mac" in fields["f:spec"]["f:interfaces"]['k:{"name":"eth1"}']
    same = dyn.server_side_apply(widgets, body=body, namespace=NS, field_manager="reconciler")
    assert same.metadata.resourceVersion == created.metadata.resourceVersion  # no-op
    body["spec"]["mtu"] = 9000
    updated = dyn.server_side_apply(widgets, body=body, namespace=NS, field_manager="reconciler")
    assert updated.spec.mtu == 9000 and updated.metadata.generation == 2


def test_server_side_apply_conflicts_name_the_fields_and_managers_unless_forced(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1", mtu=1500),
                                           field_manager="kubectl-edit")
    apply = {**widget("w1", mtu=9000, mode="dhcp")}
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "w1", apply, field_manager="reconciler",
            _content_type="application/apply-patch+yaml")
    assert exc.value.status == 409
    body = status_body(exc.value)
    assert body["reason"] == "Conflict"
    assert body["message"].startswith("Apply failed with 2 conflicts: conflicts with "
                                      '"kubectl-edit" using sandbox.example.io/v1alpha1:')
    assert {c["field"] for c in body["details"]["causes"]} == {".spec.mtu", ".spec.mode"}
    forced = custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", apply, field_manager="reconciler", force=True,
        _content_type="application/apply-patch+yaml")
    assert forced["spec"]["mtu"] == 9000
    owners = {e["manager"]: e["fieldsV1"] for e in forced["metadata"]["managedFields"]}
    assert "f:mtu" in owners["reconciler"]["f:spec"]
    assert "f:mtu" not in owners["kubectl-edit"]["f:spec"]


def test_apply_that_drops_a_previously_applied_field_removes_it(sandbox: KubeSandbox) -> None:
    first = widget("w1", mtu=1500, tags=["a"],
                   interfaces=[{"name": "eth1", "mac": "52:54:00:00:00:01"},
                               {"name": "eth2", "mac": "52:54:00:00:00:02"}])
    first["metadata"]["labels"] = {"keep": "no"}
    sandbox.apply(first, manager="reconciler")
    second = widget("w1", interfaces=[{"name": "eth2", "mac": "52:54:00:00:00:02"}])
    result = sandbox.apply(second, manager="reconciler")
    assert "mtu" not in result["spec"] and "tags" not in result["spec"]
    assert [i["name"] for i in result["spec"]["interfaces"]] == ["eth2"]
    assert "keep" not in (result["metadata"].get("labels") or {})


def test_apply_without_field_manager_is_400(sandbox: KubeSandbox) -> None:
    answer = raw(sandbox, "PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/w1",
                 data=json.dumps(widget("w1")),
                 headers={"Content-Type": "application/apply-patch+yaml"})
    assert answer.status_code == 400
    assert answer.json()["kind"] == "Status"


def test_apply_with_a_yaml_body_creates_with_201_then_updates_with_200(
        sandbox: KubeSandbox) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/w1"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    params = {"fieldManager": "yaml-applier"}
    first = raw(sandbox, "PATCH", path, data=yaml.safe_dump(widget("w1")), headers=headers,
                params=params)
    assert first.status_code == 201
    second = raw(sandbox, "PATCH", path, data=yaml.safe_dump(widget("w1", mtu=1400)),
                 headers=headers, params=params)
    assert second.status_code == 200 and second.json()["spec"]["mtu"] == 1400


def test_watch_streams_added_modified_deleted_from_a_resource_version(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    start = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    rv = start["metadata"]["resourceVersion"]

    def writer() -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1",
                                              {"spec": {"mtu": 1400}})
        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    w = watch.Watch()
    for event in w.stream(custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                          resource_version=rv, timeout_seconds=5):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if event["type"] == "DELETED":
            w.stop()
    thread.join()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    assert sandbox.request_log.count("watch", "widgets") == 1


def test_watch_without_resource_version_starts_with_existing_objects_and_honours_timeout(
        sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    events = list(watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=1))
    # every namespace also holds the kube-root-ca.crt ConfigMap, like a real cluster's
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "a"), ("ADDED", "kube-root-ca.crt")]


def test_watch_from_a_compacted_resource_version_gets_410_expired(
        sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    sandbox.compact()
    with pytest.raises(ApiException) as exc:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version="1",
                                      timeout_seconds=2):
            pass
    assert exc.value.status == 410


def test_tls_sandbox_with_a_required_token(tmp_path: Path) -> None:
    with KubeSandbox(tls=True, token="s3cret") as sandbox:
        assert sandbox.url.startswith("https://")
        config = yaml.safe_load(sandbox.kubeconfig_path.read_text())
        assert config["clusters"][0]["cluster"]["certificate-authority-data"]
        assert config["users"][0]["user"] == {"token": "s3cret"}
        namespaces = client.CoreV1Api(sandbox.api_client()).list_namespace()
        assert "default" in [n.metadata.name for n in namespaces.items]
        anonymous = client.Configuration()
        anonymous.host = sandbox.url
        anonymous.ssl_ca_cert = str(sandbox.ca_path)
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(client.ApiClient(anonymous)).list_namespace()
        assert exc.value.status == 401


def test_deleting_a_crd_removes_its_objects_and_its_discovery_entry(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w1"))
    client.ApiextensionsV1Api(sandbox.api_client()).delete_custom_resource_definition(
        "widgets.sandbox.example.io")
    groups = client.ApisApi(sandbox.api_client()).get_api_versions().groups
    assert GROUP not in [g.name for g in groups]
    with pytest.raises(ApiException) as exc:
        custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert exc.value.status == 404


def test_finalizers_hold_deletion_until_removed(sandbox: KubeSandbox,
                                                custom: client.CustomObjectsApi) -> None:
    obj = widget("w1")
    obj["metadata"]["finalizers"] = ["multinic.io/cleanup"]
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, obj)
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    held = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    assert held["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1",
                                          {"metadata": {"finalizers": None}})
    assert sandbox.get(f"{GROUP}/{VERSION}", "Widget", "w1", NS) is None


def test_generate_name_creates_unique_names(core: client.CoreV1Api) -> None:
    names = {core.create_namespaced_config_map(NS, {"metadata": {"generateName": "cfg-"}})
             .metadata.name for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("cfg-") and len(n) == 9 for n in names)


def test_builtin_objects_are_validated_with_the_kubernetes_schemas(
        sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    answer = raw(sandbox, "POST", f"/api/v1/namespaces/{NS}/configmaps",
                 json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                       "data": {"k": 5}})
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "data.k"
    with pytest.raises(ApiException) as exc:
        client.BatchV1Api(sandbox.api_client()).create_namespaced_job(NS, {
            "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}})
    assert exc.value.status == 422
    assert "spec.template.spec.restartPolicy" in exc.value.body
    with pytest.raises(ApiException) as bad_label:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "y",
                                                            "labels": {"a": "not ok"}}})
    assert bad_label.value.status == 422


def test_leases_support_optimistic_leader_election(sandbox: KubeSandbox) -> None:
    leases = client.CoordinationV1Api(sandbox.api_client())
    lease = leases.create_namespaced_lease(NS, {"metadata": {"name": "leader"}, "spec": {
        "holderIdentity": "a", "leaseDurationSeconds": 15}})
    lease.spec.holder_identity = "b"
    leases.replace_namespaced_lease("leader", NS, lease)
    lease.spec.holder_identity = "c"  # lost the race: stale resourceVersion
    with pytest.raises(ApiException) as exc:
        leases.replace_namespaced_lease("leader", NS, lease)
    assert exc.value.status == 409
    assert leases.read_namespaced_lease("leader", NS).spec.holder_identity == "b"


def test_events_can_be_recorded_and_selected_by_involved_object(core: client.CoreV1Api) -> None:
    for name in ("worker-01", "worker-02"):
        core.create_namespaced_event(NS, {
            "metadata": {"generateName": "mnnc-"},
            "involvedObject": {"kind": "MultiNicNodeConfig", "name": name, "namespace": NS},
            "reason": "Applied", "message": f"applied {name}", "type": "Normal"})
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=worker-02,"
                                        "reason=Applied")
    assert [e.message for e in events.items] == ["applied worker-02"]


def test_deleting_a_namespace_deletes_what_is_in_it(sandbox: KubeSandbox,
                                                    core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    core.delete_namespace(NS)
    # As on a real apiserver the namespace controller empties it asynchronously (Terminating first).
    sandbox.wait_until(lambda: sandbox.get("v1", "Namespace", NS) is None, timeout=30,
                       message="the namespace was not deleted within 30 s")
    assert sandbox.get("v1", "ConfigMap", "a", NS) is None
