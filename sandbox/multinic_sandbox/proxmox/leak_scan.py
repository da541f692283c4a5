"""Finds credentials where they must not be: exception messages, reprs, log records.

Tests register every exception they catch and every secret they used (also wrong ones); at the
end of the test ``SecretGuard.assert_clean`` scans those plus the captured log records.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MIN_SECRET_LENGTH = 6  # shorter values would match by accident


def find_leaks(secrets: Iterable[str], texts: Iterable[tuple[str, str]]) -> list[str]:
    """``(label, text)`` pairs -> one line per secret found (the secret itself is not shown)."""
    wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH})
    found = []
    for label, text in texts:
        for secret in wanted:
            if secret in text:
                found.append(f"{label} contains a secret ({secret[:3]}…, {len(secret)} chars)")
    return found


def exception_texts(exc: BaseException) -> list[tuple[str, str]]:
    """Everything a log or a status message could show of an exception and its chain."""
    out: list[tuple[str, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        out.append((f"str({name})", str(current)))
        out.append((f"repr({name})", repr(current)))
        out.append((f"{name}.args", repr(current.args)))
        out.append((f"{name}.__dict__", repr(vars(current))))
        current = current.__cause__ or current.__context__
    out.append(("traceback", "".join(traceback.format_exception(exc))))
    return out


def record_texts(records: Iterable[logging.LogRecord]) -> list[tuple[str, str]]:
    out = []
    for record in records:
        label = f"log record {record.name}:{record.levelname}"
        out.append((label, record.getMessage()))
        if record.exc_info and record.exc_info[1] is not None:
            out.extend(exception_texts(record.exc_info[1]))
    return out


@dataclass
class SecretGuard:
    """Collects secrets and things to scan; ``assert_clean`` fails the test on any leak."""

    secret_sources: list[Callable[[], Iterable[str]]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)
    checked_exceptions: int = 0

    def add_secret(self, *values: str | None) -> None:
        self.secrets.update(v for v in values if v)

    def check_exception(self, exc: BaseException) -> BaseException:
        self.texts.extend(exception_texts(exc))
        self.checked_exceptions += 1
        return exc

    def check_text(self, label: str, text: str) -> None:
        self.texts.append((label, text))

    def all_secrets(self) -> set[str]:
        values = set(self.secrets)
        for source in self.secret_sources:
            values.update(source())
        return values

    def leaks(self, records: Iterable[logging.LogRecord] = ()) -> list[str]:
        return find_leaks(self.all_secrets(), [*self.texts, *record_texts(records)])

    def assert_clean(self, records: Iterable[logging.LogRecord] = ()) -> None:
        problems = self.leaks(records)
        if problems:
            raise AssertionError("secrets leaked:\n  " + "\n  ".join(problems))
