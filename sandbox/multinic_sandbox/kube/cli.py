"""``reconciler sandbox kube``: run the Kubernetes API sandbox until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import sys
import threading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--kubeconfig-out", metavar="FILE",
                        help="write a kubeconfig for the sandbox here")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a throw-away CA (its certificate goes into the "
                        "kubeconfig)")
    parser.add_argument("--token", help="require this bearer token (default: accept anything)")
    parser.add_argument("--namespace", action="append", default=[], metavar="NAME",
                        help="create this namespace at start (repeatable)")
    parser.add_argument("--seed", action="append", default=[], metavar="FILE",
                        help="YAML file of objects to create at start, e.g. CRDs (repeatable)")
    parser.add_argument("--jobs", choices=("auto", "manual"), default="auto",
                        help="run the simulated Job controller (auto) or not (manual)")
    parser.add_argument("--write-latency-ms", type=float, default=0.0, metavar="MS",
                        help="model a real API server's storage commit (etcd raft commit + fsync): "
                        "each mutating request waits MS milliseconds, without holding the "
                        "sandbox's lock, before it is applied (default 0: off)")


def run(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    import yaml

    from multinic_sandbox.kube.server import KubeSandbox

    sandbox = KubeSandbox(args.host, args.port, tls=args.tls, token=args.token,
                          kubeconfig_path=args.kubeconfig_out, jobs=args.jobs,
                          namespaces=args.namespace, write_latency=args.write_latency_ms / 1000)
    for path in args.seed:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        sandbox.seed(documents)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sandbox.start()
    print(sandbox.url, flush=True)
    print(f"kube sandbox serving {sandbox.url}; kubeconfig: {sandbox.kubeconfig_path}",
          file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        sandbox.stop()
    return 0
