/* helpers.h - builders for the boot/ unit tests: synthetic ELFs, bzImages, compressed data, guest RAM. */
#ifndef MICROVM_TEST_BOOT_HELPERS_H
#define MICROVM_TEST_BOOT_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/internal.h"
#include "firmware/machine.h"
#include "base/guest_mem.h"

#define MiB (1ULL << 20)

/* A malloc()ed byte buffer. */
struct tbuf {
	uint8_t *p;
	size_t len;
};

void tbuf_free(struct tbuf *b);

/* A copy of b in a buffer of exactly n bytes (n <= b->len), so ASan sees any read past n. */
struct tbuf tbuf_prefix(const struct tbuf *b, size_t n);

/* Little-endian writes. */
void put16(uint8_t *p, uint16_t v);
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);

/* Deterministic test bytes: pattern(seed, i). */
uint8_t pattern(unsigned seed, size_t i);
void fill_pattern(uint8_t *p, size_t n, unsigned seed);

/* ---- ELF ---- */

struct tseg {
	uint32_t type;      /* 1 PT_LOAD, 4 PT_NOTE */
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
	uint64_t align;     /* p_align (notes: 4 or 8) */
	const uint8_t *data;  /* file bytes (filesz of them); NULL: pattern(seed = index + 1) */
};

/* An ELF64 x86-64 ET_EXEC with the given program headers; data after them, 16-aligned. */
struct tbuf make_elf(uint64_t entry, const struct tseg *segs, int n);

/* Offsets inside a make_elf() image, to corrupt it. */
#define T_PHDR(i) (64 + 56 * (size_t)(i))

/* Append one ELF note (name NUL terminated, 4-byte padding) to out at *off. */
void add_note(uint8_t *out, size_t *off, const char *name, uint32_t type, const void *desc,
	      uint32_t descsz);

/* One-segment kernel at paddr (filesz bytes + bss bytes), entry at paddr + 0x200, optional PVH note. */
struct tbuf simple_elf(uint64_t paddr, uint64_t filesz, uint64_t bss, bool pvh, uint32_t pvh_entry);

/* ---- bzImage ---- */

struct tbz {
	uint8_t setup_sects;       /* as stored (0 means 4) */
	uint16_t version;
	uint16_t xloadflags;
	uint8_t relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
	size_t code_len;           /* protected-mode code before the payload (pattern 7) */
	const uint8_t *payload;
	size_t payload_len;
};

/* Defaults: 1 setup sector, 2.15, XLF_KERNEL_64, not relocatable, 2 MiB alignment,
 * pref 0x1000000, init_size 8 MiB, cmdline 2047, initrd max 0x7fffffff, 0x1000 code bytes. */
struct tbz tbz_default(void);
struct tbuf make_bzimage(const struct tbz *z);

/* ---- compression (with the libraries, at test time) ---- */

struct tbuf gzip_of(const uint8_t *p, size_t n);
struct tbuf zstd_of(const uint8_t *p, size_t n);
struct tbuf xz_of(const uint8_t *p, size_t n);
struct tbuf lz4frame_of(const uint8_t *p, size_t n);
/* LZ4 legacy stream with blocks of block bytes of input each (<= 8 MiB). */
struct tbuf lz4legacy_of(const uint8_t *p, size_t n, size_t block);
/* Append n as 4 bytes little endian (Linux's size_append). */
void append_size(struct tbuf *b, uint32_t n);

/* ---- guest RAM ---- */

/* Map size bytes of RAM at 0 (one region) and describe the machine. */
void guest_setup(struct guest_mem *mem, struct machine *m, uint64_t size);

#endif
