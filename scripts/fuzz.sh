#!/bin/sh
# fuzz.sh - build the libFuzzer harnesses (build-fuzz/: clang, ASan+UBSan, -Dfuzz=true) and
# run each one for a bounded time on a scratch copy of its committed corpus.
# Usage: scripts/fuzz.sh [SECONDS]     seconds per harness (default 60)
#   FUZZ_JOBS=N     harnesses run N at a time (default: the number of CPUs, at most 4)
#   FUZZ_ONLY="a b" only these harnesses (names as in tests/fuzz/fuzz_NAME.c)
#   FUZZ_OUT=DIR    where corpora, logs and crash inputs go (default: a new directory under /tmp)
# Exits non-zero if any harness crashed, leaked, timed out or ran out of memory,
# printing the reproducer's path and the command that replays it. New corpus
# entries stay in FUZZ_OUT: the repository is never written.
set -eu
cd "$(dirname "$0")/.."

secs=${1:-60}
case $secs in
'' | *[!0-9]*) secs=0 ;;
esac
if [ "$secs" -lt 1 ]; then   # libFuzzer would take 0 as "no limit"
	echo "usage: scripts/fuzz.sh [SECONDS]   (seconds per harness, at least 1)" >&2
	exit 2
fi
secs=$((secs + 0))
harnesses=${FUZZ_ONLY:-"virtqueue blk net mmio boot decompress cli config api snapshot overlay workingset"}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
[ "$jobs" -le 4 ] || jobs=4

# clang with the libFuzzer runtime (Debian: clang, libclang-rt-14-dev; scripts/setup.sh installs them).
if [ ! -f build-fuzz/build.ninja ]; then
	CC=${FUZZ_CC:-clang} meson setup build-fuzz -Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C build-fuzz

out=${FUZZ_OUT:-$(mktemp -d /tmp/microvm-fuzz.XXXXXX)}
mkdir -p "$out"
echo "fuzz.sh: $secs s per harness, $jobs at a time; work directory $out"

# One harness: fresh corpus copy, bounded time, memory and per-input time; crash files in $out/NAME/.
run_one() {
	name=$1
	dir=$out/$name
	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp tests/fuzz/corpus/"$name"/* "$dir/corpus/" 2>/dev/null || true
	dict=""
	[ -f tests/fuzz/"$name".dict ] && dict="-dict=tests/fuzz/$name.dict"
	# halt_on_error: UBSan reports abort, so libFuzzer saves the input as a crash.
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		build-fuzz/tests/fuzz/fuzz_"$name" $dict \
		-max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
		"$dir/corpus" >"$dir/log" 2>&1
}

failed=""
: >"$out/summary"
set -- $harnesses
while [ $# -gt 0 ]; do
	batch=""
	n=0
	while [ $# -gt 0 ] && [ $n -lt "$jobs" ]; do
		[ -x build-fuzz/tests/fuzz/fuzz_"$1" ] || { echo "fuzz.sh: no harness '$1'" >&2; exit 2; }
		(set +e; run_one "$1"; echo $? >"$out/$1.rc") &
		batch="$batch $1"
		n=$((n + 1))
		shift
	done
	wait
	for name in $batch; do
		rc=$(cat "$out/$name.rc")
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name/log" | tail -1)
		cov=$(grep -o 'cov: [0-9]*' "$out/$name/log" | tail -1)
		if [ "$rc" -eq 0 ]; then
			echo "$name ok" >>"$out/summary"
			echo "fuzz $name: ok (${execs:-?} inputs, ${cov:-cov: ?}, corpus $(ls "$out/$name/corpus" | wc -l) files)"
		else
			failed="$failed $name"
			echo "$name failed" >>"$out/summary"
			echo "fuzz $name: FAILED (exit $rc); log: $out/$name/log"
			grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant broken|.*runtime error)' "$out/$name/log" | head -5 | sed 's/^/    /'
			for a in "$out/$name"/artifacts/*; do
				[ -e "$a" ] || continue
				echo "    reproducer: $a"
				echo "    replay:     build-fuzz/tests/fuzz/fuzz_$name $a"
			done
		fi
	done
done

if [ -n "$failed" ]; then
	echo "fuzz.sh: failed:$failed"
	exit 1
fi
echo "fuzz.sh: every harness ran ${secs} s without a finding"
