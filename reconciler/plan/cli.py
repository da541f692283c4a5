"""``reconciler plan``: what would change.

Exit codes have one meaning each, so that ``reconciler plan || [ $? -eq 1 ]`` is a safe CI line:
0 nothing to change and nothing blocked; 1 changes (all of them valid); 2 an error, an invalid
file, or anything blocked or refused (the reason is printed on one line on standard error) --
including a node whose Proxmox VM NICs differ from its file under ``nicCheck: enforce`` (it would
get no Job).
"""

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
    parser.add_argument("--path-prefix", metavar="PREFIX",
                        help="prefix for file names in diagnostics (default: the checkout as given, when relative)")


def run(args: argparse.Namespace) -> int:
    from reconciler import pipeline
    from reconciler.config import formats
    from reconciler.config.cli import path_prefix
    from reconciler.config.validation import RepoUnreadable
    from reconciler.kube.client import KubeError
    from reconciler.options import kube_connector, open_source
    from reconciler.plan import render
    from reconciler.plan.changeset import Action
    from reconciler.source.opening import is_remote

    try:
        with open_source(args) as checkout:
            connect = None if args.offline else kube_connector(args)
            cycle, _, _ = pipeline.plan_checkout(checkout, connect, check_nics=not args.offline)
    except (RepoUnreadable, OSError, RuntimeError, KubeError) as exc:
        print(f"reconciler plan: {formats.printable(str(exc))}", file=sys.stderr)
        return 2
    prefix = (args.path_prefix or "") if is_remote(str(args.repo)) else path_prefix(str(args.repo), args.path_prefix)
    shown = formats.present(cycle.validation, prefix=prefix)
    if shown.diagnostics:
        sys.stderr.write(formats.text(shown))
    out = render.FORMATS[args.format](cycle.changes, cycle.validation.diagnostics)
    sys.stdout.write(out)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(out)
        except OSError as exc:
            print(f"reconciler plan: cannot write {formats.printable(args.output)}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
    blocked = cycle.changes.by_action(Action.BLOCKED)
    if not cycle.validation.ok or blocked:
        bad = sorted({d.path for d in shown.errors})
        why = (f"{len(shown.errors)} error(s) in {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''}"
               if bad else "")
        held = f"{len(blocked)} object(s) blocked" if blocked else ""
        print(f"reconciler plan: {'; '.join(p for p in (why, held) if p)}; nothing blocked is changed or deleted",
              file=sys.stderr)
        return 2
    vm_held = sorted(n for n, c in cycle.nic_checks.items()
                     if c.enforce and c.checked and c.mismatches and not c.vm_changes)
    if vm_held:
        print(f"reconciler plan: {len(vm_held)} node(s) whose VM NICs differ from their file get no Job "
              f"(spec.proxmox.nicCheck: enforce): {', '.join(vm_held[:5])}{' …' if len(vm_held) > 5 else ''}",
              file=sys.stderr)
        return 2
    return 1 if cycle.changes.has_changes else 0
