#!/usr/bin/env python3
"""snapshot_test.py - snapshot and restore (POST /vm/snapshot, --restore) with the test guest.

The guest runs blk.seq: step i writes sector i of its disk, flushes and prints "blk: seq i".
It is paused midway and snapshotted (plain and compressed), then restored (twice from one
snapshot, once from the compressed one, once from a snapshot of a restored VM): each restored
VM must go on from exactly where the original stopped (the original's output up to the pause
and the restored VM's output together are one unbroken sequence), end with the guest's own
read-back check, and leave the right bytes on the disk. Then the API's error cases and the
snapshots microvm must refuse before the guest runs: truncated, wrong version, checksum
mismatch, memory truncated or corrupt, disk missing or resized, and mistaken command lines.

  snapshot_test.py MICROVM GUEST_ELF

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib

from api_test import Guest, call, check, skip_without_kvm

N = 600             # steps of blk.seq
READS = 20          # port reads (exits) after each step: the VM is paused well before the end
SEED = 77           # blk.seq's pattern (tests/guest/blk.c)
SECTOR = 512


def expected_sector(i):
    m = (SEED * 0x9e3779b97f4a7c15) & (2**64 - 1)
    w = i * (SECTOR // 8)
    return b"".join(struct.pack("<Q", (w + k) ^ m) for k in range(SECTOR // 8))


def seq_lines(out):
    return [int(x) for x in re.findall(rb"blk: seq (\d+)\n", out)]


def check_disk(disk, what):
    with open(disk, "rb") as f:
        data = f.read(N * SECTOR)
    bad = [i for i in range(N) if data[i * SECTOR:(i + 1) * SECTOR] != expected_sector(i)]
    check(not bad, f"{what}: the disk holds every step's sector ({len(bad)} wrong, first {bad[:3]})")


def restore(microvm, snap, prefix, disk, what, extra=()):
    """Restore, run to the end; the output must continue the original's exactly."""
    r = subprocess.run([microvm, "--restore", snap, "--disk", disk, "--timeout", "300", *extra],
                       capture_output=True, timeout=360)
    check(r.returncode == 0, f"{what}: exit 0 (got {r.returncode}; stderr {r.stderr[-600:]!r}; "
          f"the guest's last output {r.stdout[-300:]!r})")
    check(b"blk: seq 0\n" not in r.stdout, f"{what}: the guest did not start over")
    steps = seq_lines(prefix + r.stdout)
    check(steps == list(range(N)), f"{what}: the output before the pause and after the restore is one "
          f"unbroken sequence 0..{N - 1} ({len(steps)} lines, restored from "
          f"{seq_lines(r.stdout)[:1]})")
    check(f"seq of {N} sectors written, read back ok".encode() in r.stdout and b"PASS" in r.stdout,
          f"{what}: the guest's own read-back check passed")
    check(b"restored from " + snap.encode() in r.stderr, f"{what}: microvm says where it restored from")
    check_disk(disk, what)
    return r


def refused(microvm, args, pattern, what, code=1):
    r = subprocess.run([microvm, *args], capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code and r.stdout == "" and len(lines) == 1 and re.search(pattern, lines[0]),
          f"{what}: refused before the guest ran, one line ({r.returncode}: {r.stderr.strip()!r})")


def drain(g):
    """Read what a paused guest printed before the pause (it may still be in the pipe)."""
    while True:
        n = len(g.out)
        g.pump(0.5)
        if len(g.out) == n:
            return


def copy_snap(src, dst):
    os.mkdir(dst)
    for f in os.listdir(src):
        # cp keeps the memory file sparse.
        subprocess.run(["cp", "--sparse=always", os.path.join(src, f), dst], check=True)
    return dst


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def edit_config(state_path, fn):
    """Change the configuration record of a state file with fn(bytearray), and seal it again
    (docs/snapshot.md: 64-byte header, records of tag, length and payload padded to 8)."""
    with open(state_path, "rb") as f:
        buf = bytearray(f.read())
    pos = 64
    while pos < len(buf):
        tag, length = struct.unpack_from("<II", buf, pos)
        pos += 8
        if tag == 1:
            payload = bytearray(buf[pos:pos + length])
            fn(payload)
            buf[pos:pos + length] = payload
            break
        pos += (length + 7) & ~7
    struct.pack_into("<I", buf, 24, zlib.crc32(bytes(buf[64:])))
    struct.pack_into("<I", buf, 60, zlib.crc32(bytes(buf[:60])))
    with open(state_path, "wb") as f:
        f.write(buf)


