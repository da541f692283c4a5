"""Cross-file rules: uniqueness across the repo, address arithmetic, routes and references.

Each rule has a failing case (file, line, column, field, rule, message) and a passing neighbour.
The later file in path order gets the error and names the earlier one with its line, so an
existing object stays valid when a new file collides with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_config_support import (
    cluster,
    dump,
    errors,
    line_of,
    make_repo,
    node,
    only,
    set_at,
    text_at,
    validate,
    warnings,
)


def _nodes(tmp_path: Path, *docs: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    files: dict[str, Any] = {f"nodes/{d['metadata']['name']}.yaml": d for d in docs}
    files["clusters/pve-prod.yaml"] = cluster()
    files.update(extra or {})
    return make_repo(tmp_path / "repo", files)


# --- uniqueness across files -------------------------------------------------------------------


def test_a_mac_used_by_two_nodes_is_reported_on_the_second_file_naming_the_first(tmp_path: Path) -> None:
    first = node("worker-01", 1)
    second = set_at(node("worker-02", 2), "spec.interfaces[0].macAddress", "02:00:00:00:00:01")
    root = _nodes(tmp_path, first, second)
    result = validate(root)
    d = only(errors(result))
    first_line = line_of(dump(first), "macAddress")
    assert (d.path, d.rule, d.field) == ("nodes/worker-02.yaml", "duplicate-mac", "spec.interfaces[0].macAddress")
    assert d.line == line_of(dump(second), "macAddress") and d.column == 5
    assert d.message == f"macAddress 02:00:00:00:00:01 is also used by nodes/worker-01.yaml:{first_line}"
    assert text_at(root, d).startswith("macAddress")
    assert "worker-01" in result.desired.nodes and "worker-02" not in result.desired.nodes
    assert "worker-02" in result.desired.blocked["MultiNicNodeConfig"]


def test_macs_are_compared_case_insensitively(tmp_path: Path) -> None:
    first = set_at(node("worker-01", 1), "spec.interfaces[0].macAddress", "BC:24:11:AA:00:01")
    second = set_at(node("worker-02", 2), "spec.interfaces[0].macAddress", "bc:24:11:aa:00:01")
    d = only(errors(validate(_nodes(tmp_path, first, second))))
    assert d.rule == "duplicate-mac" and "bc:24:11:aa:00:01" in d.message


def test_distinct_macs_and_addresses_on_many_nodes_are_valid(tmp_path: Path) -> None:
    result = validate(_nodes(tmp_path, *(node(f"worker-{i:02d}", i) for i in range(1, 30))))
    assert result.ok, result.diagnostics
    assert len(result.desired.nodes) == 29


def test_an_address_used_by_two_nodes_is_reported_even_with_another_prefix_length(tmp_path: Path) -> None:
    first = node("worker-01", 1)
    second = set_at(node("worker-02", 2), "spec.interfaces[0].addresses[1]", "FD00:20:0::2/120")
    root = _nodes(tmp_path, first, second)
    found = errors(validate(root))
    assert {d.rule for d in found} == {"duplicate-address", "subnet-prefix"}  # /120 inside the other's /64 too
    d = only([d for d in found if d.rule == "duplicate-address"])
    assert (d.path, d.rule, d.field) == ("nodes/worker-02.yaml", "duplicate-address", "spec.interfaces[0].addresses[1]")
    assert d.message == f"address fd00:20::2 is also used by nodes/worker-01.yaml:{line_of(dump(first), 'fd00:20::2')}"
    assert text_at(root, d).startswith("FD00:20:0::2/120")


def test_the_same_address_on_two_interfaces_of_one_node_is_reported(tmp_path: Path) -> None:
    doc = node()
    second = dict(doc["spec"]["interfaces"][0], name="storage1", macAddress="02:00:00:00:09:09", proxmoxNet="net2")
    doc["spec"]["interfaces"].append(second)
    found = errors(validate(_nodes(tmp_path, doc)), "duplicate-address")
    assert {d.field for d in found} == {"spec.interfaces[1].addresses[0]", "spec.interfaces[1].addresses[1]"}
    assert all("interfaces[0] of this node" in d.message for d in found)


def test_a_node_name_configured_by_two_files_is_reported(tmp_path: Path) -> None:
    first = node("worker-01", 1)  # nodeName defaults to metadata.name
    second = node("worker-02", 2, nodeName="worker-01")
    root = _nodes(tmp_path, first, second)
    result = validate(root)
    first_error, d = errors(result)
    assert (d.path, d.rule, d.field) == ("nodes/worker-02.yaml", "duplicate-node-name", "spec.nodeName")
    # The first file sets it through metadata.name: that line is named, not its spec line.
    assert d.message == "nodeName worker-01 is also configured by nodes/worker-01.yaml:4"
    assert text_at(root, d).startswith("nodeName")
    # Which file is the typo cannot be known: both are blocked, so no Job for host worker-01
    # ever carries the other file's interfaces.
    assert (first_error.path, first_error.rule) == ("nodes/worker-01.yaml", "duplicate-node-name")
    assert first_error.message == "nodeName worker-01 is also configured by nodes/worker-02.yaml:17"
    assert result.desired.nodes == {}
    assert result.desired.blocked["MultiNicNodeConfig"] == {"worker-01", "worker-02"}


def test_distinct_node_names_are_valid(tmp_path: Path) -> None:
    assert validate(_nodes(tmp_path, node("worker-01", 1), node("worker-02", 2, nodeName="k8s-worker-02"))).ok


def test_two_node_files_with_one_name_in_different_folders_are_reported(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {"nodes/rack-a/worker-01.yaml": node("worker-01", 1), "nodes/rack-b/worker-01.yaml": node("worker-01", 2)},
    )
    result = validate(root)
    rules = {d.rule for d in errors(result)}
    assert "duplicate-name" in rules
    d = next(d for d in errors(result) if d.rule == "duplicate-name")
    assert d.path == "nodes/rack-b/worker-01.yaml" and d.field == "metadata.name" and d.line == 4
    assert "nodes/rack-a/worker-01.yaml:4" in d.message


def test_two_cluster_files_with_one_name_are_reported(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "clusters/a/pve-prod.yaml": cluster(),
            "clusters/b/pve-prod.yaml": cluster(endpoint="https://other.example.net"),
        },
    )
    d = only(errors(validate(root)))
    assert (d.path, d.rule, d.line) == ("clusters/b/pve-prod.yaml", "duplicate-name", 4)
    assert d.message == "cluster pve-prod is also defined by clusters/a/pve-prod.yaml:4"


def test_a_vm_claimed_by_two_nodes_is_reported(tmp_path: Path) -> None:
    proxmox = {"cluster": "pve-prod", "vmid": 201}
    root = _nodes(tmp_path, node("worker-01", 1, proxmox=proxmox), node("worker-02", 2, proxmox=proxmox))
    d = only(errors(validate(root)))
    assert (d.path, d.rule, d.field) == ("nodes/worker-02.yaml", "duplicate-vm", "spec.proxmox.vmid")
    assert "VM 201 on cluster pve-prod is also claimed by nodes/worker-01.yaml:" in d.message
    assert text_at(root, d).startswith("vmid")


def test_one_vmid_on_two_different_clusters_is_valid(tmp_path: Path) -> None:
    root = _nodes(
        tmp_path,
        node("worker-01", 1, proxmox={"cluster": "pve-prod", "vmid": 201}),
        node("worker-02", 2, proxmox={"cluster": "pve-lab", "vmid": 201}),
        extra={"clusters/pve-lab.yaml": cluster("pve-lab")},
    )
    assert validate(root).ok


# --- references ----------------------------------------------------------------------------------


def test_a_node_naming_a_cluster_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    root = _nodes(tmp_path, node(proxmox={"cluster": "pve-nowhere", "vmid": 201}))
    d = only(errors(validate(root)))
    assert (d.rule, d.field) == ("cluster-ref", "spec.proxmox.cluster")
    assert d.message == "cluster pve-nowhere does not exist (no clusters/pve-nowhere.yaml)"
    assert text_at(root, d).startswith("cluster")


def test_a_node_naming_an_invalid_cluster_gets_a_warning_not_a_second_error(tmp_path: Path) -> None:
    bad = set_at(cluster(), "spec.apiEndpoint", "http://insecure")
    root = _nodes(tmp_path, node(proxmox={"cluster": "pve-prod", "vmid": 201}), extra={"clusters/pve-prod.yaml": bad})
    result = validate(root)
    assert {d.path for d in result.errors} == {"clusters/pve-prod.yaml"}
    w = only(warnings(result, "cluster-ref"))
    assert w.path == "nodes/worker-01.yaml" and "is invalid" in w.message
    assert "worker-01" in result.desired.nodes


# --- clusters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    ["https://PVE-PROD.example.net", "https://pve-prod.example.net:8006/", "https://pve-prod.example.net:8006"],
)
def test_one_api_endpoint_registered_twice_is_reported_whatever_its_spelling(tmp_path: Path, second: str) -> None:
    root = make_repo(
        tmp_path,
        {
            "clusters/pve-a.yaml": cluster("pve-a", "https://pve-prod.example.net:8006"),
            "clusters/pve-b.yaml": cluster("pve-b", second),
        },
    )
    d = only(errors(validate(root)))
    assert (d.path, d.rule, d.field, d.line) == ("clusters/pve-b.yaml", "duplicate-endpoint", "spec.apiEndpoint", 6)
    assert d.message == f"apiEndpoint {second} is also registered by clusters/pve-a.yaml:6"


def test_the_same_host_on_another_port_is_a_different_endpoint(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "clusters/pve-a.yaml": cluster("pve-a", "https://[fd00::10]:8006"),
            "clusters/pve-b.yaml": cluster("pve-b", "https://[fd00::10]:8007"),
        },
    )
    assert validate(root).ok


def test_ipv6_endpoints_are_compared_in_canonical_form(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "clusters/pve-a.yaml": cluster("pve-a", "https://[fd00::10]"),
            "clusters/pve-b.yaml": cluster("pve-b", "https://[FD00:0:0::10]:8006"),
        },
    )
    assert only(errors(validate(root))).rule == "duplicate-endpoint"


def test_disabled_tls_verification_is_a_warning_that_does_not_fail_the_run(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"clusters/pve-prod.yaml": cluster(tls={"insecureSkipVerify": True})})
    result = validate(root)
    assert result.ok
    w = only(warnings(result))
    assert (w.rule, w.field, w.line) == ("insecure-tls", "spec.tls.insecureSkipVerify", 10)
    assert "pve-prod" in result.desired.clusters


def test_enabled_tls_verification_gives_no_warning(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"clusters/pve-prod.yaml": cluster(tls={"insecureSkipVerify": False})})
    assert validate(root).diagnostics == []


# --- addresses ----------------------------------------------------------------------------------

ADDRESS_CASES = [
    # (address, rule or None, severity, words)
    ("10.20.0.0/16", "host-address", "error", "is the network address of 10.20.0.0/16"),
    ("10.20.255.255/16", "host-address", "error", "is the broadcast address of 10.20.0.0/16"),
    ("127.0.0.5/8", "host-address", "error", "is not a unicast host address"),
    ("224.0.0.9/24", "host-address", "error", "is not a unicast host address"),
    ("0.0.0.0/0", "host-address", "error", "is not a unicast host address"),
    ("ff02::1/64", "host-address", "error", "is not a unicast host address"),
    ("::1/128", "host-address", "error", "is not a unicast host address"),
    ("fd00:20::/64", "host-address", "warning", "subnet-router anycast address of fd00:20::/64"),
    ("255.255.255.255/32", "host-address", "error", "is not a unicast host address"),  # limited broadcast
    ("0.1.2.3/8", "host-address", "error", "is not a unicast host address"),  # "this network"
    ("240.0.0.1/24", "host-address", "error", "is not a unicast host address"),  # reserved
]
GOOD_ADDRESSES = ["10.20.0.1/16", "10.20.0.0/31", "10.20.0.1/31", "10.20.255.255/32", "fd00:20::1/64", "fe80::1/64"]


@pytest.mark.parametrize(("address", "rule", "severity", "words"), ADDRESS_CASES)
def test_an_address_that_is_not_a_host_address_is_reported(
    tmp_path: Path, address: str, rule: str, severity: str, words: str
) -> None:
    doc = set_at(node(), "spec.interfaces[0].addresses", ["10.20.0.2/16", address])
    root = _nodes(tmp_path, doc)
    result = validate(root)
    found = [d for d in result.diagnostics if d.rule == rule]
    d = only(found)
    assert (d.path, d.field, d.severity) == ("nodes/worker-01.yaml", "spec.interfaces[0].addresses[1]", severity)
    assert words in d.message
    assert text_at(root, d).startswith(address)


@pytest.mark.parametrize("address", GOOD_ADDRESSES)
def test_host_addresses_including_point_to_point_and_host_routes_are_valid(tmp_path: Path, address: str) -> None:
    doc = set_at(node(), "spec.interfaces[0].addresses", ["10.20.0.2/16", address])
    result = validate(_nodes(tmp_path, doc))
    assert result.diagnostics == []


# --- routes --------------------------------------------------------------------------------------

ROUTE_CASES = [
    # (to, via, field, words)
    ("10.120.0.1/16", "10.20.0.1", "to", "route to 10.120.0.1/16 has host bits set; did you mean 10.120.0.0/16?"),
    ("fd00:120::/48", "10.20.0.1", "via", "(IPv6) cannot go via IPv4 address 10.20.0.1"),
    ("10.120.0.0/16", "fd00:20::1", "via", "(IPv4) cannot go via IPv6 address fd00:20::1"),
    ("10.120.0.0/16", "10.30.0.1", "via", "gateway 10.30.0.1 is not reachable from this interface's prefixes"),
    ("10.120.0.0/16", "10.20.0.2", "via", "route via 10.20.0.2 points at the interface's own address"),
]
GOOD_ROUTES = [
    ("0.0.0.0/0", "10.20.0.1"),
    ("::/0", "fd00:20::1"),
    ("10.120.0.0/16", "10.20.255.254"),
    ("fd00:120::/48", "FD00:20::1"),
    ("192.168.7.7/32", "10.20.0.1"),
]


@pytest.mark.parametrize(("to", "via", "field", "words"), ROUTE_CASES)
def test_a_route_that_cannot_work_is_reported_on_its_field(
    tmp_path: Path, to: str, via: str, field: str, words: str
) -> None:
    doc = set_at(node(), "spec.interfaces[0].routes", [{"to": to, "via": via, "metric": 10}])
    root = _nodes(tmp_path, doc)
    d = only(errors(validate(root)))
    assert (d.path, d.rule, d.field) == ("nodes/worker-01.yaml", "route", f"spec.interfaces[0].routes[0].{field}")
    assert words in d.message
    assert text_at(root, d).startswith(field)


@pytest.mark.parametrize(("to", "via"), GOOD_ROUTES)
def test_routes_through_a_reachable_gateway_are_valid(tmp_path: Path, to: str, via: str) -> None:
    doc = set_at(node(), "spec.interfaces[0].routes", [{"to": to, "via": via}])
    assert validate(_nodes(tmp_path, doc)).diagnostics == []


def test_a_route_on_an_interface_without_addresses_says_it_has_no_prefixes(tmp_path: Path) -> None:
    doc = set_at(node(), "spec.interfaces[0].addresses", [])
    d = only(errors(validate(_nodes(tmp_path, doc))))
    assert "this interface's prefixes (none)" in d.message and "set onLink: true" in d.message


# --- within one node -------------------------------------------------------------------------------


def _two_interfaces(**second: Any) -> dict[str, Any]:
    doc = node()
    other = {"name": "tenant0", "macAddress": "02:00:00:00:77:01", "proxmoxNet": "net2"}
    other.update(second)
    doc["spec"]["interfaces"].append(other)
    return doc


@pytest.mark.parametrize(
    ("override", "rule", "field", "message"),
    [
        ({"name": "storage0"}, "duplicate-interface-name", "name", "name storage0 is also used by interfaces[0]"),
        ({"macAddress": "02:00:00:00:00:01"}, "duplicate-mac", "macAddress", "macAddress 02:00:00:00:00:01 is also"),
        ({"macAddress": "02:00:00:00:00:01".upper()}, "duplicate-mac", "macAddress", "is also used by interfaces[0]"),
        (
            {"proxmoxNet": "net1"},
            "duplicate-proxmox-net",
            "proxmoxNet",
            "proxmoxNet net1 is also used by interfaces[0]",
        ),
    ],
)
def test_interface_names_macs_and_slots_must_be_unique_within_a_node(
    tmp_path: Path, override: dict[str, str], rule: str, field: str, message: str
) -> None:
    root = _nodes(tmp_path, _two_interfaces(**override))
    d = only(errors(validate(root)))
    assert (d.rule, d.field) == (rule, f"spec.interfaces[1].{field}")
    assert message in d.message
    assert text_at(root, d).startswith(field)


def test_two_distinct_interfaces_on_one_node_are_valid(tmp_path: Path) -> None:
    assert validate(_nodes(tmp_path, _two_interfaces())).ok


@pytest.mark.parametrize("name", ["lo", "all", "default", "bonding_masters"])
def test_an_interface_name_reserved_by_the_kernel_is_reported(tmp_path: Path, name: str) -> None:
    root = _nodes(tmp_path, set_at(node(), "spec.interfaces[0].name", name))
    d = only(errors(validate(root)))
    assert (d.rule, d.field, d.message) == (
        "reserved-name",
        "spec.interfaces[0].name",
        f"name {name} is reserved by the kernel",
    )


def test_every_problem_of_a_repo_is_reported_in_one_run(tmp_path: Path) -> None:
    bad_mac = set_at(node("worker-02", 2), "spec.interfaces[0].macAddress", "02:00:00:00:00:01")
    bad_route = set_at(node("worker-03", 3), "spec.interfaces[0].routes[0].via", "10.99.0.1")
    bad_schema = set_at(node("worker-04", 4), "spec.interfaces[0].mtu", 10)
    root = _nodes(tmp_path, node("worker-01", 1), bad_mac, bad_route, bad_schema)
    result = validate(root)
    assert {(d.path, d.rule) for d in result.errors} == {
        ("nodes/worker-02.yaml", "duplicate-mac"),
        ("nodes/worker-03.yaml", "route"),
        ("nodes/worker-04.yaml", "schema"),
    }
    assert set(result.desired.nodes) == {"worker-01"}
    assert result.desired.blocked["MultiNicNodeConfig"] == {"worker-02", "worker-03", "worker-04"}
    assert result.desired.sources[("MultiNicNodeConfig", "worker-01")] == "nodes/worker-01.yaml"


def test_the_example_repo_is_valid_and_complete() -> None:
    from test_config_support import EXAMPLE

    result = validate(EXAMPLE)
    assert result.diagnostics == []
    assert len(result.desired.nodes) == 9 and set(result.desired.clusters) == {"pve-lab", "pve-prod"}
    assert result.desired.settings.spec.rollout.max_parallel == 3
