/* test_virtqueue.c - split virtqueue walking: normal, indirect and hostile chains, notification suppression. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"

#define RAM (1ULL << 20)
#define QS 8
#define DESC 0x1000ULL
#define AVAIL 0x2000ULL
#define USED 0x3000ULL
#define TABLE 0x4000ULL     /* an indirect table */
#define BUF 0x10000ULL      /* data buffers */

static struct guest_mem mem;
static struct virtq q;
static struct virtq_chain chain;
static uint16_t avail_idx;

static uint8_t *host(gpa_t gpa) { return mem.region[0].host + gpa; }

static void setup(void)
{
	gpa_t start = 0;
	uint64_t size = RAM;

	cr_assert_eq(guest_mem_map(&mem, &start, &size, 1), 0);
	memset(&q, 0, sizeof(q));
	q.mem = &mem;
	virtq_reset(&q);
	q.size = QS;
	q.desc = DESC;
	q.avail = AVAIL;
	q.used = USED;
	q.ready = true;
	avail_idx = 0;
}

static void teardown(void)
{
	guest_mem_unmap(&mem);
}

TestSuite(virtq, .init = setup, .fini = teardown);

static void put_desc(gpa_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(host(table + 16ULL * i), &d, 16);
}

static void set16(gpa_t gpa, uint16_t v) { memcpy(host(gpa), &v, 2); }
static uint16_t get16(gpa_t gpa) { uint16_t v; memcpy(&v, host(gpa), 2); return v; }
static uint32_t get32(gpa_t gpa) { uint32_t v; memcpy(&v, host(gpa), 4); return v; }

/* The driver makes head available. */
static void offer(uint16_t head)
{
	set16(AVAIL + 4 + 2 * (avail_idx % QS), head);
	avail_idx++;
	set16(AVAIL + 2, avail_idx);
}

/* Expect a hostile ring to be refused with nothing consumed. */
static void expect_einval(const char *why)
{
	uint16_t before = q.last_avail;

	cr_assert_eq(virtq_pop(&q, &chain), -EINVAL, "%s", why);
	cr_assert_eq(q.last_avail, before, "%s: nothing consumed", why);
}

/* ---- virtq_validate ---- */

Test(virtq, validate_good)
{
	cr_assert_eq(virtq_validate(&q), 0);
	q.size = 1;
	cr_assert_eq(virtq_validate(&q), 0);
	q.size = VIRTQ_MAX_SIZE;
	cr_assert_eq(virtq_validate(&q), 0);
}

Test(virtq, validate_size)
{
	uint16_t bad[] = { 0, 3, 6, 100, 512, 0x8000 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		q.size = bad[i];
		cr_assert_eq(virtq_validate(&q), -EINVAL, "size %u", bad[i]);
	}
}

Test(virtq, validate_alignment)
{
	q.desc = DESC + 8;
	cr_assert_eq(virtq_validate(&q), -EINVAL, "desc 8-aligned");
	q.desc = DESC;
	q.avail = AVAIL + 1;
	cr_assert_eq(virtq_validate(&q), -EINVAL, "avail odd");
	q.avail = AVAIL + 2;
	cr_assert_eq(virtq_validate(&q), 0, "avail 2-aligned is enough");
	q.used = USED + 2;
	cr_assert_eq(virtq_validate(&q), -EINVAL, "used 2-aligned");
	q.used = USED + 4;
	cr_assert_eq(virtq_validate(&q), 0, "used 4-aligned is enough");
}

Test(virtq, validate_inside_ram_including_event_fields)
{
	q.avail = RAM - (6 + 2 * QS);
	cr_assert_eq(virtq_validate(&q), 0, "avail ends exactly at the end of RAM");
	q.avail = RAM - (4 + 2 * QS);
	cr_assert_eq(virtq_validate(&q), -EINVAL, "used_event outside RAM");
	q.avail = AVAIL;
	q.used = RAM - (4 + 8 * QS);
	cr_assert_eq(virtq_validate(&q), -EINVAL, "avail_event outside RAM");
	q.used = RAM - (8 + 8 * QS);
	cr_assert_eq(virtq_validate(&q), 0);
	q.used = USED;
	q.desc = RAM - 16 * QS + 16;
	cr_assert_eq(virtq_validate(&q), -EINVAL, "desc table crosses the end");
	q.desc = 0xfffffffffffffff0ULL;
	cr_assert_eq(virtq_validate(&q), -EINVAL, "desc table wraps");
	q.desc = 0xc0000000ULL;
	cr_assert_eq(virtq_validate(&q), -EINVAL, "desc table in the hole");
}

