#!/usr/bin/env python3
"""bench/vm.py - microvm against QEMU's `microvm` machine on the same /dev/kvm: start-up,
memory per VM, VM-exit handling, and a Linux boot (docs/benchmarks.md, tables 1-3 and 6); and
microvm's restore from a snapshot against its own cold boot (table 7: lazy restore, --verify-memory,
--paused, the working set with a cold page cache, clones at scale, each on its own disk overlay
over one base image and its own tap); Debian to its login prompt (table 8); real workloads in a
Debian guest (table 9: CI latency of a --run script, fio and iperf3 in the guest against the host).

Usage: bench/vm.py [--smoke | --quick] [--out DIR] [--reps N] [--vms N] [--only LIST]
                   [--restore-sizes RAM:WRITTEN,...] [--clones N,...]
  LIST: comma-separated of startup, memory, exits, linux, debian, workload, restore (default: all;
  --smoke: all but linux, debian and workload); ci: table 9's CI latency part alone

Needs /dev/kvm (exit status 77 without it: bench/run then runs this script in
scripts/nested-kvm), build/vmm/microvm and build/tests/guest/guest-pvh.elf (bench/run
builds them), qemu-system-x86_64, and for `linux` the images of
scripts/guest-image (MICROVM_LINUX_GUEST or build/linux-guest), for `debian` those of
scripts/debian-guest (MICROVM_DEBIAN_GUEST or build/debian-guest; `workload` also the busybox
rootfs.ext4 of scripts/guest-image, fio and iperf3 on the host), and root (/dev/net/tun, ip) for the
clones' taps (without, the clones run without a NIC). Both VMMs boot
the same files with the same RAM and vCPUs; runs alternate (microvm, QEMU,
microvm, ...) after one warm-up run each. Writes DIR/vm-results.json (every
run) and prints the tables. Nothing fails because it is slow; a VMM that does
not behave (no output, a wrong exit status) is a failure (exit status 1).
"""
import argparse
import atexit
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "linux"))
from e2e import Boot, api_call, kvm_usable  # noqa: E402  (tests/linux/e2e.py, tests/guest/run.py)
BUILD = os.path.join(ROOT, "build")
MICROVM = os.path.join(BUILD, "vmm", "microvm")
GUEST = os.path.join(BUILD, "tests", "guest", "guest-pvh.elf")
FLOOR = os.path.join(BUILD, "bench", "floor")   # table 1's raw-KVM floor (bench/floor.c)
QEMU = "qemu-system-x86_64"
SKIP = 77
EXIT_TRIPLE_FAULT = 120          # microvm's status for a guest triple fault (docs/cli-runs.md)
failures = []


