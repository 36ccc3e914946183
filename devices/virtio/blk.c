/* blk.c - virtio-blk: checked request parsing, and requests served out of order through the I/O loop. */
#include "devices/virtio/blk.h"
#include "base/err.h"
#include "base/log.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- pure parts: features, config, parsing ---- */

uint64_t blk_features(const struct blk_disk *d)
{
	uint64_t f = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		     (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);

	if (d->ro)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	else
		f |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

void blk_config_fill(const struct blk_disk *d, struct virtio_blk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = htole64(d->sectors);
	cfg->size_max = htole32(BLK_SIZE_MAX);
	cfg->seg_max = htole32(BLK_SEG_MAX);
	cfg->blk_size = htole32(BLK_SECTOR_SIZE);
	cfg->num_queues = htole16(1);
	cfg->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	cfg->max_discard_seg = htole32(BLK_MAX_DISCARD_SEG);
	cfg->discard_sector_alignment = htole32(1);
	cfg->max_write_zeroes_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	cfg->max_write_zeroes_seg = htole32(BLK_MAX_DISCARD_SEG);
	cfg->write_zeroes_may_unmap = 1;
}

/*
 * Collect [from, from+len) of the chain's readable (writable = false) or
 * writable buffers into iov. Returns the entries used, or -1 if more than max
 * would be needed or the chain holds fewer bytes.
 */
static int chain_iov(const struct virtq_chain *c, bool writable, uint64_t from, uint64_t len,
		     struct iovec *iov, int max)
{
	int n = 0;

	for (uint16_t i = 0; i < c->n && len; i++) {
		const struct virtq_buf *b = &c->buf[i];
		if (b->device_writable != writable)
			continue;
		if (from >= b->len) {
			from -= b->len;
			continue;
		}
		uint64_t take = b->len - from;
		if (take > len)
			take = len;
		if (n >= max)
			return -1;
		iov[n++] = (struct iovec){ .iov_base = (uint8_t *)b->host + from, .iov_len = take };
		len -= take;
		from = 0;
	}
	return len ? -1 : n;
}

/* Host address of the last device-writable byte, or NULL. */
static uint8_t *status_byte(const struct virtq_chain *c)
{
	for (int i = (int)c->n - 1; i >= 0; i--) {
		const struct virtq_buf *b = &c->buf[i];
		if (b->device_writable && b->len)
			return (uint8_t *)b->host + b->len - 1;
	}
	return NULL;
}

/* Is [sector, sector + bytes/512) inside the disk? Overflow-safe. */
static bool in_disk(const struct blk_disk *d, uint64_t sector, uint64_t bytes)
{
	return sector <= d->sectors && bytes / BLK_SECTOR_SIZE <= d->sectors - sector;
}

void blk_parse(const struct blk_disk *d, const struct virtq_chain *c, struct iovec *iov, int iov_max,
	       struct blk_parsed *out)
{
	struct virtio_blk_outhdr h;
	struct virtio_blk_discard_wz seg;
	uint64_t data;
	int n;

	memset(out, 0, sizeof(*out));
	out->status = VIRTIO_BLK_S_IOERR;
	out->written = 1;
	out->status_ptr = status_byte(c);
	if (!out->status_ptr || c->readable_len < sizeof(h) ||
	    virtq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h))
		return;
	out->type = le32toh(h.type);
	uint64_t sector = le64toh(h.sector);
	/* Bytes between the header and the status, on each side. */
	uint64_t rdata = c->readable_len - sizeof(h);
	uint64_t wdata = c->writable_len - 1;

	switch (out->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool in = out->type == VIRTIO_BLK_T_IN;
		data = in ? wdata : rdata;
		if (data % BLK_SECTOR_SIZE || data > BLK_MAX_REQ_BYTES || !in_disk(d, sector, data))
			return;
		if (!in && d->ro)
			return;
		n = chain_iov(c, in, in ? 0 : sizeof(h), data, iov, iov_max);
		if (n < 0)
			return;
		out->op = in ? IO_OP_READ : IO_OP_WRITE;
		out->iovcnt = n;
		out->offset = sector * BLK_SECTOR_SIZE;
		out->len = data;
		out->needs_io = data > 0;
		out->written = in ? (uint32_t)data + 1 : 1;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		/* Nothing of a read-only image can be dirty. */
		out->op = IO_OP_FLUSH;
		out->needs_io = !d->ro;
		break;
	case VIRTIO_BLK_T_GET_ID:
		/* The caller copies the id; fewer than 20 bytes of room get a truncated id. */
		out->written = (uint32_t)(wdata < BLK_ID_BYTES ? wdata : BLK_ID_BYTES) + 1;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool discard = out->type == VIRTIO_BLK_T_DISCARD;
		if (d->ro || rdata == 0 || rdata % sizeof(seg))
			return;
		if (rdata / sizeof(seg) > BLK_MAX_DISCARD_SEG)
			return;
		if (virtq_chain_read(c, sizeof(h), &seg, sizeof(seg)) != sizeof(seg))
			return;
		uint32_t flags = le32toh(seg.flags);
		uint64_t s = le64toh(seg.sector), ns = le32toh(seg.num_sectors);
		/* Discard has no flags; write-zeroes only "unmap allowed". */
		if ((discard && flags) || (flags & ~(uint32_t)VIRTIO_BLK_WZ_F_UNMAP)) {
			out->status = VIRTIO_BLK_S_UNSUPP;
			return;
		}
		if (ns > BLK_MAX_DISCARD_SECTORS || !in_disk(d, s, ns * BLK_SECTOR_SIZE))
			return;
		/* A punched hole reads back as zeroes, so it also serves write-zeroes + unmap. */
		out->op = discard || (flags & VIRTIO_BLK_WZ_F_UNMAP) ? IO_OP_DISCARD
								     : IO_OP_WRITE_ZEROES;
		out->offset = s * BLK_SECTOR_SIZE;
		out->len = ns * BLK_SECTOR_SIZE;
		out->needs_io = ns > 0;
		break;
	}
	default:
		out->status = VIRTIO_BLK_S_UNSUPP;
		return;
	}
	out->status = VIRTIO_BLK_S_OK;
}

