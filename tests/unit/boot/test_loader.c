/* test_loader.c - boot_load_kernel() on every format and path, its error texts, and initrd placement. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "base/err.h"

#define RAM (64 * MiB)

static struct guest_mem mem;
static struct machine mach;

static void setup(void)
{
	guest_setup(&mem, &mach, RAM);
}

static void teardown(void)
{
	guest_mem_unmap(&mem);
}

TestSuite(loader, .init = setup, .fini = teardown);

static uint8_t *ram(uint64_t gpa, uint64_t len)
{
	uint8_t *p = gpa_to_host(&mem, gpa, len);
	cr_assert_not_null(p);
	return p;
}

/* The first segment of simple_elf() (pattern seed 1) is at paddr in guest RAM, its bss zeroed. */
static void assert_loaded(uint64_t paddr, uint64_t filesz, uint64_t bss)
{
	const uint8_t *p = ram(paddr, filesz + bss);

	for (uint64_t i = 0; i < filesz; i++)
		cr_assert_eq(p[i], pattern(1, i), "byte 0x%llx of the segment", (unsigned long long)i);
	for (uint64_t i = filesz; i < filesz + bss; i++)
		cr_assert_eq(p[i], 0, "bss byte 0x%llx not zeroed", (unsigned long long)i);
}

#define assert_msg(text) cr_assert_str_eq(err_msg(), (text))
#define assert_msg_has(text) cr_assert(strstr(err_msg(), (text)) != NULL, "message: %s", err_msg())

/* ---- plain ELF ---- */

Test(loader, elf64_without_pvh_note)
{
	struct tbuf b = simple_elf(0x200000, 0x3000, 0x1000, false, 0);
	struct boot_kernel k;

	memset(ram(0x203000, 0x1000), 0xff, 0x1000);   /* the bss must be cleared */
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.mode, BOOT_LINUX64);
	cr_assert_eq(k.entry, 0x200200);
	cr_assert_eq(k.load_start, 0x200000);
	cr_assert_eq(k.load_end, 0x204000);
	assert_loaded(0x200000, 0x3000, 0x1000);
	cr_assert_not(k.have_setup_header);
	cr_assert_eq(memcmp(k.setup_header + 0x202 - 0x1f1, "HdrS", 4), 0, "synthesized header");
	cr_assert_eq(k.initrd_addr_max, 0x7fffffff);
	cr_assert_eq(k.cmdline_max, MV_CMDLINE_MAX - 1);
	cr_assert_str_eq(k.how, "ELF: no PVH note, entering at 0x200200 (64-bit boot protocol)");
	tbuf_free(&b);
}

Test(loader, elf_with_pvh_note)
{
	struct tbuf b = simple_elf(0x100000, 0x2000, 0, true, 0x100010);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.mode, BOOT_PVH);
	cr_assert_eq(k.entry, 0x100010);
	assert_loaded(0x100000, 0x2000, 0);
	cr_assert_str_eq(k.how, "ELF: PVH note found, entering at 0x100010 (32-bit PVH boot protocol)");
	tbuf_free(&b);
}

Test(loader, entry_outside_the_segments)
{
	struct tbuf b = simple_elf(0x100000, 0x2000, 0, true, 0x300000);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -EINVAL);
	assert_msg("the entry point 0x300000 is not inside a loaded segment");
	tbuf_free(&b);

	b = simple_elf(0x100000, 0x100, 0, false, 0);   /* e_entry = paddr + 0x200, past the end */
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -EINVAL);
	assert_msg_has("entry point 0x100200 is not inside");
	tbuf_free(&b);
}

Test(loader, segment_outside_ram)
{
	struct tbuf b = simple_elf(0x4000000, 0x1000, 0, false, 0);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -ERANGE);
	/* Without the file's name or a flag: vmm/vm.c adds "--kernel NAME: " and "; try a larger --mem". */
	assert_msg("segment at 0x4000000 (+0x1000 bytes) is outside guest RAM (64 MiB)");
	tbuf_free(&b);

	/* Straddling the end of RAM by one byte. */
	b = simple_elf(RAM - 0x1000, 0x1000, 1, false, 0);
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -ERANGE);
	assert_msg_has("segment at 0x3fff000 (+0x1001 bytes) is outside guest RAM");
	tbuf_free(&b);

	/* Ending exactly at the end of RAM is fine. */
	b = simple_elf(RAM - 0x1000, 0x1000, 0, false, 0);
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), 0, "%s", err_msg());
	tbuf_free(&b);
}

