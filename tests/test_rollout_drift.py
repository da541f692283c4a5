"""Host drift against the kube sandbox with the real agent on a real network stack: the node's Job
pods run (through podrun, as the kubelet would) inside a network namespace holding a veth NIC with
the node's MAC, with ``--activate iproute2``. A hand ``ip addr flush`` is found by the next verify
Job (within one ``drift.interval``), shown as Drifted in the CR, its Events, ``status/`` and the
metric labels, and repaired by a new apply Job under ``drift.policy: repair``; ``report`` changes
nothing on the node.

The drift interval is 1m (the schema's minimum); the reconcile cycles run on the sandbox's clock
(the pipeline takes ``now``), advanced 10 s a cycle, so an interval costs seconds of wall time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from multinic_sandbox.harness.fleet import AgentHosts
from support.netns import require_root_and_ip, veth_pair
from support.reconcile import NAMESPACE, NODE_KIND, ReconcileEnv, git_repo, start_env, write_doc
from test_agent_support import IP

from reconciler import pipeline
from reconciler.kube import jobs
from reconciler.report import gitstatus

pytestmark = pytest.mark.root

NODE = "worker-drift"
MAC = "52:54:00:77:10:01"
ADDRESS = "10.77.10.2/24"
STEP = 10.0  # sandbox seconds per cycle
INTERVAL = 60.0  # drift.interval 1m


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


class Host:
    """A network namespace ``node`` with one veth end (the node's NIC, by MAC) whose peer sits in
    namespace ``peer`` (10.77.10.1/24), so the NIC has a carrier."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.peer, self.dev = f"mnic-dnode-{tag}", f"mnic-dpeer-{tag}", f"vd{tag}"

    def ip(self, *args: str) -> str:
        return sh(str(IP), "-n", self.node, *args)

    def addresses(self) -> set[str]:
        link = next(link for link in json.loads(self.ip("-j", "addr", "show")) if link.get("address") == MAC)
        return {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") == "global"}


@pytest.fixture
def host() -> Iterator[Host]:
    ip = require_root_and_ip(IP)
    ns = Host()
    with veth_pair(ip, ns.node, ns.peer, ns.dev, MAC, ["10.77.10.1/24"]):
        ns.ip("link", "set", "dev", ns.dev, "up")
        yield ns


def make_env(tmp_path: Path, host: Host, policy: str) -> Iterator[ReconcileEnv]:
    repo = tmp_path / "repo"
    write_doc(repo / "reconciler.yaml", {
        "apiVersion": "multinic.io/v1alpha1", "kind": "ReconcilerSettings", "metadata": {"name": "reconciler"},
        "spec": {"namespace": NAMESPACE, "rollout": {"maxParallel": 2, "maxFailures": 1},
                 "drift": {"interval": "1m", "policy": policy}}})
    write_doc(repo / "nodes" / f"{NODE}.yaml", {
        "apiVersion": "multinic.io/v1alpha1", "kind": NODE_KIND, "metadata": {"name": NODE},
        "spec": {"osFamily": "ubuntu",
                 "interfaces": [{"name": "multinic0", "macAddress": MAC, "addresses": [ADDRESS], "mtu": 1500}]}})
    with start_env(git_repo(None, repo), jobs="manual",
                   job_settings=jobs.JobSettings(activate="iproute2")) as env:
        hosts = Path(tempfile.mkdtemp(prefix="mnd-"))  # short: the fake D-Bus socket path must fit AF_UNIX
        try:
            agents = AgentHosts(hosts)
            agents.netns[NODE] = host.node
            env.sandbox.node_model.set_default(agents)
            yield env
        finally:
            shutil.rmtree(hosts, ignore_errors=True)


@pytest.fixture(params=["report", "repair"])
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(tmp_path: Path, host: Host, policy: str) -> Iterator[ReconcileEnv]:
    yield from make_env(tmp_path, host, policy)


def cycle(env: ReconcileEnv) -> pipeline.Cycle:
    done = env.apply()
    env.sandbox.clock.advance(STEP)
    env.sandbox.jobs.step()
    return done


def until(env: ReconcileEnv, what: str, done: Any, *, cycles: int) -> pipeline.Cycle:
    for _ in range(cycles):
        last = cycle(env)
        if done(env.cr(NODE) or {}):
            return last
    pytest.fail(f"{what}: not after {cycles} cycles; status {json.dumps((env.cr(NODE) or {}).get('status'))}")


def condition(cr: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (cr.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def node_jobs(env: ReconcileEnv, job_type: str) -> list[dict[str, Any]]:
    return sorted((j for j in env.jobs() if j["metadata"]["labels"][jobs.LABEL_TYPE] == job_type),
                  key=lambda j: j["metadata"]["creationTimestamp"])


def events(env: ReconcileEnv, reason: str) -> list[dict[str, Any]]:
    return [e for e in env.sandbox.list("v1", "Event", NAMESPACE)
            if e["reason"] == reason and e["involvedObject"]["name"] == NODE]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_hand_addr_flush_is_reported_as_drift_within_one_interval_and_repaired_when_the_policy_says_so(
        env: ReconcileEnv, host: Host, policy: str) -> None:
    until(env, "applied", lambda cr: (cr.get("status") or {}).get("phase") == "Ready", cycles=6)
    assert host.addresses() == {ADDRESS}
    [apply_job] = node_jobs(env, "apply")

    # The first check finds the node in sync and says when it checked.
    until(env, "first drift check", lambda cr: (cr.get("status") or {}).get("drift", {}).get("lastVerified"),
          cycles=int(INTERVAL / STEP) + 4)
    cr = env.cr(NODE)
    assert cr is not None
    assert cr["status"]["phase"] == "Ready"
    assert condition(cr, "Drifted")["status"] == "False" and condition(cr, "Drifted")["reason"] == "InSync"
    [verify_job] = node_jobs(env, "verify")
    assert cr["status"]["drift"]["job"] == verify_job["metadata"]["name"]
    # The apply Job's spec and mounts, with the agent's verify instead of apply.
    pod, verify_pod = apply_job["spec"]["template"]["spec"], verify_job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[:2] == ["agent", "apply"] and "iproute2" in args
    assert verify_pod["containers"][0]["args"] == ["agent", "verify", *args[2:]]
    assert verify_pod["volumes"] == pod["volumes"]
    assert verify_pod["containers"][0]["volumeMounts"] == pod["containers"][0]["volumeMounts"]
    assert verify_pod["nodeSelector"] == pod["nodeSelector"]
    assert not events(env, "DriftDetected")

    host.ip("addr", "flush", "dev", "multinic0")  # by hand, on the node
    flushed_at = env.sandbox.clock.time()
    detected = until(env, "drift reported", lambda cr: condition(cr, "Drifted").get("status") == "True",
                     cycles=int(INTERVAL / STEP) + 4)
    cr = env.cr(NODE)
    assert cr is not None
    checks = node_jobs(env, "verify")
    assert len(checks) == 2
    # The check that found it started within one interval of the flush (plus one cycle's step).
    assert stamp(checks[1]["metadata"]["creationTimestamp"]) - flushed_at <= INTERVAL + STEP
    assert cr["status"]["drift"]["job"] == checks[1]["metadata"]["name"]
    drifted = condition(cr, "Drifted")
    assert drifted["reason"] == "DriftDetected" and ADDRESS in drifted["message"], drifted
    [event] = events(env, "DriftDetected")
    assert event["type"] == "Warning" and ADDRESS in event["message"]
    assert event["involvedObject"]["uid"] == cr["metadata"]["uid"]
    nic = cr["status"]["interfaces"][0]
    assert nic["state"] == "drifted" and ADDRESS in nic["error"]

    if policy == "report":
        # Shown as Drifted on every surface; nothing changed on the node, no apply Job.
        assert cr["status"]["phase"] == "Drifted"
        assert condition(cr, "Ready")["status"] == "False" and condition(cr, "Ready")["reason"] == "DriftDetected"
        assert detected.reported is not None
        assert detected.reported.phase_counts() == {(NODE_KIND, "Drifted"): 1}
        report = gitstatus.NodeReport.from_resource(NODE, cr["spec"], cr["status"])
        text = "\n".join(gitstatus.render([report], [], revision=None).values())
        assert "#### Drifted (1)" in text and ADDRESS in text
        for _ in range(4):
            cycle(env)
        assert host.addresses() == set()
        assert node_jobs(env, "apply") == [apply_job]
        assert (env.cr(NODE) or {})["status"]["phase"] == "Drifted"
        return

    # repair: a new apply Job (a new identity), the address is back, Ready again, DriftRepaired.
    until(env, "repaired", lambda cr: (cr.get("status") or {}).get("phase") == "Ready", cycles=6)
    applies = node_jobs(env, "apply")
    assert len(applies) == 2 and applies[0]["metadata"]["name"] != applies[1]["metadata"]["name"]
    assert host.addresses() == {ADDRESS}
    cr = env.cr(NODE)
    assert cr is not None
    assert cr["status"]["job"] == applies[1]["metadata"]["name"]
    assert cr["status"]["drift"]["repair"] == checks[1]["metadata"]["name"]
    assert condition(cr, "Drifted")["status"] == "False" and condition(cr, "Drifted")["reason"] == "Repaired"
    [repaired] = events(env, "DriftRepaired")
    assert applies[1]["metadata"]["name"] in repaired["message"]
    # Repaired once: later cycles start no further apply Job.
    for _ in range(3):
        cycle(env)
    assert len(node_jobs(env, "apply")) == 2


# -- a fleet on fake roots: slots, one Job per host, spread, file drift ------------------------------

def test_verify_jobs_share_the_rollout_slots_never_overlap_a_hosts_job_and_report_a_changed_file(
        tmp_path: Path) -> None:
    from support.reconcile import generate_repo, node_name

    count, parallel = 8, 3
    repo = generate_repo(tmp_path / "repo", count, max_parallel=parallel, max_failures=2)
    settings = yaml.safe_load((repo / "reconciler.yaml").read_text())
    settings["spec"]["drift"] = {"interval": "1m"}
    (repo / "reconciler.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    hosts = Path(tempfile.mkdtemp(prefix="mnd-"))
    try:
        with start_env(git_repo(None, repo), jobs="manual") as env:
            env.sandbox.node_model.set_default(AgentHosts(hosts))
            seen: dict[str, set[str]] = {}  # host -> verify Jobs
            started = env.sandbox.clock.time()
            for _ in range(3 + int(2 * INTERVAL / STEP)):
                cycle(env)
                active = env.active_jobs()
                assert len(active) <= parallel, [j["metadata"]["name"] for j in active]
                per_host = [j["metadata"]["annotations"][jobs.ANNOTATION_NODE] for j in active]
                assert len(per_host) == len(set(per_host)), per_host  # one Job per host at a time
                for job in node_jobs(env, "verify"):
                    seen.setdefault(job["metadata"]["annotations"][jobs.ANNOTATION_NODE], set()).add(
                        job["metadata"]["name"])
            # Every node was checked, and once per interval at most (the sandbox clock runs on wall
            # time too, so the intervals that passed are measured on it).
            periods = int((env.sandbox.clock.time() - started) // INTERVAL) + 1
            assert set(seen) == {node_name(i) for i in range(count)}
            assert all(1 <= len(names) <= periods for names in seen.values()), (periods, seen)
            for name in seen:
                cr = env.cr(name)
                assert cr is not None and cr["status"]["phase"] == "Ready"
                assert cr["status"]["drift"]["lastVerified"]
                assert condition(cr, "Drifted")["reason"] == "InSync"

            # A file changed by hand on one host (fake roots have no live stack: files only).
            target = node_name(2)
            netplan = hosts / target / "etc" / "netplan" / "90-multinic.yaml"
            netplan.write_text(netplan.read_text().replace("mtu: 1500", "mtu: 1400"))
            until_node = target

            def drifted(_: dict[str, Any]) -> bool:
                return condition(env.cr(until_node) or {}, "Drifted").get("status") == "True"

            until(env, "file drift reported", drifted, cycles=int(INTERVAL / STEP) + 4)
            cr = env.cr(target)
            assert cr is not None
            assert cr["status"]["phase"] == "Drifted"
            assert cr["status"]["drift"]["files"] == ["/etc/netplan/90-multinic.yaml"]
            assert "files differ: /etc/netplan/90-multinic.yaml" in condition(cr, "Drifted")["message"]
            assert "mtu: 1400" in netplan.read_text()  # report: nothing changed on the node
    finally:
        shutil.rmtree(hosts, ignore_errors=True)


def test_ten_thousand_nodes_applied_at_once_are_not_all_due_a_drift_check_at_once() -> None:
    from reconciler.apply import rollout
    from reconciler.config.models import DriftSettings

    drift = DriftSettings(interval="1h")
    applied = datetime(2026, 1, 1, tzinfo=UTC)
    ready = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    fleet = [rollout.LiveNode(f"n{i}", {}, 1, ready, uid=str(uuid.UUID(int=i))) for i in range(10_000)]
    newly: list[int] = []
    due: set[str] = set()
    for minutes in range(5, 61, 5):
        now = applied + timedelta(minutes=minutes)
        now_due = {n.name for n in fleet if rollout._due(drift, n, now) is not None}
        newly.append(len(now_due - due))
        due |= now_due
    assert len(due) == 10_000  # every node is checked within one interval
    # Spread over the hour: about 10,000 / 12 every 5 minutes, never a burst of the whole fleet.
    assert max(newly) < 1.3 * 10_000 / 12, newly