# struct snap_config: mem, cpus, nr_disks, nr_nics, io_engine, then disks[] of
# path[4096], id[24], size, ro, direct, pad[6].
DISK0 = 24
DISK0_RO = DISK0 + 4096 + 24 + 8


def set_disk0_path(path):
    def fn(c):
        c[DISK0:DISK0 + 4096] = path.encode().ljust(4096, b"\0")
    return fn


def set_disk0_ro(c):
    c[DISK0_RO] = 1


def locked_exclusive(path):
    """Can someone take an exclusive flock on path now? (a restored VM holds a shared one)"""
    import fcntl
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def finish(g, prefix, disk, what):
    """A VM restored from the snapshot runs to its end: its output continues prefix exactly."""
    rc = g.p.wait(timeout=360)
    g.pump(0.2)
    g.pump(0.2)
    steps = seq_lines(prefix + g.out)
    check(rc == 0 and steps == list(range(N)) and b"read back ok" in g.out,
          f"{what}: exit 0, one unbroken sequence 0..{N - 1} (exit {rc}, {len(steps)} lines; stderr "
          f"{g.err[-400:]!r})")
    check_disk(disk, what)


def main():
    microvm, guest = sys.argv[1], sys.argv[2]
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-snap-")
    sock = os.path.join(tmp, "api.sock")
    disk = os.path.join(tmp, "d.img")
    snap, zsnap = os.path.join(tmp, "s1"), os.path.join(tmp, "s2")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    g = Guest([microvm, "--kernel", guest, "--disk", disk, "--mem", "64M", "--api-sock", sock,
               "--timeout", "300", "--cmdline", f"blk.seq=vda:{N}:{READS}"])
    try:
        g.wait_out("blk: seq 40\n", timeout=120)
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % snap)
        check(status == 409 and "pause it first" in r["error"], f"snapshot of a running VM: 409 ({r})")
        for body in ("", "xx", "[]", '{"path": 3}', '{"path": ""}', '{"path": "/x", "compress": 1}',
                     '{"path": "/x", "bogus": true}'):
            status, r = call(sock, "POST", "/vm/snapshot", body)
            check(status == 400 and "POST /vm/snapshot" in r["error"], f"snapshot with body {body!r}: 400 ({r})")
        check(call(sock, "POST", "/vm/pause")[0] == 200, "pause")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "/proc/no/such/dir"}')
        check(status == 500 and "/proc/no/such/dir" in r["error"], f"an impossible path: 500 naming it ({r})")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % snap)
        check(status == 200 and r["state"] == "paused" and r["bytes"] > 0 and not r["compress"],
              f"snapshot of the paused VM: 200 ({r})")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s", "compress": true}' % zsnap)
        check(status == 200 and r["compress"], f"compressed snapshot: 200 ({r})")
        st = os.stat(os.path.join(snap, "memory"))
        check(st.st_size == 64 << 20 and st.st_blocks * 512 < st.st_size // 4,
              f"memory is sparse ({st.st_blocks * 512} of {st.st_size} bytes allocated)")
        check(os.path.getsize(os.path.join(zsnap, "memory.z")) < st.st_blocks * 512 and
              not os.path.exists(os.path.join(zsnap, "memory")), "memory.z is smaller than the plain data")
        check(sorted(os.listdir(snap)) == ["memory", "state"], "no leftovers (state.tmp) in the directory")
        check(os.stat(os.path.join(snap, "memory")).st_mode & 0o777 == 0o600 and
              os.stat(os.path.join(snap, "state")).st_mode & 0o777 == 0o600, "snapshot files are 0600")
        # A directory others may write, or a symlink in its place: refused, naming the fix.
        open_dir = os.path.join(tmp, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % open_dir)
        check(status == 500 and "writable by others (mode 0777)" in r["error"] and not os.listdir(open_dir),
              f"a directory writable by others is refused, nothing written ({r})")
        other = os.path.join(tmp, "other")
        os.mkdir(other, 0o700)
        with open(os.path.join(other, "notes.txt"), "w") as f:
            f.write("mine")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % other)
        check(status == 500 and "holds other files (notes.txt)" in r["error"] and os.listdir(other) == ["notes.txt"],
              f"a directory holding other files is refused, nothing written ({r})")
        os.symlink(snap, os.path.join(tmp, "link"))
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s/"}' % os.path.join(tmp, "link"))
        check(status == 500 and "symbolic link" in r["error"], f"a symlinked directory with a trailing / ({r})")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % os.path.join(tmp, "link"))
        check(status == 500 and "symbolic link" in r["error"], f"a symlinked directory is refused ({r})")
        # Planted files are replaced, never written through: a symlink named memory keeps its target,
        # an old world-readable memory file is replaced by a 0600 one.
        planted = os.path.join(tmp, "planted")
        os.mkdir(planted, 0o700)
        victim = os.path.join(tmp, "victim")
        with open(victim, "wb") as f:
            f.write(b"precious")
        os.symlink(victim, os.path.join(planted, "memory"))
        with open(os.path.join(planted, "state"), "wb") as f:
            f.write(b"old")
        os.chmod(os.path.join(planted, "state"), 0o644)
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % planted)
        st = os.lstat(os.path.join(planted, "memory"))
        check(status == 200 and open(victim, "rb").read() == b"precious" and stat.S_ISREG(st.st_mode) and
              st.st_mode & 0o777 == 0o600 and os.stat(os.path.join(planted, "state")).st_mode & 0o777 == 0o600
              and sorted(os.listdir(planted)) == ["memory", "state"],
              f"a planted symlink's target is untouched, new files are 0600 ({r})")
        # The host owns the disk: a restore needs it as it was at the snapshot.
        shutil.copyfile(disk, disk + ".at-snapshot")

        # The original goes on after its snapshots and finishes: the snapshot disturbed nothing.
        drain(g)
        prefix_len = len(g.out)
        check(call(sock, "POST", "/vm/resume")[0] == 200, "resume after the snapshots")
        rc = g.p.wait(timeout=300)
        g.pump(0.2)
        g.pump(0.2)
        check(rc == 0 and seq_lines(g.out) == list(range(N)) and b"read back ok" in g.out,
              f"the original VM finished its sequence after being snapshotted (exit {rc}; "
              f"the guest's last output {g.out[-400:]!r})")
        prefix = g.out[:prefix_len]
        check_disk(disk, "the original VM")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()

    # The disk as it was at the snapshot each time: the restored VM must write the rest itself.
    def fresh_disk():
        shutil.copyfile(disk + ".at-snapshot", disk)

    fresh_disk()
    restore(microvm, snap, prefix, disk, "restore")
    fresh_disk()
    restore(microvm, snap, prefix, disk, "second restore from the same snapshot")
    fresh_disk()
    restore(microvm, zsnap, prefix, disk, "restore from the compressed snapshot")

    # A snapshot of a restored VM (its memory is the first snapshot's file, copy-on-write).
    fresh_disk()
    sock2 = os.path.join(tmp, "api2.sock")
    g2 = Guest([microvm, "--restore", snap, "--disk", disk, "--api-sock", sock2, "--timeout", "300"])
    try:
        g2.wait_out("blk: seq 80\n", timeout=120)
        check(call(sock2, "POST", "/vm/pause")[0] == 200, "restored VM: pause")
        snap3 = os.path.join(tmp, "s3")
        status, r = call(sock2, "POST", "/vm/snapshot", '{"path": "%s"}' % snap3)
        check(status == 200, f"restored VM: snapshot ({r})")
        drain(g2)
        prefix2 = prefix + g2.out
        shutil.copyfile(disk, disk + ".at-snapshot")
        call(sock2, "POST", "/vm/stop")
        g2.p.wait(timeout=60)
    finally:
        if g2.p.poll() is None:
            g2.p.kill()
            g2.p.wait()
    restore(microvm, snap3, prefix2, disk, "restore from a snapshot of a restored VM")

    # Two VMs restored from one directory, each on its own disk (--disk replaces the saved path);
    # one of them snapshots into that same directory while both run. Neither may lose its RAM
    # (the old microvm truncated the mapped memory file: SIGBUS, zeros, the other's memory), and
    # the new snapshot restores and goes on from where that VM was paused.
    shared = copy_snap(snap, os.path.join(tmp, "shared"))
    disks = {}
    for name in ("r1", "r2"):
        disks[name] = os.path.join(tmp, name + ".img")
        shutil.copyfile(disk + ".at-snapshot", disks[name])
    sock_r2 = os.path.join(tmp, "r2.sock")
    r1 = Guest([microvm, "--restore", shared, "--disk", disks["r1"], "--timeout", "300"])
    r2 = Guest([microvm, "--restore", shared, "--disk", disks["r2"], "--api-sock", sock_r2, "--timeout", "300"])
    try:
        r2.wait_out("blk: seq 80\n", timeout=120)
        check(locked_exclusive(os.path.join(shared, "memory")),
              "the memory file VMs run from is locked (shared) while they run")
        check(f"{disks['r2']}, read-write".encode() in r2.err,
              f"the restore names the disk it opened ({r2.err[-300:]!r})")
        check(call(sock_r2, "POST", "/vm/pause")[0] == 200, "second restored VM: pause")
        status, r = call(sock_r2, "POST", "/vm/snapshot", '{"path": "%s"}' % shared)
        check(status == 200, f"a restored VM snapshots into the directory it runs from ({r})")
        check(sorted(os.listdir(shared)) == ["memory", "state"], "no temporary files left")
        drain(r2)
        prefix_r2 = prefix + r2.out
        r3_disk = os.path.join(tmp, "r3.img")
        shutil.copyfile(disks["r2"], r3_disk)
        check(call(sock_r2, "POST", "/vm/resume")[0] == 200, "second restored VM: resume")
        finish(r2, prefix, disks["r2"], "the VM that snapshotted into its own restore directory")
        finish(r1, prefix, disks["r1"], "the other VM restored from that directory")
    finally:
        for g in (r1, r2):
            if g.p.poll() is None:
                g.p.kill()
                g.p.wait()
    restore(microvm, shared, prefix_r2, r3_disk, "restore of the snapshot taken into its own restore directory")

    # Refused: every case on a copy of the good snapshot.
    n = [0]

    def bad_copy():
        n[0] += 1
        return copy_snap(snap, os.path.join(tmp, f"bad{n[0]}"))

    state = lambda d: os.path.join(d, "state")
    d = bad_copy()
    with open(state(d), "r+b") as f:
        f.truncate(os.path.getsize(state(d)) - 100)
    refused(microvm, ["--restore", d], r"refused: state is \d+ bytes, its header says \d+ \(truncated\?\)",
            "a truncated state file")
    d = bad_copy()
    with open(state(d), "rb") as f:
        head = bytearray(f.read(64))
    head[8:12] = struct.pack("<I", 99)
    head[60:64] = struct.pack("<I", zlib.crc32(bytes(head[:60])))
    patch(state(d), 0, bytes(head))
    refused(microvm, ["--restore", d], r"snapshot format version 99; this microvm reads version 1",
            "another format version")
    d = bad_copy()
    with open(state(d), "rb") as f:
        f.seek(300)
        b = f.read(1)
    patch(state(d), 300, bytes([b[0] ^ 0x40]))
    refused(microvm, ["--restore", d], r"refused: checksum mismatch \(corrupt\)", "a flipped bit in the state")
    d = bad_copy()
    patch(state(d), 0, b"NOTASNAP")
    refused(microvm, ["--restore", d], r"refused: not a microvm snapshot", "not a snapshot")
    d = bad_copy()
    with open(os.path.join(d, "memory"), "r+b") as f:
        f.truncate(32 << 20)
    refused(microvm, ["--restore", d, "--disk", disk], r"memory: refused: \d+ bytes, the state says \d+ \(truncated or replaced\)",
            "a truncated memory file")
    d = bad_copy()
    fd = os.open(os.path.join(d, "memory"), os.O_RDWR)
    at = os.lseek(fd, 0, os.SEEK_DATA) + 100
    b = os.pread(fd, 1, at)
    os.pwrite(fd, bytes([b[0] ^ 1]), at)
    os.close(fd)
    refused(microvm, ["--restore", d, "--disk", disk], r"refused: checksum mismatch in extent \d+ \(corrupt\)",
            "a flipped bit in the memory")
    d = copy_snap(zsnap, os.path.join(tmp, "badz"))
    z = os.path.join(d, "memory.z")
    patch(z, os.path.getsize(z) // 2, b"\xff\x00\xff\x00")
    refused(microvm, ["--restore", d, "--disk", disk], r"refused: (extent \d+ does not decompress|checksum mismatch in extent)",
            "corrupt compressed memory")
    d = bad_copy()
    os.unlink(state(d))
    refused(microvm, ["--restore", d], r"no state file in it", "a directory without a state file")
    refused(microvm, ["--restore", os.path.join(tmp, "nowhere")], r"--restore .*/nowhere: No such file",
            "a missing directory")
    refused(microvm, ["--restore", snap, "--kernel", guest], r"the snapshot defines the machine",
            "--restore with --kernel (a usage error: 2)", code=2)
    refused(microvm, ["--restore", snap, "--mem", "128M"], r"the snapshot defines the machine",
            "--restore with --mem", code=2)
    # The state file never chooses host files: every disk is named with --disk.
    refused(microvm, ["--restore", snap], r"the snapshot has 1 disk, 0 --disk given: give each its image with "
            r"--disk PATH\[,id=ID\] \(the first: id d.img\)", "a restore without --disk")
    # A snapshot directory others may write is not trusted.
    d = bad_copy()
    os.chmod(d, 0o777)
    refused(microvm, ["--restore", d, "--disk", disk], r"refused: the directory must belong to you or root and be "
            r"writable by no one else", "a restore from a directory others may write")
    d = bad_copy()
    os.unlink(os.path.join(d, "memory"))
    os.symlink(os.path.join(snap, "memory"), os.path.join(d, "memory"))
    refused(microvm, ["--restore", d, "--disk", disk], r"memory: refused: a symbolic link", "a symlinked memory file")
    refused(microvm, ["--restore", snap, "--disk", disk, "--disk", disk + ".at-snapshot"],
            r"the snapshot has 1 disk, 2 --disk given", "more --disk than the snapshot has")
    refused(microvm, ["--restore", snap, "--disk", disk + ",id=nosuch"],
            r"--disk .*,id=nosuch: the snapshot has no disk with that id", "--disk with an unknown id")
    refused(microvm, ["--restore", snap, "--disk", disk + ",ro"],
            r"the guest has disk d.img writable; it cannot become read-only", "--disk ,ro for a writable disk")
    refused(microvm, ["--restore", snap, "--disk", disk, "--net", "tap=mvsnap0"],
            r"the snapshot has 0 NICs, 1 --net given", "--net for a snapshot without NICs")
    # A disk saved read-only comes back read-only, whatever --disk says.
    d = bad_copy()
    edit_config(state(d), set_disk0_ro)
    shutil.copyfile(disk + ".at-snapshot", disk)
    r = subprocess.run([microvm, "--restore", d, "--disk", disk + ",id=d.img", "--timeout", "3"],
                       capture_output=True, timeout=120)
    check(f"{disk}, read-only".encode() in r.stderr, f"a disk saved read-only stays read-only ({r.stderr[-400:]!r})")
    with open(disk, "ab") as f:
        f.write(b"\0" * 512)
    refused(microvm, ["--restore", snap, "--disk", disk], r"refused: disk .*d.img is 4194816 bytes now, 4194304 when",
            "a disk that changed size")
    os.rename(disk, disk + ".away")
    refused(microvm, ["--restore", snap, "--disk", disk], r"d.img: No such file or directory", "a missing disk")
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
