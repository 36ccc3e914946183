/* test_aml.c - the hand AML encoder: PkgLength forms, names, integers, EISA ids, resource templates. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "firmware/aml.h"

static uint8_t buf[16384];

#define assert_bytes(a, ...)                                                          \
	do {                                                                          \
		const uint8_t want_[] = { __VA_ARGS__ };                              \
		cr_assert_eq((a)->err, 0);                                            \
		cr_assert_eq((a)->len, sizeof(want_), "length %zu, want %zu", (a)->len, \
			     sizeof(want_));                                          \
		cr_assert_eq(memcmp((a)->buf, want_, sizeof(want_)), 0);              \
	} while (0)

Test(aml, eisaid)
{
	cr_assert_eq(aml_eisaid("PNP0501"), 0x0105D041);
	cr_assert_eq(aml_eisaid("PNP0A03"), 0x030AD041);
	cr_assert_eq(aml_eisaid("PNP050"), 0);
	cr_assert_eq(aml_eisaid("pnp0501"), 0);
	cr_assert_eq(aml_eisaid("PNP05G1"), 0);
}

Test(aml, names)
{
	struct aml a;

	aml_init(&a, buf, sizeof(buf));
	aml_name_string(&a, "\\_SB");
	assert_bytes(&a, '\\', '_', 'S', 'B', '_');

	aml_init(&a, buf, sizeof(buf));
	aml_name_string(&a, "COM1");
	assert_bytes(&a, 'C', 'O', 'M', '1');

	aml_init(&a, buf, sizeof(buf));
	aml_name_string(&a, "\\_SB.VR0");
	assert_bytes(&a, '\\', 0x2e, '_', 'S', 'B', '_', 'V', 'R', '0', '_');

	aml_init(&a, buf, sizeof(buf));
	aml_name_string(&a, "A.B.C");
	assert_bytes(&a, 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_');

	static const char *const bad[] = { "", "\\", "1ABC", "ABCDE", "A..B", "A.", "abc", "A-B" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a, buf, sizeof(buf));
		aml_name_string(&a, bad[i]);
		cr_assert_eq(a.err, -EINVAL, "\"%s\" accepted", bad[i]);
	}
}

Test(aml, integers)
{
	struct aml a;

	aml_init(&a, buf, sizeof(buf));
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 2);
	aml_integer(&a, 0xff);
	aml_integer(&a, 0x100);
	aml_integer(&a, 0x10000);
	aml_integer(&a, 0x100000000ULL);
	assert_bytes(&a, 0x00, 0x01, 0x0a, 2, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0c, 0, 0, 1, 0,
		     0x0e, 0, 0, 0, 0, 1, 0, 0, 0);

	aml_init(&a, buf, sizeof(buf));
	aml_string(&a, "AB");
	aml_dword(&a, 1);
	assert_bytes(&a, 0x0d, 'A', 'B', 0, 0x0c, 1, 0, 0, 0);

	aml_init(&a, buf, sizeof(buf));
	aml_string(&a, "\xc3\xa9");
	cr_assert_eq(a.err, -EINVAL);
}

/* A package whose contents are `body` filler bytes; returns the PkgLength bytes. */
static size_t pkg_of(struct aml *a, size_t body)
{
	static uint8_t fill[8192];

	memset(fill, 0x5a, sizeof(fill));
	aml_init(a, buf, sizeof(buf));
	size_t mark = aml_package_begin(a, 1); /* PackageOp, PkgLength, NumElements */
	aml_bytes(a, fill, body - 1);          /* NumElements is part of the body */
	aml_end(a, mark);
	cr_assert_eq(a->err, 0);
	size_t nbytes = a->len - 1 - body;
	cr_assert_eq(buf[1 + nbytes], 1, "NumElements right after the PkgLength");
	cr_assert_eq(buf[a->len - 1], 0x5a, "body kept");
	return nbytes;
}

Test(aml, pkglength_forms)
{
	struct aml a;

	/* One byte up to 63 in total (PkgLength counts itself). */
	cr_assert_eq(pkg_of(&a, 62), 1);
	cr_assert_eq(buf[1], 63);
	/* 64: two bytes, low nibble in the lead byte. total = 63 + 2 = 65 = 0x41 */
	cr_assert_eq(pkg_of(&a, 63), 2);
	cr_assert_eq(buf[1], 0x41);
	cr_assert_eq(buf[2], 0x04);
	/* Largest two-byte total is 4095. */
	cr_assert_eq(pkg_of(&a, 4093), 2);
	cr_assert_eq(buf[1], 0x4f);
	cr_assert_eq(buf[2], 0xff);
	/* 4094 + 3 = 4097 = 0x1001 needs three bytes. */
	cr_assert_eq(pkg_of(&a, 4094), 3);
	cr_assert_eq(buf[1], 0x81);
	cr_assert_eq(buf[2], 0x00);
	cr_assert_eq(buf[3], 0x01);
}

Test(aml, nested_devices)
{
	struct aml a;

	aml_init(&a, buf, sizeof(buf));
	size_t s = aml_scope_begin(&a, "\\_SB");
	size_t d = aml_device_begin(&a, "DEV0");
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_end(&a, d);
	aml_end(&a, s);
	assert_bytes(&a, 0x10, 19, '\\', '_', 'S', 'B', '_',
		     0x5b, 0x82, 11, 'D', 'E', 'V', '0',
		     0x08, '_', 'U', 'I', 'D', 0x00);
}

