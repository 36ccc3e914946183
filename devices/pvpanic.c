/* pvpanic.c - the paravirtual panic device (see pvpanic.h). */
#include "devices/pvpanic.h"
#include "firmware/machine.h"

#include <string.h>

void pvpanic_init(struct pvpanic *p, const struct pvpanic_ops *ops)
{
	memset(p, 0, sizeof(*p));
	p->ops = *ops;
}

void pvpanic_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pvpanic *p = opaque;

	if (!len)
		return;
	if (!is_write) {
		memset(data, 0, len);
		if (offset == 0)
			data[0] = MV_PVPANIC_EVENTS;
		return;
	}
	if (offset != 0 || !p->ops.event)
		return;
	/* PANICKED wins: the kernel sets one bit per write, but a guest may set both. */
	if (data[0] & MV_PVPANIC_PANICKED)
		p->ops.event(p->ops.ctx, PVPANIC_EV_PANICKED);
	else if (data[0] & MV_PVPANIC_CRASH_LOADED)
		p->ops.event(p->ops.ctx, PVPANIC_EV_CRASH_LOADED);
}
