#!/usr/bin/env python3
"""api_test.py - the control API (--api-sock) on a running test guest: state, pause (the guest
stops: a line sent to its echo loop is not answered until resume), resume, metrics, error
statuses from a raw socket client, stop (exit 0, socket removed); shutdown: the guest's power
button (action=power-button powers off: exit 0), and a guest that ignores it (stopped at the
deadline: exit 124).

  api_test.py MICROVM GUEST_ELF

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import json
import os
import re
import select
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

from run import kvm_usable  # tests/guest/run.py, next to this file


def skip_without_kvm():
    why = kvm_usable()
    if why:
        print(f"SKIP: {why}; guest tests need a usable /dev/kvm")
        sys.exit(77)


def raw(path, data, timeout=30):
    """Send bytes on a new connection, read until the server closes; returns (status, headers, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(data)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    assert int(headers["content-length"]) == len(body), (headers, body)
    return status, headers, body


def call(path, method, route, body=None):
    data = f"{method} {route} HTTP/1.1\r\nHost: localhost\r\n".encode()
    if body is not None:
        data += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
    data += b"\r\n" + (body.encode() if body else b"")
    status, headers, b = raw(path, data)
    return status, (json.loads(b) if b else None)


class Guest:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.out = b""
        self.err = b""

    def pump(self, timeout):
        r, _, _ = select.select([self.p.stdout, self.p.stderr], [], [], timeout)
        for f in r:
            chunk = os.read(f.fileno(), 65536)
            if f is self.p.stdout:
                self.out += chunk
            else:
                self.err += chunk

    def wait_out(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                raise AssertionError(f"no {text!r} in the guest output: {self.out!r}; stderr: {self.err!r}")
            self.pump(left)

    def send(self, line):
        self.p.stdin.write(line.encode())
        self.p.stdin.flush()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def main():
    microvm, guest = sys.argv[1], sys.argv[2]
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-api-")
    sock = os.path.join(tmp, "api.sock")
    disk = os.path.join(tmp, "d.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    g = Guest([microvm, "--kernel", guest, "--disk", disk, "--api-sock", sock, "--timeout", "120",
               "--cmdline", "action=echo"])
    try:
        g.wait_out("echo: ready")
        st = os.lstat(sock)
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, "the socket is owner-only (0600)")

        status, vm = call(sock, "GET", "/vm")
        check(status == 200 and vm["state"] == "running", f"GET /vm: running ({status} {vm})")
        check(vm["config"]["cpus"] == 1 and vm["config"]["disks"][0]["path"] == disk
              and vm["config"]["disks"][0]["name"] == "vda" and vm["config"]["kernel"] == guest,
              "GET /vm: the configuration")
        check(vm["io_engine"] in ("io_uring", "sync") and vm["uptime_ms"] > 0, "GET /vm: engine and uptime")

        status, r = call(sock, "POST", "/vm/pause")
        check(status == 200 and r["state"] == "paused", f"POST /vm/pause ({status} {r})")
        status, r = call(sock, "POST", "/vm/pause")
        check(status == 200 and r["state"] == "paused", "POST /vm/pause again: still paused (idempotent)")
        g.send("while-paused\n")
        time.sleep(1.5)
        g.pump(0)
        check(b"echo: while-paused" not in g.out, "paused: the guest does not answer")
        status, vm = call(sock, "GET", "/vm")
        check(vm["state"] == "paused" and vm["paused_ms"] >= 1000, f"GET /vm: paused for >= 1 s ({vm['paused_ms']} ms)")

        status, r = call(sock, "POST", "/vm/resume")
        check(status == 200 and r["state"] == "running", "POST /vm/resume")
        g.wait_out("echo: while-paused", timeout=30)
        check(True, "resumed: the guest answers the line sent while it was paused")
        status, r = call(sock, "POST", "/vm/resume")
        check(status == 200 and r["state"] == "running", "POST /vm/resume again: still running")
        # Pause and resume many times: the guest keeps working.
        for i in range(20):
            assert call(sock, "POST", "/vm/pause")[0] == 200
            assert call(sock, "POST", "/vm/resume")[0] == 200
        g.send("after-cycles\n")
        g.wait_out("echo: after-cycles", timeout=30)
        check(True, "20 pause/resume cycles: the guest still answers")

        status, m = call(sock, "GET", "/metrics")
        check(status == 200 and m["vm_exits_total"] > 0 and m["vm_exits"]["io"] > 0,
              f"GET /metrics: VM exits counted ({m['vm_exits_total']})")
        check(m["devices"]["vda"]["errors"] == 0 and "read_bytes" in m["devices"]["vda"],
              "GET /metrics: the disk's counters")
        check(m["api"]["requests"] >= 25, "GET /metrics: the API's own counters")
        prometheus(sock, m)

        # Errors, from a raw client: the VM is not disturbed.
        check(call(sock, "GET", "/nowhere")[0] == 404, "unknown route: 404")
        status, headers, _ = raw(sock, b"DELETE /vm HTTP/1.1\r\n\r\n")
        check(status == 405 and headers.get("allow") == "GET", "wrong method: 405 with Allow")
        check(raw(sock, b"NOT HTTP AT ALL\r\n\r\n")[0] == 400, "garbage: 400")
        check(raw(sock, b"POST /vm/pause HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")[0] == 413,
              "a declared body over 4 KiB: 413")
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.connect(sock)
        slow.sendall(b"GET /v")
        check(call(sock, "GET", "/vm")[0] == 200, "a slow client does not block another")
        slow.settimeout(30)
        answer = slow.recv(4096)
        check(answer.startswith(b"HTTP/1.1 408 "), f"the slow client gets 408 ({answer[:40]!r})")
        slow.close()
        g.send("still-here\n")
        g.wait_out("echo: still-here", timeout=30)
        check(True, "the guest ran on through the bad requests")

        # A second VM cannot take the socket.
        r2 = subprocess.run([microvm, "--kernel", guest, "--api-sock", sock, "--cmdline", "action=exit:0"],
                            capture_output=True, text=True, timeout=60)
        check(r2.returncode == 1 and f"--api-sock {sock}: in use" in r2.stderr,
              f"a second VM on the same socket: exit 1, 'in use' ({r2.returncode} {r2.stderr.strip()!r})")
        check(os.path.exists(sock), "... and the first VM's socket is still there")

        status, r = call(sock, "POST", "/vm/pause")
        status, r = call(sock, "POST", "/vm/stop")
        check(status == 200 and r["state"] == "stopping", "POST /vm/stop (while paused)")
        rc = g.p.wait(timeout=60)
        g.pump(0.1)
        g.pump(0.1)
        check(rc == 0, f"microvm exits 0 after POST /vm/stop (got {rc}; stderr {g.err!r})")
        check(b"stop requested through the control API" in g.err, "one log line says why")
        check(not os.path.exists(sock), "the socket file is removed at exit")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()
        for f in ("api.sock", "d.img"):
            try:
                os.unlink(os.path.join(tmp, f))
            except FileNotFoundError:
                pass
    shutdown_obeyed(microvm, guest, tmp)
    shutdown_ignored(microvm, guest, tmp)
    os.rmdir(tmp)
    return 0


