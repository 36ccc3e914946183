/* fuzz_virtqueue.c - libFuzzer harness: split-virtqueue chain walking, used ring and notification suppression on a hostile guest RAM. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "fuzz.h"

/*
 * Input:
 *   u8  flags     bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 raw queue size
 *   u16 size      raw (bit 2) or 1 << (size % 9)
 *   u16 desc, avail, used   ring addresses (guest RAM is 0x0000..0x3fff, two regions)
 *   u16 image_len, then that many bytes loaded at guest address 0
 *   then a script of operations (below) up to the end of the input.
 * The queue is marked ready whether or not virtq_validate() accepts it: every
 * virtq_* function must re-check the rings itself.
 */

#define REGION_SIZE 0x2000ULL
#define MAX_OPS 512
#define MAX_HELD 64

enum op {
	OP_POP,           /* virtq_pop(); keep the chain */
	OP_PUSH,          /* u8 which held chain, u32 written */
	OP_PUSH_N,        /* u8 how many held chains, at once */
	OP_SHOULD_NOTIFY,
	OP_ENABLE_NOTIFY, /* u8 bit 0: enable */
	OP_CHAIN_READ,    /* u32 offset, u16 len: from the last chain's readable buffers */
	OP_CHAIN_WRITE,   /* u32 offset, u16 len: into its writable buffers */
	OP_GUEST_WRITE,   /* u16 gpa, u8 len, bytes: the guest rewrites its memory */
	OP_GUEST_AVAIL,   /* u16 head: the guest publishes a chain (avail ring + idx) */
	OP_RESET,         /* virtq_reset() and set the same rings up again */
	OP_DRAIN,         /* a device's loop: pop and push until empty, re-enabling notifications */
	OP_COUNT
};

static struct virtq_chain chain;   /* big (4 KiB of buffers): not on the stack */

static void check_chain(const struct fz_ram *ram, const struct virtq *q, const struct virtq_chain *c)
{
	uint64_t rd = 0, wr = 0;
	bool seen_writable = false;

	FZ_CHECK(c->head < q->size);
	FZ_CHECK(c->n <= q->size && c->n <= VIRTQ_MAX_SIZE);
	for (uint16_t i = 0; i < c->n; i++) {
		const struct virtq_buf *b = &c->buf[i];

		FZ_CHECK(b->len > 0);
		FZ_CHECK(fz_in_ram(ram, b->host, b->len));
		if (b->device_writable) {
			seen_writable = true;
			wr += b->len;
		} else {
			FZ_CHECK(!seen_writable);
			rd += b->len;
		}
	}
	FZ_CHECK(rd == c->readable_len && wr == c->writable_len);
}

static void copy_op(struct fz *f, bool have_chain, bool write)
{
	uint64_t off = fz_u32(f);
	uint16_t len = fz_u16(f);
	uint8_t *buf = malloc(len ? len : 1);   /* exactly len bytes: ASan sees an overrun */
	uint64_t total = write ? chain.writable_len : chain.readable_len;

	if (!buf)
		abort();
	if (!have_chain) {
		free(buf);
		return;
	}
	memset(buf, 0xa5, len ? len : 1);
	uint64_t done = write ? virtq_chain_write(&chain, off, buf, len) : virtq_chain_read(&chain, off, buf, len);
	uint64_t want = off >= total ? 0 : total - off;
	FZ_CHECK(done == (want < len ? want : len));
	free(buf);
}

/*
 * The loop every device runs on a kick (blk_process(), net's RX and TX): pop
 * and answer each chain; when the ring looks empty, turn notifications on and
 * look once more. Nothing else writes guest memory meanwhile, so it must end
 * after at most size chains (a guest that keeps adding needs a vCPU to do it).
 */
