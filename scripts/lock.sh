#!/usr/bin/env bash
# Refreshes the lock files in requirements/ from pyproject.toml and sandbox/pyproject.toml:
# exact versions and sha256 hashes of every third-party distribution, for CPython 3.11 on Linux.
#   runtime.txt  the product alone (Dockerfile)
#   demo.txt     product + sandbox (scripts/setup.sh, scripts/demo.sh)
#   dev.txt      product + test extra + sandbox (scripts/setup.sh --with-test-tools, CI)
# Run it after changing a dependency range, then commit requirements/*.txt with that change.
# Usage: scripts/lock.sh [--upgrade]   (without --upgrade, versions already locked are kept)
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-}
if [ -z "$UV" ]; then
  if command -v uv >/dev/null 2>&1; then UV=uv; else
    python3 -m venv .work/lock-tools >/dev/null
    .work/lock-tools/bin/pip install -q 'uv>=0.5'
    UV=.work/lock-tools/bin/uv
  fi
fi
upgrade=()
[ "${1:-}" = "--upgrade" ] && upgrade=(--upgrade)
for name in runtime demo dev; do
  "$UV" pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --no-header "${upgrade[@]}" \
    --no-emit-package multinic-reconciler --no-emit-package multinic-sandbox \
    "requirements/$name.in" -o "requirements/$name.txt"
done
echo "lock: requirements/{runtime,demo,dev}.txt refreshed"
