"""Activators: make the live network match the written files, behind one protocol.

Each activator checks the written files with the node's own tool first (``validate``), then
activates them (``activate``); on any later failure the files are restored and ``rollback``
brings the live state back.

* ``nmcli`` (keyfiles, ifcfg): the image's ``nmcli`` talks to the node's NetworkManager over the
  host's system D-Bus socket (the Job mounts ``/run/dbus/system_bus_socket``). ``validate`` =
  ``nmcli connection load <file>`` (NetworkManager parses each file and refuses what it rejects);
  ``activate`` renames each live NIC found by MAC to its profile's interface-name (``ip``, the
  name the ``.link``/HWADDR rename gives it at boot), ``nmcli connection reload`` and
  ``nmcli connection up uuid <profile>``; ``rollback`` first takes our connections down on every
  NIC, then reloads the restored files, renames the NICs back and re-activates the connections
  that were active before (or leaves a NIC that had none disconnected), so the node is as it
  was, route metrics included (NetworkManager reserves a default metric per active device).
* ``netplan`` (Ubuntu): netplan's own D-Bus service on the node (``io.netplan.Netplan``, via
  ``dbus-send``): ``Generate`` validates, ``Apply`` activates through systemd-networkd or
  NetworkManager, exactly what a boot does; rollback gives each NIC its name and MTU back (netplan
  leaves a NIC its files no longer name as it is) and then ``Apply``s the restored files. With a
  ``--root`` other than ``/`` (image builds, tests) it runs ``chroot <root> netplan …`` instead.
* ``iproute2``: explicit fallback, no daemon: sets name, MTU, addresses and routes with ``ip``
  directly from the spec (the files are still written, for the next boot). The node's daemon does
  not know about these changes and may revert them; use it only where no daemon manages the NICs.
  It snapshots the live state first and puts it back on rollback.
* ``command``: an operator-supplied command (``--activate-command``), run with
  ``MULTINIC_PHASE`` = activate|rollback|remove, ``MULTINIC_ROOT`` and ``MULTINIC_INTERFACES``
  (JSON) in its environment; for custom hosts and tests.
* ``none``: write files only.

``ip`` always runs in the agent's own network namespace, which in the Job is the host's
(``hostNetwork: true``).
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
    written: list[Path] = field(default_factory=list)  # every path written or removed (agent's view)
    snapshot: dict[str, Any] = field(default_factory=dict)  # activator-private, for rollback
    activated: bool = False  # activate() was called: the live state may have changed


class Activator(Protocol):
    name: str

    def prepare(self, ctx: Context) -> None:
        """Record what ``rollback`` needs, before any file changes."""

    def validate(self, ctx: Context) -> None:
        """The files are written: have the node's own tool check them; ``ActivationError`` if rejected."""

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

    def validate(self, ctx: Context) -> None:
        pass

    def activate(self, ctx: Context) -> None:
        pass

    def rollback(self, ctx: Context) -> None:
        pass


NETPLAN_DBUS = ["dbus-send", "--system", "--print-reply", "--reply-timeout=120000", "--dest=io.netplan.Netplan",
                "/io/netplan/Netplan"]


class NetplanActivator:
    name = "netplan"

    def _netplan(self, ctx: Context, verb: str) -> None:
        if ctx.root.resolve() == Path("/"):
            out = run([*NETPLAN_DBUS, f"io.netplan.Netplan.{verb.capitalize()}"])
            if "boolean false" in out:
                raise ActivationError(f"netplan {verb} (D-Bus io.netplan.Netplan) returned false")
        else:
            run(["netplan", verb], ctx.root)

    def prepare(self, ctx: Context) -> None:
        ctx.snapshot["links"] = {t.device: _link_state(t.device) for t in ctx.targets}

    def validate(self, ctx: Context) -> None:
        self._netplan(ctx, "generate")

    def activate(self, ctx: Context) -> None:
        ctx.activated = True
        self._netplan(ctx, "apply")

    def rollback(self, ctx: Context) -> None:
        if not ctx.activated:
            self._netplan(ctx, "generate")  # /run's generated config back to the restored files
            return
        # netplan apply renames and sets the MTU of the NICs its files name, but leaves a NIC they
        # no longer name as it is: it would stay renamed (storage0, MTU 9000) until the next boot.
        # So the names and MTUs go back first, then the restored files are applied to them.
        errors: list[str] = []
        before: dict[str, dict[str, Any]] = ctx.snapshot.get("links", {})
        for target in ctx.targets:
            try:
                _restore_link(target, before.get(target.device))
            except ActivationError as exc:
                errors.append(str(exc))
        try:
            self._netplan(ctx, "apply")
        except ActivationError as exc:
            errors.append(str(exc))
        for target in ctx.targets:
            try:
                if before.get(target.device, {}).get("up") and not _is_up(target.device):
                    run(["ip", "link", "set", "dev", target.device, "up"])
            except ActivationError as exc:
                errors.append(str(exc))
        if errors:
            raise ActivationError("; ".join(errors))


