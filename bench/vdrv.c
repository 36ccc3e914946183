/* vdrv.c - the guest's side for the benchmarks (see vdrv.h): what a Linux virtio driver does, minus the guest. */
#include "bench/vdrv.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Ring layout per queue: desc 4 KiB, avail, used, each in its own page; queue q at q * 16 KiB. */
#define QUEUE_AREA 0x4000

static uint32_t rd(struct vdrv *d, uint64_t off)
{
	uint8_t b[4];
	uint32_t v;

	virtio_mmio_io(&d->mmio, off, b, 4, false);
	memcpy(&v, b, 4);
	return v;
}

static void wr(struct vdrv *d, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	memcpy(b, &v, 4);
	virtio_mmio_io(&d->mmio, off, b, 4, true);
}

/* (io) A notify eventfd fired: the same forwarding as vmm/devices.c does. */
static void kicked(void *arg)
{
	struct vdrv_kick *k = arg;

	virtio_mmio_queue_kicked(k->m, k->q);
}

int vdrv_init(struct vdrv *d, struct virtio_dev *dev, struct io_loop *loop, uint64_t ram_bytes)
{
	gpa_t start = 0;
	int ret;

	memset(d, 0, sizeof(*d));
	if ((ret = guest_mem_map(&d->mem, &start, &ram_bytes, 1)) < 0)
		return ret;
	if ((ret = virtio_mmio_init(&d->mmio, dev, &d->mem)) < 0)
		return ret;
	for (uint16_t q = 0; q < dev->ops->num_queues; q++) {
		d->kick[q] = (struct vdrv_kick){ .m = &d->mmio, .q = q };
		if ((ret = io_loop_watch_eventfd(loop, d->mmio.notify_fd[q], kicked, &d->kick[q])) < 0)
			return ret;
	}
	return 0;
}

int vdrv_start(struct vdrv *d, uint64_t want, int nq)
{
	uint64_t offered;

	wr(d, 0x070, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(d, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(d, 0x014, 0);
	offered = rd(d, 0x010);
	wr(d, 0x014, 1);
	offered |= (uint64_t)rd(d, 0x010) << 32;
	want |= (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX);
	want &= offered;
	wr(d, 0x024, 0);
	wr(d, 0x020, (uint32_t)want);
	wr(d, 0x024, 1);
	wr(d, 0x020, (uint32_t)(want >> 32));
	wr(d, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	if (!(rd(d, 0x070) & VIRTIO_STATUS_FEATURES_OK))
		return -1;
	for (int i = 0; i < nq; i++) {
		struct vdrv_q *q = &d->q[i];
		gpa_t base = (gpa_t)i * QUEUE_AREA;

		*q = (struct vdrv_q){ .idx = (uint16_t)i, .desc = base, .avail = base + 0x1000,
				      .used = base + 0x2000 };
		wr(d, 0x030, (uint32_t)i);
		wr(d, 0x038, VDRV_QSIZE);
		wr(d, 0x080, (uint32_t)q->desc);
		wr(d, 0x084, 0);
		wr(d, 0x090, (uint32_t)q->avail);
		wr(d, 0x094, 0);
		wr(d, 0x0a0, (uint32_t)q->used);
		wr(d, 0x0a4, 0);
		wr(d, 0x044, 1);
	}
	wr(d, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			     VIRTIO_STATUS_DRIVER_OK);
	if (!(rd(d, 0x070) & VIRTIO_STATUS_DRIVER_OK))
		return -1;
	return 0;
}

void vdrv_destroy(struct vdrv *d)
{
	virtio_mmio_destroy(&d->mmio);
	guest_mem_unmap(&d->mem);
}

void *vdrv_ptr(struct vdrv *d, gpa_t gpa, uint64_t len)
{
	void *p = gpa_to_host(&d->mem, gpa, len);

	if (!p) {
		fprintf(stderr, "bench: guest range 0x%llx+%llu outside RAM\n", (unsigned long long)gpa,
			(unsigned long long)len);
		abort();
	}
	return p;
}

void vdrv_set_desc(struct vdrv *d, struct vdrv_q *q, uint16_t i, gpa_t addr, uint32_t len,
		   uint16_t flags, uint16_t next)
{
	struct virtq_desc desc = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(vdrv_ptr(d, q->desc + 16ULL * i, 16), &desc, 16);
}

static uint16_t *u16_at(struct vdrv *d, gpa_t gpa)
{
	return vdrv_ptr(d, gpa, 2);
}

void vdrv_add(struct vdrv *d, struct vdrv_q *q, uint16_t head)
{
	*u16_at(d, q->avail + 4 + 2ULL * (q->avail_idx % VDRV_QSIZE)) = head;
	q->avail_idx++;
}

void vdrv_publish(struct vdrv *d, struct vdrv_q *q)
{
	uint16_t old = q->published, now = q->avail_idx;

	if (old == now)
		return;
	__atomic_store_n(u16_at(d, q->avail + 2), now, __ATOMIC_RELEASE);
	q->published = now;
	/* Like virtqueue_kick_prepare(): a full barrier, then the device's avail_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t event = __atomic_load_n(u16_at(d, q->used + 4 + 8ULL * VDRV_QSIZE), __ATOMIC_ACQUIRE);
	if ((uint16_t)(now - event - 1) < (uint16_t)(now - old)) {
		uint64_t one = 1;

		/* What KVM does for the guest's write to QueueNotify (an ioeventfd). */
		if (write(d->mmio.notify_fd[q->idx], &one, sizeof(one)) != sizeof(one))
			perror("bench: kick");
		q->kicks++;
	}
}

int vdrv_get_used(struct vdrv *d, struct vdrv_q *q, uint32_t *id, uint32_t *len)
{
	uint16_t idx = __atomic_load_n(u16_at(d, q->used + 2), __ATOMIC_ACQUIRE);
	uint32_t e[2];

	if (idx == q->last_used)
		return 0;
	memcpy(e, vdrv_ptr(d, q->used + 4 + 8ULL * (q->last_used % VDRV_QSIZE), 8), 8);
	*id = e[0];
	*len = e[1];
	q->last_used++;
	return 1;
}

bool vdrv_enable_cb(struct vdrv *d, struct vdrv_q *q)
{
	__atomic_store_n(u16_at(d, q->avail + 4 + 2ULL * VDRV_QSIZE), q->last_used, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(u16_at(d, q->used + 2), __ATOMIC_ACQUIRE) != q->last_used;
}

int vdrv_wait_irq(struct vdrv *d, int timeout_ms)
{
	struct pollfd p = { .fd = d->mmio.irq_fd, .events = POLLIN };
	uint64_t n;

	d->irq_waits++;
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (read(d->mmio.irq_fd, &n, sizeof(n)) == sizeof(n))
			break;
	}
	d->irqs += n;
	/* The guest's interrupt handler: read InterruptStatus, write InterruptACK. */
	uint32_t isr = rd(d, 0x060);
	wr(d, 0x064, isr);
	return 0;
}

double vdrv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
