#!/bin/sh
# test.sh - build and run the whole test suite twice: the normal build (build/) and an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/).
# Usage: scripts/setup.sh && scripts/test.sh
set -eu
cd "$(dirname "$0")/.."

[ -f build/build.ninja ] || meson setup build
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false

status=0
for dir in build build-asan; do
	echo "=== $dir ==="
	ninja -C "$dir"
	# halt_on_error: a sanitizer report fails the test instead of scrolling by.
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done

# One summary line over both builds, in the form CI systems read.
python3 - <<'PY'
import json, os
passed = failed = skipped = 0
for d in ("build", "build-asan"):
    path = os.path.join(d, "meson-logs", "testlog.json")
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
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
