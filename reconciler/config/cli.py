"""``reconciler validate PATH``: the config repo's CI check (exit 0 valid, 1 invalid, 2 usage or
a PATH that is not a config repo).

File names are shown as the user reaches them from the current directory (``gitops/nodes/x.yaml``
for ``reconciler validate gitops/``), or under ``--path-prefix``, so CI annotations attach to the
right file in a monorepo. ``--strict`` turns warnings into errors in every format.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reconciler.config import repo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=".", help="config repo checkout (default: .)")
    parser.add_argument(
        "--format",
        choices=["text", "json", "junit", "github", "sarif"],
        default="text",
        help="output format (default: text, grouped by file; sarif for code scanning)",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument(
        "--path-prefix",
        metavar="PREFIX",
        help="prefix for file names in the report (default: PATH as given, when it is relative)",
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=0, metavar="N", help="worker processes for large repos (default: one per CPU)"
    )


def path_prefix(path: str, explicit: str | None) -> str:
    """What to put before repo-relative names so they read from the current directory."""
    if explicit is not None:
        return explicit.rstrip("/") + "/" if explicit.strip("/") else ""
    target = Path(path)
    if target.is_absolute():
        try:
            target = target.resolve().relative_to(Path.cwd().resolve())
        except (ValueError, OSError):
            return ""  # outside the current directory: names stay relative to the repo
    normal = os.path.normpath(target)
    return "" if normal == "." else normal.replace(os.sep, "/") + "/"


def looks_like_config_repo(root: Path) -> bool:
    """A config repo has nodes/, clusters/ or reconciler.yaml (even broken ones count)."""
    try:
        names = os.listdir(root)
    except OSError:
        return True  # validation reports the read error itself
    return any(
        n.lower() in repo.FOLDERS or n.lower().rsplit(".", 1)[0] == "reconciler" for n in names
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.config import formats, validation

    try:
        result = validation.validate_repo(args.path, jobs=args.jobs or os.cpu_count() or 1)
    except validation.RepoUnreadable as exc:
        print(f"reconciler validate: {formats.printable(str(exc))}", file=sys.stderr)
        return 2
    if not looks_like_config_repo(Path(args.path)):
        print(
            f"reconciler validate: {formats.printable(args.path)} is not a config repository "
            "(no nodes/, clusters/ or reconciler.yaml); point PATH at the repository root",
            file=sys.stderr,
        )
        return 2
    shown = formats.present(result, strict=args.strict, prefix=path_prefix(args.path, args.path_prefix))
    report = formats.FORMATS[args.format](shown)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(report)
        except OSError as exc:
            print(
                f"reconciler validate: cannot write {formats.printable(args.output)}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
        if args.format != "text":
            sys.stdout.write(formats.text(shown))
    else:
        sys.stdout.write(report)
    return 0 if shown.ok else 1