def prom_samples(text):
    """{(name, labels): value} of a Prometheus text exposition (its lines checked by promtool when present)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def prometheus(sock, m):
    """GET /metrics in the Prometheus text format: by query and by Accept, the same counters as the JSON."""
    status, headers, body = raw(sock, b"GET /metrics?format=prometheus HTTP/1.1\r\nHost: x\r\n\r\n")
    check(status == 200 and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8",
          f"GET /metrics?format=prometheus: text 0.0.4 ({status} {headers.get('content-type')})")
    text = body.decode()
    s = prom_samples(text)
    check(s[("microvm_vm_exits_total", (("kind", "io"),))] >= m["vm_exits"]["io"] > 0,
          "microvm_vm_exits_total{kind=\"io\"}: at least the JSON's count a moment before")
    check(s[("microvm_disk_read_bytes_total", (("disk", "vda"),))] >= m["devices"]["vda"]["read_bytes"],
          "microvm_disk_read_bytes_total{disk=\"vda\"}: at least the JSON's")
    check(s[("microvm_vm_state", (("state", "running"),))] == 1 and s[("microvm_uptime_seconds", ())] > 0,
          "microvm_vm_state and microvm_uptime_seconds")
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
        check(r.returncode == 0, f"promtool check metrics: clean ({r.stdout!r} {r.stderr!r})")
    else:
        print("note: no promtool (Debian package prometheus): the exposition was checked by the unit "
              "test's parser (tests/unit/vmm/api/test_prom.c) only")
    # What Prometheus itself sends: OpenMetrics first, text/plain 0.0.4 as a fallback.
    status, headers, body = raw(sock, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;"
                                b"version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                                b"text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n")
    check(status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
          and body.startswith(b"# HELP microvm_"), "Prometheus's own Accept header: the text format")
    status, headers, body = raw(sock, b"GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\n")
    check(status == 200 and headers["content-type"] == "application/json", "Accept: */* (curl): JSON")
    status, headers, body = raw(sock, b"GET /metrics?format=xml HTTP/1.1\r\n\r\n")
    check(status == 400 and b"format=xml" in body, f"?format=xml: 400 ({body!r})")


def run_guest(microvm, guest, sock, action, ready):
    g = Guest([microvm, "--kernel", guest, "--api-sock", sock, "--timeout", "120", "--cmdline", action])
    g.wait_out(ready)
    return g


def shutdown_obeyed(microvm, guest, tmp):
    sock = os.path.join(tmp, "api2.sock")
    g = run_guest(microvm, guest, sock, "action=power-button", "power: waiting for the power button")
    try:
        for body in ("xx", '{"timeout": -1}', '{"timeout": "3"}', '{"timeout": 4000}', '{"bogus": 1}', "[1]"):
            status, r = call(sock, "POST", "/vm/shutdown", body)
            check(status == 400 and "POST /vm/shutdown" in r["error"], f"shutdown with body {body}: 400 ({r})")
        status, r = call(sock, "POST", "/vm/shutdown", '{"timeout": 60}')
        check(status == 202 and r["state"] == "shutting-down" and r["timeout_ms"] == 60000,
              f"POST /vm/shutdown: 202, shutting down ({status} {r})")
        rc = g.p.wait(timeout=60)
        g.pump(0.1)
        g.pump(0.1)
        check(rc == 0, f"the guest saw its power button and powered off: exit 0 (got {rc}; stderr {g.err!r})")
        check(b"power: button pressed" in g.out and b"poweroff:" in g.out, "the guest's own words")
        check(b"pressed the guest's power button" in g.err, "microvm logged the request")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()


def shutdown_ignored(microvm, guest, tmp):
    sock = os.path.join(tmp, "api3.sock")
    g = run_guest(microvm, guest, sock, "action=spin", "spin: looping forever")
    try:
        check(call(sock, "POST", "/vm/pause")[0] == 200, "pause")
        status, r = call(sock, "POST", "/vm/shutdown")
        check(status == 409 and "paused" in r["error"], f"shutdown while paused: 409 ({status} {r})")
        check(call(sock, "POST", "/vm/resume")[0] == 200, "resume")
        t0 = time.monotonic()
        status, r = call(sock, "POST", "/vm/shutdown", '{"timeout": 1.5}')
        check(status == 202 and r["timeout_ms"] == 1500, f"POST /vm/shutdown with a 1.5 s deadline: 202 ({r})")
        rc = g.p.wait(timeout=60)
        took = time.monotonic() - t0
        g.pump(0.1)
        g.pump(0.1)
        check(rc == 124, f"a guest that ignores the button is stopped at the deadline: exit 124 (got {rc})")
        check(took >= 1.4, f"... not before it ({took:.1f} s)")
        check(b"did not power off within 1.5 s of the shutdown request" in g.err, "one log line says why")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
