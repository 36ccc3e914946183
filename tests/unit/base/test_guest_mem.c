/* test_guest_mem.c - checked guest-physical translation. */
#include <criterion/criterion.h>
#include <errno.h>

#include "base/guest_mem.h"

static struct guest_mem mem;

static void setup(void)
{
	gpa_t starts[2] = { 0, 0x100000000ULL };
	uint64_t sizes[2] = { 1 << 20, 2 << 20 };

	cr_assert_eq(guest_mem_map(&mem, starts, sizes, 2), 0);
}

static void teardown(void)
{
	guest_mem_unmap(&mem);
}

TestSuite(guest_mem, .init = setup, .fini = teardown);

Test(guest_mem, inside_ranges)
{
	cr_assert_not_null(gpa_to_host(&mem, 0, 1 << 20));
	cr_assert_not_null(gpa_to_host(&mem, (1 << 20) - 1, 1));
	cr_assert_not_null(gpa_to_host(&mem, 0x100000000ULL + 4096, 4096));
	cr_assert_not_null(gpa_to_host(&mem, 1 << 20, 0), "empty range at the end");
	cr_assert_eq((uint8_t *)gpa_to_host(&mem, 0x1234, 1), mem.region[0].host + 0x1234);
}

Test(guest_mem, outside_ranges)
{
	cr_assert_null(gpa_to_host(&mem, (1 << 20) - 1, 2), "crosses the end");
	cr_assert_null(gpa_to_host(&mem, 1 << 20, 1), "in the hole");
	cr_assert_null(gpa_to_host(&mem, 0xc0000000ULL, 4));
	cr_assert_null(gpa_to_host(&mem, 0x100000000ULL + (2 << 20), 1));
	cr_assert_null(gpa_to_host(&mem, UINT64_MAX, 2), "wraps");
	cr_assert_null(gpa_to_host(&mem, 16, UINT64_MAX), "length wraps");
	cr_assert_null(gpa_to_host(&mem, 0xffffffff, 0x100000002ULL), "spans the hole");
}

Test(guest_mem, read_write)
{
	uint32_t v = 0xdeadbeef, r = 0;

	cr_assert_eq(guest_write(&mem, 0x100000000ULL, &v, 4), 0);
	cr_assert_eq(guest_read(&mem, 0x100000000ULL, &r, 4), 0);
	cr_assert_eq(r, v);
	cr_assert_eq(guest_write(&mem, (1 << 20) - 2, &v, 4), -EFAULT);
	cr_assert_eq(guest_read(&mem, 0x200000000ULL, &r, 4), -EFAULT);
}

Test(guest_mem, bad_region_count)
{
	struct guest_mem m2;
	gpa_t s = 0;
	uint64_t z = 4096;

	cr_assert_eq(guest_mem_map(&m2, &s, &z, 0), -EINVAL);
	cr_assert_eq(guest_mem_map(&m2, &s, &z, 3), -EINVAL);
}
