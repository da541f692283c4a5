"""One pydantic model per kind of the config repo.

Models are built only from documents that passed their JSON Schema, so they do not repeat the
schema's rules; they add what code needs: defaults filled in, MACs and addresses lower-cased,
typed access. ``spec_dict()`` is the canonical spec that goes into the custom
resource, so two files that mean the same thing produce the same live object.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property, lru_cache
from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from reconciler.frozen import FrozenModel

API_VERSION: Final = "multinic.io/v1alpha1"
DEFAULT_NAMESPACE = "multinic-system"

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=65536)
def ip_interface(text: str) -> IPInterface:
    """Parsed once per distinct string: validation touches each address several times."""
    return ipaddress.ip_interface(text)


class _Model(FrozenModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Metadata(_Model):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Route(_Model):
    to: str
    via: str
    metric: int | None = None
    # The gateway is on the link although no own prefix holds it (a /32 or /128 address with a
    # provider's gateway). ``False`` is stored as absent: one spec, one hash.
    on_link: bool | None = None

    @field_validator("to", "via")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("on_link")
    @classmethod
    def _false_is_absent(cls, value: bool | None) -> bool | None:
        return True if value else None

    @property
    def gateway_on_link(self) -> bool:
        """Whether the gateway is reachable without an own prefix holding it: ``onLink``, or an
        IPv6 link-local gateway (every IPv6 link has fe80::/64, the route names the link)."""
        return bool(self.on_link) or (self.gateway.version == 6 and self.gateway.is_link_local)

    @cached_property
    def destination(self) -> IPInterface:
        return ip_interface(self.to)

    @cached_property
    def gateway(self) -> IPAddress:
        return ipaddress.ip_address(self.via)


class InterfaceProxmox(_Model):
    """What the VM's ``netN`` device of this interface must look like (every field optional)."""

    net: str | None = None
    bridge: str | None = None
    vlan: int | None = None
    mtu: int | None = None
    model: str | None = None
    firewall: bool | None = None


class Probe(_Model):
    ping: str
    mtu: bool = False
    timeout_seconds: int = 3


class Interface(_Model):
    name: str
    mac_address: str
    addresses: tuple[str, ...] = ()
    mtu: int | None = None
    routes: tuple[Route, ...] = ()
    proxmox_net: str | None = None  # short form of proxmox.net
    proxmox: InterfaceProxmox | None = None
    probes: tuple[Probe, ...] = ()

    @model_validator(mode="after")
    def _fold_slot(self) -> Interface:
        """``proxmox: {net: net1}`` and ``proxmoxNet: net1`` are one spec: the slot is kept in
        ``proxmoxNet`` (so files written in the short form keep their spec hash). Two different
        slots are left as written; the cross-file check reports them."""
        vm = self.proxmox
        if vm is not None and vm.net is not None and self.proxmox_net in (None, vm.net):
            object.__setattr__(self, "proxmox_net", vm.net)
            rest = vm.model_copy(update={"net": None})
            object.__setattr__(self, "proxmox", None if rest == InterfaceProxmox() else rest)
        return self

    @property
    def slot(self) -> str | None:
        """The VM slot (``net1``) this interface is, however the file spelled it."""
        return self.proxmox_net or (self.proxmox.net if self.proxmox else None)

    @field_validator("mac_address")
    @classmethod
    def _lower_mac(cls, value: str) -> str:
        return value.lower()

    @field_validator("addresses")
    @classmethod
    def _lower_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a.lower() for a in value)

    @cached_property
    def interfaces(self) -> list[IPInterface]:
        return [ip_interface(a) for a in self.addresses]


class ProxmoxRef(_Model):
    cluster: str
    vmid: int
    # None means enforce; not filled in, so that the live spec (and its hash) of a file that does
    # not set it stays what it was before the field existed.
    nic_check: Literal["enforce", "warn"] | None = None
    # None means off (not filled in, for the same reason as nic_check).
    manage_nics: bool | None = None
    absent: tuple[str, ...] | None = None  # manageNics: slots to remove from the VM

    @property
    def enforce(self) -> bool:
        """Whether a VM NIC mismatch (or no answer from Proxmox) holds the node's Job."""
        return self.nic_check != "warn"

    def manages_nics(self, cluster_default: bool | None) -> bool:
        """``manageNics`` of this node, else its cluster's (``spec.manageNics`` of the cluster file), else off."""
        return self.manage_nics if self.manage_nics is not None else bool(cluster_default)


class NodeSpec(_Model):
    node_name: str = ""
    os_family: Literal["auto", "ubuntu", "rhel"] = "auto"
    on_remove: Literal["cleanup", "orphan"] = "cleanup"
    proxmox: ProxmoxRef | None = None
    interfaces: tuple[Interface, ...]


