"""A record of every request the sandbox answered, for assertions like "zero writes"."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class RequestRecord:
    """One request. ``verb`` is the Kubernetes verb (get, list, watch, create, update, patch,
    delete, deletecollection); non-resource requests (discovery, openapi) have ``resource == ""``.
    ``status`` is 0 when the connection was dropped by a fault."""

    method: str
    path: str
    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str
    name: str
    status: int
    user_agent: str
    field_manager: str
    content_type: str
    dry_run: bool
    duration: float

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS and bool(self.resource)


class RequestLog:
    """Thread-safe list of ``RequestRecord``; filter with keyword arguments on any field."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self.records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def filter(self, **criteria: Any) -> list[RequestRecord]:
        """Records whose fields equal all ``criteria`` (e.g. ``verb="patch", resource="jobs"``)."""
        return [r for r in self.records
                if all(getattr(r, key) == value for key, value in criteria.items())]

    def count(self, verb: str | None = None, resource: str | None = None,
              **criteria: Any) -> int:
        if verb is not None:
            criteria["verb"] = verb
        if resource is not None:
            criteria["resource"] = resource
        return len(self.filter(**criteria))

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests per (verb, resource); non-resource requests count under resource ""."""
        return Counter((r.verb, r.resource) for r in self.records)

    def writes(self, include_dry_run: bool = False) -> list[RequestRecord]:
        """Requests that could have changed something (dry runs excluded unless asked)."""
        return [r for r in self.records if r.is_write and (include_dry_run or not r.dry_run)]