Test(loader, segment_below_1_mib)
{
	struct tbuf b = simple_elf(0x8000, 0x1000, 0, false, 0);
	struct boot_kernel k;

	/* -EINVAL, not -ERANGE: more RAM would not help. */
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -EINVAL);
	assert_msg("segment at 0x8000 (+0x1000 bytes) is below 1 MiB, where microvm "
		   "keeps the boot structures; relink the kernel at or above 0x100000");
	tbuf_free(&b);

	b = simple_elf(0xff000, 0x2000, 0, false, 0);   /* starts just below 1 MiB */
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -EINVAL);
	tbuf_free(&b);
}

Test(loader, nothing_written_when_a_later_segment_fails)
{
	struct tseg segs[2] = {
		{ .type = 1, .paddr = 0x200000, .filesz = 0x1000, .memsz = 0x1000 },
		{ .type = 1, .paddr = 0x8000000, .filesz = 0x10, .memsz = 0x10 },
	};
	struct tbuf b = make_elf(0x200000, segs, 2);
	struct boot_kernel k;

	memset(ram(0x200000, 0x1000), 0xee, 0x1000);
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -ERANGE);
	cr_assert_eq(ram(0x200000, 1)[0], 0xee);
	tbuf_free(&b);
}

Test(loader, elf_parse_errors_name_the_file)
{
	struct tbuf b = simple_elf(0x200000, 0x1000, 0, false, 0);
	struct boot_kernel k;

	put16(b.p + 18, 40);   /* ARM */
	cr_assert_eq(boot_load_kernel(&mem, b.p, b.len, &k), -EINVAL);
	assert_msg("not an x86-64 ELF kernel (machine 40, x86-64 is 62)");
	put16(b.p + 18, 62);
	struct tbuf t = tbuf_prefix(&b, 100);
	cr_assert_eq(boot_load_kernel(&mem, t.p, t.len, &k), -EINVAL);
	assert_msg_has("truncated ELF");
	tbuf_free(&t);
	tbuf_free(&b);
}

Test(loader, not_a_kernel)
{
	static const char text[] = "This is not a kernel image.\n";
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, (const uint8_t *)text, sizeof(text) - 1, &k),
		     -ENOEXEC);
	assert_msg("not a bzImage or an x86-64 ELF kernel");
	cr_assert_eq(boot_load_kernel(&mem, (const uint8_t *)"", 0, &k), -ENOEXEC);
	assert_msg("not a bzImage or an x86-64 ELF kernel");
}

/* ---- compressed ELF files ---- */

static struct tbuf compress_as(enum comp_format f, const uint8_t *p, size_t n)
{
	switch (f) {
	case COMP_GZIP: return gzip_of(p, n);
	case COMP_LZ4_LEGACY: return lz4legacy_of(p, n, 1 << 20);
	case COMP_LZ4_FRAME: return lz4frame_of(p, n);
	case COMP_ZSTD: return zstd_of(p, n);
	default: return xz_of(p, n);
	}
}

static const enum comp_format all_formats[] = {
	COMP_GZIP, COMP_LZ4_LEGACY, COMP_LZ4_FRAME, COMP_ZSTD, COMP_XZ,
};

Test(loader, compressed_elf_files)
{
	struct tbuf e = simple_elf(0x200000, 0x5000, 0x800, true, 0x200040);

	for (size_t i = 0; i < sizeof(all_formats) / sizeof(all_formats[0]); i++) {
		struct tbuf c = compress_as(all_formats[i], e.p, e.len);
		struct boot_kernel k;
		char want[160];

		memset(ram(0x200000, 0x6000), 0xff, 0x6000);
		cr_assert_eq(boot_load_kernel(&mem, c.p, c.len, &k), 0, "%s: %s",
			     comp_name(all_formats[i]), err_msg());
		cr_assert_eq(k.mode, BOOT_PVH, "the note survives compression");
		cr_assert_eq(k.entry, 0x200040);
		assert_loaded(0x200000, 0x5000, 0x800);
		snprintf(want, sizeof(want), "%s-compressed ELF (", comp_name(all_formats[i]));
		cr_assert(strncmp(k.how, want, strlen(want)) == 0, "how: %s", k.how);
		cr_assert(strstr(k.how, "decompressed on the host): PVH note found") != NULL, "how: %s", k.how);
		tbuf_free(&c);
	}
	tbuf_free(&e);
}

