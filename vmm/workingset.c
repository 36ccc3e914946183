/* workingset.c - record a restored guest's working set, check a working-set file, prefetch it (see workingset.h). */
#include "vmm/workingset.h"
#include "base/err.h"
#include "base/guest_mem.h"
#include "vmm/snapshot.h"
#include "vmm/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define CHUNK (2u << 20)                /* the prefetch loads this much at a time */
#define PM_PRESENT (1ull << 63)         /* /proc/PID/pagemap: the page is mapped */
#define PM_SWAPPED (1ull << 62)

struct ws_header {
	char magic[8];
	uint32_t version, header_size, nr_ranges, state_crc;
	uint64_t ram;
};
_Static_assert(sizeof(struct ws_header) == WS_HEADER_SIZE, "header is 32 bytes");
_Static_assert(sizeof(struct ws_range) == 16, "a range is 16 bytes");

static uint32_t crc_of(const uint8_t *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		c = crc32(c, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)c;
}

/* ---- building and checking the file (pure) ---- */

int ws_add_page(struct ws_builder *b, uint64_t off)
{
	if (off % WS_PAGE)
		return err_set(EINVAL, "working set: page offset %llu not aligned", (unsigned long long)off);
	if (b->n) {
		struct ws_range *last = &b->r[b->n - 1];
		uint64_t end = last->off + last->len;
		if (off < end)
			return err_set(EINVAL, "working set: page %llu out of order", (unsigned long long)off);
		if (off - end < WS_GAP) {
			last->len = off + WS_PAGE - last->off;
			return 0;
		}
	}
	if (b->n >= WS_MAX_RANGES) {
		b->full = true;
		return 0;
	}
	if (b->n == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 256;
		struct ws_range *r = realloc(b->r, (size_t)cap * sizeof(*r));
		if (!r)
			return err_set(ENOMEM, "working set: out of memory");
		b->r = r, b->cap = cap;
	}
	b->r[b->n++] = (struct ws_range){ .off = off, .len = WS_PAGE };
	return 0;
}

void ws_builder_free(struct ws_builder *b)
{
	free(b->r);
	memset(b, 0, sizeof(*b));
}

uint8_t *ws_encode(const struct ws_range *r, uint32_t n, uint32_t state_crc, uint64_t ram, size_t *len)
{
	size_t size = WS_HEADER_SIZE + (size_t)n * sizeof(*r) + 4;
	uint8_t *buf = malloc(size);
	struct ws_header h = { .version = WS_VERSION, .header_size = WS_HEADER_SIZE, .nr_ranges = n,
			       .state_crc = state_crc, .ram = ram };

	if (!buf)
		return NULL;
	memcpy(h.magic, WS_MAGIC, 8);
	memcpy(buf, &h, sizeof(h));
	if (n)
		memcpy(buf + WS_HEADER_SIZE, r, (size_t)n * sizeof(*r));
	uint32_t c = crc_of(buf, size - 4);
	memcpy(buf + size - 4, &c, 4);
	*len = size;
	return buf;
}

int ws_parse(const uint8_t *buf, size_t len, uint32_t state_crc, uint64_t ram, struct ws_range **out,
	     uint32_t *n)
{
	struct ws_header h;
	uint32_t c;

	*out = NULL;
	*n = 0;
	if (len < WS_HEADER_SIZE + 4 || memcmp(buf, WS_MAGIC, 8))
		return err_set(EINVAL, "not a working-set file");
	memcpy(&h, buf, sizeof(h));
	if (h.version != WS_VERSION)
		return err_set(EINVAL, "working-set format version %u; this microvm reads version %u", h.version,
			       WS_VERSION);
	if (h.header_size != WS_HEADER_SIZE || h.nr_ranges > WS_MAX_RANGES ||
	    len != WS_HEADER_SIZE + (size_t)h.nr_ranges * sizeof(struct ws_range) + 4)
		return err_set(EINVAL, "%zu bytes, its header says %u ranges (truncated or malformed)", len,
			       h.nr_ranges);
	memcpy(&c, buf + len - 4, 4);
	if (c != crc_of(buf, len - 4))
		return err_set(EINVAL, "checksum mismatch (corrupt)");
	if (h.state_crc != state_crc || h.ram != ram)
		return err_set(EINVAL, "recorded from another snapshot (record it again)");
	if (!h.nr_ranges)
		return 0;
	struct ws_range *r = malloc((size_t)h.nr_ranges * sizeof(*r));
	if (!r)
		return err_set(ENOMEM, "out of memory");
	memcpy(r, buf + WS_HEADER_SIZE, (size_t)h.nr_ranges * sizeof(*r));
	uint64_t end = 0;
	for (uint32_t i = 0; i < h.nr_ranges; i++) {
		if (r[i].len == 0 || r[i].off % WS_PAGE || r[i].len % WS_PAGE || r[i].off < end ||
		    r[i].off > ram || r[i].len > ram - r[i].off) {
			free(r);
			return err_set(EINVAL, "range %u out of order or out of range", i);
		}
		end = r[i].off + r[i].len;
	}
	*out = r;
	*n = h.nr_ranges;
	return 0;
}

