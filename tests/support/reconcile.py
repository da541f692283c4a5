"""A reconcile environment: a kube sandbox with our CRDs, the namespace and one Node per config
node, plus a config repo that is a real Git repository (so revisions exist).

    with start_env(git_repo(EXAMPLE_REPO, tmp_path / "repo")) as env:
        cycle = env.apply()
        assert env.cr("worker-01")["spec"] == ...
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from multinic_sandbox.harness.fleet import AgentHosts, nodes_for
from multinic_sandbox.kube.node_model import Outcome
from multinic_sandbox.kube.server import KubeSandbox

from reconciler import pipeline
from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.kube.jobs import JOB_SELECTOR, JobSettings, job_state
from reconciler.kube.retry import Backoff
from reconciler.source.local import Checkout, open_directory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_REPO = ROOT / "example-repo"
CRD_DIR = ROOT / "charts" / "multinic-reconciler" / "crds"
NAMESPACE = "multinic-system"
API_VERSION = "multinic.io/v1alpha1"
NODE_KIND = "MultiNicNodeConfig"
CLUSTER_KIND = "ProxmoxCluster"
FAST_BACKOFF = Backoff(attempts=6, base=0.01, cap=0.05)

_GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
            "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin:/usr/local/bin"}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=_GIT_ENV, timeout=60)
    return done.stdout.strip()


def commit(repo: Path, message: str = "change") -> str:
    """Commit everything in the work tree; returns the new revision."""
    git(repo, "add", "-A", ".")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def git_repo(source: Path | None, dest: Path) -> Path:
    """``source`` (a config repo directory) copied to ``dest`` as a fresh Git repo with one commit;
    with ``source=None``, ``dest`` itself (already on disk) becomes the repo."""
    if source is not None:
        shutil.copytree(source, dest)
    git(dest, "init", "-q", "-b", "main")
    commit(dest, "initial")
    return dest


def warn_on_vm_nics(repo: Path) -> Path:
    """Set ``spec.proxmox.nicCheck: warn`` in every node file of ``repo`` and commit: for tests of
    the rollout itself, where no PVE sandbox answers and nodes would otherwise wait for their
    VM NIC check (the default, enforce)."""
    for path in sorted((repo / "nodes").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        new = re.sub(r"^(?P<indent>\s+)vmid: (?P<vmid>\d+)$", r"\g<0>\n\g<indent>nicCheck: warn", text, flags=re.M)
        path.write_text(new, encoding="utf-8")
    commit(repo, "nicCheck: warn")
    return repo


def settings_doc(*, max_parallel: int = 3, max_failures: int = 2, prune: bool = True,
                 max_delete_percent: int = 25) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ReconcilerSettings", "metadata": {"name": "reconciler"},
            "spec": {"namespace": NAMESPACE,
                     "rollout": {"maxParallel": max_parallel, "maxFailures": max_failures},
                     "prune": {"enabled": prune, "maxDeletePercent": max_delete_percent}}}


def node_doc(index: int, *, interfaces: int = 2, cluster: str = "pve-gen", mtu: int = 1500,
             os_family: str = "ubuntu", nic_check: str | None = "warn") -> dict[str, Any]:
    """A valid node document with MACs and addresses unique to ``index`` (0..65533).

    ``pve-gen`` is not a reachable Proxmox cluster, so the nodes say ``nicCheck: warn`` (they roll
    out while their VM cannot be checked); ``nic_check=None`` leaves the default (enforce)."""
    hi, lo = divmod(index, 256)
    host_hi, host_lo = divmod(index + 1, 256)  # never the network address
    ifaces = []
    for n in range(interfaces):
        ifaces.append({
            "name": f"net{n}",
            "macAddress": f"bc:24:{0x11 + n:02x}:{hi:02x}:{lo:02x}:{n + 1:02x}",
            "addresses": [f"10.{100 + n}.{host_hi}.{host_lo}/16"],
            "mtu": mtu,
            "proxmoxNet": f"net{n + 1}",
        })
    return {"apiVersion": API_VERSION, "kind": NODE_KIND, "metadata": {"name": node_name(index)},
            "spec": {"osFamily": os_family,
                     "proxmox": {"cluster": cluster, "vmid": 1000 + index,
                                 **({"nicCheck": nic_check} if nic_check else {})},
                     "interfaces": ifaces}}


def node_name(index: int) -> str:
    return f"node-{index:04d}"


def cluster_doc(name: str = "pve-gen") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": CLUSTER_KIND, "metadata": {"name": name},
            "spec": {"apiEndpoint": f"https://{name}.example.net",
                     "credentialsSecretRef": {"name": f"{name}-token"}}}


def write_doc(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def generate_repo(dest: Path, count: int, *, interfaces: int = 2, **settings: Any) -> Path:
    """A config repo of ``count`` generated nodes and one cluster (not a Git repo)."""
    write_doc(dest / "reconciler.yaml", settings_doc(**settings))
    write_doc(dest / "clusters" / "pve-gen.yaml", cluster_doc())
    for index in range(count):
        write_doc(dest / "nodes" / f"{node_name(index)}.yaml", node_doc(index, interfaces=interfaces))
    return dest


def install_crds(sandbox: KubeSandbox) -> None:
    for path in sorted(CRD_DIR.glob("*.yaml")):
        sandbox.seed(yaml.safe_load(path.read_text(encoding="utf-8")))
    sandbox.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


@dataclass
class ReconcileEnv:
    sandbox: KubeSandbox
    repo: Path
    job_settings: JobSettings | None = None

    def kube(self, namespace: str = NAMESPACE) -> Kube:
        """A fresh adapter (a new client, as a restarted reconciler would build)."""
        return Kube(self.sandbox.api_client(), namespace, backoff=FAST_BACKOFF)

    def connect(self, namespace: str) -> Kube:
        return self.kube(namespace)

    def checkout(self) -> Checkout:
        return open_directory(self.repo)

    def apply(self) -> pipeline.Cycle:
        # The cluster's clock (the sandbox's) is the time the rollout measures backoffs against.
        return pipeline.apply_once(self.checkout(), self.connect, job_settings=self.job_settings,
                                   now=self.sandbox.clock.now())

    def plan(self) -> pipeline.Cycle:
        return pipeline.plan_checkout(self.checkout(), self.connect)[0]

    def commit(self, message: str = "change") -> str:
        return commit(self.repo, message)

    # -- reading the sandbox directly (no HTTP, not in the request log) --------------------------
    def cr(self, name: str, kind: str = NODE_KIND) -> dict[str, Any] | None:
        return self.sandbox.get(API_VERSION, kind, name, namespace=NAMESPACE)

    def crs(self, kind: str = NODE_KIND) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.sandbox.list(API_VERSION, kind, NAMESPACE)}

    def jobs(self) -> list[dict[str, Any]]:
        return self.sandbox.list("batch/v1", "Job", NAMESPACE, JOB_SELECTOR)

    def active_jobs(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs() if job_state(j) == "running"]

    def writes(self) -> list[tuple[str, str, str]]:
        return [(r.verb, r.resource, r.name) for r in self.sandbox.request_log.writes()]


def real_agents(workdir: Path, delay: Callable[[dict[str, Any]], float] | None = None) -> Callable[
        [dict[str, Any]], Outcome]:
    """A node model running the real agent on one fake root per node under ``workdir`` (the
    fleet's hosts); ``delay(pod)`` sets how long each pod runs on the sandbox clock."""
    hosts = AgentHosts(workdir)

    def run(pod: dict[str, Any]) -> Outcome:
        outcome = hosts(pod)
        return outcome if delay is None else replace(outcome, delay=delay(pod))

    run.hosts = hosts  # type: ignore[attr-defined]
    return run


def start_sandbox(repo: Path | None, *, jobs: str = "auto", seed_nodes: bool = True) -> KubeSandbox:
    sandbox = KubeSandbox(jobs=jobs).start()
    install_crds(sandbox)
    # Node Jobs run the real agent on fake roots (next to the repo, so tests can look at them).
    hosts = repo.parent / "hosts" if repo is not None else Path(tempfile.mkdtemp(prefix="multinic-hosts-"))
    sandbox.node_model.set_default(real_agents(hosts, lambda pod: 0.0))
    if seed_nodes and repo is not None:
        sandbox.seed(*nodes_for(validate_repo(repo).desired))
    return sandbox


@contextmanager
def start_env(repo: Path, *, jobs: str = "auto", seed_nodes: bool = True,
              job_settings: JobSettings | None = None) -> Iterator[ReconcileEnv]:
    sandbox = start_sandbox(repo, jobs=jobs, seed_nodes=seed_nodes)
    try:
        yield ReconcileEnv(sandbox, repo, job_settings)
    finally:
        sandbox.stop()
