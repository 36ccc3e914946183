#!/usr/bin/env python3
"""ratelimit_test.py - disk rate limits end to end (docs/rate-limits.md): the test guest reads its disk
flat out (blk.bench) behind --disk ...,iops=20; the control API shows the requests held to the limit
and the limiter refusing; PATCH /vm/disks/vda raises the limit and the rest of the reads finish at
once; the guest never sees an error. A snapshot taken while requests wait for tokens, restored
with the limit on the restore's command line, serves exactly the requests the snapshot had not
answered: none lost, none twice. Run on both I/O engines.

  ratelimit_test.py MICROVM GUEST_ELF ENGINE

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import json
import os
import shutil
import sys
import tempfile
import time

from api_test import Guest, call, check, skip_without_kvm  # tests/guest/api_test.py, next to this file

RATE = 20             # requests a second (the bucket: 20, refilled in 1 s)
BATCHES = 40          # blk.bench: 40 rounds of 8 reads = 320 requests, 15 s at RATE


def main():
    microvm, guest, engine = sys.argv[1], sys.argv[2], sys.argv[3]
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-rate-")
    sock = os.path.join(tmp, "api.sock")
    disk = os.path.join(tmp, "d.img")
    snap = os.path.join(tmp, "snap")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    total = 8 * BATCHES
    started = time.monotonic()
    g = Guest([microvm, "--kernel", guest, "--disk", f"{disk},iops={RATE}", "--io-engine", engine,
               "--api-sock", sock, "--timeout", "200", "--cmdline", f"blk.bench=0:{BATCHES} action=echo"])
    try:
        g.wait_out(f"bench: blk {total} start", timeout=120)
        status, d = call(sock, "GET", "/vm/disks/vda")
        check(status == 200 and d["iops"]["size"] == RATE and d["iops"]["refill_ms"] == 1000 and d["bw"] is None,
              f"GET /vm/disks/vda: iops={RATE} from the command line ({d})")
        time.sleep(3)
        status, m = call(sock, "GET", "/metrics")
        elapsed = time.monotonic() - started
        vda = m["devices"]["vda"]
        # Admitted requests never exceed the bucket plus the refill since the device started (the whole
        # run is an upper bound for that time), plus the 8 the guest keeps queued.
        bound = RATE + RATE * elapsed + 8
        check(0 < vda["requests"] <= bound,
              f"held to the limit: {vda['requests']} requests after {elapsed:.1f} s (at most {bound:.0f})")
        check(vda["requests"] < total - 8 * 4, "the guest is still reading")
        check(vda["limits"]["throttled"] > 0, f"/metrics: the limiter refused ({vda['limits']['throttled']} times)")
        g.pump(0)
        check(f"bench: blk {total} done".encode() not in g.out, "the guest has not finished")

        # A snapshot while requests wait: the pause drains what is in flight, the rest stays in the ring.
        # The device keeps serving its ring while the vCPUs are paused (and again right after the
        # snapshot, when it thaws): to know how many requests the snapshot holds as answered, the
        # limit first drops to one request an hour (the bucket restarts full: one more may pass).
        status, d = call(sock, "PATCH", "/vm/disks/vda", '{"iops": "1/3600000"}')
        check(status == 200 and d["iops"]["size"] == 1, f"PATCH /vm/disks/vda: one request an hour ({status} {d})")
        time.sleep(1)
        before = call(sock, "GET", "/metrics")[1]["devices"]["vda"]["requests"]
        check(call(sock, "POST", "/vm/pause")[0] == 200, "POST /vm/pause while throttled")
        status, r = call(sock, "POST", "/vm/snapshot", json.dumps({"path": snap}))
        check(status == 200, f"POST /vm/snapshot while throttled ({status} {r})")
        answered = call(sock, "GET", "/metrics")[1]["devices"]["vda"]["requests"]
        check(answered == before and answered < total,
              f"{answered} requests answered when the snapshot was taken (and {before} before the pause)")
        check(call(sock, "POST", "/vm/resume")[0] == 200, "POST /vm/resume")

        t0 = time.monotonic()
        status, d = call(sock, "PATCH", "/vm/disks/vda", '{"iops": "100000"}')
        check(status == 200 and d["iops"]["size"] == 100000, f"PATCH /vm/disks/vda: iops 100000 ({status} {d})")
        left = total - vda["requests"]
        g.wait_out(f"bench: blk {total} done", timeout=60)
        took = time.monotonic() - t0
        check(took < left / RATE / 2,
              f"after the PATCH the last {left} reads took {took:.1f} s (at {RATE}/s: {left / RATE:.1f} s)")
        g.wait_out("echo: ready", timeout=60)   # the guest waits for "quit": the API is still there
        status, m = call(sock, "GET", "/metrics")
        vda = m["devices"]["vda"]
        check(vda["requests"] == total and vda["reads"] == total and vda["errors"] == 0,
              f"every read answered once, OK ({vda['requests']} requests, {vda['errors']} errors)")
        g.send("quit\n")
        rc = g.p.wait(timeout=60)
        g.pump(0.1)
        check(rc == 0, f"the guest's checks passed: exit 0 (got {rc}; stderr {g.err[-400:]!r})")
        restored(microvm, snap, disk, sock, total - answered)
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def restored(microvm, snap, disk, sock, left):
    """The snapshot restored with the limit given again: exactly `left` requests are served."""
    total = 8 * BATCHES
    g = Guest([microvm, "--restore", snap, "--disk", f"{disk},iops={RATE}", "--api-sock", sock,
               "--timeout", "200"])
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock) and time.monotonic() < deadline:
            g.pump(0.1)
        status, d = call(sock, "GET", "/vm/disks/vda")
        check(status == 200 and d["iops"] and d["iops"]["size"] == RATE,
              f"restored: iops={RATE} from the restore's --disk (limits are not in the snapshot) ({d})")
        time.sleep(2)
        m = call(sock, "GET", "/metrics")[1]["devices"]["vda"]
        check(m["requests"] < left, f"restored: still held to the limit ({m['requests']} of {left})")
        check(call(sock, "PATCH", "/vm/disks/vda", '{"iops": null}')[0] == 200, "restored: PATCH lifts the limit")
        g.wait_out(f"bench: blk {total} done", timeout=60)
        g.wait_out("echo: ready", timeout=60)
        m = call(sock, "GET", "/metrics")[1]["devices"]["vda"]
        check(m["requests"] == left and m["errors"] == 0,
              f"restored: exactly the {left} requests the snapshot had not answered, all OK "
              f"({m['requests']}, {m['errors']} errors)")
        g.send("quit\n")
        rc = g.p.wait(timeout=60)
        check(rc == 0, f"restored: the guest's checks passed, exit 0 (got {rc}; stderr {g.err[-400:]!r})")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()


if __name__ == "__main__":
    sys.exit(main())
