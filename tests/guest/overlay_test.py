#!/usr/bin/env python3
"""overlay_test.py - copy-on-write disk overlays (--disk BASE,overlay[=FILE]) with the test guest.

A VM on BASE,overlay=F writes and reads back; BASE is unchanged, F holds the data (header,
bitmap and the cluster at its own offset); a second run on F sees it. A throw-away overlay
leaves no file. Two VMs run at once over one base, each on its own overlay. A VM on an overlay
is snapshotted midway through a write sequence and restored twice onto two new overlays over
the same base: each clone goes on from the same point and ends with the guest's own read-back
of every sector. The restores microvm must refuse: without an overlay, onto an existing file.

  overlay_test.py MICROVM GUEST_ELF [ENGINE]

ENGINE (uring or sync) is given to every microvm as --io-engine; default: microvm's auto.

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

from api_test import Guest, call, check, skip_without_kvm

SECTOR = 512
CLUSTER = 4096
N = 300             # steps of blk.seq in the snapshot part
READS = 20
SEED = 77           # blk.seq's pattern (tests/guest/blk.c)


def pattern(sector, seed, count):
    m = (seed * 0x9e3779b97f4a7c15) & (2**64 - 1)
    w0 = sector * (SECTOR // 8)
    return b"".join(struct.pack("<Q", (w0 + k) ^ m) for k in range(count * SECTOR // 8))


def make_base(path, size, ranges):
    with open(path, "wb") as f:
        f.truncate(size)
        for sector, seed, count in ranges:
            f.seek(sector * SECTOR)
            f.write(pattern(sector, seed, count))


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def overlay_header(path):
    """docs/overlay.md: magic, version, header size, cluster size, flags, size, bitmap off/len, data off, crc."""
    with open(path, "rb") as f:
        h = f.read(128)
    magic, version, hsize, csize, flags, size, boff, blen, doff = struct.unpack_from("<8s4I4Q", h)
    crc = struct.unpack_from("<I", h, 124)[0]
    check(magic == b"MVMOVL\r\n" and version == 1 and hsize == 128 and csize == CLUSTER and flags == 0 and
          crc == zlib.crc32(h[:124] + b"\0\0\0\0"), f"{path}: a version 1 overlay header, CRC right")
    return size, boff, blen, doff


def run(microvm, args, what, env=None, timeout=240):
    r = subprocess.run([microvm, *args, *ENGINE], capture_output=True, timeout=timeout, env=env)
    check(r.returncode == 0 and re.search(rb"^PASS\s*$", r.stdout, re.M) and b"FAIL" not in r.stdout,
          f"{what}: exit 0 and the guest's PASS (exit {r.returncode}; stderr {r.stderr[-500:]!r}; "
          f"stdout {r.stdout[-400:]!r})")
    return r


def refused(microvm, args, pattern_re, what):
    r = subprocess.run([microvm, *args], capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 1 and r.stdout == "" and len(lines) == 1 and re.search(pattern_re, lines[0]),
          f"{what}: refused before the guest ran, one line ({r.returncode}: {r.stderr.strip()!r})")


def seq_lines(out):
    return [int(x) for x in re.findall(rb"blk: seq (\d+)\n", out)]


def persistent(microvm, guest, tmp):
    base, ovl = os.path.join(tmp, "base.img"), os.path.join(tmp, "a.ovl")
    make_base(base, 1 << 20, [(0, 11, 4)])
    before = digest(base)
    run(microvm, ["--kernel", guest, "--disk", f"{base},overlay={ovl}", "--cmdline",
                  "blk.read=vda:0:11:4 blk.write=vda:20:77:8 blk.write=vda:2047:78:1"], "first run on a new overlay")
    check(digest(base) == before, "the base is unchanged")
    check(os.stat(ovl).st_mode & 0o777 == 0o600, "the overlay is 0600")
    size, boff, blen, doff = overlay_header(ovl)
    check(size == 1 << 20, "the overlay's disk size is the base's")
    with open(ovl, "rb") as f:
        f.seek(boff)
        bitmap = f.read(blen)
        f.seek(doff + 20 * SECTOR)
        data = f.read(8 * SECTOR)
    # Sectors 20..27 are in clusters 2 and 3; sector 2047 in cluster 255.
    bits = [c for c in range(256) if bitmap[c // 8] >> (c % 8) & 1]
    check(bits == [2, 3, 255], f"the bitmap marks exactly the written clusters ({bits})")
    check(data == pattern(20, 77, 8), "the overlay holds the written sectors at their own offsets")
    run(microvm, ["--kernel", guest, "--disk", f"{base},overlay={ovl}", "--cmdline",
                  "blk.read=vda:20:77:8 blk.read=vda:2047:78:1 blk.read=vda:0:11:4"],
        "a second run on the same overlay sees the writes")
    check(digest(base) == before, "the base is still unchanged")


def throwaway(microvm, guest, tmp):
    base = os.path.join(tmp, "t.img")
    tdir = os.path.join(tmp, "tmpdir")
    os.mkdir(tdir)
    make_base(base, 1 << 20, [(0, 5, 2)])
    before = digest(base)
    env = dict(os.environ, TMPDIR=tdir)
    r = run(microvm, ["--kernel", guest, "--disk", f"{base},overlay", "--cmdline",
                      "blk.write=vda:3:9:4 blk.read=vda:3:9:4"], "a throw-away overlay", env=env)
    check(b"throw-away overlay in " + tdir.encode() in r.stderr, "microvm says where the throw-away overlay is")
    check(os.listdir(tdir) == [], "the throw-away overlay left no file")
    check(digest(base) == before, "the base is unchanged under a throw-away overlay")


def two_vms(microvm, guest, tmp):
    base = os.path.join(tmp, "shared.img")
    a, b = os.path.join(tmp, "vm-a.ovl"), os.path.join(tmp, "vm-b.ovl")
    make_base(base, 4 << 20, [(1000, 3, 8)])
    before = digest(base)
    g = Guest([microvm, "--kernel", guest, "--disk", f"{base},overlay={a}", "--mem", "64M",
               "--timeout", "300", "--cmdline", f"blk.seq=vda:{N}:{READS} blk.read=vda:1000:3:8", *ENGINE])
    try:
        g.wait_out("blk: seq 10\n", timeout=120)
        run(microvm, ["--kernel", guest, "--disk", f"{base},overlay={b}", "--cmdline",
                      "blk.write=vda:0:44:16 blk.read=vda:0:44:16 blk.read=vda:1000:3:8"],
            "a second VM over the same base while the first runs")
        rc = g.p.wait(timeout=300)
        g.pump(0.2)
        check(rc == 0 and seq_lines(g.out) == list(range(N)) and b"read back ok" in g.out,
              f"the first VM finished its sequence (exit {rc}, stderr {g.err[-300:]!r})")
    finally:
        if g.p.poll() is None:
            g.p.kill()
    check(digest(base) == before, "the shared base is unchanged")
    _, _, _, doff = overlay_header(a)
    with open(a, "rb") as f:
        f.seek(doff)
        check(f.read(SECTOR) == pattern(0, SEED, 1), "VM A's overlay holds its sequence")
    with open(b, "rb") as f:
        f.seek(doff)
        check(f.read(16 * SECTOR) == pattern(0, 44, 16), "VM B's overlay holds its own writes")


def snapshot_clones(microvm, guest, tmp):
    base = os.path.join(tmp, "golden.img")
    ovl = os.path.join(tmp, "orig.ovl")
    sock = os.path.join(tmp, "api.sock")
    snap = os.path.join(tmp, "snap")
    make_base(base, 4 << 20, [])
    before = digest(base)
    g = Guest([microvm, "--kernel", guest, "--disk", f"{base},overlay={ovl}", "--mem", "64M",
               "--api-sock", sock, "--timeout", "300", "--cmdline", f"blk.seq=vda:{N}:{READS}", *ENGINE])
    try:
        g.wait_out("blk: seq 40\n", timeout=120)
        check(call(sock, "POST", "/vm/pause")[0] == 200, "pause")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % snap)
        check(status == 200, f"snapshot of a VM on an overlay: 200 ({r})")
        # What the guest printed before the pause.
        while True:
            n = len(g.out)
            g.pump(0.5)
            if len(g.out) == n:
                break
        prefix = g.out
    finally:
        g.p.kill()
        g.p.wait()
    check(sorted(os.listdir(snap)) == ["disk0.overlay", "memory", "state"],
          f"the snapshot holds the overlay's layer ({sorted(os.listdir(snap))})")
    layer = os.path.join(snap, "disk0.overlay")
    st = os.stat(layer)
    check(st.st_mode & 0o777 == 0o600 and st.st_blocks * 512 < st.st_size, "the saved layer is 0600 and sparse")
    overlay_header(layer)

    refused(microvm, ["--restore", snap, "--disk", base],
            r"was on an overlay: restore it onto a new one over the same base", "a restore without an overlay")
    refused(microvm, ["--restore", snap, "--disk", f"{base},overlay={ovl}"],
            r"exists: a restore starts each clone on a new overlay", "a restore onto an existing overlay")
    for name in ("c1.ovl", "c2.ovl"):
        clone = os.path.join(tmp, name)
        r = subprocess.run([microvm, "--restore", snap, "--disk", f"{base},overlay={clone}", "--timeout", "300",
                            *ENGINE],
                           capture_output=True, timeout=360)
        steps = seq_lines(prefix + r.stdout)
        check(r.returncode == 0 and b"blk: seq 0\n" not in r.stdout and steps == list(range(N)),
              f"clone {name}: exit 0, goes on from the snapshot: one unbroken sequence (exit {r.returncode}, "
              f"{len(steps)} lines; stderr {r.stderr[-400:]!r})")
        check(f"seq of {N} sectors written, read back ok".encode() in r.stdout and b"PASS" in r.stdout,
              f"clone {name}: the guest's read-back of every sector (before and after the snapshot) passed")
        _, _, _, doff = overlay_header(clone)
        with open(clone, "rb") as f:
            f.seek(doff)
            check(f.read(N * SECTOR) == pattern(0, SEED, N), f"clone {name}: its overlay holds the whole sequence")
    check(digest(base) == before, "the golden base is unchanged by the original and both clones")
    check(os.path.getsize(layer) == st.st_size, "the saved layer was not written by the clones")


ENGINE = []


def main():
    microvm, guest = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        ENGINE.extend(["--io-engine", sys.argv[3]])
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-ovl-")
    try:
        persistent(microvm, guest, tmp)
        throwaway(microvm, guest, tmp)
        two_vms(microvm, guest, tmp)
        snapshot_clones(microvm, guest, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    sys.exit(main())
