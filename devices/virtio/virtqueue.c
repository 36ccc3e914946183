/* virtqueue.c - split virtqueues (virtio 1.2 section 2.7): every guest-provided index and address is checked. */
#include "devices/virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * Ring layouts (all fields little endian):
 *   avail: le16 flags, le16 idx, le16 ring[size], le16 used_event
 *   used:  le16 flags, le16 idx, {le32 id, le32 len} ring[size], le16 avail_event
 */
#define AVAIL_BYTES(size) (6ULL + 2ULL * (size))
#define USED_BYTES(size) (6ULL + 8ULL * (size))
#define DESC_BYTES(size) (16ULL * (size))

/* Host views of the three rings; only built by map_rings(), which checks them. */
struct rings {
	const uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
};

static bool size_ok(uint16_t size)
{
	return size >= 1 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) == 0;
}

/* Do [a, a+alen) and [b, b+blen) share a byte? Both ranges are known not to wrap. */
static bool overlap(gpa_t a, uint64_t alen, gpa_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int virtq_validate(const struct virtq *q)
{
	if (!q->mem || !size_ok(q->size))
		return -EINVAL;
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return -EINVAL;
	if (!gpa_range_ok(q->mem, q->desc, DESC_BYTES(q->size)) ||
	    !gpa_range_ok(q->mem, q->avail, AVAIL_BYTES(q->size)) ||
	    !gpa_range_ok(q->mem, q->used, USED_BYTES(q->size)))
		return -EINVAL;
	/*
	 * The device writes the used ring: if it overlapped the avail ring or the
	 * descriptors, the device's own stores would change what it reads next
	 * (used.flags over avail.idx made blk_process() spin forever; found by
	 * fuzz_blk). No driver lays its rings out like that.
	 */
	if (overlap(q->desc, DESC_BYTES(q->size), q->avail, AVAIL_BYTES(q->size)) ||
	    overlap(q->desc, DESC_BYTES(q->size), q->used, USED_BYTES(q->size)) ||
	    overlap(q->avail, AVAIL_BYTES(q->size), q->used, USED_BYTES(q->size)))
		return -EINVAL;
	return 0;
}

/*
 * Translate the rings again on every use (cheap: a region lookup) so a queue
 * that was never validated, or was reset, can never be walked. Guest regions
 * and their host mappings are page aligned, so the alignment checks of
 * virtq_validate() make the 16- and 32-bit ring fields naturally aligned.
 */
static bool map_rings(const struct virtq *q, struct rings *r)
{
	if (!q->ready || virtq_validate(q) != 0)
		return false;
	r->desc = gpa_to_host(q->mem, q->desc, DESC_BYTES(q->size));
	r->avail = gpa_to_host(q->mem, q->avail, AVAIL_BYTES(q->size));
	r->used = gpa_to_host(q->mem, q->used, USED_BYTES(q->size));
	return r->desc && r->avail && r->used;
}

/* 16-bit ring fields shared with a running guest: single aligned accesses. */
static uint16_t ld16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, order));
}

static void st16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), order);
}

static uint8_t *avail_flags(const struct rings *r) { return r->avail; }
static uint8_t *avail_idx(const struct rings *r) { return r->avail + 2; }
static uint8_t *avail_ring(const struct rings *r, uint16_t i) { return r->avail + 4 + 2 * (size_t)i; }
static uint8_t *used_event(const struct rings *r, uint16_t size) { return r->avail + 4 + 2 * (size_t)size; }
static uint8_t *used_flags(const struct rings *r) { return r->used; }
static uint8_t *used_idx(const struct rings *r) { return r->used + 2; }
static uint8_t *used_elem(const struct rings *r, uint16_t i) { return r->used + 4 + 8 * (size_t)i; }
static uint8_t *avail_event(const struct rings *r, uint16_t size) { return r->used + 4 + 8 * (size_t)size; }

void virtq_reset(struct virtq *q)
{
	const struct guest_mem *mem = q->mem;

	memset(q, 0, sizeof(*q));
	q->mem = mem;
}