/* ---- the device ---- */

/*
 * With at least this many requests in flight, the device asks the driver not
 * to kick and looks at the ring at each completion batch instead. Below it
 * (queue depth 1-4, large sequential requests) a new request would wait for
 * an unrelated completion, so the driver kicks as usual.
 */
#define BLK_KICKLESS_DEPTH 8

struct blk_req {
	struct io_request io;
	struct blk *blk;
	struct blk_req *next_free;      /* the free list, or the list of answers to publish */
	uint16_t head;
	uint8_t status;                 /* the answer, once the host operation is done */
	uint32_t type;
	uint8_t *status_ptr;
	uint32_t written;
	struct iovec iov[VIRTQ_MAX_SIZE];
};

struct blk {
	struct virtio_dev dev;
	struct blk_disk disk;
	struct io_loop *loop;
	struct disk_backend be;         /* the image, or an overlay over it */
	atomic_bool active;             /* DRIVER_OK and not being reset */
	atomic_bool frozen;             /* a snapshot: take no new request (requests in flight still finish) */

	/* I/O thread only (and the vCPU thread while active is false and nothing is in flight). */
	struct virtq_chain chain;
	struct blk_req *pool;
	uint16_t pool_size;
	struct blk_req *free;
	bool stalled;                   /* the pool ran dry with requests left in the ring */
	struct blk_req *answered, *answered_tail; /* done, not yet in the used ring (published at the batch end) */
	struct io_deferred publish;     /* blk_publish() at the end of the I/O loop's batch */
	unsigned busy;                  /* submitted, not yet published (I/O thread's own count) */
	bool kickless;                  /* kicks suppressed: the next blk_publish() looks at the ring */
	bool throttled;                 /* the rate limiter holds the queue until the timer fires */
	int timer;                      /* the limiter's wait (io_loop_timer) */
	unsigned long host_errors;

