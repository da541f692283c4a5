"""The real `reconciler run` process against the kube sandbox in another process, N nodes.

    .venv/bin/python bench/loop.py                  # 5,000 node files
    .venv/bin/python bench/loop.py --nodes 10000

Three processes: this script (the Git user and the stopwatch), the kube sandbox (its own process,
Jobs simulated by its Job controller, every request in its request log) and `reconciler run`
(the product as deployed: `--repo file://...` on a bare Git remote, webhook on, default writers).

Steps:
1. single writer: `reconciler apply --once --writers 1` into a scratch namespace, timed from the
   first to the last CR the sandbox stored (the same-run baseline);
2. `reconciler run` starts; initial-apply-seconds is the same span for its first cycle (8 writers);
3. Jobs simulated: once the first cycle wrote every node's status, each node is marked Ready at
   its spec hash, as its finished Job would leave it (5,000 Job round trips would measure the
   sandbox); the Jobs the loop already started finish through the sandbox's Job controller;
4. quiet cycles: requests per interval cycle from the sandbox's request log (Lease renewals
   excluded), wall seconds per cycle from the loop's own histogram, CPU seconds per cycle from
   /proc (the whole process: watches and Lease renewals included);
5. drift: one CR's spec edited in the sandbox; seconds until the loop reverted it;
6. commit-to-CR: an MTU change pushed, the webhook posted; seconds until the CR carries it; then
   the node's Job runs (simulated) and status-commit-seconds is the time from the CR's status
   turning Ready to the remote holding a status commit that says so;
7. rss-mb: the run process's resident set at the end (rss-peak-mb: its high-water mark).

Each figure is printed as ``name: value`` on its own line. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.loop.webhook import sign_github  # noqa: E402

NAMESPACE = "multinic-system"
SINGLE = "bench-single"
POOLED = "bench-pooled"
API_VERSION = "multinic.io/v1alpha1"
KIND = "MultiNicNodeConfig"
SECRET = "bench-webhook-secret"
# A real API server's write waits for etcd's commit (raft round trip to a quorum + WAL fsync on
# each): a few ms on SSDs in one data centre (bench/README.md).
WRITE_LATENCY_MS = 5.0


# -- the sandbox process -------------------------------------------------------------------------------

class _Watcher:
    """Store listener in the sandbox process: when CRs appeared, when a spec / status was first seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.added: dict[str, list[float]] = {}  # namespace -> [first, last, count]
        self.seen: dict[tuple[str, ...], float] = {}
        self.changes: list[tuple[float, str, str, str]] = []  # (when, namespace, name, new MTU)
        self.ready_at: dict[tuple[str, str, str], tuple[float, str]] = {}  # (ns, name, MTU) -> (when, revision)

    def __call__(self, event: Any) -> None:
        if not event.bucket.startswith("multinicnodeconfigs."):
            return
        now = time.monotonic()
        obj = event.stored.obj
        name, namespace = obj["metadata"]["name"], event.namespace
        with self.lock:
            if event.type == "ADDED":
                span = self.added.setdefault(namespace, [now, now, 0])
                span[1], span[2] = now, span[2] + 1
            if event.type == "DELETED":
                return
            mtu = _mtu(obj)
            if event.previous is not None and _mtu(event.previous.obj) != mtu:
                self.changes.append((now, namespace, name, mtu))
            status = obj.get("status") or {}
            if status.get("phase") == "Ready":
                self.seen.setdefault(("ready", namespace, name, str(status.get("appliedRevision"))), now)
                if status.get("specHash") == _spec_hash(obj.get("spec") or {}):  # Ready for this very spec
                    self.ready_at.setdefault((namespace, name, mtu), (now, str(status.get("appliedRevision"))))


def _spec_hash(spec: dict[str, Any]) -> str:
    from reconciler.kube.objects import spec_hash

    return spec_hash(spec)


def _mtu(obj: dict[str, Any]) -> str:
    return str((((obj.get("spec") or {}).get("interfaces") or [{}])[0]).get("mtu"))


