/* guest_mem.h - guest RAM: allocation and the only checked way from a guest address to host memory. */
#ifndef MICROVM_GUEST_MEM_H
#define MICROVM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A guest physical address. Never add it to a host pointer by hand: use gpa_to_host(). */
typedef uint64_t gpa_t;

#define GUEST_MEM_MAX_REGIONS 2

struct guest_region {
	gpa_t gpa;      /* first guest-physical byte */
	uint64_t size;  /* bytes, page aligned */
	uint8_t *host;  /* host mapping of the whole region */
};

struct guest_mem {
	int nr;
	struct guest_region region[GUEST_MEM_MAX_REGIONS];
};

/*
 * Map anonymous host memory for each RAM range of the machine (ranges given as
 * gpa/size pairs, sizes page aligned). Returns 0 or -errno with err_msg() set.
 */
int guest_mem_map(struct guest_mem *mem, const gpa_t *starts, const uint64_t *sizes, int nr);

/*
 * The same, but the regions come from the file fd, one after the other from
 * offset 0, mapped MAP_PRIVATE (a snapshot's memory: vmm/snapshot.h); fd -1
 * is guest_mem_map(). The file must be at least as large as the regions.
 */
int guest_mem_map_file(struct guest_mem *mem, const gpa_t *starts, const uint64_t *sizes, int nr, int fd);

/* Unmap everything mapped by guest_mem_map(); safe on a zeroed struct. */
void guest_mem_unmap(struct guest_mem *mem);

/*
 * Host pointer for the guest range [gpa, gpa+len), or NULL when any byte of the
 * range is outside guest RAM or the range spans two regions. Overflow-safe.
 * len == 0 is valid iff gpa is inside (or at the end of) a region.
 */
void *gpa_to_host(const struct guest_mem *mem, gpa_t gpa, uint64_t len);

/* true iff [gpa, gpa+len) lies inside one RAM region (overflow-safe). */
bool gpa_range_ok(const struct guest_mem *mem, gpa_t gpa, uint64_t len);

/* Copy to / from guest memory; -EFAULT (with err_msg()) if the range is not RAM. */
int guest_write(const struct guest_mem *mem, gpa_t gpa, const void *src, uint64_t len);
int guest_read(const struct guest_mem *mem, gpa_t gpa, void *dst, uint64_t len);

#endif
