"""``reconciler run``: the GitOps loop. Every flag also reads ``MULTINIC_<FLAG>`` from the env."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys

from reconciler.options import add_kube_arguments, add_source_arguments, add_writer_arguments, env_default


def duration(text: str) -> float:
    from reconciler.config.models import parse_duration

    text = text.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    try:
        return float(parse_duration(text))
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 5m)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    add_kube_arguments(parser)
    add_writer_arguments(parser)
    parser.add_argument("--interval", type=duration, default=env_default("INTERVAL", "30s"),
                        help="reconcile every INTERVAL (e.g. 30s, 5m; env MULTINIC_INTERVAL)")
    parser.add_argument("--listen", default=env_default("LISTEN", ":8080"),
                        help="HTTP address for /healthz, /readyz, /metrics, /hooks/git, /api/v1 (default :8080)")
    parser.add_argument("--webhook-secret-file", default=env_default("WEBHOOK_SECRET_FILE"),
                        help="file holding the webhook secret (or env MULTINIC_WEBHOOK_SECRET); unset: webhook off")
    default_identity = os.environ.get("POD_NAME", socket.gethostname())
    parser.add_argument("--identity", default=env_default("IDENTITY", default_identity),
                        help="leader-election identity (default: $POD_NAME or the hostname)")
    parser.add_argument("--lease-namespace", default=env_default("LEASE_NAMESPACE", os.environ.get("POD_NAMESPACE")),
                        help="namespace of the leader Lease (default: $POD_NAMESPACE, else --namespace, "
                             "else multinic-system)")
    parser.add_argument("--lease-duration", type=duration, default=env_default("LEASE_DURATION", "15s"),
                        help="leader Lease duration (default 15s)")
    parser.add_argument("--cache-dir", default=env_default("CACHE_DIR", "/tmp/multinic-cache"),
                        help="where the Git clone is kept (default /tmp/multinic-cache)")
    parser.add_argument("--status-author-name", default=env_default("STATUS_AUTHOR_NAME", "multinic-reconciler"))
    parser.add_argument("--status-author-email",
                        default=env_default("STATUS_AUTHOR_EMAIL", "multinic-reconciler@users.noreply.local"))
    parser.add_argument("--status-branch", default=env_default("STATUS_BRANCH"),
                        help="branch for status commits (default: status.branch in reconciler.yaml, "
                             "else the watched branch)")
    parser.add_argument("--no-status", action="store_true", default=env_default("NO_STATUS") == "true",
                        help="do not commit status reports to Git")
    parser.add_argument("--agent-image", default=env_default("AGENT_IMAGE"),
                        help="image of the node Jobs (env MULTINIC_AGENT_IMAGE)")
    parser.add_argument("--node-job-service-account", default=env_default("NODE_JOB_SERVICE_ACCOUNT"),
                        help="ServiceAccount of node Jobs (no RBAC needed; token never mounted)")
    parser.add_argument("--node-job-activate", choices=["auto", "iproute2"],
                        default=env_default("NODE_JOB_ACTIVATE", "auto"),
                        help="how node Jobs activate: auto = the node's own stack (netplan / NetworkManager over "
                             "the host's D-Bus socket); iproute2 = netlink only, no D-Bus mount (env "
                             "MULTINIC_NODE_JOB_ACTIVATE)")
    parser.add_argument("--node-tolerations", default=env_default("NODE_TOLERATIONS"),
                        help='tolerations of node Jobs as JSON (default: tolerate everything, [{"operator":"Exists"}])')
    parser.add_argument("--log-format", choices=["text", "json"], default=env_default("LOG_FORMAT", "text"))
    parser.add_argument("--max-cycles", type=int, default=None, help=argparse.SUPPRESS)


def job_settings(args: argparse.Namespace) -> object:
    from reconciler.kube.jobs import JobSettings

    values: dict[str, object] = {}
    if args.agent_image:
        values["image"] = args.agent_image
    if args.node_job_service_account:
        values["service_account"] = args.node_job_service_account
    if args.node_tolerations:
        values["tolerations"] = tuple(json.loads(args.node_tolerations))
    if getattr(args, "node_job_activate", "auto") != "auto":
        values["activate"] = args.node_job_activate
    return JobSettings(**values)  # type: ignore[arg-type]


def _secret(args: argparse.Namespace) -> str:
    if args.webhook_secret_file:
        with open(args.webhook_secret_file, encoding="utf-8") as handle:
            return handle.read().strip()
    return os.environ.get("MULTINIC_WEBHOOK_SECRET", "")


def run(args: argparse.Namespace) -> int:
    from reconciler.loop import logs
    from reconciler.loop.metrics import Metrics
    from reconciler.loop.runner import LoopSettings, Runner
    from reconciler.loop.server import HTTPServer, State
    from reconciler.loop.wiring import after_cycle_hooks, build_source, read_api
    from reconciler.options import kube_connector

    logs.configure(args.log_format)
    try:
        secret = _secret(args)
        settings = LoopSettings(interval=args.interval, identity=args.identity,
                                lease_namespace=args.lease_namespace or args.namespace or "multinic-system",
                                # client-go's proportions: 15s lease, 10s renew deadline, 2s retry period
                                lease_duration=args.lease_duration, renew_deadline=args.lease_duration * 2 / 3,
                                retry_period=max(0.2, args.lease_duration * 2 / 15),
                                job_settings=job_settings(args), max_cycles=args.max_cycles,  # type: ignore[arg-type]
                                writers=args.writers)
        connect = kube_connector(args)
        source = build_source(args)
        metrics, state = Metrics(), State()
        runner = Runner(source, connect, settings, metrics=metrics, state=state,
                        after_cycle=after_cycle_hooks(args, source, metrics))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"reconciler run: {exc}", file=sys.stderr)
        return 2
    state.api = read_api(connect, settings.lease_namespace if args.namespace is None else args.namespace)
    host, _, port = args.listen.rpartition(":")
    server = HTTPServer(state, metrics, host=host or "0.0.0.0", port=int(port), webhook_secret=secret).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.shutdown())
    try:
        return runner.run()
    finally:
        server.stop()
