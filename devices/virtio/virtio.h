/* virtio.h - the transport-independent virtio device interface: a device is an ops table and queues. */
#ifndef MICROVM_VIRTIO_H
#define MICROVM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"

#define VIRTIO_MAX_QUEUES 8

/* Feature bits the transport handles itself (offered for every device). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

struct virtio_dev;

/*
 * What a device model provides. The transport calls these; the device never
 * sees transport registers. Calls marked (io) come on the I/O thread, the
 * others on a vCPU thread with the transport's lock held.
 */
struct virtio_dev_ops {
	const char *name;              /* "virtio-blk", for logs */
	uint32_t device_id;            /* virtio device ID (2 = block, 1 = net) */
	uint16_t num_queues;
	uint64_t (*features)(struct virtio_dev *dev);  /* device-specific feature bits */
	/* Device config space (offset from 0x100 of the MMIO window). Out-of-range reads give 0. */
	void (*config_read)(struct virtio_dev *dev, uint64_t offset, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *dev, uint64_t offset, const uint8_t *data, uint32_t len);
	/* DRIVER_OK was set with these features: start serving the queues. 0 or -errno. */
	int (*activate)(struct virtio_dev *dev);
	/* (io) The driver kicked queue q. */
	void (*queue_notify)(struct virtio_dev *dev, uint16_t q);
	/* The driver reset the device: stop, wait for in-flight requests, forget state. */
	void (*reset)(struct virtio_dev *dev);
	/*
	 * For a snapshot, with every vCPU stopped: take no new requests and let
	 * the ones in flight complete into the used ring (an answer is never
	 * dropped); buffers taken from a ring but not given back go back to the
	 * ring (the queue's position is rewound), so the queues' positions alone
	 * describe the device; make what the device wrote durable on the host.
	 * Returns 0 or -errno with err_msg() (the snapshot is then refused);
	 * thaw() goes on as before either way.
	 */
	int (*freeze)(struct virtio_dev *dev);
	void (*thaw)(struct virtio_dev *dev);
};

/* Callbacks a device uses to reach the driver, set by the transport. */
struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;                    /* the device model's own state */
	struct virtq vq[VIRTIO_MAX_QUEUES];
	uint64_t driver_features;      /* negotiated, valid after FEATURES_OK */
	/* (io) Raise the used-buffer interrupt for queue q if the driver wants it. */
	void (*notify_used)(struct virtio_dev *dev, uint16_t q);
	/* (io) The driver broke the protocol: set DEVICE_NEEDS_RESET, raise a config interrupt, log once. */
	void (*needs_reset)(struct virtio_dev *dev, const char *why);
	void *transport;
};

static inline bool virtio_has_feature(const struct virtio_dev *dev, unsigned int bit)
{
	return (dev->driver_features >> bit) & 1;
}

#endif
