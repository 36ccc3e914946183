#!/usr/bin/env python3
"""powercut.py - no flushed write is ever lost: a power-cut (crash-consistency) test (stdlib only).

  powercut.py --microvm PATH --kernel GUEST [--variant ENGINE[,direct]]... [--records N] [--every N]
  powercut.py --microvm PATH --kernel GUEST --overlay [--variant ENGINE[,bitmap-first]]...
  powercut.py --microvm PATH --linux DIR
  powercut.py --self-test

The disk is an ext4 image holding one file, `records`, whose blocks are
found with debugfs. The image sits behind dm-log-writes (on loop devices),
which records every write and flush that reaches the disk, in order. The
test guest (blk.records=...) writes numbered, checksummed records into
that file's sectors through virtio-blk, issues a FLUSH after each batch,
and prints "blk: durable N" once the FLUSH completed; the test answers
each such line with a mark in the log ("durable-N"). Afterwards the log
is replayed onto a copy of the original image, entry by entry, and after
every entry (a power cut at that instant) the records that were
acknowledged as durable by then must be present and intact; at every
FLUSH point and a few points between flushes `e2fsck -fn` must find the
file system clean. "Acknowledged by then": after the log's k-th FLUSH
entry, every record covered by the guest's first k flushes; after a mark
durable-N, records 0..N-1. Records not acknowledged yet may be missing,
but never garbage. Each run then checks that the checker can fail: the
same log with one acknowledged record's write dropped, and with it moved
after its FLUSH, must show lost records.

--overlay: the disk is a copy-on-write overlay over a base image, both files
on a host ext4 mounted from the dm-log-writes device; at each crash point
checked, the overlay file is read out of the journal-recovered image
(debugfs) and each record read through its bitmap, from the overlay or the
base. The control run (ENGINE,bitmap-first; microvm built with the test
hooks) has microvm write the bitmap before the data is durable, and must
fail.

The log format is Linux's (Documentation/admin-guide/device-mapper/
log-writes.rst, drivers/md/dm-log-writes.c): a super block at byte 0
(magic, version, entry count, sector size), then per entry one block of
`sectorsize` bytes with the 32-byte entry (sector, nr_sectors in sector-
size units, flags, data_len; a mark's text follows it in the same block),
then nr_sectors blocks of data (none for a discard or a mark).

--self-test needs no KVM and no root: it builds logs itself and checks that
the replayer and the checker pass a good one and fail a dropped write, a
write moved past its FLUSH, a torn record, a missing FLUSH and a damaged
file system. Exit status: 0 pass, 1 fail, 77 skip (with the reason).
See docs/powercut.md.
"""
import argparse
import fcntl
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

SKIP = 77
SECTOR = 512
REC_MAGIC = 0x31304345524D564D   # "MVMREC01", as tests/guest/blk.c
MASK = (1 << 64) - 1
SEED_MUL = 0x9E3779B97F4A7C15
BLANK = b"\xa5" * SECTOR          # a record's sector before the guest writes it

LOG_MAGIC = 0x6A736677736872
LOG_VERSION = 1
F_FLUSH, F_FUA, F_DISCARD, F_MARK, F_METADATA = 1, 2, 4, 8, 16
SUPER = struct.Struct("<QQQI")
ENTRY = struct.Struct("<QQQQ")


# ---- records (the guest's make_record()) ----

def rotsum(words):
    h = 0
    for w in words:
        h = (((h << 1) | (h >> 63)) + w) & MASK
    return h


def record_bytes(sector, n, run):
    m = ((run * 1000003 + n + 1) * SEED_MUL) & MASK
    w = [REC_MAGIC, n, run] + [((sector * 64 + i) ^ m) & MASK for i in range(3, 63)]
    w.append(rotsum(w))
    return struct.pack("<64Q", *w)


# ---- the log ----

class Entry:
    __slots__ = ("index", "sector", "nr", "flags", "mark", "data_off")

    def __init__(self, index, sector, nr, flags, mark, data_off):
        self.index, self.sector, self.nr, self.flags = index, sector, nr, flags
        self.mark, self.data_off = mark, data_off

    def kind(self):
        if self.flags & F_MARK:
            return f"mark {self.mark!r}"
        what = "discard" if self.flags & F_DISCARD else "write" if self.nr else ""
        fl = "+".join(n for f, n in ((F_FLUSH, "FLUSH"), (F_FUA, "FUA")) if self.flags & f)
        return " ".join(x for x in (what, fl) if x) + (f" {self.nr}@{self.sector}" if self.nr else "")


def parse_log(path):
    """(sectorsize, [Entry]) from a dm-log-writes log; raises ValueError on a malformed one."""
    with open(path, "rb") as f:
        head = f.read(SUPER.size)
        if len(head) < SUPER.size:
            raise ValueError("log shorter than its super block")
        magic, version, count, ss = SUPER.unpack(head)
        if magic != LOG_MAGIC:
            raise ValueError(f"log magic 0x{magic:x}, expected 0x{LOG_MAGIC:x} (not a dm-log-writes log)")
        if version != LOG_VERSION:
            raise ValueError(f"log version {version}, this replayer reads {LOG_VERSION}")
        if ss < SECTOR or ss & (ss - 1) or ss > 65536:
            raise ValueError(f"log sector size {ss}")
        size = os.fstat(f.fileno()).st_size
        entries, pos = [], ss
        for i in range(count):
            f.seek(pos)
            blk = f.read(ss)
            if len(blk) < ss:
                raise ValueError(f"entry {i} of {count} at byte {pos}: past the end of the log")
            sector, nr, flags, dlen = ENTRY.unpack_from(blk)
            mark = None
            if flags & F_MARK:
                if dlen > ss - ENTRY.size:
                    raise ValueError(f"entry {i}: mark of {dlen} bytes")
                mark = blk[ENTRY.size:ENTRY.size + dlen].decode("utf-8", "replace")
                nr_data = 0
            else:
                nr_data = 0 if flags & F_DISCARD else nr
            if pos + ss * (1 + nr_data) > size:
                raise ValueError(f"entry {i}: {nr_data} data blocks past the end of the log")
            entries.append(Entry(i, sector, nr, flags, mark, pos + ss))
            pos += ss * (1 + nr_data)
    return ss, entries


