/* test_workingset.c - the working set: ranges built from touched pages, the file's parser, the recording. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

#include "base/err.h"
#include "base/guest_mem.h"
#include "vmm/workingset.h"

#define RAM (64ULL << 20)
#define CRC 0x12345678u
#define P WS_PAGE

static void add_all(struct ws_builder *b, const uint64_t *pages, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(ws_add_page(b, pages[i] * P), 0, "page %llu", (unsigned long long)pages[i]);
}

/* Pages closer than WS_GAP join one range; farther ones start a new one. */
Test(workingset, builder_merges_near_pages)
{
	struct ws_builder b = { 0 };
	uint64_t gap_pages = WS_GAP / P;
	uint64_t pages[] = { 0, 1, 2, 5, 5 + gap_pages, 5 + 2 * gap_pages + 1, 1000 };

	add_all(&b, pages, sizeof(pages) / sizeof(pages[0]));
	cr_assert_eq(b.n, 3);
	cr_assert_eq(b.r[0].off, 0);
	cr_assert_eq(b.r[0].len, (5 + gap_pages + 1) * P, "a gap just under WS_GAP is bridged");
	cr_assert_eq(b.r[1].off, (5 + 2 * gap_pages + 1) * P, "a gap of WS_GAP is not");
	cr_assert_eq(b.r[1].len, P);
	cr_assert_eq(b.r[2].off, 1000 * P);
	cr_assert_eq(b.r[2].len, P);
	ws_builder_free(&b);
}

Test(workingset, builder_refuses_out_of_order_and_unaligned)
{
	struct ws_builder b = { 0 };

	cr_assert_eq(ws_add_page(&b, 10 * P), 0);
	cr_assert_eq(ws_add_page(&b, 9 * P), -EINVAL);
	cr_assert(strstr(err_msg(), "out of order"));
	cr_assert_eq(ws_add_page(&b, 100 * P + 1), -EINVAL);
	cr_assert_eq(b.n, 1);
	ws_builder_free(&b);
}

/* At WS_MAX_RANGES the set stops growing (it is a hint) and says so. */
Test(workingset, builder_caps_ranges, .timeout = 60)
{
	struct ws_builder b = { 0 };
	uint64_t step = WS_GAP + P;

	for (uint64_t i = 0; i <= WS_MAX_RANGES; i++)
		cr_assert_eq(ws_add_page(&b, i * step), 0);
	cr_assert_eq(b.n, WS_MAX_RANGES);
	cr_assert(b.full);
	ws_builder_free(&b);
}

static uint8_t *encode3(size_t *len)
{
	struct ws_range r[] = { { 0, 4 * P }, { 100 * P, P }, { RAM - 2 * P, 2 * P } };
	uint8_t *buf = ws_encode(r, 3, CRC, RAM, len);
	cr_assert_not_null(buf);
	return buf;
}

