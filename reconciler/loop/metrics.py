"""Prometheus metrics of the loop, in a registry of its own (tests may run several loops)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.status.states import CLUSTER_PHASES, NODE_PHASES

CYCLE_RESULTS = ("ok", "error", "no-source", "not-leader")
OWNED_KINDS = (KIND_NODE, KIND_CLUSTER)
_ALL_PHASES = [(KIND_NODE, p) for p in NODE_PHASES] + [(KIND_CLUSTER, p) for p in CLUSTER_PHASES]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycle_seconds = Histogram("multinic_reconcile_cycle_duration_seconds",
                                       "Duration of one reconcile cycle.", registry=r,
                                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.cycles = Counter("multinic_reconcile_cycles_total", "Reconcile cycles by result.", ["result"],
                              registry=r)
        self.revision = Gauge("multinic_last_applied_revision_info", "The config revision last applied (value 1).",
                              ["revision"], registry=r)
        self.objects = Gauge("multinic_objects", "Live objects by kind and phase.", ["kind", "phase"], registry=r)
        self.errors = Counter("multinic_errors_total", "Errors talking to other systems.", ["system"], registry=r)
        self.jobs_in_flight = Gauge("multinic_node_jobs_in_flight", "Node Jobs running.", registry=r)
        self.validation_errors = Gauge("multinic_validation_errors", "Errors in the config repo at the last cycle.",
                                       registry=r)
        self.leader = Gauge("multinic_leader", "1 when this replica holds the leader Lease.", registry=r)
        self.status_commits = Counter("multinic_status_commits_total", "Status commits pushed to Git.", registry=r)
        self.live_edits_reverted = Counter(
            "multinic_live_edits_reverted_total",
            "Updates that overwrote a spec edited outside Git (kubectl edit, another controller) with Git's.",
            ["kind"], registry=r)
        self.webhooks = Counter("multinic_webhooks_total", "Webhook requests by result.", ["result"], registry=r)
        self.vm_nic_checks = Gauge("multinic_vm_nic_checks",
                                   "Nodes by VM NIC check result (match, mismatch, unknown) and nicCheck mode; "
                                   "held = mismatch or unknown under enforce.", ["result", "mode"], registry=r)
        self.vm_read_age = Gauge("multinic_proxmox_vm_read_age_seconds",
                                 "Age of the oldest cached VM config read, per Proxmox cluster.", ["cluster"],
                                 registry=r)
        self._revision: str | None = None
        for result in CYCLE_RESULTS:  # every series exists from the start: rate() alerts see a 0, not nothing
            self.cycles.labels(result)
        for kind in OWNED_KINDS:
            self.live_edits_reverted.labels(kind)

    def set_revision(self, revision: str | None) -> None:
        if revision == self._revision:
            return
        if self._revision is not None:
            self.revision.remove(self._revision)
        if revision is not None:
            self.revision.labels(revision).set(1)
        self._revision = revision

    def set_objects(self, counts: dict[tuple[str, str], int]) -> None:
        """Every phase of the state table is a series, 0 when no object is in it: a ``sum(...) > 0``
        alert then compares a 0, and a phase misspelt in an alert matches nothing the code emits."""
        self.objects.clear()
        for (kind, phase), value in {**dict.fromkeys(_ALL_PHASES, 0), **counts}.items():
            self.objects.labels(kind, phase).set(value)

    def set_nic_checks(self, checks: Iterable[Any], ages: dict[str, float]) -> None:
        """``checks``: the cycle's ``NodeCheck`` values; ``ages``: cluster -> oldest read age."""
        counts: dict[tuple[str, str], int] = {}
        for check in checks:
            result = "match" if check.ok else ("mismatch" if check.checked else "unknown")
            key = (result, "enforce" if check.enforce else "warn")
            counts[key] = counts.get(key, 0) + 1
        self.vm_nic_checks.clear()
        for (result, mode), value in counts.items():
            self.vm_nic_checks.labels(result, mode).set(value)
        self.vm_read_age.clear()
        for cluster, age in ages.items():
            self.vm_read_age.labels(cluster).set(age)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
