"""A simulated fleet for the kube sandbox: Kubernetes Node objects and node "hosts" that run the
real agent.

``nodes_for(desired)`` gives one realistic ``Node`` per config node (its ``osImage`` decides which
files the Job mounts). ``AgentHosts`` is a node model: for each Job pod it builds a fake root for
that node (``etc/os-release``, ``sys/class/net/<dev>/address`` with the spec's MACs) and runs the
real agent engine on it (``--activate none``), so the termination message the
reconciler reads is a genuine agent result. Nodes can be scripted to lose a NIC (the agent then
reports a real error).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from multinic_sandbox.kube.node_model import Outcome, fail, succeed
from reconciler.config.models import NodeConfig
from reconciler.config.validation import DesiredState

OS_IMAGES = {
    "ubuntu": ("Ubuntu 24.04.1 LTS", 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'),
    "rhel": ("Rocky Linux 9.4 (Blue Onyx)",
             'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'),
}


def _family(node: NodeConfig) -> str:
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

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="multinic-hosts-"))
        self.missing_macs: dict[str, set[str]] = {}

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
        return root

    def __call__(self, pod: dict[str, Any]) -> Outcome:
        # In-process (the agent's engine, the same code path as ``reconciler agent``): the sandbox
        # consults its node model while serving, so this must be quick.
        import io

        from reconciler.agent import engine

        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        node = NodeConfig.model_validate(json.loads(env.get("MULTINIC_CONFIG") or "{}"))
        root = self.root_for(node)
        opts = engine.Options(root=root, config_root=root, activate="none", activate_command=None, verify="none",
                              verify_timeout=1.0, dry_run=False, out=io.StringIO())
        if container["args"][1] == "remove":
            result = engine.remove(opts, node.spec.node_name)
        else:
            result = engine.apply(node, opts)
        message = result.to_json()
        return succeed(message, delay=0.5) if result.exit_code() == 0 else fail(message, result.exit_code(), delay=0.5)


def prepare(sandbox: Any, desired: DesiredState | None = None, *, namespace: str = "multinic-system",
            hosts: Path | None = None) -> AgentHosts:
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
    agents = AgentHosts(hosts)
    sandbox.node_model.set_default(agents)
    return agents


def write_config_repo(path: Path, nodes: int, *, max_parallel: int = 2, max_failures: int = 5) -> Path:
    """A small generated config repo: ``nodes`` Ubuntu nodes with one storage NIC, no Proxmox."""
    (path / "nodes").mkdir(parents=True)
    (path / "reconciler.yaml").write_text(
        "apiVersion: multinic.io/v1alpha1\nkind: ReconcilerSettings\nmetadata:\n  name: reconciler\n"
        f"spec:\n  rollout:\n    maxParallel: {max_parallel}\n    maxFailures: {max_failures}\n")
    for i in range(nodes):
        (path / "nodes" / f"node-{i:02d}.yaml").write_text(
            f"apiVersion: multinic.io/v1alpha1\nkind: MultiNicNodeConfig\nmetadata:\n  name: node-{i:02d}\n"
            f"spec:\n  osFamily: ubuntu\n  interfaces:\n    - name: storage0\n"
            f"      macAddress: 02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}\n"
            f"      addresses: [10.9.{i >> 8}.{(i & 0xFF) + 1}/16]\n      mtu: 9000\n")
    return path
