#!/usr/bin/env python3
"""test_unit.py - the systemd unit microvm@.service without systemd running (docs/systemd.md#tests).

  test_unit.py UNIT_IN CONFIGURED_UNIT MICROVM

- the configured unit (what meson installs) names the installed binary, nothing left to fill in;
- `systemd-analyze verify` finds nothing to say about the unit pointed at this build's microvm
  (an unknown or misspelt key, a bad value, a missing binary all print a line: each is a failure);
- `systemd-analyze security --offline=true` rates its exposure at most THRESHOLD;
- every flag ExecStart and ExecStop use is one `microvm --help` lists, and ExecStop, as systemd
  would run it (%i and ${MICROVM_SHUTDOWN_TIMEOUT} filled in), exits 1 with one line when no VM
  serves the socket (a stop of a VM that is gone leaves SIGTERM to systemd, which finds nothing).

Exit 77 (skip) without systemd-analyze. Stdlib only."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

THRESHOLD = 40  # tenths: 4.0; the unit rates 3.5, a weaker sandbox fails here


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}")


def directives(text, key):
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]


def main():
    unit_in, configured, microvm = sys.argv[1:4]
    text = open(unit_in).read()
    conf = open(configured).read()
    if "@" + "BINDIR@" in conf or not re.search(r"^ExecStart=/\S+/microvm --config", conf, re.M):
        fail(f"the configured unit still has @BINDIR@ or no absolute ExecStart: {directives(conf, 'ExecStart')}")
    ok(f"configured unit: {directives(conf, 'ExecStart')[0]}")

    # The flags the unit passes are microvm's.
    helptext = subprocess.run([microvm, "--help"], capture_output=True, text=True).stdout
    for line in directives(text, "ExecStart") + directives(text, "ExecStop"):
        for flag in re.findall(r"(--[a-z-]+)", line):
            if not re.search(rf"^\s+{re.escape(flag)}\b", helptext, re.M):
                fail(f"{flag} (in '{line}') is not in microvm --help")
    ok("ExecStart and ExecStop use flags microvm --help lists")

    env = dict(e.split("=", 1) for e in directives(text, "Environment"))
    stop = directives(text, "ExecStop")[0].replace("@BINDIR@", os.path.dirname(microvm))
    # '-': systemd runs ExecStop also after the VM ended by itself (no socket then: exit 1); that,
    # or a guest that ignores the button (124), must not fail the unit or restart a powered-off VM.
    if not stop.startswith("-"):
        fail(f"ExecStop must start with '-' (its status must not fail the unit): {stop}")
    stop = stop[1:]
    tmp = tempfile.mkdtemp(prefix="microvm-unit-")
    try:
        sock = os.path.join(tmp, "vm1.sock")
        argv = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], a).replace("/run/microvm/%i.sock", sock)
                for a in stop.split()]
        if "%" in " ".join(argv):
            fail(f"ExecStop has a specifier this test does not fill in: {argv}")
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 1 or r.stderr.count("\n") != 1 or f"--shutdown {sock}: No such file" not in r.stderr:
            fail(f"ExecStop with no VM: want exit 1 and one line, got {r.returncode} {r.stderr!r}")
        ok(f"ExecStop with no VM there: exit 1, '{r.stderr.strip()}'")

        analyze = shutil.which("systemd-analyze")
        if not analyze:
            print("SKIP: no systemd-analyze (Debian package systemd): the unit was not verified")
            return 77
        # A unit whose binary exists: this build's.
        unit = os.path.join(tmp, "microvm@.service")
        with open(unit, "w") as f:
            f.write(text.replace("@BINDIR@", os.path.dirname(microvm)))
        inst = os.path.join(tmp, "microvm@vm1.service")
        r = subprocess.run([analyze, "verify", "--man=no", inst], capture_output=True, text=True, timeout=60,
                           cwd=tmp)
        if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
            fail(f"systemd-analyze verify: exit {r.returncode}: {r.stdout}{r.stderr}")
        ok("systemd-analyze verify: no complaint")
        # The check can fail: a misspelt key is reported.
        with open(unit, "w") as f:
            f.write(text.replace("@BINDIR@", os.path.dirname(microvm)).replace("KillMode=", "KilMode="))
        r = subprocess.run([analyze, "verify", "--man=no", inst], capture_output=True, text=True, timeout=60,
                           cwd=tmp)
        if "KilMode" not in r.stderr:
            fail(f"systemd-analyze verify did not report a misspelt key: {r.stderr!r}")
        ok("... and it does report a misspelt key")
        with open(unit, "w") as f:
            f.write(text.replace("@BINDIR@", os.path.dirname(microvm)))

        r = subprocess.run([analyze, "security", "--offline=true", f"--threshold={THRESHOLD}", "--no-pager", inst],
                           capture_output=True, text=True, timeout=60, cwd=tmp)
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        if r.returncode != 0 or not level:
            fail(f"systemd-analyze security: exit {r.returncode}, want an exposure of at most {THRESHOLD / 10}:\n"
                 f"{r.stdout[-3000:]}{r.stderr}")
        ok(f"systemd-analyze security --offline: exposure {level.group(1)} (at most {THRESHOLD / 10})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
