"""ifcfg files against golden files and shell semantics; keyfiles through the real ``nmcli``.

Golden files live in ``tests/golden/agent/``; regenerate with ``UPDATE_GOLDEN=1 pytest ...`` and
review the diff. ifcfg files are sourced by a real ``bash`` the way initscripts does, and each
variable is compared with the initscripts documentation (sysconfig.txt): IPADDRn/PREFIXn
(n omitted for a single address), IPV6ADDR + space-separated IPV6ADDR_SECONDARIES, and route-<if>
as ADDRESSn/NETMASKn/GATEWAYn/METRICn/OPTIONSn, route6-<if> as ``ip route`` arguments.
"""

from __future__ import annotations

import configparser
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_agent_support import NMCLI, need, node_doc

from reconciler.agent import render_ifcfg, render_keyfile
from reconciler.config.models import Interface, NodeConfig

GOLDEN = Path(__file__).parent / "golden/agent"

CASES: dict[str, dict[str, Any]] = {
    "ipv4": {"name": "storage0", "macAddress": "52:54:00:12:34:01", "addresses": ["10.10.0.5/24"]},
    "ipv4-several": {
        "name": "storage0",
        "macAddress": "52:54:00:12:34:01",
        "addresses": ["10.10.0.5/24", "10.11.0.5/16", "192.168.7.1/32"],
    },
    "ipv6": {
        "name": "v6net",
        "macAddress": "52:54:00:12:34:02",
        "addresses": ["fd00:10::5/64", "2001:db8::5/64", "fd00:99::1/128"],
    },
    "mtu": {"name": "san0", "macAddress": "52:54:00:12:34:03", "addresses": ["172.16.0.9/16"], "mtu": 9000},
    "routes": {
        "name": "mgmt1",
        "macAddress": "52:54:00:12:34:04",
        "addresses": ["10.0.8.4/22", "fd08::4/64"],
        "routes": [
            {"to": "0.0.0.0/0", "via": "10.0.8.1", "metric": 200},
            {"to": "10.96.0.0/12", "via": "10.0.8.2"},
            {"to": "fd09::/48", "via": "fd08::1", "metric": 5},
        ],
    },
    "link-only": {"name": "trunk0", "macAddress": "52:54:00:12:34:05", "mtu": 1600},
    # A provider's /32 and /128 with a gateway on the link but in no prefix (onLink), and an IPv6
    # link-local gateway (on-link by definition, no flag needed).
    "onlink": {
        "name": "public0",
        "macAddress": "52:54:00:12:34:06",
        "addresses": ["203.0.113.7/32", "2001:db8:7::7/128"],
        "routes": [
            {"to": "0.0.0.0/0", "via": "172.31.1.1", "onLink": True},
            {"to": "::/0", "via": "2001:db8:7::1", "metric": 10, "onLink": True},
            {"to": "2001:db8:9::/48", "via": "fe80::1"},
        ],
    },
}


def iface(case: str) -> Interface:
    return NodeConfig.model_validate(node_doc([CASES[case]])).spec.interfaces[0]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


