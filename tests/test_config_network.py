"""Network rules a network engineer expects: one subnet has one prefix length and one MTU on every
node, a node's interfaces are on separate subnets, a gateway is a router (not the network or
broadcast address), one route per destination and metric, one default route; and the setups that
are valid although the gateway is on none of the interface's prefixes: an IPv6 link-local gateway
and an ``onLink`` route for a /32 or /128 address.

Cross-file messages name both files with their lines; the later file (path order) gets the error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_config_support import (
    DELETE,
    cluster,
    dump,
    errors,
    line_of,
    make_repo,
    node,
    only,
    run_cli,
    set_at,
    text_at,
    validate,
    warnings,
)

from reconciler.config.validation import validate_repo


def _repo(root: Path, *docs: dict[str, Any]) -> Path:
    files: dict[str, Any] = {f"nodes/{d['metadata']['name']}.yaml": d for d in docs}
    files["clusters/pve-prod.yaml"] = cluster()
    return make_repo(root, files)


def _addresses(doc: dict[str, Any], *addresses: str, mtu: int | None = 9000) -> dict[str, Any]:
    out = set_at(doc, "spec.interfaces[0].addresses", list(addresses))
    out = set_at(out, "spec.interfaces[0].routes", [])
    return set_at(out, "spec.interfaces[0].mtu", DELETE if mtu is None else mtu)


# --- one subnet, one prefix length and one MTU on every node ----------------------------------------


@pytest.mark.parametrize(("first", "second"), [("10.20.0.2/16", "10.20.0.3/24"), ("10.20.9.2/24", "10.20.0.3/16")])
def test_one_subnet_with_two_prefix_lengths_on_two_nodes_names_both_files_and_lines(
    tmp_path: Path, first: str, second: str
) -> None:
    a = _addresses(node("worker-01", 1), first)
    b = _addresses(node("worker-02", 2), second)
    root = _repo(tmp_path, a, b)
    result = validate(root)
    d = only(errors(result))
    assert (d.path, d.rule, d.field) == ("nodes/worker-02.yaml", "subnet-prefix", "spec.interfaces[0].addresses[0]")
    assert f"of nodes/worker-01.yaml:{line_of(dump(a), first)} with another prefix length" in d.message
    assert d.line == line_of(dump(b), second) and text_at(root, d).startswith(second)
    assert d.related == ("nodes/worker-01.yaml",)
    assert "worker-01" in result.desired.nodes and "worker-02" not in result.desired.nodes


def test_one_subnet_with_one_prefix_length_and_host_routes_inside_it_are_valid(tmp_path: Path) -> None:
    a = _addresses(node("worker-01", 1), "10.20.0.2/16", "fd00:20::2/64")
    b = _addresses(node("worker-02", 2), "10.20.0.3/16", "fd00:20::3/64", "10.20.7.7/32", "fd00:20::7/128")
    c = _addresses(node("worker-03", 3), "10.30.0.3/24", "fe80::3/64")  # another subnet; link-local
    d = _addresses(node("worker-04", 4), "fe80::4/10")  # link-local is per link: any length
    assert validate(_repo(tmp_path, a, b, c, d)).diagnostics == []


def test_one_subnet_with_two_mtus_on_two_nodes_is_a_warning_on_the_later_mtu(tmp_path: Path) -> None:
    a = _addresses(node("worker-01", 1), "10.20.0.2/16", "fd00:20::2/64", mtu=9000)
    b = _addresses(node("worker-02", 2), "10.20.0.3/16", "fd00:20::3/64", mtu=1500)  # one finding, not two
    root = _repo(tmp_path, a, b)
    result = validate(root)
    # A warning: an MTU change rolls out node by node (a canary first) without blocking the canary.
    assert errors(result) == [] and "worker-02" in result.desired.nodes
    d = only(warnings(result))
    assert (d.path, d.rule, d.field) == ("nodes/worker-02.yaml", "subnet-mtu", "spec.interfaces[0].mtu")
    assert d.message == (
        f"mtu 1500 on subnet 10.20.0.0/16 differs from mtu 9000 of nodes/worker-01.yaml:"
        f"{line_of(dump(a), '10.20.0.2/16')} on the same subnet; large frames would be dropped"
    )
    assert text_at(root, d) == "mtu: 1500"
    assert run_cli(root).returncode == 0 and run_cli(root, "--strict").returncode == 1


def test_an_mtu_is_compared_with_the_first_file_that_gives_one(tmp_path: Path) -> None:
    a = _addresses(node("worker-01", 1), "10.20.0.2/16", mtu=None)
    b = _addresses(node("worker-02", 2), "10.20.0.3/16", mtu=9000)
    c = _addresses(node("worker-03", 3), "10.20.0.4/16", mtu=1500)
    d = only(warnings(validate(_repo(tmp_path, a, b, c))))
    assert (d.path, d.rule) == ("nodes/worker-03.yaml", "subnet-mtu")
    assert "from mtu 9000 of nodes/worker-02.yaml" in d.message


def test_one_subnet_with_one_mtu_or_the_os_default_is_valid(tmp_path: Path) -> None:
    a = _addresses(node("worker-01", 1), "10.20.0.2/16", mtu=9000)
    b = _addresses(node("worker-02", 2), "10.20.0.3/16", mtu=9000)
    c = _addresses(node("worker-03", 3), "10.20.0.4/16", mtu=None)  # not given: not compared
    assert validate(_repo(tmp_path, a, b, c)).diagnostics == []


# --- one node: its interfaces on separate subnets -----------------------------------------------------


def _second_interface(
    doc: dict[str, Any], *addresses: str, routes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    out = set_at(doc, "spec.interfaces[0].routes", [])
    out["spec"]["interfaces"].append(
        {"name": "tenant0", "macAddress": "02:00:00:00:77:01", "addresses": list(addresses), "routes": routes or []}
    )
    return out


@pytest.mark.parametrize("address", ["10.20.9.9/24", "10.20.0.9/16", "10.0.0.9/8"])
def test_two_interfaces_of_one_node_on_overlapping_subnets_are_reported(tmp_path: Path, address: str) -> None:
    root = _repo(tmp_path, _second_interface(node(), address))
    d = only(errors(validate(root)))
    assert (d.rule, d.field) == ("overlapping-subnets", "spec.interfaces[1].addresses[0]")
    assert "overlaps 10.20.0.0/16 of interfaces[0] (storage0) of this node" in d.message
    assert text_at(root, d).startswith(address)


def test_two_interfaces_on_separate_subnets_each_with_link_local_are_valid(tmp_path: Path) -> None:
    doc = set_at(node(), "spec.interfaces[0].addresses", ["10.20.0.2/16", "fe80::2/64"])
    assert validate(_repo(tmp_path, _second_interface(doc, "10.21.0.2/16", "fe80::3/64"))).diagnostics == []


# --- gateways and routes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("via", "words"),
    [
        ("10.20.0.0", "gateway 10.20.0.0 is the network address of 10.20.0.0/16, not a router"),
        ("10.20.255.255", "gateway 10.20.255.255 is the broadcast address of 10.20.0.0/16, not a router"),
    ],
)
def test_a_gateway_that_is_the_network_or_broadcast_address_is_reported(tmp_path: Path, via: str, words: str) -> None:
    root = _repo(tmp_path, set_at(node(), "spec.interfaces[0].routes", [{"to": "10.120.0.0/16", "via": via}]))
    d = only(errors(validate(root)))
    assert (d.rule, d.field, d.message) == ("route", "spec.interfaces[0].routes[0].via", words)


def test_two_routes_to_one_destination_with_one_metric_are_reported_even_on_two_interfaces(tmp_path: Path) -> None:
    doc = set_at(node(), "spec.interfaces[0].routes", [{"to": "10.120.0.0/16", "via": "10.20.0.1", "metric": 50}])
    doc = _second_interface(doc, "10.21.0.2/16", routes=[{"to": "10.120.0.0/16", "via": "10.21.0.1", "metric": 50}])
    doc["spec"]["interfaces"][0]["routes"] = [{"to": "10.120.0.0/16", "via": "10.20.0.1", "metric": 50}]
    root = _repo(tmp_path, doc)
    d = only(errors(validate(root)))
    assert (d.rule, d.field) == ("duplicate-route", "spec.interfaces[1].routes[0].to")
    assert d.message == (
        "route to 10.120.0.0/16 with metric 50 is also interfaces[0].routes[0] of this node; "
        "the kernel keeps one of them"
    )


def test_two_routes_to_one_destination_with_different_metrics_are_valid(tmp_path: Path) -> None:
    routes = [{"to": "10.120.0.0/16", "via": "10.20.0.1", "metric": 50}, {"to": "10.120.0.0/16", "via": "10.20.0.3"}]
    assert validate(_repo(tmp_path, set_at(node(), "spec.interfaces[0].routes", routes))).diagnostics == []


def test_a_second_default_route_is_a_warning_naming_the_first(tmp_path: Path) -> None:
    doc = set_at(node(), "spec.interfaces[0].routes", [{"to": "0.0.0.0/0", "via": "10.20.0.1", "metric": 100}])
    doc = _second_interface(doc, "10.21.0.2/16", routes=[{"to": "0.0.0.0/0", "via": "10.21.0.1", "metric": 200}])
    doc["spec"]["interfaces"][0]["routes"] = [{"to": "0.0.0.0/0", "via": "10.20.0.1", "metric": 100}]
    result = validate(_repo(tmp_path, doc))
    assert errors(result) == []
    d = only(warnings(result))
    assert (d.rule, d.field) == ("second-default-route", "spec.interfaces[1].routes[0].to")
    assert "a second IPv4 default route (the first is interfaces[0].routes[0], metric 100)" in d.message


def test_one_default_route_per_ip_family_is_valid(tmp_path: Path) -> None:
    routes = [{"to": "0.0.0.0/0", "via": "10.20.0.1"}, {"to": "::/0", "via": "fd00:20::1"}]
    assert validate(_repo(tmp_path, set_at(node(), "spec.interfaces[0].routes", routes))).diagnostics == []


def test_an_ipv6_link_local_gateway_is_on_link_and_valid(tmp_path: Path) -> None:
    routes = [{"to": "::/0", "via": "fe80::1"}, {"to": "fd00:120::/48", "via": "FE80::1", "metric": 5}]
    assert validate(_repo(tmp_path, set_at(node(), "spec.interfaces[0].routes", routes))).diagnostics == []


def test_an_ipv4_gateway_outside_the_prefixes_is_still_refused_and_the_message_names_on_link(tmp_path: Path) -> None:
    root = _repo(tmp_path, set_at(node(), "spec.interfaces[0].routes", [{"to": "0.0.0.0/0", "via": "192.0.2.1"}]))
    d = only(errors(validate(root)))
    assert d.rule == "route" and "set onLink: true if it is on the link anyway" in d.message


@pytest.mark.parametrize(
    ("address", "to", "via"),
    [("203.0.113.7/32", "0.0.0.0/0", "172.31.1.1"), ("2001:db8::7/128", "::/0", "2001:db8::1")],
)
def test_an_on_link_route_for_a_host_address_is_valid(tmp_path: Path, address: str, to: str, via: str) -> None:
    doc = _addresses(node(), address)
    root = _repo(tmp_path, set_at(doc, "spec.interfaces[0].routes", [{"to": to, "via": via, "onLink": True}]))
    result = validate(root)
    assert result.diagnostics == []
    route = result.desired.nodes["worker-01"].spec_dict()["interfaces"][0]["routes"][0]
    assert route == {"to": to, "via": via, "onLink": True}
    off = _repo(tmp_path / "off", set_at(doc, "spec.interfaces[0].routes", [{"to": to, "via": via}]))
    assert only(errors(validate(off))).rule == "route"


def test_on_link_false_is_the_same_spec_as_no_on_link(tmp_path: Path) -> None:
    route = {"to": "10.120.0.0/16", "via": "10.20.255.254"}
    plain = validate(_repo(tmp_path / "a", set_at(node(), "spec.interfaces[0].routes", [route])))
    with_false = set_at(node(), "spec.interfaces[0].routes", [{**route, "onLink": False}])
    explicit = validate(_repo(tmp_path / "b", with_false))
    assert plain.desired.nodes["worker-01"].spec_dict() == explicit.desired.nodes["worker-01"].spec_dict()


def test_on_link_must_be_a_boolean(tmp_path: Path) -> None:
    route = {"to": "0.0.0.0/0", "via": "192.0.2.1", "onLink": "yes"}
    d = only(errors(validate(_repo(tmp_path, set_at(node(), "spec.interfaces[0].routes", [route])))))
    assert d.field == "spec.interfaces[0].routes[0].onLink"


# --- paths as the user typed them, in cross-file messages too --------------------------------------------


def test_the_other_file_in_a_cross_file_message_carries_the_same_prefix(tmp_path: Path) -> None:
    a = node("worker-01", 1)
    b = set_at(node("worker-02", 2), "spec.interfaces[0].macAddress", "02:00:00:00:00:01")
    _repo(tmp_path / "gitops", a, b)
    line = line_of(dump(a), "macAddress")

    text = run_cli("gitops", cwd=tmp_path).stdout
    github = run_cli("gitops/", "--format", "github", cwd=tmp_path).stdout
    prefixed = run_cli("gitops", "--format", "json", "--path-prefix", "infra/gitops", cwd=tmp_path).stdout
    sarif = json.loads(run_cli("gitops", "--format", "sarif", cwd=tmp_path).stdout)

    assert f"is also used by gitops/nodes/worker-01.yaml:{line}" in text
    assert "gitops/nodes/worker-02.yaml" in text
    assert f"::error file=gitops/nodes/worker-02.yaml,line={line}," in github
    assert f"is also used by gitops/nodes/worker-01.yaml:{line}" in github
    diagnostic = json.loads(prefixed)["diagnostics"][0]
    assert diagnostic["message"].endswith(f"is also used by infra/gitops/nodes/worker-01.yaml:{line}")
    assert diagnostic["related"] == ["infra/gitops/nodes/worker-01.yaml"]
    related = sarif["runs"][0]["results"][0]["relatedLocations"]
    assert related[0]["physicalLocation"]["artifactLocation"]["uri"] == "gitops/nodes/worker-01.yaml"
    # Run from inside the repo, names are the repo's own.
    inside = run_cli(".", cwd=tmp_path / "gitops").stdout
    assert f"is also used by nodes/worker-01.yaml:{line}" in inside


def test_a_missing_cluster_file_is_named_from_the_current_directory(tmp_path: Path) -> None:
    doc = node(proxmox={"cluster": "pve-lab", "vmid": 101})
    make_repo(tmp_path / "gitops", {"nodes/worker-01.yaml": doc})
    out = run_cli("gitops", cwd=tmp_path).stdout
    assert "cluster pve-lab does not exist (no gitops/clusters/pve-lab.yaml)" in out


def test_validate_repo_itself_keeps_repo_relative_names(tmp_path: Path) -> None:
    a = node("worker-01", 1)
    b = set_at(node("worker-02", 2), "spec.interfaces[0].macAddress", "02:00:00:00:00:01")
    d = only(errors(validate_repo(_repo(tmp_path / "gitops", a, b))))
    assert d.path == "nodes/worker-02.yaml" and "by nodes/worker-01.yaml:" in d.message


def test_an_on_link_route_needs_an_address_of_its_family_to_send_from(tmp_path: Path) -> None:
    doc = _addresses(node(), "203.0.113.7/32")
    route = {"to": "::/0", "via": "fe80::1"}
    d = only(errors(validate(_repo(tmp_path, set_at(doc, "spec.interfaces[0].routes", [route])))))
    assert (d.rule, d.field) == ("route", "spec.interfaces[0].routes[0].via")
    assert d.message == "route via fe80::1 needs an IPv6 address on this interface to send from"
