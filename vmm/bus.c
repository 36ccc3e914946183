/* bus.c - the port I/O and MMIO address maps (see bus.h). */
#include "vmm/bus.h"
#include "base/err.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *bus, const char *space)
{
	memset(bus, 0, sizeof(*bus));
	bus->space = space;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t size, bus_handler_fn fn, void *opaque,
		 const char *name)
{
	if (size == 0 || base + size < base || !fn)
		return err_set(EINVAL, "%s range 0x%llx+0x%llx for %s is invalid", bus->space,
			       (unsigned long long)base, (unsigned long long)size, name);
	if (bus->nr == BUS_MAX_RANGES)
		return err_set(ENOSPC, "%s map is full, cannot add %s", bus->space, name);
	int pos = 0;
	while (pos < bus->nr && bus->range[pos].base < base)
		pos++;
	/* Only the neighbours can overlap in a sorted, non-overlapping table. */
	const struct bus_range *prev = pos > 0 ? &bus->range[pos - 1] : NULL;
	const struct bus_range *next = pos < bus->nr ? &bus->range[pos] : NULL;
	const struct bus_range *clash = NULL;
	if (prev && prev->base + prev->size > base)
		clash = prev;
	else if (next && base + size > next->base)
		clash = next;
	if (clash)
		return err_set(EEXIST, "%s range 0x%llx+0x%llx for %s overlaps %s at 0x%llx+0x%llx",
			       bus->space, (unsigned long long)base, (unsigned long long)size, name,
			       clash->name, (unsigned long long)clash->base,
			       (unsigned long long)clash->size);
	memmove(&bus->range[pos + 1], &bus->range[pos], (size_t)(bus->nr - pos) * sizeof(bus->range[0]));
	bus->range[pos] = (struct bus_range){ base, size, fn, opaque, name };
	bus->nr++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	int lo = 0, hi = bus->nr - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->range[mid];
		if (addr < r->base) {
			hi = mid - 1;
		} else if (addr - r->base >= r->size) {
			lo = mid + 1;
		} else {
			/* addr is inside r; the whole access must be too. */
			if (len > r->size - (addr - r->base))
				return NULL;
			return r;
		}
	}
	return NULL;
}

bool bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	const struct bus_range *r = len <= 8 ? bus_find(bus, addr, len) : NULL;

	if (!r) {
		if (!is_write)
			memset(data, 0xff, len > 8 ? 8 : len);
		return false;
	}
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
