"""Plan and apply of the custom resources against the kube sandbox, proven from its state and its
request log: create, no-op, update, delete, invalid files, the prune guard, drift, faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from support.reconcile import (
    API_VERSION,
    CLUSTER_KIND,
    EXAMPLE_REPO,
    NAMESPACE,
    NODE_KIND,
    ReconcileEnv,
    git_repo,
    start_env,
)

from reconciler.config.validation import validate_repo
from reconciler.kube import objects
from reconciler.plan.changeset import Action

CR_RESOURCES = ("multinicnodeconfigs", "proxmoxclusters")
NODES = sorted(p.stem for p in (EXAMPLE_REPO / "nodes").glob("*.yaml"))
CLUSTERS = sorted(p.stem for p in (EXAMPLE_REPO / "clusters").glob("*.yaml"))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ReconcileEnv]:
    # Manual Job mode: Jobs stay running until a test steps the controller, so the only writes
    # after the first cycle are the ones the test provokes.
    with start_env(git_repo(EXAMPLE_REPO, tmp_path / "repo"), jobs="manual") as env:
        yield env


def cr_writes(env: ReconcileEnv) -> list[tuple[str, str, str]]:
    """Writes to our custom resources' main resource (spec, labels, annotations; not status)."""
    return [(r.verb, r.resource, r.name) for r in env.sandbox.request_log.writes()
            if r.resource in CR_RESOURCES and r.subresource == ""]


def desired_spec(env: ReconcileEnv, name: str) -> dict:
    return validate_repo(env.repo).desired.nodes[name].spec_dict()


def edit_node(env: ReconcileEnv, name: str, change) -> None:  # type: ignore[no-untyped-def]
    path = env.repo / "nodes" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_the_first_apply_of_the_example_repo_creates_every_custom_resource(env: ReconcileEnv) -> None:
    revision = env.checkout().revision
    cycle = env.apply()

    assert cycle.changes.counts()["create"] == len(NODES) + len(CLUSTERS)
    assert not cycle.failed
    assert sorted(env.crs(NODE_KIND)) == NODES
    assert sorted(env.crs(CLUSTER_KIND)) == CLUSTERS
    desired = validate_repo(env.repo).desired
    for name, obj in env.crs(NODE_KIND).items():
        assert obj["spec"] == desired.nodes[name].spec_dict()
        assert obj["metadata"]["labels"][objects.MANAGED_BY] == objects.MANAGED_BY_VALUE
        annotations = obj["metadata"]["annotations"]
        assert annotations[objects.SOURCE_PATH] == f"nodes/{name}.yaml"
        assert annotations[objects.SOURCE_REVISION] == revision
        assert annotations[objects.SPEC_HASH] == objects.spec_hash(obj["spec"])
        managers = {m["manager"] for m in obj["metadata"]["managedFields"] if m["operation"] == "Apply"}
        assert managers == {objects.FIELD_MANAGER}
    creates = env.sandbox.request_log.filter(verb="patch", resource="multinicnodeconfigs", subresource="")
    assert sorted(r.name for r in creates) == NODES
    assert {r.status for r in creates} == {201}


def test_a_second_apply_of_an_unchanged_repo_makes_no_writes(env: ReconcileEnv) -> None:
    env.apply()
    env.sandbox.request_log.clear()

    cycle = env.apply()

    assert not cycle.changes.has_changes
    assert cycle.changes.counts()["unchanged"] == len(NODES) + len(CLUSTERS)
    assert env.writes() == []
    assert cycle.status_writes == 0


def test_once_the_rollout_has_finished_a_cycle_makes_no_writes_and_few_requests(env: ReconcileEnv) -> None:
    for _ in range(10):
        env.sandbox.jobs.step()
        cycle = env.apply()
        assert cycle.rollout is not None
        # Nodes on Proxmox wait for their (unverifiable here) cluster's VM NIC check under
        # nicCheck: enforce; every other node is applied. Settled = nothing in flight, nothing written.
        states = {s.state for s in cycle.rollout.nodes.values()}
        if states <= {"applied", "waiting"} and "applied" in states and not cycle.status_writes:
            break
    else:
        pytest.fail("the rollout of the example repo did not settle")
    env.sandbox.request_log.clear()

    cycle = env.apply()

    assert env.writes() == []
    assert not cycle.changes.has_changes and not cycle.rollout.started  # type: ignore[union-attr]
    counts = env.sandbox.request_log.counts()
    # one LIST per kind, one for Jobs; nothing per node
    assert counts == {("list", "proxmoxclusters"): 1, ("list", "multinicnodeconfigs"): 1, ("list", "jobs"): 1}


