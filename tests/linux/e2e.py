#!/usr/bin/env python3
"""e2e.py - end-to-end tests of a real Linux guest under microvm (stdlib only).

  e2e.py --microvm PATH [--images DIR] [--src DIR] [--timeout S] TEST

TEST is one boot of the project's minimal kernel (scripts/guest-image) with its
no-syscall init (/spin of rootfs-spin.ext4), checked at kernel level only, since
guest user mode may not be able to make system calls (docs/linux-guest.md):

  disk      bzImage, --disk root.img --disk data.img (copies made for the test),
            root=/dev/vda rw; the init spins ~1 s, faults, the kernel panics and
            pvpanic ends microvm (exit status 122). Checks: vda and vdb found
            through ACPI (the DSDT loaded, no virtio_mmio.device= on the kernel
            command line), root mounted read-write, the superblock's mount count
            went up in the image file (dumpe2fs -h), the init ran and faulted.
  net-smp   vmlinux (PVH entry), --cpus 2 --mem 512M, root read-only, --net on a
            tap in a network namespace of its own (192.0.2.1/24 on the host, the
            guest 192.0.2.2 through ip=); the init spins "forever". Checks: 2 CPUs
            brought up, the memory total, eth0 configured by the kernel; the host
            pings the guest, and the guest's own ARP request for the host (its
            neighbour entry's reachability probe) is answered; then SIGTERM and
            microvm exits 143 (128 + SIGTERM).
  snapshot  the shell image (or, where guest user mode makes no system calls, the
            spin image at kernel level) snapshotted with its disk and tap in use,
            then restored (test_snapshot).
  clones    the shell image on a copy-on-write overlay, snapshotted at its prompt;
            8 clones restored two at a time, each in its own namespace with its own tap
            and overlay (test_clones; shell only).

Each test prints microvm's --stats (time to the first guest output, to `Run /spin
as init process`, to the end; VM exits by kind and device), the checks, and the
guest's serial log. The images come from --images, overridden by the environment
variable MICROVM_LINUX_GUEST. Missing images FAIL the test (run scripts/guest-image);
only a missing /dev/kvm skips it (77), and for net-smp also missing root or `ip`.
"""

import argparse
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
from run import NetNs, kvm_usable, netns_missing  # noqa: E402  (tests/guest/run.py)
from api_test import call as api_call  # noqa: E402  (tests/guest/api_test.py: one request on the API socket)

EXIT_PVPANIC = 122         # base/exit_codes.h MV_EXIT_GUEST_PANIC
EXIT_SIGTERM = 128 + signal.SIGTERM
SPIN_FAULT = "5350494e000"  # tests/linux/spin.c SPIN_FAULT_ADDR
HOST_IP, GUEST_IP = "192.0.2.1", "192.0.2.2"   # TEST-NET-1 (RFC 5737) only
TAP = "tap0"


# --------------------------------------------------------------------------- a boot

