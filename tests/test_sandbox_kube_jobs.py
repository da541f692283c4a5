"""The simulated Job controller and node model."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from multinic_sandbox.kube.errors import ApiError
from multinic_sandbox.kube.node_model import fail, hang, succeed
from multinic_sandbox.kube.server import KubeSandbox

NS = "multinic-system"


def job(name: str, node: str | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"restartPolicy": "Never",
                                "containers": [{"name": "agent", "image": "agent:1"}]}
    if node:
        pod_spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"template": {"spec": pod_spec}, **spec}}


@pytest.fixture
def sandbox(kube_sandbox_manual: KubeSandbox) -> KubeSandbox:
    kube_sandbox_manual.cluster.ensure_namespace(NS)
    return kube_sandbox_manual


@pytest.fixture
def batch(sandbox: KubeSandbox) -> client.BatchV1Api:
    return client.BatchV1Api(sandbox.api_client())


def pods_of(sandbox: KubeSandbox, name: str) -> list[dict[str, Any]]:
    return sandbox.list("v1", "Pod", NS, label_selector=f"job-name={name}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind),
                None)


def test_success_runs_a_pod_on_the_scripted_node_and_completes_the_job(
        sandbox: KubeSandbox, batch: client.BatchV1Api) -> None:
    sandbox.node_model.script("worker-03", succeed('{"applied": true}'))
    created = batch.create_namespaced_job(NS, job("configure-worker-03", node="worker-03"))
    assert created.spec.backoff_limit == 6  # server-side defaults
    assert created.spec.template.metadata.labels["job-name"] == "configure-worker-03"
    sandbox.jobs.step()
    pods = pods_of(sandbox, "configure-worker-03")
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["name"].startswith("configure-worker-03-")
    assert len(pod["metadata"]["name"]) == len("configure-worker-03-") + 5
    assert pod["spec"]["nodeName"] == "worker-03"
    labels = pod["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "configure-worker-03"
    assert labels["controller-uid"] == created.metadata.uid
    assert pod["metadata"]["ownerReferences"][0]["uid"] == created.metadata.uid
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated == {**terminated, "exitCode": 0, "reason": "Completed",
                          "message": '{"applied": true}'}
    done = batch.read_namespaced_job_status("configure-worker-03", NS)
    assert done.status.succeeded == 1 and not done.status.active
    assert done.status.start_time and done.status.completion_time
    assert {c.type for c in done.status.conditions} == {"SuccessCriteriaMet", "Complete"}
    log = client.CoreV1Api(sandbox.api_client()).read_namespaced_pod_log(
        pod["metadata"]["name"], NS)
    assert log.strip() == '{"applied": true}'


def test_failure_with_backoff_limit_one_makes_two_pods_then_fails_the_job(
        sandbox: KubeSandbox) -> None:
    sandbox.node_model.script("worker-04", fail("eth9: no such device", exit_code=3))
    sandbox.seed(job("j", node="worker-04", backoffLimit=1))
    sandbox.jobs.step()
    pods = pods_of(sandbox, "j")
    assert len(pods) == 2
    assert {p["status"]["phase"] for p in pods} == {"Failed"}
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        3, "Error", "eth9: no such device")
    final = sandbox.get("batch/v1", "Job", "j", NS)
    assert final is not None
    assert final["status"]["failed"] == 2
    failed = condition(final, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert "completionTime" not in final["status"]


def test_a_retry_can_succeed_after_a_failure(sandbox: KubeSandbox) -> None:
    sandbox.node_model.script("worker-05", fail("flaky"), succeed("ok"))
    sandbox.seed(job("j", node="worker-05", backoffLimit=2))
    sandbox.jobs.step()
    final = sandbox.get("batch/v1", "Job", "j", NS)
    assert final is not None
    assert (final["status"]["failed"], final["status"]["succeeded"]) == (1, 1)
    assert condition(final, "Complete") is not None
    assert [d.outcome.kind for d in sandbox.node_model.history] == ["fail", "succeed"]


def test_a_hanging_pod_hits_active_deadline_seconds(sandbox: KubeSandbox) -> None:
    sandbox.node_model.script("worker-06", hang())
    sandbox.seed(job("j", node="worker-06", activeDeadlineSeconds=60))
    sandbox.jobs.step()
    running = pods_of(sandbox, "j")
    assert [p["status"]["phase"] for p in running] == ["Running"]
    current = sandbox.get("batch/v1", "Job", "j", NS)
    assert current is not None and current["status"]["active"] == 1
    sandbox.clock.advance(61)
    sandbox.jobs.step()
    final = sandbox.get("batch/v1", "Job", "j", NS)
    assert final is not None
    failed = condition(final, "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"
    assert pods_of(sandbox, "j") == []  # active pods are killed


def test_delayed_outcomes_keep_the_pod_running_until_the_clock_passes(
        sandbox: KubeSandbox) -> None:
    sandbox.node_model.set_default(succeed("late", delay=30))
    sandbox.seed(job("j"))
    sandbox.jobs.step()
    pod = pods_of(sandbox, "j")[0]
    assert pod["spec"]["nodeName"] == sandbox.node_model.default_node
    assert pod["status"]["phase"] == "Running"
    sandbox.clock.advance(31)
    sandbox.jobs.step()
    assert pods_of(sandbox, "j")[0]["status"]["phase"] == "Succeeded"


def test_ttl_seconds_after_finished_deletes_the_job_and_its_pods(sandbox: KubeSandbox) -> None:
    sandbox.seed(job("j", ttlSecondsAfterFinished=100))
    sandbox.jobs.step()
    assert sandbox.get("batch/v1", "Job", "j", NS) is not None
    sandbox.clock.advance(101)
    sandbox.jobs.step()
    assert sandbox.get("batch/v1", "Job", "j", NS) is None
    assert pods_of(sandbox, "j") == []


def test_callable_scripts_see_the_pod(sandbox: KubeSandbox) -> None:
    seen: list[str] = []

    def outcome(pod: dict[str, Any]) -> Any:
        seen.append(pod["spec"]["containers"][0]["image"])
        return succeed(pod["metadata"]["labels"]["job-name"])

    sandbox.node_model.script("worker-07", outcome)
    sandbox.seed(job("j", node="worker-07"))
    sandbox.jobs.step()
    assert seen == ["agent:1"]
    terminated = pods_of(sandbox, "j")[0]["status"]["containerStatuses"][0]["state"]
    assert terminated["terminated"]["message"] == "j"


def test_background_delete_cascades_to_pods_and_owned_configmaps_default_orphans(
        sandbox: KubeSandbox, batch: client.BatchV1Api) -> None:
    core = client.CoreV1Api(sandbox.api_client())
    for name in ("a", "b"):
        created = batch.create_namespaced_job(NS, job(name))
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"{name}-config",
                                                            "ownerReferences": [{
                                                                "apiVersion": "batch/v1",
                                                                "kind": "Job", "name": name,
                                                                "uid": created.metadata.uid}]}})
    sandbox.jobs.step()
    batch.delete_namespaced_job("a", NS, propagation_policy="Background")
    assert pods_of(sandbox, "a") == []
    assert sandbox.get("v1", "ConfigMap", "a-config", NS) is None
    batch.delete_namespaced_job("b", NS)  # batch/v1 Jobs orphan by default
    orphans = pods_of(sandbox, "b")
    assert len(orphans) == 1 and "ownerReferences" not in orphans[0]["metadata"]


def test_the_pod_template_of_a_job_is_immutable(sandbox: KubeSandbox,
                                                batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, job("j", node="worker-01"))
    with pytest.raises(ApiException) as exc:
        batch.patch_namespaced_job("j", NS, {"spec": {"template": {"spec": {
            "nodeSelector": {"kubernetes.io/hostname": "worker-02"}}}}})
    assert exc.value.status == 422
    assert "spec.template" in exc.value.body and "field is immutable" in exc.value.body


def test_the_controller_thread_completes_jobs_created_over_http(
        kube_sandbox: KubeSandbox) -> None:
    kube_sandbox.cluster.ensure_namespace(NS)
    batch = client.BatchV1Api(kube_sandbox.api_client())
    batch.create_namespaced_job(NS, job("auto", node="worker-09"))
    done = kube_sandbox.wait_until(
        lambda: (batch.read_namespaced_job_status("auto", NS).status.succeeded or 0) == 1,
        timeout=5)
    assert done


def test_reapplying_an_identical_job_with_server_side_apply_writes_nothing(
        sandbox: KubeSandbox) -> None:
    first = sandbox.apply(job("j", node="worker-01"), manager="reconciler", force=False)
    sandbox.jobs.step()
    rv = sandbox.resource_version
    again = sandbox.apply(job("j", node="worker-01"), manager="reconciler", force=False)
    assert sandbox.resource_version == rv
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    with pytest.raises(ApiError, match="field is immutable"):
        sandbox.apply(job("j", node="worker-02"), manager="reconciler")


def test_delete_collection_with_a_label_selector(sandbox: KubeSandbox) -> None:
    core = client.CoreV1Api(sandbox.api_client())
    for name, role in (("a", "agent"), ("b", "agent"), ("c", "other")):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name,
                                                            "labels": {"role": role}}})
    core.delete_collection_namespaced_config_map(NS, label_selector="role=agent")
    assert [c["metadata"]["name"] for c in sandbox.list("v1", "ConfigMap", NS)] == [
        "c", "kube-root-ca.crt"]
    assert sandbox.request_log.count("deletecollection", "configmaps") == 1
