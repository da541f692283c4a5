"""The manageNics plan: keyed by slot, MACs kept, other slots never touched, bad input refused whole."""

from __future__ import annotations

from reconciler.apply.proxmox.nicsync import format_net, plan_nics
from reconciler.apply.proxmox.vmnics import DesiredNic, parse_net

VM = [
    parse_net("net0", "virtio=BC:24:11:FE:00:01,bridge=vmbr0,firewall=1"),
    parse_net("net1", "virtio=BC:24:11:20:00:0B,bridge=vmbr1,mtu=9000,queues=4,rate=100,trunks=20;30,tag=20"),
]


def test_a_pve_written_net_string_comes_back_as_it_was_parsed() -> None:
    for nic in VM:
        assert parse_net(nic.slot, format_net(nic)) == nic


def test_a_bridge_change_rewrites_that_slot_only_keeping_mac_and_every_other_option() -> None:
    plan = plan_nics(201, [DesiredNic("bc:24:11:20:00:0b", "net1", "storage0", bridge="vmbr9")], VM)
    assert plan.refused == ()
    assert plan.values == {"net1": "virtio=BC:24:11:20:00:0B,bridge=vmbr9,mtu=9000,queues=4,rate=100,tag=20,"
                                   "trunks=20;30"}


def test_a_matching_file_plans_nothing_and_an_unlisted_slot_is_never_planned() -> None:
    assert plan_nics(201, [DesiredNic("bc:24:11:20:00:0b", "net1", bridge="vmbr1", vlan=20)], VM).changes == ()
    assert plan_nics(201, [DesiredNic("bc:24:11:20:00:0b", None, bridge="vmbr7")], VM).changes == ()  # no slot


def test_a_new_slot_is_attached_link_down_then_brought_up() -> None:
    want = [DesiredNic("bc:24:11:31:00:0b", "net3", "tenant1", bridge="vmbr31", vlan=31, firewall=True)]
    attach = plan_nics(201, want, VM)
    assert attach.values == {"net3": "virtio=BC:24:11:31:00:0B,bridge=vmbr31,firewall=1,link_down=1,tag=31"}
    after = [*VM, parse_net("net3", attach.values["net3"])]
    up = plan_nics(201, want, after)
    linked = "virtio=BC:24:11:31:00:0B,bridge=vmbr31,firewall=1,tag=31"
    assert [(c.kind, c.after) for c in up.changes] == [("link-up", linked)]


def test_one_bad_interface_refuses_the_whole_vm() -> None:
    good = DesiredNic("bc:24:11:20:00:0b", "net1", bridge="vmbr9")
    for bad, says in [
        (DesiredNic("bc:24:11:20:00:99", "net1"), "a NIC's MAC is never changed"),
        (DesiredNic("bc:24:11:fe:00:01", "net5", bridge="vmbr5"), "never moved between slots"),
        (DesiredNic("bc:24:11:39:00:0b", "net9"), "gives no proxmox.bridge"),
        (DesiredNic("01:00:5e:00:00:01", "net9", bridge="vmbr9"), "not a unicast MAC"),
    ]:
        plan = plan_nics(201, [good, bad], VM)
        assert plan.changes == () and says in plan.refused[0], plan


def test_only_slots_listed_as_absent_are_removed_and_never_one_an_interface_names() -> None:
    keep = DesiredNic("bc:24:11:20:00:0b", "net1", bridge="vmbr1")
    plan = plan_nics(201, [keep], VM, absent=["net0", "net7"])  # net7 is not on the VM: nothing to do
    assert [(c.kind, c.slot) for c in plan.changes] == [("remove", "net0")] and plan.deletes == ("net0",)
    assert plan.values == {}
    refused = plan_nics(201, [keep], VM, absent=["net1"])
    assert refused.changes == () and "both in spec.proxmox.absent and named by an interface" in refused.refused[0]
