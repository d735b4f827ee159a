#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole hall in simulation until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hall-sim demo "$@"
