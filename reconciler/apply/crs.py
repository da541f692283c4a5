"""Apply the custom-resource part of a ChangeSet: create/update by server-side apply, delete.

Order: clusters before nodes for writes (nodes refer to clusters), nodes before clusters for
deletes. One object's failure is recorded and the rest go on. Deletes are conditional on the
resourceVersion the plan saw, so an object changed since planning is not deleted blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.config.repo import KIND_CLUSTER, KIND_NODE
from reconciler.kube.client import Kube, KubeError
from reconciler.plan.changeset import Action, Change, ChangeSet


@dataclass(frozen=True)
class Applied:
    change: Change
    error: str | None = None
    live: dict[str, Any] | None = None  # the object as the server returned it after the write

    @property
    def ok(self) -> bool:
        return self.error is None


def apply_changes(kube: Kube, changes: ChangeSet, *,
                  delete_kinds: tuple[str, ...] = (KIND_NODE, KIND_CLUSTER)) -> list[Applied]:
    """Write what the ChangeSet says. Deletions of kinds not in ``delete_kinds`` are left to the
    caller (a node's removal first runs a cleanup Job on the node)."""
    writes = [c for kind in (KIND_CLUSTER, KIND_NODE) for c in changes.changes
              if c.kind == kind and c.action in (Action.CREATE, Action.UPDATE)]
    deletes = [c for kind in (KIND_NODE, KIND_CLUSTER) if kind in delete_kinds for c in changes.changes
               if c.kind == kind and c.action is Action.DELETE]
    done: list[Applied] = []
    for change in writes:
        done.append(_write(kube, change))
    for change in deletes:
        done.append(remove(kube, change))
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
