"""A wire-level Proxmox VE API server for tests and the demo.

Contract:

* HTTPS only, on 127.0.0.1 and a chosen or free port, with a CA generated per run (trustme);
  ``ca_file`` is its PEM. Several sandboxes can run at once (one per PVE cluster).
* Serves ``/api2/json`` like pveproxy: ticket auth (``POST /access/ticket``, cookie
  ``PVEAuthCookie``, ``CSRFPreventionToken`` on writes) and API tokens
  (``Authorization: PVEAPIToken=user@realm!name=secret``); ``GET /version``, ``/nodes``,
  ``/cluster/status``, ``/cluster/resources``, ``/nodes/{node}/qemu``,
  ``/nodes/{node}/qemu/{vmid}/config``, ``/nodes/{node}/status``, ``/nodes/{node}/version``,
  ``/access/permissions``; ``PUT``/``POST /nodes/{node}/qemu/{vmid}/config`` for ``netN`` and
  ``delete=`` (VM.Config.Network, ``digest`` conflicts, hot-plug or ``pending``).
  Response and error shapes follow the recordings in ``tests/data/pve/``; errors carry their
  text in the HTTP reason phrase, as PVE does, and real status codes (401/403/500/501/595/596).
* Behaviour is scripted by a ``Topology`` (plain data, ``Topology.from_dict``) and ``Faults``;
  every request lands in ``request_log`` (method, path, status, auth kind; never a secret).
* Its log output never contains a password, token secret or ticket; only ``info()`` (the
  ``--info-out`` file) hands the default user's credentials out.

Entry points: ``ProxmoxSandbox`` (in-process), ``reconciler sandbox proxmox`` (``cli``), and the
pytest plugin ``multinic_sandbox.proxmox.pytest_plugin`` (fixtures ``pve_sandbox`` & co).
``from_config`` builds topologies matching a config repo (demo); ``kube_setup`` puts CRDs and the
clusters' Secrets into a Kubernetes API (kube sandbox) for registration.
"""

from multinic_sandbox.proxmox.faults import FaultRule, Faults
from multinic_sandbox.proxmox.requestlog import RequestLog, RequestRecord
from multinic_sandbox.proxmox.server import ProxmoxSandbox
from multinic_sandbox.proxmox.topology import (
    ROLES,
    VERSION_PRESETS,
    ApiToken,
    Node,
    PveVersion,
    Topology,
    User,
    Vm,
    default_topology,
)

__all__ = [
    "ROLES",
    "VERSION_PRESETS",
    "ApiToken",
    "FaultRule",
    "Faults",
    "Node",
    "ProxmoxSandbox",
    "PveVersion",
    "RequestLog",
    "RequestRecord",
    "Topology",
    "User",
    "Vm",
    "default_topology",
]
