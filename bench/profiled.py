"""``python bench/profiled.py OUT_DIR reconciler-args...``: the reconciler CLI, with profilers that
``bench/loop.py --profile`` switches from outside by signals (the product carries no profiling code).

- SIGUSR1 toggles cProfile on the main thread (where the loop's cycles run): the first signal
  starts it, the second writes ``OUT_DIR/<n>.pstats`` (n counts from 1);
- SIGUSR2 writes a tracemalloc snapshot ``OUT_DIR/<n>.tracemalloc`` when the process was started
  with ``PYTHONTRACEMALLOC`` set (every allocation traced from the first import on), and
  otherwise a census in the same file name (``bench/loop.py --census``): the collector's objects by
  type, the deep bytes under each long-lived holder (``HOLDERS``), and pymalloc's arena statistics
  with the RSS before and after ``malloc_trim``.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def census() -> str:
    """Objects the collector tracks, by type: count and shallow bytes (largest first), and the
    strings and numbers they hold (not tracked themselves, counted once each)."""
    import gc
    from collections import Counter
    gc.unfreeze()  # the loop freezes its long-lived heap: frozen objects are not listed
    number: Counter[str] = Counter()
    size: Counter[str] = Counter()
    leaves: dict[int, object] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        number[name] += 1
        size[name] += sys.getsizeof(obj)
        items = obj.values() if kind is dict else obj if kind in (list, tuple) else ()
        for value in items:
            if type(value) in (str, bytes, int, float):
                leaves[id(value)] = value
        if kind is dict:
            for key in obj:
                if type(key) is str:
                    leaves[id(key)] = key
    held = holders(gc.get_objects())
    gc.freeze()
    for leaf in leaves.values():
        name = type(leaf).__name__
        number[name] += 1
        size[name] += sys.getsizeof(leaf)
    lines = [f"{size[k] / 1e6:9.1f} MB {number[k]:10d} {k}" for k, _ in size.most_common(60)]
    return (f"total {sum(size.values()) / 1e6:.1f} MB\n" + "\n".join(lines) + "\n" + held + "\n"
            + allocators())


HOLDERS = ("reconciler.kube.cache.Informer", "reconciler.config.validation.FileMemo",
           "reconciler.report.status.StatusMemo", "reconciler.report.gitstatus.RenderMemo",
           "reconciler.source.git.GitSource", "reconciler.pipeline.Cycle", "reconciler.loop.runner.Runner")


def holders(objects: list[Any]) -> str:
    """Deep bytes reachable from each long-lived holder, in HOLDERS order (an object shared by two
    is counted for the first); classes, modules and functions are not followed."""
    seen: set[int] = set()
    out = []
    for holder in HOLDERS:
        found = [o for o in objects if f"{type(o).__module__}.{type(o).__qualname__}" == holder]
        total, count = deep(found, seen)
        out.append(f"{total / 1e6:9.1f} MB {count:10d} objects under {len(found)} {holder}")
    return "\n".join(out) + "\n" + cached_parts(objects)


def deep(roots: list[Any], seen: set[int]) -> tuple[int, int]:
    """Bytes and number of the objects reachable from ``roots`` not in ``seen`` (which grows)."""
    import gc
    import types
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    total, count, stack = 0, 0, list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, skip):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        count += 1
        stack.extend(gc.get_referents(item))
    return total, count


def cached_parts(objects: list[Any]) -> str:
    """Deep bytes of each informer's objects by top-level part (metadata, spec, status, ...) and,
    under metadata, by key: where a cached object's memory goes (shared strings counted once)."""
    out = []
    for informer in (o for o in objects if type(o).__qualname__ == "Informer"):
        parts: dict[str, int] = {}
        seen: set[int] = set()
        cached = list(informer._objects.values())
        for obj in cached:
            for key, value in obj.items():
                if key == "metadata" and isinstance(value, dict):
                    for sub, part in value.items():
                        parts[f"metadata.{sub}"] = parts.get(f"metadata.{sub}", 0) + deep([part], seen)[0]
                else:
                    parts[key] = parts.get(key, 0) + deep([value], seen)[0]
        shown = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v > 1e5)
        out.append(f"{informer.kind}: {len(cached)} objects, MB by part: {shown}")
    return "\n".join(out)


def allocators() -> str:
    """pymalloc's arenas (sys._debugmallocstats) and what glibc's malloc_trim gives back."""
    import ctypes
    import tempfile

    def rss() -> str:
        return next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS"))
    before = rss()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        stats = capture.read().decode(errors="replace")
    tail = stats[stats.find("# arenas allocated total"):stats.find("arena map counts")]
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return f"{before}\nafter malloc_trim: {rss()}\n{tail}"


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    profile: list[cProfile.Profile] = []
    counts = {"pstats": 0, "tracemalloc": 0}

    def toggle(signum: int, frame: Any) -> None:
        if profile:
            running = profile.pop()
            running.disable()
            counts["pstats"] += 1
            running.dump_stats(str(out / ".pstats.tmp"))
            os.replace(out / ".pstats.tmp", out / f"{counts['pstats']}.pstats")  # appears complete
        else:
            profile.append(cProfile.Profile())
            profile[0].enable()

    def snapshot(signum: int, frame: Any) -> None:
        counts["tracemalloc"] += 1
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(out / ".tracemalloc.tmp"))
        else:
            (out / ".tracemalloc.tmp").write_text(census())
        os.replace(out / ".tracemalloc.tmp", out / f"{counts['tracemalloc']}.tracemalloc")

    signal.signal(signal.SIGUSR1, toggle)
    signal.signal(signal.SIGUSR2, snapshot)
    from reconciler.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
