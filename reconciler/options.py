"""Flags shared by the commands that read a config repo and talk to a cluster.

Every flag also reads an environment variable (``MULTINIC_<FLAG>``), so the Helm chart can
configure ``reconciler run`` through env; an explicit flag wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.kube.client import Kube
    from reconciler.source.local import Checkout
    from reconciler.source.opening import SourceSpec


def env_default(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MULTINIC_{name}", default)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=env_default("REPO", "."),
                        help="config repo: a local checkout or a Git URL (env MULTINIC_REPO; default .)")
    parser.add_argument("--branch", default=env_default("BRANCH"),
                        help="branch to follow for a Git URL (env MULTINIC_BRANCH; default: the remote's HEAD)")
    parser.add_argument("--tag", default=env_default("TAG"),
                        help="follow this tag of a Git URL instead of a branch (env MULTINIC_TAG)")
    parser.add_argument("--commit", default=env_default("COMMIT"),
                        help="pin a Git URL to this commit id (env MULTINIC_COMMIT)")
    parser.add_argument("--verify-signatures", choices=("none", "head"),
                        default=env_default("VERIFY_SIGNATURES", "none"),
                        help="head: reconcile only a followed commit with a trusted signature, keeping the "
                             "last good one otherwise (env MULTINIC_VERIFY_SIGNATURES; default none)")
    parser.add_argument("--allowed-signers", metavar="FILE", default=env_default("ALLOWED_SIGNERS"),
                        help="SSH allowed-signers file of trusted keys (env MULTINIC_ALLOWED_SIGNERS)")
    parser.add_argument("--gpg-home", metavar="DIR", default=env_default("GPG_HOME"),
                        help="GnuPG home holding the trusted keys (env MULTINIC_GPG_HOME)")


def add_writer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--writers``: the commands that write custom resources (apply, run)."""
    parser.add_argument("--writers", type=_positive, default=env_default("WRITERS", "8"),
                        help="CR applies and status patches in flight at once (default 8; env MULTINIC_WRITERS)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def add_kube_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=env_default("KUBECONFIG"),
                        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
    parser.add_argument("--context", default=env_default("CONTEXT"), help="kubeconfig context")
    parser.add_argument("--namespace", "-n", default=env_default("NAMESPACE"),
                        help="namespace of the live objects (default: spec.namespace of reconciler.yaml)")


def source_spec(args: argparse.Namespace) -> SourceSpec:
    """The config repo the flags (or their env) describe."""
    from reconciler.source.opening import SourceSpec

    return SourceSpec(url=str(args.repo), branch=args.branch or None, tag=args.tag or None,
                      commit=args.commit or None, verify=args.verify_signatures,
                      allowed_signers=Path(args.allowed_signers) if args.allowed_signers else None,
                      gpg_home=Path(args.gpg_home) if args.gpg_home else None)


@contextmanager
def open_source(args: argparse.Namespace) -> Iterator[Checkout]:
    """One checkout of the config repo for ``plan`` / ``apply --once``."""
    from reconciler.source.opening import one_checkout

    with one_checkout(source_spec(args)) as checkout:  # SourceError is a RuntimeError
        yield checkout


def kube_connector(args: argparse.Namespace) -> Callable[[str], Kube]:
    """Returns ``connect(namespace)``; the namespace is known only once reconciler.yaml is read."""

    def connect(namespace: str) -> Kube:
        from reconciler.kube.client import Kube, KubeError, api_client

        try:
            api = api_client(args.kubeconfig, args.context)
        except KubeError as exc:
            raise RuntimeError(str(exc)) from None
        return Kube(api, args.namespace or namespace)

    return connect
