#!/usr/bin/env python3
"""jail_test.py - --jail DIR, --user and --cgroup on a running test guest (docs/jail.md).

jail: a guest running blk.seq under --jail DIR --user UID:GID --api-sock DIR/api.sock. From
outside: the VMM (the supervisor's child) is PID 1 of its own PID namespace; its mount, PID,
IPC and UTS namespaces differ from ours, its network namespace does not; /proc/PID/root is
DIR (same inode, lists only DIR's contents) and its cwd too; it runs as UID with core dumps
off and tight open-file and process limits. The API answers on DIR/api.sock; a snapshot to
"snap" and "/snap2" lands in DIR, a path outside DIR does not exist for it (500). A restore
of that snapshot into a second jail goes on from where the original stopped; POST /vm/stop
ends it with 0 and removes the socket. With --netns, the VMM and its new tap are in that
network namespace; SIGTERM to the supervisor reaches the VMM (143, its own line).

cgroup: a guest touching 200 MiB under memory.max=48M is killed by the OOM killer: microvm
exits 125 with one line, the group it made is gone; the next VM in the same group (made
again, here with --jail too) runs: its VMM is in the group with the limits written, the
supervisor is not; it exits 0 and the group is removed.

  jail_test.py MICROVM GUEST_ELF jail|cgroup

Exit 77 (skip) without /dev/kvm, root, namespaces or (cgroup) cgroup v2 with the memory
controller. Stdlib only."""
import os
import signal
import subprocess
import sys
import tempfile
import time

from api_test import Guest, call, check, skip_without_kvm
from snapshot_test import N, READS, drain, restore, seq_lines

