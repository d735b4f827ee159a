#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs lint, format check, type check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy  # what and how: [tool.mypy] in pyproject.toml
echo "== pytest"
exec .venv/bin/python -m pytest -q "$@"