Test(loader, compressed_file_errors)
{
	static const char text[] = "just some text, compressed";
	struct tbuf c = gzip_of((const uint8_t *)text, sizeof(text));
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, c.p, c.len, &k), -ENOEXEC);
	assert_msg("not a bzImage or an x86-64 ELF kernel (gzip-compressed data without "
		   "an ELF inside)");
	c.p[c.len - 6] ^= 0xff;   /* break the CRC */
	cr_assert_eq(boot_load_kernel(&mem, c.p, c.len, &k), -EINVAL);
	assert_msg_has("cannot decompress the gzip file: corrupt data");
	tbuf_free(&c);
}

Test(loader, decompression_is_capped_at_ram_size)
{
	size_t n = RAM + 1;
	uint8_t *big = calloc(1, n);
	memcpy(big, "\x7f" "ELF", 4);
	struct tbuf c = zstd_of(big, n);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, c.p, c.len, &k), -EFBIG);
	assert_msg("cannot decompress the zstd file: the decompressed data is larger "
		   "than 64 MiB");
	tbuf_free(&c);
	free(big);
}

/* ---- bzImage ---- */

static struct tbuf bz_with(const uint8_t *payload, size_t len)
{
	struct tbz z = tbz_default();

	z.payload = payload;
	z.payload_len = len;
	return make_bzimage(&z);
}

Test(loader, bzimage_payloads_decompressed_on_the_host)
{
	/* The PVH note inside a bzImage payload is ignored: a bzImage boots through the zero page. */
	struct tbuf e = simple_elf(0x200000, 0x5000, 0x1000, true, 0x200040);

	for (size_t i = 0; i < sizeof(all_formats) / sizeof(all_formats[0]); i++) {
		struct tbuf c = compress_as(all_formats[i], e.p, e.len);
		if (all_formats[i] != COMP_GZIP)
			append_size(&c, (uint32_t)e.len);
		struct tbuf bz = bz_with(c.p, c.len);
		struct boot_kernel k;
		char want[200];

		memset(ram(0x200000, 0x6000), 0xff, 0x6000);
		cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s: %s",
			     comp_name(all_formats[i]), err_msg());
		cr_assert_eq(k.mode, BOOT_LINUX64);
		cr_assert_eq(k.entry, 0x200200);
		cr_assert_eq(k.load_start, 0x200000);
		cr_assert_eq(k.load_end, 0x206000);
		assert_loaded(0x200000, 0x5000, 0x1000);
		cr_assert(k.have_setup_header);
		cr_assert_eq(memcmp(k.setup_header, bz.p + 0x1f1, 0x26c - 0x1f1), 0, "header copied");
		cr_assert_eq(k.setup_header[0x26c - 0x1f1], 0, "nothing after the header's end");
		cr_assert_eq(k.initrd_addr_max, 0x7fffffff);
		cr_assert_eq(k.cmdline_max, 2047);
		snprintf(want, sizeof(want), "bzImage: %s payload (%.2f MiB -> %.2f MiB) decompressed on the "
			 "host, entering the ELF at 0x200200 (64-bit boot protocol)",
			 comp_name(all_formats[i]), boot_mib(c.len), boot_mib(e.len));
		cr_assert_str_eq(k.how, want);
		tbuf_free(&bz);
		tbuf_free(&c);
	}
	tbuf_free(&e);
}

Test(loader, bzimage_uncompressed_elf_payload)
{
	struct tbuf e = simple_elf(0x300000, 0x2000, 0, false, 0);
	struct tbuf bz = bz_with(e.p, e.len);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.mode, BOOT_LINUX64);
	cr_assert_eq(k.entry, 0x300200);
	assert_loaded(0x300000, 0x2000, 0);
	cr_assert(strstr(k.how, "bzImage: uncompressed ELF payload") != NULL, "how: %s", k.how);
	tbuf_free(&bz);
	tbuf_free(&e);
}

