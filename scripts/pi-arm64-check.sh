#!/usr/bin/env bash
# The release on the Pi's own architecture, without a Pi (NOT run in CI: it takes 20-40 minutes).
#
#   sudo bash scripts/pi-arm64-check.sh [WORKDIR]          (default /var/tmp/hall-edge-arm64)
#   BUNDLE=dist/hall-edge-0.2.0.tar  use this bundle instead of building one (needs aarch64 wheels)
#   TESTS="tests/test_release.py ..." the test files to run in the arm64 root (default below)
#   ROOTFS_ONLY=1                     stop after making the root file system
#
# 1. debootstrap an arm64 Debian bookworm root (Debian's debootstrap + qemu-user-static; the
#    kernel runs the arm64 binaries through qemu via binfmt_misc);
# 2. build a bundle for aarch64 with a throw-away release key (hall-admin release build);
# 3. inside the root, as a new Pi would: take the hall-edge wheel out of the bundle, run its
#    installer from it (`python3 -m edge install --bundle`), which builds
#    /opt/hall-edge/releases/VERSION/venv from the bundle's aarch64 wheels with no network;
# 4. `hall-edge selftest --print` and the given tests with the installed release's Python.
# Prints how long each phase took; the log of each phase is in WORKDIR.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/var/tmp/hall-edge-arm64}
ROOTFS=$WORK/rootfs
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TESTS=${TESTS:-tests/test_release.py tests/test_install.py tests/test_config.py tests/test_escpos.py tests/test_selftest.py}
mkdir -p "$WORK"
started=$(date +%s)
phase() { echo "[$(( $(date +%s) - started ))s] $*"; }

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap and chroot need it)"; exit 2; }
for tool in debootstrap qemu-aarch64-static; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install debootstrap qemu-user-static"; exit 2; }
done

# binfmt_misc: the kernel hands arm64 ELF files to qemu (F: the interpreter is opened now, so it
# works inside the chroot too).  Debian's qemu-user-static registers it where systemd runs.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        >/proc/sys/fs/binfmt_misc/register
fi

if [ ! -e "$ROOTFS/etc/debian_version" ] || [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    phase "debootstrap arm64 bookworm into $ROOTFS (log: $WORK/debootstrap.log)"
    rm -rf "$ROOTFS"
    # What a Raspberry Pi OS Lite image has that matters here: python3 with venv, Debian's
    # python3-spidev (no wheel on PyPI), systemd and udev (the installer enables the unit), passwd.
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-spidev,systemd,udev,passwd,mosquitto,ca-certificates \
        bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1
fi
phase "root ready: $(chroot "$ROOTFS" uname -m) $(chroot "$ROOTFS" python3 --version)"
[ -z "${ROOTFS_ONLY:-}" ] || exit 0

if [ -z "${BUNDLE:-}" ]; then
    phase "building an aarch64 bundle (log: $WORK/build.log)"
    rm -rf "$WORK/dist" "$WORK/rel.key"
    "$REPO/.venv/bin/hall-admin" keygen --release --kid rel-arm64-check -o "$WORK/rel.key" >"$WORK/build.log"
    "$REPO/.venv/bin/hall-admin" release build --out "$WORK/dist" --platform aarch64 \
        --key "$WORK/rel.key" --kid rel-arm64-check --source "$REPO" >>"$WORK/build.log" 2>&1
    BUNDLE=$(ls "$WORK"/dist/hall-edge-*.tar)
fi
phase "bundle $(basename "$BUNDLE"): $(du -h "$BUNDLE" | cut -f1)"

# The checkout's tests and the files they read, but not its edge/: the tests import the release.
rm -rf "$ROOTFS/srv/hall-edge" && mkdir -p "$ROOTFS/srv/hall-edge" "$ROOTFS/srv/bundle"
(cd "$REPO" && tar cf - tests docs systemd firmware_config pyproject.toml README.md bench) |
    tar xf - -C "$ROOTFS/srv/hall-edge"
cp "$BUNDLE" "$ROOTFS/srv/bundle/"
for fs in proc sys dev; do mountpoint -q "$ROOTFS/$fs" || mount --bind "/$fs" "$ROOTFS/$fs"; done
trap 'for fs in dev sys proc; do umount -l "$ROOTFS/$fs" 2>/dev/null || true; done' EXIT
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

phase "installing the bundle in the arm64 root (log: $WORK/install.log)"
chroot "$ROOTFS" sh -ec '
    cd /srv/bundle
    rm -rf opt && tar xf hall-edge-*.tar --wildcards "wheels/hall_edge-*"
    PYTHONPATH=$(ls wheels/hall_edge-*.whl) python3 -m edge install --bundle hall-edge-*.tar
    ls -l /opt/hall-edge /opt/hall-edge/releases
' >"$WORK/install.log" 2>&1 || { tail -20 "$WORK/install.log"; exit 1; }
tail -12 "$WORK/install.log"

phase "selftest --print (log: $WORK/selftest.log)"
chroot "$ROOTFS" sh -c '/opt/hall-edge/current/venv/bin/python -m edge version &&
    runuser -u hall-edge -- /opt/hall-edge/current/venv/bin/python -m edge selftest --print \
        --config /etc/hall-edge/hall-edge.toml' >"$WORK/selftest.log" 2>&1 && status=0 || status=$?
cat "$WORK/selftest.log"
phase "selftest exit $status (1: a row failed, expected without the hall's hardware)"

phase "tests: $TESTS (log: $WORK/tests.log)"
chroot "$ROOTFS" sh -ec "
    # The throw-away root's release venv gets the test tools: the tests run on the release's own files.
    /opt/hall-edge/current/venv/bin/python -m pip install --quiet pytest hypothesis jsonschema pytest-timeout segno
    cd /srv/hall-edge && /opt/hall-edge/current/venv/bin/python -m pytest -q -p no:cacheprovider \\
        -o addopts='-m \"not bench\"' $TESTS
" >"$WORK/tests.log" 2>&1 && status=0 || status=$?
tail -25 "$WORK/tests.log"
phase "tests exit $status; total $(( $(date +%s) - started ))s"
