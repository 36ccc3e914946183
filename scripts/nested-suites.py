#!/usr/bin/env python3
"""nested-suites.py - run the test suites that need KVM in nested KVMs (scripts/nested-kvm).

For hosts without /dev/kvm (docs/nested-kvm.md). Used by scripts/test.sh:

    python3 scripts/nested-suites.py [--budget SECONDS] [--vms N] [--cpus C] [--stall SECONDS]

Runs every test of the parts below in N QEMU VMs at once (each with C CPUs), the tests of
each part dealt out among them. Each VM runs `meson test` on its share, part by part,
printing a line per test; those lines are read as they come. The VM's own kernel has
stalled for good now and then under TCG (docs/nested-kvm.md): a VM that printed nothing
for --stall seconds is stopped, and the next try runs only the tests that have no result
yet, in fresh VMs, until every test has one or the budget is spent.

Results go to DIR/meson-logs/nested-PART.results (one "NAME RESULT" line per test, the
result as meson printed it); a test that never got one is listed there as MISSING. The
exit status is 0 when every test has a result and none failed.
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, build directory, meson's suite options, environment. Tests get 3x their timeouts
# there (software-emulated CPU).
SANITIZERS = ("ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 "
              "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
PARTS = [
    # The Linux guest's boots and its snapshot (~1.5 min): first, the longest single tests.
    # (powercut-linux is a run by hand: the VM's kernel wedged during it, docs/powercut.md.)
    ("linux", "build", ["--suite", "linux", "--no-suite", "unit", "--no-suite", "fault"], ""),
    # Every misbehaving-guest, hostile-input, fault, soak and sandbox case, the console, the
    # control API, snapshots, the power cut: with the sanitizers, where a report matters most.
    ("fault", "build-asan", ["--suite", "fault"], SANITIZERS),
    # Boot formats, loader, firmware tables, disks, NICs, --run, --stats, ...
    ("guest", "build", ["--suite", "guest", "--no-suite", "fault"], ""),
]

RESULT = re.compile(r"^\s*\d+/\d+\s+\S+:\S+\s+/\s+(\S+)\s+"
                    r"(OK|FAIL|SKIP|TIMEOUT|EXPECTEDFAIL|UNEXPECTEDPASS|ERROR|INTERRUPT)\s")
PART_MARK = re.compile(r"^=== nested part (\S+) ===$")
GOOD = ("OK", "SKIP", "EXPECTEDFAIL")


def list_tests(build, suite_args):
    out = subprocess.run(["meson", "test", "-C", build, "--no-rebuild", "--list"] + suite_args,
                         cwd=HERE, check=True, capture_output=True, text=True).stdout
    return [line.split(" / ", 1)[1].strip() for line in out.splitlines() if " / " in line]


def vm_command(label, share, linux_guest):
    """The shell command one VM runs: a meson run per part with its share of the tests."""
    lines = []
    if linux_guest:
        lines.append(f"export MICROVM_LINUX_GUEST='{linux_guest}'")
    for (name, build, suite_args, env), tests in share:
        if not tests:
            continue
        lines.append(f"echo '=== nested part {name} ==='")
        lines.append(f"{env} meson test -C {build} --no-rebuild --print-errorlogs --num-processes 2 "
                     f"--timeout-multiplier 3 --logbase nested-{name}-{label} {' '.join(suite_args)} "
                     f"{' '.join(tests)}")
    lines.append("echo '=== nested parts done ==='")
    return "\n".join(lines)


def run_vm(label, cmd, args, timeout, results, log_path, lock):
    """One nested VM: prints its lines prefixed with the label, records each test's result."""
    argv = ["sh", os.path.join(HERE, "scripts", "nested-kvm"), "--cpus", str(args.cpus),
            "--timeout", str(int(timeout)), "--stall", str(args.stall), "--", "sh", "-c", cmd]
    part = None
    with open(log_path, "w") as log, \
            subprocess.Popen(argv, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace") as p:
        for line in p.stdout:
            log.write(line)
            log.flush()
            line = line.rstrip("\n")
            m = PART_MARK.match(line)
            if m:
                part = m.group(1)
            m = RESULT.match(line)
            if m and part:
                with lock:
                    results[part][m.group(1)] = m.group(2)
            with lock:
                print(f"[{label}] {line}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=2880, help="seconds for all tries (default 2880)")
    ap.add_argument("--vms", type=int, default=2, help="VMs at once (default 2)")
    ap.add_argument("--cpus", type=int, default=1, help="CPUs per VM (default 1)")
    ap.add_argument("--stall", type=int, default=420,
                    help="stop a VM that printed nothing for this long (default 420 s)")
    ap.add_argument("--tries", type=int, default=6, help="at most this many tries (default 6)")
    ap.add_argument("--only", help="run only these parts (comma-separated)")
    args = ap.parse_args()

    parts = [p for p in PARTS if not args.only or p[0] in args.only.split(",")]
    todo = {p[0]: list_tests(p[1], p[2]) for p in parts}
    results = {p[0]: {} for p in parts}
    lock = threading.Lock()
    linux_guest = os.environ.get("MICROVM_LINUX_GUEST", "")
    t0 = time.time()
    for attempt in range(1, args.tries + 1):
        left = args.budget - (time.time() - t0)
        remaining = {name: [t for t in tests if t not in results[name]] for name, tests in todo.items()}
        count = sum(len(t) for t in remaining.values())
        if count == 0:
            break
        if attempt > 1:
            print(f"nested-suites: try {attempt}: {count} tests without a result yet, "
                  f"{int(left)} s of the budget left", flush=True)
        if left < 300:
            print("nested-suites: no time left for another try", flush=True)
            break
        # Deal each part's tests out among the VMs (alternately: neighbours in meson's order
        # are often a pair of similar cases).
        vms = max(1, min(args.vms, count))
        shares = [[(p, remaining[p[0]][i::vms]) for p in parts] for i in range(vms)]
        threads = []
        for i, share in enumerate(shares):
            label = chr(ord("A") + i)
            log_path = os.path.join(HERE, "build", "meson-logs", f"nested-try{attempt}-{label}.log")
            th = threading.Thread(target=run_vm, args=(label, vm_command(label, share, linux_guest), args,
                                                       left, results, log_path, lock))
            th.start()
            threads.append(th)
        for th in threads:
            th.join()

    failed = missing = 0
    for name, build, _, _ in parts:
        with open(os.path.join(HERE, build, "meson-logs", f"nested-{name}.results"), "w") as f:
            for t in todo[name]:
                r = results[name].get(t, "MISSING")
                f.write(f"{t} {r}\n")
                if r == "MISSING":
                    missing += 1
                elif r not in GOOD:
                    failed += 1
    total = sum(len(t) for t in todo.values())
    print(f"nested-suites: {total} tests, {failed} failed, {missing} without a result, "
          f"{int(time.time() - t0)} s", flush=True)
    return 0 if failed == 0 and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
