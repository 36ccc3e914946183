/* test_cmos.c - the CMOS RTC: the host's UTC time in BCD, status registers, RAM, hostile accesses. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/cmos.h"

static struct cmos c;
static time_t fixed;

static time_t fixed_now(void)
{
	return fixed;
}

static void setup(void)
{
	cmos_init(&c);
	c.now = fixed_now;
	/* 2026-12-02 01:42:09 UTC, a Wednesday. */
	fixed = 1796175729;
}

static void teardown(void)
{
	cmos_destroy(&c);
}

TestSuite(cmos, .init = setup, .fini = teardown);

static uint8_t rd(uint8_t reg)
{
	uint8_t v = reg, out = 0x5a;

	cmos_io(&c, 0, &v, 1, true);
	cmos_io(&c, 1, &out, 1, false);
	return out;
}

static void wr(uint8_t reg, uint8_t val)
{
	uint8_t v = reg;

	cmos_io(&c, 0, &v, 1, true);
	cmos_io(&c, 1, &val, 1, true);
}

Test(cmos, time_in_bcd_utc)
{
	struct tm tm;
	gmtime_r(&fixed, &tm);
	cr_assert_eq(tm.tm_year, 126, "the fixed time is not 2026 (%d)", tm.tm_year);
	cr_assert_eq(rd(0x00), 0x09);   /* seconds */
	cr_assert_eq(rd(0x02), 0x42);   /* minutes */
	cr_assert_eq(rd(0x04), 0x01);   /* hours, 24 h */
	cr_assert_eq(rd(0x06), 0x04);   /* Wednesday: day 4 counting Sunday as 1 */
	cr_assert_eq(rd(0x07), 0x02);   /* day of month */
	cr_assert_eq(rd(0x08), 0x12);   /* December */
	cr_assert_eq(rd(0x09), 0x26);   /* year */
	cr_assert_eq(rd(0x32), 0x20);   /* century */
}

Test(cmos, status_never_busy_24h_bcd_valid)
{
	cr_assert_eq(rd(0x0a) & 0x80, 0, "update in progress");
	cr_assert_eq(rd(0x0b), 0x02);
	cr_assert_eq(rd(0x0c), 0x00);
	cr_assert_eq(rd(0x0d), 0x80);
}

Test(cmos, nmi_bit_of_the_index_is_ignored)
{
	cr_assert_eq(rd(0x80 | 0x09), 0x26);
}

Test(cmos, clock_cannot_be_set_ram_can)
{
	wr(0x00, 0x33);
	wr(0x09, 0x99);
	wr(0x0b, 0x06);
	cr_assert_eq(rd(0x00), 0x09);
	cr_assert_eq(rd(0x09), 0x26);
	cr_assert_eq(rd(0x0b), 0x02);
	wr(0x10, 0xab);
	wr(0x7f, 0xcd);
	cr_assert_eq(rd(0x10), 0xab);
	cr_assert_eq(rd(0x7f), 0xcd);
}

/* The arithmetic against the C library's gmtime_r, over 1970-2199 and the leap-day edges. */
Test(cmos, date_arithmetic_matches_gmtime)
{
	static const time_t edges[] = { 0, 951782400 /* 2000-02-29 */, 951868800 /* 2000-03-01 */,
					4107542400 /* 2100-03-01 */, 4102444799, 1709164800 /* 2024-02-29 */ };
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		for (time_t t = edges[i] - 86400; t <= edges[i] + 86400; t += 3599) {
			struct tm want;
			fixed = t;
			gmtime_r(&t, &want);
			int year = (rd(0x32) >> 4) * 1000 + (rd(0x32) & 15) * 100 + (rd(0x09) >> 4) * 10 + (rd(0x09) & 15);
			cr_assert_eq(year, want.tm_year + 1900, "t %ld", (long)t);
			cr_assert_eq(rd(0x08), ((want.tm_mon + 1) / 10) << 4 | (want.tm_mon + 1) % 10, "t %ld", (long)t);
			cr_assert_eq(rd(0x07), (want.tm_mday / 10) << 4 | want.tm_mday % 10, "t %ld", (long)t);
			cr_assert_eq(rd(0x06), want.tm_wday + 1, "t %ld", (long)t);
			cr_assert_eq(rd(0x04), (want.tm_hour / 10) << 4 | want.tm_hour % 10, "t %ld", (long)t);
		}
	}
	for (time_t t = 0; t < 7260000000; t += 86399 * 37) {
		struct tm want;
		fixed = t;
		gmtime_r(&t, &want);
		cr_assert_eq(rd(0x07), (want.tm_mday / 10) << 4 | want.tm_mday % 10, "t %ld", (long)t);
		cr_assert_eq(rd(0x08), ((want.tm_mon + 1) / 10) << 4 | (want.tm_mon + 1) % 10, "t %ld", (long)t);
	}
}

Test(cmos, follows_the_clock)
{
	fixed += 61;
	cr_assert_eq(rd(0x00), 0x10);
	cr_assert_eq(rd(0x02), 0x43);
}

Test(cmos, index_port_reads_ff_and_odd_accesses_are_safe)
{
	uint8_t v[8];

	memset(v, 0, sizeof(v));
	cmos_io(&c, 0, v, 1, false);
	cr_assert_eq(v[0], 0xff);
	/* A wide read of the data port: only the first byte is the register, the rest 0. */
	uint8_t idx = 0x09;
	cmos_io(&c, 0, &idx, 1, true);
	memset(v, 0x77, sizeof(v));
	cmos_io(&c, 1, v, 4, false);
	cr_assert_eq(v[0], 0x26);
	cr_assert_eq(v[1], 0);
	cr_assert_eq(v[3], 0);
	/* Zero-length and out-of-window accesses change nothing. */
	cmos_io(&c, 1, v, 0, true);
	cmos_io(&c, 5, v, 1, true);
	memset(v, 0, sizeof(v));
	cmos_io(&c, 5, v, 2, false);
	cr_assert_eq(v[0], 0xff);
	cr_assert_eq(rd(0x09), 0x26);
}
