"""What the sandbox was asked, for assertions in tests. Never holds a secret."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # relative to /api2/json, without the query string
    query: str
    status: int  # 0 when the connection was dropped
    auth: str  # "token" | "ticket" | "none"
    principal: str | None  # userid or tokenid, never a secret
    fault: str | None = None  # the fault kind applied, if any


class RequestLog:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.records if method is None or r.method == method]
