"""Run a Job's container the way the kubelet would: a read-only root, hostPath binds, its caps.

``run(pod, node_root)`` executes ``command + args`` of the pod's first container with its env
(``fieldRef: spec.nodeName`` resolved) in a fresh mount namespace whose root is:

* a tmpfs made read-only at the end (``readOnlyRootFilesystem``), holding the "image": the host's
  ``/usr`` (and the Python the agent's virtualenv points at) and this checkout with its ``.venv``,
  all bound read-only, plus a minimal ``/etc`` (passwd, group, hosts, nsswitch.conf);
* each ``volumeMount`` bound from ``<node_root>/<hostPath.path>`` (``DirectoryOrCreate`` creates it
  on the node, ``File``/``Directory``/``Socket`` must exist), read-only when the mount says so;
* ``/sys`` read-only: the host's (fake nodes: ``<node_root>/sys/class/net`` is then bound over
  ``/sys/class/net`` by the Job's own mount) or, with ``fresh_sysfs`` (the real-node tiers, run
  inside the node's network namespace), a new sysfs of that namespace;
* a private ``/dev`` with null, zero, random, urandom and the termination-message file.

Nothing else is writable, so an agent that writes outside its Job's mounts fails here exactly as
on a node. The command runs as uid 0 with the container's capabilities only (bounding and
inheritable sets cut to ``securityContext.capabilities.add``; ``no_new_privs`` when
``allowPrivilegeEscalation`` is false). Needs root, or unprivileged user namespaces (then
``unshare --user --map-root-user`` is used). Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
DEVICES = ("null", "zero", "full", "random", "urandom")
ETC_FILES = ("passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "localtime")


@dataclass(frozen=True)
class PodRun:
    exit_code: int
    message: str  # the termination message (the file at terminationMessagePath)
    stdout: str
    stderr: str


def available() -> str | None:
    """None when pods can run here, else why not."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return "needs util-linux's unshare and setpriv"
    if os.geteuid() != 0:
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                               capture_output=True, check=False)
        if probe.returncode != 0:
            return "needs root or unprivileged user namespaces (unshare --user --mount)"
    return None


