#!/bin/sh
# setup.sh - install the Debian 12 packages microvm needs, then configure and build it in build/.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -eu
cd "$(dirname "$0")/.."

# fio: the block benchmark's limit (bench/run, docs/benchmarks.md); fio, iperf3: table 9's host side
# (bench/vm.py --only workload). qemu-system-x86, cpio, kmod,
# busybox-static: scripts/nested-kvm, where /dev/kvm is missing (docs/nested-kvm.md).
# debootstrap: the Debian guest (scripts/debian-guest, docs/debian-guest.md).
# dmsetup, e2fsprogs: the power-cut test (dm-log-writes, mke2fs/debugfs/e2fsck; docs/powercut.md).
# scdoc: the man page (man/microvm.1.scd); bash-completion: where its completions go (pkg-config);
# debhelper, lintian, man-db: the Debian package and its test (debian/, scripts/deb-test).
# systemd: systemd-analyze for the unit's test (systemd/test_unit.py; it need not be PID 1). promtool
# (package prometheus, 330 MB) is left out: tests/unit/vmm/api/test_prom.c reads the exposition
# with its own strict parser, and with promtool too where it is installed.
PACKAGES="build-essential meson ninja-build pkg-config python3 \
  libfdt-dev zlib1g-dev liburing-dev libcriterion-dev liblz4-dev libzstd-dev liblzma-dev libjson-c-dev libseccomp-dev libhttp-parser-dev \
  acpica-tools gzip lz4 zstd xz-utils iproute2 \
  fio iperf3 \
  debootstrap dmsetup e2fsprogs \
  scdoc bash-completion debhelper lintian man-db systemd \
  qemu-system-x86 cpio kmod busybox-static \
  clang libclang-rt-14-dev"   # clang + libFuzzer runtime: scripts/fuzz.sh (docs/fuzzing.md)

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "setup: installing$missing"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

[ -f build/build.ninja ] || meson setup build
ninja -C build
