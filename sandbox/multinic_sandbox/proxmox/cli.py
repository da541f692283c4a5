"""``reconciler sandbox proxmox``: run the PVE API sandbox until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8006, help="TCP port (0: any free port)")
    parser.add_argument(
        "--info-out",
        type=Path,
        metavar="FILE",
        help="write {url, caFile, tokenId, tokenSecret, username, password} as JSON (mode 0600)",
    )
    parser.add_argument("--topology", type=Path, metavar="FILE", help="topology as YAML or JSON (default: 2 nodes)")
    parser.add_argument(
        "--auth-failure-delay",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="pause before every 401, as PVE does (default: 3)",
    )


def _load_topology(path: Path | None) -> Any:
    if path is None:
        return None
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _write_info(path: Path, info: dict[str, Any]) -> None:
    """Atomically, so that a reader polling for the file never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    from multinic_sandbox.proxmox.server import ProxmoxSandbox

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    sandbox = ProxmoxSandbox(
        _load_topology(args.topology),
        host=args.host,
        port=args.port,
        auth_failure_delay=args.auth_failure_delay,
    )
    sandbox.start()
    try:
        if args.info_out is not None:
            _write_info(args.info_out, sandbox.info())
        print(sandbox.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    sys.stdout.flush()
    return 0
