"""Rendered netplan files are accepted by the real ``netplan generate --root-dir``."""

from __future__ import annotations

import ipaddress
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_agent_support import NETPLAN, make_root, need, node_doc

from reconciler.agent import render_netplan
from reconciler.config import schemas
from reconciler.config.models import NodeConfig

REALISTIC: dict[str, list[dict[str, Any]]] = {
    "ipv4": [{"name": "storage0", "macAddress": "52:54:00:12:34:01", "addresses": ["10.10.0.5/24"]}],
    "ipv6": [
        {
            "name": "storage0",
            "macAddress": "52:54:00:12:34:01",
            "addresses": ["fd00:10::5/64"],
            "routes": [{"to": "fd00:20::/48", "via": "fd00:10::1"}],
        }
    ],
    "dual-stack": [
        {
            "name": "multinic0",
            "macAddress": "BC:24:11:AB:CD:EF",
            "addresses": ["192.168.50.10/24", "2001:db8:50::10/64"],
        }
    ],
    "jumbo": [{"name": "san0", "macAddress": "52:54:00:12:34:02", "addresses": ["172.16.0.9/16"], "mtu": 9000}],
    "routes-with-metric": [
        {
            "name": "mgmt1",
            "macAddress": "52:54:00:12:34:03",
            "addresses": ["10.0.8.4/22"],
            "routes": [
                {"to": "0.0.0.0/0", "via": "10.0.8.1", "metric": 200},
                {"to": "10.96.0.0/12", "via": "10.0.8.2", "metric": 50},
            ],
        }
    ],
    "link-only": [{"name": "trunk0", "macAddress": "52:54:00:12:34:04", "mtu": 1600}],
    "onlink": [
        {
            "name": "public0",
            "macAddress": "52:54:00:12:34:05",
            "addresses": ["203.0.113.7/32", "2001:db8:7::7/128"],
            "routes": [
                {"to": "0.0.0.0/0", "via": "172.31.1.1", "onLink": True},
                {"to": "::/0", "via": "2001:db8:7::1", "metric": 10, "onLink": True},
                {"to": "2001:db8:9::/48", "via": "fe80::1"},
            ],
        }
    ],
    "several": [
        {"name": "multinic0", "macAddress": "52:54:00:00:00:10", "addresses": ["10.1.0.2/24"]},
        {
            "name": "multinic1",
            "macAddress": "52:54:00:00:00:11",
            "addresses": ["10.2.0.2/24"],
            "mtu": 9000,
            "routes": [{"to": "10.200.0.0/16", "via": "10.2.0.1", "metric": 10}],
        },
        {
            "name": "multinic2",
            "macAddress": "52:54:00:00:00:12",
            "addresses": ["10.3.0.2/24", "fd03::2/64"],
            "routes": [{"to": "::/0", "via": "fd03::1", "metric": 300}],
        },
    ],
}


