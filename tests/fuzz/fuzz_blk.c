/* fuzz_blk.c - libFuzzer harness: virtio-blk request parsing and handling on a hostile ring, over an in-memory disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/blk.h"
#include "fake_ioloop.h"
#include "fuzz.h"

/*
 * Input:
 *   u8  flags     bit 0 read-only disk, bit 1 EVENT_IDX, bit 2 INDIRECT_DESC
 *   u8  sectors   disk capacity (0..255 sectors of 512 bytes)
 *   u8  qsize     1 << (qsize % 9)
 *   u16 desc, avail, used   ring addresses (guest RAM: 0x0000..0x7fff, two regions)
 *   u16 image_len, then that many bytes loaded at guest address 0
 *   then a script of operations (below).
 * The device runs on the fake I/O loop: requests complete only when the
 * script says so, in the order it says, with the result it says. The in-memory
 * disk checks every request the device submits: inside the disk, buffers inside
 * guest RAM, iovec lengths adding up.
 */

#define REGION_SIZE 0x4000ULL
#define MAX_OPS 512

enum op {
	OP_KICK,          /* u8 queue (the device has one; others must be ignored) */
	OP_COMPLETE,      /* u8 which request, u8 how: 0 ok, 1 EIO, 2 EOPNOTSUPP, 3 ENOSPC */
	OP_COMPLETE_ALL,
	OP_GUEST_WRITE,   /* u16 gpa, u8 len, bytes */
	OP_GUEST_AVAIL,   /* u16 head */
	OP_RESET,         /* the driver resets the device (status 0) */
	OP_ACTIVATE,      /* DRIVER_OK again after a reset */
	OP_SUBMIT_FAIL,   /* u8 bit 0: io_loop_submit() fails from now on */
	OP_CONFIG_READ,   /* u8 offset, u8 len */
	OP_LIMIT,         /* 2 x (u8 size, u8 burst): bytes (x512) and requests limits (PATCH /vm/disks/ID) */
	OP_TIMER,         /* the limiter's timer fires */
	OP_COUNT
};

struct rig {
	struct fz_ram ram;
	struct virtio_dev *dev;
	uint8_t *disk;
	uint64_t disk_bytes;
	struct virtq cfg;       /* the queue as the driver set it up */
	bool broken;            /* needs_reset() was called: the transport stops kicks */
	bool active;            /* activated and not reset since */
};

static void t_notify(struct virtio_dev *dev, uint16_t q)
{
	FZ_CHECK(q == 0);
	(void)virtq_should_notify(&dev->vq[q]);
}

static void t_needs_reset(struct virtio_dev *dev, const char *why)
{
	struct rig *r = dev->transport;

	(void)why;
	r->broken = true;
}

/* Copy between the disk and the request's iovec, checking everything the device handed over. */
static int64_t perform(struct io_loop *loop, struct io_request *req)
{
	struct rig *r = loop->ctx;
	uint64_t total = 0;

	FZ_CHECK(req->file == 0);
	switch (req->op) {
	case IO_OP_READ:
	case IO_OP_WRITE:
		FZ_CHECK(req->iovcnt > 0 && req->iovcnt <= VIRTQ_MAX_SIZE);
		for (int i = 0; i < req->iovcnt; i++) {
			FZ_CHECK(req->iov[i].iov_len > 0);
			FZ_CHECK(fz_in_ram(&r->ram, req->iov[i].iov_base, req->iov[i].iov_len));
			total += req->iov[i].iov_len;
		}
		FZ_CHECK(total == req->len && total % BLK_SECTOR_SIZE == 0);
		FZ_CHECK(req->offset <= r->disk_bytes && total <= r->disk_bytes - req->offset);
		uint64_t off = req->offset;
		for (int i = 0; i < req->iovcnt; i++) {
			if (req->op == IO_OP_READ)
				memcpy(req->iov[i].iov_base, r->disk + off, req->iov[i].iov_len);
			else
				memcpy(r->disk + off, req->iov[i].iov_base, req->iov[i].iov_len);
			off += req->iov[i].iov_len;
		}
		return (int64_t)total;
	case IO_OP_FLUSH:
		return 0;
	case IO_OP_DISCARD:
	case IO_OP_WRITE_ZEROES:
		FZ_CHECK(req->len > 0 && req->offset <= r->disk_bytes && req->len <= r->disk_bytes - req->offset);
		memset(r->disk + req->offset, 0, req->len);
		return 0;
	}
	FZ_CHECK(!"unknown op");
	return -EINVAL;
}

/*
 * Rate limits from the input: tiny buckets that never refill within a run (one-hour refill), so what
 * passes depends on the input alone; size 0 lifts a limit.
 */
static struct tb_config fz_limit(struct fz *f)
{
	uint8_t size = fz_u8(f), burst = fz_u8(f);

	if (size % 4 == 0)
		return (struct tb_config){ 0 };
	return (struct tb_config){ .size = size, .refill_ms = TB_MAX_REFILL_MS, .burst = burst };
}

