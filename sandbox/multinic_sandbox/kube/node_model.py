"""What happens to a Job's pod on a node: the sandbox's stand-in for kubelet + the agent.

    sandbox.node_model.script("worker-03", fail("no such NIC", exit_code=3))
    sandbox.node_model.script("worker-04", fail("flaky"), succeed("ok"))   # per pod, in order
    sandbox.node_model.script("worker-05", lambda pod: hang())
    sandbox.node_model.set_default(succeed("done", delay=2.0))

The last scripted outcome for a node repeats; unscripted nodes get the default (succeed with an
empty termination message).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_NODE = "sandbox-node-1"


@dataclass(frozen=True)
class Outcome:
    """How a pod ends. ``delay`` is how long (on the sandbox clock) it runs first."""

    kind: Literal["succeed", "fail", "hang"]
    message: str = ""
    exit_code: int = 0
    delay: float = 0.0
    reason: str = ""

    @property
    def container_reason(self) -> str:
        return self.reason or ("Completed" if self.kind == "succeed" else "Error")


def succeed(message: str = "", delay: float = 0.0) -> Outcome:
    return Outcome("succeed", message, 0, delay)


def fail(message: str = "", exit_code: int = 1, delay: float = 0.0, reason: str = "") -> Outcome:
    return Outcome("fail", message, exit_code, delay, reason)


def hang() -> Outcome:
    """Keep running forever (until the Job's activeDeadlineSeconds, if any)."""
    return Outcome("hang")


Decision = Outcome | Callable[[dict[str, Any]], Outcome]


@dataclass(frozen=True)
class Decided:
    pod: str
    node: str
    outcome: Outcome


class NodeModel:
    """Per-node scripts of pod outcomes; thread-safe."""

    def __init__(self, default: Decision | None = None, default_node: str = DEFAULT_NODE) -> None:
        self.default: Decision = default or succeed()
        self.default_node = default_node
        self._scripts: dict[str, list[Decision]] = {}
        self._lock = threading.Lock()
        self.history: list[Decided] = []

    def script(self, node: str, *outcomes: Decision) -> None:
        """Outcomes for the next pods on ``node``, in order; the last one repeats."""
        if not outcomes:
            raise ValueError("script() needs at least one outcome")
        with self._lock:
            self._scripts[node] = list(outcomes)

    def set_default(self, decision: Decision) -> None:
        with self._lock:
            self.default = decision

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.default = succeed()
            self.history.clear()

    @staticmethod
    def _next(queue: list[Decision]) -> Decision:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def decide(self, pod: dict[str, Any]) -> Outcome:
        node = (pod.get("spec") or {}).get("nodeName") or self.default_node
        with self._lock:
            queue = self._scripts.get(node)
            decision = self._next(queue) if queue else self.default
        outcome = decision(pod) if callable(decision) else decision
        with self._lock:
            self.history.append(Decided(pod["metadata"]["name"], node, outcome))
        return outcome
