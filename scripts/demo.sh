#!/usr/bin/env bash
# Installs the reconciler into .venv, validates the example config repo, and runs the demo:
# the whole GitOps flow against local Kubernetes and Proxmox VE sandboxes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/reconciler validate example-repo
exec .venv/bin/reconciler demo --workdir .work/demo
