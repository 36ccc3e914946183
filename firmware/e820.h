/* e820.h - the machine's memory map in the e820 form used by the boot protocols. */
#ifndef MICROVM_E820_H
#define MICROVM_E820_H

#include <stdint.h>
#include "firmware/machine.h"

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));
_Static_assert(sizeof(struct e820_entry) == 20, "e820 entry is 20 bytes");

/*
 * Write the memory map of m into out[0..max): low RAM below MV_EBDA_START,
 * the reserved legacy area (MV_EBDA_START..1 MiB), RAM from 1 MiB to the low
 * end, RAM above 4 GiB. Returns the number of entries or -ENOSPC.
 */
int e820_build(const struct machine *m, struct e820_entry *out, int max);

#endif
