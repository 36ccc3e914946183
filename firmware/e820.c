/* e820.c - renders the machine's RAM ranges as an e820 memory map. */
#include "firmware/e820.h"

#include <errno.h>

#include "base/err.h"

static int add(struct e820_entry *out, int max, int *n, uint64_t addr, uint64_t size, uint32_t type)
{
	if (size == 0)
		return 0;
	if (*n >= max)
		return err_set(ENOSPC, "e820 map: more than %d entries", max);
	out[*n] = (struct e820_entry){ .addr = addr, .size = size, .type = type };
	(*n)++;
	return 0;
}

int e820_build(const struct machine *m, struct e820_entry *out, int max)
{
	uint64_t low_end = machine_low_ram_end(m);
	int n = 0;
	int ret;

	/* machine_init() guarantees at least MV_MEM_MIN, far above 1 MiB. */
	if (low_end <= MV_HIGH_MEM_START)
		return err_set(EINVAL, "e820 map: low RAM ends at 0x%llx, below 1 MiB",
			       (unsigned long long)low_end);
	if ((ret = add(out, max, &n, 0, MV_EBDA_START, E820_RAM)) < 0 ||
	    (ret = add(out, max, &n, MV_EBDA_START, MV_HIGH_MEM_START - MV_EBDA_START,
		       E820_RESERVED)) < 0 ||
	    (ret = add(out, max, &n, MV_HIGH_MEM_START, low_end - MV_HIGH_MEM_START, E820_RAM)) < 0)
		return ret;
	if (m->nr_ram > 1 &&
	    (ret = add(out, max, &n, m->ram[1].start, m->ram[1].size, E820_RAM)) < 0)
		return ret;
	return n;
}