def _rename(device: str, name: str) -> None:
    """Rename a live NIC (it must be down for the kernel to allow it).

    udev (systemd 245 and later) gives a NIC its other predictable names as alternative names, and
    after a rename its old name too (``ens6`` renamed ``storage0`` keeps ``ens6`` as an altname).
    The kernel refuses a name that any NIC holds, altnames included, so a NIC taking back a name it
    holds itself drops that altname first; udev may add it a moment after a rename, hence the
    retries. A name held by another NIC is left alone and the rename fails."""
    if device == name:
        return
    run(["ip", "link", "set", "dev", device, "down"])
    for attempt in range(3):
        links = ip_json("link", "show", "dev", device)
        if links and name in links[0].get("altnames", []):
            run(["ip", "link", "property", "del", "dev", device, "altname", name])
        try:
            run(["ip", "link", "set", "dev", device, "name", name])
            return
        except ActivationError as exc:
            if "File exists" not in str(exc) or attempt == 2:
                raise


def _link_state(device: str) -> dict[str, Any]:
    """What a rollback restores of a NIC the node's daemon may leave as we changed it."""
    if not Path("/sys/class/net", device).exists():
        return {"mtu": None, "up": False}
    links = ip_json("link", "show", "dev", device)
    link = links[0] if links else {}
    return {"mtu": link.get("mtu"), "up": "UP" in link.get("flags", [])}


def _restore_link(target: Target, before: dict[str, Any] | None) -> None:
    """Give the NIC of ``target`` back its name (``target.device``) and its MTU from before."""
    live = target.name if Path("/sys/class/net", target.name).exists() else target.device
    if not Path("/sys/class/net", live).exists():
        return  # the NIC is gone (unplugged): nothing live to restore
    _rename(live, target.device)
    if before and before.get("mtu") and _link_state(target.device).get("mtu") != before["mtu"]:
        run(["ip", "link", "set", "dev", target.device, "mtu", str(before["mtu"])])


def _nm_profile_file(path: Path) -> bool:
    return path.name.endswith(".nmconnection") or path.name.startswith("ifcfg-")


def _terse(line: str) -> list[str]:
    """One line of ``nmcli -g`` output: fields split on unescaped colons."""
    fields, current, escaped = [], "", False
    for char in line:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current]


class NmcliActivator:
    name = "nmcli"

    def prepare(self, ctx: Context) -> None:
        active: dict[str, str] = {}
        for line in run(["nmcli", "-g", "UUID,DEVICE", "connection", "show", "--active"]).splitlines():
            parts = _terse(line)
            if len(parts) >= 2 and parts[1]:
                active[parts[1]] = parts[0]
        ctx.snapshot["active"] = {t.device: active.get(t.device, "") for t in ctx.targets}
        ctx.snapshot["links"] = {t.device: _link_state(t.device) for t in ctx.targets}
        ctx.snapshot["removed-active"] = {n: active.get(n, "") for n in ctx.removed}

    def validate(self, ctx: Context) -> None:
        files = [str(p) for p in ctx.written if _nm_profile_file(p) and p.exists()]
        if files:
            run(["nmcli", "connection", "load", *files])

    def _profiles(self, ctx: Context) -> dict[str, str]:
        """NIC name -> the UUID of the profile our file defines for it (``uuid=`` in keyfiles; for
        ifcfg, which carries none, the profile NetworkManager loaded with that id)."""
        out: dict[str, str] = {}
        by_id: dict[str, str] | None = None
        for path in ctx.written:
            if not _nm_profile_file(path) or not path.exists():
                continue
            name = _profile_of(path.name)
            text = path.read_text(encoding="utf-8", errors="replace")
            uuid = next((line.split("=", 1)[1].strip() for line in text.splitlines()
                         if line.lower().startswith("uuid=")), "")
            if not uuid:
                if by_id is None:
                    by_id = {}
                    for line in run(["nmcli", "-g", "NAME,UUID", "connection", "show"]).splitlines():
                        parts = _terse(line)
                        if len(parts) >= 2:
                            by_id.setdefault(parts[0], parts[1])
                uuid = by_id.get(name, "")
            if uuid:
                out[name] = uuid
        return out

    def activate(self, ctx: Context) -> None:
        ctx.activated = True
        for target in ctx.targets:
            _rename(target.device, target.name)
        run(["nmcli", "connection", "reload"])
        profiles = self._profiles(ctx)
        for target in ctx.targets:
            uuid = profiles.get(target.name)
            if uuid is None:
                raise ActivationError(f"NetworkManager has no profile for {target.name} after reload")
            run(["nmcli", "connection", "up", "uuid", uuid])

    def rollback(self, ctx: Context) -> None:
        errors: list[str] = []
        if ctx.activated:
            # Ours go down first, on every NIC, while their profiles still exist: once the reload
            # drops them, NetworkManager keeps a still-active device as a generated connection
            # that reserves the device type's default metric (100), and the operator's profile
            # re-activated next would get 101 (not the node as before).
            for target in ctx.targets:
                live = target.name if Path("/sys/class/net", target.name).exists() else target.device
                try:
                    _disconnect(live)
                except ActivationError as exc:
                    errors.append(str(exc))
        try:
            run(["nmcli", "connection", "reload"])
        except ActivationError as exc:
            errors.append(str(exc))
        if ctx.activated:
            previous: dict[str, str] = ctx.snapshot.get("active", {})
            for target in ctx.targets:
                try:
                    before = ctx.snapshot.get("links", {}).get(target.device)
                    _restore_link(target, before)
                    if previous.get(target.device):
                        run(["nmcli", "connection", "up", "uuid", previous[target.device]])
                    else:
                        _disconnect(target.device)
                    if before and before["up"]:
                        run(["ip", "link", "set", "dev", target.device, "up"])
                except ActivationError as exc:
                    errors.append(str(exc))
        if errors:
            raise ActivationError("; ".join(errors))


