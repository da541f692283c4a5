"""Node rollout against the kube sandbox: maxParallel, maxFailures, isolation of failing nodes,
restarts, node removal and the Job spec, asserted from the sandbox's Jobs and request log."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from multinic_sandbox.harness.fleet import AgentHosts
from multinic_sandbox.kube.node_model import Outcome, fail, hang
from support.reconcile import (
    API_VERSION,
    EXAMPLE_REPO,
    NAMESPACE,
    ReconcileEnv,
    generate_repo,
    git_repo,
    node_name,
    real_agents,
    start_env,
    warn_on_vm_nics,
)

from reconciler import pipeline
from reconciler.apply import rollout
from reconciler.config.validation import validate_repo
from reconciler.kube import jobs, objects

COUNT = 50
STEP_SECONDS = 10.0  # sandbox clock advanced per cycle


def make_env(tmp_path: Path, *, count: int = COUNT, max_parallel: int = 5, max_failures: int = 3,
             jobs_mode: str = "manual") -> Iterator[ReconcileEnv]:
    repo = git_repo(None, generate_repo(tmp_path / "repo", count, max_parallel=max_parallel,
                                        max_failures=max_failures))
    with start_env(repo, jobs=jobs_mode) as env:
        # real agents on fake roots; pods take 0-20 s of sandbox time, so Jobs overlap across cycles
        # (a stable hash of the node name: the same pattern in every run)
        env.sandbox.node_model.set_default(agents(tmp_path, lambda pod: 10.0 * (
            zlib.crc32(pod["spec"]["nodeName"].encode()) % 3)))
        yield env


def agents(tmp_path: Path, delay: Callable[[dict], float] | None = None) -> Callable[[dict], Outcome]:
    return real_agents(tmp_path / "hosts", delay)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[ReconcileEnv]:
    yield from make_env(tmp_path)


@pytest.fixture
def small_fleet(tmp_path: Path) -> Iterator[ReconcileEnv]:
    """20 nodes, all rolled out already (instant success)."""
    for env in make_env(tmp_path, count=20, max_parallel=10):
        env.sandbox.node_model.set_default(agents(tmp_path))
        run(env, lambda c: not c.rollout.in_flight and c.status_writes == 0)  # type: ignore[union-attr]
        yield env


def apply_jobs(env: ReconcileEnv) -> list[dict]:
    return [j for j in env.jobs() if j["metadata"]["labels"][jobs.LABEL_TYPE] == "apply"]


def expected_job(env: ReconcileEnv, name: str) -> str:
    """The apply Job's name for the node's current desired change (from its live object)."""
    cr = env.cr(name)
    assert cr is not None
    live = rollout.LiveNode(name, cr["spec"], cr["metadata"]["generation"], cr.get("status") or {},
                            cr["metadata"]["uid"], cr["metadata"].get("annotations") or {})
    digest = objects.spec_hash(cr["spec"])
    return jobs.job_name("apply", cr["spec"].get("nodeName") or name, rollout.identity(live, digest))


def created_jobs(env: ReconcileEnv) -> int:
    """Job creations the server accepted (201), from the request log."""
    return env.sandbox.request_log.count(verb="create", resource="jobs", status=201)


def job_node(job: dict) -> str:
    return job["metadata"]["annotations"][jobs.ANNOTATION_NODE]


def run(env: ReconcileEnv, done: Callable[[pipeline.Cycle], bool], *, cycles: int = 80,
        samples: list[int] | None = None, advance: float = STEP_SECONDS) -> pipeline.Cycle:
    """Reconcile cycles until ``done``; after each cycle record how many Jobs are active, then let
    sandbox time pass and the Job controller act."""
    for _ in range(cycles):
        cycle = env.apply()
        if samples is not None:
            samples.append(len(env.active_jobs()))
        if done(cycle):
            return cycle
        env.sandbox.clock.advance(advance)
        env.sandbox.jobs.step()
        if samples is not None:
            samples.append(len(env.active_jobs()))
    pytest.fail(f"not done after {cycles} cycles")


def all_applied(cycle: pipeline.Cycle) -> bool:
    assert cycle.rollout is not None
    return len(cycle.rollout.nodes) == COUNT and all(s.state == "applied" for s in cycle.rollout.nodes.values())


def settled(cycle: pipeline.Cycle) -> bool:
    assert cycle.rollout is not None
    return not cycle.rollout.in_flight and cycle.status_writes == 0


def test_a_rollout_over_50_nodes_never_has_more_than_max_parallel_jobs_active(fleet: ReconcileEnv) -> None:
    samples: list[int] = []

    run(fleet, all_applied, samples=samples)

    assert max(samples) == 5  # never more, and the slots are used
    assert samples.count(5) >= 5
    made = apply_jobs(fleet)
    assert len(made) == COUNT
    assert sorted(job_node(j) for j in made) == [node_name(i) for i in range(COUNT)]
    assert created_jobs(fleet) == COUNT
    for name, cr in fleet.crs().items():
        status = cr["status"]
        assert status["phase"] == "Ready", name
        assert status["specHash"] == objects.spec_hash(cr["spec"])
        assert status["observedGeneration"] == cr["metadata"]["generation"]
        assert status["appliedRevision"] == fleet.checkout().revision
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
    # and then the cluster is quiet: no writes, no new Jobs
    fleet.sandbox.request_log.clear()
    final = fleet.apply()
    assert fleet.writes() == [] and not final.rollout.started  # type: ignore[union-attr]


def test_the_rollout_stops_after_max_failures(fleet: ReconcileEnv, tmp_path: Path) -> None:
    # maxFailures is 3; slots are 5. Failing nodes spread over the first batches.
    failing = [node_name(i) for i in (1, 6, 12, 30)]
    for name in failing:
        fleet.sandbox.node_model.script(name, fail("no device with that MAC", exit_code=3))
    # The agents finish within the step that runs them (no extra pod time): the sandbox clock also
    # moves with the wall clock, so a pod delay would let a slow machine shift the batches.
    fleet.sandbox.node_model.set_default(agents(tmp_path, lambda pod: 0.0))

    cycle = run(fleet, lambda c: c.rollout is not None and c.rollout.stalled and not c.rollout.running)
    made = len(apply_jobs(fleet))
    for _ in range(3):  # the stall holds: no more Jobs on later cycles
        fleet.sandbox.clock.advance(STEP_SECONDS)
        fleet.sandbox.jobs.step()
        cycle = fleet.apply()
        assert not cycle.rollout.started  # type: ignore[union-attr]
    assert len(apply_jobs(fleet)) == made

    assert cycle.rollout is not None and cycle.rollout.stalled
    assert cycle.rollout.failures == 3
    states = {name: s.state for name, s in cycle.rollout.nodes.items()}
    assert sorted(n for n, s in states.items() if s == "failed") == failing[:3]
    assert states[node_name(30)] == "stalled"
    started = {job_node(j) for j in apply_jobs(fleet)}
    assert node_name(30) not in started
    assert len(started) == 15  # three batches of five; the third failure stopped it
    assert all(states[n] == "applied" for n in started if n not in failing)
    stalled = fleet.cr(node_name(40))["status"]  # type: ignore[index]
    assert stalled["phase"] == "Stalled"
    assert f"rollout of revision {fleet.checkout().revision[:12]} stopped after 3 failed node(s) (maxFailures 3)" \
        in stalled["lastError"]
    failed = fleet.cr(failing[0])["status"]  # type: ignore[index]
    assert failed["phase"] == "Failed"
    assert next(c for c in failed["conditions"] if c["type"] == "Stalled")["status"] == "True"


def test_a_failing_node_does_not_block_the_others(tmp_path: Path) -> None:
    for env in make_env(tmp_path, max_parallel=10, max_failures=5):
        env.sandbox.node_model.set_default(agents(tmp_path, lambda pod: 30.0))
        env.sandbox.node_model.script(node_name(3), fail("agent failed", exit_code=2))
        env.sandbox.node_model.script(node_name(17), hang())  # holds a slot until its deadline (300 s)
        samples: list[int] = []

        cycle = run(env, lambda c: sum(s.state == "applied" for s in c.rollout.nodes.values()) == COUNT - 2
                    and c.rollout.running == 0, advance=40.0, samples=samples)  # type: ignore[union-attr]

        assert cycle.rollout is not None and not cycle.rollout.stalled
        assert cycle.rollout.nodes[node_name(3)].state == "failed"
        assert cycle.rollout.nodes[node_name(17)].state == "failed"  # activeDeadlineSeconds
        hung = env.cr(node_name(17))["status"]  # type: ignore[index]
        assert "DeadlineExceeded" in hung["lastError"] and "(transient; retry " in hung["lastError"]
        # the agent's own failure is kept: its Job is not started again on later cycles
        for _ in range(3):
            env.sandbox.clock.advance(STEP_SECONDS)
            env.sandbox.jobs.step()
            env.apply()
        assert len([j for j in apply_jobs(env) if job_node(j) == node_name(3)]) == 1
        assert env.cr(node_name(3))["status"]["phase"] == "Failed"  # type: ignore[index]
        assert "nextRetry" not in env.cr(node_name(3))["status"]  # type: ignore[index]
        assert max(samples) <= 10


def test_a_reconciler_restart_mid_rollout_creates_no_duplicate_job(tmp_path: Path) -> None:
    for fleet in make_env(tmp_path, max_parallel=10):
        restart_mid_rollout(fleet)


def restart_mid_rollout(fleet: ReconcileEnv) -> None:
    samples: list[int] = []
    for _ in range(2):
        fleet.apply()
        fleet.sandbox.clock.advance(STEP_SECONDS)
        fleet.sandbox.jobs.step()
    running_before = {job_node(j) for j in fleet.active_jobs()}
    assert running_before, "some Jobs are mid-flight when the reconciler restarts"
    # the old process dies after creating its Jobs but before it could record any status
    fleet.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", subresource="status", status=503,
                                times=None)
    fleet.apply()
    fleet.sandbox.faults.clear()

    # a new process: new client, nothing remembered but what the cluster holds
    restarted = ReconcileEnv(fleet.sandbox, fleet.repo)
    run(restarted, all_applied, samples=samples)

    assert max(samples) <= 10
    per_node = Counter(job_node(j) for j in apply_jobs(fleet))
    assert per_node == Counter({node_name(i): 1 for i in range(COUNT)})
    assert created_jobs(fleet) == COUNT
    refused = fleet.sandbox.request_log.filter(verb="create", resource="jobs", status=409)
    assert refused == []  # it found them by name instead of trying again


def test_a_spec_change_runs_one_new_job_for_that_node_only(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=8, max_parallel=8):
        env.sandbox.node_model.set_default(agents(tmp_path))
        run(env, lambda c: not c.rollout.in_flight and c.status_writes == 0)  # type: ignore[union-attr]
        path = env.repo / "nodes" / f"{node_name(5)}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["interfaces"][1]["mtu"] = 9000
        path.write_text(yaml.safe_dump(doc))
        revision = env.commit("node-0005 jumbo")
        env.sandbox.request_log.clear()

        run(env, settled)

        assert created_jobs(env) == 1
        [new] = [j for j in apply_jobs(env) if j["metadata"]["labels"][jobs.LABEL_REVISION] == revision]
        assert new["metadata"]["name"] == expected_job(env, node_name(5))
        assert new["metadata"]["labels"][jobs.LABEL_GENERATION] == "2"
        status = env.cr(node_name(5))["status"]  # type: ignore[index]
        assert status["phase"] == "Ready" and status["appliedRevision"] == revision
        assert status["observedGeneration"] == 2


def test_a_newer_spec_waits_for_the_running_job_of_that_node(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=3, max_parallel=3):
        env.sandbox.node_model.set_default(agents(tmp_path))
        env.sandbox.node_model.script(node_name(1), agents(tmp_path, lambda pod: 100.0), agents(tmp_path))
        env.apply()
        env.sandbox.jobs.step()
        path = env.repo / "nodes" / f"{node_name(1)}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["interfaces"][0]["mtu"] = 9000
        path.write_text(yaml.safe_dump(doc))
        env.commit("change while running")

        cycle = env.apply()

        state = cycle.rollout.nodes[node_name(1)]  # type: ignore[union-attr]
        assert state.state == "pending" and "waiting for the running Job" in state.message
        assert len([j for j in apply_jobs(env) if job_node(j) == node_name(1)]) == 1
        env.sandbox.clock.advance(120)
        env.sandbox.jobs.step()
        cycle = run(env, settled)
        assert len([j for j in apply_jobs(env) if job_node(j) == node_name(1)]) == 2
        cr = env.cr(node_name(1))
        assert cr is not None
        assert cr["status"]["specHash"] == objects.spec_hash(cr["spec"])
        assert cr["status"]["phase"] == "Ready" and cr["status"]["observedGeneration"] == 2


# -- node removal ------------------------------------------------------------------------------

def remove_file(env: ReconcileEnv, name: str) -> None:
    (env.repo / "nodes" / f"{name}.yaml").unlink()
    env.commit(f"remove {name}")


def cleanup_jobs(env: ReconcileEnv) -> list[dict]:
    return [j for j in env.jobs() if j["metadata"]["labels"][jobs.LABEL_TYPE] == "remove"]


def test_node_removal_runs_the_cleanup_job_then_deletes_the_cr(small_fleet: ReconcileEnv) -> None:
    fleet = small_fleet
    gone = node_name(7)
    spec = fleet.cr(gone)["spec"]  # type: ignore[index]
    remove_file(fleet, gone)
    fleet.sandbox.request_log.clear()

    run(fleet, lambda c: fleet.cr(gone) is None)

    [cleanup] = cleanup_jobs(fleet)
    assert cleanup["metadata"]["labels"][jobs.LABEL_SPEC_HASH] == objects.spec_hash(spec)
    container = cleanup["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["agent", "remove"]
    assert cleanup["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": gone}
    assert [d for d in fleet.sandbox.request_log.filter(verb="delete", resource="multinicnodeconfigs")
            if d.status == 200] != []
    assert len(fleet.crs()) == 19
    events = fleet.sandbox.list("v1", "Event", NAMESPACE)
    reasons = Counter(e["reason"] for e in events if e["involvedObject"]["name"] == gone)
    assert (reasons["CleanupStarted"], reasons["Removed"]) == (1, 1)


def test_a_failed_cleanup_keeps_the_cr_and_raises_one_warning(small_fleet: ReconcileEnv) -> None:
    fleet = small_fleet
    gone = node_name(9)
    fleet.sandbox.node_model.script(gone, fail("cannot remove files", exit_code=1))
    remove_file(fleet, gone)

    cycle = run(fleet, lambda c: c.rollout.nodes[gone].state == "remove-failed")  # type: ignore[union-attr]

    for _ in range(3):
        fleet.sandbox.jobs.step()
        cycle = fleet.apply()

    assert fleet.cr(gone) is not None
    assert fleet.cr(gone)["status"]["phase"] == "Failed"  # type: ignore[index]
    state = cycle.rollout.nodes[gone]  # type: ignore[union-attr]
    assert state.state == "remove-failed"
    assert state.job == cleanup_jobs(fleet)[0]["metadata"]["name"]
    assert state.message == "unreadable agent result: cannot remove files"
    assert len(cleanup_jobs(fleet)) == 1
    warnings = [e for e in fleet.sandbox.list("v1", "Event", NAMESPACE)
                if e["involvedObject"]["name"] == gone and e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["CleanupFailed"]  # one, not one per cycle


def test_a_node_with_on_remove_orphan_is_deleted_without_a_cleanup_job(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=6):
        path = env.repo / "nodes" / f"{node_name(2)}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["onRemove"] = "orphan"
        path.write_text(yaml.safe_dump(doc))
        env.commit("orphan node-0002")
        env.sandbox.node_model.set_default(agents(tmp_path))
        run(env, lambda c: not c.rollout.in_flight)  # type: ignore[union-attr]
        remove_file(env, node_name(2))

        cycle = env.apply()

        assert env.cr(node_name(2)) is None
        assert cleanup_jobs(env) == []
        assert "onRemove: orphan" in cycle.rollout.nodes[node_name(2)].message  # type: ignore[union-attr]


def test_a_node_whose_kubernetes_node_is_gone_is_deleted_without_a_cleanup_job(small_fleet: ReconcileEnv) -> None:
    fleet = small_fleet
    gone = node_name(11)
    fleet.sandbox.delete("v1", "Node", gone)
    remove_file(fleet, gone)

    cycle = fleet.apply()

    assert fleet.cr(gone) is None
    assert cleanup_jobs(fleet) == []
    assert "the Kubernetes node is gone" in cycle.rollout.nodes[gone].message  # type: ignore[union-attr]


def test_a_node_without_a_kubernetes_node_is_unschedulable_with_one_warning(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=4, max_parallel=4):
        env.sandbox.delete("v1", "Node", node_name(2))
        env.sandbox.node_model.set_default(agents(tmp_path))

        run(env, lambda c: not c.rollout.in_flight)  # type: ignore[union-attr]
        env.sandbox.request_log.clear()
        for _ in range(3):
            cycle = env.apply()

        assert cycle.rollout.nodes[node_name(2)].state == "unschedulable"  # type: ignore[union-attr]
        assert env.writes() == []  # nothing new to say: no status write, no Event
        status = env.cr(node_name(2))["status"]  # type: ignore[index]
        assert status["phase"] == "Failed"
        assert status["lastError"] == f"Kubernetes node {node_name(2)} not found"
        warnings = [e for e in env.sandbox.list("v1", "Event", NAMESPACE)
                    if e["type"] == "Warning" and e["involvedObject"]["kind"] == "MultiNicNodeConfig"]
        assert [(e["involvedObject"]["name"], e["reason"]) for e in warnings] == [(node_name(2), "Unschedulable")]


# -- the Job itself ----------------------------------------------------------------------------

@pytest.fixture
def example(tmp_path: Path) -> Iterator[ReconcileEnv]:
    with start_env(warn_on_vm_nics(git_repo(EXAMPLE_REPO, tmp_path / "repo")), jobs="manual") as env:
        yield env


@pytest.mark.parametrize(("node", "config_dirs"), [
    ("worker-01", ["/etc/netplan"]),
    ("gpu-01", ["/etc/NetworkManager/system-connections", "/etc/systemd/network"]),  # keyfile + .link
])
def test_the_job_runs_least_privileged_with_only_the_listed_mounts(example: ReconcileEnv, node: str,
                                                                   config_dirs: list[str]) -> None:
    settings = yaml.safe_load((example.repo / "reconciler.yaml").read_text())
    settings["spec"]["rollout"]["maxParallel"] = 9
    (example.repo / "reconciler.yaml").write_text(yaml.safe_dump(settings))
    example.commit("all at once")
    example.apply()
    cr = example.cr(node)
    assert cr is not None
    [job] = [j for j in example.jobs() if job_node(j) == node]

    assert job["metadata"]["name"] == expected_job(example, node)
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["hostNetwork"] is True
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": node}
    [container] = pod["containers"]
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    # writable: only the directories the node's renderer writes; read-only: MAC lookup, OS
    # label and the D-Bus socket through which the node's own network stack activates the files
    assert mounts == {**{d: False for d in config_dirs}, "/sys/class/net": True, "/etc/os-release": True,
                      "/run/dbus/system_bus_socket": True}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} == set(volumes)
    assert {v["hostPath"]["path"] for v in volumes.values()} == set(mounts)  # hostPath = mountPath
    assert all(set(v) == {"name", "hostPath"} for v in volumes.values())  # no projected token, no secrets
    assert job["spec"]["backoffLimit"] == 0  # a failed agent has rolled back; never disrupt the node twice
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"] == {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert all("secretKeyRef" not in str(e) for e in container["env"])
    labels = job["metadata"]["labels"]
    assert labels[objects.MANAGED_BY] == objects.MANAGED_BY_VALUE
    assert labels[jobs.LABEL_TYPE] == "apply"
    assert labels[jobs.LABEL_SPEC_HASH] == objects.spec_hash(cr["spec"])
    assert labels[jobs.LABEL_REVISION] == example.checkout().revision
    # the pod the Job controller made runs on that node
    example.sandbox.jobs.step()
    [pod_obj] = example.sandbox.list("v1", "Pod", NAMESPACE, f"job-name={job['metadata']['name']}")
    assert pod_obj["spec"]["nodeName"] == node


def test_the_job_name_is_the_same_for_the_same_change_and_differs_for_any_other() -> None:
    desired = validate_repo(EXAMPLE_REPO).desired
    spec = desired.nodes["worker-02"].spec_dict()
    cr = rollout.LiveNode("worker-02", spec, 1, {}, uid="u-1")

    def name(node: rollout.LiveNode, digest: str, attempt: int = 0) -> str:
        return jobs.job_name("apply", "worker-02", rollout.identity(node, digest, attempt))

    first = name(cr, objects.spec_hash(spec))
    assert first == name(rollout.LiveNode("worker-02", dict(spec), 1, {}, uid="u-1"), objects.spec_hash(dict(spec)))
    changed = objects.spec_hash({**spec, "onRemove": "orphan"})
    others = {
        name(cr, changed),  # another spec
        name(replace(cr, generation=3), objects.spec_hash(spec)),  # the same spec again, later (A -> B -> A)
        name(replace(cr, uid="u-2"), objects.spec_hash(spec)),  # a re-created object
        name(replace(cr, annotations={rollout.ANNOTATION_RETRY: "1"}), objects.spec_hash(spec)),  # asked again
        name(cr, objects.spec_hash(spec), attempt=1),  # an automatic retry
        jobs.job_name("remove", "worker-02", rollout.identity(cr, objects.spec_hash(spec))),
    }
    assert first not in others and len(others) == 6
    long_name = "n" * 253
    assert len(jobs.job_name("apply", long_name, "0" * 16)) <= 63


def test_real_agents_on_the_example_fleet_report_a_lost_nic_and_apply_everywhere_else(tmp_path: Path) -> None:
    with start_env(warn_on_vm_nics(git_repo(EXAMPLE_REPO, tmp_path / "repo")), jobs="auto") as env:
        hosts = AgentHosts(tmp_path / "hosts")
        hosts.lose_nic("worker-03", "bc:24:11:30:00:0d")
        env.sandbox.node_model.set_default(hosts)

        def finished() -> pipeline.Cycle | None:
            cycle = env.apply()
            return cycle if not cycle.rollout.in_flight and cycle.status_writes == 0 else None  # type: ignore[union-attr]

        env.sandbox.wait_until(finished, timeout=60, interval=0.3)

        phases = {name: cr["status"]["phase"] for name, cr in env.crs().items()}
        assert phases.pop("worker-03") == "Failed"
        assert set(phases.values()) == {"Ready"}
        status = env.cr("worker-03")["status"]  # type: ignore[index]
        errors = {i["name"]: i.get("error") for i in status["interfaces"]}
        # all or nothing: the NICs that are there are not changed either, and say why
        assert errors.pop("tenant0") == "no network device has MAC bc:24:11:30:00:0d"
        assert set(errors) == {"storage0", "backup0"}
        assert all(e.startswith("not applied: tenant0 not found") for e in errors.values())
        assert not (tmp_path / "hosts" / "worker-03" / "etc" / "netplan" / "90-multinic.yaml").exists()
        written = sorted(p.name for p in (tmp_path / "hosts" / "worker-01" / "etc" / "netplan").iterdir())
        assert written, "the agent wrote netplan files on worker-01"
        ready = env.cr("worker-01")["status"]  # type: ignore[index]
        assert [i["device"] for i in ready["interfaces"]] == ["ens19", "ens20", "ens21"]
        events = env.sandbox.list("v1", "Event", NAMESPACE)
        assert any(e["reason"] == "ApplyFailed" and e["type"] == "Warning"
                   and e["involvedObject"]["name"] == "worker-03" for e in events)


def test_api_version_constant_matches_the_crd_group() -> None:
    assert API_VERSION == objects.API_VERSION
