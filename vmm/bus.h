/* bus.h - one address map type for port I/O and for MMIO, one handler signature. */
#ifndef MICROVM_BUS_H
#define MICROVM_BUS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A device handler. offset is relative to the start of the registered range,
 * data holds len (1..8) bytes, little endian: filled by the handler on a read,
 * provided by the guest on a write. Handlers run on vCPU threads, possibly
 * several at once, so devices lock their own state.
 */
typedef void (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			       bool is_write);

#define BUS_MAX_RANGES 32

struct bus_range {
	uint64_t base;
	uint64_t size;
	bus_handler_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	const char *space;          /* "port" or "MMIO", for messages */
	int nr;
	struct bus_range range[BUS_MAX_RANGES]; /* sorted by base, never overlapping */
};

void bus_init(struct bus *bus, const char *space);

/*
 * Register [base, base+size) for a device. -EEXIST with err_msg() naming both
 * devices when it overlaps an existing range; -EINVAL for size 0 or overflow;
 * -ENOSPC when the table is full.
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t size, bus_handler_fn fn, void *opaque,
		 const char *name);

/* The range holding all of [addr, addr+len), or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len);

/*
 * Dispatch an access. Returns true when a device took it; false when nothing
 * is mapped there, in which case a read returns all ones and a write is dropped.
 */
bool bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