class Boot:
    """microvm as a child: serial (stdout) lines and log (stderr) lines, each with
    the time it arrived in seconds since the start, and the first serial byte's time
    (bench/vm.py runs QEMU with it too)."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.out, self.err = [], []          # (t, line)
        self._part = {1: b"", 2: b""}
        self.cond = threading.Condition()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, 1, self.out), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, 2, self.err), daemon=True)]
        for t in self.readers:
            t.start()
        self.code = None
        self.elapsed = None
        self.first_byte = None

    def now(self):
        return time.monotonic() - self.t0

    def _read(self, pipe, key, lines):
        while True:
            chunk = os.read(pipe.fileno(), 65536)
            with self.cond:
                if chunk and key == 1 and self.first_byte is None:
                    self.first_byte = self.now()
                if not chunk:
                    if self._part[key]:
                        lines.append((self.now(), self._part[key].decode(errors="replace")))
                        self._part[key] = b""
                    self.cond.notify_all()
                    return
                data = self._part[key] + chunk
                *full, self._part[key] = data.split(b"\n")
                t = self.now()
                for ln in full:
                    lines.append((t, ln.decode(errors="replace").rstrip("\r")))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout):
        """Wait until a serial line matches; return (t, match) or None (timeout or exit)."""
        pat = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for t, ln in self.out[seen:]:
                    m = pat.search(ln)
                    if m:
                        return t, m
                seen = len(self.out)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.2))

    def wait(self, timeout):
        try:
            self.code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self.readers:
            t.join(5)
        self.elapsed = self.now()
        return self.code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self.readers:
            t.join(5)
        if self.code is None:
            self.code = self.proc.returncode
        if self.elapsed is None:
            self.elapsed = self.now()

    def serial(self):
        with self.cond:
            return "\n".join(ln for _, ln in self.out)

    def log(self):
        with self.cond:
            return "\n".join(ln for _, ln in self.err)

    def stats(self):
        """microvm's --stats=json line (the last stderr line starting with '{'), or None."""
        with self.cond:
            for _, ln in reversed(self.err):
                if ln.startswith("{"):
                    try:
                        return json.loads(ln)
                    except ValueError:
                        return None
        return None


# --------------------------------------------------------------------------- checks

class Checks:
    def __init__(self, boot=None):
        self.boot = boot
        self.results = []    # (ok, what, detail)

    def check(self, ok, what, detail=""):
        self.results.append((bool(ok), what, detail))
        return bool(ok)

    def excerpt(self, text, pattern=None, around=3, tail=25):
        """Lines of text around the first match of pattern, or its last lines."""
        lines = text.splitlines()
        if pattern:
            for i, ln in enumerate(lines):
                if re.search(pattern, ln):
                    return "\n".join(lines[max(0, i - around):i + around + 1])
        return "\n".join(lines[-tail:]) if lines else "(empty)"

    def serial(self, pattern, what, near=None):
        """A serial (kernel log) line must match pattern; on failure, show the log
        around `near` (a pattern of a line that should be close by) or its tail."""
        pat = re.compile(pattern)
        with self.boot.cond:
            hit = next(((t, ln, m) for t, ln in self.boot.out for m in [pat.search(ln)] if m), None)
        if not hit:
            self.check(False, what, f"no serial line matches /{pattern}/; kernel log "
                       + (f"near /{near}/" if near else "(last lines)") + ":\n"
                       + self.excerpt(self.boot.serial(), near))
            return None
        self.check(True, what, f"{hit[1].strip()}   [at {hit[0]:.1f} s]")
        return hit[2]

    def no_serial(self, pattern, what):
        text = self.boot.serial()
        m = re.search(pattern, text, re.M)
        self.check(not m, what, "" if not m else f"serial log matches /{pattern}/:\n" + self.excerpt(text, pattern))

    def stderr(self, pattern, what):
        text = self.boot.log()
        m = re.search(pattern, text, re.M)
        self.check(m, what, (m.group(0) if m else f"no microvm log line matches /{pattern}/; microvm log:\n"
                             + self.excerpt(text, None, tail=40)))
        return m

    def failed(self):
        return [r for r in self.results if not r[0]]

    def report(self):
        for ok, what, detail in self.results:
            print(f"  [{'ok' if ok else 'FAIL'}] {what}")
            if detail:
                for ln in detail.splitlines():
                    print(f"         {ln}")


def print_stats(boot, label):
    """The --stats numbers of one boot, in a few lines (and returned as text)."""
    st = boot.stats()
    if not st:
        print(f"{label}: no --stats line in microvm's log")
        return None
    ms = st.get("ms", {})

    def sec(k):
        v = ms.get(k)
        return "-" if v is None else f"{v / 1000:.2f} s"
    exits = st.get("exits", {})
    kinds = ", ".join(f"{k} {v}" for k, v in exits.items() if k != "total" and v)
    devs = ", ".join(f"{d['device']} {d['exits']}" for d in st.get("pio", []) + st.get("mmio", []))
    quirks = ", ".join(f"{k} {v}" for k, v in st.get("quirks", {}).items())
    print(f"{label}: --stats: first guest output {sec('first_output')}, Run /spin {sec('run_init')}, "
          f"guest ended {sec('guest_end')}, exit {sec('exit')}")
    print(f"{label}: --stats: VM exits ({st.get('vcpus')} vCPU): {exits.get('total')} ({kinds})")
    print(f"{label}: --stats: by device: {devs}" + (f"; completed by microvm: {quirks}" if quirks else ""))
    return st


def stats_checks(c, st, vcpus, want_pio=(), want_mmio=()):
    if not c.check(st, "microvm printed its --stats=json line"):
        return
    ms = st["ms"]
    order = [ms.get(k) for k in ("first_output", "run_init", "guest_end", "exit")]
    c.check(None not in order and order == sorted(order),
            "--stats milestones: first output < Run /spin < guest ended <= exit", json.dumps(ms))
    c.check(st.get("vcpus") == vcpus, f"--stats counts {vcpus} vCPU(s)", f"vcpus {st.get('vcpus')}")
    pio = {d["device"]: d["exits"] for d in st.get("pio", [])}
    mmio = {}
    for d in st.get("mmio", []):
        mmio[d["device"]] = mmio.get(d["device"], 0) + d["exits"]
    for dev, n in want_pio:
        c.check(pio.get(dev, 0) >= n, f"--stats: port I/O exits of {dev} >= {n}", f"{pio.get(dev, 0)}")
    for dev, n in want_mmio:
        c.check(mmio.get(dev, 0) >= n, f"--stats: MMIO exits of {dev} >= {n}", f"{mmio.get(dev, 0)}")


def dumpe2fs(path):
    r = subprocess.run(["dumpe2fs", "-h", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"dumpe2fs -h {path}: exit status {r.returncode}: {r.stderr.strip()}")
    fields = {}
    for ln in r.stdout.splitlines():
        k, sep, v = ln.partition(":")
        if sep:
            fields[k.strip()] = v.strip()
    return fields


def base_cmdline():
    # microvm adds the host-quirk options itself where guest kernel code is emulated.
    return "console=ttyS0 earlyprintk=serial panic=-1 init=/spin"


# --------------------------------------------------------------------------- network helpers

def in_netns(name, fn):
    """Run fn() in a thread that first joins network namespace `name` (setns); sockets
    it creates stay in that namespace. Returns fn's value."""
    box = {}

    def target():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, 0x40000000) != 0:   # CLONE_NEWNET
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({name}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["v"] = fn()
        except BaseException as e:  # handed to the caller
            box["e"] = e
    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


class Sniffer:
    """Every ARP and ICMP frame on the tap (AF_PACKET), with direction and time."""

    def __init__(self, sock, t0):
        self.sock, self.t0 = sock, t0
        self.frames = []      # dicts
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            f = self.parse(data)
            if f:
                # PACKET_OUTGOING (4): the host sent it into the tap, towards the guest.
                f["dir"] = "host->guest" if addr[2] == socket.PACKET_OUTGOING else "guest->host"
                f["t"] = time.monotonic() - self.t0
                with self.lock:
                    self.frames.append(f)

    @staticmethod
    def parse(d):
        if len(d) < 14:
            return None
        etype = struct.unpack("!H", d[12:14])[0]
        if etype == 0x0806 and len(d) >= 42:
            op = struct.unpack("!H", d[20:22])[0]
            return {"kind": "arp", "op": {1: "request", 2: "reply"}.get(op, str(op)),
                    "sha": mac_str(d[22:28]), "spa": socket.inet_ntoa(d[28:32]),
                    "tpa": socket.inet_ntoa(d[38:42]), "src": mac_str(d[6:12])}
        if etype == 0x0800 and len(d) >= 34:
            ihl = (d[14] & 15) * 4
            f = {"kind": "ipv4", "proto": d[23], "from": socket.inet_ntoa(d[26:30]),
                 "to": socket.inet_ntoa(d[30:34]), "src": mac_str(d[6:12])}
            if d[23] == 1 and len(d) >= 14 + ihl + 8:
                typ, _, _, ident, seq = struct.unpack("!BBHHH", d[14 + ihl:14 + ihl + 8])
                f.update(kind="icmp", type=typ, id=ident, seq=seq)
            return f
        return {"kind": f"ethertype 0x{etype:04x}", "src": mac_str(d[6:12])}

    def snapshot(self):
        with self.lock:
            return list(self.frames)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()

    @staticmethod
    def describe(f):
        if f["kind"] == "arp":
            what = (f"ARP {f['op']} who-has {f['tpa']} tell {f['spa']}" if f["op"] == "request"
                    else f"ARP reply {f['spa']} is-at {f['sha']}")
        elif f["kind"] == "icmp":
            what = f"ICMP type {f['type']} {f['from']} > {f['to']} id {f['id']} seq {f['seq']}"
        elif f["kind"] == "ipv4":
            what = f"IPv4 proto {f['proto']} {f['from']} > {f['to']}"
        else:
            what = f["kind"]
        return f"{f['t']:8.2f} s  {f['dir']:11}  {what}"


def icmp_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class Pinger:
    """Echo requests to dst on a raw ICMP socket, one every `interval` s; replies
    are matched by id, sequence number and payload."""

    PAYLOAD = b"microvm-linux-e2e-" + bytes(range(32))

    def __init__(self, sock, dst):
        self.sock, self.dst = sock, dst
        self.ident = os.getpid() & 0xFFFF
        self.sent, self.replies = {}, {}     # seq -> send time; seq -> rtt
        self.sock.settimeout(0.05)

    def send(self):
        seq = len(self.sent) + 1
        hdr = struct.pack("!BBHHH", 8, 0, 0, self.ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, icmp_checksum(hdr + self.PAYLOAD), self.ident, seq) + self.PAYLOAD
        self.sent[seq] = time.monotonic()
        self.sock.sendto(pkt, (self.dst, 0))

    def receive(self, until):
        while time.monotonic() < until:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            icmp = data[(data[0] & 15) * 4:]
            if addr[0] != self.dst or len(icmp) < 8:
                continue
            typ, _, _, rid, seq = struct.unpack("!BBHHH", icmp[:8])
            if typ == 0 and rid == self.ident and seq in self.sent and icmp[8:] == self.PAYLOAD:
                self.replies.setdefault(seq, time.monotonic() - self.sent[seq])


# --------------------------------------------------------------------------- the tests

def test_disk(opt, images, tmp):
    kernel = os.path.join(images, "bzImage")
    root = os.path.join(tmp, "root.img")
    data = os.path.join(tmp, "data.img")
    shutil.copyfile(os.path.join(images, "rootfs-spin.ext4"), root)
    data_sectors = 12288                   # 6 MiB: a size of its own, so vdb is recognisable
    with open(data, "wb") as f:
        f.truncate(data_sectors * 512)
    root_sectors = os.path.getsize(root) // 512
    before = dumpe2fs(root)
    print(f"root.img before the boot: Mount count {before.get('Mount count')}, "
          f"Last mount time {before.get('Last mount time')}, state {before.get('Filesystem state')}")

    cmd = [opt.microvm, "--kernel", kernel, "--disk", root, "--disk", data, "--mem", "256M",
           "--stats=json", "--cmdline", base_cmdline() + " root=/dev/vda rw"]
    print("command: " + " ".join(cmd))
    boot = Boot(cmd)
    c = Checks(boot)
    try:
        if boot.wait(opt.timeout) is None:
            boot.kill()
            c.check(False, f"microvm exits by itself within {opt.timeout:g} s",
                    "killed; kernel log (last lines):\n" + c.excerpt(boot.serial()))
    finally:
        boot.kill()
    print(f"exit status {boot.code} after {boot.elapsed:.1f} s")
    st = print_stats(boot, "disk")

    c.check(boot.code == EXIT_PVPANIC, f"microvm exits {EXIT_PVPANIC} (guest kernel panic reported through pvpanic)",
            f"exit status {boot.code}" + ("" if boot.code == EXIT_PVPANIC else
                                         " (0 means the kernel reset without pvpanic: an image built before "
                                         "CONFIG_PVPANIC? rerun scripts/guest-image); microvm log:\n"
                                         + c.excerpt(boot.log(), None, tail=30)))
    c.stderr(r"^microvm: guest kernel panicked \(pvpanic\); stopping the VM$", "microvm logs the pvpanic stop")
    cl = c.serial(r"Kernel command line: .*", "the kernel prints its command line")
    if cl:
        c.check("virtio_mmio.device=" not in cl.group(0) and "acpi=off" not in cl.group(0),
                "no virtio_mmio.device= and no acpi=off on it: the disks can only come from ACPI",
                cl.group(0))
    c.serial(r"ACPI: [0-9]+ ACPI AML tables successfully acquired and loaded",
             "ACPI loaded the DSDT (where microvm lists the LNRO0005 virtio-mmio devices)", near="ACPI")
    c.no_serial(r"ACPI Error|Unable to load the System Description Tables", "no ACPI errors")
    # Through PNP0501 in the DSDT, not the 8250 driver's legacy table: with a hardware-reduced
    # FADT there is no Linux IRQ 4, so a legacy-table port never gets its interrupt and user-space
    # console output is never sent (found in a nested KVM; docs/linux-guest.md).
    c.serial(r"00:0[0-9]: ttyS0 at I/O 0x3f8 \(irq = [0-9]+, base_baud = 115200\) is a 16550A",
             "the console UART came from ACPI (PNP0501) with a mapped IRQ", near="ttyS0|Serial")
    c.no_serial(r"serial8250: ttyS0 at I/O 0x3f8 \(irq = 4,", "not from the 8250 legacy table (IRQ 4)")
    c.no_serial(r"Unable to read current time from RTC",
                "the kernel read the wall clock from the CMOS RTC (ports 0x70/0x71)")
    c.serial(rf"virtio_blk virtio[0-9]+: \[vda\] {root_sectors} 512-byte logical blocks",
             f"vda found: root.img ({root_sectors} sectors)", near="virtio|vda")
    c.serial(rf"virtio_blk virtio[0-9]+: \[vdb\] {data_sectors} 512-byte logical blocks",
             f"vdb found: data.img ({data_sectors} sectors)", near="virtio|vdb")
    c.serial(r"EXT4-fs \(vda\): mounted filesystem", "ext4 mounted from vda", near="EXT4|VFS")
    c.serial(r"VFS: Mounted root \(ext4 filesystem\) on device 254:0\.",
             "root mounted read-write (no 'readonly' in the VFS line)", near="VFS|EXT4")
    c.serial(r"Run /spin as init process", "the kernel ran /spin from the root disk", near="VFS|Freeing")
    c.serial(rf"spin\[1\]: segfault at {SPIN_FAULT}", "the init spun, then faulted at its marker address",
             near="spin|Run /")
    c.serial(r"Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
             "the kernel panicked on init's death", near="spin|segfault")

    after = dumpe2fs(root)
    try:
        mc0, mc1 = int(before.get("Mount count", "-1")), int(after.get("Mount count", "-1"))
    except ValueError:
        mc0, mc1 = -1, -1
    c.check(mc0 >= 0 and mc1 == mc0 + 1,
            "the superblock's mount count went up by one in root.img (dumpe2fs -h on the host)",
            f"Mount count {before.get('Mount count')} -> {after.get('Mount count')}; "
            f"Last mount time {before.get('Last mount time')} -> {after.get('Last mount time')}; "
            f"Last write time {before.get('Last write time')} -> {after.get('Last write time')}")
    # Not a check of its own: the guest has no RTC, its clock starts at 0, and a mount in
    # the first second of a fast boot leaves the time at 0 ("n/a"); the count is what counts.
    with open(data, "rb") as f:
        c.check(f.read() == bytes(data_sectors * 512), "data.img unchanged (the kernel only read vdb)")

    stats_checks(c, st, 1, want_pio=[("pvpanic", 2)], want_mmio=[("virtio-blk", 1)])
    return c, boot


def test_net_smp(opt, images, tmp):
    why = netns_missing()
    if why:
        print(f"SKIP: {why}; this test runs microvm in a network namespace")
        return None, None
    kernel = os.path.join(images, "vmlinux")
    root = os.path.join(images, "rootfs-spin.ext4")   # read-only: shared with nobody's writes
    netns = NetNs()
    boot = sniffer = icmp = None
    c = Checks()
    try:
        netns.create()
        netns.add_tap(f"{TAP}:{HOST_IP}/24")
        print("network namespace: " + "; ".join(netns.log))
        t0 = time.monotonic()

        def sockets():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))   # ETH_P_ALL
            s.bind((TAP, 0))
            i = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            return s, i
        psock, icmp = in_netns(netns.name, sockets)
        sniffer = Sniffer(psock, t0)

        ipcfg = f"ip={GUEST_IP}::{HOST_IP}:255.255.255.0:microvm:eth0:off"
        cmd = netns.exec_prefix() + [
            opt.microvm, "--kernel", kernel, "--cpus", "2", "--mem", "512M",
            "--disk", root + ",ro", "--net", f"tap={TAP}", "--stats=json",
            "--cmdline", base_cmdline() + f" root=/dev/vda ro spin=100000000000000 {ipcfg}"]
        print("command: " + " ".join(cmd))
        boot = Boot(cmd)
        boot.t0 = t0
        c.boot = boot
        deadline = time.monotonic() + opt.timeout - 90     # room for the pings and the stop
        hit = boot.wait_for(r"Run /spin as init process", max(30, deadline - time.monotonic()))
        replies, sent = [], 0
        if c.check(hit, "the kernel reaches `Run /spin as init process` (init spins, kernel alive)",
                   f"at {hit[0]:.1f} s" if hit else "not seen; kernel log (last lines):\n" + c.excerpt(boot.serial())):
            # Ping every 0.5 s until 5 replies and the guest's own ARP request for
            # the host were seen (its neighbour entry for the host goes STALE ->
            # DELAY -> PROBE ~5 s after its first reply), or for 60 s.
            tping = boot.now()
            pinger = Pinger(icmp, GUEST_IP)
            stop_at = time.monotonic() + 60
            while time.monotonic() < stop_at and boot.proc.poll() is None:
                pinger.send()
                pinger.receive(time.monotonic() + 0.5)
                guest_arp = [f for f in sniffer.snapshot() if f["kind"] == "arp" and f["dir"] == "guest->host"
                             and f["op"] == "request" and f["tpa"] == HOST_IP]
                if len(pinger.replies) >= 5 and guest_arp:
                    break
            pinger.receive(time.monotonic() + 1.0)      # late replies
            replies, sent = sorted(pinger.replies.items()), len(pinger.sent)
            print(f"ping {GUEST_IP} from the host (from {tping:.1f} s): {sent} sent, {len(replies)} replies"
                  + (", rtt " + " ".join(f"{rtt * 1000:.0f}ms" for _, rtt in replies) if replies else ""))
        alive = boot.proc.poll() is None
        c.check(alive, "the guest is still running when the host stops it",
                "" if alive else f"microvm exited {boot.proc.returncode} early")
        if alive:
            boot.proc.send_signal(signal.SIGTERM)
        if boot.wait(60) is None:
            c.check(False, "microvm stops within 60 s of SIGTERM", "killed")
        boot.kill()
        print(f"exit status {boot.code} after {boot.elapsed:.1f} s")
        st = print_stats(boot, "net-smp")
        frames = sniffer.snapshot()
        sniffer.close()
        sniffer = None

        c.check(boot.code == EXIT_SIGTERM, f"microvm exits {EXIT_SIGTERM} (128 + SIGTERM) after SIGTERM",
                f"exit status {boot.code}")
        c.stderr(r"^microvm: received Terminated, stopping the VM$", "microvm logs the signal")
        # SMP and memory
        c.serial(r"smp: Brought up 1 node, 2 CPUs", "--cpus 2: the kernel brought up 2 CPUs", near="smp|CPU")
        m = c.serial(r"Memory: [0-9]+K/([0-9]+)K available", "the kernel reports its memory", near="Memory|Zone")
        if m:
            total = int(m.group(1))
            c.check(500 * 1024 <= total <= 512 * 1024, "--mem 512M: the memory total is 500-512 MiB",
                    f"{total} KiB = {total / 1024:.1f} MiB")
        # network
        mac = c.stderr(r"^microvm: --net tap=tap0: MAC ([0-9a-f:]{17}) ", "microvm logs eth0's MAC")
        mac = mac.group(1) if mac else "??"
        cl = c.serial(r"Kernel command line: .*", "the kernel prints its command line")
        if cl:
            c.check("virtio_mmio.device=" not in cl.group(0), "no virtio_mmio.device= on it: devices from ACPI",
                    cl.group(0))
        c.serial(r"VFS: Mounted root \(ext4 filesystem\) readonly on device 254:0\.",
                 "root (a read-only --disk) mounted read-only", near="VFS|EXT4")
        c.serial(r"IP-Config: Complete:", "the kernel's ip= autoconfiguration completed", near="IP-Config|eth0")
        c.serial(rf"device=eth0, hwaddr={mac}, ipaddr={re.escape(GUEST_IP)}, mask=255\.255\.255\.0, "
                 rf"gw={re.escape(HOST_IP)}", f"eth0 is {GUEST_IP}/24 with microvm's MAC {mac}",
                 near="IP-Config|eth0")
        c.no_serial(r"Kernel panic", "no kernel panic")
        c.check(len(replies) >= 3, "the host pinged the guest: at least 3 echo replies",
                f"{sent} sent, {len(replies)} replies")
        host_arp = [f for f in frames if f["kind"] == "arp" and f["dir"] == "host->guest" and f["op"] == "request"
                    and f["tpa"] == GUEST_IP]
        guest_rep = [f for f in frames if f["kind"] == "arp" and f["dir"] == "guest->host" and f["op"] == "reply"
                     and f["spa"] == GUEST_IP]
        guest_req = [f for f in frames if f["kind"] == "arp" and f["dir"] == "guest->host" and f["op"] == "request"
                     and f["tpa"] == HOST_IP and f["spa"] == GUEST_IP]
        host_rep = [f for f in frames if f["kind"] == "arp" and f["dir"] == "host->guest" and f["op"] == "reply"
                    and f["spa"] == HOST_IP]
        echo_rep = [f for f in frames if f["kind"] == "icmp" and f["dir"] == "guest->host" and f["type"] == 0
                    and f["from"] == GUEST_IP]
        before_ping = [f for f in frames if f["dir"] == "guest->host" and hit and f["t"] < hit[0]]
        c.check(host_arp and guest_rep and guest_rep[0]["sha"] == mac,
                f"host -> guest: ARP who-has {GUEST_IP} answered by the guest with MAC {mac}",
                f"{len(host_arp)} requests, replies from " + ", ".join(sorted({f['sha'] for f in guest_rep})))
        c.check(echo_rep, "guest -> host: ICMP echo replies on the tap", f"{len(echo_rep)}")
        c.check(guest_req and host_rep,
                f"guest -> host: the guest's own ARP who-has {HOST_IP} (neighbour probe) answered by the host",
                f"{len(guest_req)} requests from the guest, {len(host_rep)} replies from the host"
                + (f"; first request at {guest_req[0]['t']:.1f} s" if guest_req else ""))
        print(f"frames sent by the guest before `Run /spin` (its autoconfiguration): {len(before_ping)}")
        print("ARP/ICMP on the tap (first 40):")
        for f in frames[:40]:
            print("  " + Sniffer.describe(f))
        c.stderr(r"^microvm: net tap0: rx [1-9][0-9]* frames \([0-9]+ bytes\), tx [1-9][0-9]* frames "
                 r"\([0-9]+ bytes\), dropped rx 0 tx 0$", "microvm's tap0 counters: frames both ways, none dropped")
        stats_checks(c, st, 2, want_mmio=[("virtio-net", 1), ("virtio-blk", 1)])
    finally:
        if sniffer:
            sniffer.close()
        if icmp:
            icmp.close()
        if boot:
            boot.kill()
        netns.delete()
    return c, boot


