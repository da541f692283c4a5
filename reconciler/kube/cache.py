"""Watch-fed caches of the collections a cycle reads (owned CRs, node Jobs, Kubernetes Nodes).

Like a client-go informer: each collection is listed once, then watched from the list's
resourceVersion with bookmarks, so a quiet cycle reads memory and asks the API server nothing.

- A watch the server ends (its timeout) or that breaks (connection closed) is resumed from the
  last resourceVersion seen, events or bookmarks: nothing in between is missed.
- ``410 Gone`` (the version left the server's history) means re-list; the fresh list is compared
  with the cache and every difference is reported as an event, so a change made while the watch
  was down still reaches the loop.
- Every ``resync`` seconds (default 10 min) the collection is re-listed anyway.
- Our own writes are recorded as they return (read-your-writes): the next cycle sees them even if
  their watch events have not arrived yet; an event never replaces a newer object.
- A cache that is not synced, or whose watch has been down longer than ``stale_after``, is not
  served (``items`` returns None) and the caller LISTs: a status is never computed from a cache
  that may have stopped following the server.
- Objects are kept without what nobody here reads (like client-go's informer transforms):
  ``managedFields`` of a custom resource keep only our own field manager's Apply entries, cut to
  the label and annotation keys the planner reads (they were more than half of a cached custom
  resource's memory); a Job keeps its metadata and status, not its pod template; a Node only its
  name, uid, resourceVersion and ``status.nodeInfo.osImage`` (a real Node carries kilobytes of
  images, conditions and annotations: 10,000 of them were 100 MB and more).
- Every key and short string value of a cached object is interned: ten thousand objects share
  one copy of "apiVersion", "MultiNicNodeConfig" or "True" instead of one per watch event; the
  small parts that are equal across objects (our managedFields entry, the ownership labels) are
  kept once, and a custom resource's spec that equals the one Git wants is that very dict
  (``objects.shared_spec``). Cached objects are therefore shared: read them, never change them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from reconciler.kube.client import COLLECTIONS, KubeError
from reconciler.kube.objects import FIELD_MANAGER, shared_spec

if TYPE_CHECKING:
    from reconciler.kube.client import Kube

log = logging.getLogger(__name__)

# (kind, event type, new object or None when deleted, previous object or None)
EventHandler = Callable[[str, str, dict[str, Any] | None, dict[str, Any] | None], None]
RESYNC = 600.0


def _rv(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


_OWNED_KINDS = ("MultiNicNodeConfig", "ProxmoxCluster")


def slim(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the cache keeps it: only the parts read here (see the module's docstring), keys
    and short strings interned, parts equal across objects shared. A new object: ``obj`` itself
    is not changed (a caller may hold it)."""
    if kind == "Node":
        obj = _node_as_read(obj)
    elif kind == "Job":
        obj = {key: value for key, value in obj.items() if key != "spec"}
    kept: dict[str, Any] = _shared(_without_foreign_fields(kind, obj))
    if kind in _OWNED_KINDS:
        metadata = kept.get("metadata")
        if isinstance(metadata, dict):
            for key in ("managedFields", "labels"):
                if key in metadata:
                    metadata[key] = _canonical(metadata[key])
        if isinstance(kept.get("spec"), dict):
            kept["spec"] = shared_spec(kept["spec"])
    return kept


def _node_as_read(obj: dict[str, Any]) -> dict[str, Any]:
    """A Node cut to what the rollout reads: that it exists, and its OS image (renderer choice)."""
    metadata = obj.get("metadata") or {}
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    return {"apiVersion": obj.get("apiVersion", "v1"), "kind": "Node",
            "metadata": {key: metadata[key] for key in ("name", "uid", "resourceVersion") if key in metadata},
            "status": {"nodeInfo": {key: info[key] for key in ("osImage",) if key in info}}}


# One copy of each small part many cached objects hold equal, keyed by its canonical JSON. Only
# parts that repeat by design go here (not per-object ones), so the table stays small; beyond
# its cap (never reached in practice) parts are simply kept per object.
_CANONICAL: dict[str, Any] = {}
_MAX_CANONICAL = 4096


