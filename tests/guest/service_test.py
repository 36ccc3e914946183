#!/usr/bin/env python3
"""service_test.py - the systemd unit's commands on the test guest, as systemd runs them
(docs/systemd.md#tests): ExecStart with the instance's config file and API socket (stdin
/dev/null), ExecStop with its environment, then what systemd does next, decided from the
unit's own SuccessExitStatus=, Restart= and RestartPreventExitStatus=.

- a guest that obeys the power button: ExecStop exits 0 once it powered off, microvm exits
  0 (a clean stop, no restart);
- a guest that ignores it: ExecStop gives up at MICROVM_SHUTDOWN_TIMEOUT (1.5 s here) with
  124 and the VM still runs; systemd's SIGTERM then stops it: 143, counted as clean;
- a paused VM: ExecStop is refused (the guest cannot see the button) and exits 1 at once;
  SIGTERM stops it;
- a guest that reports status 3 is restarted; a config file with a typo (exit 2) is not.

  service_test.py MICROVM GUEST_ELF UNIT_IN

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from api_test import Guest, call, check, skip_without_kvm  # tests/guest/api_test.py


class Unit:
    """The unit's commands for instance NAME, with /etc/microvm and /run/microvm moved to tmp."""

    def __init__(self, path, microvm, tmp):
        self.text = open(path).read()
        self.bindir = os.path.dirname(microvm)
        self.tmp = tmp
        os.makedirs(os.path.join(tmp, "etc"), exist_ok=True)
        os.makedirs(os.path.join(tmp, "run"), exist_ok=True)

    def values(self, key):
        return [l.split("=", 1)[1] for l in self.text.splitlines() if l.startswith(key + "=")]

    def argv(self, key, name, env=None):
        line = self.values(key)[0].removeprefix("-").replace("@BINDIR@", self.bindir)   # '-': status ignored
        line = line.replace("/etc/microvm/", os.path.join(self.tmp, "etc") + "/")
        line = line.replace("/run/microvm/", os.path.join(self.tmp, "run") + "/").replace("%i", name)
        environ = dict(e.split("=", 1) for e in self.values("Environment"))
        environ.update(env or {})
        out = [re.sub(r"\$\{(\w+)\}", lambda m: environ[m.group(1)], a) for a in line.split()]
        assert not any("%" in a or "$" in a for a in out), out
        return out

    def sock(self, name):
        return os.path.join(self.tmp, "run", name + ".sock")

    def config(self, name, cfg):
        with open(os.path.join(self.tmp, "etc", name + ".json"), "w") as f:
            f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))

    def clean(self, rc):
        """Does systemd count exit status rc of the main process as a clean stop?"""
        ok = {0} | {int(x) for v in self.values("SuccessExitStatus") for x in v.split()}
        return rc in ok

    def restarts(self, rc):
        """Would systemd restart the VM after it exited rc on its own (not through systemctl stop)?"""
        policy = self.values("Restart")[-1]
        prevent = {int(x) for v in self.values("RestartPreventExitStatus") for x in v.split()}
        assert policy == "on-failure", policy
        return not self.clean(rc) and rc not in prevent


def start(unit, name, guest, cmdline, ready):
    unit.config(name, {"kernel": guest, "cmdline": cmdline})
    g = Guest(unit.argv("ExecStart", name))
    g.p.stdin.close()   # StandardInput=null: the guest reads end of file
    g.wait_out(ready)
    return g


def stop(unit, name, env=None):
    t0 = time.monotonic()
    r = subprocess.run(unit.argv("ExecStop", name, env), capture_output=True, text=True, timeout=120)
    return r, time.monotonic() - t0


def finish(g):
    if g.p.poll() is None:
        g.p.kill()
        g.p.wait()


def main():
    microvm, guest, unit_in = sys.argv[1:4]
    guest = os.path.abspath(guest)  # a config file's relative paths start from its directory
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-svc-")
    unit = Unit(unit_in, microvm, tmp)
    try:
        # A guest that powers off at the button.
        g = start(unit, "obey", guest, "action=power-button", "power: waiting for the power button")
        try:
            r, took = stop(unit, "obey")
            rc = g.p.wait(timeout=30)
            g.pump(0.1)
            check(r.returncode == 0, f"ExecStop: exit 0 once the guest powered off ({r.returncode} "
                                     f"{r.stderr.strip()!r}, {took:.1f} s)")
            check(b"power: button pressed" in g.out, "the guest saw the button")
            check(rc == 0 and unit.clean(rc) and not unit.restarts(rc),
                  f"microvm exits 0: a clean stop, not restarted ({rc})")
            check(not os.path.exists(unit.sock("obey")), "the socket is gone")
        finally:
            finish(g)

        # A guest that ignores it: ExecStop gives up, systemd's SIGTERM (KillMode=mixed: the main process) ends it.
        g = start(unit, "deaf", guest, "action=spin", "spin: looping forever")
        try:
            r, took = stop(unit, "deaf", {"MICROVM_SHUTDOWN_TIMEOUT": "1.5"})
            check(r.returncode == 124 and "did not power off within 1.500 s" in r.stderr,
                  f"ExecStop: exit 124 at its timeout ({r.returncode} {r.stderr.strip()!r})")
            check(1.4 <= took < 10, f"... after 1.5 s ({took:.1f} s)")
            check(g.p.poll() is None, "the VM still runs: SIGTERM is systemd's")
            status, vm = call(unit.sock("deaf"), "GET", "/vm")
            check(vm["state"] == "shutting-down", f"GET /vm: shutting-down ({vm['state']})")
            check(unit.values("KillMode") == ["mixed"], "KillMode=mixed: SIGTERM to the main process only")
            g.p.send_signal(signal.SIGTERM)
            rc = g.p.wait(timeout=30)
            check(rc == 143 and unit.clean(rc), f"SIGTERM: microvm exits 143, which the unit counts as clean ({rc})")
        finally:
            finish(g)

        # A paused VM: the button cannot be seen; ExecStop says so at once.
        g = start(unit, "paused", guest, "action=spin", "spin: looping forever")
        try:
            check(call(unit.sock("paused"), "POST", "/vm/pause")[0] == 200, "pause")
            r, took = stop(unit, "paused")
            check(r.returncode == 1 and "the VM refused (409)" in r.stderr and took < 10,
                  f"ExecStop on a paused VM: exit 1 at once, the API's reason ({r.returncode} {r.stderr.strip()!r})")
            g.p.send_signal(signal.SIGTERM)
            check(g.p.wait(timeout=30) == 143, "SIGTERM stops it")
        finally:
            finish(g)

        # Restart=on-failure: a guest's error status restarts, a bad config does not.
        unit.config("fails", {"kernel": guest, "cmdline": "action=exit:3"})
        r = subprocess.run(unit.argv("ExecStart", "fails"), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60)
        check(r.returncode == 3 and unit.restarts(3), f"a guest reporting 3: exit 3, restarted ({r.returncode})")
        unit.config("typo", '{"kernal": "x"}')
        r = subprocess.run(unit.argv("ExecStart", "typo"), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 2 and not unit.restarts(2) and "unknown key 'kernal'" in r.stderr,
              f"a config file with a typo: exit 2, not restarted ({r.returncode} {r.stderr.strip()!r})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
