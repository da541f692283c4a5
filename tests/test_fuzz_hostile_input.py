"""Hostile input, fuzzed: at least 10,000 generated inputs per run (explicit tags, YAML 1.1
scalars, broken and re-encoded bytes, control characters, layout changes: renames, case, wrong
folders, folders, FIFOs and symlinks where a file should be, loops) go through ``reconciler
validate`` and the planner; a subset is applied against the kube sandbox.

Asserted for every input: no exception escapes (no traceback), the exit code is 0, 1 or 2, and
no live object other than the one the hostile file names is deleted or changed (that one only by a
valid file). Inputs are generated from a fixed seed (``derandomize``) so CI runs are reproducible.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multinic_sandbox.kube.node_model import succeed
from support.reconcile import CLUSTER_KIND, NODE_KIND, ReconcileEnv, git_repo, start_env

from reconciler import cli
from reconciler.config import formats
from reconciler.config.validation import validate_repo
from reconciler.kube import objects
from reconciler.plan.changeset import Action
from reconciler.plan.planner import LiveObject, plan

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
SANDBOX_EXAMPLES = 30

NODE = """\
apiVersion: multinic.io/v1alpha1
kind: MultiNicNodeConfig
metadata:
  name: worker-01
  labels:
    rack: rack-a
spec:
  osFamily: ubuntu
  proxmox:
    cluster: pve-prod
    vmid: 201
  interfaces:
    - name: storage0
      macAddress: "bc:24:11:20:00:0b"
      addresses: [10.20.0.11/24, "fd00:20::11/64"]
      mtu: 9000
      routes:
        - to: 10.120.0.0/16
          via: 10.20.0.1
          metric: 100
"""
OTHER = NODE.replace("worker-01", "worker-02").replace("20:00:0b", "20:00:0c").replace("0.11/24", "0.12/24") \
    .replace("::11/64", "::12/64").replace("vmid: 201", "vmid: 202")
CLUSTER = """\
apiVersion: multinic.io/v1alpha1
kind: ProxmoxCluster
metadata:
  name: pve-prod
spec:
  apiEndpoint: https://pve-prod.example.net:8006
  credentialsSecretRef: {name: pve-prod-token}
"""
SETTINGS = """\
apiVersion: multinic.io/v1alpha1
kind: ReconcilerSettings
metadata:
  name: reconciler
spec:
  prune: {enabled: true, maxDeletePercent: 100}