Test(loader, bzimage_cmdline_size_is_capped)
{
	struct tbz z = tbz_default();
	struct tbuf e = simple_elf(0x300000, 0x1000, 0, false, 0);
	struct boot_kernel k;

	z.payload = e.p;
	z.payload_len = e.len;
	z.cmdline_size = 0xffffffff;
	struct tbuf bz = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.cmdline_max, MV_CMDLINE_MAX - 1, "room at MV_CMDLINE_GPA is the limit");
	tbuf_free(&bz);
	tbuf_free(&e);
}

Test(loader, bzimage_corrupt_payload)
{
	struct tbuf e = simple_elf(0x200000, 0x5000, 0, false, 0);
	struct tbuf c = gzip_of(e.p, e.len);
	struct boot_kernel k;

	c.p[c.len / 2] ^= 0xff;
	c.p[c.len / 2 + 1] ^= 0xff;
	struct tbuf bz = bz_with(c.p, c.len);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), -EINVAL);
	assert_msg_has("cannot decompress the gzip payload: corrupt data (");
	tbuf_free(&bz);

	/* Cut short: the payload length says more than there is. */
	bz = bz_with(c.p, c.len);
	struct tbuf t = tbuf_prefix(&bz, bz.len - 10);
	cr_assert_eq(boot_load_kernel(&mem, t.p, t.len, &k), -EINVAL);
	assert_msg_has("truncated bzImage: the payload at 0x1400");
	tbuf_free(&t);
	tbuf_free(&bz);
	tbuf_free(&c);
	tbuf_free(&e);
}

Test(loader, bzimage_truncated_header)
{
	struct tbuf bz = bz_with(NULL, 0);
	struct tbuf t = tbuf_prefix(&bz, 0x230);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, t.p, t.len, &k), -EINVAL);
	assert_msg("truncated bzImage: the setup code takes 1024 bytes (2 sectors), "
		   "the file has only 560");
	tbuf_free(&t);
	tbuf_free(&bz);
}

Test(loader, bzimage_payload_that_is_not_an_elf)
{
	static const char text[] = "not an ELF at all, but compressed";
	struct tbuf c = xz_of((const uint8_t *)text, sizeof(text));
	struct tbuf bz = bz_with(c.p, c.len);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), -EINVAL);
	assert_msg("xz payload: not an ELF file");
	tbuf_free(&bz);
	tbuf_free(&c);
}

/* ---- bzImage with an unknown payload: the fallback path ---- */

static const uint8_t bad_payload[] = "BAD!........................................";

Test(loader, unknown_payload_non_relocatable)
{
	struct tbz z = tbz_default();
	struct boot_kernel k;

	z.payload = bad_payload;
	z.payload_len = sizeof(bad_payload);
	struct tbuf bz = make_bzimage(&z);
	size_t pm_len = bz.len - 0x400;

	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.mode, BOOT_LINUX64);
	cr_assert_eq(k.entry, 0x100200);
	cr_assert_eq(k.load_start, 0x100000);
	cr_assert_eq(k.load_end, 0x100000 + (8 << 20), "init_size bytes are reserved");
	cr_assert_eq(memcmp(ram(0x100000, pm_len), bz.p + 0x400, pm_len), 0, "protected-mode code");
	cr_assert(k.have_setup_header);
	struct setup_header h;
	memcpy(&h, k.setup_header, sizeof(h));
	cr_assert_eq(h.code32_start, 0x100000);
	cr_assert_str_eq(k.how, "bzImage: unknown payload format, entering the bzImage's own 64-bit entry "
			 "at 0x100200");
	tbuf_free(&bz);
}

