#!/usr/bin/env python3
"""run.py - run microvm once and check its exit status, guest serial output and log (stdlib only).

  run.py --microvm PATH [checks] [--gen NAME KIND [ARG]]... -- MICROVM ARGS...

Checks: --exit N (default 0), --stdout RE / --stderr RE (must match, re.M),
--no-stdout RE / --no-stderr RE (must not match). --stdin TEXT is written to
microvm's standard input (backslash escapes such as \\n are decoded), at once
or, with --stdin-after RE, once the guest output matches RE; stdin is closed
afterwards. --timeout S (default 60) kills a run that takes longer.

--gen NAME KIND [ARG] makes a file in a temporary directory before the run:
  random SIZE          SIZE pseudo-random bytes (same bytes every run)
  sparse SIZE          a sparse file of SIZE zero bytes
  text                 a short text file (not a kernel)
  dir                  a directory (cannot be read as a file)
  missing              nothing: the path does not exist
  elf-at ADDR          a minimal ELF64 kernel with one PT_LOAD at physical ADDR
  truncate FILE:LEN    the first LEN bytes of FILE
  corrupt-gzip FILE    a copy of bzImage FILE whose gzip payload has an invalid block
  disk SIZE[,SECTOR:SEED:COUNT]...
                       a disk image of SIZE zero bytes (sparse) with the guest's
                       blk pattern (below) written at each SECTOR range
SIZE/LEN accept K, M, G suffixes. In MICROVM ARGS, {NAME} is the file's path,
{NAME.size} its size and {NAME.sum} the guest's rotate-add checksum of it (hex),
and {fill:N} pads the argument it is in with 'x' to exactly N characters.

--expect-image NAME [SECTOR:SEED:COUNT]... checks, after microvm exited, that
file NAME holds exactly what --gen made, with the pattern at each range
written over it (no range: unchanged). The blk pattern: the little-endian
u64 at disk byte 8*w is w ^ (SEED * 0x9e3779b97f4a7c15 mod 2^64).

--image-from-stdout NAME checks file NAME against what the guest says it holds:
its stdout lines "soak: vdX state SECTOR:SEED:COUNT" (the blk pattern) and
"soak: vdX zero SECTOR:COUNT" (zeroes), the guest's model after its last
successful flush (blk.soak). Sectors it does not name are not checked.

--env NAME=VALUE sets a variable in microvm's environment ({NAME} expanded).

--hold ARG... (repeatable, one argument each) starts a first microvm with
these arguments before the run and waits until its output matches
--hold-ready RE (bounded by --timeout); after the run it gets --hold-stdin
(default "quit\n") and must exit within --timeout, else it is killed. A
test of two VMs sharing a resource (a locked disk image).

--netns runs microvm (and the --hold VM) in a network namespace of its own,
made for this run (microvm-test-PID) and always deleted afterwards, with lo
up. --tap NAME[:ADDR/PREFIX] (repeatable; implies --netns) first creates a
persistent tap NAME in it, disables IPv6 on it (no neighbour discovery
noise), adds the address and sets it up. After the run --expect-link NAME
checks that the link still exists in the namespace, --expect-no-link NAME
that it is gone (a tap microvm created must be removed at exit). Without
root, `ip` or /dev/net/tun such a test is skipped (exit 77) with the reason.

--repeat N runs microvm N times (in the same namespace); every run must pass
the checks. --same RE: RE's first group must be found in every run's stdout
and be the same each time (e.g. a MAC address that must be stable);
--differ RE: ... and be different each time (a random MAC).

--wrap ARG (repeatable) puts ARG before microvm's path in the command (after
`ip netns exec NS`), e.g. setpriv to run it without a capability.

Exit status: 0 pass, 1 fail, 77 skip (no usable /dev/kvm; meson's skip code).
"""

import argparse
import codecs
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
MASK64 = (1 << 64) - 1


def parse_size(s):
    s = s.strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    return int(s[:-1] if mult > 1 else s, 0) * mult


def rotsum64(data):
    """The guest's initrd checksum: h = rol(h, 1) + next little-endian qword (tail zero padded)."""
    h = 0
    if len(data) % 8:
        data = data + bytes(8 - len(data) % 8)
    for (w,) in struct.iter_unpack("<Q", data):
        h = (((h << 1) | (h >> 63)) + w) & MASK64
    return h