def send(boot, data):
    """Write to the guest's console; False if microvm is gone."""
    try:
        boot.proc.stdin.write(data)
        boot.proc.stdin.flush()
        return True
    except BrokenPipeError:
        return False


def user_syscalls(microvm):
    r = subprocess.run([microvm, "--host-info"], capture_output=True, text=True, check=False)
    return "user_syscalls: yes" in r.stdout


def ping_guest(netns, count):
    """Ping the guest from the host's side of the tap; the number of replies."""
    def run():
        i = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            p = Pinger(i, GUEST_IP)
            for _ in range(count):
                p.send()
                p.receive(time.monotonic() + 1.0)
            p.receive(time.monotonic() + 2.0)
            return len(p.replies)
        finally:
            i.close()
    return in_netns(netns.name, run)


def shell_prompt(boot, wait=60):
    """Send an empty line to a restored guest's shell; the console's last (partial) line once
    something answers ("" if nothing did)."""
    if not send(boot, b"\n"):
        return ""
    t0 = time.monotonic()
    while time.monotonic() - t0 < wait:
        with boot.cond:
            part = boot._part[1].decode(errors="replace")
        if part.strip():
            return part
        time.sleep(0.2)
    return ""


def urandom16(boot):
    """16 bytes of the guest's /dev/urandom as hex, read in its shell; None if no answer."""
    send(boot, b"echo RND-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \\n')-END\n")
    hit = boot.wait_for(r"RND-([0-9a-f]{32})-END", 60)
    return hit[1].group(1) if hit else None


