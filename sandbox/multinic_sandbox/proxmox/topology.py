"""What the sandbox pretends to be: clusters, nodes, VMs, users, tokens and privileges.

Plain dataclasses so that tests and the demo can build one in code, or from a dict/YAML
(``Topology.from_dict``). Nothing here knows about HTTP.

Example (YAML form accepted by ``Topology.from_dict``)::

    cluster: pve-lab            # omit or null for a standalone node (no cluster entry)
    version: "8.0"              # preset "7.2"/"7.4"/"8.0"/"9.1" or {version, release, repoid}
    nodes:
      - name: pve1
        ip: 10.0.0.11
        vms:
          - vmid: 101
            name: k8s-worker-1
            net:
              net0: virtio=BC:24:11:00:00:01,bridge=vmbr0
              net1: virtio=BC:24:11:00:01:01,bridge=vmbr1,tag=20,mtu=9000
      - name: pve2
        online: false
    users:
      - userid: reconciler@pve
        password: s3cret            # generated when omitted
        privileges: {"/": [PVEAuditor]}
        tokens:
          - name: ci
            secret: 0b0e...         # generated (a UUID, like PVE) when omitted
            privileges: null        # null: same as the user (privsep=0); else intersected
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Roles expand to privileges, as in PVE's built-in role definitions (subset we need).
ROLES: dict[str, frozenset[str]] = {
    "NoAccess": frozenset(),
    "PVEAuditor": frozenset({"Sys.Audit", "VM.Audit", "Datastore.Audit", "Pool.Audit", "SDN.Audit", "Mapping.Audit"}),
    "PVEVMAdmin": frozenset(
        {
            "VM.Audit",
            "VM.Allocate",
            "VM.Config.Network",
            "VM.Config.Options",
            "VM.PowerMgmt",
            "VM.Console",
            "VM.Monitor",
            "Datastore.AllocateSpace",
        }
    ),
    "Administrator": frozenset(
        {
            "Sys.Audit",
            "Sys.Modify",
            "Sys.Console",
            "Sys.Syslog",
            "Sys.PowerMgmt",
            "Sys.Incoming",
            "VM.Audit",
            "VM.Allocate",
            "VM.Config.Network",
            "VM.Config.Options",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Disk",
            "VM.PowerMgmt",
            "VM.Console",
            "VM.Monitor",
            "VM.Migrate",
            "VM.Clone",
            "Datastore.Audit",
            "Datastore.Allocate",
            "Datastore.AllocateSpace",
            "Pool.Audit",
            "SDN.Audit",
            "SDN.Use",
            "Mapping.Audit",
            "Permissions.Modify",
            "User.Modify",
            "Group.Allocate",
        }
    ),
}


@dataclass(frozen=True)
class PveVersion:
    """The values of ``GET /version`` (``pveversion`` prints pve-manager/<version>/<repoid>)."""

    version: str
    release: str
    repoid: str

    @property
    def major(self) -> int:
        return int(self.release.split(".")[0])

    @property
    def minor(self) -> int:
        return int(self.release.split(".")[1])

    @property
    def error_bodies_have_message(self) -> bool:
        # libpve-http-server-perl 5.2.0 (PVE 8.3, 2025-01) added "message" to error bodies.
        return (self.major, self.minor) >= (8, 3)

    @classmethod
    def preset(cls, name: str) -> PveVersion:
        try:
            return VERSION_PRESETS[name]
        except KeyError:
            known = ", ".join(sorted(VERSION_PRESETS))
            raise ValueError(f"unknown PVE version preset {name!r} (known: {known})") from None

    @classmethod
    def from_value(cls, value: str | Mapping[str, str] | PveVersion) -> PveVersion:
        if isinstance(value, PveVersion):
            return value
        if isinstance(value, Mapping):
            return cls(str(value["version"]), str(value["release"]), str(value["repoid"]))
        return cls.preset(str(value))


# Real observations, see tests/data/pve/pve_versions.json.
VERSION_PRESETS: dict[str, PveVersion] = {
    "7.2": PveVersion("7.2-3", "7.2", "c743d6c1"),
    "7.4": PveVersion("7.4-16", "7.4", "0f39f621"),
    "8.0": PveVersion("8.0.3", "8.0", "bbf3993334bfa916"),
    "9.1": PveVersion("9.1.6", "9.1", "71482d1833ded40a"),
}
VERSION_PRESETS["7"] = VERSION_PRESETS["7.4"]
VERSION_PRESETS["8"] = VERSION_PRESETS["8.0"]
VERSION_PRESETS["9"] = VERSION_PRESETS["9.1"]


def expand_privileges(names: Iterable[str]) -> frozenset[str]:
    """Role names become their privileges; anything else is taken as a privilege name."""
    out: set[str] = set()
    for name in names:
        out |= ROLES.get(name, frozenset({name}))
    return frozenset(out)


Acl = dict[str, frozenset[str]]  # ACL path -> privileges (propagating, most specific path wins)


def _acl_from(value: Mapping[str, Iterable[str]] | None) -> Acl | None:
    if value is None:
        return None
    return {path: expand_privileges(privs) for path, privs in value.items()}


@dataclass
class Vm:
    vmid: int
    name: str = ""
    status: str = "running"  # running | stopped
    net: dict[str, str] = field(default_factory=dict)  # slot ("net0") -> PVE netN string
    memory: int = 2048
    cores: int = 2
    template: bool = False
    extra_config: dict[str, Any] = field(default_factory=dict)  # merged into .../config
    pending: dict[str, str | None] = field(default_factory=dict)  # slot -> new value (None: delete) at reboot
    writes: int = 0  # config writes accepted so far (numbers the task UPIDs)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"vm{self.vmid}"


@dataclass
class Node:
    name: str
    ip: str = ""
    online: bool = True
    vms: list[Vm] = field(default_factory=list)
    maxcpu: int = 8
    maxmem: int = 34359738368


@dataclass
class ApiToken:
    name: str
    secret: str = field(default_factory=lambda: str(uuid.uuid4()), repr=False)
    privileges: Acl | None = None  # None: privsep=0, the token has the user's privileges


@dataclass
class User:
    userid: str  # user@realm
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    privileges: Acl = field(default_factory=dict)
    tokens: list[ApiToken] = field(default_factory=list)
    enabled: bool = True

    def token(self, name: str) -> ApiToken | None:
        return next((t for t in self.tokens if t.name == name), None)


@dataclass
class Topology:
    """One PVE installation: a cluster (``cluster`` set) or a standalone node (``cluster=None``)."""

    cluster: str | None = "pve-sandbox"
    version: PveVersion = field(default_factory=lambda: VERSION_PRESETS["8.0"])
    nodes: list[Node] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    cluster_config_version: int = 4  # the "version" field of the cluster entry

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def user(self, userid: str) -> User | None:
        return next((u for u in self.users if u.userid == userid), None)

    def find_vm(self, vmid: int) -> tuple[Node, Vm] | None:
        for node in self.nodes:
            for vm in node.vms:
                if vm.vmid == vmid:
                    return node, vm
        return None

    @property
    def local_node(self) -> Node:
        """The node the API endpoint runs on: the first online node (the first if none is)."""
        return next((n for n in self.nodes if n.online), self.nodes[0])

    @property
    def default_user(self) -> User:
        """The user (and its first token) written to ``--info-out``."""
        return self.users[0]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """Build from plain data (parsed YAML/JSON); see the module docstring for the format."""
        nodes = [
            Node(
                name=str(n["name"]),
                ip=str(n.get("ip") or f"10.0.0.{11 + i}"),
                online=bool(n.get("online", True)),
                maxcpu=int(n.get("maxcpu", 8)),
                maxmem=int(n.get("maxmem", 34359738368)),
                vms=[
                    Vm(
                        vmid=int(v["vmid"]),
                        name=str(v.get("name") or ""),
                        status=str(v.get("status", "running")),
                        net={str(k): str(s) for k, s in (v.get("net") or {}).items()},
                        memory=int(v.get("memory", 2048)),
                        cores=int(v.get("cores", 2)),
                        template=bool(v.get("template", False)),
                        extra_config=dict(v.get("config") or {}),
                    )
                    for v in (n.get("vms") or [])
                ],
            )
            for i, n in enumerate(data.get("nodes") or [])
        ]
        users = []
        for u in data.get("users") or []:
            user = User(userid=str(u["userid"]), enabled=bool(u.get("enabled", True)))
            if u.get("password") is not None:
                user.password = str(u["password"])
            user.privileges = _acl_from(u.get("privileges")) or {}
            for t in u.get("tokens") or []:
                token = ApiToken(name=str(t["name"]), privileges=_acl_from(t.get("privileges")))
                if t.get("secret") is not None:
                    token.secret = str(t["secret"])
                user.tokens.append(token)
            users.append(user)
        topology = cls(
            cluster=data.get("cluster", "pve-sandbox"),
            version=PveVersion.from_value(data.get("version", "8.0")),
            nodes=nodes or default_nodes(),
            users=users or [default_user()],
        )
        topology.validate()
        return topology

    def validate(self) -> None:
        if not self.nodes:
            raise ValueError("a topology needs at least one node")
        if self.cluster is None and len(self.nodes) != 1:
            raise ValueError("a standalone topology (cluster: null) has exactly one node")
        if not self.users:
            raise ValueError("a topology needs at least one user")
        seen: set[int] = set()
        for node in self.nodes:
            for vm in node.vms:
                if vm.vmid in seen:
                    raise ValueError(f"VM {vm.vmid} is defined twice")
                seen.add(vm.vmid)


def default_nodes() -> list[Node]:
    return [
        Node(
            name="pve1",
            ip="10.0.0.11",
            vms=[
                Vm(
                    vmid=101,
                    name="k8s-worker-1",
                    net={
                        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1",
                        "net1": "virtio=BC:24:11:00:01:01,bridge=vmbr1,tag=20,mtu=9000",
                    },
                )
            ],
        ),
        Node(
            name="pve2",
            ip="10.0.0.12",
            vms=[
                Vm(
                    vmid=102,
                    name="k8s-worker-2",
                    net={
                        "net0": "virtio=BC:24:11:00:00:02,bridge=vmbr0,firewall=1",
                        "net1": "virtio=BC:24:11:00:01:02,bridge=vmbr1,tag=20,mtu=9000",
                    },
                )
            ],
        ),
    ]


def default_user() -> User:
    """An auditor with one token, secrets generated per run."""
    return User(
        userid="reconciler@pve",
        privileges={"/": ROLES["PVEAuditor"]},
        tokens=[ApiToken(name="reconciler")],
    )


def default_topology() -> Topology:
    return Topology(nodes=default_nodes(), users=[default_user()])
