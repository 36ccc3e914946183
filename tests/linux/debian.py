#!/usr/bin/env python3
"""debian.py - Debian's own cloud kernel and a Debian 12 systemd image under microvm.

  debian.py --microvm PATH [--debian DIR] [--images DIR] [--timeout S] TEST

The images come from scripts/debian-guest (--debian, or $MICROVM_DEBIAN_GUEST;
docs/debian-guest.md). TEST is one of:

  initramfs  vmlinuz + initrd-busybox.img, root on a copy of the project's busybox
             image (--images, or $MICROVM_LINUX_GUEST: scripts/guest-image), a second
             disk with id=data and a NIC on a tap. A --run script checks: both disks
             (and the run disk) found through ACPI by the modules the initramfs loaded,
             vdb's serial is `data`, eth0 configured by hand pings the host, a marker
             written to vdb is in the host's file afterwards; microvm exits with the
             script's status 0.
  initramfs-generic  the same with Debian's generic kernel (linux-image-amd64) and its
             busybox initramfs.
  systemd    vmlinuz + Debian's own initrd.img, root on a copy of debian.ext4 (id=root),
             a data disk (id=data), a NIC whose address comes from ip= on the kernel
             command line (systemd-network-generator, systemd-networkd). Checks: the
             serial console reaches the autologin prompt with the hostname from the
             kernel command line; over the console: `systemctl is-system-running` says
             running, the clock agrees with the host's, /dev/disk/by-id has virtio-root and
             virtio-data, a file written and synced, the guest pings the host and the host
             the guest, fstrim -v / trims and the image file loses the blocks a deleted
             64 MiB file held, systemd-analyze; `systemctl poweroff` ends microvm with 0;
             the file is in the image (debugfs).
  power-button  the systemd image on a throw-away overlay with --api-sock: at the prompt,
             POST /vm/shutdown (the ACPI power button); systemd-logind shuts the system
             down cleanly and microvm exits 0 well before the deadline.

Every test fails on a kernel oops, BUG or invalid opcode in the guest's log. The guest's
user mode must make system calls: where it cannot (microvm --host-info), the tests skip
saying so; without /dev/kvm they skip (scripts/test.sh runs them in the nested KVM).
Missing images FAIL with the command that makes them.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from e2e import (Boot, Checks, GUEST_IP, HOST_IP, NetNs, SKIP, TAP, api_call, debugfs, kvm_usable,  # noqa: E402
                 netns_missing, ping_guest, report, send, user_syscalls)

HOSTNAME = "e2e-debian"
PROMPT = re.compile(rb"root@" + HOSTNAME.encode() + rb":[^#\n]*# $")
BAD = r"Oops|BUG:|invalid opcode|Kernel panic|Call Trace"
IPCFG = f"ip={GUEST_IP}::{HOST_IP}:255.255.255.0::eth0:off"


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean(line):
    """A console line as a terminal shows it: escape sequences gone, what a CR overwrote gone."""
    return ANSI.sub("", line).rsplit("\r", 1)[-1]


def allocated(path):
    return os.stat(path).st_blocks * 512


def sparse_copy(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)


def root_and_data(image, tmp):
    """A test's two disks in tmp: a sparse copy of the root image, and an empty 16 MiB data disk."""
    root, data = os.path.join(tmp, "root.img"), os.path.join(tmp, "data.img")
    sparse_copy(image, root)
    with open(data, "wb") as f:
        f.truncate(16 << 20)
    return root, data


class Console:
    """Commands typed into the guest's serial console (a root shell), one at a time. Each is
    framed by two markers the typed line cannot contain ($((6*7)) expands to 42 only in the
    output), and its output is the lines strictly between them; results are then found by a
    prefix the command prints, never by position (kernel messages may interleave)."""

    def __init__(self, boot):
        self.boot, self.n = boot, 0

    def wait_prompt(self, timeout):
        """True once the shell's prompt is the console's last, unfinished line. A kernel
        message after the prompt ends that line: after 2 s without a prompt, an empty line
        asks for a new one."""
        end = time.monotonic() + timeout
        nudge = time.monotonic() + 2
        while time.monotonic() < end and self.boot.proc.poll() is None:
            with self.boot.cond:
                part = self.boot._part[1]
            if PROMPT.search(part):
                return True
            if time.monotonic() > nudge:
                send(self.boot, b"\n")
                nudge = time.monotonic() + 2
            time.sleep(0.2)
        return False

    def run(self, cmd, timeout=120):
        """The command's output lines, or None if the end marker never came."""
        if self.n == 0:
            # No line wrapping by the terminal's idea of its width (it would split the echo).
            send(self.boot, b"stty cols 1000\n")
        self.n += 1
        beg, end = f"BEG-{self.n}-42", f"END-{self.n}-42"
        if not send(self.boot, f"echo BEG-{self.n}-$((6*7)); {cmd}; echo END-{self.n}-$((6*7))\n".encode()):
            return None
        # Not anchored at the start: bash's bracketed-paste switch (ESC [?2004l, CR) may come first.
        if not self.boot.wait_for(rf"{end}$", timeout):
            return None
        with self.boot.cond:
            lines = [clean(ln) for _, ln in self.boot.out]
        try:
            first = max(i for i, ln in enumerate(lines) if ln == beg)
            last = max(i for i, ln in enumerate(lines) if ln == end)
        except ValueError:
            return None
        return lines[first + 1:last]


