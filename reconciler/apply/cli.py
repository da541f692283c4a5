"""``reconciler apply --once``: apply the plan once and print what was done.

Exit 0: all applied; 1: a write failed; 2: an error, an invalid file or anything blocked (the valid
part is applied all the same).
"""

from __future__ import annotations

import argparse
import sys

from reconciler.options import add_kube_arguments, add_source_arguments, add_writer_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", required=True,
                        help="apply one cycle and exit (the loop is `reconciler run`)")
    add_source_arguments(parser)
    add_kube_arguments(parser)
    add_writer_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler import pipeline
    from reconciler.config import formats
    from reconciler.config.validation import RepoUnreadable
    from reconciler.kube.client import KubeError
    from reconciler.options import kube_connector, open_source
    from reconciler.plan import render
    from reconciler.plan.changeset import Action

    try:
        with open_source(args) as checkout:
            cycle = pipeline.apply_once(checkout, kube_connector(args), writers=args.writers)
    except (RepoUnreadable, OSError, RuntimeError, KubeError) as exc:
        print(f"reconciler apply: {formats.printable(str(exc))}", file=sys.stderr)
        return 2
    if not cycle.validation.ok:
        sys.stderr.write(formats.text(cycle.validation))
    sys.stdout.write(render.text(cycle.changes, cycle.validation.diagnostics))
    past = {Action.CREATE: "created", Action.UPDATE: "updated", Action.DELETE: "deleted"}
    for done in cycle.applied:
        change = done.change
        word = past.get(change.action, change.action.value)
        if done.ok:
            print(f"{change.kind}/{change.name} {word}")
        else:
            print(f"{change.kind}/{change.name} FAILED: {done.error}")
    if not cycle.changes.has_changes:
        print("Nothing to apply.")
    blocked = cycle.changes.by_action(Action.BLOCKED)
    if not cycle.validation.ok or blocked:
        # The valid part was applied; what is invalid or guarded was not: never a green run.
        why = "the config repo has errors" if not cycle.validation.ok else f"{len(blocked)} object(s) blocked"
        print(f"reconciler apply: {why}; blocked objects were left unchanged", file=sys.stderr)
        return 2
    return 1 if cycle.failed else 0
