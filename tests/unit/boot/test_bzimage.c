/* test_bzimage.c - bzImage setup header parsing: fields, defaults, every truncation, old protocols. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "helpers.h"
#include "base/err.h"

static const uint8_t payload[32] = "PAYLOAD-PAYLOAD-PAYLOAD-PAYLOAD";

Test(bzimage, detect)
{
	struct tbz z = tbz_default();
	struct tbuf b = make_bzimage(&z);

	cr_assert(bzimage_detect(b.p, b.len));
	cr_assert_not(bzimage_detect(b.p, 0x205), "HdrS cut short");
	b.p[0x203] = 'x';
	cr_assert_not(bzimage_detect(b.p, b.len));
	tbuf_free(&b);
}

Test(bzimage, fields)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.payload = payload;
	z.payload_len = sizeof(payload);
	z.relocatable = 1;
	z.kernel_alignment = 0x400000;
	z.pref_address = 0x2000000;
	z.init_size = 0x123000;
	z.cmdline_size = 4095;
	z.initrd_addr_max = 0x37ffffff;
	z.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	struct tbuf b = make_bzimage(&z);

	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0, "%s", err_msg());
	cr_assert_eq(bi.version, 0x020f);
	cr_assert_eq(bi.setup_sects, 1);
	cr_assert_eq(bi.pm_offset, 0x400);
	cr_assert_eq(bi.pm_len, z.code_len + sizeof(payload));
	cr_assert_eq(bi.loadflags, LOADED_HIGH);
	cr_assert_eq(bi.xloadflags, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	cr_assert(bi.relocatable);
	cr_assert_eq(bi.kernel_alignment, 0x400000);
	cr_assert_eq(bi.pref_address, 0x2000000);
	cr_assert_eq(bi.init_size, 0x123000);
	cr_assert_eq(bi.cmdline_size, 4095);
	cr_assert_eq(bi.initrd_addr_max, 0x37ffffff);
	cr_assert_eq(bi.payload_offset, 0x400 + z.code_len);
	cr_assert_eq(bi.payload_len, sizeof(payload));
	cr_assert_eq(memcmp(b.p + bi.payload_offset, payload, sizeof(payload)), 0);
	cr_assert_eq(bi.hdr_len, 0x26c - 0x1f1, "header ends where the jump lands");
	tbuf_free(&b);
}

Test(bzimage, setup_sects_zero_means_four)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.setup_sects = 0;
	struct tbuf b = make_bzimage(&z);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0, "%s", err_msg());
	cr_assert_eq(bi.setup_sects, 4);
	cr_assert_eq(bi.pm_offset, 5 * 512);
	cr_assert_eq(bi.payload_offset, 5 * 512 + z.code_len);
	tbuf_free(&b);
}

Test(bzimage, header_length_follows_the_jump)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;
	struct tbuf b = make_bzimage(&z);

	b.p[0x201] = 0x80;   /* header claims to end at 0x282 */
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0);
	cr_assert_eq(bi.hdr_len, 0x282 - 0x1f1);
	b.p[0x201] = 0xff;   /* past 0x290: capped */
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0);
	cr_assert_eq(bi.hdr_len, 0x290 - 0x1f1);
	b.p[0x201] = 0x10;   /* too short: the known fields are kept anyway */
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0);
	cr_assert_eq(bi.hdr_len, 0x26c - 0x1f1);
	tbuf_free(&b);
}

/* Every prefix of a valid image is rejected (or not recognized), and never read past. */
Test(bzimage, every_truncation_is_rejected)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.payload = payload;
	z.payload_len = sizeof(payload);
	struct tbuf b = make_bzimage(&z);
	for (size_t n = 0; n < b.len; n++) {
		struct tbuf t = tbuf_prefix(&b, n);
		err_clear();
		int ret = bzimage_parse(t.p, t.len, &bi);
		cr_assert_eq(ret, -EINVAL, "length %zu accepted", n);
		if (n >= 0x206)
			cr_assert(strstr(err_msg(), "truncated bzImage") != NULL, "length %zu: %s", n,
				  err_msg());
		tbuf_free(&t);
	}
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0);
	tbuf_free(&b);
}

