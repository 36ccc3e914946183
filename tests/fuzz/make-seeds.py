#!/usr/bin/env python3
"""make-seeds.py - write the seed corpora of the libFuzzer harnesses (tests/fuzz/corpus/NAME/seed-*).

Each seed is a small, well-formed input in the harness's format (see the
comment at the top of each fuzz_NAME.c): a working ring with a few requests, a
full virtio-mmio driver bring-up, a small kernel in every format, a typical
command line. The fuzzer mutates from there. Inputs the fuzzer found (crashes
that were fixed, kept as regression inputs) are named crash-* and are never
touched by this script.

Usage: tests/fuzz/make-seeds.py
  (Python's standard library; the lz4 and zstd command-line tools for the LZ4
  frame and zstd seeds, which are skipped without them)
"""

import gzip
import lzma
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def u8(v):
    return struct.pack("<B", v & 0xFF)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def write(name, seed, data):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + seed), "wb") as f:
        f.write(data)


def clean(name):
    d = os.path.join(CORPUS, name)
    if os.path.isdir(d):
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.unlink(os.path.join(d, f))


class Image:
    """A guest RAM image from address 0, grown as bytes are placed."""

    def __init__(self):
        self.b = bytearray()

    def put(self, gpa, data):
        if len(self.b) < gpa + len(data):
            self.b.extend(b"\0" * (gpa + len(data) - len(self.b)))
        self.b[gpa:gpa + len(data)] = data

    def desc(self, table, i, addr, length, flags=0, nxt=0):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def avail(self, ring, heads, used_event=None, size=None):
        """avail: flags 0, idx = len(heads), ring[] = heads (and used_event after size entries)."""
        self.put(ring, u16(0) + u16(len(heads)) + b"".join(u16(h) for h in heads))
        if used_event is not None:
            self.put(ring + 4 + 2 * size, u16(used_event))

    def bytes(self):
        return bytes(self.b)


def with_image(img):
    data = img.bytes()
    return u16(len(data)) + data


# ---------------------------------------------------------------- virtqueue

VQ_POP, VQ_PUSH, VQ_PUSH_N, VQ_SHOULD, VQ_ENABLE, VQ_READ, VQ_WRITE, VQ_GWRITE, VQ_GAVAIL, VQ_RESET, VQ_DRAIN = range(11)


def vq_head(flags, size_sel, desc, avail, used):
    return u8(flags) + u16(size_sel) + u16(desc) + u16(avail) + u16(used)


