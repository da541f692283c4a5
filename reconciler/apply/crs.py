"""Apply the custom-resource part of a ChangeSet: create/update by server-side apply, delete.

Order: clusters before nodes for writes (nodes refer to clusters), nodes before clusters for
deletes, deletes last. Within one kind and action, up to ``writers`` requests are in flight at
once (a bounded pool; each write keeps its own retries and conflict handling), and a kind starts
only when the one before it is done. One object's failure is recorded and the rest go on.
Deletes are conditional on the resourceVersion the plan saw, so an object changed since planning
is not deleted blindly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.kube.client import Kube, KubeError
from reconciler.plan.changeset import Action, Change, ChangeSet

WRITERS = 8  # default size of the writer pool (``--writers``)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Applied:
    change: Change
    error: str | None = None
    live: dict[str, Any] | None = None  # the object as the server returned it after the write

    @property
    def ok(self) -> bool:
        return self.error is None


def in_parallel(work: Callable[[T], R], items: Sequence[T], writers: int = WRITERS) -> list[R]:
    """``work`` on every item, at most ``writers`` at a time; results in the items' order.
    ``work`` must not raise for one item's failure (record it in the result)."""
    if writers <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(writers, len(items)), thread_name_prefix="writer") as pool:
        return list(pool.map(work, items))


def apply_changes(kube: Kube, changes: ChangeSet, *,
                  delete_kinds: tuple[str, ...] = (KIND_NODE, KIND_CLUSTER), writers: int = WRITERS) -> list[Applied]:
    """Write what the ChangeSet says. Deletions of kinds not in ``delete_kinds`` are left to the
    caller (a node's removal first runs a cleanup Job on the node)."""
    done: list[Applied] = []
    for kind in (KIND_CLUSTER, KIND_NODE):
        writes = [c for c in changes.changes if c.kind == kind and c.action in (Action.CREATE, Action.UPDATE)]
        done += in_parallel(lambda change: _write(kube, change), writes, writers)
    for kind in (KIND_NODE, KIND_CLUSTER):
        if kind in delete_kinds:
            deletes = [c for c in changes.changes if c.kind == kind and c.action is Action.DELETE]
            done += in_parallel(lambda change: remove(kube, change), deletes, writers)
    return done


def _write(kube: Kube, change: Change) -> Applied:
    assert change.desired is not None
    try:
        live = kube.apply(change.desired)
        if live.get("spec") != change.desired["spec"]:
            # Another field manager owns fields we do not set (e.g. a hand-added interface key):
            # server-side apply keeps them, so set the spec exactly.
            live = kube.replace_spec(change.kind, change.name, change.desired["spec"],
                                     live["metadata"]["resourceVersion"])
        return Applied(change, live=live)
    except KubeError as exc:
        return Applied(change, error=str(exc))


def remove(kube: Kube, change: Change) -> Applied:
    try:
        kube.delete(change.kind, change.name, change.live_version)
        return Applied(change)
    except KubeError as exc:
        return Applied(change, error=str(exc))
