"""QEMU nodes for the realnode tier (helpers, no tests): the cached Debian tree as a disk image,
booted with ``qemu-system-x86_64`` (``-accel kvm`` where the CPU has VMX/SVM and ``/dev/kvm`` opens,
else ``-accel tcg``: a ``/dev/kvm`` without VMX stalls at boot) with virtio NICs carrying the spec's
MACs on isolated user-mode networks (``restrict=on,ipv6=off``: nothing leaves the machine).

Each ``QemuNode`` has its own copy-on-write disk (qcow2 over the cached raw image), so a reboot
keeps what the previous boot wrote. The guest's ``multinic-test.service`` (scripts/realnode.sh)
mounts the host's control directory (9p tag ``ctl``) at boot, runs ``boot.sh`` from it and powers
off; the host writes ``boot.sh`` per boot. The agent runs in the guest exactly as on the nspawn
tier: ``podrun`` (from this checkout, shared read-only at its own path together with the Python
its .venv uses) executes the Job's pod with the guest's ``/`` as the node.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PODRUN = REPO / "sandbox/multinic_sandbox/harness/podrun.py"
UBUNTU = ('PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n')
ROCKY = ('NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
         'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n')

# Runs in the guest with its own python3: the state a network engineer compares.
STATE_PY = r'''
import json, subprocess, sys, time
def ip(*a):
    return json.loads(subprocess.run(["ip", "-j", *a], capture_output=True, text=True).stdout or "[]")
def state():
    out = {}
    for link in ip("addr", "show"):
        if not link.get("address", "").startswith("bc:24:11:"):
            continue
        routes = []
        for fam in ("-4", "-6"):
            for r in ip(fam, "route", "show", "table", "main", "dev", link["ifname"]):
                if r.get("protocol") == "kernel" and "gateway" not in r:
                    continue
                routes.append([r.get("dst"), r.get("gateway"), r.get("metric", 0), r.get("protocol")])
        out[link["address"]] = {"name": link["ifname"], "mtu": link["mtu"], "operstate": link.get("operstate"),
            "addresses": sorted(a["local"] + "/" + str(a["prefixlen"]) for a in link.get("addr_info", [])
                                if a.get("scope") == "global" and not a.get("tentative")),
            "routes": sorted(routes, key=str)}
    return out
want = json.loads(sys.argv[1])  # mac -> name, addresses expected: wait (max 90 s) until they are there
deadline = time.time() + 90
while True:
    s = state()
    if all(m in s and s[m]["name"] == w["name"] and set(w["addresses"]) <= set(s[m]["addresses"])
           for m, w in want.items()) or time.time() > deadline:
        break
    time.sleep(1)
time.sleep(3)  # let the daemon finish (routes after addresses)
print(json.dumps(state(), indent=1, sort_keys=True))
'''


def sh(*argv: str, timeout: float = 120) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-1000:]}")
    return proc.stdout


def disk_image(tree: Path) -> Path:
    """The tree as a raw ext4 image, built once next to it (a few seconds)."""
    image = tree.parent / f"{tree.name}.img"
    if not image.exists():
        tmp = image.with_suffix(".img.tmp")
        tmp.unlink(missing_ok=True)
        sh("mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(tree), str(tmp), "3G", timeout=600)
        tmp.rename(image)
    return image


def accelerator() -> str:
    """``kvm`` when hardware virtualisation is really there, else ``tcg`` (software emulation)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return "tcg"
    os.close(fd)
    return "kvm" if (" vmx" in flags or " svm" in flags) else "tcg"


def python_prefix() -> Path:
    """The Python installation the .venv links to (shared into the guest at the same path)."""
    return Path(os.path.realpath(REPO / ".venv" / "bin" / "python")).parents[1]


