"""Every rule of the three JSON Schemas, each with a failing and a passing value.

A failing value must give exactly the schema error(s) for that field: the right file, a line and
column that point at the field in the file, the JSON path, and a reason a person understands.
The passing value must make the same repo valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_config_support import (
    DELETE,
    cluster,
    dump,
    errors,
    make_repo,
    node,
    set_at,
    settings,
    text_at,
    validate,
)

# (case id, kind, field path, failing value, passing value, words the message must contain)
NODE_RULES: list[tuple[str, str, Any, Any, str]] = [
    ("apiVersion-const", "apiVersion", "multinic.io/v1", "multinic.io/v1alpha1", "must be multinic.io/v1alpha1"),
    ("kind-const", "kind", "NodeConfig", "MultiNicNodeConfig", "must be MultiNicNodeConfig"),
    ("metadata-required", "metadata", DELETE, {"name": "worker-01"}, "required field 'metadata'"),
    ("spec-required", "spec", DELETE, node()["spec"], "required field 'spec'"),
    ("top-level-unknown", "status", {"ready": True}, DELETE, "unknown field 'status'"),
    ("metadata-name-required", "metadata.name", DELETE, "worker-01", "required field 'name'"),
    ("metadata-name-pattern", "metadata.name", "Worker_01", "worker-01", "not a valid DNS-1123 subdomain"),
    ("metadata-name-type", "metadata.name", 17, "worker-01", "must be of type string"),
    ("metadata-unknown", "metadata.namespace", "default", DELETE, "unknown field 'namespace'"),
    ("labels-type", "metadata.labels", ["a"], {"rack": "a"}, "must be of type object"),
    ("label-value-pattern", "metadata.labels.rack", "rack a!", "rack-a", "not a valid label value"),
    ("label-value-maxlength", "metadata.labels.rack", "r" * 64, "r" * 63, "at most 63 character"),
    ("label-value-type", "metadata.labels.rack", 3, "3", "must be of type string"),
    ("label-key-pattern", "metadata.labels", {"bad key": "x"}, {"example.com/good-key": "x"}, "bad key"),
    ("labels-maxproperties", "metadata.labels", {f"k{i}": "v" for i in range(65)}, {"k": "v"}, "at most 64 propert"),
    ("annotation-maxlength", "metadata.annotations.note", "x" * 4097, "x" * 4096, "at most 4096 character"),
    ("spec-unknown", "spec.extra", 1, DELETE, "unknown field 'extra'"),
    ("nodename-pattern", "spec.nodeName", "Node 1", "node-1.example", "not a valid DNS-1123 subdomain"),
    ("osfamily-enum", "spec.osFamily", "debian", "rhel", "is not one of"),
    ("onremove-enum", "spec.onRemove", "delete", "orphan", "is not one of"),
    ("proxmox-type", "spec.proxmox", "pve-prod/201", DELETE, "must be of type object"),
    ("proxmox-cluster-required", "spec.proxmox", {"vmid": 201}, DELETE, "required field 'cluster'"),
    ("proxmox-vmid-required", "spec.proxmox", {"cluster": "pve-prod"}, DELETE, "required field 'vmid'"),
    ("proxmox-unknown", "spec.proxmox", {"cluster": "c", "vmid": 201, "node": "pve1"}, DELETE, "unknown field 'node'"),
    ("interfaces-required", "spec.interfaces", DELETE, node()["spec"]["interfaces"], "required field 'interfaces'"),
    ("interfaces-minitems", "spec.interfaces", [], node()["spec"]["interfaces"], "at least 1 item"),
    ("interfaces-type", "spec.interfaces", {"name": "x"}, node()["spec"]["interfaces"], "must be of type array"),
    ("iface-name-required", "spec.interfaces[0].name", DELETE, "storage0", "required field 'name'"),
    ("iface-mac-required", "spec.interfaces[0].macAddress", DELETE, "02:00:00:00:00:01", "required field 'macAddr"),
    ("iface-name-pattern", "spec.interfaces[0].name", "eth 0", "eth0", "not a valid Linux interface name"),
    ("iface-name-leading-dot", "spec.interfaces[0].name", ".hidden", "_hidden", "not a valid Linux interface name"),
    ("iface-name-maxlength", "spec.interfaces[0].name", "a" * 16, "a" * 15, "at most 15 character"),
    ("iface-name-empty", "spec.interfaces[0].name", "", "x", "at least 1 character"),
    ("mac-pattern", "spec.interfaces[0].macAddress", "02:00:00:00:00:0g", "02:00:00:00:00:0f", "unicast MAC"),
    ("mac-dashes", "spec.interfaces[0].macAddress", "02-00-00-00-00-01", "02:00:00:00:00:01", "unicast MAC"),
    ("mac-multicast", "spec.interfaces[0].macAddress", "01:00:5e:00:00:01", "00:00:5e:00:00:01", "unicast MAC"),
    ("mac-broadcast", "spec.interfaces[0].macAddress", "ff:ff:ff:ff:ff:ff", "fe:ff:ff:ff:ff:ff", "unicast MAC"),
    ("mac-all-zero", "spec.interfaces[0].macAddress", "00:00:00:00:00:00", "00:00:00:00:00:10", "unicast MAC"),
    ("mac-type", "spec.interfaces[0].macAddress", 20000000001, "02:00:00:00:00:01", "must be of type string"),
    ("addresses-type", "spec.interfaces[0].addresses", "10.20.0.2/16", ["10.20.0.2/16"], "must be of type array"),
    ("address-no-prefix", "spec.interfaces[0].addresses[0]", "10.20.0.2", "10.20.0.2/16", "with prefix length"),
    ("address-v4-prefix", "spec.interfaces[0].addresses[0]", "10.20.0.2/33", "10.20.0.3/16", "with prefix length"),
    ("address-v4-octet", "spec.interfaces[0].addresses[0]", "10.20.0.256/16", "10.20.0.254/16", "prefix length"),
    ("address-v4-zero-pad", "spec.interfaces[0].addresses[0]", "10.20.0.02/16", "10.20.0.2/16", "prefix length"),
    ("address-v6-prefix", "spec.interfaces[0].addresses[1]", "fd00:20::2/129", "fd00:20::2/128", "prefix length"),
    ("address-v6-groups", "spec.interfaces[0].addresses[1]", "fd00:20:::2/64", "fd00:20::2/64", "prefix length"),
    ("address-hostname", "spec.interfaces[0].addresses[0]", "storage.local/24", "10.20.0.2/16", "prefix length"),
    (
        "addresses-unique",
        "spec.interfaces[0].addresses",
        ["10.20.0.2/16", "10.20.0.2/16"],
        ["10.20.0.2/16"],
        "lists the same value twice",
    ),
    (
        "addresses-maxitems",
        "spec.interfaces[0].addresses",
        [f"10.20.{i}.1/16" for i in range(33)],
        ["10.20.0.9/16"],
        "at most 32",
    ),
    ("mtu-minimum", "spec.interfaces[0].mtu", 67, 68, "between 68 and 9216"),
    ("mtu-maximum", "spec.interfaces[0].mtu", 9217, 9216, "between 68 and 9216"),
    ("mtu-type", "spec.interfaces[0].mtu", "9000", 9000, "must be of type integer"),
    ("mtu-fraction", "spec.interfaces[0].mtu", 1500.5, 1500, "must be of type integer"),
    ("routes-type", "spec.interfaces[0].routes", {"to": "x"}, [], "must be of type array"),
    ("routes-maxitems", "spec.interfaces[0].routes", [{"to": "0.0.0.0/0", "via": "10.20.0.1"}] * 65, [], "at most 64"),
    ("route-to-required", "spec.interfaces[0].routes[0].to", DELETE, "10.120.0.0/16", "required field 'to'"),
    ("route-via-required", "spec.interfaces[0].routes[0].via", DELETE, "10.20.255.254", "required field 'via'"),
    ("route-to-cidr", "spec.interfaces[0].routes[0].to", "10.120.0.0", "10.120.0.0/16", "with prefix length"),
    ("route-to-default", "spec.interfaces[0].routes[0].to", "default", "0.0.0.0/0", "with prefix length"),
    ("route-via-address", "spec.interfaces[0].routes[0].via", "10.20.255.254/16", "10.20.255.254", "IPv4 or IPv6"),
    ("route-metric-minimum", "spec.interfaces[0].routes[0].metric", -1, 0, "between 0 and 4294967295"),
    ("route-metric-maximum", "spec.interfaces[0].routes[0].metric", 2**32, 2**32 - 1, "between 0 and 4294967295"),
    ("route-unknown", "spec.interfaces[0].routes[0].table", 100, DELETE, "unknown field 'table'"),
    ("proxmoxnet-pattern", "spec.interfaces[0].proxmoxNet", "net32", "net31", "Proxmox VM NIC slot"),
    ("proxmoxnet-name", "spec.interfaces[0].proxmoxNet", "vmbr1", "net0", "Proxmox VM NIC slot"),
    ("iface-unknown", "spec.interfaces[0].gateway4", "10.20.0.1", DELETE, "unknown field 'gateway4'"),
    ("interfaces-maxitems", "spec.interfaces", "seventeen", "one", "at most 16"),
]

CLUSTER_RULES: list[tuple[str, str, Any, Any, str]] = [
    ("kind-const", "kind", "ProxmoxClusters", "ProxmoxCluster", "must be ProxmoxCluster"),
    ("metadata-name-label", "metadata.name", "pve.prod", "pve-prod", "not a valid DNS-1123 label"),
    ("endpoint-required", "spec.apiEndpoint", DELETE, "https://pve-prod.example.net", "required field 'apiEndpoint'"),
    ("endpoint-http", "spec.apiEndpoint", "http://pve.example.net:8006", "https://pve.example.net:8006", "https URL"),
    ("endpoint-path", "spec.apiEndpoint", "https://pve.example.net/api2/json", "https://pve.example.net/", "https URL"),
    ("endpoint-ipv6", "spec.apiEndpoint", "https://fd00::10:8006", "https://[fd00::10]:8006", "https URL"),
    ("endpoint-userinfo", "spec.apiEndpoint", "https://root@pve.example.net", "https://10.0.0.5", "https URL"),
    ("endpoint-maxlength", "spec.apiEndpoint", "https://" + "a" * 2048, "https://a.example", "at most 2048"),
    ("secretref-required", "spec.credentialsSecretRef", DELETE, {"name": "pve"}, "required field 'credentialsSec"),
    ("secretref-name-required", "spec.credentialsSecretRef.name", DELETE, "pve", "required field 'name'"),
    ("secretref-name-pattern", "spec.credentialsSecretRef.name", "PVE_token", "pve-token", "DNS-1123 subdomain"),
    ("secretref-namespace", "spec.credentialsSecretRef.namespace", "kube-system", DELETE, "unknown field 'namesp"),
    ("tls-type", "spec.tls", True, {}, "must be of type object"),
    ("tls-insecure-type", "spec.tls.insecureSkipVerify", "yes please", False, "must be of type boolean"),
    ("tls-unknown", "spec.tls.verify", False, DELETE, "unknown field 'verify'"),
    ("ca-name-required", "spec.tls.caBundleSecretRef", {"key": "ca.crt"}, {"name": "ca"}, "required field 'name'"),
    (
        "ca-key-pattern",
        "spec.tls.caBundleSecretRef",
        {"name": "ca", "key": "ca crt"},
        {"name": "ca"},
        "not a valid Secret key",
    ),
    ("ca-key-empty", "spec.tls.caBundleSecretRef", {"name": "ca", "key": ""}, {"name": "ca", "key": "c"}, "at least 1"),
    ("nodecount-minimum", "spec.expectedNodeCount", 0, 1, "between 1 and 10000"),
    ("nodecount-maximum", "spec.expectedNodeCount", 10001, 10000, "between 1 and 10000"),
    ("interval-pattern", "spec.verifyInterval", "5 minutes", "1h30m", "not a valid duration"),
    ("interval-days", "spec.verifyInterval", "1d", "24h", "not a valid duration"),
    ("interval-type", "spec.verifyInterval", 300, "300s", "must be of type string"),
]

SETTINGS_RULES: list[tuple[str, str, Any, Any, str]] = [
    ("kind-const", "kind", "Settings", "ReconcilerSettings", "must be ReconcilerSettings"),
    ("spec-required", "spec", DELETE, {}, "required field 'spec'"),
    ("spec-unknown", "spec.dryRun", True, DELETE, "unknown field 'dryRun'"),
    ("namespace-pattern", "spec.namespace", "Multinic", "multinic", "DNS-1123 label"),
    ("maxparallel-minimum", "spec.rollout.maxParallel", 0, 1, "between 1 and 1000"),
    ("maxparallel-maximum", "spec.rollout.maxParallel", 1001, 1000, "between 1 and 1000"),
    ("maxfailures-minimum", "spec.rollout.maxFailures", -1, 0, "between 0 and 1000"),
    ("rollout-unknown", "spec.rollout.maxUnavailable", 2, DELETE, "unknown field 'maxUnavailable'"),
    ("prune-enabled-type", "spec.prune.enabled", "no", False, "must be of type boolean"),
    ("prune-percent-maximum", "spec.prune.maxDeletePercent", 101, 100, "between 0 and 100"),
    ("prune-percent-minimum", "spec.prune.maxDeletePercent", -1, 0, "between 0 and 100"),
    ("status-enabled-type", "spec.status.enabled", 1, True, "must be of type boolean"),
    ("status-branch-pattern", "spec.status.branch", "-status", "status", "not a valid Git branch name"),
    ("status-branch-dotdot", "spec.status.branch", "a..b", "a.b", "not a valid Git branch name"),
    ("status-branch-lock", "spec.status.branch", "status.lock", "status-lock", "not a valid Git branch name"),
    ("status-branch-slash", "spec.status.branch", "status/", "reconciler/status", "not a valid Git branch name"),
    ("status-unknown", "spec.status.path", "status/", DELETE, "unknown field 'path'"),
]


def _special(value: Any) -> Any:
    if value == "seventeen":
        return [
            dict(node()["spec"]["interfaces"][0], name=f"if{i}", macAddress=f"02:00:00:00:01:{i:02x}")
            for i in range(17)
        ]
    if value == "one":
        return node()["spec"]["interfaces"]
    return value


def _repo(tmp_path: Path, rel: str, doc: dict[str, Any]) -> Path:
    files: dict[str, Any] = {rel: doc}
    if rel != "clusters/pve-prod.yaml":
        files["clusters/pve-prod.yaml"] = cluster()
    return make_repo(tmp_path / "repo", files)


def _check_case(tmp_path: Path, rel: str, base: dict[str, Any], path: str, bad: Any, good: Any, words: str) -> None:
    failing = set_at(base, path, _special(bad))
    root = _repo(tmp_path, rel, failing)
    result = validate(root)
    found = errors(result, "schema", rel)
    assert found, result.diagnostics
    assert all(d.path == rel for d in result.errors), result.diagnostics
    hit = [d for d in found if words in d.message]
    assert hit, [d.message for d in found]
    d = hit[0]
    assert d.line is not None and d.column is not None
    assert d.field.startswith(path.split(".")[0]) or d.field == ""
    # The position points at the field (its key), or at the closest parent that exists.
    shown = text_at(root, d)
    leaf = d.field.rsplit(".", 1)[-1].split("[", 1)[0] if d.field else ""
    if leaf and not d.field.endswith("]"):
        assert shown.startswith(leaf), (shown, d)
    assert "\n" not in d.message and len(d.message) < 300
    assert rel not in result.desired.sources.values()

    passing = set_at(base, path, _special(good))
    (root / rel).write_text(dump(passing), encoding="utf-8")
    result = validate(root)
    assert result.ok, result.diagnostics


@pytest.mark.parametrize(("path", "bad", "good", "words"), [c[1:] for c in NODE_RULES], ids=[c[0] for c in NODE_RULES])
def test_each_node_schema_rule_fails_with_a_located_reason_and_passes_when_fixed(
    tmp_path: Path, path: str, bad: Any, good: Any, words: str
) -> None:
    _check_case(tmp_path, "nodes/worker-01.yaml", node(), path, bad, good, words)


@pytest.mark.parametrize(
    ("path", "bad", "good", "words"), [c[1:] for c in CLUSTER_RULES], ids=[c[0] for c in CLUSTER_RULES]
)
def test_each_cluster_schema_rule_fails_with_a_located_reason_and_passes_when_fixed(
    tmp_path: Path, path: str, bad: Any, good: Any, words: str
) -> None:
    base = cluster()
    if path == "metadata.name":
        # The file is named after the passing value so only the failing one is wrong.
        _check_case(tmp_path, "clusters/pve-prod.yaml", base, path, bad, good, words)
    else:
        _check_case(tmp_path, "clusters/pve-prod.yaml", base, path, bad, good, words)


@pytest.mark.parametrize(
    ("path", "bad", "good", "words"), [c[1:] for c in SETTINGS_RULES], ids=[c[0] for c in SETTINGS_RULES]
)
def test_each_settings_schema_rule_fails_with_a_located_reason_and_passes_when_fixed(
    tmp_path: Path, path: str, bad: Any, good: Any, words: str
) -> None:
    _check_case(tmp_path, "reconciler.yaml", settings(), path, bad, good, words)


def test_an_invalid_settings_file_blocks_every_node_and_cluster(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "reconciler.yaml": settings(rollout={"maxParallel": 0}),
            "nodes/worker-01.yaml": node(),
            "clusters/pve-prod.yaml": cluster(),
        },
    )
    result = validate(root)
    assert not result.ok
    assert result.desired.settings_blocked


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("password", "spec"),
        ("tokenSecret", "spec"),
        ("token", "spec"),
        ("apiToken", "spec"),
        ("api_key", "spec"),
        ("password", "spec.credentialsSecretRef"),
        ("tokenSecret", "spec.tls"),
    ],
)
def test_a_secret_looking_key_in_a_cluster_file_says_credentials_never_go_in_git(
    tmp_path: Path, key: str, where: str
) -> None:
    doc = set_at(cluster(), f"{where}.{key}", "hunter2-s3cr3t")
    root = make_repo(tmp_path, {"clusters/pve-prod.yaml": doc})
    result = validate(root)
    d = [x for x in errors(result, "schema") if x.field == f"{where}.{key}"]
    assert d, result.diagnostics
    assert "credentials never go in Git" in d[0].message
    assert text_at(root, d[0]).startswith(key)
    assert "hunter2" not in d[0].message  # the secret itself is never echoed


def test_a_secret_looking_key_in_a_node_file_is_also_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": set_at(node(), "spec.password", "x")})
    d = errors(validate(root), "schema")
    assert any("credentials never go in Git" in x.message for x in d)


def test_metadata_name_must_equal_the_file_name(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": node("worker-99")})
    result = validate(root)
    (d,) = errors(result)
    assert (d.path, d.rule, d.field) == ("nodes/worker-01.yaml", "file-name", "metadata.name")
    assert "worker-99" in d.message and "worker-01" in d.message
    assert text_at(root, d).startswith("name")


def test_the_settings_file_must_be_named_reconciler(tmp_path: Path) -> None:
    doc = set_at(settings(), "metadata.name", "settings")
    result = validate(make_repo(tmp_path, {"reconciler.yaml": doc}))
    (d,) = errors(result)
    assert d.rule == "file-name" and d.path == "reconciler.yaml"


def test_a_document_of_the_wrong_kind_in_a_folder_is_reported_not_accepted(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/pve-prod.yaml": cluster()})
    result = validate(root)
    kinds = [d for d in errors(result) if d.field == "kind"]
    assert kinds and "must be MultiNicNodeConfig" in kinds[0].message
    assert kinds[0].line == 2


def test_several_schema_errors_in_one_file_are_all_reported_in_line_order(tmp_path: Path) -> None:
    doc = set_at(node(), "spec.interfaces[0].mtu", 1)
    doc = set_at(doc, "spec.interfaces[0].macAddress", "nope")
    doc = set_at(doc, "spec.osFamily", "windows")
    result = validate(make_repo(tmp_path, {"nodes/worker-01.yaml": doc}))
    fields = [d.field for d in errors(result)]
    assert set(fields) == {"spec.osFamily", "spec.interfaces[0].macAddress", "spec.interfaces[0].mtu"}
    lines = [d.line or 0 for d in errors(result)]
    assert lines == sorted(lines)
