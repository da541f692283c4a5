"""Scripted misbehaviour: slow answers, dropped connections, 5xx with a reason phrase.

Rules match on method (or ``*``) and a path prefix relative to ``/api2/json`` and fire at most
``times`` times (``None``: forever). The first matching rule with hits left wins::

    sandbox.faults.error("/nodes/pve2", 596, "Connection timed out", times=1)
    sandbox.faults.slow("/cluster/status", delay=2.0)
    sandbox.faults.drop("/version", method="GET", times=2)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class FaultRule:
    kind: str  # "slow" | "drop" | "error"
    path_prefix: str
    method: str = "*"
    times: int | None = None  # remaining hits; None: unlimited
    delay: float = 0.0  # "slow": seconds before the real answer
    status: int = 500  # "error"
    reason: str = "Internal Server Error"  # "error": the HTTP reason phrase
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method.upper()):
            return False
        prefix = self.path_prefix.rstrip("/") or "/"
        return prefix == "/" or path == prefix or path.startswith(prefix + "/")


class Faults:
    """Thread-safe rule list; the server asks ``take(method, path)`` once per request."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        if rule.kind not in ("slow", "drop", "error"):
            raise ValueError(f"unknown fault kind {rule.kind!r}")
        with self._lock:
            self._rules.append(rule)
        return rule

    def slow(self, path: str, delay: float, *, method: str = "*", times: int | None = None) -> FaultRule:
        return self.add(FaultRule("slow", path, method.upper(), times, delay=delay))

    def drop(self, path: str, *, method: str = "*", times: int | None = None) -> FaultRule:
        return self.add(FaultRule("drop", path, method.upper(), times))

    def error(
        self,
        path: str,
        status: int,
        reason: str,
        *,
        method: str = "*",
        times: int | None = None,
        delay: float = 0.0,
    ) -> FaultRule:
        return self.add(FaultRule("error", path, method.upper(), times, delay=delay, status=status, reason=reason))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.times is not None and rule.times <= 0:
                    continue
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                    rule.hits += 1
                    return rule
        return None
