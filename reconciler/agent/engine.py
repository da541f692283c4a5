"""The apply and remove flows: detect, match, render, diff, write, validate, activate, verify,
probe; and all or nothing: any failure after the start restores every file and NIC."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from reconciler.agent import (
    activate,
    devices,
    files,
    osdetect,
    probe,
    render_ifcfg,
    render_keyfile,
    render_netplan,
    verify,
)
from reconciler.config.models import NodeConfig
from reconciler.nodejob.renderers import REGISTRY, owned_files
from reconciler.nodejob.result import AgentResult, InterfaceResult, Outcome, Step

_MAC = re.compile(r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")


@dataclass
class Options:
    root: Path = Path("/")  # the node: os-release, sysfs, chroot for host tools
    config_root: Path = Path("/")  # where config files are read and written
    renderer: str | None = None  # the Job's choice (--renderer); None: select from os-release
    activate: str = "none"  # resolved activator: none|netplan|nmcli|iproute2 (auto is resolved)
    activate_command: str | None = None
    verify: str = "none"  # live|sysfs|none
    verify_timeout: float = 15.0
    probes: bool = True  # run the node file's per-interface probes after a live verification
    dry_run: bool = False
    check_only: bool = False  # ``agent verify``: report drift of files and live state, change nothing
    out: TextIO = field(default_factory=lambda: sys.stdout)


def our_files(config_root: Path) -> dict[str, tuple[bytes, str | None]]:
    """Every file of ours on disk (any renderer): relative path -> (content, owning NIC or None)."""
    found: dict[str, tuple[bytes, str | None]] = {}
    for owned in owned_files():
        for path in sorted(config_root.glob(owned.pattern)):
            content = files.read_bytes(path) if path.is_file() else None
            if content is not None and files.is_ours(content):
                found[path.relative_to(config_root).as_posix()] = (content, owned.owner(path.name))
    return found


def _netplan_blocks(content: bytes | None) -> dict[str, str]:
    """Our netplan file split into one stanza per NIC, keyed by the quoted name."""
    blocks: dict[str, str] = {}
    current: str | None = None
    for line in (content or b"").decode("utf-8", errors="replace").splitlines():
        if line.startswith('    "') and line.endswith(":"):
            current = line.strip()[:-1]
            blocks[current] = line + "\n"
        elif current is not None:
            blocks[current] += line + "\n"
    return blocks


def _desired(config: NodeConfig, renderer: str) -> dict[str, tuple[str, int, set[str]]]:
    """relative path -> (content, mode, owning NIC names) for every NIC of the spec."""
    node = config.spec.node_name
    ifaces = list(config.spec.interfaces)
    out: dict[str, tuple[str, int, set[str]]] = {}
    if renderer == "netplan":
        out[render_netplan.PATH] = (render_netplan.render(node, ifaces), render_netplan.MODE, {i.name for i in ifaces})
        return out
    for iface in ifaces:
        if renderer == "ifcfg":
            for rel, text in render_ifcfg.render(node, iface).items():
                out[rel] = (text, render_ifcfg.MODE, {iface.name})
        else:
            for rel, text in render_keyfile.render(node, iface).items():
                mode = render_keyfile.LINK_MODE if rel.endswith(".link") else render_keyfile.MODE
                out[rel] = (text, mode, {iface.name})
    return out


def _targets(config: NodeConfig, renderer: str, device_of: Mapping[str, devices.Device],
             names: set[str] | None = None) -> list[activate.Target]:
    """What activation and verification work towards, per NIC (all, or those in ``names``): every
    route with the metric the files give it (the renderer's explicit default where the spec has none)."""
    default = REGISTRY[renderer].route_metric if renderer in REGISTRY else None
    out = []
    for i in config.spec.interfaces:
        if names is not None and i.name not in names:
            continue
        routes = tuple(r if r.metric is not None or default is None else r.model_copy(update={"metric": default})
                       for r in i.routes)
        out.append(activate.Target(i.name, i.mac_address, device_of[i.name].name, i.mtu, i.addresses, routes))
    return out


def rendered_paths(config: NodeConfig, renderer: str) -> list[str]:
    """Every node path (absolute) ``renderer`` writes for this spec (the Job must mount them)."""
    return ["/" + rel for rel in _desired(config, renderer)]


def _outcome(states: Iterable[InterfaceResult], changed: bool) -> Outcome:
    items = list(states)
    if any(i.state == "error" for i in items):
        return "rolled-back"
    return "applied" if changed else "unchanged"


def _show_diffs(changes: list[files.Change], out: TextIO) -> None:
    for change in changes:
        verb = "remove" if change.new is None else "write"
        out.write(f"# would {verb} {change.node_path} (mode {change.mode:04o})\n")
        out.write(change.diff())
    out.flush()


def _stop(result: AgentResult, by_name: dict[str, InterfaceResult], step: Step, reason: str,
          per_name: Mapping[str, str | None]) -> AgentResult:
    """Nothing of this run stays on the node: mark every NIC, name the step that failed."""
    for name, item in by_name.items():
        own = per_name.get(name)
        item.state = "error"
        item.error = own or f"not applied: {reason}"
    result.interfaces = list(by_name.values())
    result.outcome = "rolled-back"
    result.step = step
    result.files = []
    result.error = result.error or reason
    return result


@dataclass
class _FileChanges:
    """What the files on the node need: the changes, the NICs they touch, the NICs they remove."""

    changes: list[files.Change]
    changed: set[str]
    removed: list[str]


def apply(config: NodeConfig, opts: Options) -> AgentResult:
    """Detect, match, check, diff; then (unless nothing changed, or a dry or check-only run) write,
    validate, activate, verify and probe as one transaction."""
    by_name: dict[str, InterfaceResult] = {
        i.name: InterfaceResult(name=i.name, mac=i.mac_address, state="unchanged") for i in config.spec.interfaces
    }
    started = _start(config, opts, by_name)
    if isinstance(started, AgentResult):
        return started
    result, renderer = started

    # MAC -> device. All or nothing: one NIC missing (or ambiguous) stops the run before any change.
    device_of, missing = _match(config, opts, by_name)
    if missing:
        return _stop(result, by_name, "match", f"{', '.join(missing)} not found; nothing was changed", missing)
    desired = _desired(config, renderer)
    refused = _refusal(config, opts, desired)
    if refused is not None:
        reason, per_name = refused
        return _stop(result, by_name, "plan", reason, per_name)

    diff = _file_changes(opts, desired, set(by_name))
    for name in diff.changed:
        by_name[name].state = "applied"
    result.files = [c.node_path for c in diff.changes if c.new is not None]

    if opts.check_only:
        return _drift(config, renderer, opts, result, by_name, device_of, diff)
    if not diff.changes:
        # "unchanged" is a claim about the node, not only its files: check the live state too. A
        # node whose files are right but whose live state is not (an agent killed between write
        # and activation, someone's manual change) is activated again from the same files.
        if opts.verify != "live" or opts.dry_run:
            result.outcome = "unchanged"
            return result
        everyone = _targets(config, renderer, device_of)
        drifted = {n for n, err in verify.live(everyone, opts.verify_timeout).items() if err}
        if not drifted:
            result.outcome = "unchanged"
            return result
        diff.changed = drifted
        for name in drifted:
            by_name[name].state = "applied"
    if opts.dry_run:
        _show_diffs(diff.changes, opts.out)
        result.outcome = "applied"
        return result
    return _transaction(config, opts, result, by_name, _targets(config, renderer, device_of, diff.changed), diff)


def _start(config: NodeConfig, opts: Options,
           by_name: dict[str, InterfaceResult]) -> tuple[AgentResult, str] | AgentResult:
    """The result to fill and the renderer, or a failed result when the OS is unknown and the Job
    named no renderer."""
    node = config.spec.node_name
    try:
        osinfo: osdetect.OSInfo | None = osdetect.detect(opts.root, config.spec.os_family)
    except osdetect.UnknownOSError as exc:
        if opts.renderer is None:
            for item in by_name.values():
                item.state, item.error = "error", str(exc)
            return AgentResult(node=node, os="", outcome="failed", interfaces=list(by_name.values()),
                               error=str(exc), step="detect", dry_run=opts.dry_run)
        osinfo = None
    # The Job's renderer wins: the Job mounted exactly its directories.
    renderer = opts.renderer or (osinfo.renderer if osinfo else "netplan")
    result = AgentResult(node=node, os=osinfo.label if osinfo else "", renderer=renderer,
                         outcome="unchanged", dry_run=opts.dry_run)
    result.interfaces = list(by_name.values())
    return result, renderer


def _match(config: NodeConfig, opts: Options, by_name: dict[str, InterfaceResult]) -> tuple[
        dict[str, devices.Device], dict[str, str | None]]:
    """Each NIC's device by MAC, and the NICs that have none (with why)."""
    found = devices.scan(opts.root)
    device_of: dict[str, devices.Device] = {}
    missing: dict[str, str | None] = {}
    for iface in config.spec.interfaces:
        try:
            dev = devices.match(found, iface.mac_address)
        except devices.DeviceError as exc:
            missing[iface.name] = str(exc)
            continue
        device_of[iface.name] = dev
        by_name[iface.name].device = dev.name
    return device_of, missing


def _refusal(config: NodeConfig, opts: Options, desired: Mapping[str, tuple[str, int, set[str]]]) -> tuple[
        str, dict[str, str | None]] | None:
    """Why this spec must not touch the node (reason, per NIC), or None."""
    # A route whose gateway is on none of the NIC's own prefixes would only "work" through a host
    # route the stack invents (NetworkManager does): the config repo refuses it, so does the agent,
    # unless the route says the gateway is on the link (onLink) or it is IPv6 link-local.
    offlink: dict[str, str | None] = {}
    for iface in config.spec.interfaces:
        for route in iface.routes:
            nets = [net.network for net in iface.interfaces if net.version == route.gateway.version]
            if not route.gateway_on_link and not any(route.gateway in net for net in nets):
                offlink[iface.name] = (f"route {route.to} via {route.via}: the gateway is not inside any of "
                                       f"{iface.name}'s prefixes ({', '.join(iface.addresses) or 'none'})")
                break
    if offlink:
        return "a route's gateway is not on its NIC's link; nothing was changed", offlink

    # A file at one of our paths without our marker belongs to someone else: never touch it.
    foreign: dict[str, str | None] = {}
    for rel, (text, _mode, owners) in desired.items():
        old = files.read_bytes(opts.config_root / rel)
        if text and old is not None and not files.is_ours(old):
            for name in owners:
                foreign[name] = f"/{rel} exists and is not managed by multinic-reconciler; left untouched"
    if foreign:
        return "a file in the way is not ours; nothing was changed", foreign
    return None


def _file_changes(opts: Options, desired: Mapping[str, tuple[str, int, set[str]]], in_spec: set[str]) -> _FileChanges:
    """Desired content that differs, plus our files nobody wants any more."""
    diff = _FileChanges([], set(), [])
    for rel, (text, mode, owners) in desired.items():
        old = files.read_bytes(opts.config_root / rel)
        new = text.encode() if text else None
        if old == new or (new is None and (old is None or not files.is_ours(old))):
            continue
        diff.changes.append(files.Change(rel, old, new, mode))
        if rel == render_netplan.PATH:
            before, after = _netplan_blocks(old), _netplan_blocks(new)
            diff.changed |= {n for n in owners if before.get(f'"{n}"') != after.get(f'"{n}"')}
            if old is not None and files.is_ours(old):
                gone = [b.strip('"') for b in before if b.strip('"') not in in_spec]
                diff.removed += [n for n in gone if n not in diff.removed]
        else:
            diff.changed |= owners
    for rel, (content, owner) in our_files(opts.config_root).items():
        if rel in desired or (owner is not None and owner in in_spec):
            continue
        diff.changes.append(files.Change(rel, content, None, 0))
        if owner is not None and owner not in diff.removed:
            diff.removed.append(owner)
    return diff


def _transaction(config: NodeConfig, opts: Options, result: AgentResult, by_name: dict[str, InterfaceResult],
                 targets: list[activate.Target], diff: _FileChanges) -> AgentResult:
    """Write, validate, activate, verify, probe; any failure restores every file and NIC."""
    ctx = activate.Context(root=opts.root, targets=targets, removed=diff.removed,
                           written=[opts.config_root / c.rel for c in diff.changes])
    activator = activate.make(opts.activate, opts.activate_command)
    tx = files.Transaction(opts.config_root)

    def roll_back(step: Step, reason: str, per_name: Mapping[str, str | None], live: bool = True) -> AgentResult:
        problems = tx.restore()
        if live:
            try:
                activator.rollback(ctx)
            except activate.ActivationError as exc:
                problems.append(f"re-activating the previous config failed: {exc}")
        if problems:
            result.error = reason + "; " + "; ".join(problems)
        marked = {n: (f"{e}; rolled back" if e else None) for n, e in per_name.items()}
        return _stop(result, by_name, step, f"rolled back: {reason}", marked)

    try:
        activator.prepare(ctx)
    except activate.ActivationError as exc:
        return _stop(result, by_name, "prepare", f"cannot read the live state before activating: {exc}; "
                     "nothing was changed", {})
    try:
        for change in diff.changes:
            tx.apply(change)
    except OSError as exc:
        return roll_back("write", f"writing files failed: {exc}", {}, live=False)
    try:
        activator.validate(ctx)
    except activate.ActivationError as exc:
        return roll_back("validate", f"the node's network stack rejected the files: {exc}", {}, live=False)
    try:
        activator.activate(ctx)
    except activate.ActivationError as exc:
        return roll_back("activate", f"activation failed: {exc}", {})

    if opts.verify != "none" and targets:
        if opts.verify == "live":
            checks = verify.live(targets, opts.verify_timeout)
        else:
            checks = verify.sysfs(opts.root, targets)
        bad = {name: err for name, err in checks.items() if err}
        if bad:
            return roll_back("verify", f"verification failed for {', '.join(sorted(bad))}", bad)
        if opts.verify == "live" and opts.probes:
            failed = {name: err for name, err in probe.run(config.spec.interfaces).items() if err}
            if failed:
                return roll_back("probe", f"probe failed for {', '.join(sorted(failed))}", failed)
    result.outcome = "applied"
    return result


def verify_only(config: NodeConfig, opts: Options) -> AgentResult:
    """``reconciler agent verify``: do the node's files and (with a live stack) its live state still
    match the spec? Changes nothing. Outcome ``unchanged`` (in sync) or ``drifted`` (files that
    differ in ``files``, each drifted NIC with what differs); ``failed`` when it could not check."""
    result = apply(config, replace(opts, check_only=True, dry_run=False))
    if result.outcome == "rolled-back":  # stopped before any change (NIC not found, foreign file)
        result.outcome = "failed"
    return result


def _drift(config: NodeConfig, renderer: str, opts: Options, result: AgentResult,
           by_name: dict[str, InterfaceResult], device_of: Mapping[str, devices.Device],
           diff: _FileChanges) -> AgentResult:
    """The check-only end of ``apply``: ``diff`` holds the files that differ (nothing is written);
    the live state is checked against the same targets an apply verifies (metrics included)."""
    result.files = [c.node_path for c in diff.changes]
    for item in by_name.values():
        item.state, item.error = "unchanged", None
    for name in diff.changed:
        by_name[name].state = "drifted"
        by_name[name].error = "files differ from the spec"
    if opts.verify == "live":
        for name, err in verify.live(_targets(config, renderer, device_of), opts.verify_timeout).items():
            if err:
                item = by_name[name]
                item.state = "drifted"
                item.error = f"{item.error}; live: {err}" if item.error else f"live: {err}"
    result.interfaces = list(by_name.values())
    drifted = diff.changes or any(i.state == "drifted" for i in by_name.values())
    result.outcome = "drifted" if drifted else "unchanged"
    return result


def remove(opts: Options, node: str) -> AgentResult:
    """Remove every file of ours (all formats), re-activate; foreign files are never touched."""
    try:
        osinfo: osdetect.OSInfo | None = osdetect.detect(opts.root)
    except osdetect.UnknownOSError:
        osinfo = None
    result = AgentResult(
        node=node,
        os=osinfo.label if osinfo else "",
        renderer=opts.renderer or (osinfo.renderer if osinfo else None),
        outcome="unchanged",
        dry_run=opts.dry_run,
    )
    existing = our_files(opts.config_root)
    changes = [files.Change(rel, content, None, 0) for rel, (content, _o) in existing.items()]
    names: dict[str, InterfaceResult] = {}
    for rel, (content, owner) in existing.items():
        owners = [owner] if owner else [b.strip('"') for b in _netplan_blocks(content) if rel == render_netplan.PATH]
        macs = _MAC.findall(content.decode("utf-8", errors="replace"))
        for n, name in enumerate(owners):
            if name not in names:
                mac = macs[n].lower() if owner is None and n < len(macs) else (macs[0].lower() if macs else "")
                names[name] = InterfaceResult(name=name, mac=mac, state="removed")
    result.interfaces = list(names.values())
    result.files = [c.node_path for c in changes]
    if not changes:
        return result
    if opts.dry_run:
        _show_diffs(changes, opts.out)
        result.outcome = "removed"
        return result
    ctx = activate.Context(root=opts.root, targets=[], removed=list(names),
                           written=[opts.config_root / c.rel for c in changes])
    activator = activate.make(opts.activate, opts.activate_command)
    tx = files.Transaction(opts.config_root)
    try:
        for change in changes:
            tx.apply(change)
        activator.activate(ctx)
    except (OSError, activate.ActivationError) as exc:
        problems = tx.restore()
        try:
            activator.rollback(ctx)
        except activate.ActivationError as again:
            problems.append(str(again))
        for item in result.interfaces:
            item.state, item.error = "error", f"removal rolled back: {exc}"
        result.outcome, result.files, result.step = "rolled-back", [], "remove"
        result.error = f"removal failed: {exc}" + (f"; {'; '.join(problems)}" if problems else "")
        return result
    result.outcome = "removed"
    return result