UID = 64123          # a uid of its own: RLIMIT_NPROC counts every process of the uid


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def vmm_pid(sup):
    """The supervisor's child (the VMM), as the host sees it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{sup}/task/{sup}/children") as f:
                kids = f.read().split()
        except FileNotFoundError:
            kids = [p for p in os.listdir("/proc") if p.isdigit() and
                    open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(sup)]
        if kids:
            return int(kids[0])
        time.sleep(0.1)
    raise AssertionError(f"no child of the supervisor {sup}")


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1:]
    return []


def limits(pid):
    out = {}
    with open(f"/proc/{pid}/limits") as f:
        for line in f.readlines()[1:]:
            name = line[:26].strip()
            out[name] = line[26:].split()[0]
    return out


def make_jail(path):
    os.mkdir(path, 0o700)
    os.chown(path, UID, UID)
    return path


def test_jail(microvm, guest, tmp):
    jail = make_jail(os.path.join(tmp, "jail"))
    sock = os.path.join(jail, "api.sock")
    disk = os.path.join(tmp, "d.img")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    user = ["--user", f"{UID}:{UID}"]
    g = Guest([microvm, "--kernel", guest, "--disk", disk, "--mem", "64M", "--jail", jail, *user,
               "--api-sock", sock, "--timeout", "300", "--cmdline", f"blk.seq=vda:{N}:{READS}", "-v"])
    try:
        g.wait_out("blk: seq 40\n", timeout=120)
        pid = vmm_pid(g.p.pid)
        check(status_field(pid, "NSpid") == [str(pid), "1"], f"the VMM is PID 1 of its own PID namespace "
              f"(NSpid {status_field(pid, 'NSpid')})")
        for ns in ("mnt", "pid", "ipc", "uts"):
            mine, its = os.readlink(f"/proc/self/ns/{ns}"), os.readlink(f"/proc/{pid}/ns/{ns}")
            check(mine != its, f"its {ns} namespace is its own ({its} vs ours {mine})")
        check(os.readlink(f"/proc/self/ns/net") == os.readlink(f"/proc/{pid}/ns/net"),
              "its network namespace is ours (no --netns)")
        root = f"/proc/{pid}/root"
        rs, js = os.stat(root), os.stat(jail)
        check((rs.st_dev, rs.st_ino) == (js.st_dev, js.st_ino), "/proc/PID/root is the jail directory")
        check(sorted(os.listdir(root)) == sorted(os.listdir(jail)) == ["api.sock"],
              f"/proc/PID/root lists only the jail's contents ({sorted(os.listdir(root))})")
        check(not os.path.exists(os.path.join(root, "proc")) and not os.path.exists(os.path.join(root, "dev")),
              "no /proc or /dev in the jail")
        cs = os.stat(f"/proc/{pid}/cwd")
        check((cs.st_dev, cs.st_ino) == (js.st_dev, js.st_ino), "its working directory is the jail's root")
        check(status_field(pid, "Uid") == [str(UID)] * 4 and status_field(pid, "Gid") == [str(UID)] * 4,
              f"it runs as {UID}:{UID}")
        lim = limits(pid)
        check(lim["Max core file size"] == "0", "core dumps off")
        check(int(lim["Max open files"]) < 200, f"a tight open-file limit ({lim['Max open files']})")
        check(lim["Max processes"] == str(1 + 16), f"processes: vCPUs + 16 ({lim['Max processes']})")
        check(b"--jail " + jail.encode() + b": the VMM now sees only this directory" in g.err,
              "microvm says it entered the jail")

        status, vm = call(sock, "GET", "/vm")
        check(status == 200 and vm["state"] == "running", f"the API answers on the socket in the jail ({vm})")
        check(call(sock, "POST", "/vm/pause")[0] == 200, "pause")
        drain(g)
        prefix = g.out
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "snap"}')
        check(status == 200, f"snapshot to 'snap' in the jail: 200 ({r})")
        snap = os.path.join(jail, "snap")
        check(sorted(os.listdir(snap)) == ["memory", "state"] and os.stat(snap).st_uid == UID,
              "the snapshot is in DIR/snap, made by the --user")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "/snap2", "compress": true}')
        check(status == 200 and os.path.exists(os.path.join(jail, "snap2", "memory.z")),
              f"an absolute path in the API is inside the jail: DIR/snap2 ({r})")
        outside = os.path.join(tmp, "outside")
        status, r = call(sock, "POST", "/vm/snapshot", '{"path": "%s"}' % outside)
        check(status == 500 and not os.path.exists(outside),
              f"a host path outside the jail does not exist for the VMM: 500, nothing written ({r})")
        check(call(sock, "POST", "/vm/resume")[0] == 200, "resume")
        status, r = call(sock, "POST", "/vm/stop")
        rc = g.p.wait(timeout=120)
        g.pump(0.2)
        check(rc == 0, f"POST /vm/stop: the supervisor exits with the VMM's 0 ({rc}; {g.err[-300:]!r})")
        check(not os.path.exists(sock), "the socket was removed at exit (from inside the jail)")
        check(not os.path.exists(f"/proc/{pid}"), "the VMM is gone")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()

    # The snapshot (a host path, opened before the jail) restored into a second jail. Made by the
    # --user, it is the host's once the host takes it over: microvm reads only snapshot
    # directories of its own user (or root's).
    subprocess.run(["chown", "-R", "0:0", snap], check=True)
    jail2 = make_jail(os.path.join(tmp, "jail2"))
    r = restore(microvm, snap, prefix, disk, "restore into a jail", extra=["--jail", jail2, *user])
    check(os.listdir(jail2) == [], "the second jail is left empty")

    # --netns: the tap is made in that namespace, and the VMM lives in it. Then SIGTERM to the
    # supervisor (as a service manager sends it) reaches the VMM.
    ns = f"microvm-jail-{os.getpid()}"
    netns = []
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode == 0:
        netns = ["--netns", f"/run/netns/{ns}", "--net", "tap=mvjail0"]
    else:
        print("note: no 'ip netns add' here: --netns not checked")
    jail3 = make_jail(os.path.join(tmp, "jail3"))
    g = Guest([microvm, "--kernel", guest, "--jail", jail3, *user, "--timeout", "300", *netns,
               "--cmdline", "action=echo"])
    try:
        g.wait_out("echo: ready", timeout=120)
        pid = vmm_pid(g.p.pid)
        if netns:
            check(os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino,
                  "--netns: the VMM is in the given network namespace")
            check(subprocess.run(["ip", "-n", ns, "link", "show", "mvjail0"], capture_output=True).returncode == 0
                  and subprocess.run(["ip", "link", "show", "mvjail0"], capture_output=True).returncode != 0,
                  "--netns: its tap was made there, not in ours")
        g.p.send_signal(signal.SIGTERM)
        rc = g.p.wait(timeout=60)
        g.pump(0.2)
        check(rc == 143 and b"received Terminated, stopping the VM" in g.err and not os.path.exists(f"/proc/{pid}"),
              f"SIGTERM to the supervisor stops the VM in the jail: 143 ({rc}; {g.err[-300:]!r})")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()
        if netns:
            subprocess.run(["ip", "netns", "del", ns])


def cg_usable():
    try:
        with open("/proc/self/mounts") as f:
            if not any(l.split()[1] == "/sys/fs/cgroup" and l.split()[2] == "cgroup2" for l in f):
                return "no cgroup v2 hierarchy at /sys/fs/cgroup"
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            ctl = f.read().split()
    except OSError as e:
        return f"cgroup v2: {e}"
    for c in ("memory", "pids", "cpu"):
        if c not in ctl:
            return f"cgroup v2 has no {c} controller here"
    return None


def test_cgroup(microvm, guest, tmp):
    why = cg_usable()
    if why:
        skip(why)
    top = f"microvm-test-{os.getpid()}"
    group = f"{top}/vm"
    host = f"/sys/fs/cgroup/{group}"
    spec = f"{group},memory.max=48M,pids.max=64,cpu.max=50000/100000"
    r = subprocess.run([microvm, "--kernel", guest, "--mem", "256M", "--cgroup", spec, "--timeout", "300",
                        "--cmdline", "bench.touch=200"], capture_output=True, timeout=360)
    lines = r.stderr.decode().strip().splitlines()
    check(r.returncode == 125 and lines and "OOM killer ended it" in lines[-1] and "memory.max 50331648" in lines[-1],
          f"a guest touching 200 MiB under memory.max=48M: killed, exit 125, one line ({r.returncode}: "
          f"{lines[-2:]})")
    check(not os.path.exists(f"/sys/fs/cgroup/{top}"), "the groups microvm made are removed")

    jail = make_jail(os.path.join(tmp, "cgjail"))
    g = Guest([microvm, "--kernel", guest, "--mem", "64M", "--cgroup", spec, "--jail", jail,
               "--user", f"{UID}:{UID}", "--timeout", "300", "--cmdline", "action=echo"])
    try:
        g.wait_out("echo: ready", timeout=120)
        pid = vmm_pid(g.p.pid)
        with open(f"{host}/cgroup.procs") as f:
            procs = [int(x) for x in f.read().split()]
        others = [p for p in procs if p != pid]
        # KVM attaches its per-VM kernel thread (kvm-nx-lpage-recovery) to the VMM's groups.
        kthreads = [p for p in others if int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[6])
                    & 0x00200000]
        check(pid in procs and g.p.pid not in procs and others == kthreads,
              f"the VMM (and KVM's kernel threads for it), not the supervisor, is in the group ({procs}, VMM "
              f"{pid}, supervisor {g.p.pid}, kernel threads {kthreads})")
        with open(f"/proc/{pid}/cgroup") as f:
            check(f.read().strip() == f"0::/{group}", "all of the VMM is in the group")
        vals = {k: open(f"{host}/{k}").read().strip() for k in ("memory.max", "pids.max", "cpu.max")}
        check(vals == {"memory.max": str(48 << 20), "pids.max": "64", "cpu.max": "50000 100000"},
              f"the limits are written ({vals})")
        cur = int(open(f"{host}/memory.current").read())
        check(cur > 1 << 20, f"the VMM's memory counts against the group ({cur} bytes)")
        g.send("quit\n")
        rc = g.p.wait(timeout=60)
        g.pump(0.2)
        check(rc == 0 and b"echo: bye" in g.out, f"the next VM in the group runs and exits 0 ({rc}; {g.err[-300:]!r})")
        check(not os.path.exists(f"/sys/fs/cgroup/{top}"), "its groups are removed at exit")
    finally:
        if g.p.poll() is None:
            g.p.kill()
            g.p.wait()
        for d in (host, f"/sys/fs/cgroup/{top}"):
            if os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def main():
    microvm, guest, which = sys.argv[1], sys.argv[2], sys.argv[3]
    skip_without_kvm()
    if os.geteuid() != 0:
        skip("--jail and --cgroup need root")
    r = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--ipc", "--uts", "true"], capture_output=True)
    if r.returncode != 0:
        skip(f"no new namespaces here (unshare: {r.stderr.decode().strip()})")
    # Jailed, the VMM has no /proc: the leak checker of a sanitizer build could not run there.
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    tmp = tempfile.mkdtemp(prefix="microvm-jail-")
    os.chmod(tmp, 0o755)
    (test_jail if which == "jail" else test_cgroup)(microvm, guest, tmp)
    subprocess.run(["rm", "-rf", tmp])
    print("PASS")


if __name__ == "__main__":
    main()
