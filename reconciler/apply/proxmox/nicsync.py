"""What to write so that a VM's listed ``netN`` devices match the node file (``manageNics``).

Pure: a plan from the file's interfaces and the VM's parsed NICs, no I/O::

    plan = plan_nics(201, desired_nics, vm_config.nics)
    plan.refused     # reasons nothing may be written (bad input); then plan.changes is empty
    plan.values      # {"net3": "virtio=BC:24:11:..,bridge=vmbr3,link_down=1"} for one PUT .../config

Rules (keyed by slot, non-destructive):

* only interfaces that name a slot (``proxmoxNet`` / ``proxmox.net``) are managed; a slot the file
  does not list is never in a plan (no reordering, no recreation, no removal);
* a slot the VM lacks is attached with the file's MAC, bridge, VLAN tag, MTU, model (default
  virtio) and firewall flag, link down (``link_down=1``); once it is read back as the file says,
  the next plan brings the link up;
* a slot the VM has keeps its MAC and every option the file does not give (queues, rate,
  trunks, ...); only the fields the file gives change;
* a slot is removed only when ``spec.proxmox.absent`` lists it (and no interface names it);
* refused, for the whole VM: a MAC that differs from the one the VM's slot has (a NIC's MAC is
  never changed), a MAC that is on another slot of the VM (never moved), a new slot without a
  bridge, a MAC that is not a unicast MAC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from reconciler.apply.proxmox.vmnics import DesiredNic, VmNic, normalize_mac

DEFAULT_MODEL = "virtio"


@dataclass(frozen=True)
class NicChange:
    slot: str
    kind: Literal["attach", "update", "link-up", "remove"]
    before: str | None  # the netN value now (None: no such slot)
    after: str

    @property
    def summary(self) -> str:
        if self.kind == "attach":
            return f"{self.slot}: attach {self.after}"
        if self.kind == "link-up":
            return f"{self.slot}: bring the link up"
        if self.kind == "remove":
            return f"{self.slot}: remove {self.before} (spec.proxmox.absent)"
        return f"{self.slot}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class NicPlan:
    changes: tuple[NicChange, ...] = ()
    refused: tuple[str, ...] = ()

    @property
    def values(self) -> dict[str, str]:
        return {c.slot: c.after for c in self.changes if c.kind != "remove"}

    @property
    def undo(self) -> tuple[tuple[str, str], ...]:
        """The values to write back to put the VM as it was before this plan."""
        return tuple((c.slot, c.before) for c in self.changes if c.before is not None)

    @property
    def undo_delete(self) -> tuple[str, ...]:
        """The slots this plan attaches (removed to put the VM back)."""
        return tuple(c.slot for c in self.changes if c.kind == "attach")

    @property
    def deletes(self) -> tuple[str, ...]:
        return tuple(c.slot for c in self.changes if c.kind == "remove")

    @property
    def summaries(self) -> tuple[str, ...]:
        return tuple(c.summary for c in self.changes)


def format_net(nic: VmNic) -> str:
    """The ``netN`` value PVE would store for ``nic`` (model=MAC first, then the options)."""
    parts = [f"{nic.model}={nic.mac.upper()}" if nic.mac else nic.model]
    if nic.bridge is not None:
        parts.append(f"bridge={nic.bridge}")
    if nic.firewall:
        parts.append("firewall=1")
    if nic.link_down:
        parts.append("link_down=1")
    if nic.mtu is not None:
        parts.append(f"mtu={nic.mtu}")
    if nic.queues is not None:
        parts.append(f"queues={nic.queues}")
    if nic.rate is not None:
        parts.append(f"rate={nic.rate:g}")
    if nic.tag is not None:
        parts.append(f"tag={nic.tag}")
    if nic.trunks:
        parts.append("trunks=" + ";".join(str(t) for t in nic.trunks))
    parts += [f"{k}={v}" for k, v in nic.extra]
    return ",".join(parts)


def _wanted(want: DesiredNic, base: VmNic) -> VmNic:
    return replace(
        base,
        model=want.model or base.model,
        bridge=want.bridge if want.bridge is not None else base.bridge,
        tag=want.vlan if want.vlan is not None else base.tag,
        mtu=want.mtu if want.mtu is not None else base.mtu,
        firewall=want.firewall if want.firewall is not None else base.firewall,
        link_down=False,
    )


def plan_nics(vmid: int | str, desired: Iterable[DesiredNic], nics: Sequence[VmNic],
              absent: Iterable[str] = ()) -> NicPlan:
    """The writes that make the VM's listed slots match ``desired`` and remove the ``absent``
    ones it has; see the module docstring."""
    desired = list(desired)
    by_slot: Mapping[str, VmNic] = {n.slot: n for n in nics}
    by_mac: Mapping[str, VmNic] = {n.mac: n for n in nics if n.mac}
    changes: list[NicChange] = []
    refused: list[str] = []
    for want in desired:
        if want.proxmox_net is None:
            continue  # not managed: checked only
        slot, label = want.proxmox_net, f" ({want.name})" if want.name else ""
        try:
            mac = normalize_mac(want.mac)
        except ValueError:
            refused.append(f"{slot}{label}: macAddress {want.mac!r} is not a MAC address")
            continue
        if int(mac[:2], 16) & 1:
            refused.append(f"{slot}{label}: macAddress {mac} is not a unicast MAC address")
            continue
        elsewhere = by_mac.get(mac)
        if elsewhere is not None and elsewhere.slot != slot:
            refused.append(f"{slot}{label}: macAddress {mac} is on {elsewhere.slot} of VM {vmid}; "
                           "a NIC is never moved between slots (fix the file or the VM)")
            continue
        current = by_slot.get(slot)
        if current is None:
            if want.bridge is None:
                refused.append(f"{slot}{label}: VM {vmid} has no {slot} and the file gives no proxmox.bridge "
                               "to attach it to")
                continue
            new = _wanted(want, VmNic(slot=slot, model=DEFAULT_MODEL, mac=mac))
            changes.append(NicChange(slot, "attach", None, format_net(replace(new, link_down=True))))
            continue
        if current.mac != mac:
            refused.append(f"{slot}{label}: VM {vmid} {slot} has MAC {current.mac or 'none'}, the file says {mac}; "
                           "a NIC's MAC is never changed (fix the file or the VM)")
            continue
        new = _wanted(want, current)
        if new != current:
            kind: Literal["update", "link-up"] = "link-up" if new == replace(current, link_down=False) else "update"
            changes.append(NicChange(slot, kind, format_net(current), format_net(new)))
    named = {want.proxmox_net for want in desired if want.proxmox_net}
    for slot in sorted(set(absent)):
        if slot in named:
            refused.append(f"{slot} is both in spec.proxmox.absent and named by an interface")
        elif slot in by_slot:
            changes.append(NicChange(slot, "remove", format_net(by_slot[slot]), ""))
    if refused:
        return NicPlan((), tuple(refused))
    return NicPlan(tuple(changes), ())
