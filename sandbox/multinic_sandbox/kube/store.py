"""In-memory object storage with a global resourceVersion counter and a watch event history.

Stored objects are never mutated after they are stored: writers build a new dict and hand it
over. That lets lists and watches serialise shared objects without copying them first, and
each object's JSON encoding is computed once, at write time.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Stored:
    """An object as stored, with its encoding. Treat ``obj`` as read-only."""

    obj: dict[str, Any]
    raw: bytes

    def copy(self) -> dict[str, Any]:
        """A private deep copy (decoding the cached JSON beats copy.deepcopy)."""
        return json.loads(self.raw)

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    bucket: str
    namespace: str
    stored: Stored
    previous: Stored | None


class Expired(Exception):
    """The requested resourceVersion is older than the retained event history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    """All objects, bucketed by resource key (``plural.group``), keyed by (namespace, name)."""

    def __init__(self, history: int = 100_000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._buckets: dict[str, dict[ObjectKey, Stored]] = {}
        self._sorted: dict[str, list[ObjectKey]] = {}
        self._rv = 1
        self._events: list[WatchEvent] = []
        self._first_event_rv = 2  # rv of self._events[0]; every write adds exactly one event
        self._history = history
        self.closed = False
        self.listeners: list[Callable[[WatchEvent], None]] = []

    # -- reads ---------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, bucket: str, namespace: str, name: str) -> Stored | None:
        return self._buckets.get(bucket, {}).get((namespace, name))

    def keys(self, bucket: str) -> list[ObjectKey]:
        """Keys in etcd order (namespace, then name); cached until the bucket changes."""
        with self.lock:
            keys = self._sorted.get(bucket)
            if keys is None:
                keys = sorted(self._buckets.get(bucket, {}))
                self._sorted[bucket] = keys
            return keys

    def scan(
        self, bucket: str, namespace: str | None = None, after: ObjectKey | None = None
    ) -> Iterator[Stored]:
        """Objects in key order, optionally within a namespace and strictly after a key."""
        with self.lock:
            keys = self.keys(bucket)
            objects = dict(self._buckets.get(bucket, {}))
        start = 0
        if after is not None:
            start = bisect.bisect_right(keys, after)
        elif namespace is not None:
            start = bisect.bisect_left(keys, (namespace, ""))
        for key in keys[start:]:
            if namespace is not None and key[0] != namespace:
                if key[0] > namespace:
                    return
                continue
            stored = objects.get(key)
            if stored is not None:
                yield stored

    def all_buckets(self) -> list[str]:
        with self.lock:
            return list(self._buckets)

    # -- writes --------------------------------------------------------------------------------
    def put(self, bucket: str, obj: dict[str, Any]) -> Stored:
        """Store ``obj`` (ownership passes to the store), stamping a new resourceVersion."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self.lock:
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            stored = Stored(obj, encode(obj))
            objects = self._buckets.setdefault(bucket, {})
            previous = objects.get(key)
            if previous is None:
                self._sorted.pop(bucket, None)
            objects[key] = stored
            self._record("ADDED" if previous is None else "MODIFIED", bucket, key, stored, previous)
            return stored

    def remove(self, bucket: str, namespace: str, name: str) -> Stored | None:
        """Delete an object; the DELETED event carries its last state at a new resourceVersion."""
        key = (namespace, name)
        with self.lock:
            previous = self._buckets.get(bucket, {}).pop(key, None)
            if previous is None:
                return None
            self._sorted.pop(bucket, None)
            self._rv += 1
            last = previous.copy()
            last["metadata"]["resourceVersion"] = str(self._rv)
            stored = Stored(last, encode(last))
            self._record("DELETED", bucket, key, stored, previous)
            return stored

    def drop_bucket(self, bucket: str) -> None:
        with self.lock:
            self._buckets.pop(bucket, None)
            self._sorted.pop(bucket, None)

    def _record(
        self, kind: str, bucket: str, key: ObjectKey, stored: Stored, previous: Stored | None
    ) -> None:
        event = WatchEvent(self._rv, kind, bucket, key[0], stored, previous)
        self._events.append(event)
        if len(self._events) > self._history:
            self.compact(self._history // 2)
        self.changed.notify_all()
        for listener in self.listeners:
            listener(event)

    def compact(self, keep: int = 0) -> None:
        """Forget all but the last ``keep`` watch events (older watches then get 410 Gone)."""
        with self.lock:
            drop = max(0, len(self._events) - keep)
            del self._events[:drop]
            self._first_event_rv = self._rv + 1 - len(self._events)

    # -- watch ---------------------------------------------------------------------------------
    def events_after(self, rv: int) -> list[WatchEvent]:
        """Events with a resourceVersion above ``rv``; raises Expired when history is gone."""
        with self.lock:
            if rv + 1 < self._first_event_rv:
                raise Expired(rv, self._first_event_rv - 1)
            start = max(0, rv + 1 - self._first_event_rv)
            return self._events[start:]

    def wait(self, rv: int, timeout: float) -> bool:
        """Block until something newer than ``rv`` is stored, the store closes, or timeout."""
        with self.lock:
            if self._rv > rv or self.closed:
                return True
            self.changed.wait(timeout)
            return self._rv > rv

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()