def _canonical(value: Any) -> Any:
    key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    kept = _CANONICAL.get(key)
    if kept is not None:
        return kept
    if len(_CANONICAL) < _MAX_CANONICAL:
        _CANONICAL[key] = value
    return value


_SHORT = 64  # strings up to this length are interned: names, kinds, reasons, timestamps


def _shared(value: Any) -> Any:
    """A copy of decoded JSON whose keys and short strings are interned (shared by every object)."""
    if isinstance(value, dict):
        return {sys.intern(k) if type(k) is str else k: _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if type(value) is str and len(value) <= _SHORT:
        return sys.intern(value)
    return value


def _without_foreign_fields(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    kept = []
    if kind in _OWNED_KINDS:
        for entry in metadata.get("managedFields") or ():
            ours = isinstance(entry, dict) and entry.get("manager") == FIELD_MANAGER
            if not ours or entry.get("operation") != "Apply":
                continue
            fields = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
            cut = {key: fields[key] for key in ("f:labels", "f:annotations") if key in fields}
            kept.append({"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:metadata": cut}})
    slimmed = {key: value for key, value in metadata.items() if key != "managedFields"}
    if kept:
        slimmed["managedFields"] = kept
    return {**obj, "metadata": slimmed}


def _newer(candidate: str, current: str) -> bool:
    """Whether ``candidate`` is a later resourceVersion than ``current`` (opaque strings in the
    API contract, integers in practice; non-integers compare as merely different)."""
    if candidate.isdigit() and current.isdigit():
        return int(candidate) > int(current)
    return candidate != current


class Informer:
    """One collection: a thread that lists, watches and re-lists; a name -> object map."""

    def __init__(self, kube: Kube, kind: str, *, resync: float = RESYNC, stale_after: float = 30.0,
                 on_event: EventHandler | None = None, watch_timeout: tuple[int, int] = (300, 600)) -> None:
        self.kube, self.kind = kube, kind
        self.resync, self.stale_after = resync, stale_after
        self.on_event = on_event
        self.watch_timeout = watch_timeout
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, str] = {}  # name -> resourceVersion when we deleted it (late events ignored)
        self._version = ""
        self._synced = threading.Event()
        self._watching = False
        self._last_ok = 0.0
        self._listed_at = 0.0
        self._stop = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self.lists = 0  # full LISTs made (initial, 410, resync)
        self.watches = 0  # watch requests opened

    # -- reads ------------------------------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        return self._synced.is_set() and (self._watching or time.monotonic() - self._last_ok < self.stale_after)

    @property
    def watching(self) -> bool:
        return self._watching

    def items(self) -> list[dict[str, Any]] | None:
        if not self.fresh:
            return None
        with self._lock:
            return list(self._objects.values())

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    # -- our own writes ---------------------------------------------------------------------------

    def record(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Keeps what a write returned; returns it as the cache holds it (slimmed, shared: the
        writer keeps this copy instead of a second, full one)."""
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return obj
        obj = slim(self.kind, obj)
        obj.setdefault("kind", self.kind)
        with self._lock:
            current = self._objects.get(name)
            if current is None or _newer(_rv(obj), _rv(current)):
                self._objects[name] = obj
                self._gone.pop(name, None)
        return obj

    def forget(self, name: str) -> None:
        with self._lock:
            gone = self._objects.pop(name, None)
            if gone is not None:
                self._gone[name] = _rv(gone)

    # -- the thread -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                response.shutdown()  # unblocks the read in the watch thread
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        relist, failures = True, 0
        while not self._stop.is_set():
            try:
                if relist or time.monotonic() - self._listed_at >= self.resync:
                    self._relist()
                    relist = False
                self._watch()
                failures = 0
            except KubeError as exc:
                self._watching = False
                if self._stop.is_set():
                    return
                if exc.status == 410:
                    log.info("watch of %s expired (410 Gone): re-listing", self.kind)
                    relist = True
                    continue
                failures += 1
                delay = min(30.0, 0.2 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2)
                log.warning("watch of %s: %s; resuming in %.1fs", self.kind, exc, delay)
                self._stop.wait(delay)
            except Exception:  # a bug must not silently freeze the cache: it goes stale, the loop LISTs
                self._watching = False
                log.exception("watch of %s failed", self.kind)
                self._stop.wait(5.0)

    def _relist(self) -> None:
        items, version = self.kube.list_collection(self.kind)
        self.lists += 1
        fresh = {o["metadata"]["name"]: slim(self.kind, o) for o in items}
        with self._lock:
            old, self._objects = self._objects, fresh
            self._gone.clear()
            self._version = version
        now = time.monotonic()
        self._listed_at = self._last_ok = now
        if self._synced.is_set():  # a re-list: report what changed while we were not watching
            for name, obj in fresh.items():
                before = old.get(name)
                if before is None or _rv(before) != _rv(obj):
                    self._emit("ADDED" if before is None else "MODIFIED", obj, before)
            for name in old.keys() - fresh.keys():
                self._emit("DELETED", None, old[name])
        self._synced.set()

    def _watch(self) -> None:
        remaining = max(1.0, self.resync - (time.monotonic() - self._listed_at))
        timeout = int(min(remaining, random.uniform(*self.watch_timeout))) or 1

        def opened(response: Any) -> None:
            self._response = response
            self._watching = True
            self._last_ok = time.monotonic()

        self.watches += 1
        try:
            for event in self.kube.watch_collection(self.kind, self._version, timeout, opened=opened):
                self._last_ok = time.monotonic()
                self._apply(event.get("type", ""), event.get("object") or {})
                if self._stop.is_set():
                    return
        finally:
            self._watching = False
            self._response = None

    def _stale(self, name: str, version: str) -> bool:
        """Whether an event at ``version`` is older than what we hold (call with the lock held)."""
        gone = self._gone.get(name)
        if gone is not None and not _newer(version, gone):
            return True  # an event from before our own delete
        before = self._objects.get(name)
        return before is not None and not _newer(version, _rv(before))  # our own write, or newer

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        version = _rv(obj)
        if version:
            self._version = version
        if kind == "BOOKMARK":
            return
        name = (obj.get("metadata") or {}).get("name")
        if not name or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        with self._lock:
            if self._stale(name, version):
                return  # the event of our own write, already recorded: not even slimmed
        obj = slim(self.kind, obj)
        obj.setdefault("kind", self.kind)
        with self._lock:
            before = self._objects.get(name)
            if self._stale(name, version):
                return  # a write recorded meanwhile
            if kind == "DELETED":
                self._objects.pop(name, None)
                self._gone.pop(name, None)
            else:
                self._objects[name] = obj
        self._emit(kind, None if kind == "DELETED" else obj, before)

    def _emit(self, kind: str, obj: dict[str, Any] | None, before: dict[str, Any] | None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(self.kind, kind, obj, before)
        except Exception:  # a handler bug must not stop the watch
            log.exception("watch event handler for %s failed", self.kind)


class KubeCache:
    """The informers of one namespace; ``Kube.cache`` reads through it and records writes into it."""

    def __init__(self, kube: Kube, kinds: Iterable[str] = tuple(COLLECTIONS), *, resync: float = RESYNC,
                 on_event: EventHandler | None = None, stale_after: float = 30.0) -> None:
        self.informers = {kind: Informer(kube, kind, resync=resync, on_event=on_event, stale_after=stale_after)
                          for kind in kinds}
        self.namespace = kube.namespace

    def start(self) -> KubeCache:
        for informer in self.informers.values():
            informer.start()
        return self

    def stop(self) -> None:
        for informer in self.informers.values():
            informer.stop()

    def wait_synced(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(i.wait_synced(max(0.0, deadline - time.monotonic())) for i in self.informers.values())

    def items(self, kind: str) -> list[dict[str, Any]] | None:
        informer = self.informers.get(kind)
        return informer.items() if informer is not None else None

    def record(self, kind: str, obj: Any) -> Any:
        """``obj`` (what a write returned) recorded; the cache's copy of it when it keeps ``kind``."""
        informer = self.informers.get(kind)
        if informer is not None and isinstance(obj, dict):
            return informer.record(obj)
        return obj

    def forget(self, kind: str, name: str) -> None:
        informer = self.informers.get(kind)
        if informer is not None:
            informer.forget(name)