def virtqueue_seeds():
    D, A, U = 0x0000, 0x0800, 0x1000
    BUF = 0x1800
    ops_basic = (u8(VQ_POP) + u8(VQ_READ) + u32(0) + u16(16) + u8(VQ_WRITE) + u32(0) + u16(64) +
                 u8(VQ_PUSH) + u8(0) + u32(64) + u8(VQ_SHOULD) + u8(VQ_ENABLE) + u8(1) + u8(VQ_POP))

    # One readable + one writable buffer, size 8.
    img = Image()
    img.desc(D, 0, BUF, 16, F_NEXT, 1)
    img.desc(D, 1, BUF + 0x100, 64, F_WRITE)
    img.avail(A, [0])
    write("virtqueue", "simple", vq_head(0, 3, D, A, U) + with_image(img) + ops_basic)
    # The same with EVENT_IDX (used_event 0).
    img.avail(A, [0], used_event=0, size=8)
    write("virtqueue", "event-idx", vq_head(1, 3, D, A, U) + with_image(img) + ops_basic +
          u8(VQ_ENABLE) + u8(0) + u8(VQ_GAVAIL) + u16(0) + u8(VQ_POP) + u8(VQ_PUSH) + u8(0) + u32(1) +
          u8(VQ_SHOULD))

    # An indirect table of three descriptors.
    img = Image()
    img.desc(D, 0, BUF + 0x200, 48, F_INDIRECT)
    img.desc(BUF + 0x200, 0, BUF, 16, F_NEXT, 1)
    img.desc(BUF + 0x200, 1, BUF + 0x10, 512, F_NEXT | F_WRITE, 2)
    img.desc(BUF + 0x200, 2, BUF + 0x300, 1, F_WRITE)
    img.avail(A, [0])
    write("virtqueue", "indirect", vq_head(2, 3, D, A, U) + with_image(img) + ops_basic)

    # Three chains, returned together.
    img = Image()
    for k in range(3):
        img.desc(D, 2 * k, BUF + 0x40 * k, 16, F_NEXT, 2 * k + 1)
        img.desc(D, 2 * k + 1, BUF + 0x200 + 0x40 * k, 32, F_WRITE)
    img.avail(A, [0, 2, 4])
    write("virtqueue", "three-chains", vq_head(3, 3, D, A, U) + with_image(img) +
          u8(VQ_POP) * 3 + u8(VQ_PUSH_N) + u8(3) + u8(VQ_SHOULD) + u8(VQ_POP) + u8(VQ_RESET) + u8(VQ_POP))
    write("virtqueue", "drain", vq_head(1, 3, D, A, U) + with_image(img) + u8(VQ_DRAIN) + u8(VQ_GAVAIL) + u16(2) +
          u8(VQ_DRAIN))

    # Size 256 across both regions (rings in region 0, buffers in region 1).
    img = Image()
    img.desc(0, 0, 0x2000, 0x100, F_NEXT, 255)
    img.desc(0, 255, 0x2100, 0x100, F_WRITE)
    img.avail(0x1000, [0])
    write("virtqueue", "size-256", vq_head(0, 8, 0, 0x1000, 0x1400) + with_image(img) + ops_basic)

    # Malformed: a loop, a head out of range, nested indirect, a buffer across two regions,
    # a readable buffer after a writable one, avail idx too far ahead.
    bad = {
        "loop": lambda i: (i.desc(D, 0, BUF, 16, F_NEXT, 1), i.desc(D, 1, BUF, 16, F_NEXT, 0), i.avail(A, [0])),
        "head-range": lambda i: i.avail(A, [9]),
        "nested-indirect": lambda i: (i.desc(D, 0, BUF, 16, F_INDIRECT), i.desc(BUF, 0, BUF, 16, F_INDIRECT),
                                      i.avail(A, [0])),
        "cross-region": lambda i: (i.desc(D, 0, 0x1ff0, 0x20, 0), i.avail(A, [0])),
        "read-after-write": lambda i: (i.desc(D, 0, BUF, 16, F_WRITE | F_NEXT, 1), i.desc(D, 1, BUF, 16, 0),
                                       i.avail(A, [0])),
        "idx-ahead": lambda i: i.put(A, u16(0) + u16(40)),
    }
    for name, build in bad.items():
        img = Image()
        build(img)
        write("virtqueue", "bad-" + name, vq_head(2, 3, D, A, U) + with_image(img) + u8(VQ_POP) * 2)

    # A queue size that is not a power of two, and rings outside RAM: nothing may be walked.
    write("virtqueue", "bad-size", vq_head(4, 3, D, A, U) + u16(0) + u8(VQ_POP) + u8(VQ_SHOULD) + u8(VQ_ENABLE) + u8(1))
    write("virtqueue", "bad-rings", vq_head(0, 3, 0x3ff0, A, 0x3ffc) + u16(0) + u8(VQ_POP) + u8(VQ_PUSH_N) + u8(0))

    # The guest publishes chains while the device works.
    img = Image()
    img.desc(D, 0, BUF, 16, F_NEXT, 1)
    img.desc(D, 1, BUF + 0x100, 64, F_WRITE)
    write("virtqueue", "guest-avail", vq_head(1, 3, D, A, U) + with_image(img) +
          (u8(VQ_GAVAIL) + u16(0) + u8(VQ_POP) + u8(VQ_PUSH) + u8(0) + u32(8) + u8(VQ_SHOULD)) * 3 +
          u8(VQ_GWRITE) + u16(D + 8) + u8(4) + u32(0x10000) + u8(VQ_GAVAIL) + u16(0) + u8(VQ_POP))


# ---------------------------------------------------------------- blk

BK_KICK, BK_COMPLETE, BK_COMPLETE_ALL, BK_GWRITE, BK_GAVAIL, BK_RESET, BK_ACTIVATE, BK_SUBMIT_FAIL, BK_CONFIG = range(9)
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13


