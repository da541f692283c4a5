"""The apply and remove flows: detect, match, render, diff, write, activate, verify, roll back."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from reconciler.agent import (
    activate,
    devices,
    files,
    osdetect,
    render_ifcfg,
    render_keyfile,
    render_netplan,
    verify,
)
from reconciler.config.models import Interface, NodeConfig
from reconciler.nodejob.result import AgentResult, InterfaceResult, Outcome

_MAC = re.compile(r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")


@dataclass
class Options:
    root: Path = Path("/")  # the node: os-release, sysfs, chroot for host tools
    config_root: Path = Path("/")  # where config files are read and written
    activate: str = "none"  # resolved activator: none|netplan|nmcli|iproute2 (auto is resolved)
    activate_command: str | None = None
    verify: str = "none"  # live|sysfs|none
    verify_timeout: float = 15.0
    dry_run: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)


@dataclass(frozen=True, slots=True)
class Managed:
    """Where our files can live (relative glob) and how a file name maps to its NIC name."""

    pattern: str
    owner: Callable[[str], str | None]


MANAGED = [
    Managed(render_netplan.PATH, lambda _name: None),
    Managed(f"{render_ifcfg.DIR}/ifcfg-*", lambda n: n.removeprefix("ifcfg-")),
    Managed(f"{render_ifcfg.DIR}/route-*", lambda n: n.removeprefix("route-")),
    Managed(f"{render_ifcfg.DIR}/route6-*", lambda n: n.removeprefix("route6-")),
    Managed(f"{render_keyfile.DIR}/*.nmconnection", lambda n: n.removesuffix(".nmconnection")),
    Managed(
        f"{render_keyfile.LINK_DIR}/70-multinic-*.link",
        lambda n: n.removeprefix("70-multinic-").removesuffix(".link"),
    ),
]


def our_files(config_root: Path) -> dict[str, tuple[bytes, str | None]]:
    """Every file of ours on disk: relative path -> (content, owning NIC name or None)."""
    found: dict[str, tuple[bytes, str | None]] = {}
    for managed in MANAGED:
        for path in sorted(config_root.glob(managed.pattern)):
            content = files.read_bytes(path) if path.is_file() else None
            if content is not None and files.is_ours(content):
                found[path.relative_to(config_root).as_posix()] = (content, managed.owner(path.name))
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


def _desired(
    config: NodeConfig, renderer: str, ifaces: list[Interface], config_root: Path
) -> dict[str, tuple[str, int, set[str]]]:
    """relative path -> (content, mode, owning NIC names); "" content means "must not exist"."""
    node = config.spec.node_name
    out: dict[str, tuple[str, int, set[str]]] = {}
    if renderer == "netplan":
        # NICs of the spec that failed to match keep their previous stanza, as they keep their
        # files with the per-NIC renderers: a NIC missing for a moment loses nothing.
        old = files.read_bytes(config_root / render_netplan.PATH)
        kept = _netplan_blocks(old) if files.is_ours(old) else {}
        ok = {i.name for i in ifaces}
        entries: list[Interface | str] = []
        for iface in config.spec.interfaces:
            if iface.name in ok:
                entries.append(iface)
            elif f'"{iface.name}"' in kept:
                entries.append(kept[f'"{iface.name}"'])
        text = render_netplan.render(node, entries) if entries else ""
        out[render_netplan.PATH] = (text, render_netplan.MODE, ok)
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


def _outcome(states: Iterable[InterfaceResult], changed: bool) -> Outcome:
    items = list(states)
    errors = [i for i in items if i.state == "error"]
    if not errors:
        return "applied" if changed else "unchanged"
    return "failed" if len(errors) == len(items) else "partial"


def _show_diffs(changes: list[files.Change], out: TextIO) -> None:
    for change in changes:
        verb = "remove" if change.new is None else "write"
        out.write(f"# would {verb} {change.node_path} (mode {change.mode:04o})\n")
        out.write(change.diff())
    out.flush()


def apply(config: NodeConfig, opts: Options) -> AgentResult:
    node = config.spec.node_name
    by_name: dict[str, InterfaceResult] = {
        i.name: InterfaceResult(name=i.name, mac=i.mac_address, state="unchanged") for i in config.spec.interfaces
    }

    def fail(name: str, message: str) -> None:
        by_name[name].state = "error"
        by_name[name].error = message

    try:
        osinfo = osdetect.detect(opts.root, config.spec.os_family)
    except osdetect.UnknownOSError as exc:
        for name in by_name:
            fail(name, str(exc))
        return AgentResult(
            node=node,
            os="",
            outcome="failed",
            interfaces=list(by_name.values()),
            error=str(exc),
            dry_run=opts.dry_run,
        )
    result = AgentResult(
        node=node, os=osinfo.label, renderer=osinfo.renderer, outcome="unchanged", dry_run=opts.dry_run
    )

    # MAC -> device; NICs we cannot find are reported and left out of the files.
    found = devices.scan(opts.root)
    ok: list[Interface] = []
    device_of: dict[str, str] = {}
    for iface in config.spec.interfaces:
        try:
            dev = devices.match(found, iface.mac_address)
        except devices.DeviceError as exc:
            fail(iface.name, str(exc))
            continue
        by_name[iface.name].device = device_of[iface.name] = dev.name
        ok.append(iface)

    # A file at one of our paths without our marker belongs to someone else: never touch it,
    # and do not configure that NIC (two configs for one NIC would fight).
    desired = _desired(config, osinfo.renderer, ok, opts.config_root)
    for rel, (text, _mode, owners) in desired.items():
        old = files.read_bytes(opts.config_root / rel)
        if text and old is not None and not files.is_ours(old):
            for name in owners:
                fail(name, f"/{rel} exists and is not managed by multinic-reconciler; left untouched")
    ok = [i for i in ok if by_name[i.name].state != "error"]
    desired = _desired(config, osinfo.renderer, ok, opts.config_root)

    # Changes: desired content that differs, plus our files nobody wants any more. Files of NICs
    # that are in the spec but failed above are kept as they are.
    in_spec = set(by_name)
    changes: list[files.Change] = []
    changed_names: set[str] = set()
    removed_names: list[str] = []
    existing = our_files(opts.config_root)
    for rel, (text, mode, owners) in desired.items():
        old = files.read_bytes(opts.config_root / rel)
        new = text.encode() if text else None
        if old == new or (new is None and (old is None or not files.is_ours(old))):
            continue
        changes.append(files.Change(rel, old, new, mode))
        if rel == render_netplan.PATH:
            before, after = _netplan_blocks(old), _netplan_blocks(new)
            changed_names |= {n for n in owners if before.get(f'"{n}"') != after.get(f'"{n}"')}
            if old is not None and files.is_ours(old):
                gone = [b.strip('"') for b in before if b.strip('"') not in in_spec]
                removed_names += [n for n in gone if n not in removed_names]
        else:
            changed_names |= owners
    for rel, (content, owner) in existing.items():
        if rel in desired or (owner is not None and owner in in_spec):
            continue
        changes.append(files.Change(rel, content, None, 0))
        if owner is not None and owner not in removed_names:
            removed_names.append(owner)
    for name in changed_names:
        by_name[name].state = "applied"
    result.interfaces = list(by_name.values())
    result.files = [c.node_path for c in changes if c.new is not None]

    if not changes:
        result.outcome = _outcome(result.interfaces, changed=False)
        return result
    if opts.dry_run:
        _show_diffs(changes, opts.out)
        result.outcome = _outcome(result.interfaces, changed=True)
        return result

    targets = [
        activate.Target(i.name, i.mac_address, device_of[i.name], i.mtu, i.addresses, i.routes)
        for i in ok
        if i.name in changed_names
    ]
    ctx = activate.Context(root=opts.root, targets=targets, removed=removed_names)
    activator = activate.make(opts.activate, opts.activate_command)
    tx = files.Transaction(opts.config_root)

    def roll_back(reason: str, per_name: Mapping[str, str | None]) -> AgentResult:
        problems = tx.restore()
        try:
            activator.rollback(ctx)
        except activate.ActivationError as exc:
            problems.append(f"re-activating the previous config failed: {exc}")
        for target in targets:
            own = per_name.get(target.name)
            fail(target.name, f"{own}; rolled back" if own else f"rolled back: {reason}")
        result.outcome = "rolled-back"
        result.files = []
        result.error = reason + (f"; {'; '.join(problems)}" if problems else "")
        return result

    try:
        activator.prepare(ctx)
    except activate.ActivationError as exc:
        for target in targets:
            fail(target.name, f"cannot read the live state before activating: {exc}")
        result.outcome = _outcome(result.interfaces, changed=False)
        result.files = []
        return result
    try:
        for change in changes:
            tx.apply(change)
    except OSError as exc:
        return roll_back(f"writing files failed: {exc}", {})
    try:
        activator.activate(ctx)
    except activate.ActivationError as exc:
        return roll_back(f"activation failed: {exc}", {})

    if opts.verify != "none" and targets:
        if opts.verify == "live":
            checks = verify.live(targets, opts.verify_timeout)
        else:
            checks = verify.sysfs(opts.root, targets)
        bad = {name: err for name, err in checks.items() if err}
        if bad:
            return roll_back(f"verification failed for {', '.join(sorted(bad))}", bad)
    result.outcome = _outcome(result.interfaces, changed=True)
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
        renderer=osinfo.renderer if osinfo else None,
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
    ctx = activate.Context(root=opts.root, targets=[], removed=list(names))
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
        result.outcome, result.files = "rolled-back", []
        result.error = f"removal failed: {exc}" + (f"; {'; '.join(problems)}" if problems else "")
        return result
    result.outcome = "removed"
    return result