def _node(index: int) -> dict[str, Any]:
    name = f"node-{index:02d}"
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "status": {"nodeInfo": {"osImage": "Ubuntu 24.04.1 LTS", "kernelVersion": "6.8.0-45-generic",
                                    "operatingSystem": "linux", "architecture": "amd64"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def _sandbox_main(conn: Any, nodes: int, latency_ms: float) -> None:
    from multinic_sandbox.harness.fleet import prepare
    from multinic_sandbox.kube.server import KubeSandbox

    sandbox = KubeSandbox(jobs="auto").start()
    prepare(sandbox, None, namespace=NAMESPACE)
    for latency in {0.0, latency_ms}:
        for base in (SINGLE, POOLED):
            sandbox.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{base}-{latency:g}ms"}})
    sandbox.seed(*(_node(i) for i in range(nodes)))
    watcher = _Watcher()
    sandbox.cluster.store.listeners.append(watcher)
    conn.send(str(sandbox.kubeconfig_path))
    try:
        while True:
            command, *args = conn.recv()
            if command == "stop":
                break
            conn.send(_command(sandbox, watcher, command, *args))
    finally:
        sandbox.stop()


def _command(sandbox: Any, watcher: _Watcher, command: str, *args: Any) -> Any:
    if command == "added":
        with watcher.lock:
            return list(watcher.added.get(args[0], [0.0, 0.0, 0]))
    if command == "seen":
        with watcher.lock:
            return watcher.seen.get(tuple(args))
    if command == "changed_to":  # the first time after ``after`` that the CR's MTU became ``mtu``
        namespace, name, mtu, after = args
        with watcher.lock:
            return next((t for t, ns, n, m in watcher.changes if t > after and (ns, n, m) == (namespace, name, mtu)),
                        None)
    if command == "ready_at":  # when the node was first Ready for a spec with this MTU, and at which revision
        with watcher.lock:
            return watcher.ready_at.get(tuple(args))
    if command == "write_latency":
        sandbox.write_latency = args[0]
        return None
    if command == "mark":
        return len(sandbox.request_log.records)
    if command == "requests_since":
        records = sandbox.request_log.records[args[0]:]
        return Counter(f"{r.verb} {r.resource}" for r in records if r.resource != "leases")
    if command == "phases":
        return Counter(str((o.get("status") or {}).get("phase")) for o in sandbox.list(API_VERSION, KIND, args[0]))
    if command == "simulate_jobs":
        return _mark_ready(sandbox, args[0])
    if command == "edit_mtu":
        namespace, name, mtu = args
        obj = sandbox.get(API_VERSION, KIND, name, namespace=namespace)
        spec = obj["spec"]
        spec["interfaces"][0]["mtu"] = mtu
        started = time.monotonic()
        sandbox.apply({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
                       "spec": spec}, manager="kubectl-edit")
        return started
    raise ValueError(command)


def _mark_ready(sandbox: Any, namespace: str) -> int:
    """Every node not Ready gets the status its successful Job would leave (the reconciler's own
    status model, at the CR's current spec hash and revision)."""
    from reconciler.apply.rollout import LiveNode, NodeState, identity
    from reconciler.kube import jobs, objects
    from reconciler.report import status

    marked = 0
    for obj in sandbox.list(API_VERSION, KIND, namespace):
        if (obj.get("status") or {}).get("phase") == "Ready":
            continue
        name = obj["metadata"]["name"]
        revision = obj["metadata"]["annotations"].get(objects.SOURCE_REVISION)
        digest = objects.spec_hash(obj["spec"])
        # The name of the Job the rollout would have run for this spec: a Ready status counts only
        # for the Job it records.
        meta = obj["metadata"]
        cr = LiveNode(name, obj["spec"], meta.get("generation"), obj.get("status") or {}, meta.get("uid"),
                      dict(meta.get("annotations") or {}), dict(meta.get("labels") or {}))
        host = obj["spec"].get("nodeName") or name
        job = jobs.job_name("apply", host, identity(cr, digest))
        state = NodeState(name, "applied", digest, job, revision, host=host, rollout=revision,
                          message=f"applied at revision {(revision or '')[:12]}")
        live = status.LiveCR.from_manifest(obj)
        valid = status.Validity(True, obj["metadata"]["annotations"][objects.SOURCE_PATH])
        wanted = status.node_status(live, state=state, check=None, validity=valid).dump()
        sandbox.set_status(API_VERSION, KIND, name, wanted, namespace=namespace, manager="simulated-job")
        marked += 1
    return marked


# -- this process ----------------------------------------------------------------------------------------

class Sandbox:
    def __init__(self, nodes: int, latency_ms: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_sandbox_main, args=(child, nodes, latency_ms), daemon=True)
        self.process.start()
        self.kubeconfig = self.conn.recv()
        self.lock = threading.Lock()

    def __call__(self, *command: Any) -> Any:
        with self.lock:
            self.conn.send(command)
            return self.conn.recv()

    def stop(self) -> None:
        with self.lock:
            self.conn.send(("stop",))
        self.process.join(20)


def write_repo(path: Path, nodes: int) -> None:
    """``nodes`` Ubuntu nodes with one storage NIC (unique MAC and address in 10.9.0.0/16), no Proxmox."""
    (path / "nodes").mkdir(parents=True)
    (path / "reconciler.yaml").write_text(
        "apiVersion: multinic.io/v1alpha1\nkind: ReconcilerSettings\nmetadata:\n  name: reconciler\n"
        "spec:\n  rollout:\n    maxParallel: 20\n    maxFailures: 50\n")
    for i in range(nodes):
        host = i + 1
        (path / "nodes" / f"node-{i:02d}.yaml").write_text(
            f"apiVersion: multinic.io/v1alpha1\nkind: MultiNicNodeConfig\nmetadata:\n  name: node-{i:02d}\n"
            f"spec:\n  osFamily: ubuntu\n  interfaces:\n    - name: storage0\n"
            f"      macAddress: 02:00:00:{i >> 16:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}\n"
            f"      addresses: [10.9.{host >> 8}.{host & 0xFF}/16]\n      mtu: 9000\n")


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def wait(what: str, predicate: Any, timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s: {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metrics(port: int) -> tuple[float, float]:
    """(cycles, seconds spent in them) from the loop's histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    count = re.search(r"^multinic_reconcile_cycle_duration_seconds_count (\S+)$", text, re.M)
    total = re.search(r"^multinic_reconcile_cycle_duration_seconds_sum (\S+)$", text, re.M)
    return float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, key: str) -> float:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--interval", default="2s", help="the loop's --interval (quiet cycles are timed ones)")
    parser.add_argument("--write-latency-ms", type=float, default=WRITE_LATENCY_MS,
                        help="the sandbox's modelled storage commit per write for the loop and its baselines "
                             f"(default {WRITE_LATENCY_MS:g}; bench/README.md says why); 0 runs without it. The "
                             "baselines also run at 0 ms: the *-0ms figures")
    parser.add_argument("--quiet-cycles", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, repos)")
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="cProfile the run process's main thread over the quiet cycles (DIR/quiet.pstats) "
                             "and from the push to the CR change (DIR/commit-to-cr.pstats)")
    parser.add_argument("--tracemalloc", metavar="DIR", type=Path,
                        help="trace the run process's allocations (slow) and write DIR/end.tracemalloc "
                             "where rss-mb is read")
    parser.add_argument("--census", metavar="DIR", type=Path,
                        help="write DIR/end.census where rss-mb is read: the run process's objects by type "
                             "(count, shallow bytes); fast, unlike --tracemalloc")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="multinic-loop-bench-"))
    remote, user = work / "remote.git", work / "user"
    (work / "secret").write_text(SECRET)
    print(f"# {args.nodes} nodes, {os.cpu_count()} CPUs, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; work dir {work}", flush=True)
    git("init", "--bare", "-q", str(remote))
    write_repo(user, args.nodes)
    git("init", "-q", cwd=user)
    git("add", "-A", cwd=user)
    git("commit", "-q", "-m", f"{args.nodes} nodes", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    sandbox = Sandbox(args.nodes, args.write_latency_ms)
    run: subprocess.Popen[bytes] | None = None
    figures: dict[str, str] = {}
    failed = False
    try:
        kube = ["--kubeconfig", sandbox.kubeconfig]
        # 1. the single-writer baseline, same run, same sandbox
        # (copies of the repo whose reconciler.yaml names a scratch namespace); the same command with
        # the default 8 writers too: no watches open, so it isolates what the pool buys. Both with the
        # sandbox answering at once (0 ms) and with the modelled commit latency the loop then runs
        # against (--write-latency-ms).
        spans = {}
        latencies = (0.0, args.write_latency_ms) if args.write_latency_ms else (0.0,)
        for latency in latencies:
            sandbox("write_latency", latency / 1000)
            for base, writers in ((SINGLE, "1"), (POOLED, "8")):
                namespace = f"{base}-{latency:g}ms"
                baseline = work / namespace
                shutil.copytree(user, baseline, ignore=shutil.ignore_patterns(".git"))
                settings = baseline / "reconciler.yaml"
                settings.write_text(settings.read_text().replace("spec:\n", f"spec:\n  namespace: {namespace}\n", 1))
                once = subprocess.Popen(
                    reconciler("apply", "--once", "--repo", str(baseline), "--writers", writers, *kube),
                    stdout=subprocess.DEVNULL, stderr=(work / f"apply-{namespace}.log").open("wb"))
                wait(f"apply --once --writers {writers} started", lambda ns=namespace: sandbox("added", ns)[2] >= 1,
                     900, 0.05)
                client0, server0 = cpu_seconds(once.pid), cpu_seconds(sandbox.process.pid)
                wait(f"apply --once --writers {writers}",
                     lambda ns=namespace: sandbox("added", ns)[2] >= args.nodes, 900, 0.2)
                client1, server1 = cpu_seconds(once.pid), cpu_seconds(sandbox.process.pid)
                first, last, _ = sandbox("added", namespace)
                spans[(base, latency)] = last - first
                # Where the time goes: both ends are Python; CPU seconds per side over the span.
                print(f"# apply --once --writers {writers}, write latency {latency:g} ms: {last - first:.1f}s, "
                      f"CPU: client {client1 - client0:.1f}s, sandbox {server1 - server0:.1f}s; "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
                once.send_signal(signal.SIGTERM)
                once.wait(30)
        latency = latencies[-1]
        single_seconds = spans[(SINGLE, latency)]
        figures["write-latency-ms"] = f"{latency:g}"
        figures["apply-once-8-writers-seconds"] = f"{spans[(POOLED, latency)]:.1f}"
        figures["initial-apply-single-writer-seconds-0ms"] = f"{spans[(SINGLE, 0.0)]:.1f}"
        figures["apply-once-8-writers-seconds-0ms"] = f"{spans[(POOLED, 0.0)]:.1f}"
        figures["initial-apply-speedup-0ms"] = f"{spans[(SINGLE, 0.0)] / max(spans[(POOLED, 0.0)], 1e-9):.1f}"

        # 2. the loop
        port = free_port()
        profiled = args.profile or args.tracemalloc or args.census
        launcher = [sys.executable, str(ROOT / "bench" / "profiled.py"), str(profiled)] if profiled else reconciler()
        env = {**os.environ, "PYTHONTRACEMALLOC": "10"} if args.tracemalloc else None
        run = subprocess.Popen([
            *launcher, "run", "--repo", remote.as_uri(), "--branch", "main", *kube, "--interval", args.interval,
            "--listen", f"127.0.0.1:{port}", "--webhook-secret-file", str(work / "secret"), "--identity", "bench",
            "--lease-namespace", NAMESPACE, "--cache-dir", str(work / "cache"), "--status-author-email",
            "bench@example.net"], stdout=(work / "run.log").open("wb"), stderr=subprocess.STDOUT, env=env)

        dumps = [0]

        def profiling(name: str | None) -> None:
            """Start (None) or stop cProfile in the run process; stopping writes DIR/name.pstats."""
            if args.profile is None:
                return
            run.send_signal(signal.SIGUSR1)
            if name is not None:
                dumps[0] += 1
                dump = args.profile / f"{dumps[0]}.pstats"
                wait(f"profile {dump}", dump.exists, 60, 0.1)
                dump.rename(args.profile / f"{name}.pstats")
        wait("initial apply by the loop", lambda: sandbox("added", NAMESPACE)[2] >= args.nodes, 900, 0.2)
        first, last, _ = sandbox("added", NAMESPACE)
        figures["initial-apply-seconds"] = f"{last - first:.1f}"
        figures["initial-apply-single-writer-seconds"] = f"{single_seconds:.1f}"
        figures["initial-apply-speedup"] = f"{single_seconds / max(last - first, 1e-9):.1f}"

        # 3. Jobs simulated, then wait for a quiet loop with every node Ready in Git
        wait("first status of every node", lambda: "None" not in sandbox("phases", NAMESPACE), 900, 0.5)
        sandbox("simulate_jobs", NAMESPACE)
        wait("every node Ready", lambda: sandbox("phases", NAMESPACE).get("Ready") == args.nodes, 300, 0.5)
        wait("status commit: all Ready", lambda: f"status: {args.nodes} ready" in git(
            "--git-dir", str(remote), "log", "-1", "--format=%s", "main"), 600, 0.5)

        # 4. quiet cycles
        cycles0, _ = metrics(port)
        wait("a cycle after the status commit", lambda: metrics(port)[0] >= cycles0 + 2, 120, 0.2)
        profiling(None)
        mark, (cycles0, seconds0), cpu0 = sandbox("mark"), metrics(port), cpu_seconds(run.pid)
        wait("quiet cycles", lambda: metrics(port)[0] >= cycles0 + args.quiet_cycles, 600, 0.5)
        requests, (cycles1, seconds1), cpu1 = sandbox("requests_since", mark), metrics(port), cpu_seconds(run.pid)
        profiling("quiet")
        cycles = cycles1 - cycles0
        figures["quiet-cycle-requests"] = f"{sum(requests.values()) / cycles:g}"
        figures["quiet-cycle-seconds"] = f"{(seconds1 - seconds0) / cycles:.3f}"
        figures["quiet-cycle-cpu-seconds"] = f"{(cpu1 - cpu0) / cycles:.3f}"
        if requests:
            print(f"# requests in {cycles:g} quiet cycles: {dict(requests)}", flush=True)

        # 5. drift
        victim = "node-01"
        started = sandbox("edit_mtu", NAMESPACE, victim, 1280)
        reverted = wait("drift reverted", lambda: sandbox("changed_to", NAMESPACE, victim, "9000", started), 60)
        figures["drift-revert-seconds"] = f"{reverted - started:.2f}"

        # 6. commit -> CR via the webhook, then the Job, then the status commit
        target = "node-02"
        path = user / "nodes" / f"{target}.yaml"
        path.write_text(path.read_text().replace("mtu: 9000", "mtu: 1500"))
        git("commit", "-q", "-am", f"{target}: MTU 1500", cwd=user)
        for attempt in range(10):  # the loop's status commits may land between our pull and push
            git("pull", "-q", "--rebase", str(remote), "main", cwd=user)
            try:
                git("push", "-q", str(remote), "HEAD:main", cwd=user)
                break
            except subprocess.CalledProcessError:
                if attempt == 9:
                    raise
        revision = git("rev-parse", "HEAD", cwd=user)
        profiling(None)
        pushed = time.monotonic()
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/hooks/git", data=body, method="POST",
            headers={"X-Hub-Signature-256": sign_github(SECRET, body), "X-GitHub-Event": "push",
                     "Content-Type": "application/json"}), timeout=10).close()
        applied = wait("commit reached the CR", lambda: sandbox("changed_to", NAMESPACE, target, "1500", pushed), 60)
        figures["commit-to-cr-seconds"] = f"{applied - pushed:.2f}"
        profiling("commit-to-cr")
        # Ready for the new spec; its appliedRevision is the remote head the loop fetched, which holds
        # our commit (a status commit of the loop's may have landed on top of it first).
        ready, applied_revision = wait("node Ready for the new spec",
                                       lambda: sandbox("ready_at", NAMESPACE, target, "1500"), 300)
        git("--git-dir", str(remote), "merge-base", "--is-ancestor", revision, applied_revision)  # holds our commit

        def committed() -> float | None:
            shown = subprocess.run(["git", "--git-dir", str(remote), "show", f"main:status/nodes/{target}.yaml"],
                                   capture_output=True, text=True).stdout
            return time.monotonic() if f"appliedRevision: {applied_revision}" in shown else None
        status_at = wait("status commit of the new revision", committed, 120, 0.02)
        figures["status-commit-seconds"] = f"{status_at - ready:.2f}"

        # 7. memory
        if args.tracemalloc is not None:
            run.send_signal(signal.SIGUSR2)
            snapshot = args.tracemalloc / "1.tracemalloc"
            wait("tracemalloc snapshot", snapshot.exists, 300, 0.5)
            snapshot.rename(args.tracemalloc / "end.tracemalloc")
        elif args.census is not None:
            run.send_signal(signal.SIGUSR2)
            snapshot = args.census / "1.tracemalloc"
            wait("census", snapshot.exists, 300, 0.5)
            snapshot.rename(args.census / "end.census")
        figures["rss-mb"] = f"{memory_mb(run.pid, 'VmRSS'):.0f}"
        figures["rss-peak-mb"] = f"{memory_mb(run.pid, 'VmHWM'):.0f}"
    except Exception:  # a step that timed out: the figures so far still print, the work dir is kept
        traceback.print_exc()
        failed = True
    finally:
        if run is not None:
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()
        sandbox.stop()
    for key in ("initial-apply-seconds", "quiet-cycle-requests", "quiet-cycle-seconds", "quiet-cycle-cpu-seconds",
                "drift-revert-seconds", "commit-to-cr-seconds", "status-commit-seconds", "rss-mb",
                "write-latency-ms", "initial-apply-single-writer-seconds", "initial-apply-speedup",
                "apply-once-8-writers-seconds", "initial-apply-single-writer-seconds-0ms",
                "apply-once-8-writers-seconds-0ms", "initial-apply-speedup-0ms", "rss-peak-mb"):
        print(f"{key}: {figures.get(key, 'n/a')}")
    print(f"# load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failed:
        print(f"# FAILED; work dir kept: {work}")
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
