#!/usr/bin/env python3
"""flag_messages.py - the error lines microvm prints for bad inputs, as the user sees them.

boot/ and io/ say what is wrong with a file or value; vmm/ puts the flag in
front ("--kernel PATH: ", "--initrd PATH: ", "--cmdline: ", "--disk PATH: ") and
adds the hints that name a flag ("; try a larger --mem"). Every case here fails
before /dev/kvm is opened, so it runs on any host.

  flag_messages.py MICROVM

Stdlib only."""
import os
import struct
import subprocess
import sys
import tempfile


def elf_at(paddr):
    """An x86-64 ELF executable with one 16-byte PT_LOAD at physical paddr, entered there."""
    code = b"\xf4" * 16                                     # hlt
    ehdr = struct.pack("<4s5B7x2HI3QI6H", b"\x7fELF", 2, 1, 1, 0, 0,
                       2, 62, 1, paddr, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<2I6Q", 1, 5, 0x1000, paddr, paddr, len(code), len(code), 0x1000)
    return (ehdr + phdr).ljust(0x1000, b"\0") + code


def main(argv):
    microvm = argv[1]
    failed = 0
    with tempfile.TemporaryDirectory() as t:
        def put(name, data):
            path = os.path.join(t, name)
            with open(path, "wb") as f:
                f.write(data)
            return path

        text = put("notes.txt", b"This is not a kernel.\n")
        far = put("far.elf", elf_at(0x4000000))
        low = put("low.elf", elf_at(0x8000))
        good = put("k.elf", elf_at(0x200000))
        big = os.path.join(t, "big.img")
        with open(big, "wb") as f:
            f.truncate(32 << 20)
        folder = os.path.join(t, "dir")
        os.mkdir(folder)

        bad_ovl = put("bad.ovl", b"MVMOVL\r\n" + b"\0" * 200)
        link = os.path.join(t, "link.ovl")
        os.symlink(bad_ovl, link)

        # (arguments, the start of the error line after "microvm: error: ")
        cases = [
            (["--kernel", text], f"--kernel {text}: not a bzImage or an x86-64 ELF kernel"),
            (["--kernel", far, "--mem", "16M"],
             f"--kernel {far}: segment at 0x4000000 (+0x10 bytes) is outside guest RAM (16 MiB); "
             "try a larger --mem"),
            (["--kernel", low],
             f"--kernel {low}: segment at 0x8000 (+0x10 bytes) is below 1 MiB, where microvm keeps "
             "the boot structures; relink the kernel at or above 0x100000"),
            (["--kernel", good, "--mem", "16M", "--initrd", big],
             f"--initrd {big}: 32.00 MiB does not fit: "),
            (["--kernel", good, "--cmdline", "x" * 70000],
             "--cmdline: 70000 bytes, the kernel accepts at most 65535"),
            (["--kernel", good, "--disk", folder], f"--disk {folder}: is a directory, not a disk image"),
            (["--kernel", good, "--disk", f"{big},overlay={text}"],
             f"--disk {big},overlay={text}: not an overlay: the file is too short for a header"),
            (["--kernel", good, "--disk", f"{big},overlay={bad_ovl}"],
             f"--disk {big},overlay={bad_ovl}: overlay format version 0 is not supported"),
            (["--kernel", good, "--disk", f"{big},overlay={link}"],
             f"--disk {big},overlay={link}: the overlay is a symbolic link (refused)"),
        ]
        # Bad option values are usage errors: exit status 2, as for any bad option.
        cases = [(args, want, 1) for args, want in cases] + [
            (["--kernel", good, "--disk", f"{big},bw=fast"],
             f"--disk {big},bw=fast: bad bw= 'fast' (SIZE[/MS][+BURST]", 2),
            (["--kernel", good, "--disk", f"{big},iops=1K"], f"--disk {big},iops=1K: bad iops= '1K'", 2),
            (["--kernel", good, "--net", "tap=t0,rx_bw=1M/0"], "--net tap=t0,rx_bw=1M/0: bad rx_bw= '1M/0'", 2),
        ]
        for args, want, status in cases:
            p = subprocess.run([microvm] + args, capture_output=True, text=True, timeout=60)
            errors = [line[len("microvm: error: "):] for line in p.stderr.splitlines()
                      if line.startswith("microvm: error: ")]
            shown = " ".join(a if len(a) < 40 else a[:20] + "..." for a in args)
            if p.returncode != status or len(errors) != 1 or not errors[0].startswith(want):
                print(f"FAIL: microvm {shown}: exit {p.returncode}, want {status} and an error line "
                      f"starting '{want}'; stderr:\n{p.stderr}")
                failed += 1
            else:
                print(f"ok: microvm {shown}: {errors[0]}")

        # Combinations that cannot work: one line (nothing else on stderr) and exit status 2.
        jail = os.path.join(os.path.realpath(t), "jail")   # canonical, as --jail wants it
        os.mkdir(jail, 0o700)
        open_jail = os.path.join(t, "open")
        os.mkdir(open_jail)
        os.chmod(open_jail, 0o777)
        usage = [
            (["--kernel", good, "--jail", "jail"], "--jail jail: must be an absolute path"),
            (["--kernel", good, "--jail", text], f"--jail {text}: not a directory"),
            (["--kernel", good, "--jail", jail + "/"], f"--jail {jail}/: must be a canonical path"),
            (["--kernel", good, "--netns", "ns"], "--netns ns: must be an absolute path"),
            (["--kernel", good, "--cgroup", "vm,memory.max=1K"], "--cgroup vm,memory.max=1K: memory.max=1K: must be a size"),
            (["--kernel", good, "--cgroup", "../vm"], "--cgroup ../vm: an empty, '.' or '..' component"),
            (["--restore", t, "--jail", jail, "--record-working-set", "5"],
             "--record-working-set: not with --jail"),
        ]
        if os.geteuid() == 0:
            usage += [
                (["--kernel", good, "--jail", open_jail], f"--jail {open_jail}: writable by others (mode 0777)"),
                (["--kernel", good, "--jail", jail, "--api-sock", os.path.join(t, "api.sock")],
                 f"--api-sock {os.path.join(t, 'api.sock')}: must be inside --jail {jail}"),
            ]
        else:
            usage += [(["--kernel", good, "--jail", jail], f"--jail {jail}: needs root")]
        for args, want in usage:
            p = subprocess.run([microvm] + args, capture_output=True, text=True, timeout=60)
            lines = p.stderr.splitlines()
            if p.returncode != 2 or len(lines) != 1 or not lines[0].startswith("microvm: error: " + want):
                print(f"FAIL: microvm {' '.join(args)}: exit {p.returncode}, want 2 and one line "
                      f"starting '{want}'; stderr:\n{p.stderr}")
                failed += 1
            else:
                print(f"ok: microvm {' '.join(args)}: {lines[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
