"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

The holder renews ``renewTime`` every ``retry_period``; a candidate takes the Lease over only when
``renewTime + leaseDurationSeconds`` has passed. Writes are optimistic (resourceVersion), so two
candidates racing for an expired Lease cannot both win. A leader that cannot renew within
``renew_deadline`` stops acting before its Lease can expire elsewhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.kube.client import Kube, KubeError

log = logging.getLogger(__name__)
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(text: str | None) -> datetime | None:
    """RFC 3339 (``...Z`` or ``...+00:00``, with or without microseconds)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class LeaderElector:
    kube: Kube
    identity: str
    name: str = "multinic-reconciler"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    clock: Callable[[], datetime] = _now

    def __post_init__(self) -> None:
        self._leading_since: float | None = None
        self._last_renew: float = 0.0

    @property
    def is_leader(self) -> bool:
        if self._leading_since is None:
            return False
        if time.monotonic() - self._last_renew > self.renew_deadline:
            log.warning("lost leadership: lease %s not renewed within %.0fs", self.name, self.renew_deadline)
            self._leading_since = None
            return False
        return True

    def guard(self) -> None:
        """For ``Kube.write_guard``: refuse any write once leadership is not fresh."""
        from reconciler.kube.client import NotLeader

        if not self.is_leader:
            raise NotLeader(f"not the leader (lease {self.name}); write refused")

    def try_acquire_or_renew(self) -> bool:
        """One attempt; returns whether we hold the Lease afterwards."""
        now = self.clock()
        stamp = now.strftime(MICRO)
        try:
            lease = self.kube.get_lease(self.name)
            if lease is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.kube.namespace},
                        "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_duration),
                                 "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}}
                return self._won(self.kube.write_lease(body), fresh=True)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            if holder != self.identity:
                renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
                duration = spec.get("leaseDurationSeconds") or self.lease_duration
                # A held Lease whose time we cannot read is treated as live: never take over blindly.
                if holder and (renewed is None or (now - renewed).total_seconds() < duration):
                    self._leading_since = None
                    return False
                spec = {**spec, "holderIdentity": self.identity, "acquireTime": stamp,
                        "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1}
            spec = {**spec, "renewTime": stamp, "leaseDurationSeconds": int(self.lease_duration)}
            lease = {**lease, "spec": spec}
            return self._won(self.kube.write_lease(lease), fresh=holder != self.identity)
        except KubeError as exc:
            log.warning("leader election: %s", exc)
            return self.is_leader

    def _won(self, written: dict[str, object] | None, *, fresh: bool) -> bool:
        if written is None:
            self._leading_since = None
            return False
        now = time.monotonic()
        if fresh or self._leading_since is None:
            log.info("became leader (lease %s, identity %s)", self.name, self.identity)
            self._leading_since = now
        self._last_renew = now
        return True

    def release(self) -> None:
        """On a clean shutdown, hand the Lease over at once instead of letting it expire (whenever
        we are still its holder, even if a late renewal made us stop acting)."""
        try:
            lease = self.kube.get_lease(self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                self.kube.write_lease(lease)
        except KubeError:
            pass
        self._leading_since = None
