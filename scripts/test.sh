#!/bin/sh
# test.sh - build and run the whole test suite twice: the normal build (build/) and an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/); then every libFuzzer
# harness for a bounded time (build-fuzz/, scripts/fuzz.sh; FUZZ_SECONDS per harness, default 60),
# with the benchmarks' smoke run (bench/run --smoke, a few seconds) before the fuzzers.
# First it makes the Linux guest for the 'linux' suite with scripts/guest-image
# (kernel built once, ~8-16 min on 2 cores, then cached; the root images take
# seconds) and points the tests at it with MICROVM_LINUX_GUEST.
# Usage: scripts/setup.sh && scripts/test.sh
set -eu
cd "$(dirname "$0")/.."

status=0
echo "=== Linux guest (scripts/guest-image) ==="
if ! sh scripts/guest-image --out build/linux-guest; then
	# Go on: the linux suite then fails with the reason, the other suites still run.
	echo "test.sh: scripts/guest-image failed; the 'linux' suite will fail" >&2
	status=1
fi
MICROVM_LINUX_GUEST=$(pwd)/build/linux-guest
export MICROVM_LINUX_GUEST

[ -f build/build.ninja ] || meson setup build
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false

# The 'linux' suite (two real Linux boots, ~1-2 min each here) runs in both builds:
# under ASan+UBSan it drives microvm's virtio-blk/net and SMP paths with Linux's own
# drivers, which the test guest does not. Both builds together add ~5 min.
for dir in build build-asan; do
	echo "=== $dir ==="
	ninja -C "$dir"
	# halt_on_error: a sanitizer report fails the test instead of scrolling by.
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

# No /dev/kvm here (a VM whose hypervisor does not pass virtualization on): the guest-level and
# Linux tests above skipped. Run the Linux suite and the seccomp, misbehaving-guest and soak
# cases in a QEMU VM with an emulated AMD-V CPU, where KVM works (scripts/nested-kvm,
# docs/nested-kvm.md; a few minutes). A VM that dies without reporting (its kernel, not our
# test) gets one more try.
if [ ! -e /dev/kvm ]; then
	echo "=== no /dev/kvm: the linux suite and selected guest cases in a nested KVM (scripts/nested-kvm) ==="
	rm -f build/meson-logs/nested-linux.json build-asan/meson-logs/nested-guest.json build/meson-logs/nested-missing
	nested_cases="seccomp-kills-main seccomp-kills-vcpu seccomp-kills-io seccomp-kills-console seccomp-kills-io-sync \
		blk-soak-uring blk-soak-sync blk-abuse-garbage-uring blk-abuse-order-uring blk-abuse-midreset-uring \
		blk-abuse-midreset-sync check-unmapped check-rtc triple-fault net-arp-ping-uring"
	# One meson run per suite (mixing the serial linux tests with parallel ones once stalled),
	# each bounded; the command's status is the worse of the two. The Linux boots use the
	# plain build (the real seccomp policy), the guest cases the ASan+UBSan build.
	nested_cmd="rc=0
		timeout 900 meson test -C build --no-rebuild --print-errorlogs --logbase nested-linux --suite linux || rc=1
		ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \\
		timeout 900 meson test -C build-asan --no-rebuild --print-errorlogs --logbase nested-guest $nested_cases || rc=1
		exit \$rc"
	for try in 1 2; do
		rc=0
		sh scripts/nested-kvm -- sh -c "$nested_cmd" || rc=$?
		[ -f build-asan/meson-logs/nested-guest.json ] && break
		echo "test.sh: the nested VM ended without results (try $try)" >&2
	done
	[ $rc -eq 0 ] || status=1
	[ -f build-asan/meson-logs/nested-guest.json ] || : >build/meson-logs/nested-missing
fi

# The benchmarks' smoke run (a few seconds): the harnesses still build and run, and what they
# read back is what they wrote. Slowness never fails it; a crash or a wrong result does.
echo "=== bench/run --smoke ==="
python3 bench/run --smoke --out build/bench-smoke || status=1

# Every libFuzzer harness with ASan+UBSan for a bounded time (build-fuzz/, clang; two at a
# time: 7 harnesses x 60 s take about 4 minutes). A crash, leak or timeout fails the run;
# scripts/fuzz.sh prints the reproducer. See docs/fuzzing.md.
echo "=== build-fuzz (scripts/fuzz.sh) ==="
rm -rf build-fuzz/fuzz-run
FUZZ_OUT=$(pwd)/build-fuzz/fuzz-run sh scripts/fuzz.sh "${FUZZ_SECONDS:-60}" || status=1

# One summary line over both builds and the fuzzers, in the form CI systems read.
python3 - <<'PY'
import json, os
passed = failed = skipped = 0
# scripts/fuzz.sh: one line per harness, "NAME ok" or "NAME failed".
fuzz = os.path.join("build-fuzz", "fuzz-run", "summary")
if os.path.exists(fuzz):
    for line in open(fuzz):
        if line.split()[1:] == ["ok"]:
            passed += 1
        else:
            failed += 1
else:
    failed += 1   # the fuzzers did not get as far as running
for path in (os.path.join("build", "meson-logs", "testlog.json"),
             os.path.join("build-asan", "meson-logs", "testlog.json"),
             os.path.join("build", "meson-logs", "nested-linux.json"),
             os.path.join("build-asan", "meson-logs", "nested-guest.json")):
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
if os.path.exists(os.path.join("build", "meson-logs", "nested-missing")):
    failed += 1   # the nested KVM run (no /dev/kvm here) reported nothing
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
