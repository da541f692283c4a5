"""Fault injection, the request log, and list performance."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from multinic_sandbox.kube.server import KubeSandbox

DATA = Path(__file__).parent / "sandbox_kube_data"
GROUP, VERSION, PLURAL, NS = "sandbox.example.io", "v1alpha1", "widgets", "multinic-system"


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget",
            "metadata": {"name": name, "namespace": NS}, "spec": {"nodeName": name, **spec}}


@pytest.fixture
def sandbox(kube_sandbox: KubeSandbox) -> KubeSandbox:
    kube_sandbox.seed(yaml.safe_load((DATA / "namespace.yaml").read_text()),
                      yaml.safe_load((DATA / "widgets-crd.yaml").read_text()))
    kube_sandbox.seed(widget("w1"))
    kube_sandbox.request_log.clear()
    return kube_sandbox


@pytest.fixture
def custom(sandbox: KubeSandbox) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(sandbox.api_client())


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def test_an_injected_503_on_the_next_patch_is_seen_by_the_client_once(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    rule = sandbox.faults.inject(verb="patch", resource=PLURAL, status=503)
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1",
                                              {"spec": {"mtu": 1400}})
    assert exc.value.status == 503
    assert json.loads(exc.value.body)["reason"] == "ServiceUnavailable"
    assert rule.hits == 1
    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1",
                                                    {"spec": {"mtu": 1400}})
    assert patched["spec"]["mtu"] == 1400
    assert [r.status for r in sandbox.request_log.filter(verb="patch")] == [503, 200]


def test_the_next_two_patches_on_a_named_object_get_409_then_it_clears(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    sandbox.seed(widget("w2"))
    sandbox.faults.inject(verb="patch", resource=PLURAL, name="w2", status=409, times=2)
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"mtu": 1400}})
    codes = []
    for _ in range(3):
        try:
            custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w2",
                                                  {"spec": {"mtu": 1400}})
            codes.append(200)
        except ApiException as exc:
            codes.append(exc.status)
    assert codes == [409, 409, 200]
    assert sandbox.faults.rules == []


def test_429_carries_retry_after(sandbox: KubeSandbox) -> None:
    sandbox.faults.throttle(verb="list", resource=PLURAL, retry_after=7)
    answer = session().get(f"{sandbox.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}",
                           timeout=5)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["reason"] == "TooManyRequests"


def test_a_dropped_connection_surfaces_as_a_client_side_connection_error(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    sandbox.faults.drop(verb="create", resource=PLURAL)
    with pytest.raises(urllib3.exceptions.HTTPError):
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w3"))
    sandbox.faults.drop(verb="get", resource=PLURAL)
    with pytest.raises(requests.ConnectionError):
        session().get(f"{sandbox.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/w1",
                      timeout=5)
    assert [r.status for r in sandbox.request_log.filter(resource=PLURAL)] == [0, 0]
    assert sandbox.get(f"{GROUP}/{VERSION}", "Widget", "w3", NS) is None


def test_a_delay_longer_than_the_client_timeout_is_a_read_timeout(sandbox: KubeSandbox) -> None:
    sandbox.faults.stall(1.0, verb="get", resource=PLURAL)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session().get(f"{sandbox.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/w1",
                      timeout=0.2)
    assert time.monotonic() - started < 1.0
    answer = session().get(f"{sandbox.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/w1",
                           timeout=5)
    assert answer.status_code == 200


def test_faults_with_a_path_hit_discovery_and_others_never_do(sandbox: KubeSandbox) -> None:
    sandbox.faults.inject(status=500, times=None)  # resource requests only
    assert session().get(f"{sandbox.url}/apis", timeout=5).status_code == 200
    sandbox.faults.clear()
    sandbox.faults.inject(path="/apis", status=500)
    assert session().get(f"{sandbox.url}/apis", timeout=5).status_code == 500


def test_the_request_log_records_kubernetes_verbs_and_field_managers(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1",
                                          {"spec": {"mtu": 1400}}, field_manager="reconciler")
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "w1",
                                                 {"status": {"phase": "Ready"}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    records = sandbox.request_log.filter(resource=PLURAL)
    assert [(r.verb, r.namespace, r.name, r.subresource) for r in records] == [
        ("get", NS, "w1", ""), ("list", "", "", ""), ("patch", NS, "w1", ""),
        ("patch", NS, "w1", "status"), ("delete", NS, "w1", "")]
    assert records[2].field_manager == "reconciler"
    assert records[3].field_manager.startswith("OpenAPI-Generator")
    assert all(r.group == GROUP and r.version == VERSION for r in records)
    assert sandbox.request_log.count("patch", PLURAL) == 2
    assert len(sandbox.request_log.writes()) == 3
    sandbox.request_log.clear()
    assert len(sandbox.request_log) == 0


def test_listing_five_thousand_custom_resources_in_pages_of_500_is_fast(
        sandbox: KubeSandbox) -> None:
    blob = "x" * 1200  # ~2 KB per object with the rest
    sandbox.seed([widget(f"n{i:04d}", mtu=1500, extra={"blob": blob}, interfaces=[
        {"name": f"eth{j}", "mac": "52:54:00:00:00:01", "address": "10.0.0.1/24"}
        for j in range(3)]) for i in range(5000)])
    sandbox.request_log.clear()
    http = session()
    token = ""
    seen = 0
    slowest = 0.0
    while True:
        started = time.monotonic()
        answer = http.get(f"{sandbox.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}",
                          params={"limit": 500, **({"continue": token} if token else {})},
                          timeout=10)
        slowest = max(slowest, time.monotonic() - started)
        page = answer.json()
        seen += len(page["items"])
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert seen == 5001
    assert sandbox.request_log.count("list", PLURAL) == 11
    assert slowest < 1.0, f"slowest page took {slowest:.2f}s"


def test_a_modelled_write_latency_delays_each_write_but_not_reads_or_dry_runs_and_writes_overlap(
        sandbox: KubeSandbox, custom: client.CustomObjectsApi) -> None:
    """``write_latency`` stands for a real API server's storage commit (bench/loop.py runs the
    loop against it): every committed write waits, reads and dry runs do not, and writers in
    parallel wait side by side rather than one after another."""
    from concurrent.futures import ThreadPoolExecutor

    sandbox.seed(*(widget(f"w{i}") for i in range(2, 6)))
    sandbox.write_latency = 0.5
    custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"mtu": 1400}},
                                          dry_run="All")
    api = sandbox.api_client()
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 4
    writer = client.CustomObjectsApi(api)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: writer.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, f"w{i}", {"spec": {"mtu": 1400 + i}}), range(2, 6)))
    wall = time.monotonic() - started
    records = sandbox.request_log.filter(resource=PLURAL)
    assert [(r.verb, r.dry_run) for r in records[:2]] == [("get", False), ("patch", True)]
    assert all(r.duration < 0.5 for r in records[:2])  # neither waited for a commit
    assert len(records) == 6 and all(r.duration >= 0.5 for r in records[2:])
    assert wall < 1.5, f"4 writes in parallel took {wall:.2f}s: they waited one after another"
    assert [custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, f"w{i}")["spec"].get("mtu")
            for i in range(1, 6)] == [None, 1402, 1403, 1404, 1405]
