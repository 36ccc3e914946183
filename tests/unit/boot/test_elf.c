/* test_elf.c - ELF64 parsing: segments and their bounds, every truncation, the PVH note and malformed notes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "helpers.h"
#include "base/err.h"

#define assert_err(call, e, text)                                                   \
	do {                                                                        \
		err_clear();                                                        \
		cr_assert_eq((call), (e), "%s", err_msg());                         \
		cr_assert(strstr(err_msg(), (text)) != NULL, "message: %s", err_msg()); \
	} while (0)

Test(elf, two_segments)
{
	struct tseg segs[3] = {
		{ .type = 1, .paddr = 0x200000, .filesz = 0x300, .memsz = 0x1000 },
		{ .type = 6 /* PT_PHDR: ignored */, .filesz = 0, .memsz = 0 },
		{ .type = 1, .paddr = 0x400000, .filesz = 0x80, .memsz = 0x80 },
	};
	struct tbuf b = make_elf(0x200100, segs, 3);
	struct elf_info ei;

	cr_assert(elf_detect(b.p, b.len));
	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	cr_assert_eq(ei.entry, 0x200100);
	cr_assert_eq(ei.nr_segs, 2);
	cr_assert_eq(ei.seg[0].paddr, 0x200000);
	cr_assert_eq(ei.seg[0].filesz, 0x300);
	cr_assert_eq(ei.seg[0].memsz, 0x1000);
	cr_assert_eq(b.p[ei.seg[0].offset + 5], pattern(1, 5), "offset points at the data");
	cr_assert_eq(ei.seg[1].paddr, 0x400000);
	cr_assert_eq(b.p[ei.seg[1].offset], pattern(3, 0));
	cr_assert_eq(ei.lowest, 0x200000);
	cr_assert_eq(ei.highest, 0x400080);
	cr_assert_not(ei.have_pvh);
	tbuf_free(&b);
}

Test(elf, empty_segments_are_skipped)
{
	struct tseg segs[2] = {
		{ .type = 1, .paddr = 0x10, .filesz = 0, .memsz = 0 },
		{ .type = 1, .paddr = 0x200000, .filesz = 0x10, .memsz = 0x10 },
	};
	struct tbuf b = make_elf(0x200000, segs, 2);
	struct elf_info ei;

	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	cr_assert_eq(ei.nr_segs, 1);
	cr_assert_eq(ei.lowest, 0x200000);
	tbuf_free(&b);
}

Test(elf, every_truncation_is_rejected)
{
	struct tbuf b = simple_elf(0x200000, 0x400, 0x100, true, 0x200000);
	struct elf_info ei;

	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	for (size_t n = 0; n < b.len; n++) {
		struct tbuf t = tbuf_prefix(&b, n);
		err_clear();
		cr_assert_lt(elf_parse(t.p, t.len, &ei), 0, "length %zu accepted", n);
		if (n >= 4)
			cr_assert(strstr(err_msg(), "truncated ELF") != NULL, "length %zu: %s", n,
				  err_msg());
		tbuf_free(&t);
	}
	tbuf_free(&b);
}

Test(elf, wrong_kind_of_elf)
{
	struct tbuf b = simple_elf(0x200000, 0x400, 0, false, 0);
	struct elf_info ei;

	b.p[4] = 1;
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "not an x86-64 ELF kernel (ELF class 1");
	b.p[4] = 2;
	b.p[5] = 2;
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "data encoding 2");
	b.p[5] = 1;
	put16(b.p + 18, 183);   /* aarch64 */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "not an x86-64 ELF kernel (machine 183");
	put16(b.p + 18, 62);
	put16(b.p + 16, 3);     /* ET_DYN */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "ELF type 3");
	put16(b.p + 16, 2);
	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0);
	b.p[0] = 0;
	cr_assert_not(elf_detect(b.p, b.len));
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "not an ELF file");
	tbuf_free(&b);
}

Test(elf, program_header_table_bounds)
{
	struct tbuf b = simple_elf(0x200000, 0x400, 0, false, 0);
	struct elf_info ei;

	put64(b.p + 32, b.len - 55);   /* e_phoff: the table runs 1 byte past the end */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "truncated ELF: program headers");
	put64(b.p + 32, UINT64_MAX - 10);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "truncated ELF: program headers");
	put64(b.p + 32, 64);
	put16(b.p + 54, 40);            /* e_phentsize too small */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "program header entries are 40 bytes");
	put16(b.p + 54, 56);
	put16(b.p + 56, 0);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "no program headers");
	put16(b.p + 56, 0xffff);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "65535 program headers");
	tbuf_free(&b);
}

