#!/bin/sh
# test.sh - build and run the whole test suite twice: the normal build (build/) and an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/); then every libFuzzer
# harness for a bounded time (build-fuzz/, scripts/fuzz.sh; FUZZ_SECONDS per harness, default 60),
# with the benchmarks' smoke run (bench/run --smoke, a few seconds) before the fuzzers.
# First it makes the Linux guest for the 'linux' suite with scripts/guest-image
# (kernel built once, ~8-16 min on 2 cores, then cached; the root images take
# seconds) and points the tests at it with MICROVM_LINUX_GUEST.
# Without /dev/kvm, the KVM suites then run in a nested KVM (scripts/nested-kvm; see below).
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

# No /dev/kvm here (our CI machines): the guest-level and Linux tests above skipped, saying
# so. They run now in a QEMU VM with an emulated AMD-V CPU, where KVM works and behaves like
# hardware virtualization (scripts/nested-kvm, docs/nested-kvm.md): every test that needs
# KVM, once, in three parts, each a meson run of its own:
#   guest  plain build: suite 'guest' but 'fault' (boot formats, firmware, disks, NICs,
#          --run, --stats, ...: ~150 tests);
#   linux  plain build: suite 'linux' (the Linux guest's boots and its snapshot; the Linux
#          variant of the power cut, powercut-linux, is left to a run by hand: the nested
#          VM's kernel wedged during it here, docs/powercut.md);
#   fault  ASan+UBSan build: suite 'fault' (every misbehaving-guest, hostile-input, fault,
#          soak and sandbox case, the console, the control API, snapshots, the power cut:
#          the cases where a sanitizer report matters most).
# Tests get 3x their timeouts there (software-emulated CPU). The whole guest suite under the
# sanitizers would take ~40 min more; run it by hand (docs/nested-kvm.md).
# Measured in a fresh clone's .ci/run here on 2026-12-06 (2 cores, QEMU 7.2, kernel cached;
# docs/nested-kvm.md): guest 627 s, linux 89 s, fault 298 s, plus ~1 min of VM boot: ~18 min;
# the whole run 44 min, of which 15 were a first try that hung (see below). A fresh machine adds
# the Linux guest's kernel (~15 min): ~45 min without a hang, ~60 with one; CI's limit is 90.
if [ ! -e /dev/kvm ]; then
	echo "=== no /dev/kvm: the KVM suites in a nested KVM (scripts/nested-kvm) ==="
	# A part that ran to its end leaves meson's status in DIR/meson-logs/nested-PART.rc, its
	# results in nested-PART.json; a second try runs only the parts without an .rc.
	nested_part() {   # PART DIR SECONDS MESON-ARGS...: the part's lines of the VM's command
		printf '[ -f %s/meson-logs/nested-%s.rc ] || { t=$(date +%%s); r=0\n' "$2" "$1"
		printf '\ttimeout %s meson test -C %s --no-rebuild --print-errorlogs --num-processes 2 --timeout-multiplier 3 --logbase nested-%s %s || r=1\n' \
			"$3" "$2" "$1" "$4"
		printf '\techo $r >%s/meson-logs/nested-%s.rc\n' "$2" "$1"
		printf '\techo "nested-kvm: part %s: meson status $r, $(( $(date +%%s) - t )) s"; }\n' "$1"
	}
	nested_cmd="export MICROVM_LINUX_GUEST=$MICROVM_LINUX_GUEST
$(nested_part guest build 1800 "--suite guest --no-suite fault")
$(nested_part linux build 1500 "--suite linux --no-suite unit --no-suite fault")
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
$(nested_part fault build-asan 1800 "--suite fault")"
	parts="build/meson-logs/nested-guest build/meson-logs/nested-linux build-asan/meson-logs/nested-fault"
	# The nested VM's own kernel has stalled for good now and then (RCU stalls, soft lockups)
	# and has died ("corrupted stack end detected inside scheduler"), both under TCG, not
	# caused by a test; and twice it sat busy for 15 minutes without a line where a test takes
	# one (docs/nested-kvm.md). --stall stops a VM that printed nothing for 15 minutes
	# (meson prints a line per test, and no test here takes more than a few minutes; run.py
	# stops a guest after 60 s), and a VM that ended before its parts did gets one more
	# try for the parts left if 15 minutes of the budget are left. The budget, 48 minutes for
	# both tries, keeps a fresh machine's whole run within CI's 90 (~35 min for the rest).
	budget=2880
	t0=$(date +%s)
	for p in $parts; do rm -f "$p.rc" "$p.json"; done
	rm -f build/meson-logs/nested-missing build-asan/meson-logs/nested-guest.json   # an older name
	for try in 1 2; do
		left=$(( budget - ($(date +%s) - t0) ))
		[ "$left" -ge 900 ] || { echo "test.sh: no time left for another nested try" >&2; break; }
		sh scripts/nested-kvm --timeout "$left" --stall 900 -- sh -c "$nested_cmd" || :
		todo=0
		for p in $parts; do [ -f "$p.rc" ] || todo=1; done
		[ $todo -eq 0 ] && break
		echo "test.sh: the nested VM ended before its tests did (try $try)" >&2
	done
	for p in $parts; do
		if [ ! -f "$p.rc" ]; then
			status=1
			: >build/meson-logs/nested-missing
		elif [ "$(cat "$p.rc")" != 0 ]; then
			status=1
		fi
	done
fi

# The benchmarks' smoke run (a few seconds): the harnesses still build and run, and what they
# read back is what they wrote. Slowness never fails it; a crash or a wrong result does. The VM
# part (bench/vm.py) runs only where /dev/kvm exists (--no-nested: not in the nested KVM, where
# full runs stalled now and then, cause not found; docs/benchmarks.md).
echo "=== bench/run --smoke ==="
python3 bench/run --smoke --no-nested --out build/bench-smoke || status=1

# Every libFuzzer harness with ASan+UBSan for a bounded time (build-fuzz/, clang; two at a
# time: 10 harnesses x 60 s take about 5 minutes). A crash, leak or timeout fails the run;
# scripts/fuzz.sh prints the reproducer. See docs/fuzzing.md.
echo "=== build-fuzz (scripts/fuzz.sh) ==="
rm -rf build-fuzz/fuzz-run
FUZZ_OUT=$(pwd)/build-fuzz/fuzz-run sh scripts/fuzz.sh "${FUZZ_SECONDS:-60}" || status=1

# One summary line over both builds and the fuzzers, in the form CI systems read. A test is
# counted once per build: one that ran both here (or skipped here, no /dev/kvm) and in the
# nested KVM counts as failed if either run failed, else as passed if either passed.
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
RANK = {"SKIP": 0, "OK": 1, "FAIL": 2}
results = {}      # (build, test name) -> "OK", "SKIP" or "FAIL", the worst of its runs
for build, logs in (("build", ("testlog.json", "nested-guest.json", "nested-linux.json")),
                    ("build-asan", ("testlog.json", "nested-fault.json"))):
    for log in logs:
        path = os.path.join(build, "meson-logs", log)
        if not os.path.exists(path):
            continue
        for line in open(path):
            t = json.loads(line)
            r = t.get("result")
            r = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
            key = (build, t.get("name"))
            if RANK[r] >= RANK[results.get(key, "SKIP")]:
                results[key] = r
for r in results.values():
    if r == "OK":
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
if os.path.exists(os.path.join("build", "meson-logs", "nested-missing")):
    failed += 1   # a part of the nested KVM run (no /dev/kvm here) never finished
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
