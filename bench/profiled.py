"""``python bench/profiled.py OUT_DIR reconciler-args...``: the reconciler CLI, with profilers that
``bench/loop.py --profile`` switches from outside by signals (the product carries no profiling code).

- SIGUSR1 toggles cProfile on the main thread (where the loop's cycles run): the first signal
  starts it, the second writes ``OUT_DIR/<n>.pstats`` (n counts from 1);
- SIGUSR2 writes a tracemalloc snapshot ``OUT_DIR/<n>.tracemalloc`` when the process was started
  with ``PYTHONTRACEMALLOC`` set (every allocation traced from the first import on).
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
        if tracemalloc.is_tracing():
            counts["tracemalloc"] += 1
            tracemalloc.take_snapshot().dump(str(out / ".tracemalloc.tmp"))
            os.replace(out / ".tracemalloc.tmp", out / f"{counts['tracemalloc']}.tracemalloc")

    signal.signal(signal.SIGUSR1, toggle)
    signal.signal(signal.SIGUSR2, snapshot)
    from reconciler.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
