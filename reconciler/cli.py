"""The one ``reconciler`` command: parse flags, hand over to the stage that owns the subcommand.

Each subcommand lives in the package that owns its concern and exposes two functions:

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int            # the process exit code

Those modules import heavy libraries (kubernetes, proxmoxer, git) inside ``run`` only, so that
``reconciler validate`` in a pre-commit hook starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from reconciler import __version__

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("reconciler.config.cli", "validate a config repo checkout (schemas + cross-file rules)"),
    "plan": ("reconciler.plan.cli", "show what would change in the cluster"),
    "apply": ("reconciler.apply.cli", "apply the plan once"),
    "run": ("reconciler.loop.cli", "run the GitOps loop (poll, webhook, leader election, HTTP)"),
    "agent": ("reconciler.agent.cli", "node side: render and activate network config"),
    "clusters": ("reconciler.apply.proxmox.cli", "list or show registered Proxmox VE clusters"),
}
# Subcommands another distribution provides (``multinic-sandbox``: ``sandbox`` and ``demo``),
# found through entry points so the product never imports the sandbox.
PLUGIN_GROUP = "multinic_reconciler.commands"
PLUGIN_COMMANDS: dict[str, str] = {
    "sandbox": "start a wire-level Kubernetes or Proxmox VE test server",
    "demo": "run the whole flow on this machine against the sandboxes",
}
SANDBOX_MISSING = (
    "reconciler {name}: needs the multinic-sandbox package, which is not installed.\n"
    "  From a checkout: pip install -e ./sandbox   (scripts/setup.sh does this)\n"
    "  Otherwise:      pip install multinic-sandbox"
)


def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name in PLUGIN_COMMANDS}


def _load(entry_point: Any) -> Any:
    """The plugin's module; None when its distribution is listed but its code is not importable."""
    if entry_point is None:
        return None
    try:
        return entry_point.load()
    except ModuleNotFoundError as exc:
        if exc.name and entry_point.value.split(":")[0].startswith(exc.name):
            return None
        raise


def _missing(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        print(SANDBOX_MISSING.format(name=name), file=sys.stderr)
        return 2

    return run


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand's module is imported (fast start-up for
    ``reconciler validate`` in a pre-commit hook)."""
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler for multi-NIC Kubernetes nodes on Proxmox VE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(_run=module.run)
    plugins = _plugins() if only is None or only in PLUGIN_COMMANDS else {}
    for name, help_text in PLUGIN_COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = _load(plugins.get(name))
            if module is not None:
                module.add_arguments(command)
                command.set_defaults(_run=module.run)
            else:
                command.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
                command.set_defaults(_run=_missing(name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS or chosen in PLUGIN_COMMANDS else None)
    args = parser.parse_args(args_list)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
