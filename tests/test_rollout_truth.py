"""Rollouts that tell the truth, against the kube sandbox with the real agent on fake node roots:
a Job per desired change (A -> B -> A runs three), one Job per host at a time (renames, nodeName
moves), failure budgets scoped to the rollout, retries (asked and automatic), suspend, canary,
Jobs without a readable result, and ``rbac.readNodes: false``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.harness.fleet import node_object
from multinic_sandbox.kube.node_model import fail, hang, succeed
from support.reconcile import (
    API_VERSION,
    NAMESPACE,
    NODE_KIND,
    ReconcileEnv,
    generate_repo,
    git_repo,
    node_name,
    real_agents,
    start_env,
)

from reconciler import pipeline
from reconciler.config.models import NodeConfig
from reconciler.config.validation import validate_repo
from reconciler.kube import jobs

STEP = 10.0  # sandbox seconds per cycle


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ReconcileEnv]:
    yield from make_env(tmp_path, count=4)


def make_env(tmp_path: Path, *, count: int, max_parallel: int = 4, max_failures: int = 2,
             **rollout: Any) -> Iterator[ReconcileEnv]:
    repo = generate_repo(tmp_path / "repo", count, max_parallel=max_parallel, max_failures=max_failures)
    if rollout:
        edit(repo / "reconciler.yaml", lambda d: d["spec"]["rollout"].update(rollout))
    with start_env(git_repo(None, repo), jobs="manual") as env:
        env.sandbox.node_model.set_default(real_agents(tmp_path / "hosts"))
        yield env


def edit(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def node_file(env: ReconcileEnv, index: int) -> Path:
    return env.repo / "nodes" / f"{node_name(index)}.yaml"


def set_mtu(env: ReconcileEnv, index: int, mtu: int) -> str:
    edit(node_file(env, index), lambda d: d["spec"]["interfaces"][0].update(mtu=mtu))
    return env.commit(f"{node_name(index)} mtu {mtu}")


def cycle_once(env: ReconcileEnv) -> pipeline.Cycle:
    cycle = env.apply()
    env.sandbox.clock.advance(STEP)
    env.sandbox.jobs.step()
    return cycle


def settle(env: ReconcileEnv, *, cycles: int = 40) -> pipeline.Cycle:
    """Cycles until the rollout has nothing in flight and a cycle writes no status."""
    for _ in range(cycles):
        cycle = cycle_once(env)
        assert cycle.rollout is not None
        if not cycle.rollout.in_flight and cycle.status_writes == 0 and not cycle.rollout.started:
            return cycle
    pytest.fail(f"not settled after {cycles} cycles")


def apply_jobs(env: ReconcileEnv, host: str | None = None) -> list[dict[str, Any]]:
    return [j for j in env.jobs() if j["metadata"]["labels"][jobs.LABEL_TYPE] == "apply"
            and (host is None or j["metadata"]["annotations"][jobs.ANNOTATION_NODE] == host)]


def cleanup_jobs(env: ReconcileEnv, host: str | None = None) -> list[dict[str, Any]]:
    return [j for j in env.jobs() if j["metadata"]["labels"][jobs.LABEL_TYPE] == "remove"
            and (host is None or j["metadata"]["annotations"][jobs.ANNOTATION_NODE] == host)]


def netplan(tmp_path: Path, host: str) -> dict[str, str]:
    """The files the real agent wrote on that host's fake root."""
    folder = tmp_path / "hosts" / host / "etc" / "netplan"
    return {p.name: p.read_text() for p in sorted(folder.glob("*"))} if folder.exists() else {}


def phase(env: ReconcileEnv, name: str) -> str:
    cr = env.cr(name)
    assert cr is not None
    return str(cr["status"]["phase"])


