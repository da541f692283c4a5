"""The one linear reconcile: source -> load/validate -> observe -> plan -> apply -> report.

Each stage is a function of the previous stage's value; this module only strings them together
and is what ``plan``, ``apply --once``, ``run`` and ``demo`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.config.validation import ValidationResult, validate_repo
from reconciler.plan.changeset import ChangeSet
from reconciler.plan.planner import KINDS, LiveObject, plan
from reconciler.source.local import Checkout

if TYPE_CHECKING:
    from reconciler.apply.crs import Applied
    from reconciler.kube.client import Kube


@dataclass
class Cycle:
    checkout: Checkout
    validation: ValidationResult
    changes: ChangeSet
    applied: list[Applied] = field(default_factory=list)

    @property
    def failed(self) -> list[Applied]:
        return [a for a in self.applied if not a.ok]


def observe(kube: Kube | None) -> dict[str, list[LiveObject]]:
    """Live objects we own; ``None`` (offline) means an empty cluster."""
    if kube is None:
        return {}
    return {kind: [LiveObject.from_manifest(o) for o in kube.list_owned(kind)] for kind in KINDS}


Connect = Callable[[str], "Kube"]  # namespace -> adapter; known only after reconciler.yaml is read


def plan_checkout(checkout: Checkout, connect: Connect | None) -> tuple[Cycle, Kube | None]:
    validation = validate_repo(checkout.path)
    kube = connect(validation.desired.settings.spec.namespace) if connect is not None else None
    changes = plan(validation.desired, observe(kube), revision=checkout.revision)
    return Cycle(checkout, validation, changes), kube


def apply_once(checkout: Checkout, connect: Connect) -> Cycle:
    from reconciler.apply.crs import apply_changes

    cycle, kube = plan_checkout(checkout, connect)
    assert kube is not None
    cycle.applied = apply_changes(kube, cycle.changes)
    return cycle
