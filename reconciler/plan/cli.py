"""``reconciler plan``: what would change (exit 0 nothing, 1 something, 2 error — like flux diff —
or a node whose VM NICs differ from its file under ``nicCheck: enforce``: it would get no Job)."""

from __future__ import annotations

import argparse
import sys

from reconciler.options import add_kube_arguments, add_source_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    add_kube_arguments(parser)
    parser.add_argument("--offline", action="store_true",
                        help="plan against an empty cluster (no API access; for CI without credentials)")
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text",
                        help="text for terminals, markdown for a PR comment, json for machines")
    parser.add_argument("--output", "-o", metavar="FILE", help="also write the plan to FILE")


def run(args: argparse.Namespace) -> int:
    from reconciler import pipeline
    from reconciler.config import formats
    from reconciler.config.validation import RepoUnreadable
    from reconciler.kube.client import KubeError
    from reconciler.options import kube_connector, open_source
    from reconciler.plan import render

    try:
        with open_source(args) as checkout:
            connect = None if args.offline else kube_connector(args)
            cycle, _, _ = pipeline.plan_checkout(checkout, connect, check_nics=not args.offline)
    except (RepoUnreadable, OSError, RuntimeError, KubeError) as exc:
        print(f"reconciler plan: {formats.printable(str(exc))}", file=sys.stderr)
        return 2
    if not cycle.validation.ok:
        sys.stderr.write(formats.text(cycle.validation))
    out = render.FORMATS[args.format](cycle.changes)
    sys.stdout.write(out)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(out)
    if any(check.enforce and check.checked and check.mismatches for check in cycle.nic_checks.values()):
        return 2  # a node whose VM NICs differ gets no Job (spec.proxmox.nicCheck: enforce)
    return 1 if cycle.changes.has_changes else 0
