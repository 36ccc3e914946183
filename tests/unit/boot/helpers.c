/* helpers.c - builders for the boot/ unit tests (see helpers.h). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

void tbuf_free(struct tbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

struct tbuf tbuf_prefix(const struct tbuf *b, size_t n)
{
	struct tbuf r = { malloc(n ? n : 1), n };

	cr_assert(n <= b->len);
	cr_assert_not_null(r.p);
	memcpy(r.p, b->p, n);
	return r;
}

void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

uint8_t pattern(unsigned seed, size_t i)
{
	return (uint8_t)((i * 131 + seed * 17 + (i >> 8) * 7) ^ (seed << 4));
}

void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(seed, i);
}

struct tbuf make_elf(uint64_t entry, const struct tseg *segs, int n)
{
	size_t off = 64 + 56 * (size_t)n;
	size_t total = off;

	for (int i = 0; i < n; i++)
		total = ((total + 15) & ~(size_t)15) + segs[i].filesz;
	struct tbuf b = { calloc(1, total), total };
	cr_assert_not_null(b.p);
	memcpy(b.p, "\x7f" "ELF", 4);
	b.p[4] = 2;   /* ELFCLASS64 */
	b.p[5] = 1;   /* little endian */
	b.p[6] = 1;   /* EV_CURRENT */
	put16(b.p + 16, 2);    /* ET_EXEC */
	put16(b.p + 18, 62);   /* EM_X86_64 */
	put32(b.p + 20, 1);
	put64(b.p + 24, entry);
	put64(b.p + 32, 64);   /* e_phoff */
	put16(b.p + 52, 64);
	put16(b.p + 54, 56);
	put16(b.p + 56, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		uint8_t *ph = b.p + T_PHDR(i);
		off = (off + 15) & ~(size_t)15;
		put32(ph + 0, segs[i].type);
		put32(ph + 4, 7);
		put64(ph + 8, off);
		put64(ph + 16, segs[i].paddr);
		put64(ph + 24, segs[i].paddr);
		put64(ph + 32, segs[i].filesz);
		put64(ph + 40, segs[i].memsz);
		put64(ph + 48, segs[i].align);
		if (segs[i].data)
			memcpy(b.p + off, segs[i].data, segs[i].filesz);
		else
			fill_pattern(b.p + off, segs[i].filesz, (unsigned)i + 1);
		off += segs[i].filesz;
	}
	return b;
}

void add_note(uint8_t *out, size_t *off, const char *name, uint32_t type, const void *desc,
	      uint32_t descsz)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;
	uint8_t *p = out + *off;

	put32(p, namesz);
	put32(p + 4, descsz);
	put32(p + 8, type);
	memset(p + 12, 0, ((namesz + 3) & ~3u) + ((descsz + 3) & ~3u));
	memcpy(p + 12, name, namesz);
	memcpy(p + 12 + ((namesz + 3) & ~3u), desc, descsz);
	*off += 12 + ((namesz + 3) & ~3u) + ((descsz + 3) & ~3u);
}

struct tbuf simple_elf(uint64_t paddr, uint64_t filesz, uint64_t bss, bool pvh, uint32_t pvh_entry)
{
	uint8_t notes[64];
	size_t nlen = 0;
	uint8_t le[4];

	put32(le, pvh_entry);
	add_note(notes, &nlen, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, le, 4);
	struct tseg segs[2] = {
		{ .type = 1, .paddr = paddr, .filesz = filesz, .memsz = filesz + bss, .align = 4096 },
		{ .type = 4, .filesz = nlen, .memsz = 0, .align = 4, .data = notes },
	};
	return make_elf(paddr + 0x200, segs, pvh ? 2 : 1);
}

struct tbz tbz_default(void)
{
	return (struct tbz){
		.setup_sects = 1, .version = 0x020f, .xloadflags = XLF_KERNEL_64,
		.relocatable = 0, .kernel_alignment = 2 << 20, .pref_address = 0x1000000,
		.init_size = 8 << 20, .cmdline_size = 2047, .initrd_addr_max = 0x7fffffff,
		.code_len = 0x1000,
	};
}

struct tbuf make_bzimage(const struct tbz *z)
{
	size_t sects = z->setup_sects ? z->setup_sects : 4;
	size_t pm = (sects + 1) * 512;
	size_t total = pm + z->code_len + z->payload_len;
	struct tbuf b = { calloc(1, total), total };