Test(loader, unknown_payload_relocatable)
{
	struct tbz z = tbz_default();
	struct boot_kernel k;

	z.payload = bad_payload;
	z.payload_len = sizeof(bad_payload);
	z.relocatable = 1;
	z.pref_address = 0x1234567;
	z.kernel_alignment = 2 << 20;
	struct tbuf bz = make_bzimage(&z);

	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.load_start, 0x1400000, "pref_address rounded up to kernel_alignment");
	cr_assert_eq(k.entry, 0x1400200);
	cr_assert_eq(memcmp(ram(0x1400000, 64), bz.p + 0x400, 64), 0);
	tbuf_free(&bz);

	z.kernel_alignment = 3 << 20;
	bz = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), -EINVAL);
	assert_msg_has("kernel_alignment 0x300000 is not a power of two");
	tbuf_free(&bz);
}

/*
 * Found by fuzz_boot (UBSan): the fallback wrote code32_start through
 * setup_header + 0x214 - 0x1f1, a pointer 0x214 bytes into a 0x9f-byte array
 * before the subtraction. The field must land at its offset in the copy, and
 * every other byte of the header copy must stay the file's.
 */
Test(loader, unknown_payload_code32_start_in_place)
{
	struct tbz z = tbz_default();
	struct boot_kernel k;
	const size_t at = HDR_AT(code32_start) - SETUP_HDR_OFFSET;

	z.payload = bad_payload;
	z.payload_len = sizeof(bad_payload);
	z.relocatable = 1;
	z.pref_address = 0x2000000;
	struct tbuf bz = make_bzimage(&z);

	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.load_start, 0x2000000);
	cr_assert_eq(k.setup_header[at], 0x00);
	cr_assert_eq(k.setup_header[at + 1], 0x00);
	cr_assert_eq(k.setup_header[at + 2], 0x00);
	cr_assert_eq(k.setup_header[at + 3], 0x02);
	for (size_t i = 0; i < 0x26c - SETUP_HDR_OFFSET; i++)
		if (i < at || i >= at + 4)
			cr_assert_eq(k.setup_header[i], bz.p[SETUP_HDR_OFFSET + i], "header byte 0x%zx",
				     SETUP_HDR_OFFSET + i);
	tbuf_free(&bz);
}

Test(loader, unknown_payload_without_64_bit_entry)
{
	struct tbz z = tbz_default();
	struct boot_kernel k;

	z.payload = bad_payload;
	z.payload_len = sizeof(bad_payload);
	z.xloadflags = 0;
	struct tbuf bz = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), -ENOEXEC);
	assert_msg_has("unknown payload format and no 64-bit entry point");
	tbuf_free(&bz);

	/* Before protocol 2.12 xloadflags does not exist, whatever the byte says. */
	z.xloadflags = XLF_KERNEL_64;
	z.version = 0x020b;
	bz = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), -ENOEXEC);
	tbuf_free(&bz);
}

Test(loader, unknown_payload_init_size_beyond_ram)
{
	struct tbz z = tbz_default();
	struct boot_kernel k;

	z.payload = bad_payload;
	z.payload_len = sizeof(bad_payload);
	z.init_size = 64 << 20;   /* from 1 MiB: one MiB past the end of RAM */
	struct tbuf bz = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), -ERANGE);
	assert_msg("segment at 0x100000 (+0x4000000 bytes) is outside guest RAM (64 MiB)");
	tbuf_free(&bz);

	z.init_size = 63 << 20;   /* fits exactly */
	bz = make_bzimage(&z);
	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.load_end, RAM);
	tbuf_free(&bz);
}

Test(loader, empty_payload_takes_the_fallback)
{
	struct tbz z = tbz_default();
	struct tbuf bz = make_bzimage(&z);
	struct boot_kernel k;

	cr_assert_eq(boot_load_kernel(&mem, bz.p, bz.len, &k), 0, "%s", err_msg());
	cr_assert_eq(k.entry, 0x100200);
	tbuf_free(&bz);
}

/* ---- initrd ---- */

static struct boot_kernel kernel_at(uint64_t start, uint64_t end, uint32_t initrd_max)
{
	struct boot_kernel k;

	memset(&k, 0, sizeof(k));
	k.mode = BOOT_LINUX64;
	k.load_start = start;
	k.load_end = end;
	k.initrd_addr_max = initrd_max;
	k.cmdline_max = 2047;
	return k;
}

