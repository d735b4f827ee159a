#!/usr/bin/env bash
# Installs what hall-edge needs on a fresh Debian 12 machine: apt packages,
# a virtualenv in .venv and the package with its test extra. Idempotent:
# a second run installs nothing unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# ca-certificates: pip needs it for HTTPS; systemd: systemd-analyze checks our unit files.
# espeak-ng: the voice's default clips; alsa-utils: aplay, the voice's output.
# chromium, chromium-driver: the staff console's browser tests (selenium drives Debian's browser).
# faketime: bench/chaos.py jumps the daemon's wall clock.
APT_PACKAGES="mosquitto fonts-unifont xfonts-wqy python3 python3-venv python3-pip ca-certificates systemd espeak-ng alsa-utils chromium chromium-driver faketime"
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
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "hall-edge needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
  echo "Set PYTHON=/path/to/python3.11 and run this again." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "== venv: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

stamp=".venv/.hall-edge-installed"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ] || ! .venv/bin/python -c 'import edge, hallsim' 2>/dev/null; then
  echo "== pip: installing hall-edge[test] into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  echo "$wanted" > "$stamp"
fi
