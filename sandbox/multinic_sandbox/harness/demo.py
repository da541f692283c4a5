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
    from reconciler.loop import logs

    logs.configure("text", "ERROR")  # the demo narrates; the loop's own logs would drown it
    started = time.monotonic()
    demo = _Demo(_fresh_workdir(args.workdir), cycles=args.cycles)
    _say(f"== multinic-reconciler demo (workdir {demo.workdir})")
    demo.run()
    _say("[6/6] Status commits in the remote (git log --stat):")
    _say(_indent(_git("--git-dir", str(demo.remote), "log", "--stat", "--format=%h %an: %s", "main")))
    _say(f"Done in {time.monotonic() - started:.0f}s. The remote stays at {demo.remote} "
         f"(git --git-dir {demo.remote} log --stat).")
    return 0


def _fresh_workdir(given: str | None) -> Path:
    workdir = Path(given or tempfile.mkdtemp(prefix="multinic-demo-")).resolve()
    for leftover in ("remote.git", "user", "cache", "hosts"):
        shutil.rmtree(workdir / leftover, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


class _Demo:
    """The six steps, in order; each method is one step of the narration."""

    def __init__(self, workdir: Path, *, cycles: int) -> None:
        from reconciler import resources
        from reconciler.config.validation import validate_repo

        self.workdir, self.cycles = workdir, cycles
        self.remote, self.user = workdir / "remote.git", workdir / "user"
        self.desired = validate_repo(resources.example_repo_dir()).desired
        self.namespace = self.desired.settings.spec.namespace

    def run(self) -> None:
        from multinic_sandbox.harness.fleet import AgentHosts
        from multinic_sandbox.harness.pve_topology import topologies_from_config
        from multinic_sandbox.kube.server import KubeSandbox
        from multinic_sandbox.proxmox.server import ProxmoxSandbox

        hosts = AgentHosts(self.workdir / "hosts")
        hosts.lose_nic(FAILING_NODE, self.desired.nodes[FAILING_NODE].spec.interfaces[1].mac_address)
        topologies = topologies_from_config(self.desired, versions={"pve-prod": "8.0", "pve-lab": "7.4"},
                                            wrong_mac=WRONG_MAC_NODE)
        with KubeSandbox() as kube_sb:
            pves = {name: ProxmoxSandbox(t, auth_failure_delay=0.1).start() for name, t in topologies.items()}
            try:
                self.kube_sb, self.pves = kube_sb, pves
                self.start_cluster(hosts)
                self.seed_remote()
                self.show_plan("[3/6] Plan for the first reconcile:")
                self.reconcile_and_change()
            finally:
                for sb in pves.values():
                    sb.stop()

    def connect(self, namespace: str) -> Any:
        from reconciler.kube.client import Kube

        return Kube(self.kube_sb.api_client(), namespace)

    def start_cluster(self, hosts: Any) -> None:
        """[1/6] CRDs, namespace and one Node per config node, whose Jobs run the real agent."""
        from multinic_sandbox.harness.fleet import nodes_for
        from multinic_sandbox.harness.kube_setup import ensure_namespace, install_crds

        self.kube_sb.node_model.set_default(hosts)
        api = self.kube_sb.api_client()
        install_crds(api)
        ensure_namespace(api, self.namespace)
        self.kube_sb.seed(*nodes_for(self.desired))
        _say(f"[1/6] Kubernetes API sandbox at {self.kube_sb.url} with {len(self.desired.nodes)} nodes; Proxmox VE "
             "sandboxes: " + ", ".join(f"{n} {sb.url}" for n, sb in self.pves.items()))

    def seed_remote(self) -> None:
        """[2/6] A bare remote seeded from example-repo; cluster credentials go to Secrets only."""
        from multinic_sandbox.harness.kube_setup import put_cluster_secrets
        from multinic_sandbox.harness.pve_topology import point_repo_at
        from reconciler import resources
        from reconciler.config.validation import validate_repo

        _git("init", "--bare", "-q", str(self.remote))
        shutil.copytree(resources.example_repo_dir(), self.user)
        point_repo_at(self.user, {name: sb.url for name, sb in self.pves.items()})
        _git("init", "-q", cwd=self.user)
        _git("add", "-A", cwd=self.user)
        _git("commit", "-q", "-m", "Initial config: 2 Proxmox clusters, 9 nodes", cwd=self.user)
        _git("push", "-q", str(self.remote), "HEAD:main", cwd=self.user)
        put_cluster_secrets(self.kube_sb.api_client(), self.namespace, validate_repo(self.user).desired, self.pves)
        _say(f"[2/6] Config repo remote {self.remote} seeded from example-repo (cluster endpoints point at the "
             "sandboxes; credentials are Kubernetes Secrets, never in Git)")

    def show_plan(self, title: str) -> None:
        from reconciler import pipeline
        from reconciler.plan import render
        from reconciler.source.local import open_directory

        cycle, _, _ = pipeline.plan_checkout(open_directory(self.user), self.connect)
        _say(title)
        _say(_indent(render.text(cycle.changes)))

    def reconcile_and_change(self) -> None:
        """[4/6] the loop until the rollout settles; [5/6] a user's commit through the webhook."""
        from reconciler.loop.metrics import Metrics
        from reconciler.loop.runner import LoopSettings, Runner
        from reconciler.loop.server import HTTPServer, State
        from reconciler.loop.wiring import StatusReporter
        from reconciler.source.opening import SourceSpec, open_source

        remote_url = self.remote.as_uri()
        source = open_source(SourceSpec(remote_url, branch="main"), self.workdir / "cache" / "source")
        metrics, state = Metrics(), State()
        status_args = argparse.Namespace(repo=remote_url, branch="main", status_branch=None,
                                         status_author_name="multinic-reconciler",
                                         status_author_email="multinic-reconciler@demo.invalid",
                                         cache_dir=str(self.workdir / "cache"))
        progress = _Progress()
        runner = Runner(source, self.connect,
                        LoopSettings(interval=2.0, requeue=0.5, identity="demo", lease_namespace=self.namespace,
                                     retry_period=0.5, nic_check_interval=3600),
                        metrics=metrics, state=state,
                        after_cycle=[StatusReporter(status_args, source, metrics), progress])
        server = HTTPServer(state, metrics, host="127.0.0.1", port=0, webhook_secret=WEBHOOK_SECRET).start()
        loop = threading.Thread(target=runner.run, name="loop", daemon=True)
        loop.start()
        try:
            _say("[4/6] Reconciling: Git poll -> validate -> plan -> apply CRs -> register clusters -> node Jobs "
                 "-> status commit")
            _settle(progress, self.cycles)
            _report(progress.last)
            _clusters(progress.verified)
            _nic_checks(progress.nic_checks)
            self.user_commit()
            _webhook(server.port)
            progress.reset()
            _settle(progress, self.cycles, require_change=True)
            _report(progress.last)
        finally:
            runner.shutdown()
            loop.join(timeout=15)
            server.stop()

    def user_commit(self) -> None:
        """[5/6] An MTU change and a node removal, planned, then pushed."""
        _git("-c", "core.hooksPath=/dev/null", "pull", "-q", str(self.remote), "main", cwd=self.user)
        node_file = self.user / "nodes" / f"{CHANGED_NODE}.yaml"
        node_file.write_text(node_file.read_text().replace("mtu: 9000", "mtu: 8000", 1))
        _git("rm", "-q", f"nodes/{REMOVED_NODE}.yaml", cwd=self.user)
        _git("commit", "-q", "-am", f"{CHANGED_NODE}: storage MTU 8000; decommission {REMOVED_NODE}", cwd=self.user)
        self.show_plan(f"[5/6] A user commits: {CHANGED_NODE} storage0 MTU 9000 -> 8000, node {REMOVED_NODE} "
                       "removed. Plan:")
        _git("push", "-q", str(self.remote), "HEAD:main", cwd=self.user)


def _webhook(port: int) -> None:
    from reconciler.loop.webhook import sign_github

    body = json.dumps({"ref": "refs/heads/main"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/git", data=body, method="POST",
        headers={"X-Hub-Signature-256": sign_github(WEBHOOK_SECRET, body), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        _say(f"      webhook POST /hooks/git -> {answer.status} (signed like GitHub)")


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