/* ---- the prefetch thread ---- */

/*
 * The host address and length of the part of [off, off+len) of RAM (the
 * regions one after the other) that starts at off and lies in one region,
 * at most max bytes; NULL when off is outside RAM.
 */
static uint8_t *span(const struct guest_mem *mem, uint64_t off, uint64_t len, uint64_t max, uint64_t *n)
{
	uint64_t base = 0;

	for (int i = 0; i < mem->nr; i++) {
		const struct guest_region *g = &mem->region[i];
		if (off >= base && off - base < g->size) {
			uint64_t in = g->size - (off - base);
			*n = len < in ? len : in;
			if (*n > max)
				*n = max;
			return g->host + (off - base);
		}
		base += g->size;
	}
	return NULL;
}

static void *prefetch_thread(void *arg)
{
	struct ws_prefetch *p = arg;
	uint64_t t0 = stats_now_ns();
	bool populate = true;

	if (p->thread_init)
		p->thread_init();
	for (uint32_t i = 0; i < p->n && !atomic_load(&p->stop); i++) {
		for (uint64_t done = 0, n = 0; done < p->r[i].len && !atomic_load(&p->stop); done += n) {
			uint8_t *host = span(p->mem, p->r[i].off + done, p->r[i].len - done, CHUNK, &n);
			if (!host)
				break;
			/* Page aligned: regions and ranges are. A failure only loses the hint. */
			if (populate && madvise(host, n, MADV_POPULATE_READ) < 0 && errno == EINVAL)
				populate = false;        /* before Linux 5.14 */
			if (!populate)
				madvise(host, n, MADV_WILLNEED);
			p->bytes += n;
		}
	}
	p->ns = stats_now_ns() - t0;
	return NULL;
}

int ws_prefetch_start(struct ws_prefetch *p)
{
	atomic_store(&p->stop, false);
	int e = pthread_create(&p->thread, NULL, prefetch_thread, p);
	if (e)
		return err_set(e, "cannot start the working-set prefetch: %s", strerror(e));
	p->started = true;
	return 0;
}

void ws_prefetch_stop(struct ws_prefetch *p)
{
	if (p->started) {
		atomic_store(&p->stop, true);
		pthread_join(p->thread, NULL);
		p->started = false;
	}
	free(p->r);
	p->r = NULL;
	p->n = 0;
}

/* ---- recording ---- */

int ws_record(const struct guest_mem *mem, struct ws_builder *b)
{
	enum { BATCH = 4096 };
	static uint64_t pm[BATCH];      /* main thread only */
	uint64_t base = 0;
	int ret = 0;

	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "working set: /proc/self/pagemap: %s", strerror(errno));
	for (int i = 0; i < mem->nr && ret == 0; i++) {
		const struct guest_region *g = &mem->region[i];
		uint64_t pages = g->size / WS_PAGE, first = (uint64_t)(uintptr_t)g->host / WS_PAGE;
		for (uint64_t p = 0; p < pages && ret == 0;) {
			uint64_t want = pages - p < BATCH ? pages - p : BATCH;
			ssize_t got = pread(fd, pm, want * 8, (off_t)((first + p) * 8));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0 || got % 8) {
				ret = err_set(got < 0 ? errno : EIO, "working set: reading /proc/self/pagemap: %s",
					      got < 0 ? strerror(errno) : "short read");
				break;
			}
			for (uint64_t k = 0; k < (uint64_t)got / 8 && ret == 0; k++)
				if (pm[k] & (PM_PRESENT | PM_SWAPPED))
					ret = ws_add_page(b, base + (p + k) * WS_PAGE);
			p += (uint64_t)got / 8;
		}
		base += g->size;
	}
	close(fd);
	return ret;
}

int ws_record_save(const struct guest_mem *mem, const char *dir, uint32_t state_crc, uint64_t ram,
		   uint32_t *nr, uint64_t *bytes)
{
	struct ws_builder b = { 0 };
	size_t len;
	int ret;

	if ((ret = ws_record(mem, &b)) < 0)
		goto out;
	uint8_t *buf = ws_encode(b.r, b.n, state_crc, ram, &len);
	if (!buf) {
		ret = err_set(ENOMEM, "working set: out of memory");
		goto out;
	}
	ret = snapshot_save_working_set(dir, state_crc, buf, len);
	free(buf);
	*nr = b.n;
	*bytes = 0;
	for (uint32_t i = 0; i < b.n; i++)
		*bytes += b.r[i].len;
out:
	ws_builder_free(&b);
	return ret;
}
