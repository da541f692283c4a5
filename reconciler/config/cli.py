"""``reconciler validate PATH``: the config repo's CI check (exit 0 valid, 1 invalid, 2 usage)."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=".", help="config repo checkout (default: .)")
    parser.add_argument(
        "--format",
        choices=["text", "json", "junit", "github"],
        default="text",
        help="output format (default: text, grouped by file)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument(
        "--jobs", "-j", type=int, default=0, metavar="N", help="worker processes for large repos (default: one per CPU)"
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.config import formats, validation

    try:
        result = validation.validate_repo(args.path, jobs=args.jobs or os.cpu_count() or 1)
    except validation.RepoUnreadable as exc:
        print(f"reconciler validate: {formats.printable(str(exc))}", file=sys.stderr)
        return 2
    report = formats.FORMATS[args.format](result)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(report)
        except OSError as exc:
            print(f"reconciler validate: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 2
        if args.format != "text":
            sys.stdout.write(formats.text(result))
    else:
        sys.stdout.write(report)
    if not result.ok or (args.strict and result.diagnostics):
        return 1
    return 0