def blk_seeds():
    D, A, U = 0x0000, 0x0100, 0x0200
    HDR, STATUS, DATA = 0x0400, 0x0600, 0x1000

    def request(img, k, rtype, sector, data_len, data_writable, extra=b""):
        """Request slot k: descriptors 3k (header), 3k+1 (data), 3k+2 (status)."""
        img.put(HDR + 32 * k, struct.pack("<IIQ", rtype, 0, sector) + extra)
        d = 3 * k
        hlen = 16 + len(extra)
        if data_len:
            img.desc(D, d, HDR + 32 * k, hlen, F_NEXT, d + 1)
            img.desc(D, d + 1, DATA + 0x400 * k, data_len, F_NEXT | (F_WRITE if data_writable else 0), d + 2)
        else:
            img.desc(D, d, HDR + 32 * k, hlen, F_NEXT, d + 2)
        img.desc(D, d + 2, STATUS + k, 1, F_WRITE)
        return d

    def seed(name, flags, sectors, reqs, ops):
        img = Image()
        heads = [request(img, k, *r) for k, r in enumerate(reqs)]
        img.avail(A, heads)
        write("blk", name, u8(flags) + u8(sectors) + u8(4) + u16(D) + u16(A) + u16(U) + with_image(img) + ops)

    run = u8(BK_KICK) + u8(0) + u8(BK_COMPLETE_ALL) + u8(BK_KICK) + u8(0)
    seg = struct.pack("<QII", 2, 4, 0)
    seed("read-write", 0, 64, [(T_IN, 0, 512, True), (T_OUT, 8, 1024, False), (T_IN, 8, 1024, True)], run)
    seed("flush-getid", 0, 64, [(T_FLUSH, 0, 0, False), (T_GET_ID, 0, 20, True), (T_GET_ID, 0, 8, True)], run)
    seed("discard-wz", 0, 64, [(T_DISCARD, 0, 0, False, seg), (T_WZ, 0, 0, False, seg),
                               (T_WZ, 0, 0, False, struct.pack("<QII", 0, 1, 1))],
         u8(BK_KICK) + u8(0) + u8(BK_COMPLETE) + u8(1) + u8(2) + u8(BK_COMPLETE_ALL))
    seed("read-only", 1, 16, [(T_OUT, 0, 512, False), (T_DISCARD, 0, 0, False, seg), (T_IN, 0, 512, True)], run)
    seed("bad-requests", 0, 8, [(T_IN, 8, 512, True), (99, 0, 0, False), (T_OUT, 0, 100, False),
                                (T_IN, 2**64 - 1, 512, True)], run)
    seed("errors", 0, 64, [(T_IN, 0, 512, True), (T_OUT, 1, 512, False), (T_IN, 2, 512, True)],
         u8(BK_KICK) + u8(0) + u8(BK_COMPLETE) + u8(0) + u8(1) + u8(BK_COMPLETE) + u8(1) + u8(3) +
         u8(BK_COMPLETE_ALL))
    seed("reset", 0, 64, [(T_OUT, 0, 512, False), (T_IN, 0, 512, True)],
         u8(BK_KICK) + u8(0) + u8(BK_RESET) + u8(BK_ACTIVATE) + u8(BK_GAVAIL) + u16(0) + run +
         u8(BK_CONFIG) + u8(0) + u8(3) + u8(BK_CONFIG) + u8(56) + u8(2))
    seed("submit-fail", 0, 64, [(T_IN, 0, 512, True), (T_FLUSH, 0, 0, False)],
         u8(BK_SUBMIT_FAIL) + u8(1) + u8(BK_KICK) + u8(0) + u8(BK_SUBMIT_FAIL) + u8(0) + u8(BK_GAVAIL) + u16(0) + run)
    # A header split from its sector field, data and status in one buffer.
    img = Image()
    img.put(HDR, struct.pack("<IIQ", T_IN, 0, 1))
    img.desc(D, 0, HDR, 8, F_NEXT, 1)
    img.desc(D, 1, HDR + 8, 8, F_NEXT, 2)
    img.desc(D, 2, DATA, 513, F_WRITE)
    img.avail(A, [0])
    write("blk", "framing", u8(6) + u8(64) + u8(4) + u16(D) + u16(A) + u16(U) +
          with_image(img) + run)
    # A malformed ring: the device asks for a reset, then is reset and used again.
    img = Image()
    img.avail(A, [200])
    write("blk", "malformed", u8(0) + u8(64) + u8(4) + u16(D) + u16(A) + u16(U) + with_image(img) +
          run + u8(BK_RESET) + u8(BK_ACTIVATE) + run)


# ---------------------------------------------------------------- net

NT_KICK, NT_FD, NT_SEND, NT_SEND_BIG, NT_DRAIN, NT_CLOSE, NT_GWRITE, NT_GAVAIL, NT_RESET, NT_ACTIVATE, NT_PURE = range(11)
TUN_CSUM, TUN_TSO4, TUN_TSO6, TUN_ECN, TUN_UFO = 1, 2, 4, 8, 0x10
NF_CSUM, NF_GUEST_CSUM, NF_GUEST_TSO4, NF_GUEST_TSO6, NF_GUEST_ECN, NF_GUEST_UFO = 0, 1, 7, 8, 9, 10
NF_HOST_TSO4, NF_HOST_TSO6, NF_HOST_ECN, NF_HOST_UFO, NF_MRG = 11, 12, 13, 14, 15


