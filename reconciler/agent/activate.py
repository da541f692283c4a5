"""Activators: make the live network match the written files, behind one protocol.

* ``netplan``: ``netplan apply``; rollback = ``netplan apply`` on the restored files.
* ``nmcli``: renames each live NIC (found by MAC) to its profile's interface-name, then
  ``nmcli connection reload`` + ``nmcli connection up id <name>``; serves keyfiles and ifcfg
  (RHEL 7/8 read ifcfg through NetworkManager's ifcfg-rh plugin, NAME= being the profile id).
* ``iproute2``: no daemon; sets name, MTU, addresses and routes with ``ip`` directly from the spec
  (the files are still written, for the next boot). It snapshots the live state first and puts
  it back on rollback.
* ``command``: an operator-supplied command (``--activate-command``), run with
  ``MULTINIC_PHASE`` = activate|rollback|remove, ``MULTINIC_ROOT`` and ``MULTINIC_INTERFACES``
  (JSON) in its environment; for custom hosts and tests.
* ``none``: write files only.

Host tools (netplan, nmcli) run as ``chroot <root> ...`` when the root is not ``/`` (the Job mounts
the host's ``/`` and talks to its daemons through their sockets there); ``ip`` always runs in the
agent's own network namespace, which in the Job is the host's (``hostNetwork: true``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reconciler.config.models import Route

TIMEOUT = 120.0  # seconds; netplan apply on a busy node can take a while


class ActivationError(Exception):
    """The activation command failed; the message holds the command and its stderr."""


@dataclass(frozen=True, slots=True)
class Target:
    """One NIC to bring to its desired state."""

    name: str
    mac: str
    device: str  # its name now (before renaming)
    mtu: int | None
    addresses: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass
class Context:
    root: Path  # the node's root (chroot target for host tools)
    targets: list[Target]
    removed: list[str] = field(default_factory=list)  # names whose config files were removed
    snapshot: dict[str, Any] = field(default_factory=dict)  # activator-private, for rollback


class Activator(Protocol):
    name: str

    def prepare(self, ctx: Context) -> None:
        """Record what ``rollback`` needs, before any file changes."""

    def activate(self, ctx: Context) -> None:
        """Make the live state match; ``ActivationError`` on failure."""

    def rollback(self, ctx: Context) -> None:
        """Files were restored: bring the live state back (best effort, may raise)."""


def run(argv: list[str], root: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command (chrooted into ``root`` unless it is ``/``); its stdout, or ActivationError."""
    if root is not None and root.resolve() != Path("/"):
        argv = ["chroot", str(root), *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActivationError(f"{shlex.join(argv)}: {exc}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = " | ".join(detail[-3:]) if detail else "no output"
        raise ActivationError(f"{shlex.join(argv)} exited {proc.returncode}: {tail}")
    return proc.stdout


class NoneActivator:
    name = "none"

    def prepare(self, ctx: Context) -> None:
        pass

    def activate(self, ctx: Context) -> None:
        pass

    def rollback(self, ctx: Context) -> None:
        pass


class NetplanActivator:
    name = "netplan"

    def prepare(self, ctx: Context) -> None:
        pass

    def activate(self, ctx: Context) -> None:
        run(["netplan", "apply"], ctx.root)

    def rollback(self, ctx: Context) -> None:
        run(["netplan", "apply"], ctx.root)


def _rename(device: str, name: str) -> None:
    """Rename a live NIC (it must be down for the kernel to allow it)."""
    if device == name:
        return
    run(["ip", "link", "set", "dev", device, "down"])
    run(["ip", "link", "set", "dev", device, "name", name])


class NmcliActivator:
    name = "nmcli"

    def prepare(self, ctx: Context) -> None:
        pass

    def activate(self, ctx: Context) -> None:
        for target in ctx.targets:
            _rename(target.device, target.name)
        run(["nmcli", "connection", "reload"], ctx.root)
        for target in ctx.targets:
            run(["nmcli", "connection", "up", "id", target.name], ctx.root)

    def rollback(self, ctx: Context) -> None:
        run(["nmcli", "connection", "reload"], ctx.root)
        for target in ctx.targets:
            # Profiles that existed before come back up; new ones are gone after the reload.
            try:
                run(["nmcli", "connection", "up", "id", target.name], ctx.root)
            except ActivationError:
                continue


def ip_json(*args: str) -> list[dict[str, Any]]:
    out = run(["ip", "-j", *args])
    data = json.loads(out) if out.strip() else []
    return data if isinstance(data, list) else []


def _global_addresses(link: dict[str, Any]) -> list[str]:
    return [
        f"{a['local']}/{a['prefixlen']}"
        for a in link.get("addr_info", [])
        if a.get("scope") == "global" and "local" in a
    ]


def _gateway_routes(dev: str) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = []
    for family in ("-4", "-6"):
        for route in ip_json(family, "route", "show", "dev", dev):
            if "gateway" in route:
                routes.append(route)
    return routes


def _route_key(to: str, via: str, metric: int | None) -> tuple[str, str, int]:
    net = ipaddress.ip_network(to, strict=False)
    if metric is None:
        metric = 1024 if net.version == 6 else 0  # the kernel's defaults, as `ip -j route` shows
    return str(net), via, metric


def _live_route_key(route: dict[str, Any]) -> tuple[str, str, int]:
    dst = route.get("dst", "default")
    if dst == "default":
        dst = "::/0" if ":" in route["gateway"] else "0.0.0.0/0"
    elif "/" not in dst:
        dst += "/128" if ":" in dst else "/32"
    return _route_key(dst, route["gateway"], route.get("metric"))


def _set_state(
    dev: str, name: str, mtu: int | None, addresses: list[str], routes: list[tuple[str, str, int | None]]
) -> None:
    """Bring device ``dev`` to exactly: name, MTU, global addresses and gateway routes; up."""
    _rename(dev, name)
    if mtu is not None:
        run(["ip", "link", "set", "dev", name, "mtu", str(mtu)])
    run(["ip", "link", "set", "dev", name, "up"])
    link = ip_json("addr", "show", "dev", name)[0]
    have = set(_global_addresses(link))
    for addr in sorted(have - set(addresses)):
        run(["ip", "addr", "del", addr, "dev", name])
    for addr in addresses:
        if addr not in have:
            run(["ip", "addr", "add", addr, "dev", name])
    want = {_route_key(to, via, metric) for to, via, metric in routes}
    for route in _gateway_routes(name):
        key = _live_route_key(route)
        if key not in want:
            run(["ip", "route", "del", key[0], "via", key[1], "dev", name, "metric", str(key[2])])
    for to, via, metric in routes:
        cmd = ["ip", "route", "replace", to, "via", via, "dev", name, "proto", "static"]
        run([*cmd, "metric", str(metric)] if metric is not None else cmd)


class Iproute2Activator:
    name = "iproute2"

    def prepare(self, ctx: Context) -> None:
        for target in ctx.targets:
            link = ip_json("addr", "show", "dev", target.device)[0]
            ctx.snapshot[target.name] = {
                "device": target.device,
                "mtu": link.get("mtu"),
                "up": "UP" in link.get("flags", []),
                "addresses": _global_addresses(link),
                "routes": [(k[0], k[1], k[2]) for k in map(_live_route_key, _gateway_routes(target.device))],
            }

    def activate(self, ctx: Context) -> None:
        for t in ctx.targets:
            routes = [(r.to, r.via, r.metric) for r in t.routes]
            _set_state(t.device, t.name, t.mtu, list(t.addresses), routes)
        for name in ctx.removed:
            if Path("/sys/class/net", name).exists():
                run(["ip", "addr", "flush", "dev", name, "scope", "global"])

    def rollback(self, ctx: Context) -> None:
        errors: list[str] = []
        for t in ctx.targets:
            snap = ctx.snapshot.get(t.name)
            if snap is None:
                continue
            current = t.name if Path("/sys/class/net", t.name).exists() else t.device
            try:
                _set_state(current, snap["device"], snap["mtu"], snap["addresses"], snap["routes"])
                if not snap["up"]:
                    run(["ip", "link", "set", "dev", snap["device"], "down"])
            except ActivationError as exc:
                errors.append(str(exc))
        if errors:
            raise ActivationError("; ".join(errors))


class CommandActivator:
    name = "command"

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)

    def _run(self, ctx: Context, phase: str) -> None:
        env = dict(os.environ)
        env["MULTINIC_PHASE"] = phase
        env["MULTINIC_ROOT"] = str(ctx.root)
        env["MULTINIC_INTERFACES"] = json.dumps(
            [{"name": t.name, "mac": t.mac, "device": t.device} for t in ctx.targets]
        )
        run(self.argv, None, env)

    def prepare(self, ctx: Context) -> None:
        pass

    def activate(self, ctx: Context) -> None:
        self._run(ctx, "remove" if not ctx.targets and ctx.removed else "activate")

    def rollback(self, ctx: Context) -> None:
        self._run(ctx, "rollback")


def make(kind: str, command: str | None = None) -> Activator:
    if command:
        return CommandActivator(command)
    activators: dict[str, type] = {
        "none": NoneActivator,
        "netplan": NetplanActivator,
        "nmcli": NmcliActivator,
        "iproute2": Iproute2Activator,
    }
    return activators[kind]()  # type: ignore[no-any-return]


def default_for(renderer: str | None) -> str:
    """``--activate auto`` on a real root: the tool that reads what the renderer writes."""
    return "netplan" if renderer == "netplan" else "nmcli"
