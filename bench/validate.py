"""Benchmark: ``reconciler validate`` against ``check-jsonschema`` on the same node files.

    .venv/bin/python bench/validate.py [--nodes 10000] [--keep DIR]

Generates N realistic node files (2-3 interfaces, IPv4 + IPv6, MTU, routes, a Proxmox VM) plus
the clusters they name into a temporary config repo, then, in one run:

1. ``reconciler validate DIR`` (this venv's console script, default settings: schemas, models,
   cross-file rules, line numbers for every error);
2. ``check-jsonschema --schemafile schemas/multinicnodeconfig.schema.json <the node files>``
   (schema only), in argument chunks if the command line would be too long, times summed;
3. the same two commands once more with one file made invalid, to show that line numbers are
   reported (and how each tool reports it).

Prints both wall times and the ratio. The goal is >= 8x.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "multinicnodeconfig.schema.json"
BIN = Path(sys.executable).parent
ARG_BUDGET = 100_000  # bytes of file names per check-jsonschema call (well under ARG_MAX)

CLUSTER = """\
apiVersion: multinic.io/v1alpha1
kind: ProxmoxCluster
metadata:
  name: {name}
spec:
  apiEndpoint: https://{name}.example.net:8006
  credentialsSecretRef:
    name: {name}-token
"""


def node_text(i: int, rng: random.Random) -> str:
    """One realistic node file; every MAC, address and VM id unique across the repo."""
    hi, lo = divmod(i, 250)
    lines = [
        f"# worker-{i:05d}: storage, tenant and backup networks",
        "apiVersion: multinic.io/v1alpha1",
        "kind: MultiNicNodeConfig",
        "metadata:",
        f"  name: worker-{i:05d}",
        "  labels:",
        f"    rack: rack-{i % 40:02d}",
        "spec:",
        f"  osFamily: {rng.choice(['ubuntu', 'rhel', 'auto'])}",
        "  proxmox:",
        f"    cluster: pve-{i % 4}",
        f"    vmid: {1000 + i}",
        "  interfaces:",
        "    - name: storage0",
        f"      macAddress: BC:24:11:{hi // 256:02X}:{hi % 256:02X}:{lo:02X}",
        "      addresses:",
        f"        - 10.{20 + hi // 256}.{hi % 256}.{lo + 1}/16",
        f"        - fd00:20::{i + 1:x}/64",
        "      mtu: 9000",
        "      proxmoxNet: net1",
        "    - name: tenant0",
        f"      macAddress: bc:24:12:{hi // 256:02x}:{hi % 256:02x}:{lo:02x}",
        "      addresses:",
        f"        - 10.{60 + hi // 256}.{hi % 256}.{lo + 1}/16",
        "      mtu: 1500",
        "      routes:",
        f"        - to: 10.{130 + i % 20}.0.0/16",
        f"          via: 10.{60 + hi // 256}.255.254",
        "          metric: 100",
        "      proxmoxNet: net2",
    ]
    if rng.random() < 0.5:
        lines += [
            "    - name: backup0",
            f"      macAddress: bc:24:13:{hi // 256:02x}:{hi % 256:02x}:{lo:02x}",
            "      addresses:",
            f"        - 10.{100 + hi // 256}.{hi % 256}.{lo + 1}/16",
            f"        - fd00:40::{i + 1:x}/64",
            "      routes:",
            "        - to: fd00:140::/48",
            "          via: fd00:40::ffff",
            "      proxmoxNet: net3",
        ]
    return "\n".join(lines) + "\n"


def generate(root: Path, count: int) -> list[Path]:
    rng = random.Random(42)
    (root / "nodes").mkdir(parents=True)
    (root / "clusters").mkdir()
    for c in range(4):
        (root / "clusters" / f"pve-{c}.yaml").write_text(CLUSTER.format(name=f"pve-{c}"))
    files = []
    for i in range(count):
        path = root / "nodes" / f"worker-{i:05d}.yaml"
        path.write_text(node_text(i, rng))
        files.append(path)
    return files


def chunks(files: list[Path]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    size = 0
    for f in map(str, files):
        if size + len(f) + 1 > ARG_BUDGET and out[-1]:
            out.append([])
            size = 0
        out[-1].append(f)
        size += len(f) + 1
    return out


def run_reconciler(root: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "reconciler"), "validate", str(root)], capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def run_check_jsonschema(files: list[Path]) -> tuple[float, int, str]:
    total, worst, output = 0.0, 0, []
    for part in chunks(files):
        start = time.perf_counter()
        done = subprocess.run(
            [str(BIN / "check-jsonschema"), "--schemafile", str(SCHEMA), *part], capture_output=True, text=True
        )
        total += time.perf_counter() - start
        worst = max(worst, done.returncode)
        output.append(done.stdout + done.stderr)
    return total, worst, "".join(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10_000, help="node files to generate (default 10000)")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temp dir)")
    args = parser.parse_args()
    for tool in ("reconciler", "check-jsonschema"):
        if not (BIN / tool).exists():
            print(f"{BIN / tool} not found: install the project with its test extras", file=sys.stderr)
            return 2

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        root = tmp / "repo"
        if root.exists():
            shutil.rmtree(root)
        files = generate(root, args.nodes)
        print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}  node files: {len(files)}")
        print(f"check-jsonschema calls: {len(chunks(files))} (arguments chunked at {ARG_BUDGET} bytes)")

        ours, ours_rc, ours_out = run_reconciler(root)
        theirs, theirs_rc, theirs_out = run_check_jsonschema(files)
        if ours_rc != 0 or theirs_rc != 0:
            print("generated repo is not valid?\n" + ours_out[-2000:] + theirs_out[-2000:], file=sys.stderr)
            return 1
        print(f"reconciler validate : {ours:8.2f} s   (schemas + models + cross-file rules)  exit {ours_rc}")
        print(f"check-jsonschema    : {theirs:8.2f} s   (schema only)                         exit {theirs_rc}")
        print(f"ratio               : {theirs / ours:8.1f}x faster")

        bad = files[len(files) // 2]
        bad.write_text(bad.read_text().replace("mtu: 9000", "mtu: 90000").replace("net2", "net42"))
        ours_bad, rc, out = run_reconciler(root)
        print(f"\nwith one invalid file ({bad.name}): reconciler validate {ours_bad:.2f} s, exit {rc}")
        print("  " + "\n  ".join(out.strip().splitlines()))
        theirs_bad, rc, out = run_check_jsonschema(files)
        print(f"check-jsonschema {theirs_bad:.2f} s, exit {rc}")
        print("  " + "\n  ".join(line for line in out.strip().splitlines()[:8]))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