def test_changing_one_file_updates_exactly_that_custom_resource(env: ReconcileEnv) -> None:
    env.apply()
    before = env.crs()
    edit_node(env, "worker-02", lambda d: d["spec"]["interfaces"][0].update(mtu=8000))
    revision = env.commit("worker-02: storage mtu 8000")
    env.sandbox.request_log.clear()

    cycle = env.apply()

    updates = cycle.changes.by_action(Action.UPDATE)
    assert [c.name for c in updates] == ["worker-02"]
    assert [(f.path, f.before, f.after) for f in updates[0].fields if f.path.startswith("spec")] == [
        ("spec.interfaces[storage0].mtu", 9000, 8000)]
    assert cr_writes(env) == [("patch", "multinicnodeconfigs", "worker-02")]
    after = env.crs()
    assert after["worker-02"]["spec"]["interfaces"][0]["mtu"] == 8000
    assert after["worker-02"]["metadata"]["annotations"][objects.SOURCE_REVISION] == revision
    assert after["worker-02"]["metadata"]["generation"] == 2
    for name in NODES:
        if name != "worker-02":
            assert after[name]["metadata"]["resourceVersion"] == before[name]["metadata"]["resourceVersion"]
            assert after[name]["metadata"]["generation"] == 1


def test_removing_one_file_deletes_exactly_that_custom_resource_after_its_cleanup_job(env: ReconcileEnv) -> None:
    env.apply()
    (env.repo / "nodes" / "worker-06.yaml").unlink()
    env.commit("retire worker-06")
    env.sandbox.request_log.clear()

    for _ in range(6):
        env.sandbox.jobs.step()
        cycle = env.apply()
        if env.cr("worker-06") is None:
            break
    else:
        pytest.fail("worker-06 was never deleted")

    assert [c.name for c in cycle.changes.by_action(Action.DELETE)] in (["worker-06"], [])
    deletes = [w for w in cr_writes(env) if w[0] == "delete"]
    assert deletes == [("delete", "multinicnodeconfigs", "worker-06")]
    assert sorted(env.crs()) == [n for n in NODES if n != "worker-06"]
    cleanup = [j for j in env.jobs() if j["metadata"]["labels"]["multinic.io/job-type"] == "remove"]
    assert [j["metadata"]["annotations"]["multinic.io/node-name"] for j in cleanup] == ["worker-06"]
    assert sorted(env.crs(CLUSTER_KIND)) == CLUSTERS


def test_removing_a_cluster_file_deletes_that_cluster_custom_resource(tmp_path: Path) -> None:
    repo = git_repo(EXAMPLE_REPO, tmp_path / "repo")
    # a cluster no node refers to, so removing its file leaves the repo valid
    extra = yaml.safe_load((repo / "clusters" / "pve-lab.yaml").read_text())
    extra["metadata"]["name"] = "pve-spare"
    extra["spec"]["apiEndpoint"] = "https://pve-spare.infra.example.net"
    (repo / "clusters" / "pve-spare.yaml").write_text(yaml.safe_dump(extra))
    with start_env(repo, jobs="manual") as env:
        env.commit("add pve-spare")
        env.apply()
        (repo / "clusters" / "pve-spare.yaml").unlink()
        env.commit("drop pve-spare")
        env.sandbox.request_log.clear()

        cycle = env.apply()

        assert [(c.kind, c.name) for c in cycle.changes.by_action(Action.DELETE)] == [(CLUSTER_KIND, "pve-spare")]
        assert cr_writes(env) == [("delete", "proxmoxclusters", "pve-spare")]
        assert sorted(env.crs(CLUSTER_KIND)) == CLUSTERS


def test_an_invalid_file_leaves_its_custom_resource_untouched(env: ReconcileEnv) -> None:
    env.apply()
    before = env.cr("worker-04")
    edit_node(env, "worker-04", lambda d: d["spec"]["interfaces"][0].update(macAddress="not-a-mac", mtu=1280))
    edit_node(env, "worker-05", lambda d: d["spec"]["interfaces"][1].update(mtu=1450))
    env.commit("break worker-04, change worker-05")
    env.sandbox.request_log.clear()

    cycle = env.apply()

    assert not cycle.validation.ok
    blocked = cycle.changes.by_action(Action.BLOCKED)
    assert [(c.name, c.reason) for c in blocked] == [
        ("worker-04", "file is invalid; the live object is left unchanged")]
    assert cr_writes(env) == [("patch", "multinicnodeconfigs", "worker-05")]
    after = env.cr("worker-04")
    assert after is not None and before is not None
    # The spec and its generation stay; only the status says the file is blocked (ConfigValid=False).
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    config_valid = {c["type"]: c for c in after["status"]["conditions"]}["ConfigValid"]
    assert config_valid["status"] == "False" and config_valid["reason"] == "ValidationFailed"


