"""A simulated fleet for the kube sandbox: Kubernetes Node objects and node "hosts" that run the
real agent.

``nodes_for(desired)`` gives one realistic ``Node`` per config node (its ``osImage`` decides which
files the Job mounts). ``AgentHosts`` is a node model: for each Job pod it builds a fake root for
that node (``etc/os-release``, ``sys/class/net/<dev>/address`` with the spec's MACs) and runs the
pod's own command line (``reconciler agent …`` with the Job's args and env) through
``podrun``: a read-only root where only the Job's hostPath mounts are writable, with the Job's
capabilities. A mount the Job forgot therefore fails here as on a node. The one substitution:
a fake node has no network stack, so ``--activate <stack>`` becomes ``--activate none`` (files
only; the real-node tiers in tests/realnode run the stacks). Nodes can be scripted to lose a NIC
(the agent then reports a real error). A node given a network namespace (``netns[node] = name``,
as root) is a real network stack instead: its pods run inside that namespace with the Job's own
``--activate`` (``iproute2``), so live state can be applied, flushed by hand and verified.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from multinic_sandbox.harness import podrun
from multinic_sandbox.kube.node_model import Outcome, fail, succeed
from reconciler.config.models import NodeConfig
from reconciler.config.validation import DesiredState

OS_IMAGES = {
    "ubuntu": ("Ubuntu 24.04.1 LTS", 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
               'PRETTY_NAME="Ubuntu 24.04.1 LTS"\n'),
    "rhel": ("Rocky Linux 9.4 (Blue Onyx)",
             'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
             'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n'),
    "rhel8": ("Red Hat Enterprise Linux 8.10 (Ootpa)",
              'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.10"\n'
              'PRETTY_NAME="Red Hat Enterprise Linux 8.10 (Ootpa)"\n'),
}


def _family(node: NodeConfig) -> str:
    """Which OS the fake node runs: from spec.osFamily, else by name (gpu-* Rocky 9, legacy-* RHEL 8)."""
    if node.name.startswith("legacy"):
        return "rhel8"
    if node.spec.os_family != "auto":
        return node.spec.os_family
    return "rhel" if node.name.startswith("gpu") else "ubuntu"


def node_object(node: NodeConfig) -> dict[str, Any]:
    image = OS_IMAGES[_family(node)][0]
    name = node.spec.node_name
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "status": {"nodeInfo": {
            "osImage": image, "operatingSystem": "linux", "architecture": "amd64",
            "kernelVersion": "6.8.0-45-generic", "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0",
            "containerRuntimeVersion": "containerd://1.7.22", "machineID": "0" * 32, "systemUUID": name,
            "bootID": "00000000-0000-0000-0000-000000000000",
        }},
    }


def nodes_for(desired: DesiredState) -> list[dict[str, Any]]:
    return [node_object(n) for n in desired.nodes.values()]


class AgentHosts:
    """Node model running the real agent against one fake root per node."""

    def __init__(self, workdir: Path | None = None, *, in_process: bool = False) -> None:
        """``in_process``: run the agent's engine in this process (still the real agent, on the
        same fake roots) instead of as the Job's command line under podrun. Only for tests of what
        the controller does with many results (hundreds of pods), never for the Job spec itself."""
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="multinic-hosts-"))
        self.missing_macs: dict[str, set[str]] = {}
        self.netns: dict[str, str] = {}  # node -> network namespace its pods run in (a real stack)
        self.runs: list[tuple[str, podrun.PodRun]] = []  # (node, run) per pod, for tests to inspect
        # Without root or user namespaces (a laptop demo) the agent runs in-process on a root that
        # is writable everywhere, which cannot catch a mount mistake; CI always has podrun.
        why = podrun.available()
        if why is not None and not in_process and os.environ.get("CI") == "true":
            raise RuntimeError(f"AgentHosts cannot run pods as the kubelet would: {why}")
        self.in_process = in_process or why is not None

    def lose_nic(self, node: str, mac: str) -> None:
        """The VM of ``node`` no longer has the NIC with ``mac`` (the agent will say so)."""
        self.missing_macs.setdefault(node, set()).add(mac.lower())

    def root_for(self, node: NodeConfig) -> Path:
        root = self.workdir / node.spec.node_name
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "os-release").write_text(OS_IMAGES[_family(node)][1])
        net = root / "sys" / "class" / "net"
        net.mkdir(parents=True, exist_ok=True)
        for index, iface in enumerate(node.spec.interfaces):
            device = net / f"ens{19 + index}"
            device.mkdir(exist_ok=True)
            if iface.mac_address in self.missing_macs.get(node.spec.node_name, set()):
                (device / "address").write_text("02:00:00:00:00:00\n")
            else:
                (device / "address").write_text(iface.mac_address + "\n")
            (device / "mtu").write_text("1500\n")
            (device / "operstate").write_text("up\n")
        _socket_file(root / "run" / "dbus" / "system_bus_socket")
        return root

    def __call__(self, pod: dict[str, Any]) -> Outcome:
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        node = NodeConfig.model_validate(json.loads(env.get("MULTINIC_CONFIG") or "{}"))
        root = self.root_for(node)
        namespace = self.netns.get(node.spec.node_name)
        if namespace is not None:
            run = podrun.run(pod, root, netns=namespace)  # the Job's own activation, in that namespace
        elif self.in_process:
            return self._in_process(node, root, pod)
        else:
            run = podrun.run(self.fake_stack(pod), root)
        self.runs.append((node.spec.node_name, run))
        # As the kubelet: the message is the termination-message file, nothing else.
        if run.exit_code == 0:
            return succeed(run.message, delay=0.5)
        return fail(run.message, run.exit_code or 1, delay=0.5)

    @staticmethod
    def _in_process(node: NodeConfig, root: Path, pod: dict[str, Any]) -> Outcome:
        import io

        from reconciler.agent import engine

        args = pod["spec"]["containers"][0]["args"]
        renderer = args[args.index("--renderer") + 1] if "--renderer" in args else None
        opts = engine.Options(root=root, config_root=root, renderer=renderer, activate="none", verify="none",
                              out=io.StringIO())
        if args[1] == "remove":
            result = engine.remove(opts, node.spec.node_name)
        elif args[1] == "verify":
            result = engine.verify_only(node, opts)
        else:
            result = engine.apply(node, opts)
        message = result.to_json()
        return succeed(message, delay=0.5) if result.exit_code() == 0 else fail(message, result.exit_code(), delay=0.5)

    @staticmethod
    def fake_stack(pod: dict[str, Any]) -> dict[str, Any]:
        """The pod with ``--activate <stack>`` replaced by ``--activate none`` (no daemon here)."""
        pod = json.loads(json.dumps(pod))
        args = pod["spec"]["containers"][0]["args"]
        if "--activate" in args:
            args[args.index("--activate") + 1] = "none"
        return pod


def _socket_file(path: Path) -> None:
    """A unix socket file nobody listens on (the node's D-Bus socket as a hostPath of type Socket)."""
    if path.is_socket():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


def prepare(sandbox: Any, desired: DesiredState | None = None, *, namespace: str = "multinic-system",
            hosts: Path | None = None, in_process: bool = False) -> AgentHosts:
    """Make a kube sandbox look like a cluster with the chart installed: our CRDs (the chart's
    files), the namespace, and, given a desired state, one Node per config node. Node Jobs run the
    real agent on fake node roots (under ``hosts``, default a temporary directory): returned."""
    import yaml

    from reconciler import resources

    for crd in sorted(resources.crds_dir().glob("*.yaml")):
        sandbox.seed(yaml.safe_load(crd.read_text(encoding="utf-8")))
    sandbox.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    if desired is not None:
        sandbox.seed(*nodes_for(desired))
    agents = AgentHosts(hosts, in_process=in_process)
    sandbox.node_model.set_default(agents)
    return agents


def write_config_repo(path: Path, nodes: int, *, max_parallel: int = 2, max_failures: int = 5) -> Path:
    """A small generated config repo: ``nodes`` Ubuntu nodes with one storage NIC, no Proxmox."""
    if not 0 < nodes < 0xFFFE:
        raise ValueError(f"{nodes} nodes do not fit in 10.9.0.0/16")
    (path / "nodes").mkdir(parents=True)
    (path / "reconciler.yaml").write_text(
        "apiVersion: multinic.io/v1alpha1\nkind: ReconcilerSettings\nmetadata:\n  name: reconciler\n"
        f"spec:\n  rollout:\n    maxParallel: {max_parallel}\n    maxFailures: {max_failures}\n")
    for i in range(nodes):
        host = i + 1  # 10.9.0.1 up to 10.9.255.254: never the network or broadcast address
        (path / "nodes" / f"node-{i:02d}.yaml").write_text(
            f"apiVersion: multinic.io/v1alpha1\nkind: MultiNicNodeConfig\nmetadata:\n  name: node-{i:02d}\n"
            f"spec:\n  osFamily: ubuntu\n  interfaces:\n    - name: storage0\n"
            f"      macAddress: 02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}\n"
            f"      addresses: [10.9.{host >> 8}.{host & 0xFF}/16]\n      mtu: 9000\n")
    return path