def debian_images(opt):
    d = os.path.abspath(os.environ.get("MICROVM_DEBIAN_GUEST") or opt.debian)
    missing = [f for f in ("vmlinuz", "initrd.img", "initrd-busybox.img", "debian.ext4", "vmlinuz-generic",
                           "initrd-busybox-generic.img")
               if not os.path.isfile(os.path.join(d, f))]
    if missing:
        raise RuntimeError(f"the Debian guest is missing in {d}: {', '.join(missing)}. Make it with\n"
                           f"    sh scripts/debian-guest --out {d}\n"
                           f"or point MICROVM_DEBIAN_GUEST at its directory (docs/debian-guest.md)")
    return d


def no_oops(c, boot):
    c.no_serial(BAD, "no kernel oops, BUG, invalid opcode or panic in the guest's log")


def test_initramfs(opt, tmp, generic=False):
    deb = debian_images(opt)
    why = netns_missing()
    if why:
        print(f"SKIP: {why}; this test runs microvm in a network namespace")
        return None, None
    kernel, initrd = (("vmlinuz-generic", "initrd-busybox-generic.img") if generic
                      else ("vmlinuz", "initrd-busybox.img"))
    images = os.path.abspath(os.environ.get("MICROVM_LINUX_GUEST") or opt.images)
    rootfs = os.path.join(images, "rootfs.ext4")
    if not os.path.isfile(rootfs):
        raise RuntimeError(f"{rootfs} is missing: make it with sh scripts/guest-image --out {images}")
    root, data = root_and_data(rootfs, tmp)
    script = os.path.join(tmp, "check.sh")
    with open(script, "w") as f:
        # Kernel messages off the console first: one (eth0's link coming up) once landed in
        # the middle of the DISKS line.
        f.write(f"""set -e
echo 1 > /proc/sys/kernel/printk
echo "DISKS $(ls /sys/block | grep '^vd' | tr '\\n' ' ')"
echo "SERIAL-vdb $(cat /sys/block/vdb/serial)"
echo "MODULES $(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')"
ip addr add {GUEST_IP}/24 dev eth0
ip link set eth0 up
ping -c 3 -W 5 {HOST_IP} >/dev/null && echo PING-OK
echo data-written-by-debian-kernel | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null
exit 0
""")
    netns = NetNs()
    boot = None
    c = Checks()
    try:
        netns.create()
        netns.add_tap(f"{TAP}:{HOST_IP}/24")
        cmd = netns.exec_prefix() + [
            opt.microvm, "--kernel", os.path.join(deb, kernel), "--initrd", os.path.join(deb, initrd),
            "--disk", root, "--disk", f"{data},id=data", "--net", f"tap={TAP}", "--mem", "512M",
            "--cmdline", "console=ttyS0 root=/dev/vda rw panic=-1", "--run", script,
            "--timeout", str(int(opt.timeout - 60))]
        print("command: " + " ".join(cmd), flush=True)
        boot = Boot(cmd)
        c.boot = boot
        code = boot.wait(opt.timeout - 30)
        c.check(code == 0, "microvm exits with the --run script's status 0", f"exit status {code}")
        c.serial(r"^initramfs: loaded virtio_mmio virtio_blk virtio_net", "the busybox initramfs loaded the modules")
        c.serial(r"^initramfs: /dev/vda mounted rw", "it mounted root from virtio-blk and switched to it")
        m = c.serial(r"^DISKS (.*)$", "the guest lists its disks")
        c.check(m and m.group(1).split() == ["vda", "vdb", "vdc"],
                "vda (root), vdb (data) and vdc (the run disk) found through ACPI", m.group(0) if m else "")
        c.serial(r"^SERIAL-vdb data$", "vdb's serial is the --disk id (VIRTIO_BLK_T_GET_ID)")
        m = c.serial(r"^MODULES (.*)$", "the guest lists its modules")
        c.check(m and {"virtio_mmio", "virtio_blk", "virtio_net"} <= set(m.group(1).split()),
                "virtio_mmio, virtio_blk and virtio_net are loaded modules", m.group(0) if m else "")
        c.serial(r"^PING-OK$", "eth0 configured in the guest pings the host")
        with open(data, "rb") as f:
            head = f.read(64)
        c.check(head.startswith(b"data-written-by-debian-kernel\n"),
                "the marker the guest wrote to vdb is in the host's file", repr(head[:40]))
        no_oops(c, boot)
    finally:
        if boot:
            boot.kill()
        netns.delete()
    return c, boot


