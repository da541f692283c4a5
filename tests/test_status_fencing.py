"""The Git status push is fenced like the Kubernetes writes.

* Two real ``reconciler run`` processes against the kube sandbox and a loopback Git remote: the
  leader is frozen with SIGSTOP inside its status write-back (its writer's fetch), the standby takes
  the Lease over and writes the status; when the old leader resumes it must not push.
* A status describes one configuration: when a config commit lands while a writer is inside its
  write-back, the status it had rendered for the older commit is not pushed; the next cycle writes
  the status of the new commit.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from multinic_sandbox.harness.fleet import AgentHosts, prepare
from multinic_sandbox.harness.fleet import write_config_repo as write_repo
from multinic_sandbox.kube.server import KubeSandbox

from reconciler.config.validation import validate_repo
from reconciler.kube.client import Kube
from reconciler.loop.metrics import Metrics
from reconciler.loop.runner import LoopSettings, Runner
from reconciler.loop.wiring import StatusReporter
from reconciler.source.git import GitSource

NAMESPACE = "multinic-system"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=User", "-c", "user.email=user@example.net",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def config_remote(tmp_path: Path, nodes: int) -> tuple[Path, Path]:
    remote, user = tmp_path / "remote.git", tmp_path / "user"
    git("init", "--bare", "-q", str(remote))
    write_repo(user, nodes)
    git("init", "-q", cwd=user)
    git("add", "-A", cwd=user)
    git("commit", "-q", "-m", "nodes", cwd=user)
    git("push", "-q", str(remote), "HEAD:main", cwd=user)
    return remote, user


def authors(remote: Path) -> list[str]:
    return git("--git-dir", str(remote), "log", "--format=%an", "main").splitlines()


def freezing_upload_pack(writer_repo: Path, script: Path, action: str) -> None:
    """Give one status writer's clone an upload-pack that runs ``action`` (a shell line) the first
    time it is used, then serves the fetch as usual: a hook into the writer's own fetch, the
    first step of its write-back. The other replica and every source fetch are untouched."""
    done = script.with_suffix(".done")
    script.write_text(f"#!/bin/sh\nif [ ! -e '{done}' ]; then\n  touch '{done}'\n  {action}\nfi\n"
                      'exec git-upload-pack "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    writer_repo.mkdir(parents=True)
    git("init", "-q", "--bare", str(writer_repo))
    git("--git-dir", str(writer_repo), "config", "remote.origin.uploadpack", str(script))


def start(sb: KubeSandbox, remote: Path, identity: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = open(tmp_path / f"{identity}.log", "wb")  # noqa: SIM115 - closed with the process
    env = {k: v for k, v in os.environ.items() if k != "MULTINIC_NO_STATUS"}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", remote.as_uri(), "--branch", "main",
         "--kubeconfig", str(sb.kubeconfig_path), "--listen", "127.0.0.1:0", "--identity", identity,
         "--interval", "1s", "--lease-duration", "6s", "--lease-namespace", NAMESPACE,
         "--cache-dir", str(tmp_path / f"cache-{identity}"), "--status-author-name", f"replica-{identity}"],
        stdout=log, stderr=subprocess.STDOUT, env=env)


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM (after SIGCONT), then SIGKILL whatever has not exited within a minute."""
    running = [p for p in procs if p is not None and p.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def holder(sb: KubeSandbox) -> str | None:
    lease = sb.get("coordination.k8s.io/v1", "Lease", "multinic-reconciler", namespace=NAMESPACE)
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def test_a_leader_frozen_inside_its_status_write_back_never_pushes_once_replaced(tmp_path: Path) -> None:
    remote, _user = config_remote(tmp_path, 4)
    pid_file = tmp_path / "alpha.pid"
    freezing_upload_pack(tmp_path / "cache-alpha" / "writeback" / "repo.git", tmp_path / "freeze-alpha.sh",
                         f"kill -STOP \"$(cat '{pid_file}')\"")
    with KubeSandbox() as sb:
        prepare(sb, validate_repo(_user).desired, namespace=NAMESPACE)
        hosts = AgentHosts(tmp_path / "hosts")
        sb.node_model.set_default(lambda pod: replace(hosts(pod), delay=1.0))
        alpha = start(sb, remote, "alpha", tmp_path)
        pid_file.write_text(str(alpha.pid))
        beta: subprocess.Popen[bytes] | None = None
        try:
            sb.wait_until(lambda: holder(sb) == "alpha", timeout=60)
            beta = start(sb, remote, "beta", tmp_path)
            # alpha's first status write-back fetches: it is frozen right there (SIGSTOP, every thread)
            sb.wait_until(lambda: (tmp_path / "freeze-alpha.done").exists(), timeout=90)
            time.sleep(0.5)
            assert Path(f"/proc/{alpha.pid}/stat").read_text().split(") ", 1)[1][0] == "T"  # stopped
            sb.wait_until(lambda: holder(sb) == "beta", timeout=30)
            sb.wait_until(lambda: "replica-beta" in authors(remote), timeout=90)
            alpha.send_signal(signal.SIGCONT)
            log = tmp_path / "alpha.log"
            sb.wait_until(lambda: "status push refused" in log.read_text(errors="replace"), timeout=30)
            time.sleep(3)  # alpha keeps running as a standby: it still pushes nothing
        finally:
            stop(alpha, beta)
        history = authors(remote)
        assert "replica-beta" in history
        assert "replica-alpha" not in history, history
        assert "not the leader" in (tmp_path / "alpha.log").read_text(errors="replace")


def test_a_status_for_an_older_config_commit_is_not_pushed_over_a_newer_one(tmp_path: Path) -> None:
    remote, user = config_remote(tmp_path, 2)
    gate = tmp_path / "gate"
    entered = tmp_path / "entered"
    cache = tmp_path / "cache"
    # The writer's first fetch waits (as a slow remote would) until the test has pushed a config commit.
    freezing_upload_pack(cache / "writeback" / "repo.git", tmp_path / "slow.sh",
                         f"touch '{entered}'; while [ ! -e '{gate}' ]; do sleep 0.1; done")
    with KubeSandbox() as sb:
        prepare(sb, validate_repo(user).desired, namespace=NAMESPACE, hosts=tmp_path / "hosts")
        source = GitSource(remote.as_uri(), branch="main", cache_dir=cache / "source")
        args = argparse.Namespace(repo=remote.as_uri(), branch="main", status_branch=None,
                                  status_author_name="multinic-reconciler", status_author_email="r@example.net",
                                  cache_dir=str(cache))
        metrics = Metrics()
        runner = Runner(source, lambda ns: Kube(sb.api_client(), ns),
                        LoopSettings(identity="solo", lease_namespace=NAMESPACE),
                        metrics=metrics, after_cycle=[StatusReporter(args, source, metrics)])
        assert runner.elector.try_acquire_or_renew()
        first = git("rev-parse", "HEAD", cwd=user)
        worker = threading.Thread(target=runner.cycle)
        worker.start()
        sb.wait_until(entered.exists, timeout=60)
        path = user / "nodes" / "node-00.yaml"
        path.write_text(path.read_text().replace("mtu: 9000", "mtu: 8000"))
        git("commit", "-q", "-am", "node-00: MTU 8000", cwd=user)
        git("push", "-q", str(remote), "HEAD:main", cwd=user)
        second = git("rev-parse", "HEAD", cwd=user)
        assert runner.elector.try_acquire_or_renew()  # still the leader: only the revision is stale
        gate.touch()
        worker.join(60)
        assert not worker.is_alive()
        # Nothing was pushed for the first commit: the branch holds a newer configuration.
        assert authors(remote) == ["User", "User"]
        # The next cycle reads the new commit and its status is pushed.
        runner.cycle()
        assert authors(remote)[0] == "multinic-reconciler"
        readme = git("--git-dir", str(remote), "show", "main:status/README.md")
        assert f"Attempted revision: `{second}`" in readme and first not in readme
