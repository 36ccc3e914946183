#!/bin/sh
# test.sh - build and run the whole test suite twice: the normal build (build/) and an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/); then every libFuzzer
# harness for a bounded time (build-fuzz/, scripts/fuzz.sh; FUZZ_SECONDS per harness, default 60),
# with the benchmarks' smoke run (bench/run --smoke, a few seconds) before the fuzzers.
# First it makes the Linux guests for the 'linux' suite: the project's minimal kernel and
# busybox images with scripts/guest-image (kernel built once, ~8-16 min on 2 cores, then
# cached; the root images take seconds), Debian's kernel and systemd image with
# scripts/debian-guest (~3 min once, then cached).
# Without /dev/kvm, the KVM suites then run in a nested KVM (scripts/nested-kvm; see below).
# Before them, the Debian package is built, checked, installed and run (scripts/deb-test).
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
# Debian's cloud kernel and a Debian 12 systemd image for the debian-* tests of the 'linux'
# suite (debootstrap, ~3 min the first time, then cached; docs/debian-guest.md).
echo "=== Debian guest (scripts/debian-guest) ==="
if ! sh scripts/debian-guest --out build/debian-guest; then
	echo "test.sh: scripts/debian-guest failed; the debian-* tests will fail" >&2
	status=1
fi

# The tests need microvm's test hooks (-Dtest_hooks=true, off in what users run: meson_options.txt);
# build/ may have been set up without them by scripts/setup.sh.
[ -f build/build.ninja ] || meson setup build
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
meson configure build -Dtest_hooks=true
meson configure build-asan -Dtest_hooks=true

# The 'linux' suite (two real Linux boots, ~1-2 min each here) runs in both builds:
# under ASan+UBSan it drives microvm's virtio-blk/net and SMP paths with Linux's own
# drivers, which the test guest does not. Both builds together add ~5 min.
for dir in build build-asan; do
	echo "=== $dir ==="
	ninja -C "$dir"
	# halt_on_error: a sanitizer report fails the test instead of scrolling by. The suppressions:
	# Criterion's runner's own leak (tests/unit/lsan.supp), none of microvm's.
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		LSAN_OPTIONS=suppressions="$(pwd)/tests/unit/lsan.supp" \
		meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

# No /dev/kvm here (our CI machines): the guest-level and Linux tests above skipped, saying
# so. They run now in QEMU VMs with an emulated AMD-V CPU, where KVM works and behaves like
# hardware virtualization (scripts/nested-kvm, docs/nested-kvm.md): every test that needs
# KVM, once, in three parts (scripts/nested-suites.py):
#   linux  plain build: suite 'linux' (the Linux guest's boots and its snapshot; the Linux
#          variant of the power cut, powercut-linux, is left to a run by hand: the nested
#          VM's kernel wedged during it here, docs/powercut.md);
#   fault  ASan+UBSan build: suite 'fault' (every misbehaving-guest, hostile-input, fault,
#          soak and sandbox case, the console, the control API, snapshots, the power cut:
#          the cases where a sanitizer report matters most);
#   guest  plain build: suite 'guest' but 'fault' (boot formats, firmware, disks, NICs,
#          --run, --stats, ...: ~150 tests).
# Tests get 3x their timeouts there (software-emulated CPU). The whole guest suite under the
# sanitizers would take ~40 min more; run it by hand (docs/nested-kvm.md).
# The nested VM's own kernel stalls for good now and then under TCG, not caused by a test
# (docs/nested-kvm.md): a VM that printed nothing for 7 minutes is stopped, and fresh VMs
# run the tests that have no result yet, within a 48-minute budget that keeps a fresh
# machine's whole run within CI's 90 minutes.
# The Debian package (scripts/deb-test, ~3 min: most of it the package build and, without
# /dev/kvm, one nested KVM boot): built from a copy of the tree (without its tests: they ran
# above), checked by lintian, installed, and its /usr/bin/microvm boots the test guest.
# build/deb-test/summary has one result per check.
echo "=== Debian package (scripts/deb-test) ==="
sh scripts/deb-test build/deb-test || status=1

rm -f build/meson-logs/nested-*.results build-asan/meson-logs/nested-*.results
if [ ! -e /dev/kvm ]; then
	echo "=== no /dev/kvm: the KVM suites in nested KVMs (scripts/nested-suites.py) ==="
	python3 scripts/nested-suites.py --budget 2880 || status=1
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
# scripts/deb-test: one line per check of the Debian package, "NAME ok" or "NAME failed".
deb = os.path.join("build", "deb-test", "summary")
if os.path.exists(deb):
    for line in open(deb):
        name, r = line.split()
        if r == "ok":
            passed += 1
        else:
            failed += 1
            print(f"failed: deb-test / {name}")
else:
    failed += 1
    print("failed: deb-test (no build/deb-test/summary)")
RANK = {"SKIP": 0, "OK": 1, "FAIL": 2}
results = {}      # (build, test name) -> "OK", "SKIP" or "FAIL", the worst of its runs
def record(build, name, r):
    r = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
    key = (build, name)
    if RANK[r] >= RANK[results.get(key, "SKIP")]:
        results[key] = r
for build in ("build", "build-asan"):
    logs = os.path.join(build, "meson-logs")
    path = os.path.join(logs, "testlog.json")
    if os.path.exists(path):
        for line in open(path):
            t = json.loads(line)
            record(build, t.get("name"), t.get("result"))
    # scripts/nested-suites.py (no /dev/kvm here): "NAME RESULT" per test, MISSING for a test
    # that never got a result.
    for part in os.listdir(logs) if os.path.isdir(logs) else []:
        if part.startswith("nested-") and part.endswith(".results"):
            for line in open(os.path.join(logs, part)):
                name, r = line.split()
                record(build, name, r)
for (build, name), r in sorted(results.items()):
    if r == "OK":
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
        print(f"failed: {build} / {name}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
