/* devices.h - a VM's virtio devices: disk images, virtio-blk models, virtio-mmio transports and the I/O loop. */
#ifndef MICROVM_DEVICES_H
#define MICROVM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "driver/kvm.h"
#include "firmware/machine.h"
#include "vmm/bus.h"
#include "vmm/cli.h"
#include "vmm/guest_mem.h"
#include "vmm/ioloop.h"

/* What the I/O thread needs to forward a queue kick to the transport. */
struct vdisk_kick {
	struct virtio_mmio *m;
	uint16_t q;
};

struct vdisk {
	const struct disk_config *cfg;
	int fd;                        /* the image, locked with flock */
	uint64_t size;                 /* bytes, a multiple of 512 */
	int mmio_idx;                  /* index in machine.mmio_devs */
	int file;                      /* I/O loop file index */
	struct blk *blk;
	struct virtio_mmio mmio;
	bool mmio_ready;
	struct vdisk_kick kick[VIRTIO_MAX_QUEUES];
};

struct vdevs {
	int nr_disks;
	struct vdisk disks[CLI_MAX_DISKS];
	struct io_loop *loop;          /* NULL without disks */
	char *cmdline;                 /* the kernel command line to use (owned) */
};

/*
 * Open and check every --disk image of cfg (missing, directory, unreadable,
 * empty, size not a multiple of 512, locked by another VM: one clear message)
 * and add one virtio-mmio device per disk to m, so the firmware tables
 * rendered afterwards describe them. Then compose the kernel command line
 * (d->cmdline): cfg->cmdline plus, with --cmdline-devices or acpi=off, one
 * virtio_mmio.device=4K@0xBASE:IRQ per device. No KVM needed. Returns 0 or
 * -errno with err_msg(); vdevs_destroy() must be called either way.
 */
int vdevs_open(struct vdevs *d, const struct vmm_config *cfg, struct machine *m);

/*
 * Once the VM exists: create the I/O loop (cfg->io_engine), the virtio-blk
 * models and their transports, register each 4 KiB window on mmio, connect
 * the irqfd and one ioeventfd per queue, watch the notify eventfds.
 * Returns 0 or -errno with err_msg().
 */
int vdevs_create(struct vdevs *d, const struct vmm_config *cfg, const struct machine *m,
		 struct vm *vm, struct bus *mmio, const struct guest_mem *mem);

/* Start the I/O thread (before the vCPUs) and log the engine once. */
int vdevs_start(struct vdevs *d);

/*
 * After the vCPUs stopped: finish every request in flight, stop the I/O
 * thread, then fdatasync each writable image. Safe to call twice.
 */
void vdevs_stop(struct vdevs *d);

/* Stop if needed and free everything; safe on a zeroed or partly built struct. */
void vdevs_destroy(struct vdevs *d);

#endif