def test_snapshot(opt, images, tmp):
    """Snapshot a Linux guest (disk and network in use) and restore it (docs/snapshot.md).

    Where guest user mode can make system calls (hardware virtualization, the nested KVM):
    the shell image; at the shell prompt the guest writes a file and syncs; pause,
    POST /vm/snapshot, stop; `microvm --restore` brings back the same prompt, where the
    file is read back, a new file is written and synced (the host then finds it in the
    image with debugfs), the guest pings the host and the host pings the guest, and
    `exit` powers off (exit 0). Elsewhere (guest user mode without system calls) the
    same at kernel level: the spin image with root read-write, pings before the snapshot
    and after the restore, then SIGTERM. Either way the restored kernel reseeds its RNG
    (`crng reseeded due to virtual machine fork`: the VM generation ID changed). With the
    shell, a second VM restored from the snapshot at the same time (its own copy of the
    disk, its own tap) shows the vmgenid driver bound, and the first line typed into
    each clone reads 16 bytes of /dev/urandom: the two must differ."""
    why = netns_missing()
    if why:
        print(f"SKIP: {why}; this test runs microvm in a network namespace")
        return None, None
    shell = user_syscalls(opt.microvm)
    print("guest user mode makes system calls here: " + ("yes: the shell variant" if shell else
          "no (microvm --host-info): the kernel-level variant; the shell variant runs where it can "
          "(hardware virtualization, scripts/nested-kvm)"))
    kernel = os.path.join(images, "bzImage")
    root = os.path.join(tmp, "root.img")
    shutil.copyfile(os.path.join(images, "rootfs.ext4" if shell else "rootfs-spin.ext4"), root)
    snap = os.path.join(tmp, "snap")
    sock = os.path.join(tmp, "api.sock")
    ipcfg = f"ip={GUEST_IP}::{HOST_IP}:255.255.255.0:microvm:eth0:off"
    # random.trust_cpu=on: the RNG is ready at boot (RDRAND; the minimal kernel does not trust
    # the CPU by default, Debian's does), as it must be for a reseed on the generation ID's change.
    cmdline = "console=ttyS0 panic=-1 root=/dev/vda rw random.trust_cpu=on " + ipcfg
    if not shell:
        cmdline += " init=/spin spin=100000000000000"
    netns = NetNs()
    boot = boot2 = boot3 = None
    c = Checks()
    try:
        netns.create()
        netns.add_tap(f"{TAP}:{HOST_IP}/24")
        cmd = netns.exec_prefix() + [opt.microvm, "--kernel", kernel, "--disk", root, "--net", f"tap={TAP}",
                                     "--mem", "256M", "--api-sock", sock, "--cmdline", cmdline]
        print("command: " + " ".join(cmd))
        boot = Boot(cmd)
        c.boot = boot
        deadline = time.monotonic() + opt.timeout - 120

        def left():
            return max(10, deadline - time.monotonic())
        prompt = None
        if shell:
            hit = boot.wait_for(r"exit the shell to power off", left())
            print(f"shell started: {bool(hit)} at {boot.now():.1f} s", flush=True)
            if not c.check(hit, "the guest boots to its shell",
                           "" if hit else c.excerpt(boot.serial())):
                return c, boot
            # Type only once the prompt is there (the shell may drop what came before), and
            # again while nothing answers.
            hit = None
            t_end = time.monotonic() + left()
            while not hit and time.monotonic() < t_end and boot.proc.poll() is None:
                with boot.cond:
                    part = boot._part[1]
                print(f"console's last line at {boot.now():.1f} s: {part[-60:]!r}", flush=True)
                if b"#" in part[-20:]:
                    send(boot, b"echo before-snapshot > /root/snap.txt; sync; echo WROTE-$((2+3))\n")
                hit = boot.wait_for(r"WROTE-5$", 20)
            print(f"file written: {bool(hit)} at {boot.now():.1f} s", flush=True)
            c.check(hit, "at the prompt: a file written and synced", "" if hit else c.excerpt(boot.serial()))
            time.sleep(1)
            with boot.cond:
                prompt = boot._part[1].decode(errors="replace")
            # busybox's prompt, then its terminal query ("/ # \x1b[6n").
            c.check("#" in prompt, f"the shell prompt is on the console: {prompt!r}")
        else:
            hit = boot.wait_for(r"Run /spin as init process", left())
            if not c.check(hit, "the kernel reaches `Run /spin as init process`",
                           "" if hit else c.excerpt(boot.serial())):
                return c, boot
        n = ping_guest(netns, 5)
        c.check(n >= 3, "before the snapshot: the host pings the guest", f"{n} of 5 replies")
        c.serial(r"random: crng init done", "before the snapshot: the kernel's RNG is ready")

        st, r = api_call(sock, "POST", "/vm/pause")
        c.check(st == 200, "POST /vm/pause", str(r))
        t = time.monotonic()
        st, r = api_call(sock, "POST", "/vm/snapshot", json.dumps({"path": snap}))
        c.check(st == 200, "POST /vm/snapshot", f"{r} in {time.monotonic() - t:.2f} s")
        st, r = api_call(sock, "POST", "/vm/stop")
        code = boot.wait(60)
        c.check(code == 0, "the snapshotted VM stops (POST /vm/stop): exit 0", f"exit status {code}")
        before = len(boot.out)
        root2 = os.path.join(tmp, "root2.img")
        if shell:
            shutil.copyfile(root, root2)   # the second clone's disk: the image as at the snapshot

        print(f"snapshot taken, original stopped ({code}) at {boot.now():.1f} s", flush=True)
        # Taps are never taken from a snapshot: without --net the restore is refused, one line.
        r = subprocess.run(netns.exec_prefix() + [opt.microvm, "--restore", snap, "--disk", root],
                           capture_output=True, text=True, timeout=60)
        c.check(r.returncode != 0 and "name a tap for each with --net tap=NAME" in r.stderr and
                len(r.stderr.strip().splitlines()) == 1,
                "a restore without --net for the snapshot's NIC is refused", r.stderr.strip())
        cmd2 = netns.exec_prefix() + [opt.microvm, "--restore", snap, "--disk", root, "--net", f"tap={TAP}"]
        print("command: " + " ".join(cmd2))
        boot2 = Boot(cmd2)
        c.boot = boot2
        if shell:
            # A second clone of the same snapshot at the same time, on its own disk and tap.
            netns.add_tap("tap1")
            cmd3 = netns.exec_prefix() + [opt.microvm, "--restore", snap, "--disk", root2, "--net", "tap=tap1"]
            print("command: " + " ".join(cmd3))
            boot3 = Boot(cmd3)
            time.sleep(1)
            c.check(boot2.proc.poll() is None, "the restored VM runs",
                    f"microvm exited {boot2.proc.poll()}: " + boot2.log())
            again = shell_prompt(boot2)
            c.check(again == prompt, "restored: the same shell prompt answers a new line",
                    f"{again!r} (before the snapshot {prompt!r})")
            again3 = shell_prompt(boot3)
            c.check(again3 == prompt, "second clone: the same shell prompt answers a new line",
                    f"{again3!r}; microvm log: {boot3.log()[-300:]}")
            # The first thing each clone does: read /dev/urandom. The saved RNG state is the
            # same in both; the new generation ID made each kernel reseed it.
            rnd = [urandom16(boot2), urandom16(boot3)]
            print(f"/dev/urandom right after the restore: {rnd}", flush=True)
            c.check(rnd[0] and rnd[1] and rnd[0] != rnd[1],
                    "two clones of one snapshot read different bytes from /dev/urandom", str(rnd))
            for b, name in ((boot2, "restored"), (boot3, "second clone")):
                send(b, b"echo BOUND-$(ls /sys/bus/acpi/drivers/vmgenid | grep -c :)-END\n")
                hit = b.wait_for(r"BOUND-(\d+)-END", 60)
                c.check(hit and hit[1].group(1) == "1",
                        f"{name}: Linux's vmgenid driver is bound to the VM_Gen_Counter device",
                        hit[1].group(0) if hit else c.excerpt(b.serial()))
                hit = b.wait_for(r"crng reseeded due to virtual machine fork", 30)
                c.check(hit, f"{name}: the kernel reseeded its RNG (the new VM generation ID was notified)",
                        "" if hit else c.excerpt(b.serial()))
            send(boot3, b"exit\n")
            code = boot3.wait(120)
            c.check(code == 0, "second clone: `exit` powers it off: exit 0", f"exit status {code}")
            send(boot2, b"cat /root/snap.txt; echo after-restore > /root/after.txt; sync; "
                                   b"cat /root/after.txt; ping -c 3 -W 5 " + HOST_IP.encode() +
                                   b" >/dev/null && echo PING-$((3+4)); echo DONE-$((4+5))\n")
            hit = boot2.wait_for(r"DONE-9$", 120)
            text = boot2.serial()
            c.check(hit and "before-snapshot" in text, "restored: the file written before the snapshot reads back",
                    c.excerpt(text))
            c.check(hit and re.search(r"after-restore$", text, re.M), "restored: a new file written and synced")
            c.check(hit and re.search(r"PING-7$", text, re.M), "restored: the guest pings the host")
        else:
            hit = boot2.wait_for(r"crng reseeded due to virtual machine fork", 30)
            c.check(hit, "restored: the kernel reseeded its RNG (the new VM generation ID was notified)",
                    "" if hit else c.excerpt(boot2.serial()))
        n = ping_guest(netns, 5)
        c.check(n >= 3, "restored: the host pings the guest", f"{n} of 5 replies")
        if shell:
            send(boot2, b"exit\n")
            code = boot2.wait(120)
            c.check(code == 0, "restored: `exit` powers the guest off: exit 0", f"exit status {code}")
            r = subprocess.run(["debugfs", "-R", "cat /root/after.txt", root], capture_output=True, text=True,
                               check=False)
            c.check(r.stdout.strip() == "after-restore",
                    "the restored guest's file is in the disk image (debugfs on the host)", r.stdout + r.stderr)
        else:
            boot2.proc.send_signal(signal.SIGTERM)
            code = boot2.wait(60)
            c.check(code == EXIT_SIGTERM, f"restored: SIGTERM stops it (exit {EXIT_SIGTERM})", f"exit status {code}")
        c.stderr(r"^microvm: restored from .*: 1 vCPUs, 256 MiB, a new VM generation ID$",
                 "microvm says it restored the snapshot")
        c.no_serial(r"Kernel panic|BUG:|Oops", "restored: no kernel panic, BUG or oops")
        print(f"serial lines before the snapshot: {before}")
    finally:
        for b in (boot, boot2, boot3):
            if b:
                b.kill()
        netns.delete()
    return c, boot2 or boot


