"""``reconciler agent apply|remove``: flags, input checks, and where the result goes.

Input for ``apply``: ``--config FILE`` or ``--config -`` (stdin), else env ``MULTINIC_CONFIG``
(the Job carries the node document there). The document is parsed with the strict YAML loader,
checked against the JSON Schema, then built into ``NodeConfig``; any failure is exit 2.

The node check: ``NODE_NAME`` (Downward API ``spec.nodeName``; hostname as fallback) must equal
``spec.nodeName`` when ``--root`` is ``/`` and also whenever a real activator runs (netplan, nmcli,
iproute2, a command): those change the live network of whatever node we run on. Rendering into
another root with ``--activate none`` (image builds, tests) skips it.

Defaults: ``--root /``; ``--config-root`` = ``--root`` (tests and the network-namespace run write
files elsewhere); ``--renderer`` = selected from os-release (the Job always passes the
controller's choice, so the agent writes only where the Job mounted); ``--activate auto`` = the
renderer's own stack (netplan, or nmcli for ifcfg and keyfiles) when ``--root`` is ``/``,
``none`` otherwise; verification reads the live kernel state
(``ip -j``) after netplan/nmcli/iproute2, ``<root>/sys`` after ``--activate-command``, nothing
after ``none``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

ACTIVATORS = ("auto", "none", "netplan", "nmcli", "iproute2")
RENDERERS = ("netplan", "ifcfg", "keyfile")
TERMINATION_LOG = Path("/dev/termination-log")


class InputError(Exception):
    """Bad input: exit 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    apply = sub.add_parser("apply", help="render, write, activate and verify this node's NICs")
    apply.add_argument(
        "--config", metavar="FILE|-", help="MultiNicNodeConfig document, YAML or JSON (default: env MULTINIC_CONFIG)"
    )
    remove = sub.add_parser("remove", help="remove every file this agent wrote, re-activate")
    check = sub.add_parser("verify", help="report whether this node's files and live state still match the "
                                          "spec (drift); changes nothing")
    check.add_argument(
        "--config", metavar="FILE|-", help="MultiNicNodeConfig document, YAML or JSON (default: env MULTINIC_CONFIG)"
    )
    for p in (apply, remove, check):
        p.add_argument(
            "--root",
            type=Path,
            default=Path("/"),
            help="the node's root: os-release, sys/class/net, host tools (default /)",
        )
        p.add_argument(
            "--config-root", type=Path, default=None, help="where config files are written (default: --root)"
        )
        p.add_argument(
            "--renderer",
            choices=RENDERERS,
            default=None,
            help="the file format to write, as the Job chose it (default: selected from os-release by "
            "the same function the controller uses)",
        )
        p.add_argument(
            "--activate",
            choices=ACTIVATORS,
            default="auto",
            help="how to activate (default auto: netplan or nmcli on /, none elsewhere)",
        )
        p.add_argument(
            "--activate-command",
            metavar="CMD",
            default=None,
            help="activate with this command instead (gets MULTINIC_PHASE, "
            "MULTINIC_ROOT, MULTINIC_INTERFACES); for custom hosts and tests",
        )
        p.add_argument(
            "--verify-timeout",
            type=float,
            default=15.0,
            metavar="SECONDS",
            help="how long verification waits for the live state (default 15)",
        )
        p.add_argument("--dry-run", action="store_true", help="print the files and a diff; write and activate nothing")
        p.add_argument(
            "--result-file",
            type=Path,
            default=None,
            metavar="PATH",
            help="also write the JSON result here (default /dev/termination-log when --root is / and it is writable)",
        )


def node_name() -> str:
    return os.environ.get("NODE_NAME", "").strip() or socket.gethostname().split(".")[0]


def load_config(arg: str | None) -> Any:
    """The NodeConfig from --config / stdin / MULTINIC_CONFIG; InputError explains failures."""
    from reconciler.config import documents, schemas
    from reconciler.config.diagnostics import field_path
    from reconciler.config.models import NodeConfig

    if arg == "-":
        text, where = sys.stdin.read(), "stdin"
    elif arg:
        try:
            text, where = Path(arg).read_text(encoding="utf-8"), arg
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read --config {arg}: {exc}") from None
    elif os.environ.get("MULTINIC_CONFIG"):
        text, where = os.environ["MULTINIC_CONFIG"], "env MULTINIC_CONFIG"
    else:
        raise InputError("no config: pass --config FILE|- or set MULTINIC_CONFIG")
    try:
        data = documents.parse(text)
    except documents.LoadError as exc:
        pos = f" (line {exc.line}, column {exc.column})" if exc.line else ""
        raise InputError(f"{where}: not a YAML/JSON document{pos}: {exc.message}") from None
    problems = schemas.check("MultiNicNodeConfig", data)
    if problems:
        lines = [f"{field_path(ptr) or '(document)'}: {msg}" for ptr, msg in problems]
        raise InputError(f"{where}: not a valid MultiNicNodeConfig: " + "; ".join(lines))
    return NodeConfig.model_validate(data)


def _is_slash(path: Path) -> bool:
    return path.resolve() == Path("/")


def _emit(text: str, args: argparse.Namespace) -> None:
    print(text, flush=True)
    target: Path | None = args.result_file
    if target is None and _is_slash(args.root) and TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        target = TERMINATION_LOG
    if target is not None:
        with contextlib.suppress(OSError):
            target.write_text(text, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from reconciler.agent import activate, engine, osdetect
    from reconciler.nodejob.result import AgentResult

    real_root = _is_slash(args.root)
    kind = args.activate
    if args.activate_command:
        kind = "command"
    elif kind == "auto":
        if real_root:
            renderer: str | None = args.renderer
            if renderer is None:
                try:
                    renderer = osdetect.detect(args.root).renderer
                except osdetect.UnknownOSError:
                    renderer = None
            kind = activate.default_for(renderer)
        else:
            kind = "none"
    verify_mode = {"none": "none", "command": "sysfs"}.get(kind, "live")
    opts = engine.Options(
        root=args.root,
        config_root=args.config_root or args.root,
        renderer=args.renderer,
        activate="none" if kind == "command" else kind,
        activate_command=args.activate_command,
        verify=verify_mode,
        verify_timeout=args.verify_timeout,
        dry_run=args.dry_run,
        out=sys.stdout,
    )

    if args.agent_command == "remove":
        result = engine.remove(opts, node_name())
        _emit(result.to_json(), args)
        return result.exit_code()

    try:
        config = load_config(args.config)
        here = node_name()
        if (real_root or kind != "none") and here != config.spec.node_name:
            raise InputError(
                f"this config is for node {config.spec.node_name!r} but this is node {here!r} "
                "(NODE_NAME, else hostname); refusing to configure another node's NICs"
            )
    except InputError as exc:
        print(f"reconciler agent: {exc}", file=sys.stderr)
        bad = AgentResult(node=node_name(), os="", outcome="failed", error=str(exc), step="input")
        _emit(bad.to_json(), args)
        return 2
    result = engine.verify_only(config, opts) if args.agent_command == "verify" else engine.apply(config, opts)
    _emit(result.to_json(), args)
    return result.exit_code()
