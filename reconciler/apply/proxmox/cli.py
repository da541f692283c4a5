"""``reconciler clusters list|get NAME``: the registered Proxmox VE clusters, read from their CRs.

Read-only: clusters are registered by adding ``clusters/<name>.yaml`` to the config repo. The
output is the API's cluster entries (``api.cluster_entry``), as a kubectl-like table, JSON or YAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

DEFAULT_NAMESPACE = "multinic-system"  # = reconciler.config.models.DEFAULT_NAMESPACE (not imported: start-up cost)
COLUMNS = ("NAME", "ENDPOINT", "VERSION", "NODES", "HEALTH", "READY", "LAST-VERIFIED", "AGE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table", help="output format")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument(
        "-n", "--namespace", default=DEFAULT_NAMESPACE, help=f"namespace of the CRs (default {DEFAULT_NAMESPACE})"
    )
    sub = parser.add_subparsers(dest="clusters_command", metavar="{list,get}", required=True)
    sub.add_parser("list", parents=[common], help="list registered clusters", description="list registered clusters")
    get = sub.add_parser("get", parents=[common], help="show one cluster", description="show one cluster")
    get.add_argument("name", help="cluster name (the file name in clusters/)")


def run(args: argparse.Namespace) -> int:
    from reconciler.apply.proxmox.api import cluster_entry
    from reconciler.kube.client import Kube, KubeError, api_client

    try:
        kube = Kube(api_client(args.kubeconfig, args.context), args.namespace)
        if args.clusters_command == "get":
            obj = kube.get("ProxmoxCluster", args.name)
            if obj is None:
                print(f"error: cluster {args.name} not found in namespace {args.namespace}", file=sys.stderr)
                return 1
            entries = [cluster_entry(obj, detail=True)]
        else:
            items = kube.list_owned("ProxmoxCluster")
            entries = [cluster_entry(o) for o in sorted(items, key=lambda o: o["metadata"]["name"])]
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # kubeconfig problems: a message, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    render(entries, args.output, single=args.clusters_command == "get", out=sys.stdout)
    return 0


def render(entries: Sequence[Mapping[str, Any]], output: str, *, single: bool, out: TextIO) -> None:
    if output == "json":
        json.dump(entries[0] if single else {"clusters": list(entries), "total": len(entries)}, out, indent=2)
        out.write("\n")
    elif output == "yaml":
        import yaml

        document = dict(entries[0]) if single else {"clusters": [dict(e) for e in entries], "total": len(entries)}
        out.write(yaml.safe_dump(document, sort_keys=False))
    else:
        out.write(table(entries))
        if single:
            out.write(details(entries[0]))


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """kubectl-style age: ``45s``, ``12m``, ``5h``, ``3d``; ``<unknown>`` without a timestamp."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(value: Any) -> str:
    return "<none>" if value is None or value == "" else str(value)


def row(entry: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    ready = "True" if entry.get("ready") else ("False" if entry.get("reason") else "Unknown")
    return [
        _cell(entry.get("name")),
        _cell(entry.get("endpoint")),
        _cell(entry.get("version")),
        _cell(entry.get("nodeCount")),
        _cell(entry.get("health")),
        ready,
        age(entry.get("lastVerified"), now) if entry.get("lastVerified") else "<never>",
        age(entry.get("createdAt"), now),
    ]


def table(entries: Sequence[Mapping[str, Any]], now: datetime | None = None) -> str:
    if not entries:
        return "No clusters registered.\n"
    rows = [list(COLUMNS), *(row(e, now) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)


def details(entry: Mapping[str, Any]) -> str:
    lines = [""]
    if entry.get("reason"):
        lines.append(
            f"Ready:     {'True' if entry.get('ready') else 'False'} ({entry['reason']}) {entry.get('message') or ''}"
        )
    if entry.get("clusterName") is not None:
        lines.append(f"Cluster:   {entry['clusterName']} ({entry.get('onlineNodes')}/{entry.get('nodeCount')} online)")
    for warning in entry.get("warnings") or []:
        lines.append(f"Warning:   {warning}")
    if entry.get("sourcePath"):
        lines.append(f"Source:    {entry['sourcePath']}")
    return "\n".join(lines).rstrip() + "\n" if len(lines) > 1 else ""