def bits(*b):
    v = 0
    for x in b:
        v |= 1 << x
    return v


def vnet_hdr(flags=0, gso=0, hdr_len=0, gso_size=0, cs=0, co=0, nb=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, cs, co, nb)


def net_seeds():
    RXD, RXA, RXU = 0x0000, 0x0100, 0x0200
    TXD, TXA, TXU = 0x0400, 0x0500, 0x0600
    RXBUF, TXBUF = 0x1000, 0x0800   # RX buffers are not in the image: the device fills them

    def head(offloads, features, flags):
        q = lambda d, a, u: u8(4) + u32(d) + u32(a) + u32(u)
        return u8(offloads) + u64(features) + u8(flags) + q(RXD, RXA, RXU) + q(TXD, TXA, TXU)

    def rx_buffers(img, n, size):
        for i in range(n):
            img.desc(RXD, i, RXBUF + 0x800 * i, size, F_WRITE)
        img.avail(RXA, list(range(n)))

    def tx_frames(img, frames):
        off = TXBUF
        heads = []
        for i, (hdr, payload) in enumerate(frames):
            img.put(off, hdr)
            img.put(off + 0x20, payload)
            img.desc(TXD, 2 * i, off, len(hdr), F_NEXT, 2 * i + 1)
            img.desc(TXD, 2 * i + 1, off + 0x20, len(payload))
            heads.append(2 * i)
            off += 0x100
        img.avail(TXA, heads)

    frame = bytes(range(60))
    send = lambda hdr, payload: u8(NT_SEND) + u16(len(hdr) + len(payload)) + hdr + payload

    img = Image()
    rx_buffers(img, 4, 1526)
    write("net", "rx-one", head(0, 0, 0) + with_image(img) + send(vnet_hdr(), frame) + u8(NT_FD) +
          send(vnet_hdr(2), frame) + u8(NT_FD))

    img = Image()
    rx_buffers(img, 8, 1024)
    write("net", "rx-mergeable", head(0, bits(NF_MRG), 1) + with_image(img) +
          u8(NT_SEND_BIG) + vnet_hdr() + u32(3000) + u8(NT_FD) + u8(NT_SEND_BIG) + vnet_hdr() + u32(9000) +
          u8(NT_FD) + u8(NT_GAVAIL) + u8(0) + u16(0) + u8(NT_KICK) + u8(0))

    img = Image()
    write("net", "rx-wait", head(0, bits(NF_MRG), 0) + with_image(img) + send(vnet_hdr(), frame) + u8(NT_FD) +
          u8(NT_GWRITE) + u32(RXD) + u8(16) + struct.pack("<QIHH", RXBUF, 2048, F_WRITE, 0) +
          u8(NT_GAVAIL) + u8(0) + u16(0) + u8(NT_KICK) + u8(0) + u8(NT_FD))

    img = Image()
    rx_buffers(img, 4, 2048)
    off = TUN_CSUM | TUN_TSO4 | TUN_TSO6 | TUN_ECN | TUN_UFO
    feat = bits(NF_GUEST_CSUM, NF_GUEST_TSO4, NF_GUEST_TSO6, NF_GUEST_ECN, NF_GUEST_UFO, NF_MRG)
    write("net", "rx-offloads", head(off, feat, 3) + with_image(img) +
          send(vnet_hdr(1, 1, 54, 1448, 34, 16), frame) + send(vnet_hdr(1, 0x81, 54, 1448, 34, 16), frame) +
          send(vnet_hdr(0, 9), frame) + send(b"\0" * 5, b"") + u8(NT_FD))

    img = Image()
    tx_frames(img, [(vnet_hdr(), frame), (vnet_hdr(1, 0, 0, 0, 34, 16), frame),
                    (vnet_hdr(1, 1, 54, 1448, 34, 16), frame), (vnet_hdr(0x80), frame)])
    write("net", "tx", head(0, bits(NF_CSUM, NF_HOST_TSO4, NF_HOST_TSO6, NF_HOST_ECN, NF_HOST_UFO), 0) +
          with_image(img) + u8(NT_KICK) + u8(1) + u8(NT_DRAIN))

    # Large TX frames with the host not reading: EAGAIN, POLLOUT, then the host drains.
    img = Image()
    img.put(TXBUF, vnet_hdr())
    for i in range(8):
        img.desc(TXD, 2 * i, TXBUF, 12, F_NEXT, 2 * i + 1)
        img.desc(TXD, 2 * i + 1, 0x10000, 60000)
    img.avail(TXA, [2 * i for i in range(8)])
    write("net", "tx-backpressure", head(0, 0, 0) + with_image(img) + u8(NT_KICK) + u8(1) + u8(NT_FD) +
          u8(NT_DRAIN) + u8(NT_FD) + u8(NT_DRAIN) + u8(NT_FD))

    img = Image()
    rx_buffers(img, 2, 1526)
    write("net", "reset-hangup", head(0, 0, 0) + with_image(img) + send(vnet_hdr(), frame) + u8(NT_RESET) +
          u8(NT_ACTIVATE) + u64(bits(NF_MRG)) + u8(NT_FD) + u8(NT_CLOSE) + u8(NT_FD) + u8(NT_KICK) + u8(1))
    write("net", "offload-fail", head(TUN_CSUM, bits(NF_GUEST_CSUM), 4) + with_image(img) + u8(NT_KICK) + u8(1) +
          u8(NT_RESET) + u8(NT_ACTIVATE) + u64(0))

    img = Image()
    img.avail(RXA, [300 % 16, 77])
    write("net", "malformed", head(0, 0, 0) + with_image(img) + send(vnet_hdr(), frame) + u8(NT_FD) +
          u8(NT_KICK) + u8(1))

    write("net", "pure", head(0, 0, 0) + u16(0) +
          u8(NT_PURE) + u8(4) + u8(1) + u64(bits(NF_GUEST_CSUM, NF_CSUM)) + u32(3000) + vnet_hdr(1, 0, 0, 0, 34, 16) +
          b"".join(u8(1) + u16(1024) for _ in range(4)) +
          u8(NT_PURE) + u8(1) + u8(0) + u64(0) + u32(60) + vnet_hdr(2) + u8(0) + u32(1526))


