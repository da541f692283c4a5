"""The PVE API endpoints the sandbox serves, as plain functions of (topology, request) -> data.

Shapes follow the recordings in ``tests/data/pve/`` (field names, types, ordering irrelevant).
Errors are ``ApiError`` carrying what pveproxy would send: status, reason phrase, and either a
JSON body (``{"data": null}`` + ``errors``/``message``) or an empty one (proxy errors).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multinic_sandbox.proxmox.auth import Principal, principal_for
from multinic_sandbox.proxmox.topology import Node, Topology, Vm

GIB = 1024**3


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: dict[str, str] | None = None,
        json_body: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.json_body = json_body


@dataclass
class ApiRequest:
    method: str
    path: str  # relative to /api2/json
    query: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None

    @property
    def caller(self) -> Principal:
        assert self.principal is not None  # every routed endpoint is authenticated
        return self.principal


Handler = Callable[[Topology, ApiRequest, dict[str, str]], Any]


def _fingerprint(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def _proxy_to(topology: Topology, node_name: str) -> Node:
    """Requests for /nodes/{node}/... are proxied by pveproxy to that node."""
    node = topology.node(node_name)
    if node is None:
        raise ApiError(
            500,
            f"hostname lookup '{node_name}' failed - failed to get address info for: "
            f"{node_name}: Name or service not known",
        )
    if not node.online:
        # AnyEvent::HTTP status of the failed proxy connection; empty body (see error_595.json).
        raise ApiError(595, "Connection timed out", json_body=False)
    return node


def _uptime(node: Node) -> int:
    return 2236708 + len(node.name) * 1000 if node.online else 0


def version(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    v = topology.version
    return {"version": v.version, "release": v.release, "repoid": v.repoid}


def nodes_index(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    out = []
    for node in topology.nodes:
        entry: dict[str, Any] = {
            "node": node.name,
            "status": "online" if node.online else "offline",
            "type": "node",
            "id": f"node/{node.name}",
            "level": "",
            "ssl_fingerprint": _fingerprint(node.name),
        }
        # PVE lists every node but only shows stats with Sys.Audit on /nodes/{node}.
        if node.online and request.caller.has(f"/nodes/{node.name}", "Sys.Audit"):
            entry.update(_node_stats(node))
        out.append(entry)
    return out


def _node_stats(node: Node) -> dict[str, Any]:
    return {
        "uptime": _uptime(node),
        "cpu": 0.00348605577689243,
        "maxcpu": node.maxcpu,
        "mem": node.maxmem // 3,
        "maxmem": node.maxmem,
        "disk": 2310930432,
        "maxdisk": 940743983104,
    }


def cluster_status(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    request.caller.require("/", "Sys.Audit")
    local = topology.local_node
    if topology.cluster is None:
        return [
            {
                "type": "node",
                "id": f"node/{local.name}",
                "name": local.name,
                "ip": local.ip,
                "level": "",
                "local": 1,
                "nodeid": 0,
                "online": 1,
            }
        ]
    online = sum(1 for n in topology.nodes if n.online)
    out: list[dict[str, Any]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": topology.cluster,
            "version": topology.cluster_config_version,
            "quorate": 1 if online * 2 > len(topology.nodes) else 0,
            "nodes": len(topology.nodes),
        }
    ]
    for index, node in enumerate(topology.nodes, start=1):
        out.append(
            {
                "type": "node",
                "id": f"node/{node.name}",
                "name": node.name,
                "nodeid": index,
                "ip": node.ip,
                "local": 1 if node is local else 0,
                "online": 1 if node.online else 0,
                "level": "",
            }
        )
    return out


_RESOURCE_TYPES = ("vm", "storage", "node", "sdn")


def cluster_resources(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    wanted = request.query.get("type")
    if wanted is not None and wanted not in _RESOURCE_TYPES:
        raise ApiError(
            400,
            "Parameter verification failed.",
            errors={
                "type": f"value '{wanted}' does not have a value in the enumeration '{', '.join(_RESOURCE_TYPES)}'"
            },
        )
    caller = request.caller
    out: list[dict[str, Any]] = []
    if wanted in (None, "vm"):
        for node in topology.nodes:
            for vm in node.vms:
                if caller.has(f"/vms/{vm.vmid}", "VM.Audit"):
                    out.append(_vm_resource(node, vm))
    if wanted in (None, "node"):
        for node in topology.nodes:
            if caller.has(f"/nodes/{node.name}", "Sys.Audit"):
                entry = {
                    "id": f"node/{node.name}",
                    "type": "node",
                    "node": node.name,
                    "status": "online" if node.online else "offline",
                    "level": "",
                    "cgroup-mode": 2,
                }
                if node.online:
                    entry.update(_node_stats(node))
                out.append(entry)
    if wanted in (None, "storage"):
        for node in topology.nodes:
            if caller.has("/storage/local", "Datastore.Audit"):
                out.append(
                    {
                        "id": f"storage/{node.name}/local",
                        "type": "storage",
                        "node": node.name,
                        "storage": "local",
                        "status": "available" if node.online else "unknown",
                        "content": "iso,vztmpl,backup",
                        "plugintype": "dir",
                        "shared": 0,
                        "disk": 10487595008,
                        "maxdisk": 948338819072,
                    }
                )
    return out


def _vm_running(node: Node, vm: Vm) -> bool:
    return node.online and vm.status == "running"


def _vm_resource(node: Node, vm: Vm) -> dict[str, Any]:
    running = _vm_running(node, vm)
    return {
        "id": f"qemu/{vm.vmid}",
        "type": "qemu",
        "vmid": vm.vmid,
        "name": vm.name,
        "node": node.name,
        "status": (vm.status if node.online else "unknown"),
        "template": 1 if vm.template else 0,
        "cpu": 0.174069059487628 if running else 0,
        "maxcpu": vm.cores,
        "mem": (vm.memory * 1024 * 1024) // 4 if running else 0,
        "maxmem": vm.memory * 1024 * 1024,
        "disk": 0,
        "maxdisk": 32 * GIB,
        "diskread": 6656 if running else 0,
        "diskwrite": 0,
        "netin": 416956 if running else 0,
        "netout": 17330 if running else 0,
        "uptime": 669 if running else 0,
    }


def node_qemu(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    node = _proxy_to(topology, params["node"])
    out = []
    for vm in node.vms:
        if not request.caller.has(f"/vms/{vm.vmid}", "VM.Audit"):
            continue
        running = _vm_running(node, vm)
        entry: dict[str, Any] = {
            "vmid": vm.vmid,
            "name": vm.name,
            "status": vm.status,
            "cpus": vm.cores,
            "cpu": 0.174069059487628 if running else 0,
            "maxmem": vm.memory * 1024 * 1024,
            "mem": (vm.memory * 1024 * 1024) // 4 if running else 0,
            "maxdisk": 32 * GIB,
            "disk": 0,
            "diskread": 6656 if running else 0,
            "diskwrite": 0,
            "netin": 416956 if running else 0,
            "netout": 17330 if running else 0,
            "uptime": 669 if running else 0,
        }
        if running:
            entry["pid"] = 4076000 + vm.vmid
        out.append(entry)
    return out


def _vmid(params: dict[str, str]) -> int:
    raw = params["vmid"]
    if not raw.isdigit():
        raise ApiError(
            400,
            "Parameter verification failed.",
            errors={"vmid": f"type check ('integer') failed - got '{raw}'"},
        )
    return int(raw)


def _vm_on(node: Node, vmid: int) -> Vm:
    vm = next((v for v in node.vms if v.vmid == vmid), None)
    if vm is None:
        raise ApiError(500, f"Configuration file 'nodes/{node.name}/qemu-server/{vmid}.conf' does not exist")
    return vm


def qemu_config(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    vmid = _vmid(params)
    node = _proxy_to(topology, params["node"])
    request.caller.require(f"/vms/{vmid}", "VM.Audit")
    vm = _vm_on(node, vmid)
    config = _config_of(vm)
    if request.query.get("current") != "1":  # PVE answers with the pending values applied unless current=1
        for slot, value in vm.pending.items():
            if value is None:
                config.pop(slot, None)
            else:
                config[slot] = value
    return config


def _config_of(vm: Vm) -> dict[str, Any]:
    vmid = vm.vmid
    config: dict[str, Any] = {
        "name": vm.name,
        "memory": vm.memory,
        "cores": vm.cores,
        "sockets": 1,
        "ostype": "l26",
        "scsihw": "virtio-scsi-single",
        "scsi0": f"local-lvm:vm-{vmid}-disk-0,iothread=1,size=32G",
        "boot": "order=scsi0;net0",
        "smbios1": f"uuid=00000000-0000-4000-8000-{vmid:012d}",
        "vmgenid": f"00000000-0000-4000-9000-{vmid:012d}",
        **vm.net,
        **vm.extra_config,
    }
    text = "".join(f"{k}: {config[k]}\n" for k in sorted(config))
    text += "".join(f"[PENDING] {k}: {v}\n" for k, v in sorted(vm.pending.items(), key=lambda kv: kv[0]))
    config["digest"] = hashlib.sha1(text.encode()).hexdigest()
    return config


# --- config writes (qemu-server update_vm): netN only, the part this project manages -------------

_NET_KEYS = {"bridge", "tag", "mtu", "firewall", "link_down", "queues", "rate", "trunks", "macaddr", "model"}
_NIC_MODELS = {
    "e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b", "i82559er",
    "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3",
}  # fmt: skip
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def _net_value(slot: str, value: str, vmid: int) -> str:
    """Validate a ``netN`` value as qemu-server's format does; a model without a MAC gets one
    (PVE's BC:24:11 prefix). Raises the 400 PVE answers for a bad value."""

    def bad(why: str) -> ApiError:
        return ApiError(400, "Parameter verification failed.", errors={slot: f"invalid format - {why}"})

    parts = [p.strip() for p in value.split(",") if p.strip()]
    model = mac = None
    options: list[str] = []
    for position, part in enumerate(parts):
        key, sep, val = part.partition("=")
        if position == 0 and key in _NIC_MODELS:
            model, mac = key, (val if sep else None)
            continue
        if key not in _NET_KEYS or not sep:
            raise bad(f"property is not defined in schema and the schema does not allow additional properties: {key}")
        if key == "model":
            if val not in _NIC_MODELS:
                raise bad(f"value '{val}' does not have a value in the enumeration")
            model = val
        elif key == "macaddr":
            mac = val
        else:
            if key in ("tag", "mtu", "queues") and not val.isdigit():
                raise bad(f"{key}: type check ('integer') failed - got '{val}'")
            if key in ("firewall", "link_down") and val not in ("0", "1"):
                raise bad(f"{key}: type check ('boolean') failed - got '{val}'")
            if key == "tag" and not 1 <= int(val) <= 4094:
                raise bad("tag: value must have a minimum value of 1")
            options.append(f"{key}={val}")
    if model is None:
        raise bad("property is missing and it is not optional: model")
    if mac is None:
        digest = hashlib.sha1(f"{vmid}{slot}".encode()).hexdigest().upper()
        mac = f"BC:24:11:{digest[0:2]}:{digest[2:4]}:{digest[4:6]}"
    if not _MAC.fullmatch(mac) or int(mac[:2], 16) & 1:
        raise bad(f"value does not match the regex pattern (invalid unicast MAC address '{mac}')")
    return ",".join([f"{model}={mac.upper()}", *options])


def _hotplug_network(vm: Vm) -> bool:
    setting = str(vm.extra_config.get("hotplug", "network,disk,usb"))
    return setting == "1" or "network" in setting.split(",")


def qemu_config_update(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    """``PUT`` (sync, answers null) or ``POST`` (async, answers a task UPID) ``.../config``.

    As qemu-server: VM.Config.Network on /vms/{vmid} for netN changes; ``digest`` must be the
    current config's (else 500 "detected modified configuration"); ``delete`` lists keys to
    remove; on a running VM a NIC change is hot-plugged when ``hotplug`` includes network, else it
    waits in ``pending`` for the next boot. Only netN (and ``delete`` of netN) are accepted here.
    """
    vmid = _vmid(params)
    node = _proxy_to(topology, params["node"])
    vm = _vm_on(node, vmid)
    query = dict(request.query)
    digest = query.pop("digest", None)
    deletes = [k.strip() for k in query.pop("delete", "").replace(";", ",").split(",") if k.strip()]
    query.pop("skiplock", None)
    query.pop("current", None)
    sets: dict[str, str] = {}
    for key, value in query.items():
        if not re.fullmatch(r"net([0-9]|[12][0-9]|3[01])", key):
            why = "property is not defined in schema and the schema does not allow additional properties"
            raise ApiError(400, "Parameter verification failed.", errors={key: why})
        sets[key] = _net_value(key, value, vmid)
    for key in deletes:
        if not re.fullmatch(r"net([0-9]|[12][0-9]|3[01])", key):
            raise ApiError(400, "Parameter verification failed.", errors={"delete": f"invalid format - {key}"})
        if key in sets:
            raise ApiError(400, f"unable to delete '{key}' - parameter is also set")
    if not sets and not deletes:
        raise ApiError(400, "no options specified")
    request.caller.require(f"/vms/{vmid}", "VM.Config.Network")
    if digest is not None and digest != _config_of(vm)["digest"]:
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
    live = _vm_running(node, vm) and _hotplug_network(vm)
    if _vm_running(node, vm) and not live:
        vm.pending.update(sets)
        vm.pending.update({k: None for k in deletes})
    else:
        for key, value in sets.items():
            vm.net[key] = value
            vm.pending.pop(key, None)
        for key in deletes:
            vm.net.pop(key, None)
            vm.pending.pop(key, None)
    vm.writes += 1
    if request.method == "POST":
        stamp = f"{vm.writes:08X}"
        return f"UPID:{node.name}:{vmid:08X}:{stamp}:{stamp}:qmconfig:{vmid}:{request.caller.name}:"
    return None


def node_status(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    node = _proxy_to(topology, params["node"])
    request.caller.require(f"/nodes/{node.name}", "Sys.Audit")
    v = topology.version
    return {
        "uptime": _uptime(node),
        "idle": 0,
        "wait": 0,
        "cpu": 0.00260552371026576,
        "loadavg": ["0.00", "0.00", "0.00"],
        "pveversion": f"pve-manager/{v.version}/{v.repoid}",
        "kversion": "Linux 6.8.12-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-1",
        "ksm": {"shared": 0},
        "swap": {"total": 0, "free": 0, "used": 0},
        "memory": {"total": node.maxmem, "free": node.maxmem // 2, "used": node.maxmem // 2},
        "rootfs": {
            "total": 948338819072,
            "free": 937851224064,
            "used": 10487595008,
            "avail": 937851224064,
        },
        "cpuinfo": {
            "model": "QEMU Virtual CPU version 2.5+",
            "mhz": "3400.000",
            "sockets": 1,
            "cores": node.maxcpu,
            "cpus": node.maxcpu,
            "hvm": "1",
            "user_hz": 100,
            "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep",
        },
    }


# Paths PVE always includes in a full dump of /access/permissions (besides every ACL path).
_PERMISSION_ROOTS = ("/", "/access", "/access/groups", "/nodes", "/pools", "/sdn", "/storage", "/vms")


def access_permissions(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    """``GET /access/permissions[?path=..][&userid=..]``: the caller's effective privileges, as
    pve-access-control returns them: ``{path: {privilege: propagate}}``; with ``path`` only that
    path (``{}`` when nothing is granted there). A user may dump its own (and its tokens');
    anyone else's needs Sys.Audit on /access."""
    caller = request.caller
    wanted = request.query.get("userid") or caller.name
    subject = caller
    if wanted != caller.name:
        owner = wanted.partition("!")[0]
        if owner != caller.user.userid:
            caller.require("/access", "Sys.Audit")
        found = principal_for(topology, wanted)
        if found is None:
            raise ApiError(500, f"user '{owner}' does not exist" if topology.user(owner) is None
                           else f"no such token '{wanted.partition('!')[2]}' for user '{owner}'")
        subject = found
    path = request.query.get("path")
    if path:
        privs = subject.privileges_at(path)
        return {path: {p: 1 for p in sorted(privs)}} if privs else {}
    paths = set(_PERMISSION_ROOTS) | set(subject.user.privileges)
    if subject.token_acl is not None:
        paths |= set(subject.token_acl)
    out: dict[str, dict[str, int]] = {}
    for each in sorted(paths):
        privs = subject.privileges_at(each)
        if privs:
            out[each] = {p: 1 for p in sorted(privs)}
    return out


def node_version(topology: Topology, request: ApiRequest, params: dict[str, str]) -> Any:
    _proxy_to(topology, params["node"])
    return version(topology, request, params)


_SEGMENT = r"[^/]+"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/version"), version),
    ("GET", re.compile(r"/nodes"), nodes_index),
    ("GET", re.compile(r"/cluster/status"), cluster_status),
    ("GET", re.compile(r"/cluster/resources"), cluster_resources),
    ("GET", re.compile(r"/access/permissions"), access_permissions),
    ("GET", re.compile(rf"/nodes/(?P<node>{_SEGMENT})/status"), node_status),
    ("GET", re.compile(rf"/nodes/(?P<node>{_SEGMENT})/version"), node_version),
    ("GET", re.compile(rf"/nodes/(?P<node>{_SEGMENT})/qemu"), node_qemu),
    (
        "GET",
        re.compile(rf"/nodes/(?P<node>{_SEGMENT})/qemu/(?P<vmid>{_SEGMENT})/config"),
        qemu_config,
    ),
    ("PUT", re.compile(rf"/nodes/(?P<node>{_SEGMENT})/qemu/(?P<vmid>{_SEGMENT})/config"), qemu_config_update),
    ("POST", re.compile(rf"/nodes/(?P<node>{_SEGMENT})/qemu/(?P<vmid>{_SEGMENT})/config"), qemu_config_update),
]


def dispatch(topology: Topology, request: ApiRequest) -> Any:
    """Run the endpoint for ``request`` or raise ``ApiError`` (501 for unknown method/path)."""
    path = request.path.rstrip("/") or "/"
    for method, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and method == request.method:
            return handler(topology, request, match.groupdict())
    raise ApiError(501, f"Method '{request.method} {request.path}' not implemented")