def log(msg):
    print(f"bench-vm: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- one VM run

class Run(Boot):
    """A VMM as a child (tests/linux/e2e.py's Boot: timed serial and log lines, the first serial
    byte's time), plus what the tables read off a finished run."""

    def finish(self, timeout):
        """Wait for the exit; a VMM still running after timeout seconds is killed (None)."""
        code = self.wait(timeout)
        if code is None:
            self.kill()
        return code

    def line_time(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return next((t for t, ln in self.out if rx.search(ln)), None)

    def tail(self, n=8):
        with self.cond:
            return "\n".join([ln for _, ln in self.out[-n:]] + [ln for _, ln in self.err[-n:]])


def microvm_cmd(kernel, cmdline, mem, disks=(), extra=()):
    cmd = [MICROVM, "-q", "--kernel", kernel, "--mem", f"{mem}M", "--cmdline", cmdline]
    for d in disks:
        cmd += ["--disk", d]
    return cmd + list(extra)


def qemu_cmd(kernel, cmdline, mem, disks=(), extra=()):
    """QEMU's microvm machine with KVM, the same kernel, RAM and vCPU count; serial on stdout,
    no firmware devices beyond the machine's own (-nodefaults), no reboot on a triple fault."""
    cmd = [QEMU, "-M", "microvm,acpi=on", "-accel", "kvm", "-cpu", QEMU_CPU[0], "-smp", "1", "-m", f"{mem}M",
           "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-serial", "stdio",
           "-no-reboot", "-global", "virtio-mmio.force-legacy=false", "-kernel", kernel, "-append", cmdline]
    for i, d in enumerate(disks):
        cmd += ["-drive", f"file={d},if=none,id=d{i},format=raw,cache=none,aio=io_uring",
                "-device", f"virtio-blk-device,drive=d{i}"]
    return cmd + list(extra)


VMMS = {"microvm": microvm_cmd, "qemu-microvm": qemu_cmd}
QEMU_CPU = ["host"]


def qemu_probe(timeout):
    """Can QEMU run a VM on this /dev/kvm? On a KVM that refuses the host's IA32_ARCH_CAPABILITIES
    MSR (the kind that emulates guest kernel code), `-cpu host` aborts at start ("failed to set MSR
    0x10a"); `arch-capabilities=off` then works. Returns None, or why QEMU cannot be the peer."""
    why = None
    for cpu in ("host", "host,arch-capabilities=off"):
        QEMU_CPU[0] = cpu
        r = Run(qemu_cmd(GUEST, "action=triple-fault", 128))
        code = r.finish(timeout)
        if code == END_STATUS["qemu-microvm"] and r.line_time(r"^microvm test guest") is not None:
            if cpu != "host":
                log(f"QEMU runs with -cpu {cpu} on this KVM (-cpu host: {why})")
            return None
        why = r.tail(2).replace("\n", " | ")
    return why
# What each VMM's process does when the guest triple-faults (the way every test-guest run here ends,
# since QEMU has no exit-status port): microvm exits 120, QEMU with -no-reboot exits 0.
END_STATUS = {"microvm": EXIT_TRIPLE_FAULT, "qemu-microvm": 0}


def alternate(reps, warm, fn, names, runs, table):
    """warm-up once each, then reps rounds of A B A B ...; returns {name: [result or None]}.
    Each result of a round (not of the warm-up) is also recorded in runs for the JSON."""
    if warm:
        for n in names:
            fn(n)
    out = {n: [] for n in names}
    for rep in range(reps):
        for n in names:
            t = time.monotonic()
            res = fn(n)
            out[n].append(res)
            if res:
                runs.append({"table": table, "candidate": n, **res})
            log(f"  round {rep + 1}/{reps} {n}: {time.monotonic() - t:.1f} s")
    return out


def summarize(table, case, per, metric, unit, lower_is_better=True, ref="qemu-microvm"):
    rows = []
    for name, vals in per.items():
        v = [r[metric] for r in vals if r and r.get(metric) is not None]
        if not v:
            continue
        row = {"table": table, "case": case, "candidate": name, "metric": metric, "unit": unit, "n": len(v),
               "median": statistics.median(v), "min": min(v), "max": max(v)}
        if name != ref and ref in per:
            ratios = [a[metric] / b[metric] for a, b in zip(vals, per[ref])
                      if a and b and a.get(metric) is not None and b.get(metric)]
            if ratios:
                row.update(ratio_median=statistics.median(ratios), ratio_min=min(ratios),
                           ratio_max=max(ratios), ratio_to=ref, lower_is_better=lower_is_better)
        rows.append(row)
    return rows


def check(ok, what, run=None):
    if not ok:
        failures.append(what)
        log(f"FAILED: {what}" + (f"\n{run.tail()}" if run else ""))
    return ok


# --------------------------------------------------------------------------- 1. start-up

def bench_startup(reps, warm, runs, timeout):
    """exec -> first serial byte, and exec -> process exit, for the test guest (PVH ELF), which prints
    its banner and triple-faults at once; alternating with QEMU and with the raw-KVM floor
    (bench/floor.c: one VM, one slot, one vCPU, real-mode code that writes the guest's first byte
    to the serial port and halts). microvm's own --stats=json adds its start-up milestones."""
    cmdline = "action=triple-fault"
    # (stats key, row label): microvm's phases in order, each since its main() (docs/cli-runs.md).
    phases = [("loaded", "guest loaded"), ("vm_created", "KVM VM created"), ("vcpus_ready", "vCPUs ready"),
              ("sandbox_ready", "sandbox ready"), ("guest_start", "first KVM_RUN")]

    def one(name):
        if name == "floor":
            r = Run([FLOOR, "--stats", "m"])
            code = r.finish(timeout)
            if not check(code == 0 and r.first_byte is not None, f"startup/floor: exit status {code}", r):
                return None
            st = r.stats() or {}
            return {"first_output_ms": r.first_byte * 1e3, "exit_ms": r.elapsed * 1e3,
                    "guest_start_ms": st.get("ms", {}).get("guest_start")}
        extra = ["--stats=json"] if name == "microvm" else []
        r = Run(VMMS[name](GUEST, cmdline, 128, extra=extra))
        code = r.finish(timeout)
        if not check(code == END_STATUS[name], f"startup/{name}: exit status {code}, expected {END_STATUS[name]}", r):
            return None
        if not check(r.line_time(r"^microvm test guest: image pvh") is not None, f"startup/{name}: no banner", r):
            return None
        res = {"first_output_ms": r.first_byte * 1e3, "exit_ms": r.elapsed * 1e3}
        if name == "microvm":
            st = r.stats()
            ms = st["ms"] if st else {}
            res["guest_start_ms"] = ms.get("guest_start")
            res["vmm_first_output_ms"] = ms.get("first_output")
            for key, _ in phases[:-1]:
                res[f"{key}_ms"] = ms.get(key)
            # exec -> main(): what the bench saw minus what microvm counted from its main().
            if ms.get("first_output") is not None:
                res["exec_main_ms"] = res["first_output_ms"] - ms["first_output"]
        return res

    names = list(VMMS) + (["floor"] if os.path.isfile(FLOOR) else [])
    if "floor" not in names:
        log(f"no {FLOOR} (ninja -C build): table 1 without the floor")
    per = alternate(reps, warm, one, names, runs, "startup")
    rows = []
    for case, metric in (("exec -> first serial byte", "first_output_ms"), ("exec -> VMM exited", "exit_ms")):
        rows += summarize("startup", case, per, metric, "ms")
        if "floor" in per:
            rows += [r for r in summarize("startup", case + ", to the floor", per, metric, "ms", ref="floor")
                     if r["candidate"] == "microvm"]
    # microvm's start-up phase by phase (ms since exec: main() estimated as above), then the floor's KVM_RUN.
    rows += summarize("startup", "exec -> main() (bench minus --stats)", {"microvm": per["microvm"]},
                      "exec_main_ms", "ms")
    for key, label in phases:
        rows += summarize("startup", f"main() -> {label} (--stats)", {"microvm": per["microvm"]}, f"{key}_ms", "ms")
    if "floor" in per:
        rows += summarize("startup", "main() -> first KVM_RUN (--stats)", {"floor": per["floor"]}, "guest_start_ms", "ms")
    return rows


# --------------------------------------------------------------------------- 2. memory

def smaps(pid, guest_bytes):
    """RSS of the process, and RSS of its guest-RAM mapping: the mapping of at least the guest's
    size with the most resident memory (microvm maps RAM once; QEMU once per RAM block)."""
    total, guest, private, pss = 0, 0, 0, 0
    cur_size, cur_rss = 0, 0
    best = 0

    def close():
        nonlocal best
        if cur_size >= guest_bytes and cur_rss > best:
            best = cur_rss

    with open(f"/proc/{pid}/smaps") as f:
        for ln in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", ln)
            if m:
                close()
                cur_size, cur_rss = int(m.group(2), 16) - int(m.group(1), 16), 0
            elif ln.startswith("Rss:"):
                kb = int(ln.split()[1]) << 10
                cur_rss = kb
                total += kb
            elif ln.startswith("Pss:"):
                pss += int(ln.split()[1]) << 10
            elif ln.startswith("Private_Clean:") or ln.startswith("Private_Dirty:"):
                private += int(ln.split()[1]) << 10
    close()
    guest = best
    return {"rss": total, "guest_rss": guest, "private": private, "pss": pss,
            "overhead": total - guest, "private_overhead": private - guest, "pss_overhead": pss - guest}


def mem_available():
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemAvailable:"):
                return int(ln.split()[1]) << 10
    return 0


IDLE = r"^echo: ready"      # the test guest's action=echo ends in `hlt`, waiting for serial input


def bench_memory(reps, warm, runs, nvms, timeout):
    """One idle VM (128 MiB, the test guest waiting in hlt): the VMM's RSS minus the RSS of its
    guest-RAM mapping. Then nvms idle VMs of 32 MiB at once per VMM: MemAvailable before minus
    after, per VM (host memory of every kind: the processes, KVM's own, page tables)."""
    def one(name):
        mem = 128
        r = Run(VMMS[name](GUEST, "action=echo", mem))
        try:
            if not check(r.wait_for(IDLE, timeout) is not None, f"memory/{name}: guest never idle", r):
                return None
            time.sleep(0.3)
            m = smaps(r.proc.pid, mem << 20)
        finally:
            r.kill()
        res = {k: v / 1048576 for k, v in m.items()}
        return res

    per = alternate(reps, warm, one, list(VMMS), runs, "memory")
    rows = summarize("memory", "RSS - guest RAM touched, 1 VM (128 MiB)", per, "overhead", "MiB")
    rows += summarize("memory", "private - guest RAM touched, 1 VM", per, "private_overhead", "MiB")
    rows += summarize("memory", "PSS - guest RAM touched, 1 VM", per, "pss_overhead", "MiB")
    rows += summarize("memory", "guest RAM touched, 1 VM", per, "guest_rss", "MiB")

    if nvms:
        per_many = {}
        for name in VMMS:
            time.sleep(1)
            before = mem_available()
            vms = []
            try:
                for _ in range(nvms):
                    vms.append(Run(VMMS[name](GUEST, "action=echo", 32)))
                idle = [v for v in vms if v.wait_for(IDLE, timeout * 4) is not None]
                # A VM that ended or hung on the way is reported (its status and last lines) and left
                # out of the figures; the VMM only fails the run when fewer than 90% got there.
                lost = [v for v in vms if v not in idle]
                for v in lost:
                    v.kill()
                    log(f"memory/{name}: a VM of {nvms} did not reach '{IDLE[1:]}' (exit status "
                        f"{v.proc.returncode}); its output:\n{v.tail(4)}")
                if check(len(idle) >= 0.9 * nvms, f"memory/{name}: only {len(idle)} of {nvms} VMs idle"):
                    time.sleep(1)
                    used = (before - mem_available()) / len(idle) / 1048576
                    m = [smaps(v.proc.pid, 32 << 20) for v in idle]
                    pss = statistics.mean(x["pss"] for x in m) / 1048576
                    per_many[name] = [{"host_per_vm": used, "pss_per_vm": pss}]
                    runs.append({"table": "memory-many", "candidate": name, "vms": nvms, "idle": len(idle),
                                 "lost": [{"status": v.proc.returncode, "tail": v.tail(4)} for v in lost],
                                 "host_per_vm_mib": used, "pss_per_vm_mib": pss})
            finally:
                for v in vms:
                    v.kill()
        rows += summarize("memory", f"host MemAvailable drop per VM, {nvms} VMs (32 MiB)", per_many,
                          "host_per_vm", "MiB")
        rows += summarize("memory", f"PSS per VMM process, {nvms} VMs (32 MiB)", per_many, "pss_per_vm", "MiB")
    return rows


# --------------------------------------------------------------------------- 3. exits

# Table 3's third candidate: microvm without its seccomp filters, so the filter's share of an exit shows.
NO_SECCOMP = "microvm --no-seccomp"


def exit_candidates():
    """The VMMs of table 3: those of VMMS, then microvm with --no-seccomp (same exit status)."""
    cands = dict(VMMS)
    cands[NO_SECCOMP] = lambda *a, **kw: microvm_cmd(*a, **kw) + ["--no-seccomp"]
    return cands


def bench_exits(reps, warm, runs, n, timeout, tmp):
    """The test guest's bench.* loops (tests/guest/bench.c): n RAM writes (no exit, the guest's own
    cost), n port writes to the UART scratch register, n writes to a virtio-mmio register (QueueSel
    of the disk's window); each loop timed by the host from its start and done lines. Then
    blk.bench (tests/guest/blk.c): rounds of 8 one-sector reads in flight, one notify each, polled:
    the virtio-blk figure the test guest reaches end to end (notify, I/O thread, host read, used ring). The VMM's
    share of an exit is the port (MMIO) loop's time minus the no-exit loop's, per write: both
    spans include printing one done line, which cancels out. The no-exit loop's own cost per
    iteration comes from the guest's TSC counts (its span is mostly that line). microvm also runs
    with --no-seccomp (exit_candidates): the filter's share of an exit."""
    disk = os.path.join(tmp, "exits.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    batches = max(10, n // 40)
    cmdline = f"bench.loop={n} bench.pio={n} bench.mmio={n} blk.bench=vda:{batches} action=triple-fault"

    def span(r, what):
        a, b = r.line_time(rf"^bench: {what} {n} start$"), r.line_time(rf"^bench: {what} {n} done")
        return None if a is None or b is None else b - a

    def blk_span(r):
        reqs = batches * 8
        a, b = r.line_time(rf"^bench: blk {reqs} start$"), r.line_time(rf"^bench: blk {reqs} done")
        return None if a is None or b is None else b - a

    def cycles(r, what):
        for _, ln in r.out:
            m = re.match(rf"^bench: {what} {n} done, (\d+) TSC cycles$", ln)
            if m:
                return int(m.group(1))
        return None

    cands = exit_candidates()

    def one(name):
        r = Run(cands[name](GUEST, cmdline, 128, disks=[disk]))
        code = r.finish(timeout)
        if not check(code == END_STATUS.get(name, END_STATUS["microvm"]), f"exits/{name}: exit status {code}", r):
            return None
        t = {w: span(r, w) for w in ("loop", "pio", "mmio")}
        t["blk"] = blk_span(r)
        c = {w: cycles(r, w) for w in ("loop", "pio")}
        if not check(all(v is not None for v in list(t.values()) + list(c.values())) and c["pio"] > 0,
                     f"exits/{name}: loop lines missing", r):
            return None
        res = {"loop_s": t["loop"], "pio_s": t["pio"], "mmio_s": t["mmio"],
               "pio_per_s": n / t["pio"], "mmio_per_s": n / t["mmio"],
               "pio_vmm_us": max(t["pio"] - t["loop"], 0) / n * 1e6,
               "mmio_vmm_us": max(t["mmio"] - t["loop"], 0) / n * 1e6,
               "loop_us": c["loop"] / c["pio"] * t["pio"] / n * 1e6,
               "blk_per_s": batches * 8 / t["blk"], "n": n}
        return res

    per = alternate(reps, warm, one, list(cands), runs, "exits")
    rows = summarize("exits", f"port writes per second ({n})", per, "pio_per_s", "/s", lower_is_better=False)
    rows += summarize("exits", f"MMIO writes per second ({n})", per, "mmio_per_s", "/s", lower_is_better=False)
    rows += summarize("exits", "port write minus the no-exit loop", per, "pio_vmm_us", "us")
    rows += summarize("exits", "MMIO write minus the no-exit loop", per, "mmio_vmm_us", "us")
    rows += summarize("exits", "no-exit loop iteration (guest only)", per, "loop_us", "us")
    rows += summarize("exits", f"test guest virtio-blk reads per second, 8 x 512 B in flight, polled ({batches * 8})",
                      per, "blk_per_s", "/s", lower_is_better=False)
    return rows


# --------------------------------------------------------------------------- 6. Linux

def perf_exits():
    """perf stat with KVM's tracepoints, if perf can read them here (counts both VMMs alike)."""
    if shutil.which("perf") is None:
        return None
    if not os.path.isdir("/sys/kernel/tracing/events/kvm"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
                       stderr=subprocess.DEVNULL, check=False)
    if not os.path.isdir("/sys/kernel/tracing/events/kvm"):
        return None
    return ["kvm:kvm_exit", "kvm:kvm_userspace_exit", "kvm:kvm_pio", "kvm:kvm_mmio"]


def bench_linux(reps, warm, runs, images, timeout, tmp):
    """The project's Linux guest (scripts/guest-image: bzImage, rootfs-spin.ext4 with the /spin init
    that faults after ~1 s; the kernel panics and pvpanic ends the VM), 256 MiB, 1 vCPU. Times from
    exec: first serial byte, "Run /spin as init process", the VMM's exit. VM exits by kind from
    perf's KVM tracepoints where available (both VMMs), and microvm's --stats. QEMU gets the command
    line the kernel printed under microvm (`Command line: ...`): microvm adds options for the host
    (tsc_early_khz=, which a kernel without kvmclock needs to boot in time; those of
    docs/host-quirks.md where guest kernel code is emulated), and QEMU's run needs the same."""
    kernel = os.path.join(images, "bzImage")
    spin = os.path.join(images, "rootfs-spin.ext4")
    cmdline = "console=ttyS0 earlyprintk=serial panic=-1 init=/spin root=/dev/vda rw"
    events = perf_exits()
    status = {"microvm": 122, "qemu-microvm": 1}   # pvpanic: microvm 122; QEMU -action panic=exit-failure: 1
    seen = {"cmdline": None}

    def one(name):
        root = os.path.join(tmp, f"linux-{name}.img")
        shutil.copyfile(spin, root)
        extra = ["--stats=json"] if name == "microvm" else ["-device", "pvpanic", "-action", "panic=exit-failure"]
        if name == "microvm":
            cmd = VMMS[name](kernel, cmdline, 256, disks=[root], extra=extra)
        elif not check(seen["cmdline"] is not None, "linux/qemu-microvm: no kernel command line from microvm's run"):
            return None
        else:
            cmd = VMMS[name](kernel, seen["cmdline"], 256, disks=[root], extra=extra)
        stat_file = None
        if events:
            stat_file = os.path.join(tmp, f"perf-{name}.csv")
            cmd = ["perf", "stat", "-x", ",", "-o", stat_file, "-e", ",".join(events), "--"] + cmd
        r = Run(cmd)
        code = r.finish(timeout)
        if not check(code == status[name], f"linux/{name}: exit status {code}, expected {status[name]}", r):
            return None
        init = r.line_time(r"Run /spin as init process")
        if name == "microvm":
            m = next((re.search(r"\] Command line: (.*)$", ln) for _, ln in r.out
                      if "] Command line: " in ln), None)
            seen["cmdline"] = m.group(1).strip() if m else None
        if not check(init is not None, f"linux/{name}: init never started", r):
            return None
        res = {"first_output_ms": r.first_byte * 1e3, "init_ms": init * 1e3, "exit_ms": r.elapsed * 1e3}
        if stat_file and os.path.exists(stat_file):
            for ln in open(stat_file):
                f = ln.strip().split(",")
                if len(f) > 2 and f[2].startswith("kvm:") and f[0].isdigit():
                    res[f[2]] = int(f[0])
        if name == "microvm":
            st = r.stats()
            if st:
                res["microvm_exits"] = {k: v for k, v in st["exits"].items() if v}
        return res

    per = alternate(reps, warm, one, list(VMMS), runs, "linux")
    rows = summarize("linux", "exec -> first serial byte", per, "first_output_ms", "ms")
    rows += summarize("linux", "exec -> Run /spin as init process", per, "init_ms", "ms")
    rows += summarize("linux", "exec -> VMM exited (panic, pvpanic)", per, "exit_ms", "ms")
    for ev in events or []:
        rows += summarize("linux", f"{ev} events (perf)", per, ev, "")
    if not events:
        log("linux: perf cannot read KVM's tracepoints here: VM exits only from microvm's --stats")
    return rows


# --------------------------------------------------------------------------- 8. Debian to its login prompt

def bench_debian(reps, warm, runs, deb, timeout, tmp):
    """Debian's cloud kernel, its own initramfs and the Debian 12 systemd image of
    scripts/debian-guest (docs/debian-guest.md), 1 GiB, 1 vCPU, a fresh sparse copy of the image
    per run, booted by both VMMs with the same files and command line. Times from exec: the
    first serial byte, the serial console's autologin line (`login: root (automatic login)`),
    and systemd's own breakdown read inside the guest with systemd-analyze (kernel, initrd,
    userspace); then `systemctl poweroff` and the time until the VMM exited."""
    from debian import Console, HOSTNAME    # tests/linux/debian.py
    kernel, initrd = os.path.join(deb, "vmlinuz"), os.path.join(deb, "initrd.img")
    cmdline = f"console=ttyS0 root=/dev/vda rw net.ifnames=0 systemd.hostname={HOSTNAME}"
    seen = {"cmdline": None}
    rx = re.compile(r"Startup finished in (?:([\d.]+)(m?s) \(kernel\))?(?: \+ ([\d.]+)(m?s) \(initrd\))?"
                    r"(?: \+ (?:(\d+)min )?([\d.]+)(m?s) \(userspace\))?")

    def secs(v, unit, mins=None):
        return None if v is None else (float(v) / (1000 if unit == "ms" else 1) + 60 * int(mins or 0))

    def one(name):
        root = os.path.join(tmp, f"debian-{name}.img")
        subprocess.run(["cp", "--sparse=always", os.path.join(deb, "debian.ext4"), root], check=True)
        try:
            if name == "microvm":
                cmd = [MICROVM, "-q", "--kernel", kernel, "--initrd", initrd, "--mem", "1024M",
                       "--disk", root, "--cmdline", cmdline]
            elif not check(seen["cmdline"] is not None, "debian/qemu-microvm: no kernel command line from microvm's run"):
                return None
            else:
                cmd = qemu_cmd(kernel, seen["cmdline"], 1024, disks=[root], extra=["-initrd", initrd])
            r = Run(cmd)
            con = Console(r)
            login = r.wait_for(rf"{HOSTNAME} login: root \(automatic login\)", timeout)
            if not check(login is not None and con.wait_prompt(60), f"debian/{name}: no login prompt", r):
                r.kill()
                return None
            if name == "microvm":
                m = next((re.search(r"\] Command line: (.*)$", ln) for _, ln in r.out if "] Command line: " in ln), None)
                seen["cmdline"] = m.group(1).strip() if m else None
            out = con.run("systemctl is-system-running --wait >/dev/null; systemd-analyze", 120) or []
            m = next((rx.search(ln) for ln in out if "Startup finished" in ln), None)
            res = {"first_output_ms": r.first_byte * 1e3, "login_ms": login[0] * 1e3}
            if m:
                for key, v, unit, mins in (("kernel_ms", m.group(1), m.group(2), None),
                                           ("initrd_ms", m.group(3), m.group(4), None),
                                           ("userspace_ms", m.group(6), m.group(7), m.group(5))):
                    sv = secs(v, unit, mins)
                    if sv is not None:
                        res[key] = sv * 1e3
            else:
                check(False, f"debian/{name}: no systemd-analyze line: {out}")
            t = r.now()
            send_line(r, b"systemctl poweroff\n")
            code = r.finish(120)
            if not check(code == 0, f"debian/{name}: exit status {code} after systemctl poweroff, expected 0", r):
                return None
            res["poweroff_ms"] = (r.elapsed - t) * 1e3
            return res
        finally:
            os.unlink(root)

    per = alternate(reps, warm, one, list(VMMS), runs, "debian")
    rows = summarize("debian", "exec -> first serial byte", per, "first_output_ms", "ms")
    rows += summarize("debian", "exec -> serial console login (autologin line)", per, "login_ms", "ms")
    rows += summarize("debian", "systemd-analyze: kernel", per, "kernel_ms", "ms")
    rows += summarize("debian", "systemd-analyze: initrd", per, "initrd_ms", "ms")
    rows += summarize("debian", "systemd-analyze: userspace", per, "userspace_ms", "ms")
    rows += summarize("debian", "systemctl poweroff -> VMM exited", per, "poweroff_ms", "ms")
    return rows


def send_line(r, data):
    try:
        r.proc.stdin.write(data)
        r.proc.stdin.flush()
    except BrokenPipeError:
        pass


# --------------------------------------------------------------------------- 9. real workloads in a Debian guest

# fio jobs run inside the guest on its data disk and by the host on the same file: (name, rw, bs, depth).
FIO_JOBS = [("randread-4k-qd1", "randread", "4k", 1), ("randread-4k-qd32", "randread", "4k", 32),
            ("randwrite-4k-qd1", "randwrite", "4k", 1), ("randwrite-4k-qd32", "randwrite", "4k", 32),
            ("read-1m-qd4", "read", "1m", 4), ("write-1m-qd4", "write", "1m", 4)]
FIO_SECONDS = 5
DATA_MIB = 256
IPERF_SECONDS = 5
RUN_MAGIC = "MICROVM-RUN v1"        # docs/cli-runs.md: the run disk's header line


def fio_args(filename, rw, bs, depth, name):
    """One fio job, the same for the guest and the host: libaio, O_DIRECT, time-based; --minimal's
    terse line (read KiB/s and IOPS are its fields 7-8, write's 48-49)."""
    return ["fio", f"--name={name}", f"--filename={filename}", "--ioengine=libaio", "--direct=1",
            f"--rw={rw}", f"--bs={bs}", f"--iodepth={depth}", f"--size={DATA_MIB}M", f"--runtime={FIO_SECONDS}",
            "--time_based", "--randrepeat=0", "--norandommap", "--minimal"]


def fio_terse(line):
    """(IOPS, MiB/s) of a --minimal line, reads or writes whichever moved."""
    f = line.split(";")
    if len(f) < 49:
        return None
    r_kib, r_iops, w_kib, w_iops = float(f[6]), float(f[7]), float(f[47]), float(f[48])
    return (r_iops, r_kib / 1024) if r_iops >= w_iops else (w_iops, w_kib / 1024)


def run_disk(script, path):
    """The run disk microvm makes for --run (docs/cli-runs.md), made here for QEMU's run."""
    body = open(script, "rb").read()
    data = f"{RUN_MAGIC} {len(body)}\n".encode() + body
    with open(path, "wb") as f:
        f.write(data + b"\0" * (-len(data) % 512))


def qemu_run_cmd(kernel, initrd, cmdline, mem, disks, run, extra=()):
    """QEMU's microvm machine with the same disks, the run disk read-only last (as microvm adds it)."""
    cmd = qemu_cmd(kernel, cmdline, mem, disks=disks, extra=["-initrd", initrd])
    return cmd + ["-drive", f"file={run},if=none,id=run,format=raw,readonly=on",
                  "-device", "virtio-blk-device,drive=run,serial=microvm-run"] + list(extra)


def microvm_cmdline(r):
    """The kernel command line the guest saw under microvm (with microvm's additions and
    microvm.run=): QEMU's run gets the same."""
    m = next((re.search(r"\] Command line: (.*)$", ln) for _, ln in r.out if "] Command line: " in ln), None)
    return m.group(1).strip() if m else None


def bench_ci(reps, warm, runs, deb, images, timeout, tmp):
    """CI latency: a one-line script (`uname -r`) run in a fresh guest, exec -> the VMM's exit with
    the script's status. Debian's cloud kernel, the busybox initramfs (initrd-busybox.img) and a
    copy of the project's busybox image (its init runs microvm-run), 256 MiB, 1 vCPU. microvm:
    `--run`; QEMU: the same run disk made here and the same command line. QEMU has no exit-status
    port (an isa-debug-exit device on 0x510 would also catch qboot's fw_cfg selector writes there):
    the status is read from microvm-run's serial line, after which the image's init powers off
    (`poweroff -f`, ACPI S5: QEMU exits 0). Also the times of the kernel's `Run /init`, the
    initramfs's switch_root, the script's output and status lines (the latter the same point in
    both guests, before the exit mechanisms differ), and microvm's --stats milestones."""
    kernel, initrd = os.path.join(deb, "vmlinuz"), os.path.join(deb, "initrd-busybox.img")
    script = os.path.join(tmp, "ci.sh")
    with open(script, "w") as f:
        f.write("uname -r\n")
    rundisk = os.path.join(tmp, "ci-run.img")
    run_disk(script, rundisk)
    cmdline = "console=ttyS0 root=/dev/vda rw panic=-1"
    seen = {"cmdline": None}
    status = {"microvm": 0, "qemu-microvm": 0}

    def one(name):
        root = os.path.join(tmp, f"ci-{name}.img")
        shutil.copyfile(os.path.join(images, "rootfs.ext4"), root)
        try:
            if name == "microvm":
                cmd = [MICROVM, "-q", "--stats=json", "--kernel", kernel, "--initrd", initrd, "--mem", "256M",
                       "--disk", root, "--cmdline", cmdline, "--run", script]
            elif not check(seen["cmdline"] is not None, "ci/qemu-microvm: no kernel command line from microvm's run"):
                return None
            else:
                cmd = qemu_run_cmd(kernel, initrd, seen["cmdline"], 256, [root], rundisk)
            r = Run(cmd)
            code = r.finish(timeout)
            if not check(code == status[name], f"ci/{name}: exit status {code}, expected {status[name]}", r):
                return None
            if name == "microvm":
                seen["cmdline"] = microvm_cmdline(r)
            out = r.line_time(r"^\d+\.\d+\.\d+-\S+$")
            end = r.line_time(r"^microvm-run: the --run script exited with status 0$")
            if not check(out is not None and end is not None,
                         f"ci/{name}: no `uname -r` line or no status 0 line on the console", r):
                return None
            res = {"exit_ms": r.elapsed * 1e3, "first_output_ms": r.first_byte * 1e3, "output_ms": out * 1e3,
                   "status_line_ms": end * 1e3}
            for key, rx in (("init_ms", r"Run /init as init process"),
                            ("switch_root_ms", r"^initramfs: /dev/vda mounted"),
                            ("run_start_ms", r"^microvm-run: running the --run script")):
                t = r.line_time(rx)
                if t is not None:
                    res[key] = t * 1e3
            m = next((re.search(r"^\[\s*([\d.]+)\] Run /init as init process", ln) for _, ln in r.out
                      if "Run /init as init process" in ln), None)
            if m:
                res["guest_clock_init_ms"] = float(m.group(1)) * 1e3
            if name == "microvm":
                st = r.stats()
                if st:
                    res["microvm_ms"] = st.get("ms")
            return res
        finally:
            os.unlink(root)

    per = alternate(reps, warm, one, list(VMMS), runs, "ci")
    rows = summarize("ci", "--run `uname -r`: exec -> exit status", per, "exit_ms", "ms")
    rows += summarize("ci", "exec -> first serial byte", per, "first_output_ms", "ms")
    rows += summarize("ci", "exec -> kernel runs /init (initramfs)", per, "init_ms", "ms")
    rows += summarize("ci", "guest clock at `Run /init` (kernel's own time)", per, "guest_clock_init_ms", "ms")
    rows += summarize("ci", "exec -> initramfs mounted root", per, "switch_root_ms", "ms")
    rows += summarize("ci", "exec -> `uname -r` printed", per, "output_ms", "ms")
    rows += summarize("ci", "exec -> microvm-run's status line", per, "status_line_ms", "ms")
    return logged(rows)


def bench_workload(reps, warm, runs, deb, timeout, tmp):
    """fio and iperf3 in the Debian 12 systemd image (docs/debian-guest.md), booted through the
    busybox initramfs (cloud kernel, initrd-busybox.img, root a fresh copy of debian.ext4), 1 GiB,
    1 vCPU, a 256 MiB data disk (a file filled with zeros, so no reads of holes) and a NIC on a tap
    with 192.0.2.1 (the guest's address from ip=, systemd-networkd). microvm-run.service runs the
    script once multi-user.target is reached: systemd-analyze (blame, critical-chain: the
    profile of systemd's userspace part), the fio jobs on /dev/vdb, iperf3 to the host's server
    both ways. The host runs the same fio jobs on the same file between the VMs; guest figures
    are ratios to the host's. QEMU: the same files and command line, a tap netdev on the same tap
    with virtio-net-device; its run ends at the script's status line (QEMU's power-off took
    ~100 s in table 8, which is not what this table measures)."""
    from debian import clean    # tests/linux/debian.py
    from e2e import GUEST_IP, HOST_IP
    kernel, initrd = os.path.join(deb, "vmlinuz"), os.path.join(deb, "initrd-busybox.img")
    taps = Taps()
    if not taps.make(1):
        check(False, f"workload: no tap ({taps.why})")
        return []
    tap = taps.names[0]
    p = subprocess.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", tap], capture_output=True, text=True)
    if not check(p.returncode == 0, f"workload: ip addr add {HOST_IP}/24 dev {tap}: {p.stderr.strip()}"):
        taps.close()
        return []
    data = os.path.join(tmp, "workload-data.img")
    subprocess.run(["dd", "if=/dev/zero", f"of={data}", "bs=1M", f"count={DATA_MIB}", "conv=fsync"],
                   check=True, capture_output=True)
    lines = ["export SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat",
             "systemd-analyze | sed 's/^/ANALYZE /'",
             "systemd-analyze blame --no-pager | head -n 20 | sed 's/^/BLAME /'",
             "systemd-analyze critical-chain --no-pager | sed 's/^/CHAIN /'"]
    for name, rw, bs, depth in FIO_JOBS:
        lines.append(f"echo \"FIO {name} $({' '.join(fio_args('/dev/vdb', rw, bs, depth, name))})\"")
    lines += [f"i=0; until ping -c 1 -W 1 {HOST_IP} >/dev/null 2>&1; do i=$((i+1)); "
              "[ $i -lt 60 ] || break; sleep 0.5; done",
              f"iperf3 -c {HOST_IP} -t {IPERF_SECONDS} -f m | grep receiver | sed 's/^/IPERF tx /'",
              f"iperf3 -c {HOST_IP} -t {IPERF_SECONDS} -f m -R | grep receiver | sed 's/^/IPERF rx /'",
              "exit 0"]
    script = os.path.join(tmp, "workload.sh")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    rundisk = os.path.join(tmp, "workload-run.img")
    run_disk(script, rundisk)
    cmdline = (f"console=ttyS0 root=/dev/vda rw net.ifnames=0 systemd.hostname=e2e-debian "
               f"ip={GUEST_IP}::{HOST_IP}:255.255.255.0::eth0:off")
    seen = {"cmdline": None}
    rx_start = re.compile(r"Startup finished in (?:([\d.]+)(m?s) \(kernel\))?(?: \+ ([\d.]+)(m?s) \(initrd\))?"
                          r"(?: \+ (?:(\d+)min )?([\d.]+)(m?s) \(userspace\))?")
    rx_iperf = re.compile(r"^IPERF (tx|rx) .*?([\d.]+) Mbits/sec\s+receiver")

    def host_fio():
        res = {}
        for name, rw, bs, depth in FIO_JOBS:
            p = subprocess.run(fio_args(data, rw, bs, depth, name), capture_output=True, text=True)
            v = fio_terse(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None
            if check(v is not None, f"workload/host: fio {name} failed: {p.stderr.strip()[-200:]}"):
                res[f"{name}_iops"], res[f"{name}_mibs"] = v
        return res

    def one(name):
        if name == "host":
            return host_fio()
        root = os.path.join(tmp, f"workload-{name}.img")
        subprocess.run(["cp", "--sparse=always", os.path.join(deb, "debian.ext4"), root], check=True)
        server = subprocess.Popen(["iperf3", "-s", "-B", HOST_IP], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        r = None
        try:
            if name == "microvm":
                cmd = [MICROVM, "-q", "--kernel", kernel, "--initrd", initrd, "--mem", "1024M",
                       "--disk", f"{root},id=root", "--disk", f"{data},id=data,direct",
                       "--net", f"tap={tap}", "--cmdline", cmdline, "--run", script]
            elif not check(seen["cmdline"] is not None, "workload/qemu-microvm: no command line from microvm's run"):
                return None
            else:
                cmd = qemu_run_cmd(kernel, initrd, seen["cmdline"], 1024, [root, data], rundisk,
                                   ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                                    "-device", "virtio-net-device,netdev=n0"])
            r = Run(cmd)
            done = r.wait_for(r"microvm-run: the --run script exited with status (\d+)", timeout)
            if not check(done is not None and done[1].group(1) == "0",
                         f"workload/{name}: the script did not end with status 0", r):
                return None
            if name == "microvm":
                code = r.finish(60)
                if not check(code == 0, f"workload/{name}: exit status {code}, expected 0", r):
                    return None
                seen["cmdline"] = microvm_cmdline(r)
            else:
                r.kill()
            with r.cond:
                out = [clean(ln) for _, ln in r.out]
            res = {"script_end_ms": done[0] * 1e3,
                   "blame": [ln[6:].strip() for ln in out if ln.startswith("BLAME ")],
                   "chain": [ln[6:].rstrip() for ln in out if ln.startswith("CHAIN ")]}
            m = next((rx_start.search(ln) for ln in out if ln.startswith("ANALYZE Startup finished")), None)
            if m and m.group(6):
                res["userspace_ms"] = (float(m.group(6)) / (1000 if m.group(7) == "ms" else 1)
                                       + 60 * int(m.group(5) or 0)) * 1e3
            if m and m.group(1):
                res["kernel_ms"] = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
            for job, *_ in FIO_JOBS:
                ln = next((ln for ln in out if ln.startswith(f"FIO {job} ")), None)
                v = fio_terse(ln.split(" ", 2)[2]) if ln else None
                if check(v is not None, f"workload/{name}: no fio figure for {job}: {ln}"):
                    res[f"{job}_iops"], res[f"{job}_mibs"] = v
            for ln in out:
                mi = rx_iperf.search(ln)
                if mi:
                    res[f"iperf_{mi.group(1)}_mbits"] = float(mi.group(2))
            check("iperf_tx_mbits" in res and "iperf_rx_mbits" in res, f"workload/{name}: no iperf3 figures", r)
            log(f"workload/{name}: " + ", ".join(f"{k} {fmt(v)}" for k, v in res.items() if isinstance(v, float)))
            log(f"workload/{name}: systemd-analyze blame:\n    " + "\n    ".join(res["blame"]))
            log(f"workload/{name}: critical-chain:\n    " + "\n    ".join(res["chain"]))
            return res
        finally:
            if r:
                r.kill()
            server.terminate()
            server.wait()
            os.unlink(root)

    per = alternate(reps, warm, one, list(VMMS) + ["host"], runs, "workload")
    rows = []
    for job, *_ in FIO_JOBS:
        metric = f"{job}_mibs" if job.endswith("qd4") else f"{job}_iops"
        rows += summarize("workload", f"fio {job} (libaio, direct)", per, metric,
                          "MiB/s" if metric.endswith("mibs") else "IOPS", lower_is_better=False, ref="host")
    for d, what in (("tx", "guest -> host (guest client)"), ("rx", "host -> guest (guest client -R)")):
        rows += summarize("workload", f"iperf3 {what}", {k: v for k, v in per.items() if k != "host"},
                          f"iperf_{d}_mbits", "Mbit/s", lower_is_better=False)
    rows += summarize("workload", "systemd-analyze: kernel", per, "kernel_ms", "ms")
    rows += summarize("workload", "systemd-analyze: userspace (busybox initramfs)", per, "userspace_ms", "ms")
    rows += summarize("workload", "exec -> script's status line", per, "script_end_ms", "ms")
    taps.close()
    return logged(rows)


# --------------------------------------------------------------------------- 7. restore

TOUCH_MIB = 32      # guest memory the test guest writes before it idles: what a snapshot must hold
# (RAM MiB, MiB the guest writes): the restore's latency, flat across RAM sizes and written data.
RESTORE_SIZES = [(128, 32), (1024, 32), (1024, 512), (4096, 32), (4096, 512)]


def guest_cmd(mem, touch):
    return microvm_cmd(GUEST, f"bench.touch={touch} action=echo", mem)


def make_snapshot(mem, touch, tmp, timeout, compress, cmd=None, tag=""):
    """Boot the test guest (bench.touch, then its echo loop), pause it, snapshot it into a directory.
    cmd: another command line for the guest (the clones' VM with its disk and NIC)."""
    d = os.path.join(tmp, f"snap-{mem}-{touch}-{'deflate' if compress else 'raw'}{tag}")
    sock = fresh_sock(tmp)
    r = Run((cmd or guest_cmd(mem, touch)) + ["--api-sock", sock])
    try:
        if not check(r.wait_for(IDLE, timeout) is not None, f"restore: the {mem} MiB guest{tag} never idle", r):
            return None
        st, body = api_call(sock, "POST", "/vm/pause")
        if not check(st == 200, f"restore: pause: {st} {body}", r):
            return None
        st, body = api_call(sock, "POST", "/vm/snapshot", json.dumps({"path": d, "compress": compress}))
        if not check(st == 200, f"restore: snapshot: {st} {body}", r):
            return None
        log(f"restore: snapshot of the {mem} MiB guest{tag}, {touch} MiB written ({'deflate' if compress else 'sparse'}): "
            f"{body['bytes'] / 1048576:.1f} MiB written in {body['ms']} ms")
    finally:
        r.kill()
    return d


def faults(pid):
    """The process's (all threads') minor and major page faults so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7]), int(fields[9])


def serve_time(cmd, timeout, what, line="ping", answer=r"^echo: ping$"):
    """exec -> the guest answers a line sent at exec (the console buffers it): the VM is running and
    serving. Then SIGTERM, and microvm's --stats=json (exec -> first KVM_RUN)."""
    r = Run(cmd + ["--stats=json"])
    try:
        r.proc.stdin.write(line.encode() + b"\n")
        r.proc.stdin.flush()
        hit = r.wait_for(answer, timeout)
        if not check(hit is not None, f"restore/{what}: the guest did not answer", r):
            return None
        minflt, majflt = faults(r.proc.pid)
        r.proc.terminate()
        code = r.finish(timeout)
        st = r.stats()
        if not check(code == 143 and st, f"restore/{what}: exit status {code} after SIGTERM, --stats {bool(st)}", r):
            return None
        return {"serve_ms": hit[0] * 1e3, "guest_start_ms": st["ms"].get("guest_start"),
                "minflt": minflt, "majflt": majflt}
    finally:
        r.kill()


def resume_time(snap, tmp, timeout, what):
    """--restore --paused: everything set up, vCPUs parked; POST /vm/resume -> the guest answers."""
    sock = fresh_sock(tmp)
    r = Run([MICROVM, "-q", "--restore", snap, "--paused", "--api-sock", sock])
    try:
        st, body = api_when_up(sock, r, timeout)
        if not check(st == 200 and body and body.get("state") == "paused", f"restore/{what}: --paused: GET /vm {st} {body}", r):
            return None
        r.proc.stdin.write(b"ping\n")
        r.proc.stdin.flush()
        time.sleep(0.2)          # the line is in the console's buffer before the guest runs
        t0 = r.now()
        st, body = api_call(sock, "POST", "/vm/resume")
        hit = r.wait_for(r"^echo: ping$", timeout)
        if not check(st == 200 and hit is not None, f"restore/{what}: no answer after POST /vm/resume ({st})", r):
            return None
        return {"resume_ms": (hit[0] - t0) * 1e3}
    finally:
        r.kill()


def fresh_sock(tmp):
    """A socket path no earlier (killed) VMM left behind."""
    fresh_sock.n = getattr(fresh_sock, "n", 0) + 1
    return os.path.join(tmp, f"api-{fresh_sock.n}.sock")


def api_when_up(sock, r, timeout):
    """GET /vm once the VMM serves its socket."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and r.proc.poll() is None:
        try:
            return api_call(sock, "GET", "/vm")
        except OSError:
            time.sleep(0.005)
    return None, None


def drop_file_cache(path):
    """Drop one file's pages from the page cache (no VM maps it now): a cold start for it alone."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def record_working_set(snap, tmp, timeout, what):
    """A restore that records its working set: the guest reads back what it wrote (`read`), then
    POST /vm/working-set saves the pages it touched as snap/workingset."""
    sock = fresh_sock(tmp)
    r = Run([MICROVM, "-q", "--restore", snap, "--record-working-set", "3600", "--api-sock", sock])
    try:
        r.proc.stdin.write(b"read\n")
        r.proc.stdin.flush()
        if not check(r.wait_for(r"^echo: read ", timeout) is not None, f"restore/{what}: record: no answer", r):
            return None
        st, body = api_call(sock, "POST", "/vm/working-set")
        if not check(st == 200, f"restore/{what}: POST /vm/working-set: {st} {body}", r):
            return None
        log(f"restore/{what}: working set {body['ranges']} ranges, {body['bytes'] / 1048576:.1f} MiB")
        return body
    finally:
        r.kill()


CLONE_BASE_MIB = 8      # the clones' shared base image (sparse); each VM writes one sector of it
CLONE_WRITE = "blk.write=vda:0:7:1"   # so the snapshot saves an overlay layer with data in it


def overlay_kib(path):
    """What an overlay file holds on the host's disk (du: allocated blocks), in KiB."""
    return os.stat(path).st_blocks * 512 / 1024


class Taps:
    """Host taps for the clones (one per VM at once, plus the snapshot's VM), made as
    tests/guest/run.py's NetNs.add_tap makes them: ip tuntap add, up, no IPv6, no address. Created
    up front (microvm could create a missing tap itself, but then that would be timed), removed in
    close() and at exit (bench/vm.py turns SIGTERM into an exit), a leftover of the same name first."""

    def __init__(self):
        self.names = []
        self.why = self.unusable()
        atexit.register(self.close)

    @staticmethod
    def unusable():
        if os.geteuid() != 0:
            return "not root (creating a tap needs CAP_NET_ADMIN)"
        if not os.path.exists("/dev/net/tun"):
            return "no /dev/net/tun"
        if shutil.which("ip") is None:
            return "no ip(8) (iproute2)"
        return None

    def make(self, n):
        """Taps 0..n-1 (those not made yet); False (and self.why) when one cannot be made."""
        while not self.why and len(self.names) < n:
            name = f"mvb{os.getpid() % 100000}c{len(self.names)}"     # at most 15 characters
            subprocess.run(["ip", "tuntap", "del", "dev", name, "mode", "tap"], capture_output=True)
            r = subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"], capture_output=True, text=True)
            if r.returncode != 0:
                self.why = f"ip tuntap add dev {name}: {r.stderr.strip()}"
                break
            self.names.append(name)
            subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1"], capture_output=True)
            r = subprocess.run(["ip", "link", "set", name, "up"], capture_output=True, text=True)
            if r.returncode != 0:
                self.why = f"ip link set {name} up: {r.stderr.strip()}"
        return not self.why

    def close(self):
        while self.names:
            subprocess.run(["ip", "tuntap", "del", "dev", self.names.pop(), "mode", "tap"], capture_output=True)


def clones(name, cmd_of, n, timeout, overlays):
    """n VMs started at once, VM i from cmd_of(i), each answering its ping: started per second (n
    over exec of the first to the last answer), MemAvailable drop and mean PSS (smaps_rollup) per
    VM, and the mean size on disk of each VM's overlay (overlays(i), its file) once all answered."""
    time.sleep(1)
    before = mem_available()
    vms = []
    try:
        t0 = time.monotonic()
        for i in range(n):
            v = Run(cmd_of(i))
            v.proc.stdin.write(b"ping\n")
            v.proc.stdin.flush()
            vms.append(v)
        up = [v for v in vms if v.wait_for(r"^echo: ping$", timeout * 4) is not None]
        t = time.monotonic() - t0
        if not check(len(up) == n, f"clones/{name}: only {len(up)} of {n} VMs answered",
                     next((v for v in vms if v not in up), None)):
            return None
        time.sleep(1)
        used = (before - mem_available()) / n / 1048576
        pss = []
        for v in up:
            with open(f"/proc/{v.proc.pid}/smaps_rollup") as f:
                pss += [int(ln.split()[1]) / 1024 for ln in f if ln.startswith("Pss:")]
        return {"per_second": n / t, "host_per_vm": used, "pss_per_vm": statistics.mean(pss),
                "overlay_kib": statistics.mean(overlay_kib(overlays(i)) for i in range(n))}
    finally:
        for v in vms:
            v.kill()
        for i in range(n):
            try:
                os.unlink(overlays(i))
            except FileNotFoundError:
                pass


def logged(rows):
    """Log each summary row as it is made (a long run stopped half-way still says what it measured)."""
    for r in rows:
        ratio = f", {r['ratio_median']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) of {r['ratio_to']}" \
            if "ratio_median" in r else ""
        log(f"row: {r['case']} | {r['candidate']}: {fmt(r['median'])} {r['unit']} ({fmt(r['min'])}-{fmt(r['max'])}){ratio}")
    return rows


def bench_restore(reps, warm, runs, nvms_list, timeout, tmp, sizes):
    """For each (RAM, written) size: exec -> guest answers a line, and exec -> first KVM_RUN, for a
    cold boot of the test guest (it writes that much, then idles in its echo loop), a lazy restore of
    its sparse snapshot, the same with --verify-memory, and (32 MiB written) the deflated snapshot;
    POST /vm/resume -> answer for a --paused restore. Then the working set with a cold page cache:
    the guest reads back all it wrote, with and without the recorded working set (time and page
    faults). Then bench_clones()."""
    rows = []
    for mem, touch in sizes:
        raw = make_snapshot(mem, touch, tmp, timeout, False)
        z = make_snapshot(mem, touch, tmp, timeout, True) if touch == TOUCH_MIB and mem <= 1024 else None
        if not raw:
            continue
        tag = f"{mem} MiB, {touch} MiB written"
        cands = {
            "cold-boot": guest_cmd(mem, touch),
            "restore": [MICROVM, "-q", "--restore", raw],
            "restore-verify": [MICROVM, "-q", "--restore", raw, "--verify-memory"],
        }
        if z:
            cands["restore-deflate"] = [MICROVM, "-q", "--restore", z]

        def one(name):
            return serve_time(cands[name], timeout, f"{mem}-{touch}/{name}")

        per = alternate(reps, warm, one, list(cands), runs, f"restore-{mem}-{touch}")
        rows += logged(summarize("restore", f"exec -> guest answers, {tag}", per, "serve_ms", "ms", ref="cold-boot"))
        rows += logged(summarize("restore", f"exec -> first KVM_RUN (--stats), {tag}", per, "guest_start_ms", "ms",
                          ref="cold-boot"))
        per = alternate(reps, False, lambda _: resume_time(raw, tmp, timeout, f"{mem}-{touch}"), ["restore-paused"],
                        runs, f"restore-paused-{mem}-{touch}")
        rows += logged(summarize("restore", f"POST /vm/resume -> guest answers (--paused), {tag}", per, "resume_ms", "ms"))

        # The working set, cold page cache: the first request reads all the guest wrote.
        if record_working_set(raw, tmp, timeout, f"{mem}-{touch}"):
            ws_cands = {"restore-no-ws": cands["restore"] + ["--no-working-set"], "restore-ws": cands["restore"]}

            def cold(name):
                drop_file_cache(os.path.join(raw, "memory"))
                return serve_time(ws_cands[name], timeout, f"{mem}-{touch}/{name}", line="read",
                                  answer=r"^echo: read ")

            per = alternate(reps, False, cold, list(ws_cands), runs, f"restore-ws-{mem}-{touch}")
            rows += logged(summarize("restore", f"exec -> first request served, cold page cache, {tag}", per, "serve_ms",
                              "ms", ref="restore-no-ws"))
            rows += logged(summarize("restore", f"major page faults of the VMM to that answer, {tag}", per, "majflt", "",
                              ref="restore-no-ws"))
            rows += logged(summarize("restore", f"minor page faults of the VMM to that answer, {tag}", per, "minflt", "",
                              ref="restore-no-ws"))
            os.unlink(os.path.join(raw, "workingset"))
    if nvms_list:
        rows += bench_clones(runs, nvms_list, timeout, tmp)
    return rows


def bench_clones(runs, nvms_list, timeout, tmp):
    """N VMs at once (128 MiB, 32 MiB written), cold-booted and restored from one snapshot, each on
    its own overlay over one shared base image and (as root, with /dev/net/tun) its own tap. The
    snapshot is of the same guest on an overlay over that base (one sector written) and a tap."""
    rows = []
    base = os.path.join(tmp, "clone-base.img")
    with open(base, "wb") as f:
        f.truncate(CLONE_BASE_MIB << 20)
    ovl_dir = os.path.join(tmp, "overlays")
    os.makedirs(ovl_dir, exist_ok=True)
    taps = Taps()
    try:
        nic = taps.make(max(nvms_list) + 1)
        if not nic:
            taps.close()
            log(f"clones: no tap per VM ({taps.why}): the clones get their overlays but no NIC")

        def extra(i, who):
            e = ["--disk", f"{base},overlay={os.path.join(ovl_dir, f'{who}-{i}.ovl')}"]
            return e + (["--net", f"tap={taps.names[i + 1]}"] if nic else [])

        snap_cmd = microvm_cmd(GUEST, f"bench.touch={TOUCH_MIB} {CLONE_WRITE} action=echo", 128,
                               extra=extra(-1, "snapshot"))
        snap = make_snapshot(128, TOUCH_MIB, tmp, timeout, False, cmd=snap_cmd, tag="-clones")
        if not snap:
            return rows
        cands = {
            "cold-boot": lambda i: microvm_cmd(GUEST, f"bench.touch={TOUCH_MIB} {CLONE_WRITE} action=echo", 128,
                                               extra=extra(i, "cold")),
            "restore": lambda i: [MICROVM, "-q", "--restore", snap] + extra(i, "restore"),
        }
        what = "its own overlay and tap" if nic else "its own overlay, no NIC"
        for n in nvms_list:
            per_many = {}
            for name, cmd_of in cands.items():
                who = name.split("-")[0]
                res = clones(name, cmd_of, n, timeout, lambda i, w=who: os.path.join(ovl_dir, f"{w}-{i}.ovl"))
                if res:
                    per_many[name] = [res]
                    runs.append({"table": "clones", "candidate": name, "vms": n, "nic": nic, **res})
            tag = f"{n} VMs at once (128 MiB, {TOUCH_MIB} MiB written, each on {what})"
            rows += logged(summarize("restore", f"VMs started per second, {tag}", per_many, "per_second", "/s",
                                     lower_is_better=False, ref="cold-boot"))
            rows += logged(summarize("restore", f"host MemAvailable drop per VM, {tag}", per_many, "host_per_vm",
                                     "MiB", ref="cold-boot"))
            rows += logged(summarize("restore", f"PSS per VMM process (smaps_rollup), {tag}", per_many, "pss_per_vm",
                                     "MiB", ref="cold-boot"))
            rows += logged(summarize("restore", f"overlay on disk per VM (du), {tag}", per_many, "overlay_kib",
                                     "KiB", ref="cold-boot"))
    finally:
        taps.close()
    return rows


# --------------------------------------------------------------------------- main

def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def print_table(rows):
    head = ["table", "case", "candidate", "median", "min", "max", "ratio to the peer (min-max)"]
    lines = [head]
    for r in rows:
        ratio = ""
        if "ratio_median" in r:
            ratio = f"{r['ratio_median']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) vs {r['ratio_to']}"
        lines.append([r["table"], r["case"], r["candidate"], f"{fmt(r['median'])} {r['unit']}".strip(),
                      fmt(r["min"]), fmt(r["max"]), ratio])
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    for l in lines:
        print("  ".join(c.ljust(w) for c, w in zip(l, widths)).rstrip(), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="one run of each, tiny loops (CI)")
    ap.add_argument("--quick", action="store_true", help="3 repetitions, 10 VMs at once")
    ap.add_argument("--out", default=os.path.join(BUILD, "bench-results"))
    ap.add_argument("--reps", type=int)
    ap.add_argument("--vms", type=int, help="VMs at once for the memory table (default 50)")
    ap.add_argument("--clones", help="restore: VMs restored at once, comma-separated (default 10,50; "
                    "--smoke 3, --quick 10)")
    ap.add_argument("--restore-sizes", help="restore: RAM:WRITTEN in MiB, comma-separated (default "
                    + ",".join(f"{m}:{t}" for m, t in RESTORE_SIZES) + ")")
    ap.add_argument("--exits", type=int, help="iterations of each exit loop (default 20000)")
    ap.add_argument("--only", help="default: all; with --smoke all but linux (a Linux boot takes minutes "
                    "where guest kernel code is emulated)")
    ap.add_argument("--images", default=os.environ.get("MICROVM_LINUX_GUEST") or os.path.join(BUILD, "linux-guest"))
    ap.add_argument("--debian", default=os.environ.get("MICROVM_DEBIAN_GUEST") or os.path.join(BUILD, "debian-guest"))
    ap.add_argument("--timeout", type=float, default=300, help="seconds one VM may take")
    a = ap.parse_args()
    # SIGTERM (a timeout, scripts/nested-kvm stopping) unwinds: the VMs are killed, the taps removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set((a.only or ("startup,memory,exits,restore" if a.smoke else "startup,memory,exits,linux,debian,workload,restore")).split(","))
    bad = only - {"startup", "memory", "exits", "linux", "debian", "workload", "ci", "restore"}
    if bad:
        ap.error(f"--only: unknown table(s) {', '.join(sorted(bad))}")

    if a.smoke:
        reps, warm, nvms, nexits = 1, False, 3, 500
    elif a.quick:
        reps, warm, nvms, nexits = 3, True, 10, 5000
    else:
        reps, warm, nvms, nexits = 7, True, 50, 20000
    reps = a.reps or reps
    nvms = a.vms if a.vms is not None else nvms
    nexits = a.exits or nexits

    why = kvm_usable()
    if why:
        log(f"no usable /dev/kvm here ({why}; bench/run runs this script in scripts/nested-kvm then)")
        return SKIP
    if shutil.which(QEMU) is None:
        log(f"{QEMU} is missing (apt-get install qemu-system-x86; scripts/setup.sh does)")
        return 1
    missing = [p for p in (MICROVM, GUEST) if not os.path.isfile(p)]
    if missing:
        log(f"not built: {', '.join(missing)} (ninja -C build; bench/run builds them)")
        return 1
    qemu_version = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qemu_why = qemu_probe(a.timeout)
    if qemu_why:
        # Not microvm's failure: its tables are still measured, without the peer.
        log(f"QEMU cannot run a VM on this host's KVM, so no peer in tables 1-3 and 6: {qemu_why}")
        del VMMS["qemu-microvm"]
    started = time.time()
    rows, runs = [], []
    with tempfile.TemporaryDirectory(prefix="microvm-bench-") as tmp:
        if "startup" in only:
            log("start-up")
            rows += bench_startup(reps, warm, runs, a.timeout)
        if "memory" in only:
            log(f"memory (1 VM, then {nvms} at once)")
            rows += bench_memory(reps, warm, runs, nvms, a.timeout)
        if "exits" in only:
            log(f"exit handling ({nexits} of each)")
            rows += bench_exits(reps, warm, runs, nexits, a.timeout, tmp)
        if "linux" in only:
            if all(os.path.isfile(os.path.join(a.images, f)) for f in ("bzImage", "rootfs-spin.ext4")):
                log("Linux boot")
                rows += bench_linux(max(1, reps // 2) if not a.smoke else 1, warm and not a.quick, runs,
                                    a.images, a.timeout, tmp)
            else:
                failures.append(f"linux: no bzImage/rootfs-spin.ext4 in {a.images} (sh scripts/guest-image --out {a.images})")
                log(failures[-1])
        if "debian" in only:
            if all(os.path.isfile(os.path.join(a.debian, f)) for f in ("vmlinuz", "initrd.img", "debian.ext4")):
                log("Debian to its login prompt")
                rows += bench_debian(max(1, reps // 2) if not a.smoke else 1, warm and not a.quick, runs,
                                     a.debian, a.timeout, tmp)
            else:
                failures.append(f"debian: no vmlinuz/initrd.img/debian.ext4 in {a.debian} "
                                f"(sh scripts/debian-guest --out {a.debian})")
                log(failures[-1])
        if only & {"workload", "ci"}:
            need = [os.path.join(a.debian, f) for f in ("vmlinuz", "initrd-busybox.img", "debian.ext4")]
            need.append(os.path.join(a.images, "rootfs.ext4"))
            missing = [p for p in need if not os.path.isfile(p)]
            if not missing:
                log("real workloads in a Debian guest: CI latency, then fio and iperf3")
                wreps = max(1, reps // 2) if not a.smoke else 1
                rows += bench_ci(wreps, warm and not a.quick, runs, a.debian, a.images, a.timeout, tmp)
                if "workload" in only:
                    rows += bench_workload(wreps, False, runs, a.debian, a.timeout, tmp)
            else:
                failures.append(f"workload: missing {', '.join(missing)} (sh scripts/debian-guest --out "
                                f"{a.debian}; sh scripts/guest-image --out {a.images})")
                log(failures[-1])
        if "restore" in only:
            clones_n = [int(x) for x in (a.clones or ("3" if a.smoke else "10" if a.quick else "10,50")).split(",")]
            sizes = ([tuple(int(v) for v in x.split(":")) for x in a.restore_sizes.split(",")]
                     if a.restore_sizes else [(128, TOUCH_MIB)] if a.smoke else RESTORE_SIZES)
            log(f"restore from a snapshot (sizes {sizes}, then {clones_n} at once)")
            rows += bench_restore(reps, warm, runs, clones_n, a.timeout, tmp, sizes)
    print_table(rows)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "vm-results.json"), "w") as f:
        json.dump({"command": " ".join(["bench/vm.py"] + sys.argv[1:]), "reps": reps, "vms_at_once": nvms,
                   "exit_loop": nexits, "qemu": qemu_version, "qemu_cpu": QEMU_CPU[0],
                   "qemu_unusable": qemu_why,
                   "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                               "cpu": cpu_model()},
                   "summary": rows, "runs": runs, "failures": failures,
                   "wall_seconds": round(time.time() - started, 1)}, f, indent=1)
    log(f"results in {a.out}/vm-results.json ({time.time() - started:.0f} s)")
    if failures:
        log(f"{len(failures)} failure(s):\n  " + "\n  ".join(failures))
        return 1
    return 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
