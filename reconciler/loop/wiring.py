"""Builds the loop's parts from flags: the source, the per-cycle report hooks, the read API."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.loop.metrics import Metrics
from reconciler.loop.runner import CycleHook
from reconciler.pipeline import Connect, Cycle
from reconciler.source.opening import Source, is_remote, open_source

log = logging.getLogger(__name__)


def build_source(args: argparse.Namespace) -> Source:
    from reconciler.options import source_spec

    return open_source(source_spec(args), Path(args.cache_dir) / "source")


class StatusReporter:
    """After each cycle: render ``status/`` from the live custom resources and the repo-level state
    (attempted and applied revision, validation, rollout) and commit it back (only when a report
    changed). Needs a Git remote; a local directory is never written.

    Cadence: while a rollout is in flight at most one status commit per ``status.minInterval``
    (default 60 s); once it ends (or when nothing is rolling out) at once. A Failed node during a
    rollout therefore reaches Git by the next tick at the latest. An invalid ``reconciler.yaml``
    is reported too (with default settings): it is exactly what the status must show.

    Quiet means cheap: when no custom resource changed (same resourceVersions) and the repo-level
    state is the one last written, nothing is rendered and Git is not asked, except once every
    ``resync`` seconds, which also restores a ``status/`` that someone edited or reset on the
    remote. When something changed, only the reports whose content changed are rendered
    (``RenderMemo``).
    """

    def __init__(self, args: argparse.Namespace, source: Source, metrics: Metrics,
                 clock: Any = time.monotonic, *, resync: float = 600.0) -> None:
        from reconciler.report.gitstatus import RenderMemo

        self.args, self.source, self.metrics = args, source, metrics
        self.writer: Any = None
        self.clock = clock
        self.applied_revision: str | None = None
        self._seeded = False
        self._last_write: float | None = None  # clock() of the last status commit
        self.resync = resync
        self.memo = RenderMemo()
        self._written: tuple[Any, float] | None = None  # (inputs of the last good write, when)
        self.skipped = 0  # cycles that had nothing to write and asked Git nothing

    def __call__(self, cycle: Cycle, connect: Connect) -> None:
        from reconciler.report import gitstatus, repostate

        desired = cycle.validation.desired
        settings = desired.settings.spec
        if not settings.status.enabled and not desired.settings_blocked:
            return
        if not self._seeded:  # a restarted reconciler remembers what the last README said was applied
            self._seeded = True
            read = getattr(self.source, "fetched_file", None)  # the checkout has no status/
            self.applied_revision = repostate.applied_from_readme(read("status/README.md") if read else None)
        failed = sum(1 for a in cycle.applied if not a.ok)
        repo = repostate.repo_state(cycle.checkout.revision, cycle.validation, cycle.rollout, failed_writes=failed,
                                    previous_applied=self.applied_revision)
        self.applied_revision = repo.applied_revision
        in_flight = bool(cycle.rollout and cycle.rollout.in_flight)
        now = self.clock()
        if in_flight and self._last_write is not None and now - self._last_write < settings.status.min_interval_seconds:
            return  # the next tick (or the rollout's end) writes it
        kube = connect(settings.namespace)
        node_objects, cluster_objects = kube.list_owned(KIND_NODE), kube.list_owned(KIND_CLUSTER)
        inputs = (cycle.checkout.revision, settings.status.branch, repo, _versions(node_objects),
                  _versions(cluster_objects))
        if (self._written is not None and self._written[0] == inputs
                and time.monotonic() - self._written[1] < self.resync):
            self.skipped += 1
            return
        nodes = [gitstatus.NodeReport.from_resource(o["metadata"]["name"], o.get("spec"), o.get("status"))
                 for o in node_objects]
        clusters = [gitstatus.ClusterReport.from_resource(o["metadata"]["name"], o.get("spec"), o.get("status"))
                    for o in cluster_objects]
        files = gitstatus.render(nodes, clusters, revision=cycle.checkout.revision, memo=self.memo, repo=repo)
        # Fenced: the leadership is checked right before the push; and the status names the
        # configuration it describes, so it is not pushed over a newer config commit.
        # Only when the source follows a branch unverified: a pinned tag or commit is meant to lag
        # the branch, and under signature checks the head may be a commit the source refused.
        fingerprint = getattr(self.source, "config_fingerprint", None)
        follows = getattr(self.source, "branch", None) and not getattr(self.source, "tag", None) \
            and not getattr(self.source, "commit", None) and getattr(self.source, "verify", "none") == "none"
        describes = fingerprint(cycle.checkout.revision) if fingerprint and follows and cycle.checkout.revision \
            else None
        result = self._writer(settings.status.branch).write(files, gitstatus.summary(nodes, clusters),
                                                            fence=kube.write_guard, describes=describes)
        if result.superseded:
            self._written = None  # the next cycle reads the newer commit and writes its status
            return
        if result.error:
            self._written = None
            self.metrics.errors.labels("git").inc()
            log.warning("status write-back: %s", result.error)
            return
        self._written = (inputs, time.monotonic())
        if result.pushed:
            self.metrics.status_commits.inc()
            log.info("status committed and pushed (%s, %d attempt(s))", (result.commit or "")[:12], result.attempts)
        if result.committed:
            self._last_write = now

    def _writer(self, configured_branch: str | None) -> Any:
        if self.writer is None:
            from reconciler.report.writeback import StatusWriter
            from reconciler.source.gitcmd import GitAuth

            args = self.args
            self.writer = StatusWriter(
                str(args.repo), branch=getattr(self.source, "branch", None) or args.branch or "main",
                status_branch=args.status_branch or configured_branch,
                author_name=args.status_author_name, author_email=args.status_author_email,
                work_dir=Path(args.cache_dir) / "writeback", auth=GitAuth.from_env())
        return self.writer


def _versions(objects: list[dict[str, Any]]) -> frozenset[tuple[str, str]]:
    """Which objects, at which resourceVersion: equal sets, equal reports."""
    return frozenset((str(o["metadata"].get("name")), str(o["metadata"].get("resourceVersion"))) for o in objects)


def after_cycle_hooks(args: argparse.Namespace, source: Source, metrics: Metrics) -> list[CycleHook]:
    hooks: list[CycleHook] = []
    if is_remote(str(args.repo)) and not args.no_status:
        hooks.append(StatusReporter(args, source, metrics))
    return hooks


def read_api(connect: Connect, namespace: str) -> Any:
    """``GET /api/v1/...`` handler bound to a read-only adapter in ``namespace``."""
    from reconciler.apply.proxmox import api

    kube = connect(namespace)

    def handle(method: str, path: str) -> tuple[int, dict[str, Any]]:
        return api.handle(method, path, kube)

    return handle
