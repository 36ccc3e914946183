#!/usr/bin/env python3
"""mkbzimage.py - wrap the test guest in a Linux boot protocol bzImage (stdlib only).

Layout of the output, as in arch/x86/boot (Documentation/arch/x86/boot.rst):

  0x000  boot sector (just the boot_flag) with the setup header at 0x1f1
  0x200  setup sector: header continues ("HdrS" at 0x202), a real-mode stub
         that halts (microvm never runs it), the version string
  0x400  protected-mode part (SETUP_SECTS + 1 sectors in), loaded at
         code32_start 0x100000 by a loader that cannot decompress the payload:
           +0x000  flat binary of the guest linked at 0x100000
                   (64-bit entry at +0x200, XLF_KERNEL_64)
           +N      payload: the compressed plain ELF guest, followed (except
                   for gzip, whose trailer already ends with it) by the
                   uncompressed size as 4 bytes little endian, like Linux's
                   size_append; payload_offset/payload_length point here

Usage:
  mkbzimage.py --flat guest-flat.elf --payload guest.elf.lz4 --append-size-of guest.elf -o bzImage
  mkbzimage.py --flat guest-flat.elf --bad-payload -o bzImage-unknown
"""

import argparse
import struct
import sys

SECTOR = 512
SETUP_SECTS = 1                 # sectors of real-mode setup after the boot sector
CODE32_START = 0x100000         # where the protected-mode part runs
ENTRY64_OFFSET = 0x200          # startup_64 relative to code32_start
BOOT_PROTOCOL = 0x020F          # 2.15
LOADED_HIGH = 0x01
XLF_KERNEL_64 = 0x01
CMDLINE_SIZE = 2047             # like Linux: COMMAND_LINE_SIZE - 1
INITRD_ADDR_MAX = 0x7FFFFFFF
KERNEL_ALIGNMENT = 0x200000
HEADER_END = 0x26C              # first byte after kernel_info_offset
VERSION = b"microvm-test-guest (bzImage)\0"
VERSION_AT = 0x280

# Setup header fields: name -> (offset, struct format). Offsets in the file.
FIELDS = {
    "setup_sects": (0x1F1, "<B"),
    "syssize": (0x1F4, "<I"),
    "boot_flag": (0x1FE, "<H"),
    "jump": (0x200, "<H"),
    "header": (0x202, "<4s"),
    "version": (0x206, "<H"),
    "kernel_version": (0x20E, "<H"),
    "type_of_loader": (0x210, "<B"),
    "loadflags": (0x211, "<B"),
    "code32_start": (0x214, "<I"),
    "initrd_addr_max": (0x22C, "<I"),
    "kernel_alignment": (0x230, "<I"),
    "relocatable_kernel": (0x234, "<B"),
    "min_alignment": (0x235, "<B"),
    "xloadflags": (0x236, "<H"),
    "cmdline_size": (0x238, "<I"),
    "payload_offset": (0x248, "<I"),
    "payload_length": (0x24C, "<I"),
    "pref_address": (0x258, "<Q"),
    "init_size": (0x260, "<I"),
}


def parse_setup_header(data):
    """Return the setup header fields of a bzImage as a dict (raises ValueError)."""
    if len(data) < HEADER_END or data[0x202:0x206] != b"HdrS":
        raise ValueError("not a bzImage (no HdrS at 0x202)")
    hdr = {name: struct.unpack_from(fmt, data, off)[0] for name, (off, fmt) in FIELDS.items()}
    sects = hdr["setup_sects"] or 4
    hdr["pm_offset"] = (sects + 1) * SECTOR
    hdr["payload_file_offset"] = hdr["pm_offset"] + hdr["payload_offset"]
    return hdr


def read_elf_image(path):
    """Flatten the PT_LOAD segments of an ELF64 into (base, bytes, mem_end, entry)."""
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError(f"{path}: not a little-endian ELF64 file")
    entry, phoff = struct.unpack_from("<QQ", elf, 0x18)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    loads = []
    for i in range(phnum):
        p_type, _flags, off, _vaddr, paddr, filesz, memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", elf, phoff + i * phentsize)
        if p_type == 1:
            loads.append((paddr, elf[off:off + filesz], memsz))
    if not loads:
        raise ValueError(f"{path}: no PT_LOAD segment")
    base = min(p for p, _, _ in loads)
    file_end = max(p + len(d) for p, d, _ in loads)
    mem_end = max(p + m for p, _, m in loads)
    image = bytearray(file_end - base)
    for paddr, data, _ in loads:
        image[paddr - base:paddr - base + len(data)] = data
    return base, bytes(image), mem_end, entry


def build(flat_path, payload, size_of):
    base, flat, mem_end, entry = read_elf_image(flat_path)
    if base != CODE32_START or entry != CODE32_START + ENTRY64_OFFSET:
        raise ValueError(f"{flat_path}: must be linked at {CODE32_START:#x} with its 64-bit "
                         f"entry at +{ENTRY64_OFFSET:#x} (base {base:#x}, entry {entry:#x})")
    if size_of is not None:
        payload += struct.pack("<I", size_of & 0xFFFFFFFF)
    payload_offset = (len(flat) + 15) & ~15
    pm = bytearray(flat) + bytes(payload_offset - len(flat)) + payload
    pm += bytes(-len(pm) % 16)
    init_size = max(len(pm), mem_end - base)
    init_size = (init_size + 4095) & ~4095

    setup = bytearray((SETUP_SECTS + 1) * SECTOR)
    values = {
        "setup_sects": SETUP_SECTS,
        "syssize": len(pm) // 16,
        "boot_flag": 0xAA55,
        "jump": 0xEB | ((HEADER_END - 0x202) << 8),   # jmp short to the real-mode stub
        "header": b"HdrS",
        "version": BOOT_PROTOCOL,
        "kernel_version": VERSION_AT - 0x200,
        "type_of_loader": 0,
        "loadflags": LOADED_HIGH,
        "code32_start": CODE32_START,
        "initrd_addr_max": INITRD_ADDR_MAX,
        "kernel_alignment": KERNEL_ALIGNMENT,
        "relocatable_kernel": 0,
        "min_alignment": 21,
        "xloadflags": XLF_KERNEL_64,
        "cmdline_size": CMDLINE_SIZE,
        "payload_offset": payload_offset,
        "payload_length": len(payload),
        "pref_address": CODE32_START,
        "init_size": init_size,
    }
    for name, value in values.items():
        off, fmt = FIELDS[name]
        struct.pack_into(fmt, setup, off, value)
    setup[HEADER_END:HEADER_END + 4] = b"\xfa\xf4\xeb\xfd"   # cli; 1: hlt; jmp 1b
    setup[VERSION_AT:VERSION_AT + len(VERSION)] = VERSION
    return bytes(setup) + bytes(pm)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flat", required=True, help="guest ELF linked at 0x100000")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--payload", help="compressed kernel ELF to embed")
    g.add_argument("--bad-payload", action="store_true",
                   help="embed bytes no loader can decompress ('BAD!' + junk)")
    ap.add_argument("--append-size-of", metavar="FILE",
                    help="append FILE's size as 4 bytes LE after the payload (not for gzip)")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args(argv)

    if args.bad_payload:
        payload = b"BAD!" + bytes((i * 37 + 11) & 0xFF for i in range(252))
    else:
        with open(args.payload, "rb") as f:
            payload = f.read()
    size_of = None
    if args.append_size_of:
        with open(args.append_size_of, "rb") as f:
            size_of = len(f.read())
    try:
        image = build(args.flat, payload, size_of)
    except ValueError as e:
        print(f"mkbzimage.py: {e}", file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        f.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
