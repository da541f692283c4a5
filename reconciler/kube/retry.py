"""Capped exponential backoff with full jitter for transient API failures.

Transient: 409 Conflict (someone wrote in between), 429 (honouring ``Retry-After``), 5xx, and
connection-level errors (reset, refused, timeout). Anything else is returned to the caller at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

TRANSIENT_STATUS = {409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6
    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap)
        return random.uniform(0, min(self.cap, self.base * (2**attempt)))


def call(operation: Callable[[], T], *, backoff: Backoff, is_transient: Callable[[BaseException], bool],
         retry_after: Callable[[BaseException], float | None],
         on_retry: Callable[[BaseException, int], None] | None = None) -> T:
    for attempt in range(backoff.attempts):
        try:
            return operation()
        except Exception as exc:
            if attempt == backoff.attempts - 1 or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            time.sleep(backoff.delay(attempt, retry_after(exc)))
    raise AssertionError("unreachable")
