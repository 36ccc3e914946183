/* pvpanic.h - the paravirtual panic device: the guest kernel tells microvm it panicked (port 0x505, ACPI QEMU0001). */
#ifndef MICROVM_PVPANIC_H
#define MICROVM_PVPANIC_H

#include <stdbool.h>
#include <stdint.h>

enum pvpanic_event {
	PVPANIC_EV_PANICKED,     /* the guest kernel panicked: end the VM */
	PVPANIC_EV_CRASH_LOADED, /* it panicked and a crash (kdump) kernel takes over: log, go on */
};

struct pvpanic_ops {
	/* Called on a vCPU thread for each event the guest writes. */
	void (*event)(void *ctx, enum pvpanic_event ev);
	void *ctx;
};

struct pvpanic {
	struct pvpanic_ops ops;
};

void pvpanic_init(struct pvpanic *p, const struct pvpanic_ops *ops);

/*
 * Bus handler (opaque = struct pvpanic *), registered at MV_PORT_PVPANIC with
 * size 1. A read returns the supported events (MV_PVPANIC_EVENTS, as QEMU's
 * device does; Linux reads it at probe time and sends only those). A write
 * with MV_PVPANIC_PANICKED set reports PVPANIC_EV_PANICKED; else one with
 * MV_PVPANIC_CRASH_LOADED reports PVPANIC_EV_CRASH_LOADED; other bits are
 * ignored.
 */
void pvpanic_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