Test(elf, segment_file_range_outside_the_file)
{
	struct tbuf b = simple_elf(0x200000, 0x400, 0, false, 0);
	struct elf_info ei;
	uint8_t *ph = b.p + T_PHDR(0);

	put64(ph + 32, 0x401);   /* filesz one more than the file has */
	put64(ph + 40, 0x401);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "truncated ELF: segment 0 data");
	put64(ph + 8, UINT64_MAX - 0x100);   /* offset + filesz wraps */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "truncated ELF: segment 0 data");
	put64(ph + 8, b.len + 1);
	put64(ph + 32, 0);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "truncated ELF: segment 0 data");
	tbuf_free(&b);
}

Test(elf, filesz_larger_than_memsz)
{
	struct tbuf b = simple_elf(0x200000, 0x400, 0, false, 0);
	struct elf_info ei;

	put64(b.p + T_PHDR(0) + 40, 0x3ff);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "more file bytes (0x400) than memory bytes (0x3ff)");
	tbuf_free(&b);
}

Test(elf, paddr_plus_memsz_overflows)
{
	struct tbuf b = simple_elf(0x200000, 0x400, 0, false, 0);
	struct elf_info ei;

	put64(b.p + T_PHDR(0) + 24, UINT64_MAX - 0x100);
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "wraps around the address space");
	put64(b.p + T_PHDR(0) + 24, UINT64_MAX - 0x3ff);   /* ends exactly at 2^64: also wraps */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "wraps around");
	put64(b.p + T_PHDR(0) + 24, UINT64_MAX - 0x400);   /* ends at the last byte: parses */
	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	tbuf_free(&b);
}

Test(elf, overlapping_segments)
{
	struct tseg segs[2] = {
		{ .type = 1, .paddr = 0x200000, .filesz = 0x10, .memsz = 0x2000 },
		{ .type = 1, .paddr = 0x201fff, .filesz = 0x10, .memsz = 0x10 },
	};
	struct tbuf b = make_elf(0x200000, segs, 2);
	struct elf_info ei;

	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "segment 1 at 0x201fff (+0x10 bytes) overlaps");
	put64(b.p + T_PHDR(1) + 24, 0x202000);   /* adjacent is fine */
	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	tbuf_free(&b);
}

Test(elf, no_loadable_segment)
{
	struct tseg segs[1] = { { .type = 4, .filesz = 0 } };
	struct tbuf b = make_elf(0x200000, segs, 1);
	struct elf_info ei;

	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "no loadable segment");
	tbuf_free(&b);
}

Test(elf, too_many_segments)
{
	struct tseg segs[ELF_MAX_SEGMENTS + 1];

	for (int i = 0; i <= ELF_MAX_SEGMENTS; i++)
		segs[i] = (struct tseg){ .type = 1, .paddr = 0x200000 + (uint64_t)i * 0x1000,
					 .filesz = 4, .memsz = 4 };
	struct tbuf b = make_elf(0x200000, segs, ELF_MAX_SEGMENTS + 1);
	struct elf_info ei;

	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "more than 32 loadable segments");
	put16(b.p + 56, ELF_MAX_SEGMENTS);
	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	cr_assert_eq(ei.nr_segs, ELF_MAX_SEGMENTS);
	tbuf_free(&b);
}

/* ---- PVH note ---- */

Test(elf, pvh_note_found)
{
	struct tbuf b = simple_elf(0x100000, 0x400, 0, true, 0x100040);
	struct elf_info ei;

	cr_assert_eq(elf_parse(b.p, b.len, &ei), 0, "%s", err_msg());
	cr_assert(ei.have_pvh);
	cr_assert_eq(ei.pvh_entry, 0x100040);
	cr_assert_eq(ei.entry, 0x100200, "e_entry is kept too");
	tbuf_free(&b);
}

Test(elf, pvh_note_after_other_notes)
{
	uint8_t notes[256], le[4], id[20];
	size_t n = 0;

	memset(id, 0xab, sizeof(id));
	put32(le, 0x100080);
	add_note(notes, &n, "GNU", 3, id, sizeof(id));                 /* build id */
	add_note(notes, &n, "Xen", 5, "xen-3.0", 7);                   /* XEN_ELFNOTE_XEN_VERSION, odd size */
	add_note(notes, &n, "Linux", XEN_ELFNOTE_PHYS32_ENTRY, le, 4); /* right type, wrong owner */
	add_note(notes, &n, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, le, 4);
	uint64_t entry = 0;
	cr_assert_eq(elf_find_pvh_note(notes, n, 4, &entry), 1, "%s", err_msg());
	cr_assert_eq(entry, 0x100080);
	/* Without the last note: absent, not an error. */
	cr_assert_eq(elf_find_pvh_note(notes, n - 20, 4, &entry), 0, "%s", err_msg());
}

