#!/usr/bin/env python3
"""restore_test.py - lazy restore, --verify-memory, --paused and the working set (docs/snapshot.md).

The test guest runs blk.seq (as in snapshot_test.py), is paused midway and snapshotted. Then:
- a restore maps the memory lazily: a flipped bit in the memory file is not looked for, the
  guest starts; with --verify-memory the same restore is refused before the guest runs;
- --paused: the restored VM says nothing until POST /vm/resume (GET /vm: "paused"), then goes
  on from where the original stopped; --paused without --api-sock is a usage error;
- --record-working-set: POST /vm/working-set writes DIR/workingset (checked here byte by
  byte: magic, CRC, the state's CRC, sorted page-aligned ranges inside RAM; a second call is
  409); the deadline writes it too; a restore then prefetches it and goes on; a corrupt
  or stale working set is ignored with one warning, the restore goes on; --no-working-set
  skips it; a VM not recording answers 409.

  restore_test.py MICROVM GUEST_ELF

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from api_test import Guest, call, check, skip_without_kvm
from snapshot_test import N, READS, copy_snap, drain, refused, seq_lines

MEM = 64 << 20
STEPS = 30          # a restored VM is watched for this many steps of blk.seq, then stopped


def goes_on(g, prefix, what, timeout=120):
    """A restored VM goes on from where the original was paused: its first steps continue the
    original's output (the whole sequence to its end is snapshot_test.py's); then it is stopped."""
    first = seq_lines(prefix)[-1] + 1
    # The pause may have cut a line: the original printed its start, the restored VM ends it.
    cut = prefix[prefix.rfind(b"\n") + 1:]
    try:
        g.wait_out(f"blk: seq {first + STEPS}\n", timeout=timeout)
        steps = seq_lines(cut + g.out)
        check(steps[:STEPS + 1] == list(range(first, first + STEPS + 1)),
              f"{what}: goes on from step {first} ({steps[:3]}...; stderr {g.err[-300:]!r})")
    finally:
        if g.p.poll() is None:
            g.p.terminate()
            g.p.wait(timeout=60)
        g.pump(0.2)
        g.pump(0.2)


def restored(microvm, snap, disk, prefix, what, extra=()):
    """Restore, check it goes on; returns the Guest (its stderr in .err)."""
    g = Guest([microvm, "--restore", snap, "--disk", disk, "--timeout", "300", *extra])
    goes_on(g, prefix, what)
    return g


def read_ws(path, state_path):
    """Check DIR/workingset as docs/snapshot.md describes it; return its ranges."""
    with open(path, "rb") as f:
        buf = f.read()
    with open(state_path, "rb") as f:
        state_crc = struct.unpack_from("<I", f.read(64), 24)[0]
    magic, version, hsize, n, crc, ram = struct.unpack_from("<8sIIIIQ", buf, 0)
    check(magic == b"MVMWSET\n" and version == 1 and hsize == 32 and len(buf) == 32 + 16 * n + 4,
          f"working set header ({magic!r}, v{version}, {n} ranges, {len(buf)} bytes)")
    check(struct.unpack_from("<I", buf, len(buf) - 4)[0] == zlib.crc32(buf[:-4]), "working set CRC")
    check(crc == state_crc and ram == MEM, "the working set names its snapshot (state CRC, RAM size)")
    ranges = [struct.unpack_from("<QQ", buf, 32 + 16 * i) for i in range(n)]
    end = 0
    for off, ln in ranges:
        check(ln > 0 and off % 4096 == 0 and ln % 4096 == 0 and off >= end and off + ln <= MEM,
              f"range {off:#x}+{ln:#x} sorted, page aligned, inside RAM")
        end = off + ln
    check(0 < sum(ln for _, ln in ranges) < MEM, f"the working set is some of RAM, not none or all "
          f"({sum(ln for _, ln in ranges)} bytes in {n} ranges)")
    return ranges


def main():
    microvm, guest = sys.argv[1], sys.argv[2]
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-restore-")
    sock = os.path.join(tmp, "api.sock")
    disk = os.path.join(tmp, "d.img")
    snap = os.path.join(tmp, "s1")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    g = Guest([microvm, "--kernel", guest, "--disk", disk, "--mem", "64M", "--api-sock", sock,
               "--timeout", "300", "--cmdline", f"blk.seq=vda:{N}:{READS}"])
    try:
        g.wait_out("blk: seq 40\n", timeout=120)
        check(call(sock, "POST", "/vm/pause")[0] == 200, "pause")
        status, r = call(sock, "POST", "/vm/working-set")
        check(status == 409 and "not recording" in r["error"], f"POST /vm/working-set when not recording: 409 ({r})")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % snap)
        check(status == 200, f"snapshot ({r})")
        shutil.copyfile(disk, disk + ".at-snapshot")
        # Everything the original printed up to its pause: read once it has exited (a paused VM
        # prints nothing more, but a line it printed before the pause may reach the pipe late).
        call(sock, "POST", "/vm/stop")
        g.p.wait(timeout=60)
        drain(g)
        prefix = g.out
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()

    def fresh_disk():
        shutil.copyfile(disk + ".at-snapshot", disk)

    # Lazy by default; --verify-memory reads every extent first.
    bad = copy_snap(snap, os.path.join(tmp, "bad"))
    fd = os.open(os.path.join(bad, "memory"), os.O_RDWR)
    at = os.lseek(fd, 0, os.SEEK_DATA) + 100
    b = os.pread(fd, 1, at)
    os.pwrite(fd, bytes([b[0] ^ 1]), at)
    os.close(fd)
    fresh_disk()
    refused(microvm, ["--restore", bad, "--disk", disk, "--verify-memory"],
            r"refused: checksum mismatch in extent \d+ \(corrupt\)", "--verify-memory: a flipped bit in the memory")
    fresh_disk()
    r = subprocess.run([microvm, "--restore", bad, "--disk", disk, "--timeout", "3"], capture_output=True,
                       timeout=120)
    check(b"restored from" in r.stderr and b"checksum mismatch" not in r.stderr,
          f"a lazy restore does not read the memory before the guest runs: not refused ({r.stderr[-300:]!r})")
    refused(microvm, ["--restore", snap, "--disk", disk, "--paused"], r"--paused: needs --api-sock",
            "--paused without --api-sock", code=2)
    refused(microvm, ["--kernel", guest, "--verify-memory"], r"--verify-memory: only with --restore",
            "--verify-memory without --restore", code=2)
    refused(microvm, ["--restore", snap, "--record-working-set", "0"], r"--record-working-set 0: must be",
            "--record-working-set 0", code=2)
    fresh_disk()
    restored(microvm, snap, disk, prefix, "lazy restore")
    fresh_disk()
    restored(microvm, snap, disk, prefix, "--verify-memory restore", extra=["--verify-memory"])

    # --paused: nothing runs until POST /vm/resume.
    fresh_disk()
    sock2 = os.path.join(tmp, "p.sock")
    g = Guest([microvm, "--restore", snap, "--disk", disk, "--paused", "--api-sock", sock2, "--timeout", "300"])
    try:
        deadline = time.time() + 60
        while not os.path.exists(sock2) and time.time() < deadline:
            g.pump(0.2)
        status, r = call(sock2, "GET", "/vm")
        check(status == 200 and r["state"] == "paused", f"--paused: GET /vm says paused ({r})")
        g.pump(2.0)
        check(b"blk: seq" not in g.out, f"--paused: no guest output before the resume ({g.out[-200:]!r})")
        check(call(sock2, "POST", "/vm/resume")[0] == 200, "--paused: POST /vm/resume")
        goes_on(g, prefix, "--paused restore after POST /vm/resume")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()

    # The working set: recorded at POST /vm/working-set, then replayed.
    ws_snap = copy_snap(snap, os.path.join(tmp, "ws"))
    wsf = os.path.join(ws_snap, "workingset")
    fresh_disk()
    sock3 = os.path.join(tmp, "w.sock")
    g = Guest([microvm, "--restore", ws_snap, "--disk", disk, "--record-working-set", "300", "--api-sock", sock3,
               "--timeout", "300"])
    try:
        g.wait_out("blk: seq 60\n", timeout=120)
        check(not os.path.exists(wsf), "no working set before the call")
        status, r = call(sock3, "POST", "/vm/working-set")
        check(status == 200 and r["path"] == wsf and r["ranges"] > 0 and r["bytes"] > 0,
              f"POST /vm/working-set: 200 ({r})")
        status, r = call(sock3, "POST", "/vm/working-set")
        check(status == 409 and "already" in r["error"], f"a second POST /vm/working-set: 409 ({r})")
        check(os.stat(wsf).st_mode & 0o777 == 0o600, "the working set is 0600")
        read_ws(wsf, os.path.join(ws_snap, "state"))
    finally:
        if g.p.poll() is None:
            g.p.terminate()
            g.p.wait(timeout=60)
    check(sorted(os.listdir(ws_snap)) == ["memory", "state", "workingset"], "no temporary files left")
    fresh_disk()
    g = restored(microvm, ws_snap, disk, prefix, "restore with the working set", extra=["-v"])
    check(b"working set: " in g.err and b"to prefetch" in g.err and b"prefetched in" in g.err,
          f"the restore prefetched the working set ({g.err[-600:]!r})")
    fresh_disk()
    g = restored(microvm, ws_snap, disk, prefix, "restore with --no-working-set", extra=["--no-working-set"])
    check(b"to prefetch" not in g.err, "--no-working-set: no prefetch")
    # Corrupt: ignored with one warning, the restore goes on.
    with open(wsf, "r+b") as f:
        f.seek(40)
        c = f.read(1)
        f.seek(40)
        f.write(bytes([c[0] ^ 0x10]))
    fresh_disk()
    g = restored(microvm, ws_snap, disk, prefix, "restore with a corrupt working set")
    check(b"workingset: ignored: checksum mismatch (corrupt)" in g.err and b"to prefetch" not in g.err,
          f"a corrupt working set is ignored with a warning ({g.err[-400:]!r})")
    # Stale: recorded from another snapshot.
    with open(wsf, "r+b") as f:
        buf = bytearray(f.read())
    struct.pack_into("<I", buf, 20, 12345)
    struct.pack_into("<I", buf, len(buf) - 4, zlib.crc32(bytes(buf[:-4])))
    with open(wsf, "wb") as f:
        f.write(buf)
    fresh_disk()
    g = restored(microvm, ws_snap, disk, prefix, "restore with a stale working set")
    check(b"workingset: ignored: recorded from another snapshot" in g.err,
          f"a stale working set is ignored with a warning ({g.err[-400:]!r})")
    # The deadline records it too, without an API socket.
    os.unlink(wsf)
    fresh_disk()
    g = Guest([microvm, "--restore", ws_snap, "--disk", disk, "--timeout", "300", "--record-working-set", "0.5"])
    deadline = time.time() + 60
    while b"saved in" not in g.err and time.time() < deadline and g.p.poll() is None:
        g.pump(0.5)
    goes_on(g, prefix, "a restore recording until its deadline")
    check(b"saved in " + wsf.encode() in g.err, f"the deadline saved the working set ({g.err[-400:]!r})")
    read_ws(wsf, os.path.join(ws_snap, "state"))
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