Test(workingset, encode_parse_round_trip)
{
	size_t len;
	uint8_t *buf = encode3(&len);
	struct ws_range *r;
	uint32_t n;

	cr_assert_eq(len, WS_HEADER_SIZE + 3 * 16 + 4);
	cr_assert_eq(memcmp(buf, WS_MAGIC, 8), 0);
	cr_assert_eq(ws_parse(buf, len, CRC, RAM, &r, &n), 0, "%s", err_msg());
	cr_assert_eq(n, 3);
	cr_assert_eq(r[2].off, RAM - 2 * P);
	cr_assert_eq(r[2].len, 2 * P);
	free(r);
	/* An empty set is valid. */
	free(buf);
	buf = ws_encode(NULL, 0, CRC, RAM, &len);
	cr_assert_eq(ws_parse(buf, len, CRC, RAM, &r, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_null(r);
	free(buf);
}

/* Re-seal buf after an edit, so the check under test is reached, not the CRC's. */
static void reseal(uint8_t *buf, size_t len)
{
	uint32_t c = (uint32_t)crc32(0, buf, (uInt)(len - 4));
	memcpy(buf + len - 4, &c, 4);
}

static void refused(uint8_t *buf, size_t len, const char *what, const char *msg)
{
	struct ws_range *r = (void *)1;
	uint32_t n = 7;

	err_clear();
	cr_assert_eq(ws_parse(buf, len, CRC, RAM, &r, &n), -EINVAL, "%s", what);
	cr_assert(strstr(err_msg(), msg), "%s: message '%s' lacks '%s'", what, err_msg(), msg);
	cr_assert_null(r, "%s", what);
	cr_assert_eq(n, 0, "%s", what);
}

Test(workingset, parse_refuses_bad_files)
{
	size_t len;
	uint8_t *buf = encode3(&len), *c = malloc(len);
	uint32_t v;
	uint64_t q;

	/* Every truncation, and one byte more. */
	for (size_t l = 0; l < len; l++)
		refused(buf, l, "truncated", l < WS_HEADER_SIZE + 4 ? "not a working-set file" : "truncated");
	uint8_t *longer = calloc(1, len + 1);
	memcpy(longer, buf, len);
	refused(longer, len + 1, "one byte longer", "truncated");
	free(longer);
	/* Every flipped bit: the CRC (or the magic) catches it. */
	for (size_t i = 0; i < len * 8; i++) {
		memcpy(c, buf, len);
		c[i / 8] ^= (uint8_t)(1u << (i % 8));
		struct ws_range *r;
		uint32_t n;
		cr_assert_lt(ws_parse(c, len, CRC, RAM, &r, &n), 0, "bit %zu", i);
	}
#define EDIT(off, val, what, msg)                      \
	do {                                           \
		memcpy(c, buf, len);                   \
		memcpy(c + (off), &(val), sizeof(val)); \
		reseal(c, len);                        \
		refused(c, len, what, msg);            \
	} while (0)
	v = 2;
	EDIT(8, v, "another version", "version 2");
	v = 64;
	EDIT(12, v, "header size", "malformed");
	v = 4;
	EDIT(16, v, "more ranges than bytes", "truncated");
	v = CRC + 1;
	EDIT(20, v, "another snapshot", "another snapshot");
	q = RAM * 2;
	EDIT(24, q, "another RAM size", "another snapshot");
	q = 0;
	EDIT(WS_HEADER_SIZE + 8, q, "an empty range", "range 0");
	q = 3;
	EDIT(WS_HEADER_SIZE, q, "an unaligned offset", "range 0");
	q = P + 1;
	EDIT(WS_HEADER_SIZE + 8, q, "an unaligned length", "range 0");
	q = 2 * P;
	EDIT(WS_HEADER_SIZE + 16, q, "overlapping ranges", "range 1");
	q = RAM;
	EDIT(WS_HEADER_SIZE + 32, q, "a range past RAM", "range 2");
	q = UINT64_MAX - P + 1;
	EDIT(WS_HEADER_SIZE + 40, q, "a length that wraps", "range 2");
	free(c);
	free(buf);
}

/* The recording reads this process's page table: touched pages of a mapping, nothing else. */
Test(workingset, record_sees_touched_pages)
{
	struct guest_mem m = { 0 };
	struct ws_builder b = { 0 };
	uint64_t size = 16ULL << 20;
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED);
	m.nr = 1;
	m.region[0].host = p;
	m.region[0].size = size;
	p[5 * P] = 1;                               /* 5 */
	p[(size / 2) + 3] = 1;                      /* 2048 */
	p[size - 1] = 1;                            /* the last */
	cr_assert_eq(ws_record(&m, &b), 0, "%s", err_msg());
	cr_assert_eq(b.n, 3);
	cr_assert_eq(b.r[0].off, 5 * P);
	cr_assert_eq(b.r[0].len, P);
	cr_assert_eq(b.r[1].off, size / 2);
	cr_assert_eq(b.r[2].off, size - P);
	ws_builder_free(&b);
	munmap(p, size);
}

/* The prefetch loads every range of a file mapping, across regions, and stops when asked. */
Test(workingset, prefetch_loads_ranges)
{
	struct guest_mem m = { 0 };
	uint64_t size = 8ULL << 20;
	uint8_t *p = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	m.nr = 2;
	m.region[0].host = p;
	m.region[0].size = size;
	m.region[1].host = p + size;
	m.region[1].size = size;
	struct ws_prefetch pf = { .n = 2, .mem = &m };
	pf.r = malloc(2 * sizeof(*pf.r));
	pf.r[0] = (struct ws_range){ P, 3 * P };
	pf.r[1] = (struct ws_range){ size - 2 * P, 5 * 1024 * 1024 };   /* crosses into the second region */
	cr_assert_eq(ws_prefetch_start(&pf), 0);
	pthread_join(pf.thread, NULL);
	pf.started = false;
	cr_assert_eq(pf.bytes, 3 * P + 5 * 1024 * 1024);
	unsigned char vec[1];
	cr_assert_eq(mincore(p + size + 4 * 1024 * 1024, P, vec), 0);
	cr_assert(vec[0] & 1, "a page of the second region was loaded");
	cr_assert_eq(mincore(p + size + 6 * 1024 * 1024, P, vec), 0);
	cr_assert_not(vec[0] & 1, "a page outside the ranges was not");
	ws_prefetch_stop(&pf);
	cr_assert_null(pf.r);
	munmap(p, 2 * size);
}
