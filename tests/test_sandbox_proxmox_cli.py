"""``reconciler sandbox proxmox`` as a separate process, the way the demo and people use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from multinic_sandbox.proxmox.leak_scan import find_leaks
from proxmoxer import ProxmoxAPI


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict]:
    info_file = tmp_path / "pve.json"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "reconciler", "sandbox", "proxmox", "--port", "0"),
            *("--info-out", str(info_file), "--auth-failure-delay", "0", *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not info_file.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no info file"
        time.sleep(0.05)
    assert oct(info_file.stat().st_mode & 0o777) == "0o600"
    return process, json.loads(info_file.read_text())


def stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    return process.returncode, out, err


def test_the_cli_writes_the_info_file_serves_proxmoxer_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    process, info = start(tmp_path)
    try:
        assert set(info) == {"url", "caFile", "tokenId", "tokenSecret", "username", "password"}
        user, token = info["tokenId"].split("!")
        host = info["url"].removeprefix("https://")
        by_token = ProxmoxAPI(
            host, user=user, token_name=token, token_value=info["tokenSecret"], verify_ssl=info["caFile"]
        )
        assert by_token.version.get()["release"] == "8.0"
        by_ticket = ProxmoxAPI(host, user=info["username"], password=info["password"], verify_ssl=info["caFile"])
        assert [n["node"] for n in by_ticket.nodes.get()] == ["pve1", "pve2"]
    finally:
        code, out, err = stop(process)
    assert code == 0
    assert out.splitlines()[0] == info["url"]
    assert "GET /version -> 200" in err
    secrets = [info["tokenSecret"], info["password"]]
    assert find_leaks(secrets, [("stdout", out), ("stderr", err)]) == []
    assert not os.path.exists(info["caFile"])  # the per-run CA is removed on exit


def test_the_cli_loads_a_topology_file(tmp_path: Path) -> None:
    topology = tmp_path / "topology.yaml"
    topology.write_text(
        yaml.safe_dump({"cluster": None, "version": "9.1", "nodes": [{"name": "solo", "vms": [{"vmid": 300}]}]})
    )
    process, info = start(tmp_path, "--topology", str(topology))
    try:
        user, token = info["tokenId"].split("!")
        api = ProxmoxAPI(
            info["url"].removeprefix("https://"),
            user=user,
            token_name=token,
            token_value=info["tokenSecret"],
            verify_ssl=info["caFile"],
        )
        assert api.version.get()["version"] == "9.1.6"
        assert [vm["vmid"] for vm in api.nodes("solo").qemu.get()] == [300]
    finally:
        assert stop(process)[0] == 0
