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
result as meson printed it); a test that never got one is listed there as MISSING, one
that a finished meson run left without a result (meson itself failed) as ERROR. A VM
without /dev/kvm ends the run (every test would skip). The exit status is 0 when every
test has a result and none failed.
"""
import argparse
import json
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
PART_END = re.compile(r"^=== nested part (\S+) ended: meson status (\d+) ===$")
NO_KVM = "=== nested: no /dev/kvm in the VM ==="
ALL_DONE = "=== nested parts done ==="
GOOD = ("OK", "SKIP", "EXPECTEDFAIL")


def list_tests(build, suite_args):
    out = subprocess.run(["meson", "test", "-C", build, "--no-rebuild", "--list"] + suite_args,
                         cwd=HERE, check=True, capture_output=True, text=True).stdout
    return [line.split(" / ", 1)[1].strip() for line in out.splitlines() if " / " in line]


def vm_command(label, share, linux_guest, attempt):
    """The shell command one VM runs: a meson run per part with its share of the tests."""
    # Without /dev/kvm every test would skip, which would read as a pass: stop instead.
    lines = [f"[ -c /dev/kvm ] || {{ echo '{NO_KVM}'; exit 1; }}"]
    if linux_guest:
        lines.append(f"export MICROVM_LINUX_GUEST='{linux_guest}'")
    for (name, build, suite_args, env), tests in share:
        if not tests:
            continue
        lines.append(f"echo '=== nested part {name} ==='")
        lines.append(f"{env} meson test -C {build} --no-rebuild --print-errorlogs --num-processes 2 "
                     f"--timeout-multiplier 3 --logbase nested-{name}-try{attempt}-{label} {' '.join(suite_args)} "
                     f"{' '.join(tests)}")
        lines.append(f"echo \"=== nested part {name} ended: meson status $? ===\"")
    lines.append(f"echo '{ALL_DONE}'")
    return "\n".join(lines)


def run_vm(label, cmd, args, timeout, results, ended, log_path, lock):
    """One nested VM: prints its lines prefixed with the label, records each test's result and
    the parts whose meson run ended (ended: part -> set of labels). The VM's console (its
    kernel's messages) goes to LOG.console only, so it cannot split a line read here."""
    argv = ["sh", os.path.join(HERE, "scripts", "nested-kvm"), "--cpus", str(args.cpus),
            "--timeout", str(int(timeout)), "--stall", str(args.stall), "--", "sh", "-c", cmd]
    part = None
    done = False
    with open(log_path, "w") as log, open(log_path + ".console", "w") as console, \
            subprocess.Popen(argv, cwd=HERE, stdout=subprocess.PIPE, stderr=console,
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
            m = PART_END.match(line)
            if m:
                with lock:
                    ended.setdefault(m.group(1), set()).add(label)
            if line == NO_KVM:
                with lock:
                    ended.setdefault("no-kvm", set()).add(label)
            with lock:
                print(f"[{label}] {line}", flush=True)
            if line == ALL_DONE:
                done = True
    # nested-kvm's own lines (a stall, the stalled CPUs' registers, its end) and, when the VM
    # did not get to the end of its command, the last of its console.
    with open(log_path + ".console", errors="replace") as f:
        console = f.read().splitlines()
    tail = [] if done else [c for c in console[-12:] if not c.startswith("nested-kvm:")]
    with lock:
        for c in [c for c in console if c.startswith("nested-kvm:")] + tail:
            print(f"[{label}] console: {c}", flush=True)


def report_failures(parts, todo, results):
    """Each failed test again at the end, with the last lines of its output from meson's
    JSON logs of every VM and try: a CI log shown by its tail must still say what failed."""
    for name, build, _, _ in parts:
        bad = [t for t in todo[name] if results[name].get(t, "MISSING") not in GOOD]
        if not bad:
            continue
        logs = os.path.join(HERE, build, "meson-logs")
        outputs = {}
        for f in sorted(os.listdir(logs)):
            if f.startswith(f"nested-{name}-") and f.endswith(".json"):
                with open(os.path.join(logs, f), errors="replace") as j:
                    for line in j:
                        try:
                            t = json.loads(line)
                        except ValueError:
                            continue
                        outputs[(t.get("name") or "").split(" / ", 1)[-1]] = t.get("stdout") or ""
        for t in bad:
            print(f"nested-suites: {results[name].get(t, 'MISSING')}: {name} / {t}", flush=True)
            for line in outputs.get(t, "(no output recorded)").splitlines()[-40:]:
                print(f"    {line}", flush=True)


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
    for name, build, _, _ in PARTS:
        logs = os.path.join(HERE, build, "meson-logs")
        for f in os.listdir(logs) if os.path.isdir(logs) else []:
            if f == f"nested-{name}.results" or f.startswith(f"nested-{name}-"):
                os.unlink(os.path.join(logs, f))
    try:
        todo = {p[0]: list_tests(p[1], p[2]) for p in parts}
    except (OSError, subprocess.CalledProcessError) as e:
        # The summary must not read "0 failed": one result that fails says so.
        print(f"nested-suites: cannot list the tests here: {e}", flush=True)
        os.makedirs(os.path.join(HERE, "build", "meson-logs"), exist_ok=True)
        with open(os.path.join(HERE, "build", "meson-logs", "nested-setup.results"), "w") as f:
            f.write("nested-suites ERROR\n")
        return 1
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
        ended = {}
        for i, share in enumerate(shares):
            label = chr(ord("A") + i)
            log_path = os.path.join(HERE, "build", "meson-logs", f"nested-try{attempt}-{label}.log")
            th = threading.Thread(target=run_vm, args=(label, vm_command(label, share, linux_guest, attempt), args,
                                                       left, results, ended, log_path, lock))
            th.start()
            threads.append(th)
        for th in threads:
            th.join()
        # A VM's meson run of a part that ended without a result for some of its tests (meson
        # itself failed: a bad build directory, say) will not do better in a fresh VM.
        for i, share in enumerate(shares):
            label = chr(ord("A") + i)
            for (name, _, _, _), tests in share:
                if label in ended.get(name, ()):
                    for t in tests:
                        results[name].setdefault(t, "ERROR")
        if "no-kvm" in ended:
            print("nested-suites: the nested VM has no /dev/kvm (kvm_amd did not load): no test can run there",
                  flush=True)
            break

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
    report_failures(parts, todo, results)
    print(f"nested-suites: {total} tests, {failed} failed, {missing} without a result, "
          f"{int(time.time() - t0)} s", flush=True)
    return 0 if failed == 0 and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
