"""The ``status/`` files committed back to the config repo, rendered from plain data.

``render`` is a pure function: the same reports give byte-identical files, so the write-back
commits only when a status really changed. Nothing here carries a timestamp (condition transition
times included); the commit itself records when a report was written.

Readable at any scale: ``status/README.md`` holds the summary and the nodes that are not Ready,
grouped by phase (up to ``README_NODE_CAP`` rows, then a count); the full node table is paged,
``NODE_PAGE_SIZE`` rows a page, into ``status/nodes/README.md``, ``status/nodes/page-002.md``, ...;
every node and cluster keeps its own YAML file. A ``RenderMemo`` carried from one render to the
next renders only the reports whose content changed.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.report.repostate import RepoReport

STATUS_DIR = "status"
NODE_PAGE_SIZE = 500  # rows per page of the full node table
README_NODE_CAP = 300  # non-Ready nodes listed in status/README.md before it only counts them
_README_LIST_BUDGET = 80_000  # bytes of those rows at most (keeps the README under 100 KB)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present (same output)
HEADER = "# Written by multinic-reconciler after each reconcile; edits are overwritten.\n"
_SAFE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_CELL_LIMIT = 160
MAX_BLOCKED = 20  # diagnostics listed in the README; the rest are counted
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")  # user:token@ in a URL inside an error


@dataclass(frozen=True)
class InterfaceReport:
    name: str
    mac: str | None = None
    state: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ConditionReport:
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class NodeReport:
    name: str  # CR name (= file stem under nodes/)
    node_name: str | None = None  # Kubernetes node, when it differs from the name
    phase: str = "Unknown"
    applied_revision: str | None = None
    interfaces: tuple[InterfaceReport, ...] = field(default=())
    last_error: str | None = None
    source_path: str | None = None
    conditions: tuple[ConditionReport, ...] = field(default=())
    vm_nic_mismatches: tuple[str, ...] = field(default=())  # from the Proxmox VM NIC check

    @property
    def blocked(self) -> str | None:
        """Why the node's file is blocked (ConfigValid=False), or None."""
        return next((c.message or "invalid" for c in self.conditions
                     if c.type == "ConfigValid" and c.status == "False"), None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "interfaces", tuple(self.interfaces))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        object.__setattr__(self, "vm_nic_mismatches", tuple(self.vm_nic_mismatches))

    @classmethod
    def from_resource(cls, name: str, spec: Mapping[str, Any] | None, status: Mapping[str, Any] | None) -> NodeReport:
        """From a MultiNicNodeConfig's spec and status (as the reconciler writes them)."""
        spec, status = spec or {}, status or {}
        return cls(
            name=name,
            node_name=spec.get("nodeName") or None,
            phase=status.get("phase") or "Unknown",
            applied_revision=status.get("appliedRevision"),
            interfaces=tuple(InterfaceReport(i.get("name", "?"), i.get("macAddress"), i.get("state"), i.get("error"))
                             for i in status.get("interfaces") or []),
            last_error=status.get("lastError"),
            source_path=status.get("sourcePath"),
            conditions=_conditions(status.get("conditions")),
            vm_nic_mismatches=tuple(str(m) for m in (status.get("proxmoxCheck") or {}).get("mismatches") or []),
        )


