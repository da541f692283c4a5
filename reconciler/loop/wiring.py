"""Builds the loop's parts from flags: the source, the per-cycle report hooks, the read API."""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.loop.metrics import Metrics
from reconciler.loop.runner import CycleHook, LocalSource, Source
from reconciler.pipeline import Connect


def is_remote(repo: str) -> bool:
    return "://" in repo or repo.startswith("git@")


def build_source(args: argparse.Namespace) -> Source:
    if not is_remote(str(args.repo)):
        return LocalSource(str(args.repo))
    raise RuntimeError("Git remotes are not supported yet")


def after_cycle_hooks(args: argparse.Namespace, metrics: Metrics) -> list[CycleHook]:
    return []


def read_api(connect: Connect, namespace: str) -> Any:
    return None
