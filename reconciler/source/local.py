"""A config repo that is already on disk (a CI checkout, a developer's clone)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Checkout:
    path: Path
    revision: str | None  # commit id, None when the directory is not a Git work tree
    dirty: bool = False  # uncommitted changes present (the plan then describes the work tree)
    # repo-relative path -> Git blob id of each regular file, when the source knows them (an exported
    # commit): a validation then skips reading the files whose blob it checked before
    blobs: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        if self.revision is None:
            return "working tree"
        return self.revision[:12] + ("+dirty" if self.dirty else "")


def open_directory(path: Path | str) -> Checkout:
    path = Path(path)
    try:
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "--verify", "-q", "HEAD"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return Checkout(path, None)
    if head.returncode != 0:
        return Checkout(path, None)
    status = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--", "."],
                            capture_output=True, text=True, timeout=30, check=False)
    return Checkout(path, head.stdout.strip(), dirty=bool(status.stdout.strip()))