	pthread_mutex_t lock;           /* inflight, for reset; stats */
	pthread_cond_t idle;            /* inflight reached 0, or the freeze's flush is done */
	unsigned inflight;
	struct io_request freeze_io;    /* the flush of a freeze (vdevs_freeze) */
	bool freeze_flush_busy;
	int64_t freeze_flush_res;
	struct blk_stats stats;
	struct rate_limiter rl;         /* bytes (read/write data) and requests; changed on the I/O thread */

	bool fail_set;                  /* test-only error injection: eio:SECTOR */
	uint64_t fail_sector;
	unsigned fail_every;            /* every:N; 0: off */
	unsigned fail_count;            /* reads, writes and flushes finished (I/O thread only) */
};

static const struct virtio_dev_ops blk_ops;

static void blk_process(struct blk *b);

/* Count an answered request (b->lock held). */
static void count_locked(struct blk *b, enum io_op op, uint64_t len, uint8_t status)
{
	struct blk_stats *s = &b->stats;

	s->requests++;
	if (status != VIRTIO_BLK_S_OK) {
		s->errors++;
		return;
	}
	switch (op) {
	case IO_OP_READ: s->reads++; s->read_bytes += len; break;
	case IO_OP_WRITE: s->writes++; s->write_bytes += len; break;
	case IO_OP_FLUSH: s->flushes++; break;
	default: break;
	}
}

/* Answer a request: status byte, used ring. The caller notifies. */
static void finish(struct blk *b, uint16_t head, uint8_t *status_ptr, uint8_t status, uint32_t written)
{
	*status_ptr = status;
	virtq_push(&b->dev.vq[0], head, status == VIRTIO_BLK_S_OK ? written : 1);
}

static void req_free(struct blk *b, struct blk_req *r)
{
	r->next_free = b->free;
	b->free = r;
}

static bool injected_failure(struct blk *b, const struct blk_req *r)
{
	if (b->fail_every && (r->io.op == IO_OP_READ || r->io.op == IO_OP_WRITE || r->io.op == IO_OP_FLUSH))
		return ++b->fail_count % b->fail_every == 0;
	if (!b->fail_set || (r->io.op != IO_OP_READ && r->io.op != IO_OP_WRITE))
		return false;
	uint64_t first = r->io.offset / BLK_SECTOR_SIZE;
	return b->fail_sector >= first && b->fail_sector - first < r->io.len / BLK_SECTOR_SIZE;
}

/*
 * (io) The end of the I/O loop's batch: every answer of the batch goes into
 * the used ring at once (one used-index update) with one notification, which
 * EVENT_IDX may suppress; then they count as finished. Only then do they
 * leave `inflight`, so a reset or a freeze that waits for it finds every
 * answer in the used ring.
 */
static void blk_publish(void *arg)
{
	struct blk *b = arg;
	struct blk_req *list = b->answered;
	uint16_t head[VIRTQ_MAX_SIZE];
	uint32_t written[VIRTQ_MAX_SIZE];
	unsigned count = 0;
	int n = 0;

	b->answered = b->answered_tail = NULL;
	if (atomic_load(&b->active)) {
		for (struct blk_req *r = list; r; r = r->next_free) {
			*r->status_ptr = r->status;
			head[n] = r->head;
			written[n] = r->status == VIRTIO_BLK_S_OK ? r->written : 1;
			/* At most one answer per pool entry, and the pool is at most a queue's size. */
			if (++n == VIRTQ_MAX_SIZE) {
				virtq_push_n(&b->dev.vq[0], head, written, n);
				n = 0;
			}
		}
		virtq_push_n(&b->dev.vq[0], head, written, n);
		b->dev.notify_used(&b->dev, 0);
	}
	/*
	 * Everything that touches the pool or the I/O thread's flags happens before `inflight`
	 * drops: once it reaches 0, a reset that quiesced the device earlier returns on the vCPU
	 * thread and the guest may set the device up again at once (blk_activate() replaces the
	 * pool). While the device stays active no reset can start before this returns (its
	 * quiesce runs on this thread), so blk_process() below is safe.
	 */
	pthread_mutex_lock(&b->lock);
	for (struct blk_req *r = list, *next; r; r = next, count++) {
		next = r->next_free;
		count_locked(b, r->io.op, r->io.len, r->status);
		req_free(b, r);
	}
	bool resume = atomic_load(&b->active) && !atomic_load(&b->frozen) && (b->stalled || b->kickless);
	if (resume)
		b->stalled = b->kickless = false;
	b->inflight -= count;
	b->busy -= count;
	if (b->inflight == 0)
		pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
	if (resume)   /* what the driver queued meanwhile, without the kick it was told not to make */
		blk_process(b);
}