static void setup_queue(struct rig *r)
{
	struct virtq *q = &r->dev->vq[0];

	virtq_reset(q);
	*q = r->cfg;
	q->ready = virtq_validate(q) == 0;   /* as the transport does on QueueReady */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gpa_t starts[2] = { 0, REGION_SIZE };
	static const uint64_t sizes[2] = { REGION_SIZE, REGION_SIZE };
	struct fz f = { data, size };
	struct rig r;
	struct blk_disk d = { .id = "fuzz-disk-0123456789" };   /* 20 bytes, not terminated */
	struct blk *b;

	fz_quiet();
	memset(&r, 0, sizeof(r));
	fz_ram_init(&r.ram, starts, sizes, 2);

	uint8_t flags = fz_u8(&f);
	d.ro = flags & 1;
	d.sectors = fz_u8(&f);
	r.disk_bytes = d.sectors * BLK_SECTOR_SIZE;
	r.disk = malloc(r.disk_bytes ? r.disk_bytes : 1);
	if (!r.disk)
		abort();
	memset(r.disk, 0x5a, r.disk_bytes ? r.disk_bytes : 1);
	r.cfg.mem = &r.ram.mem;
	r.cfg.size = (uint16_t)(1u << (fz_u8(&f) % 9));
	r.cfg.desc = fz_u16(&f);
	r.cfg.avail = fz_u16(&f);
	r.cfg.used = fz_u16(&f);
	r.cfg.event_idx = flags & 2;
	r.cfg.indirect = flags & 4;

	fz_ram_load_image(&r.ram, &f);

	struct io_loop *loop = fake_loop_new(perform, &r);
	FZ_CHECK(blk_create(&b, &d, &(struct disk_backend){ .loop = loop, .file = 0 }) == 0);
	r.dev = blk_virtio_dev(b);
	r.dev->transport = &r;
	r.dev->notify_used = t_notify;
	r.dev->needs_reset = t_needs_reset;
	r.dev->driver_features = (1ULL << VIRTIO_F_VERSION_1) |
				 (r.cfg.event_idx ? 1ULL << VIRTIO_RING_F_EVENT_IDX : 0) |
				 (r.cfg.indirect ? 1ULL << VIRTIO_RING_F_INDIRECT_DESC : 0);
	setup_queue(&r);
	r.active = r.dev->ops->activate(r.dev) == 0;

	for (int ops = 0; ops < MAX_OPS && !fz_empty(&f); ops++) {
		switch (fz_u8(&f) % OP_COUNT) {
		case OP_KICK: {
			uint8_t q = fz_u8(&f) & 1;

			/* virtio_mmio_queue_kicked(): nothing reaches a broken or inactive device. */
			if (r.active && !r.broken)
				r.dev->ops->queue_notify(r.dev, q);
			break;
		}
		case OP_COMPLETE: {
			static const int64_t how[4] = { 0, -EIO, -EOPNOTSUPP, -ENOSPC };
			uint8_t which = fz_u8(&f);
			uint8_t h = fz_u8(&f);

			if (loop->npending)
				fake_loop_complete(loop, which % loop->npending, how[h % 4]);
			break;
		}
		case OP_COMPLETE_ALL:
			fake_loop_complete_all(loop);
			break;
		case OP_GUEST_WRITE: {
			uint8_t buf[255];
			uint16_t gpa = fz_u16(&f);
			uint8_t len = fz_u8(&f);

			fz_ram_load(&r.ram, gpa, buf, fz_bytes(&f, buf, len));
			break;
		}
		case OP_GUEST_AVAIL:
			fz_publish(&r.dev->vq[0], fz_u16(&f));
			break;
		case OP_RESET:
			/* reset_locked(): the device first, then the queues. */
			r.dev->ops->reset(r.dev);
			FZ_CHECK(loop->npending == 0);
			setup_queue(&r);
			r.broken = false;
			r.active = false;
			break;
		case OP_ACTIVATE:
			if (!r.active)
				r.active = r.dev->ops->activate(r.dev) == 0;
			break;
		case OP_SUBMIT_FAIL:
			loop->fail_submit = fz_u8(&f) & 1;
			break;
		case OP_LIMIT: {
			struct rl_config c = { .bytes = fz_limit(&f), .ops = fz_limit(&f) };

			c.bytes.size *= 512;
			c.bytes.burst *= 512;
			FZ_CHECK(blk_set_limits(b, &c) == 0);
			break;
		}
		case OP_TIMER:
			fake_loop_fire_timer(loop);
			break;
		case OP_CONFIG_READ: {
			uint8_t off = fz_u8(&f);
			uint32_t len = 1u << (fz_u8(&f) % 4);
			uint8_t *buf = malloc(len);

			if (!buf)
				abort();
			r.dev->ops->config_read(r.dev, off, buf, len);
			free(buf);
			break;
		}
		}
	}
	/* io_loop_destroy(): every request in flight finishes first. */
	fake_loop_complete_all(loop);
	blk_destroy(b);
	fake_loop_free(loop);
	free(r.disk);
	fz_ram_free(&r.ram);
	return 0;
}
