"""Concurrent apply: a bounded pool of writers for CR applies and status patches, the order of
kinds kept (clusters before nodes, deletes last), the same retry and conflict rules. Proven from
the kube sandbox: a delay fault holds each node write on the server, so the requests in flight
can be counted there."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from support.reconcile import (
    CLUSTER_KIND,
    NODE_KIND,
    ReconcileEnv,
    cluster_doc,
    generate_repo,
    git_repo,
    start_env,
    write_doc,
)

from reconciler import pipeline


class InFlight:
    """Samples how many node CR writes the server holds at once (arrived minus answered)."""

    def __init__(self, env: ReconcileEnv, rule: object, subresource: str = "") -> None:
        self.env, self.rule, self.subresource = env, rule, subresource
        self.most = 0
        self.clusters_done_before_first_node: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        log = self.env.sandbox.request_log
        while not self._stop.is_set():
            arrived = self.rule.hits  # type: ignore[attr-defined]
            answered = len(log.filter(verb="patch", resource="multinicnodeconfigs", subresource=self.subresource))
            self.most = max(self.most, arrived - answered)
            if arrived and self.clusters_done_before_first_node is None:
                self.clusters_done_before_first_node = log.count("patch", "proxmoxclusters", subresource="") >= 1
            self._stop.wait(0.005)

    def __enter__(self) -> InFlight:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    repo = git_repo(generate_repo(tmp_path / "src", 24), tmp_path / "repo")
    with start_env(repo, jobs="manual") as env:
        yield env


@pytest.mark.parametrize("writers", [8, 3, 1])
def test_node_writes_run_in_a_bounded_pool_after_the_clusters(env: ReconcileEnv, writers: int) -> None:
    rule = env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", subresource="", delay=0.15,
                                     times=None)
    with InFlight(env, rule) as seen:
        cycle = pipeline.apply_once(env.checkout(), env.connect, writers=writers, proxmox=False)
    assert not cycle.failed
    assert len(env.crs()) == 24 and len(env.crs(CLUSTER_KIND)) == 1
    assert seen.clusters_done_before_first_node is True
    assert seen.most <= writers
    assert seen.most >= min(writers, 2)  # the pool really writes concurrently


def test_status_patches_run_in_the_pool_too(env: ReconcileEnv) -> None:
    env.apply()  # CRs exist; the first Jobs are running
    env.sandbox.jobs.step()
    env.sandbox.wait_until(lambda: not env.active_jobs(), timeout=30)
    env.sandbox.request_log.clear()
    rule = env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", subresource="status",
                                     delay=0.15, times=None)
    with InFlight(env, rule, subresource="status") as seen:
        cycle = pipeline.apply_once(env.checkout(), env.connect, writers=4, proxmox=False)
    assert cycle.status_writes >= 4
    assert 2 <= seen.most <= 4


def test_transient_errors_and_conflicts_under_concurrency_still_converge(env: ReconcileEnv) -> None:
    for name, status in (("node-0003", 503), ("node-0007", 409), ("node-0011", 429)):
        env.sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", name=name, status=status, times=2)
    cycle = pipeline.apply_once(env.checkout(), env.connect, writers=8, proxmox=False)
    assert not cycle.failed
    assert len(env.crs()) == 24
    env.sandbox.request_log.clear()
    again = pipeline.apply_once(env.checkout(), env.connect, writers=8, proxmox=False)
    assert not again.changes.has_changes


def test_deletes_come_last(tmp_path: Path) -> None:
    src = generate_repo(tmp_path / "src", 6)
    spare = cluster_doc("pve-spare")
    write_doc(src / "clusters" / "pve-spare.yaml", spare)
    repo = git_repo(src, tmp_path / "repo")
    with start_env(repo, jobs="manual") as env:
        pipeline.apply_once(env.checkout(), env.connect, proxmox=False)
        (repo / "clusters" / "pve-spare.yaml").unlink()
        for index in range(6):
            path = repo / "nodes" / f"node-{index:04d}.yaml"
            doc = yaml.safe_load(path.read_text())
            doc["spec"]["interfaces"][0]["mtu"] = 9000
            path.write_text(yaml.safe_dump(doc))
        env.commit("drop pve-spare, MTU 9000")
        env.sandbox.request_log.clear()

        cycle = pipeline.apply_once(env.checkout(), env.connect, writers=8, proxmox=False)

        assert not cycle.failed
        writes = [(r.verb, r.resource) for r in env.sandbox.request_log.writes()
                  if r.resource in ("multinicnodeconfigs", "proxmoxclusters") and r.subresource == ""]
        assert writes[-1] == ("delete", "proxmoxclusters")
        assert writes[:-1] == [("patch", "multinicnodeconfigs")] * 6
        assert sorted(env.crs(CLUSTER_KIND)) == ["pve-gen"]
        assert all(cr["spec"]["interfaces"][0]["mtu"] == 9000 for cr in env.crs(NODE_KIND).values())