def source(text: str, tmp_path: Path) -> dict[str, str]:
    """Variables of an ifcfg/route file as bash (and so initscripts) reads them."""
    path = tmp_path / "sourced"
    path.write_text(text)
    script = f'set -a; . "{path}"; env -0'
    out = subprocess.run(["bash", "--norc", "-c", script], env={}, capture_output=True, check=True).stdout.decode()
    values = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in values.items() if k not in {"PWD", "SHLVL", "_", "OLDPWD"}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ifcfg_output_matches_its_golden_files(case: str) -> None:
    files = render_ifcfg.render("worker-1", iface(case))
    for rel, text in sorted(files.items()):
        check_golden(f"ifcfg/{case}/{Path(rel).name}", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_ifcfg_fields_mean_what_initscripts_documents(case: str, tmp_path: Path) -> None:
    nic = iface(case)
    files = render_ifcfg.render("worker-1", nic)
    ifcfg = source(files[f"{render_ifcfg.DIR}/ifcfg-{nic.name}"], tmp_path)
    assert ifcfg.pop("DEVICE") == nic.name and ifcfg.pop("NAME") == nic.name
    assert ifcfg.pop("HWADDR") == nic.mac_address
    assert (ifcfg.pop("TYPE"), ifcfg.pop("BOOTPROTO"), ifcfg.pop("ONBOOT")) == ("Ethernet", "none", "yes")
    v4 = [a for a in nic.interfaces if a.version == 4]
    v6 = [a for a in nic.interfaces if a.version == 6]
    if len(v4) == 1:
        assert (ifcfg.pop("IPADDR"), ifcfg.pop("PREFIX")) == (str(v4[0].ip), str(v4[0].network.prefixlen))
    for n, addr in enumerate(v4 if len(v4) > 1 else []):
        assert ifcfg.pop(f"IPADDR{n}") == str(addr.ip)
        assert ifcfg.pop(f"PREFIX{n}") == str(addr.network.prefixlen)
    # the device's route metric is explicit (NetworkManager's implicit one differs live and at boot)
    assert ifcfg.pop("IPV4_ROUTE_METRIC", None) == ("100" if v4 else None)
    assert ifcfg.pop("IPV6_ROUTE_METRIC", None) == ("100" if v6 else None)
    if v6:
        assert (ifcfg.pop("IPV6INIT"), ifcfg.pop("IPV6_AUTOCONF")) == ("yes", "no")
        assert ifcfg.pop("IPV6ADDR") == str(v6[0])
        if len(v6) > 1:
            assert ifcfg.pop("IPV6ADDR_SECONDARIES").split(" ") == [str(a) for a in v6[1:]]
    else:
        assert ifcfg.pop("IPV6INIT") == "no"
    if nic.mtu is not None:
        assert ifcfg.pop("MTU") == str(nic.mtu)
    assert ifcfg == {}, f"undocumented variables {ifcfg}"

    routes4 = [r for r in nic.routes if r.destination.version == 4]
    route_file = files.get(f"{render_ifcfg.DIR}/route-{nic.name}")
    assert (route_file is not None) == bool(routes4)
    if route_file:
        got = source(route_file, tmp_path)
        for n, route in enumerate(routes4):
            net = route.destination.network
            assert got.pop(f"ADDRESS{n}") == str(net.network_address)
            assert got.pop(f"NETMASK{n}") == str(net.netmask)
            assert got.pop(f"GATEWAY{n}") == route.via
            assert got.pop(f"METRIC{n}") == str(route.metric if route.metric is not None else 100)
            if route.on_link:
                assert got.pop(f"OPTIONS{n}") == "onlink"
        assert got == {}
    routes6 = [r for r in nic.routes if r.destination.version == 6]
    route6 = files.get(f"{render_ifcfg.DIR}/route6-{nic.name}")
    assert (route6 is not None) == bool(routes6)
    if route6:
        lines = [x for x in route6.splitlines() if not x.startswith("#")]
        assert lines == [
            f"{r.destination.network} via {r.via} metric {r.metric if r.metric is not None else 100} dev {nic.name}"
            + (" onlink" if r.on_link else "")
            for r in routes6
        ]


# --- NetworkManager keyfiles --------------------------------------------------------------------


def nmcli_reads(text: str) -> str:
    """Feed a keyfile to the real ``nmcli --offline`` (no daemon): NM's own parser must accept it
    and write it back. A no-op modify (set the id to itself) is the documented offline round trip."""
    nmcli = need(NMCLI, "nmcli (Debian network-manager >= 1.42)")
    proc = subprocess.run(
        [nmcli, "--offline", "connection", "modify", "connection.autoconnect", "yes"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def keyfile_sections(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("case", sorted(CASES))
def test_keyfiles_are_accepted_by_real_nmcli_and_keep_their_meaning(case: str) -> None:
    nic = iface(case)
    files = render_keyfile.render("worker-1", nic)
    text = files[f"{render_keyfile.DIR}/{nic.name}.nmconnection"]
    ours = keyfile_sections(text)
    back = keyfile_sections(nmcli_reads(text))
    # Everything we wrote survives NM's parser unchanged (NM may add defaults such as [proxy]).
    for section in ours.sections():
        for key, value in ours[section].items():
            assert back[section][key] == value, (section, key)
    assert back["connection"]["uuid"] == render_keyfile.connection_uuid("worker-1", nic.name)
    assert back["ethernet"]["mac-address"].lower() == nic.mac_address


def test_keyfile_uuids_are_deterministic_per_node_and_name() -> None:
    assert render_keyfile.connection_uuid("w1", "a") == render_keyfile.connection_uuid("w1", "a")
    assert render_keyfile.connection_uuid("w1", "a") != render_keyfile.connection_uuid("w2", "a")


@pytest.mark.parametrize("case", ["routes", "link-only", "onlink"])
def test_keyfile_output_matches_its_golden_files(case: str) -> None:
    for rel, text in sorted(render_keyfile.render("worker-1", iface(case)).items()):
        check_golden(f"keyfile/{case}/{Path(rel).name}", text)


def test_an_on_link_route_reaches_network_manager_as_onlink() -> None:
    nic = iface("onlink")
    text = render_keyfile.render("worker-1", nic)[f"{render_keyfile.DIR}/{nic.name}.nmconnection"]
    back = keyfile_sections(nmcli_reads(text))
    # a route without a metric carries the device's explicit 100 (live equals boot)
    assert (back["ipv4"]["route1"], back["ipv4"]["route1_options"]) == ("0.0.0.0/0,172.31.1.1,100", "onlink=true")
    assert (back["ipv6"]["route1"], back["ipv6"]["route1_options"]) == ("::/0,2001:db8:7::1,10", "onlink=true")
    assert back["ipv6"]["route2"] == "2001:db8:9::/48,fe80::1,100" and "route2_options" not in back["ipv6"]