class QemuNode:
    def __init__(self, tree: Path, tmp: Path, nics: list[str], name: str = "node-1") -> None:
        self.tree, self.dir, self.nics, self.name = tree, tmp, nics, name
        self.ctl = tmp / "ctl"
        self.ctl.mkdir(parents=True, exist_ok=True)
        self.disk = tmp / "disk.qcow2"
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(disk_image(tree)), str(self.disk))
        (self.ctl / "state.py").write_text(STATE_PY)
        self.boots = 0

    def _argv(self) -> list[str]:
        kernel = sorted((self.tree / "boot").glob("vmlinuz-*"))[-1]
        initrd = sorted((self.tree / "boot").glob("initrd.img-*"))[-1]
        argv = ["qemu-system-x86_64", "-accel", accelerator(), "-m", "1024", "-smp", "1", "-display", "none",
                "-monitor", "none", "-no-reboot", "-serial", f"file:{self.dir / f'console-{self.boots}.log'}",
                "-kernel", str(kernel), "-initrd", str(initrd),
                "-append", "console=ttyS0 root=/dev/vda rw panic=-1 net.ifnames=1",
                "-drive", f"file={self.disk},format=qcow2,if=virtio",
                "-virtfs", f"local,path={self.ctl},mount_tag=ctl,security_model=none",
                "-virtfs", f"local,path={REPO},mount_tag=src,security_model=none,readonly=on",
                "-virtfs", f"local,path={python_prefix()},mount_tag=py,security_model=none,readonly=on"]
        for n, mac in enumerate(self.nics):
            argv += ["-netdev", f"user,id=n{n},restrict=on,ipv6=off", "-device",
                     f"virtio-net-pci,netdev=n{n},mac={mac}"]
        return argv

    def boot(self, script: str, timeout: float = 420) -> str:
        """Boot once: the guest runs ``script`` (after mounting this checkout and the Python at their
        paths) and powers off. Returns boot.log (the script's output)."""
        prefix = python_prefix()
        mounts = (f"mkdir -p {shlex.quote(str(REPO))} {shlex.quote(str(prefix))}\n"
                  f"mount --bind /mnt/src {shlex.quote(str(REPO))}\n"
                  f"mount -t 9p -o trans=virtio,version=9p2000.L,ro py {shlex.quote(str(prefix))}\n")
        (self.ctl / "boot.sh").write_text("set -x\n" + mounts + script)
        (self.ctl / "boot.log").unlink(missing_ok=True)
        started = time.monotonic()
        proc = subprocess.run(self._argv(), capture_output=True, text=True, timeout=timeout, check=False)
        self.boots += 1
        log = (self.ctl / "boot.log").read_text() if (self.ctl / "boot.log").exists() else ""
        if proc.returncode != 0 or not log:
            console = (self.dir / f"console-{self.boots - 1}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"qemu exited {proc.returncode} after {time.monotonic() - started:.0f} s: "
                               f"{proc.stderr[-500:]}\nconsole:\n{console}\nboot.log:\n{log}")
        return log

    def read(self, name: str) -> Any:
        return json.loads((self.ctl / name).read_text())

    @staticmethod
    def set_os(os_release: str) -> str:
        return f"rm -f /etc/os-release\ncat > /etc/os-release <<'EOF'\n{os_release}EOF\n"

    def run_pod(self, pod: dict[str, Any], out: str) -> str:
        """Shell lines that run ``pod`` in the guest with podrun; the result lands in ``ctl/<out>``."""
        name = f"{out}.pod.json"
        (self.ctl / name).write_text(json.dumps(pod))
        return (f"python3 -S {shlex.quote(str(PODRUN))} --pod /mnt/ctl/{name} --root / "
                f"--out /mnt/ctl/{out}\n")

    def capture(self, out: str, want: dict[str, Any]) -> str:
        return f"python3 /mnt/ctl/state.py {shlex.quote(json.dumps(want))} > /mnt/ctl/{out}\n"


def available() -> str | None:
    for tool in ("qemu-system-x86_64", "qemu-img", "mkfs.ext4"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, check=False).returncode:
            return f"{tool} is missing (scripts/realnode.sh installs it)"
    return None if sys.platform == "linux" else "Linux only"