# ---------------------------------------------------------------- mmio

MMIO_REGS = [0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044,
             0x050, 0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x0fc,
             0x100, 0x101, 0x104, 0x108, 0x10c, 0x110, 0x1ff, 0x048, 0x03c, 0xffc]


def reg(off):
    return MMIO_REGS.index(off)


def wr(off, val, width=4):
    wsel = {4: 0, 1: 4, 2: 5, 8: 6, 3: 7}[width]
    return u8(0) + u8(reg(off)) + u8(wsel) + val.to_bytes(width, "little")


def rd(off, width=4):
    wsel = {4: 0, 1: 4, 2: 5, 8: 6, 3: 7}[width]
    return u8(1) + u8(reg(off)) + u8(wsel)


def kick(q):
    return u8(2) + u8(q)


def queue_setup(q, num, desc, avail, used):
    return (wr(0x030, q) + rd(0x034) + wr(0x038, num) + wr(0x080, desc) + wr(0x084, 0) + wr(0x090, avail) +
            wr(0x094, 0) + wr(0x0a0, used) + wr(0x0a4, 0) + wr(0x044, 1) + rd(0x044))


def mmio_seeds():
    img = Image()
    img.desc(0x0000, 0, 0x1800, 16, F_NEXT, 1)
    img.desc(0x0000, 1, 0x1900, 64, F_WRITE)
    img.avail(0x0800, [0])
    hello = rd(0x000) + rd(0x004) + rd(0x008) + rd(0x00c)
    features = (wr(0x070, 0) + wr(0x070, 1) + wr(0x070, 3) + wr(0x014, 0) + rd(0x010) + wr(0x014, 1) + rd(0x010) +
                wr(0x024, 0) + wr(0x020, (1 << 28) | (1 << 29) | 1) + wr(0x024, 1) + wr(0x020, 1) +
                wr(0x070, 0xb) + rd(0x070))
    run = (wr(0x070, 0xf) + wr(0x050, 0) + kick(0) + rd(0x060) + wr(0x064, 1) + rd(0x060) + rd(0x0fc) +
           rd(0x100, 1) + rd(0x104, 2) + rd(0x108, 8) + wr(0x100, 0x55, 1) + rd(0x100, 4))
    body = hello + features + queue_setup(0, 8, 0x0000, 0x0800, 0x1000) + run
    write("mmio", "bringup", u8(1) + u64(1) + u8(0) + with_image(img) + body)
    write("mmio", "bringup-8q", u8(7) + u64(0xffff) + u8(0) + with_image(img) + hello + features +
          queue_setup(0, 8, 0x0000, 0x0800, 0x1000) + queue_setup(7, 256, 0x2000, 0x3000, 0x3400) + run +
          kick(7) + kick(8) + wr(0x070, 0) + rd(0x070))
    write("mmio", "activate-fails", u8(0) + u64(1) + u8(1) + with_image(img) + body + u8(3) + rd(0x070) +
          wr(0x070, 0) + body)
    # Misuse: bad widths, read-only and write-only registers, queue changes after DRIVER_OK,
    # DRIVER_OK without FEATURES_OK, features without VERSION_1, a ring outside RAM.
    misuse = (wr(0x000, 1) + rd(0x050) + rd(0x070, 2) + wr(0x070, 1, 1) + rd(0x070, 3) + u8(1) + u8(0x80) + u8(0x48) +
              u8(0) + wr(0x070, 7) + wr(0x024, 0) + wr(0x020, 1) + wr(0x070, 0xb) + rd(0x070) +
              queue_setup(0, 3, 0x3ff0, 0, 0) + wr(0x070, 0) + features + queue_setup(0, 8, 0, 0x800, 0x1000) +
              wr(0x070, 0xf) + wr(0x038, 16) + wr(0x044, 0) + wr(0x070, 3) + wr(0x050, 9) + wr(0x024, 5) +
              wr(0x020, 1) + wr(0x014, 7) + rd(0x010))
    write("mmio", "misuse", u8(1) + u64(1 << 40) + u8(0) + with_image(img) + misuse)


