"""Flags shared by the commands that read a config repo and talk to a cluster.

Every flag also reads an environment variable (``MULTINIC_<FLAG>``), so the Helm chart can
configure ``reconciler run`` through env; an explicit flag wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.kube.client import Kube
    from reconciler.source.local import Checkout


def is_remote(repo: str) -> bool:
    """A Git URL (https://, ssh://, git://, file://, git@host:path) rather than a local directory."""
    return "://" in repo or repo.startswith("git@")


def env_default(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MULTINIC_{name}", default)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=env_default("REPO", "."),
                        help="config repo: a local checkout or a Git URL (env MULTINIC_REPO; default .)")
    parser.add_argument("--branch", default=env_default("BRANCH"),
                        help="branch to follow for a Git URL (env MULTINIC_BRANCH; default: the remote's HEAD)")


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


@contextmanager
def open_source(args: argparse.Namespace) -> Iterator[Checkout]:
    from reconciler.source.local import open_directory

    repo = str(args.repo)
    if is_remote(repo):
        from reconciler.source.git import GitSource  # type: ignore[import-not-found]

        with GitSource.temporary(repo, branch=args.branch) as checkout:
            yield checkout
        return
    if not os.path.isdir(repo):
        raise RuntimeError(f"{repo}: not a directory")
    yield open_directory(repo)


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