def test_an_invalid_new_file_is_not_created(env: ReconcileEnv) -> None:
    env.apply()
    doc = yaml.safe_load((env.repo / "nodes" / "worker-06.yaml").read_text())
    doc["metadata"]["name"] = "worker-07"
    doc["spec"]["interfaces"] = [{"name": "x", "macAddress": "zz"}]
    (env.repo / "nodes" / "worker-07.yaml").write_text(yaml.safe_dump(doc))
    env.commit("bad worker-07")
    env.sandbox.request_log.clear()

    cycle = env.apply()

    assert [(c.name, c.reason) for c in cycle.changes.by_action(Action.BLOCKED)] == [
        ("worker-07", "file is invalid; not created")]
    assert env.cr("worker-07") is None
    assert cr_writes(env) == []


def test_the_prune_guard_blocks_a_mass_deletion(env: ReconcileEnv) -> None:
    env.apply()
    gone = ["worker-02", "worker-03", "worker-04", "worker-05"]  # 4 of 9 = 44% > maxDeletePercent 25
    for name in gone:
        (env.repo / "nodes" / f"{name}.yaml").unlink()
    env.commit("oops")
    env.sandbox.request_log.clear()

    for _ in range(3):
        env.sandbox.jobs.step()
        cycle = env.apply()

    assert sorted(env.crs()) == NODES
    assert [w for w in env.writes() if w[0] == "delete"] == []
    assert not [j for j in env.jobs() if j["metadata"]["labels"]["multinic.io/job-type"] == "remove"]
    blocked = cycle.changes.by_action(Action.BLOCKED)
    assert sorted(c.name for c in blocked) == gone
    assert any("prune guard: deleting 4 of 9 MultiNicNodeConfig objects (44%)" in n for n in cycle.changes.notes)


def test_an_empty_checkout_deletes_nothing(env: ReconcileEnv) -> None:
    env.apply()
    for path in [*(env.repo / "nodes").glob("*.yaml"), *(env.repo / "clusters").glob("*.yaml")]:
        path.unlink()
    env.commit("empty")
    env.sandbox.request_log.clear()

    cycle = env.apply()

    assert not cycle.changes.has_changes
    assert sorted(env.crs()) == NODES and sorted(env.crs(CLUSTER_KIND)) == CLUSTERS
    assert [w for w in env.writes() if w[0] == "delete"] == []
    assert any("holds no objects at all" in n for n in cycle.changes.notes)


def test_prune_disabled_keeps_the_custom_resource_of_a_removed_file(env: ReconcileEnv) -> None:
    env.apply()
    settings = yaml.safe_load((env.repo / "reconciler.yaml").read_text())
    settings["spec"]["prune"]["enabled"] = False
    (env.repo / "reconciler.yaml").write_text(yaml.safe_dump(settings))
    (env.repo / "nodes" / "worker-06.yaml").unlink()
    env.commit("no prune")

    for _ in range(3):
        env.sandbox.jobs.step()
        cycle = env.apply()

    assert env.cr("worker-06") is not None
    assert [(c.name, c.action) for c in cycle.changes.changes if c.name == "worker-06"] == [
        ("worker-06", Action.BLOCKED)]


def test_a_hand_edit_of_a_spec_is_reverted(env: ReconcileEnv) -> None:
    env.apply()
    live = env.cr("worker-03")
    assert live is not None
    interfaces = [{**i, "mtu": 1400} if i["name"] == "tenant0" else i for i in live["spec"]["interfaces"]]
    # what `kubectl edit` sends: a merge patch under its own field manager
    client.CustomObjectsApi(env.sandbox.api_client()).patch_namespaced_custom_object(
        "multinic.io", "v1alpha1", NAMESPACE, "multinicnodeconfigs", "worker-03",
        {"spec": {"interfaces": interfaces, "onRemove": "orphan"}}, field_manager="kubectl-edit")
    assert env.cr("worker-03")["spec"]["interfaces"][1]["mtu"] == 1400  # type: ignore[index]
    env.sandbox.request_log.clear()

    plan = env.plan()
    [change] = plan.changes.by_action(Action.UPDATE)
    assert change.name == "worker-03"
    assert change.reason == "drift: the live spec was edited outside Git; reverting"
    assert change.drifted  # what the loop counts in multinic_live_edits_reverted_total
    assert {(f.path, f.before, f.after) for f in change.fields} == {
        ("spec.interfaces[tenant0].mtu", 1400, 1500), ("spec.onRemove", "orphan", "cleanup")}
    cycle = env.apply()

    assert not cycle.failed
    assert env.cr("worker-03")["spec"] == desired_spec(env, "worker-03")  # type: ignore[index]
    assert set(cr_writes(env)) == {("patch", "multinicnodeconfigs", "worker-03")}
    env.sandbox.request_log.clear()
    assert not env.apply().changes.has_changes
    assert cr_writes(env) == []