def systemd_boot(opt, tmp, disk_args, extra, cmdline_extra=""):
    deb = debian_images(opt)
    cmdline = f"console=ttyS0 root=/dev/vda rw net.ifnames=0 systemd.hostname={HOSTNAME} {cmdline_extra}".strip()
    cmd = [opt.microvm, "--kernel", os.path.join(deb, "vmlinuz"), "--initrd", os.path.join(deb, "initrd.img"),
           *disk_args, "--mem", "1G", "--cmdline", cmdline, *extra]
    return cmd


def wait_login(c, boot, con, timeout):
    hit = boot.wait_for(rf"{HOSTNAME} login: root \(automatic login\)", timeout)
    if not c.check(hit, f"the serial console reaches `{HOSTNAME} login:` (root autologin; hostname from the "
                   f"kernel command line)", f"at {hit[0]:.1f} s" if hit else c.excerpt(boot.serial())):
        return False
    ok = con.wait_prompt(60)
    return c.check(ok, "a root shell prompt follows", "" if ok else c.excerpt(boot.serial()))


def test_systemd(opt, tmp):
    deb = debian_images(opt)
    why = netns_missing()
    if why:
        print(f"SKIP: {why}; this test runs microvm in a network namespace")
        return None, None
    root, data = root_and_data(os.path.join(deb, "debian.ext4"), tmp)
    netns = NetNs()
    boot = None
    c = Checks()
    try:
        netns.create()
        netns.add_tap(f"{TAP}:{HOST_IP}/24")
        cmd = netns.exec_prefix() + systemd_boot(
            opt, tmp, ["--disk", f"{root},id=root", "--disk", f"{data},id=data", "--net", f"tap={TAP}"],
            ["--stats"], IPCFG)
        print("command: " + " ".join(cmd), flush=True)
        boot = Boot(cmd)
        c.boot = boot
        con = Console(boot)
        if not wait_login(c, boot, con, opt.timeout - 200):
            return c, boot
        out = con.run("echo STATE=$(systemctl is-system-running --wait); systemctl --failed --no-legend --plain", 180)
        c.check(out and "STATE=running" in out, "systemctl is-system-running: running (no failed unit)",
                "\n".join(out or ["(no answer)"]))
        # The wall clock: the kernel sets it from microvm's CMOS clock at boot (there is no
        # /dev/rtc0: no PNP0B00 in microvm's DSDT; the kernel reads the CMOS ports itself).
        # It then runs on the guest's clocksource, which in the nested KVM runs up to ~10% slow
        # under load (docs/nested-kvm.md), and so does the guest's uptime: the time the clock
        # said at boot, date - uptime, must be the host's time at the kernel's start.
        out = con.run("echo CLOCK $(date +%s) $(cut -d' ' -f1 /proc/uptime)")
        m = next((re.match(r"CLOCK (\d+) ([\d.]+)$", ln) for ln in out or [] if ln.startswith("CLOCK ")), None)
        exec_wall = time.time() - boot.now()
        booted = int(m.group(1)) - float(m.group(2)) if m else None
        c.check(m and exec_wall - 2 <= booted <= exec_wall + (boot.first_byte or 0) + 10,
                "the guest's wall clock was the host's at boot (date - uptime, from microvm's CMOS clock)",
                f"guest clock at boot {booted and round(booted)}, microvm started {round(exec_wall)}, "
                f"first serial byte {boot.first_byte and round(boot.first_byte, 1)} s later; now guest "
                f"{m.group(1) if m else out}, host {int(time.time())}")
        out = con.run("ls /dev/disk/by-id/ | sed 's/^/BYID /'")
        ids = [ln[5:] for ln in out or [] if ln.startswith("BYID ")]
        c.check("virtio-root" in ids and "virtio-data" in ids,
                "/dev/disk/by-id has virtio-root and virtio-data (the --disk ids)", " ".join(ids))
        out = con.run(f"ping -c 3 -W 5 {HOST_IP} >/dev/null && echo PING-OK || "
                      "{ ip addr; networkctl --no-pager status eth0; head -50 /run/systemd/network/*; }")
        c.check(out and "PING-OK" in out, "the guest pings the host (eth0 configured by systemd-networkd "
                "from ip= on the kernel command line)", "\n".join(out or []))
        n = ping_guest(netns, 5)
        c.check(n >= 3, "the host pings the guest", f"{n} of 5 replies")
        out = con.run("echo from-the-systemd-guest > /root/e2e.txt && sync && echo WROTE")
        c.check(out and "WROTE" in out, "a file written and synced in the guest")
        out = con.run("dd if=/dev/urandom of=/root/big bs=1M count=64 status=none && sync && echo BIG")
        a1 = allocated(root)
        out2 = con.run("rm /root/big && sync && fstrim -v /", 180)
        a2 = allocated(root)
        m = out2 and re.search(r"^/: .*\((\d+) bytes\) trimmed", "\n".join(out2), re.M)
        c.check(out and "BIG" in out and m and int(m.group(1)) > 0, "fstrim -v / trims (virtio-blk DISCARD)",
                "\n".join(out2 or []))
        c.check(a1 - a2 >= 48 << 20, "the image file lost the deleted 64 MiB file's blocks (holes punched)",
                f"allocated {a1 >> 20} MiB before, {a2 >> 20} MiB after fstrim")
        out = con.run("systemd-analyze")
        print("systemd-analyze: " + " | ".join(out or []), flush=True)
        c.check(out and any("Startup finished" in ln for ln in out), "systemd-analyze: startup finished")
        send(boot, b"systemctl poweroff\n")
        code = boot.wait(180)
        c.check(code == 0, "`systemctl poweroff` ends microvm with status 0", f"exit status {code}")
        c.serial(r"reboot: Power down", "the kernel powered the machine off (ACPI S5)")
        got = debugfs(root, "cat /root/e2e.txt").strip()
        c.check(got == "from-the-systemd-guest", "the guest's file is in the image (debugfs on the host)", got)
        no_oops(c, boot)
    finally:
        if boot:
            boot.kill()
        netns.delete()
    return c, boot


