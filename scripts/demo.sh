#!/usr/bin/env bash
# Installs the reconciler into .venv and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/reconciler validate example-repo