Test(bzimage, setup_sectors_past_the_end)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;
	struct tbuf b = make_bzimage(&z);

	b.p[0x1f1] = 200;   /* 201 sectors of setup in a 5 KiB file */
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), -EINVAL);
	cr_assert(strstr(err_msg(), "truncated bzImage: the setup code takes 102912 bytes") != NULL,
		  "%s", err_msg());
	tbuf_free(&b);
}

Test(bzimage, no_protected_mode_code)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.code_len = 0;
	struct tbuf b = make_bzimage(&z);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), -EINVAL);
	cr_assert(strstr(err_msg(), "truncated") != NULL);
	tbuf_free(&b);
}

Test(bzimage, payload_outside_the_file)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.payload = payload;
	z.payload_len = sizeof(payload);
	struct tbuf b = make_bzimage(&z);

	put32(b.p + 0x24c, sizeof(payload) + 1);   /* one byte too long */
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), -EINVAL);
	cr_assert(strstr(err_msg(), "truncated bzImage: the payload at 0x1400 (+0x21 bytes)") != NULL,
		  "%s", err_msg());

	put32(b.p + 0x248, 0xffffffff);   /* offset and length that would wrap in 32 bits */
	put32(b.p + 0x24c, 0xffffffff);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), -EINVAL);

	put32(b.p + 0x248, (uint32_t)(z.code_len + sizeof(payload) + 1));
	put32(b.p + 0x24c, 0);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), -EINVAL, "empty payload past the end");

	put32(b.p + 0x248, (uint32_t)(z.code_len + sizeof(payload)));
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0, "empty payload at the very end is fine");
	cr_assert_eq(bi.payload_len, 0);
	tbuf_free(&b);
}

Test(bzimage, version_too_old)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.version = 0x0207;
	struct tbuf b = make_bzimage(&z);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), -EINVAL);
	cr_assert_str_eq(err_msg(), "bzImage boot protocol 2.07 is too old (2.08 or later needed)");
	tbuf_free(&b);
}

Test(bzimage, fields_of_older_protocols_get_defaults)
{
	struct tbz z = tbz_default();
	struct bzimage_info bi;

	z.version = 0x0208;   /* no pref_address, init_size (2.10) or xloadflags (2.12) yet */
	struct tbuf b = make_bzimage(&z);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0, "%s", err_msg());
	cr_assert_eq(bi.pref_address, 0x100000);
	cr_assert_eq(bi.init_size, 0);
	cr_assert_eq(bi.xloadflags, 0, "XLF_KERNEL_64 in the file is ignored before 2.12");
	tbuf_free(&b);

	z.version = 0x020b;   /* pref_address and init_size, still no xloadflags */
	b = make_bzimage(&z);
	cr_assert_eq(bzimage_parse(b.p, b.len, &bi), 0);
	cr_assert_eq(bi.pref_address, 0x1000000);
	cr_assert_eq(bi.init_size, 8 << 20);
	cr_assert_eq(bi.xloadflags, 0);
	tbuf_free(&b);
}

Test(bzimage, not_a_bzimage)
{
	uint8_t junk[0x1000];
	struct bzimage_info bi;

	memset(junk, 0x55, sizeof(junk));
	cr_assert_eq(bzimage_parse(junk, sizeof(junk), &bi), -EINVAL);
	cr_assert(strstr(err_msg(), "not a bzImage") != NULL);
}

Test(bzimage, default_header)
{
	uint8_t h[0x290 - 0x1f1];
	struct setup_header sh;

	memset(h, 0xee, sizeof(h));
	bzimage_default_header(h, sizeof(h));
	memcpy(&sh, h, sizeof(sh));
	cr_assert_eq(sh.boot_flag, 0xaa55);
	cr_assert_eq(sh.header, SETUP_HDR_MAGIC);
	cr_assert_eq(memcmp(h + 0x202 - 0x1f1, "HdrS", 4), 0);
	cr_assert_eq(sh.version, 0x020f);
	cr_assert_eq(sh.loadflags, LOADED_HIGH);
	cr_assert_eq(sh.cmdline_size, MV_CMDLINE_MAX - 1);
	cr_assert_eq(sh.initrd_addr_max, 0x7fffffff);
	cr_assert_eq(sh.kernel_alignment, 2u << 20);
	cr_assert_eq(sh.xloadflags, XLF_KERNEL_64);
	cr_assert_eq(sh.setup_data, 0);
	cr_assert_eq(h[sizeof(h) - 1], 0, "the whole area is written");
}