@dataclass(frozen=True)
class ClusterReport:
    name: str
    endpoint: str | None = None
    version: str | None = None
    node_count: int | None = None
    online_nodes: int | None = None
    health: str | None = None  # Healthy, Degraded, Unreachable
    ready: bool | None = None
    last_error: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @classmethod
    def from_resource(cls, name: str, spec: Mapping[str, Any] | None,
                      status: Mapping[str, Any] | None) -> ClusterReport:
        """From a ProxmoxCluster's spec and status (as registration writes them)."""
        spec, status = spec or {}, status or {}
        ready = next((c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready"),
                     None)
        return cls(name=name, endpoint=spec.get("apiEndpoint"), version=status.get("version"),
                   node_count=status.get("nodeCount"), online_nodes=status.get("onlineNodes"),
                   health=status.get("health"), ready=ready, last_error=status.get("lastError"),
                   warnings=tuple(status.get("warnings") or ()))


class RenderMemo:
    """The YAML of each report rendered last time: an unchanged report is not rendered again."""

    def __init__(self) -> None:
        self._documents: dict[NodeReport | ClusterReport, str] = {}
        self.rendered = 0  # documents rendered by the last ``render``

    def document(self, report: NodeReport | ClusterReport, keep: dict[NodeReport | ClusterReport, str]) -> str:
        text = self._documents.get(report)
        if text is None:
            self.rendered += 1
            text = _yaml(_node_document(report) if isinstance(report, NodeReport) else _cluster_document(report))
        keep[report] = text
        return text

    def replace(self, keep: dict[NodeReport | ClusterReport, str]) -> None:
        self._documents = keep


def render(nodes: Iterable[NodeReport], clusters: Iterable[ClusterReport], *,
           revision: str | None, memo: RenderMemo | None = None,
           repo: RepoReport | None = None) -> dict[str, str]:
    """path (``status/...``) -> content for the whole ``status/`` tree; stale files are simply absent."""
    nodes = sorted(nodes, key=lambda n: n.name)
    clusters = sorted(clusters, key=lambda c: c.name)
    memo = memo or RenderMemo()
    memo.rendered = 0
    keep: dict[NodeReport | ClusterReport, str] = {}
    files: dict[str, str] = {}
    node_paths = _paths("nodes", [n.name for n in nodes])
    cluster_paths = _paths("clusters", [c.name for c in clusters])
    for node in nodes:
        files[node_paths[node.name]] = memo.document(node, keep)
    for cluster in clusters:
        files[cluster_paths[cluster.name]] = memo.document(cluster, keep)
    memo.replace(keep)
    pages = _page_paths(len(nodes))
    files.update(_node_pages(nodes, node_paths, pages))
    files[f"{STATUS_DIR}/README.md"] = _readme(nodes, clusters, node_paths, cluster_paths, revision, pages, repo)
    return files


def summary(nodes: Iterable[NodeReport], clusters: Iterable[ClusterReport]) -> str:
    """The commit message: ``status: 8 ready, 1 failed, 2 clusters healthy [skip ci]``."""
    return f"status: {_summary_text(list(nodes), list(clusters))} [skip ci]"


# -- documents --------------------------------------------------------------------------------------


def _node_document(node: NodeReport) -> dict[str, Any]:
    return _compact({
        "name": node.name,
        "nodeName": node.node_name,
        "phase": node.phase,
        "appliedRevision": node.applied_revision,
        "sourcePath": node.source_path,
        "lastError": node.last_error,
        "interfaces": [_compact({"name": i.name, "macAddress": i.mac, "state": i.state, "error": i.error})
                       for i in node.interfaces],
        "conditions": [_compact({"type": c.type, "status": c.status, "reason": c.reason, "message": c.message})
                       for c in node.conditions],
        "vmNicMismatches": list(node.vm_nic_mismatches),
    })


def _cluster_document(cluster: ClusterReport) -> dict[str, Any]:
    return _compact({
        "name": cluster.name,
        "endpoint": cluster.endpoint,
        "version": cluster.version,
        "nodeCount": cluster.node_count,
        "onlineNodes": cluster.online_nodes,
        "health": cluster.health,
        "ready": cluster.ready,
        "lastError": cluster.last_error,
        "warnings": list(cluster.warnings),
    })


def _readme(nodes: list[NodeReport], clusters: list[ClusterReport], node_paths: dict[str, str],
            cluster_paths: dict[str, str], revision: str | None, pages: list[str],
            repo: RepoReport | None = None) -> str:
    lines = ["# Reconciler status", "",
             "<!-- Written by multinic-reconciler after each reconcile; edits are overwritten. -->", ""]
    if repo is not None:
        lines += _repo_lines(repo)
    lines += [f"Config revision: `{revision[:12]}`" if revision else "Config revision: none (working tree)", "",
              f"Summary: {_summary_text(nodes, clusters)}", ""]
    if repo is not None and repo.blocked:
        lines += _blocked_lines(repo)
    lines += ["## Nodes", ""]
    if nodes:
        count = f"{len(pages)} pages of up to {NODE_PAGE_SIZE}" if len(pages) > 1 else "one page"
        lines += [f"All {len(nodes)} nodes: [{_relative(pages[0])}]({_relative(pages[0])}) ({count}).", ""]
        lines += _not_ready(nodes, node_paths)
    else:
        lines.append("No nodes.")
    lines += ["", "## Clusters", ""]
    if clusters:
        lines += ["| Cluster | Endpoint | Version | Nodes | Health | Last error / warnings |",
                  "|---|---|---|---|---|---|"]
        for c in clusters:
            label = f"[{_cell(c.name)}]({_relative(cluster_paths[c.name])})"
            count = f"{c.online_nodes}/{c.node_count} online" if c.node_count is not None else ""
            notes = "; ".join(x for x in (c.last_error, *c.warnings) if x)
            lines.append(f"| {label} | {_cell(c.endpoint)} | {_cell(c.version)} | {count} | "
                         f"{_cell(c.health or ('Ready' if c.ready else 'Unknown'))} | {_cell(notes)} |")
    else:
        lines.append("No clusters.")
    return "\n".join(lines) + "\n"


def _not_ready(nodes: list[NodeReport], node_paths: dict[str, str]) -> list[str]:
    """The nodes that are not Ready, grouped by phase (Failed first), then Ready nodes whose VM NIC
    check failed; up to the cap, then counted."""
    mismatch, blocked = "Ready, VM NIC check failed", "Ready, file blocked"
    groups: dict[str, list[NodeReport]] = {}
    for node in nodes:
        if node.phase != "Ready":
            groups.setdefault(node.phase, []).append(node)
        elif node.blocked:
            groups.setdefault(blocked, []).append(node)
        elif node.vm_nic_mismatches:
            groups.setdefault(mismatch, []).append(node)
    if not groups:
        return ["Every node is Ready."]
    order = sorted(groups, key=lambda p: ({"Failed": 0, blocked: 2, mismatch: 3}.get(p, 1), p))
    not_ready = sum(len(v) for k, v in groups.items() if k not in (mismatch, blocked))
    lines = [f"### Not Ready: {not_ready} of {len(nodes)}", ""]
    listed = size = 0
    for phase in order:
        members = groups[phase]
        rows = []
        for n in members:
            if listed >= README_NODE_CAP or size >= _README_LIST_BUDGET:
                break
            row = _problem_row(n, node_paths[n.name], relative_to=STATUS_DIR)
            rows.append(row)
            listed += 1
            size += len(row) + 1
        lines += [f"#### {_cell(phase)} ({len(members)})", ""]
        if rows:
            lines += ["| Node | Applied revision | Problem |", "|---|---|---|", *rows]
        if len(rows) < len(members):
            lines += ["", f"…and {len(members) - len(rows)} more {_cell(phase)} node(s): see the full table."]
        lines.append("")
    return lines[:-1]


def _problem_row(n: NodeReport, path: str, *, relative_to: str) -> str:
    label = f"[{_cell(n.name)}]({path.removeprefix(relative_to + '/')})"
    if n.node_name and n.node_name != n.name:
        label += f" ({_cell(n.node_name)})"
    applied = f"`{_cell(n.applied_revision[:12])}`" if n.applied_revision else ""
    return f"| {label} | {applied} | {_cell(_problems(n, interfaces=True))} |"


def _problems(n: NodeReport, *, interfaces: bool) -> str:
    failed = [f"{i.name}: {i.error}" for i in n.interfaces if i.error] if interfaces else []
    return "; ".join(x for x in (f"file blocked: {n.blocked}" if n.blocked else None, n.last_error, *failed,
                                 *(f"VM NIC check: {m}" for m in n.vm_nic_mismatches)) if x)


def _page_paths(count: int) -> list[str]:
    pages = max(1, -(-count // NODE_PAGE_SIZE))
    return [f"{STATUS_DIR}/nodes/README.md" if i == 0 else f"{STATUS_DIR}/nodes/page-{i + 1:03d}.md"
            for i in range(pages)]


def _node_pages(nodes: list[NodeReport], node_paths: dict[str, str], pages: list[str]) -> dict[str, str]:
    """The full node table, ``NODE_PAGE_SIZE`` rows a page; the first page lists every page."""
    if not nodes:
        return {}
    folder = f"{STATUS_DIR}/nodes"
    files: dict[str, str] = {}
    chunks = [nodes[i:i + NODE_PAGE_SIZE] for i in range(0, len(nodes), NODE_PAGE_SIZE)]
    index: list[str] = []
    if len(pages) > 1:
        index = ["Pages:", ""] + [
            f"- [{i + 1}]({page.removeprefix(folder + '/')}): {_cell(chunk[0].name)} … {_cell(chunk[-1].name)}"
            for i, (page, chunk) in enumerate(zip(pages, chunks, strict=True))] + [""]
    for i, (page, chunk) in enumerate(zip(pages, chunks, strict=True)):
        nav = ["[status](../README.md)"]
        if i > 0:
            nav.append(f"[previous]({pages[i - 1].removeprefix(folder + '/')})")
        if i + 1 < len(pages):
            nav.append(f"[next]({pages[i + 1].removeprefix(folder + '/')})")
        lines = [f"# Nodes, page {i + 1} of {len(pages)}", "",
                 "<!-- Written by multinic-reconciler after each reconcile; edits are overwritten. -->", "",
                 " · ".join(nav), ""]
        if i == 0:
            lines += index
        lines += ["| Node | Phase | Applied revision | Interfaces | Last error / VM NIC check |",
                  "|---|---|---|---|---|"]
        for n in chunk:
            label = f"[{_cell(n.name)}]({node_paths[n.name].removeprefix(folder + '/')})"
            if n.node_name and n.node_name != n.name:
                label += f" ({_cell(n.node_name)})"
            interfaces = ", ".join(_interface_cell(x) for x in n.interfaces)
            applied = f"`{_cell(n.applied_revision[:12])}`" if n.applied_revision else ""
            phase = f"{n.phase} (blocked)" if n.blocked else n.phase
            lines.append(f"| {label} | {_cell(phase)} | {applied} | {interfaces} | "
                         f"{_cell(_problems(n, interfaces=False))} |")
        files[page] = "\n".join(lines) + "\n"
    return files


def _repo_lines(repo: RepoReport) -> list[str]:
    """The repo-level state the README starts with: what was attempted, what is applied, why not."""
    attempted = f"`{repo.attempted_revision}`" if repo.attempted_revision else "none (working tree)"
    if repo.applied_revision is None:
        applied = "none recorded yet (no commit fully applied since status reports began)"
    elif repo.fully_applied:
        applied = f"`{repo.applied_revision}` (= attempted: fully applied)"
    else:
        applied = f"`{repo.applied_revision}` (≠ attempted: not fully applied, see Validation and Rollout)"
    if repo.settings_blocked:
        validation = f"failed: reconciler.yaml is invalid, nothing is applied ({repo.errors} error(s))"
    elif repo.valid:
        validation = f"ok ({repo.files_checked} files)"
    else:
        validation = (f"failed: {repo.errors} error(s) in {len(repo.blocked)} file(s), blocked "
                      "(their live objects are kept unchanged; the other files are applied)")
    return [f"Attempted revision: {attempted}", "", f"Applied revision: {applied}", "",
            f"Validation: {validation}", "", f"Rollout: {_text(repo.rollout)}", ""]


def _blocked_lines(repo: RepoReport) -> list[str]:
    lines = ["## Blocked files", ""]
    every = [d for b in repo.blocked for d in b.diagnostics]
    lines += [f"- {_text(d)}" for d in every[:MAX_BLOCKED]]
    if len(every) > MAX_BLOCKED:
        lines.append(f"- … and {len(every) - MAX_BLOCKED} more (`reconciler validate` lists them all)")
    return [*lines, ""]


def _summary_text(nodes: list[NodeReport], clusters: list[ClusterReport]) -> str:
    phases = Counter(n.phase.lower() for n in nodes)
    order = sorted(phases, key=lambda p: ({"ready": 0, "failed": 1}.get(p, 2), p))
    parts = [f"{phases[p]} {p}" for p in order] or ["no nodes"]
    health = Counter((c.health or "unknown").lower() for c in clusters)
    if not clusters:
        parts.append("no clusters")
    elif set(health) == {"healthy"}:
        parts.append(f"{len(clusters)} cluster{'s' if len(clusters) != 1 else ''} healthy")
    else:
        parts.append(f"clusters: {', '.join(f'{health[h]} {h}' for h in sorted(health))}")
    return ", ".join(parts)


# -- formatting -------------------------------------------------------------------------------------


def _paths(folder: str, names: list[str]) -> dict[str, str]:
    """File per name; a name unfit for a file name gets a sanitized, hash-suffixed one."""
    paths: dict[str, str] = {}
    for name in names:
        stem = name
        if not _SAFE_NAME.fullmatch(name) or len(name) > 200:
            digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
            stem = re.sub(r"[^a-z0-9.-]+", "_", name.lower())[:60].strip("._-") + f"-{digest}"
        paths[name] = f"{STATUS_DIR}/{folder}/{stem}.yaml"
    return paths


def _relative(path: str) -> str:
    return path.removeprefix(f"{STATUS_DIR}/")


def _compact(document: dict[str, Any]) -> dict[str, Any]:
    return {k: _USERINFO.sub(r"\1***@", v) if isinstance(v, str) else v
            for k, v in document.items() if v is not None and v != [] and v != ""}


def _yaml(document: dict[str, Any]) -> str:
    return HEADER + yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                              allow_unicode=True, width=10_000)


def _interface_cell(interface: InterfaceReport) -> str:
    text = f"{interface.name}: {interface.state}" if interface.state else interface.name
    if interface.error:
        text += f" ({interface.error})"
    return _cell(text)


def _cell(value: object) -> str:
    """Table-safe text: one line, pipes escaped, no raw HTML, bounded length."""
    if value is None:
        return ""
    return _text(value, _CELL_LIMIT).replace("|", "\\|")


def _text(value: object, limit: int = 400) -> str:
    """Markdown-safe text: one line, backslashes escaped, no raw HTML, no URL credentials, bounded."""
    text = _USERINFO.sub(r"\1***@", " ".join(str(value).split()))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _conditions(raw: object) -> tuple[ConditionReport, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(ConditionReport(str(c.get("type")), str(c.get("status")), c.get("reason"), c.get("message"))
                 for c in raw if isinstance(c, dict) and c.get("type"))