def test_a_forced_server_side_apply_by_another_manager_is_reverted(env: ReconcileEnv) -> None:
    env.apply()
    live = env.cr("worker-01")
    assert live is not None
    interfaces = [{**i, "mtu": 1300} if i["name"] == "backup0" else i for i in live["spec"]["interfaces"]]
    env.sandbox.apply({"apiVersion": API_VERSION, "kind": NODE_KIND,
                       "metadata": {"name": "worker-01", "namespace": NAMESPACE},
                       "spec": {"interfaces": interfaces}}, manager="hand", force=True)
    assert env.cr("worker-01")["spec"]["interfaces"][2]["mtu"] == 1300  # type: ignore[index]

    cycle = env.apply()

    assert not cycle.failed
    assert env.cr("worker-01")["spec"] == desired_spec(env, "worker-01")  # type: ignore[index]
    env.sandbox.request_log.clear()
    assert not env.apply().changes.has_changes
    assert cr_writes(env) == []


def test_an_object_without_our_ownership_marks_is_never_touched(env: ReconcileEnv) -> None:
    foreign = {"apiVersion": API_VERSION, "kind": NODE_KIND,
               "metadata": {"name": "handmade", "namespace": NAMESPACE},
               "spec": yaml.safe_load((EXAMPLE_REPO / "nodes" / "worker-01.yaml").read_text())["spec"]}
    env.sandbox.seed(foreign)
    env.apply()
    env.sandbox.request_log.clear()

    cycle = env.apply()

    assert "handmade" not in {c.name for c in cycle.changes.changes}
    assert env.cr("handmade") is not None
    assert all(w[2] != "handmade" for w in env.writes())


@pytest.mark.parametrize("status", [409, 503, 500, 429])
def test_transient_errors_injected_mid_apply_still_converge(env: ReconcileEnv, status: int) -> None:
    # the third and fourth CR writes fail once each (mid-apply), then the server recovers
    env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", name="worker-01", status=status, times=2)
    env.sandbox.faults.inject(verb="patch", resource="proxmoxclusters", name="pve-prod", status=status, times=1)

    cycle = env.apply()

    assert not cycle.failed
    assert sorted(env.crs()) == NODES and sorted(env.crs(CLUSTER_KIND)) == CLUSTERS
    assert env.crs()["worker-01"]["spec"] == desired_spec(env, "worker-01")
    answered = [r.status for r in env.sandbox.request_log.filter(verb="patch", name="worker-01", subresource="")]
    assert answered == [status, status, 201]
    env.sandbox.request_log.clear()
    assert not env.apply().changes.has_changes
    assert cr_writes(env) == []


def test_a_server_that_keeps_failing_for_one_object_fails_only_that_object_and_the_next_cycle_heals(
        env: ReconcileEnv) -> None:
    env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", name="worker-04", status=503, times=None)

    cycle = env.apply()

    assert [a.change.name for a in cycle.failed] == ["worker-04"]
    assert "503" in (cycle.failed[0].error or "")
    assert sorted(env.crs()) == [n for n in NODES if n != "worker-04"]
    assert "worker-04" not in cycle.rollout.nodes  # type: ignore[union-attr]

    env.sandbox.faults.clear()
    cycle = env.apply()
    assert not cycle.failed
    assert sorted(env.crs()) == NODES


def test_a_conflict_on_an_update_mid_apply_still_converges(env: ReconcileEnv) -> None:
    env.apply()
    for name in ("worker-01", "worker-02", "worker-03"):
        edit_node(env, name, lambda d: d["spec"]["interfaces"][0].update(mtu=7000))
    env.commit("mtu 7000")
    env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", name="worker-02", status=409, times=3)

    cycle = env.apply()

    assert not cycle.failed
    for name in ("worker-01", "worker-02", "worker-03"):
        assert env.cr(name)["spec"] == desired_spec(env, name)  # type: ignore[index]
