/* fuzz_util.c - the harnesses' shared helpers (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

size_t fz_bytes(struct fz *f, void *dst, size_t n)
{
	size_t got = n < f->n ? n : f->n;

	memcpy(dst, f->p, got);
	memset((uint8_t *)dst + got, 0, n - got);
	f->p += got;
	f->n -= got;
	return got;
}

void fz_ram_init(struct fz_ram *r, const gpa_t *starts, const uint64_t *sizes, int nr)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < nr && i < GUEST_MEM_MAX_REGIONS; i++) {
		uint8_t *p = aligned_alloc(4096, sizes[i]);

		if (!p)
			abort();
		memset(p, 0, sizes[i]);
		r->mem.region[i] = (struct guest_region){ .gpa = starts[i], .size = sizes[i], .host = p };
		r->mem.nr = i + 1;
	}
}

void fz_ram_free(struct fz_ram *r)
{
	for (int i = 0; i < r->mem.nr; i++)
		free(r->mem.region[i].host);
	memset(r, 0, sizeof(*r));
}

void fz_ram_load(struct fz_ram *r, gpa_t gpa, const void *src, size_t len)
{
	const uint8_t *s = src;

	/* Byte ranges that run from one region into an adjacent one are split. */
	while (len) {
		const struct guest_region *g = NULL;

		for (int i = 0; i < r->mem.nr; i++)
			if (gpa >= r->mem.region[i].gpa && gpa - r->mem.region[i].gpa < r->mem.region[i].size)
				g = &r->mem.region[i];
		if (!g)
			return;
		uint64_t off = gpa - g->gpa;
		size_t n = len < g->size - off ? len : (size_t)(g->size - off);
		memcpy(g->host + off, s, n);
		s += n;
		gpa += n;
		len -= n;
	}
}

bool fz_in_ram(const struct fz_ram *r, const void *p, uint64_t len)
{
	uintptr_t a = (uintptr_t)p;

	for (int i = 0; i < r->mem.nr; i++) {
		uintptr_t base = (uintptr_t)r->mem.region[i].host;
		uint64_t size = r->mem.region[i].size;

		if (a >= base && a - base <= size && len <= size - (a - base))
			return true;
	}
	return false;
}

void fz_publish(const struct virtq *q, uint16_t head)
{
	uint8_t *avail;
	uint16_t idx;

	if (!q->size || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)))
		return;
	avail = gpa_to_host(q->mem, q->avail, 6 + 2ULL * q->size);
	if (!avail)
		return;
	memcpy(&idx, avail + 2, 2);
	memcpy(avail + 4 + 2 * (idx & (q->size - 1)), &head, 2);
	idx++;
	memcpy(avail + 2, &idx, 2);
}

void fz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

void fz_quiet(void)
{
	log_set_level(LOG_ERROR);
}

size_t fz_ram_load_image(struct fz_ram *r, struct fz *f)
{
	uint16_t len = fz_u16(f);
	uint8_t *image = malloc(len ? len : 1);

	if (!image)
		abort();
	size_t got = fz_bytes(f, image, len);
	fz_ram_load(r, 0, image, got);
	free(image);
	return got;
}

int fz_split_args(const uint8_t *data, size_t start, size_t size, char **argv, int argc, int max)
{
	for (size_t i = start; i <= size && argc <= max; i++) {
		if (i < size && data[i] != '\n' && data[i] != '\0')
			continue;
		char *a = malloc(i - start + 1);
		if (!a)
			abort();
		memcpy(a, data + start, i - start);
		a[i - start] = '\0';
		argv[argc++] = a;
		start = i + 1;
	}
	return argc;
}
