"""The sandbox's notion of time: wall clock plus an offset tests can advance."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """``now()`` is real time shifted by ``advance()``; deadlines and TTLs are measured on it."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def stamp(self) -> str:
        """RFC 3339 with second precision, like metav1.Time."""
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def human_duration(seconds: float) -> str:
    """Go's ``duration.HumanDuration``: what ``kubectl get`` shows in AGE columns."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years = hours // 24 // 365
        return f"{years}y{hours // 24 % 365}d"
    return f"{hours // 24 // 365}y"