# ---------------------------------------------------------------- boot and decompress

def elf(entry, segs):
    """ELF64 x86-64 ET_EXEC; segs: (type, paddr, data, memsz, align)."""
    phoff = 64
    off = phoff + 56 * len(segs)
    hdr = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9)
    hdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, 64, 56, len(segs), 64, 0, 0)
    phdrs, body = bytearray(), bytearray()
    for (ptype, paddr, data, memsz, align) in segs:
        phdrs += struct.pack("<IIQQQQQQ", ptype, 7, off + len(body), paddr, paddr, len(data), memsz, align)
        body += data
    return bytes(hdr + phdrs + body)


def pvh_note(entry, desc=None):
    d = desc if desc is not None else u32(entry)
    return u32(4) + u32(len(d)) + u32(18) + b"Xen\0" + d + b"\0" * (-len(d) % 4)


CODE = bytes((i * 37 + 11) & 0xFF for i in range(0x240))


def lz4_legacy(data):
    """LZ4 legacy stream, one block of literals only (a valid LZ4 block)."""
    n = len(data)
    token = bytearray()
    if n < 15:
        token.append(n << 4)
    else:
        token.append(0xF0)
        rest = n - 15
        while rest >= 255:
            token.append(255)
            rest -= 255
        token.append(rest)
    block = bytes(token) + data
    return b"\x02\x21\x4c\x18" + u32(len(block)) + block


def tool(cmd, data):
    if not shutil.which(cmd[0]):
        return None
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, check=True).stdout