def annotate(env: ReconcileEnv, name: str, key: str, value: str) -> None:
    """What ``kubectl annotate`` does (its own field manager, so the reconciler keeps it)."""
    env.sandbox.apply({"apiVersion": API_VERSION, "kind": NODE_KIND,
                       "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {key: value}}},
                      manager="kubectl-annotate")


# -- Job identity ------------------------------------------------------------------------------

def test_a_revert_within_the_job_ttl_runs_a_third_job_and_the_host_ends_with_the_first_files(
        env: ReconcileEnv, tmp_path: Path) -> None:
    settle(env)
    host = node_name(1)
    first = netplan(tmp_path, host)
    assert "mtu: 1500" in "".join(first.values())

    set_mtu(env, 1, 9000)
    settle(env)
    assert "mtu: 9000" in "".join(netplan(tmp_path, host).values())
    env.sandbox.clock.advance(60)  # well within ttlSecondsAfterFinished (3600 s): the first Job still exists
    revert = set_mtu(env, 1, 1500)
    settle(env)

    made = apply_jobs(env, host)
    assert len(made) == 3
    assert sorted(j["metadata"]["labels"][jobs.LABEL_GENERATION] for j in made) == ["1", "2", "3"]
    assert netplan(tmp_path, host) == first
    status = env.cr(host)["status"]  # type: ignore[index]
    assert status["phase"] == "Ready" and status["appliedRevision"] == revert
    assert status["observedGeneration"] == 3
    assert status["job"] == next(j["metadata"]["name"] for j in made
                                 if j["metadata"]["labels"][jobs.LABEL_GENERATION] == "3")


def test_a_job_that_exits_zero_without_a_readable_result_is_failed(env: ReconcileEnv) -> None:
    env.sandbox.node_model.script(node_name(0), succeed(""))
    env.sandbox.node_model.script(node_name(2), succeed('{"node": "node-0002", "outcome": "appl'))  # truncated

    settle(env)

    assert phase(env, node_name(0)) == "Failed"
    assert "the Job finished without an agent result" in env.cr(node_name(0))["status"]["lastError"]  # type: ignore[index]
    assert phase(env, node_name(2)) == "Failed"
    assert "unreadable agent result" in env.cr(node_name(2))["status"]["lastError"]  # type: ignore[index]
    assert {phase(env, node_name(i)) for i in (1, 3)} == {"Ready"}


# -- one Job per host ----------------------------------------------------------------------------

def test_a_rename_with_the_same_node_name_hands_the_host_over_without_a_cleanup(
        env: ReconcileEnv, tmp_path: Path) -> None:
    settle(env)
    host = node_name(2)
    before = netplan(tmp_path, host)
    assert before
    old = node_file(env, 2)
    doc = yaml.safe_load(old.read_text())
    doc["metadata"]["name"] = "w02"
    doc["spec"]["nodeName"] = host
    (env.repo / "nodes" / "w02.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    old.unlink()
    env.commit("rename node-0002 -> w02")

    settle(env)

    assert env.cr(host) is None and env.cr("w02") is not None
    assert cleanup_jobs(env) == []
    assert netplan(tmp_path, host) == before
    assert phase(env, "w02") == "Ready"
    events = [e for e in env.sandbox.list("v1", "Event", NAMESPACE) if e["involvedObject"]["name"] == host]
    assert any("handed over to w02" in e["message"] for e in events)


def test_a_node_name_change_cleans_the_old_host_before_the_new_host_gets_its_job(
        env: ReconcileEnv, tmp_path: Path) -> None:
    settle(env)
    old_host, new_host = node_name(3), "w3"  # short: fake roots hold a unix socket (108-byte paths)
    assert netplan(tmp_path, old_host)
    edit(node_file(env, 3), lambda d: d["spec"].update(nodeName=new_host))
    node = NodeConfig.model_validate(yaml.safe_load(node_file(env, 3).read_text()))
    env.sandbox.seed(node_object(node))
    env.commit("node-0003 moves to another Kubernetes node")

    settle(env)

    [cleanup] = cleanup_jobs(env, old_host)
    [apply] = apply_jobs(env, new_host)
    finished = next(c["lastTransitionTime"] for c in cleanup["status"]["conditions"] if c["type"] == "Complete")
    assert finished <= apply["metadata"]["creationTimestamp"]
    assert netplan(tmp_path, old_host) == {}
    assert netplan(tmp_path, new_host)
    status = env.cr(node_name(3))["status"]  # type: ignore[index]
    assert status["phase"] == "Ready" and status["nodeName"] == new_host


def test_two_node_files_naming_one_kubernetes_node_are_refused_at_validation(tmp_path: Path) -> None:
    repo = generate_repo(tmp_path / "repo", 2)
    edit(repo / "nodes" / f"{node_name(1)}.yaml", lambda d: d["spec"].update(nodeName=node_name(0)))

    result = validate_repo(repo)

    assert node_name(1) not in result.desired.nodes
    assert any("nodeName node-0000 is also configured by" in str(e) for e in result.errors)


def test_an_apply_and_a_cleanup_for_one_host_never_run_at_once(env: ReconcileEnv, tmp_path: Path) -> None:
    settle(env)
    host = node_name(0)
    env.sandbox.node_model.script(host, real_agents(tmp_path / "hosts", lambda pod: 100.0),
                                  real_agents(tmp_path / "hosts"))
    set_mtu(env, 0, 9000)
    env.apply()
    env.sandbox.jobs.step()
    # the file is renamed while its host's apply Job still runs
    doc = yaml.safe_load(node_file(env, 0).read_text())
    doc["metadata"]["name"] = "w00"
    doc["spec"]["nodeName"] = host
    doc["spec"]["interfaces"][0]["mtu"] = 1500
    (env.repo / "nodes" / "w00.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    node_file(env, 0).unlink()
    env.commit("rename while applying")

    for _ in range(30):
        cycle_once(env)
        running = [j for j in env.active_jobs() if j["metadata"]["annotations"][jobs.ANNOTATION_NODE] == host]
        assert len(running) <= 1
    assert phase(env, "w00") == "Ready"
    assert "mtu: 1500" in "".join(netplan(tmp_path, host).values())


# -- budgets and retries ---------------------------------------------------------------------------

def test_an_old_failure_does_not_stall_a_new_rollout_and_the_retry_annotation_retries_it(
        tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=4, max_failures=1):
        broken = node_name(1)
        env.sandbox.node_model.script(broken, fail("agent: no device", exit_code=3))
        settle(env)
        assert phase(env, broken) == "Failed"
        assert apply_jobs(env, broken).__len__() == 1

        revision = set_mtu(env, 2, 9000)  # a commit touching another node only
        cycle = settle(env)

        assert cycle.rollout is not None and not cycle.rollout.stalled and cycle.rollout.failures == 0
        status = env.cr(node_name(2))["status"]  # type: ignore[index]
        assert status["phase"] == "Ready" and status["appliedRevision"] == revision
        assert len(apply_jobs(env, broken)) == 1  # its spec did not change: not retried by itself

        env.sandbox.node_model.script(broken, real_agents(tmp_path / "hosts"))  # the NIC is back
        annotate(env, broken, "multinic.io/retry", "2026-12-03T08:30:00Z")
        settle(env)

        assert len(apply_jobs(env, broken)) == 2
        assert phase(env, broken) == "Ready"
        annotate(env, broken, "multinic.io/retry", "2026-12-03T08:30:00Z")  # the same value: nothing new
        settle(env)
        assert len(apply_jobs(env, broken)) == 2


def test_a_fix_for_the_failed_node_alone_rolls_out(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=3, max_parallel=1, max_failures=0):
        broken = node_name(0)
        env.sandbox.node_model.script(broken, fail("agent: bad", exit_code=3))
        cycle = settle(env)
        assert cycle.rollout is not None and cycle.rollout.stalled
        assert phase(env, broken) == "Failed" and phase(env, node_name(2)) == "Stalled"

        env.sandbox.node_model.script(broken, real_agents(tmp_path / "hosts"))
        set_mtu(env, 0, 9000)  # the fix, alone
        cycle = settle(env)

        assert phase(env, broken) == "Ready"
        assert {phase(env, node_name(i)) for i in range(3)} == {"Ready"}


def test_a_transient_failure_is_retried_with_backoff_and_an_agent_failure_never(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=3):
        hung, broken = node_name(0), node_name(1)
        env.sandbox.node_model.script(hung, hang(), real_agents(tmp_path / "hosts"))
        env.sandbox.node_model.script(broken, fail('{"node": "node-0001", "outcome": "rolled-back", '
                                                   '"error": "verify failed"}', exit_code=2))
        for _ in range(40):  # the first pod hangs until activeDeadlineSeconds (300 s)
            cycle_once(env)
            if env.cr(hung)["status"].get("phase") == "Failed":  # type: ignore[index]
                break
        status = env.cr(hung)["status"]  # type: ignore[index]
        assert "DeadlineExceeded" in status["lastError"] and status["nextRetry"]
        assert len(apply_jobs(env, hung)) == 1

        settle(env)
        env.sandbox.clock.advance(120)  # past the backoff (1 minute)
        settle(env)

        assert len(apply_jobs(env, hung)) == 2
        status = env.cr(hung)["status"]  # type: ignore[index]
        assert status["phase"] == "Ready" and status["attempt"] == 1 and "nextRetry" not in status
        assert len(apply_jobs(env, broken)) == 1  # the agent rolled back: never retried by itself
        assert phase(env, broken) == "Failed"
        assert "nextRetry" not in env.cr(broken)["status"]  # type: ignore[index]


# -- suspend and canary ------------------------------------------------------------------------------

def test_rollout_suspend_pauses_new_jobs_and_shows_suspended(env: ReconcileEnv) -> None:
    settle(env)
    edit(env.repo / "reconciler.yaml", lambda d: d["spec"]["rollout"].update(suspend=True))
    env.commit("pause")
    set_mtu(env, 1, 9000)

    settle(env)

    assert len(apply_jobs(env, node_name(1))) == 1
    cr = env.cr(node_name(1))
    assert cr is not None and cr["status"]["phase"] == "Suspended"
    ready = next(c for c in cr["status"]["conditions"] if c["type"] == "Ready")
    assert "rollout.suspend" in ready["message"]
    stalled = next(c for c in cr["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "False"  # paused is not failing

    edit(env.repo / "reconciler.yaml", lambda d: d["spec"]["rollout"].update(suspend=False))
    env.commit("resume")
    settle(env)
    assert len(apply_jobs(env, node_name(1))) == 2 and phase(env, node_name(1)) == "Ready"


def test_the_suspend_annotation_pauses_one_node(env: ReconcileEnv) -> None:
    settle(env)
    annotate(env, node_name(2), "multinic.io/suspend", "true")
    set_mtu(env, 2, 9000)
    set_mtu(env, 3, 9000)

    settle(env)

    assert phase(env, node_name(2)) == "Suspended" and len(apply_jobs(env, node_name(2))) == 1
    assert phase(env, node_name(3)) == "Ready" and len(apply_jobs(env, node_name(3))) == 2
    annotate(env, node_name(2), "multinic.io/suspend", "false")
    settle(env)
    assert phase(env, node_name(2)) == "Ready"


def test_canary_nodes_go_first_and_the_rest_wait_for_them(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=6, max_parallel=6, canary=2):
        slow = real_agents(tmp_path / "hosts", lambda pod: 25.0)
        env.sandbox.node_model.set_default(slow)

        env.apply()
        started = {j["metadata"]["annotations"][jobs.ANNOTATION_NODE] for j in apply_jobs(env)}
        assert started == {node_name(0), node_name(1)}
        assert phase(env, node_name(4)) == "Pending"
        assert "canary" in env.cr(node_name(4))["status"]["conditions"][0]["message"]  # type: ignore[index]

        settle(env)
        assert {phase(env, node_name(i)) for i in range(6)} == {"Ready"}
        first = {j["metadata"]["name"]: j["metadata"]["creationTimestamp"] for j in apply_jobs(env)}
        canary_done = max(first[j["metadata"]["name"]] for j in apply_jobs(env)
                          if j["metadata"]["annotations"][jobs.ANNOTATION_NODE] in (node_name(0), node_name(1)))
        rest = [first[j["metadata"]["name"]] for j in apply_jobs(env)
                if j["metadata"]["annotations"][jobs.ANNOTATION_NODE] not in (node_name(0), node_name(1))]
        assert min(rest) > canary_done


def test_a_failed_canary_stops_the_rest(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=4, canary=1, max_failures=3):
        env.sandbox.node_model.script(node_name(0), fail("agent: bad", exit_code=3))

        cycle = settle(env)

        assert cycle.rollout is not None and cycle.rollout.stalled
        assert {j["metadata"]["annotations"][jobs.ANNOTATION_NODE] for j in apply_jobs(env)} == {node_name(0)}
        assert phase(env, node_name(2)) == "Stalled"


# -- rbac.readNodes: false ---------------------------------------------------------------------------

def test_read_nodes_off_rolls_out_nodes_with_an_explicit_os_family_and_names_the_others(tmp_path: Path) -> None:
    for env in make_env(tmp_path, count=3):
        edit(node_file(env, 2), lambda d: d["spec"].update(osFamily="auto"))
        env.commit("node-0002 without osFamily")
        env.sandbox.faults.inject(verb="list", resource="nodes", status=403, message="nodes is forbidden",
                                  times=None)

        settle(env)

        assert {phase(env, node_name(i)) for i in (0, 1)} == {"Ready"}
        status = env.cr(node_name(2))["status"]  # type: ignore[index]
        assert status["phase"] == "Failed"
        assert "set spec.osFamily for node node-0002" in status["lastError"]
        assert "rbac.readNodes: false" in status["lastError"]
