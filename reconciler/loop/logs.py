"""Structured logs: every line carries the revision being reconciled and, where there is one,
the object (``Kind/name``). ``--log-format json`` prints one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar

revision: ContextVar[str | None] = ContextVar("revision", default=None)


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.revision = revision.get() or "-"
        if not hasattr(record, "object"):
            record.object = "-"
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "revision": getattr(record, "revision", "-"),
            "object": getattr(record, "object", "-"),
        }
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context())
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s revision=%(revision)s object=%(object)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "kubernetes", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