def test_power_button(opt, tmp):
    deb = debian_images(opt)
    sock = os.path.join(tmp, "api.sock")
    boot = None
    c = Checks()
    os.environ["TMPDIR"] = tmp     # the throw-away overlay
    try:
        cmd = systemd_boot(opt, tmp, ["--disk", os.path.join(deb, "debian.ext4") + ",overlay"],
                           ["--api-sock", sock])
        print("command: " + " ".join(cmd), flush=True)
        boot = Boot(cmd)
        c.boot = boot
        con = Console(boot)
        if not wait_login(c, boot, con, opt.timeout - 200):
            return c, boot
        # logind must be up to take the button (it is part of reaching `running`).
        out = con.run("systemctl is-system-running --wait >/dev/null; echo LOGIND=$(systemctl is-active systemd-logind)",
                      180)
        c.check(out and "LOGIND=active" in out, "systemd-logind is active", "\n".join(out or []))
        t = time.monotonic()
        st, r = api_call(sock, "POST", "/vm/shutdown", json.dumps({"timeout": 150}))
        c.check(st == 202, "POST /vm/shutdown {\"timeout\": 150}: 202", f"{st} {r}")
        code = boot.wait(170)
        took = time.monotonic() - t
        c.check(code == 0, "systemd shut down and powered off: microvm exits 0 (124 would be the deadline)",
                f"exit status {code} after {took:.1f} s")
        c.serial(r"Reached target.*(System Power Off|Power-Off)",
                 "systemd reached its power-off target (a clean shutdown, not a forced one)")
        c.serial(r"reboot: Power down", "the kernel powered the machine off (ACPI S5)")
        no_oops(c, boot)
    finally:
        if boot:
            boot.kill()
    return c, boot


TESTS = {"initramfs": test_initramfs, "initramfs-generic": lambda opt, tmp: test_initramfs(opt, tmp, True), "systemd": test_systemd, "power-button": test_power_button}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--microvm", required=True)
    ap.add_argument("--debian", default=os.path.join(HERE, "..", "..", "build", "debian-guest"),
                    help="scripts/debian-guest's output (env MICROVM_DEBIAN_GUEST overrides)")
    ap.add_argument("--images", default=os.path.join(HERE, "..", "..", "build", "linux-guest"),
                    help="scripts/guest-image's output (env MICROVM_LINUX_GUEST overrides)")
    ap.add_argument("--timeout", type=float, default=540)
    ap.add_argument("test", choices=sorted(TESTS))
    opt = ap.parse_args(argv)
    why = kvm_usable()
    if why:
        print(f"SKIP: {why}; the Debian guest tests need a usable /dev/kvm")
        return SKIP
    if not user_syscalls(opt.microvm):
        print("SKIP: guest user mode cannot make system calls on this host (microvm --host-info; "
              "docs/host-quirks.md): no distribution's user space can run; scripts/nested-kvm runs these tests")
        return SKIP
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    tmp = tempfile.mkdtemp(prefix="microvm-debian-")
    start = time.monotonic()
    try:
        c, boot = TESTS[opt.test](opt, tmp)
    except RuntimeError as e:
        print(f"FAILED: {e}")
        return 1
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)
    if c is None:
        return SKIP
    return report(c, boot, start)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
