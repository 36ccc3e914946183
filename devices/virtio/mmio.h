/* mmio.h - the virtio-mmio transport, modern layout (version 2), for any struct virtio_dev. */
#ifndef MICROVM_VIRTIO_MMIO_H
#define MICROVM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/guest_mem.h"

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

/* (io) The I/O thread calls this when notify_fd[q] fires: forwards to dev->ops->queue_notify. */
void virtio_mmio_queue_kicked(struct virtio_mmio *m, uint16_t q);

#endif