def netplan_generate(root: Path, config: NodeConfig) -> dict[str, str]:
    """Write our file under ``root``, run the real generator, return what it wrote for networkd."""
    path = root / render_netplan.PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_netplan.render(config.spec.node_name, config.spec.interfaces))
    path.chmod(render_netplan.MODE)
    proc = subprocess.run(
        [need(NETPLAN, "netplan"), "generate", "--root-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = root / "run/systemd/network"
    return {p.name: p.read_text() for p in sorted(out.iterdir())} if out.is_dir() else {}


def assert_generated_for(generated: dict[str, str], config: NodeConfig) -> None:
    for iface in config.spec.interfaces:
        network = generated[f"10-netplan-{iface.name}.network"]
        link = generated[f"10-netplan-{iface.name}.link"]
        assert f"Name={iface.name}" in link
        assert iface.mac_address in network.lower()
        for addr in iface.addresses:
            assert f"Address={addr}" in network
        if iface.mtu is not None:
            assert f"MTUBytes={iface.mtu}" in network
        for route in iface.routes:
            assert f"Gateway={route.via}" in network
            if route.metric is not None:
                assert f"Metric={route.metric}" in network
        assert network.count("GatewayOnLink=") == sum(1 for r in iface.routes if r.on_link)
        assert network.count("GatewayOnLink=true") == network.count("GatewayOnLink=")


@pytest.mark.parametrize("case", sorted(REALISTIC))
def test_netplan_generate_accepts_the_rendered_file_for_realistic_nodes(case: str, tmp_path: Path) -> None:
    config = NodeConfig.model_validate(node_doc(REALISTIC[case]))
    generated = netplan_generate(make_root(tmp_path, "ubuntu-24.04", {}), config)
    assert_generated_for(generated, config)


def test_the_same_spec_renders_a_byte_identical_netplan_file() -> None:
    config = NodeConfig.model_validate(node_doc(REALISTIC["several"]))
    again = NodeConfig.model_validate(node_doc(REALISTIC["several"]))
    first = render_netplan.render("worker-1", config.spec.interfaces)
    assert first == render_netplan.render("worker-1", again.spec.interfaces)
    assert first.startswith("# managed by multinic-reconciler")


# --- hypothesis: any valid spec renders to a file netplan accepts -------------------------------

_names = st.from_regex(r"\A[a-z][a-z0-9]{0,11}\Z", fullmatch=True).filter(lambda n: n not in {"lo", "all", "default"})


@st.composite
def _mac(draw: st.DrawFn) -> str:
    first = draw(st.integers(0, 255)) & 0xFE  # unicast
    rest = draw(st.lists(st.integers(0, 255), min_size=5, max_size=5))
    octets = [first, *rest]
    if not any(octets):
        octets[5] = 1
    return ":".join(f"{o:02x}" for o in octets)


@st.composite
def _interface(draw: st.DrawFn, name: str, mac: str) -> dict[str, Any]:
    addresses: list[str] = []
    routes: list[dict[str, Any]] = []
    for version in draw(st.lists(st.sampled_from([4, 6]), max_size=3)):
        if version == 4:
            prefix = draw(st.integers(8, 30))
            net = ipaddress.IPv4Network((draw(st.integers(1 << 24, 0xDFFFFFFF)), prefix), strict=False)
        else:
            prefix = draw(st.integers(48, 126))
            net = ipaddress.IPv6Network((0xFD << 120 | draw(st.integers(0, (1 << 120) - 1)), prefix), strict=False)
        hosts = net.num_addresses
        host = net.network_address + draw(st.integers(1, hosts - 2))
        gateway = net.network_address + draw(st.integers(1, hosts - 2))
        cidr = f"{host}/{prefix}"
        if cidr in addresses:
            continue
        addresses.append(cidr)
        if gateway != host and draw(st.booleans()):
            dest_prefix = draw(st.integers(0, 32 if version == 4 else 128))
            network_class = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
            bits = 32 if version == 4 else 128
            dest = network_class((draw(st.integers(0, (1 << bits) - 1)), dest_prefix), strict=False)
            route: dict[str, Any] = {"to": str(dest), "via": str(gateway)}
            if draw(st.booleans()):
                route["metric"] = draw(st.integers(0, 65535))
            routes.append(route)
    iface: dict[str, Any] = {"name": name, "macAddress": mac, "addresses": addresses}
    if routes:
        iface["routes"] = routes
    if draw(st.booleans()):
        iface["mtu"] = draw(st.integers(1280 if any(":" in a for a in addresses) else 576, 9216))
    return iface


@st.composite
def node_configs(draw: st.DrawFn) -> NodeConfig:
    names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    macs = draw(st.lists(_mac(), min_size=len(names), max_size=len(names), unique=True))
    doc = node_doc([draw(_interface(n, m)) for n, m in zip(names, macs, strict=True)])
    assert schemas.check("MultiNicNodeConfig", doc) == []
    return NodeConfig.model_validate(doc)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=node_configs())
def test_netplan_generate_accepts_every_generated_spec(config: NodeConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generated = netplan_generate(make_root(Path(tmp), "ubuntu-24.04", {}), config)
    assert_generated_for(generated, config)