# --------------------------------------------------------------------------- clones

OVL_MAGIC = b"MVMOVL\r\n"   # docs/overlay.md, format version 1
NCLONES = 8
WAVE = 2             # clones side by side


def overlay_image(base, overlay, out):
    """Write to out the disk a VM on `base,overlay=overlay` sees, read the way
    docs/overlay.md documents the file (an implementation of our own: the test checks
    the format as documented as much as the data): the base, and every cluster whose
    bitmap bit is set from the overlay's data area."""
    with open(overlay, "rb") as f:
        hdr = f.read(128)
        if hdr[:8] != OVL_MAGIC or struct.unpack_from("<I", hdr, 8)[0] != 1:
            raise RuntimeError(f"{overlay}: not an overlay of format version 1")
        cluster, = struct.unpack_from("<I", hdr, 16)
        size, bm_off, bm_len, data_off = struct.unpack_from("<QQQQ", hdr, 24)
        crc, = struct.unpack_from("<I", hdr, 124)
        if zlib.crc32(hdr[:124] + b"\0\0\0\0") != crc:
            raise RuntimeError(f"{overlay}: header CRC mismatch")
        f.seek(bm_off)
        bitmap = f.read(bm_len)
        shutil.copyfile(base, out)
        if os.path.getsize(out) != size:
            raise RuntimeError(f"{overlay}: made for a base of {size} bytes, {base} has {os.path.getsize(out)}")
        allocated = 0
        with open(out, "r+b") as o:
            for c in range((size + cluster - 1) // cluster):
                if bitmap[c // 8] >> (c % 8) & 1:
                    allocated += 1
                    f.seek(data_off + c * cluster)
                    o.seek(c * cluster)
                    o.write(f.read(min(cluster, size - c * cluster)))
    return allocated


def debugfs(image, request):
    r = subprocess.run(["debugfs", "-R", request, image], capture_output=True, text=True, check=False)
    return r.stdout


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def test_clones(opt, images, tmp):
    """Serverless clones (docs/snapshot.md, docs/overlay.md): the shell image boots on an
    overlay over a base image, writes a file at its prompt and is snapshotted; then 8
    clones are restored from that snapshot, two at a time, each in a network namespace of its
    own with its own tap and its own new overlay over the same base. Each clone reads 16
    bytes of /dev/urandom, writes a file of its own and syncs, pings its host and powers
    off. Checks: every clone did all of that; their random bytes and VM generation IDs
    all differ (and differ from the parent's ID); each overlay holds the parent's file and
    its own clone's, no other clone's (read from the overlay file by this test's own
    reader of the documented format, then debugfs); the base image is unchanged."""
    why = netns_missing()
    if why:
        print(f"SKIP: {why}; this test runs each clone in a network namespace")
        return None, None
    if not user_syscalls(opt.microvm):
        print("SKIP: guest user mode cannot make system calls on this host (microvm --host-info): "
              "the clones need the guest's shell; it runs where it can (hardware virtualization, "
              "scripts/nested-kvm)")
        return None, None
    kernel = os.path.join(images, "bzImage")
    base = os.path.join(tmp, "base.img")
    shutil.copyfile(os.path.join(images, "rootfs.ext4"), base)
    base_sum = sha256(base)
    snap = os.path.join(tmp, "snap")
    sock = os.path.join(tmp, "api.sock")
    ipcfg = f"ip={GUEST_IP}::{HOST_IP}:255.255.255.0:microvm:eth0:off"
    # random.trust_cpu=on: the RNG is ready before the snapshot (the reseed a new generation ID
    # asks for mixes it into a seeded pool).
    cmdline = "console=ttyS0 panic=-1 root=/dev/vda rw random.trust_cpu=on " + ipcfg
    spaces = []
    clones = []
    parent = None
    c = Checks()
    try:
        ns = NetNs()
        ns.name += "-parent"
        spaces.append(ns)
        ns.create()
        ns.add_tap(f"{TAP}:{HOST_IP}/24")
        cmd = ns.exec_prefix() + [opt.microvm, "-v", "--kernel", kernel, "--disk",
                                  f"{base},overlay={os.path.join(tmp, 'parent.ovl')}",
                                  "--net", f"tap={TAP}", "--mem", "256M", "--api-sock", sock,
                                  "--cmdline", cmdline]
        print("parent: " + " ".join(cmd), flush=True)
        parent = Boot(cmd)
        c.boot = parent
        deadline = time.monotonic() + opt.timeout - 60

        def left():
            return max(10, deadline - time.monotonic())
        hit = parent.wait_for(r"exit the shell to power off", left())
        print(f"parent: shell started: {bool(hit)} at {parent.now():.1f} s", flush=True)
        if not c.check(hit, "the parent boots to its shell on an overlay", "" if hit else c.excerpt(parent.serial())):
            return c, parent
        hit = None
        while not hit and time.monotonic() < deadline and parent.proc.poll() is None:
            with parent.cond:
                part = parent._part[1]
            if b"#" in part[-20:]:
                send(parent, b"echo parent > /root/parent.txt; sync; echo WROTE-$((2+3))\n")
            hit = parent.wait_for(r"WROTE-5$", 20)
        if not c.check(hit, "parent: a file written and synced at the prompt", "" if hit else c.excerpt(parent.serial())):
            return c, parent
        time.sleep(1)
        st, r = api_call(sock, "POST", "/vm/pause")
        c.check(st == 200, "parent: POST /vm/pause", str(r))
        st, r = api_call(sock, "POST", "/vm/snapshot", json.dumps({"path": snap}))
        if not c.check(st == 200, "parent: POST /vm/snapshot", str(r)):
            return c, parent
        api_call(sock, "POST", "/vm/stop")
        code = parent.wait(60)
        c.check(code == 0, "parent: stopped (POST /vm/stop): exit 0", f"exit status {code}")
        c.check(os.path.isfile(os.path.join(snap, "disk0.overlay")),
                "the snapshot holds the parent's overlay layer (disk0.overlay)", str(os.listdir(snap)))
        ids = {"parent": re.findall(r"VM generation ID ([0-9a-f]{32})", parent.log())}

        # The clones, WAVE at a time (a bounded load where every instruction is emulated), each in
        # its own namespace with its own tap and overlay. The clones of a wave run side by side;
        # every clone restores from the same snapshot.
        t0 = time.monotonic()
        rnd = {}
        for first in range(0, NCLONES, WAVE):
            wave = list(range(first, min(first + WAVE, NCLONES)))
            boots = {}
            for i in wave:
                ns = NetNs()
                ns.name += f"-c{i}"
                spaces.append(ns)
                ns.create()
                ns.add_tap(f"{TAP}:{HOST_IP}/24")
                cmd = ns.exec_prefix() + [opt.microvm, "-v", "--restore", snap, "--disk",
                                          f"{base},overlay={os.path.join(tmp, f'c{i}.ovl')}",
                                          "--net", f"tap={TAP}"]
                if i == 0:
                    print("clone 0: " + " ".join(cmd), flush=True)
                boots[i] = Boot(cmd)
                clones.append(boots[i])
            for i, b in boots.items():
                c.check(send(b, b"\n"), f"clone {i}: restored and running", f"exit {b.proc.poll()}: {b.log()}")
            for i, b in boots.items():
                send(b, (f"echo RND-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'); "
                         f"echo clone-{i} > /root/clone-{i}.txt; sync; "
                         f"ping -c 2 -W 5 {HOST_IP} >/dev/null && echo PING-$(({i}+200)); "
                         f"echo DONE-$(({i}+100))\n").encode())
            for i, b in boots.items():
                hit = b.wait_for(rf"DONE-{i + 100}$", left())
                text = b.serial()
                m = re.search(r"RND-([0-9a-f]{32})$", text, re.M)
                c.check(hit and m, f"clone {i}: read /dev/urandom, wrote and synced its file",
                        "" if hit and m else c.excerpt(text))
                if m:
                    rnd[i] = m.group(1)
                c.check(re.search(rf"PING-{i + 200}$", text, re.M), f"clone {i}: pings its host")
            for i, b in boots.items():
                send(b, b"exit\n")
            for i, b in boots.items():
                code = b.wait(120)
                c.check(code == 0, f"clone {i}: `exit` powers it off: exit 0", f"exit status {code}")
                c.check(re.search(r"^microvm: restored from .*a new VM generation ID", b.log(), re.M),
                        f"clone {i}: microvm says it restored with a new VM generation ID", b.log()[-600:])
                ids[i] = re.findall(r"VM generation ID ([0-9a-f]{32})", b.log())
            print(f"clones {wave[0]}-{wave[-1]} done at {time.monotonic() - t0:.1f} s", flush=True)

        c.check(len(rnd) == NCLONES and len(set(rnd.values())) == NCLONES,
                "the clones' random bytes all differ", str(rnd))
        last = {k: v[-1] for k, v in ids.items() if v}
        c.check(len(last) == NCLONES + 1 and len(set(last.values())) == NCLONES + 1,
                "the clones' VM generation IDs all differ, and from the parent's", str(last))
        c.check(sha256(base) == base_sum, "the base image is unchanged (sha256)")
        for i in range(NCLONES):
            img = os.path.join(tmp, f"c{i}.img")
            try:
                n = overlay_image(base, os.path.join(tmp, f"c{i}.ovl"), img)
            except (OSError, RuntimeError, struct.error, IndexError) as e:
                c.check(False, f"clone {i}: its overlay reads as documented", str(e))
                continue
            listing = debugfs(img, "ls /root")
            names = sorted(set(re.findall(r"(clone-\d+\.txt|parent\.txt)", listing)))
            content = debugfs(img, f"cat /root/clone-{i}.txt").strip()
            c.check(names == sorted(["parent.txt", f"clone-{i}.txt"]) and content == f"clone-{i}",
                    f"clone {i}: its overlay ({n} clusters) holds the parent's file and its own, no other clone's",
                    f"/root: {names}; clone-{i}.txt: {content!r}")
            os.unlink(img)
    finally:
        for b in clones + [parent]:
            if b:
                b.kill()
        for ns in spaces:
            ns.delete()
    return c, clones[0] if clones else parent


TESTS = {"disk": test_disk, "net-smp": test_net_smp, "snapshot": test_snapshot,
         "clones": test_clones}


def report(c, boot, start):
    """A test's end: its checks, microvm's log and the guest's serial lines; 0 if every check
    passed, else 1 (tests/linux/debian.py ends the same way)."""
    print(f"checks ({time.monotonic() - start:.1f} s in all):")
    c.report()
    if boot:
        print("---- microvm log (stderr) ----")
        print(boot.log())
        print("---- guest serial, with the host's arrival time ----")
        with boot.cond:
            for t, ln in boot.out:
                print(f"{t:7.2f} {ln}")
    bad = c.failed()
    if bad:
        print(f"FAILED: {len(bad)} of {len(c.results)} checks:")
        for _, what, _ in bad:
            print(f"  {what}")
        return 1
    print(f"ok: {len(c.results)} checks")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--microvm", required=True)
    ap.add_argument("--images", default=os.path.join(HERE, "..", "..", "build", "linux-guest"),
                    help="the output directory of scripts/guest-image (env MICROVM_LINUX_GUEST overrides)")
    ap.add_argument("--timeout", type=float, default=540, help="seconds for the boot (meson allows 600)")
    ap.add_argument("test", choices=sorted(TESTS))
    opt = ap.parse_args(argv)
    images = os.path.abspath(os.environ.get("MICROVM_LINUX_GUEST") or opt.images)

    why = kvm_usable()
    if why:
        print(f"SKIP: {why}; the Linux tests need a usable /dev/kvm")
        return SKIP
    missing = [f for f in ("bzImage", "vmlinux", "rootfs-spin.ext4", "rootfs.ext4")
               if not os.path.isfile(os.path.join(images, f))]
    if missing:
        print(f"FAILED: the Linux guest images are missing in {images}: {', '.join(missing)}.\n"
              f"Build them first (the kernel is cached after the first build):\n"
              f"    sh scripts/guest-image --out {images}\n"
              f"or point MICROVM_LINUX_GUEST at the directory that holds them (docs/linux-guest.md).")
        return 1
    if not shutil.which("dumpe2fs") and opt.test == "disk":
        print("FAILED: dumpe2fs not found (install e2fsprogs)")
        return 1
    print(f"images: {images}")

    # meson sends SIGTERM on its timeout: clean up (VM, namespace, files) on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    tmp = tempfile.mkdtemp(prefix="microvm-linux-e2e-")
    start = time.monotonic()
    try:
        c, boot = TESTS[opt.test](opt, images, tmp)
    except RuntimeError as e:
        print(f"FAILED: {e}")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if c is None:
        return SKIP
    return report(c, boot, start)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
