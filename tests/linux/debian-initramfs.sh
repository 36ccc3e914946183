#!/bin/sh
# /init of initrd-busybox.img (scripts/debian-guest): a tiny initramfs for
# Debian's cloud kernel, where virtio_mmio, virtio_blk, virtio_net and ext4
# are modules. Loads them (virtio_mmio finds microvm's devices through ACPI),
# waits for root= (a /dev/vdX path), mounts it (rw or ro as the command line
# says) and hands over to its init (init= on the command line, else /sbin/init).
# Any failure drops to a shell on the console, after saying why; in a --run boot
# (microvm.run= on the command line: nobody at the console) it exits instead, the
# kernel panics and microvm ends (status 122 with pvpanic).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

root= init=/sbin/init mode=ro
for word in $(cat /proc/cmdline); do
	case "$word" in
	root=*) root=${word#root=} ;;
	init=*) init=${word#init=} ;;
	rw) mode=rw ;;
	ro) mode=ro ;;
	esac
done
fail() {
	if grep -q 'microvm.run=' /proc/cmdline; then
		echo "initramfs: $*; this is a --run boot: giving up (the kernel panics)" >&2
		exit 1
	fi
	echo "initramfs: $*; a shell follows" >&2
	exec sh
}
for m in virtio_mmio virtio_blk virtio_net; do
	modprobe "$m" || fail "modprobe $m failed"
done
# ext4 is built into Debian's kernels; a module elsewhere.
grep -qw ext4 /proc/filesystems || modprobe ext4 || fail "no ext4 in this kernel"
# ext4's checksums need a crc32c implementation, a module in Debian's generic kernel.
modprobe -q crc32c_intel || true
modprobe -q crc32c_generic || true
echo "initramfs: loaded virtio_mmio virtio_blk virtio_net; ext4 ready"
case "$root" in
/dev/*) ;;
*) fail "root=$root: this initramfs takes a /dev path (root=/dev/vda)" ;;
esac
i=0
while [ ! -b "$root" ]; do
	i=$((i + 1))
	[ "$i" -le 100 ] || fail "$root did not appear in 10 s"
	sleep 0.1
done
mount -t ext4 -o "$mode" "$root" /newroot || fail "cannot mount $root"
echo "initramfs: $root mounted $mode; switch_root to $init"
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "$init"
