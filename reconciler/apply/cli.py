"""``reconciler apply --once``: apply the plan once and print what was done."""

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
    sys.stdout.write(render.text(cycle.changes))
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
    return 1 if cycle.failed else 0
