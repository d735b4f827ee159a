#!/usr/bin/env bash
# Installs what hall-edge needs on a fresh Debian 12 machine: apt packages,
# a virtualenv in .venv and the package with its test extra. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES="mosquitto fonts-unifont xfonts-wqy python3-venv python3-pip systemd"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "== apt: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The test suite and the demo run their own broker; the system one is not used.

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== venv: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "== pip: installing hall-edge[test] into .venv"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
