#!/usr/bin/env bash
# Installs what the tests need (Debian packages, .venv) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-tools
export PATH="$PWD/.venv/bin:$PWD/.tools/bin:$PATH"
.venv/bin/ruff check reconciler sandbox tests bench
.venv/bin/lint-imports
.venv/bin/mypy  # strict on reconciler/ (pyproject.toml [tool.mypy])
exec .venv/bin/python -m pytest "$@"
