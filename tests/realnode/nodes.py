"""Real nodes for the realnode tier (helpers, no tests): a Debian tree booted with systemd-nspawn
inside its own network namespace, its NICs veth pairs with the spec's MACs whose peers sit in a
second namespace (they answer pings, and pulling a peer down is a pulled cable).

``NspawnNode`` boots the cached tree on a throw-away overlay (the cache stays pristine), with a
real systemd, D-Bus and NetworkManager inside. ``run_job`` runs the agent exactly as the Job the
controller builds says (``reconciler.kube.jobs.node_job`` → ``multinic_sandbox.harness.podrun``):
read-only root, the Job's hostPath mounts taken from the node's file system
(its overlay as the host sees it, with the node's ``/run/dbus`` bound in, so
``/run/dbus/system_bus_socket`` is the node's own D-Bus), the node's
network namespace (``hostNetwork: true``), the Job's capabilities only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multinic_sandbox.harness import podrun
from multinic_sandbox.kube.node_model import Outcome, fail, succeed

from reconciler.agent.osdetect import read_os_release
from reconciler.config.models import NodeConfig
from reconciler.kube import jobs
from reconciler.nodejob.renderers import os_image_from_release

ROCKY_9 = ('NAME="Rocky Linux"\nVERSION="9.4 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
           'VERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n')
ROCKY_8 = ('NAME="Rocky Linux"\nVERSION="8.10 (Green Obsidian)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
           'VERSION_ID="8.10"\nPRETTY_NAME="Rocky Linux 8.10 (Green Obsidian)"\n')
RHEL8_LAYER = "opt/rhel8"  # in the tree: NetworkManager with ifcfg-rh (scripts/realnode.sh)


def sh(*argv: str, timeout: float = 60, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def job_pod(doc: dict[str, Any], job_type: str = "apply", os_image: str = "Rocky Linux 9.4 (Blue Onyx)",
            **settings: Any) -> dict[str, Any]:
    """The pod the Job controller makes from the Job the reconciler builds for a node whose
    ``status.nodeInfo.osImage`` is ``os_image``."""
    node = NodeConfig.model_validate(doc)
    renderer = jobs.renderer_for(os_image, node.spec.os_family)
    assert renderer is not None
    job = jobs.node_job(job_type, node, namespace="multinic-system", identity=f"{node.name}/1/h//0",
                        spec_hash="h", generation=1,  # type: ignore[arg-type]
                        revision="r", renderer=renderer, settings=jobs.JobSettings(**settings))
    template = job["spec"]["template"]
    return {"metadata": {"name": job["metadata"]["name"] + "-abcde", "namespace": "multinic-system",
                         "labels": template["metadata"]["labels"]},
            "spec": {**template["spec"], "nodeName": node.spec.node_name}}


class NspawnNode:
    """One booted node. ``add_nic`` before ``boot``; ``stop`` tears everything down.

    ``release`` is its /etc/os-release (RHEL 9 by default: NetworkManager with keyfiles);
    ``rhel8`` lays the tree's RHEL 8 layer over it (NetworkManager with ifcfg-rh and keyfile,
    ``plugins=ifcfg-rh,keyfile``), as on RHEL 8."""

    def __init__(self, tree: Path, tmp: Path, name: str = "node-1", release: str = ROCKY_9,
                 rhel8: bool = False) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tree, self.name, self.release, self.rhel8 = tree, name, release, rhel8
        self.netns, self.peer = f"mnr-node-{tag}", f"mnr-peer-{tag}"
        self.dir = tmp / f"nspawn-{tag}"
        self.merged = self.dir / "merged"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self._mounted = False
        self.pod_runs: list[podrun.PodRun] = []  # every pod the kube sandbox ran here (``kubelet``)

    # -- set-up --------------------------------------------------------------------------------
    def start(self) -> None:
        for ns in (self.netns, self.peer):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir(parents=True)
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir={self.tree},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}", str(self.merged))
        self._mounted = True
        if self.rhel8:  # laid over / on the node's overlay (as the QEMU tier does in the guest)
            if not (self.tree / RHEL8_LAYER / "usr/sbin/NetworkManager").is_file():
                raise RuntimeError(f"the tree has no RHEL 8 layer ({RHEL8_LAYER}): rebuild it with scripts/realnode.sh")
            sh("cp", "-a", f"{self.tree / RHEL8_LAYER}/.", f"{self.merged}/")
        etc = self.merged / "etc"
        (etc / "os-release").unlink()
        (etc / "os-release").write_text(self.release)
        (etc / "hostname").write_text(self.name + "\n")
        # the node's /run/dbus, shared with the host side so the Job's hostPath of the D-Bus socket exists
        (self.dir / "dbus").mkdir()
        (self.merged / "run" / "dbus").mkdir(parents=True, exist_ok=True)
        sh("mount", "--bind", str(self.dir / "dbus"), str(self.merged / "run" / "dbus"))

    def add_nic(self, dev: str, mac: str, peer_addresses: tuple[str, ...] = (), peer_mtu: int = 1500) -> None:
        peer = f"p{dev}"[:15]
        sh("ip", "-n", self.netns, "link", "add", dev, "address", mac, "type", "veth", "peer", "name", peer,
           "netns", self.peer)
        sh("ip", "-n", self.peer, "link", "set", peer, "mtu", str(peer_mtu), "up")
        for addr in peer_addresses:
            sh("ip", "-n", self.peer, "addr", "add", addr, "dev", peer, *(["nodad"] if ":" in addr else []))

    def peer_link(self, dev: str, *args: str) -> None:
        sh("ip", "-n", self.peer, "link", "set", f"p{dev}"[:15], *args)

    def boot(self, timeout: float = 60) -> None:
        log = (self.dir / "console.log").open("wb")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "systemd-nspawn", "-q", "-b", "-D", str(self.merged),
             "--register=no", "--keep-unit", f"--machine={self.name}", "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
             f"--bind={self.dir / 'dbus'}:/run/dbus"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.pid is None:
            self.pid = self._find_init()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nspawn did not start: {(self.dir / 'console.log').read_text()[-2000:]}")
            time.sleep(0.05)
        # NetworkManager up and done with its start-up (nm-online -s: startup complete)
        while True:
            done = subprocess.run(self._in("nm-online", "-s", "-q", "-t", "5"), capture_output=True, check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"NetworkManager did not come up: {(self.dir / 'console.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def _find_init(self) -> int | None:
        """The container's systemd: a process named systemd descending from our nspawn."""
        assert self.proc is not None
        parents: dict[int, int] = {}
        names: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                comm_end = stat.rindex(")")
                names[int(entry.name)] = stat[stat.index("(") + 1:comm_end]
                parents[int(entry.name)] = int(stat[comm_end + 2:].split()[1])
        for pid, name in names.items():
            if name != "systemd":
                continue
            ancestor = parents.get(pid, 0)
            while ancestor > 1:
                if ancestor == self.proc.pid:
                    return pid
                ancestor = parents.get(ancestor, 0)
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # nspawn: orderly shutdown of the container
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._mounted:
            subprocess.run(["umount", "-R", "-l", str(self.merged)], capture_output=True, check=False)
        for ns in (self.netns, self.peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

    # -- looking at the node -------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The node's file system as the host sees it (its /etc; its /run/dbus bound in)."""
        return self.merged

    def _in(self, *argv: str) -> list[str]:
        assert self.pid is not None
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "-p", "--", *argv]

    def exec(self, *argv: str, check: bool = True) -> str:
        """A command inside the node (its mount, network and PID namespaces)."""
        return sh(*self._in(*argv), check=check)

    def nmcli(self, *args: str) -> str:
        return self.exec("nmcli", *args)

    def active(self) -> dict[str, str]:
        """device -> name of the NetworkManager connection active on it."""
        out: dict[str, str] = {}
        for line in self.nmcli("-g", "NAME,DEVICE", "connection", "show", "--active").splitlines():
            name, _, device = line.rpartition(":")
            if device and device != "lo":
                out[device] = name
        return out

    def live(self) -> dict[str, Any]:
        """What a network engineer compares: per MAC its name, MTU, state, addresses, routes."""
        links = json.loads(sh("ip", "-n", self.netns, "-j", "addr", "show"))
        state: dict[str, Any] = {}
        for link in links:
            if link.get("link_type") != "ether":
                continue
            routes = []
            for family in ("-4", "-6"):
                for r in json.loads(sh("ip", "-n", self.netns, "-j", family, "route", "show", "table", "main",
                                       "dev", link["ifname"])):
                    if r.get("protocol") == "kernel" and "gateway" not in r:
                        continue  # prefix routes follow the addresses
                    routes.append((r.get("dst"), r.get("gateway"), r.get("metric", 0)))
            state[link["address"]] = {
                "name": link["ifname"], "mtu": link["mtu"], "up": "UP" in link.get("flags", []),
                "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                                    if a.get("scope") == "global"),
                "routes": sorted(routes, key=str),
            }
        return state

    def routes(self) -> list[str]:
        """The node's whole main routing table, both families (blackholes and other devices too)."""
        return sorted(line.strip() for family in ("-4", "-6")
                      for line in sh("ip", "-n", self.netns, family, "route", "show", "table", "main").splitlines())

    def files(self, *dirs: str) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for d in dirs:
            base = self.root / d.lstrip("/")
            if base.is_dir():
                out.update({f"{d}/{p.name}": p.read_bytes() for p in sorted(base.iterdir()) if p.is_file()})
        return out

    # -- the Job -------------------------------------------------------------------------------
    @property
    def os_image(self) -> str:
        """What the kubelet reports as this node's ``status.nodeInfo.osImage`` (from its os-release)."""
        return os_image_from_release(read_os_release(self.root))

    def job_pod(self, doc: dict[str, Any], job_type: str = "apply", **settings: Any) -> dict[str, Any]:
        """The pod of the Job the controller builds for this node (its Node's osImage is ours)."""
        return job_pod(doc, job_type, self.os_image, **settings)

    def run_job(self, doc: dict[str, Any], job_type: str = "apply", **settings: Any) -> tuple[int, dict[str, Any]]:
        """Run the Job's pod on this node; (exit code, the agent's result from the termination message)."""
        run = podrun.run(self.job_pod(doc, job_type, **settings), self.root, netns=self.netns, node_pid=self.pid,
                         timeout=180)
        if not run.message:
            raise AssertionError(f"no termination message (exit {run.exit_code}): {run.stderr[-3000:]}")
        return run.exit_code, json.loads(run.message)

    def kubelet(self) -> Callable[[dict[str, Any]], Outcome]:
        """A node model for the kube sandbox: each pod its Job controller starts on this node runs
        here (``podrun``, as above) and ends as the agent's exit code and termination message say."""
        def run(pod: dict[str, Any]) -> Outcome:
            done = podrun.run(pod, self.root, netns=self.netns, node_pid=self.pid, timeout=180)
            self.pod_runs.append(done)
            return succeed(done.message) if done.exit_code == 0 else fail(done.message, done.exit_code or 1)
        return run