"""
FILES = {"nodes/worker-01.yaml": NODE, "nodes/worker-02.yaml": OTHER, "clusters/pve-prod.yaml": CLUSTER,
         "reconciler.yaml": SETTINGS}

HOSTILE_SCALARS = [
    "!!int abc", "!!map abc", "!!seq abc", "!!str {a: 1}", "!!bool maybe", "!!float x", "!foo bar", "! 12",
    "!!binary aGk=", "!!timestamp 2001-12-14", "!!python/object:os.system ls", "&a x", "*a", "<<: {a: 1}",
    "01500", "0755", "0o17", "0x1F", "2:30:00", "52:54:00:12:34:56", "1_000", "0b101", "yes", "no", "on",
    "off", "~", "null", ".nan", ".inf", "-.inf", "1e400", "-0", "+12", "''", '""', "[]", "{}", "[1, [2, [3]]]",
    "{a: {b: {c: d}}}", "? [a, b]\n  : c", "|\n  text", ">-\n  folded", "\"\\x00\"", "\"\\u202e\"", "x\ty",
    "255.255.255.255/32", "0.1.2.3/8", "240.0.0.1/24", "fe80::1", "::", "9" * 40, "a" * 300, "true", "True",
]
FIELDS = ["osFamily", "mtu", "vmid", "macAddress", "name", "cluster", "rack", "metric", "to", "via",
          "apiVersion", "kind", "metadata"]
LAYOUTS = ["file", "rename-case", "suffix-case", "into-clusters", "dir", "fifo", "symlink-status",
           "symlink-outside", "symlink-loop", "folder-symlink", "settings-dir", "settings-renamed"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1-bytes", "nul", "crlf", "truncate"]


@dataclass(frozen=True)
class Hostile:
    field: str
    value: str
    layout: str
    encoding: str
    cut: int

    def content(self) -> bytes:
        text = NODE
        pattern = f"{self.field}:"
        if pattern in text:
            start = text.index(pattern) + len(pattern)
            end = text.index("\n", start)
            text = text[:start] + " " + self.value + text[end:]
        if self.encoding == "crlf":
            return text.replace("\n", "\r\n").encode()
        if self.encoding == "truncate":
            return text.encode()[: self.cut % len(text)]
        if self.encoding == "nul":
            return text.encode().replace(b"\n", b"\n\x00", 1)
        if self.encoding == "latin-1-bytes":
            return text.encode() + b"\xff\xfe#"
        return text.encode(self.encoding, errors="surrogatepass")


hostile = st.builds(
    Hostile,
    field=st.sampled_from(FIELDS),
    value=st.one_of(st.sampled_from(HOSTILE_SCALARS),
                    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)),
    layout=st.sampled_from(LAYOUTS),
    encoding=st.sampled_from(ENCODINGS),
    cut=st.integers(0, 10_000),
)


_MADE = ("nodes/worker-01.yaml", "nodes/Worker-01.yaml", "nodes/worker-01.YAML", "clusters/worker-01.yaml",
         "status", "elsewhere", "nodes/team", "nodes/loop", "reconciler.yaml", "Reconciler.yaml")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def write_repo(root: Path, case: Hostile) -> None:
    """The four files of the base repo with worker-01's file replaced by ``case`` (only what a
    case can touch is reset, so that thousands of cases stay cheap)."""
    if not (root / "nodes" / "worker-02.yaml").exists():
        for rel, text in FILES.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    for rel in _MADE:
        _remove(root / rel)
    (root / "reconciler.yaml").write_text(SETTINGS)
    target = root / "nodes" / "worker-01.yaml"
    body = case.content()
    layout = case.layout
    if layout == "file":
        target.write_bytes(body)
    elif layout == "rename-case":
        (root / "nodes" / "Worker-01.yaml").write_bytes(body)
    elif layout == "suffix-case":
        (root / "nodes" / "worker-01.YAML").write_bytes(body)
    elif layout == "into-clusters":
        (root / "clusters" / "worker-01.yaml").write_bytes(body)
    elif layout == "dir":
        target.mkdir()
        (target / "inner.yaml").write_bytes(body)
    elif layout == "fifo":
        os.mkfifo(target)
    elif layout == "symlink-status":
        (root / "status").mkdir()
        (root / "status" / "worker-01.yaml").write_bytes(body)
        target.symlink_to("../status/worker-01.yaml")
    elif layout == "symlink-outside":
        outside = root.parent / "outside.yaml"
        outside.write_bytes(body)
        target.symlink_to(outside)
    elif layout == "symlink-loop":
        target.symlink_to("worker-01.yaml")
        (root / "nodes" / "loop").symlink_to("..")
    elif layout == "folder-symlink":
        (root / "elsewhere").mkdir()
        (root / "elsewhere" / "worker-01.yaml").write_bytes(body)
        (root / "nodes" / "team").symlink_to("../elsewhere")
    elif layout == "settings-dir":
        target.write_bytes(body)
        (root / "reconciler.yaml").unlink()
        (root / "reconciler.yaml").mkdir()
    elif layout == "settings-renamed":
        target.write_bytes(body)
        (root / "reconciler.yaml").rename(root / "Reconciler.yaml")


def _live() -> dict[str, list[LiveObject]]:
    """The base repo as it is live (every object owned by us)."""
    base = Path(tempfile.mkdtemp(prefix="fuzz-base-")) / "repo"
    write_repo(base, Hostile("osFamily", "ubuntu", "file", "utf-8", 0))
    desired = validate_repo(base).desired
    shutil.rmtree(base.parent)
    live: dict[str, list[LiveObject]] = {NODE_KIND: [], CLUSTER_KIND: []}
    for kind, models in ((NODE_KIND, desired.nodes), (CLUSTER_KIND, desired.clusters)):
        for name, model in models.items():
            manifest = objects.manifest(model, namespace="multinic-system", path=desired.sources[(kind, name)],
                                        revision=None)
            live[kind].append(LiveObject.from_manifest(manifest))
    return live


LIVE = _live()


def check_plan(root: Path) -> None:
    """Only worker-01 may change, and only from a valid file; nothing is deleted."""
    result = validate_repo(root)
    formats.json_report(result)
    formats.sarif(result)
    changes = plan(result.desired, LIVE)
    assert not changes.by_action(Action.DELETE), changes
    for change in changes.changes:
        if change.action in (Action.UPDATE, Action.CREATE):
            assert (change.kind, change.name) == (NODE_KIND, "worker-01"), change
            assert change.source == "nodes/worker-01.yaml" and result.desired.nodes["worker-01"]


def run_validate(root: Path) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["validate", str(root), "--format", "json", "--jobs", "1"])
    assert code in (0, 1, 2), (code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    return code


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "repo"


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=hostile)
def test_hostile_input_never_crashes_never_exits_oddly_and_never_touches_other_objects(
    scratch: Path, case: Hostile
) -> None:
    write_repo(scratch, case)
    _COUNT[0] += 1
    if _COUNT[0] % CLI_EVERY == 0:  # the whole CLI is slower (argparse, plugins): every few cases
        run_validate(scratch)
    check_plan(scratch)


_COUNT = [0]
CLI_EVERY = 20


# -- a subset against the kube sandbox -------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReconcileEnv]:
    root = tmp_path_factory.mktemp("fuzz-kube") / "repo"
    write_repo(root, Hostile("osFamily", "ubuntu", "file", "utf-8", 0))
    with start_env(git_repo(None, root), jobs="manual") as env:
        env.sandbox.node_model.set_default(succeed())
        seen: set[str] = set()
        for _ in range(30):  # until the rollout of the base repo is complete
            cycle = env.apply()
            assert cycle.validation.ok and not cycle.failed
            now = {j["metadata"]["name"] for j in env.jobs()}
            both = all(any(n in j for j in now) for n in ("worker-01", "worker-02"))
            if now == seen and both and not env.active_jobs():
                break
            seen = now
            env.sandbox.clock.advance(10.0)
            env.sandbox.jobs.step()
        yield env


def _state(env: ReconcileEnv) -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {}
    for kind in (NODE_KIND, CLUSTER_KIND):
        for name, obj in env.crs(kind).items():
            meta = obj["metadata"]
            out[(kind, name)] = (obj["spec"], meta.get("labels"), meta.get("annotations"))
    return out


@settings(max_examples=SANDBOX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=hostile.filter(lambda c: c.layout != "file" or c.value.startswith("!")))
def test_hostile_input_applied_against_the_kube_sandbox_deletes_and_changes_nothing(
    env: ReconcileEnv, case: Hostile
) -> None:
    before = _state(env)
    jobs = {j["metadata"]["name"] for j in env.jobs()}
    write_repo(env.repo, case)
    env.sandbox.request_log.clear()
    try:
        cycle = env.apply()
        assert [w for w in env.writes() if w[0] == "delete"] == []
        after = _state(env)
        assert set(after) == set(before)
        changed = {key for key in before if after[key] != before[key]}
        assert changed <= ({(NODE_KIND, "worker-01")} if "worker-01" in cycle.validation.desired.nodes else set())
        new_jobs = {j["metadata"]["name"] for j in env.jobs()} - jobs
        assert all("worker-01" in name for name in new_jobs), new_jobs
    finally:
        write_repo(env.repo, Hostile("osFamily", "ubuntu", "file", "utf-8", 0))
        env.apply()
