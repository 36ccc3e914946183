#!/bin/sh
# demo.sh - boot Debian: Debian 12's cloud kernel and a Debian 12 root image with
# systemd, made from Debian packages by scripts/debian-guest (a few minutes the
# first time, then cached). With a terminal on stdin you get the serial console,
# logged in as root (`poweroff` ends the VM); without one (CI, a pipe) the guest
# runs a short script with --run instead and microvm exits with its status. The
# image is used through a throw-away overlay: it stays as built.
# On a machine with no /dev/kvm at all, all of it runs in a nested KVM
# (scripts/nested-kvm). On a KVM whose guest user mode cannot make system calls
# (see docs/host-quirks.md), where no distribution can boot, a kernel-level
# demonstration with the project's own kernel (scripts/guest-image) instead: the
# kernel boots, finds its disk and NIC through ACPI, mounts root from virtio-blk
# and answers a ping from the host.
# Usage (as root, after scripts/setup.sh): scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."

DEB=build/debian-guest
OUT=build/linux-guest
MICROVM=build/vmm/microvm
start=$(date +%s)
say() { echo "demo: [$(( $(date +%s) - start )) s] $*"; }

[ -x "$MICROVM" ] || { echo "demo: $MICROVM is missing: run scripts/setup.sh first" >&2; exit 1; }
if [ ! -e /dev/kvm ] && [ -z "${DEMO_NESTED:-}" ]; then
	echo "demo: this machine has no /dev/kvm (it is itself a VM whose hypervisor does not"
	echo "demo: pass virtualization on). Running the demo inside a QEMU VM whose emulated"
	echo "demo: CPU has AMD-V, where KVM works (scripts/nested-kvm, docs/nested-kvm.md):"
	echo "demo: slow, and without a terminal, so the guest runs a script instead of a shell."
	sh scripts/debian-guest --out "$DEB"
	say "starting the nested KVM"
	exec sh scripts/nested-kvm --cpus 2 -- env DEMO_NESTED=1 DEMO_START="$start" sh scripts/demo.sh
fi
start=${DEMO_START:-$start}
# First the host (a few ms): without a usable /dev/kvm there is no point in
# building the guest; microvm's own message says what is missing.
if ! info=$("$MICROVM" --host-info); then
	echo "demo: microvm cannot use KVM on this machine (see the line above); nothing to boot" >&2
	exit 1
fi

if printf '%s\n' "$info" | grep -q '^user_syscalls: yes'; then
	# In the nested KVM the image was made outside, before it started.
	[ -n "${DEMO_NESTED:-}" ] || sh scripts/debian-guest --out "$DEB"
	# A throw-away overlay (docs/overlay.md) in /tmp: the image stays as it was built.
	export TMPDIR=/tmp
	set -- "$MICROVM" --kernel "$DEB/vmlinuz" --initrd "$DEB/initrd.img" --disk "$DEB/debian.ext4,overlay,id=root" \
		--mem 1G --cpus 2
	CMDLINE="console=ttyS0 root=/dev/vda rw net.ifnames=0 quiet"
	if [ -t 0 ] && [ -z "${DEMO_NESTED:-}" ]; then
		say "booting Debian 12 (systemd) on Debian's cloud kernel; you are root on its serial console;"
		say "'poweroff' ends the VM (changes go to a throw-away overlay), Ctrl-A x quits at once"
		exec "$@" --cmdline "$CMDLINE"
	fi
	# No terminal to type into: what the shell would show, as a --run script (docs/cli-runs.md).
	script=$(mktemp)
	trap 'rm -f "$script"' EXIT
	cat >"$script" <<-'EOF'
	echo "demo: Debian $(cat /etc/debian_version), kernel $(uname -r), $(nproc) CPU(s), systemd $(systemctl is-system-running --wait)"
	systemd-analyze | head -n 1
	grep ' / ' /proc/mounts
	ls -l /dev/disk/by-id/
	echo "demo: the date from microvm's CMOS clock: $(date -u)"
	echo hello >/root/demo.txt && cat /root/demo.txt
	exit 0
	EOF
	say "no terminal on stdin: booting Debian 12 (systemd) on Debian's cloud kernel to run a short script (--run)"
	status=0
	"$@" --cmdline "$CMDLINE" --run "$script" --timeout 600 || status=$?
	say "microvm exited with status $status (the script's)"
	exit "$status"
fi

# Guest user mode cannot make system calls here: the project's own kernel, at kernel level.
sh scripts/guest-image --out "$OUT"
cat <<'EOF'

demo: this host runs guest kernel code in KVM's instruction emulator and guest
demo: user mode cannot make system calls (microvm --host-info), so no guest
demo: program, and no shell, can run here. What does work, shown now: the
demo: kernel boots, finds its disk and NIC through ACPI, mounts root read-write
demo: from virtio-blk, configures eth0 (ip=) and answers pings from the host
demo: through a tap in a private network namespace. Its init (/spin) makes no
demo: system calls: it spins, then faults, and the kernel panics, which ends
demo: microvm (exit status 122, "guest kernel panicked"). Boot takes about a
demo: minute here; on hardware virtualization it takes well under a second.

EOF

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1; then
	echo "demo: the network part needs root and iproute2; booting without a NIC" >&2
	NETNS=""
else
	NETNS="microvm-demo-$$"
fi

cleanup() {
	[ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null || true
	rm -f "$LOG"
}
LOG=$(mktemp)
trap cleanup EXIT INT TERM

# Spin for about a minute of guest user time: long enough for the pings.
CMDLINE="console=ttyS0 root=/dev/vda rw panic=-1 init=/spin spin=60000000000"
if [ -n "$NETNS" ]; then
	ip netns add "$NETNS"
	ip -n "$NETNS" link set lo up
	ip -n "$NETNS" tuntap add dev tap0 mode tap
	ip netns exec "$NETNS" sysctl -q -w net.ipv6.conf.tap0.disable_ipv6=1
	ip -n "$NETNS" addr add 192.0.2.1/24 dev tap0
	ip -n "$NETNS" link set tap0 up
	CMDLINE="$CMDLINE ip=192.0.2.2::192.0.2.1:255.255.255.0::eth0:off"
	set -- ip netns exec "$NETNS" "$MICROVM" --net tap=tap0
else
	set -- "$MICROVM"
fi

"$@" --stats --kernel "$OUT/bzImage" --disk "$OUT/rootfs-spin.ext4" --mem 256M \
	--cmdline "$CMDLINE" </dev/null >"$LOG" 2>&1 &
VM=$!
tail -f "$LOG" --pid "$VM" &
TAIL=$!

if [ -n "$NETNS" ]; then
	# Wait for init to start (the network is configured before it), then ping.
	while kill -0 "$VM" 2>/dev/null && ! grep -q 'Run /spin as init process' "$LOG"; do
		sleep 1
	done
	if kill -0 "$VM" 2>/dev/null; then
		echo "demo: the guest kernel is up; pinging it from the host (192.0.2.1 -> 192.0.2.2)"
		ip netns exec "$NETNS" ping -c 3 -W 5 192.0.2.2 || echo "demo: ping failed" >&2
	fi
fi

status=0
wait "$VM" || status=$?
wait "$TAIL" 2>/dev/null || true
echo "demo: microvm exited with status $status"
case $status in
122) echo "demo: as expected: init faulted, the kernel panicked and told microvm (pvpanic)"; exit 0 ;;
*) exit "$status" ;;
esac
