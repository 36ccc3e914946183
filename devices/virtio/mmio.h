/* mmio.h - the virtio-mmio transport, modern layout (version 2), for any struct virtio_dev. */
#ifndef MICROVM_VIRTIO_MMIO_H
#define MICROVM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "base/guest_mem.h"

#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050   /* register offset; the VMM puts an ioeventfd on it */
#define VIRTIO_MMIO_CONFIG 0x100

struct virtio_mmio {
	struct virtio_dev *dev;
	const struct guest_mem *mem;
	pthread_mutex_t lock;           /* register state; vCPU threads */
	uint32_t status;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint64_t driver_features;       /* as written, before FEATURES_OK */
	atomic_uint interrupt_status;   /* bit 0 used buffer, bit 1 config change */
	uint32_t config_generation;
	int irq_fd;                     /* eventfd: a write raises the device's IRQ (KVM irqfd) */
	int notify_fd[VIRTIO_MAX_QUEUES]; /* eventfds: one per queue, signalled on QueueNotify */
	atomic_bool broken;             /* DEVICE_NEEDS_RESET was raised */
};

/*
 * Set up the transport for dev (its ops, queues and callbacks): creates the
 * irq eventfd and one notify eventfd per queue, and points dev->notify_used /
 * dev->needs_reset at the transport. Returns 0 or -errno with err_msg().
 */
int virtio_mmio_init(struct virtio_mmio *m, struct virtio_dev *dev, const struct guest_mem *mem);
void virtio_mmio_destroy(struct virtio_mmio *m);

/*
 * Bus handler for the device's 4 KiB window (opaque = struct virtio_mmio *).
 * A write to QueueNotify that reaches it (no ioeventfd) signals notify_fd[q].
 * Misuse (bad width, writes to read-only registers, a queue set up while
 * DRIVER_OK) is logged once by register name and ignored.
 */
void virtio_mmio_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* A transport's state and its queues' for snapshots (vmm/snapshot.h); little-endian host layout. */
struct virtio_queue_state {
	uint64_t desc, avail, used;
	uint16_t size, last_avail, used_idx, signalled_used;
	uint8_t ready, signalled_valid, pad[6];
};

struct virtio_mmio_state {
	uint32_t device_id, num_queues;
	uint32_t status, device_features_sel, driver_features_sel, queue_sel;
	uint64_t driver_features;       /* as written by the driver */
	uint64_t negotiated;            /* the device's, after FEATURES_OK */
	uint32_t interrupt_status, config_generation;
	uint32_t broken, pad;
	struct virtio_queue_state q[VIRTIO_MAX_QUEUES];
};

/*
 * Save the transport's registers and its queues' positions. The device must
 * be frozen (virtio_dev_ops.freeze) and no vCPU running.
 */
void virtio_mmio_save(struct virtio_mmio *m, struct virtio_mmio_state *s);

/*
 * Load a saved state into a transport fresh from virtio_mmio_init() (before
 * the I/O thread starts): check it (same device type and queue count, known
 * status bits, DRIVER_OK only with FEATURES_OK, features the device offers,
 * ready queues whose rings lie in guest RAM), apply it and, with DRIVER_OK,
 * activate the device. Returns 0 or -EINVAL with err_msg() naming what is wrong.
 */
int virtio_mmio_load(struct virtio_mmio *m, const struct virtio_mmio_state *s);

/* (io) The I/O thread calls this when notify_fd[q] fires: forwards to dev->ops->queue_notify. */
void virtio_mmio_queue_kicked(struct virtio_mmio *m, uint16_t q);

#endif