def _is_up(device: str) -> bool:
    return bool(_link_state(device)["up"])


def _disconnect(device: str) -> None:
    """No connection was active on ``device`` before: leave it without one (a no-op if none is)."""
    try:
        run(["nmcli", "device", "disconnect", device])
    except ActivationError as exc:
        if "not active" not in str(exc) and "disconnected" not in str(exc):
            raise


def _profile_of(file_name: str) -> str:
    """The NIC name a profile file of ours is for (``.../storage0.nmconnection``, ``.../ifcfg-storage0``)."""
    base = Path(file_name).name
    return base.removesuffix(".nmconnection").removeprefix("ifcfg-")


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


_RouteSpec = tuple[str, str, int | None, bool]  # to, via, metric, onlink


def _set_state(dev: str, name: str, mtu: int | None, addresses: list[str], routes: list[_RouteSpec]) -> None:
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
    want = {_route_key(to, via, metric) for to, via, metric, _onlink in routes}
    for route in _gateway_routes(name):
        key = _live_route_key(route)
        if key not in want:
            run(["ip", "route", "del", key[0], "via", key[1], "dev", name, "metric", str(key[2])])
    for to, via, metric, onlink in routes:
        cmd = ["ip", "route", "replace", to, "via", via, "dev", name, "proto", "static"]
        if metric is not None:
            cmd += ["metric", str(metric)]
        run([*cmd, "onlink"] if onlink else cmd)


class Iproute2Activator:
    name = "iproute2"

    def validate(self, ctx: Context) -> None:
        pass

    def prepare(self, ctx: Context) -> None:
        for target in ctx.targets:
            link = ip_json("addr", "show", "dev", target.device)[0]
            ctx.snapshot[target.name] = {
                "device": target.device,
                "mtu": link.get("mtu"),
                "up": "UP" in link.get("flags", []),
                "addresses": _global_addresses(link),
                "routes": [
                    (*_live_route_key(r), "onlink" in r.get("flags", [])) for r in _gateway_routes(target.device)
                ],
            }

    def activate(self, ctx: Context) -> None:
        ctx.activated = True
        for t in ctx.targets:
            routes = [(r.to, r.via, r.metric, bool(r.on_link)) for r in t.routes]
            _set_state(t.device, t.name, t.mtu, list(t.addresses), routes)
        for name in ctx.removed:
            if Path("/sys/class/net", name).exists():
                run(["ip", "addr", "flush", "dev", name, "scope", "global"])

    def rollback(self, ctx: Context) -> None:
        if not ctx.activated:
            return
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

    def validate(self, ctx: Context) -> None:
        pass

    def activate(self, ctx: Context) -> None:
        ctx.activated = True
        self._run(ctx, "remove" if not ctx.targets and ctx.removed else "activate")

    def rollback(self, ctx: Context) -> None:
        if ctx.activated:
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
    """``--activate auto`` on a real root: the node's own stack for that renderer."""
    from reconciler.nodejob.renderers import REGISTRY

    return REGISTRY[renderer].activation if renderer in REGISTRY else "nmcli"