Test(elf, pvh_note_with_8_byte_descriptor)
{
	uint8_t notes[64], d[8];
	size_t n = 0;
	uint64_t entry = 0;

	put64(d, 0x1000ab0);
	add_note(notes, &n, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, d, 8);
	cr_assert_eq(elf_find_pvh_note(notes, n, 4, &entry), 1, "%s", err_msg());
	cr_assert_eq(entry, 0x1000ab0);
	put64(d, 0x100000000ULL);
	n = 0;
	add_note(notes, &n, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, d, 8);
	cr_assert_eq(elf_find_pvh_note(notes, n, 4, &entry), -EINVAL, "not a 32-bit address");
}

Test(elf, malformed_notes)
{
	uint8_t notes[64], le[4];
	size_t n = 0;
	uint64_t entry;

	put32(le, 0x100000);
	add_note(notes, &n, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, le, 4);
	cr_assert_eq(n, 20);

	/* namesz past the end of the segment */
	put32(notes, 0xfffffff0);
	assert_err(elf_find_pvh_note(notes, n, 4, &entry), -EINVAL, "malformed ELF note at offset 0x0");
	put32(notes, 4);
	/* descsz past the end */
	put32(notes + 4, 5);
	assert_err(elf_find_pvh_note(notes, n, 4, &entry), -EINVAL, "runs past the end");
	put32(notes + 4, 0xffffffff);
	assert_err(elf_find_pvh_note(notes, n, 4, &entry), -EINVAL, "runs past the end");
	/* a PVH note whose descriptor is 2 bytes */
	put32(notes + 4, 2);
	assert_err(elf_find_pvh_note(notes, n, 4, &entry), -EINVAL, "2-byte descriptor");
	put32(notes + 4, 4);
	cr_assert_eq(elf_find_pvh_note(notes, n, 4, &entry), 1);
	/* a segment cut inside the descriptor */
	assert_err(elf_find_pvh_note(notes, n - 1, 4, &entry), -EINVAL, "malformed");
	/* fewer bytes than a note header: nothing there */
	cr_assert_eq(elf_find_pvh_note(notes, 11, 4, &entry), 0);
	cr_assert_eq(elf_find_pvh_note(notes, 0, 4, &entry), 0);
}

Test(elf, notes_with_8_byte_alignment)
{
	/*
	 * A 4-byte descriptor padded to 8: the second note starts at 24, not 20.
	 * Read with 4-byte alignment the same bytes are garbage.
	 */
	uint8_t notes[48] = { 0 };
	uint64_t entry = 0;

	put32(notes, 4);
	put32(notes + 4, 4);
	put32(notes + 8, 5);
	memcpy(notes + 12, "GNU", 4);
	put32(notes + 16, 0xdeadbeef);
	put32(notes + 24, 4);
	put32(notes + 28, 4);
	put32(notes + 32, XEN_ELFNOTE_PHYS32_ENTRY);
	memcpy(notes + 36, "Xen", 4);
	put32(notes + 40, 0x300000);
	cr_assert_eq(elf_find_pvh_note(notes, sizeof(notes), 8, &entry), 1, "%s", err_msg());
	cr_assert_eq(entry, 0x300000);
	cr_assert_eq(elf_find_pvh_note(notes, sizeof(notes), 4, &entry), -EINVAL);
}

Test(elf, malformed_note_segment_fails_the_parse)
{
	struct tbuf b = simple_elf(0x100000, 0x400, 0, true, 0x100000);
	struct elf_info ei;
	uint64_t noff = 0;

	memcpy(&noff, b.p + T_PHDR(1) + 8, 8);   /* host is little endian, like the file */
	put32(b.p + noff, 0x1000);                /* namesz */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "malformed ELF note");
	put64(b.p + T_PHDR(1) + 32, 0x10000);     /* note filesz past the end of file */
	assert_err(elf_parse(b.p, b.len, &ei), -EINVAL, "truncated ELF: note segment 1");
	tbuf_free(&b);
}
