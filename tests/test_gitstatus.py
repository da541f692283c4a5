"""Rendering of the status/ files: deterministic, timestamp-free, sorted, table-safe."""

from __future__ import annotations

import random
import re

import yaml

from reconciler.report.gitstatus import (
    HEADER,
    ClusterReport,
    ConditionReport,
    InterfaceReport,
    NodeReport,
    render,
    summary,
)

REV = "0123456789abcdef0123456789abcdef01234567"

NODES = [
    NodeReport("worker-01", phase="Ready", applied_revision=REV, source_path="nodes/worker-01.yaml",
               interfaces=(InterfaceReport("storage0", "bc:24:11:20:00:0b", "configured"),
                           InterfaceReport("tenant0", "bc:24:11:30:00:0b", "configured")),
               conditions=(ConditionReport("Ready", "True", "Applied", "applied"),)),
    NodeReport("gpu-01", node_name="gpu-node-1", phase="Failed", last_error="agent: link | down\nsecond line",
               interfaces=(InterfaceReport("storage0", state="failed", error="no carrier <eth1>"),)),
    NodeReport("worker-02", phase="Applying"),
]
CLUSTERS = [
    ClusterReport("pve-prod", endpoint="https://pve-prod.example.net:8006", version="8.2.4", node_count=3,
                  online_nodes=3, health="Healthy", ready=True),
    ClusterReport("pve-lab", endpoint="https://pve-lab.example.net", health="Unreachable", ready=False,
                  last_error="connection refused", warnings=("TLS certificate verification is disabled",)),
]


def test_render_writes_one_file_per_node_and_cluster_and_a_readme():
    files = render(NODES, CLUSTERS, revision=REV)
    assert sorted(files) == ["status/README.md", "status/clusters/pve-lab.yaml", "status/clusters/pve-prod.yaml",
                             "status/nodes/README.md", "status/nodes/gpu-01.yaml", "status/nodes/worker-01.yaml",
                             "status/nodes/worker-02.yaml"]


def test_the_same_reports_in_any_order_render_byte_identical_files():
    first = render(NODES, CLUSTERS, revision=REV)
    shuffled_nodes, shuffled_clusters = NODES[:], CLUSTERS[:]
    random.Random(7).shuffle(shuffled_nodes)
    shuffled_clusters.reverse()
    assert render(shuffled_nodes, shuffled_clusters, revision=REV) == first


def test_no_file_carries_a_timestamp():
    for content in render(NODES, CLUSTERS, revision=REV).values():
        assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", content)


