"""The loop: while leader, poll the source and run one pipeline cycle every interval, at once on a
webhook, and every few seconds while a rollout is in flight.

Reads come from watch-fed caches (``reconciler.kube.cache``), so a quiet cycle asks the API server
nothing. A watch event that needs work triggers a cycle at once (debounced): an owned custom
resource whose spec drifted from Git or that was deleted, a node Job that finished, a Kubernetes
Node that appeared or went away.

Leadership is renewed by a background thread, so a long cycle never lets the Lease lapse; the loop
checks it before every cycle and a standby never polls, plans or writes. SIGTERM (``stop``) lets
the current cycle finish, then the Lease is released so a standby takes over at once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler import pipeline
from reconciler.kube.client import NotLeader
from reconciler.kube.jobs import JobSettings
from reconciler.loop import logs
from reconciler.loop.leader import LeaderElector
from reconciler.loop.metrics import Metrics
from reconciler.loop.server import State
from reconciler.source.local import Checkout
from reconciler.source.opening import Source

if TYPE_CHECKING:
    from reconciler.apply.rollout import RolloutReport

log = logging.getLogger(__name__)


@dataclass
class LoopSettings:
    interval: float = 30.0
    requeue: float = 2.0  # while a rollout is in flight
    identity: str = "reconciler"
    lease_namespace: str = "multinic-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    job_settings: JobSettings = field(default_factory=JobSettings)
    max_cycles: int | None = None  # stop after this many cycles (tests, demo)
    nic_check_interval: float = 300.0  # a VM's NICs are read again after this many seconds
    watch: bool = True  # watch-fed caches (False: every cycle LISTs)
    resync: float = 600.0  # full re-list of every cache
    debounce: float = 0.2  # watch events within this window start one cycle
    writers: int = 8  # CR applies / status patches in flight at once


CycleHook = Callable[[pipeline.Cycle, Any], None]  # (cycle, kube connect) -> side effects (reports)


class Runner:
    def __init__(self, source: Source, connect: pipeline.Connect, settings: LoopSettings, *,
                 metrics: Metrics | None = None, state: State | None = None,
                 after_cycle: list[CycleHook] | None = None) -> None:
        self.source = source
        self.connect = connect
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.state = state or State()
        self.after_cycle = after_cycle or []
        self.stop = threading.Event()
        # VM NIC reads run on their own workers; an answer triggers the next cycle at once.
        from reconciler.apply.proxmox.vmreads import VmReads

        self.vm_reads = VmReads(max_age=settings.nic_check_interval, on_update=self.state.trigger.set)
        self._validated: tuple[tuple[str, str], Any] | None = None
        from reconciler.report.status import StatusMemo

        self.status_memo = StatusMemo()  # last cycle's statuses: unchanged nodes are not recomputed
        from reconciler.config.validation import FileMemo

        self.file_memo = FileMemo()  # each file's own check: a new commit re-checks only changed files
        self._caches: dict[str, Any] = {}  # namespace -> KubeCache
        self._watching = False  # caches serve reads only while run() runs (a bare cycle() LISTs)
        self._desired: dict[tuple[str, str], Any] = {}  # (kind, name) -> spec Git wants (last cycle)
        self._kick_lock = threading.Lock()
        self._kick_timer: threading.Timer | None = None
        self.watch_triggers = 0
        self.cycles = 0
        # The last cycle's rollout step (what tests and benches wait on). Not the whole Cycle:
        # its ChangeSet holds a manifest per node, and nothing reads it once the cycle is over.
        self.last_rollout: RolloutReport | None = None
        self.elector = LeaderElector(self._identified(connect(settings.lease_namespace)), settings.identity,
                                     lease_duration=settings.lease_duration,
                                     renew_deadline=settings.renew_deadline, retry_period=settings.retry_period)
        # Every Kube adapter the cycle builds refuses writes unless our leadership is fresh.
        self.connect = self._guarded(connect)

    def _guarded(self, connect: pipeline.Connect) -> pipeline.Connect:
        def guarded(namespace: str) -> Any:
            kube = self._identified(connect(namespace))
            kube.write_guard = self.elector.guard
            if self._watching:
                kube.cache = self._cache(namespace, connect)
            return kube
        return guarded

    def _cache(self, namespace: str, connect: pipeline.Connect) -> Any:
        """The namespace's watch-fed cache, started (and synced, up to 30 s) on first use."""
        from reconciler.kube.cache import KubeCache

        cache = self._caches.get(namespace)
        if cache is None:
            cache = KubeCache(self._identified(connect(namespace)), resync=self.settings.resync,
                              on_event=self._on_watch_event).start()
            self._caches[namespace] = cache
            if not cache.wait_synced(30.0):
                log.warning("watch caches of %s not synced after 30s: reading by LIST meanwhile", namespace)
        return cache

    def close(self) -> None:
        """Stops the watches (the next cycle would start them again)."""
        self._watching = False
        caches, self._caches = self._caches, {}
        for cache in caches.values():
            cache.stop()
        with self._kick_lock:
            if self._kick_timer is not None:
                self._kick_timer.cancel()

    # -- watch triggers ---------------------------------------------------------------------------

    def _on_watch_event(self, kind: str, event: str, obj: dict[str, Any] | None,
                        before: dict[str, Any] | None) -> None:
        if self._needs_cycle(kind, event, obj, before):
            self._kick()

    def _needs_cycle(self, kind: str, event: str, obj: dict[str, Any] | None, before: dict[str, Any] | None) -> bool:
        from reconciler.kube import jobs, objects

        if kind == "Job":
            return obj is not None and jobs.job_state(obj) != "running" and (
                before is None or jobs.job_state(before) == "running")
        if kind == "Node":
            return event in ("ADDED", "DELETED")
        current = obj if obj is not None else before
        name = ((current or {}).get("metadata") or {}).get("name", "")
        wanted = self._desired.get((kind, name))
        if event == "DELETED":
            return wanted is not None  # an object Git wants was deleted (or stopped being ours)
        if wanted is None:
            return event == "ADDED" and obj is not None and objects.is_owned(obj)
        return bool((obj or {}).get("spec") != wanted)  # drift (or a change we have not planned yet)

    def _kick(self) -> None:
        """Start a cycle ``debounce`` seconds from the first of a burst of events."""
        with self._kick_lock:
            if self._kick_timer is not None and self._kick_timer.is_alive():
                return
            self.watch_triggers += 1
            self._kick_timer = threading.Timer(self.settings.debounce, self.state.trigger.set)
            self._kick_timer.daemon = True
            self._kick_timer.start()

    def _identified(self, kube: Any) -> Any:
        """Requests carry this replica's identity in their User-Agent (audit logs tell replicas apart)."""
        from reconciler import __version__

        kube.api.user_agent = f"multinic-reconciler/{__version__} ({self.settings.identity})"
        return kube

    def _renew(self) -> None:
        while not self.stop.is_set():
            leading = self.elector.try_acquire_or_renew()
            self.metrics.leader.set(1 if leading else 0)
            if not leading and not self.state.ready:
                self.state.ready = True  # a standby that reached the Lease is healthy and ready to take over
            self.stop.wait(self.settings.retry_period)

    def shutdown(self) -> None:
        self.stop.set()
        self.state.trigger.set()

    def run(self) -> int:
        _warm_up()
        self._watching = self.settings.watch
        renewer = threading.Thread(target=self._renew, name="lease", daemon=True)
        renewer.start()
        self.state.alive = renewer.is_alive
        next_due = 0.0
        heap = _Heap(self.settings.resync)
        try:
            while not self.stop.is_set():
                if not self.elector.is_leader:
                    self.state.trigger.wait(self.settings.retry_period)
                    continue
                if self.state.trigger.is_set() or time.monotonic() >= next_due:
                    self.state.trigger.clear()
                    heap.begin()
                    try:
                        in_flight = self.cycle()
                    finally:
                        heap.settle()
                    self.cycles += 1
                    if self.settings.max_cycles is not None and self.cycles >= self.settings.max_cycles:
                        break
                    next_due = time.monotonic() + (self.settings.requeue if in_flight else self.settings.interval)
                self.state.trigger.wait(max(0.0, min(self.settings.retry_period, next_due - time.monotonic())))
        finally:
            heap.release()
            self.stop.set()
            self.vm_reads.close()
            renewer.join(timeout=self.settings.retry_period + 5)
            self.close()
            self.elector.release()
        return 0

    def cycle(self) -> bool:
        """One reconcile; returns whether a rollout is still in flight (requeue soon)."""
        started = time.monotonic()
        try:
            poll = self.source.poll()
            if poll.error:
                self.metrics.errors.labels("git").inc()
                log.warning("source: %s (keeping the last good revision)", poll.error)
            if poll.checkout is None:
                self.metrics.cycles.labels("no-source").inc()
                return False
            token = logs.revision.set(poll.checkout.label)
            try:
                cycle = pipeline.apply_once(poll.checkout, self.connect, job_settings=self.settings.job_settings,
                                            vm_reads=self.vm_reads,
                                            validation=self._validation(poll.checkout),
                                            writers=self.settings.writers, status_memo=self.status_memo)
                self.last_rollout = cycle.rollout
                self._desired = {(c.kind, c.name): c.desired.get("spec") for c in cycle.changes.changes
                                 if c.desired is not None}
                for hook in self.after_cycle:
                    hook(cycle, self.connect)
                self._record(cycle)
            finally:
                logs.revision.reset(token)
            self.state.ready = True
            self.metrics.cycles.labels("ok").inc()
            return bool(cycle.rollout and cycle.rollout.in_flight)
        except NotLeader as exc:
            log.warning("cycle stopped: %s", exc)
            self.metrics.cycles.labels("not-leader").inc()
            return False
        except Exception:
            log.exception("reconcile cycle failed")
            self.metrics.errors.labels("kubernetes").inc()
            self.metrics.cycles.labels("error").inc()
            return False
        finally:
            self.metrics.cycle_seconds.observe(time.monotonic() - started)

    def _validation(self, checkout: Checkout) -> Any:
        """The validation of ``checkout``, reused while the same clean commit is polled: a Git
        checkout of a commit never changes, and re-reading thousands of files every interval only
        burns CPU. A work tree without a commit, or with local edits, is validated every time.
        Either way only the files whose content changed are parsed and checked again (``FileMemo``;
        an exported commit names each file's blob, so unchanged files are not even read)."""
        from reconciler.config.validation import validate_repo

        if checkout.revision is None or checkout.dirty:
            return validate_repo(checkout.path, memo=self.file_memo)
        key = (str(checkout.path), checkout.revision)
        if self._validated is None or self._validated[0] != key:
            self._validated = (key, validate_repo(checkout.path, memo=self.file_memo, blobs=checkout.blobs))
        return self._validated[1]

    def _record(self, cycle: pipeline.Cycle) -> None:
        for done in cycle.applied:
            extra = {"object": f"{done.change.kind}/{done.change.name}"}
            if done.ok:
                log.info("%s (%s)", done.change.action.value, done.change.reason, extra=extra)
                if done.change.drifted:
                    self.metrics.live_edits_reverted.labels(done.change.kind).inc()
            else:
                log.error("%s failed: %s", done.change.action.value, done.error, extra=extra)
                self.metrics.errors.labels("kubernetes").inc()
        rollout = cycle.rollout
        if rollout is not None:
            for name in rollout.started:
                log.info("node Job started", extra={"object": f"Job/{name}"})
            self.metrics.jobs_in_flight.set(rollout.running)
            self.metrics.set_objects(object_counts(cycle))
        self.metrics.set_nic_checks(cycle.nic_checks.values(), self.vm_reads.oldest_age())
        self.metrics.validation_errors.set(len(cycle.validation.errors))
        if cycle.validation.ok or cycle.changes.has_changes:
            self.metrics.set_revision(cycle.checkout.revision)


