/* vdrv.h - the guest's side for the benchmarks: fake guest RAM, a virtio-mmio driver and split rings, kicks and interrupts through the transport's eventfds. */
#ifndef MICROVM_BENCH_VDRV_H
#define MICROVM_BENCH_VDRV_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "base/guest_mem.h"
#include "io/ioloop.h"

#define VDRV_QSIZE 256                  /* every queue gets the largest size microvm offers */
#define VDRV_DATA_GPA 0x100000          /* first byte after the rings; bench data lives here */

/* One split ring as the driver sees it. */
struct vdrv_q {
	uint16_t idx;                   /* queue index */
	gpa_t desc, avail, used;
	uint16_t avail_idx;             /* next avail idx, not yet published when != published */
	uint16_t published;             /* avail idx the device can see */
	uint16_t last_used;             /* next used entry to consume */
	uint64_t kicks;                 /* notify eventfd writes (the guest's QueueNotify exits) */
};

/* What a queue's notify eventfd callback needs (per driver: several devices may share a loop). */
struct vdrv_kick {
	struct virtio_mmio *m;
	uint16_t q;
};

struct vdrv {
	struct guest_mem mem;
	struct virtio_mmio mmio;
	struct vdrv_q q[VIRTIO_MAX_QUEUES];
	uint64_t irqs;                  /* interrupts raised by the device (irq eventfd counter) */
	uint64_t irq_waits;             /* times the driver slept for an interrupt */
	struct vdrv_kick kick[VIRTIO_MAX_QUEUES];
};

/*
 * Map ram_bytes of guest RAM at GPA 0 and put dev behind a virtio-mmio
 * transport, its queue-notify eventfds watched by loop (before
 * io_loop_start(), as the VMM does with KVM ioeventfds). 0 or -errno.
 */
int vdrv_init(struct vdrv *d, struct virtio_dev *dev, struct io_loop *loop, uint64_t ram_bytes);

/*
 * The driver's bring-up over the MMIO registers: ACKNOWLEDGE, DRIVER,
 * features (device's & want, plus VERSION_1 and EVENT_IDX), FEATURES_OK,
 * nq queues of VDRV_QSIZE, DRIVER_OK. 0 or -1 if the device refused.
 */
int vdrv_start(struct vdrv *d, uint64_t want, int nq);
void vdrv_destroy(struct vdrv *d);

/* Host pointer of guest range [gpa, gpa+len) (aborts if outside RAM: a bench bug). */
void *vdrv_ptr(struct vdrv *d, gpa_t gpa, uint64_t len);

void vdrv_set_desc(struct vdrv *d, struct vdrv_q *q, uint16_t i, gpa_t addr, uint32_t len,
		   uint16_t flags, uint16_t next);

/* Put head in the next avail slot (not yet visible to the device). */
void vdrv_add(struct vdrv *d, struct vdrv_q *q, uint16_t head);

/* Publish the added heads and kick if the device asked for it (EVENT_IDX). */
void vdrv_publish(struct vdrv *d, struct vdrv_q *q);

/* The next used entry: 1 with *id, *len, or 0 when the device has returned nothing new. */
int vdrv_get_used(struct vdrv *d, struct vdrv_q *q, uint32_t *id, uint32_t *len);

/*
 * Ask for an interrupt at the next used entry (used_event = last_used), then
 * look again: true if something arrived meanwhile (do not sleep).
 */
bool vdrv_enable_cb(struct vdrv *d, struct vdrv_q *q);

/* Sleep until the device raises its interrupt (then read and ack the ISR). -1 after timeout_ms. */
int vdrv_wait_irq(struct vdrv *d, int timeout_ms);

/* Monotonic seconds. */
double vdrv_now(void);

#endif
