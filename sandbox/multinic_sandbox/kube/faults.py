"""Fault injection: make matching requests fail, stall or lose their connection.

    sandbox.faults.inject(verb="patch", resource="multinicnodeconfigs", status=503, times=2)
    sandbox.faults.inject(verb="list", status=429, retry_after=2)
    sandbox.faults.inject(verb="get", resource="jobs", delay=5.0)          # then answers
    sandbox.faults.inject(verb="create", resource="jobs", drop=True)       # connection reset

Rules are checked in insertion order; ``None`` criteria match anything. Discovery and OpenAPI
requests are only matched by rules that set ``path``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class FaultRule:
    verb: str | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    subresource: str | None = None
    group: str | None = None
    path: str | None = None  # prefix match on the URL path (for non-resource requests)
    status: int | None = None  # answer with this code and a Status body
    message: str = ""
    retry_after: int | None = None  # Retry-After header (defaults to 1 for 429)
    delay: float = 0.0  # sleep before answering (or before the error, if status is set)
    drop: bool = False  # close the connection without an answer
    times: int | None = 1  # how many requests to hit; None = until removed
    hits: int = 0

    def matches(self, verb: str, group: str, resource: str, subresource: str, namespace: str,
                name: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.path is not None:
            if not path.startswith(self.path):
                return False
        elif not resource:
            return False
        checks = ((self.verb, verb), (self.resource, resource), (self.name, name),
                  (self.namespace, namespace), (self.subresource, subresource),
                  (self.group, group))
        return all(want is None or want == got for want, got in checks)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class Faults:
    """The fault rules of one sandbox."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def inject(self, *, verb: str | None = None, resource: str | None = None,
               name: str | None = None, namespace: str | None = None,
               subresource: str | None = None, group: str | None = None,
               path: str | None = None, status: int | None = None, message: str = "",
               retry_after: int | None = None, delay: float = 0.0, drop: bool = False,
               times: int | None = 1) -> FaultRule:
        if status is None and not delay and not drop:
            raise ValueError("a fault needs status=, delay= or drop=True")
        rule = FaultRule(verb, resource, name, namespace, subresource, group, path, status,
                         message, retry_after, delay, drop, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def error(self, verb: str | None, resource: str | None, status: int,
              times: int | None = 1, **criteria: object) -> FaultRule:
        return self.inject(verb=verb, resource=resource, status=status, times=times,
                           **criteria)  # type: ignore[arg-type]

    def throttle(self, verb: str | None = None, resource: str | None = None,
                 retry_after: int = 1, times: int | None = 1) -> FaultRule:
        return self.inject(verb=verb, resource=resource, status=429, retry_after=retry_after,
                           times=times)

    def stall(self, seconds: float, verb: str | None = None, resource: str | None = None,
              times: int | None = 1) -> FaultRule:
        return self.inject(verb=verb, resource=resource, delay=seconds, times=times)

    def drop(self, verb: str | None = None, resource: str | None = None,
             times: int | None = 1) -> FaultRule:
        return self.inject(verb=verb, resource=resource, drop=True, times=times)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, verb: str, group: str, resource: str, subresource: str, namespace: str,
             name: str, path: str) -> FaultRule | None:
        """The first matching rule, counted as hit (exhausted rules are forgotten)."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(verb, group, resource, subresource, namespace, name, path):
                    rule.hits += 1
                    if rule.exhausted:
                        self.rules.remove(rule)
                    return rule
        return None