def minimal_elf(paddr):
    """An ELF64 x86-64 executable with one 16-byte PT_LOAD at paddr (hlt loop) and e_entry there."""
    code = b"\xf4\xeb\xfd" + bytes(13)
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, bytes(7),
                       2, 0x3E, 1, paddr, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, paddr, paddr, len(code), len(code), 0x1000)
    return (ehdr + phdr).ljust(0x1000, b"\0") + code


def corrupt_gzip_bzimage(data):
    """Make the first deflate block of a bzImage's gzip payload use the reserved block type."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mkbzimage import parse_setup_header
    hdr = parse_setup_header(data)
    off = hdr["payload_file_offset"]
    if data[off:off + 2] != b"\x1f\x8b":
        raise ValueError("payload is not gzip")
    flags, pos = data[off + 3], off + 10
    if flags & 0x04:                        # FEXTRA
        pos += 2 + struct.unpack_from("<H", data, pos)[0]
    for bit in (0x08, 0x10):                # FNAME, FCOMMENT
        if flags & bit:
            pos = data.index(b"\0", pos) + 1
    if flags & 0x02:                        # FHCRC
        pos += 2
    out = bytearray(data)
    out[pos] = 0xFF                         # BFINAL=1, BTYPE=11 (reserved): invalid
    return bytes(out)


BLK_SEED_MUL = 0x9E3779B97F4A7C15
SECTOR = 512


def blk_pattern(sector, seed, count):
    """The guest's disk pattern: u64 word w of the disk (byte 8*w) = w ^ seed * golden ratio."""
    m = (seed * BLK_SEED_MUL) & MASK64
    w0 = sector * (SECTOR // 8)
    return struct.pack("<%dQ" % (count * SECTOR // 8),
                       *((w0 + i) ^ m for i in range(count * SECTOR // 8)))


def check_guest_model(path, out, name):
    """--image-from-stdout: every range the guest's final model names is in the file."""
    with open(path, "rb") as f:
        got = f.read()
    problems, ranges = [], 0
    for m in re.finditer(r"^soak: vd[a-z] (state|zero) ([0-9]+):(?:([0-9]+):)?([0-9]+)\s*$", out, re.M):
        sector, count = int(m.group(2)), int(m.group(4))
        want = blk_pattern(sector, int(m.group(3)), count) if m.group(1) == "state" else bytes(count * SECTOR)
        have = got[sector * SECTOR:(sector + count) * SECTOR]
        ranges += 1
        if have != want:
            bad = next(i for i in range(count) if have[i * SECTOR:(i + 1) * SECTOR] != want[i * SECTOR:(i + 1) * SECTOR])
            problems.append(f"image {name}: sector {sector + bad} is not what the guest acknowledged and flushed "
                            f"({m.group(0).strip()})")
    if not ranges:
        problems.append(f"image {name}: the guest named no ranges (no 'soak: vdX state/zero' lines)")
    return problems


def parse_range(r):
    sector, seed, count = (int(x, 0) for x in r.split(":"))
    return sector, seed, count


def overlay(data, ranges):
    out = bytearray(data)
    for r in ranges:
        sector, seed, count = parse_range(r)
        end = (sector + count) * SECTOR
        if end > len(out):
            raise ValueError(f"range {r} is past the end of a {len(out)}-byte image")
        out[sector * SECTOR:end] = blk_pattern(sector, seed, count)
    return bytes(out)


def make_file(tmp, name, kind, arg):
    """Create the --gen file; return its path (and contents when they are small)."""
    path = os.path.join(tmp, name)
    data = None
    if kind == "random":
        data = random.Random(name).randbytes(parse_size(arg))
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(parse_size(arg))
    elif kind == "disk":
        size, *ranges = arg.split(",")
        data = overlay(bytes(parse_size(size)), ranges)
    elif kind == "text":
        data = b"This is not a kernel image.\n"
    elif kind == "dir":
        os.mkdir(path)
    elif kind == "missing":
        pass
    elif kind == "elf-at":
        data = minimal_elf(int(arg, 0))
    elif kind == "truncate":
        src, length = arg.rsplit(":", 1)
        with open(src, "rb") as f:
            data = f.read(parse_size(length))
    elif kind == "corrupt-gzip":
        with open(arg, "rb") as f:
            data = corrupt_gzip_bzimage(f.read())
    else:
        raise ValueError(f"--gen {name}: unknown kind {kind}")
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    return path, data


def expand(arg, files):
    def sub(m):
        key = m.group(1)
        if key.startswith("fill:"):
            return "\0FILL\0"
        name, _, attr = key.partition(".")
        if name not in files:
            return m.group(0)
        path, data = files[name]
        if attr == "size":
            return str(os.path.getsize(path))
        if attr == "sum":
            if data is None:
                with open(path, "rb") as f:
                    data = f.read()
            return "%x" % rotsum64(data)
        return path

    out = re.sub(r"\{([A-Za-z0-9_:.-]+)\}", sub, arg)
    m = re.search(r"\{fill:(\d+)\}", arg)
    if m:
        width = int(m.group(1))
        out = out.replace("\0FILL\0", "x" * max(0, width - (len(out) - len("\0FILL\0"))))
    return out


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"/dev/kvm: {e.strerror}"
    os.close(fd)
    return None


def netns_missing():
    """Why a network-namespace test cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root (network namespaces and taps need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if not shutil.which("ip"):
        return "no `ip` command (install iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    return None


class NetNs:
    """A network namespace of our own, with lo up; delete() removes it and every tap in it."""

    def __init__(self):
        self.name = f"microvm-test-{os.getpid()}"
        self.created = False
        self.log = []

    def create(self):
        # A namespace left over by a killed run with the same pid: start afresh.
        subprocess.run(["ip", "netns", "del", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        self.ip("netns", "add", self.name, ns=False)
        self.created = True
        self.ip("link", "set", "lo", "up")

    def ip(self, *args, ns=True, check=True):
        cmd = ["ip"] + (["-n", self.name] if ns else []) + list(args)
        self.log.append(" ".join(cmd))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if check and r.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: exit status {r.returncode}: {r.stderr.strip()}")
        return r

    def exec_prefix(self):
        return ["ip", "netns", "exec", self.name]

    def add_tap(self, spec):
        name, _, addr = spec.partition(":")
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        # Fewer unrelated frames for the guest: no IPv6 (router solicitations, MLD, DAD).
        cmd = self.exec_prefix() + ["sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1"]
        self.log.append(" ".join(cmd))
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if addr:
            self.ip("addr", "add", addr, "dev", name)
        self.ip("link", "set", name, "up")

    def has_link(self, name):
        return self.ip("link", "show", "dev", name, check=False).returncode == 0

    def delete(self):
        if self.created:
            self.ip("netns", "del", self.name, ns=False, check=False)
            self.created = False


class Run:
    """microvm as a child process, stdout/stderr collected by threads."""

    def __init__(self, cmd, stdin_text, stdin_after, timeout, env=None):
        self.out = bytearray()
        self.err = bytearray()
        self.cond = threading.Condition()
        self.timed_out = False
        start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out)),
                   threading.Thread(target=self._read, args=(self.proc.stderr, self.err))]
        writer = threading.Thread(target=self._write, args=(stdin_text, stdin_after))
        for t in readers + [writer]:
            t.daemon = True
            t.start()
        try:
            self.code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.proc.kill()
            self.code = self.proc.wait()
        for t in readers:
            t.join(5)
        with self.cond:
            self.cond.notify_all()
        self.elapsed = time.monotonic() - start

    def _read(self, pipe, buf):
        while True:
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            with self.cond:
                buf += chunk
                self.cond.notify_all()

    def _write(self, text, after):
        try:
            if text is not None and after:
                pat = re.compile(after.encode(), re.M)
                with self.cond:
                    while not pat.search(self.out) and self.proc.poll() is None:
                        self.cond.wait(0.1)
            if text is not None:
                self.proc.stdin.write(text.encode())
                self.proc.stdin.flush()
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass


class Hold:
    """A first microvm that keeps running (stdin open) while the main run happens."""

    def __init__(self, cmd, env):
        self.out = bytearray()
        self.err = bytearray()
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out)),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err))]
        for t in self.readers:
            t.daemon = True
            t.start()
        self.code = None

    def _read(self, pipe, buf):
        while True:
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            with self.cond:
                buf += chunk
                self.cond.notify_all()

    def wait_ready(self, pattern, timeout):
        pat = re.compile(pattern.encode(), re.M)
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pat.search(self.out):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.cond.wait(min(left, 0.1))
        return True

    def finish(self, text, timeout):
        """Send text, close stdin, wait; kill after timeout. Returns the exit status or None if killed."""
        try:
            if text:
                self.proc.stdin.write(text.encode())
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.code = None
        for t in self.readers:
            t.join(5)
        return self.code


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--microvm", required=True)
    ap.add_argument("--exit", type=int, default=0, dest="exit_code")
    ap.add_argument("--stdout", action="append", default=[])
    ap.add_argument("--stderr", action="append", default=[])
    ap.add_argument("--no-stdout", action="append", default=[])
    ap.add_argument("--no-stderr", action="append", default=[])
    ap.add_argument("--stdin")
    ap.add_argument("--stdin-after")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--no-kvm", action="store_true",
                    help="the run needs no /dev/kvm (usage errors): never skip")
    ap.add_argument("--gen", nargs="+", action="append", default=[], metavar="NAME KIND [ARG]")
    ap.add_argument("--expect-image", nargs="+", action="append", default=[],
                    metavar="NAME [SECTOR:SEED:COUNT]")
    ap.add_argument("--image-from-stdout", action="append", default=[], metavar="NAME")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--hold", action="append", default=[], metavar="ARG")
    ap.add_argument("--hold-ready", default="^echo: ready")
    ap.add_argument("--hold-stdin", default="quit\\n")
    ap.add_argument("--netns", action="store_true")
    ap.add_argument("--tap", action="append", default=[], metavar="NAME[:ADDR/PREFIX]")
    ap.add_argument("--expect-link", action="append", default=[], metavar="NAME")
    ap.add_argument("--expect-no-link", action="append", default=[], metavar="NAME")
    ap.add_argument("--repeat", type=int, default=1, metavar="N")
    ap.add_argument("--same", metavar="RE")
    ap.add_argument("--differ", metavar="RE")
    ap.add_argument("--wrap", action="append", default=[], metavar="ARG")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    opt = ap.parse_args(argv)
    args = opt.args[1:] if opt.args[:1] == ["--"] else opt.args

    if not opt.no_kvm:
        why = kvm_usable()
        if why:
            print(f"SKIP: {why}; guest tests need a usable /dev/kvm")
            return SKIP
    use_netns = opt.netns or opt.tap or opt.expect_link or opt.expect_no_link
    if use_netns:
        why = netns_missing()
        if why:
            print(f"SKIP: {why}; this test runs microvm in a network namespace")
            return SKIP

    # meson sends SIGTERM on a timeout: clean up (VMs, namespace, files) on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    problems = []
    hold = None
    netns = None
    runs = []
    prefix = []
    tmp = tempfile.mkdtemp(prefix="microvm-guest-test-")
    try:
        files = {}
        for g in opt.gen:
            if len(g) not in (2, 3):
                ap.error("--gen takes NAME KIND [ARG]")
            files[g[0]] = make_file(tmp, g[0], g[1], g[2] if len(g) == 3 else "")
        env = None
        if opt.env:
            env = dict(os.environ)
            for e in opt.env:
                k, _, v = expand(e, files).partition("=")
                env[k] = v
        if use_netns:
            netns = NetNs()
            netns.create()
            for t in opt.tap:
                netns.add_tap(t)
            prefix = netns.exec_prefix()
            print("network namespace: " + "; ".join(netns.log))
        if opt.hold:
            hcmd = prefix + [opt.microvm] + [expand(a, files) for a in opt.hold]
            print("hold command: " + " ".join(hcmd))
            hold = Hold(hcmd, env)
            if not hold.wait_ready(opt.hold_ready, opt.timeout):
                problems.append(f"the first VM did not print /{opt.hold_ready}/ "
                                f"(exit status {hold.proc.poll()})")
        cmd = prefix + opt.wrap + [opt.microvm] + [expand(a, files) for a in args]
        stdin_text = codecs.decode(opt.stdin, "unicode_escape") if opt.stdin is not None else None
        for _ in range(max(1, opt.repeat)):
            runs.append(Run(cmd, stdin_text, opt.stdin_after, opt.timeout, env))
        if hold:
            hcode = hold.finish(codecs.decode(opt.hold_stdin, "unicode_escape"), opt.timeout)
            if hcode != 0:
                problems.append(f"the first VM exited with {hcode}, expected 0"
                                if hcode is not None else "the first VM did not exit (killed)")
        for e in opt.expect_image:
            name, ranges = e[0], e[1:]
            if name not in files or files[name][1] is None:
                ap.error(f"--expect-image {name}: not a --gen file with contents")
            with open(files[name][0], "rb") as f:
                got = f.read()
            want = overlay(files[name][1], ranges)
            if got != want:
                diff = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                            min(len(got), len(want)))
                problems.append(f"image {name}: {len(got)} bytes, expected {len(want)}; first "
                                f"difference at byte {diff} (sector {diff // SECTOR})")
        for name in opt.image_from_stdout:
            problems += check_guest_model(files[name][0], runs[-1].out.decode(errors="replace"), name)
        for name in opt.expect_link:
            if not netns.has_link(name):
                problems.append(f"link {name} does not exist in the namespace after the run")
        for name in opt.expect_no_link:
            if netns.has_link(name):
                problems.append(f"link {name} still exists in the namespace after the run")
    except RuntimeError as e:
        problems.append(str(e))
    finally:
        if hold and hold.proc.poll() is None:
            hold.proc.kill()
            hold.proc.wait()
        for r in runs:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
        if netns:
            netns.delete()
        shutil.rmtree(tmp, ignore_errors=True)

    if not runs:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    same, differ = [], []
    for i, run in enumerate(runs):
        tag = f"run {i + 1}: " if len(runs) > 1 else ""
        out = run.out.decode(errors="replace")
        err = run.err.decode(errors="replace")
        if run.timed_out:
            problems.append(f"{tag}timed out after {opt.timeout:g} s (killed)")
        if run.code != opt.exit_code:
            problems.append(f"{tag}exit status {run.code}, expected {opt.exit_code}")
        for name, text, pats, want in (("stdout", out, opt.stdout, True),
                                       ("stderr", err, opt.stderr, True),
                                       ("stdout", out, opt.no_stdout, False),
                                       ("stderr", err, opt.no_stderr, False)):
            for p in pats:
                if bool(re.search(p, text, re.M)) != want:
                    problems.append(f"{tag}{name} {'does not match' if want else 'matches'} /{p}/")
        if opt.same:
            m = re.search(opt.same, out, re.M)
            if not m:
                problems.append(f"{tag}stdout does not match /{opt.same}/")
            else:
                same.append(m.group(1))
        if opt.differ:
            m = re.search(opt.differ, out, re.M)
            if not m:
                problems.append(f"{tag}stdout does not match /{opt.differ}/")
            else:
                differ.append(m.group(1))
    if len(set(same)) > 1:
        problems.append(f"/{opt.same}/ differs between runs: " + ", ".join(same))
    if len(set(differ)) < len(differ):
        problems.append(f"/{opt.differ}/ is the same in two runs: " + ", ".join(differ))

    def show(a):
        return a if len(a) <= 200 and not re.search(r"\s", a) else repr(a[:200] + ("..." if len(a) > 200 else ""))

    print("command: " + " ".join(show(a) for a in cmd))
    for i, run in enumerate(runs):
        tag = f"run {i + 1}: " if len(runs) > 1 else ""
        print(f"{tag}exit status {run.code}, {run.elapsed:.2f} s")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        for i, run in enumerate(runs):
            tag = f" (run {i + 1})" if len(runs) > 1 else ""
            print(f"---- stdout (guest serial){tag} ----\n" + run.out.decode(errors="replace").rstrip())
            print(f"---- stderr (microvm log){tag} ----\n" + run.err.decode(errors="replace").rstrip())
        if hold:
            print("---- first VM stdout ----\n" + hold.out.decode(errors="replace").rstrip())
            print("---- first VM stderr ----\n" + hold.err.decode(errors="replace").rstrip())
        return 1
    for i, run in enumerate(runs):
        tag = f" (run {i + 1})" if len(runs) > 1 else ""
        print(f"---- stdout{tag} ----\n" + run.out.decode(errors="replace").rstrip())
        print(f"---- stderr{tag} ----\n" + run.err.decode(errors="replace").rstrip())
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
