"""The node-Job contract: the Job the controller builds lets the agent write what it renders.

Every path any renderer writes for a node must lie under a writable hostPath mount of the Job
built for that node's OS, and the controller (from the Node's ``osImage``) and the agent (from
the node's ``/etc/os-release``) must pick the same renderer.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from reconciler.agent import engine, osdetect
from reconciler.config.models import NodeConfig
from reconciler.kube import jobs
from reconciler.nodejob import container
from reconciler.nodejob.renderers import REGISTRY, select

# (os-release, the osImage the kubelet reports for it = its PRETTY_NAME)
OS_RELEASES: dict[str, str] = {
    "rocky-9": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
               'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n',
    "rhel-9": 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.4"\n'
              'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
    "rhel-8": 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="8.10"\n'
              'PRETTY_NAME="Red Hat Enterprise Linux 8.10 (Ootpa)"\n',
    "ubuntu-24.04": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n',
    "alma-8": 'NAME="AlmaLinux"\nID="almalinux"\nVERSION_ID="8.10"\nPRETTY_NAME="AlmaLinux 8.10 (Cerulean Leopard)"\n',
    "centos-stream-9": 'NAME="CentOS Stream"\nID="centos"\nVERSION_ID="9"\nPRETTY_NAME="CentOS Stream 9"\n',
    "fedora-40": 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40 (Server Edition)"\n',
    "rhcos-4.15": 'NAME="Red Hat Enterprise Linux CoreOS"\nID="rhcos"\nID_LIKE="rhel fedora"\nVERSION_ID="415.92"\n'
                  'PRETTY_NAME="Red Hat Enterprise Linux CoreOS 415.92.202402201450-0 (Plow)"\n',
    "rhcos-4.12": 'NAME="Red Hat Enterprise Linux CoreOS"\nID="rhcos"\nVERSION_ID="412.86"\n'
                  'PRETTY_NAME="Red Hat Enterprise Linux CoreOS 412.86.202306132230-0 (Ootpa)"\n',
    "oracle-8": 'NAME="Oracle Linux Server"\nID="ol"\nVERSION_ID="8.9"\nPRETTY_NAME="Oracle Linux Server 8.9"\n',
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    # the ones the two old detections disagreed on: now both refuse, with the same reason
    "mint-21": 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\n'
               'PRETTY_NAME="Linux Mint 21.3"\n',
    "amazon-2023": 'NAME="Amazon Linux"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n'
                   'PRETTY_NAME="Amazon Linux 2023.5.20240805"\n',
    "rocky-no-version": 'NAME="Rocky Linux"\nID="rocky"\nPRETTY_NAME="Rocky Linux"\n',
}
EXPECTED = {"rocky-9": "keyfile", "rhel-9": "keyfile", "rhel-8": "ifcfg", "ubuntu-24.04": "netplan",
            "alma-8": "ifcfg", "centos-stream-9": "keyfile", "fedora-40": "keyfile", "rhcos-4.15": "keyfile",
            "rhcos-4.12": "ifcfg", "oracle-8": "ifcfg", "debian-12": "netplan", "mint-21": None,
            "amazon-2023": None, "rocky-no-version": None}

SPEC: dict[str, Any] = {
    "apiVersion": "multinic.io/v1alpha1", "kind": "MultiNicNodeConfig", "metadata": {"name": "n1"},
    "spec": {"nodeName": "n1", "interfaces": [
        {"name": "storage0", "macAddress": "bc:24:11:00:00:01", "addresses": ["10.1.0.5/24", "fd01::5/64"],
         "mtu": 9000, "routes": [{"to": "10.8.0.0/16", "via": "10.1.0.1", "metric": 50},
                                 {"to": "fd08::/48", "via": "fd01::1"}]},
        {"name": "backup0", "macAddress": "bc:24:11:00:00:02", "addresses": ["10.2.0.5/24"]},
    ]},
}


def pretty_name(os_key: str) -> str:
    return next(line.split("=", 1)[1].strip('"') for line in OS_RELEASES[os_key].splitlines()
                if line.startswith("PRETTY_NAME="))


def agent_choice(tmp_path: Path, os_key: str) -> str | None:
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/os-release").write_text(OS_RELEASES[os_key])
    try:
        return osdetect.detect(tmp_path).renderer
    except osdetect.UnknownOSError:
        return None


@pytest.mark.parametrize("os_key", sorted(OS_RELEASES))
def test_controller_and_agent_pick_the_same_renderer(tmp_path: Path, os_key: str) -> None:
    controller = jobs.renderer_for(pretty_name(os_key), "auto")
    assert controller == agent_choice(tmp_path, os_key) == EXPECTED[os_key]


def test_an_os_we_cannot_render_for_is_refused_with_a_reason_naming_it() -> None:
    assert "Amazon Linux 2023" in select("Amazon Linux 2023.5.20240805").reason
    assert "VERSION_ID" in select("Rocky Linux").reason
    assert select("Rocky Linux", "ubuntu").renderer == "netplan"  # spec.osFamily overrides


def under(path: str, directory: str) -> bool:
    return PurePosixPath(directory) in PurePosixPath(path).parents


@pytest.mark.parametrize("os_key", ["rocky-9", "rhel-8", "ubuntu-24.04", "rhcos-4.15", "alma-8"])
@pytest.mark.parametrize("job_type", ["apply", "remove"])
def test_every_rendered_path_is_under_a_writable_mount_of_the_job(os_key: str, job_type: str) -> None:
    node = NodeConfig.model_validate(SPEC)
    renderer = jobs.renderer_for(pretty_name(os_key), "auto")
    assert renderer is not None
    job = jobs.node_job(job_type, node, namespace="ns", identity="uid/1/h//0", spec_hash="h",
                        generation=1, revision="r",  # type: ignore[arg-type]
                        renderer=renderer, settings=jobs.JobSettings())
    pod = job["spec"]["template"]["spec"]
    [agent] = pod["containers"]
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    writable = [m["mountPath"] for m in agent["volumeMounts"] if not m.get("readOnly")]
    assert all(volumes[m["name"]] == m["mountPath"] for m in agent["volumeMounts"])  # node path = agent path
    paths = engine.rendered_paths(node, renderer)
    assert paths
    for path in paths:
        assert any(under(path, d) for d in writable), f"{path} is not under a writable mount {writable}"
    # ... and every directory any file of this renderer can live in (stale-file removal) too
    for owned in REGISTRY[renderer].owned:
        assert any(under("/" + owned.pattern, d) for d in writable)
    assert agent["args"] == ["agent", job_type, "--renderer", renderer, "--activate", REGISTRY[renderer].activation]
    assert job["spec"]["backoffLimit"] == 0


def test_the_iproute2_fallback_is_explicit_and_does_not_get_the_dbus_socket() -> None:
    node = NodeConfig.model_validate(SPEC)
    job = jobs.node_job("apply", node, namespace="ns", identity="uid/1/h//0", spec_hash="h",
                        generation=1, revision="r",
                        renderer="keyfile", settings=jobs.JobSettings(activate="iproute2"))
    [agent] = job["spec"]["template"]["spec"]["containers"]
    assert agent["args"][-2:] == ["--activate", "iproute2"]
    assert container.DBUS_SOCKET not in {m["mountPath"] for m in agent["volumeMounts"]}


def test_net_raw_is_added_only_for_nodes_whose_file_declares_probes() -> None:
    plain = NodeConfig.model_validate(SPEC)
    probed_spec = json.loads(json.dumps(SPEC))
    probed_spec["spec"]["interfaces"][0]["probes"] = [{"ping": "10.1.0.1", "mtu": True}]
    probed = NodeConfig.model_validate(probed_spec)

    def caps(node: NodeConfig) -> list[str]:
        job = jobs.node_job("apply", node, namespace="ns", identity="uid/1/h//0", spec_hash="h", generation=1,
                            revision="r", renderer="netplan", settings=jobs.JobSettings())
        return list(job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"])

    assert caps(plain) == ["NET_ADMIN"]
    assert caps(probed) == ["NET_ADMIN", "NET_RAW"]


def test_reconciler_run_can_choose_the_iproute2_fallback() -> None:
    import argparse

    from reconciler.loop import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    settings = cli.job_settings(parser.parse_args(["--node-job-activate", "iproute2"]))
    assert isinstance(settings, jobs.JobSettings) and settings.activate == "iproute2"
    assert cli.job_settings(parser.parse_args([])) == jobs.JobSettings()
