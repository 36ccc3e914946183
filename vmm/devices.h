/* devices.h - a VM's virtio devices: disk images and taps, virtio-blk and virtio-net models, virtio-mmio transports and the I/O loop. */
#ifndef MICROVM_DEVICES_H
#define MICROVM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net.h"
#include "driver/kvm.h"
#include "firmware/machine.h"
#include "vmm/bus.h"
#include "vmm/config.h"
#include "base/guest_mem.h"
#include "io/ioloop.h"
#include "io/overlay.h"
#include "io/tap.h"

/* What the I/O thread needs to forward a queue kick to the transport. */
struct vdev_kick {
	struct virtio_mmio *m;
	uint16_t q;
};

/*
 * A device model's transport and its wiring, the same for every device
 * type: the virtio-mmio window on the bus, the irqfd, one ioeventfd per
 * queue and its watch on the I/O loop.
 */
struct vwire {
	struct virtio_mmio mmio;
	bool mmio_ready;
	struct vdev_kick kick[VIRTIO_MAX_QUEUES];
};

struct vdisk {
	const struct disk_config *cfg;
	int fd;                        /* the image (with an overlay: the base, read-only), locked with flock */
	uint64_t size;                 /* bytes, a multiple of 512 */
	struct overlay *ovl;           /* ,overlay: the copy-on-write layer over fd; else NULL */
	int mmio_idx;                  /* index in machine.mmio_devs */
	int file;                      /* I/O loop file index */
	struct blk *blk;
	struct vwire wire;
};

struct vnet {
	const struct net_config *cfg;
	struct tap tap;                /* open (tap.fd >= 0) from vdevs_open() on */
	uint8_t mac[6];                /* --net mac=, else random or tap_default_mac() */
	int mmio_idx;
	struct net *net;
	struct vwire wire;
};

struct vdevs {
	int nr_disks;
	struct vdisk disks[CFG_MAX_DISKS];
	int nr_nics;
	struct vnet nics[CFG_MAX_NICS];
	struct io_loop *loop;          /* NULL without disks and NICs */
	bool started;                  /* the I/O thread ran: counters are worth logging */
};

/*
 * Open and check every --disk image of cfg (missing, directory, unreadable,
 * empty, size not a multiple of 512, locked by another VM: one clear message),
 * then open (or create) every --net tap (see tap_open()) and pick each MAC,
 * and add one virtio-mmio device per disk, then per NIC, to m, so the
 * firmware tables rendered afterwards describe them (vda.. then eth0..), and
 * so does the kernel command line (vmm/cmdline.h) with --cmdline-devices or
 * acpi=off. No KVM needed. Returns 0 or -errno with err_msg();
 * vdevs_destroy() must be called either way.
 */
int vdevs_open(struct vdevs *d, const struct vmm_config *cfg, struct machine *m);

/*
 * Once the VM exists: create the I/O loop (cfg->io_engine) if there are
 * disks or NICs, the virtio-blk and virtio-net models and their transports, register each 4 KiB window on mmio, connect
 * the irqfd and one ioeventfd per queue, watch the notify eventfds.
 * Returns 0 or -errno with err_msg().
 */
int vdevs_create(struct vdevs *d, const struct vmm_config *cfg, const struct machine *m,
		 struct vm *vm, struct bus *mmio, const struct guest_mem *mem);

/* Start the I/O thread (before the vCPUs) and log the engine once. */
int vdevs_start(struct vdevs *d);

/*
 * After the vCPUs stopped: finish every request in flight, stop the I/O
 * thread, then fdatasync each writable image and log each NIC's counters
 * (once, if the thread ran). Safe to call twice.
 */
void vdevs_stop(struct vdevs *d);

/* The GET_ID answer of a disk: --disk ...,id=NAME, else the image's file name (its first 20 bytes), NUL padded. */
void vdevs_disk_id(const struct disk_config *dc, char id[BLK_ID_BYTES]);

/* The virtio transports in machine order (the disks, then the NICs): how many, and the i-th. */
int vdevs_count(const struct vdevs *d);
struct virtio_mmio *vdevs_transport(struct vdevs *d, int i);

/*
 * For a snapshot, with every vCPU stopped: freeze every device (requests in
 * flight complete into their used rings, nothing new starts, held buffers go
 * back to their rings, writable disks are synced; virtio_dev_ops.freeze), so
 * that guest memory and the transports' state stay still and the disks are
 * not older than the snapshot. Returns 0, or the first device's -errno with
 * err_msg() (a disk could not be synced); either way every device is frozen
 * and vdevs_thaw() lets them all go on.
 */
int vdevs_freeze(struct vdevs *d);
void vdevs_thaw(struct vdevs *d);

/* Stop if needed and free everything, closing the taps (a tap microvm created goes away); safe on a zeroed or partly built struct. */
void vdevs_destroy(struct vdevs *d);

#endif
