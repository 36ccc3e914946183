#!/bin/sh
# demo.sh - build the project's Linux guest and boot it: a shell on hosts with
# hardware virtualization; on hosts whose guest user mode cannot make system
# calls (see docs/host-quirks.md), a kernel-level demonstration instead: the
# kernel boots, finds its disk and NIC through ACPI, mounts root from
# virtio-blk and answers a ping from the host. Without a terminal on stdin (CI,
# a pipe) the shell part runs a short script with --run instead. On a machine
# with no /dev/kvm at all, all of it runs in a nested KVM (scripts/nested-kvm).
# Usage (as root, after scripts/setup.sh): scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."

OUT=build/linux-guest
MICROVM=build/vmm/microvm

[ -x "$MICROVM" ] || { echo "demo: $MICROVM is missing: run scripts/setup.sh first" >&2; exit 1; }
if [ ! -e /dev/kvm ] && [ -z "${DEMO_NESTED:-}" ]; then
	echo "demo: this machine has no /dev/kvm (it is itself a VM whose hypervisor does not"
	echo "demo: pass virtualization on). Running the demo inside a QEMU VM whose emulated"
	echo "demo: CPU has AMD-V, where KVM works (scripts/nested-kvm, docs/nested-kvm.md):"
	echo "demo: slow, and without a terminal, so the guest runs a script instead of a shell."
	sh scripts/guest-image --out "$OUT"
	exec sh scripts/nested-kvm -- env DEMO_NESTED=1 sh scripts/demo.sh
fi
# First the host (a few ms): without a usable /dev/kvm there is no point in
# building the guest; microvm's own message says what is missing.
if ! info=$("$MICROVM" --host-info); then
	echo "demo: microvm cannot use KVM on this machine (see the line above); nothing to boot" >&2
	exit 1
fi
sh scripts/guest-image --out "$OUT"

if printf '%s\n' "$info" | grep -q '^user_syscalls: yes'; then
	if [ -t 0 ] && [ -z "${DEMO_NESTED:-}" ]; then
		echo "demo: booting Linux with root on virtio-blk; exit the shell to power off"
		exec "$MICROVM" --kernel "$OUT/bzImage" --disk "$OUT/rootfs.ext4" --mem 256M \
			--cmdline "console=ttyS0 root=/dev/vda rw"
	fi
	# No terminal to type into: what the shell would show, as a --run script (docs/cli-runs.md).
	script=$(mktemp)
	trap 'rm -f "$script"' EXIT
	{
		echo 'echo "demo: a shell in the guest: $(uname -sr), $(grep -c ^processor /proc/cpuinfo) CPU(s)"'
		echo "grep ' / ' /proc/mounts"
		echo 'echo "demo: the date from microvm'"'"'s CMOS clock: $(date -u)"'
		echo 'echo hello > /root/demo.txt && cat /root/demo.txt && rm /root/demo.txt'
		echo 'exit 0'
	} >"$script"
	echo "demo: no terminal on stdin: booting Linux with root on virtio-blk to run a short script (--run)"
	status=0
	"$MICROVM" --kernel "$OUT/bzImage" --disk "$OUT/rootfs.ext4" --mem 256M \
		--cmdline "console=ttyS0 root=/dev/vda rw panic=-1" --run "$script" --timeout 300 || status=$?
	echo "demo: microvm exited with status $status (the script's)"
	exit "$status"
fi

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