/* One descriptor, copied out of guest memory once and converted to host order. */
static void read_desc(const uint8_t *table, uint32_t i, struct virtq_desc *d)
{
	memcpy(d, table + 16 * (size_t)i, sizeof(*d));
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	struct rings r;
	struct virtq_desc d;
	const uint8_t *table;
	uint32_t table_len, idx, count = 0;
	bool in_indirect = false, seen_writable = false;
	uint16_t avail, pending, head;

	if (!q->ready)
		return 0;
	if (!map_rings(q, &r))
		return -EINVAL;

	/* Acquire: the ring entries and descriptors written before idx are visible. */
	avail = ld16(avail_idx(&r), __ATOMIC_ACQUIRE);
	pending = (uint16_t)(avail - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return -EINVAL;

	head = ld16(avail_ring(&r, q->last_avail & (q->size - 1)), __ATOMIC_RELAXED);
	if (head >= q->size)
		return -EINVAL;

	c->head = head;
	c->n = 0;
	c->readable_len = 0;
	c->writable_len = 0;

	table = r.desc;
	table_len = q->size;
	idx = head;
	/*
	 * Every iteration either stores a buffer (counted, at most size of them)
	 * or switches to the indirect table (at most once), so the walk ends.
	 */
	for (;;) {
		if (idx >= table_len)
			return -EINVAL;
		read_desc(table, idx, &d);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % 16)
				return -EINVAL;
			table = gpa_to_host(q->mem, d.addr, d.len);
			if (!table)
				return -EINVAL;
			table_len = d.len / 16;
			in_indirect = true;
			idx = 0;
			continue;
		}

		if (++count > q->size)
			return -EINVAL;
		if (d.flags & VIRTQ_DESC_F_WRITE)
			seen_writable = true;
		else if (seen_writable)
			return -EINVAL;
		if (d.len) {
			void *host = gpa_to_host(q->mem, d.addr, d.len);

			if (!host)
				return -EINVAL;
			c->buf[c->n].host = host;
			c->buf[c->n].len = d.len;
			c->buf[c->n].device_writable = (d.flags & VIRTQ_DESC_F_WRITE) != 0;
			c->n++;
			if (d.flags & VIRTQ_DESC_F_WRITE)
				c->writable_len += d.len;
			else
				c->readable_len += d.len;
		}

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		idx = d.next;
	}

	q->last_avail++;
	if (q->event_idx)
		st16(avail_event(&r, q->size), q->last_avail, __ATOMIC_RELAXED);
	return 1;
}

void virtq_push_n(struct virtq *q, const uint16_t *head, const uint32_t *written, int n)
{
	struct rings r;

	if (n <= 0 || !map_rings(q, &r))
		return;
	for (int i = 0; i < n; i++) {
		uint32_t elem[2] = { htole32(head[i]), htole32(written[i]) };
		memcpy(used_elem(&r, (uint16_t)(q->used_idx + i) & (q->size - 1)), elem, sizeof(elem));
	}
	q->used_idx = (uint16_t)(q->used_idx + n);
	/* Release: every element is visible before the index that publishes them. */
	st16(used_idx(&r), q->used_idx, __ATOMIC_RELEASE);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	virtq_push_n(q, &head, &written, 1);
}

/* virtio 1.2 2.7.10: notify iff new_idx has passed event_idx since old_idx. */
static bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

bool virtq_should_notify(struct virtq *q)
{
	struct rings r;
	uint16_t old, event;
	bool valid;

	if (!map_rings(q, &r))
		return false;
	/* Our used idx store must be ordered before reading the driver's flags/event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(ld16(avail_flags(&r), __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);

	old = q->signalled_used;
	valid = q->signalled_valid;
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	if (!valid)
		return true;
	event = ld16(used_event(&r, q->size), __ATOMIC_RELAXED);
	return vring_need_event(event, q->used_idx, old);
}

void virtq_unpop(struct virtq *q)
{
	struct rings r;

	q->last_avail--;
	if (q->event_idx && map_rings(q, &r))
		st16(avail_event(&r, q->size), q->last_avail, __ATOMIC_RELAXED);
}

bool virtq_enable_notify(struct virtq *q, bool enable)
{
	struct rings r;

	if (!map_rings(q, &r))
		return false;
	if (q->event_idx) {
		/* Disabling: leave avail_event behind, the driver stops kicking once past it. */
		if (enable)
			st16(avail_event(&r, q->size), q->last_avail, __ATOMIC_RELAXED);
	} else {
		st16(used_flags(&r), enable ? 0 : VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
	}
	if (!enable)
		return false;
	/* Our flag/event store must be visible before we look at avail idx again. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return ld16(avail_idx(&r), __ATOMIC_ACQUIRE) != q->last_avail;
}

void virtq_suppress_kicks(struct virtq *q)
{
	struct rings r;

	if (!map_rings(q, &r))
		return;
	if (q->event_idx)
		st16(avail_event(&r, q->size), (uint16_t)(q->last_avail - 1), __ATOMIC_RELAXED);
	else
		st16(used_flags(&r), VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

static uint64_t chain_copy(const struct virtq_chain *c, bool writable, uint64_t offset,
			   uint8_t *dst, const uint8_t *src, uint64_t len)
{
	uint64_t done = 0;
	uint16_t n = c->n <= VIRTQ_MAX_SIZE ? c->n : VIRTQ_MAX_SIZE;

	for (uint16_t i = 0; i < n && done < len; i++) {
		const struct virtq_buf *b = &c->buf[i];
		uint64_t chunk;

		if (b->device_writable != writable)
			continue;
		if (offset >= b->len) {
			offset -= b->len;
			continue;
		}
		chunk = b->len - offset;
		if (chunk > len - done)
			chunk = len - done;
		if (writable)
			memcpy((uint8_t *)b->host + offset, src + done, chunk);
		else
			memcpy(dst + done, (const uint8_t *)b->host + offset, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t offset, void *dst, uint64_t len)
{
	return chain_copy(c, false, offset, dst, NULL, len);
}

uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t offset, const void *src, uint64_t len)
{
	return chain_copy(c, true, offset, NULL, src, len);
}
