"""OS detection table, MAC matching, ownership marker and the 4096-byte result limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_agent_support import OS_RELEASES, add_nic, make_root

from reconciler.agent import activate, devices, files, osdetect, verify
from reconciler.config.models import Route
from reconciler.nodejob.result import MAX_BYTES, AgentResult, InterfaceResult


@pytest.mark.parametrize(
    ("os_key", "label", "family", "renderer"),
    [
        ("ubuntu-22.04", "ubuntu 22.04", "ubuntu", "netplan"),
        ("ubuntu-24.04", "ubuntu 24.04", "ubuntu", "netplan"),
        ("debian-12", "debian 12", "ubuntu", "netplan"),
        ("rhel-8", "rhel 8.9", "rhel", "ifcfg"),
        ("rhel-9", "rhel 9.4", "rhel", "keyfile"),
        ("rocky-9", "rocky 9.3", "rhel", "keyfile"),
        ("alma-8", "almalinux 8.10", "rhel", "ifcfg"),
        ("centos-7", "centos 7", "rhel", "ifcfg"),
        ("fedora-40", "fedora 40", "rhel", "keyfile"),
    ],
)
def test_os_detection_picks_the_renderer_of_each_supported_release(
    os_key: str, label: str, family: str, renderer: str, tmp_path: Path
) -> None:
    info = osdetect.detect(make_root(tmp_path, os_key, {}))
    assert (info.label, info.family, info.renderer) == (label, family, renderer)


def test_an_unknown_os_is_an_error_naming_the_os(tmp_path: Path) -> None:
    with pytest.raises(osdetect.UnknownOSError, match="Arch Linux"):
        osdetect.detect(make_root(tmp_path, "arch", {}))


def test_a_missing_os_release_is_an_error_unless_the_family_is_given(tmp_path: Path) -> None:
    with pytest.raises(osdetect.UnknownOSError, match="no os-release"):
        osdetect.detect(tmp_path)
    assert osdetect.detect(tmp_path, "ubuntu").renderer == "netplan"
    with pytest.raises(osdetect.UnknownOSError, match="VERSION_ID"):
        osdetect.detect(tmp_path, "rhel")


def test_the_spec_family_overrides_but_the_version_still_comes_from_os_release(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path, "centos-7", {})
    assert osdetect.detect(root, "rhel").renderer == "ifcfg"
    assert osdetect.detect(root, "ubuntu").renderer == "netplan"
    assert OS_RELEASES  # the table the fake roots use


def test_mac_matching_is_case_insensitive_and_names_the_mac_when_missing_or_doubled(
    tmp_path: Path,
) -> None:
    add_nic(tmp_path, "ens19", "52:54:00:AA:BB:01")
    add_nic(tmp_path, "ens20", "52:54:00:aa:bb:02")
    add_nic(tmp_path, "ens21", "52:54:00:aa:bb:02")
    found = devices.scan(tmp_path)
    assert devices.match(found, "52:54:00:aa:bb:01").name == "ens19"
    with pytest.raises(devices.DeviceError, match="no network device has MAC 52:54:00:aa:bb:99"):
        devices.match(found, "52:54:00:AA:BB:99")
    with pytest.raises(devices.DeviceError, match=r"52:54:00:aa:bb:02 .*ens20, ens21"):
        devices.match(found, "52:54:00:aa:bb:02")


def test_only_files_with_the_marker_near_the_top_are_ours() -> None:
    assert files.is_ours(b"# managed by multinic-reconciler (node a)\nnetwork: {}\n")
    assert not files.is_ours(b"network: {}\n")
    assert not files.is_ours(b"\n" * 10 + b"# managed by multinic-reconciler\n")
    assert not files.is_ours(None)


def test_atomic_write_sets_the_mode_and_replaces_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "d/f"
    files.atomic_write(path, b"one\n", 0o600)
    first = path.stat()
    files.atomic_write(path, b"two\n", 0o644)
    assert path.read_bytes() == b"two\n" and path.stat().st_mode & 0o777 == 0o644
    assert path.stat().st_ino != first.st_ino and first.st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["f"]


def test_the_result_for_16_interfaces_with_long_errors_stays_under_4096_bytes() -> None:
    result = AgentResult(
        node="a-rather-long-node-name.example.internal",
        os="ubuntu 24.04",
        renderer="keyfile",
        outcome="partial",
        interfaces=[
            InterfaceResult(
                name=f"multinic{n:02d}abc",
                mac=f"52:54:00:aa:bb:{n:02x}",
                device=f"enp{n}s0f1np1",
                state="error",
                error="x" * 2000 + f" {n}",
            )
            for n in range(16)
        ],
        files=[f"/etc/NetworkManager/system-connections/multinic{n:02d}abc.nmconnection" for n in range(32)],
        error="y" * 5000,
    )
    text = result.to_json()
    assert len(text.encode()) < MAX_BYTES
    back = AgentResult.model_validate_json(text)
    assert len(back.interfaces) == 16 and all(i.error and i.error.endswith("...") for i in back.interfaces)
    assert [i.name for i in back.interfaces] == [i.name for i in result.interfaces]


def test_a_small_result_is_not_shortened() -> None:
    result = AgentResult(
        node="n",
        os="debian 12",
        renderer="netplan",
        outcome="failed",
        interfaces=[InterfaceResult(name="a", mac="52:54:00:00:00:01", state="error", error="e" * 300)],
    )
    assert AgentResult.model_validate_json(result.to_json()) == result


# --- routes: present, and actually the one the kernel uses ---------------------------------------

def _target(*routes: dict[str, object]) -> activate.Target:
    return activate.Target("storage0", "bc:24:11:00:00:01", "ens19", None, ("10.1.0.5/24",),
                           tuple(Route.model_validate(r) for r in routes))


# ``ip -j route show table main`` as a kernel prints it: ours, a prefix route, the operator's own
OURS = {"dst": "10.8.0.0/16", "gateway": "10.1.0.1", "dev": "storage0", "protocol": "static", "metric": 50,
        "flags": []}
PREFIX = {"dst": "10.1.0.0/24", "dev": "storage0", "protocol": "kernel", "scope": "link", "prefsrc": "10.1.0.5",
          "metric": 100, "flags": []}


def test_a_route_in_the_table_with_its_gateway_and_metric_passes() -> None:
    assert verify._check_routes(_target({"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50}),
                                [PREFIX, OURS]) is None


def test_a_route_with_another_metric_or_on_another_nic_is_not_ours() -> None:
    other_nic = {**OURS, "dev": "backup0"}
    error = verify._check_routes(_target({"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 60}), [PREFIX, OURS])
    assert error == "storage0: route 10.8.0.0/16 via 10.1.0.1 metric 60 is not in the main table"
    assert verify._check_routes(_target({"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50}),
                                [PREFIX, other_nic]) is not None


@pytest.mark.parametrize(("other", "shown"), [
    ({"type": "blackhole", "dst": "10.8.0.0/16", "metric": 50, "flags": []}, "blackhole 10.8.0.0/16 metric 50"),
    ({"dst": "10.8.0.0/16", "gateway": "10.2.0.1", "dev": "backup0", "metric": 50, "flags": []},
     "10.8.0.0/16 via 10.2.0.1 dev backup0 metric 50"),
])
def test_a_route_shadowed_by_another_with_the_same_destination_and_metric_fails(
        other: dict[str, object], shown: str) -> None:
    # the kernel uses whichever came first: ours would be in the table and carry nothing
    error = verify._check_routes(_target({"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50}),
                                 [PREFIX, other, OURS])
    assert error == (f"storage0: route 10.8.0.0/16 via 10.1.0.1 metric 50 clashes with {shown} "
                     "(same destination and metric: the kernel uses only one of them)")


def test_the_same_destination_at_another_metric_is_a_deliberate_backup_and_passes() -> None:
    backup = {"dst": "10.8.0.0/16", "gateway": "10.2.0.1", "dev": "backup0", "metric": 200, "flags": []}
    assert verify._check_routes(_target({"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50}),
                                [PREFIX, OURS, backup]) is None
