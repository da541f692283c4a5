"""A problem found in the config repo, located by file, line, column and field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]
Pointer = tuple[str | int, ...]


def field_path(pointer: Pointer) -> str:
    """``("spec", "interfaces", 0, "mtu")`` -> ``spec.interfaces[0].mtu``."""
    out = ""
    for part in pointer:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class Diagnostic:
    path: str  # repo-relative, POSIX separators
    message: str  # one line a person understands
    rule: str  # stable identifier, e.g. "schema", "yaml", "duplicate-mac"
    field: str = ""  # JSON path of the offending field; "" for the whole file
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    severity: Severity = "error"
    related: tuple[str, ...] = ()  # other repo-relative files the message names (shown with the same prefix)

    @property
    def location(self) -> str:
        if self.line is None:
            return self.path
        return f"{self.path}:{self.line}:{self.column or 1}"
