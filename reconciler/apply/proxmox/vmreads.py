"""VM config reads off the reconcile path: a worker per cluster, results cached with their age.

The pipeline never waits for Proxmox. Each cycle it asks for the VMs it needs and takes what is
known::

    reads = VmReads(max_age=300)                      # lives as long as the loop
    reads.request(cluster, credentials, [201, 202])   # returns at once; stale or missing ones are read
    entry = reads.get("pve-prod", 201)                # VmRead (config, absent or error) or None
    reads.wait(timeout=40)                            # one-shot commands only (plan, apply --once)

Per cluster one worker thread reads ``/cluster/resources?type=vm`` once per batch, then the VM
configs concurrently (``concurrency`` at a time), each request bounded by the cluster's
timeouts. A hung VM occupies one slot of its own cluster until its read timeout; other VMs of
that cluster use the other slots, other clusters have their own workers. The client (and so a
PVE ticket) is kept per cluster and reused until the credentials or the spec change.
``on_update`` is called after every batch (the loop uses it to run a cycle at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from reconciler.apply.proxmox.client import ProxmoxClient, VmConfig, VmLocation
from reconciler.apply.proxmox.credentials import ClientFactory, ClusterCredentials, client_for
from reconciler.apply.proxmox.errors import ProxmoxError
from reconciler.config.models import ProxmoxCluster

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
LOCATIONS_TTL = 5.0  # seconds one /cluster/resources answer serves the reads of a wave
UPDATE_EVERY = 1.0  # at most one on_update per second per cluster while reads are in flight


@dataclass(frozen=True)
class VmRead:
    """What one read of a VM found: its config, that it does not exist, or why it failed."""

    cluster: str
    vmid: int
    read_at: float  # time.time() when the answer came
    location: VmLocation | None = None
    config: VmConfig | None = None
    error: ProxmoxError | None = None

    @property
    def exists(self) -> bool:
        return self.error is None and self.config is not None

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.read_at)


@dataclass(frozen=True)
class VmWrite:
    """One NIC update of a VM (``manageNics``): what was written, and the error if PVE refused it."""

    cluster: str
    vmid: int
    at: float
    summary: str
    error: ProxmoxError | None = None
    node: str | None = None  # the PVE node the VM was on
    undo: tuple[tuple[str, str], ...] = ()  # netN values before this write (to restore them)
    undo_delete: tuple[str, ...] = ()  # slots this write attached (removed on a restore)
    restore: bool = False  # this write put back what a failed change replaced

    @property
    def message(self) -> str:
        if self.error is None:
            return f"{'restored' if self.restore else 'updated'} the VM's NICs: {self.summary}"
        return f"the VM NIC update ({self.summary}) failed: {self.error.message}"


@dataclass
class _Cluster:
    cluster: ProxmoxCluster
    credentials: ClusterCredentials
    pool: ThreadPoolExecutor
    client: ProxmoxClient | None = None
    reading: dict[int, float] = field(default_factory=dict)  # vmid -> time.time() the read started
    locations: dict[int, VmLocation] | None = None
    locations_at: float = 0.0
    locations_lock: threading.Lock = field(default_factory=threading.Lock)
    last_update: float = 0.0


class VmReads:
    """The cache and its workers; thread-safe. ``close()`` stops the workers (reads in flight end
    at their timeout, their answers are dropped)."""

    def __init__(
        self,
        *,
        max_age: float = 300.0,
        concurrency: int = DEFAULT_CONCURRENCY,
        client_factory: ClientFactory = ProxmoxClient,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self.max_age = max_age
        self.concurrency = max(1, concurrency)
        self.client_factory = client_factory
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.on_update = on_update
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._entries: dict[tuple[str, int], VmRead] = {}
        self._writes: dict[tuple[str, int], VmWrite] = {}
        self._failed: dict[tuple[str, int], str] = {}  # (cluster, vmid) -> the change a failed Job undid
        self._clusters: dict[str, _Cluster] = {}
        self._closed = False

    # --- what the pipeline calls ---
    def due(self, cluster: str, vmids: Iterable[int], *, refresh_after: float | None = None) -> list[int]:
        """The vmids whose entry is missing or older than ``max_age`` (or ``refresh_after``), and
        not being read now."""
        limit = self.max_age if refresh_after is None else min(self.max_age, refresh_after)
        now = time.time()
        with self._lock:
            state = self._clusters.get(cluster)
            busy = set(state.reading) if state else set()
            out = []
            for vmid in sorted(set(vmids)):
                entry = self._entries.get((cluster, vmid))
                if vmid not in busy and (entry is None or entry.age(now) >= limit):
                    out.append(vmid)
            return out

    def request(self, cluster: ProxmoxCluster, credentials: ClusterCredentials, vmids: Iterable[int]) -> None:
        """Queue reads of ``vmids`` on ``cluster``'s workers; returns at once."""
        with self._lock:
            if self._closed:
                return
            state = self._state(cluster, credentials)
            started = time.time()
            for vmid in sorted(set(vmids) - set(state.reading)):
                state.reading[vmid] = started
                state.pool.submit(self._read, state, vmid)

    def write(self, cluster: ProxmoxCluster, credentials: ClusterCredentials, vmid: int, *, node: str,
              values: Mapping[str, str], digest: str | None, summary: str, delete: Iterable[str] = (),
              undo: Iterable[tuple[str, str]] = (), undo_delete: Iterable[str] = (), restore: bool = False) -> bool:
        """Queue ``PUT .../config`` of ``values`` on the cluster's workers, then a fresh read of the
        VM; returns at once (False: a read or write of this VM is in flight, nothing queued).
        ``undo``/``undo_delete``: how to put the VM back (``restore_last``)."""
        planned = VmWrite(cluster.name, vmid, 0.0, summary, node=node, undo=tuple(undo),
                          undo_delete=tuple(undo_delete), restore=restore)
        with self._lock:
            if self._closed:
                return False
            state = self._state(cluster, credentials)
            if vmid in state.reading:
                return False
            state.reading[vmid] = time.time()
            state.pool.submit(self._write, state, vmid, dict(values), digest, tuple(delete), planned)
            return True

    def restore_last(self, cluster: ProxmoxCluster, credentials: ClusterCredentials, vmid: int, why: str) -> bool:
        """Put back what the last (successful, not itself a restore) write of this VM replaced,
        and remember its change as failed (``failed_change``) so that it is not made again."""
        with self._lock:
            last = self._writes.get((cluster.name, vmid))
            if last is None or last.error is not None or last.restore or not (last.undo or last.undo_delete):
                return False
            self._failed[(cluster.name, vmid)] = last.summary
        assert last.node is not None
        return self.write(cluster, credentials, vmid, node=last.node, values=dict(last.undo), digest=None,
                          summary=f"{last.summary} undone ({why})", delete=last.undo_delete, restore=True)

    def failed_change(self, cluster: str, vmid: int) -> str | None:
        """The change (summary) that was restored because the node's side failed with it."""
        with self._lock:
            return self._failed.get((cluster, vmid))

    def client(self, cluster: ProxmoxCluster, credentials: ClusterCredentials) -> ProxmoxClient:
        """The cluster's long-lived client (one PVE ticket, renewed by proxmoxer before it
        expires), for others that talk to the same cluster (verification): not to be closed by them."""
        with self._lock:
            state = self._state(cluster, credentials)
        return self._client(state)

    def last_write(self, cluster: str, vmid: int) -> VmWrite | None:
        with self._lock:
            return self._writes.get((cluster, vmid))

    def get(self, cluster: str, vmid: int) -> VmRead | None:
        with self._lock:
            return self._entries.get((cluster, vmid))

    def reading_since(self, cluster: str, vmid: int) -> float | None:
        """When the read in flight for this VM started (time.time()), None if none is."""
        with self._lock:
            state = self._clusters.get(cluster)
            return None if state is None else state.reading.get(vmid)

    def retain(self, clusters: Iterable[str]) -> None:
        """Forget every cluster not in ``clusters`` (its file was removed or it is not verified)."""
        keep = set(clusters)
        with self._lock:
            for name in [n for n in self._clusters if n not in keep]:
                self._retire(self._clusters.pop(name))
            for key in [k for k in self._entries if k[0] not in keep]:
                del self._entries[key]
            self._idle.notify_all()

    def wait(self, timeout: float) -> bool:
        """Block until no read is in flight (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while any(s.reading for s in self._clusters.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def oldest_age(self) -> dict[str, float]:
        """Per cluster: the age in seconds of its oldest cached read (for a metric)."""
        now = time.time()
        out: dict[str, float] = {}
        with self._lock:
            for (cluster, _), entry in self._entries.items():
                out[cluster] = max(out.get(cluster, 0.0), entry.age(now))
        return out

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for state in self._clusters.values():
                self._retire(state)
            self._clusters.clear()
            self._idle.notify_all()

    def __enter__(self) -> VmReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _state(self, cluster: ProxmoxCluster, credentials: ClusterCredentials) -> _Cluster:
        """The cluster's workers (under the lock), new when its spec or credentials changed."""
        state = self._clusters.get(cluster.name)
        if state is not None and (state.cluster != cluster or state.credentials != credentials):
            self._retire(state)  # new spec or credentials: new client, nothing read before counts
            self._forget_entries(cluster.name)
            state = None
        if state is None:
            limit = cluster.spec.read_concurrency or self.concurrency
            pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"vm-read-{cluster.name}")
            state = _Cluster(cluster, credentials, pool)
            self._clusters[cluster.name] = state
        return state

    # --- the workers ---
    def _write(self, state: _Cluster, vmid: int, values: dict[str, str], digest: str | None,
               delete: tuple[str, ...], planned: VmWrite) -> None:
        name, summary = state.cluster.name, planned.summary
        assert planned.node is not None
        try:
            self._client(state).update_vm_nics(planned.node, vmid, values, digest=digest, delete=delete)
            done = replace(planned, at=time.time())
            log.info("VM %s on %s: NICs %s (%s)", vmid, name, "restored" if planned.restore else "updated", summary)
        except ProxmoxError as exc:
            done = replace(planned, at=time.time(), error=exc)
            log.warning("VM %s on %s: NIC update refused (%s): %s", vmid, name, summary, exc.message)
        except Exception as exc:  # never let a worker die silently
            log.exception("VM NIC update of %s/%s failed", name, vmid)
            done = replace(planned, at=time.time(), error=ProxmoxError(f"VM write failed ({type(exc).__name__})"))
        with self._lock:
            if self._clusters.get(name) is not state:
                return
            self._writes[(name, vmid)] = done
        self._read(state, vmid)  # what the VM has now, written or not


    def _forget_entries(self, cluster: str) -> None:
        for key in [k for k in self._entries if k[0] == cluster]:
            del self._entries[key]

    @staticmethod
    def _retire(state: _Cluster) -> None:
        state.reading.clear()
        state.pool.shutdown(wait=False, cancel_futures=True)
        if state.client is not None:
            state.client.close()
            state.client = None

    def _timeouts(self, cluster: ProxmoxCluster) -> tuple[float, float]:
        spec = cluster.spec
        connect = spec.connect_timeout_seconds if spec.connect_timeout_seconds is not None else self.connect_timeout
        read = spec.read_timeout_seconds if spec.read_timeout_seconds is not None else self.read_timeout
        return connect, read

    def _client(self, state: _Cluster) -> ProxmoxClient:
        with self._lock:
            if state.client is None:
                connect, read = self._timeouts(state.cluster)
                state.client = client_for(
                    state.cluster,
                    state.credentials,
                    client_factory=self.client_factory,
                    connect_timeout=connect,
                    read_timeout=read,
                )
            return state.client

    def _locations(self, state: _Cluster, client: ProxmoxClient, vmid: int) -> dict[int, VmLocation]:
        """One ``/cluster/resources`` LIST shared by the reads of a wave (and re-made when a VM is
        not in a list older than a few seconds: it may just have been created or migrated)."""
        with state.locations_lock:
            fresh = time.time() - state.locations_at < LOCATIONS_TTL
            if state.locations is None or (not fresh and vmid not in state.locations):
                state.locations = client.vm_locations()
                state.locations_at = time.time()
            return state.locations

    def _read(self, state: _Cluster, vmid: int) -> None:
        name = state.cluster.name
        where: VmLocation | None = None
        try:
            client = self._client(state)
            where = self._locations(state, client, vmid).get(vmid)
            if where is None:
                client.check_visible(vmid)  # not listed: absent, or hidden by a missing VM.Audit
                entry = VmRead(name, vmid, time.time())
            else:
                entry = VmRead(name, vmid, time.time(), location=where, config=client.vm_config(where.node, vmid))
        except ProxmoxError as exc:
            entry = VmRead(name, vmid, time.time(), location=where, error=exc)
        except Exception as exc:  # never let a worker die silently
            log.exception("VM read of %s/%s failed", name, vmid)
            entry = VmRead(name, vmid, time.time(), error=ProxmoxError(f"VM read failed ({type(exc).__name__})"))
        notify = False
        with self._lock:
            if self._clusters.get(name) is not state:
                return  # retired meanwhile: the answer belongs to an old spec
            self._entries[(name, vmid)] = entry
            state.reading.pop(vmid, None)
            now = time.monotonic()
            if not state.reading or now - state.last_update >= UPDATE_EVERY:
                state.last_update, notify = now, True
            self._idle.notify_all()
        if notify and self.on_update is not None:
            try:
                self.on_update()
            except Exception:  # a hook must not kill the worker
                log.exception("VM reads: on_update failed")
