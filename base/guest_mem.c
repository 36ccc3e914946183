/* guest_mem.c - guest RAM mappings and checked translation (see guest_mem.h). */
#include "base/guest_mem.h"
#include "base/err.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int guest_mem_map(struct guest_mem *mem, const gpa_t *starts, const uint64_t *sizes, int nr)
{
	return guest_mem_map_file(mem, starts, sizes, nr, -1);
}

int guest_mem_map_file(struct guest_mem *mem, const gpa_t *starts, const uint64_t *sizes, int nr, int fd)
{
	uint64_t off = 0;

	memset(mem, 0, sizeof(*mem));
	if (nr < 1 || nr > GUEST_MEM_MAX_REGIONS)
		return err_set(EINVAL, "guest memory: %d regions (1..%d allowed)", nr,
			       GUEST_MEM_MAX_REGIONS);
	for (int i = 0; i < nr; i++) {
		/* From a file: copy-on-write, loaded on first touch, shared through the page cache. */
		void *p = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_NORESERVE | (fd < 0 ? MAP_ANONYMOUS : 0), fd,
			       fd < 0 ? 0 : (off_t)off);
		off += sizes[i];
		if (p == MAP_FAILED) {
			int e = errno;
			guest_mem_unmap(mem);
			return err_set(e, "guest memory: cannot map %llu MiB: %s",
				       (unsigned long long)(sizes[i] >> 20), strerror(e));
		}
		/* Guest RAM never needs to be in a core dump of the VMM. */
		madvise(p, sizes[i], MADV_DONTDUMP);
		mem->region[i].gpa = starts[i];
		mem->region[i].size = sizes[i];
		mem->region[i].host = p;
		mem->nr = i + 1;
	}
	return 0;
}

void guest_mem_unmap(struct guest_mem *mem)
{
	for (int i = 0; i < mem->nr; i++)
		munmap(mem->region[i].host, mem->region[i].size);
	memset(mem, 0, sizeof(*mem));
}

static const struct guest_region *find_region(const struct guest_mem *mem, gpa_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nr; i++) {
		const struct guest_region *r = &mem->region[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off > r->size || len > r->size - off)
			continue;
		return r;
	}
	return NULL;
}

bool gpa_range_ok(const struct guest_mem *mem, gpa_t gpa, uint64_t len)
{
	return find_region(mem, gpa, len) != NULL;
}

void *gpa_to_host(const struct guest_mem *mem, gpa_t gpa, uint64_t len)
{
	const struct guest_region *r = find_region(mem, gpa, len);

	return r ? r->host + (gpa - r->gpa) : NULL;
}

int guest_write(const struct guest_mem *mem, gpa_t gpa, const void *src, uint64_t len)
{
	void *p = gpa_to_host(mem, gpa, len);

	if (!p)
		return err_set(EFAULT, "guest range 0x%llx+0x%llx is outside guest RAM",
			       (unsigned long long)gpa, (unsigned long long)len);
	memcpy(p, src, len);
	return 0;
}

int guest_read(const struct guest_mem *mem, gpa_t gpa, void *dst, uint64_t len)
{
	const void *p = gpa_to_host(mem, gpa, len);

	if (!p)
		return err_set(EFAULT, "guest range 0x%llx+0x%llx is outside guest RAM",
			       (unsigned long long)gpa, (unsigned long long)len);
	memcpy(dst, p, len);
	return 0;
}
