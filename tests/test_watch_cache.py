"""Watch-fed caches against the kube sandbox: list once, then watch; a watch the server breaks
(connection dropped, 410 Gone) is recovered with no missed change; the loop reverts drift and
moves a rollout on from watch events alone, and a quiet cycle asks the API server nothing."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.reconcile import (
    API_VERSION,
    NAMESPACE,
    NODE_KIND,
    ReconcileEnv,
    commit,
    generate_repo,
    git_repo,
    start_env,
)

from reconciler.kube.cache import KubeCache
from reconciler.loop.runner import LoopSettings, Runner
from reconciler.plan.planner import LiveObject
from reconciler.source.opening import LocalSource

WATCHED = ("MultiNicNodeConfig", "ProxmoxCluster", "Job", "Node")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, event: str, obj: dict[str, Any] | None, before: dict[str, Any] | None) -> None:
        current = obj if obj is not None else before
        with self.lock:
            self.events.append((kind, event, (current or {})["metadata"]["name"]))

    def seen(self, *event: str) -> bool:
        with self.lock:
            return tuple(event) in self.events


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ReconcileEnv]:
    repo = git_repo(generate_repo(tmp_path / "src", 3), tmp_path / "repo")
    with start_env(repo) as env:
        yield env


@pytest.fixture
def applied(env: ReconcileEnv) -> ReconcileEnv:
    env.apply()
    return env


def _cache(env: ReconcileEnv, recorder: Recorder) -> KubeCache:
    cache = KubeCache(env.kube(), WATCHED, on_event=recorder).start()
    assert cache.wait_synced(10)
    env.sandbox.wait_until(lambda: all(i.watching for i in cache.informers.values()), timeout=10)
    return cache


def _mtu(obj: dict[str, Any] | None) -> int:
    return int((obj or {})["spec"]["interfaces"][0]["mtu"])


def _cached(cache: KubeCache, name: str) -> dict[str, Any] | None:
    return next((o for o in cache.items(NODE_KIND) or [] if o["metadata"]["name"] == name), None)


def _hand_edit(env: ReconcileEnv, name: str, mtu: int) -> None:
    cr = env.cr(name)
    assert cr is not None
    spec = cr["spec"]
    spec["interfaces"][0]["mtu"] = mtu
    env.sandbox.apply({"apiVersion": API_VERSION, "kind": NODE_KIND,
                       "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}, manager="kubectl-edit")


def test_the_cache_holds_what_the_server_holds_and_a_quiet_period_makes_no_requests(applied):
    env, recorder = applied, Recorder()
    cache = _cache(env, recorder)
    try:
        assert sorted(o["metadata"]["name"] for o in cache.items(NODE_KIND) or []) == sorted(env.crs())
        assert {o["metadata"]["name"] for o in cache.items("Node") or []} == {
            n["metadata"]["name"] for n in env.sandbox.list("v1", "Node")}
        env.sandbox.request_log.clear()
        name = sorted(env.crs())[0]
        _hand_edit(env, name, 1400)  # in-process: not an HTTP request
        env.sandbox.wait_until(lambda: _mtu(_cached(cache, name)) == 1400, timeout=10)
        assert recorder.seen(NODE_KIND, "MODIFIED", name)
        assert env.sandbox.request_log.records == []  # the change arrived on the open watch
    finally:
        cache.stop()


def test_the_cache_keeps_only_the_managed_fields_the_planner_reads_and_plans_as_a_list_does(applied):
    env, recorder = applied, Recorder()
    cache = _cache(env, recorder)
    try:
        name = sorted(env.crs())[0]
        _hand_edit(env, name, 1400)  # a second field manager on the object
        env.sandbox.wait_until(lambda: _mtu(_cached(cache, name)) == 1400, timeout=10)
        listed = {o["metadata"]["name"]: o for o in env.kube().list_collection(NODE_KIND)[0]}
        assert any(e["manager"] == "kubectl-edit" for e in listed[name]["metadata"]["managedFields"])
        cached = cache.items(NODE_KIND) or []
        assert sorted(o["metadata"]["name"] for o in cached) == sorted(listed)
        for obj in cached:
            full = listed[obj["metadata"]["name"]]
            assert LiveObject.from_manifest(obj) == LiveObject.from_manifest(full)  # the same plan
            kept = obj["metadata"].get("managedFields") or []
            assert kept and all((e["manager"], e["operation"]) == ("multinic-reconciler", "Apply") for e in kept)
            assert {k: v for k, v in obj["metadata"].items() if k != "managedFields"} == {
                k: v for k, v in full["metadata"].items() if k != "managedFields"}
            assert {k: v for k, v in obj.items() if k != "metadata"} == {
                k: v for k, v in full.items() if k != "metadata"}
        assert all("managedFields" not in n["metadata"] for n in cache.items("Node") or [])
    finally:
        cache.stop()


def test_cached_nodes_and_jobs_answer_what_the_rollout_asks_as_listed_ones_do(applied):
    """A Node is cached as its name and OS image, a Job without its pod template: the rollout's
    reads (which Nodes exist, the OS image that picks the renderer, a Job's state, labels and
    annotations) give what a LIST gives."""
    from reconciler.kube import jobs

    env, recorder = applied, Recorder()
    cache = _cache(env, recorder)
    try:
        kube = env.kube()
        nodes = {o["metadata"]["name"]: o for o in kube.list_collection("Node")[0]}
        cached_nodes = {o["metadata"]["name"]: o for o in cache.items("Node") or []}
        assert sorted(cached_nodes) == sorted(nodes) and nodes
        for name, node in nodes.items():
            assert node["status"]["nodeInfo"]["osImage"]
            assert cached_nodes[name]["status"]["nodeInfo"]["osImage"] == node["status"]["nodeInfo"]["osImage"]
        listed_jobs = {o["metadata"]["name"]: o for o in kube.list_collection("Job")[0]}
        cached_jobs = {o["metadata"]["name"]: o for o in cache.items("Job") or []}
        assert sorted(cached_jobs) == sorted(listed_jobs) and listed_jobs
        for name, job in listed_jobs.items():
            kept = cached_jobs[name]
            assert "spec" not in kept and job["spec"]["template"]
            assert jobs.job_state(kept) == jobs.job_state(job)
            assert kept["status"] == job["status"]
            for key in ("labels", "annotations", "uid", "resourceVersion"):
                assert kept["metadata"].get(key) == job["metadata"].get(key)
    finally:
        cache.stop()


def test_a_dropped_watch_resumes_from_its_resource_version_with_no_missed_change(applied):
    env, recorder = applied, Recorder()
    cache = _cache(env, recorder)
    try:
        informer = cache.informers[NODE_KIND]
        name = sorted(env.crs())[1]
        # The server drops the watch mid-stream and refuses new watches for a while.
        rule = env.sandbox.faults.inject(verb="watch", resource="multinicnodeconfigs", status=503, times=None)
        env.sandbox.break_watches(abrupt=True)
        env.sandbox.wait_until(lambda: not informer.fresh or rule.hits > 0, timeout=10)
        _hand_edit(env, name, 1300)  # changed while the watch is down
        env.sandbox.wait_until(lambda: rule.hits >= 1, timeout=10)
        assert _mtu(_cached(cache, name)) != 1300 or not informer.fresh
        env.sandbox.faults.clear()
        env.sandbox.wait_until(lambda: _mtu(_cached(cache, name)) == 1300, timeout=30)
        assert recorder.seen(NODE_KIND, "MODIFIED", name)
        assert informer.lists == 1  # resumed from the last resourceVersion: no re-list needed
    finally:
        cache.stop()


def test_a_watch_answered_410_gone_relists_and_reports_what_changed_meanwhile(applied):
    env, recorder = applied, Recorder()
    cache = _cache(env, recorder)
    try:
        informer = cache.informers[NODE_KIND]
        edited, removed = sorted(env.crs())[:2]
        rule = env.sandbox.faults.inject(verb="watch", resource="multinicnodeconfigs", drop=True, times=None)
        env.sandbox.break_watches(abrupt=False)  # the stream ends cleanly this time
        env.sandbox.wait_until(lambda: rule.hits >= 1, timeout=10)
        _hand_edit(env, edited, 1280)
        env.sandbox.delete(API_VERSION, NODE_KIND, removed, namespace=NAMESPACE)
        env.sandbox.compact()  # the history since our resourceVersion is gone: a resumed watch gets 410
        env.sandbox.faults.clear()
        env.sandbox.wait_until(lambda: _mtu(_cached(cache, edited)) == 1280 and _cached(cache, removed) is None,
                               timeout=30)
        assert informer.lists == 2  # the 410 forced one re-list
        assert recorder.seen(NODE_KIND, "MODIFIED", edited)
        assert recorder.seen(NODE_KIND, "DELETED", removed)
        assert env.sandbox.request_log.count("watch", "multinicnodeconfigs", status=200) >= 2
    finally:
        cache.stop()


def test_our_own_writes_are_read_back_at_once_and_a_late_event_does_not_undo_them(applied):
    env, recorder = applied, Recorder()
    cache = _cache(env, recorder)
    kube = env.kube()
    kube.cache = cache
    try:
        name = sorted(env.crs())[2]
        written = kube.patch_status(NODE_KIND, name, {"phase": "Pending"})
        assert (_cached(cache, name) or {}).get("status", {}).get("phase") == "Pending"
        # The watch event of that very write arrives later and changes nothing (same version).
        version = written["metadata"]["resourceVersion"]
        env.sandbox.wait_until(lambda: cache.informers[NODE_KIND]._version >= version, timeout=10)
        assert (_cached(cache, name) or {})["metadata"]["resourceVersion"] == version
        kube.delete(NODE_KIND, name, None)
        assert _cached(cache, name) is None
    finally:
        cache.stop()


def test_a_stale_cache_is_not_served_reads_fall_back_to_a_list(applied):
    env, recorder = applied, Recorder()
    cache = KubeCache(env.kube(), WATCHED, on_event=recorder, stale_after=0.0).start()
    try:
        assert cache.wait_synced(10)
        informer = cache.informers[NODE_KIND]
        env.sandbox.faults.inject(verb="watch", resource="multinicnodeconfigs", status=503, times=None)
        env.sandbox.break_watches()
        env.sandbox.wait_until(lambda: not informer.fresh, timeout=10)
        kube = env.kube()
        kube.cache = cache
        env.sandbox.request_log.clear()
        assert len(kube.list_owned(NODE_KIND)) == 3
        assert env.sandbox.request_log.count("list", "multinicnodeconfigs") == 1
    finally:
        env.sandbox.faults.clear()
        cache.stop()


# -- the loop on watches ---------------------------------------------------------------------------


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[ReconcileEnv, Runner]]:
    repo = git_repo(generate_repo(tmp_path / "src", 3), tmp_path / "repo")
    with start_env(repo) as env:
        # Interval and requeue far away: only watch events can start the cycles these tests wait for.
        runner = Runner(LocalSource(str(repo)), env.connect,
                        LoopSettings(interval=600, requeue=600, identity="watch-test", lease_namespace=NAMESPACE,
                                     retry_period=0.5, debounce=0.05))
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            yield env, runner
        finally:
            runner.shutdown()
            thread.join(20)


def _until_idle(env: ReconcileEnv, runner: Runner, quiet: float = 1.0) -> None:
    """Until no cycle has run for ``quiet`` seconds (the last triggered one has finished)."""
    seen = [runner.cycles, time.monotonic()]

    def idle() -> bool:
        if runner.cycles != seen[0]:
            seen[:] = [runner.cycles, time.monotonic()]
        return not runner.state.trigger.is_set() and time.monotonic() - seen[1] >= quiet

    env.sandbox.wait_until(idle, timeout=30)


def _commit(repo: Path, message: str) -> None:
    """The loop's poll of the work tree may hold Git's index lock for a moment: retry."""
    for attempt in range(20):
        try:
            commit(repo, message)
            return
        except subprocess.CalledProcessError:
            if attempt == 19:
                raise
            time.sleep(0.1)


def _all_ready(env: ReconcileEnv) -> bool:
    crs = env.crs()
    return len(crs) == 3 and all((c.get("status") or {}).get("phase") == "Ready" for c in crs.values())


def _reverted(runner: Runner) -> float | None:
    return runner.metrics.registry.get_sample_value("multinic_live_edits_reverted_total",
                                                    {"kind": "MultiNicNodeConfig"})


def test_the_loop_rolls_out_on_job_events_reverts_drift_and_a_quiet_cycle_asks_nothing(loop):
    env, runner = loop
    # maxParallel 3, one cycle starts the Jobs; each finished Job's event starts the cycle that records it.
    env.sandbox.wait_until(lambda: _all_ready(env), timeout=60)
    assert runner.watch_triggers >= 1
    name = sorted(env.crs())[0]
    wanted = _mtu(env.cr(name))
    assert _reverted(runner) == 0.0  # the rollout's own writes are not hand edits
    _hand_edit(env, name, wanted + 77)
    env.sandbox.wait_until(lambda: _mtu(env.cr(name)) == wanted, timeout=20,
                           message="drift was not reverted by a watch-triggered cycle")
    # An operator sees it: multinic_live_edits_reverted_total (counted once the cycle has recorded its writes).
    env.sandbox.wait_until(lambda: _reverted(runner) == 1.0, timeout=10, message="the revert was not counted")

    # A quiet cycle, as the loop runs it: everything comes from the caches.
    _until_idle(env, runner)
    cycles = runner.cycles
    env.sandbox.request_log.clear()
    runner.state.trigger.set()
    env.sandbox.wait_until(lambda: runner.cycles > cycles, timeout=20)
    asked = [(r.verb, r.resource) for r in env.sandbox.request_log.records if r.resource != "leases"]
    assert asked == []


def test_a_commit_changes_the_cr_and_the_next_job_runs_without_polling(loop, tmp_path):
    env, runner = loop
    env.sandbox.wait_until(lambda: _all_ready(env), timeout=60)
    name = sorted(env.crs())[1]
    path = env.repo / "nodes" / f"{name}.yaml"
    text = path.read_text()
    path.write_text(text.replace("mtu: 1500", "mtu: 1600", 1))
    _commit(env.repo, "mtu 1600")
    runner.state.trigger.set()  # what the webhook does
    env.sandbox.wait_until(lambda: _mtu(env.cr(name)) == 1600, timeout=20)
    env.sandbox.wait_until(lambda: _all_ready(env) and (env.cr(name) or {})["status"].get("specHash") is not None
                           and len(env.jobs()) == 4, timeout=60, message="the new spec's Job did not run to Ready")
    assert _reverted(runner) == 0.0  # a change in Git is not a hand edit
