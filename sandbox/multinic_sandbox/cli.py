"""``reconciler sandbox kube|proxmox``: start one of the wire-level test servers."""

from __future__ import annotations

import argparse
import importlib

_SERVERS = {
    "kube": ("multinic_sandbox.kube.cli", "Kubernetes API server (kubectl and the official client work against it)"),
    "proxmox": ("multinic_sandbox.proxmox.cli", "Proxmox VE API server over HTTPS (proxmoxer works against it)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sandbox", metavar="SERVER", required=True)
    for name, (module_name, help_text) in _SERVERS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        server = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(server)
        server.set_defaults(_sandbox_run=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._sandbox_run(args))