Test(loader, initrd_at_the_top_of_ram)
{
	struct boot_kernel k = kernel_at(0x200000, 0x400000, 0x7fffffff);
	uint8_t rd[10000];
	uint64_t gpa = 0;

	fill_pattern(rd, sizeof(rd), 9);
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, sizeof(rd), &gpa), 0, "%s", err_msg());
	cr_assert_eq(gpa, (RAM - sizeof(rd)) & ~0xfffULL);
	cr_assert_eq(gpa % 4096, 0);
	cr_assert_leq(gpa + sizeof(rd), RAM);
	cr_assert_gt(gpa + sizeof(rd), RAM - 4096, "as high as possible");
	cr_assert_eq(memcmp(ram(gpa, sizeof(rd)), rd, sizeof(rd)), 0);
}

Test(loader, initrd_below_initrd_addr_max)
{
	struct boot_kernel k = kernel_at(0x200000, 0x400000, 0x1ffffff);   /* ends at 32 MiB */
	uint8_t rd[5000];
	uint64_t gpa = 0;

	fill_pattern(rd, sizeof(rd), 3);
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, sizeof(rd), &gpa), 0, "%s", err_msg());
	cr_assert_eq(gpa, (32 * MiB - sizeof(rd)) & ~0xfffULL);
	cr_assert_leq(gpa + sizeof(rd) - 1, 0x1ffffff);
	cr_assert_eq(memcmp(ram(gpa, sizeof(rd)), rd, sizeof(rd)), 0);

	/* A limit that is not page aligned: the initrd still ends at or below it. */
	k.initrd_addr_max = 0x1fff800;
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, sizeof(rd), &gpa), 0);
	cr_assert_leq(gpa + sizeof(rd) - 1, 0x1fff800);
	cr_assert_eq(gpa % 4096, 0);
}

Test(loader, initrd_too_large)
{
	struct boot_kernel k = kernel_at(0x200000, 60 * MiB, 0x7fffffff);
	size_t n = 8 * MiB;
	uint8_t *rd = calloc(1, n);
	uint64_t gpa = 0;

	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, n, &gpa), -ENOSPC);
	/* Without the file's name: vmm/vm.c adds "--initrd NAME: ". */
	assert_msg("8.00 MiB does not fit: 4.00 MiB free between the kernel and the initrd limit");

	/* Exactly the room there is: placed right after the kernel. */
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, 4 * MiB, &gpa), 0, "%s", err_msg());
	cr_assert_eq(gpa, 60 * MiB);

	/* initrd_addr_max below the kernel: no room at all. */
	k = kernel_at(0x200000, 0x400000, 0x2fffff);
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, 4096, &gpa), -ENOSPC);
	assert_msg("0.00 MiB does not fit: 0.00 MiB free between the kernel and the initrd limit");
	free(rd);
}

Test(loader, initrd_above_an_unaligned_kernel_end)
{
	struct boot_kernel k = kernel_at(0x200000, RAM - 0x1fff, 0x7fffffff);
	uint8_t rd[4096] = { 1 };
	uint64_t gpa = 0;

	/* The kernel's last page is not shared: one page above it is free. */
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, 4096, &gpa), 0, "%s", err_msg());
	cr_assert_eq(gpa, RAM - 0x1000);
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, 4097, &gpa), -ENOSPC);
}

Test(loader, initrd_uses_the_room_below_an_unaligned_limit)
{
	/* 0x1800 bytes between the kernel's end (aligned) and the limit: an initrd of exactly that fits. */
	struct boot_kernel k = kernel_at(0x200000, 0x1000000, 0x10017ff);
	uint8_t rd[0x1800];
	uint64_t gpa = 0;

	fill_pattern(rd, sizeof(rd), 5);
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, sizeof(rd), &gpa), 0, "%s", err_msg());
	cr_assert_eq(gpa, 0x1000000);
	cr_assert_eq(memcmp(ram(gpa, sizeof(rd)), rd, sizeof(rd)), 0);
	cr_assert_eq(boot_load_initrd(&mem, &mach, &k, rd, 0x1000, &gpa), 0);
	cr_assert_eq(gpa, 0x1000000, "rounded down to a page: 0x1000800 -> 0x1000000");
}