def object_counts(cycle: pipeline.Cycle) -> dict[tuple[str, str], int]:
    """``multinic_objects{kind,phase}``: the phases the cycle's statuses show (the state table's,
    what ``kubectl get`` shows and the documented alerts match), never a rollout-internal name."""
    return cycle.reported.phase_counts() if cycle.reported is not None else {}


class _Heap:
    """Keeps the cyclic garbage collector off the long-lived heap (the caches, the validated
    config: a million acyclic objects at 5,000 nodes). Without this, every other quiet cycle paid a
    full collection that scanned all of them and freed nothing (about 40% of its CPU).

    Automatic collection is paused during a cycle (it allocates hundreds of thousands of objects
    and keeps most of them until the next one, like ``validate_repo``); after it, one young-
    generation collection frees the cycle's own cyclic garbage and the survivors are frozen
    (``gc.freeze``): collections then scan only what was allocated since. Objects freed by
    reference counting are freed as usual, frozen or not; cyclic garbage among frozen objects waits
    until the heap is unfrozen and fully collected, once every ``every`` seconds (the caches'
    resync period) and when the loop ends."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._collected = time.monotonic()
        self._enabled = gc.isenabled()

    def begin(self) -> None:
        self._enabled = gc.isenabled()
        gc.disable()

    def settle(self) -> None:
        if time.monotonic() - self._collected >= self.every:
            gc.unfreeze()
            gc.collect()
            self._collected = time.monotonic()
        else:
            gc.collect(0)
        gc.freeze()
        if self._enabled:
            gc.enable()

    def release(self) -> None:
        gc.unfreeze()
        gc.collect()


def _warm_up() -> None:
    """Import what a cycle needs before the Lease renewer starts, so a first cycle's imports never
    hold the import lock while the renewer needs it."""
    import reconciler.apply.crs
    import reconciler.apply.rollout
    import reconciler.report.events
    import reconciler.report.status  # noqa: F401
