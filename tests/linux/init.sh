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
# --run (docs/cli-runs.md): microvm put a script on a read-only disk, named by
# microvm.run=/dev/vdX on the command line, after a header line
# "MICROVM-RUN v1 LEN". Run it, report its status on microvm's exit-status
# port with microvm-exit (126: the disk is not a run disk), power off.
run_dev=
for word in $(cat /proc/cmdline); do
	case "$word" in microvm.run=*) run_dev=${word#microvm.run=} ;; esac
done
if [ -n "$run_dev" ]; then
	status=126
	header=$(head -n 1 "$run_dev" 2>/dev/null)
	set -- $header
	case "$#:$1 $2:$3" in
	"3:MICROVM-RUN v1:"*[!0-9]*|"3:MICROVM-RUN v1:")
		echo "init: $run_dev: bad script length in '$header'" >&2 ;;
	"3:MICROVM-RUN v1:"*)
		tail -c +$(( ${#header} + 2 )) "$run_dev" | head -c "$3" > /tmp/run.sh
		echo "init: running the --run script ($3 bytes from $run_dev)"
		(cd /root && sh /tmp/run.sh)
		status=$?
		echo "init: the --run script exited with status $status" ;;
	*)
		echo "init: $run_dev: not a microvm run disk (first line '$header')" >&2 ;;
	esac
	sync
	microvm-exit "$status"
	echo "init: microvm-exit $status failed; powering off (microvm then exits 123)" >&2
	mount -o remount,ro /
	poweroff -f
fi
echo "init: $(uname -sr), root $(grep ' / ' /proc/mounts | cut -d' ' -f1,4); exit the shell to power off"
setsid cttyhack sh -l
echo "init: shell exited, powering off"
mount -o remount,ro /
poweroff -f