def test_node_and_cluster_yaml_carry_the_header_and_the_reported_fields():
    files = render(NODES, CLUSTERS, revision=REV)
    for path, content in files.items():
        if path.endswith(".yaml"):
            assert content.startswith(HEADER)
    worker = yaml.safe_load(files["status/nodes/worker-01.yaml"])
    assert worker == {
        "name": "worker-01", "phase": "Ready", "appliedRevision": REV, "sourcePath": "nodes/worker-01.yaml",
        "interfaces": [{"name": "storage0", "macAddress": "bc:24:11:20:00:0b", "state": "configured"},
                       {"name": "tenant0", "macAddress": "bc:24:11:30:00:0b", "state": "configured"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Applied", "message": "applied"}],
    }
    gpu = yaml.safe_load(files["status/nodes/gpu-01.yaml"])
    assert gpu["nodeName"] == "gpu-node-1" and gpu["lastError"] == "agent: link | down\nsecond line"
    lab = yaml.safe_load(files["status/clusters/pve-lab.yaml"])
    assert lab == {"name": "pve-lab", "endpoint": "https://pve-lab.example.net", "health": "Unreachable",
                   "ready": False, "lastError": "connection refused",
                   "warnings": ["TLS certificate verification is disabled"]}
    prod = yaml.safe_load(files["status/clusters/pve-prod.yaml"])
    assert prod["version"] == "8.2.4" and prod["nodeCount"] == 3 and prod["onlineNodes"] == 3


def test_the_readme_lists_the_nodes_not_ready_by_phase_and_the_clusters_with_escaped_cells():
    files = render(NODES, CLUSTERS, revision=REV)
    readme = files["status/README.md"]
    assert f"Config revision: `{REV[:12]}`" in readme
    assert "Summary: 1 ready, 1 failed, 1 applying, clusters: 1 healthy, 1 unreachable" in readme
    assert "All 3 nodes: [nodes/README.md](nodes/README.md)" in readme
    assert "### Not Ready: 2 of 3" in readme
    assert readme.index("#### Failed (1)") < readme.index("#### Applying (1)")  # failures first
    rows = [line for line in readme.splitlines() if line.startswith("| [")]
    assert [re.match(r"\| \[([^\]]+)\]", r).group(1) for r in rows] == [  # type: ignore[union-attr]
        "gpu-01", "worker-02", "pve-lab", "pve-prod"]
    gpu = rows[0]
    assert gpu.count(" | ") == 2  # the pipe inside the error is escaped, the newline folded
    assert "agent: link \\| down second line" in gpu and "(gpu-node-1)" in gpu
    assert "storage0: no carrier &lt;eth1&gt;" in gpu

    # The full table (every node, Ready ones too) is on the node pages.
    page = files["status/nodes/README.md"]
    assert "[status](../README.md)" in page
    rows = [line for line in page.splitlines() if line.startswith("| [")]
    assert [re.match(r"\| \[([^\]]+)\]", r).group(1) for r in rows] == [  # type: ignore[union-attr]
        "gpu-01", "worker-01", "worker-02"]
    gpu, worker = rows[0], rows[1]
    assert gpu.count(" | ") == 4 and "(gpu-node-1)" in gpu and "[gpu-01](gpu-01.yaml)" in gpu
    assert "storage0: failed (no carrier &lt;eth1&gt;)" in gpu
    assert f"`{REV[:12]}`" in worker and "storage0: configured, tenant0: configured" in worker
    assert "| [pve-prod](clusters/pve-prod.yaml) | https://pve-prod.example.net:8006 | 8.2.4 | 3/3 online | Healthy |" \
        in readme
    assert "connection refused; TLS certificate verification is disabled" in readme


def test_summary_is_the_commit_message_with_skip_ci():
    healthy = [ClusterReport("a", health="Healthy"), ClusterReport("b", health="Healthy")]
    ready = [NodeReport(f"n{i}", phase="Ready") for i in range(8)] + [NodeReport("x", phase="Failed")]
    assert summary(ready, healthy) == "status: 8 ready, 1 failed, 2 clusters healthy [skip ci]"
    assert summary([], []) == "status: no nodes, no clusters [skip ci]"
    assert summary([NodeReport("n", phase="Ready")], healthy[:1]) == "status: 1 ready, 1 cluster healthy [skip ci]"


def test_empty_inputs_render_only_the_readme():
    files = render([], [], revision=None)
    assert list(files) == ["status/README.md"]
    assert "No nodes." in files["status/README.md"] and "none (working tree)" in files["status/README.md"]


def test_names_unfit_for_file_names_get_a_safe_distinct_file():
    files = render([NodeReport("../Evil Name"), NodeReport("evil name")], [], revision=REV)
    nodes = sorted(p for p in files if p.startswith("status/nodes/") and p.endswith(".yaml"))
    assert len(nodes) == 2 and all(re.fullmatch(r"status/nodes/[a-z0-9._-]+\.yaml", p) for p in nodes)


def test_credentials_inside_error_texts_are_not_published():
    node = NodeReport("n", phase="Failed", last_error="cannot fetch https://bot:tok3n@git.example.com/x")
    files = render([node], [], revision=REV)
    assert all("tok3n" not in content for content in files.values())


def test_reports_are_built_from_custom_resource_status():
    node = NodeReport.from_resource("worker-01", {"nodeName": "w1"}, {
        "phase": "Ready", "appliedRevision": REV, "sourcePath": "nodes/worker-01.yaml", "lastError": None,
        "interfaces": [{"name": "storage0", "macAddress": "bc:24:11:20:00:0b", "device": "ens19",
                        "state": "configured"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Applied", "message": "ok",
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    })
    assert node == NodeReport("worker-01", node_name="w1", phase="Ready", applied_revision=REV,
                              interfaces=(InterfaceReport("storage0", "bc:24:11:20:00:0b", "configured"),),
                              source_path="nodes/worker-01.yaml",
                              conditions=(ConditionReport("Ready", "True", "Applied", "ok"),))
    cluster = ClusterReport.from_resource("pve-prod", {"apiEndpoint": "https://pve"}, {
        "version": "8.2", "nodeCount": 3, "onlineNodes": 2, "health": "Degraded", "warnings": ["1 of 3 offline"],
        "conditions": [{"type": "Ready", "status": "True"}]})
    assert cluster == ClusterReport("pve-prod", endpoint="https://pve", version="8.2", node_count=3, online_nodes=2,
                                    health="Degraded", ready=True, warnings=("1 of 3 offline",))
    assert NodeReport.from_resource("new", None, None).phase == "Unknown"


def test_a_vm_nic_mismatch_from_the_node_status_is_shown_in_the_readme_and_the_node_report() -> None:
    status = {"phase": "Ready", "proxmoxCheck": {"checked": True, "mismatches": [
        "macAddress bc:24:11:00:00:09 (storage0) is not on VM 202 (net0 bc:24:11:fe:00:ca)"]}}
    node = NodeReport.from_resource("worker-02", {"nodeName": "worker-02"}, status)
    files = render([node], [], revision="a" * 40)
    row = next(line for line in files["status/README.md"].splitlines() if line.startswith("| [worker-02]"))
    assert "VM NIC check: macAddress bc:24:11:00:00:09 (storage0) is not on VM 202" in row
    assert "is not on VM 202" in files["status/nodes/worker-02.yaml"]


# -- at scale ----------------------------------------------------------------------------------------

def _fleet(count: int, not_ready: int) -> list[NodeReport]:
    """``count`` nodes, the first ``not_ready`` spread over three phases with long error texts."""
    phases = ("Failed", "Pending", "Applying")
    nodes = []
    for i in range(count):
        name = f"node-{i:05d}"
        interfaces = tuple(InterfaceReport(f"net{n}", f"bc:24:11:{i // 256 % 256:02x}:{i % 256:02x}:{n:02x}",
                                           "configured") for n in range(3))
        if i < not_ready:
            nodes.append(NodeReport(name, phase=phases[i % 3], applied_revision=REV, interfaces=interfaces,
                                    last_error=f"agent failed on {name}: " + "netplan apply timed out; " * 12))
        else:
            nodes.append(NodeReport(name, phase="Ready", applied_revision=REV, interfaces=interfaces))
    return nodes


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", text)


def test_the_readme_of_10000_nodes_is_under_100_kb_and_lists_every_node_that_is_not_ready():
    nodes = _fleet(10_000, 300)
    files = render(nodes, CLUSTERS, revision=REV)
    readme = files["status/README.md"]
    assert len(readme.encode()) < 100_000
    for node in nodes[:300]:
        assert f"[{node.name}](nodes/{node.name}.yaml)" in readme
    assert "node-00300" not in readme  # Ready nodes are on the pages only
    assert "### Not Ready: 300 of 10000" in readme
    assert "#### Failed (100)" in readme and "#### Pending (100)" in readme and "#### Applying (100)" in readme
    assert "more" not in readme


def test_beyond_the_cap_the_readme_counts_the_rest_and_stays_small():
    nodes = _fleet(10_000, 4_000)
    files = render(nodes, CLUSTERS, revision=REV)
    readme = files["status/README.md"]
    assert len(readme.encode()) < 100_000
    listed = [line for line in readme.splitlines() if line.startswith("| [node-")]
    assert 0 < len(listed) <= 300
    counted = sum(int(m) for m in re.findall(r"…and (\d+) more", readme))
    assert len(listed) + counted == 4_000
    assert "### Not Ready: 4000 of 10000" in readme


def test_the_full_table_is_paged_by_500_and_every_link_resolves():
    nodes = _fleet(2_600, 50)
    files = render(nodes, CLUSTERS, revision=REV)
    pages = sorted(p for p in files if p.startswith("status/nodes/") and p.endswith(".md"))
    assert len(pages) == 6 and "status/nodes/README.md" in pages and "status/nodes/page-006.md" in pages
    rows = [line for page in pages for line in files[page].splitlines() if line.startswith("| [node-")]
    assert len(rows) == 2_600
    assert sorted(re.match(r"\| \[([^\]]+)\]", r).group(1) for r in rows) == [n.name for n in nodes]  # type: ignore[union-attr]
    for path, text in files.items():
        if not path.endswith(".md"):
            continue
        folder = path.rsplit("/", 1)[0]
        for link in _links(text):
            target = "/".join(p for p in f"{folder}/{link}".split("/") if p != ".")
            while "/../" in target:
                target = re.sub(r"[^/]+/\.\./", "", target, count=1)
            assert target in files, (path, link)
    assert "[nodes/README.md](nodes/README.md)" in files["status/README.md"]
    first = files["status/nodes/README.md"]
    assert "- [6](page-006.md): node-02500 … node-02599" in first
    assert "[previous](page-005.md)" in files["status/nodes/page-006.md"]
    assert "[next](page-002.md)" in first and "[next]" not in files["status/nodes/page-006.md"]


def test_a_memo_renders_only_the_reports_that_changed():
    from reconciler.report.gitstatus import RenderMemo

    nodes = _fleet(2_000, 10)
    memo = RenderMemo()
    first = render(nodes, CLUSTERS, revision=REV, memo=memo)
    assert memo.rendered == 2_000 + len(CLUSTERS)
    again = render(nodes, CLUSTERS, revision=REV, memo=memo)
    assert memo.rendered == 0 and again == first
    changed = [*nodes[:5], NodeReport(nodes[5].name, phase="Ready", applied_revision=REV), *nodes[6:]]
    third = render(changed, CLUSTERS, revision=REV, memo=memo)
    assert memo.rendered == 1
    assert third == render(changed, CLUSTERS, revision=REV)  # the same bytes as a fresh render
    assert third["status/nodes/node-00005.yaml"] != first["status/nodes/node-00005.yaml"]
