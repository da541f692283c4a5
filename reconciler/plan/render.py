"""A ChangeSet for terminals (text), pull-request comments (Markdown) and machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from reconciler.plan.changeset import Action, Change, ChangeSet

_SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.UNCHANGED: "=", Action.BLOCKED: "!"}


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def _summary(changes: ChangeSet) -> str:
    counts = changes.counts()
    return ", ".join(
        f"{counts[a.value]} to {a.value}"
        if a not in (Action.UNCHANGED, Action.BLOCKED)
        else f"{counts[a.value]} {a.value}"
        for a in Action
    )


def text(changes: ChangeSet) -> str:
    lines = [f"Plan for revision {changes.revision or '(working tree)'}: {_summary(changes)}"]
    lines += [f"! {note}" for note in changes.notes]
    for change in changes.changes:
        if change.action is Action.UNCHANGED:
            continue
        lines.append(
            f"{_SYMBOL[change.action]} {change.kind}/{change.name}  ({change.action.value}"
            f"{': ' + change.reason if change.reason else ''})"
        )
        for f in change.fields:
            lines.append(f"    {f.path}: {_value(f.before)} -> {_value(f.after)}")
    if not changes.has_changes:
        lines.append("No changes: the cluster matches Git.")
    return "\n".join(lines) + "\n"


def _md_cell(value: Any) -> str:
    return f"`{_value(value)}`".replace("|", "\\|").replace("\n", " ")


def _interfaces_table(change: Change) -> list[str]:
    """Before/after per interface, the view reviewers of a network change need."""
    before = {i["name"]: i for i in (change.live or {}).get("interfaces", [])}
    after = {i["name"]: i for i in ((change.desired or {}).get("spec") or {}).get("interfaces", [])}
    if not before and not after:
        return []
    rows = ["| interface | before | after |", "|---|---|---|"]
    for name in list(after) + [n for n in before if n not in after]:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        rows.append(f"| `{name}` | {_iface(old)} | {_iface(new)} |")
    return rows if len(rows) > 2 else []


def _iface(iface: dict[str, Any] | None) -> str:
    if iface is None:
        return "(absent)"
    parts = [iface.get("macAddress", ""), ", ".join(iface.get("addresses", []))]
    if iface.get("mtu"):
        parts.append(f"mtu {iface['mtu']}")
    for route in iface.get("routes", []):
        parts.append(f"{route['to']} via {route['via']}")
    return "<br>".join(p.replace("|", "\\|") for p in parts if p)


def markdown(changes: ChangeSet) -> str:
    counts = changes.counts()
    out = [
        f"### multinic-reconciler plan for `{changes.revision or 'working tree'}`",
        "",
        "| create | update | delete | unchanged | blocked |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(str(counts[a.value]) for a in Action) + " |",
        "",
    ]
    out += [f"> [!WARNING]\n> {note}\n" for note in changes.notes]
    if not changes.has_changes and not counts["blocked"]:
        out.append("No changes: the cluster matches Git.")
    for change in changes.changes:
        if change.action is Action.UNCHANGED:
            continue
        title = f"{_SYMBOL[change.action]} <code>{change.kind}/{change.name}</code>: {change.action.value}"
        out += ["<details>", f"<summary>{title}</summary>", ""]
        if change.source:
            out.append(f"Source: `{change.source}`  ")
        if change.reason:
            out.append(f"Reason: {change.reason}")
        out.append("")
        if change.action is Action.UPDATE:
            table = _interfaces_table(change)
            if table:
                out += [*table, ""]
            out += ["| field | before | after |", "|---|---|---|"]
            out += [f"| `{f.path}` | {_md_cell(f.before)} | {_md_cell(f.after)} |" for f in change.fields]
            out.append("")
        elif change.action is Action.CREATE and change.desired:
            out += ["```yaml", yaml.safe_dump({"spec": change.desired["spec"]}, sort_keys=False).rstrip(), "```", ""]
        out += ["</details>", ""]
    return "\n".join(out) + "\n"


def as_json(changes: ChangeSet) -> str:
    body = {
        "revision": changes.revision,
        "hasChanges": changes.has_changes,
        "summary": changes.counts(),
        "notes": list(changes.notes),
        "changes": [
            {
                "kind": c.kind,
                "name": c.name,
                "action": c.action.value,
                "source": c.source,
                "reason": c.reason,
                "fields": [{"path": f.path, "before": f.before, "after": f.after} for f in c.fields],
            }
            for c in changes.changes
        ],
    }
    return json.dumps(body, indent=2) + "\n"


FORMATS: dict[str, Callable[[ChangeSet], str]] = {"text": text, "markdown": markdown, "json": as_json}
