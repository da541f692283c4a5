"""Parsing VM ``netN`` strings (every one in the recordings, plus edge cases) and mismatches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.apply.proxmox.vmnics import (
    NIC_MODELS,
    DesiredNic,
    NicParseError,
    VmNic,
    nic_mismatches,
    nics_from_config,
    parse_net,
)

DATA = Path(__file__).parent / "data" / "pve"


def recorded_net_strings() -> list[tuple[str, str, str]]:
    found = []

    def walk(source: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and key.startswith("net") and key[3:].isdigit():
                    found.append((source, key, item))
                else:
                    walk(source, item)
        elif isinstance(value, list):
            for item in value:
                walk(source, item)

    for path in sorted(DATA.glob("*.json")):
        walk(path.name, json.loads(path.read_text()))
    return found


RECORDED = recorded_net_strings()


def test_the_recordings_hold_net_strings() -> None:
    assert len(RECORDED) >= 4


@pytest.mark.parametrize(("source", "slot", "value"), RECORDED, ids=[f"{s}:{k}" for s, k, _ in RECORDED])
def test_every_recorded_net_string_parses(source: str, slot: str, value: str) -> None:
    nic = parse_net(slot, value)
    assert nic.model == "virtio" and nic.slot == slot
    assert nic.mac == value.split(",")[0].split("=")[1].lower()
    assert nic.bridge and nic.bridge.startswith("vmbr")


def test_the_recorded_multi_nic_config_gives_two_nics_in_slot_order() -> None:
    config = json.loads((DATA / "GET_node_qemu_config.json").read_text())["data"]
    nics = nics_from_config(config)
    assert [(n.slot, n.bridge) for n in nics] == [("net0", "vmbr0"), ("net1", "vmbr1")]


def test_the_recorded_firewall_flag_is_read() -> None:
    config = json.loads((DATA / "GET_node_qemu_config_firewall.json").read_text())["data"]
    (nic,) = nics_from_config(config)
    assert (nic.mac, nic.firewall, nic.link_down) == ("4e:79:9f:a8:ee:e4", True, False)


def test_all_options_are_parsed() -> None:
    nic = parse_net(
        "net1",
        "virtio=BC:24:11:AA:BB:CC,bridge=vmbr1,tag=20,mtu=9000,firewall=1,link_down=1,queues=4,rate=12.5,trunks=10;20;30",
    )
    assert nic == VmNic(
        slot="net1",
        model="virtio",
        mac="bc:24:11:aa:bb:cc",
        bridge="vmbr1",
        tag=20,
        mtu=9000,
        firewall=True,
        link_down=True,
        queues=4,
        rate=12.5,
        trunks=(10, 20, 30),
    )


@pytest.mark.parametrize(
    ("value", "model", "mac"),
    [
        ("e1000=BC:24:11:00:00:01,bridge=vmbr0", "e1000", "bc:24:11:00:00:01"),
        ("e1000e=bc:24:11:00:00:02", "e1000e", "bc:24:11:00:00:02"),
        ("vmxnet3=BC:24:11:00:00:03,bridge=vmbr0", "vmxnet3", "bc:24:11:00:00:03"),
        ("rtl8139=BC:24:11:00:00:04", "rtl8139", "bc:24:11:00:00:04"),
        ("model=virtio,macaddr=BC:24:11:00:00:05,bridge=vmbr0", "virtio", "bc:24:11:00:00:05"),
        ("virtio,macaddr=BC-24-11-00-00-06,bridge=vmbr0", "virtio", "bc:24:11:00:00:06"),
        ("virtio,bridge=vmbr0", "virtio", None),
    ],
)
def test_model_keys_and_the_macaddr_form(value: str, model: str, mac: str | None) -> None:
    nic = parse_net("net0", value)
    assert (nic.model, nic.mac) == (model, mac)


def test_unknown_options_are_kept_not_dropped() -> None:
    nic = parse_net("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0,newoption=x")
    assert nic.extra == (("newoption", "x"),)


@pytest.mark.parametrize(
    ("slot", "value", "message"),
    [
        ("net0", "bridge=vmbr0", "no NIC model"),
        ("net0", "foo=BC:24:11:00:00:01", "no NIC model"),
        ("net0", "virtio=zz:24:11:00:00:01", "not a MAC address"),
        ("net0", "virtio=BC:24:11:00:00:01,tag=twenty", "not an integer"),
        ("net0", "virtio=BC:24:11:00:00:01,firewall=yes", "not 0 or 1"),
        ("net0", "virtio=BC:24:11:00:00:01,e1000=BC:24:11:00:00:02", "two NIC models"),
        ("net0", "model=tulip", "unknown NIC model"),
        ("eth0", "virtio=BC:24:11:00:00:01", "not a network device slot"),
    ],
)
def test_malformed_net_strings_are_rejected(slot: str, value: str, message: str) -> None:
    with pytest.raises(NicParseError, match=message):
        parse_net(slot, value)


def test_config_keys_that_only_look_like_slots_are_ignored() -> None:
    config = {"net10": "virtio=BC:24:11:00:00:0A", "net2": "e1000=BC:24:11:00:00:02", "netmask": "x", "name": "vm"}
    assert [n.slot for n in nics_from_config(config)] == ["net2", "net10"]


@given(
    model=st.sampled_from(sorted(NIC_MODELS)),
    mac=st.lists(st.integers(0, 255), min_size=6, max_size=6),
    tag=st.none() | st.integers(1, 4094),
    mtu=st.none() | st.integers(576, 65520),
    firewall=st.booleans(),
    upper=st.booleans(),
)
def test_any_pve_written_net_string_round_trips(
    model: str, mac: list[int], tag: int | None, mtu: int | None, firewall: bool, upper: bool
) -> None:
    text_mac = ":".join(f"{b:02x}" for b in mac)
    value = f"{model}={text_mac.upper() if upper else text_mac},bridge=vmbr9"
    value += f",firewall={int(firewall)}" + (f",tag={tag}" if tag else "") + (f",mtu={mtu}" if mtu else "")
    nic = parse_net("net3", value)
    assert (nic.model, nic.mac, nic.tag, nic.mtu, nic.firewall) == (model, text_mac, tag, mtu, firewall)


# --- mismatches --------------------------------------------------------------------------

VM_NICS = (
    parse_net("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0"),
    parse_net("net1", "virtio=BC:24:11:00:01:01,bridge=vmbr1,tag=20"),
    parse_net("net2", "virtio=BC:24:11:00:02:01,bridge=vmbr2"),
)


def test_matching_interfaces_give_no_mismatch() -> None:
    desired = [DesiredNic("BC:24:11:00:01:01", "net1"), DesiredNic("bc-24-11-00-02-01")]
    assert nic_mismatches(101, desired, VM_NICS) == []


def test_a_mac_that_is_not_on_the_vm_is_reported_with_the_vms_nics() -> None:
    assert nic_mismatches(101, [DesiredNic("bc:24:11:00:00:09")], VM_NICS) == [
        "macAddress bc:24:11:00:00:09 is not on VM 101 "
        "(net0 bc:24:11:00:00:01, net1 bc:24:11:00:01:01, net2 bc:24:11:00:02:01)"
    ]


def test_a_mac_on_another_slot_than_proxmox_net_is_reported() -> None:
    assert nic_mismatches(101, [DesiredNic("BC:24:11:00:02:01", "net1", name="storage")], VM_NICS) == [
        "macAddress bc:24:11:00:02:01 (storage) is on net2, not on proxmoxNet net1 (net1 has bc:24:11:00:01:01)"
    ]
    assert nic_mismatches(101, [DesiredNic("BC:24:11:00:02:01", "net7")], VM_NICS) == [
        "macAddress bc:24:11:00:02:01 is on net2, not on proxmoxNet net7 (VM 101 has no net7)"
    ]


def test_an_invalid_desired_mac_and_a_vm_without_nics_are_reported() -> None:
    assert nic_mismatches(7, [DesiredNic("nope")], VM_NICS) == ["macAddress 'nope' is not a MAC address"]
    assert nic_mismatches(7, [DesiredNic("bc:24:11:00:00:01")], ()) == [
        "macAddress bc:24:11:00:00:01 is not on VM 7 (no NICs)"
    ]