	cr_assert_not_null(b.p);
	b.p[0x1f1] = z->setup_sects;
	put16(b.p + 0x1fe, 0xaa55);
	put16(b.p + 0x200, 0xeb | (0x26c - 0x202) << 8);
	memcpy(b.p + 0x202, "HdrS", 4);
	put16(b.p + 0x206, z->version);
	b.p[0x211] = LOADED_HIGH;
	put32(b.p + 0x214, 0x100000);
	put32(b.p + 0x22c, z->initrd_addr_max);
	put32(b.p + 0x230, z->kernel_alignment);
	b.p[0x234] = z->relocatable;
	put16(b.p + 0x236, z->xloadflags);
	put32(b.p + 0x238, z->cmdline_size);
	put32(b.p + 0x248, (uint32_t)z->code_len);
	put32(b.p + 0x24c, (uint32_t)z->payload_len);
	put64(b.p + 0x258, z->pref_address);
	put32(b.p + 0x260, z->init_size);
	/* Something after the header, so a copy that is too long shows. */
	memset(b.p + 0x26c, 0xcc, 0x290 - 0x26c);
	fill_pattern(b.p + pm, z->code_len, 7);
	if (z->payload_len)
		memcpy(b.p + pm + z->code_len, z->payload, z->payload_len);
	return b;
}

struct tbuf gzip_of(const uint8_t *p, size_t n)
{
	z_stream z;
	struct tbuf b;

	memset(&z, 0, sizeof(z));
	cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	b.len = deflateBound(&z, n);
	b.p = malloc(b.len);
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	z.next_out = b.p;
	z.avail_out = (uInt)b.len;
	cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	b.len = z.total_out;
	deflateEnd(&z);
	return b;
}

struct tbuf zstd_of(const uint8_t *p, size_t n)
{
	struct tbuf b;

	ZSTD_CCtx *cc = ZSTD_createCCtx();

	/* With a checksum, like the zstd command line. */
	cr_assert_not_null(cc);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1)));
	b.len = ZSTD_compressBound(n);
	b.p = malloc(b.len);
	size_t r = ZSTD_compress2(cc, b.p, b.len, p, n);
	cr_assert(!ZSTD_isError(r));
	ZSTD_freeCCtx(cc);
	b.len = r;
	return b;
}

struct tbuf xz_of(const uint8_t *p, size_t n)
{
	struct tbuf b;
	size_t pos = 0;

	b.len = lzma_stream_buffer_bound(n);
	b.p = malloc(b.len);
	cr_assert_eq(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, p, n, b.p, &pos, b.len), LZMA_OK);
	b.len = pos;
	return b;
}

struct tbuf lz4frame_of(const uint8_t *p, size_t n)
{
	struct tbuf b;

	LZ4F_preferences_t prefs;

	/* With a content checksum, like the lz4 command line. */
	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	b.len = LZ4F_compressFrameBound(n, &prefs);
	b.p = malloc(b.len);
	size_t r = LZ4F_compressFrame(b.p, b.len, p, n, &prefs);
	cr_assert(!LZ4F_isError(r));
	b.len = r;
	return b;
}

struct tbuf lz4legacy_of(const uint8_t *p, size_t n, size_t block)
{
	size_t nblocks = (n + block - 1) / block;
	size_t cap = 4 + nblocks * (4 + (size_t)LZ4_compressBound((int)block));
	struct tbuf b = { malloc(cap), 4 };

	memcpy(b.p, "\x02\x21\x4c\x18", 4);
	for (size_t off = 0; off < n; off += block) {
		int in = (int)(n - off < block ? n - off : block);
		int r = LZ4_compress_default((const char *)p + off, (char *)b.p + b.len + 4, in,
					     LZ4_compressBound(in));
		cr_assert_gt(r, 0);
		put32(b.p + b.len, (uint32_t)r);
		b.len += 4 + (size_t)r;
	}
	return b;
}

void append_size(struct tbuf *b, uint32_t n)
{
	b->p = realloc(b->p, b->len + 4);
	put32(b->p + b->len, n);
	b->len += 4;
}

void guest_setup(struct guest_mem *mem, struct machine *m, uint64_t size)
{
	gpa_t start = 0;

	cr_assert_eq(guest_mem_map(mem, &start, &size, 1), 0);
	cr_assert_eq(machine_init(m, size, 1), 0);
}