def write_log(path, ss, items):
    """A log in dm-log-writes' format (for the self-test): items are (flags, sector, data or mark)."""
    with open(path, "wb") as f:
        f.write(SUPER.pack(LOG_MAGIC, LOG_VERSION, len(items), ss).ljust(ss, b"\0"))
        for flags, sector, payload in items:
            if flags & F_MARK:
                m = payload.encode()
                f.write((ENTRY.pack(0, 0, flags, len(m)) + m).ljust(ss, b"\0"))
            else:
                data = payload or b""
                assert len(data) % ss == 0
                f.write(ENTRY.pack(sector, len(data) // ss, flags, 0).ljust(ss, b"\0"))
                f.write(data)


class Replay:
    """Applies log entries, in a given order, onto a working copy of the original image."""

    def __init__(self, log_path, ss, image_path):
        self.log = open(log_path, "rb")
        self.ss = ss
        self.fd = os.open(image_path, os.O_RDWR)

    def apply(self, e):
        if e.flags & F_MARK or not e.nr:
            return
        off, n = e.sector * self.ss, e.nr * self.ss
        if e.flags & F_DISCARD:
            data = bytes(n)   # what a discarded range reads as is undefined; zeroes are the harsh case
        else:
            self.log.seek(e.data_off)
            data = self.log.read(n)
        if os.pwrite(self.fd, data, off) != n:
            raise OSError(f"short write replaying entry {e.index}")

    def close(self):
        self.log.close()
        os.close(self.fd)


# ---- the image ----

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def make_image(path, records, size_mib=16):
    """An ext4 image with a file 'records' of BLANK sectors; returns the first record's sector."""
    stage = tempfile.mkdtemp(prefix="powercut-stage-", dir=os.path.dirname(path))
    try:
        with open(os.path.join(stage, "records"), "wb") as f:
            f.write(BLANK * records)
        r = run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", stage,
                 "-E", "root_owner=0:0", path, f"{size_mib}M"])
        if r.returncode:
            raise RuntimeError(f"mke2fs failed: {r.stdout.strip()}")
    finally:
        shutil.rmtree(stage)
    r = run(["debugfs", "-R", "blocks /records", path])
    blocks = [int(b) for b in r.stdout.split() if b.isdigit()]
    need = (records * SECTOR + 4095) // 4096
    if r.returncode or len(blocks) != need:
        raise RuntimeError(f"debugfs blocks /records: {r.stdout.strip()!r} (expected {need} blocks)")
    if blocks != list(range(blocks[0], blocks[0] + need)):
        raise RuntimeError(f"the records file is not contiguous: blocks {blocks}")
    first = blocks[0] * (4096 // SECTOR)
    with open(path, "rb") as f:
        f.seek(first * SECTOR)
        if f.read(records * SECTOR) != BLANK * records:
            raise RuntimeError("the records file's blocks do not hold what was put in it")
    return first


def e2fsck_clean(path):
    r = run(["e2fsck", "-fn", path])
    return r.returncode == 0, r.stdout


# ---- the check ----

class Result:
    def __init__(self):
        self.points = self.flush_points = self.between_points = 0
        self.checked = self.lost = self.corrupt = 0
        self.fsck_points = self.fsck_bad = self.fsck_summary_fixes = 0
        self.first_problems = []

    def problem(self, text):
        if len(self.first_problems) < 8:
            self.first_problems.append(text)

    def ok(self):
        return not (self.lost or self.corrupt or self.fsck_bad)


def check_log(log_path, orig_image, work_image, first, records, run_id, durable, entries=None,
              ss=None, fsck_between=2, do_fsck=True):
    """Replays the log onto a copy of orig_image, checking after every entry (see the module doc).

    durable: the guest's 'blk: durable N' counts, in order. entries: the log's entries in the order
    to replay them (default: as logged). fsck_between: e2fsck runs at every FLUSH point and at this
    many points spread over each stretch between two FLUSHes.
    """
    if entries is None:
        ss, entries = parse_log(log_path)
    shutil.copyfile(orig_image, work_image)
    want = [record_bytes(first + n, n, run_id) for n in range(records)]
    res = Result()
    nflush = sum(1 for e in entries if e.flags & F_FLUSH)
    if nflush < len(durable):
        res.lost += 1
        res.problem(f"the guest was told {len(durable)} flushes completed; the log holds {nflush} FLUSH entries")
    # Which points between FLUSHes get an e2fsck: spread over each stretch.
    fsck_at = set()
    stretch = []
    for i, e in enumerate(entries):
        if e.flags & F_FLUSH:
            if stretch and fsck_between:
                step = max(1, len(stretch) // (fsck_between + 1))
                fsck_at.update(stretch[step - 1::step][:fsck_between])
            stretch = []
        else:
            stretch.append(i + 1)   # the point after entry i
    rp = Replay(log_path, ss, work_image)
    fd = os.open(work_image, os.O_RDONLY)
    try:
        flushes_seen = mark_req = 0
        for p in range(len(entries) + 1):   # point p: the first p entries reached the disk
            if p:
                e = entries[p - 1]
                rp.apply(e)
                if e.flags & F_FLUSH:
                    flushes_seen += 1
                if e.mark and (m := re.fullmatch(r"durable-(\d+)", e.mark)):
                    mark_req = max(mark_req, int(m.group(1)))
            after_flush = p > 0 and entries[p - 1].flags & F_FLUSH
            req = durable[min(flushes_seen, len(durable)) - 1] if flushes_seen and durable else 0
            req = max(req, mark_req)
            res.points += 1
            if after_flush:
                res.flush_points += 1
            else:
                res.between_points += 1
            area = os.pread(fd, records * SECTOR, first * SECTOR)
            for n in range(records):
                got = area[n * SECTOR:(n + 1) * SECTOR]
                if n < req:
                    res.checked += 1
                    if got != want[n]:
                        res.lost += 1
                        res.problem(f"point {p} (after {entries[p - 1].kind() if p else 'nothing'}): "
                                    f"record {n} acknowledged durable, but its sector holds "
                                    f"{'the blank' if got == BLANK else 'other data'}")
                elif got != want[n] and got != BLANK:
                    res.corrupt += 1
                    res.problem(f"point {p}: record {n} (not acknowledged yet) is neither blank nor intact")
            if do_fsck and (after_flush or p in fsck_at or p == len(entries)):
                os.fsync(rp.fd)
                clean, out = e2fsck_clean(work_image)
                res.fsck_points += 1
                if not clean:
                    res.fsck_bad += 1
                    res.problem(f"point {p}: e2fsck -fn: {out.strip().splitlines()[-1:]}")
    finally:
        os.close(fd)
        rp.close()
    return res


def controls(log_path, orig_image, work_image, first, records, run_id, durable):
    """The checker must fail on a log with one acknowledged record lost: (dropped, moved) lost counts."""
    ss, entries = parse_log(log_path)
    flush_idx = [i for i, e in enumerate(entries) if e.flags & F_FLUSH]
    if not durable or not flush_idx:
        return None
    # A record in the middle of the run, acknowledged by guest flush j (the j-th FLUSH entry).
    target = durable[len(durable) // 2] - 1
    j = next(k for k, n in enumerate(durable) if n > target)
    if j >= len(flush_idx):
        return None
    sec = first + target
    lo = flush_idx[j - 1] + 1 if j else 0
    writes = [i for i in range(lo, flush_idx[j])
              if not entries[i].flags & (F_MARK | F_DISCARD) and entries[i].sector * ss // SECTOR <= sec
              < (entries[i].sector + entries[i].nr) * ss // SECTOR]
    if not writes:
        return None
    w = writes[-1]
    dropped = entries[:w] + entries[w + 1:]
    moved = entries[:w] + entries[w + 1:flush_idx[j] + 1] + [entries[w]] + entries[flush_idx[j] + 1:]
    r1 = check_log(log_path, orig_image, work_image, first, records, run_id, durable, dropped, ss, do_fsck=False)
    r2 = check_log(log_path, orig_image, work_image, first, records, run_id, durable, moved, ss, do_fsck=False)
    return r1.lost, r2.lost


# ---- the VM run behind dm-log-writes ----

def skip_reason():
    if os.geteuid() != 0:
        return "not root (loop devices and device-mapper need it)"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return f"/dev/kvm: {e.strerror}; the guest needs a usable /dev/kvm"
    for tool in ("dmsetup", "losetup", "mke2fs", "debugfs", "e2fsck"):
        if not shutil.which(tool):
            return f"no `{tool}` (install {'dmsetup' if tool == 'dmsetup' else 'mount' if tool == 'losetup' else 'e2fsprogs'})"
    # Modules: the running kernel's, or (in scripts/nested-kvm's VM, whose root is the host's)
    # the ones unpacked next to its kernel.
    alt = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                       "microvm", "nested", os.uname().release)
    for mod, present in (("loop", lambda: os.path.exists("/dev/loop-control")),
                         ("dm-log-writes", lambda: "log-writes" in run(["dmsetup", "targets"]).stdout)):
        if present():
            continue
        run(["modprobe", mod])
        if not present() and os.path.isdir(alt):
            run(["modprobe", "-d", alt, "-S", os.uname().release, mod])
        if not present():
            return f"no {mod} (kernel module {mod} not loadable: CONFIG_{'BLK_DEV_LOOP' if mod == 'loop' else 'DM_LOG_WRITES'})"
    return None


class Target:
    """Loop devices over the image and the log, and a log-writes target over them; remove() undoes it."""

    def __init__(self, name, image, log):
        self.name, self.loops, self.created = name, [], False
        for f in (image, log):
            r = run(["losetup", "-f", "--show", f])
            if r.returncode:
                self.remove()
                raise RuntimeError(f"losetup {f}: {r.stdout.strip()}")
            self.loops.append(r.stdout.strip())
        sectors = os.path.getsize(image) // SECTOR
        r = run(["dmsetup", "create", "--noudevsync", name, "--table",
                 f"0 {sectors} log-writes {self.loops[0]} {self.loops[1]}"])
        if r.returncode:
            self.remove()
            raise RuntimeError(f"dmsetup create: {r.stdout.strip()}")
        self.created = True
        run(["dmsetup", "mknodes", name])
        self.dev = f"/dev/mapper/{name}"
        if not os.path.exists(self.dev):
            self.remove()
            raise RuntimeError(f"{self.dev} did not appear")

    # DM_TARGET_MSG on /dev/mapper/control (linux/dm-ioctl.h): struct dm_ioctl (312 bytes: version[3],
    # data_size, data_start, target_count, open_count, flags, event_nr, padding, dev, name[128],
    # uuid[129], data[7]) followed by struct dm_target_msg (sector, message). Much quicker than a
    # dmsetup process under emulation, so the mark lands closer to the acknowledgement.
    DM_IOCTL = struct.Struct("<3I7IQ128s129s7s")
    DM_TARGET_MSG = (3 << 30) | (DM_IOCTL.size << 16) | (0xFD << 8) | 14

    def mark(self, text):
        msg = struct.pack("<Q", 0) + f"mark {text}".encode() + b"\0"
        size = self.DM_IOCTL.size + len(msg)
        size += -size % 8
        if not getattr(self, "no_ioctl", False):
            buf = bytearray(self.DM_IOCTL.pack(4, 0, 0, size, self.DM_IOCTL.size, 0, 0, 0, 0, 0, 0,
                                               self.name.encode(), b"", b"") + msg)
            buf += bytes(size - len(buf))
            try:
                with open("/dev/mapper/control", "rb+", buffering=0) as ctl:
                    fcntl.ioctl(ctl, self.DM_TARGET_MSG, buf)
                return
            except OSError as e:
                print(f"powercut: DM_TARGET_MSG ioctl: {e}; using dmsetup message", flush=True)
                self.no_ioctl = True
        r = run(["dmsetup", "message", self.name, "0", "mark", text])
        if r.returncode:
            raise RuntimeError(f"dmsetup message mark {text}: {r.stdout.strip()}")

    def remove(self):
        if self.created:
            for _ in range(20):
                if run(["dmsetup", "remove", "--noudevsync", self.name]).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                print(f"powercut: could not remove {self.name}", file=sys.stderr)
            self.created = False
        for lp in self.loops:
            run(["losetup", "-d", lp])
        self.loops = []


def run_logged(opt, cmd, tgt, tmp, durable_re, env=None, before_remove=None):
    """Runs microvm on the target's device; marks durable-N in the log for each console line durable_re
    matches (group 1: N). env: microvm's environment; before_remove: called before the target is removed
    (to unmount a file system on it). Returns (exit status, console text, stderr text, [N...], seconds)."""
    durable, out = [], []
    t0 = time.monotonic()
    print("powercut: $ " + " ".join(cmd), flush=True)
    with open(os.path.join(tmp, "stderr"), "w+") as errf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, errors="replace", env=env)
        try:
            for line in p.stdout:   # microvm's own --timeout bounds this
                out.append(line)
                m = re.search(durable_re, line)
                if m:
                    durable.append(int(m.group(1)))
                    tgt.mark(f"durable-{m.group(1)}")
            rc = p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            try:
                if before_remove:
                    before_remove()
            finally:
                tgt.remove()
        errf.seek(0)
        err = errf.read()
    return rc, "".join(out), err, durable, time.monotonic() - t0


def run_variant(opt, variant, tmp):
    engine, _, direct = variant.partition(",")
    label = variant
    image = os.path.join(tmp, "image.ext4")
    orig = os.path.join(tmp, "orig.ext4")
    log = os.path.join(tmp, "log")
    work = os.path.join(tmp, "replay.ext4")
    first = make_image(image, opt.records)
    shutil.copyfile(image, orig)
    with open(log, "wb") as f:
        f.truncate(64 << 20)
    run_id = os.getpid() & 0xFFFF
    cmdline = f"blk.records=vda:{first}:{opt.records}:{opt.every}:{run_id}:{opt.pace}"
    name = f"powercut-{os.getpid()}-{engine}{'-direct' if direct else ''}"
    tgt = Target(name, image, log)
    try:
        cmd = [opt.microvm, "--kernel", opt.kernel, "--io-engine", engine, "--timeout", str(opt.timeout),
               "--disk", tgt.dev + (",direct" if direct else ""), "--cmdline", cmdline]
    except BaseException:
        tgt.remove()
        raise
    rc, text, err, durable, t_vm = run_logged(opt, cmd, tgt, tmp, r"^blk: durable (\d+)$")
    if rc != 0 or not re.search(r"^blk: vda: records: \d+ written in \d+ flushes, read back ok", text, re.M):
        print(text, end="")
        print(err, end="")
        raise RuntimeError(f"{label}: microvm exited with {rc}, or the guest did not finish its records")
    if not durable or durable != sorted(set(durable)) or durable[-1] != opt.records:
        raise RuntimeError(f"{label}: durable lines {durable}")
    ss, entries = parse_log(log)
    kinds = {"write": 0, "FLUSH": 0, "mark": 0, "other": 0}
    for e in entries:
        k = "mark" if e.flags & F_MARK else "FLUSH" if e.flags & F_FLUSH else "write" if e.nr else "other"
        kinds[k] += 1
    print(f"powercut: {label}: guest ran {t_vm:.1f} s, {len(durable)} flushes acknowledged; log: "
          f"{len(entries)} entries ({kinds['write']} writes, {kinds['FLUSH']} FLUSH, {kinds['mark']} marks), "
          f"sector size {ss}", flush=True)
    # The guest's j-th acknowledgement (its mark) must come after the log's j-th FLUSH entry: dm-log-writes
    # queues a FLUSH for the log before it completes it upwards, so a mark before it means microvm told
    # the guest a flush was done before one reached the disk.
    fpos = [i for i, e in enumerate(entries) if e.flags & F_FLUSH]
    mpos = {int(e.mark[8:]): i for i, e in enumerate(entries) if e.mark and re.fullmatch(r"durable-\d+", e.mark)}
    early, lags = [], []
    for j, n in enumerate(durable):
        if n not in mpos:
            early.append(f"no mark durable-{n} in the log")
        elif j >= len(fpos) or mpos[n] < fpos[j]:
            early.append(f"durable-{n} (flush {j + 1}) logged before the log's FLUSH number {j + 1}")
        else:
            lags.append(mpos[n] - fpos[j])
    print(f"powercut: {label}: every acknowledgement after its FLUSH: {'no' if early else 'yes'}; "
          f"its mark {min(lags, default=0)}-{max(lags, default=0)} entries after the FLUSH", flush=True)
    t1 = time.monotonic()
    res = check_log(log, orig, work, first, opt.records, run_id, durable, fsck_between=opt.fsck_between)
    ctl = controls(log, orig, work, first, opt.records, run_id, durable)
    print(f"powercut: {label}: {res.points} crash points replayed ({res.flush_points} after a FLUSH, "
          f"{res.between_points} between), {res.checked} acknowledged records checked, {res.lost} lost, "
          f"{res.corrupt} corrupt, e2fsck -fn clean at {res.fsck_points - res.fsck_bad} of {res.fsck_points} "
          f"points; controls: dropped write -> {ctl[0] if ctl else '?'} lost, write after its FLUSH -> "
          f"{ctl[1] if ctl else '?'} lost ({time.monotonic() - t1:.1f} s)", flush=True)
    for pr in early[:8]:
        print(f"powercut: {label}: {pr}")
    for pr in res.first_problems:
        print(f"powercut: {label}: {pr}")
    if early:
        return res, False
    if not ctl or not ctl[0] or not ctl[1]:
        res.problem("the checker did not see a deliberately lost record (controls)")
        return res, False
    return res, res.ok()


# ---- disks on a copy-on-write overlay: a host ext4 behind dm-log-writes ----

OVL_MAGIC = b"MVMOVL\r\n"
OVL_HEADER = struct.Struct("<8sIIIIQQQQ68sI")   # docs/overlay.md, 128 bytes
OVL_CLUSTER = 4096
OVL_BASE = 1 << 20        # the base image: 1 MiB of BLANK sectors, 256 clusters
OVL_FIRST = 8 * 16 + 3    # the first record's sector: not cluster-aligned, so first writes need fills
BITMAP_FIRST_ENV = "MICROVM_TEST_OVL_BITMAP_FIRST"   # io/overlay.h: the wrong-order FLUSH (test hook)


def parse_overlay(data, base_size):
    """(bitmap, data_off) of an overlay file's bytes, checked as docs/overlay.md says (our own reader:
    the test's oracle); raises ValueError with the reason."""
    if len(data) < OVL_HEADER.size:
        raise ValueError(f"{len(data)} bytes, too short for a header")
    magic, ver, hsize, csize, flags, size, boff, blen, doff, resv, crc = OVL_HEADER.unpack_from(data)
    if magic != OVL_MAGIC:
        raise ValueError(f"magic {magic!r}")
    if ver != 1 or hsize != OVL_HEADER.size:
        raise ValueError(f"version {ver}, header size {hsize}")
    if zlib.crc32(data[:124] + b"\0\0\0\0") != crc:
        raise ValueError("header CRC mismatch")
    clusters = (size + OVL_CLUSTER - 1) // OVL_CLUSTER
    want_blen = ((clusters + 7) // 8 + 4095) // 4096 * 4096
    if csize != OVL_CLUSTER or flags or any(resv) or size != base_size:
        raise ValueError(f"cluster size {csize}, flags {flags}, size {size} (base {base_size}) or reserved bytes")
    if boff != 4096 or blen != want_blen or doff != boff + blen:
        raise ValueError(f"layout: bitmap at {boff}, {blen} bytes, data at {doff}")
    if len(data) < doff + clusters * OVL_CLUSTER:
        raise ValueError(f"file of {len(data)} bytes, needs {doff + clusters * OVL_CLUSTER}")
    bitmap = data[boff:boff + blen]
    tail = bitmap[clusters // 8:]
    if (clusters % 8 and tail[0] >> (clusters % 8)) or any(tail[1 if clusters % 8 else 0:]):
        raise ValueError("bitmap marks clusters past the end of the disk")
    return bitmap, doff


def ovl_resolve(data, base, first, records):
    """Each record's sector as the guest would read it through the overlay file `data` (None: no file)
    over `base`: from the data area when its cluster's bit is set, else from the base. Returns
    ([bytes per record], why the overlay is unusable or None, clusters allocated)."""
    why, bitmap, doff = None, None, 0
    if data is None:
        why = "no overlay file"
    else:
        try:
            bitmap, doff = parse_overlay(data, len(base))
        except ValueError as e:
            why = f"overlay file unusable: {e}"
    got = []
    for n in range(records):
        off = (first + n) * SECTOR
        c = off // OVL_CLUSTER
        if bitmap is not None and bitmap[c // 8] >> (c % 8) & 1:
            got.append(data[doff + off:doff + off + SECTOR])
        else:
            got.append(base[off:off + SECTOR])
    used = sum(bin(b).count("1") for b in bitmap) if bitmap is not None else 0
    return got, why, used


def judge(res, p, where, got, want, req):
    """The verdicts: records 0..req-1 (acknowledged) intact, every other one blank or intact."""
    for n, g in enumerate(got):
        if n < req:
            res.checked += 1
            if g != want[n]:
                res.lost += 1
                res.problem(f"point {p} (after {where}): record {n} acknowledged durable, but it reads as "
                            f"{'the blank' if g == BLANK else 'zeroes' if not any(g) else 'other data'}")
        elif g != want[n] and g != BLANK:
            res.corrupt += 1
            res.problem(f"point {p} (after {where}): record {n} (not acknowledged yet) is neither blank nor "
                        f"intact: {'zeroes' if not any(g) else 'other data'}")


def ovl_points(entries):
    """Where the overlay check looks: before and after every FLUSH entry, after every mark, the middle of
    every stretch between them, the end."""
    points, stretch = {0, len(entries)}, []
    for i, e in enumerate(entries):
        if e.flags & (F_FLUSH | F_MARK):
            if e.flags & F_FLUSH:
                points.add(i)
            points.add(i + 1)
            if stretch:
                points.add(stretch[len(stretch) // 2])
            stretch = []
        else:
            stretch.append(i + 1)
    return points


def check_overlay(log_path, orig, work, tmp, first, records, run_id, base, entries, ss, points=None,
                  fsck_points=6):
    """Replays the log onto a copy of the host file system; at each of `points` (default ovl_points()) a
    copy gets its journal recovered (e2fsck -E journal_only; at `fsck_points` points spread over the run
    and the last, a full e2fsck -fy that may correct only the superblock's free totals), debugfs dumps
    the overlay file, and the records are read through it (ovl_resolve()) and judged; acknowledged: the
    marks durable-N. A point whose image did not change since the last one reuses its reading."""
    if points is None:
        points = ovl_points(entries)
    shutil.copyfile(orig, work)
    want = [record_bytes(first + n, n, run_id) for n in range(records)]
    res = Result()
    res.ovl_reads = 0
    plist = sorted(points)
    step = max(1, len(plist) // max(1, fsck_points))
    full = set(plist[step - 1::step][:fsck_points]) | {plist[-1]} if fsck_points else set()
    chk, out = os.path.join(tmp, "check.ext4"), os.path.join(tmp, "dump.ovl")
    rp = Replay(log_path, ss, work)
    try:
        req, changed, got = 0, True, None
        for p in range(len(entries) + 1):
            if p:
                e = entries[p - 1]
                rp.apply(e)
                changed |= bool(e.nr) and not e.flags & F_MARK
                if e.mark and (m := re.fullmatch(r"durable-(\d+)", e.mark)):
                    req = max(req, int(m.group(1)))
            if p not in points:
                continue
            res.points += 1
            if p and entries[p - 1].flags & F_FLUSH:
                res.flush_points += 1
            else:
                res.between_points += 1
            where = entries[p - 1].kind() if p else "nothing"
            if changed or p in full:
                shutil.copyfile(work, chk)
                if p in full:
                    r = run(["e2fsck", "-fy", chk])
                    res.fsck_points += 1
                    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
                    fixes = [lines[i - 1] if i else ln for i, ln in enumerate(lines) if ln.endswith("? yes")]
                    bad = [f for f in fixes if not SUPER_TOTALS.fullmatch(f)]
                    res.fsck_summary_fixes += len(fixes) - len(bad)
                    if r.returncode > 1 or bad:
                        res.fsck_bad += 1
                        res.problem(f"point {p}: e2fsck -fy exit {r.returncode}: {(bad or lines)[:3]}")
                else:
                    r = run(["e2fsck", "-E", "journal_only", "-y", chk])
                    if r.returncode > 1:
                        res.fsck_bad += 1
                        res.problem(f"point {p}: journal recovery (e2fsck -E journal_only) exit {r.returncode}")
                if os.path.exists(out):
                    os.unlink(out)
                run(["debugfs", "-R", f"dump /disk.ovl {out}", chk])
                data = None
                if os.path.exists(out):
                    with open(out, "rb") as f:
                        data = f.read()
                got, why, used = ovl_resolve(data, base, first, records)
                res.ovl_reads += 1
                changed = False
                if p in full:
                    # The base is read-only under an overlay: it must be as it was.
                    run(["debugfs", "-R", f"dump /base.img {out}", chk])
                    with open(out, "rb") as f:
                        if f.read() != base:
                            res.corrupt += 1
                            res.problem(f"point {p}: base.img changed")
            if why and req:
                res.problem(f"point {p}: {why}")
            judge(res, p, where, got, want, req)
    finally:
        rp.close()
    return res


def make_host_fs(path, size_mib=16):
    """The host's ext4 (4 KiB blocks, inode tables zeroed now so that no lazy init writes into the log)
    holding base.img: OVL_BASE bytes of BLANK sectors. Returns the base's bytes."""
    stage = tempfile.mkdtemp(prefix="powercut-stage-", dir=os.path.dirname(path))
    base = BLANK * (OVL_BASE // SECTOR)
    try:
        with open(os.path.join(stage, "base.img"), "wb") as f:
            f.write(base)
        r = run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", stage,
                 "-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0", path, f"{size_mib}M"])
        if r.returncode:
            raise RuntimeError(f"mke2fs failed: {r.stdout.strip()}")
    finally:
        shutil.rmtree(stage)
    return base


def run_overlay(opt, variant, tmp):
    """One run on `--disk MNT/base.img,overlay=MNT/disk.ovl`, MNT a host ext4 on the dm-log-writes
    device. variant: ENGINE, or ENGINE,bitmap-first: the control, microvm with the wrong-order FLUSH
    (BITMAP_FIRST_ENV), which the check must catch."""
    engine, _, extra = variant.partition(",")
    control = extra == "bitmap-first"
    label = f"overlay {variant}"
    image, orig, log, work = (os.path.join(tmp, n) for n in ("host.ext4", "orig.ext4", "log", "replay.ext4"))
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    base = make_host_fs(image)
    shutil.copyfile(image, orig)
    with open(log, "wb") as f:
        f.truncate(256 << 20)
    run_id = os.getpid() & 0xFFFF
    first, records = OVL_FIRST, opt.records
    if (first + records) * SECTOR > OVL_BASE:
        raise RuntimeError(f"--records {records} does not fit the {OVL_BASE}-byte base")
    name = f"powercut-{os.getpid()}-ovl-{engine}{'-ctl' if control else ''}"
    tgt = Target(name, image, log)
    r = run(["mount", "-t", "ext4", tgt.dev, mnt])
    if r.returncode:
        tgt.remove()
        raise RuntimeError(f"mount {tgt.dev}: {r.stdout.strip()}")
    env = dict(os.environ)
    env.pop(BITMAP_FIRST_ENV, None)
    if control:
        env[BITMAP_FIRST_ENV] = "1"
    cmd = [opt.microvm, "--kernel", opt.kernel, "--io-engine", engine, "--timeout", str(opt.timeout),
           "--disk", f"{mnt}/base.img,overlay={mnt}/disk.ovl",
           "--cmdline", f"blk.records=vda:{first}:{records}:{opt.every}:{run_id}:{opt.pace}"]

    def unmount():
        u = run(["umount", mnt])
        if u.returncode:
            raise RuntimeError(f"umount {mnt}: {u.stdout.strip()}")

    rc, text, err, durable, t_vm = run_logged(opt, cmd, tgt, tmp, r"^blk: durable (\d+)$", env, unmount)
    if rc != 0 or not re.search(r"^blk: vda: records: \d+ written in \d+ flushes, read back ok", text, re.M):
        print(text, end="")
        print(err, end="")
        raise RuntimeError(f"{label}: microvm exited with {rc}, or the guest did not finish its records")
    if control and BITMAP_FIRST_ENV not in err:
        raise RuntimeError(f"{label}: microvm did not take {BITMAP_FIRST_ENV} (build with -Dtest_hooks=true)")
    if not durable or durable != sorted(set(durable)) or durable[-1] != records:
        raise RuntimeError(f"{label}: durable lines {durable}")
    ss, entries = parse_log(log)
    nflush = sum(1 for e in entries if e.flags & F_FLUSH)
    nwrite = sum(1 for e in entries if e.nr and not e.flags & (F_MARK | F_DISCARD))
    print(f"powercut: {label}: guest ran {t_vm:.1f} s, {len(durable)} flushes acknowledged; log: "
          f"{len(entries)} entries ({nwrite} writes, {nflush} FLUSH), sector size {ss}", flush=True)
    # The guest's j-th acknowledgement needs at least j FLUSH entries of the host's disk before its mark:
    # each guest batch writes, so each of microvm's flushes makes the host flush its disk at least once
    # (here the FLUSH entries are the host file system's, not one per guest flush). A mark may come late
    # (the console is read as it comes), never early: so only this lower bound, not one FLUSH between
    # two marks.
    unbacked, nfl, nmark = [], 0, 0
    for e in entries:
        if e.flags & F_FLUSH:
            nfl += 1
        elif e.mark and re.fullmatch(r"durable-\d+", e.mark):
            nmark += 1
            if nfl < nmark:
                unbacked.append(f"{e.mark} (acknowledgement {nmark}) after {nfl} FLUSH entries")
    print(f"powercut: {label}: the j-th acknowledgement after at least j host FLUSHes: "
          f"{'no: ' + ', '.join(unbacked[:8]) if unbacked else 'yes'}", flush=True)
    t1 = time.monotonic()
    res = check_overlay(log, orig, work, tmp, first, records, run_id, base, entries, ss,
                        fsck_points=0 if control else opt.ovl_fsck)
    print(f"powercut: {label}: {res.points} crash points checked ({res.flush_points} after a FLUSH, "
          f"{res.between_points} before a FLUSH, at a mark or between; the overlay read out {res.ovl_reads} "
          f"times), {res.checked} acknowledged records checked, {res.lost} lost, {res.corrupt} corrupt, "
          f"e2fsck clean after journal recovery at {res.fsck_points - res.fsck_bad} of {res.fsck_points} "
          f"({res.fsck_summary_fixes} corrections of the superblock's free totals) "
          f"({time.monotonic() - t1:.1f} s)", flush=True)
    for pr in res.first_problems:
        print(f"powercut: {label}: {pr}")
    if unbacked and not control:
        return res, False
    if control:
        caught = bool(res.lost or res.corrupt)
        print(f"powercut: {label}: control (bitmap pages written before the data's fdatasync): "
              f"{'caught' if caught else 'NOT caught'}", flush=True)
        return Result(), caught
    return res, res.ok()


# ---- the Linux guest: ext4 with fsync ----

# The --run script (tests/linux/init.sh runs it as root): mounts the disk behind dm-log-writes,
# appends numbered lines to d/log and writes them to a new file d/bJ per batch, makes both and the
# directory durable with fsync (busybox sync FILE...), then says "powercut: durable N".
LINUX_SCRIPT = """#!/bin/sh
set -e
RUN={run}; N={records}; EVERY={every}
mkdir -p /mnt/pc
mount -t ext4 /dev/vdb /mnt/pc
cd /mnt/pc/d
i=0; b=0; k=1
while [ $i -lt $N ]; do
	j=0
	while [ $j -lt $k ] && [ $i -lt $N ]; do
		line=$(printf 'r %06d run %05d c %08x' $i $RUN $(( (i * 2654435761 + RUN) & 0xffffffff )))
		echo "$line" >>log
		echo "$line" >>b$b
		i=$((i + 1)); j=$((j + 1))
	done
	sync log b$b .
	echo "powercut: durable $i"
	b=$((b + 1)); k=$((k % EVERY + 1))
done
cd /
umount /mnt/pc
echo "powercut: all $N records written"
"""


def linux_line(i, run_id):
    return f"r {i:06d} run {run_id:05d} c {(i * 2654435761 + run_id) & 0xFFFFFFFF:08x}\n".encode()


def linux_batches(records, every):
    """[(batch number, first record, count)] as the script makes them."""
    out, i, b, k = [], 0, 0, 1
    while i < records:
        c = min(k, records - i)
        out.append((b, i, c))
        i, b, k = i + c, b + 1, k % every + 1
    return out


SUPER_TOTALS = re.compile(r"Free (blocks|inodes) count wrong \(\d+, counted=\d+\)\.")


def check_linux(log_path, orig, work, tmp, records, every, run_id, entries, ss, points=None):
    """Replays the log; at each FLUSH point, each mark, the middle of each stretch between FLUSHes and
    the end (or at `points`), a copy gets its journal recovered and checked by e2fsck -fy (no repair
    beyond that), then d/log must start with the acknowledged lines and every acknowledged batch file
    must be whole. Unacknowledged lines may be missing, never different."""
    shutil.copyfile(orig, work)
    res = Result()
    if points is None:
        points, stretch = {len(entries)}, []
        for i, e in enumerate(entries):
            if e.flags & (F_FLUSH | F_MARK):
                points.add(i + 1)
                if stretch:
                    points.add(stretch[len(stretch) // 2])
                stretch = []
            else:
                stretch.append(i + 1)
    full = b"".join(linux_line(i, run_id) for i in range(records))
    batches = linux_batches(records, every)
    chk = os.path.join(tmp, "check.ext4")
    out = os.path.join(tmp, "rdump")
    rp = Replay(log_path, ss, work)
    try:
        req = 0
        for p in range(len(entries) + 1):
            if p:
                e = entries[p - 1]
                rp.apply(e)
                if e.mark and (m := re.fullmatch(r"durable-(\d+)", e.mark)):
                    req = max(req, int(m.group(1)))
            if p not in points:
                continue
            res.points += 1
            if p and entries[p - 1].flags & F_FLUSH:
                res.flush_points += 1
            else:
                res.between_points += 1
            shutil.copyfile(work, chk)
            r = run(["e2fsck", "-fy", chk])
            res.fsck_points += 1
            # Each repair: its description, then "Fix? yes". The superblock's free block and inode
            # totals are not kept on disk by ext4 (recomputed at mount): wrong after any crash, benign.
            lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
            fixes = [lines[i - 1] if i else ln for i, ln in enumerate(lines) if ln.endswith("? yes")]
            bad = [f for f in fixes if not SUPER_TOTALS.fullmatch(f)]
            res.fsck_summary_fixes += len(fixes) - len(bad)
            if r.returncode > 1 or bad:
                res.fsck_bad += 1
                res.problem(f"point {p}: e2fsck -fy exit {r.returncode}: {(bad or lines)[:3]}")
            shutil.rmtree(out, ignore_errors=True)
            os.mkdir(out)
            run(["debugfs", "-R", f"rdump /d {out}", chk])
            try:
                with open(os.path.join(out, "d", "log"), "rb") as f:
                    got = f.read()
            except FileNotFoundError:
                got = b""
            have = got.count(b"\n") if full.startswith(got) else None
            res.checked += req
            if have is None:
                ok_lines = len(os.path.commonprefix([got, full]).split(b"\n")) - 1
                res.corrupt += 1
                res.problem(f"point {p}: d/log is not a prefix of what the guest wrote (first "
                            f"{ok_lines} lines agree)")
                if ok_lines < req:
                    res.lost += req - ok_lines
            elif have < req:
                res.lost += req - have
                res.problem(f"point {p}: {req} lines acknowledged durable, d/log holds {have}")
            for b, i0, c in batches:
                if i0 + c > req:
                    break
                try:
                    with open(os.path.join(out, "d", f"b{b}"), "rb") as f:
                        bad = f.read() != full[i0 * 30:(i0 + c) * 30]
                except FileNotFoundError:
                    bad = True
                if bad:
                    res.lost += 1
                    res.problem(f"point {p}: batch file d/b{b} (acknowledged) missing or different")
    finally:
        rp.close()
    return res


def run_linux(opt, variant, tmp):
    engine, _, direct = variant.partition(",")
    label = f"linux {variant}"
    images = os.environ.get("MICROVM_LINUX_GUEST") or opt.linux
    missing = [f for f in ("bzImage", "rootfs.ext4") if not os.path.exists(os.path.join(images, f))]
    if missing:
        raise RuntimeError(f"no {', '.join(missing)} in {images}: make them with scripts/guest-image "
                           f"--out {images}")
    image, orig, log, work = (os.path.join(tmp, n) for n in ("image.ext4", "orig.ext4", "log", "replay.ext4"))
    root = os.path.join(tmp, "root.ext4")
    stage = os.path.join(tmp, "stage")
    os.makedirs(os.path.join(stage, "d"))
    r = run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", stage, "-E", "root_owner=0:0", image, "32M"])
    if r.returncode:
        raise RuntimeError(f"mke2fs: {r.stdout.strip()}")
    shutil.copyfile(image, orig)
    shutil.copyfile(os.path.join(images, "rootfs.ext4"), root)
    with open(log, "wb") as f:
        f.truncate(256 << 20)
    run_id = os.getpid() & 0xFFFF
    script = os.path.join(tmp, "powercut.sh")
    with open(script, "w") as f:
        f.write(LINUX_SCRIPT.format(run=run_id, records=opt.linux_records, every=opt.every))
    name = f"powercut-{os.getpid()}-linux-{engine}{'-direct' if direct else ''}"
    tgt = Target(name, image, log)
    cmd = [opt.microvm, "--kernel", os.path.join(images, "bzImage"), "--mem", "256M", "--io-engine", engine,
           "--timeout", str(opt.timeout), "--disk", root, "--disk", tgt.dev + (",direct" if direct else ""),
           "--run", script, "--cmdline", "console=ttyS0 root=/dev/vda rw panic=-1"]
    rc, text, err, durable, t_vm = run_logged(opt, cmd, tgt, tmp, r"powercut: durable (\d+)")
    if rc != 0 or f"powercut: all {opt.linux_records} records written" not in text:
        print(text[-3000:], end="")
        print(err, end="")
        raise RuntimeError(f"{label}: microvm exited with {rc}, or the script did not finish")
    ss, entries = parse_log(log)
    nflush = sum(1 for e in entries if e.flags & F_FLUSH)
    nwrite = sum(1 for e in entries if e.nr and not e.flags & (F_MARK | F_DISCARD))
    print(f"powercut: {label}: VM ran {t_vm:.1f} s, {len(durable)} fsync batches acknowledged; log: "
          f"{len(entries)} entries ({nwrite} writes, {nflush} FLUSH), sector size {ss}", flush=True)
    t1 = time.monotonic()
    res = check_linux(log, orig, work, tmp, opt.linux_records, opt.every, run_id, entries, ss)
    # Control: the writes a FLUSH before the middle acknowledgement made durable, dropped.
    mids = [i for i, e in enumerate(entries) if e.mark == f"durable-{durable[len(durable) // 2]}"]
    caught = None
    if mids:
        m = mids[0]
        fl = [i for i in range(m) if entries[i].flags & F_FLUSH]
        for k in range(len(fl) - 1, -1, -1):
            lo = fl[k - 1] + 1 if k else 0
            drop = {i for i in range(lo, fl[k]) if entries[i].nr and not entries[i].flags & F_MARK}
            if drop:
                alt = [e for i, e in enumerate(entries) if i not in drop]
                pt = m + 1 - len(drop)
                r2 = check_linux(log, orig, work, tmp, opt.linux_records, opt.every, run_id, alt, ss, {pt})
                caught = not r2.ok()
                break
    print(f"powercut: {label}: {res.points} crash points replayed ({res.flush_points} after a FLUSH, "
          f"{res.between_points} at a mark or between), {res.checked} acknowledged records checked, "
          f"{res.lost} lost, {res.corrupt} corrupt, e2fsck clean after journal recovery at "
          f"{res.fsck_points - res.fsck_bad} of {res.fsck_points} (besides {res.fsck_summary_fixes} corrections "
          f"of the superblock's free block/inode totals); control: writes of the FLUSH before "
          f"the middle acknowledgement dropped -> {'caught' if caught else 'NOT caught'} "
          f"({time.monotonic() - t1:.1f} s)", flush=True)
    for pr in res.first_problems:
        print(f"powercut: {label}: {pr}")
    return res, res.ok() and bool(caught)


# ---- self-test ----

def self_test():
    for tool in ("mke2fs", "debugfs", "e2fsck"):
        if not shutil.which(tool):
            print(f"SKIP: no `{tool}` (install e2fsprogs)")
            return SKIP
    tmp = tempfile.mkdtemp(prefix="powercut-self-")
    try:
        records, run_id = 24, 7
        orig, work, log = (os.path.join(tmp, n) for n in ("orig.ext4", "work.ext4", "log"))
        first = make_image(orig, records, size_mib=8)
        ss = SECTOR
        # What the guest and a correct VMM produce: each batch's writes, then a FLUSH, then the mark.
        items, durable, n, batch = [], [], 0, 1
        while n < records:
            k = min(batch, records - n)
            for j in range(k):
                items.append((0, first + n + j, record_bytes(first + n + j, n + j, run_id)))
            items.append((F_FLUSH, 0, None))
            n += k
            durable.append(n)
            items.append((F_MARK, 0, f"durable-{n}"))
            batch = batch % 4 + 1
        items.append((F_MARK, 0, "dm-log-writes-end"))
        failures = []

        def expect(name, its, dur, want_ok, what="lost"):
            write_log(log, ss, its)
            # e2fsck (slow under emulation) only where the file system is in question.
            r = check_log(log, orig, work, first, records, run_id, dur, fsck_between=1,
                          do_fsck=name in ("good log", "damaged file system"))
            ok = r.ok()
            print(f"self-test: {name}: {r.points} points, {r.checked} checked, {r.lost} lost, "
                  f"{r.corrupt} corrupt, e2fsck bad at {r.fsck_bad} of {r.fsck_points} -> "
                  f"{'pass' if ok else 'FAIL'} (expected {'pass' if want_ok else 'FAIL'})")
            for pr in r.first_problems[:2]:
                print(f"self-test:   {pr}")
            if ok != want_ok or (not want_ok and what == "fsck" and not r.fsck_bad) or \
               (not want_ok and what == "corrupt" and not r.corrupt):
                failures.append(name)
            return r

        expect("good log", items, durable, True)
        # The parser: round trip of entries, marks and flags.
        _, ents = parse_log(log)
        if [e.mark for e in ents if e.mark][-1] != "dm-log-writes-end" or \
           sum(1 for e in ents if e.flags & F_FLUSH) != len(durable):
            failures.append("parse")
        wi = [i for i, it in enumerate(items) if it[0] == 0]
        fi = [i for i, it in enumerate(items) if it[0] & F_FLUSH]
        mid = wi[len(wi) // 2]
        expect("dropped write", items[:mid] + items[mid + 1:], durable, False)
        nxt = next(i for i in fi if i > mid)
        expect("write after its FLUSH", items[:mid] + items[mid + 1:nxt + 1] + [items[mid]] + items[nxt + 1:],
               durable, False)
        torn = bytearray(items[mid][2])
        torn[100] ^= 1
        expect("torn record", items[:mid] + [(0, items[mid][1], bytes(torn))] + items[mid + 1:], durable, False,
               "corrupt")
        # A FLUSH acknowledged to the guest that never reached the disk (marks gone too).
        nof = [it for i, it in enumerate(items) if i != nxt and not (it[0] & F_MARK)]
        expect("missing FLUSH", nof, durable, False)
        # An acknowledged record written to the wrong sector.
        wrong = items[:mid] + [(0, items[mid][1] + records + 8, items[mid][2])] + items[mid + 1:]
        expect("misplaced write", wrong, durable, False)
        # A stray write over the group descriptors: e2fsck must notice.
        expect("damaged file system", items[:2] + [(0, 8, b"\xff" * 4096)] + items[2:], durable, False, "fsck")
        # The Linux checker: files written with debugfs, each batch's changed blocks logged, then a
        # FLUSH and a mark (checked at those points only: debugfs does not journal).
        lrec, levery, lrun = 10, 4, 4242
        os.makedirs(os.path.join(tmp, "stage", "d"))
        img, lorig = os.path.join(tmp, "l.ext4"), os.path.join(tmp, "l-orig.ext4")
        run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", os.path.join(tmp, "stage"), "-E", "root_owner=0:0",
             img, "32M"])
        shutil.copyfile(img, lorig)
        with open(img, "rb") as f:
            prev = f.read()
        full = b"".join(linux_line(i, lrun) for i in range(lrec))
        litems = []
        for b, i0, c in linux_batches(lrec, levery):
            for name, data in (("logf", full[:(i0 + c) * 30]), ("bf", full[i0 * 30:(i0 + c) * 30])):
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            run(["debugfs", "-w", "-f", "-", img],
                input=f"cd d\nrm log\nwrite {tmp}/logf log\nwrite {tmp}/bf b{b}\n")
            with open(img, "rb") as f:
                cur = f.read()
            litems += [(0, k // SECTOR, cur[k:k + 4096]) for k in range(0, len(cur), 4096)
                       if cur[k:k + 4096] != prev[k:k + 4096]]
            litems += [(F_FLUSH, 0, None), (F_MARK, 0, f"durable-{i0 + c}")]
            prev = cur
        write_log(log, ss, litems)
        _, lents = parse_log(log)
        fl = [i for i, e in enumerate(lents) if e.flags & F_FLUSH]
        for name, ents, want_ok in (("linux: good log", lents, True),
                                    ("linux: second batch's writes dropped",
                                     [e for i, e in enumerate(lents) if not fl[0] < i < fl[1]], False)):
            pts = {i + 1 for i, e in enumerate(ents) if e.flags & (F_FLUSH | F_MARK)}
            r = check_linux(log, lorig, work, tmp, lrec, levery, lrun, ents, ss, pts)
            print(f"self-test: {name}: {r.points} points, {r.checked} checked, {r.lost} lost, {r.corrupt} "
                  f"corrupt, e2fsck bad at {r.fsck_bad} of {r.fsck_points} -> {'pass' if r.ok() else 'FAIL'} "
                  f"(expected {'pass' if want_ok else 'FAIL'})")
            if r.ok() != want_ok:
                failures.append(name)
        # The overlay checker: a host ext4 with base.img, the overlay file (our own writer of the
        # documented format) written into it with debugfs -w after each batch, each batch's changed
        # blocks logged, then a FLUSH and a mark (no journal: debugfs writes in place).
        orec = 24
        oimg, oorig = os.path.join(tmp, "o.ext4"), os.path.join(tmp, "o-orig.ext4")
        obase = make_host_fs(oimg, 16)
        shutil.copyfile(oimg, oorig)
        clusters = OVL_BASE // OVL_CLUSTER
        blen = ((clusters + 7) // 8 + 4095) // 4096 * 4096
        head = bytearray(OVL_HEADER.pack(OVL_MAGIC, 1, OVL_HEADER.size, OVL_CLUSTER, 0, OVL_BASE, 4096, blen,
                                         4096 + blen, bytes(68), 0))
        head[124:128] = struct.pack("<I", zlib.crc32(bytes(head)))
        doff = 4096 + blen
        ovl = bytearray(bytes(head).ljust(4096, b"\0") + bytes(blen + OVL_BASE))
        ovf = os.path.join(tmp, "ovl")

        def put_ovl(img, content):
            with open(ovf, "wb") as f:
                f.write(content)
            run(["debugfs", "-w", "-f", "-", img], input=f"rm disk.ovl\nwrite {ovf} disk.ovl\n")
            with open(img, "rb") as f:
                return f.read()

        with open(oimg, "rb") as f:
            prev = f.read()

        def changed(cur, old):
            return [(0, k // SECTOR, cur[k:k + 4096]) for k in range(0, len(cur), 4096)
                    if cur[k:k + 4096] != old[k:k + 4096]]

        oitems, odur, bad_items, bad_prev, wrong_at, n, batch = [], [], None, None, 0, 0, 1
        while n < orec:
            k = min(batch, orec - n)
            before = bytes(ovl)
            new_bits = False
            for j in range(n, n + k):
                off = (OVL_FIRST + j) * SECTOR
                c = off // OVL_CLUSTER
                if not ovl[4096 + c // 8] >> (c % 8) & 1:   # a first write: fill the cluster from the base
                    ovl[doff + c * OVL_CLUSTER:doff + (c + 1) * OVL_CLUSTER] = \
                        obase[c * OVL_CLUSTER:(c + 1) * OVL_CLUSTER]
                    ovl[4096 + c // 8] |= 1 << (c % 8)
                    new_bits = True
                ovl[doff + off:doff + off + SECTOR] = record_bytes(OVL_FIRST + j, j, run_id)
            if new_bits and bad_items is None and n >= orec // 3:
                # The wrong order: the new bitmap on disk before the data of its new cluster.
                wrong = put_ovl(oimg, before[:4096] + bytes(ovl[4096:doff]) + before[doff:])
                bad_items = oitems + changed(wrong, prev)
                wrong_at = len(bad_items)    # the point after the wrong stage's writes
                bad_prev = wrong
            cur = put_ovl(oimg, bytes(ovl))
            tail = [(F_FLUSH, 0, None), (F_MARK, 0, f"durable-{n + k}")]
            if bad_items is not None:
                bad_items += changed(cur, bad_prev) + tail
                bad_prev = cur
            oitems += changed(cur, prev) + tail
            prev = cur
            n += k
            odur.append(n)
            batch = batch % 4 + 1
        for name, its, want_ok in (("overlay: good log", oitems, True),
                                   ("overlay: bitmap before its data", bad_items, False)):
            write_log(log, ss, its)
            _, oents = parse_log(log)
            # At the FLUSH and mark points only (debugfs does not journal), and after the wrong stage.
            pts = {i + 1 for i, e in enumerate(oents) if e.flags & (F_FLUSH | F_MARK)} | ({wrong_at} - {0})
            r = check_overlay(log, oorig, work, tmp, OVL_FIRST, orec, run_id, obase, oents, ss, pts,
                              fsck_points=1 if want_ok else 0)
            print(f"self-test: {name}: {r.points} points, {r.checked} checked, {r.lost} lost, {r.corrupt} "
                  f"corrupt, e2fsck bad at {r.fsck_bad} of {r.fsck_points} -> {'pass' if r.ok() else 'FAIL'} "
                  f"(expected {'pass' if want_ok else 'FAIL'})")
            for pr in r.first_problems[:2]:
                print(f"self-test:   {pr}")
            if r.ok() != want_ok or (not want_ok and not r.corrupt):
                failures.append(name)
        if failures:
            print(f"self-test: FAILED: {', '.join(failures)}")
            return 1
        print("self-test: the replayer and the checker pass the good log and fail every damaged one")
        return 0
    finally:
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--microvm")
    ap.add_argument("--kernel", help="the test guest (guest-elf64.elf)")
    ap.add_argument("--variant", action="append",
                    help="ENGINE[,direct]: one run each (default: uring, sync, uring,direct, sync,direct)")
    ap.add_argument("--records", type=int, help="default 96; 48 with --overlay (each point's check is slower there)")
    ap.add_argument("--every", type=int, default=6, help="at most this many records per flush (1-8)")
    ap.add_argument("--pace", type=int, default=200, help="guest port reads after each durable line")
    ap.add_argument("--fsck-between", type=int, default=1,
                    help="e2fsck points between two FLUSHes (besides every FLUSH point)")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (image, log)")
    ap.add_argument("--linux", metavar="DIR",
                    help="run the project's Linux guest (bzImage, rootfs.ext4 from scripts/guest-image in DIR, "
                         "or $MICROVM_LINUX_GUEST) writing files on ext4 with fsync, instead of the test guest")
    ap.add_argument("--linux-records", type=int, default=24)
    ap.add_argument("--overlay", action="store_true",
                    help="the test guest's disk on a copy-on-write overlay (--disk MNT/base.img,overlay=MNT/disk.ovl) "
                         "on a host ext4 behind dm-log-writes; variants ENGINE or ENGINE,bitmap-first (the control: "
                         "microvm built with -Dtest_hooks=true, FLUSH in the wrong order, must be caught)")
    ap.add_argument("--ovl-fsck", type=int, default=4,
                    help="overlay runs: full e2fsck points besides the last (journal recovery at every point)")
    opt = ap.parse_args()
    if opt.self_test:
        return self_test()
    opt.records = opt.records or (48 if opt.overlay else 96)
    if not opt.microvm or not (opt.kernel or opt.linux):
        ap.error("--microvm and --kernel or --linux are needed (or --self-test)")
    why = skip_reason()
    if not why and opt.linux and "user_syscalls: yes" not in run([opt.microvm, "--host-info"]).stdout:
        why = "guest user mode cannot make system calls on this KVM (microvm --host-info): no --run script"
    if why:
        print(f"SKIP: {why}")
        return SKIP
    if opt.overlay and not shutil.which("mount"):
        print("SKIP: no `mount` (install mount)")
        return SKIP
    variants = opt.variant or (["uring"] if opt.linux else ["uring", "sync", "uring,bitmap-first"] if opt.overlay
                               else ["uring", "sync", "uring,direct", "sync,direct"])
    total = Result()
    status = 0
    t0 = time.monotonic()
    for v in variants:
        tmp = tempfile.mkdtemp(prefix="powercut-", dir="/tmp")
        try:
            res, ok = (run_linux if opt.linux else run_overlay if opt.overlay else run_variant)(opt, v, tmp)
        except (RuntimeError, ValueError, OSError) as e:
            print(f"powercut: {v}: FAIL: {e}")
            status = 1
            continue
        finally:
            if opt.keep:
                print(f"powercut: {v}: kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            status = 1
        for k in ("points", "flush_points", "between_points", "checked", "lost", "corrupt", "fsck_points",
                  "fsck_bad"):
            setattr(total, k, getattr(total, k) + getattr(res, k))
    print(f"powercut: total over {len(variants)} runs ({', '.join(variants)}): {total.points} crash points "
          f"replayed ({total.flush_points} at a FLUSH, {total.between_points} between), {total.checked} "
          f"acknowledged records checked, {total.lost} lost, {total.corrupt} corrupt, e2fsck clean at "
          f"{total.fsck_points - total.fsck_bad} of {total.fsck_points}; {time.monotonic() - t0:.0f} s")
    print("powercut: PASS" if status == 0 else "powercut: FAIL")
    return status


if __name__ == "__main__":
    sys.exit(main())
