"""A ChangeSet for terminals (text), pull-request comments (Markdown) and machines (JSON).

Every renderer takes the validation diagnostics too, so that a blocked entry shows *why* it is
blocked. The Markdown plan fits a GitHub comment (65,536 characters): it is cut between objects,
with counts of what was left out and where the full plan is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from reconciler.config.diagnostics import Diagnostic
from reconciler.plan.changeset import Action, Change, ChangeSet

MARKDOWN_LIMIT = 65_536  # GitHub refuses issue and PR comment bodies longer than this

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


def _why(change: Change, diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """The errors of the file(s) that block ``change``."""
    if change.action is not Action.BLOCKED or not change.source:
        return []
    return [d for d in diagnostics if d.severity == "error" and d.path == change.source]


def _nothing(changes: ChangeSet) -> str:
    if changes.counts()["blocked"]:
        return "No changes can be applied until the blocked objects are fixed."
    return "No changes: the cluster matches Git."


def text(changes: ChangeSet, diagnostics: Sequence[Diagnostic] = ()) -> str:
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
        for d in _why(change, diagnostics):
            lines.append(f"    {d.location}: {_printable(d.message)}  [{d.rule}]")
    if not changes.has_changes:
        lines.append(_nothing(changes))
    return "\n".join(lines) + "\n"


def _printable(value: str) -> str:
    from reconciler.config.formats import printable

    return printable(value)


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
    """Every field of an interface, so that any change shows in the table."""
    if iface is None:
        return "(absent)"
    parts = [iface.get("macAddress", ""), ", ".join(iface.get("addresses", []))]
    if iface.get("mtu"):
        parts.append(f"mtu {iface['mtu']}")
    if iface.get("proxmoxNet"):
        parts.append(f"proxmoxNet {iface['proxmoxNet']}")
    for route in iface.get("routes", []):
        metric = f" metric {route['metric']}" if route.get("metric") is not None else ""
        onlink = " onlink" if route.get("onLink") else ""
        parts.append(f"{route['to']} via {route['via']}{metric}{onlink}")
    known = {"name", "macAddress", "addresses", "mtu", "proxmoxNet", "routes"}
    parts += [f"{key} {_value(value)}" for key, value in sorted(iface.items()) if key not in known]
    return "<br>".join(_md_text(p) for p in parts if p)


def _md_text(value: str) -> str:
    return _printable(value).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_change(change: Change, diagnostics: Sequence[Diagnostic]) -> list[str]:
    title = f"{_SYMBOL[change.action]} <code>{change.kind}/{change.name}</code>: {change.action.value}"
    out = ["<details>", f"<summary>{title}</summary>", ""]
    if change.source:
        out.append(f"Source: `{change.source}`  ")
    if change.reason:
        out.append(f"Reason: {_md_text(change.reason)}")
    out.append("")
    why = _why(change, diagnostics)
    if why:
        out += ["| where | field | problem |", "|---|---|---|"]
        out += [f"| `{_md_text(d.location)}` | {_md_text(d.field) or '-'} | {_md_text(d.message)} |" for d in why]
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
    return out


def markdown(changes: ChangeSet, diagnostics: Sequence[Diagnostic] = (), limit: int = MARKDOWN_LIMIT) -> str:
    counts = changes.counts()
    head = [
        f"### multinic-reconciler plan for `{changes.revision or 'working tree'}`",
        "",
        "| create | update | delete | unchanged | blocked |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(str(counts[a.value]) for a in Action) + " |",
        "",
    ]
    head += [f"> [!WARNING]\n> {_md_text(note)}\n" for note in changes.notes]
    if not changes.has_changes:
        head.append(_nothing(changes))
    body = "\n".join(head) + "\n"
    shown = [c for c in changes.changes if c.action is not Action.UNCHANGED]
    reserve = 600  # the note about what was left out
    for index, change in enumerate(shown):
        block = "\n".join(_md_change(change, diagnostics)) + "\n"
        if len(body) + len(block) > limit - reserve:
            left = shown[index:]
            by_action: dict[str, int] = {}
            for c in left:
                by_action[c.action.value] = by_action.get(c.action.value, 0) + 1
            what = ", ".join(f"{n} {a}" for a, n in by_action.items())
            body += (
                f"\n> [!NOTE]\n> {len(left)} more object(s) are not shown ({what}): the comment would exceed "
                f"GitHub's {limit:,} characters. The full plan is in the job log (`reconciler plan`) "
                "and in `reconciler plan --format json`.\n"
            )
            break
        body += block
    return body


def as_json(changes: ChangeSet, diagnostics: Sequence[Diagnostic] = ()) -> str:
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
                "diagnostics": [
                    {"file": d.path, "line": d.line, "column": d.column, "field": d.field, "rule": d.rule,
                     "message": d.message}
                    for d in _why(c, diagnostics)
                ],
            }
            for c in changes.changes
        ],
    }
    return json.dumps(body, indent=2) + "\n"


FORMATS: dict[str, Callable[[ChangeSet, Sequence[Diagnostic]], str]] = {
    "text": text,
    "markdown": markdown,
    "json": as_json,
}