Test(aml, method_with_notify)
{
	struct aml a;

	aml_init(&a, buf, sizeof(buf));
	size_t m = aml_method_begin(&a, "_EVT", 1);
	aml_notify(&a, "\\_SB.PWRB", 0x80);
	aml_end(&a, m);
	/* Method(_EVT, 1) { Notify(\_SB.PWRB, 0x80) }: 0x14 PkgLength NameSeg flags, 0x86 DualName 0x0a 0x80 */
	assert_bytes(&a, 0x14, 19, '_', 'E', 'V', 'T', 0x01,
		     0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80);
	aml_init(&a, buf, sizeof(buf));
	aml_method_begin(&a, "_EVT", 8);
	cr_assert_eq(a.err, -EINVAL, "more than 7 arguments");
}

/*
 * ACPI 6.5, 20.2.5: DefIfElse := IfOp(0xA0) PkgLength Predicate TermList;
 * DefLEqual := LEqualOp(0x93) Operand Operand; Arg0Op..Arg6Op := 0x68..0x6E;
 * DefReturn := ReturnOp(0xA4) ArgObject.
 */
Test(aml, if_lequal_arg)
{
	struct aml a;

	aml_init(&a, buf, sizeof(buf));
	size_t c = aml_if_begin(&a);
	aml_lequal(&a);
	aml_arg(&a, 0);
	aml_integer(&a, 23);
	aml_notify(&a, "\\_SB.VGEN", 0x80);
	aml_end(&a, c);
	/* If (LEqual (Arg0, 0x17)) { Notify (\_SB.VGEN, 0x80) } */
	assert_bytes(&a, 0xa0, 18, 0x93, 0x68, 0x0a, 0x17,
		     0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x0a, 0x80);

	aml_init(&a, buf, sizeof(buf));
	for (unsigned n = 0; n <= 6; n++)
		aml_arg(&a, n);
	assert_bytes(&a, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e);
	aml_arg(&a, 7);
	cr_assert_eq(a.err, -EINVAL, "Arg7 does not exist");
	cr_assert_eq(a.len, 7, "nothing written for it");
}

Test(aml, method_returning_package)
{
	struct aml a;

	aml_init(&a, buf, sizeof(buf));
	size_t m = aml_method_begin(&a, "ADDR", 0);
	aml_return(&a);
	size_t p = aml_package_begin(&a, 2);
	aml_integer(&a, 0xdfff0);
	aml_integer(&a, 0);
	aml_end(&a, p);
	aml_end(&a, m);
	/* Method (ADDR, 0) { Return (Package (2) { 0x000DFFF0, Zero }) } */
	assert_bytes(&a, 0x14, 16, 'A', 'D', 'D', 'R', 0x00,
		     0xa4, 0x12, 8, 0x02, 0x0c, 0xf0, 0xff, 0x0d, 0x00, 0x00);
}

Test(aml, resource_template)
{
	struct aml a;
	struct aml_res r;

	aml_init(&a, buf, sizeof(buf));
	aml_res_init(&r);
	aml_res_io16(&r, 0x3f8, 0x3f8, 0, 8);
	aml_res_irq_noflags(&r, 4);
	aml_name_resources(&a, "_CRS", &r);
	cr_assert_eq(a.err, 0);
	/* Name(_CRS, Buffer(0x0d) { IO, IRQ, end tag }) */
	static const uint8_t head[] = { 0x08, '_', 'C', 'R', 'S', 0x11, 16, 0x0a, 13 };
	cr_assert_eq(a.len, sizeof(head) + 13);
	cr_assert_eq(memcmp(buf, head, sizeof(head)), 0);
	const uint8_t *t = buf + sizeof(head);
	cr_assert_eq(t[11], 0x79, "end tag");
	uint8_t sum = 0;
	for (int i = 0; i < 13; i++)
		sum = (uint8_t)(sum + t[i]);
	cr_assert_eq(sum, 0, "template checksum");

	aml_res_init(&r);
	aml_res_irq_noflags(&r, 16);
	cr_assert_eq(r.err, -EINVAL);
	aml_name_resources(&a, "_CRS", &r);
	cr_assert_eq(a.err, -EINVAL, "a failed template fails the table");

	aml_res_init(&r);
	for (int i = 0; i < 20; i++)
		aml_res_mem32_fixed(&r, 1, 0, 0x1000);
	cr_assert_eq(r.err, -ENOSPC);
	cr_assert_leq(r.len + 2, sizeof(r.b));
}

Test(aml, full_buffer)
{
	struct aml a;
	uint8_t small[6];

	aml_init(&a, small, sizeof(small));
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	cr_assert_eq(a.err, 0);
	cr_assert_eq(a.len, 6);
	aml_integer(&a, 0);
	cr_assert_eq(a.err, -ENOSPC);
	cr_assert_eq(a.len, 6, "nothing written past the end");
	aml_bytes(&a, "x", 1);
	cr_assert_eq(a.len, 6, "later calls do nothing");
}
