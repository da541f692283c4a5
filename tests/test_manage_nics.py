"""``spec.proxmox.manageNics``: the VM's listed ``netN`` devices made to match the node file.

Real parts: the example repo as a Git repo, one PVE sandbox per cluster (built from the unchanged
repo), the kube sandbox (Jobs run by it), the real proxmoxer writing ``PUT .../config`` over TLS
(API token on pve-prod, ticket + CSRF token on pve-lab) and reading the VM back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.harness.kube_setup import put_cluster_secrets
from multinic_sandbox.harness.pve_topology import point_repo_at, topologies_from_config
from multinic_sandbox.proxmox import ROLES, ProxmoxSandbox
from multinic_sandbox.proxmox.leak_scan import SecretGuard
from multinic_sandbox.proxmox.pytest_plugin import SandboxFactory
from proxmoxer import ProxmoxAPI
from support.reconcile import EXAMPLE_REPO, NAMESPACE, ReconcileEnv, commit, git_repo, start_env
from test_plan_cli import cli, kube_args

from reconciler import pipeline
from reconciler.config.validation import validate_repo

AUTH = {"pve-lab": "ticket", "pve-prod": "token"}
TENANT1 = {"name": "tenant1", "macAddress": "BC:24:11:31:00:0C", "addresses": ["10.31.0.12/24"],
           "proxmox": {"net": "net3", "bridge": "vmbr31", "vlan": 31}}
NIC_ADMIN = ROLES["PVEAuditor"] | {"VM.Config.Network"}


class Fleet:
    def __init__(self, env: ReconcileEnv, sandboxes: dict[str, ProxmoxSandbox]) -> None:
        self.env, self.sandboxes = env, sandboxes

    def edit(self, node: str, change: Any) -> None:
        path = self.env.repo / "nodes" / f"{node}.yaml"
        doc = yaml.safe_load(path.read_text())
        change(doc["spec"])
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def cycle(self) -> pipeline.Cycle:
        cycle = self.env.apply()
        self.env.sandbox.clock.advance(10)
        self.env.sandbox.jobs.step()
        return cycle

    def settle(self, done: Any, cycles: int = 40) -> pipeline.Cycle:
        for _ in range(cycles):
            cycle = self.cycle()
            if done(cycle):
                return cycle
        pytest.fail(f"not settled after {cycles} cycles")

    def vm(self, cluster: str, vmid: int) -> dict[str, Any]:
        """The VM's config read back through proxmoxer (as an admin would, with the cluster's token)."""
        sandbox = self.sandboxes[cluster]
        user, name = str(sandbox.token_id).split("!")
        api = ProxmoxAPI(sandbox.url.removeprefix("https://"), verify_ssl=sandbox.ca_file, timeout=5, user=user,
                         token_name=name, token_value=str(sandbox.token_secret))
        where = next(r["node"] for r in api.cluster.resources.get(type="vm") if r["vmid"] == vmid)
        return dict(api.nodes(where).qemu(vmid).config.get())

    def jobs_with(self, text: str) -> list[dict[str, Any]]:
        return [j for j in self.env.jobs() if text in json.dumps(j)]

    def events(self, node: str) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.env.sandbox.list("v1", "Event", NAMESPACE)
                if e["involvedObject"]["name"] == node]


@pytest.fixture
def fleet(tmp_path: Path, pve_sandbox_factory: SandboxFactory, pve_secret_guard: SecretGuard) -> Iterator[Fleet]:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, repo)
    original = validate_repo(repo).desired
    sandboxes = {name: pve_sandbox_factory(t) for name, t in topologies_from_config(original).items()}
    for sandbox in sandboxes.values():  # the least privilege that manages NICs
        sandbox.topology.default_user.privileges["/"] = NIC_ADMIN
    point_repo_at(repo, {name: sb.url for name, sb in sandboxes.items()})
    git_repo(None, repo)
    with start_env(repo, jobs="auto") as env:
        put_cluster_secrets(env.kube().api, NAMESPACE, validate_repo(repo).desired, sandboxes, auth=AUTH)
        fleet = Fleet(env, sandboxes)
        fleet.settle(lambda c: all(s.state == "applied" for s in c.rollout.nodes.values()))
        yield fleet


def _manage(spec: dict[str, Any]) -> None:
    spec["proxmox"]["manageNics"] = True


def test_adding_tenant1_on_net3_attaches_it_configures_it_then_links_it_up(fleet: Fleet) -> None:
    before = fleet.vm("pve-prod", 202)
    assert "net3" not in before
    fleet.edit("worker-02", lambda s: (_manage(s), s["interfaces"].append(TENANT1)))
    commit(fleet.env.repo, "worker-02: tenant1 on net3")

    plan = cli("plan", *kube_args(fleet.env))
    assert plan.returncode == 1, plan.stdout + plan.stderr  # changes, not an error
    assert ("VM NIC change, nodes/worker-02.yaml: VM 202 net3: attach "
            "virtio=BC:24:11:31:00:0C,bridge=vmbr31,link_down=1,tag=31 (spec.proxmox.manageNics)") in plan.stdout
    assert "net3" not in fleet.vm("pve-prod", 202)  # plan never writes

    seen: list[tuple[str | None, bool]] = []  # per cycle: the VM's net3, whether a Job for tenant1 exists
    for _ in range(12):
        fleet.cycle()
        seen.append((fleet.vm("pve-prod", 202).get("net3"), bool(fleet.jobs_with("bc:24:11:31:00:0c"))))
        if fleet.env.cr("worker-02")["status"]["phase"] == "Ready" and seen[-1][1]:  # type: ignore[index]
            break
    attached = "virtio=BC:24:11:31:00:0C,bridge=vmbr31,link_down=1,tag=31"
    linked = "virtio=BC:24:11:31:00:0C,bridge=vmbr31,tag=31"
    assert seen[0] == (attached, False)  # attached link-down with the file's MAC and bridge, no Job yet
    first_job = next(i for i, (_, job) in enumerate(seen) if job)
    assert all(net == linked for net, _ in seen[first_job:])  # the Job runs once the NIC is there and up
    status = fleet.env.cr("worker-02")["status"]  # type: ignore[index]
    assert status["phase"] == "Ready"
    assert status["proxmoxCheck"]["vmWrite"] == "updated the VM's NICs: net3: bring the link up"
    assert next(c for c in status["conditions"] if c["type"] == "VMNicsMatch")["status"] == "True"
    updates = [m for r, m in fleet.events("worker-02") if r == "VMNicsUpdated"]
    assert sorted(updates) == sorted([f"updated the VM's NICs: net3: attach {attached}",
                                      "updated the VM's NICs: net3: bring the link up"])

    after = fleet.vm("pve-prod", 202)
    assert {k: v for k, v in after.items() if k.startswith("net") and k != "net3"} == {
        k: v for k, v in before.items() if k.startswith("net")}  # no other slot touched

    # Removed from the file without `absent`: net3 stays on the VM as it is.
    fleet.edit("worker-02", lambda s: s.update(interfaces=[i for i in s["interfaces"] if i["name"] != "tenant1"]))
    commit(fleet.env.repo, "worker-02: tenant1 gone from the file")
    fleet.settle(lambda c: c.rollout.nodes["worker-02"].state == "applied"
                 and fleet.env.cr("worker-02")["status"]["observedGeneration"]  # type: ignore[index]
                 == fleet.env.cr("worker-02")["metadata"]["generation"])  # type: ignore[index]
    assert fleet.vm("pve-prod", 202)["net3"] == linked


def test_a_bridge_change_updates_only_that_slot_and_keeps_the_mac(fleet: Fleet) -> None:
    before = fleet.vm("pve-lab", 302)  # pve-lab: ticket auth, the write carries the CSRF token
    assert before["net2"].startswith("virtio=") and ",bridge=vmbr2" in before["net2"]
    fleet.edit("gpu-02", lambda s: (_manage(s), s["interfaces"][1].update(proxmox={"bridge": "vmbr22"})))
    commit(fleet.env.repo, "gpu-02: tenant network on vmbr22")
    fleet.settle(lambda c: c.rollout.nodes["gpu-02"].state == "applied"
                 and fleet.env.cr("gpu-02")["status"]["observedGeneration"]  # type: ignore[index]
                 == fleet.env.cr("gpu-02")["metadata"]["generation"])  # type: ignore[index]
    after = fleet.vm("pve-lab", 302)
    assert after["net2"] == before["net2"].replace("bridge=vmbr2", "bridge=vmbr22")  # MAC and options kept
    assert {k: v for k, v in after.items() if k.startswith("net") and k != "net2"} == {
        k: v for k, v in before.items() if k.startswith("net") and k != "net2"}
    writes = [r for r in fleet.sandboxes["pve-lab"].request_log.records if r.method == "PUT"]
    assert [(w.path, w.status, w.auth) for w in writes] == [("/nodes/pve2/qemu/302/config", 200, "ticket")]


def test_without_the_flag_or_with_bad_input_the_vm_is_never_changed(fleet: Fleet) -> None:
    baseline = {vmid: fleet.vm("pve-prod", vmid) for vmid in (203, 204, 205)}
    # no manageNics: a difference is only reported (and holds the node)
    fleet.edit("worker-03", lambda s: s["interfaces"][0].update(proxmox={"bridge": "vmbr9"}))
    # manageNics, but the file's MAC for net1 is not the VM's: a NIC's MAC is never changed
    fleet.edit("worker-04", lambda s: (_manage(s), s["interfaces"][0].update(macAddress="BC:24:11:20:00:99")))
    # manageNics, a new slot without a bridge to attach it to
    fleet.edit("worker-05", lambda s: (_manage(s), s["interfaces"].append(
        {"name": "tenant9", "macAddress": "BC:24:11:39:00:0E", "proxmoxNet": "net9"})))
    commit(fleet.env.repo, "three changes the reconciler must not make on a VM")
    cycle = fleet.settle(lambda c: all(c.rollout.nodes[n].state == "held"
                                       for n in ("worker-03", "worker-04", "worker-05")))
    assert "a NIC's MAC is never changed" in " ".join(cycle.nic_checks["worker-04"].mismatches)
    assert "gives no proxmox.bridge" in " ".join(cycle.nic_checks["worker-05"].mismatches)
    assert {vmid: fleet.vm("pve-prod", vmid) for vmid in baseline} == baseline
    assert [r for r in fleet.sandboxes["pve-prod"].request_log.records if r.method != "GET"] == []


def test_a_token_without_vm_config_network_is_refused_at_verification_naming_it(fleet: Fleet) -> None:
    fleet.sandboxes["pve-prod"].topology.default_user.privileges["/"] = ROLES["PVEAuditor"]
    fleet.edit("worker-02", lambda s: (_manage(s), s["interfaces"].append(TENANT1)))
    commit(fleet.env.repo, "manage worker-02's NICs")
    fleet.cycle()  # verified before the node asked for NIC management: PVE refuses the write, nothing changes
    writes = [r for r in fleet.sandboxes["pve-prod"].request_log.records if r.method != "GET"]
    assert [(w.method, w.status) for w in writes] == [("PUT", 403)]
    assert "net3" not in fleet.vm("pve-prod", 202)
    failed = [m for r, m in fleet.events("worker-02") if r == "VMNicsUpdateFailed"]
    assert len(failed) == 1 and "Permission check failed (/vms/202, VM.Config.Network)" in failed[0]

    fleet.env.sandbox.clock.advance(600)  # at its next verification the cluster names what is missing
    cycle = fleet.cycle()
    prod = next(o for o in cycle.clusters if o.name == "pve-prod")
    assert (prod.ready, prod.reason) == (False, "PermissionDenied")
    needed = "lacks VM.Config.Network on /vms/202 (to manage the NICs of VM 202 of node worker-02)"
    assert needed in (prod.message or "")
    assert fleet.jobs_with("31:00:0c") == []  # worker-02's new spec never got a Job


def test_in_the_loop_writes_run_off_the_reconcile_path_and_a_refused_one_is_not_retried_every_cycle(
        fleet: Fleet) -> None:
    from reconciler.apply.proxmox.vmreads import VmReads

    env = fleet.env

    def loop_cycle(reads: VmReads) -> pipeline.Cycle:
        cycle = pipeline.apply_once(env.checkout(), env.connect, job_settings=env.job_settings,
                                    now=env.sandbox.clock.now(), vm_reads=reads)
        assert reads.wait(20)
        return cycle

    prod = fleet.sandboxes["pve-prod"]
    prod.topology.default_user.privileges["/"] = ROLES["PVEAuditor"]  # no VM.Config.Network (yet)
    fleet.edit("worker-02", lambda s: (_manage(s), s["interfaces"].append(TENANT1)))
    commit(env.repo, "worker-02: tenant1 on net3")
    with VmReads() as reads:
        for _ in range(4):
            loop_cycle(reads)
        puts = [r for r in prod.request_log.records if r.method == "PUT"]
        assert [(p.status, p.path) for p in puts] == [(403, "/nodes/pve2/qemu/202/config")]  # once, not per cycle

    prod.topology.default_user.privileges["/"] = NIC_ADMIN
    with VmReads() as reads:
        states = []
        for _ in range(5):
            cycle = loop_cycle(reads)
            assert cycle.rollout is not None
            states.append((cycle.rollout.nodes["worker-02"].state, fleet.vm("pve-prod", 202).get("net3")))
    attached = "virtio=BC:24:11:31:00:0C,bridge=vmbr31,link_down=1,tag=31"
    linked = "virtio=BC:24:11:31:00:0C,bridge=vmbr31,tag=31"
    assert states[:3] == [("waiting", None), ("waiting", attached), ("waiting", linked)], states
    assert states[3][0] in ("running", "applied") and states[3][1] == linked


def test_a_cluster_file_can_turn_it_on_for_its_nodes_and_a_node_file_can_opt_out(fleet: Fleet) -> None:
    path = fleet.env.repo / "clusters" / "pve-prod.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["manageNics"] = True
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    before_03 = fleet.vm("pve-prod", 203)
    fleet.edit("worker-02", lambda s: s["interfaces"].append(TENANT1))  # no flag: the cluster's applies
    fleet.edit("worker-03", lambda s: (s["proxmox"].update(manageNics=False),
                                       s["interfaces"][0].update(proxmox={"bridge": "vmbr9"})))
    commit(fleet.env.repo, "pve-prod manages NICs, worker-03 opts out")
    fleet.settle(lambda c: c.rollout.nodes["worker-02"].state == "applied"
                 and c.rollout.nodes["worker-03"].state == "held"
                 and "bc:24:11:31:00:0c" in json.dumps(fleet.env.cr("worker-02")["spec"]))  # type: ignore[index]
    assert fleet.vm("pve-prod", 202)["net3"] == "virtio=BC:24:11:31:00:0C,bridge=vmbr31,tag=31"
    assert fleet.vm("pve-prod", 203) == before_03  # opted out: only reported


def test_a_slot_is_removed_from_the_vm_only_when_the_file_marks_it_absent(fleet: Fleet) -> None:
    before = fleet.vm("pve-prod", 202)
    assert "net2" in before
    # marked absent while an interface still names it: refused, nothing written
    fleet.edit("worker-02", lambda s: (_manage(s), s["proxmox"].update(absent=["net2"])))
    commit(fleet.env.repo, "contradiction")
    fleet.settle(lambda c: c.rollout.nodes["worker-02"].state == "held")
    assert fleet.vm("pve-prod", 202) == before

    fleet.edit("worker-02", lambda s: s.update(interfaces=[i for i in s["interfaces"] if i["proxmoxNet"] != "net2"]))
    commit(fleet.env.repo, "worker-02: tenant0 and its VM NIC removed")
    fleet.settle(lambda c: c.rollout.nodes["worker-02"].state == "applied"
                 and fleet.env.cr("worker-02")["status"]["observedGeneration"]  # type: ignore[index]
                 == fleet.env.cr("worker-02")["metadata"]["generation"])  # type: ignore[index]
    after = fleet.vm("pve-prod", 202)
    assert "net2" not in after
    assert {k: v for k, v in after.items() if k.startswith("net")} == {
        k: v for k, v in before.items() if k.startswith("net") and k != "net2"}
    assert any(r == "VMNicsUpdated" and "net2: remove" in m for r, m in fleet.events("worker-02"))


def test_in_the_loop_a_change_whose_node_job_fails_is_undone_on_the_vm_and_not_made_again(fleet: Fleet) -> None:
    from multinic_sandbox.kube.node_model import fail

    from reconciler.apply.proxmox.vmreads import VmReads

    env = fleet.env
    before = fleet.vm("pve-lab", 302)
    env.sandbox.node_model.script("gpu-02", fail("tenant0: no carrier after the bridge change"))
    fleet.edit("gpu-02", lambda s: (_manage(s), s["interfaces"][1].update(proxmox={"bridge": "vmbr22"})))
    commit(env.repo, "gpu-02: tenant network on vmbr22")
    with VmReads() as reads:
        nets = []
        for _ in range(12):
            cycle = pipeline.apply_once(env.checkout(), env.connect, job_settings=env.job_settings,
                                        now=env.sandbox.clock.now(), vm_reads=reads)
            assert reads.wait(20)
            env.sandbox.clock.advance(10)
            env.sandbox.jobs.step()
            nets.append(fleet.vm("pve-lab", 302)["net2"])
            failed = cycle.rollout is not None and cycle.rollout.nodes["gpu-02"].state == "failed"
            if failed and nets[-1] == before["net2"]:
                break
        assert before["net2"].replace("bridge=vmbr2", "bridge=vmbr22") in nets  # the change was made
        assert nets[-1] == before["net2"]  # and undone once the Job failed with it
        for _ in range(3):  # not made again while the file says the same
            pipeline.apply_once(env.checkout(), env.connect, job_settings=env.job_settings,
                                now=env.sandbox.clock.now(), vm_reads=reads)
            assert reads.wait(20)
        assert fleet.vm("pve-lab", 302) == before
    puts = [r for r in fleet.sandboxes["pve-lab"].request_log.records if r.method == "PUT"]
    assert len(puts) == 2  # the change, the restore
    restored = [m for r, m in fleet.events("gpu-02") if r == "VMNicsRestored"]
    assert len(restored) == 1 and "undone (the Job of node gpu-02 failed)" in restored[0]