def compressed(data):
    out = {
        "gzip": gzip.compress(data, 9, mtime=0),
        "xz": lzma.compress(data, lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
        "lz4-legacy": lz4_legacy(data),
    }
    lz4l = tool(["lz4", "-l", "-9", "-c"], data)
    if lz4l:
        out["lz4-legacy-tool"] = lz4l
    lz4f = tool(["lz4", "-9", "-c"], data)
    if lz4f:
        out["lz4-frame"] = lz4f
    zst = tool(["zstd", "-19", "-c", "-q"], data)
    if zst:
        out["zstd"] = zst
    return out


def bzimage(payload, code_len=0x40, version=0x020F, xlf=1, reloc=0, align=0x200000, pref=0x1000000,
            init_size=0x100000, setup_sects=1):
    pm = ((setup_sects or 4) + 1) * 512   # 0 in the file means 4
    b = bytearray(pm + code_len + len(payload))
    b[0x1F1] = setup_sects
    b[0x1FE:0x200] = u16(0xAA55)
    b[0x200:0x202] = u16(0xEB | (0x26C - 0x202) << 8)
    b[0x202:0x206] = b"HdrS"
    b[0x206:0x208] = u16(version)
    b[0x211] = 1
    b[0x214:0x218] = u32(0x100000)
    b[0x22C:0x230] = u32(0x7FFFFFFF)
    b[0x230:0x234] = u32(align)
    b[0x234] = reloc
    b[0x236:0x238] = u16(xlf)
    b[0x238:0x23C] = u32(2047)
    b[0x248:0x24C] = u32(code_len)
    b[0x24C:0x250] = u32(len(payload))
    b[0x258:0x260] = u64(pref)
    b[0x260:0x264] = u32(init_size)
    b[pm:pm + code_len] = CODE[:code_len]
    b[pm + code_len:] = payload
    return bytes(b)


def boot_seeds():
    vmlinux = elf(0x1000200, [(1, 0x1000000, CODE, 0x2000, 0x1000)])
    two = elf(0x100000, [(1, 0x100000, CODE[:0x100], 0x100, 0x1000), (1, 0x200000, CODE[:0x80], 0x1000, 0x1000),
                         (6, 0, b"", 0, 8)])
    pvh = elf(0x100000, [(1, 0x100000, CODE, 0x1000, 0x1000), (4, 0, pvh_note(0x100010), 0, 4)])
    pvh8 = elf(0x100000, [(1, 0x100000, CODE, 0x1000, 0x1000),
                          (4, 0, u32(4) + u32(4) + u32(1) + b"GNU\0" + u32(0) + pvh_note(0, u64(0x100020)), 0, 8)])
    write("boot", "elf", vmlinux)
    write("boot", "elf-two-segments", two)
    write("boot", "elf-pvh", pvh)
    write("boot", "elf-pvh-quad", pvh8)
    for name, data in compressed(vmlinux).items():
        write("boot", "elf-" + name, data)
        write("boot", "bzimage-" + name, bzimage(data + u32(len(vmlinux))))
        write("decompress", name, data + u32(len(vmlinux)))
    write("boot", "bzimage-uncompressed", bzimage(vmlinux))
    write("boot", "bzimage-fallback", bzimage(b"\x00\x01\x02\x03junk"))
    write("boot", "bzimage-fallback-reloc", bzimage(b"junk", code_len=0x400, reloc=1, pref=0x200000, align=0x1000))
    write("boot", "bzimage-old", bzimage(b"", version=0x0208, xlf=0, setup_sects=0, code_len=0x10))
    # Larger output for the decompressors: repeats compress well, the cap check sees more.
    big = bytes((i // 7) & 0xFF for i in range(0x8000)) * 4
    for name, data in compressed(big).items():
        if name != "lz4-legacy":   # literals only: as big as the data
            write("decompress", "big-" + name, data)
    write("decompress", "gzip-concatenated", gzip.compress(b"abc", mtime=0) + gzip.compress(b"def", mtime=0))


# ---------------------------------------------------------------- cli

def cli_seeds():
    lines = {
        "basic": ["--kernel", "bzImage", "--mem", "512M", "--cpus", "2", "--cmdline", "console=ttyS0 root=/dev/vda"],
        "disks": ["--kernel=k", "--disk", "a.img,ro,id=data", "--disk=b.img,direct", "--run", "t.sh",
                  "--io-engine", "uring"],
        "net": ["--kernel", "k", "--net", "tap=tap0,mac=02:00:00:00:00:01", "--net=tap=tap1,mac=random",
                "--net", "mac=02:AA:bb:cc:dd:ee,tap=t.2"],
        "misc": ["--kernel", "k", "--initrd", "i", "--timeout", "0.5", "--stats=json", "-q", "-v",
                 "--no-host-quirks", "--cmdline-devices", "--mem=1GiB", "--io-engine=sync"],
        "host-info": ["--host-info", "--stats", "--timeout=31536000"],
        "help": ["--help"],
        "version": ["-V"],
        "bad-values": ["--kernel", "k", "--mem", "18446744073709551615T", "--cpus", "65"],
        "sizes": ["--kernel", "k", "--mem", "16777216", "--mem", "2g", "--mem", "1tb", "--timeout", "1."],
    }
    for name, args in lines.items():
        write("cli", name, "\n".join(args).encode())
    write("cli", "nul-separated", b"--kernel\0k\0--disk\0x,id=abcdefghijklmnopqrst\0")


# ---------------------------------------------------------------- config

def config_seeds():
    files = {
        "full": """{"kernel": "bzImage", "initrd": null, "cmdline": "console=ttyS0", "mem": "512M", "cpus": 2,
 "disks": [{"path": "root.ext4", "ro": false, "direct": false, "id": "root"}, "data.img,ro,direct,id=data"],
 "nets": [{"tap": "tap0", "mac": "02:00:00:00:00:01"}, "tap=tap1,mac=random", {"tap": "t.2", "mac": null}],
 "io_engine": "auto", "cmdline_devices": false, "no_host_quirks": false, "timeout": 30,
 "stats": "json", "run": "test.sh", "user": "nobody"}""",
        "numbers": '{"kernel": "/k", "mem": 1073741824, "cpus": 64, "timeout": 0.5, "stats": "off", "io_engine": "io_uring"}',
        "strings": '{"kernel": "k", "mem": "2GiB", "timeout": "31536000", "cmdline": "a=\\"b c\\" \\u00e9\\n", "user": "0:0"}',
        "errors": '{"kernel": 3, "disks": [{"path": "a,b", "idx": 1}], "nets": ["tap="], "cpus": 2.0}',
        "empty": "{}",
        "null": "null",
        "nested": '{"disks": [[[[{"path": [{}]}]]]], "nets": {"tap": [1, true, null, -0.0e-1]}}',
    }
    for name, text in files.items():
        write("config", name, text.encode())
    # The file, a NUL, then command-line arguments over it.
    write("config", "with-flags", b'{"kernel": "k", "cpus": 2, "disks": ["/a"], "nets": ["tap=t0"]}\0'
          b"--cpus\n4\n--disk\nb,ro\n--net\ntap=t0\n--stats=off\n--kernel=k2")
    write("config", "with-help", b'not json\0--help')
    write("config", "nul-inside", b'{"kernel": "k\0", "cmdline": "x"}')


def overlay_seeds():
    """Overlay files (docs/overlay.md): base size, file size, mode 3 (CRC fixed, bitmap), header area, bitmap."""
    import zlib

    def header(size):
        clusters = (size + 4095) // 4096
        blen = ((clusters + 7) // 8 + 4095) // 4096 * 4096
        h = b"MVMOVL\r\n" + u32(1) + u32(128) + u32(4096) + u32(0) + u64(size) + u64(4096) + u64(blen) + \
            u64(4096 + blen) + bytes(68)
        h += u32(zlib.crc32(h + bytes(4)))
        return h, 4096 + blen + clusters * 4096

    for name, size, bits in (("small", 64 << 10, b"\x05\x80"), ("partial", 3 * 4096 + 1536, b"\x09"),
                             ("large", 1 << 30, b"\xff" * 64)):
        h, file_size = header(size)
        write("overlay", name, u64(size) + u64(file_size) + bytes([3]) + h.ljust(4096, b"\0") + bits)
    h, file_size = header(64 << 10)
    write("overlay", "raw", u64(64 << 10) + u64(file_size) + bytes([0]) + h)


def workingset_seeds():
    """A working-set file (vmm/workingset.h) as fuzz_workingset.c's mode byte takes it: the
    ranges alone (mode 1: the harness adds header and CRC), or a whole file (mode 0)."""
    import struct
    import zlib
    clean("workingset")
    ranges = b"".join(u64(o) + u64(n) for o, n in
                      ((0, 4096), (0x10000, 0x40000), (0x100000, 4096), ((1 << 30) - 8192, 8192)))
    write("workingset", "sealed", u8(1) + ranges)
    body = b"MVMWSET\n" + u32(1) + u32(32) + u32(4) + u32(0x5eed5eed) + u64(1 << 30) + ranges
    write("workingset", "whole", u8(0) + body + struct.pack("<I", zlib.crc32(body)))
    write("workingset", "empty", u8(0) + b"MVMWSET\n" + u32(1) + u32(32) + u32(0) + u32(0x5eed5eed) +
          u64(1 << 30) + struct.pack("<I", zlib.crc32(b"MVMWSET\n" + u32(1) + u32(32) + u32(0) +
                                                      u32(0x5eed5eed) + u64(1 << 30))))


def main():
    for name in ("virtqueue", "blk", "net", "mmio", "boot", "decompress", "cli", "config", "overlay"):
        clean(name)
    virtqueue_seeds()
    blk_seeds()
    net_seeds()
    mmio_seeds()
    boot_seeds()
    cli_seeds()
    config_seeds()
    overlay_seeds()
    workingset_seeds()
    total = 0
    for name in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, name))
        size = sum(os.path.getsize(os.path.join(CORPUS, name, f)) for f in files)
        total += size
        print(f"{name:12s} {len(files):3d} files {size:7d} bytes")
    print(f"{'total':12s}     {total:7d} bytes")


if __name__ == "__main__":
    sys.exit(main())
