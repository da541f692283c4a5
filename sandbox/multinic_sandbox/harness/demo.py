"""``reconciler demo``: the whole flow on this machine, with no cluster and no Proxmox host.

It starts the Kubernetes API sandbox (nodes run the real agent against fake roots) and one PVE
sandbox per cluster of ``example-repo``, makes a bare Git remote from ``example-repo`` (cluster
endpoints pointed at the sandboxes, credentials in Kubernetes Secrets), runs the loop
(poll -> validate -> plan -> apply -> rollout -> status commit) until the rollout settles, then
commits as a user would (an MTU change and a node removal), triggers the loop through its
signed webhook, and prints the remote's history. One node is scripted to lose a NIC, and one
VM carries a wrong MAC, so failure reporting and the VM NIC check show too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

FAILING_NODE = "worker-03"  # its agent finds no NIC with one of its MACs
WRONG_MAC_NODE = "worker-02"  # its VM on Proxmox carries a different MAC (caught by the NIC check)
CHANGED_NODE, REMOVED_NODE = "worker-01", "infra-01"
WEBHOOK_SECRET = "demo-webhook-secret"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help="where to keep the remote, caches and fake node roots (default: a temp dir)")
    parser.add_argument("--cycles", type=int, default=40, help="upper bound on reconcile cycles per phase (default 40)")


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", "-c", "user.name=Demo User", "-c", "user.email=demo@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout


def _say(text: str = "") -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    from multinic_sandbox.harness.fleet import AgentHosts, nodes_for
    from multinic_sandbox.harness.kube_setup import ensure_namespace, install_crds, put_cluster_secrets
    from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config
    from multinic_sandbox.kube.server import KubeSandbox
    from multinic_sandbox.proxmox.server import ProxmoxSandbox
    from reconciler import pipeline, resources
    from reconciler.config.validation import validate_repo
    from reconciler.kube.client import Kube
    from reconciler.loop import logs
    from reconciler.loop.metrics import Metrics
    from reconciler.loop.runner import LoopSettings, Runner
    from reconciler.loop.server import HTTPServer, State
    from reconciler.loop.webhook import sign_github
    from reconciler.loop.wiring import StatusReporter
    from reconciler.plan import render
    from reconciler.source.git import GitSource
    from reconciler.source.local import open_directory

    logs.configure("text", "ERROR")  # the demo narrates; the loop's own logs would drown it
    started = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="multinic-demo-")).resolve()
    if (workdir / "remote.git").exists():
        shutil.rmtree(workdir / "remote.git")
    for leftover in ("user", "cache", "hosts"):
        shutil.rmtree(workdir / leftover, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    desired = validate_repo(resources.example_repo_dir()).desired
    namespace = desired.settings.spec.namespace
    _say(f"== multinic-reconciler demo (workdir {workdir})")

    hosts = AgentHosts(workdir / "hosts")
    lost = desired.nodes[FAILING_NODE].spec.interfaces[1].mac_address
    hosts.lose_nic(FAILING_NODE, lost)
    topologies = topologies_from_config(desired, versions={"pve-prod": "8.0", "pve-lab": "7.4"},
                                        wrong_mac=WRONG_MAC_NODE)
    with KubeSandbox() as kube_sb:
        pves = {name: ProxmoxSandbox(topology, auth_failure_delay=0.1).start() for name, topology in topologies.items()}
        try:
            kube_sb.node_model.set_default(hosts)
            api = kube_sb.api_client()
            install_crds(api)
            ensure_namespace(api, namespace)
            kube_sb.seed(*nodes_for(desired))
            _say(f"[1/6] Kubernetes API sandbox at {kube_sb.url} with {len(desired.nodes)} nodes; Proxmox VE "
                 "sandboxes: " + ", ".join(f"{n} {sb.url}" for n, sb in pves.items()))

            remote, user = workdir / "remote.git", workdir / "user"
            _git("init", "--bare", "-q", str(remote))
            shutil.copytree(resources.example_repo_dir(), user)
            point_repo_at(user, {name: sb.url for name, sb in pves.items()})
            _git("init", "-q", cwd=user)
            _git("add", "-A", cwd=user)
            _git("commit", "-q", "-m", "Initial config: 2 Proxmox clusters, 9 nodes", cwd=user)
            _git("push", "-q", str(remote), "HEAD:main", cwd=user)
            put_cluster_secrets(api, namespace, validate_repo(user).desired, pves)
            _say(f"[2/6] Config repo remote {remote} seeded from example-repo (cluster endpoints point at the "
                 "sandboxes; credentials are Kubernetes Secrets, never in Git)")

            def connect(ns: str) -> Kube:
                return Kube(kube_sb.api_client(), ns)

            cycle, _, _ = pipeline.plan_checkout(open_directory(user), connect)
            _say("[3/6] Plan for the first reconcile:")
            _say(_indent(render.text(cycle.changes)))

            remote_url = remote.as_uri()
            source = GitSource(remote_url, branch="main", cache_dir=workdir / "cache" / "source")
            metrics, state = Metrics(), State()
            status_args = argparse.Namespace(repo=remote_url, branch="main", status_branch=None,
                                             status_author_name="multinic-reconciler",
                                             status_author_email="multinic-reconciler@demo.invalid",
                                             cache_dir=str(workdir / "cache"))
            progress = _Progress()
            runner = Runner(source, connect,
                            LoopSettings(interval=2.0, requeue=0.5, identity="demo", lease_namespace=namespace,
                                         retry_period=0.5, nic_check_interval=3600),
                            metrics=metrics, state=state,
                            after_cycle=[StatusReporter(status_args, source, metrics), progress])
            server = HTTPServer(state, metrics, host="127.0.0.1", port=0, webhook_secret=WEBHOOK_SECRET).start()
            loop = threading.Thread(target=runner.run, name="loop", daemon=True)
            loop.start()
            _say("[4/6] Reconciling: Git poll -> validate -> plan -> apply CRs -> register clusters -> node Jobs "
                 "-> status commit")
            _settle(progress, args.cycles)
            _report(progress.last)
            _clusters(progress.verified)
            _nic_checks(progress.nic_checks)

            _git("-c", "core.hooksPath=/dev/null", "pull", "-q", str(remote), "main", cwd=user)
            node_file = user / "nodes" / f"{CHANGED_NODE}.yaml"
            node_file.write_text(node_file.read_text().replace("mtu: 9000", "mtu: 8000", 1))
            _git("rm", "-q", f"nodes/{REMOVED_NODE}.yaml", cwd=user)
            _git("commit", "-q", "-am", f"{CHANGED_NODE}: storage MTU 8000; decommission {REMOVED_NODE}", cwd=user)
            _say(f"[5/6] A user commits: {CHANGED_NODE} storage0 MTU 9000 -> 8000, node {REMOVED_NODE} removed. Plan:")
            cycle, _, _ = pipeline.plan_checkout(open_directory(user), connect)
            _say(_indent(render.text(cycle.changes)))
            _git("push", "-q", str(remote), "HEAD:main", cwd=user)
            body = json.dumps({"ref": "refs/heads/main"}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/hooks/git", data=body, method="POST",
                headers={"X-Hub-Signature-256": sign_github(WEBHOOK_SECRET, body), "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                _say(f"      webhook POST /hooks/git -> {answer.status} (signed like GitHub)")
            progress.reset()
            _settle(progress, args.cycles, require_change=True)
            _report(progress.last)
            runner.shutdown()
            loop.join(timeout=15)
            server.stop()
        finally:
            for sb in pves.values():
                sb.stop()
    _say("[6/6] Status commits in the remote (git log --stat):")
    _say(_indent(_git("--git-dir", str(remote), "log", "--stat", "--format=%h %an: %s", "main")))
    _say(f"Done in {time.monotonic() - started:.0f}s. The remote stays at {remote} "
         f"(git --git-dir {remote} log --stat).")
    return 0


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.rstrip().splitlines())


class _Progress:
    """After-cycle hook: one line per cycle, so the rollout can be watched."""

    def __init__(self) -> None:
        self.cycles: list[Any] = []
        self.done = threading.Event()
        self.last: Any = None
        self.verified: list[Any] = []
        self.nic_checks: dict[str, Any] = {}

    def reset(self) -> None:
        self.cycles.clear()
        self.done.clear()

    def __call__(self, cycle: Any, connect: Any) -> None:
        self.cycles.append(cycle)
        self.last = cycle
        states: dict[str, int] = {}
        for node in (cycle.rollout.nodes.values() if cycle.rollout else []):
            states[node.state] = states.get(node.state, 0) + 1
        writes = sum(1 for a in cycle.applied if a.ok)
        clusters = ", ".join(f"{o.name} verified ({o.reason})" for o in cycle.clusters if o.verified)
        if any(o.verified for o in cycle.clusters):
            self.verified = [o for o in cycle.clusters if o.verified]
        if cycle.nic_checks:
            self.nic_checks = cycle.nic_checks
        revision = (cycle.checkout.revision or "")[:8]
        line = (f"      cycle {len(self.cycles):>2} @{revision}: {writes} CR write(s); nodes "
                + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
                + (f"; {clusters}" if clusters else ""))
        _say(line)
        if cycle.rollout is not None and not cycle.rollout.in_flight:
            self.done.set()


def _settle(progress: _Progress, limit: int, *, require_change: bool = False) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(progress.cycles) < limit:
        if progress.done.wait(0.2):
            if not require_change or any(c.changes.has_changes for c in progress.cycles):
                # one more cycle so the last node states land in Git
                seen = len(progress.cycles)
                while len(progress.cycles) == seen and time.monotonic() < deadline:
                    time.sleep(0.1)
                return
            progress.done.clear()


def _report(cycle: Any) -> None:
    if cycle is None or cycle.rollout is None:
        return
    for name, node in sorted(cycle.rollout.nodes.items()):
        if node.state in ("failed", "stalled", "unschedulable", "remove-failed", "removed"):
            _say(f"      {name}: {node.state} - {node.message}")

def _clusters(outcomes: list[Any]) -> None:
    for o in outcomes:
        status = o.status or {}
        _say(f"      cluster {o.name}: {'Ready' if o.ready else 'not ready'} ({o.reason}); Proxmox VE "
             f"{status.get('version', '?')}, {status.get('onlineNodes', '?')}/{status.get('nodeCount', '?')} nodes "
             f"online, health {status.get('health', '?')}")


def _nic_checks(checks: dict[str, Any]) -> None:
    for name, check in sorted(checks.items()):
        for problem in check.mismatches:
            _say(f"      VM NIC check, {name}: {problem}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