static void drain(const struct fz_ram *ram, struct virtq *q)
{
	int chains = 0, rounds = 0;

	virtq_enable_notify(q, false);
	for (;;) {
		int r = virtq_pop(q, &chain);

		if (r < 0)
			return;   /* the device would ask for a reset */
		if (r == 0) {
			FZ_CHECK(++rounds <= 2);
			if (!virtq_enable_notify(q, true))
				break;
			virtq_enable_notify(q, false);
			continue;
		}
		check_chain(ram, q, &chain);
		FZ_CHECK(++chains <= q->size);
		virtq_push(q, chain.head, 0);
	}
	(void)virtq_should_notify(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gpa_t starts[2] = { 0, REGION_SIZE };
	static const uint64_t sizes[2] = { REGION_SIZE, REGION_SIZE };
	struct fz f = { data, size };
	struct fz_ram ram;
	struct virtq q, cfg;
	uint16_t held[MAX_HELD];
	uint32_t written[MAX_HELD];
	int nheld = 0;
	bool have_chain = false;

	fz_quiet();
	fz_ram_init(&ram, starts, sizes, 2);

	uint8_t flags = fz_u8(&f);
	uint16_t qsize = fz_u16(&f);
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem = &ram.mem;
	cfg.size = (flags & 4) ? qsize : (uint16_t)(1u << (qsize % 9));
	cfg.desc = fz_u16(&f);
	cfg.avail = fz_u16(&f);
	cfg.used = fz_u16(&f);
	cfg.event_idx = flags & 1;
	cfg.indirect = flags & 2;
	cfg.ready = true;
	q = cfg;
	(void)virtq_validate(&q);   /* the transport's check; its verdict is not trusted below */

	fz_ram_load_image(&ram, &f);

	for (int ops = 0; ops < MAX_OPS && !fz_empty(&f); ops++) {
		switch (fz_u8(&f) % OP_COUNT) {
		case OP_POP: {
			int r = virtq_pop(&q, &chain);

			FZ_CHECK(r == 0 || r == 1 || r == -EINVAL);
			have_chain = r == 1;
			if (r == 1) {
				check_chain(&ram, &q, &chain);
				if (nheld < MAX_HELD) {
					held[nheld] = chain.head;
					written[nheld] = (uint32_t)(chain.writable_len > UINT32_MAX ? UINT32_MAX
												     : chain.writable_len);
					nheld++;
				}
			}
			break;
		}
		case OP_PUSH: {
			uint8_t which = fz_u8(&f);
			uint32_t w = fz_u32(&f);

			if (!nheld)
				break;
			int i = which % nheld;
			virtq_push(&q, held[i], w < written[i] ? w : written[i]);
			held[i] = held[--nheld];
			written[i] = written[nheld];
			break;
		}
		case OP_PUSH_N: {
			int k = nheld ? fz_u8(&f) % (nheld + 1) : 0;

			virtq_push_n(&q, held + nheld - k, written + nheld - k, k);
			nheld -= k;
			break;
		}
		case OP_SHOULD_NOTIFY:
			(void)virtq_should_notify(&q);
			break;
		case OP_ENABLE_NOTIFY:
			(void)virtq_enable_notify(&q, fz_u8(&f) & 1);
			break;
		case OP_CHAIN_READ:
			copy_op(&f, have_chain, false);
			break;
		case OP_CHAIN_WRITE:
			copy_op(&f, have_chain, true);
			break;
		case OP_GUEST_WRITE: {
			uint8_t buf[255];
			uint16_t gpa = fz_u16(&f);
			uint8_t len = fz_u8(&f);

			fz_ram_load(&ram, gpa, buf, fz_bytes(&f, buf, len));
			break;
		}
		case OP_GUEST_AVAIL:
			fz_publish(&q, fz_u16(&f));
			break;
		case OP_RESET:
			virtq_reset(&q);
			FZ_CHECK(q.mem == &ram.mem && !q.ready);
			FZ_CHECK(virtq_pop(&q, &chain) == 0);
			q = cfg;
			nheld = 0;
			have_chain = false;
			break;
		case OP_DRAIN:
			drain(&ram, &q);
			nheld = 0;
			have_chain = false;
			break;
		}
	}
	fz_ram_free(&ram);
	return 0;
}
