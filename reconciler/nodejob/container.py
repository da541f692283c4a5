"""What the agent's container gets: command line, environment and host mounts, per renderer.

The controller turns these into the Job's container (``reconciler.kube.jobs``); the agent reads
the same names; the test fleets run exactly this command line in a root that is read-only except
for these mounts. Mounts are derived from the renderer registry, never listed by hand:

* every directory the renderer writes: writable hostPath (``DirectoryOrCreate``);
* ``/sys/class/net`` and ``/etc/os-release``: read-only (MAC lookup, OS label);
* the host's system D-Bus socket, read-only: the agent asks the node's own network stack
  (NetworkManager, netplan's D-Bus service) to check and activate the files. Not mounted in the
  explicit ``iproute2`` fallback mode, which changes the kernel state directly over netlink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.nodejob.renderers import REGISTRY, RendererName

ENV_CONFIG = "MULTINIC_CONFIG"  # the node document (JSON)
ENV_NODE = "NODE_NAME"  # Downward API spec.nodeName: the agent refuses another node's document
COMMAND = ["reconciler"]
TERMINATION_LOG = "/dev/termination-log"
DBUS_SOCKET = "/run/dbus/system_bus_socket"
ACTIVATIONS = ("auto", "iproute2")  # auto: the renderer's own stack; iproute2: explicit fallback

JobAction = Literal["apply", "remove", "verify"]  # verify: report drift, change nothing
HostPathType = Literal["DirectoryOrCreate", "Directory", "File", "Socket"]


@dataclass(frozen=True, slots=True)
class Mount:
    name: str  # volume name
    path: str  # node path = path inside the container
    read_only: bool
    host_type: HostPathType


def _volume_name(path: str) -> str:
    return path.strip("/").replace("/", "-").replace("_", "-").lower()


def mounts(renderer: RendererName, activation: str = "auto") -> list[Mount]:
    """The hostPath mounts the agent needs for ``renderer``: written dirs first, then read-only."""
    spec = REGISTRY[renderer]
    out = [Mount(_volume_name(d), d, False, "DirectoryOrCreate") for d in spec.writes]
    out += [Mount("sys-class-net", "/sys/class/net", True, "Directory"),
            Mount("os-release", "/etc/os-release", True, "File")]
    if activation != "iproute2":
        out.append(Mount("dbus-socket", DBUS_SOCKET, True, "Socket"))
    return out


def args(action: JobAction, renderer: RendererName, activation: str = "auto") -> list[str]:
    """``reconciler agent …`` arguments; the document itself travels in ``MULTINIC_CONFIG``."""
    activate = REGISTRY[renderer].activation if activation == "auto" else activation
    return ["agent", action, "--renderer", renderer, "--activate", activate]


def writable_dirs(renderer: RendererName, activation: str = "auto") -> list[str]:
    return [m.path for m in mounts(renderer, activation) if not m.read_only]
