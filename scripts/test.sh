#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs lint, format check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== pytest"
exec .venv/bin/python -m pytest -q "$@"