class NodeConfig(_Model):
    """``MultiNicNodeConfig``: the extra NICs of one node (``nodes/<name>.yaml``)."""

    api_version: Literal["multinic.io/v1alpha1"] = API_VERSION
    kind: Literal["MultiNicNodeConfig"] = "MultiNicNodeConfig"
    metadata: Metadata
    spec: NodeSpec

    @model_validator(mode="after")
    def _default_node_name(self) -> NodeConfig:
        if not self.spec.node_name:
            object.__setattr__(self.spec, "node_name", self.metadata.name)
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    def spec_dict(self) -> dict[str, Any]:
        return self.spec.dump()


class SecretRef(_Model):
    name: str


class SecretKeyRef(_Model):
    name: str
    key: str = "ca.crt"


class TLSSettings(_Model):
    insecure_skip_verify: bool = False
    ca_bundle_secret_ref: SecretKeyRef | None = None
    fingerprint: str | None = None  # sha256, AA:BB:...


class ProxmoxTimeouts(_Model):
    connect: str | None = None  # duration, e.g. "5s"
    read: str | None = None


class ProxmoxClusterSpec(_Model):
    api_endpoint: str
    api_endpoints: tuple[str, ...] = ()  # further endpoints, tried in order when the one before is unreachable
    credentials_secret_ref: SecretRef
    tls: TLSSettings = Field(default_factory=TLSSettings)
    expected_node_count: int | None = None
    verify_interval: str = "5m"
    timeouts: ProxmoxTimeouts | None = None
    read_concurrency: int | None = None  # VM config reads in flight at once (default 4)
    manage_nics: bool | None = None  # the default of spec.proxmox.manageNics for the nodes of this cluster

    @property
    def connect_timeout_seconds(self) -> float | None:
        value = self.timeouts.connect if self.timeouts else None
        return None if value is None else float(parse_duration(value))

    @property
    def read_timeout_seconds(self) -> float | None:
        value = self.timeouts.read if self.timeouts else None
        return None if value is None else float(parse_duration(value))

    @property
    def endpoint_key(self) -> str:
        """host:port, lower-case, default port filled: two files naming one API compare equal."""
        rest = self.api_endpoint.split("://", 1)[1].rstrip("/")
        if rest.startswith("["):
            host, _, port = rest[1:].partition("]")
            port = port.lstrip(":")
            host = f"[{ipaddress.ip_address(host)}]"
        else:
            host, _, port = rest.partition(":")
        return f"{host.lower()}:{port or 8006}"

    @property
    def verify_interval_seconds(self) -> int:
        return parse_duration(self.verify_interval)


class ProxmoxCluster(_Model):
    """``ProxmoxCluster``: one Proxmox VE cluster to register (``clusters/<name>.yaml``)."""

    api_version: Literal["multinic.io/v1alpha1"] = API_VERSION
    kind: Literal["ProxmoxCluster"] = "ProxmoxCluster"
    metadata: Metadata
    spec: ProxmoxClusterSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    def spec_dict(self) -> dict[str, Any]:
        return self.spec.dump()


class RolloutSettings(_Model):
    max_parallel: int = 5
    max_failures: int = 1
    suspend: bool = False  # no new node Jobs (running ones finish); nodes show Suspended
    canary: int = 0  # this many nodes of a rollout first; the rest once they are Ready
    retries: int = 3  # automatic retries of a transient failure (deadline, eviction, image pull)


class DriftSettings(_Model):
    interval: str | None = None  # e.g. "1h": each node is verified once per interval; None: off
    policy: Literal["report", "repair"] = "report"

    @property
    def interval_seconds(self) -> int | None:
        return parse_duration(self.interval) if self.interval else None


class PruneSettings(_Model):
    enabled: bool = True
    max_delete_percent: int = 25


class StatusSettings(_Model):
    enabled: bool = True
    branch: str | None = None
    min_interval: str = "60s"

    @property
    def min_interval_seconds(self) -> int:
        return parse_duration(self.min_interval)


class SettingsSpec(_Model):
    namespace: str = DEFAULT_NAMESPACE
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    prune: PruneSettings = Field(default_factory=PruneSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)


class ReconcilerSettings(_Model):
    """``ReconcilerSettings``: repository-wide settings (``reconciler.yaml``, optional)."""

    api_version: Literal["multinic.io/v1alpha1"] = API_VERSION
    kind: Literal["ReconcilerSettings"] = "ReconcilerSettings"
    metadata: Metadata = Field(default_factory=lambda: Metadata(name="reconciler"))
    spec: SettingsSpec = Field(default_factory=SettingsSpec)


def parse_duration(text: str) -> int:
    """``"1h30m"`` -> 5400 seconds (units s, m, h)."""
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
    if number:
        raise ValueError(f"duration {text!r} has no unit")
    return total


MODELS: dict[str, type[_Model]] = {
    "MultiNicNodeConfig": NodeConfig,
    "ProxmoxCluster": ProxmoxCluster,
    "ReconcilerSettings": ReconcilerSettings,
}