/*
 * Found by fuzz_blk: with used = avail + 2 the device's used.flags store
 * rewrote avail.idx, so "pop finds nothing, re-enable notifications, avail
 * moved, pop again" never ended. Overlapping rings are refused; adjacent ones
 * are fine.
 */
Test(virtq, validate_rejects_overlapping_rings)
{
	static const struct {
		gpa_t desc, avail, used;
		int want;
		const char *why;
	} t[] = {
		{ DESC, AVAIL, AVAIL + 4, -EINVAL, "used.flags over avail.idx" },
		{ DESC, AVAIL, AVAIL, -EINVAL, "same address" },
		{ DESC, AVAIL, AVAIL + 6 + 2 * QS - 4, -EINVAL, "used over used_event" },
		{ DESC, AVAIL, AVAIL + 6 + 2 * QS + 2, 0, "used right after used_event (4-aligned)" },
		{ DESC, DESC + 16 * QS - 2, USED, -EINVAL, "avail over the last descriptor" },
		{ DESC, DESC + 16 * QS, USED, 0, "avail right after the table" },
		{ DESC, AVAIL, DESC + 16 * QS - 4, -EINVAL, "used over the last descriptor" },
		{ USED + 8, AVAIL, USED, -EINVAL, "table inside the used ring" },
		{ USED + 6 + 8 * QS + 10, AVAIL, USED, 0, "table after avail_event (16-aligned)" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		q.desc = t[i].desc;
		q.avail = t[i].avail;
		q.used = t[i].used;
		cr_assert_eq(virtq_validate(&q), t[i].want, "%s", t[i].why);
	}
	/* A queue marked ready anyway is not walked, nor written. */
	q.desc = DESC;
	q.avail = AVAIL;
	q.used = AVAIL + 4;
	offer(0);
	put_desc(DESC, 0, BUF, 16, 0, 0);
	cr_assert_eq(virtq_pop(&q, &chain), -EINVAL);
	cr_assert_not(virtq_enable_notify(&q, true));
	cr_assert_eq(get16(AVAIL + 2), 1, "avail.idx untouched");
}

/* ---- normal chains ---- */

Test(virtq, empty_and_not_ready)
{
	cr_assert_eq(virtq_pop(&q, &chain), 0);
	offer(0);
	q.ready = false;
	cr_assert_eq(virtq_pop(&q, &chain), 0, "not ready: nothing to do");
}

Test(virtq, readable_then_writable)
{
	uint8_t out[12];

	memcpy(host(BUF), "hello ", 6);
	memcpy(host(BUF + 0x100), "world!", 6);
	put_desc(DESC, 2, BUF, 6, VIRTQ_DESC_F_NEXT, 5);
	put_desc(DESC, 5, BUF + 0x100, 6, VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, BUF + 0x200, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 7);
	put_desc(DESC, 7, BUF + 0x300, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(2);

	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_eq(chain.head, 2);
	cr_assert_eq(chain.n, 4);
	cr_assert_eq(chain.readable_len, 12);
	cr_assert_eq(chain.writable_len, 12);
	cr_assert_eq(chain.buf[0].host, host(BUF));
	cr_assert_not(chain.buf[1].device_writable);
	cr_assert(chain.buf[2].device_writable);
	cr_assert_eq(chain.buf[3].len, 8);
	cr_assert_eq(q.last_avail, 1);

	cr_assert_eq(virtq_chain_read(&chain, 0, out, sizeof(out)), 12);
	cr_assert_arr_eq(out, "hello world!", 12);
	cr_assert_eq(virtq_chain_read(&chain, 4, out, 5), 5);
	cr_assert_arr_eq(out, "o wor", 5);
	cr_assert_eq(virtq_chain_read(&chain, 10, out, 10), 2, "stops at the end");
	cr_assert_eq(virtq_chain_read(&chain, 100, out, 10), 0);

	cr_assert_eq(virtq_chain_write(&chain, 2, "ABCDEFGHIJKLMN", 14), 10, "only 10 bytes left after offset 2");
	cr_assert_arr_eq(host(BUF + 0x200), "\0\0AB", 4);
	cr_assert_arr_eq(host(BUF + 0x300), "CDEFGHIJ", 8);
	cr_assert_eq(host(BUF + 0x308)[0], 0, "nothing written past the buffer");

	virtq_push(&q, chain.head, 12);
	cr_assert_eq(get16(USED + 2), 1);
	cr_assert_eq(get32(USED + 4), 2);
	cr_assert_eq(get32(USED + 8), 12);
	cr_assert_eq(virtq_pop(&q, &chain), 0, "ring empty again");
}

Test(virtq, zero_length_buffers_accepted_but_skipped)
{
	put_desc(DESC, 0, 0xdead000000000ULL, 0, VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_eq(chain.n, 1);
	cr_assert_eq(chain.readable_len, 0);
	cr_assert_eq(chain.writable_len, 16);
}

Test(virtq, many_chains_and_index_wrap)
{
	q.last_avail = 65533;
	q.used_idx = 65533;
	avail_idx = 65533;
	set16(AVAIL + 2, avail_idx);
	for (uint16_t i = 0; i < QS; i++)
		put_desc(DESC, i, BUF + 0x100 * i, 0x100, 0, 0);
	for (uint16_t i = 0; i < 6; i++)
		offer(i);
	for (uint16_t i = 0; i < 6; i++) {
		cr_assert_eq(virtq_pop(&q, &chain), 1);
		cr_assert_eq(chain.head, i);
		virtq_push(&q, chain.head, 0);
	}
	cr_assert_eq(virtq_pop(&q, &chain), 0);
	cr_assert_eq(q.last_avail, 3);
	cr_assert_eq(get16(USED + 2), 3);
}

Test(virtq, push_n_publishes_all_at_once_across_wrap)
{
	uint16_t heads[3] = { 5, 2, 7 };
	uint32_t lens[3] = { 100, 0, 4096 };

	q.used_idx = 65534;     /* the three entries straddle both wraps */
	set16(USED + 2, 65534);
	virtq_push_n(&q, heads, lens, 3);
	cr_assert_eq(get16(USED + 2), 1, "one index update covering all three");
	cr_assert_eq(q.used_idx, 1);
	for (int i = 0; i < 3; i++) {
		uint16_t slot = (uint16_t)(65534 + i) % QS;
		cr_assert_eq(get32(USED + 4 + 8 * slot), heads[i], "entry %d id", i);
		cr_assert_eq(get32(USED + 8 + 8 * slot), lens[i], "entry %d len", i);
	}
	virtq_push_n(&q, heads, lens, 0);
	cr_assert_eq(get16(USED + 2), 1, "n = 0 publishes nothing");
}

Test(virtq, full_ring_of_size_descriptors)
{
	for (uint16_t i = 0; i < QS; i++)
		put_desc(DESC, i, BUF + 0x10 * i, 0x10, i + 1 < QS ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1, "a chain of exactly size descriptors is fine");
	cr_assert_eq(chain.n, QS);
}

Test(virtq, indirect_chain)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(TABLE, 2, BUF + 0x100, 512, VIRTQ_DESC_F_NEXT, 1);
	put_desc(TABLE, 1, BUF + 0x1000, 1, VIRTQ_DESC_F_WRITE, 0);
	put_desc(DESC, 3, TABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	offer(3);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_eq(chain.head, 3);
	cr_assert_eq(chain.n, 3);
	cr_assert_eq(chain.readable_len, 528);
	cr_assert_eq(chain.writable_len, 1);
	cr_assert_eq(chain.buf[2].host, host(BUF + 0x1000));
}

Test(virtq, direct_then_indirect)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF + 0x100, 4, VIRTQ_DESC_F_WRITE, 0);
	put_desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_eq(chain.n, 2);
}

Test(virtq, indirect_table_of_size_entries)
{
	q.indirect = true;
	for (uint16_t i = 0; i < QS; i++)
		put_desc(TABLE, i, BUF, 1, i + 1 < QS ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	put_desc(DESC, 0, TABLE, 16 * QS, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_eq(chain.n, QS);
}

/* ---- hostile rings ---- */

Test(virtq, descriptor_loop)
{
	put_desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(0);
	expect_einval("loop");
}

Test(virtq, self_loop)
{
	put_desc(DESC, 4, BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
	offer(4);
	expect_einval("descriptor pointing at itself");
}

Test(virtq, next_out_of_range)
{
	put_desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, QS);
	offer(0);
	expect_einval("next == size");
	put_desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 0xffff);
	expect_einval("next == 0xffff");
}

Test(virtq, head_out_of_range)
{
	offer(QS);
	expect_einval("head == size");
	set16(AVAIL + 4, 0xffff);
	expect_einval("head == 0xffff");
}

Test(virtq, avail_idx_jumps_ahead)
{
	put_desc(DESC, 0, BUF, 16, 0, 0);
	set16(AVAIL + 2, QS + 1);
	expect_einval("avail idx size + 1 ahead");
	set16(AVAIL + 2, 0x8000);
	expect_einval("avail idx far ahead");
	set16(AVAIL + 2, QS);
	cr_assert_eq(virtq_pop(&q, &chain), 1, "exactly size ahead is a full ring");
}

Test(virtq, buffer_beyond_ram_end)
{
	put_desc(DESC, 0, RAM - 8, 16, 0, 0);
	offer(0);
	expect_einval("crosses the end of RAM");
	put_desc(DESC, 0, RAM, 1, 0, 0);
	expect_einval("starts at the end of RAM");
	put_desc(DESC, 0, 0xc0000000ULL, 4096, VIRTQ_DESC_F_WRITE, 0);
	expect_einval("in the MMIO hole");
	put_desc(DESC, 0, RAM - 8, 8, 0, 0);
	cr_assert_eq(virtq_pop(&q, &chain), 1, "ends exactly at the end of RAM");
}

Test(virtq, buffer_wraps_address_space)
{
	put_desc(DESC, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
	offer(0);
	expect_einval("wraps around 2^64");
	put_desc(DESC, 0, UINT64_MAX, 2, VIRTQ_DESC_F_WRITE, 0);
	expect_einval("wraps from the last byte");
}

Test(virtq, huge_length)
{
	put_desc(DESC, 0, BUF, 0xffffffff, 0, 0);
	offer(0);
	expect_einval("4 GiB buffer");
	put_desc(DESC, 0, 0, (uint32_t)RAM + 1, 0, 0);
	expect_einval("one byte more than RAM");
}

Test(virtq, indirect_not_negotiated)
{
	put_desc(TABLE, 0, BUF, 16, 0, 0);
	put_desc(DESC, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("indirect without VIRTIO_RING_F_INDIRECT_DESC");
}

Test(virtq, nested_indirect)
{
	q.indirect = true;
	put_desc(TABLE + 0x100, 0, BUF, 16, 0, 0);
	put_desc(TABLE, 0, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(DESC, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("indirect inside indirect");
}

Test(virtq, indirect_bad_length)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF, 16, 0, 0);
	put_desc(TABLE, 1, BUF, 16, 0, 0);
	put_desc(DESC, 0, TABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("empty indirect table");
	put_desc(DESC, 0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
	expect_einval("indirect table of 24 bytes");
	put_desc(DESC, 0, TABLE, 15, VIRTQ_DESC_F_INDIRECT, 0);
	expect_einval("indirect table of 15 bytes");
}

Test(virtq, indirect_table_outside_ram)
{
	q.indirect = true;
	put_desc(DESC, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("table crosses the end of RAM");
	put_desc(DESC, 0, 0xfffffffffffffff0ULL, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_einval("table wraps");
	put_desc(DESC, 0, 0x100000000ULL, 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_einval("table above RAM");
}

Test(virtq, indirect_with_next)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF, 16, 0, 0);
	put_desc(DESC, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, BUF, 16, 0, 0);
	offer(0);
	expect_einval("INDIRECT together with NEXT");
}

Test(virtq, indirect_next_beyond_table)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(TABLE, 2, BUF, 16, 0, 0);   /* present in memory but past the table's length */
	put_desc(DESC, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("next beyond the indirect table");
}

Test(virtq, indirect_loop)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(TABLE, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	put_desc(DESC, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("loop inside an indirect table");
}

Test(virtq, chain_longer_than_size)
{
	q.indirect = true;
	for (uint16_t i = 0; i <= QS; i++)
		put_desc(TABLE, i, BUF, 1, i < QS ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	put_desc(DESC, 0, TABLE, 16 * (QS + 1), VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("size + 1 descriptors in an indirect table");

	/* Direct descriptors count too: 2 direct + size - 1 indirect. */
	put_desc(DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 2);
	put_desc(DESC, 2, TABLE, 16 * (QS - 1), VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(TABLE, QS - 2, BUF, 1, 0, 0);
	expect_einval("direct and indirect together longer than size");
}

Test(virtq, huge_indirect_table_is_capped)
{
	q.indirect = true;
	/* A 64 KiB table of descriptors that all point to the next: the cap stops it. */
	for (uint32_t i = 0; i < 4096; i++)
		put_desc(TABLE, (uint16_t)i, BUF, 1, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	put_desc(DESC, 0, TABLE, 4096 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("long indirect chain");
}

Test(virtq, readable_after_writable)
{
	put_desc(DESC, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(DESC, 1, BUF, 16, 0, 0);
	offer(0);
	expect_einval("readable after writable");
}

Test(virtq, readable_after_writable_indirect)
{
	q.indirect = true;
	put_desc(TABLE, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	put_desc(TABLE, 1, BUF, 16, 0, 0);
	put_desc(DESC, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	expect_einval("readable after writable in an indirect table");
}

Test(virtq, rings_moved_outside_ram_after_validation)
{
	q.used = RAM;   /* as if validation had been skipped */
	offer(0);
	expect_einval("rings not in RAM");
	virtq_push(&q, 0, 0);   /* must not crash or write anywhere */
	cr_assert_not(virtq_should_notify(&q));
	cr_assert_not(virtq_enable_notify(&q, true));
}

/* ---- notification suppression ---- */

Test(virtq, no_interrupt_flag)
{
	put_desc(DESC, 0, BUF, 16, 0, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	virtq_push(&q, 0, 0);
	cr_assert(virtq_should_notify(&q));
	set16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	cr_assert_not(virtq_should_notify(&q));
}

Test(virtq, enable_notify_without_event_idx)
{
	cr_assert_not(virtq_enable_notify(&q, false));
	cr_assert_eq(get16(USED), VIRTQ_USED_F_NO_NOTIFY);
	cr_assert_not(virtq_enable_notify(&q, true), "nothing arrived");
	cr_assert_eq(get16(USED), 0);
	put_desc(DESC, 0, BUF, 16, 0, 0);
	offer(0);
	cr_assert(virtq_enable_notify(&q, true), "a buffer arrived while notifications were off");
}

Test(virtq, event_idx_should_notify)
{
	q.event_idx = true;
	for (uint16_t i = 0; i < QS; i++) {
		put_desc(DESC, i, BUF, 16, 0, 0);
		offer(i);
	}
	/* used_event lives after the avail ring. */
	set16(AVAIL + 4 + 2 * QS, 0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_eq(get16(USED + 4 + 8 * QS), 1, "avail_event written after consuming");
	virtq_push(&q, chain.head, 0);
	cr_assert(virtq_should_notify(&q), "first interrupt always goes out");

	/* Driver wants an interrupt when used idx passes 2 (i.e. after the 3rd entry). */
	set16(AVAIL + 4 + 2 * QS, 2);
	virtq_pop(&q, &chain);
	virtq_push(&q, chain.head, 0);               /* used idx 2 */
	cr_assert_not(virtq_should_notify(&q), "used_event 2 not passed yet");
	virtq_pop(&q, &chain);
	virtq_push(&q, chain.head, 0);               /* used idx 3 */
	cr_assert(virtq_should_notify(&q), "used_event 2 passed");
	cr_assert_not(virtq_should_notify(&q), "nothing new since the last interrupt");

	/* Several pushes at once, crossing the event. */
	set16(AVAIL + 4 + 2 * QS, 4);
	for (int i = 0; i < 3; i++) {
		virtq_pop(&q, &chain);
		virtq_push(&q, chain.head, 0);       /* used idx 4, 5, 6 */
	}
	cr_assert(virtq_should_notify(&q), "event 4 crossed by a batch");

	/* Event far behind: the driver is not interested. */
	set16(AVAIL + 4 + 2 * QS, 1);
	virtq_pop(&q, &chain);
	virtq_push(&q, chain.head, 0);
	cr_assert_not(virtq_should_notify(&q));
	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	set16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	set16(AVAIL + 4 + 2 * QS, 7);
	virtq_pop(&q, &chain);
	virtq_push(&q, chain.head, 0);               /* used idx 8 passes event 7 */
	cr_assert(virtq_should_notify(&q));
}

Test(virtq, event_idx_enable_notify_race)
{
	q.event_idx = true;
	put_desc(DESC, 0, BUF, 16, 0, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	set16(USED + 4 + 8 * QS, 0x1234);
	cr_assert_not(virtq_enable_notify(&q, false));
	cr_assert_eq(get16(USED + 4 + 8 * QS), 0x1234, "disable leaves avail_event alone");
	cr_assert_eq(get16(USED), 0, "used flags untouched with EVENT_IDX");
	cr_assert_not(virtq_enable_notify(&q, true), "ring empty");
	cr_assert_eq(get16(USED + 4 + 8 * QS), 1, "avail_event = last_avail");
	/* The driver adds a buffer between our last pop and enabling. */
	offer(0);
	cr_assert(virtq_enable_notify(&q, true), "the caller must look again");
}

/* The driver's side of a kick decision (Linux's virtqueue_kick_prepare with EVENT_IDX). */
static bool driver_would_kick(uint16_t old, uint16_t now)
{
	uint16_t event = get16(USED + 4 + 8 * QS);
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

Test(virtq, suppress_kicks_event_idx)
{
	q.event_idx = true;
	put_desc(DESC, 0, BUF, 16, 0, 0);
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert_not(virtq_enable_notify(&q, true));
	cr_assert(driver_would_kick(1, 2), "kicks on: the next buffer would be kicked");
	virtq_suppress_kicks(&q);
	cr_assert_eq(get16(USED + 4 + 8 * QS), 0, "avail_event one behind last_avail");
	/* Whatever the driver adds now (up to a full ring), it does not kick. */
	for (uint16_t n = 1; n <= QS; n++)
		cr_assert_not(driver_would_kick(1, (uint16_t)(1 + n)), "%u buffers added", n);
	/* The next pop (the device looking by itself) turns kicks back on after it. */
	offer(0);
	cr_assert_eq(virtq_pop(&q, &chain), 1);
	cr_assert(driver_would_kick(2, 3));
	virtq_suppress_kicks(&q);
	cr_assert_not(driver_would_kick(2, 3));
	cr_assert_not(virtq_enable_notify(&q, true), "ring empty");
	cr_assert(driver_would_kick(2, 3), "enable undoes it");
}

Test(virtq, suppress_kicks_flags)
{
	cr_assert_not(virtq_enable_notify(&q, true));
	cr_assert_eq(get16(USED), 0);
	virtq_suppress_kicks(&q);
	cr_assert_eq(get16(USED), VIRTQ_USED_F_NO_NOTIFY);
	cr_assert_not(virtq_enable_notify(&q, true));
	cr_assert_eq(get16(USED), 0);
}