/* (io) A host operation finished: record the answer; blk_publish() gives it to the driver with the batch. */
static void req_done(struct io_request *io, int64_t res)
{
	struct blk_req *r = io->priv;
	struct blk *b = r->blk;

	if (res >= 0 && injected_failure(b, r))
		res = -EIO;
	if (res == -EOPNOTSUPP && io->op == IO_OP_WRITE_ZEROES) {
		/* The file system cannot zero a range in place: a punched hole reads as zeroes. */
		io->op = IO_OP_DISCARD;
		if (disk_submit(&b->be, io) == 0)
			return;
	} else if (res == -EOPNOTSUPP && r->type == VIRTIO_BLK_T_DISCARD) {
		res = 0; /* discard is a hint */
	}
	if (res < 0) {
		b->host_errors++;
		if (b->host_errors == 1)
			log_warn("virtio-blk: host I/O error (%s); the guest gets IOERR (further errors at debug level)",
				 strerror((int)-res));
		else
			log_debug("virtio-blk: host I/O error: %s", strerror((int)-res));
	}
	r->status = res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	r->next_free = NULL;
	if (b->answered_tail)
		b->answered_tail->next_free = r;
	else
		b->answered = r;
	b->answered_tail = r;
	io_loop_defer(b->loop, &b->publish);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * (io) May a request with a host operation go now? Every such request is one
 * operation; reads and writes also cost their data bytes. No: the limiter
 * timer is set and the queue waits for it.
 */
static bool admit(struct blk *b, const struct blk_parsed *p)
{
	uint64_t wait = 0;
	bool ok;

	/* Limits change on this thread only (set_limits_io): no lock needed to see there are none. */
	if (!rl_enabled(&b->rl))
		return true;
	pthread_mutex_lock(&b->lock);
	ok = rl_try(&b->rl, p->op == IO_OP_READ || p->op == IO_OP_WRITE ? p->len : 0, now_ns(), &wait);
	pthread_mutex_unlock(&b->lock);
	if (!ok) {
		b->throttled = true;
		io_loop_timer_set(b->loop, b->timer, wait);
	}
	return ok;
}

enum chain_outcome { CHAIN_ANSWERED, CHAIN_SUBMITTED, CHAIN_THROTTLED };

/* (io) Handle one chain: answered at once (used ring changed), submitted, or left in the ring (throttled). */
static enum chain_outcome handle_chain(struct blk *b, struct blk_req *r)
{
	struct blk_parsed p;
	const struct virtq_chain *c = &b->chain;

	blk_parse(&b->disk, c, r->iov, VIRTQ_MAX_SIZE, &p);
	if (!p.status_ptr) {
		log_debug("virtio-blk: request without a status byte");
		virtq_push(&b->dev.vq[0], c->head, 0);
		req_free(b, r);
		return CHAIN_ANSWERED;
	}
	if (p.status == VIRTIO_BLK_S_OK && p.needs_io && !admit(b, &p)) {
		/* Back into the ring, untouched: order is kept and a snapshot holds nothing half-taken. */
		virtq_unpop(&b->dev.vq[0]);
		req_free(b, r);
		return CHAIN_THROTTLED;
	}
	if (p.status == VIRTIO_BLK_S_OK && p.type == VIRTIO_BLK_T_GET_ID)
		virtq_chain_write(c, 0, b->disk.id, p.written - 1);
	if (p.status != VIRTIO_BLK_S_OK || !p.needs_io) {
		pthread_mutex_lock(&b->lock);
		/* No host operation (GET_ID, an empty read, a flush of a read-only disk): only a request. */
		count_locked(b, p.needs_io ? p.op : IO_OP_DISCARD, 0, p.status);
		pthread_mutex_unlock(&b->lock);
		finish(b, c->head, p.status_ptr, p.status, p.written);
		req_free(b, r);
		return CHAIN_ANSWERED;
	}
	r->head = c->head;
	r->type = p.type;
	r->status_ptr = p.status_ptr;
	r->written = p.written;
	r->io = (struct io_request){
		.op = p.op,
		.iov = r->iov,
		.iovcnt = p.iovcnt,
		.offset = p.offset,
		.len = p.len,
		.done = req_done,
		.priv = r,
	};
	pthread_mutex_lock(&b->lock);
	b->inflight++;
	pthread_mutex_unlock(&b->lock);
	b->busy++;
	if (disk_submit(&b->be, &r->io) < 0) {
		b->busy--;
		pthread_mutex_lock(&b->lock);
		b->inflight--;
		count_locked(b, p.op, 0, VIRTIO_BLK_S_IOERR);
		pthread_mutex_unlock(&b->lock);
		finish(b, c->head, p.status_ptr, VIRTIO_BLK_S_IOERR, 1);
		req_free(b, r);
		return CHAIN_ANSWERED;
	}
	return CHAIN_SUBMITTED;
}

/* (io) Take every available request and submit it; stop when the ring is empty or the pool is. */
static void blk_process(struct blk *b)
{
	struct virtq *vq = &b->dev.vq[0];
	bool pushed = false;

	if (!atomic_load(&b->active) || atomic_load(&b->frozen) || !vq->ready || b->throttled)
		return;
	virtq_enable_notify(vq, false);
	for (;;) {
		if (!b->free) {
			/* Completions free requests and look again; kicks meanwhile are not needed. */
			b->stalled = true;
			break;
		}
		int ret = virtq_pop(vq, &b->chain);
		if (ret < 0) {
			atomic_store(&b->active, false);
			b->dev.needs_reset(&b->dev, "malformed request queue");
			break;
		}
		if (ret == 0) {
			if (b->busy >= BLK_KICKLESS_DEPTH) {
				/*
				 * Enough in flight: a completion batch comes soon and looks
				 * at the ring (blk_publish), so the driver need not kick (a
				 * kick is a VM exit and a wake-up of this thread).
				 */
				virtq_suppress_kicks(vq);
				b->kickless = true;
				break;
			}
			if (!virtq_enable_notify(vq, true))
				break;
			virtq_enable_notify(vq, false);
			continue;
		}
		struct blk_req *r = b->free;
		b->free = r->next_free;
		enum chain_outcome o = handle_chain(b, r);
		pushed |= o == CHAIN_ANSWERED;
		if (o == CHAIN_THROTTLED)
			break;  /* kicks meanwhile are not needed: the timer brings us back */
	}
	if (pushed)
		b->dev.notify_used(&b->dev, 0);
}

static uint64_t blk_dev_features(struct virtio_dev *dev)
{
	return blk_features(&((struct blk *)dev->priv)->disk);
}

static void blk_config_read(struct virtio_dev *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_blk_config cfg;

	blk_config_fill(&((struct blk *)dev->priv)->disk, &cfg);
	memset(data, 0, len);
	if (offset < sizeof(cfg) && len <= sizeof(cfg) - offset)
		memcpy(data, (uint8_t *)&cfg + offset, len);
}

static void blk_config_write(struct virtio_dev *dev, uint64_t offset, const uint8_t *data, uint32_t len)
{
	(void)dev, (void)offset, (void)data, (void)len; /* nothing is writable (no CONFIG_WCE) */
}

static int blk_activate(struct virtio_dev *dev)
{
	struct blk *b = dev->priv;
	uint16_t size = dev->vq[0].size ? dev->vq[0].size : VIRTQ_MAX_SIZE;

	/* One request per descriptor at most: the pool never limits a well-behaved driver. */
	if (b->pool_size != size) {
		free(b->pool);
		b->pool = calloc(size, sizeof(*b->pool));
		b->pool_size = b->pool ? size : 0;
		if (!b->pool)
			return -ENOMEM;
	}
	b->free = NULL;
	for (uint16_t i = 0; i < size; i++) {
		b->pool[i].blk = b;
		req_free(b, &b->pool[i]);
	}
	b->stalled = false;
	atomic_store(&b->active, true);
	return 0;
}

static void blk_queue_notify(struct virtio_dev *dev, uint16_t q)
{
	if (q == 0)
		blk_process(dev->priv);
}

/* (io) Through io_loop_call(): after this, the I/O thread takes no new request. */
static void blk_quiesce(void *arg)
{
	struct blk *b = arg;

	atomic_store(&b->active, false);
	b->stalled = false;
	b->kickless = false;
	b->throttled = false;
	io_loop_timer_set(b->loop, b->timer, 0);
}

static void blk_reset(struct virtio_dev *dev)
{
	struct blk *b = dev->priv;

	io_loop_call(b->loop, blk_quiesce, b);
	/* In-flight requests may still write guest memory: wait until they are all done. */
	pthread_mutex_lock(&b->lock);
	while (b->inflight)
		pthread_cond_wait(&b->idle, &b->lock);
	pthread_mutex_unlock(&b->lock);
}

/* (io) Through io_loop_call(): from here on the I/O thread takes no new request. */
static void blk_stop_taking(void *arg)
{
	struct blk *b = arg;

	atomic_store(&b->frozen, true);
	if (b->kickless) {
		/* No completion will look at the ring for us now: kicks on, as a snapshot should hold them. */
		b->kickless = false;
		virtq_enable_notify(&b->dev.vq[0], true);
	}
}

/* (io) The flush a freeze asked for is done. */
static void freeze_flush_done(struct io_request *io, int64_t res)
{
	struct blk *b = io->priv;

	pthread_mutex_lock(&b->lock);
	b->freeze_flush_res = res;
	b->freeze_flush_busy = false;
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
}

/* (io) Through io_loop_call(): queue the freeze's flush (its result arrives in freeze_flush_done). */
static void freeze_flush_submit(void *arg)
{
	struct blk *b = arg;

	b->freeze_io = (struct io_request){ .op = IO_OP_FLUSH, .done = freeze_flush_done, .priv = b };
	int ret = disk_submit(&b->be, &b->freeze_io);
	if (ret < 0)
		freeze_flush_done(&b->freeze_io, ret);
}

/*
 * Snapshot: take no new request, let every request in flight complete into
 * the used ring (status byte, used element, interrupt: all part of the saved
 * state), then make the image durable (fdatasync through the I/O engine), so
 * a snapshot is never newer than its disk. The device stays active: its queue
 * position then says exactly which requests were answered.
 */
static int blk_freeze(struct virtio_dev *dev)
{
	struct blk *b = dev->priv;
	int64_t res = 0;

	io_loop_call(b->loop, blk_stop_taking, b);
	pthread_mutex_lock(&b->lock);
	while (b->inflight)
		pthread_cond_wait(&b->idle, &b->lock);
	pthread_mutex_unlock(&b->lock);
	if (b->disk.ro)
		return 0;
	pthread_mutex_lock(&b->lock);
	b->freeze_flush_busy = true;
	pthread_mutex_unlock(&b->lock);
	io_loop_call(b->loop, freeze_flush_submit, b);
	pthread_mutex_lock(&b->lock);
	while (b->freeze_flush_busy)
		pthread_cond_wait(&b->idle, &b->lock);
	res = b->freeze_flush_res;
	pthread_mutex_unlock(&b->lock);
	if (res < 0)
		return err_set((int)-res, "virtio-blk %s: syncing the image: %s", b->disk.id, strerror((int)-res));
	return 0;
}

/* (io) Through io_loop_call(): serve again, and what the driver queued meanwhile. */
static void blk_thaw_io(void *arg)
{
	struct blk *b = arg;

	atomic_store(&b->frozen, false);
	b->stalled = false;
	blk_process(b);
}

static void blk_thaw(struct virtio_dev *dev)
{
	struct blk *b = dev->priv;

	io_loop_call(b->loop, blk_thaw_io, b);
}

/* (io) The limiter's wait is over: take requests again. */
static void blk_timer(void *arg)
{
	struct blk *b = arg;

	b->throttled = false;
	blk_process(b);
}

struct set_limits {
	struct blk *b;
	const struct rl_config *c;
};

/* (io) Through io_loop_call(): new limits (full buckets), and a throttled queue looks again at once. */
static void set_limits_io(void *arg)
{
	struct set_limits *s = arg;
	struct blk *b = s->b;

	pthread_mutex_lock(&b->lock);
	rl_init(&b->rl, s->c, now_ns());
	pthread_mutex_unlock(&b->lock);
	if (b->throttled) {
		io_loop_timer_set(b->loop, b->timer, 0);
		blk_timer(b);
	}
}

int blk_set_limits(struct blk *b, const struct rl_config *c)
{
	if (!tb_config_valid(&c->bytes) || !tb_config_valid(&c->ops))
		return err_set(EINVAL, "virtio-blk %.20s: rate limit out of range", b->disk.id);
	io_loop_call(b->loop, set_limits_io, &(struct set_limits){ .b = b, .c = c });
	return 0;
}

void blk_get_limits(struct blk *b, struct rate_limiter *out)
{
	pthread_mutex_lock(&b->lock);
	rl_peek(&b->rl, now_ns(), out);
	pthread_mutex_unlock(&b->lock);
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.num_queues = 1,
	.features = blk_dev_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.freeze = blk_freeze,
	.thaw = blk_thaw,
};

/* A test hook (builds with -Dtest_hooks=true): MICROVM_TEST_BLK_FAIL makes chosen requests fail. */
static void fail_from_env(struct blk *b)
{
#ifdef MICROVM_TEST_HOOKS
	const char *v = getenv(BLK_FAIL_ENV);
	char *end;

	bool every = v && !strncmp(v, "every:", 6);

	if (!v || (strncmp(v, "eio:", 4) && !every))
		return;
	const char *num = v + (every ? 6 : 4);
	errno = 0;
	unsigned long long s = strtoull(num, &end, 0);
	if (errno || end == num || *end || (every && (s < 2 || s > 1000000))) {
		log_warn("%s=%s ignored (expected eio:SECTOR or every:N, N from 2)", BLK_FAIL_ENV, v);
		return;
	}
	if (every) {
		b->fail_every = (unsigned)s;
		log_warn("TEST ONLY: %s: every %lluth read, write or flush fails with EIO", BLK_FAIL_ENV, s);
		return;
	}
	b->fail_set = true;
	b->fail_sector = s;
	log_warn("TEST ONLY: %s: I/O touching sector %llu fails with EIO", BLK_FAIL_ENV, s);
#else
	(void)b;
#endif
}

int blk_create(struct blk **out, const struct blk_disk *d, const struct disk_backend *be)
{
	struct blk *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b)
		return err_set(ENOMEM, "virtio-blk: out of memory");
	b->disk = *d;
	b->loop = be->loop;
	b->be = *be;
	b->dev.ops = &blk_ops;
	b->dev.priv = b;
	b->publish = (struct io_deferred){ .fn = blk_publish, .arg = b };
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->idle, NULL);
	int ret = io_loop_timer(b->loop, blk_timer, b);
	if (ret < 0) {
		err_prefix(-ret, "virtio-blk");
		blk_destroy(b);
		return ret;
	}
	b->timer = ret;
	fail_from_env(b);
	*out = b;
	return 0;
}

void blk_get_stats(struct blk *b, struct blk_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->stats;
	pthread_mutex_unlock(&b->lock);
}

struct virtio_dev *blk_virtio_dev(struct blk *b)
{
	return &b->dev;
}

void blk_destroy(struct blk *b)
{
	if (!b)
		return;
	pthread_cond_destroy(&b->idle);
	pthread_mutex_destroy(&b->lock);
	free(b->pool);
	free(b);
}
