"""The agent's result: one compact JSON object, read back by the reconciler from the Job's pod.

It goes to stdout and to ``/dev/termination-log``, whose content Kubernetes caps at 4096 bytes, so
``to_json`` shortens per-interface error strings (then the top-level error, then the file list)
until the document fits. Import ``AgentResult`` and call ``AgentResult.model_validate_json(text)``
to read it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

MAX_BYTES = 4096
# "drifted": ``reconciler agent verify`` found the node's files or live state differing from the
# spec (it changes nothing); the verification itself succeeded.
Outcome = Literal["applied", "unchanged", "failed", "partial", "rolled-back", "removed", "drifted"]
State = Literal["applied", "unchanged", "removed", "error", "drifted"]
# Where a run stopped. All or nothing: once the agent starts on a node's NICs, any failure (a NIC
# not found, a foreign file, a write, the node's own tool rejecting a file, activation,
# verification, a probe) puts every file and every NIC back as it was: outcome "rolled-back".
# "failed" means the agent did not start (bad input, unknown OS). "partial" is no longer produced.
Step = Literal["input", "detect", "match", "plan", "prepare", "write", "validate", "activate", "verify", "probe",
               "remove"]


class InterfaceResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    mac: str
    device: str | None = None  # the device the MAC matched (its name before any rename)
    state: State
    error: str | None = None


class AgentResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str
    os: str  # "ubuntu 24.04", "rocky 9.3"; "" when unknown
    renderer: Literal["netplan", "ifcfg", "keyfile"] | None = None
    outcome: Outcome
    interfaces: list[InterfaceResult] = []
    files: list[str] = []  # node paths written (or, for remove, removed)
    error: str | None = None  # a failure not tied to one interface (bad input, restore failed)
    step: Step | None = None  # the step that failed (None when nothing failed)
    dry_run: bool = False

    def exit_code(self) -> int:
        return 0 if self.outcome in ("applied", "unchanged", "removed", "drifted") else 1

    def to_json(self, limit: int = MAX_BYTES) -> str:
        """Compact JSON below ``limit`` bytes, error strings shortened as needed (marked "...")."""
        text = self.model_dump_json()
        if len(text.encode()) < limit:
            return text
        data = self.model_copy(deep=True)
        errors = [i for i in data.interfaces if i.error]
        # Shrink the longest messages first, never below 40 characters, in a few passes.
        for cap in (512, 256, 160, 100, 60, 40):
            for item in errors:
                item.error = _cut(item.error, cap)
            data.error = _cut(data.error, max(cap, 200))
            text = data.model_dump_json()
            if len(text.encode()) < limit:
                return text
        if len(data.files) > 4:
            data.files = [*data.files[:4], f"... {len(data.files) - 4} more"]
        for item in errors:
            item.error = _cut(item.error, 16)
        data.error = _cut(data.error, 100)
        text = data.model_dump_json()
        if len(text.encode()) >= limit:  # only with absurd inputs; still valid JSON
            data.files = []
            for item in data.interfaces:
                item.error = _cut(item.error, 8)
            text = data.model_dump_json()
        return text


def _cut(text: str | None, cap: int) -> str | None:
    if text is None or len(text) <= cap:
        return text
    return text[: cap - 3] + "..."
