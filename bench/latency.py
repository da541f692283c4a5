"""Commit-to-CR latency with the webhook, and the cost of a poll when nothing changed.

    python bench/latency.py [--commits 5] [--nodes 5]

Starts the kube sandbox, a bare Git remote and `reconciler run`'s loop in-process (interval 300s,
so only the webhook can trigger a cycle), then, per commit: push an MTU change, POST a GitHub-signed
webhook, and time until the custom resource carries the new MTU. Target: < 2 s. Then times quiet
cycles: Git asks the remote once (ls-remote, no fetch), Kubernetes sees only reads, nothing is
committed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multinic_sandbox.harness.fleet import prepare, write_config_repo  # noqa: E402
from multinic_sandbox.kube.server import KubeSandbox  # noqa: E402

from reconciler.config.validation import validate_repo  # noqa: E402
from reconciler.kube.client import Kube  # noqa: E402
from reconciler.loop.metrics import Metrics  # noqa: E402
from reconciler.loop.runner import LoopSettings, Runner  # noqa: E402
from reconciler.loop.server import HTTPServer, State  # noqa: E402
from reconciler.loop.webhook import sign_github  # noqa: E402
from reconciler.loop.wiring import StatusReporter  # noqa: E402
from reconciler.source.git import GitSource  # noqa: E402

NAMESPACE = "multinic-system"
SECRET = "bench-secret"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--quiet-cycles", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="multinic-latency-"))
    remote, user = work / "remote.git", work / "user"
    git("init", "--bare", "-q", str(remote))
    write_config_repo(user, args.nodes)
    git("init", "-q", cwd=user)
    git("add", "-A", cwd=user)
    git("commit", "-q", "-m", "nodes", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    with KubeSandbox() as sb:
        prepare(sb, validate_repo(user).desired, namespace=NAMESPACE)
        source = GitSource(remote.as_uri(), branch="main", cache_dir=work / "cache" / "source")
        metrics, state = Metrics(), State()
        status = argparse.Namespace(repo=remote.as_uri(), branch="main", status_branch=None,
                                    status_author_name="multinic-reconciler", status_author_email="r@bench.invalid",
                                    cache_dir=str(work / "cache"))
        runner = Runner(source, lambda ns: Kube(sb.api_client(), ns),
                        LoopSettings(interval=300, requeue=0.3, identity="bench", lease_namespace=NAMESPACE,
                                     retry_period=0.5),
                        metrics=metrics, state=state, after_cycle=[StatusReporter(status, source, metrics)])
        server = HTTPServer(state, metrics, host="127.0.0.1", port=0, webhook_secret=SECRET).start()
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        sb.wait_until(lambda: all((n.get("status") or {}).get("phase") == "Ready"
                                  for n in sb.list("multinic.io/v1alpha1", "MultiNicNodeConfig", NAMESPACE))
                      and len(sb.list("multinic.io/v1alpha1", "MultiNicNodeConfig", NAMESPACE)) == args.nodes,
                      timeout=120)
        latencies = []
        for i in range(args.commits):
            node, mtu = f"node-{i % args.nodes:02d}", 2000 + i
            git("pull", "-q", "--rebase", str(remote), "main", cwd=user)
            path = user / "nodes" / f"{node}.yaml"
            text = path.read_text()
            path.write_text(text[: text.index("mtu: ")] + f"mtu: {mtu}\n")
            git("commit", "-q", "-am", f"{node}: MTU {mtu}", cwd=user)
            git("push", "-q", str(remote), "HEAD:main", cwd=user)
            started = time.monotonic()
            body = json.dumps({"ref": "refs/heads/main"}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{server.port}/hooks/git", data=body, method="POST",
                                             headers={"X-Hub-Signature-256": sign_github(SECRET, body)})
            urllib.request.urlopen(request, timeout=10).close()
            sb.wait_until(lambda node=node, mtu=mtu: sb.get("multinic.io/v1alpha1", "MultiNicNodeConfig", node,
                                                            namespace=NAMESPACE)["spec"]["interfaces"][0]["mtu"] == mtu,
                          timeout=30, interval=0.02)
            latencies.append(time.monotonic() - started)
        sb.wait_until(lambda: not runner.last_rollout.in_flight, timeout=60)
        runner.shutdown()
        thread.join(20)
        server.stop()

        # Quiet cycles, driven by hand (leader already released; take it back first).
        head = git("--git-dir", str(remote), "rev-parse", "main")
        runner.stop.clear()
        runner.elector.try_acquire_or_renew()
        runner.cycle()  # settle the last status
        head = git("--git-dir", str(remote), "rev-parse", "main")
        sb.request_log.clear()
        timings, polls = [], []
        for _ in range(args.quiet_cycles):
            runner.elector.try_acquire_or_renew()
            started = time.monotonic()
            polled = source.poll()
            polls.append(time.monotonic() - started)
            runner.cycle()
            timings.append(time.monotonic() - started)
        counts = Counter((r.verb, r.resource) for r in sb.request_log.records if r.resource != "leases")
        writes = sum(n for (verb, _), n in counts.items() if verb in ("create", "update", "patch", "delete"))
        committed = git("--git-dir", str(remote), "rev-parse", "main") != head

    print(f"commit -> CR applied via webhook ({args.commits} commits, {args.nodes} nodes):")
    print(f"  median {statistics.median(latencies):.2f}s  max {max(latencies):.2f}s  "
          f"all: {', '.join(f'{x:.2f}' for x in latencies)}  (target < 2s: "
          f"{'met' if max(latencies) < 2 else 'NOT met'})")
    print(f"quiet cycle ({args.quiet_cycles} runs): median {statistics.median(timings):.3f}s, Git poll alone "
          f"median {statistics.median(polls):.3f}s (ls-remote only, changed={polled.changed})")
    per_cycle = {f"{verb} {resource}": n / args.quiet_cycles for (verb, resource), n in sorted(counts.items())}
    print(f"  Kubernetes requests per quiet cycle (besides the Lease): {per_cycle}")
    print(f"  writes: {writes}; status commits: {'yes' if committed else 'none'}")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if writes or committed else 0


if __name__ == "__main__":
    sys.exit(main())
