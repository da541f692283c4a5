"""A simulated batch/v1 Job controller plus kubelet, driven by the node model.

Per Job it creates pods (``<job>-xxxxx``, owned by the Job, labelled like the real controller,
``spec.nodeName`` from the template or its ``kubernetes.io/hostname`` node selector), asks the
``NodeModel`` how each pod ends, and maintains the Job status (``active``/``succeeded``/
``failed``, ``startTime``/``completionTime``, ``Complete``/``Failed`` conditions honouring
``backoffLimit`` and ``activeDeadlineSeconds``) and ``ttlSecondsAfterFinished``. Retries start
at once (no exponential back-off).

``step()`` runs the controller until nothing changes, which makes tests deterministic; in
``auto`` mode a thread also runs it after every Job/Pod write and every ``tick`` seconds.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from multinic_sandbox.kube.clock import parse_stamp
from multinic_sandbox.kube.cluster import Cluster, WriteOptions
from multinic_sandbox.kube.errors import ApiError
from multinic_sandbox.kube.node_model import NodeModel, Outcome
from multinic_sandbox.kube.resources import ResourceType

CONTROLLER = "kube-controller-manager"
KUBELET = "kubelet"
ACTIVE_PHASES = ("Pending", "Running")


class JobController:
    def __init__(self, cluster: Cluster, node_model: NodeModel, tick: float = 0.05) -> None:
        self.cluster = cluster
        self.node_model = node_model
        self.tick = tick
        self._jobs = cluster.resource("batch", "v1", "jobs")
        self._pods = cluster.resource("", "v1", "pods")
        self._outcomes: dict[str, tuple[Outcome, float]] = {}  # pod uid -> (outcome, started)
        self._step_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        cluster.write_hooks.append(self._on_write)

    # -- driving ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="kube-sandbox-jobs",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _on_write(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.key in ("jobs.batch", "pods") or (
                rt.key == "namespaces" and obj["metadata"].get("deletionTimestamp")):
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception as exc:  # keep the sandbox alive; tests can inspect .errors
                self.errors.append(exc)

    def step(self, max_passes: int = 20) -> int:
        """Run the controller until it settles; returns how many writes it made."""
        total = 0
        with self._step_lock:
            total += self.cluster.finalize_namespaces()  # the namespace controller's share
            for _ in range(max_passes):
                changes = 0
                for stored in list(self.cluster.store.scan(self._jobs.key)):
                    try:
                        changes += self._sync(stored.obj)
                    except ApiError as err:
                        if err.code not in (404, 409):  # raced with a client write: next pass
                            raise
                        changes += 1
                total += changes
                if not changes:
                    break
        return total

    # -- reconciliation --------------------------------------------------------------------
    def _sync(self, job: dict[str, Any]) -> int:
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        now = self.cluster.clock.time()
        if _finished(status):
            return self._expire(job, status, now)
        if spec.get("suspend"):
            return 0
        changes = 0
        pods = self._pods_of(job)
        for pod in pods:
            if pod["status"].get("phase") in ACTIVE_PHASES:
                changes += self._run_pod(pod, now)
        if changes:
            pods = self._pods_of(job)
        active = [p for p in pods if p["status"].get("phase") in ACTIVE_PHASES]
        succeeded = sum(1 for p in pods if p["status"].get("phase") == "Succeeded")
        failed = sum(1 for p in pods if p["status"].get("phase") == "Failed")
        completions = spec.get("completions") or 1
        stamp = self.cluster.clock.stamp()
        status.setdefault("startTime", stamp)
        deadline = spec.get("activeDeadlineSeconds")
        condition: tuple[str, str, str] | None = None
        if succeeded >= completions:
            condition = ("Complete", "CompletionsReached", "Reached expected number of "
                         "succeeded pods")
        elif failed > spec.get("backoffLimit", 6):
            condition = ("Failed", "BackoffLimitExceeded", "Job has reached the specified "
                         "backoff limit")
        elif deadline is not None and now - parse_stamp(status["startTime"]) >= deadline:
            condition = ("Failed", "DeadlineExceeded", "Job was active longer than specified "
                         "deadline")
        if condition is not None:
            for pod in active:
                changes += self._delete_pod(pod)
            active = []
            target = "SuccessCriteriaMet" if condition[0] == "Complete" else "FailureTarget"
            status["conditions"] = [*(status.get("conditions") or []),
                                    _condition(target, condition, stamp),
                                    _condition(condition[0], condition, stamp)]
            if condition[0] == "Complete":
                status["completionTime"] = stamp
        else:
            parallelism = spec.get("parallelism", 1)
            while len(active) < min(parallelism, completions - succeeded):
                active.append(self._create_pod(job))
                changes += 1
        status.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                       "ready": sum(1 for p in active
                                    if p["status"].get("phase") == "Running"),
                       "terminating": 0, "uncountedTerminatedPods": {}})
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                del status[key]
        if status != (job.get("status") or {}):
            self._write_status(self._jobs, job, status, CONTROLLER)
            changes += 1
        return changes

    def _expire(self, job: dict[str, Any], status: dict[str, Any], now: float) -> int:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return 0
        finished = status.get("completionTime") or next(
            (c.get("lastTransitionTime") for c in status.get("conditions") or ()
             if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), None)
        if finished and now >= parse_stamp(finished) + ttl:
            meta = job["metadata"]
            self.cluster.delete(self._jobs, meta["namespace"], meta["name"],
                                {"propagationPolicy": "Background"})
            return 1
        return 0

    def _pods_of(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        return [s.obj for s in self.cluster.store.scan(self._pods.key, job["metadata"]["namespace"])
                if any(r.get("uid") == uid for r in s.obj["metadata"].get("ownerReferences") or ())]

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        meta, spec = job["metadata"], job["spec"]
        template = copy.deepcopy(spec.get("template") or {})
        pod_spec = template.get("spec") or {}
        if not pod_spec.get("nodeName"):
            selected = (pod_spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")
            pod_spec["nodeName"] = selected or self.node_model.default_node
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update({"controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid":
                       meta["uid"], "job-name": meta["name"],
                       "batch.kubernetes.io/job-name": meta["name"]})
        pod_meta: dict[str, Any] = {
            "generateName": meta["name"] + "-",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        }
        annotations = (template.get("metadata") or {}).get("annotations")
        if annotations:
            pod_meta["annotations"] = dict(annotations)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}
        result = self.cluster.create(self._pods, meta["namespace"], pod,
                                     WriteOptions(manager=CONTROLLER))
        return result.obj

    def _run_pod(self, pod: dict[str, Any], now: float) -> int:
        """Kubelet: Pending -> Running -> Succeeded/Failed as the node model decides."""
        uid = pod["metadata"]["uid"]
        if uid not in self._outcomes:
            self._outcomes[uid] = (self.node_model.decide(pod), now)
        outcome, started = self._outcomes[uid]
        status = copy.deepcopy(pod.get("status") or {})
        stamp = self.cluster.clock.stamp()
        containers = (pod.get("spec") or {}).get("containers") or []
        if status.get("phase") == "Pending":
            status.update({"phase": "Running", "startTime": stamp, "hostIP": "10.0.0.1",
                           "podIP": "10.244.0." + str(len(self._outcomes) % 250 + 2),
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": stamp}],
                           "containerStatuses": [_container(c, {"running": {"startedAt": stamp}},
                                                            True) for c in containers]})
            self._write_status(self._pods, pod, status, KUBELET)
            return 1
        if outcome.kind == "hang" or now < started + outcome.delay:
            return 0
        phase = "Succeeded" if outcome.kind == "succeed" else "Failed"
        terminated_states = []
        for i, _container_spec in enumerate(containers):
            terminated: dict[str, Any] = {
                "exitCode": outcome.exit_code, "reason": outcome.container_reason,
                "startedAt": status.get("startTime", stamp), "finishedAt": stamp,
                "containerID": f"containerd://{uid.replace('-', '')}{i}"}
            if outcome.message and i == 0:
                terminated["message"] = outcome.message
            terminated_states.append({"terminated": terminated})
        status.update({"phase": phase,
                       "conditions": [{"type": "Ready", "status": "False",
                                       "reason": "PodCompleted", "lastTransitionTime": stamp}],
                       "containerStatuses": [_container(c, state, False)
                                             for c, state in zip(containers, terminated_states,
                                                                 strict=True)]})
        self._write_status(self._pods, pod, status, KUBELET)
        self._outcomes.pop(uid, None)
        return 1

    def _delete_pod(self, pod: dict[str, Any]) -> int:
        meta = pod["metadata"]
        self._outcomes.pop(meta["uid"], None)
        self.cluster.delete(self._pods, meta["namespace"], meta["name"])
        return 1

    def _write_status(self, rt: ResourceType, obj: dict[str, Any], status: dict[str, Any],
                      manager: str) -> None:
        meta = obj["metadata"]
        body = {"apiVersion": rt.api_version, "kind": rt.kind,
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "resourceVersion": meta["resourceVersion"]},
                "status": status}
        self.cluster.update(rt, meta["namespace"], meta["name"], body,
                            WriteOptions(manager=manager), subresource="status")


def _finished(status: dict[str, Any]) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in status.get("conditions") or ())


def _condition(kind: str, condition: tuple[str, str, str], stamp: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": condition[1], "message": condition[2],
            "lastProbeTime": stamp, "lastTransitionTime": stamp}


def _container(spec: dict[str, Any], state: dict[str, Any], running: bool) -> dict[str, Any]:
    return {"name": spec.get("name", ""), "image": spec.get("image", ""), "imageID": "",
            "ready": running, "started": running, "restartCount": 0, "state": state}
