/* test_bus.c - the port/MMIO address map: registration, overlap rejection, dispatch. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vmm/bus.h"
#include "base/err.h"

struct rec {
	uint64_t offset;
	uint32_t len;
	bool write;
	int calls;
};

static void handler(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rec *r = opaque;

	r->offset = offset;
	r->len = len;
	r->write = is_write;
	r->calls++;
	if (!is_write)
		memset(data, 0x5a, len);
}

Test(bus, dispatch_with_offset)
{
	struct bus b;
	struct rec a = { 0 }, c = { 0 };
	uint8_t d[8];

	bus_init(&b, "port");
	cr_assert_eq(bus_register(&b, 0x3f8, 8, handler, &a, "a"), 0);
	cr_assert_eq(bus_register(&b, 0x60, 5, handler, &c, "c"), 0);
	cr_assert(bus_access(&b, 0x3fd, d, 1, false));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.offset, 5);
	cr_assert_eq(d[0], 0x5a);
	cr_assert(bus_access(&b, 0x64, d, 1, true));
	cr_assert_eq(c.calls, 1);
	cr_assert_eq(c.offset, 4);
	cr_assert(c.write);
}

Test(bus, unmapped_reads_all_ones)
{
	struct bus b;
	uint8_t d[4] = { 0 };

	bus_init(&b, "MMIO");
	cr_assert_not(bus_access(&b, 0x1000, d, 4, false));
	cr_assert_eq(d[0], 0xff);
	cr_assert_eq(d[3], 0xff);
}

Test(bus, access_straddling_range_end_is_unmapped)
{
	struct bus b;
	struct rec a = { 0 };
	uint8_t d[4];

	bus_init(&b, "port");
	cr_assert_eq(bus_register(&b, 0x100, 4, handler, &a, "a"), 0);
	cr_assert_not(bus_access(&b, 0x102, d, 4, false));
	cr_assert_eq(a.calls, 0);
	cr_assert(bus_access(&b, 0x100, d, 4, false));
}

Test(bus, overlap_rejected_by_name)
{
	struct bus b;
	struct rec a;

	bus_init(&b, "port");
	cr_assert_eq(bus_register(&b, 0x100, 0x10, handler, &a, "first"), 0);
	cr_assert_eq(bus_register(&b, 0x10f, 1, handler, &a, "second"), -EEXIST);
	cr_assert_not_null(strstr(err_msg(), "overlaps first"));
	cr_assert_eq(bus_register(&b, 0xf8, 9, handler, &a, "third"), -EEXIST);
	cr_assert_eq(bus_register(&b, 0xf8, 8, handler, &a, "fourth"), 0);
	cr_assert_eq(bus_register(&b, 0x110, 8, handler, &a, "fifth"), 0);
	cr_assert_eq(bus_register(&b, 0, 0, handler, &a, "empty"), -EINVAL);
	cr_assert_eq(bus_register(&b, UINT64_MAX - 1, 4, handler, &a, "wrap"), -EINVAL);
}

Test(bus, many_ranges_sorted_lookup)
{
	struct bus b;
	struct rec r[BUS_MAX_RANGES];
	uint8_t d;

	memset(r, 0, sizeof(r));
	bus_init(&b, "MMIO");
	/* Register in reverse order; lookups must still find each. */
	for (int i = BUS_MAX_RANGES - 1; i >= 0; i--)
		cr_assert_eq(bus_register(&b, 0xd0000000ULL + (uint64_t)i * 0x1000, 0x1000, handler,
					  &r[i], "dev"), 0);
	cr_assert_eq(bus_register(&b, 0x0, 1, handler, &r[0], "extra"), -ENOSPC);
	for (int i = 0; i < BUS_MAX_RANGES; i++) {
		cr_assert(bus_access(&b, 0xd0000000ULL + (uint64_t)i * 0x1000 + 0x70, &d, 1, true));
		cr_assert_eq(r[i].calls, 1);
		cr_assert_eq(r[i].offset, 0x70);
	}
}
