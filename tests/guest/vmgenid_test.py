#!/usr/bin/env python3
"""vmgenid_test.py - the VM generation ID (docs/firmware.md) across snapshot and restore.

The test guest (action=vmgenid) finds the DSDT's VM_Gen_Counter device, prints the 16-byte ID
its ADDR points at, routes the GED's generation-ID interrupt and prints the ID again after each
one. A boot has a non-zero ID in reserved memory; the snapshot's memory holds it; the original
resumed after its snapshot keeps it (no notification); two VMs restored from that snapshot are
each notified once and each read a new ID, different from the original's and from each other's;
a snapshot of a restored VM holds that VM's new ID.

  vmgenid_test.py MICROVM GUEST_ELF

Exit 77 (skip) without /dev/kvm. Stdlib only."""
import os
import re
import shutil
import sys
import tempfile
import time

from api_test import Guest, call, check, skip_without_kvm

VMGENID_GPA = 0xdfff0   # MV_VMGENID_GPA (firmware/machine.h); the memory file is RAM from GPA 0
BOOT_RE = rb"vmgenid: id ([0-9a-f]{32}) at 0x([0-9a-f]+), notified on GSI (\d+)\n"
NOTIFIED_RE = rb"vmgenid: notified (\d+), id ([0-9a-f]{32})\n"


def memory_id(snap):
    """The 16 bytes at the ID's address in a snapshot's (uncompressed) memory file, as hex."""
    with open(os.path.join(snap, "memory"), "rb") as f:
        f.seek(VMGENID_GPA)
        return f.read(16).hex()


def wait_re(g, pattern, timeout):
    """The first match of pattern in the guest's output, waiting up to timeout seconds; None if none."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, g.out) and time.monotonic() < deadline and g.p.poll() is None:
        g.pump(min(1.0, max(0.0, deadline - time.monotonic())))
    g.pump(0)
    return re.search(pattern, g.out)


def snapshot(sock, path, what):
    check(call(sock, "POST", "/vm/pause")[0] == 200, f"{what}: pause")
    status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % path)
    check(status == 200, f"{what}: snapshot ({r})")


def stop(g, sock):
    if g.p.poll() is None:
        call(sock, "POST", "/vm/stop")
        g.p.wait(timeout=60)


def main():
    microvm, guest = sys.argv[1], sys.argv[2]
    skip_without_kvm()
    tmp = tempfile.mkdtemp(prefix="microvm-vmgenid-")
    snap, snap_c1 = os.path.join(tmp, "s"), os.path.join(tmp, "c1")
    sock = os.path.join(tmp, "p.sock")
    g = Guest([microvm, "-v", "--kernel", guest, "--mem", "64M", "--api-sock", sock, "--timeout", "300",
               "--cmdline", "action=vmgenid"])
    clones = []
    try:
        g.wait_out("vmgenid: waiting for notifications", timeout=120)
        m = re.search(BOOT_RE, g.out)
        check(m is not None, f"the guest found VM_Gen_Counter and printed the ID ({g.out[-400:]!r})")
        parent, addr, gsi = m.group(1).decode(), int(m.group(2), 16), int(m.group(3))
        check(addr == VMGENID_GPA and gsi == 3, f"ADDR gives 0x{addr:x}, the GED line is GSI {gsi}")
        check(parent != "0" * 32, f"the boot's ID is not zero ({parent})")
        check(f"VM generation ID {parent} (boot)".encode() in g.err,
              f"microvm -v logged the ID it wrote ({g.err[-400:]!r})")
        snapshot(sock, snap, "the original")
        check(memory_id(snap) == parent, "the snapshot's memory holds the original's ID")
        # A snapshot is not a clone: the original goes on with its ID, unnotified.
        check(call(sock, "POST", "/vm/resume")[0] == 200, "the original: resume")
        time.sleep(1)
        g.pump(0.5)
        check(b"vmgenid: notified" not in g.out, "the original was not notified by its snapshot")
        stop(g, sock)

        # Two clones at once from the one snapshot.
        for name in ("c1", "c2"):
            s = os.path.join(tmp, name + ".sock")
            clones.append((Guest([microvm, "-v", "--restore", snap, "--api-sock", s, "--timeout", "300"]), s))
        ids = []
        for i, (c, s) in enumerate(clones):
            m = wait_re(c, NOTIFIED_RE, 120)
            check(m is not None and m.group(1) == b"1", f"clone {i + 1}: notified once ({c.out!r})")
            ids.append(m.group(2).decode())
            check(b"vmgenid: id " not in c.out, f"clone {i + 1}: did not boot again")
            check(f"VM generation ID {ids[-1]} (restore)".encode() in c.err and
                  b"a new VM generation ID" in c.err, f"clone {i + 1}: microvm logged the new ID ({c.err[-400:]!r})")
        check(ids[0] != parent and ids[1] != parent, f"each clone's ID differs from the original's ({ids} vs {parent})")
        check(ids[0] != ids[1], f"the two clones' IDs differ ({ids})")
        check(ids[0] != "0" * 32 and ids[1] != "0" * 32, "no clone's ID is zero")
        # The ID in the clone's memory is the new one: a snapshot of it holds that.
        c1, s1 = clones[0]
        snapshot(s1, snap_c1, "clone 1")
        check(memory_id(snap_c1) == ids[0], f"clone 1's snapshot holds its new ID ({memory_id(snap_c1)})")
        for i, (c, s) in enumerate(clones):
            c.pump(0.5)
            check(b"vmgenid: notified 2" not in c.out, f"clone {i + 1}: one notification per restore")
            stop(c, s)
    finally:
        for p in [g] + [c for c, _ in clones]:
            if p.p.poll() is None:
                p.p.kill()
                p.p.wait()
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
