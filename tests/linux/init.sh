#!/bin/sh
# tests/linux/init.sh - /init (and /sbin/init) of rootfs.ext4, the busybox
# shell image built by scripts/guest-image (see docs/linux-guest.md).
# Mounts /proc, /sys, /dev, /tmp; brings lo up (eth0's address, if any, was
# already set by the kernel's ip= autoconfiguration); gives a shell on the
# console; when the shell exits, remounts / read-only and powers off, which
# ends the VM (microvm exits 0 on ACPI S5).
# With microvm.run=/dev/vdX on the command line (microvm --run SCRIPT) it
# runs the script from that disk instead of the shell, reports its status
# with microvm-exit and powers off (docs/cli-runs.md).
# It needs system calls from user mode: on hosts where guest user mode cannot
# make them (KVM without VT-x/AMD-V) use rootfs-spin.ext4 instead.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
hostname microvm
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip -4 addr show dev eth0
fi
# --run (docs/cli-runs.md): microvm-run runs the script named by microvm.run= on
# the command line and reports its status (microvm then ends the VM); it
# returns only when there is no such word, or when reporting failed.
if grep -q 'microvm.run=' /proc/cmdline; then
	microvm-run
	mount -o remount,ro /
	poweroff -f
fi
echo "init: $(uname -sr), root $(grep ' / ' /proc/mounts | cut -d' ' -f1,4); exit the shell to power off"
setsid cttyhack sh -l
echo "init: shell exited, powering off"
mount -o remount,ro /
poweroff -f