def _env(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
    # the "image": this checkout's .venv (reconciler) and .tools (nmcli, as the image ships it), then /usr
    env = {"PATH": f"{REPO / '.venv' / 'bin'}:{REPO / '.tools' / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                   "/usr/bin:/sbin:/bin",
           "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    fields = {"spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
              "metadata.name": pod["metadata"].get("name", ""),
              "metadata.namespace": pod["metadata"].get("namespace", "")}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in (item.get("valueFrom") or {}):
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def plan(pod: dict[str, Any], node_root: Path, *, fresh_sysfs: bool = False) -> dict[str, Any]:
    """What the inner half does, as plain data (mounts in order, the argv, env, capabilities)."""
    spec = pod["spec"]
    [container] = spec["containers"][:1]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    binds: list[dict[str, Any]] = []
    for mount in container.get("volumeMounts") or []:
        host = volumes[mount["name"]]["hostPath"]
        if fresh_sysfs and host["path"].startswith("/sys/"):
            continue  # the fresh sysfs of the node's network namespace is that very directory
        binds.append({"source": str(node_root / host["path"].lstrip("/")), "target": mount["mountPath"],
                      "type": host.get("type", ""), "read_only": bool(mount.get("readOnly"))})
    security = container.get("securityContext") or {}
    caps = [c.lower() for c in (security.get("capabilities") or {}).get("add", [])]
    image = [str(REPO)]
    venv_python = REPO / ".venv" / "bin" / "python"
    base = Path(os.path.realpath(venv_python if venv_python.exists() else sys.executable)).parents[1]
    if not str(base).startswith("/usr"):
        image.append(str(base))  # a Python outside /usr (pyenv, python.org) that the .venv links to
    return {
        "argv": [*(container.get("command") or []), *(container.get("args") or [])],
        "env": _env(container, pod),
        "binds": binds,
        "image": image,
        "caps": caps,
        "no_new_privs": security.get("allowPrivilegeEscalation") is False,
        "read_only_root": bool(security.get("readOnlyRootFilesystem")),
        "termination": container.get("terminationMessagePath") or "/dev/termination-log",
        "fresh_sysfs": fresh_sysfs,
    }


def run(pod: dict[str, Any], node_root: Path, *, fresh_sysfs: bool = False, netns: str | None = None,
        node_pid: int | None = None, timeout: float = 120.0) -> PodRun:
    """Run the pod's container against the node at ``node_root``; its exit code and message.

    ``netns``: a named network namespace (``ip netns``) to run in, as ``hostNetwork: true`` on
    that node would. ``node_pid``: a process of the node (its init) whose PID namespace is the
    node's: the pod's own PID namespace is made a child of it, as a pod's is of its host's, so the
    node's daemons can see the pod's processes (NetworkManager checks its D-Bus callers by PID)."""
    fresh_sysfs = fresh_sysfs or netns is not None  # the node's sysfs is that namespace's
    work = Path(tempfile.mkdtemp(prefix="multinic-pod-"))
    try:
        termination = work / "termination-log"
        termination.write_text("")
        spec = plan(pod, node_root, fresh_sysfs=fresh_sysfs)
        spec["termination_source"] = str(termination)
        spec["newroot"] = str(work / "root")
        (work / "root").mkdir()
        (work / "plan.json").write_text(json.dumps(spec))
        argv = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]
        if os.geteuid() != 0:
            argv[1:1] = ["--user", "--map-root-user"]
        argv += [sys.executable, "-S", __file__, str(work / "plan.json")]
        enter = [f"--net=/run/netns/{netns}"] if netns else []
        enter += [f"--pid=/proc/{node_pid}/ns/pid"] if node_pid else []
        if enter:
            argv = ["nsenter", *enter, *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return PodRun(proc.returncode, termination.read_text(), proc.stdout, proc.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the inner half: runs inside the new mount namespace ---------------------------------------

def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _bind(source: str, target: str, read_only: bool, recursive: bool = False) -> None:
    _sh("mount", "--rbind" if recursive else "--bind", source, target)
    if read_only:
        _sh("mount", "-o", "remount,bind,ro", target)


def _mountpoint(path: Path, like: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if like.is_dir():
        path.mkdir(exist_ok=True)
    elif not path.exists():
        path.touch()


def _inner(plan_file: str) -> None:
    spec = json.loads(Path(plan_file).read_text())
    root = Path(spec["newroot"])
    _sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(root))
    # the image: /usr (bin, sbin, lib are its symlinks on merged-/usr systems), the checkout
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        host = Path("/", name)
        if host.is_symlink():
            (root / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            _mountpoint(root / name, host)
            _bind(str(host), str(root / name), True)
    _mountpoint(root / "usr", Path("/usr"))
    _bind("/usr", str(root / "usr"), True)
    for path in spec["image"]:
        _mountpoint(root / path.lstrip("/"), Path(path))
        _bind(path, str(root / path.lstrip("/")), True)
    # The image paths above may lie below one of these (a checkout under /tmp, say): exist_ok.
    (root / "var").mkdir(exist_ok=True)
    (root / "var" / "run").symlink_to("/run")  # as in any Debian image (libdbus's default bus path)
    (root / "run").mkdir(exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)  # read-only like the rest: the Job mounts no emptyDir
    (root / "etc").mkdir(exist_ok=True)
    for name in ETC_FILES:
        if Path("/etc", name).is_file():
            shutil.copy2(Path("/etc", name), root / "etc" / name, follow_symlinks=True)
    (root / "proc").mkdir(exist_ok=True)
    _sh("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(root / "proc"))  # the pod's PID namespace
    (root / "sys").mkdir(exist_ok=True)
    if spec["fresh_sysfs"]:
        _sh("mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", str(root / "sys"))
    else:
        _bind("/sys", str(root / "sys"), True, recursive=True)
    (root / "dev").mkdir(exist_ok=True)
    _sh("mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "tmpfs", str(root / "dev"))
    for name in DEVICES:
        (root / "dev" / name).touch()
        _bind(f"/dev/{name}", str(root / "dev" / name), False)
    term = root / spec["termination"].lstrip("/")
    _mountpoint(term, Path(spec["termination_source"]))
    _bind(spec["termination_source"], str(term), False)
    # the Job's hostPath mounts, in order
    for bind in spec["binds"]:
        source = Path(bind["source"])
        kind = bind["type"]
        if kind == "DirectoryOrCreate":
            source.mkdir(parents=True, exist_ok=True)
        elif not source.exists() or (kind == "Socket" and not source.is_socket()) or \
                (kind == "File" and not source.is_file()) or (kind == "Directory" and not source.is_dir()):
            sys.exit(f"podrun: hostPath {source} is not a {kind}: the kubelet would not start this pod")
        target = root / bind["target"].lstrip("/")
        if not target.exists():
            _mountpoint(target, source)
        _bind(str(source), str(target), bind["read_only"])
    if spec["read_only_root"]:
        _sh("mount", "-o", "remount,ro", str(root))
        _sh("mount", "-o", "remount,ro,nosuid", str(root / "dev"))
    os.chroot(root)
    os.chdir("/")
    caps = ",".join(["-all", *(f"+{c}" for c in spec["caps"])])
    argv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    if spec["no_new_privs"]:
        argv.append("--no-new-privs")
    command = spec["argv"]
    resolved = shutil.which(command[0], path=spec["env"]["PATH"]) or command[0]
    os.execvpe("setpriv", [*argv, "--", resolved, *command[1:]], {**spec["env"]})


def main(argv: list[str]) -> int:
    """``podrun.py --pod POD.json --root NODE_ROOT --out RESULT.json``: run a pod (inside a VM
    guest, with the guest's own Python: this file needs nothing but the standard library)."""
    if argv[:1] != ["--pod"]:
        _inner(argv[0])  # the inner half; never returns
        return 1
    args = dict(zip(argv[0::2], argv[1::2], strict=False))
    pod = json.loads(Path(args["--pod"]).read_text())
    done = run(pod, Path(args.get("--root", "/")), timeout=float(args.get("--timeout", "300")))
    Path(args["--out"]).write_text(json.dumps({"exit_code": done.exit_code, "message": done.message,
                                               "stdout": done.stdout, "stderr": done.stderr}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
